"""The compliance report: what an auditor asks for, read from the log in one pass per topic.

Artifacts by classification, overdue deletions and the review queue, holds,
purges and deletion certificates, policy changes, denied accesses, alerts, and
the ledger's status (a full ``verify``). ``render_html`` renders the same value
as one self-contained page; ``--json`` prints it as is.
"""

from __future__ import annotations

import html
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec

from datatrail.ledger import Verifier
from datatrail.model import from_json, now_ts
from datatrail.retention._common import TOPIC_CERTIFICATE, to_datetime
from datatrail.retention._facts import all_holds, load_facts, purge_receipts
from datatrail.retention._plan import plan
from datatrail.retention._policy import load_context
from datatrail.store import Store

__all__ = ["ComplianceReport", "compliance_report", "render_html"]

_LIMIT = 200  # rows per section kept in the report; counts are always whole


class ComplianceReport(msgspec.Struct, frozen=True, kw_only=True):
    """Every section of the report, as plain JSON-able values."""

    generated: str
    policy_version: int | None
    artifacts: dict[str, int]
    """Counts of artifacts (of datasets) by retention status."""
    classifications: dict[str, dict[str, Any]]
    """Label -> {artifacts, datasets: [...]}."""
    classification_changes: list[dict[str, Any]]
    """``classification.set`` records: who labelled which dataset, and why."""
    overdue: list[dict[str, Any]]
    review_queue: list[dict[str, Any]]
    holds: list[dict[str, Any]]
    purges: list[dict[str, Any]]
    certificates: list[dict[str, Any]]
    policy_changes: list[dict[str, Any]]
    denied_accesses: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    ledger: dict[str, Any]
    totals: dict[str, int]
    """Whole counts of each listed section (lists are capped)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (the ``--json`` shape)."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data


def _days_between(earlier: str, later: str) -> float:
    return round((to_datetime(later) - to_datetime(earlier)).total_seconds() / 86400, 1)


def _records(store: Store, where: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    out = []
    for idx, topic, subject, ts, data, actor in store.query(
        f"SELECT idx, topic, subject, ts, data, actor FROM records WHERE {where} ORDER BY idx",
        params,
    ):
        body = from_json(data)
        out.append(
            {
                "index": int(idx),
                "topic": topic,
                "subject": subject,
                "ts": ts,
                "data": body if isinstance(body, dict) else {},
                "actor": from_json(actor) if actor else None,
            }
        )
    return out


def _ledger(store: Store, verifier: Verifier | None) -> dict[str, Any]:
    from datatrail.audit import verify
    from datatrail.errors import KeyFileError

    try:
        report = verify(store, verifier=verifier)
    except KeyFileError as exc:
        return {"ok": False, "size": store.size(), "error": str(exc)}
    cp = report.latest_checkpoint
    return {
        "ok": report.ok,
        "size": report.size,
        "root": report.root,
        "checkpoints": report.checkpoints,
        "latest_checkpoint": {"size": cp.size, "ts": cp.ts} if cp is not None else None,
        "erased_entries": len(report.erased),
        "faults": report.faults_total,
        "first_fault": report.first_fault.detail if report.first_fault is not None else None,
    }


def compliance_report(
    store: Store,
    *,
    verifier: Verifier | None = None,
    now: str | None = None,
    check_ledger: bool = True,
) -> ComplianceReport:
    """Gather the compliance report of ``store`` (``check_ledger`` runs a full verify)."""
    context = load_context(store)
    facts = load_facts(store)
    current = plan(store, now=now, everything=True, context=context, facts=facts)
    moment = current.now
    labels: dict[str, dict[str, Any]] = {}
    datasets_by_label: dict[str, set[str]] = {}
    counted: Counter[str] = Counter()
    for item in current.items:
        for label in item.labels:
            counted[label] += 1
            datasets_by_label.setdefault(label, set()).add(item.dataset)
    for label in sorted(counted):
        labels[label] = {
            "artifacts": counted[label],
            "datasets": sorted(datasets_by_label[label]),
        }
    overdue = [
        {
            "artifact": d.artifact,
            "dataset": d.dataset,
            "action": d.action,
            "rule": d.delete_rule,
            "due": d.delete_due,
            "overdue_days": _days_between(d.delete_due, moment) if d.delete_due else None,
            "reason": d.reason,
        }
        for d in current.items
        if d.status == "due"
    ]
    queue = [
        {"artifact": d.artifact, "dataset": d.dataset, "rule": d.delete_rule, "due": d.delete_due}
        for d in current.items
        if d.status == "review"
    ]
    holds = [msgspec.to_builtins(h) | {"active": h.active} for h in all_holds(store)]
    purges = [msgspec.to_builtins(r) for r in purge_receipts(store)]
    certificates = [
        {
            "index": r["index"],
            "node": r["subject"],
            "id": r["data"].get("id"),
            "artifacts": r["data"].get("artifacts"),
            "reason": r["data"].get("reason"),
            "by": r["data"].get("by"),
            "ts": r["ts"],
        }
        for r in _records(store, "topic = ?", (TOPIC_CERTIFICATE,))
    ]
    policy = [
        {
            "index": r["index"],
            "change": r["topic"].removeprefix("policy."),
            "version": r["data"].get("version"),
            "author": r["data"].get("author") or r["data"].get("by"),
            "reason": r["data"].get("reason"),
            "hash": r["data"].get("hash"),
            "ts": r["ts"],
        }
        for r in _records(
            store,
            "topic >= ? AND topic < ? AND topic != ?",
            ("policy.", "policy/", "policy.shadow"),
        )
    ]
    changes = [
        {
            "index": r["index"],
            "node": r["subject"],
            "label": r["data"].get("label"),
            "reason": r["data"].get("reason"),
            "by": r["data"].get("by"),
            "ts": r["ts"],
        }
        for r in _records(store, "topic = ?", ("classification.set",))
    ]
    denied = [
        {
            "index": r["index"],
            "node": r["subject"],
            "principal": r["data"].get("principal"),
            "action": r["data"].get("action"),
            "purpose": r["data"].get("purpose"),
            "rules": r["data"].get("rules"),
            "policy_version": r["data"].get("policy_version"),
            "reason": r["data"].get("reason"),
            "ts": r["ts"],
        }
        for r in _records(store, "topic = ?", ("access",))
        if r["data"].get("outcome") == "deny"
    ]
    acked = {
        str(r["data"].get("alert_id")): r["data"].get("by")
        for r in _records(store, "topic = ?", ("alert.ack",))
    }
    alerts = [
        {
            "index": r["index"],
            "node": r["subject"],
            "alert_id": r["data"].get("alert_id"),
            "kind": r["data"].get("kind"),
            "severity": r["data"].get("severity"),
            "message": r["data"].get("message"),
            "acked_by": acked.get(str(r["data"].get("alert_id"))),
            "ts": r["ts"],
        }
        for r in _records(store, "topic = ?", ("alert",))
    ]
    ledger = _ledger(store, verifier) if check_ledger else {"ok": None, "size": store.size()}
    sections: dict[str, list[dict[str, Any]]] = {
        "overdue": overdue,
        "review_queue": queue,
        "holds": holds,
        "purges": purges,
        "certificates": certificates,
        "classification_changes": changes,
        "policy_changes": policy,
        "denied_accesses": denied,
        "alerts": alerts,
    }
    return ComplianceReport(
        generated=now_ts(),
        policy_version=context.version,
        artifacts=current.counts,
        classifications=labels,
        ledger=ledger,
        totals={k: len(v) for k, v in sections.items()},
        overdue=overdue[:_LIMIT],
        review_queue=queue[:_LIMIT],
        holds=holds[-_LIMIT:],
        purges=purges[-_LIMIT:],
        certificates=certificates[-_LIMIT:],
        classification_changes=changes[-_LIMIT:],
        policy_changes=policy[-_LIMIT:],
        denied_accesses=denied[-_LIMIT:],
        alerts=alerts[-_LIMIT:],
    )


_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:80rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ccc}
table{border-collapse:collapse;width:100%;font-size:.85rem}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f4}.ok{color:#176b2c}.bad{color:#a11}.muted{color:#777}
"""


