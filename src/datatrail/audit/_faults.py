"""What ``verify`` reports: faults, erased entries, the report itself.

A fault names what is wrong (``kind``), where (``table`` and, when a log
entry is to blame, its ``index``) and a sentence for a person (``detail``).
:data:`FAULT_KINDS` is the full list, documented for auditors in
``docs/auditing.md``.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "FAULT_KINDS",
    "UNBOUND_KINDS",
    "CheckpointInfo",
    "ErasedEntry",
    "Fault",
    "Unbound",
    "VerifyReport",
]

FAULT_KINDS: dict[str, str] = {
    # the log
    "index_gap": "log indexes are not 0..n-1: an entry is missing, negative or not an integer",
    "leaf_mismatch": "an entry's stored body does not hash to its stored leaf hash",
    "body_invalid": "an entry's body is not a valid datatrail event",
    "body_not_canonical": "an entry's body is not in canonical form (sorted keys, no whitespace)",
    "event_columns_mismatch": "an entry's id, kind or ts column differs from its body",
    "unexpected_row": "a row that no log of this size can contain",
    # the tree
    "tree_node_mismatch": "a stored Merkle tree node differs from the one recomputed from the leaves",
    "tree_node_missing": "a Merkle tree node the log needs is not stored",
    # checkpoints
    "checkpoint_signature": "a checkpoint is not signed by the verifier key",
    "checkpoint_malformed": "a signed checkpoint's text is not a tree head",
    "checkpoint_row_mismatch": "a checkpoint row's size, root or time differs from its signed note",
    "checkpoint_origin": "a checkpoint names another log (origin)",
    "checkpoint_order": "checkpoint times are missing, malformed or go backwards",
    "checkpoint_root_mismatch": "the log no longer hashes to the root a checkpoint signed",
    "checkpoint_inconsistent": "a signed checkpoint contradicts a later signed checkpoint (a fork)",
    "checkpoint_chain": "a signed checkpoint names a predecessor that is missing or not the one before it",
    "checkpoint_missing_for_tail": "entries at the end of the log are not covered by any checkpoint",
    "log_truncated": "a signed checkpoint covers more entries than the log holds",
    # erasure
    "erasure_receipt_missing": "an entry's body is gone without a matching erasure receipt",
    "erasure_receipt_mismatch": "an erasure receipt and the entry it erased disagree (index, id, leaf, kind, time)",
    "erasure_not_applied": "an erasure receipt names an entry that still holds its body",
    # derived tables and the rest of the file
    "projection_mismatch": "a projection table differs from the one derived again from the log",
    "meta_changed": "the store's meta table differs from what the store was created with",
    "migrations_changed": "the migrations table differs from the schema's steps or from what a checkpoint signed",
    "unknown_table": "a table the datatrail schema does not define",
    "missing_table": "a table the datatrail schema defines is not in the store",
    "schema_changed": "a table, index, trigger or view differs from the datatrail schema",
}
"""Every fault kind ``verify`` can report, with what it means."""

UNBOUND_KINDS: dict[str, str] = {
    "legacy_checkpoints": "checkpoints signed before notes bound their time and predecessor",
    "legacy_erasure_receipts": "erasure receipts recorded before they named the entry's kind and time",
    "migrations_not_signed": "schema steps applied after the newest checkpoint that binds them",
}
"""What ``verify`` reports as unbound by design: allowed, but not evidence."""


class Fault(msgspec.Struct, frozen=True, kw_only=True):
    """One thing ``verify`` found wrong."""

    kind: str
    """One of :data:`FAULT_KINDS`."""
    index: int | None
    """The first log index to blame, or ``None`` when no entry is (a meta row, a forked checkpoint)."""
    table: str
    """The table the fault was found in."""
    detail: str
    """What is wrong, for a person."""


class Unbound(msgspec.Struct, frozen=True, kw_only=True):
    """Stored values that no signature binds because an older datatrail wrote them: not a fault.

    ``verify`` still checks their form and order; it cannot tell a plausible
    change to them from the original.
    """

    kind: str
    """One of :data:`UNBOUND_KINDS`."""
    table: str
    count: int
    """How many rows (checkpoints, erased entries, schema steps) it concerns."""
    detail: str
    """Which ones, and what is not evidence, for a person."""


class ErasedEntry(msgspec.Struct, frozen=True, kw_only=True):
    """An entry whose body was erased by a receipt that checks out: erased, not tampered."""

    index: int
    id: str
    erased_by: int
    """Log index of the ``erasure`` receipt."""
    reason: str
    ts: str
    """When the receipt was recorded."""


class CheckpointInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A checkpoint as ``verify`` and ``datatrail checkpoint`` show it."""

    size: int
    root: str
    """Hex SHA-256 root."""
    origin: str
    ts: str
    note: str
    """The signed note, verbatim."""


class VerifyReport(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of :func:`datatrail.audit.verify`."""

    ok: bool
    size: int
    """Entries in the log."""
    root: str
    """Hex Merkle root of the log, recomputed from the stored leaves."""
    latest_checkpoint: CheckpointInfo | None
    """The newest checkpoint that is validly signed for this log."""
    faults: list[Fault]
    """Faults found, in the order found (at most 1000; see ``faults_total``)."""
    first_fault: Fault | None
    """The fault with the lowest log index (faults without an index come last)."""
    faults_total: int
    erased: list[ErasedEntry]
    checkpoints: int
    """Checkpoints examined."""
    seconds: float
    unbound: list[Unbound] = []
    """What this trail holds that no signature binds, by the design of an older datatrail."""

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready builtins."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out
