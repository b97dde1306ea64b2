"""Policy versions: applying, approving, rejecting and rolling back, each a fact in the log.

A version is a ``policy.*`` record whose subject is ``policy:<version>``. The
active version is the newest ``policy.activated`` or ``policy.rolled_back``
record; it carries the whole document text, so it parses back on its own. A
change that would shorten or remove a compliance-mode retention rule is
refused before anything is written. With ``approvals: N`` (the larger of the
active and the candidate document's), a change is only proposed until N policy
admins, the proposer counting as one, have signed it off.
"""

from __future__ import annotations

import difflib
import socket
from datetime import timedelta
from typing import Any, Literal

import msgspec

from datatrail.errors import PolicyDenied, PolicyError, UsageError
from datatrail.governance._document import ADMIN_ROLE, Policy, RetentionRule, parse_policy
from datatrail.model import Actor, Event, Record, from_json, now_ts, uuid7
from datatrail.store import Store

__all__ = [
    "ACTIVATING_TOPICS",
    "POLICY_TOPICS",
    "ApplyResult",
    "PolicyVersion",
    "active_policy",
    "apply_policy",
    "approve_policy",
    "compliance_violations",
    "diff_versions",
    "latest_policy_index",
    "policy_history",
    "policy_version",
    "reject_policy",
    "rollback_policy",
]

POLICY_TOPICS = (
    "policy.proposed",
    "policy.approved",
    "policy.rejected",
    "policy.activated",
    "policy.rolled_back",
)
ACTIVATING_TOPICS = ("policy.activated", "policy.rolled_back")
_MARKS = ", ".join("?" * len(POLICY_TOPICS))

Status = Literal["active", "superseded", "proposed", "rejected", "shadow"]


