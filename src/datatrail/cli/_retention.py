"""Retention commands: ``retention plan|apply|review|event|purged``, ``hold``, ``erase-data``, ``report``.

Each command opens the trail (with its signing key when it appends), calls one
function of :mod:`datatrail.retention`, and renders the result: rich tables for
people, ``--json`` for machines. Exit codes: 0 done, 1 the ledger check of a
report failed, 2 bad input or a refusal (a hold or a compliance keep).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
from datatrail.lineage import Trail

__all__ = ["register"]

PolicyOpt = typer.Option(
    None,
    "--policy",
    help="Plan under this policy file instead of the active version (a preview; nothing recorded).",
)
NowOpt = typer.Option(None, "--now", help="Plan as of another time (ISO 8601 or 30d ago).")
ByOpt = typer.Option(
    None, "--principal", help="Who acts. Default: $DATATRAIL_PRINCIPAL or the OS user."
)
ConnectOpt = typer.Option(
    None,
    "--connect",
    help="NAMESPACE=URL for a database the datasets live in, e.g. "
    "'postgres://db:5432=postgresql://admin@db:5432/shop' (repeatable).",
)
ArchiveOpt = typer.Option(
    None, "--archive-dir", help="Where archived files go. Default: the trail's archive/ folder."
)

_STATUS_COLOR = {
    "due": "red",
    "review": "yellow",
    "held": "magenta",
    "kept": "cyan",
    "retained": "green",
    "waiting": "blue",
    "purged": "dim",
    "unmatched": "dim",
}


def _policy(path: Path | None) -> tuple[Any, int | None]:
    if path is None:
        return None, None
    from datatrail.governance import load_policy

    return load_policy(path), None


def _adapters(t: Trail, connect: list[str] | None, archive: Path | None) -> Any:
    from datatrail.retention import AdapterContext

    connections: dict[str, str] = {}
    for pair in connect or []:
        namespace, sep, url = pair.rpartition("=")
        if not sep or not namespace or not url:
            raise fail(f"--connect {pair!r}: expected NAMESPACE=URL")
        connections[namespace] = url
    folder = archive or (t.home.path / "archive" if t.home is not None else None)
    return AdapterContext(connections=connections, archive_dir=folder)


def _short(artifact: str) -> str:
    return artifact[:19] + "…" if len(artifact) > 20 else artifact


def _items_table(title: str, items: list[Any]) -> Table:
    table = Table(title=title)
    for col in ("status", "artifact", "dataset", "action", "rule", "due", "keep until", "reason"):
        table.add_column(col, overflow="fold")
    for d in items:
        color = _STATUS_COLOR.get(d.status, "white")
        table.add_row(
            f"[{color}]{d.status}[/]",
            _short(d.artifact),
            escape(d.dataset),
            d.action or "",
            escape(d.delete_rule or ""),
            d.delete_due or "",
            d.keep_until or "",
            escape(d.reason),
        )
    return table


# -- retention ---------------------------------------------------------------------------


@guarded
def plan_command(
    trail: str | None = TrailOpt,
    policy: Path | None = PolicyOpt,
    now: str | None = NowOpt,
    all_items: bool = typer.Option(
        False, "--all", help="List every artifact, not only actionable ones."
    ),
    artifact: str | None = typer.Option(None, "--artifact", help="Only this artifact (blake3:…)."),
    as_json: bool = JsonOpt,
) -> None:
    """What retention would delete, archive, anonymise or send for review now, and why."""
    from datatrail.retention import plan

    doc, version = _policy(policy)
    with open_trail(trail) as t:
        result = plan(
            t.store, policy=doc, version=version, now=now, everything=all_items, artifact=artifact
        )
    if as_json:
        emit_json(result.to_dict())
        return
    counts = ", ".join(f"{k} {v}" for k, v in result.counts.items()) or "no artifacts of datasets"
    version_text = f"v{result.policy_version}" if result.policy_version else "none active"
    console.print(f"retention plan as of {result.now} (policy {version_text}): {counts}")
    if result.items:
        console.print(_items_table(f"{len(result.items)} items", result.items))


@guarded
def apply_command(
    trail: str | None = TrailOpt,
    policy: Path | None = PolicyOpt,
    now: str | None = NowOpt,
    by: str | None = ByOpt,
    connect: list[str] | None = ConnectOpt,
    archive_dir: Path | None = ArchiveOpt,
    payloads: str = typer.Option(
        "values",
        "--erase-payloads",
        help="Provenance payloads of purged classified artifacts to erase: values, all or none.",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only show what would be done."),
    as_json: bool = JsonOpt,
) -> None:
    """Carry out the plan: notify owners, delete or archive, write receipts, erase payloads."""
    from datatrail.retention import apply

    if payloads not in ("values", "all", "none"):
        raise fail(f"--erase-payloads {payloads!r}: use values, all or none")
    doc, version = _policy(policy)
    with open_trail(trail) as t:
        store = signing_store(t, "recording")
        try:
            result = apply(
                store,
                policy=doc,
                version=version,
                now=now,
                by=by,
                adapters=_adapters(t, connect, archive_dir),
                payloads=payloads,  # type: ignore[arg-type]
                dry_run=dry_run,
            )
        finally:
            store.close()
    if as_json:
        emit_json(result.to_dict())
    else:
        verb = "would apply" if result.dry_run else "applied"
        console.print(
            f"{verb} {len(result.applied)}, queued for review {len(result.queued)}, "
            f"failed {len(result.failed)}, notifications {result.notifications}"
        )
        for item in result.applied:
            console.print(
                f"  {item.action:<9} {_short(item.artifact)} {escape(item.dataset)} "
                f"[{item.storage}] receipt {item.receipt_index if item.receipt_index is not None else '-'}"
            )
        for item in result.failed:
            console.print(f"  [red]failed[/] {escape(item.dataset)}: {escape(item.error or '')}")
    if result.failed:
        raise typer.Exit(EXIT_CHECK_FAILED)


@guarded
def review_command(
    ctx: typer.Context,
    trail: str | None = TrailOpt,
    now: str | None = NowOpt,
    as_json: bool = JsonOpt,
) -> None:
    """The disposition queue: items whose rule says review, awaiting a decision."""
    if ctx.invoked_subcommand is not None:
        return
    from datatrail.retention import review_queue

    with open_trail(trail) as t:
        queue = review_queue(t.store, now=now)
    if as_json:
        emit_json([d.to_dict() for d in queue])
        return
    if not queue:
        console.print("the review queue is empty")
        return
    console.print(_items_table(f"{len(queue)} awaiting review", queue))


def _decide(
    decision: str,
    artifact: str,
    trail: str | None,
    reason: str | None,
    dataset: str | None,
    until: str | None,
    period: str | None,
    by: str | None,
    as_json: bool,
) -> None:
    from datatrail.governance import parse_duration
    from datatrail.retention import decide_review

    with open_trail(trail) as t:
        store = signing_store(t, "recording")
        try:
            record = decide_review(
                store,
                artifact,
                decision=decision,  # type: ignore[arg-type]
                reason=reason or "",
                dataset=dataset,
                until=until,
                extend_by=parse_duration(period) if period else None,
                by=by,
            )
        finally:
            store.close()
    if as_json:
        emit_json(record.to_dict())
        return
    extra = f" until {record.until}" if record.until else ""
    console.print(
        f"{record.decision} recorded for {_short(record.artifact)} in {escape(record.dataset)}"
        f"{extra} (entry {record.index})"
    )


ReasonOpt = typer.Option(None, "--reason", help="Why (recorded with the decision).")
DatasetOpt = typer.Option(None, "--dataset", help="The dataset, if the artifact is in several.")


@guarded
def approve_command(
    artifact: str = typer.Argument(..., help="The artifact awaiting review (blake3:…)."),
    reason: str | None = ReasonOpt,
    dataset: str | None = DatasetOpt,
    trail: str | None = TrailOpt,
    by: str | None = ByOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Approve deletion of a queued item (the next `retention apply` deletes it)."""
    _decide("approve", artifact, trail, reason, dataset, None, None, by, as_json)


