"""C2SP signed notes (Ed25519) and the tlog-checkpoints datatrail signs with them.

A signed note is text ending in a newline, a blank line, then one line per
signature: ``— <key name> <base64(4-byte key id || 64-byte signature)>``. The
key id is ``SHA-256(name || 0x0A || 0x01 || public key)[:4]``. A checkpoint is
a note whose text is ``<origin>\\n<size>\\n<base64 root>\\n`` plus optional
extension lines. See https://c2sp.org/signed-note and https://c2sp.org/tlog-checkpoint.

Malformed notes and failed signatures raise :class:`~datatrail.errors.SignatureError`;
malformed key text raises :class:`~datatrail.errors.KeyFileError`; a checkpoint
body that is not a tree head raises :class:`~datatrail.errors.ProofError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from datatrail.errors import KeyFileError, ProofError, SignatureError

__all__ = [
    "Checkpoint",
    "NoteSignature",
    "NoteText",
    "Signer",
    "Verifier",
    "open_checkpoint",
    "open_note",
    "sign_checkpoint",
    "sign_note",
]

ALG_ED25519 = 0x01
"""The C2SP signature type byte of Ed25519."""

MAX_SIGNATURES = 100
"""More signatures than this and a note is refused (the spec asks for at least 16)."""

_EM_DASH = "\u2014"
_SIG_PREFIX = _EM_DASH + " "
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")  # uint64 has at most 20 digits


def _b64decode(text: str) -> bytes:
    """Strict standard base64 (RFC 4648 §4): no whitespace, no missing padding."""
    return base64.b64decode(text.encode("ascii"), validate=True)


def check_key_name(name: object) -> str:
    """Return ``name`` if it is a valid C2SP key name, else raise ``KeyFileError``."""
    if not isinstance(name, str) or not name:
        raise KeyFileError("a key name must be a non-empty string")
    if "+" in name or any(c.isspace() for c in name) or _CONTROL.search(name):
        raise KeyFileError(
            f"key name {name!r} must not contain spaces, '+' or control characters; "
            "use a schema-less URL such as example.com/datatrail"
        )
    return name


def key_id(name: str, public_key: bytes) -> int:
    """The C2SP key id of an Ed25519 key: ``SHA-256(name || 0x0A || 0x01 || key)[:4]``."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


class Verifier:
    """An Ed25519 public key with its name: checks signatures on notes.

    Build one from the verifier key text ``<name>+<8 hex key id>+<base64(0x01 || key)>``
    with :meth:`from_text`, or from a :class:`Signer` with ``signer.verifier``.
    """

    __slots__ = ("_public", "key_id", "name")

    def __init__(self, name: str, public_key: Ed25519PublicKey) -> None:
        if not isinstance(public_key, Ed25519PublicKey):
            raise KeyFileError(
                f"a verifier needs an Ed25519 public key, not {type(public_key).__name__}"
            )
        self.name = check_key_name(name)
        self._public = public_key
        self.key_id = key_id(self.name, _raw_public(public_key))

    @classmethod
    def from_text(cls, text: str) -> Verifier:
        """Parse verifier key text, checking that the key id matches the key."""
        if not isinstance(text, str):
            raise KeyFileError(f"verifier key text must be a string, not {type(text).__name__}")
        text = text.strip()
        parts = text.split("+", 2)  # base64 itself may contain '+'
        if len(parts) != 3:
            raise KeyFileError(f"verifier key {text[:60]!r} is not <name>+<key id>+<base64 key>")
        name, hex_id, data = parts
        check_key_name(name)
        if not _HEX8.fullmatch(hex_id):
            raise KeyFileError(f"verifier key id {hex_id!r} is not 8 hex digits")
        try:
            raw = _b64decode(data)
        except (binascii.Error, ValueError):
            raise KeyFileError(f"verifier key for {name!r} has invalid base64 key data") from None
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise KeyFileError(
                f"verifier key for {name!r} is not an Ed25519 key (0x01 followed by 32 bytes)"
            )
        verifier = cls(name, Ed25519PublicKey.from_public_bytes(raw[1:]))
        if verifier.key_id != int(hex_id, 16):
            raise KeyFileError(
                f"verifier key for {name!r} says key id {hex_id} but its key gives "
                f"{verifier.key_id:08x}; the key text is corrupt"
            )
        return verifier

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The Ed25519 public key."""
        return self._public

    @property
    def text(self) -> str:
        """The verifier key text: ``<name>+<key id>+<base64(0x01 || key)>``."""
        data = base64.b64encode(bytes([ALG_ED25519]) + _raw_public(self._public)).decode()
        return f"{self.name}+{self.key_id:08x}+{data}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``message``."""
        if len(signature) != 64:
            return False
        try:
            self._public.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Verifier) and self.text == other.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"Verifier({self.text!r})"


