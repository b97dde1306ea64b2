"""Verifying checkpoints: signatures, rows, roots, and the chain their notes bind.

Every stored note must verify with the key, spell its signature canonically,
name this log and match its row; its root must equal the root recomputed at
its size from the leaves (so two checkpoints that disagree about a prefix of
the log cannot both match it), and the newest must cover the whole log.

The notes datatrail signs also carry binding lines
(:class:`~datatrail.ledger.CheckpointBinding`): the stored time must equal the
row's, the predecessor each names must be the checkpoint stored just before
it (a deleted row leaves a dangling link), and the schema steps it commits to
must equal the ``migrations`` rows. Notes signed before those lines existed
bind only their tree head: they are reported as unbound, not as faults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from datatrail.audit._collect import TS_FORMAT, Faults, as_bytes, short
from datatrail.audit._faults import CheckpointInfo
from datatrail.audit._log import LogScan, count
from datatrail.audit._notes import canonical_signatures
from datatrail.errors import ProofError, SignatureError
from datatrail.ledger import CheckpointBinding, Verifier, migrations_digest, open_checkpoint
from datatrail.ledger._binding import EMPTY_ROOT
from datatrail.store import Store

__all__ = ["CheckpointScan", "judge_checkpoints", "read_checkpoints"]

_CKPT_BATCH = 1_000


@dataclass
class _Signed:
    size: int
    root: bytes
    ts: str
    note: str
    binding: CheckpointBinding | None
    """``None`` for a legacy note, signed before notes carried binding lines."""


@dataclass
class CheckpointScan:
    """What reading the checkpoints found: the validly signed ones, by size, and the row count."""

    signed: list[_Signed]
    stored_sizes: set[int]
    read: int


def read_checkpoints(
    store: Store,
    scan: LogScan,
    faults: Faults,
    *,
    verifier: Verifier,
    origin: str,
    created_at: str | None,
) -> CheckpointScan:
    """Open every stored checkpoint (faults for bad signatures, rows and times).

    Sets ``scan.proven``: the sizes whose signed root the leaves reproduce.
    """
    nulls = count(store, "SELECT COUNT(*) FROM checkpoints WHERE size IS NULL")
    if nulls:
        faults.add("unexpected_row", None, "checkpoints", f"{nulls} checkpoints have no size")
    signed: list[_Signed] = []
    stored_sizes: set[int] = set()
    read = 0
    cursor: Any = None
    last_ts = created_at
    while True:
        if cursor is None:
            rows = store.query(
                "SELECT size, root, note, ts FROM checkpoints WHERE size IS NOT NULL "
                "ORDER BY size LIMIT ?",
                (_CKPT_BATCH,),
            )
        else:
            rows = store.query(
                "SELECT size, root, note, ts FROM checkpoints WHERE size > ? ORDER BY size LIMIT ?",
                (cursor, _CKPT_BATCH),
            )
        if not rows:
            break
        read += len(rows)
        for row_size, row_root, note, ts in rows:
            cursor = row_size
            if type(row_size) is int:
                stored_sizes.add(row_size)
            checked = _open_row(faults, verifier, origin, row_size, row_root, note, ts)
            if checked is None:
                continue
            last_ts = _check_time(faults, checked.size, ts, last_ts)
            signed.append(checked)
        if type(cursor) is not int:
            break
    signed.sort(key=lambda s: s.size)
    scan.proven = sorted(
        {s.size for s in signed if s.size <= scan.size and scan.root(s.size) == s.root}
    )
    return CheckpointScan(signed=signed, stored_sizes=stored_sizes, read=read)


def judge_checkpoints(
    scan: LogScan,
    faults: Faults,
    read: CheckpointScan,
    *,
    origin: str,
    migrations: list[tuple[Any, ...]],
) -> tuple[int, CheckpointInfo | None]:
    """Roots, the chain, the migrations binding and the tail, from :func:`read_checkpoints`."""
    signed = read.signed
    _check_roots(scan, faults, signed)
    _check_chain(faults, signed, read.stored_sizes)
    _check_migrations(faults, signed, migrations)
    return read.read, _check_tail(faults, signed, scan.size, origin)


def _open_row(
    faults: Faults,
    verifier: Verifier,
    origin: str,
    row_size: Any,
    row_root: Any,
    note: Any,
    ts: Any,
) -> _Signed | None:
    """One stored checkpoint, opened and compared with its row; ``None`` if it proves nothing."""
    where = f"checkpoint at size {short(row_size)}"
    try:
        cp = open_checkpoint(note, verifier)
        binding = CheckpointBinding.of(cp)
    except SignatureError as exc:
        faults.add("checkpoint_signature", None, "checkpoints", f"{where}: {exc}")
        return None
    except ProofError as exc:
        faults.add("checkpoint_malformed", None, "checkpoints", f"{where}: {exc}")
        return None
    if not canonical_signatures(note):
        faults.add(
            "checkpoint_signature",
            None,
            "checkpoints",
            f"{where}: a signature is not in canonical base64, so the note was altered",
        )
        return None
    stored_root = as_bytes(row_root)
    if cp.size != row_size or cp.root != stored_root:
        shown = stored_root.hex() if stored_root is not None else row_root
        faults.add(
            "checkpoint_row_mismatch",
            None,
            "checkpoints",
            f"{where}: the row says size {short(row_size)} root {short(shown, 24)}, "
            f"its signed note says size {cp.size} root {cp.root.hex()[:16]}…",
        )
    if binding is not None and binding.time != ts:
        faults.add(
            "checkpoint_row_mismatch",
            None,
            "checkpoints",
            f"{where}: the row says it was stored at {short(ts, 40)}, "
            f"its signed note says {binding.time}",
        )
    if cp.origin != origin:
        faults.add(
            "checkpoint_origin",
            None,
            "checkpoints",
            f"{where} is signed for log {cp.origin!r}, but this store is {origin!r}",
        )
        return None
    return _Signed(cp.size, cp.root, ts if isinstance(ts, str) else "", note, binding)


def _check_time(faults: Faults, size: int, ts: Any, last_ts: str | None) -> str | None:
    """Times must be well formed and never go back; returns the time to compare the next one with."""
    where = f"checkpoint at size {size}"
    if not isinstance(ts, str) or not TS_FORMAT.fullmatch(ts):
        faults.add(
            "checkpoint_order", None, "checkpoints", f"{where} has a malformed time {short(ts)}"
        )
        return last_ts
    if last_ts is not None and ts < last_ts:
        faults.add(
            "checkpoint_order",
            None,
            "checkpoints",
            f"{where} was recorded at {ts}, before the one before it ({last_ts}) "
            "or before the store was created",
        )
        return last_ts
    return ts


def _check_tail(
    faults: Faults, signed: list[_Signed], size: int, origin: str
) -> CheckpointInfo | None:
    """The newest valid checkpoint must cover exactly the log: no uncovered tail, no lost tail."""
    latest = signed[-1] if signed else None
    if latest is None:
        if size:
            faults.add(
                "checkpoint_missing_for_tail",
                0,
                "checkpoints",
                f"no valid checkpoint covers the log's {size} entries",
            )
        return None
    if latest.size < size:
        faults.add(
            "checkpoint_missing_for_tail",
            latest.size,
            "checkpoints",
            f"entries {latest.size}..{size - 1} are not covered by any valid checkpoint "
            f"(the newest is at size {latest.size})",
        )
    elif latest.size > size:
        faults.add(
            "log_truncated",
            size,
            "events",
            f"a signed checkpoint covers {latest.size} entries but the log holds {size}: "
            f"entries {size}..{latest.size - 1} were removed",
        )
    return CheckpointInfo(
        size=latest.size, root=latest.root.hex(), origin=origin, ts=latest.ts, note=latest.note
    )


def _check_roots(scan: LogScan, faults: Faults, signed: list[_Signed]) -> None:
    size = scan.size
    in_range = [s for s in signed if s.size <= size]
    matches = [scan.root(s.size) == s.root for s in in_range]
    good_later = [False] * len(in_range)
    seen_good = False
    for i in range(len(in_range) - 1, -1, -1):
        good_later[i] = seen_good
        seen_good = seen_good or matches[i]
    last_good = 0
    for i, cp in enumerate(in_range):
        if matches[i]:
            last_good = cp.size
            continue
        blamed = faults.first_bad_in(last_good, cp.size)
        span = f"entries {last_good}..{cp.size - 1}"
        if good_later[i]:
            faults.add(
                "checkpoint_inconsistent",
                None,
                "checkpoints",
                f"the signed checkpoint at size {cp.size} (root {cp.root.hex()[:16]}…) contradicts "
                "a later signed checkpoint that matches the log: a forked checkpoint, or "
                f"{span} were rewritten and re-signed",
            )
        else:
            faults.add(
                "checkpoint_root_mismatch",
                last_good if blamed is None else blamed,
                "checkpoints",
                f"the log no longer hashes to the root signed at size {cp.size}: "
                + (
                    f"entry {blamed} is at fault"
                    if blamed is not None
                    else f"one of {span} changed"
                ),
            )


# -- the chain ---------------------------------------------------------------------------


def _check_chain(faults: Faults, signed: list[_Signed], stored_sizes: set[int]) -> None:
    """Each bound checkpoint must name, as its predecessor, the valid checkpoint just before it."""
    by_size = {s.size: s for s in signed}
    legacy: list[int] = []
    first_bound: _Signed | None = None
    for j, cp in enumerate(signed):
        binding = cp.binding
        if binding is None:
            if first_bound is None:
                legacy.append(cp.size)
            else:
                faults.add(
                    "checkpoint_chain",
                    None,
                    "checkpoints",
                    f"the checkpoint at size {cp.size} carries no binding lines, but the one at "
                    f"size {first_bound.size} before it does: datatrail never signs such a note "
                    "after a bound one, so it was inserted",
                )
            continue
        first_bound = first_bound or cp
        before = signed[j - 1] if j else None
        expected = (before.size, before.root) if before is not None else (0, EMPTY_ROOT)
        if (binding.prev_size, binding.prev_root) == expected:
            continue
        detail = _broken_link(cp, binding, before, by_size, stored_sizes, signed)
        if detail is not None:
            faults.add("checkpoint_chain", None, "checkpoints", detail)
    if legacy:
        faults.unbound(
            "legacy_checkpoints",
            "checkpoints",
            len(legacy),
            f"{len(legacy)} checkpoints (sizes {legacy[0]}..{legacy[-1]}) were signed before "
            "datatrail bound a checkpoint's time and predecessor into its note: their ts "
            "columns are checked for form and order only, and a deleted checkpoint among them "
            "would go unseen"
            + ("" if first_bound is None else " (the first bound checkpoint names the last one)"),
        )


def _broken_link(
    cp: _Signed,
    binding: CheckpointBinding,
    before: _Signed | None,
    by_size: dict[int, _Signed],
    stored_sizes: set[int],
    signed: list[_Signed],
) -> str | None:
    """Why ``cp``'s predecessor is not the checkpoint before it; None if that row is at fault already."""
    said = f"the checkpoint at size {cp.size} was signed right after the one at size {binding.prev_size}"
    if binding.prev_size == 0:
        return (
            f"the checkpoint at size {cp.size} was signed as the log's first, yet checkpoints "
            f"at smaller sizes are stored (from size {signed[0].size}): they were inserted"
        )
    named = by_size.get(binding.prev_size)
    if named is None:
        if binding.prev_size in stored_sizes:
            return None  # that row's signature, origin or form is already a fault
        shown = f"size {before.size}" if before is not None else "none"
        return (
            f"{said}, which is not in the store (the one before it now is {shown}): "
            "a checkpoint row was deleted"
        )
    if named.root != binding.prev_root:
        return (
            f"{said} with root {binding.prev_root.hex()[:16]}…, but the stored checkpoint at "
            f"that size signs root {named.root.hex()[:16]}…: two signed histories"
        )
    between = [s.size for s in signed if binding.prev_size < s.size < cp.size]
    return (
        f"{said}, yet checkpoints at sizes {short(between, 60)} lie between them: "
        "they were not signed in this order"
    )


