"""Key files: formats, permissions from the first instant, clear errors."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datatrail.errors import KeyFileError
from datatrail.ledger import (
    SIGNING_KEY_FILE,
    VERIFIER_KEY_FILE,
    InsecureKeyFileWarning,
    generate_keypair,
    load_signer,
    load_verifier,
    open_note,
    parse_signer_key,
    sign_note,
    signer_key_text,
)

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


@pytest.fixture
def keydir(tmp_path: Path) -> Path:
    return tmp_path / ".datatrail"


@pytest.fixture
def umask_zero() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_generate_writes_both_key_files(keydir: Path) -> None:
    signer, verifier_text = generate_keypair(keydir, "example.com/log")
    private = (keydir / SIGNING_KEY_FILE).read_text()
    public = (keydir / VERIFIER_KEY_FILE).read_text()
    assert private.startswith(f"PRIVATE+KEY+example.com/log+{signer.key_id:08x}+")
    assert private.endswith("\n")
    assert private.strip() == signer_key_text(signer)
    assert public == verifier_text + "\n"
    assert verifier_text == signer.verifier.text
    assert verifier_text.startswith(f"example.com/log+{signer.key_id:08x}+")


@posix_only
def test_signing_key_file_is_0600_even_with_a_permissive_umask(
    keydir: Path, umask_zero: None
) -> None:
    generate_keypair(keydir, "example.com/log")
    assert stat.S_IMODE((keydir / SIGNING_KEY_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE((keydir / VERIFIER_KEY_FILE).stat().st_mode) == 0o644


@posix_only
def test_signing_key_file_is_created_with_0600_not_chmodded_later(
    keydir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, int, int]] = []
    real_open = os.open

    def spy(path: Any, flags: int, mode: int = 0o777, *args: Any, **kwargs: Any) -> int:
        calls.append((os.fspath(path), flags, mode))
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    generate_keypair(keydir, "example.com/log")
    private = [c for c in calls if c[0].endswith(SIGNING_KEY_FILE)]
    assert len(private) == 1
    _, flags, mode = private[0]
    assert mode == 0o600
    assert flags & os.O_CREAT and flags & os.O_EXCL


def test_generate_refuses_to_overwrite_a_key(keydir: Path) -> None:
    generate_keypair(keydir, "example.com/log")
    before = (keydir / SIGNING_KEY_FILE).read_text()
    with pytest.raises(KeyFileError, match="already exists; refusing to overwrite"):
        generate_keypair(keydir, "example.com/log")
    assert (keydir / SIGNING_KEY_FILE).read_text() == before


def test_generate_rejects_a_bad_name_before_writing(keydir: Path) -> None:
    with pytest.raises(KeyFileError, match="must not contain spaces"):
        generate_keypair(keydir, "my log")
    assert not keydir.exists()


def test_loaded_keys_sign_and_verify(keydir: Path) -> None:
    signer, verifier_text = generate_keypair(keydir, "example.com/log")
    loaded = load_signer(keydir / SIGNING_KEY_FILE)
    assert loaded.key_id == signer.key_id
    note = sign_note("checkpoint\n", loaded)
    assert open_note(note, load_verifier(keydir / VERIFIER_KEY_FILE)).text == "checkpoint\n"
    assert load_verifier(verifier_text) == signer.verifier
    assert load_verifier(str(keydir / VERIFIER_KEY_FILE)) == signer.verifier


def test_keys_load_from_their_directory(keydir: Path) -> None:
    signer, _ = generate_keypair(keydir, "example.com/log")
    assert load_signer(keydir).key_id == signer.key_id
    assert load_verifier(keydir) == signer.verifier


def test_go_private_key_text_parses(testdata: Path) -> None:
    vector = json.loads((testdata / "signed-note" / "vectors.json").read_text())
    signer = parse_signer_key(vector["signer_key"])
    assert signer.name == "PeterNeumann"
    assert signer.verifier.text == vector["verifier_key"]
    assert signer_key_text(signer) == vector["signer_key"]


def test_missing_key_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope" / SIGNING_KEY_FILE
    with pytest.raises(KeyFileError, match=f"{path} does not exist.*generate_keypair"):
        load_signer(path)
    with pytest.raises(KeyFileError, match="does not exist"):
        load_verifier(tmp_path / "nope" / VERIFIER_KEY_FILE)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "does not start with PRIVATE\\+KEY\\+"),
        ("PRIVATE+KEY+name+c74f20a3\n", "is not PRIVATE\\+KEY\\+<name>"),
        ("PRIVATE+KEY+name+zzzzzzzz+AYEK\n", "not 8 hex digits"),
        ("PRIVATE+KEY+name+c74f20a3+@@@@\n", "invalid base64"),
        ("PRIVATE+KEY+name+c74f20a3+AYEK\n", "not an Ed25519 key"),
        (
            "PRIVATE+KEY+PeterNeumann+00000000+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz\n",
            "says key id 00000000",
        ),
        ("PRIVATE+KEY+a+b\nsecond line\n", "exactly one line"),
    ],
)
def test_malformed_signing_key_names_file_and_problem(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / SIGNING_KEY_FILE
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match=message) as info:
        load_signer(path)
    assert str(path) in str(info.value)


def test_malformed_signing_key_message_does_not_leak_the_secret(tmp_path: Path) -> None:
    secret = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
    path = tmp_path / SIGNING_KEY_FILE
    path.write_text(f"PRIVATE+KEY+PeterNeumann+00000000+{secret}\n")
    path.chmod(0o600)
    with pytest.raises(KeyFileError) as info:
        load_signer(path)
    assert secret not in str(info.value)


def test_binary_key_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / VERIFIER_KEY_FILE
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(KeyFileError, match="not UTF-8"):
        load_verifier(path)


def test_malformed_verifier_key_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / VERIFIER_KEY_FILE
    path.write_text("name+c74f20a3+AAAA\n")
    with pytest.raises(KeyFileError, match=f"verifier key file {path}: .*not an Ed25519 key"):
        load_verifier(path)


@posix_only
def test_group_readable_signing_key_loads_with_a_warning(keydir: Path) -> None:
    signer, _ = generate_keypair(keydir, "example.com/log")
    path = keydir / SIGNING_KEY_FILE
    path.chmod(0o644)
    with pytest.warns(InsecureKeyFileWarning, match="mode 0644.*chmod 600"):
        loaded = load_signer(path)
    assert loaded.key_id == signer.key_id


def test_load_verifier_rejects_other_types() -> None:
    with pytest.raises(KeyFileError, match="expected verifier key text or a path"):
        load_verifier(42)  # type: ignore[arg-type]
