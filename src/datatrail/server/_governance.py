"""Governance and retention routes: policies (current, versions, diff, apply, simulate), governed
data reads, holds, the retention plan, the access log and the compliance report.

Each handler calls one function of :mod:`datatrail.governance` or
:mod:`datatrail.retention` with the caller's principal name, so the policy's own
rules (who administers it, who may read what, masking) apply exactly as they do
from Python, and each decision is recorded there.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from datatrail.errors import NodeNotFound, UsageError
from datatrail.model import from_json
from datatrail.server._api import READERS
from datatrail.server._routes import ApiRoute, Call, Param
from datatrail.server._schemas import ANY_OBJ, BOOL, INT, STR, array_of, nullable, obj

__all__ = ["GOVERNANCE_ROUTES"]

AUDITORS = ("auditor",)
POLICY = ("policy-admin",)


def _builtins(value: Any) -> Any:
    return msgspec.to_builtins(value)


def _body(call: Call, *required: str) -> dict[str, Any]:
    from datatrail.server._errors import ApiError

    try:
        data = msgspec.json.decode(call.body or b"")
    except msgspec.DecodeError as exc:
        raise ApiError(400, "bad_json", f"the body is not valid JSON: {exc}", pointer="") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_body", "the body must be a JSON object", pointer="")
    for name in required:
        if not isinstance(data.get(name), str) or not data[name].strip():
            raise ApiError(
                400, "bad_body", f"the body needs {name!r} (a non-empty string)", pointer=f"/{name}"
            )
    return data


def _version(v: Any) -> dict[str, Any]:
    return {
        "version": v.version,
        "status": v.status,
        "author": v.author,
        "reason": v.reason,
        "ts": v.ts,
        "index": v.index,
        "approvals": list(v.approvals),
        "explain": v.explain,
        "content": v.policy.text,
    }


def policy_current(call: Call) -> dict[str, Any]:
    """The policy version in force, with its document and plain-language explanation."""
    from datatrail.governance import active_policy

    active = active_policy(call.state.store)
    if active is None:
        raise NodeNotFound("no policy version has been applied yet; `datatrail policy apply`")
    return _version(active)


def policy_versions(call: Call) -> list[dict[str, Any]]:
    """Every policy version, oldest first, with its status."""
    from datatrail.governance import policy_history

    return [_version(v) for v in policy_history(call.state.store)]


def policy_diff(call: Call) -> dict[str, Any]:
    """A unified diff between two policy versions' documents."""
    from datatrail.governance import diff_versions

    old, new = call.params["old"], call.params["new"]
    return {"old": old, "new": new, "diff": diff_versions(call.state.store, old, new)}


def policy_apply(call: Call) -> dict[str, Any]:
    """Record a new policy version (active at once, or proposed when approvals are needed)."""
    from datatrail.governance import apply_policy, parse_policy

    data = _body(call, "content", "reason")
    shadow = data.get("shadow", False)
    if not isinstance(shadow, bool):
        raise UsageError("'shadow' must be true or false")
    policy = parse_policy(data["content"], file="<request body>")
    result = apply_policy(
        call.state.store,
        policy,
        principal=call.principal.name,
        reason=data["reason"],
        shadow=shadow,
    )
    out: dict[str, Any] = result.to_dict()
    return out


def policy_simulate(call: Call) -> dict[str, Any]:
    """Replay recorded access decisions under a candidate policy; what would change."""
    from datatrail.governance import parse_policy, simulate

    data = _body(call, "content")
    since = data.get("since", "30d")
    if not isinstance(since, str):
        raise UsageError("'since' must be a time or a span ago (30d)")
    result = simulate(
        call.state.store, parse_policy(data["content"], file="<request body>"), since=since
    )
    out: dict[str, Any] = _builtins(result)
    return out


def _rows_of(data: Any, limit: int) -> tuple[list[str] | None, list[Any]]:
    if hasattr(data, "to_json") and hasattr(data, "head"):  # pandas
        part = data.head(limit)
        return [str(c) for c in part.columns], json.loads(
            part.to_json(orient="records", date_format="iso")
        )
    if hasattr(data, "slice") and hasattr(data, "to_pylist"):  # arrow
        part = data.slice(0, limit)
        return list(part.column_names), json.loads(json.dumps(part.to_pylist(), default=str))
    if isinstance(data, bytes):
        return None, [data[:65536].decode("utf-8", "replace")]
    return None, json.loads(json.dumps(data if isinstance(data, list) else [data], default=str))[
        :limit
    ]


