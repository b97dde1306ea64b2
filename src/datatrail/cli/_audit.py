"""Audit commands: verify, erase, prove, verify-bundle, checkpoint, consistency, key show.

Each command parses, calls one function of :mod:`datatrail.audit`, and renders
the result: rich text for people, ``--json`` for machines. Exit codes: 0 all
good, 1 a verification failed, 2 bad input or any other datatrail error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import typer
from rich.markup import escape

from datatrail.audit import (
    VerifyReport,
    consistency,
    erase,
    prove,
    read_bundle,
    verify,
    verify_bundle,
    write_bundle,
)
from datatrail.cli._common import (
    EXIT_CHECK_FAILED,
    JsonOpt,
    TrailOpt,
    console,
    emit_json,
    err_console,
    guarded,
    open_trail,
    progress_bar,
    signing_store,
)
from datatrail.errors import DatatrailError, StoreError
from datatrail.ledger import Verifier, load_verifier, open_checkpoint
from datatrail.lineage import Trail
from datatrail.store import Home

__all__ = ["register"]

_PROGRESS_FROM = 20_000  # entries; below this a progress bar only flickers
_SHOWN_FAULTS = 20

KeyOpt = typer.Option(
    None, "--key", help="Verifier key file or key text. Default: the trail's verifier.key."
)


def _builtins(value: Any) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(value)
    return out


def _home(t: Trail) -> Home:
    if t.home is None:  # pragma: no cover - open_trail always opens by path or URL
        raise StoreError("this trail has no folder, so no keys")
    return t.home


def _key(t: Trail, key: str | None) -> Verifier | None:
    if key is not None:
        return load_verifier(key)
    home = _home(t)
    return load_verifier(home.verifier_key) if home.verifier_key.exists() else None


# -- verify ---------------------------------------------------------------------------


def _print_report(report: VerifyReport) -> None:
    cp = report.latest_checkpoint
    if report.ok:
        console.print(f"[green]✓ trail verified[/]: {report.size:,} entries")
    else:
        first = report.first_fault
        assert first is not None
        where = f"entry {first.index}" if first.index is not None else f"table {first.table}"
        console.print(f"[red]✗ verification failed[/]: {first.kind} at {where}")
        console.print(f"  {escape(first.detail)}")
    console.print(f"  root        {report.root or '-'}")
    if cp is not None:
        console.print(f"  checkpoint  size {cp.size:,}, signed {cp.ts}")
    else:
        console.print("  checkpoint  none that verifies")
    if report.erased:
        receipts = ", ".join(str(e.erased_by) for e in report.erased[:10])
        console.print(f"  erased      {len(report.erased)} entries, by receipts {receipts}")
    for item in report.unbound:  # allowed, but not evidence: an auditor must know
        console.print(f"  unbound     {escape(item.detail)}", highlight=False)
    if not report.ok:
        console.print(f"  faults      {report.faults_total}")
        for fault in report.faults[:_SHOWN_FAULTS]:
            at = f"entry {fault.index}" if fault.index is not None else "-"
            console.print(f"    {fault.kind:<28} {at:<12} {fault.table:<14} {escape(fault.detail)}")
        if report.faults_total > _SHOWN_FAULTS:
            console.print(
                f"    … and {report.faults_total - _SHOWN_FAULTS} more (--json lists up to 1000)"
            )


@guarded
def verify_command(
    trail: str | None = TrailOpt, key: str | None = KeyOpt, as_json: bool = JsonOpt
) -> None:
    """Check every entry, tree node, checkpoint and projection of the trail."""
    with open_trail(trail) as t:
        verifier = _key(t, key)
        big = not as_json and t.store.size() >= _PROGRESS_FROM
        with progress_bar("verifying", enabled=big) as update:
            report = verify(t.store, verifier=verifier, progress=update)
    if as_json:
        emit_json(report.to_dict())
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(EXIT_CHECK_FAILED)


# -- erase ----------------------------------------------------------------------------


@guarded
def erase_command(
    event: str = typer.Argument(..., help="The event to erase: its log index or its id."),
    reason: str = typer.Option(..., "--reason", help="Why; recorded in the receipt."),
    trail: str | None = TrailOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Erase an event's payload; a receipt in the log accounts for it and the tree still verifies."""
    with open_trail(trail) as t:
        store = signing_store(t, "erasing")
    try:
        result = erase(store, event, reason=reason)
    finally:
        store.close()
    if as_json:
        emit_json(_builtins(result))
        return
    console.print(
        f"[green]erased[/] entry {result.target_index} ({result.target_kind} {result.target_id}); "
        f"receipt at entry {result.receipt_index} ({result.receipt_id})",
        highlight=False,
    )


# -- prove / verify-bundle ----------------------------------------------------------------


