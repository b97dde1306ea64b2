"""Core commands: init, demo, runs, show, lineage, explain, rebuild."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from datatrail.cli._common import (
    JsonOpt,
    TrailOpt,
    console,
    emit_json,
    fail,
    guarded,
    open_trail,
    progress_bar,
)
from datatrail.cli._render import (
    artifact_panel,
    dataset_panel,
    explain_tree,
    graph_tree,
    run_panel,
    runs_table,
)
from datatrail.errors import InvalidNodeId
from datatrail.model import parse_node_id
from datatrail.store import HOME_DIRNAME, init_home

__all__ = ["register"]


@guarded
def init(
    directory: Path = typer.Argument(
        Path("."), help="Project folder; the trail goes in DIRECTORY/.datatrail."
    ),
    json: bool = JsonOpt,
) -> None:
    """Make .datatrail/ here: the SQLite store, the checkpoint signing key pair and a starter policy."""
    if directory.exists() and not directory.is_dir():
        raise fail(f"{directory} is not a directory")
    home = init_home(directory / HOME_DIRNAME)
    data = {
        "trail": str(home.path),
        "url": home.url,
        "verifier_key": home.verifier_key.read_text().strip(),
        "policy": str(home.policy),
    }
    if json:
        emit_json(data)
        return
    console.print(f"[green]trail ready[/] at {home.path}")
    console.print(f"  store     {home.url}")
    console.print(f"  verifier  {data['verifier_key']}")
    console.print(f"  policy    {home.policy}")


@guarded
def demo(
    directory: Path = typer.Option(
        Path("datatrail-demo"), "--dir", help="Folder to run the demo in."
    ),
    fresh: bool = typer.Option(
        False, "--fresh", help="Delete the folder first if it holds an earlier demo."
    ),
    json: bool = JsonOpt,
) -> None:
    """Run the shipped demo pipeline (raw CSV → clean → join → aggregate → report), then show its lineage."""
    from datatrail.demo import run_demo

    result = run_demo(directory, fresh=fresh)
    if json:
        emit_json(result.to_dict())
        return
    console.print(
        f"[bold]demo pipeline ran[/] in {result.directory}: {result.runs} runs, {result.events} events"
    )
    console.print(f"trail: {result.trail}")
    console.print()
    console.print(graph_tree(result.lineage))
    console.print()
    console.print(f"[bold]explain[/] {result.report_artifact}")
    console.print(explain_tree(result.explanation))
    console.print()
    console.print(
        f"Try: [cyan]datatrail runs --trail {result.trail}[/], [cyan]datatrail lineage {result.lineage.root} --trail {result.trail}[/]"
    )


@guarded
def runs(
    job: str | None = typer.Option(None, help="Only runs of this job name."),
    status: str | None = typer.Option(None, help="running, completed or failed."),
    since: str | None = typer.Option(
        None, help="Started at or after (ISO time, date, or 30m/2h/7d ago)."
    ),
    until: str | None = typer.Option(None, help="Started at or before."),
    parent: str | None = typer.Option(None, help="Only children of this run id."),
    roots: bool = typer.Option(False, "--roots", help="Only top-level runs."),
    limit: int = typer.Option(50, help="At most this many runs."),
    trail: str | None = TrailOpt,
    json: bool = JsonOpt,
) -> None:
    """List runs, newest first."""
    with open_trail(trail) as t:
        found = t.runs(
            job=job,
            status=status,
            since=since,
            until=until,
            parent=parent,
            roots_only=roots,
            limit=limit,
        )
    if json:
        emit_json([r.to_dict() for r in found])
        return
    console.print(runs_table(found))


def _normalise(node: str) -> str:
    if node.startswith(("blake3:", "uuid:")):
        return "artifact:" + node
    if ":" not in node:
        return "run:" + node
    return node


@guarded
def show(
    node: str = typer.Argument(
        ..., help="A run id, an artifact id (blake3:…), or a node id (run:, artifact:, dataset:)."
    ),
    trail: str | None = TrailOpt,
    json: bool = JsonOpt,
) -> None:
    """Show one run, artifact or dataset in full."""
    parsed = parse_node_id(_normalise(node))
    with open_trail(trail) as t:
        data: Any
        if parsed.kind == "run":
            data = t.run(parsed.key)
            render = run_panel(data)
        elif parsed.kind == "artifact":
            data = t.artifact(parsed.key)
            render = artifact_panel(data)
        elif parsed.kind == "dataset":
            data = t.dataset(parsed.namespace or "", parsed.name or "")
            render = dataset_panel(data)
        else:
            raise InvalidNodeId(
                f"show takes a run, artifact or dataset; for a job use `datatrail runs --job {parsed.name}`"
            )
    if json:
        emit_json({"kind": parsed.kind, parsed.kind: data.to_dict()})
        return
    console.print(render)


@guarded
def lineage(
    node: str = typer.Argument(..., help="dataset:NS:NAME, job:NS:NAME, run:ID or artifact:ID."),
    upstream: bool = typer.Option(
        True, "--upstream/--downstream", help="Walk to sources (default) or to consumers."
    ),
    depth: int | None = typer.Option(None, "--depth", help="At most this many steps (default 50)."),
    as_of: str | None = typer.Option(
        None, "--as-of", help="As the trail stood at this time (ISO, date, or 2h/7d ago)."
    ),
    column: bool = typer.Option(
        False,
        "--column",
        help="NODE is a column, NAMESPACE:NAME:COLUMN: walk column-level lineage from SQL.",
    ),
    direct_only: bool = typer.Option(
        False, "--direct-only", help="With --column: follow only DIRECT (value) links."
    ),
    trail: str | None = TrailOpt,
    json: bool = JsonOpt,
) -> None:
    """Upstream or downstream lineage of a node (or, with --column, of a column)."""
    if column:
        from datatrail.cli._columns import column_lineage

        column_lineage(
            column=node,
            upstream=upstream,
            depth=depth,
            direct_only=direct_only,
            as_of=as_of,
            trail=trail,
            json=json,
        )
        return
    with open_trail(trail) as t:
        graph = t.lineage(
            _normalise(node),
            direction="upstream" if upstream else "downstream",
            depth=depth,
            as_of=as_of,
        )
    if json:
        emit_json(graph.to_dict())
        return
    console.print(graph_tree(graph))
    console.print(f"[dim]{len(graph.nodes)} nodes, {len(graph.edges)} edges[/]")


@guarded
def explain(
    node: str = typer.Argument(
        ..., help="An artifact id, or a dataset (its latest version) or run node id."
    ),
    depth: int = typer.Option(20, help="How many steps back to explain."),
    trail: str | None = TrailOpt,
    json: bool = JsonOpt,
) -> None:
    """Explain how an artifact was made: runs, code versions, parameters and inputs, recursively."""
    with open_trail(trail) as t:
        exp = t.explain(
            _normalise(node) if not node.startswith(("blake3:", "uuid:")) else node, depth=depth
        )
    if json:
        emit_json(exp.to_dict())
        return
    console.print(explain_tree(exp))


@guarded
def rebuild(trail: str | None = TrailOpt, json: bool = JsonOpt) -> None:
    """Drop and derive every projection table again from the event log."""
    with open_trail(trail) as t, progress_bar("rebuilding projections") as update:
        count = t.store.rebuild(progress=update)
        size = t.store.size()
    if json:
        emit_json({"events_replayed": count, "size": size})
        return
    console.print(f"[green]rebuilt[/] projections from {count} events")


def register(app: typer.Typer) -> None:
    """Add the core commands to the CLI."""
    for fn in (init, demo, runs, show, lineage, explain, rebuild):
        app.command(fn.__name__)(fn)
