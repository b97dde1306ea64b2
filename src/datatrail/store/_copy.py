"""Copying a whole trail to another store, ledger and all (``datatrail migrate``).

The log is copied as stored — canonical bytes, leaf hashes, erasure marks, tree
nodes and every signed checkpoint — and the target takes the source's store id
and origin, so the same verifier key checks it and its root is the same. The
signed notes also commit to the source's ``migrations`` rows (their binding
lines), so the target takes those rows' times too and must end up with the
same rows. The projections are then derived again on the target, which is
what ``verify`` compares them with anyway.
"""

from __future__ import annotations

from typing import Any

from datatrail.errors import StoreError
from datatrail.store._base import Progress
from datatrail.store._engine import LogEngine

__all__ = ["copy_trail"]

_CHUNK = 20_000


def copy_trail(source: LogEngine, target: LogEngine, progress: Progress | None = None) -> int:
    """Copy every entry, tree node and checkpoint of ``source`` into an empty ``target``.

    Returns the number of entries copied. Raises :class:`StoreError` if the target
    already holds entries (a migration never merges two logs). All of it is one
    transaction on the target: a copy cut short leaves the target empty.
    """
    size = source.size()
    meta = source.meta()
    with target._begin() as tx:
        if target._size_tx(tx):
            raise StoreError(
                f"the target store already holds {target._size_tx(tx):,} entries; "
                "migrate into an empty store"
            )
        # Store id, origin and tree stride: the source's, and nothing else (a source made
        # before strides keeps every tree level, and so must its copy).
        target._execute(tx, "DELETE FROM meta")
        for key, value in meta.items():
            target._execute(tx, "INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))
        # The store's creation time (when schema v1 was applied) bounds its checkpoint times,
        # and the copied notes commit to every step's time: the target's rows must be the source's.
        steps = "SELECT version, name, applied_at FROM migrations ORDER BY version"
        wanted = [tuple(r) for r in source.query(steps)]
        for version, _, applied_at in wanted:
            target._execute(
                tx, "UPDATE migrations SET applied_at = ? WHERE version = ?", (applied_at, version)
            )
        got = [tuple(r) for r in target._execute(tx, steps)]
        if got != wanted:
            raise StoreError(
                f"the target's schema steps {[r[:2] for r in got]} differ from the source's "
                f"{[r[:2] for r in wanted]}; open both with the same datatrail version first"
            )
        done = 0
        while done < size:
            rows = source.query(
                "SELECT idx, id, kind, ts, body, leaf, erased_by FROM events "
                "WHERE idx >= ? AND idx < ? ORDER BY idx",
                (done, done + _CHUNK),
            )
            target._executemany(
                tx,
                "INSERT INTO events (idx, id, kind, ts, body, leaf) VALUES (?, ?, ?, ?, ?, ?)",
                [(int(r[0]), r[1], r[2], r[3], _bytes(r[4]), _bytes(r[5])) for r in rows],
            )
            erased = [(int(r[6]), int(r[0])) for r in rows if r[6] is not None]
            if erased:
                target._executemany(tx, "UPDATE events SET erased_by = ? WHERE idx = ?", erased)
            done += _CHUNK
            if progress is not None:
                progress(min(done, size), size * 2)
        (top,) = source.query("SELECT COALESCE(MAX(level), 0) FROM tree_nodes")[0]
        for level in range(int(top) + 1):
            nodes = source.query(
                "SELECT level, idx, hash FROM tree_nodes WHERE level = ? ORDER BY idx", (level,)
            )
            for start in range(0, len(nodes), _CHUNK):
                target._executemany(
                    tx,
                    "INSERT INTO tree_nodes (level, idx, hash) VALUES (?, ?, ?)",
                    [(int(a), int(b), _bytes(h)) for a, b, h in nodes[start : start + _CHUNK]],
                )
        checkpoints = source.query("SELECT size, root, note, ts FROM checkpoints ORDER BY size")
        target._executemany(
            tx,
            "INSERT INTO checkpoints (size, root, note, ts) VALUES (?, ?, ?, ?)",
            [(int(s), _bytes(r), n, t) for s, r, n, t in checkpoints],
        )

        def derived(done: int, total: int) -> None:
            if progress is not None:
                progress(size + done, size * 2)

        target._rebuild_locked(tx, derived)
    target._forget_tail()  # the source's tree, checkpoints and migration times now
    target.origin, target.stride = source.origin, source.stride  # appends go on as the source's
    return size


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)