def _table(rows: list[dict[str, Any]], columns: list[str], total: int) -> str:
    if not rows:
        return '<p class="muted">none</p>'
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            value = row.get(c)
            text = (
                ""
                if value is None
                else (", ".join(map(str, value)) if isinstance(value, list) else str(value))
            )
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = f'<p class="muted">showing {len(rows)} of {total}</p>' if total > len(rows) else ""
    return f"<table><tr>{head}</tr>{''.join(body)}</table>{more}"


def render_html(report: ComplianceReport, *, title: str = "Compliance report") -> str:
    """The report as one self-contained HTML page (every value escaped)."""
    r = report
    ledger = r.ledger
    status = (
        '<span class="ok">verified</span>'
        if ledger.get("ok")
        else (
            '<span class="muted">not checked</span>'
            if ledger.get("ok") is None
            else '<span class="bad">FAILED</span>'
        )
    )
    counts = ", ".join(f"{html.escape(k)}: {v}" for k, v in r.artifacts.items()) or "none"
    labels = [
        {"label": k, "artifacts": v["artifacts"], "datasets": v["datasets"]}
        for k, v in r.classifications.items()
    ]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Generated {html.escape(r.generated)} under policy version "
        f"{html.escape(str(r.policy_version))}. Artifacts by status: {counts}.</p>",
        "<h2>Ledger</h2>",
        f"<p>Trail {status}: {html.escape(str(ledger.get('size')))} entries, root "
        f"<code>{html.escape(str(ledger.get('root', '')))}</code>, "
        f"{html.escape(str(ledger.get('erased_entries', 0)))} erased entries accounted for.</p>",
        "<h2>Artifacts by classification</h2>",
        _table(labels, ["label", "artifacts", "datasets"], len(labels)),
        "<h2>Classification changes</h2>",
        _table(
            r.classification_changes,
            ["label", "node", "reason", "by", "ts"],
            r.totals["classification_changes"],
        ),
        "<h2>Overdue deletions</h2>",
        _table(
            r.overdue,
            ["artifact", "dataset", "action", "rule", "due", "overdue_days"],
            r.totals["overdue"],
        ),
        "<h2>Review queue</h2>",
        _table(r.review_queue, ["artifact", "dataset", "rule", "due"], r.totals["review_queue"]),
        "<h2>Legal holds</h2>",
        _table(
            r.holds,
            ["node", "case", "reason", "by", "since", "active", "released"],
            r.totals["holds"],
        ),
        "<h2>Purges</h2>",
        _table(
            r.purges,
            [
                "artifact",
                "dataset",
                "action",
                "rule",
                "policy_version",
                "storage",
                "by",
                "ts",
                "index",
            ],
            r.totals["purges"],
        ),
        "<h2>Deletion certificates</h2>",
        _table(
            r.certificates,
            ["node", "id", "artifacts", "reason", "by", "ts", "index"],
            r.totals["certificates"],
        ),
        "<h2>Policy changes</h2>",
        _table(
            r.policy_changes,
            ["version", "change", "author", "reason", "ts", "index"],
            r.totals["policy_changes"],
        ),
        "<h2>Denied accesses</h2>",
        _table(
            r.denied_accesses,
            ["principal", "node", "action", "purpose", "rules", "reason", "ts"],
            r.totals["denied_accesses"],
        ),
        "<h2>Alerts</h2>",
        _table(
            r.alerts, ["kind", "severity", "node", "message", "acked_by", "ts"], r.totals["alerts"]
        ),
        "</body></html>\n",
    ]
    return "\n".join(parts)


def write_html(report: ComplianceReport, path: str | Path) -> Path:
    """Write the HTML rendering to ``path``."""
    target = Path(path)
    target.write_text(render_html(report), encoding="utf-8")
    return target
