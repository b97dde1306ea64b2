"""Governance commands: policy (validate, apply, approve, reject, log, show, diff, rollback,
explain, simulate), classify, why-classified and access-log.

Each command parses, calls one function of :mod:`datatrail.governance` and renders
the result; ``--json`` prints the same value for machines. Policy-changing
commands act as ``--principal`` (default ``$DATATRAIL_PRINCIPAL`` or the OS user),
whose policy-admin rights are checked against the active version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from datatrail.cli._common import (
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

policy_app = typer.Typer(
    name="policy",
    help="Policy versions: validate, apply, approve, log, show, diff, rollback, explain, simulate.",
    no_args_is_help=True,
)

PrincipalOpt = typer.Option(
    None,
    "--principal",
    help="Who is acting. Default: $DATATRAIL_PRINCIPAL or the OS user.",
)
ReasonOpt = typer.Option(..., "--reason", help="Why (recorded with the change).")


def _principal(value: str | None) -> str:
    from datatrail.governance import principal_name

    return value or principal_name()


def _load(file: Path) -> Any:
    from datatrail.governance import load_policy

    return load_policy(file)


# -- validate / apply / approve / reject / rollback ---------------------------------------


@guarded
def validate_command(
    file: Path = typer.Argument(..., help="Policy file or folder."), as_json: bool = JsonOpt
) -> None:
    """Check a policy document strictly; errors name file, line and column."""
    from datatrail.errors import PolicyError

    try:
        policy = _load(file)
    except PolicyError as exc:
        if as_json:
            emit_json(
                {
                    "ok": False,
                    "error": str(exc),
                    "file": exc.file,
                    "line": exc.line,
                    "column": exc.column,
                    "path": exc.path,
                }
            )
            raise typer.Exit(2) from None
        raise
    summary = {
        "ok": True,
        "hash": policy.hash,
        "classifications": len(policy.classifications),
        "datasets": len(policy.datasets),
        "roles": len(policy.roles),
        "principals": len(policy.principals),
        "access": len(policy.access),
        "limits": len(policy.limits),
        "retention": len(policy.retention),
        "approvals": policy.approvals,
    }
    if as_json:
        emit_json(summary)
        return
    counts = ", ".join(
        f"{v} {k}"
        for k, v in summary.items()
        if isinstance(v, int) and not isinstance(v, bool) and k != "approvals"
    )
    console.print(f"[green]✓ valid policy[/] {escape(str(file))}: {counts}")
    console.print(f"  hash {policy.hash}")


def _print_result(result: Any, as_json: bool) -> None:
    if as_json:
        emit_json(result.to_dict())
        return
    colour = {"active": "green", "proposed": "yellow", "shadow": "cyan", "rejected": "red"}.get(
        result.status, "white"
    )
    console.print(f"[{colour}]{escape(result.message)}[/]")
    console.print(f"  hash {result.hash}")


@guarded
def apply_command(
    file: Path = typer.Argument(..., help="Policy file or folder."),
    reason: str = ReasonOpt,
    shadow: bool = typer.Option(
        False, "--shadow", help="Evaluate beside the active version; enforce nothing."
    ),
    principal: str | None = PrincipalOpt,
    trail: str | None = TrailOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Record a new policy version (active at once, or proposed when approvals are needed)."""
    from datatrail.governance import active_policy, apply_policy
    from datatrail.governance._notify import notify_policy_change

    policy = _load(file)
    with open_trail(trail) as t:
        store = signing_store(t, "changing the policy")
        try:
            before = active_policy(store)
            result = apply_policy(
                store, policy, principal=_principal(principal), reason=reason, shadow=shadow
            )
            if result.status == "active" and not result.unchanged:
                notify_policy_change(
                    store, before.policy if before else None, policy, result.version
                )
        finally:
            store.close()
    _print_result(result, as_json)


