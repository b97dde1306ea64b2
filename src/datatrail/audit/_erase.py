"""``erase``: remove one event's payload, accounted for by a receipt in the log.

The receipt (an ``erasure`` event naming the entry's index, id, leaf hash,
kind and time) is appended through the store; the store nulls the body, marks the entry
``erased_by`` the receipt and derives the projections again without it, in
one transaction. The leaf hash stays, so the tree and every signed checkpoint
still verify. For SQLite the freed pages are then scrubbed, so the erased
bytes are gone from the file, not just unreachable.
"""

from __future__ import annotations

import getpass
import os
import socket
import sqlite3
from pathlib import Path

import msgspec

from datatrail.errors import InvalidEvent, NodeNotFound, StoreError, UsageError
from datatrail.model import Actor, ErasureRecorded, now_ts, uuid7
from datatrail.store import SQLiteStore, Store, StoredEvent

__all__ = ["ErasureResult", "erase", "find_event"]


class ErasureResult(msgspec.Struct, frozen=True, kw_only=True):
    """What ``erase`` did: the entry erased and the receipt that accounts for it."""

    target_index: int
    target_id: str
    target_kind: str
    leaf_hash: str
    receipt_index: int
    receipt_id: str
    reason: str
    checkpoint: str | None
    """The signed checkpoint that covers the receipt."""
    scrubbed: bool
    """Whether the store file was compacted so the erased bytes are physically gone."""


def _actor() -> Actor:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return Actor(user=user, host=socket.gethostname())


def find_event(store: Store, event: int | str) -> StoredEvent:
    """An entry by log index or event id (a string of digits is read as an index)."""
    key: int | str = event
    if isinstance(event, str) and event.strip().isdigit():
        key = int(event.strip())
    found = store.event(key)
    if found is None:
        what = f"entry {key}" if isinstance(key, int) else f"event {key!r}"
        raise NodeNotFound(
            f"no {what} in this trail (it holds {store.size()} entries); "
            "give a log index or an event id"
        )
    return found


def erase(
    store: Store,
    event: int | str,
    *,
    reason: str,
    actor: Actor | None = None,
    scrub: bool = True,
) -> ErasureResult:
    """Erase the payload of the event at ``event`` (a log index or an event id).

    Raises :class:`~datatrail.errors.NodeNotFound` for an unknown event and
    :class:`~datatrail.errors.InvalidEvent` for one already erased or for an
    erasure receipt; nothing is written then. ``scrub`` compacts an SQLite
    store afterwards so no copy of the erased bytes stays in free pages.
    """
    if not isinstance(reason, str) or not reason.strip():
        raise UsageError("an erasure needs a reason, e.g. --reason 'GDPR request 2026-114'")
    target = find_event(store, event)
    if target.erased_by is not None or target.body is None:
        raise InvalidEvent(
            f"entry {target.index} ({target.id}) was already erased by entry {target.erased_by}; "
            "nothing to do"
        )
    if target.kind == "erasure":
        raise InvalidEvent(
            f"entry {target.index} is an erasure receipt; receipts cannot be erased, "
            "they are what accounts for an erasure"
        )
    receipt = ErasureRecorded(
        id=uuid7(),
        ts=now_ts(),
        target_index=target.index,
        target_id=target.id,
        leaf_hash=bytes(target.leaf).hex(),
        reason=reason.strip(),
        actor=actor or _actor(),
        # The body that held these goes: the receipt keeps them in evidence.
        target_kind=target.kind,
        target_ts=target.ts,
    )
    result = store.append([receipt])
    if result.appended != 1:
        raise StoreError(f"the store did not append the erasure receipt {receipt.id}")
    scrubbed = scrub and _scrub(store)
    return ErasureResult(
        target_index=target.index,
        target_id=target.id,
        target_kind=target.kind,
        leaf_hash=receipt.leaf_hash,
        receipt_index=result.first_index,
        receipt_id=receipt.id,
        reason=receipt.reason,
        checkpoint=result.checkpoint,
        scrubbed=scrubbed,
    )


def _scrub(store: Store) -> bool:
    """Rewrite an SQLite store so the erased body is not left in free pages or the WAL."""
    path = getattr(store, "path", None)
    if not isinstance(store, SQLiteStore) or not isinstance(path, Path):
        return False
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=30.0)
    try:
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error as exc:
        raise StoreError(
            f"the erasure is recorded, but compacting {path} failed ({exc}); "
            "run `sqlite3 FILE 'VACUUM'` when no writer is active"
        ) from None
    finally:
        conn.close()
    return True
