"""The governance pages: policy versions and diffs, the audit page (access log and compliance
dashboard), ledger verification and audit bundles.

Where a governance part is not installed the pages read its facts from the
``records`` projection instead.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from datatrail.errors import NodeNotFound
from datatrail.model import Actor, Record, now_ts, parse_ts, uuid7
from datatrail.server._auth import Principal
from datatrail.server._ui_base import (
    AUDIT,
    POLICY,
    checkpoint,
    holds,
    int_param,
    last_verify,
    node_param,
    open_items,
    optional,
    page,
    records,
    state,
)
from datatrail.store import Store

__all__ = ["audit", "bundle", "policies", "run_verify", "verification"]

_POLICY_TOPICS = (
    "policy.proposed",
    "policy.approved",
    "policy.rejected",
    "policy.activated",
    "policy.rolled_back",
)
_ACCESS_FILTERS = ("principal", "outcome", "subject", "since", "purpose", "action")


def _policy_versions(store: Store) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
    history = records(store, _POLICY_TOPICS, limit=1000)
    versions: dict[int, dict[str, Any]] = {}
    for row in reversed(history):  # oldest first: the first record with content defines it
        data = row["data"]
        version = data.get("version")
        if isinstance(version, int) and "content" in data and version not in versions:
            versions[version] = {**data, "ts": row["ts"]}
    return history, versions


def _active_version(store: Store, history: list[dict[str, Any]]) -> int | None:
    active_policy = optional("datatrail.governance", "active_policy")
    if active_policy is not None:
        current = active_policy(store)
        return None if current is None else int(current.version)
    for row in history:
        if row["topic"] in ("policy.activated", "policy.rolled_back"):
            version = row["data"].get("version")
            return int(version) if isinstance(version, int) else None
    return None


def _diff_class(line: str) -> str:
    if line.startswith(("---", "+++", "@@")):
        return "hdr"
    return {"+": "add", "-": "del"}.get(line[:1], "ctx")


@page(*POLICY)
def policies(request: Request, who: Principal) -> tuple[str, dict[str, Any]]:
    store, _ = state(request)
    history, versions = _policy_versions(store)
    active = _active_version(store, history)
    a = int_param(request, "a", 0, 0, 10**9) or None
    b = int_param(request, "b", 0, 0, 10**9) or None
    diff: list[tuple[str, str]] | None = None
    if a and b:
        for v in (a, b):
            if v not in versions:
                raise NodeNotFound(f"no policy version {v} with content in this trail")
        lines = difflib.unified_diff(
            str(versions[a]["content"]).splitlines(),
            str(versions[b]["content"]).splitlines(),
            f"version {a}",
            f"version {b}",
            lineterm="",
        )
        diff = [(_diff_class(ln), ln) for ln in lines]
    return "policies.html", {
        "title": "Policies",
        "active": active,
        "current": versions.get(active) if active else None,
        "history": history,
        "versions": sorted(versions, reverse=True),
        "a": a,
        "b": b,
        "diff": diff,
    }


def _access_log(request: Request, store: Store) -> tuple[list[dict[str, Any]], dict[str, str]]:
    filters = {k: request.query_params.get(k, "").strip() for k in _ACCESS_FILTERS}
    since = parse_ts(filters["since"]) if filters["since"] else None
    limit = int_param(request, "limit", 200, 1, 5000)
    rows = records(
        store, ("access",), subject=filters["subject"] or None, since=since, limit=20_000
    )
    out = []
    for row in rows:
        data = row["data"]
        if any(
            filters[k] and data.get(k) != filters[k]
            for k in ("principal", "outcome", "purpose", "action")
        ):
            continue
        out.append(row)
        if len(out) >= limit:
            break
    return out, filters


def _compliance(store: Store) -> dict[str, Any]:
    overdue: list[dict[str, Any]] | None = None
    review = 0
    report = optional("datatrail.retention", "compliance_report")
    if report is not None:
        made = report(store, check_ledger=False)
        overdue, review = made.overdue, made.totals.get("review_queue", 0)
    denials = [
        r for r in records(store, ("access",), limit=5000) if r["data"].get("outcome") == "deny"
    ]
    return {
        "overdue": overdue,
        "review": review,
        "holds": holds(store),
        "denials": denials[:50],
        "denials_total": len(denials),
        "alerts": open_items(store, "alert", "alert.ack", lambda r: r["data"].get("alert_id")),
    }


@page(*AUDIT)
def audit(request: Request, who: Principal) -> tuple[str, dict[str, Any]]:
    store, _ = state(request)
    log, filters = _access_log(request, store)
    return "audit.html", {
        "title": "Audit",
        "log": log,
        "filters": filters,
        "compliance": _compliance(store),
    }


@page(*AUDIT)
def verification(request: Request, who: Principal) -> tuple[str, dict[str, Any]]:
    store, _ = state(request)
    return "verify.html", {
        "title": "Verification",
        "checkpoint": checkpoint(store),
        "verify": last_verify(store),
        "node": request.query_params.get("node", ""),
    }


def _verifier(request: Request) -> Path | None:
    home = getattr(request.app.state, "home", None)
    key = getattr(home, "verifier_key", None)
    return key if isinstance(key, Path) and key.exists() else None


@page(*AUDIT)
def run_verify(request: Request, who: Principal) -> Response:
    """Verify the whole trail now and record the result, so the page can show the last one."""
    from datatrail.audit import verify

    store, _ = state(request)
    report = verify(store, verifier=_verifier(request))
    first = report.first_fault
    data = {
        "ok": report.ok,
        "size": report.size,
        "root": report.root,
        "faults_total": report.faults_total,
        "first_fault": None if first is None else first.detail,
        "checkpoints": report.checkpoints,
        "seconds": report.seconds,
        "by": who.name,
    }
    store.append(
        [
            Record(
                id=uuid7(),
                ts=now_ts(),
                topic="audit.verify",
                subject=None,
                data=data,
                actor=Actor(user=who.name, host="datatrail-ui"),
            )
        ],
        dedupe=False,
    )
    return RedirectResponse("/ui/verify", status_code=303)


@page(*AUDIT)
def bundle(request: Request, who: Principal) -> Response:
    """An audit bundle for any node, as a JSON download checkable offline."""
    import msgspec

    from datatrail.audit import prove

    store, _ = state(request)
    node = node_param(request, "node")
    made = prove(store, node, verifier=_verifier(request))
    safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in node)[:80]
    return Response(
        msgspec.json.format(msgspec.json.encode(made), indent=2),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="bundle-{safe}.json"'},
    )
