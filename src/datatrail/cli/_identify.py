"""``datatrail identify FILE``: which run made a file, from its sidecar, its metadata and the trail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from datatrail.cli._common import (
    EXIT_CHECK_FAILED,
    JsonOpt,
    TrailOpt,
    console,
    emit_json,
    guarded,
    open_trail,
)

__all__ = ["register"]


@guarded
def identify(
    file: Path = typer.Argument(..., help="The file to identify."),
    rehash: bool = typer.Option(
        False, "--hash", help="Hash the file even when its sidecar could be trusted."
    ),
    trail: str | None = TrailOpt,
    json: bool = JsonOpt,
) -> None:
    """Tell which run made FILE: its artifact id, the provenance it carries, and the trail's answer.

    Exits 1 when neither the trail nor the file names a run that made it.
    """
    from datatrail.capture._provenance import identify as identify_file
    from datatrail.errors import NodeNotFound
    from datatrail.lineage import Trail

    opened: Trail | None
    if trail is not None:
        opened = open_trail(trail)
    else:
        try:
            opened = Trail()
        except NodeNotFound:
            opened = None  # no trail here: report what the file itself carries
    try:
        result = identify_file(file, trail=opened, rehash=rehash)
        result["trail"] = opened.home.url if opened is not None and opened.home else None
    finally:
        if opened is not None:
            opened.close()
    claims = [c for c in result["claims"].values() if c]
    found = bool(result["made_by"]) or (opened is None and bool(claims))
    if json:
        emit_json(result)
    else:
        _render(result)
    if not found:
        raise typer.Exit(EXIT_CHECK_FAILED)


def _render(result: dict[str, Any]) -> None:
    console.print(f"[bold]{escape(result['path'])}[/]")
    console.print(f"  artifact   {result['artifact_id']}  [dim](by {result['identified_by']})[/]")
    if result["made_by"]:
        for run in result["made_by"]:
            console.print(
                f"  made by    run:{run['run_id']}  {escape(run['job'])}  "
                f"{escape(str(run['status']))}  {escape(str(run['started_at']))}"
            )
    elif result["known"] is False:
        console.print("  [yellow]the trail has no run that made these bytes[/]")
    elif result["trail"] is None:
        console.print("  [dim]no trail here: only the file's own claims are shown[/]")
    for where, claim in result["claims"].items():
        if claim:
            console.print(
                f"  {where:<10} claims run:{escape(str(claim.get('run_id')))} "
                f"({escape(str(claim.get('job')))})"
            )
    if result["claim_confirmed"] is False:
        console.print(
            "  [bold red]the file's claim is not confirmed:[/] the claimed run did not record "
            "these bytes (the file was changed or rewritten after it was made)"
        )


def register(app: typer.Typer) -> None:
    """Add ``identify`` to the CLI."""
    app.command("identify")(identify)
