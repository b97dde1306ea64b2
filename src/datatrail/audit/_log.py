"""Verifying the log itself: entries, the Merkle tree and erasure receipts.

The entries are streamed in batches; only their 32-byte leaf hashes are kept,
and from them every perfect subtree is recomputed and compared with
``tree_nodes``. Checkpoints are read off that recomputed tree
(:mod:`datatrail.audit._checkpoints`).
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, get_args

from datatrail.audit._collect import TS_FORMAT, Faults, as_bytes, short
from datatrail.audit._faults import ErasedEntry
from datatrail.errors import InvalidEvent
from datatrail.ledger import root_nodes
from datatrail.model import (
    ErasureRecorded,
    Event,
    canonical_bytes,
    decode_event,
    encode_event,
    from_json,
)
from datatrail.store import Store

__all__ = ["LogScan", "check_erasures", "check_tree", "count", "scan_events"]

_sha256 = hashlib.sha256
_PLACEHOLDER = bytes(32)  # stands in for a missing or malformed leaf so positions stay right
_BATCH = 10_000

_EVENT_COLS = "idx, id, kind, ts, body, leaf, erased_by"


_KINDS = frozenset(t.__struct_config__.tag for t in get_args(Event))


def _tag(event: Event) -> str:
    return type(event).__struct_config__.tag  # type: ignore[return-value]


@dataclass
class LogScan:
    """What the entry pass learned: leaf hashes in index order, erased entries, receipts."""

    leaves: list[bytes] = field(default_factory=list)
    levels: list[list[bytes]] = field(default_factory=list)
    erased: dict[int, tuple[Any, bytes, Any, Any, Any]] = field(default_factory=dict)
    """index -> (id, leaf, erased_by, kind, ts) columns of entries whose body is NULL."""
    receipts: dict[int, ErasureRecorded] = field(default_factory=dict)
    """index -> erasure receipt event."""
    proven: list[int] = field(default_factory=list)
    """Sizes, ascending, of validly signed checkpoints whose root the leaves reproduce:
    the entries below each are exactly the signed ones (set by the checkpoint pass)."""

    @property
    def size(self) -> int:
        return len(self.leaves)

    def tree(self) -> list[list[bytes]]:
        """Every level of the recomputed tree (built on first use): leaves first."""
        if not self.levels:
            self.levels = _build_levels(self.leaves)
        return self.levels

    def root(self, size: int) -> bytes:
        """The RFC 9162 root of the first ``size`` leaves, from the recomputed perfect nodes."""
        parts = root_nodes(size)
        if not parts:
            return _sha256(b"").digest()
        self.tree()
        level, idx = parts[-1]
        acc = self.levels[level][idx]
        for level, idx in reversed(parts[:-1]):
            acc = _sha256(b"\x01" + self.levels[level][idx] + acc).digest()
        return acc


def _is_canonical(body: bytes) -> bool:
    # Decoding into builtins keeps fields a newer writer added, which the typed decode drops.
    try:
        return canonical_bytes(from_json(body)) == body
    except (InvalidEvent, TypeError, ValueError):
        return False


def count(store: Store, sql: str) -> int:
    """The integer a ``SELECT COUNT(*)`` or ``MAX`` query returns; 0 for NULL or garbage."""
    value = store.query(sql)[0][0]
    return value if type(value) is int else 0


def scan_events(store: Store, faults: Faults, progress: Callable[[int], None]) -> LogScan:
    """Check every entry: index order, leaf hash, body decoding and canonical form, columns."""
    scan = LogScan()
    leaves = scan.leaves
    add_leaf = leaves.append
    nulls = count(store, "SELECT COUNT(*) FROM events WHERE idx IS NULL")
    if nulls:
        faults.add("index_gap", None, "events", f"{nulls} entries have no index (NULL)")
    rows_total = count(store, "SELECT COUNT(*) FROM events")
    ckpt_max = count(store, "SELECT MAX(size) FROM checkpoints")
    # Filling a gap with placeholders is only sensible up to where the log can reach: the
    # stored rows and the signed sizes bound it (and the memory the placeholders take).
    reach = ckpt_max + rows_total
    expected = 0
    cursor: int | float | None = None
    done = 0
    while True:
        if cursor is None:
            rows = store.query(
                f"SELECT {_EVENT_COLS} FROM events WHERE idx IS NOT NULL ORDER BY idx LIMIT ?",
                (_BATCH,),
            )
        else:
            rows = store.query(
                f"SELECT {_EVENT_COLS} FROM events WHERE idx > ? ORDER BY idx LIMIT ?",
                (cursor, _BATCH),
            )
        if not rows:
            break
        for idx, eid, kind, ts, body, leaf, erased_by in rows:
            if type(idx) is not int:
                faults.add(
                    "index_gap", None, "events", f"an entry's index {short(idx)} is not an integer"
                )
                if isinstance(idx, float):
                    cursor = idx
                    continue
                return _finish(scan, progress, rows_total)  # text and blobs sort last
            cursor = idx
            if idx != expected:
                if idx < expected:
                    faults.add(
                        "index_gap", None, "events", f"entry {idx} has a negative or repeated index"
                    )
                    continue
                if idx >= reach:
                    faults.blame_entry(
                        "unexpected_row",
                        expected,
                        f"entry {idx} lies beyond the end of the log, which stops at {expected}",
                    )
                    continue
                missing = (
                    f"entry {expected} is"
                    if idx == expected + 1
                    else f"entries {expected}..{idx - 1} are"
                )
                faults.blame_entry("index_gap", expected, f"{missing} missing from the log")
                leaves.extend([_PLACEHOLDER] * (idx - expected))
                expected = idx
            raw_leaf = as_bytes(leaf)
            if raw_leaf is None or len(raw_leaf) != 32:
                faults.blame_entry(
                    "leaf_mismatch", idx, f"entry {idx}'s leaf is not a 32-byte hash"
                )
                raw_leaf = _PLACEHOLDER
            if body is not None:
                _check_body(scan, faults, idx, eid, kind, ts, as_bytes(body), raw_leaf)
                if erased_by is not None:
                    faults.blame_entry(
                        "erasure_receipt_mismatch",
                        idx,
                        f"entry {idx} holds its body but says it was erased by entry {short(erased_by)}",
                    )
            else:
                scan.erased[idx] = (eid, raw_leaf, erased_by, kind, ts)
                if kind not in _KINDS or not isinstance(ts, str) or not TS_FORMAT.fullmatch(ts):
                    faults.blame_entry(
                        "event_columns_mismatch",
                        idx,
                        f"erased entry {idx} has kind {short(kind, 24)} and ts {short(ts, 32)}, "
                        "which no event can have",
                    )
            add_leaf(raw_leaf)
            expected += 1
        done += len(rows)
        progress(done)
    return _finish(scan, progress, rows_total)


def _finish(scan: LogScan, progress: Callable[[int], None], total: int) -> LogScan:
    progress(total)
    return scan


def _check_body(
    scan: LogScan,
    faults: Faults,
    idx: int,
    eid: Any,
    kind: Any,
    ts: Any,
    body: bytes | None,
    leaf: bytes,
) -> None:
    if body is None:
        faults.blame_entry("body_invalid", idx, f"entry {idx}'s body is not bytes")
        return
    if _sha256(b"\x00" + body).digest() != leaf:
        faults.blame_entry(
            "leaf_mismatch",
            idx,
            f"entry {idx}'s body does not hash to its leaf {leaf.hex()[:16]}…: "
            "the body or the leaf was changed",
        )
    try:
        event = decode_event(body)
    except InvalidEvent as exc:
        faults.blame_entry("body_invalid", idx, f"entry {idx}: {exc}")
        return
    tag = _tag(event)
    if event.id != eid or tag != kind or event.ts != ts:
        faults.blame_entry(
            "event_columns_mismatch",
            idx,
            f"entry {idx}'s columns (id {short(eid, 40)}, kind {short(kind, 20)}, ts {short(ts, 32)}) "
            f"differ from its body (id {event.id}, kind {tag}, ts {event.ts})",
        )
    if encode_event(event) != body and not _is_canonical(body):
        faults.blame_entry("body_not_canonical", idx, f"entry {idx}'s body is not canonical JSON")
    if isinstance(event, ErasureRecorded):
        scan.receipts[idx] = event


# -- the tree ---------------------------------------------------------------------


def _build_levels(leaves: list[bytes]) -> list[list[bytes]]:
    levels = [leaves]
    current = leaves
    while len(current) > 1:
        current = [
            _sha256(b"\x01" + a + b).digest()
            for a, b in zip(current[0::2], current[1::2], strict=False)
        ]
        levels.append(current)
    return levels


def check_tree(store: Store, scan: LogScan, faults: Faults) -> int:
    """Recompute every perfect subtree from the leaves and compare it with ``tree_nodes``.

    The store keeps the levels that are multiples of its stride (``store.stride``:
    4 for new stores, 1 for stores made before strides); every node of those
    levels must be there and right, and no other row may be. A node is blamed
    only when the stored nodes under it agree, so one changed leaf gives one
    fault, not one per level. A node over entries that a signed checkpoint
    proves in part is blamed on the first entry past the proven ones (run the
    checkpoint pass first to have them). Returns how many stored nodes were read.
    """
    stride = store.stride
    levels = scan.tree()
    top = len(levels)  # levels 1..top-1 hold nodes
    read = 0
    bad_below: set[int] = set()  # node indexes that mismatched on the stored level below
    for level in range(stride, top, stride):
        nodes = levels[level]
        bad_here: set[int] = set()
        expected = 0
        cursor = -(1 << 63)
        reading = True

        blame = _Blame(faults, level, stride, bad_below, bad_here, scan.proven)
        while reading:
            rows = store.query(
                "SELECT idx, hash FROM tree_nodes WHERE level = ? AND idx > ? ORDER BY idx LIMIT ?",
                (level, cursor, _BATCH),
            )
            reading = bool(rows)
            read += len(rows)
            for idx, stored in rows:
                if type(idx) is not int or not 0 <= idx < len(nodes):
                    faults.add(
                        "unexpected_row",
                        None,
                        "tree_nodes",
                        f"tree node (level {level}, index {short(idx)}) is outside a tree of "
                        f"{scan.size} leaves",
                    )
                    if type(idx) is not int:
                        reading = False  # text and blobs sort last: nothing usable follows
                        break
                    cursor = idx
                    continue
                cursor = idx
                while expected < idx:
                    blame("tree_node_missing", expected, "is missing")
                    expected += 1
                expected = idx + 1
                if as_bytes(stored) != nodes[idx]:
                    blame("tree_node_mismatch", idx, "differs from the hash of its children")
        while expected < len(nodes):
            blame("tree_node_missing", expected, "is missing")
            expected += 1
        bad_below = bad_here
    strays = store.query(
        "SELECT level, idx FROM tree_nodes WHERE level IS NULL OR idx IS NULL OR level < 1 "
        "OR level >= ? OR level % ? <> 0 ORDER BY level, idx LIMIT 100",
        (max(top, 1), stride),
    )
    for level, idx in strays:
        where = (
            f"a tree of {scan.size} leaves"
            if not isinstance(level, int) or level < 1 or level >= top
            else f"this store, which keeps only the levels that are multiples of {stride}"
        )
        faults.add(
            "unexpected_row",
            None,
            "tree_nodes",
            f"tree node (level {short(level)}, index {short(idx)}) cannot exist in {where}",
        )
    return read


@dataclass
class _Blame:
    """Reports faulty nodes of one stored level, pointing at the entry most likely at fault."""

    faults: Faults
    level: int
    stride: int
    bad_below: set[int]
    """Indexes of the faulty nodes on the stored level below."""
    bad_here: set[int]
    proven: list[int]

    def __call__(self, kind: str, idx: int, what: str) -> None:
        self.bad_here.add(idx)
        _node_fault(
            self.faults, kind, self.level, idx, self.bad_below, self.stride, self.proven, what
        )


def _node_fault(
    faults: Faults,
    kind: str,
    level: int,
    idx: int,
    bad_below: set[int],
    stride: int,
    proven: list[int],
    what: str,
) -> None:
    width = 1 << stride  # the stored nodes one stored level down under this one
    if level > stride and any(i in bad_below for i in range(idx * width, (idx + 1) * width)):
        return  # a consequence of the fault already reported below it
    start, end = idx << level, (idx + 1) << level
    blamed = faults.first_bad_in(start, end)
    if blamed is not None:
        cause = f"entry {blamed} is already at fault"
        first = blamed
    elif proven and proven[-1] >= end:
        # A signed checkpoint proves every entry under the node: the row itself is wrong.
        first = start
        cause = "those entries are as a signed checkpoint has them, so the node row is at fault"
    else:
        # Entries below a proven size are the signed ones: the first that may have changed
        # is past the largest proven size inside the node's span.
        inside = proven[bisect_right(proven, start) : bisect_left(proven, end)]
        first = inside[-1] if inside else start
        cause = (
            f"entries {start}..{first - 1} are as a signed checkpoint has them, so one of "
            f"{first}..{end - 1} was changed, moved or removed, or the node was"
            if inside
            else "one of those entries was changed, moved or removed, or the node was"
        )
    faults.suspect(first)
    faults.add(
        kind,
        first,
        "tree_nodes",
        f"tree node (level {level}, index {idx}) over entries {start}..{end - 1} {what}: {cause}",
    )


# -- erasure ---------------------------------------------------------------------------


def check_erasures(scan: LogScan, faults: Faults) -> list[ErasedEntry]:
    """Pair every erased entry with its receipt, and every receipt with its erased entry."""
    out: list[ErasedEntry] = []
    legacy: list[int] = []
    for idx, (eid, leaf, erased_by, kind, ts) in sorted(scan.erased.items()):
        receipt = scan.receipts.get(erased_by) if type(erased_by) is int else None
        if (
            receipt is None
            and type(erased_by) is int
            and faults.first_bad_in(erased_by, erased_by + 1) is not None
        ):
            faults.add(
                "erasure_receipt_missing",
                erased_by,
                "events",
                f"entry {idx}'s body is gone and its receipt, entry {erased_by}, is itself at fault",
            )
            continue
        if receipt is None:
            faults.blame_entry(
                "erasure_receipt_missing",
                idx,
                f"entry {idx}'s body is gone and "
                + (
                    "no receipt is named"
                    if erased_by is None
                    else f"entry {short(erased_by)} is not an erasure receipt"
                ),
            )
            continue
        if (
            receipt.target_index != idx
            or receipt.target_id != eid
            or receipt.leaf_hash != leaf.hex()
            or erased_by <= idx
        ):
            faults.blame_entry(
                "erasure_receipt_mismatch",
                idx,
                f"entry {idx} (id {short(eid, 40)}) names receipt {erased_by}, which erased entry "
                f"{receipt.target_index} (id {receipt.target_id}, leaf {receipt.leaf_hash[:16]}…)",
            )
            continue
        named = (receipt.target_kind, receipt.target_ts)
        if not any(isinstance(v, str) for v in named):
            legacy.append(idx)
        elif named != (kind, ts):
            faults.blame_entry(
                "erasure_receipt_mismatch",
                idx,
                f"erased entry {idx} has kind {short(kind, 24)} and ts {short(ts, 32)}, but its "
                f"receipt {erased_by} says it was a {receipt.target_kind} event at {receipt.target_ts}",
            )
            continue
        out.append(
            ErasedEntry(
                index=idx, id=eid, erased_by=erased_by, reason=receipt.reason, ts=receipt.ts
            )
        )
    for ridx, receipt in sorted(scan.receipts.items()):
        target = receipt.target_index
        entry = scan.erased.get(target)
        if entry is None or entry[2] != ridx:
            faults.add(
                "erasure_not_applied",
                target if 0 <= target < scan.size else ridx,
                "events",
                f"receipt {ridx} erased entry {target}, but "
                + (
                    "that entry still holds a body"
                    if entry is None
                    else f"the entry names receipt {short(entry[2])}"
                ),
            )
    if legacy:
        faults.unbound(
            "legacy_erasure_receipts",
            "events",
            len(legacy),
            f"{len(legacy)} erased entries (first: {legacy[0]}) were erased by receipts recorded "
            "before receipts named the entry's kind and time: their kind and ts columns are "
            "checked for form only",
        )
    return out
