"""Legal holds and named clock events: small facts appended as records.

A hold (``hold.added``) on a dataset covers every version of it, on an artifact
that artifact, on a run every artifact the run read or wrote; it lasts until a
``hold.released`` for the same node and case. A named clock event
(``event.NAME``, e.g. ``event.account_closed``) starts the clock of retention
rules with ``clock: event:NAME`` for the node it is about.
"""

from __future__ import annotations

from datatrail.errors import UsageError
from datatrail.lineage import Trail
from datatrail.model import parse_ts
from datatrail.retention._common import (
    EVENT_PREFIX,
    TOPIC_HOLD_ADDED,
    TOPIC_HOLD_RELEASED,
    acting_actor,
    append_records,
    check_node,
    check_reason,
    principal,
)
from datatrail.retention._facts import Hold, active_holds, all_holds
from datatrail.store import Store

__all__ = ["add_hold", "list_holds", "record_event", "release_hold"]

_HOLDABLE = ("dataset", "artifact", "run")


def _resolve(store: Store, node: str) -> str:
    text = check_node(node)
    kind = text.split(":", 1)[0]
    if kind not in _HOLDABLE:
        raise UsageError(
            f"{text}: a hold is placed on a dataset, an artifact or a run, not a {kind}"
        )
    Trail(store=store).resolve(text)
    return text


def _check_case(case: str | None) -> str:
    if case is None or not case.strip():
        raise UsageError("a hold needs a case id, e.g. --case LEGAL-2026-014")
    return case.strip()


def add_hold(store: Store, node: str, *, case: str, reason: str, by: str | None = None) -> Hold:
    """Place a legal hold on ``node`` for ``case``; returns it (the existing one if already held)."""
    case_id = _check_case(case)
    why = check_reason(reason, "a hold")
    target = _resolve(store, node)
    for hold in active_holds(store):
        if hold.node == target and hold.case == case_id:
            return hold
    who = principal(by)
    (index,) = append_records(
        store,
        [(TOPIC_HOLD_ADDED, target, {"case": case_id, "reason": why, "by": who})],
        actor=acting_actor(who),
    )
    found = [h for h in active_holds(store) if h.index == index]
    return found[0]


def release_hold(store: Store, node: str, *, case: str, reason: str, by: str | None = None) -> Hold:
    """Release the active hold on ``node`` for ``case``; returns it, released."""
    target = check_node(node)
    case_id = _check_case(case)
    why = check_reason(reason, "releasing a hold")
    held = [h for h in active_holds(store) if h.node == target and h.case == case_id]
    if not held:
        cases = sorted({h.case for h in active_holds(store) if h.node == target})
        listed = (
            f"its active holds are for {', '.join(cases)}" if cases else "it has no active hold"
        )
        raise UsageError(f"{target} is not held for case {case_id}; {listed}")
    who = principal(by)
    append_records(
        store,
        [(TOPIC_HOLD_RELEASED, target, {"case": case_id, "reason": why, "by": who})],
        actor=acting_actor(who),
    )
    return next(h for h in all_holds(store) if h.index == held[0].index)


def list_holds(store: Store, *, include_released: bool = False) -> list[Hold]:
    """Active holds (with ``include_released``, every hold ever placed), oldest first."""
    return all_holds(store) if include_released else active_holds(store)


def record_event(
    store: Store, name: str, node: str, *, at: str | None = None, by: str | None = None
) -> int:
    """Record that event ``name`` (e.g. ``account_closed``) happened to ``node``; its log index."""
    clean = name.strip()
    if not clean or not all(ch.isalnum() or ch in "_-." for ch in clean):
        raise UsageError(
            f"event name {name!r} must be letters, digits, '_', '-' or '.', e.g. account_closed"
        )
    target = check_node(node)
    Trail(store=store).resolve(target)
    when = parse_ts(at) if at else None
    who = principal(by)
    data = {"name": clean, "by": who}
    if when is not None:
        data["at"] = when
    (index,) = append_records(
        store, [(EVENT_PREFIX + clean, target, data)], actor=acting_actor(who), ts=when
    )
    return index
