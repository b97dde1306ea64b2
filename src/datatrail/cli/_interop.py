"""Interop commands: export (OpenLineage, PROV, JSONL, Parquet) and import (OpenLineage)."""

from __future__ import annotations

import json as jsonlib
import sys
from pathlib import Path
from typing import TextIO

import typer
from rich.markup import escape
from rich.table import Table

from datatrail.cli._common import (
    EXIT_BAD_INPUT,
    JsonOpt,
    TrailOpt,
    console,
    emit_json,
    err_console,
    fail,
    guarded,
    open_trail,
    progress_bar,
)
from datatrail.model import parse_ts

__all__ = ["register"]

_FORMATS = ("openlineage", "prov-json", "prov-n", "jsonl", "parquet")


@guarded
def export(
    format: str = typer.Option(
        ..., "--format", "-f", help="openlineage, prov-json, prov-n, jsonl or parquet."
    ),
    since: str | None = typer.Option(
        None, "--since", help="Only runs (rows) from this time on (ISO time, date, or 2h/7d ago)."
    ),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="Write to this file (default: stdout; parquet needs a file)."
    ),
    table: str = typer.Option(
        "events",
        "--table",
        help="jsonl/parquet: events or a projection table (runs, records, ...).",
    ),
    trail: str | None = TrailOpt,
    json: bool = JsonOpt,
) -> None:
    """Export the trail: runs as OpenLineage events, W3C PROV, or the log and tables as data."""
    if format not in _FORMATS:
        raise fail(f"--format {format!r}: use one of {', '.join(_FORMATS)}")
    if format == "parquet" and output is None:
        raise fail("--format parquet writes a file; give -o FILE.parquet")
    floor = parse_ts(since) if since else None
    with open_trail(trail) as t:
        store = t.store
        if format == "parquet":
            from datatrail.interop import export_parquet

            assert output is not None
            count = export_parquet(store, output, table=table, since=floor)
        else:
            out = output.open("w", encoding="utf-8") if output else sys.stdout
            try:
                count = _write_text(store, format, out, table=table, since=floor)
            finally:
                if output:
                    out.close()
    if output is None:
        return
    summary = {"format": format, "output": str(output), "count": count}
    if format in ("jsonl", "parquet"):
        summary["table"] = table
    if json:
        emit_json(summary)
        return
    what = {
        "openlineage": "OpenLineage events",
        "prov-json": "PROV records",
        "prov-n": "PROV records",
    }
    console.print(
        f"[green]exported[/] {count} {what.get(format, escape(table) + ' rows')} to {escape(str(output))}"
    )


def _write_text(store: object, format: str, out: TextIO, *, table: str, since: str | None) -> int:
    from datatrail.store import Store

    assert isinstance(store, Store)
    if format == "openlineage":
        from datatrail.interop.openlineage import export_openlineage

        count = 0
        for event in export_openlineage(store, since=since):
            out.write(jsonlib.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n")
            count += 1
        return count
    if format in ("prov-json", "prov-n"):
        from datatrail.interop import export_prov, prov_document

        doc = prov_document(store, since=since)
        out.write(export_prov(store, format=format, since=since))
        return sum(len(v) for k, v in doc.items() if k != "prefix")
    from datatrail.interop import export_jsonl

    return export_jsonl(store, out, table=table, since=since)


@guarded
def import_(
    file: Path = typer.Argument(..., help="OpenLineage events: JSON lines (or one JSON array)."),
    trail: str | None = TrailOpt,
    json: bool = JsonOpt,
) -> None:
    """Import OpenLineage events; reports each rejected line with its reason (exit 2 if any)."""
    from datatrail.interop.openlineage import ingest, read_openlineage_lines
    from datatrail.store import open_store

    if not file.is_file():
        raise fail(f"{file}: no such file")
    objs, lines = read_openlineage_lines(file.read_bytes())
    with open_trail(trail) as t:
        home = t.home
        if home is None:
            raise fail(
                "cannot import into this trail: its folder (with the signing key) is unknown"
            )
        store = open_store(home.url, signer=home.signer())
        try:
            with progress_bar(f"importing {file.name}") as update:
                results = ingest(store, objs, lines=lines, progress=update, total=len(objs))
        finally:
            store.close()
    rejected = [r for r in results if not r.ok]
    data = {
        "file": str(file),
        "accepted": len(results) - len(rejected),
        "rejected": [{"line": r.line, "error": r.error, "pointer": r.pointer} for r in rejected],
        "events_appended": sum(r.events for r in results),
    }
    if json:
        emit_json(data)
    else:
        console.print(
            f"[green]imported[/] {data['accepted']} OpenLineage events "
            f"({data['events_appended']} datatrail events appended)"
        )
        if rejected:
            grid = Table("line", "field", "reason", title=f"{len(rejected)} rejected")
            for r in rejected:
                grid.add_row(str(r.line), escape(r.pointer or ""), escape(r.error or ""))
            err_console.print(grid)
    if rejected:
        raise typer.Exit(EXIT_BAD_INPUT)


def register(app: typer.Typer) -> None:
    """Add the interop commands to the CLI."""
    app.command("export")(export)
    app.command("import")(import_)
