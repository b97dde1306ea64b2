"""Proof bundles: a node's events with inclusion proofs, checkable offline.

A bundle is one JSON document: the signed checkpoint note, the verifier key
text, and for each event its exact canonical bytes (base64), a readable copy,
its index, leaf hash and inclusion proof. :func:`verify_bundle` needs nothing
but this module, :mod:`datatrail.ledger` and the public key: it does not
import the store or the event model, so what it trusts is what it checks.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from pathlib import Path
from typing import Any

import msgspec

from datatrail.audit._notes import canonical_signatures
from datatrail.errors import KeyFileError, LedgerError, ProofError, SignatureError
from datatrail.ledger import Verifier, load_verifier, open_checkpoint, verify_inclusion

__all__ = [
    "BUNDLE_FORMAT",
    "Bundle",
    "BundleEvent",
    "BundleFailure",
    "BundleReport",
    "read_bundle",
    "verify_bundle",
]

BUNDLE_FORMAT = "datatrail-bundle/1"


class BundleEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One event of a bundle and its proof of inclusion."""

    index: int
    id: str
    kind: str
    leaf_hash: str
    """Hex SHA-256 of ``0x00 || body``."""
    body: str | None
    """The canonical bytes, base64; ``None`` if the payload was erased."""
    event: Any = None
    """The body decoded, for reading; checked to equal ``body``."""
    erased_by: int | None = None
    proof: list[str] = []
    """Hex hashes of the RFC 9162 inclusion proof in the checkpoint's tree."""


class Bundle(msgspec.Struct, frozen=True, kw_only=True):
    """The events that tell one node's story, provable against one signed checkpoint."""

    format: str = BUNDLE_FORMAT
    node: str
    origin: str
    tree_size: int
    root: str
    checkpoint: str
    """The signed checkpoint note, verbatim."""
    verifier_key: str
    """The public key the checkpoint is signed with (check it against one you got out of band)."""
    created_at: str
    events: list[BundleEvent]


class BundleFailure(msgspec.Struct, frozen=True, kw_only=True):
    """One check that failed: which event (if any), which check, and why."""

    index: int | None
    check: str
    message: str