def dataset_data(call: Call) -> dict[str, Any]:
    """A dataset's (or artifact's) data through the governed path: masked or refused by policy."""
    from datatrail.governance import read

    node = call.params["nodeId"]
    data = read(
        node,
        principal=call.principal.name,
        purpose=call.params["purpose"],
        trail=call.state.trail,
        via="api",
    )
    columns, rows = _rows_of(data, call.params["limit"])
    return {"node": node, "columns": columns, "rows": rows}


def holds(call: Call) -> list[Any]:
    """Legal holds: active ones, or every hold ever placed."""
    from datatrail.retention import list_holds

    result: list[Any] = _builtins(list_holds(call.state.store, include_released=call.params["all"]))
    return result


def hold_add(call: Call) -> Any:
    """Place a legal hold on a node for a case."""
    from datatrail.retention import add_hold

    data = _body(call, "node", "case", "reason")
    return _builtins(
        add_hold(
            call.state.store,
            data["node"],
            case=data["case"],
            reason=data["reason"],
            by=call.principal.name,
        )
    )


def hold_release(call: Call) -> Any:
    """Release a node's hold for a case."""
    from datatrail.retention import release_hold

    data = _body(call, "node", "case", "reason")
    return _builtins(
        release_hold(
            call.state.store,
            data["node"],
            case=data["case"],
            reason=data["reason"],
            by=call.principal.name,
        )
    )


def retention_plan(call: Call) -> Any:
    """What retention would do now, item by item, with rules, holds and reasons."""
    from datatrail.retention import plan

    return plan(call.state.store, everything=call.params["all"]).to_dict()


def access_log(call: Call) -> list[dict[str, Any]]:
    """Access decisions (``access`` records), newest first, filtered."""
    p = call.params
    clauses, params = ["topic = 'access'"], []
    if p["node"]:
        clauses.append("subject = ?")
        params.append(p["node"])
    if p["since"]:
        from datatrail.model import parse_ts

        clauses.append("ts >= ?")
        params.append(parse_ts(p["since"]))
    rows = call.state.store.query(
        f"SELECT idx, ts, subject, data FROM records WHERE {' AND '.join(clauses)} "
        "ORDER BY idx DESC LIMIT ?",
        (*params, 10_000 if (p["principal"] or p["outcome"]) else p["limit"]),
    )
    out = []
    for idx, ts, subject, raw in rows:
        data = from_json(raw)
        if not isinstance(data, dict):
            continue
        if p["principal"] and data.get("principal") != p["principal"]:
            continue
        if p["outcome"] and data.get("outcome") != p["outcome"]:
            continue
        out.append({"index": idx, "ts": ts, "node": subject, **data})
        if len(out) >= p["limit"]:
            break
    return out


def compliance(call: Call) -> Any:
    """The compliance report: overdue deletions, holds, denials, alerts, ledger state."""
    from datatrail.ledger import load_verifier
    from datatrail.retention import compliance_report

    home = call.state.home
    key = (
        load_verifier(home.verifier_key)
        if home is not None and home.verifier_key.exists()
        else None
    )
    return _builtins(
        compliance_report(call.state.store, verifier=key, check_ledger=call.params["verify"])
    )


VERSION = obj(
    ("version", "status", "author", "reason", "ts", "content"),
    version=INT,
    status=STR,
    author=STR,
    reason=STR,
    ts=STR,
    index=INT,
    approvals=array_of(STR),
    explain=STR,
    content=STR,
)
POLICY_BODY = obj(
    ("content", "reason"),
    content={"type": "string", "description": "The policy document (YAML)."},
    reason=STR,
    shadow=BOOL,
)
HOLD_BODY = obj(("node", "case", "reason"), node=STR, case=STR, reason=STR)
HOLD = obj(
    ("node", "case", "reason", "by", "since"),
    node=STR,
    case=STR,
    reason=STR,
    by=STR,
    since=STR,
    index=INT,
    released=nullable(STR),
)
ALL = Param(
    "all", {"type": "boolean", "default": False}, description="Everything, not only the current."
)

