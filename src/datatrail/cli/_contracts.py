"""Contract commands: contract infer, apply, show, diff, check."""

from __future__ import annotations

import getpass
from pathlib import Path

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
    signing_store,
)

__all__ = ["register"]

contract_app = typer.Typer(
    help="Data contracts: declare, version, diff and check.", no_args_is_help=True
)


def _contracts_file(t: object, file: Path | None) -> Path:
    from datatrail.contracts import contracts_path

    if file is not None:
        return file
    home = getattr(t, "home", None)
    found = contracts_path(home) if home is not None else None
    if found is None:
        raise fail("no contracts file given and no .datatrail/contracts.yaml (or contracts/) here")
    return found


@contract_app.command("infer")
@guarded
def infer(
    node: str = typer.Argument(..., help="The dataset node id (dataset:NS:NAME)."),
    mode: str = typer.Option("warn", help="warn, alert or block."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the YAML here."),
    trail: str | None = TrailOpt,
    json: bool = JsonOpt,
) -> None:
    """Infer a contract from the dataset's newest recorded version; prints YAML to edit."""
    import yaml

    from datatrail.contracts import infer_contract

    if mode not in ("warn", "alert", "block"):
        raise fail(f"--mode {mode!r} is not one of warn, alert, block")
    with open_trail(trail) as t:
        contract = infer_contract(t.store, node, mode=mode)
    if json:
        emit_json(contract.to_dict())
        return
    text = yaml.safe_dump({"version": 1, "contracts": [contract.to_dict()]}, sort_keys=False)
    if output is not None:
        output.write_text(text)
        console.print(f"[green]wrote[/] {escape(str(output))}")
    else:
        typer.echo(text, nl=False)


@contract_app.command("apply")
@guarded
def apply(
    file: Path | None = typer.Argument(
        None, help="Contracts YAML file or folder (default: the trail's)."
    ),
    reason: str = typer.Option(..., "--reason", help="Why (kept with each new version)."),
    by: str | None = typer.Option(None, "--by", help="Who (default: OS user)."),
    trail: str | None = TrailOpt,
    json: bool = JsonOpt,
) -> None:
    """Record a new version of every contract that changed."""
    from datatrail.contracts import apply_contracts, load_contracts

    with open_trail(trail) as t:
        contracts = load_contracts(_contracts_file(t, file))
        store = signing_store(t, "recording a contract")
        try:
            added = apply_contracts(store, contracts, reason=reason, by=by or getpass.getuser())
        finally:
            store.close()
    if json:
        emit_json([v.to_dict() for v in added])
        return
    if not added:
        console.print("no contract changed; nothing recorded")
    for v in added:
        console.print(f"[green]recorded[/] {escape(v.dataset)} contract v{v.version}")


@contract_app.command("show")
@guarded
def show(
    node: str = typer.Argument(..., help="The dataset node id."),
    version: int | None = typer.Option(None, help="A version number (default: newest)."),
    trail: str | None = TrailOpt,
    json: bool = JsonOpt,
) -> None:
    """Show a recorded contract version."""
    import yaml

    from datatrail.contracts import contract_version

    with open_trail(trail) as t:
        found = contract_version(t.store, node, version)
    if json:
        emit_json(found.to_dict())
        return
    console.print(
        f"[bold]{escape(found.dataset)}[/] contract v{found.version} "
        f"({escape(found.ts)}, by {escape(str(found.by))}: {escape(found.reason)})"
    )
    console.print(escape(yaml.safe_dump(found.contract.to_dict(), sort_keys=False)))


@contract_app.command("diff")
@guarded
def diff(
    node: str = typer.Argument(..., help="The dataset node id."),
    v1: int = typer.Argument(..., help="The older version."),
    v2: str | None = typer.Argument(
        None,
        help="The newer version number, or a contracts YAML file (a proposal). Default: newest.",
    ),
    trail: str | None = TrailOpt,
    json: bool = JsonOpt,
) -> None:
    """What changes between two contract versions, the verdict, and who downstream is affected."""
    from datatrail.contracts import contract_version, diff_contracts, load_contracts
    from datatrail.errors import NodeNotFound

    with open_trail(trail) as t:
        old = contract_version(t.store, node, v1)
        label: int | str
        if v2 is not None and not v2.isdigit():
            proposed = [c for c in load_contracts(Path(v2)) if c.dataset == old.dataset]
            if not proposed:
                raise fail(f"{v2} has no contract for {old.dataset}")
            new, label = proposed[0], v2
        else:
            newer = contract_version(t.store, node, int(v2) if v2 else None)
            new, label = newer.contract, newer.version
        try:
            graph = t.downstream(old.dataset)
            consumers = sorted(
                n.id for n in graph.nodes if n.kind in ("job", "dataset") and n.depth > 0
            )
        except NodeNotFound:
            consumers = []
    result = diff_contracts(old.contract, new, before=old.version, after=label, consumers=consumers)
    if json:
        emit_json(result.to_dict())
    else:
        color = "red" if result.verdict == "breaking" else "green"
        console.print(
            f"{escape(result.dataset)} v{old.version} → {escape(str(label))}: [{color}]{result.verdict}[/]"
        )
        for c in result.changes:
            mark = "[red]breaking[/]" if c.breaking else "[green]compatible[/]"
            console.print(f"  {mark} {escape(c.message)}")
        if consumers:
            console.print("downstream consumers: " + escape(", ".join(consumers)))
    if result.verdict == "breaking":
        raise typer.Exit(EXIT_CHECK_FAILED)


@contract_app.command("check")
@guarded
def check(
    node: str = typer.Argument(..., help="The dataset node id."),
    file: Path | None = typer.Option(
        None, "--file", help="Check this data file instead of the dataset's."
    ),
    trail: str | None = TrailOpt,
    json: bool = JsonOpt,
) -> None:
    """Check a dataset's newest file (or --file) against its newest contract now (exit 1 on failure)."""
    from datatrail.contracts import contract_version, evaluate

    with open_trail(trail) as t:
        found = contract_version(t.store, node)
    target = file
    if target is None:
        namespace, _, name = found.dataset.removeprefix("dataset:").partition(":")
        if namespace != "file":
            raise fail(f"{found.dataset} is not a file dataset; pass --file to check a copy of it")
        target = Path(name)
    if not target.exists():
        raise fail(f"{target}: no such file")
    result = evaluate(found.contract, version=found.version, value=target)
    if json:
        emit_json(result.to_dict())
    else:
        table = Table(title=f"{escape(found.dataset)} contract v{found.version}")
        for col in ("assertion", "column", "ok", "expected", "actual"):
            table.add_column(col, overflow="fold")
        for a in result.assertions:
            table.add_row(
                a.assertion,
                escape(a.column or ""),
                "[green]✓[/]" if a.success else "[red]✗[/]",
                escape(str(a.expected)),
                escape(str(a.actual)),
            )
        console.print(table)
    if not result.success:
        raise typer.Exit(EXIT_CHECK_FAILED)


def register(app: typer.Typer) -> None:
    """Add the contract group."""
    app.add_typer(contract_app, name="contract")
