"""What every store provides, and the parts of the append path they share.

A store is the append-only event log (with its Merkle tree and checkpoints)
plus the projection tables derived from it. Backends differ only in how they
talk to their database; the SQL, the Merkle arithmetic and the projection
rules are shared here, so SQLite and PostgreSQL behave the same and one
contract suite tests both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import msgspec

from datatrail.model import Event

__all__ = ["AppendResult", "Progress", "Store", "StoredCheckpoint", "StoredEvent"]

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` during long work."""


class StoredEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of the log as stored: its index, ids, canonical bytes and leaf hash."""

    index: int
    id: str
    kind: str
    ts: str
    body: bytes | None
    """The canonical bytes, or ``None`` if the payload was erased."""
    leaf: bytes
    erased_by: int | None = None


class StoredCheckpoint(msgspec.Struct, frozen=True, kw_only=True):
    """A signed checkpoint kept by the store."""

    size: int
    root: bytes
    note: str
    ts: str


class AppendResult(msgspec.Struct, frozen=True, kw_only=True):
    """What an append did: where the new events landed and the checkpoint that covers them."""

    first_index: int
    appended: int
    duplicates: int
    size: int
    root: bytes
    checkpoint: str | None


@runtime_checkable
class Store(Protocol):
    """The contract every backend meets (tested by one suite over all of them)."""

    url: str
    stride: int
    """The tree levels ``tree_nodes`` keeps: the multiples of this (1: every level)."""

    def append(self, events: Sequence[Event], *, dedupe: bool = True) -> AppendResult:
        """Append events in order, atomically; events whose id is already stored are skipped.

        ``dedupe=False`` skips that check for events whose ids were just minted in
        this process (a fresh UUIDv7 cannot be stored already); replays keep it on.
        """
        ...

    def size(self) -> int:
        """How many entries the log holds."""
        ...

    def root(self, size: int | None = None) -> bytes:
        """The Merkle root of the first ``size`` entries (default: all)."""
        ...

    def events(self, start: int = 0, end: int | None = None) -> Iterator[StoredEvent]:
        """Stored entries with index in ``[start, end)``, in order."""
        ...

    def event(self, index_or_id: int | str) -> StoredEvent | None:
        """One entry by index or event id."""
        ...

    def leaves(self, start: int = 0, end: int | None = None) -> list[bytes]:
        """Leaf hashes of entries ``[start, end)``."""
        ...

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 inclusion proof of entry ``index`` in the tree of ``size`` entries."""
        ...

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 9162 consistency proof between two sizes of the tree."""
        ...

    def checkpoints(self) -> list[StoredCheckpoint]:
        """Every checkpoint, oldest first."""
        ...

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The newest checkpoint, if any."""
        ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read-only portable SQL query (``?`` placeholders) over the tables."""
        ...

    def table_rows(self, table: str) -> list[tuple[Any, ...]]:
        """Every row of a table, in a stable order (for verification)."""
        ...

    def rebuild(self, progress: Progress | None = None) -> int:
        """Drop and derive every projection from the log; returns the entries replayed."""
        ...

    def derive_projections(
        self, progress: Progress | None = None
    ) -> dict[str, list[tuple[Any, ...]]]:
        """Derive the projections from the log into scratch space and return their rows, touching nothing."""
        ...

    def meta(self) -> dict[str, str]:
        """The store's metadata (id, origin, schema version, ...)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