class PolicyVersion(msgspec.Struct, frozen=True, kw_only=True):
    """One recorded version of the policy, as the log has it."""

    version: int
    policy: Policy
    author: str
    reason: str
    ts: str
    index: int
    """The log index of the record that activated (or proposed) it."""
    status: Status = "active"
    explain: str = ""
    approvals: tuple[str, ...] = ()
    """Who signed it off, proposer first."""
    approvals_needed: int = 0
    rolled_back_to: int | None = None
    shadow: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The version as plain JSON values (the document as text)."""
        return {
            "version": self.version,
            "hash": self.policy.hash,
            "status": self.status,
            "author": self.author,
            "reason": self.reason,
            "ts": self.ts,
            "index": self.index,
            "approvals": list(self.approvals),
            "approvals_needed": self.approvals_needed,
            "rolled_back_to": self.rolled_back_to,
            "shadow": self.shadow,
            "content": self.policy.text,
            "explain": self.explain,
        }


class ApplyResult(msgspec.Struct, frozen=True, kw_only=True):
    """What applying (or approving, rolling back) did."""

    version: int
    status: Status
    hash: str
    approvals: tuple[str, ...] = ()
    approvals_needed: int = 0
    unchanged: bool = False
    """The document equals the active version; nothing was recorded."""
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out


# -- reading versions -------------------------------------------------------------------------


def _rows(store: Store) -> list[tuple[int, str, str, dict[str, Any], str]]:
    rows = store.query(
        f"SELECT idx, topic, ts, data, subject FROM records WHERE topic IN ({_MARKS}) ORDER BY idx",
        POLICY_TOPICS,
    )
    return [(int(r[0]), str(r[1]), str(r[2]), from_json(r[3]), str(r[4])) for r in rows]


def latest_policy_index(store: Store) -> int:
    """The log index of the newest policy record (-1 if none): a cheap change check."""
    rows = store.query(
        f"SELECT MAX(idx) FROM records WHERE topic IN ({_MARKS})",
        POLICY_TOPICS,
    )
    value = rows[0][0] if rows else None
    return -1 if value is None else int(value)


def _parse_stored(data: dict[str, Any], version: int) -> Policy:
    return parse_policy(str(data.get("content", "")), file=f"<policy version {version}>")


def policy_history(store: Store) -> list[PolicyVersion]:
    """Every version ever proposed or activated, oldest first, with its current status."""
    versions: dict[int, dict[str, Any]] = {}
    active: int | None = None
    for idx, topic, ts, data, _subject in _rows(store):
        number = int(data["version"])
        entry = versions.setdefault(number, {"approvals": [], "status": "proposed"})
        if topic == "policy.proposed":
            entry.update(
                data=data,
                ts=ts,
                index=idx,
                approvals=[data.get("author", "")],
                status="shadow" if data.get("shadow") else "proposed",
            )
        elif topic == "policy.approved":
            entry["approvals"].append(data.get("author", ""))
        elif topic == "policy.rejected":
            entry["status"] = "rejected"
        elif topic in ACTIVATING_TOPICS:
            if "data" not in entry:
                entry.update(data=data, approvals=[data.get("author", "")])
            entry.update(ts=ts, index=idx, status="active", activated=data)
            if active is not None and active != number:
                versions[active]["status"] = "superseded"
            active = number
    out = []
    for number in sorted(versions):
        entry = versions[number]
        if "data" not in entry:
            continue
        data = entry["data"]
        activated = entry.get("activated", data)
        out.append(
            PolicyVersion(
                version=number,
                policy=_parse_stored(data, number),
                author=str(data.get("author", "")),
                reason=str(activated.get("reason", data.get("reason", ""))),
                ts=entry["ts"],
                index=entry["index"],
                status=entry["status"],
                explain=str(data.get("explain", "")),
                approvals=tuple(dict.fromkeys(entry["approvals"])),
                approvals_needed=int(data.get("approvals_needed", 0)),
                rolled_back_to=activated.get("rolled_back_to"),
                shadow=bool(data.get("shadow", False)),
            )
        )
    return out


def active_policy(store: Store) -> PolicyVersion | None:
    """The version in force: the newest activated or rolled-back one, or ``None``."""
    rows = store.query(
        "SELECT idx, topic, ts, data FROM records WHERE topic IN (?, ?) ORDER BY idx DESC LIMIT 1",
        ACTIVATING_TOPICS,
    )
    if not rows:
        return None
    idx, _topic, ts, text = rows[0]
    data = from_json(text)
    number = int(data["version"])
    return PolicyVersion(
        version=number,
        policy=_parse_stored(data, number),
        author=str(data.get("author", "")),
        reason=str(data.get("reason", "")),
        ts=str(ts),
        index=int(idx),
        status="active",
        explain=str(data.get("explain", "")),
        approvals=tuple(data.get("approvals", ()) or (data.get("author", ""),)),
        approvals_needed=int(data.get("approvals_needed", 0)),
        rolled_back_to=data.get("rolled_back_to"),
    )


def policy_version(store: Store, version: int | None = None) -> PolicyVersion:
    """One version by number (default: the active one), or raise :class:`UsageError`."""
    if version is None:
        found = active_policy(store)
        if found is None:
            raise UsageError("no policy version is active yet; `datatrail policy apply FILE` one")
        return found
    for entry in policy_history(store):
        if entry.version == version:
            return entry
    raise UsageError(f"there is no policy version {version}; `datatrail policy log` lists them")


# -- checks ----------------------------------------------------------------------------------


def _protected(rule: RetentionRule) -> timedelta:
    return rule.keep_at_least or rule.delete_after or timedelta(0)


def compliance_violations(old: Policy | None, new: Policy) -> list[str]:
    """Why ``new`` may not follow ``old``: each compliance rule shortened, loosened or removed."""
    if old is None:
        return []
    problems = []
    by_id = {rule.id: rule for rule in new.retention}
    for rule in old.retention:
        if rule.mode != "compliance":
            continue
        kept = by_id.get(rule.id)
        if kept is None:
            problems.append(f"compliance retention {rule.id!r} would be removed")
            continue
        if kept.mode != "compliance":
            problems.append(f"compliance retention {rule.id!r} would become governance mode")
        if kept.match != rule.match:
            problems.append(
                f"compliance retention {rule.id!r} would change which data it covers "
                f"({rule.match.describe()} -> {kept.match.describe()})"
            )
        if kept.clock != rule.clock:
            problems.append(
                f"compliance retention {rule.id!r} would change its clock ({rule.clock} -> {kept.clock})"
            )
        if _protected(kept) < _protected(rule):
            problems.append(
                f"compliance retention {rule.id!r} would be shortened "
                f"({_days(_protected(rule))} -> {_days(_protected(kept))})"
            )
        if (
            rule.keep_at_least is not None
            and kept.delete_after is not None
            and kept.delete_after < rule.keep_at_least
        ):
            problems.append(
                f"compliance retention {rule.id!r} would delete before the locked keep period"
            )
    return problems


def _days(span: timedelta) -> str:
    if span.seconds == 0 and span.microseconds == 0:
        return f"{span.days}d"
    return str(span)


def _check_admin(active: PolicyVersion | None, candidate: Policy, principal: str) -> None:
    """Policy-admin rights come from the active policy; with none that names an admin, anyone."""
    governing = active.policy if active is not None else candidate
    admins = [p for p in governing.principals if governing.is_admin(p)]
    if admins and principal not in admins:
        raise PolicyDenied(
            f"{principal!r} does not have the {ADMIN_ROLE} role in policy "
            f"version {active.version if active else 'being applied'}; ask one of "
            f"{', '.join(sorted(admins))}"
        )


def _record(topic: str, version: int, data: dict[str, Any], principal: str) -> Record:
    return Record(
        id=uuid7(),
        ts=now_ts(),
        topic=topic,
        subject=f"policy:{version}",
        data={"version": version, **data},
        actor=Actor(user=principal, host=socket.gethostname()),
    )


def _next_version(store: Store) -> int:
    rows = _rows(store)
    return max((int(d["version"]) for *_, d, _s in rows), default=0) + 1


def _explain(policy: Policy) -> str:
    from datatrail.governance._explain import explain_policy

    return explain_policy(policy)


# -- changing versions ------------------------------------------------------------------------


def apply_policy(
    store: Store,
    policy: Policy,
    *,
    principal: str,
    reason: str,
    shadow: bool = False,
) -> ApplyResult:
    """Record a new version: active at once, or proposed when approvals are needed (or shadow)."""
    if not reason.strip():
        raise UsageError("a policy change needs a reason (--reason TEXT)")
    active = active_policy(store)
    _check_admin(active, policy, principal)
    if active is not None and active.policy.hash == policy.hash and not shadow:
        return ApplyResult(
            version=active.version,
            status="active",
            hash=policy.hash,
            unchanged=True,
            message=f"the document equals active version {active.version}; nothing recorded",
        )
    problems = compliance_violations(active.policy if active else None, policy)
    if problems:
        raise PolicyError(
            "this version is refused: " + "; ".join(problems) + ". Compliance-mode retention "
            "can never be shortened or removed; keep those rules as they are or lengthen them"
        )
    needed = max(policy.approvals, active.policy.approvals if active else 0)
    number = _next_version(store)
    data = {
        "hash": policy.hash,
        "author": principal,
        "reason": reason,
        "content": policy.text,
        "explain": _explain(policy),
        "approvals_needed": needed,
    }
    events: list[Event]
    if shadow:
        events = [_record("policy.proposed", number, {**data, "shadow": True}, principal)]
        store.append(events, dedupe=False)
        return ApplyResult(
            version=number,
            status="shadow",
            hash=policy.hash,
            message=f"version {number} runs in shadow beside the active version",
        )
    if needed > 1:
        events = [_record("policy.proposed", number, data, principal)]
        store.append(events, dedupe=False)
        return ApplyResult(
            version=number,
            status="proposed",
            hash=policy.hash,
            approvals=(principal,),
            approvals_needed=needed,
            message=(
                f"version {number} is proposed; it needs {needed - 1} more approval(s) by "
                f"another {ADMIN_ROLE} (`datatrail policy approve {number}`)"
            ),
        )
    events = [_record("policy.activated", number, {**data, "approvals": [principal]}, principal)]
    store.append(events, dedupe=False)
    return ApplyResult(
        version=number,
        status="active",
        hash=policy.hash,
        approvals=(principal,),
        approvals_needed=needed,
        message=f"version {number} is active",
    )


def _pending(store: Store, version: int) -> PolicyVersion:
    entry = policy_version(store, version)
    if entry.status not in ("proposed", "shadow"):
        raise UsageError(f"policy version {version} is {entry.status}, not awaiting a decision")
    return entry


def approve_policy(store: Store, version: int, *, principal: str, reason: str = "") -> ApplyResult:
    """Sign off a proposed version; the last needed approval activates it."""
    entry = _pending(store, version)
    if entry.shadow:
        raise UsageError(
            f"version {version} runs in shadow; apply its document without --shadow to adopt it"
        )
    active = active_policy(store)
    governing = active.policy if active is not None else entry.policy
    if not governing.is_admin(principal):
        raise PolicyDenied(
            f"{principal!r} does not have the {ADMIN_ROLE} role, so cannot approve version {version}"
        )
    if principal == entry.author:
        raise PolicyDenied(f"{principal!r} proposed version {version} and cannot also approve it")
    if principal in entry.approvals:
        raise UsageError(f"{principal!r} has already approved version {version}")
    problems = compliance_violations(active.policy if active else None, entry.policy)
    if problems:
        raise PolicyError(f"version {version} can no longer be activated: " + "; ".join(problems))
    approvals = (*entry.approvals, principal)
    events: list[Event] = [
        _record(
            "policy.approved",
            version,
            {"hash": entry.policy.hash, "author": principal, "reason": reason},
            principal,
        )
    ]
    status: Status = "proposed"
    if len(approvals) >= entry.approvals_needed:
        status = "active"
        events.append(
            _record(
                "policy.activated",
                version,
                {
                    "hash": entry.policy.hash,
                    "author": entry.author,
                    "reason": entry.reason,
                    "content": entry.policy.text,
                    "explain": entry.explain,
                    "approvals": list(approvals),
                    "approvals_needed": entry.approvals_needed,
                },
                principal,
            )
        )
    store.append(events, dedupe=False)
    left = entry.approvals_needed - len(approvals)
    return ApplyResult(
        version=version,
        status=status,
        hash=entry.policy.hash,
        approvals=approvals,
        approvals_needed=entry.approvals_needed,
        message=f"version {version} is active"
        if status == "active"
        else f"version {version} needs {left} more approval(s)",
    )


def reject_policy(store: Store, version: int, *, principal: str, reason: str) -> ApplyResult:
    """Reject a proposed (or shadow) version; it can never be approved afterwards."""
    entry = _pending(store, version)
    active = active_policy(store)
    governing = active.policy if active is not None else entry.policy
    if entry.author != principal and not governing.is_admin(principal):
        raise PolicyDenied(f"{principal!r} does not have the {ADMIN_ROLE} role")
    store.append(
        [
            _record(
                "policy.rejected",
                version,
                {"hash": entry.policy.hash, "author": principal, "reason": reason},
                principal,
            )
        ],
        dedupe=False,
    )
    return ApplyResult(
        version=version,
        status="rejected",
        hash=entry.policy.hash,
        message=f"version {version} is rejected",
    )


def rollback_policy(store: Store, version: int, *, principal: str, reason: str) -> ApplyResult:
    """Make an earlier version's document active again, as a new version number."""
    if not reason.strip():
        raise UsageError("a rollback needs a reason (--reason TEXT)")
    target = policy_version(store, version)
    if target.status in ("proposed", "rejected", "shadow"):
        raise UsageError(
            f"version {version} was never active ({target.status}); cannot roll back to it"
        )
    active = active_policy(store)
    _check_admin(active, target.policy, principal)
    if active is not None and active.version == version:
        raise UsageError(f"version {version} is already the active version")
    problems = compliance_violations(active.policy if active else None, target.policy)
    if problems:
        raise PolicyError(f"rolling back to version {version} is refused: " + "; ".join(problems))
    number = _next_version(store)
    record = _record(
        "policy.rolled_back",
        number,
        {
            "hash": target.policy.hash,
            "author": principal,
            "reason": reason,
            "content": target.policy.text,
            "explain": target.explain or _explain(target.policy),
            "rolled_back_to": version,
            "from_version": active.version if active else None,
            "approvals": [principal],
        },
        principal,
    )
    store.append([record], dedupe=False)
    return ApplyResult(
        version=number,
        status="active",
        hash=target.policy.hash,
        approvals=(principal,),
        message=f"version {number} is active: the document of version {version}",
    )


def diff_versions(store: Store, old: int, new: int) -> str:
    """A unified diff of two versions' documents."""
    a = policy_version(store, old).policy.text.splitlines(keepends=True)
    b = policy_version(store, new).policy.text.splitlines(keepends=True)
    return "".join(difflib.unified_diff(a, b, f"policy v{old}", f"policy v{new}"))