GOVERNANCE_ROUTES: tuple[ApiRoute, ...] = (
    ApiRoute(
        "GET",
        "/api/v1/policies/current",
        policy_current,
        "The policy version in force",
        READERS,
        "policies",
        VERSION,
        errors=(404,),
    ),
    ApiRoute(
        "GET",
        "/api/v1/policies/versions",
        policy_versions,
        "Every policy version, oldest first",
        READERS,
        "policies",
        array_of(VERSION),
    ),
    ApiRoute(
        "GET",
        "/api/v1/policies/diff",
        policy_diff,
        "Unified diff of two policy versions",
        READERS,
        "policies",
        obj(("old", "new", "diff"), old=INT, new=INT, diff=STR),
        params=(
            Param("old", {"type": "integer", "minimum": 1, "maximum": 2**31}, required=True),
            Param("new", {"type": "integer", "minimum": 1, "maximum": 2**31}, required=True),
        ),
        errors=(400, 404),
    ),
    ApiRoute(
        "POST",
        "/api/v1/policies/apply",
        policy_apply,
        "Apply a new policy version (the caller must administer the policy)",
        POLICY,
        "policies",
        ANY_OBJ,
        body=POLICY_BODY,
        errors=(400, 413, 415),
    ),
    ApiRoute(
        "POST",
        "/api/v1/policies/simulate",
        policy_simulate,
        "Replay recorded decisions under a candidate policy",
        (*POLICY, *AUDITORS),
        "policies",
        ANY_OBJ,
        body=obj(("content",), content=STR, since=STR),
        errors=(400, 413, 415),
    ),
    ApiRoute(
        "GET",
        "/api/v1/dataset/data",
        dataset_data,
        "A dataset's data through the governed path (masked or refused by policy; recorded)",
        READERS,
        "governance",
        obj(("node", "rows"), node=STR, columns=nullable(array_of(STR)), rows={"type": "array"}),
        params=(
            Param(
                "nodeId",
                {"type": "string", "minLength": 1, "maxLength": 4096},
                required=True,
                description="dataset:NS:NAME or artifact:ID.",
            ),
            Param("purpose", {"type": "string", "maxLength": 200}, description="Why you read it."),
            Param("limit", {"type": "integer", "minimum": 1, "maximum": 10_000, "default": 100}),
        ),
        errors=(400, 404),
        governed=True,
    ),
    ApiRoute(
        "GET",
        "/api/v1/holds",
        holds,
        "Legal holds",
        READERS,
        "retention",
        array_of(HOLD),
        params=(ALL,),
        errors=(400,),
    ),
    ApiRoute(
        "POST",
        "/api/v1/holds",
        hold_add,
        "Place a legal hold",
        (*AUDITORS, *POLICY),
        "retention",
        HOLD,
        body=HOLD_BODY,
        errors=(400, 404, 413, 415),
    ),
    ApiRoute(
        "POST",
        "/api/v1/holds/release",
        hold_release,
        "Release a legal hold",
        (*AUDITORS, *POLICY),
        "retention",
        HOLD,
        body=HOLD_BODY,
        errors=(400, 404, 413, 415),
    ),
    ApiRoute(
        "GET",
        "/api/v1/retention/plan",
        retention_plan,
        "What retention would do now, and why",
        (*AUDITORS, *POLICY),
        "retention",
        ANY_OBJ,
        params=(ALL,),
        errors=(400,),
    ),
    ApiRoute(
        "GET",
        "/api/v1/access",
        access_log,
        "The access log: governed decisions, newest first",
        AUDITORS,
        "governance",
        array_of(obj(("index", "ts"), index=INT, ts=STR, node=nullable(STR))),
        params=(
            Param("principal", {"type": "string", "maxLength": 200}),
            Param("node", {"type": "string", "maxLength": 4096}),
            Param("outcome", {"type": "string", "enum": ["allow", "deny"]}),
            Param("since", {"type": "string", "maxLength": 64}),
            Param("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}),
        ),
        errors=(400,),
    ),
    ApiRoute(
        "GET",
        "/api/v1/compliance/report",
        compliance,
        "The compliance report",
        AUDITORS,
        "retention",
        ANY_OBJ,
        params=(
            Param(
                "verify",
                {"type": "boolean", "default": False},
                description="Also verify the whole ledger (slow on big trails).",
            ),
        ),
        errors=(400,),
    ),
)
"""Policy, governed-read, hold, retention, access-log and compliance routes."""
