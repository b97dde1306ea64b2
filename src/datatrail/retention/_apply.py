"""Applying a plan: notify owners, act through storage adapters, write receipts, erase payloads.

``apply`` is idempotent: purged items leave the plan (their receipts say so),
review items are queued once, and owners are told only about what is acted on
or newly queued, so a second run appends nothing. Order matters for crashes:
storage first (deleting what is already gone reports ``absent``), then the
receipts (which list the payload events to erase), then the erasures; a run
that stopped before its erasures finishes them the next time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any, Literal

import msgspec

from datatrail.errors import ConfigError, UsageError
from datatrail.governance import Policy
from datatrail.model import DatasetRef, from_json, now_ts, parse_node_id, parse_ts
from datatrail.retention._adapters import AdapterContext, StorageError, adapter_for
from datatrail.retention._common import (
    TOPIC_PURGED,
    TOPIC_REVIEW,
    acting_actor,
    append_records,
    check_reason,
    principal,
    shift,
)
from datatrail.retention._facts import load_facts, purge_receipts
from datatrail.retention._plan import Disposition, plan
from datatrail.retention._policy import load_context, notify_owners
from datatrail.store import Store

__all__ = [
    "AppliedItem",
    "ApplyResult",
    "ReviewRecord",
    "apply",
    "decide_review",
    "erase_payloads",
    "payload_events",
    "review_queue",
    "storage_action",
]

Payloads = Literal["values", "all", "none"]
"""Which provenance payloads of purged artifacts to erase (see :func:`payload_events`)."""


class AppliedItem(msgspec.Struct, frozen=True, kw_only=True):
    """One artifact of one dataset acted on, or left alone with the reason."""

    artifact: str
    dataset: str
    action: str
    storage: str
    """``deleted``, ``archived``, ``absent``, ``changed``, ``superseded``, ``no-storage``, ``failed``."""
    rule: str | None = None
    receipt_index: int | None = None
    erased_events: list[int] = []
    error: str | None = None


class ApplyResult(msgspec.Struct, frozen=True, kw_only=True):
    """What ``apply`` did."""

    now: str
    policy_version: int | None
    dry_run: bool
    applied: list[AppliedItem]
    queued: list[Disposition]
    """Items put in the review queue by this run."""
    failed: list[AppliedItem]
    notifications: int
    resumed_erasures: list[int] = []

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (the ``--json`` shape)."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data


class ReviewRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A reviewer's decision as recorded."""

    artifact: str
    dataset: str
    decision: str
    reason: str
    by: str
    index: int
    until: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data


def storage_action(item: Disposition, action: str, ctx: AdapterContext) -> str:
    """Delete or archive the item's data through its adapter; the one-word outcome."""
    if not item.current:
        return "superseded"  # the dataset holds a newer version; this one is no longer stored
    node = parse_node_id(item.dataset)
    ref = DatasetRef(namespace=node.namespace or "", name=node.name or "")
    adapter = adapter_for(ref.namespace)
    if adapter is None:
        return "no-storage"
    if action == "archive":
        return adapter.archive(ref, item.artifact, ctx)
    if action == "anonymize":
        anonymize = getattr(adapter, "anonymize", None)
        if anonymize is None:
            raise StorageError(
                f"no anonymizer for {ref.namespace} datasets; register an adapter with an "
                "anonymize(ref, artifact, ctx) method, or change the rule's action"
            )
        return str(anonymize(ref, item.artifact, ctx))
    return adapter.delete(ref, item.artifact, ctx)


def payload_events(store: Store, artifacts: Iterable[str], mode: Payloads) -> list[int]:
    """Log indexes of io events about ``artifacts`` whose payloads to erase.

    ``values``: the events that carry values taken from the data (column statistics,
    dataset facets); ``all``: every io event that names the artifact; ``none``: none.
    """
    if mode == "none":
        return []
    found: list[int] = []
    for art in dict.fromkeys(artifacts):
        for (idx,) in store.query(
            "SELECT idx FROM run_io WHERE artifact_id = ? ORDER BY idx", (art,)
        ):
            if mode == "all":
                found.append(int(idx))
                continue
            stored = store.event(int(idx))
            if stored is None or stored.body is None:
                continue
            body = from_json(bytes(stored.body))
            artifact = body.get("artifact") or {}
            if artifact.get("stats") or body.get("facets"):
                found.append(int(idx))
    return sorted(set(found))