@guarded
def extend_command(
    artifact: str = typer.Argument(..., help="The artifact awaiting review (blake3:…)."),
    reason: str | None = ReasonOpt,
    until: str | None = typer.Option(None, "--until", help="Keep until this time."),
    period: str | None = typer.Option(None, "--for", help="Keep for this long from now (90d)."),
    dataset: str | None = DatasetOpt,
    trail: str | None = TrailOpt,
    by: str | None = ByOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Extend the keep of a queued item, with a reason."""
    _decide("extend", artifact, trail, reason, dataset, until, period, by, as_json)


@guarded
def event_command(
    name: str = typer.Argument(..., help="The event, e.g. account_closed."),
    node: str = typer.Argument(..., help="The node it happened to (dataset:…, artifact:…)."),
    at: str | None = typer.Option(None, "--at", help="When it happened. Default: now."),
    trail: str | None = TrailOpt,
    by: str | None = ByOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Record a named clock event that starts rules with `clock: event:NAME`."""
    from datatrail.retention import record_event

    with open_trail(trail) as t:
        store = signing_store(t, "recording")
        try:
            index = record_event(store, name, node, at=at, by=by)
        finally:
            store.close()
    if as_json:
        emit_json({"event": name, "node": node, "index": index})
        return
    console.print(f"event {escape(name)} recorded for {escape(node)} (entry {index})")


@guarded
def purged_command(
    artifact: str | None = typer.Argument(None, help="Only this artifact (blake3:…)."),
    trail: str | None = TrailOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Purge receipts: what was deleted, by which rule and version, when and by whom."""
    from datatrail.retention import purge_receipts

    with open_trail(trail) as t:
        receipts = purge_receipts(t.store, artifact)
    if as_json:
        import msgspec

        emit_json([msgspec.to_builtins(r) for r in receipts])
        return
    table = Table(title=f"{len(receipts)} purge receipts")
    for col in (
        "entry",
        "artifact",
        "dataset",
        "action",
        "rule",
        "version",
        "storage",
        "by",
        "time",
    ):
        table.add_column(col, overflow="fold")
    for r in receipts:
        table.add_row(
            str(r.index),
            _short(r.artifact),
            escape(r.dataset or "(in memory)"),
            r.action,
            escape(r.rule or ""),
            str(r.policy_version or ""),
            r.storage,
            escape(r.by),
            r.ts,
        )
    console.print(table)


# -- holds ---------------------------------------------------------------------------------


def _hold_dict(h: Any) -> dict[str, Any]:
    import msgspec

    data: dict[str, Any] = msgspec.to_builtins(h)
    data["active"] = h.active
    return data


CaseOpt = typer.Option(None, "--case", help="The case id, e.g. LEGAL-2026-014.")


@guarded
def hold_add_command(
    node: str = typer.Argument(..., help="A dataset, artifact or run node id."),
    case: str | None = CaseOpt,
    reason: str | None = ReasonOpt,
    trail: str | None = TrailOpt,
    by: str | None = ByOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Place a legal hold: nothing it covers is deleted, archived or erased until released."""
    from datatrail.retention import add_hold

    with open_trail(trail) as t:
        store = signing_store(t, "recording")
        try:
            hold = add_hold(store, node, case=case or "", reason=reason or "", by=by)
        finally:
            store.close()
    if as_json:
        emit_json(_hold_dict(hold))
        return
    console.print(f"hold for case {escape(hold.case)} on {escape(hold.node)} (entry {hold.index})")


@guarded
def hold_release_command(
    node: str = typer.Argument(..., help="The held node id."),
    case: str | None = CaseOpt,
    reason: str | None = ReasonOpt,
    trail: str | None = TrailOpt,
    by: str | None = ByOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Release a legal hold (with a reason)."""
    from datatrail.retention import release_hold

    with open_trail(trail) as t:
        store = signing_store(t, "recording")
        try:
            hold = release_hold(store, node, case=case or "", reason=reason or "", by=by)
        finally:
            store.close()
    if as_json:
        emit_json(_hold_dict(hold))
        return
    console.print(f"released the hold for case {escape(hold.case)} on {escape(hold.node)}")


@guarded
def hold_list_command(
    trail: str | None = TrailOpt,
    include_released: bool = typer.Option(False, "--all", help="Also list released holds."),
    as_json: bool = JsonOpt,
) -> None:
    """Legal holds in force (or all of them)."""
    from datatrail.retention import list_holds

    with open_trail(trail) as t:
        holds = list_holds(t.store, include_released=include_released)
    if as_json:
        emit_json([_hold_dict(h) for h in holds])
        return
    table = Table(title=f"{len(holds)} holds")
    for col in ("node", "case", "reason", "by", "since", "released"):
        table.add_column(col, overflow="fold")
    for h in holds:
        table.add_row(
            escape(h.node),
            escape(h.case),
            escape(h.reason),
            escape(h.by),
            h.since,
            h.released or "",
        )
    console.print(table)


# -- erase-data ----------------------------------------------------------------------------


@guarded
def erase_data_command(
    node: str = typer.Argument(..., help="The dataset, artifact or run whose data to erase."),
    cascade: bool = typer.Option(
        False, "--cascade", help="Also erase everything downstream that carries the data."
    ),
    reason: str | None = ReasonOpt,
    dry_run: bool = typer.Option(False, "--dry-run", help="Only show the closure."),
    forget_lineage: bool = typer.Option(
        False, "--forget-lineage", help="Erase every io event of the closure, not only values."
    ),
    out: Path | None = typer.Option(None, "--out", help="Also write the certificate to this file."),
    trail: str | None = TrailOpt,
    by: str | None = ByOpt,
    connect: list[str] | None = ConnectOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Delete a node's data (and with --cascade its downstream closure); print the signed certificate."""
    from datatrail.retention import erase_data, plan_erasure

    with open_trail(trail) as t:
        if dry_run:
            planned = plan_erasure(t.store, node, cascade=cascade)
            if as_json:
                emit_json(planned.to_dict())
                return
            console.print(
                f"erase-data {escape(planned.node)} would erase {len(planned.items)} items"
            )
            for i in planned.items:
                flag = (
                    f"[magenta]held {', '.join(i.held)}[/]"
                    if i.held
                    else (f"[red]locked by {escape(i.locked_by)}[/]" if i.locked_by else "")
                )
                console.print(f"  {_short(i.artifact)} {escape(i.dataset or '(in memory)')} {flag}")
            return
        store = signing_store(t, "recording")
        try:
            assert t.home is not None
            signer = t.home.signer()
            assert signer is not None
            report = erase_data(
                store,
                node,
                signer=signer,
                reason=reason or "",
                cascade=cascade,
                by=by,
                adapters=_adapters(t, connect, None),
                forget_lineage=forget_lineage,
            )
        finally:
            store.close()
    if out is not None:
        out.write_text(report.certificate, encoding="utf-8")
    if as_json:
        emit_json(report.to_dict())
        return
    body = report.body
    console.print(
        f"erased {len(body['artifacts'])} artifacts of {escape(body['node'])}; "
        f"certificate {body['id']} at entry {report.index}"
    )
    for a in body["artifacts"]:
        console.print(
            f"  {_short(a['artifact'])} {escape(a['dataset'] or '(in memory)')} [{a['storage']}] "
            f"ledger {a['ledger_index']} receipt {a['receipt_index']}"
        )
    if out is None:
        console.print(escape(report.certificate), highlight=False)


# -- report --------------------------------------------------------------------------------


@guarded
def compliance_command(
    trail: str | None = TrailOpt,
    as_json: bool = JsonOpt,
    as_html: bool = typer.Option(False, "--html", help="Print (or with --out write) an HTML page."),
    out: Path | None = typer.Option(None, "--out", help="Write the report to this file."),
    skip_verify: bool = typer.Option(False, "--no-verify", help="Skip the full ledger check."),
) -> None:
    """Artifacts by classification, overdue deletions, holds, policy changes, denials, alerts, ledger."""
    import json

    from datatrail.ledger import load_verifier
    from datatrail.retention import compliance_report, render_html

    if as_json and as_html:
        raise fail("choose one of --json and --html")
    with open_trail(trail) as t:
        verifier = None
        if t.home is not None and t.home.verifier_key.exists():
            verifier = load_verifier(t.home.verifier_key)
        report = compliance_report(t.store, verifier=verifier, check_ledger=not skip_verify)
    if as_html:
        text = render_html(report)
    elif as_json:
        text = json.dumps(report.to_dict(), indent=2, default=str) + "\n"
    else:
        text = ""
    if out is not None and text:
        out.write_text(text, encoding="utf-8")
    elif text:
        typer.echo(text, nl=False)
    else:
        _print_report(report)
    if report.ledger.get("ok") is False:
        raise typer.Exit(EXIT_CHECK_FAILED)


def _print_report(r: Any) -> None:
    ledger = r.ledger
    ok = ledger.get("ok")
    state = "[green]verified[/]" if ok else ("not checked" if ok is None else "[red]FAILED[/]")
    console.print(f"[bold]Compliance report[/] {r.generated}, policy v{r.policy_version}")
    console.print(f"  ledger          {state}, {ledger.get('size')} entries")
    counts = ", ".join(f"{k} {v}" for k, v in r.artifacts.items()) or "none"
    console.print(f"  artifacts       {counts}")
    for label, info in r.classifications.items():
        console.print(
            f"  classified      {escape(label)}: {info['artifacts']} artifacts in {len(info['datasets'])} datasets"
        )
    for key, title in (
        ("overdue", "overdue"),
        ("review_queue", "review queue"),
        ("classification_changes", "labelled"),
        ("holds", "holds"),
        ("purges", "purges"),
        ("certificates", "certificates"),
        ("policy_changes", "policy changes"),
        ("denied_accesses", "denied reads"),
        ("alerts", "alerts"),
    ):
        console.print(f"  {title:<15} {r.totals[key]}")


def register(app: typer.Typer) -> None:
    """Add the retention, hold, erase-data and report commands to the CLI."""
    retention = typer.Typer(
        help="Retention: plan, apply, review, clock events.", no_args_is_help=True
    )
    retention.command("plan")(plan_command)
    retention.command("apply")(apply_command)
    review = typer.Typer(help="The disposition review queue.", invoke_without_command=True)
    review.callback()(review_command)
    review.command("approve")(approve_command)
    review.command("extend")(extend_command)
    retention.add_typer(review, name="review")
    retention.command("event")(event_command)
    retention.command("purged")(purged_command)
    app.add_typer(retention, name="retention")
    hold = typer.Typer(help="Legal holds.", no_args_is_help=True)
    hold.command("add")(hold_add_command)
    hold.command("release")(hold_release_command)
    hold.command("list")(hold_list_command)
    app.add_typer(hold, name="hold")
    app.command("erase-data")(erase_data_command)
    report = typer.Typer(help="Reports for auditors.", no_args_is_help=True)
    report.command("compliance")(compliance_command)
    app.add_typer(report, name="report")
