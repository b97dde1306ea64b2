"""The append path and log reads shared by every backend.

A backend supplies a transaction and two ways to run SQL; this class does the
rest. Before the transaction it encodes the batch and hashes its leaves, work
that needs no lock, so concurrent writers wait on each other only for the
database's part. Then, in one transaction, it skips ids already stored,
extends the Merkle tree (only newly completed perfect-subtree nodes are
written), applies erasure receipts, derives projections and signs a checkpoint
for the batch, so a batch lands whole or not at all.

The tree is stored sparsely. A store created by this version keeps the
perfect-subtree hashes of every second level only (``tree_stride`` 2 in its
``meta``); a node on an odd level is the hash of its two children on the
stored level below (leaf hashes, for level 1), recomputed when a proof or
the frontier asks for it. That is one node row per three entries instead of
one per entry; ``verify`` still places a changed entry within four. Stores
made before keep every level (no ``tree_stride``: stride 1) and go on doing
so, so their rows stay exactly what ``verify`` expects.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

from datatrail.errors import InvalidEvent, ProofError, StoreError
from datatrail.ledger import (
    Checkpoint,
    CheckpointBinding,
    Signer,
    append_nodes,
    consistency_nodes,
    consistency_proof_from,
    frontier_nodes,
    inclusion_nodes,
    inclusion_proof_from,
    migrations_digest,
    root_from,
    root_from_frontier,
    root_nodes,
    sign_checkpoint,
)
from datatrail.ledger._merkle import _root as fold_level  # unchecked: hashes read here
from datatrail.model import ErasureRecorded, Event, decode_event, encode_event, now_ts
from datatrail.store._base import AppendResult, Progress, StoredCheckpoint, StoredEvent
from datatrail.store._projections import derive
from datatrail.store._schema import MIGRATIONS, PROJECTION_TABLES, sqlite_sql

__all__ = ["TREE_STRIDE", "LogEngine", "derive_in_memory", "tree_stride"]

_EMPTY_ROOT = hashlib.sha256(b"").digest()
_REBUILD_BATCH = 5000
_READ_BATCH = 5000


_KINDS: dict[type, str] = {}

TREE_STRIDE = 2
"""The level stride of the tree nodes a new store keeps (levels 2, 4, 6, ...)."""
_MAX_STRIDE = 8


def tree_stride(meta: dict[str, str]) -> int:
    """The level stride a store's ``meta`` declares: 1 (every level) when it declares none.

    Raises :class:`StoreError` for a value that is not a whole number from 1 to 8: the
    tree nodes of such a store cannot be read, so it is refused rather than guessed at.
    """
    text = meta.get("tree_stride")
    if text is None:
        return 1
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= _MAX_STRIDE):
        raise StoreError(
            f"the store's meta tree_stride is {text!r}, not a whole number from 1 to "
            f"{_MAX_STRIDE}; the store was damaged or edited (run `datatrail verify` on a copy "
            "made with a datatrail that reads it)"
        )
    return int(text)


def _kind(event: Event) -> str:
    cls = type(event)
    kind = _KINDS.get(cls)
    if kind is None:
        kind = _KINDS[cls] = str(cls.__struct_config__.tag)
    return kind


Prepared = tuple[Event, str, bytes, bytes]
"""An event ready to append: the event, its kind, its canonical bytes and its leaf hash."""


def prepare_batch(events: Sequence[Event]) -> list[Prepared]:
    """Encode and hash a batch: everything about its entries that needs no transaction."""
    sha256 = hashlib.sha256
    out = []
    for ev in events:
        body = encode_event(ev)
        out.append((ev, _kind(ev), body, sha256(b"\x00" + body).digest()))
    return out


class LogEngine:
    """Shared log logic over a backend's transaction and SQL hooks."""

    url: str

    def __init__(self, *, signer: Signer | None, origin: str, stride: int = 1) -> None:
        self.signer = signer
        self.origin = origin
        self.stride = stride
        """Levels of the tree kept in ``tree_nodes``: the multiples of this (see the module)."""
        self._frontier_cache: tuple[int, list[bytes]] | None = None
        # The checkpoint this object committed last, (size, root, time): the next one names
        # it as its predecessor, with no query while nothing else has appended since.
        self._checkpoint_cache: tuple[int, bytes, str] | None = None
        # The migrations binding, (steps, digest): a digest of a prefix of the rows, so it
        # stays true even if a newer datatrail adds steps while this one appends.
        self._migrations_cache: tuple[int, bytes] | None = None

    def _forget_tail(self) -> None:
        """Drop what appends left cached (frontier, checkpoint, migrations binding)."""
        self._frontier_cache = None
        self._checkpoint_cache = None
        self._migrations_cache = None

    # -- backend hooks ----------------------------------------------------------

    def _begin(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _execute(self, tx: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _executemany(self, tx: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        raise NotImplementedError

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    # -- append -----------------------------------------------------------------

    def append(self, events: Sequence[Event], *, dedupe: bool = True) -> AppendResult:
        """Append events in order, atomically (see :meth:`datatrail.store.Store.append`)."""
        return self._store(prepare_batch(events), dedupe=dedupe)

    def _store(self, batch: list[Prepared], *, dedupe: bool) -> AppendResult:
        """Append a prepared batch (a backend wraps :meth:`_append` here)."""
        return self._append(batch, dedupe=dedupe)

    def _append(self, encoded: list[Prepared], *, dedupe: bool = True) -> AppendResult:
        with self._begin() as tx:
            size = self._size_tx(tx)
            if encoded and dedupe:
                encoded, duplicates = self._drop_stored(tx, encoded)
            else:
                duplicates = 0
            frontier = self._frontier_tx(tx, size)
            if not encoded:
                root = root_from_frontier(frontier, size) if size else _EMPTY_ROOT
                return AppendResult(
                    first_index=size,
                    appended=0,
                    duplicates=duplicates,
                    size=size,
                    root=root,
                    checkpoint=None,
                )
            rows = [
                (size + i, ev.id, kind, ev.ts, body, leaf)
                for i, (ev, kind, body, leaf) in enumerate(encoded)
            ]
            leaves = [item[3] for item in encoded]
            self._executemany(
                tx,
                "INSERT INTO events (idx, id, kind, ts, body, leaf) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            nodes, new_frontier = append_nodes(frontier, size, leaves)
            stride = self.stride
            if stride > 1:
                nodes = [node for node in nodes if not node[0] % stride]
            if nodes:
                self._executemany(
                    tx, "INSERT INTO tree_nodes (level, idx, hash) VALUES (?, ?, ?)", nodes
                )
            new_size = size + len(encoded)
            root = root_from_frontier(new_frontier, new_size)
            indexed = [(size + i, item[0]) for i, item in enumerate(encoded)]
            erasures = [(i, ev) for i, ev in indexed if isinstance(ev, ErasureRecorded)]
            if erasures:
                self._apply_erasures(tx, erasures)
                self._rebuild_locked(tx, None)
            else:
                for sql, params in derive(indexed):
                    self._executemany(tx, sql, params)
            note, ts = self._checkpoint_tx(tx, size, new_size, root)
        # Only after the commit: a frontier from a failed transaction must never be reused.
        self._frontier_cache = (new_size, new_frontier)
        self._checkpoint_cache = (new_size, root, ts)
        return AppendResult(
            first_index=size,
            appended=len(encoded),
            duplicates=duplicates,
            size=new_size,
            root=root,
            checkpoint=note,
        )

    def _drop_stored(self, tx: Any, encoded: list[Prepared]) -> tuple[list[Prepared], int]:
        ids = [item[0].id for item in encoded]
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            found.update(
                r[0]
                for r in self._execute(tx, f"SELECT id FROM events WHERE id IN ({marks})", chunk)
            )
        seen: set[str] = set()
        kept = []
        for item in encoded:
            event_id = item[0].id
            if event_id in found or event_id in seen:
                continue
            seen.add(event_id)
            kept.append(item)
        return kept, len(encoded) - len(kept)

    def _apply_erasures(self, tx: Any, erasures: list[tuple[int, ErasureRecorded]]) -> None:
        for receipt_idx, ev in erasures:
            rows = self._execute(
                tx,
                "SELECT id, leaf, erased_by, kind, ts FROM events WHERE idx = ?",
                (ev.target_index,),
            )
            if not rows:
                raise InvalidEvent(f"erasure {ev.id}: there is no entry {ev.target_index} to erase")
            target_id, leaf, erased_by, kind, ts = rows[0]
            if target_id != ev.target_id or bytes(leaf).hex() != ev.leaf_hash:
                raise InvalidEvent(
                    f"erasure {ev.id}: entry {ev.target_index} is {target_id} with leaf {bytes(leaf).hex()}, "
                    f"not {ev.target_id} / {ev.leaf_hash}"
                )
            if erased_by is not None:
                raise InvalidEvent(
                    f"entry {ev.target_index} was already erased by entry {erased_by}"
                )
            if kind == "erasure":
                raise InvalidEvent(
                    f"entry {ev.target_index} is an erasure receipt; receipts cannot be erased"
                )
            # Older receipts lack the target's kind and time; a receipt that has them must be right,
            # since after this update they are the only evidence of the entry's kind and ts columns.
            named = (ev.target_kind, ev.target_ts)
            if any(isinstance(v, str) for v in named) and named != (kind, ts):
                raise InvalidEvent(
                    f"erasure {ev.id}: entry {ev.target_index} is a {kind} event at {ts}, "
                    f"not {ev.target_kind} at {ev.target_ts}"
                )
            self._execute(
                tx,
                "UPDATE events SET body = NULL, erased_by = ? WHERE idx = ?",
                (receipt_idx, ev.target_index),
            )

    def _checkpoint_tx(self, tx: Any, old_size: int, size: int, root: bytes) -> tuple[str, str]:
        """Sign and store the checkpoint of the grown tree; returns its note and time."""
        # The note binds the rows around the tree head too (datatrail.ledger.CheckpointBinding):
        # its stored time, the checkpoint before it (a chain: a deleted row breaks a link) and
        # the schema steps applied, so none of them can be changed or removed unseen.
        ts = now_ts()
        prev_size, prev_root, prev_ts = 0, _EMPTY_ROOT, None
        cached = self._checkpoint_cache
        if cached is not None and cached[0] == old_size:
            prev_size, prev_root, prev_ts = cached
        else:
            prev = self._execute(
                tx, "SELECT size, root, ts FROM checkpoints ORDER BY size DESC LIMIT 1"
            )
            if prev:
                prev_size, prev_root = int(prev[0][0]), bytes(prev[0][1])
                prev_ts = prev[0][2] if isinstance(prev[0][2], str) else None
        if prev_ts is not None and ts < prev_ts:
            ts = prev_ts  # a clock stepped back must not make signed times run backwards
        if self._migrations_cache is None:
            steps = self._execute(
                tx, "SELECT version, name, applied_at FROM migrations ORDER BY version"
            )
            self._migrations_cache = (len(steps), migrations_digest(steps))
        migrations, digest = self._migrations_cache
        binding = CheckpointBinding(
            time=ts,
            prev_size=prev_size,
            prev_root=prev_root,
            migrations=migrations,
            migrations_digest=digest,
        )
        checkpoint = Checkpoint(
            origin=self.origin, size=size, root=root, extensions=binding.lines()
        )
        note = (
            sign_checkpoint(checkpoint, self.signer)
            if self.signer is not None
            else checkpoint.body()
        )
        self._execute(
            tx,
            "INSERT INTO checkpoints (size, root, note, ts) VALUES (?, ?, ?, ?)",
            (size, root, note, ts),
        )
        return note, ts

    # -- tree reads -------------------------------------------------------------

    def _size_tx(self, tx: Any) -> int:
        row = self._execute(tx, "SELECT MAX(idx) FROM events")
        return 0 if row[0][0] is None else int(row[0][0]) + 1

    def _nodes_tx(self, tx: Any, wanted: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The hashes of the perfect nodes ``wanted``, from the stored levels.

        Each wanted node is the root of ``2 ** (level % stride)`` hashes on the stored
        level at or below it (leaf hashes on level 0): those are read in one query per
        table, and each node is folded up from its own.
        """
        stride = self.stride
        leaves: set[int] = set()
        inner: set[tuple[int, int]] = set()
        for level, idx in wanted:
            shift = level % stride
            base = level - shift
            first = idx << shift
            if base:
                inner.update((base, i) for i in range(first, first + (1 << shift)))
            else:
                leaves.update(range(first, first + (1 << shift)))
        stored: dict[tuple[int, int], bytes] = {}
        if leaves:
            marks = ", ".join("?" * len(leaves))
            for idx, leaf in self._execute(
                tx, f"SELECT idx, leaf FROM events WHERE idx IN ({marks})", sorted(leaves)
            ):
                stored[(0, int(idx))] = bytes(leaf)
        if inner:
            clause = " OR ".join("(level = ? AND idx = ?)" for _ in inner)
            flat = [v for pair in sorted(inner) for v in pair]
            for level, idx, h in self._execute(
                tx, f"SELECT level, idx, hash FROM tree_nodes WHERE {clause}", flat
            ):
                stored[(int(level), int(idx))] = bytes(h)
        found: dict[tuple[int, int], bytes] = {}
        missing: list[tuple[int, int]] = []
        for level, idx in wanted:
            base = level - level % stride
            shift = level - base
            first = idx << shift
            run: list[bytes] = []
            for i in range(first, first + (1 << shift)):
                h = stored.get((base, i))
                if h is None:
                    break
                run.append(h)
            if len(run) != 1 << shift:
                missing.append((level, idx))
                continue
            found[(level, idx)] = fold_level(run)  # a perfect subtree: its hashes folded
        if missing:
            raise ProofError(
                f"the store is missing tree nodes {missing[:3]}; run `datatrail verify`"
            )
        return found

    def _frontier_tx(self, tx: Any, size: int) -> list[bytes]:
        cached = self._frontier_cache
        if cached is not None and cached[0] == size:
            return list(cached[1])
        wanted = frontier_nodes(size)
        nodes = self._nodes_tx(tx, wanted)
        return [nodes[w] for w in wanted]

    def _read(self, fn: Any) -> Any:
        with self._begin() as tx:
            return fn(tx)

    def size(self) -> int:
        rows = self.query("SELECT MAX(idx) FROM events")
        return 0 if rows[0][0] is None else int(rows[0][0]) + 1

    def _check_size(self, size: int | None) -> int:
        current = self.size()
        if size is None:
            return current
        if size < 0 or size > current:
            raise ProofError(f"tree size {size} is out of range: the log holds {current} entries")
        return size

    def root(self, size: int | None = None) -> bytes:
        n = self._check_size(size)
        if n == 0:
            return _EMPTY_ROOT
        wanted = root_nodes(n)
        return root_from(self._read(lambda tx: self._nodes_tx(tx, wanted)), n)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        n = self._check_size(size)
        if not 0 <= index < n:
            raise ProofError(f"entry {index} is not in a tree of {n} entries")
        wanted = inclusion_nodes(index, n)
        return inclusion_proof_from(self._read(lambda tx: self._nodes_tx(tx, wanted)), index, n)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        n = self._check_size(new_size)
        if not 0 < old_size <= n:
            raise ProofError(f"old size {old_size} must be between 1 and the new size {n}")
        wanted = consistency_nodes(old_size, n)
        return consistency_proof_from(
            self._read(lambda tx: self._nodes_tx(tx, wanted)), old_size, n
        )

    def leaves(self, start: int = 0, end: int | None = None) -> list[bytes]:
        stop = self.size() if end is None else end
        rows = self.query(
            "SELECT leaf FROM events WHERE idx >= ? AND idx < ? ORDER BY idx", (start, stop)
        )
        return [bytes(r[0]) for r in rows]

    def event(self, index_or_id: int | str) -> StoredEvent | None:
        column = "idx" if isinstance(index_or_id, int) else "id"
        rows = self.query(
            f"SELECT idx, id, kind, ts, body, leaf, erased_by FROM events WHERE {column} = ?",
            (index_or_id,),
        )
        if not rows:
            return None
        r = rows[0]
        body = None if r[4] is None else bytes(r[4])
        return StoredEvent(
            index=r[0], id=r[1], kind=r[2], ts=r[3], body=body, leaf=bytes(r[5]), erased_by=r[6]
        )

    def events(self, start: int = 0, end: int | None = None) -> Iterator[StoredEvent]:
        stop = self.size() if end is None else end
        pos = start
        while pos < stop:
            upper = min(pos + _READ_BATCH, stop)
            rows = self.query(
                "SELECT idx, id, kind, ts, body, leaf, erased_by FROM events "
                "WHERE idx >= ? AND idx < ? ORDER BY idx",
                (pos, upper),
            )
            for r in rows:
                yield StoredEvent(
                    index=r[0], id=r[1], kind=r[2], ts=r[3], body=r[4], leaf=r[5], erased_by=r[6]
                )
            if not rows:
                return
            pos = upper

    def checkpoints(self) -> list[StoredCheckpoint]:
        rows = self.query("SELECT size, root, note, ts FROM checkpoints ORDER BY size")
        return [StoredCheckpoint(size=r[0], root=bytes(r[1]), note=r[2], ts=r[3]) for r in rows]

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        rows = self.query("SELECT size, root, note, ts FROM checkpoints ORDER BY size DESC LIMIT 1")
        if not rows:
            return None
        r = rows[0]
        return StoredCheckpoint(size=r[0], root=bytes(r[1]), note=r[2], ts=r[3])

    def meta(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self.query("SELECT key, value FROM meta")}

    def schema_version(self) -> int:
        """The newest migration recorded in the store."""
        rows = self.query("SELECT MAX(version) FROM migrations")
        return int(rows[0][0] or 0)

    # -- projections --------------------------------------------------------------

    def _rebuild_locked(self, tx: Any, progress: Progress | None) -> int:
        for table in PROJECTION_TABLES:
            self._execute(tx, f"DELETE FROM {table}")
        total = self._size_tx(tx)
        done = 0
        while done < total:
            rows = self._execute(
                tx,
                "SELECT idx, body FROM events WHERE idx >= ? AND idx < ? ORDER BY idx",
                (done, done + _REBUILD_BATCH),
            )
            batch = [
                (int(idx), decode_event(bytes(body))) for idx, body in rows if body is not None
            ]
            for sql, params in derive(batch):
                self._executemany(tx, sql, params)
            done += _REBUILD_BATCH
            if progress is not None:
                progress(min(done, total), total)
        return total

    def derive_projections(
        self, progress: Progress | None = None
    ) -> dict[str, list[tuple[Any, ...]]]:
        return derive_in_memory(self, progress)


def derive_in_memory(
    store: Any, progress: Progress | None = None
) -> dict[str, list[tuple[Any, ...]]]:
    """Derive every projection from ``store``'s log into a scratch SQLite database; return the rows.

    Used by ``verify``: the stored projections must equal these exactly.
    """
    scratch = sqlite3.connect(":memory:")
    try:
        for migration in MIGRATIONS:  # the whole schema, as a fresh store would have it
            for statement in migration.statements:
                scratch.execute(sqlite_sql(statement))
        total = store.size()
        batch: list[tuple[int, Event]] = []
        for done, stored in enumerate(store.events(), start=1):
            if stored.body is not None:
                batch.append((stored.index, decode_event(bytes(stored.body))))
            if len(batch) >= _REBUILD_BATCH:
                for sql, params in derive(batch):
                    scratch.executemany(sql, params)
                batch.clear()
                if progress is not None:
                    progress(done, total)
        for sql, params in derive(batch):
            scratch.executemany(sql, params)
        if progress is not None:
            progress(total, total)
        result = {}
        for table in PROJECTION_TABLES:
            ncols = len(scratch.execute(f"SELECT * FROM {table} LIMIT 0").description)
            order = ", ".join(str(i + 1) for i in range(ncols))
            result[table] = scratch.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()
        return result
    finally:
        scratch.close()
