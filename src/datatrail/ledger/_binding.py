"""What a datatrail checkpoint binds beyond its tree head: its time, its predecessor, the schema.

A tree head alone signs the log's entries. The rows around it — when each
checkpoint was stored, which checkpoints were issued, when each schema step
was applied — would be plain table cells an editor could change or delete
unseen. So every checkpoint datatrail signs carries three C2SP extension
lines after its root line::

    time 2026-11-21T07:54:37.562660Z
    prev 1190 1CRnFDISKhhjUKFAAGVNcX2Gz6gdfG3IMBxbhWwVaeE=
    migrations 2 n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=

``time`` is the time stored beside the note; ``prev`` names the checkpoint
issued just before (size and root; ``0`` and the empty tree's root for the
first), so the checkpoints form a chain in which a deleted row leaves a
dangling link; ``migrations`` commits to the first N rows of the
``migrations`` table (see :func:`migrations_digest`).

Notes signed before datatrail wrote these lines have no extension lines: they
are *legacy* (:meth:`CheckpointBinding.of` returns ``None``) and bind nothing
but their tree head.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from datatrail.errors import ProofError
from datatrail.ledger._note import Checkpoint

__all__ = ["EMPTY_ROOT", "CheckpointBinding", "migrations_digest"]

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root of the empty tree: what the first checkpoint names as its predecessor."""

_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
_COUNT = re.compile(r"0|[1-9][0-9]{0,19}")
_KEYS = ("time", "prev", "migrations")


def _b64_hash(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise ProofError(f"the {what} hash in a checkpoint is not valid base64") from None
    if len(raw) != 32 or base64.b64encode(raw).decode() != text:
        raise ProofError(f"the {what} hash in a checkpoint is not a canonical 32-byte base64 hash")
    return raw


def _count(text: str, what: str) -> int:
    if not _COUNT.fullmatch(text) or int(text) >= 1 << 64:
        raise ProofError(f"the {what} count {text[:30]!r} in a checkpoint is not a decimal")
    return int(text)


def migrations_digest(rows: Iterable[tuple[Any, ...]]) -> bytes:
    """SHA-256 of the ``migrations`` rows ``(version, name, applied_at)``, in the order given.

    The rows are encoded as one JSON array of arrays (no whitespace, UTF-8),
    so a version, a name or a time changed by one character changes the
    digest. Rows whose cells are not (int, str, str) are refused with
    :class:`~datatrail.errors.ProofError`: such rows were never signed.
    """
    cells: list[list[Any]] = []
    for row in rows:
        if len(row) != 3 or type(row[0]) is not int or not all(type(c) is str for c in row[1:]):
            raise ProofError(
                f"a migrations row must be (version, name, applied_at), not {row!r:.80}"
            )
        cells.append(list(row))
    text = json.dumps(cells, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True, slots=True)
class CheckpointBinding:
    """The extension lines datatrail signs into every checkpoint (see the module docstring)."""

    time: str
    """When the checkpoint was stored, UTC, ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    prev_size: int
    """The size of the checkpoint issued just before this one (0: none)."""
    prev_root: bytes
    """Its root (the empty tree's root when ``prev_size`` is 0)."""
    migrations: int
    """How many ``migrations`` rows (by version) :attr:`migrations_digest` covers."""
    migrations_digest: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.time, str) or not _TIME.fullmatch(self.time):
            raise ProofError(
                f"checkpoint time {self.time!r:.40} is not YYYY-MM-DDTHH:MM:SS.ffffffZ"
            )
        for name in ("prev_size", "migrations"):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value < 1 << 64:
                raise ProofError(f"checkpoint {name} must be an int in [0, 2**64), got {value!r}")
        for name in ("prev_root", "migrations_digest"):
            value = getattr(self, name)
            if type(value) is not bytes or len(value) != 32:
                raise ProofError(f"checkpoint {name} must be a 32-byte hash")
        if self.prev_size == 0 and self.prev_root != EMPTY_ROOT:
            raise ProofError("a checkpoint whose predecessor has size 0 must name the empty root")

    def lines(self) -> tuple[str, ...]:
        """The extension lines, in order, for :class:`~datatrail.ledger.Checkpoint`."""
        return (
            f"time {self.time}",
            f"prev {self.prev_size} {base64.b64encode(self.prev_root).decode()}",
            f"migrations {self.migrations} {base64.b64encode(self.migrations_digest).decode()}",
        )

    @classmethod
    def of(cls, checkpoint: Checkpoint) -> CheckpointBinding | None:
        """The binding a checkpoint carries; ``None`` for a legacy one (no extension lines).

        Raises :class:`~datatrail.errors.ProofError` when the first three
        extension lines are not exactly ``time``, ``prev`` and ``migrations``
        as datatrail writes them. Lines after those are left to newer writers.
        """
        if not isinstance(checkpoint, Checkpoint):
            raise ProofError(f"expected a Checkpoint, not {type(checkpoint).__name__}")
        ext = checkpoint.extensions
        if not ext:
            return None
        if len(ext) < len(_KEYS):
            raise ProofError(
                f"checkpoint at size {checkpoint.size} has {len(ext)} extension lines; "
                "datatrail writes time, prev and migrations"
            )
        parts = [line.split(" ") for line in ext[: len(_KEYS)]]
        shapes = [(p[0], len(p)) for p in parts]
        if shapes != [("time", 2), ("prev", 3), ("migrations", 3)]:
            raise ProofError(
                f"checkpoint at size {checkpoint.size} has extension lines "
                f"{[line[:40] for line in ext[:3]]}, not 'time …', 'prev …', 'migrations …'"
            )
        (_, time), (_, prev_size, prev_root), (_, count, digest) = parts
        binding = cls(
            time=time,
            prev_size=_count(prev_size, "previous checkpoint size"),
            prev_root=_b64_hash(prev_root, "previous root"),
            migrations=_count(count, "migrations"),
            migrations_digest=_b64_hash(digest, "migrations"),
        )
        if binding.prev_size >= checkpoint.size:
            raise ProofError(
                f"checkpoint at size {checkpoint.size} names a predecessor at size "
                f"{binding.prev_size}, which is not smaller"
            )
        return binding