@guarded
def prove_command(
    node: str = typer.Argument(
        ...,
        help="run:ID, artifact:ID (or a bare blake3:… id), dataset:NS:NAME, job:NS:NAME, or one entry as event:INDEX or event:ID.",
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Write the bundle here (default: print it)."
    ),
    trail: str | None = TrailOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Write a proof bundle: NODE's events with inclusion proofs against the latest signed checkpoint."""
    with open_trail(trail) as t:
        bundle = prove(t.store, node, verifier=_key(t, None))
    if out is None:
        emit_json(_builtins(bundle))
        return
    write_bundle(bundle, out)
    if as_json:
        emit_json(
            {
                "out": str(out),
                "node": bundle.node,
                "events": len(bundle.events),
                "tree_size": bundle.tree_size,
                "root": bundle.root,
            }
        )
        return
    console.print(
        f"wrote {out}: {len(bundle.events)} events of {escape(bundle.node)}, "
        f"proven against the checkpoint at size {bundle.tree_size:,}",
        highlight=False,
    )


@guarded
def verify_bundle_command(
    bundle: Path = typer.Argument(..., help="The bundle file from `datatrail prove`."),
    key: str = typer.Option(
        ..., "--key", help="The log's verifier key: a key file or the key text."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Check a proof bundle offline, with nothing but the log's public key."""
    report = verify_bundle(read_bundle(bundle), key)
    if as_json:
        emit_json(report.to_dict())
    elif report.ok:
        erased = f" ({len(report.erased)} erased, their receipts checked)" if report.erased else ""
        console.print(
            f"[green]✓ bundle verified[/]: {report.events} events of {escape(report.node)}{erased} "
            f"are in the log {escape(report.origin)} at size {report.tree_size:,}, root {report.root}",
            highlight=False,
        )
    else:
        console.print(f"[red]✗ bundle does not verify[/]: {len(report.failures)} check(s) failed")
        for failure in report.failures:
            where = f"event {failure.index}" if failure.index is not None else "bundle"
            console.print(
                f"  {where}: {failure.check} — {escape(failure.message)}", highlight=False
            )
    if not report.ok:
        raise typer.Exit(EXIT_CHECK_FAILED)


# -- checkpoint / consistency / key ----------------------------------------------------------


@guarded
def checkpoint_command(trail: str | None = TrailOpt, as_json: bool = JsonOpt) -> None:
    """Print the latest signed checkpoint; keep it to check the log against later."""
    with open_trail(trail) as t:
        latest = t.store.latest_checkpoint()
        origin = t.store.meta().get("origin", "")
        verifier = _key(t, None)
    if latest is None:
        raise StoreError("the trail has no checkpoint yet; record something first")
    signed = False
    if verifier is not None:
        try:
            signed = open_checkpoint(latest.note, verifier).size == latest.size
        except DatatrailError:
            signed = False
    if as_json:
        emit_json(
            {
                "size": latest.size,
                "root": bytes(latest.root).hex(),
                "origin": origin,
                "ts": latest.ts,
                "signed": signed,
                "note": latest.note,
            }
        )
        return
    typer.echo(latest.note, nl=False)
    if not signed:
        err_console.print(
            "[yellow]warning:[/] this checkpoint does not verify with the trail's key"
        )


@guarded
def consistency_command(
    old: Path = typer.Argument(..., help="A checkpoint note you kept from `datatrail checkpoint`."),
    trail: str | None = TrailOpt,
    key: str | None = KeyOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Prove the log today extends a checkpoint you kept earlier."""
    with open_trail(trail) as t:
        report = consistency(t.store, old, verifier=_key(t, key))
    if as_json:
        emit_json(report.to_dict())
    else:
        mark = "[green]✓ consistent[/]" if report.ok else "[red]✗ not consistent[/]"
        console.print(f"{mark}: {escape(report.detail)}", highlight=False)
        console.print(f"  old  size {report.old_size:,}  root {report.old_root or '-'}")
        console.print(f"  new  size {report.new_size:,}  root {report.new_root}")
        if report.proof:
            console.print("  proof")
            for h in report.proof:
                console.print(f"    {h}")
    if not report.ok:
        raise typer.Exit(EXIT_CHECK_FAILED)


@guarded
def key_show_command(trail: str | None = TrailOpt, as_json: bool = JsonOpt) -> None:
    """Print the trail's verifier (public) key; give it to auditors out of band."""
    with open_trail(trail) as t:
        home = _home(t)
    verifier = load_verifier(home.verifier_key)
    if as_json:
        emit_json(
            {
                "key": verifier.text,
                "name": verifier.name,
                "key_id": f"{verifier.key_id:08x}",
                "file": str(home.verifier_key),
            }
        )
    else:
        typer.echo(verifier.text)


def register(app: typer.Typer) -> None:
    """Add the audit commands to the CLI."""
    app.command("verify")(verify_command)
    app.command("erase")(erase_command)
    app.command("prove")(prove_command)
    app.command("verify-bundle")(verify_bundle_command)
    app.command("checkpoint")(checkpoint_command)
    app.command("consistency")(consistency_command)
    key_app = typer.Typer(help="The trail's keys.", no_args_is_help=True)
    key_app.command("show")(key_show_command)
    app.add_typer(key_app, name="key")