def erase_payloads(store: Store, indexes: Sequence[int], reason: str, by: str) -> list[int]:
    """Erase each listed entry not erased yet, through :func:`datatrail.audit.erase`."""
    from datatrail.audit import erase

    todo = _not_erased(store, indexes)
    done: list[int] = []
    for n, idx in enumerate(todo):
        erase(store, idx, reason=reason, actor=acting_actor(by), scrub=n == len(todo) - 1)
        done.append(idx)
    return done


def _not_erased(store: Store, indexes: Sequence[int]) -> list[int]:
    wanted = sorted(set(indexes))
    out: list[int] = []
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        out.extend(
            int(r[0])
            for r in store.query(
                f"SELECT idx FROM events WHERE idx IN ({marks}) AND erased_by IS NULL "
                "AND kind != 'erasure'",
                chunk,
            )
        )
    return sorted(out)


def _owner_items(context: Any, items: Iterable[Disposition]) -> dict[str, list[dict[str, Any]]]:
    by_owner: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        node = parse_node_id(item.dataset)
        for owner in context.owners(node.namespace or "", node.name or ""):
            by_owner.setdefault(owner, []).append(
                {
                    "artifact": item.artifact,
                    "dataset": item.dataset,
                    "status": item.status,
                    "action": item.action or "review",
                    "rule": item.delete_rule,
                    "due": item.delete_due,
                    "reason": item.reason,
                }
            )
    return by_owner


def apply(
    store: Store,
    *,
    policy: Policy | None = None,
    version: int | None = None,
    now: str | None = None,
    by: str | None = None,
    adapters: AdapterContext | None = None,
    payloads: Payloads = "values",
    dry_run: bool = False,
) -> ApplyResult:
    """Carry out the plan: owners notified, data deleted/archived, receipts written, payloads erased.

    Items whose action is ``review`` are queued (``retention.review`` records) and
    wait for :func:`decide_review`. ``payloads`` says which provenance payloads of
    classified artifacts to erase (see :func:`payload_events`). ``dry_run`` only
    reports what would be done.
    """
    who = principal(by)
    moment = parse_ts(now) if now else now_ts()
    context = load_context(store, policy, version)
    facts = load_facts(store)
    current = plan(store, now=moment, context=context, facts=facts)
    due = current.actionable()
    to_queue = [
        d
        for d in current.items
        if d.status == "review" and (d.artifact, d.dataset) not in facts.reviews
    ]
    if dry_run:
        return ApplyResult(
            now=moment,
            policy_version=current.policy_version,
            dry_run=True,
            applied=[
                AppliedItem(
                    artifact=d.artifact,
                    dataset=d.dataset,
                    action=d.action or "",
                    storage="planned",
                    rule=d.delete_rule,
                )
                for d in due
            ],
            queued=to_queue,
            failed=[],
            notifications=0,
        )
    adapter_ctx = adapters or AdapterContext()
    if adapter_ctx.archive_dir is None and any(d.action == "archive" and d.current for d in due):
        raise ConfigError(
            "the plan archives data but no archive folder is set; give --archive-dir "
            "(AdapterContext(archive_dir=...)); nothing was done"
        )
    # Owners hear about deletion candidates before retention acts on them.
    sent = notify_owners(
        store, context, "retention.candidates", _owner_items(context, [*due, *to_queue])
    )
    actor = acting_actor(who)
    if to_queue:
        append_records(
            store,
            [
                (
                    TOPIC_REVIEW,
                    d.node,
                    {
                        "artifact": d.artifact,
                        "dataset": d.dataset,
                        "decision": "queued",
                        "rule": d.delete_rule,
                        "due": d.delete_due,
                        "policy_version": d.policy_version,
                        "reason": d.reason,
                        "by": who,
                    },
                )
                for d in to_queue
            ],
            actor=actor,
        )
    done: list[tuple[Disposition, str, list[int]]] = []
    failed: list[AppliedItem] = []
    for item in due:
        action = item.action or "delete"
        try:
            outcome = storage_action(item, action, adapter_ctx)
        except StorageError as exc:
            failed.append(
                AppliedItem(
                    artifact=item.artifact,
                    dataset=item.dataset,
                    action=action,
                    storage="failed",
                    rule=item.delete_rule,
                    error=str(exc),
                )
            )
            continue
        done.append((item, outcome, []))
    classified = [item.artifact for item, _, _ in done if item.labels]
    erase_at = payload_events(store, classified, payloads) if classified else []
    by_artifact: dict[str, list[int]] = {}
    if erase_at:
        for art in dict.fromkeys(classified):
            idxs = {
                int(r[0])
                for r in store.query("SELECT idx FROM run_io WHERE artifact_id = ?", (art,))
            }
            by_artifact[art] = sorted(idxs.intersection(erase_at))
    records = []
    for item, outcome, _ in done:
        records.append(
            (
                TOPIC_PURGED,
                item.node,
                _receipt(
                    item, item.action or "delete", outcome, who, by_artifact.get(item.artifact, [])
                ),
            )
        )
    indexes = append_records(store, records, actor=actor)
    applied = [
        AppliedItem(
            artifact=item.artifact,
            dataset=item.dataset,
            action=item.action or "delete",
            storage=outcome,
            rule=item.delete_rule,
            receipt_index=index,
            erased_events=by_artifact.get(item.artifact, []),
        )
        for (item, outcome, _), index in zip(done, indexes, strict=True)
    ]
    resumed = erase_payloads(
        store, _pending_erasures(store), "retention purge: personal values in provenance", who
    )
    return ApplyResult(
        now=moment,
        policy_version=current.policy_version,
        dry_run=False,
        applied=applied,
        queued=to_queue,
        failed=failed,
        notifications=sent,
        resumed_erasures=[i for i in resumed if i not in erase_at],
    )