class BundleReport(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of :func:`verify_bundle`."""

    ok: bool
    node: str
    origin: str
    tree_size: int
    root: str
    events: int
    """Events whose inclusion was checked."""
    erased: list[int]
    """Indexes of events whose payload was erased (their leaf is proven, their body cannot be)."""
    failures: list[BundleFailure]

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready builtins."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out


def read_bundle(source: str | bytes | Path | Bundle) -> Bundle:
    """Parse a bundle from a path, JSON text or bytes; raise ``ProofError`` if it is not one."""
    if isinstance(source, Bundle):
        return source
    data: str | bytes
    if isinstance(source, Path):
        try:
            data = source.read_bytes()
        except OSError as exc:
            raise ProofError(f"cannot read bundle {source}: {exc.strerror}") from None
    else:
        data = source
    try:
        bundle = msgspec.json.decode(data, type=Bundle)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ProofError(f"not a datatrail proof bundle: {exc}") from None
    if bundle.format != BUNDLE_FORMAT:
        raise ProofError(f"bundle format {bundle.format!r} is not {BUNDLE_FORMAT!r}")
    return bundle


def _unhex(text: str, what: str) -> bytes:
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise ProofError(f"{what} is not hex") from None
    if len(value) != 32:
        raise ProofError(f"{what} is not a 32-byte hash")
    return value


def verify_bundle(bundle: str | bytes | Path | Bundle, key: Verifier | str | Path) -> BundleReport:
    """Check a bundle offline with the log's public ``key`` (a Verifier, key text or key file).

    Every check runs; each failure names the event index and the check that
    failed. Raises only when the bundle or the key cannot be read at all.
    """
    parsed = read_bundle(bundle)
    verifier = key if isinstance(key, Verifier) else load_verifier(key)
    failures: list[BundleFailure] = []

    def fail(index: int | None, check: str, message: str) -> None:
        failures.append(BundleFailure(index=index, check=check, message=message))

    try:
        if Verifier.from_text(parsed.verifier_key) != verifier:
            fail(None, "verifier_key", "the bundle's verifier key is not the key you gave")
    except KeyFileError as exc:
        fail(None, "verifier_key", f"the bundle's verifier key is malformed: {exc}")
    size, root = -1, b""
    try:
        checkpoint = open_checkpoint(parsed.checkpoint, verifier)
    except SignatureError as exc:
        fail(None, "checkpoint_signature", f"the checkpoint does not verify with the key: {exc}")
    except ProofError as exc:
        fail(None, "checkpoint", f"the checkpoint is not a tree head: {exc}")
    else:
        size, root = checkpoint.size, checkpoint.root
        if not canonical_signatures(parsed.checkpoint):
            fail(
                None,
                "checkpoint_signature",
                "the checkpoint's signature is not in canonical base64: the note was altered",
            )
        if (checkpoint.origin, checkpoint.size, checkpoint.root.hex()) != (
            parsed.origin,
            parsed.tree_size,
            parsed.root,
        ):
            fail(
                None,
                "checkpoint",
                "the bundle's origin, tree_size or root differ from its signed checkpoint",
            )
    erased: list[int] = []
    by_index = {ev.index: ev for ev in parsed.events}
    for ev in parsed.events:
        if _check_event(ev, size, root, fail):
            erased.append(ev.index)
            _check_receipt(
                ev, by_index.get(ev.erased_by) if ev.erased_by is not None else None, fail
            )
    if not parsed.events:
        fail(None, "events", "the bundle holds no events")
    return BundleReport(
        ok=not failures,
        node=parsed.node,
        origin=parsed.origin,
        tree_size=parsed.tree_size,
        root=parsed.root,
        events=len(parsed.events),
        erased=erased,
        failures=failures,
    )


def _check_event(ev: BundleEvent, size: int, root: bytes, fail: Any) -> bool:
    """Check one event; returns whether it is an erased one."""
    where = f"event {ev.index}"
    try:
        leaf = _unhex(ev.leaf_hash, f"{where}'s leaf hash")
    except ProofError as exc:
        fail(ev.index, "leaf_hash", str(exc))
        return False
    if ev.body is None:
        if ev.event is not None:
            fail(ev.index, "body", f"{where} has no body but carries a readable copy")
    else:
        try:
            body = base64.b64decode(ev.body.encode("ascii"), validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            fail(ev.index, "body", f"{where}'s body is not valid base64")
            return False
        if hashlib.sha256(b"\x00" + body).digest() != leaf:
            fail(ev.index, "leaf_hash", f"{where}'s body does not hash to its leaf hash")
        try:
            decoded = json.loads(body)
        except ValueError:
            fail(ev.index, "body", f"{where}'s body is not JSON")
        else:
            if decoded != ev.event:
                fail(ev.index, "event", f"{where}'s readable copy differs from its body")
            elif not isinstance(decoded, dict) or (decoded.get("id"), decoded.get("kind")) != (
                ev.id,
                ev.kind,
            ):
                fail(ev.index, "event", f"{where}'s id or kind differ from its body")
    if size < 0:
        return ev.body is None  # no trusted root to prove against; reported already
    try:
        proof = [_unhex(h, f"{where}'s proof hash") for h in ev.proof]
        included = verify_inclusion(leaf, ev.index, size, proof, root)
    except LedgerError as exc:
        fail(ev.index, "inclusion_proof", f"{where}'s inclusion proof is malformed: {exc}")
        return ev.body is None
    if not included:
        fail(
            ev.index,
            "inclusion_proof",
            f"{where}'s inclusion proof does not lead to the signed root at size {size}",
        )
    return ev.body is None


def _check_receipt(ev: BundleEvent, receipt: BundleEvent | None, fail: Any) -> None:
    """An erased event must come with the receipt that erased it, naming its leaf."""
    claim = receipt.event if receipt is not None and receipt.body is not None else None
    if not isinstance(claim, dict) or claim.get("kind") != "erasure":
        fail(
            ev.index,
            "erasure_receipt",
            f"event {ev.index} is erased but the bundle lacks the receipt that erased it",
        )
    elif (claim.get("target_index"), claim.get("target_id"), claim.get("leaf_hash")) != (
        ev.index,
        ev.id,
        ev.leaf_hash,
    ):
        fail(
            ev.index,
            "erasure_receipt",
            f"receipt {ev.erased_by} does not name event {ev.index} and its leaf hash",
        )
    elif "target_kind" in claim and claim["target_kind"] != ev.kind:
        # Older receipts do not name the kind; one that does is the only evidence of it.
        fail(
            ev.index,
            "erasure_receipt",
            f"receipt {ev.erased_by} says event {ev.index} was a {claim['target_kind']!s:.40} "
            f"event, the bundle says {ev.kind!s:.40}",
        )
