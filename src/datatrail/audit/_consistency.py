"""``consistency``: prove the log today extends a checkpoint an auditor kept earlier.

The old note's signature is checked first (a checkpoint you cannot trust
proves nothing), then the store's newest signed checkpoint, then an RFC 9162
consistency proof between the two sizes. A log that was rewritten, truncated
or forked since the old checkpoint cannot produce a proof that verifies.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import msgspec

from datatrail.audit._verify import resolve_verifier
from datatrail.errors import LedgerError, ProofError, StoreError
from datatrail.ledger import Verifier, open_checkpoint, verify_consistency
from datatrail.store import Store

__all__ = ["ConsistencyReport", "consistency"]


class ConsistencyReport(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of :func:`consistency`."""

    ok: bool
    detail: str
    origin: str
    old_size: int
    old_root: str
    new_size: int
    new_root: str
    proof: list[str]
    """Hex hashes of the RFC 9162 consistency proof from ``old_size`` to ``new_size``."""
    checkpoint: str
    """The store's newest signed checkpoint note: keep it for next time."""

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready builtins."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out


def consistency(
    store: Store,
    old_checkpoint: str | bytes | Path,
    *,
    verifier: Verifier | str | Path | None = None,
) -> ConsistencyReport:
    """Check that ``store``'s log extends ``old_checkpoint`` (a signed note, or a file holding one)."""
    key = resolve_verifier(store, verifier)
    if isinstance(old_checkpoint, Path):
        try:
            old_checkpoint = old_checkpoint.read_bytes()
        except OSError as exc:
            raise ProofError(f"cannot read checkpoint file: {exc}") from None
    latest = store.latest_checkpoint()
    if latest is None:
        raise StoreError("the trail has no checkpoint yet; record something first")
    base: dict[str, Any] = {
        "origin": "",
        "old_size": 0,
        "old_root": "",
        "new_size": latest.size,
        "new_root": bytes(latest.root).hex(),
        "proof": [],
        "checkpoint": latest.note,
    }

    def result(ok: bool, detail: str, **changes: Any) -> ConsistencyReport:
        return ConsistencyReport(ok=ok, detail=detail, **{**base, **changes})

    try:
        old = open_checkpoint(old_checkpoint, key)
    except LedgerError as exc:
        return result(False, f"the old checkpoint does not verify with the key: {exc}")
    base.update(origin=old.origin, old_size=old.size, old_root=old.root.hex())
    try:
        new = open_checkpoint(latest.note, key)
    except LedgerError as exc:
        return result(
            False, f"the store's newest checkpoint does not verify ({exc}); run `datatrail verify`"
        )
    if new.origin != old.origin:
        return result(
            False, f"the old checkpoint is for log {old.origin!r}, this trail is {new.origin!r}"
        )
    if old.size > new.size:
        return result(
            False,
            f"the log holds {new.size} entries but your checkpoint signed {old.size}: "
            f"entries {new.size}..{old.size - 1} were removed or the log was rolled back",
        )
    if old.size == 0:
        ok = old.root == hashlib.sha256(b"").digest()
        return result(
            ok, "every log extends the empty one" if ok else "the empty tree has another root"
        )
    try:
        proof = store.consistency_proof(old.size, new.size)
        ok = verify_consistency(old.size, new.size, old.root, new.root, proof)
    except LedgerError as exc:
        return result(False, f"the store cannot prove consistency ({exc}); run `datatrail verify`")
    hexes = [h.hex() for h in proof]
    if not ok:
        return result(
            False,
            f"the log at size {new.size} does not extend your checkpoint at size {old.size}: "
            "it was rewritten or forked",
            proof=hexes,
        )
    return result(
        True,
        f"the log at size {new.size} extends your checkpoint at size {old.size}",
        proof=hexes,
    )