def _check_migrations(
    faults: Faults, signed: list[_Signed], migrations: list[tuple[Any, ...]]
) -> None:
    """The schema steps each bound checkpoint committed to must be the stored ``migrations`` rows."""
    digests: dict[int, bytes | None] = {}
    mismatched: dict[int, list[int]] = {}
    covered = 0
    for cp in signed:
        binding = cp.binding
        if binding is None:
            continue
        n = covered = binding.migrations
        if n not in digests:
            digests[n] = _digest(migrations[:n]) if n <= len(migrations) else None
        if digests[n] != binding.migrations_digest:
            mismatched.setdefault(n, []).append(cp.size)
    for n, sizes in sorted(mismatched.items()):
        faults.add(
            "migrations_changed",
            None,
            "migrations",
            f"the first {n} migrations rows are not the ones {len(sizes)} signed checkpoint(s) "
            f"bound (first at size {sizes[0]}): a schema step's version, name or time was "
            "changed, added or removed",
        )
    if signed and covered < len(migrations):  # with no checkpoint at all there is no log to bind
        versions = [short(row[0]) for row in migrations[covered:]]
        faults.unbound(
            "migrations_not_signed",
            "migrations",
            len(versions),
            f"schema steps {', '.join(versions)} were applied after the newest checkpoint that "
            "binds the migrations (or only legacy checkpoints exist): their times become "
            "evidence with the next checkpoint",
        )


def _digest(rows: list[tuple[Any, ...]]) -> bytes | None:
    try:
        return migrations_digest(rows)
    except ProofError:
        return None  # cells no datatrail writes: they cannot match what was signed
