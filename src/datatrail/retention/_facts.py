"""Reading the retention facts back from the ``records`` projection, set-based.

Holds, purge receipts, review decisions, last accesses and named clock events
are each read with one query over ``records`` (indexed by topic), never one
query per artifact, so a plan over a million artifacts reads them once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from datatrail.governance._records import DATA_READS
from datatrail.model import from_json
from datatrail.retention._common import (
    EVENT_PREFIX,
    TOPIC_HOLD_ADDED,
    TOPIC_HOLD_RELEASED,
    TOPIC_PURGED,
    TOPIC_REVIEW,
)
from datatrail.store import Store

__all__ = [
    "Facts",
    "Hold",
    "PurgeReceipt",
    "ReviewDecision",
    "active_holds",
    "load_facts",
    "purge_receipts",
]


class Hold(msgspec.Struct, frozen=True, kw_only=True):
    """A legal hold on a node: while active, nothing it covers is deleted, archived or erased."""

    node: str
    case: str
    reason: str
    by: str
    since: str
    index: int
    """The log index of the ``hold.added`` record."""
    released: str | None = None
    released_by: str | None = None
    release_reason: str | None = None

    @property
    def active(self) -> bool:
        return self.released is None


class PurgeReceipt(msgspec.Struct, frozen=True, kw_only=True):
    """A ``retention.purged`` record: one artifact of one dataset purged (or erased)."""

    artifact: str
    dataset: str | None
    action: str
    rule: str | None
    policy_version: int | None
    hash: str
    storage: str
    ts: str
    by: str
    index: int
    erased_events: list[int] = []
    certificate: str | None = None


class ReviewDecision(msgspec.Struct, frozen=True, kw_only=True):
    """The latest disposition-review record of one artifact of one dataset."""

    artifact: str
    dataset: str
    decision: str
    """``queued``, ``approve`` or ``extend``."""
    reason: str
    by: str
    ts: str
    index: int
    until: str | None = None


@dataclass
class Facts:
    """Everything a plan needs from the records, keyed for O(1) lookups."""

    holds_by_node: dict[str, list[Hold]] = field(default_factory=dict)
    purged: set[tuple[str, str | None]] = field(default_factory=set)
    reviews: dict[tuple[str, str], ReviewDecision] = field(default_factory=dict)
    last_access: dict[str, str] = field(default_factory=dict)
    events: dict[str, dict[str, str]] = field(default_factory=dict)
    """Event name -> node id -> the latest time it was recorded."""
    run_outputs: dict[str, list[str]] = field(default_factory=dict)
    """Held run id -> its artifact ids (inputs and outputs): a held run holds its data."""


def _data(text: str) -> dict[str, Any]:
    value = from_json(text)
    return value if isinstance(value, dict) else {}


def _holds(rows: Iterable[tuple[Any, ...]]) -> list[Hold]:
    """Holds from ``(idx, topic, subject, ts, data)`` rows in log order; releases close them."""
    open_: dict[tuple[str, str], Hold] = {}
    done: list[Hold] = []
    for idx, topic, subject, ts, text in rows:
        data = _data(text)
        key = (str(subject), str(data.get("case", "")))
        if topic == TOPIC_HOLD_ADDED:
            if key not in open_:
                open_[key] = Hold(
                    node=key[0],
                    case=key[1],
                    reason=str(data.get("reason", "")),
                    by=str(data.get("by", "")),
                    since=str(ts),
                    index=int(idx),
                )
        elif key in open_:
            hold = open_.pop(key)
            done.append(
                msgspec.structs.replace(
                    hold,
                    released=str(ts),
                    released_by=str(data.get("by", "")),
                    release_reason=str(data.get("reason", "")),
                )
            )
    return sorted([*open_.values(), *done], key=lambda h: h.index)


def all_holds(store: Store) -> list[Hold]:
    """Every hold ever placed, oldest first, released ones with their release."""
    rows = store.query(
        "SELECT idx, topic, subject, ts, data FROM records WHERE topic IN (?, ?) ORDER BY idx",
        (TOPIC_HOLD_ADDED, TOPIC_HOLD_RELEASED),
    )
    return _holds(rows)


def active_holds(store: Store) -> list[Hold]:
    """The holds in force now, oldest first."""
    return [h for h in all_holds(store) if h.active]


def purge_receipts(store: Store, artifact: str | None = None) -> list[PurgeReceipt]:
    """Purge receipts, oldest first; of one artifact (``blake3:…``) if given."""
    if artifact is None:
        rows = store.query(
            "SELECT idx, ts, data FROM records WHERE topic = ? ORDER BY idx", (TOPIC_PURGED,)
        )
    else:
        rows = store.query(
            "SELECT idx, ts, data FROM records WHERE topic = ? AND subject = ? ORDER BY idx",
            (TOPIC_PURGED, "artifact:" + artifact.removeprefix("artifact:")),
        )
    out = []
    for idx, ts, text in rows:
        data = _data(text)
        out.append(
            PurgeReceipt(
                artifact=str(data.get("artifact", "")),
                dataset=data.get("dataset"),
                action=str(data.get("action", "delete")),
                rule=data.get("rule"),
                policy_version=data.get("policy_version"),
                hash=str(data.get("hash", "")),
                storage=str(data.get("storage", "")),
                ts=str(ts),
                by=str(data.get("by", "")),
                index=int(idx),
                erased_events=[int(i) for i in data.get("erased_events", [])],
                certificate=data.get("certificate"),
            )
        )
    return out


def _reviews(store: Store) -> dict[tuple[str, str], ReviewDecision]:
    out: dict[tuple[str, str], ReviewDecision] = {}
    for idx, ts, text in store.query(
        "SELECT idx, ts, data FROM records WHERE topic = ? ORDER BY idx", (TOPIC_REVIEW,)
    ):
        data = _data(text)
        key = (str(data.get("artifact", "")), str(data.get("dataset", "")))
        decision = ReviewDecision(
            artifact=key[0],
            dataset=key[1],
            decision=str(data.get("decision", "")),
            reason=str(data.get("reason", "")),
            by=str(data.get("by", "")),
            ts=str(ts),
            index=int(idx),
            until=data.get("until"),
        )
        previous = out.get(key)
        # Queueing again never hides a reviewer's decision; any decision replaces the last.
        if decision.decision == "queued" and previous is not None:
            continue
        out[key] = decision
    return out


def load_facts(store: Store) -> Facts:
    """Read holds, purges, reviews, last accesses and clock events, one query each."""
    facts = Facts()
    for hold in active_holds(store):
        facts.holds_by_node.setdefault(hold.node, []).append(hold)
    for node in [n for n in facts.holds_by_node if n.startswith("run:")]:
        facts.run_outputs[node] = [
            str(r[0])
            for r in store.query(
                "SELECT DISTINCT artifact_id FROM run_io WHERE run_id = ?", (node[4:],)
            )
        ]
    for text in store.query("SELECT data FROM records WHERE topic = ?", (TOPIC_PURGED,)):
        data = _data(text[0])
        facts.purged.add((str(data.get("artifact", "")), data.get("dataset")))
    facts.reviews = _reviews(store)
    for subject, ts in store.query(
        # Reads of the data count; a catalog view of its page does not keep data alive.
        f"SELECT subject, MAX(ts) FROM records WHERE {DATA_READS} AND subject IS NOT NULL "
        "GROUP BY subject"
    ):
        facts.last_access[str(subject)] = str(ts)
    for topic, subject, ts in store.query(
        "SELECT topic, subject, MAX(ts) FROM records WHERE topic >= ? AND topic < ? "
        "AND subject IS NOT NULL GROUP BY topic, subject",
        (EVENT_PREFIX, EVENT_PREFIX[:-1] + "/"),
    ):
        name = str(topic)[len(EVENT_PREFIX) :]
        facts.events.setdefault(name, {})[str(subject)] = str(ts)
    return facts
