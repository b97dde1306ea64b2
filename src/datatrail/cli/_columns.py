"""Column lineage command: ``column-lineage NS:NAME:COLUMN``."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.tree import Tree

from datatrail.cli._common import JsonOpt, TrailOpt, console, emit_json, guarded, open_trail

__all__ = ["register"]


def _transform_text(transformations: list[dict[str, object]]) -> str:
    parts = []
    for t in transformations:
        text = f"{t.get('type')}/{t.get('subtype')}"
        if t.get("masking"):
            text += " masked"
        parts.append(text)
    return ", ".join(dict.fromkeys(parts))


@guarded
def column_lineage(
    column: str = typer.Argument(
        ..., help="NAMESPACE:NAME:COLUMN, e.g. postgres://db:5432:shop.public.orders:amount."
    ),
    upstream: bool = typer.Option(
        True, "--upstream/--downstream", help="Walk to source columns (default) or to consumers."
    ),
    depth: int | None = typer.Option(None, "--depth", help="At most this many steps (default 50)."),
    direct_only: bool = typer.Option(
        False, "--direct-only", help="Follow only DIRECT links (values), not joins or filters."
    ),
    as_of: str | None = typer.Option(
        None, "--as-of", help="Only statements recorded by this time (ISO, date, or 2h/7d ago)."
    ),
    trail: str | None = TrailOpt,
    json: bool = JsonOpt,
) -> None:
    """Column-level lineage of one column, from recorded SQL statements."""
    from datatrail.columns import column_lineage as walk

    with open_trail(trail) as t:
        graph = walk(
            t,
            column,
            direction="upstream" if upstream else "downstream",
            depth=depth,
            direct_only=direct_only,
            as_of=as_of,
        )
    if json:
        emit_json(graph.to_dict())
        return
    arrow = "←" if upstream else "→"
    tree = Tree(f"[bold]{escape(graph.root)}[/] ({graph.direction})")
    children: dict[str, list[tuple[str, str]]] = {}
    for edge in graph.edges:
        here, there = (edge.target, edge.source) if upstream else (edge.source, edge.target)
        children.setdefault(here, []).append((there, _transform_text(edge.transformations)))
    seen = {graph.root}

    def grow(branch: Tree, node: str) -> None:
        for nxt, how in children.get(node, []):
            label = f"{arrow} {escape(nxt)} [dim]{escape(how)}[/]"
            if nxt in seen:
                branch.add(label + " [dim](above)[/]")
                continue
            seen.add(nxt)
            grow(branch.add(label), nxt)

    grow(tree, graph.root)
    console.print(tree)
    console.print(f"[dim]{len(graph.nodes)} columns, {len(graph.edges)} links[/]")


def register(app: typer.Typer) -> None:
    """Add the column lineage command to the CLI."""
    app.command("column-lineage")(column_lineage)
