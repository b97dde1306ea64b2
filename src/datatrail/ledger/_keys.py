"""Signing and verifier keys on disk.

A key pair lives in one directory (``.datatrail/`` by default) as two one-line
UTF-8 text files, in the formats Go's ``golang.org/x/mod/sumdb/note`` uses, so
other tools can read them:

``signing.key`` (mode 0600, created with that mode)
    ``PRIVATE+KEY+<name>+<8 hex key id>+<base64(0x01 || 32-byte Ed25519 seed)>``
``verifier.key`` (mode 0644; safe to publish)
    ``<name>+<8 hex key id>+<base64(0x01 || 32-byte Ed25519 public key)>``

Problems raise :class:`~datatrail.errors.KeyFileError` naming the file and what
is wrong; the private key's text never appears in a message. A signing key
readable by group or others still loads, with an :class:`InsecureKeyFileWarning`.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
import warnings
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from datatrail.errors import KeyFileError
from datatrail.ledger._note import ALG_ED25519, Signer, Verifier, check_key_name

__all__ = [
    "SIGNING_KEY_FILE",
    "VERIFIER_KEY_FILE",
    "InsecureKeyFileWarning",
    "generate_keypair",
    "load_signer",
    "load_verifier",
    "parse_signer_key",
    "signer_key_text",
]

SIGNING_KEY_FILE = "signing.key"
"""File name of the private signing key inside a key directory."""

VERIFIER_KEY_FILE = "verifier.key"
"""File name of the public verifier key inside a key directory."""

_PRIVATE_PREFIX = "PRIVATE+KEY+"
_VERIFIER_TEXT = re.compile(r"[^\s+]+\+[0-9a-fA-F]{8}\+[A-Za-z0-9+/]+=*")


class InsecureKeyFileWarning(UserWarning):
    """A signing key file can be read by users other than its owner."""


def signer_key_text(signer: Signer) -> str:
    """The private key text of ``signer``: ``PRIVATE+KEY+<name>+<key id>+<base64>``. Secret."""
    seed = signer.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    data = base64.b64encode(bytes([ALG_ED25519]) + seed).decode()
    return f"{_PRIVATE_PREFIX}{signer.name}+{signer.key_id:08x}+{data}"


def parse_signer_key(text: str) -> Signer:
    """Parse private key text (``PRIVATE+KEY+<name>+<key id>+<base64(0x01 || seed)>``)."""
    if not isinstance(text, str):
        raise KeyFileError(f"signing key text must be a string, not {type(text).__name__}")
    text = text.strip()
    if not text.startswith(_PRIVATE_PREFIX):
        raise KeyFileError("signing key text does not start with PRIVATE+KEY+")
    parts = text[len(_PRIVATE_PREFIX) :].split("+", 2)  # base64 itself may contain '+'
    if len(parts) != 3:
        raise KeyFileError("signing key text is not PRIVATE+KEY+<name>+<key id>+<base64 seed>")
    name, hex_id, data = parts
    check_key_name(name)
    if not re.fullmatch(r"[0-9a-fA-F]{8}", hex_id):
        raise KeyFileError(f"signing key for {name!r} has a key id that is not 8 hex digits")
    try:
        raw = base64.b64decode(data.encode("ascii"), validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(f"signing key for {name!r} has invalid base64 key data") from None
    if len(raw) != 33 or raw[0] != ALG_ED25519:
        raise KeyFileError(
            f"signing key for {name!r} is not an Ed25519 key (0x01 followed by a 32-byte seed)"
        )
    signer = Signer(name, Ed25519PrivateKey.from_private_bytes(raw[1:]))
    if signer.key_id != int(hex_id, 16):
        raise KeyFileError(
            f"signing key for {name!r} says key id {hex_id} but its key gives "
            f"{signer.key_id:08x}; the key text is corrupt"
        )
    return signer


def _create(path: Path, content: str, mode: int) -> None:
    """Create ``path`` with ``mode`` from the first instant; never replace a file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise KeyFileError(
            f"{path} already exists; refusing to overwrite a key (move it away first)"
        ) from None
    except OSError as exc:
        raise KeyFileError(f"cannot create key file {path}: {exc.strerror}") from None
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, mode)  # the umask may have narrowed it; make it exact
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fd = -1
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        if fd >= 0:
            os.close(fd)
        path.unlink(missing_ok=True)
        raise KeyFileError(f"cannot write key file {path}: {exc.strerror}") from None


def generate_keypair(directory: Path | str, name: str) -> tuple[Signer, str]:
    """Make a fresh Ed25519 key pair named ``name`` and write it into ``directory``.

    Writes ``signing.key`` (mode 0600) and ``verifier.key``; refuses to
    overwrite either. Returns the signer and the verifier key text.
    """
    check_key_name(name)
    directory = Path(directory)
    private_path = directory / SIGNING_KEY_FILE
    public_path = directory / VERIFIER_KEY_FILE
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise KeyFileError(f"cannot create key directory {directory}: {exc.strerror}") from None
    for path in (private_path, public_path):
        if path.exists() or path.is_symlink():
            raise KeyFileError(
                f"{path} already exists; refusing to overwrite a key (move it away first)"
            )
    signer = Signer.generate(name)
    verifier_text = signer.verifier.text
    _create(private_path, signer_key_text(signer) + "\n", 0o600)
    try:
        _create(public_path, verifier_text + "\n", 0o644)
    except KeyFileError:
        private_path.unlink(missing_ok=True)  # never leave half a pair behind
        raise
    return signer, verifier_text


def _read(path: Path, what: str) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(
            f"{what} file {path} does not exist; create a key pair with "
            "datatrail.ledger.generate_keypair(directory, name)"
        ) from None
    except IsADirectoryError:
        raise KeyFileError(f"{what} file {path} is a directory, not a key file") from None
    except OSError as exc:
        raise KeyFileError(f"cannot read {what} file {path}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyFileError(f"{what} file {path} is not UTF-8 text") from None
    if "\n" in text.strip():
        raise KeyFileError(f"{what} file {path} must hold exactly one line")
    return text


def load_signer(path: Path | str) -> Signer:
    """Load the signing key from ``path`` (a ``signing.key`` file, or its directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / SIGNING_KEY_FILE
    text = _read(path, "signing key")
    if os.name == "posix":
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            warnings.warn(
                f"signing key file {path} has mode {mode:04o}, readable by other users; "
                f"run: chmod 600 {path}",
                InsecureKeyFileWarning,
                stacklevel=2,
            )
    try:
        return parse_signer_key(text)
    except KeyFileError as exc:
        raise KeyFileError(f"signing key file {path}: {exc}") from None


def load_verifier(path_or_text: Path | str) -> Verifier:
    """Load a verifier key from verifier key text, a ``verifier.key`` file, or its directory.

    A ``str`` shaped like ``<name>+<8 hex>+<base64>`` is read as the key text
    itself; any other ``str`` or a ``Path`` is read as a file path.
    """
    if isinstance(path_or_text, str) and _VERIFIER_TEXT.fullmatch(path_or_text.strip()):
        return Verifier.from_text(path_or_text)
    if not isinstance(path_or_text, str | os.PathLike):
        raise KeyFileError(
            f"expected verifier key text or a path, not {type(path_or_text).__name__}"
        )
    path = Path(path_or_text)
    if path.is_dir():
        path = path / VERIFIER_KEY_FILE
    text = _read(path, "verifier key")
    try:
        return Verifier.from_text(text)
    except KeyFileError as exc:
        raise KeyFileError(f"verifier key file {path}: {exc}") from None
