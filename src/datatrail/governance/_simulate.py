"""Simulating a candidate policy over the recorded access history.

Every ``access`` record since a time is decided again under the candidate
(with the labels lineage gives the resource under the candidate's rules), and
each decision that would change is reported: who, what, before and after.
"""

from __future__ import annotations

from typing import Any

import msgspec

from datatrail.governance._classify import classifications_of
from datatrail.governance._decide import Engine
from datatrail.governance._document import Policy
from datatrail.governance._records import DATA_READS
from datatrail.model import from_json, parse_ts
from datatrail.store import Store

__all__ = ["Change", "Simulation", "simulate"]


class Change(msgspec.Struct, frozen=True, kw_only=True):
    """One recorded decision the candidate would make differently."""

    index: int
    ts: str
    principal: str
    action: str
    resource: str
    purpose: str | None
    before: str
    after: str
    before_masked: list[str]
    after_masks: dict[str, str]
    rules: list[str]
    reason: str


class Simulation(msgspec.Struct, frozen=True, kw_only=True):
    """What a candidate would change: counts, and every change."""

    since: str
    replayed: int
    changed: int
    newly_denied: int
    newly_allowed: int
    masks_changed: int
    principals: dict[str, int]
    """Principal -> how many of their decisions would change."""
    changes: list[Change]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out


def simulate(store: Store, candidate: Policy, *, since: str = "30d") -> Simulation:
    """Replay access records since ``since`` (a time or a span ago) under ``candidate``."""
    start = parse_ts(since)
    engine = Engine(candidate)
    labels_cache: dict[str, list[str]] = {}
    changes: list[Change] = []
    replayed = 0
    rows = store.query(
        f"SELECT idx, ts, subject, data FROM records WHERE {DATA_READS} AND ts >= ? ORDER BY idx",
        (start,),
    )
    for idx, ts, subject, text in rows:
        data = from_json(text)
        principal = str(data.get("principal") or "")
        action = str(data.get("action") or "read")
        resource = str(data.get("resource") or subject or "")
        if not principal or not resource:
            continue
        replayed += 1
        if resource not in labels_cache:
            try:
                labels_cache[resource] = list(classifications_of(store, resource, policy=candidate))
            except Exception:
                labels_cache[resource] = []
        decision = engine.decide(
            principal,
            action,
            resource,
            purpose=data.get("purpose"),
            labels=labels_cache[resource],
        )
        before = str(data.get("outcome"))
        masked = sorted(data.get("masked") or [])
        mask_change = (
            before == "allow"
            and decision.outcome == "allow"
            and any(column not in decision.masks for column in masked)
        )
        if decision.outcome != before or mask_change:
            changes.append(
                Change(
                    index=int(idx),
                    ts=str(ts),
                    principal=principal,
                    action=action,
                    resource=resource,
                    purpose=data.get("purpose"),
                    before=before,
                    after=decision.outcome,
                    before_masked=masked,
                    after_masks=dict(decision.masks),
                    rules=list(decision.rules),
                    reason=decision.reason,
                )
            )
    principals: dict[str, int] = {}
    for change in changes:
        principals[change.principal] = principals.get(change.principal, 0) + 1
    return Simulation(
        since=start,
        replayed=replayed,
        changed=len(changes),
        newly_denied=sum(1 for c in changes if c.before == "allow" and c.after == "deny"),
        newly_allowed=sum(1 for c in changes if c.before == "deny" and c.after == "allow"),
        masks_changed=sum(1 for c in changes if c.before == c.after),
        principals=dict(sorted(principals.items())),
        changes=changes,
    )
