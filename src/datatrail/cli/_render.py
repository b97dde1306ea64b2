"""Rich renderings of lineage results for people (``--json`` prints the records instead)."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.tree import Tree

from datatrail.lineage import ArtifactRecord, DatasetRecord, Explanation, LineageGraph, RunRecord

__all__ = [
    "artifact_panel",
    "dataset_panel",
    "explain_tree",
    "graph_tree",
    "run_panel",
    "runs_table",
]

_STATUS = {"completed": "green", "failed": "red", "running": "yellow"}


def _short(value: str, n: int = 12) -> str:
    if value.startswith("blake3:"):
        return "blake3:" + value[7 : 7 + n]
    return value


def runs_table(runs: list[RunRecord]) -> Table:
    table = Table(title=f"{len(runs)} runs (newest first)")
    for col in ("run id", "job", "status", "started", "duration", "parent"):
        table.add_column(col, overflow="fold")
    for r in runs:
        color = _STATUS.get(r.status, "white")
        table.add_row(
            r.run_id,
            escape(r.job_name),
            f"[{color}]{r.status}[/]",
            r.started_at or "",
            f"{r.duration_ms:.1f} ms" if r.duration_ms is not None else "",
            r.parent_run_id or "",
        )
    return table


def _kv(table: Table, key: str, value: Any, *, markup: bool = False) -> None:
    text = "" if value is None else str(value)
    table.add_row(f"[bold]{key}[/]", text if markup else escape(text))


def run_panel(r: RunRecord) -> Panel:
    table = Table.grid(padding=(0, 2))
    table.add_column()
    table.add_column(overflow="fold")
    _kv(table, "job", r.job)
    color = _STATUS.get(r.status, "white")
    _kv(table, "status", f"[{color}]{r.status}[/]", markup=True)
    _kv(table, "started", r.started_at)
    _kv(table, "ended", r.ended_at)
    _kv(table, "duration", f"{r.duration_ms} ms" if r.duration_ms is not None else None)
    _kv(table, "parent", r.parent_run_id)
    _kv(table, "params", r.params or {})
    if r.code:
        git = r.code.get("git") or {}
        _kv(
            table,
            "code",
            f"{r.code.get('module') or ''} {r.code.get('qualname') or ''} {r.code.get('file') or ''}:{r.code.get('line') or ''}",
        )
        _kv(table, "source hash", r.code.get("source_hash"))
        if git:
            _kv(
                table,
                "git",
                f"{git.get('commit')} on {git.get('branch')}{' (dirty)' if git.get('dirty') else ''}",
            )
    if r.environment:
        _kv(table, "python", f"{r.environment.get('python')} on {r.environment.get('platform')}")
        _kv(table, "packages", len(r.environment.get("packages") or {}))
    if r.actor:
        _kv(table, "actor", f"{r.actor.get('user')}@{r.actor.get('host')}")
    for io in r.inputs:
        _kv(table, "input", f"{io.label or ''} {_short(io.artifact_id)} {io.dataset or io.kind}")
    for io in r.outputs:
        _kv(table, "output", f"{io.label or ''} {_short(io.artifact_id)} {io.dataset or io.kind}")
    for child in r.children:
        _kv(table, "child run", child)
    if r.error:
        _kv(table, "error", f"{r.error.get('type')}: {r.error.get('message')}")
        table.add_row("", escape(r.error.get("traceback", "")))
    return Panel(table, title=f"run {r.run_id}")


def artifact_panel(a: ArtifactRecord) -> Panel:
    table = Table.grid(padding=(0, 2))
    table.add_column()
    table.add_column(overflow="fold")
    for key in ("kind", "size", "rows", "media_type", "first_seen"):
        _kv(table, key, getattr(a, key))
    if a.schema:
        _kv(table, "schema", ", ".join(f"{c}: {t}" for c, t in a.schema))
    quality = _quality_table(a.stats) if a.stats else None
    if a.stats and quality is None:
        _kv(table, "stats", a.stats)
    elif a.stats and "bytes" in a.stats:
        _kv(table, "bytes (in memory)", a.stats["bytes"])
    for ds in a.datasets:
        _kv(table, "dataset", ds)
    for run in a.produced_by:
        _kv(table, "produced by", run)
    for run in a.used_by:
        _kv(table, "used by", run)
    if quality is None:
        return Panel(table, title=f"artifact {a.artifact_id}")
    return Panel(Group(table, quality), title=f"artifact {a.artifact_id}")


def _quality_table(stats: dict[str, Any]) -> Table | None:
    """Per-column quality metrics (level full) as a table, or None if there are none."""
    columns = stats.get("columns")
    if not isinstance(columns, dict) or not columns:
        return None
    table = Table(title="quality", title_justify="left")
    for col in ("column", "nulls", "distinct ≈", "min", "max"):
        table.add_column(col, overflow="fold")
    for name, col in columns.items():
        if not isinstance(col, dict):
            continue
        table.add_row(
            escape(str(name)),
            *(escape(str(col.get(k, ""))) for k in ("nulls", "distinct", "min", "max")),
        )
    return table


def dataset_panel(d: DatasetRecord) -> Panel:
    table = Table(title=f"{len(d.versions)} versions")
    for col in ("artifact", "first seen", "size", "rows"):
        table.add_column(col, overflow="fold")
    for v in d.versions:
        table.add_row(v["artifact_id"], v["first_seen"], str(v["size"] or ""), str(v["rows"] or ""))
    return Panel(table, title=d.node_id)


def _label(node: Any) -> str:
    kind = node.kind
    color = {"dataset": "cyan", "job": "magenta", "run": "yellow", "artifact": "green"}[kind]
    if kind == "run":
        status = node.attrs.get("status", "")
        return f"[{color}]run[/] {escape(node.label)} [{_STATUS.get(status, 'white')}]{status}[/] [dim]{node.id[4:]}[/]"
    if kind == "artifact":
        return f"[{color}]artifact[/] {escape(node.label.split(' @')[0])} [dim]{_short(node.id[9:])}[/]"
    return f"[{color}]{kind}[/] {escape(node.label)} [dim]{escape(node.id)}[/]"


def graph_tree(graph: LineageGraph) -> Tree:
    nodes = {n.id: n for n in graph.nodes}
    nxt: dict[str, list[str]] = {}
    for e in graph.edges:
        a, b = (e.target, e.source) if graph.direction == "upstream" else (e.source, e.target)
        nxt.setdefault(a, []).append(b)
    title = f"{graph.direction} of {escape(graph.root)} (depth ≤ {graph.depth}{', as of ' + graph.as_of if graph.as_of else ''})"
    root = Tree(f"[bold]{title}[/]")
    shown: set[str] = set()

    def add(parent: Tree, node_id: str, depth: int) -> None:
        node = nodes.get(node_id)
        if node is None:
            return
        if node_id in shown:
            parent.add(f"{_label(node)} [dim](shown above)[/]")
            return
        shown.add(node_id)
        branch = parent.add(_label(node))
        if depth >= graph.depth:
            return
        for child in sorted(nxt.get(node_id, [])):
            add(branch, child, depth + 1)

    add(root, graph.root, 0)
    return root


def explain_tree(exp: Explanation) -> Tree:
    root = Tree("[bold]how it was made[/]")

    def add(parent: Tree, e: Explanation) -> None:
        a = e.artifact
        where = escape(", ".join(a.datasets) or a.kind)
        node = parent.add(
            f"[green]artifact[/] {_short(a.artifact_id)} [cyan]{where}[/]"
            + (" [dim](see above)[/]" if e.seen_above else "")
        )
        for step in e.produced_by:
            r = step.run
            git = (r.code or {}).get("git") or {}
            commit = (
                f" @ {str(git.get('commit'))[:10]}{'+dirty' if git.get('dirty') else ''}"
                if git
                else ""
            )
            params = escape(", ".join(f"{k}={v!r}" for k, v in r.params.items()))
            branch = node.add(
                f"[magenta]made by[/] {escape(r.job_name)}({params}){commit} [dim]run:{r.run_id} {r.status}[/]"
            )
            for sub in step.inputs:
                add(branch, sub)

    add(root, exp)
    return root