@guarded
def approve_command(
    version: int = typer.Argument(..., help="The proposed version."),
    reason: str = typer.Option("", "--reason", help="Why (recorded)."),
    principal: str | None = PrincipalOpt,
    trail: str | None = TrailOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Approve a proposed version (not your own); the last needed approval activates it."""
    from datatrail.governance import active_policy, approve_policy, policy_version
    from datatrail.governance._notify import notify_policy_change

    with open_trail(trail) as t:
        store = signing_store(t, "changing the policy")
        try:
            before = active_policy(store)
            result = approve_policy(store, version, principal=_principal(principal), reason=reason)
            if result.status == "active":
                notify_policy_change(
                    store,
                    before.policy if before else None,
                    policy_version(store, version).policy,
                    version,
                )
        finally:
            store.close()
    _print_result(result, as_json)


@guarded
def reject_command(
    version: int = typer.Argument(..., help="The proposed or shadow version."),
    reason: str = ReasonOpt,
    principal: str | None = PrincipalOpt,
    trail: str | None = TrailOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Reject a proposed version (or stop a shadow candidate)."""
    from datatrail.governance import reject_policy

    with open_trail(trail) as t:
        store = signing_store(t, "changing the policy")
        try:
            result = reject_policy(store, version, principal=_principal(principal), reason=reason)
        finally:
            store.close()
    _print_result(result, as_json)


@guarded
def rollback_command(
    version: int = typer.Argument(..., help="The earlier version whose document becomes active."),
    reason: str = ReasonOpt,
    principal: str | None = PrincipalOpt,
    trail: str | None = TrailOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Make an earlier version's document active again (recorded as a new version)."""
    from datatrail.governance import rollback_policy

    with open_trail(trail) as t:
        store = signing_store(t, "changing the policy")
        try:
            result = rollback_policy(store, version, principal=_principal(principal), reason=reason)
        finally:
            store.close()
    _print_result(result, as_json)


# -- log / show / diff / explain ------------------------------------------------------------


@guarded
def log_command(trail: str | None = TrailOpt, as_json: bool = JsonOpt) -> None:
    """Every policy version: status, author, approvals, reason."""
    from datatrail.governance import policy_history

    with open_trail(trail) as t:
        history = policy_history(t.store)
    if as_json:
        emit_json(
            [
                {k: v for k, v in h.to_dict().items() if k not in ("content", "explain")}
                for h in history
            ]
        )
        return
    if not history:
        console.print("no policy versions yet; `datatrail policy apply FILE --reason TEXT`")
        return
    table = Table("version", "status", "ts", "author", "approvals", "reason", "hash")
    for h in history:
        table.add_row(
            str(h.version),
            h.status + (f" (of v{h.rolled_back_to})" if h.rolled_back_to else ""),
            h.ts,
            escape(h.author),
            f"{len(h.approvals)}/{max(h.approvals_needed, 1)}",
            escape(h.reason),
            h.policy.hash[:12],
        )
    console.print(table)


@guarded
def show_command(
    version: int | None = typer.Argument(None, help="Version (default: the active one)."),
    trail: str | None = TrailOpt,
    as_json: bool = JsonOpt,
) -> None:
    """A version's document as recorded."""
    from datatrail.governance import policy_version

    with open_trail(trail) as t:
        entry = policy_version(t.store, version)
    if as_json:
        emit_json(entry.to_dict())
        return
    console.print(
        f"[bold]policy v{entry.version}[/] ({entry.status}) by {escape(entry.author)} at {entry.ts}: "
        f"{escape(entry.reason)}"
    )
    console.print(escape(entry.policy.text), highlight=False, markup=False)


@guarded
def diff_command(
    old: int = typer.Argument(..., help="Older version."),
    new: int = typer.Argument(..., help="Newer version."),
    trail: str | None = TrailOpt,
    as_json: bool = JsonOpt,
) -> None:
    """A unified diff of two versions' documents."""
    from datatrail.governance import diff_versions

    with open_trail(trail) as t:
        text = diff_versions(t.store, old, new)
    if as_json:
        emit_json({"old": old, "new": new, "diff": text})
        return
    console.print(escape(text) or "the documents are the same", highlight=False, markup=False)


@guarded
def explain_command(
    version: int | None = typer.Argument(None, help="Version (default: the active one)."),
    file: Path | None = typer.Option(
        None, "--file", help="Explain a document instead of a version."
    ),
    trail: str | None = TrailOpt,
    as_json: bool = JsonOpt,
) -> None:
    """The policy as plain sentences, grouped by dataset and role."""
    from datatrail.governance import explain_policy, policy_version

    if file is not None:
        text, number = explain_policy(_load(file)), None
    else:
        with open_trail(trail) as t:
            entry = policy_version(t.store, version)
        text, number = entry.explain or explain_policy(entry.policy), entry.version
    if as_json:
        emit_json({"version": number, "explain": text})
        return
    console.print(text, highlight=False, markup=False)


@guarded
def simulate_command(
    file: Path = typer.Argument(..., help="Candidate policy file or folder."),
    since: str = typer.Option("30d", "--since", help="Replay access since (ISO time or 30d, 12h)."),
    trail: str | None = TrailOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Replay recorded access decisions under a candidate; report what would change, for whom."""
    from datatrail.governance import simulate

    candidate = _load(file)
    with open_trail(trail) as t:
        report = simulate(t.store, candidate, since=since)
    if as_json:
        emit_json(report.to_dict())
        return
    console.print(
        f"replayed {report.replayed} decisions since {report.since}: {report.changed} would change "
        f"({report.newly_denied} newly denied, {report.newly_allowed} newly allowed, "
        f"{report.masks_changed} with other masks)"
    )
    if report.changes:
        table = Table(
            "index", "principal", "action", "resource", "purpose", "before", "after", "rules"
        )
        for c in report.changes[:200]:
            table.add_row(
                str(c.index),
                escape(c.principal),
                c.action,
                escape(c.resource),
                escape(c.purpose or "-"),
                c.before,
                c.after,
                escape(", ".join(c.rules)),
            )
        console.print(table)


# -- classify / why-classified / access-log ------------------------------------------------


@guarded
def classify_command(
    dataset: str = typer.Argument(..., help="Dataset node id (dataset:NS:NAME)."),
    label: str = typer.Argument(..., help="A classification the active policy declares."),
    reason: str = ReasonOpt,
    principal: str | None = PrincipalOpt,
    trail: str | None = TrailOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Record that a dataset carries a classification label."""
    from datatrail.governance import classify

    who = _principal(principal)
    with open_trail(trail) as t:
        store = signing_store(t, "changing the policy")
        try:
            index = classify(store, dataset, label, reason=reason, by=who)
        finally:
            store.close()
    if as_json:
        emit_json({"dataset": dataset, "label": label, "reason": reason, "by": who, "index": index})
        return
    console.print(f"[green]✓[/] {escape(dataset)} is classified {escape(label)} (entry {index})")


@guarded
def why_classified_command(
    node: str = typer.Argument(..., help="Dataset, artifact or run node id."),
    trail: str | None = TrailOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Each label a node carries and the lineage path that brought it."""
    from datatrail.governance import classifications_of

    with open_trail(trail) as t:
        labels = classifications_of(t, node)
    if as_json:
        emit_json({"node": node, "labels": labels})
        return
    if not labels:
        console.print(f"{escape(node)} carries no classification")
        return
    for label, path in labels.items():
        console.print(f"[bold]{escape(label)}[/]")
        for step in path:
            console.print(f"  ← {escape(step)}" if step != path[0] else f"  {escape(step)}")


@guarded
def access_log_command(
    principal: str | None = typer.Option(None, "--principal", help="Only this principal."),
    since: str | None = typer.Option(None, "--since", help="Only since (ISO time or 30d, 12h)."),
    outcome: str | None = typer.Option(None, "--outcome", help="allow or deny."),
    limit: int = typer.Option(200, "--limit", help="At most this many, newest first."),
    trail: str | None = TrailOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Every governed access attempt: who, what, purpose, decision, rules, version, volume."""
    from datatrail.model import from_json, parse_ts

    if outcome not in (None, "allow", "deny"):
        raise fail(f"--outcome must be allow or deny, not {outcome!r}")
    if limit < 1:
        raise fail(f"--limit must be at least 1, not {limit}")
    clauses, params = ["topic = ?"], ["access"]
    if since:
        clauses.append("ts >= ?")
        params.append(parse_ts(since))
    if principal:
        clauses.append("data LIKE ?")
        params.append(f'%"{principal}"%')
    with open_trail(trail) as t:
        rows = t.store.query(
            f"SELECT idx, ts, subject, data FROM records WHERE {' AND '.join(clauses)} ORDER BY idx DESC",
            params,
        )
    entries = []
    for idx, ts, subject, text in rows:
        data = from_json(text)
        if principal and data.get("principal") != principal:
            continue
        if outcome and data.get("outcome") != outcome:
            continue
        entries.append({"index": idx, "ts": ts, "node": subject, **data})
        if len(entries) >= limit:
            break
    if as_json:
        emit_json(entries)
        return
    if not entries:
        console.print("no access recorded")
        return
    table = Table(
        "index",
        "ts",
        "principal",
        "action",
        "node",
        "purpose",
        "outcome",
        "rules",
        "v",
        "rows",
        "masked",
    )
    for e in entries:
        table.add_row(
            str(e["index"]),
            str(e["ts"]),
            escape(str(e.get("principal"))),
            str(e.get("action")),
            escape(str(e["node"])),
            escape(str(e.get("purpose") or "-")),
            "[green]allow[/]" if e.get("outcome") == "allow" else "[red]deny[/]",
            escape(", ".join(e.get("rules") or [])),
            str(e.get("policy_version")),
            "-" if e.get("rows") is None else str(e["rows"]),
            escape(", ".join(e.get("masked") or [])),
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the policy group and the classification and access commands."""
    policy_app.command("validate")(validate_command)
    policy_app.command("apply")(apply_command)
    policy_app.command("approve")(approve_command)
    policy_app.command("reject")(reject_command)
    policy_app.command("rollback")(rollback_command)
    policy_app.command("log")(log_command)
    policy_app.command("show")(show_command)
    policy_app.command("diff")(diff_command)
    policy_app.command("explain")(explain_command)
    policy_app.command("simulate")(simulate_command)
    app.add_typer(policy_app)
    app.command("classify")(classify_command)
    app.command("why-classified")(why_classified_command)
    app.command("access-log")(access_log_command)