class Signer:
    """An Ed25519 private key with its name: signs notes and checkpoints.

    The repr never shows the key. To store it, see ``datatrail.ledger.generate_keypair``.
    """

    __slots__ = ("_private", "name", "verifier")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        if not isinstance(private_key, Ed25519PrivateKey):
            raise KeyFileError(
                f"a signer needs an Ed25519 private key, not {type(private_key).__name__}"
            )
        self._private = private_key
        self.verifier = Verifier(name, private_key.public_key())
        self.name = self.verifier.name

    @classmethod
    def generate(cls, name: str) -> Signer:
        """A signer with a fresh random key."""
        return cls(name, Ed25519PrivateKey.generate())

    @property
    def key_id(self) -> int:
        """The C2SP key id (a 32-bit int; shown as 8 hex digits)."""
        return self.verifier.key_id

    @property
    def private_key(self) -> Ed25519PrivateKey:
        """The Ed25519 private key."""
        return self._private

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return self._private.sign(message)

    def __repr__(self) -> str:
        return f"Signer(name={self.name!r}, key_id={self.key_id:08x})"


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: the key name, the key id and the signature bytes."""

    name: str
    key_id: int
    signature: bytes

    def line(self) -> str:
        """The signature line, with its final newline."""
        blob = base64.b64encode(self.key_id.to_bytes(4, "big") + self.signature).decode()
        return f"{_SIG_PREFIX}{self.name} {blob}\n"


@dataclass(frozen=True, slots=True)
class NoteText:
    """An opened note: its text, the signatures that verified, and the ones by unknown keys."""

    text: str
    verified: tuple[NoteSignature, ...]
    unknown: tuple[NoteSignature, ...] = ()


def _check_text(text: object) -> str:
    if not isinstance(text, str):
        raise SignatureError(f"note text must be a string, not {type(text).__name__}")
    if not text.endswith("\n"):
        raise SignatureError("note text must end with a newline")
    if _CONTROL.search(text):
        raise SignatureError("note text must not contain control characters other than newline")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise SignatureError("note text is not valid UTF-8 (it holds a lone surrogate)") from None
    return text


def sign_note(text: str, signer: Signer) -> str:
    """Sign ``text`` (which must end in a newline) and return the signed note."""
    text = _check_text(text)
    if not isinstance(signer, Signer):
        raise SignatureError(f"sign_note needs a Signer, not {type(signer).__name__}")
    sig = NoteSignature(signer.name, signer.key_id, signer.sign(text.encode()))
    return f"{text}\n{sig.line()}"


def _parse_signature(line: str) -> NoteSignature:
    if not line.startswith(_SIG_PREFIX):
        raise SignatureError(f"signature line {line[:60]!r} does not start with '— '")
    name, sep, blob = line[len(_SIG_PREFIX) :].partition(" ")
    if not sep:
        raise SignatureError(f"signature line {line[:60]!r} is not '— <name> <signature>'")
    try:
        check_key_name(name)
    except KeyFileError as exc:
        raise SignatureError(f"signature line has an invalid key name: {exc}") from None
    try:
        raw = _b64decode(blob)
    except (binascii.Error, ValueError):
        raise SignatureError(f"signature by {name!r} is not valid base64") from None
    if len(raw) < 5:
        raise SignatureError(f"signature by {name!r} is too short to hold a key id and signature")
    return NoteSignature(name, int.from_bytes(raw[:4], "big"), raw[4:])


def _split_note(note: object) -> tuple[str, list[NoteSignature]]:
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise SignatureError("signed note is not valid UTF-8") from None
    if not isinstance(note, str):
        raise SignatureError(f"a signed note must be a string, not {type(note).__name__}")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise SignatureError("malformed note: no blank line separates text from signatures")
    text, block = note[: cut + 1], note[cut + 2 :]
    _check_text(text)
    if not block:
        raise SignatureError("malformed note: it has no signature lines")
    if not block.endswith("\n"):
        raise SignatureError("malformed note: the last signature line must end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise SignatureError(f"note has {len(lines)} signatures; at most {MAX_SIGNATURES} allowed")
    return text, [_parse_signature(line) for line in lines]


def open_note(note: str | bytes, verifiers: Verifier | Iterable[Verifier]) -> NoteText:
    """Check ``note`` and return its text.

    At least one signature must be by a key in ``verifiers`` and verify; a
    signature by a known key (same name and key id) that fails to verify
    rejects the whole note, as the spec advises. Signatures by unknown keys
    are ignored and returned in ``NoteText.unknown``.
    """
    known = _verifier_map(verifiers)
    text, signatures = _split_note(note)
    message = text.encode()
    verified: list[NoteSignature] = []
    unknown: list[NoteSignature] = []
    for sig in signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            unknown.append(sig)
        elif verifier.verify(message, sig.signature):
            verified.append(sig)
        else:
            raise SignatureError(
                f"signature by {sig.name} (key id {sig.key_id:08x}) does not verify: "
                "the note was altered or signed by another key"
            )
    if not verified:
        seen = ", ".join(f"{s.name}+{s.key_id:08x}" for s in unknown)
        expected = ", ".join(f"{n}+{k:08x}" for n, k in known)
        raise SignatureError(
            f"no signature is by a known key: the note is signed by {seen or 'nobody'}; "
            f"known keys are {expected}"
        )
    return NoteText(text, tuple(verified), tuple(unknown))


def _verifier_map(verifiers: object) -> dict[tuple[str, int], Verifier]:
    items = [verifiers] if isinstance(verifiers, Verifier) else verifiers
    if not isinstance(items, Iterable):
        raise SignatureError(f"expected a Verifier or Verifiers, not {type(verifiers).__name__}")
    known: dict[tuple[str, int], Verifier] = {}
    for v in items:
        if not isinstance(v, Verifier):
            raise SignatureError(f"expected a Verifier, not {type(v).__name__}")
        known[(v.name, v.key_id)] = v
    if not known:
        raise SignatureError("no verifier keys given: pass the log's verifier key")
    return known


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tlog-checkpoint: the log's origin, its tree size and root hash at that size."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin:
            raise ProofError("checkpoint origin must be a non-empty string")
        if "\n" in self.origin or _CONTROL.search(self.origin):
            raise ProofError("checkpoint origin must be one line without control characters")
        if type(self.size) is not int or not 0 <= self.size < 1 << 64:
            raise ProofError(f"checkpoint size must be an int in [0, 2**64), got {self.size!r}")
        if type(self.root) is not bytes or len(self.root) != 32:
            raise ProofError("checkpoint root must be a 32-byte SHA-256 hash")
        if not isinstance(self.extensions, tuple):
            raise ProofError("checkpoint extensions must be a tuple of lines")
        for line in self.extensions:
            if not isinstance(line, str) or not line or "\n" in line or _CONTROL.search(line):
                raise ProofError(
                    f"checkpoint extension {line!r} must be one non-empty line of text"
                )

    def body(self) -> str:
        """The note text: origin, size, base64 root, extension lines, each ending in newline."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        return "".join(f"{line}\n" for line in (*lines, *self.extensions))

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a checkpoint body strictly (the note text, without signatures)."""
        if not isinstance(text, str):
            raise ProofError(f"checkpoint text must be a string, not {type(text).__name__}")
        if not text.endswith("\n"):
            raise ProofError("checkpoint text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise ProofError("checkpoint text needs origin, size and root hash lines")
        origin, size_text, root_text, *extensions = lines
        if not _SIZE.fullmatch(size_text) or int(size_text) >= 1 << 64:
            raise ProofError(
                f"checkpoint size {size_text[:30]!r} is not a decimal below 2**64 "
                "without leading zeros"
            )
        try:
            root = _b64decode(root_text)
        except (binascii.Error, ValueError):
            raise ProofError("checkpoint root hash is not valid base64") from None
        if len(root) != 32:
            raise ProofError(f"checkpoint root hash must be 32 bytes, got {len(root)}")
        return cls(origin, int(size_text), root, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signer: Signer) -> str:
    """The checkpoint as a signed note."""
    if not isinstance(checkpoint, Checkpoint):
        raise SignatureError(f"expected a Checkpoint, not {type(checkpoint).__name__}")
    return sign_note(checkpoint.body(), signer)


def open_checkpoint(note: str | bytes, verifier: Verifier | Iterable[Verifier]) -> Checkpoint:
    """Verify a signed checkpoint note and parse its body."""
    return Checkpoint.parse(open_note(note, verifier).text)