def _receipt(
    item: Disposition, action: str, outcome: str, who: str, erased: list[int]
) -> dict[str, Any]:
    return {
        "artifact": item.artifact,
        "dataset": item.dataset,
        "hash": item.artifact,
        "action": action,
        "rule": item.delete_rule,
        "mode": item.delete_mode,
        "policy_version": item.policy_version,
        "storage": outcome,
        "labels": item.labels,
        "first_index": item.first_index,
        "reason": item.reason,
        "by": who,
        "erased_events": erased,
    }


def _pending_erasures(store: Store) -> list[int]:
    wanted = [i for r in purge_receipts(store) for i in r.erased_events]
    return _not_erased(store, wanted) if wanted else []


def review_queue(
    store: Store,
    *,
    now: str | None = None,
    policy: Policy | None = None,
    version: int | None = None,
) -> list[Disposition]:
    """Items awaiting a reviewer's decision (status ``review``), oldest first."""
    current = plan(store, now=now, policy=policy, version=version)
    return sorted(
        (d for d in current.items if d.status == "review"), key=lambda d: (d.created, d.artifact)
    )


def decide_review(
    store: Store,
    artifact: str,
    *,
    decision: Literal["approve", "extend"],
    reason: str,
    dataset: str | None = None,
    until: str | None = None,
    extend_by: timedelta | None = None,
    by: str | None = None,
    now: str | None = None,
    policy: Policy | None = None,
    version: int | None = None,
) -> ReviewRecord:
    """Approve deletion of a queued item, or extend its keep (to ``until`` or by ``extend_by``)."""
    why = check_reason(reason, "a review decision")
    if decision not in ("approve", "extend"):
        raise UsageError(f"a review decision is approve or extend, not {decision!r}")
    art = artifact.removeprefix("artifact:")
    waiting = [
        d for d in review_queue(store, now=now, policy=policy, version=version) if d.artifact == art
    ]
    if dataset is not None:
        waiting = [d for d in waiting if d.dataset == dataset]
    if not waiting:
        raise UsageError(
            f"artifact {art} is not awaiting review; `datatrail retention review` lists the queue"
        )
    if len(waiting) > 1:
        listed = ", ".join(d.dataset for d in waiting)
        raise UsageError(
            f"artifact {art} awaits review in several datasets ({listed}); give --dataset"
        )
    item = waiting[0]
    data: dict[str, Any] = {
        "artifact": item.artifact,
        "dataset": item.dataset,
        "decision": decision,
        "reason": why,
        "by": principal(by),
        "rule": item.delete_rule,
        "policy_version": item.policy_version,
    }
    if decision == "extend":
        moment = parse_ts(now) if now else now_ts()
        if until is None and extend_by is None:
            raise UsageError("extending a keep needs --until DATE or --for PERIOD (e.g. 90d)")
        target = parse_ts(until) if until is not None else shift(moment, extend_by or timedelta(0))
        if target <= moment:
            raise UsageError(f"the extension must end in the future, not at {target}")
        data["until"] = target
    who = str(data["by"])
    (index,) = append_records(store, [(TOPIC_REVIEW, item.node, data)], actor=acting_actor(who))
    return ReviewRecord(
        artifact=item.artifact,
        dataset=item.dataset,
        decision=decision,
        reason=why,
        by=who,
        index=index,
        until=data.get("until"),
    )
