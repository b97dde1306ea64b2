"""What the retention room shares: record topics, the acting principal, time arithmetic, appends.

Every fact this room keeps is a :class:`~datatrail.model.Record` in the log; the
topics and their ``data`` shapes are listed here once and documented in
``docs/retention.md``.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from datatrail.errors import StoreError, UsageError
from datatrail.model import Actor, Record, now_ts, parse_node_id, uuid7
from datatrail.store import Store

__all__ = [
    "EVENT_PREFIX",
    "TOPIC_CERTIFICATE",
    "TOPIC_HOLD_ADDED",
    "TOPIC_HOLD_RELEASED",
    "TOPIC_PURGED",
    "TOPIC_REVIEW",
    "acting_actor",
    "append_records",
    "check_node",
    "check_reason",
    "principal",
    "shift",
    "to_datetime",
]

TOPIC_HOLD_ADDED = "hold.added"
TOPIC_HOLD_RELEASED = "hold.released"
TOPIC_PURGED = "retention.purged"
TOPIC_REVIEW = "retention.review"
TOPIC_CERTIFICATE = "retention.deletion_certificate"
_FIRST = "0001-01-01T00:00:00.000000Z"
_LAST = "9999-12-31T23:59:59.999999Z"
EVENT_PREFIX = "event."
"""A named clock event ``NAME`` is a record with topic ``event.NAME`` about a node."""


def principal(given: str | None = None) -> str:
    """Who acts: ``given``, else ``$DATATRAIL_PRINCIPAL``, else the OS user."""
    from datatrail.governance._writes import principal_name

    return given or principal_name()


def acting_actor(who: str | None = None) -> Actor:
    """The actor recorded on every record this room appends."""
    return Actor(user=principal(who), host=socket.gethostname())


def check_reason(reason: str | None, what: str) -> str:
    """A non-empty reason, or a :class:`UsageError` that says how to give one."""
    if reason is None or not reason.strip():
        raise UsageError(f"{what} needs a reason, e.g. --reason 'ticket LEGAL-42'")
    return reason.strip()


def check_node(node: str) -> str:
    """A node id in its canonical spelling (``blake3:…`` alone is read as an artifact)."""
    text = node.strip()
    if text.startswith(("blake3:", "uuid:")):
        text = "artifact:" + text
    return str(parse_node_id(text))


def to_datetime(ts: str) -> datetime:
    """An event timestamp (``…Z``) as an aware UTC datetime."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def shift(ts: str, delta: timedelta) -> str:
    """``ts`` moved by ``delta``, in the event timestamp format (clamped to the calendar)."""
    try:
        moved = datetime.fromisoformat(ts[:-1]) + delta  # naive UTC: the format ends in Z
    except OverflowError:
        return _LAST if delta > timedelta(0) else _FIRST
    if moved.year < 1000:  # isoformat pads the year, but keep the clamp explicit
        return _FIRST
    return moved.isoformat(timespec="microseconds") + "Z"


def append_records(
    store: Store,
    records: Sequence[tuple[str, str | None, dict[str, Any]]],
    *,
    actor: Actor,
    ts: str | None = None,
) -> list[int]:
    """Append ``(topic, subject, data)`` records in one batch; returns their log indexes."""
    if not records:
        return []
    when = ts or now_ts()
    events = [
        Record(id=uuid7(), ts=when, topic=topic, subject=subject, data=data, actor=actor)
        for topic, subject, data in records
    ]
    result = store.append(events, dedupe=False)
    if result.appended != len(events):
        raise StoreError(
            f"the store appended {result.appended} of {len(events)} retention records; "
            "run `datatrail verify`"
        )
    return list(range(result.first_index, result.first_index + len(events)))
