"""Reproducibility commands: ``diff``, ``replay`` and ``cache status|evict``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from datatrail.cli._common import (
    EXIT_CHECK_FAILED,
    JsonOpt,
    TrailOpt,
    console,
    emit_json,
    fail,
    guarded,
    open_trail,
)

if TYPE_CHECKING:
    from datatrail.reproduce import ArtifactCache

__all__ = ["register"]

cache_app = typer.Typer(
    name="cache", help="The artifact cache of level-full runs.", no_args_is_help=True
)


def _short(value: object) -> str:
    text = "" if value is None else str(value)
    return "blake3:" + text[7:19] if text.startswith("blake3:") else text


@guarded
def diff(
    run_a: str = typer.Argument(..., help="The first (older) run id."),
    run_b: str = typer.Argument(..., help="The second (newer) run id."),
    trail: str | None = TrailOpt,
    json: bool = JsonOpt,
) -> None:
    """Compare two runs: parameters, code, environment, inputs, outputs, and the likely cause."""
    from datatrail.reproduce import diff_runs

    with open_trail(trail) as t:
        result = diff_runs(t, run_a, run_b)
    if json:
        emit_json(result.to_dict())
        return
    console.print(f"[bold]{escape(result.job_a)}[/] {result.run_a} → {result.run_b}")
    console.print(escape(result.summary))
    for cause in result.causes:
        console.print(f"  {cause.rank}. [yellow]{cause.kind}[/] {escape(cause.message)}")
    table = Table(title="differences")
    for col in ("what", "key", "first run", "second run"):
        table.add_column(col, overflow="fold")
    for what, changes in (
        ("param", result.params),
        ("code", result.code),
        ("env", result.environment),
    ):
        for c in changes:
            table.add_row(what, escape(c.key), escape(repr(c.a)), escape(repr(c.b)))
    for what, ios in (("input", result.inputs), ("output", result.outputs)):
        for io in ios:
            if io.changed:
                table.add_row(what, escape(io.label), _short(io.a), _short(io.b))
    if table.row_count:
        console.print(table)


@guarded
def replay(
    run_id: str = typer.Argument(..., help="The run to replay (a tracked function's run)."),
    allow_dirty: bool = typer.Option(
        False, "--allow-dirty", help="Replay the recorded commit even if the tree was dirty."
    ),
    trail: str | None = TrailOpt,
    json: bool = JsonOpt,
) -> None:
    """Re-run a recorded step from its commit and cached inputs; compare output hashes."""
    from datatrail.reproduce import replay as do_replay

    if trail is not None and "://" not in trail and not Path(trail).exists():
        raise fail(f"{trail}: no such trail folder or store file")
    with open_trail(trail) as t:
        result = do_replay(run_id, trail=t, allow_dirty=allow_dirty)
    if json:
        emit_json(result.to_dict())
    else:
        color = {"reproduced": "green", "diverged": "red", "failed": "red"}[result.verdict]
        console.print(f"[bold {color}]{result.verdict}[/] {escape(result.message)}")
        console.print(f"replay run {result.replay_run_id} of {result.original_run_id}")
        for check in result.outputs:
            mark = "[green]=[/]" if check.same else "[red]≠[/]"
            console.print(
                f"  {mark} {escape(check.label)} {_short(check.recorded)} / {_short(check.replayed)}"
            )
        if result.environment and result.verdict != "reproduced":
            console.print("[bold]environment differences[/]")
            for c in result.environment:
                console.print(f"  {escape(c.key)}: {escape(str(c.a))} → {escape(str(c.b))}")
    if result.verdict != "reproduced":
        raise typer.Exit(EXIT_CHECK_FAILED)


def _cache(trail: str | None) -> ArtifactCache:
    from datatrail.reproduce import cache_for

    with open_trail(trail) as t:
        if t.home is None:
            raise fail("the artifact cache lives in a trail folder; give --trail FOLDER")
        return cache_for(t.home)


@guarded
def status(trail: str | None = TrailOpt, json: bool = JsonOpt) -> None:
    """How many artifacts the cache holds, their size and the cap."""
    info = _cache(trail).status()
    if json:
        emit_json(info.to_dict())
        return
    console.print(f"cache {escape(info.root)}")
    console.print(
        f"  {info.entries} artifacts, {info.bytes:,} bytes of {info.max_bytes:,} "
        f"({', '.join(f'{k}: {v}' for k, v in info.by_format.items()) or 'empty'})"
    )


@guarded
def evict(
    max_bytes: int | None = typer.Option(
        None, "--max-bytes", help="Evict least recently used entries until this size fits."
    ),
    unused_since: str | None = typer.Option(
        None, "--unused-since", help="Also evict entries not used since (ISO, date, or 7d ago)."
    ),
    everything: bool = typer.Option(False, "--all", help="Empty the cache."),
    trail: str | None = TrailOpt,
    json: bool = JsonOpt,
) -> None:
    """Evict cached artifacts (least recently used first)."""
    from datatrail.model import parse_ts

    if max_bytes is not None and max_bytes < 0:
        raise fail(f"--max-bytes must not be negative, not {max_bytes}")
    cache = _cache(trail)
    evicted = cache.evict(
        max_bytes=max_bytes,
        unused_since=parse_ts(unused_since) if unused_since else None,
        everything=everything,
    )
    info = cache.status()
    if json:
        emit_json(
            {
                "evicted": [e.artifact_id for e in evicted],
                "freed_bytes": sum(e.bytes for e in evicted),
                "status": info.to_dict(),
            }
        )
        return
    console.print(
        f"evicted {len(evicted)} artifacts ({sum(e.bytes for e in evicted):,} bytes); "
        f"{info.entries} remain ({info.bytes:,} bytes)"
    )


def register(app: typer.Typer) -> None:
    """Add diff, replay and the cache group to the CLI."""
    app.command("diff")(diff)
    app.command("replay")(replay)
    cache_app.command("status")(status)
    cache_app.command("evict")(evict)
    app.add_typer(cache_app, name="cache")
