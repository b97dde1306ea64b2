"""Alert and coverage commands: alerts, alerts scan, alerts ack, coverage."""

from __future__ import annotations

import getpass

import typer
from rich.markup import escape
from rich.table import Table

from datatrail.cli._common import (
    EXIT_CHECK_FAILED,
    JsonOpt,
    TrailOpt,
    console,
    emit_json,
    guarded,
    open_trail,
    signing_store,
)

__all__ = ["register"]

alerts_app = typer.Typer(
    help="Alerts: lineage drift, anomalies and broken contracts.",
    invoke_without_command=True,
    no_args_is_help=False,
)

_SEVERITY = {"info": "cyan", "warning": "yellow", "critical": "red"}


@alerts_app.callback(invoke_without_command=True)
@guarded
def alerts_list(
    ctx: typer.Context,
    since: str | None = typer.Option(None, help="Raised at or after (ISO time, date, or 7d)."),
    kind: str | None = typer.Option(
        None, help="Only this kind: lineage_drift, anomaly, contract, ..."
    ),
    unacked: bool = typer.Option(False, "--unacked", help="Only alerts not acknowledged."),
    limit: int = typer.Option(100, help="At most this many alerts."),
    trail: str | None = TrailOpt,
    json: bool = JsonOpt,
) -> None:
    """List alerts, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    from datatrail.alerts import list_alerts

    with open_trail(trail) as t:
        found = list_alerts(t.store, since=since, kind=kind, unacked=unacked, limit=limit)
    if json:
        emit_json([a.to_dict() for a in found])
        return
    table = Table(title=f"{len(found)} alerts (newest first)")
    for col in ("alert id", "kind", "severity", "when", "subject", "message", "ack"):
        table.add_column(col, overflow="fold")
    for a in found:
        color = _SEVERITY.get(a.severity, "white")
        table.add_row(
            a.alert_id,
            a.kind,
            f"[{color}]{escape(a.severity)}[/]",
            a.ts,
            escape(a.subject or ""),
            escape(a.message),
            escape(str((a.ack or {}).get("by", ""))) if a.acked else "",
        )
    console.print(table)


@alerts_app.command("scan")
@guarded
def alerts_scan(
    since: str | None = typer.Option(
        None, help="Only raise alerts on runs started at or after this (baselines use all)."
    ),
    no_notify: bool = typer.Option(False, "--no-notify", help="Record, but do not notify."),
    trail: str | None = TrailOpt,
    json: bool = JsonOpt,
) -> None:
    """Detect lineage drift and anomalies; record each new alert once and notify it."""
    from datatrail.alerts import scan

    with open_trail(trail) as t:
        store = signing_store(t, "recording alerts")
        try:
            result = scan(store, since=since, notify=not no_notify)
        finally:
            store.close()
    if json:
        emit_json(result.to_dict())
        return
    console.print(
        f"scanned {result.runs} runs: {result.detections} detections, "
        f"{len(result.raised)} new alerts, {result.notified} notified"
    )
    for alert in result.raised:
        color = _SEVERITY.get(str(alert["severity"]), "white")
        console.print(f"  [{color}]{escape(str(alert['kind']))}[/] {escape(str(alert['message']))}")


@alerts_app.command("ack")
@guarded
def alerts_ack(
    alert_id: str = typer.Argument(..., help="The alert id (see `datatrail alerts`)."),
    note: str = typer.Option("", "--note", help="Why it is acknowledged."),
    by: str | None = typer.Option(None, "--by", help="Who acknowledges (default: OS user)."),
    trail: str | None = TrailOpt,
    json: bool = JsonOpt,
) -> None:
    """Acknowledge an alert (recorded as an alert.ack record)."""
    from datatrail.alerts import ack

    with open_trail(trail) as t:
        store = signing_store(t, "recording alerts")
        try:
            alert = ack(store, alert_id, by=by or getpass.getuser(), note=note)
        finally:
            store.close()
    if json:
        emit_json(alert.to_dict())
        return
    console.print(f"[green]acknowledged[/] {escape(alert.alert_id)}: {escape(alert.message)}")


@guarded
def coverage(
    target: str = typer.Argument(..., help="A module name (pkg.mod), a .py file or a folder."),
    json: bool = JsonOpt,
) -> None:
    """Functions that read or write data without recording lineage (exit 1 if any)."""
    from datatrail.coverage import analyze

    report = analyze(target)
    if json:
        emit_json(report.to_dict())
    else:
        table = Table(title=f"lineage coverage of {escape(target)}: {report.covered:.0%}")
        for col in ("status", "function", "where", "data calls"):
            table.add_column(col, overflow="fold")
        color = {"tracked": "green", "untracked": "red", "excused": "dim"}
        for f in report.functions:
            calls = ", ".join(f"{c.kind} {c.call}:{c.line}" for c in f.reads + f.writes)
            table.add_row(
                f"[{color[f.status]}]{f.status}[/]",
                escape(f.qualname),
                escape(f"{f.file}:{f.line}"),
                escape(calls),
            )
        console.print(table)
    if report.untracked:
        raise typer.Exit(EXIT_CHECK_FAILED)


def register(app: typer.Typer) -> None:
    """Add the alerts group and the coverage command."""
    app.add_typer(alerts_app, name="alerts")
    app.command("coverage")(coverage)
