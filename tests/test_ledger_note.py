"""C2SP signed notes and tlog-checkpoints: the Go vector, tampering, strict parsing."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datatrail.errors import KeyFileError, ProofError, SignatureError
from datatrail.ledger import (
    Checkpoint,
    CheckpointBinding,
    NoteSignature,
    Signer,
    Verifier,
    leaf_hash,
    migrations_digest,
    open_checkpoint,
    open_note,
    parse_signer_key,
    root_hash,
    sign_checkpoint,
    sign_note,
)

ROOT = root_hash([leaf_hash(b"a"), leaf_hash(b"b"), leaf_hash(b"c")])


@pytest.fixture(scope="module")
def vector(testdata: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((testdata / "signed-note" / "vectors.json").read_text())
    return data


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer.generate("example.com/datatrail")


def _signature_line(note: str) -> str:
    return note[note.rindex("\n\n") + 2 :]


# -- the golang.org/x/mod/sumdb/note vector ---------------------------------------


def test_signing_the_vector_text_reproduces_its_signature_line(vector: dict[str, Any]) -> None:
    signer = parse_signer_key(vector["signer_key"])
    note = sign_note(vector["text"], signer)
    assert note == vector["text"] + "\n" + vector["signature_line"]
    assert _signature_line(note).encode() == vector["signature_line"].encode()


def test_vector_keys_agree_with_each_other(vector: dict[str, Any]) -> None:
    signer = parse_signer_key(vector["signer_key"])
    verifier = Verifier.from_text(vector["verifier_key"])
    assert signer.verifier == verifier
    assert verifier.text == vector["verifier_key"]
    assert f"{verifier.key_id:08x}" == vector["verifier_key"].split("+")[1]


def test_vector_note_verifies(vector: dict[str, Any]) -> None:
    opened = open_note(
        vector["text"] + "\n" + vector["signature_line"],
        Verifier.from_text(vector["verifier_key"]),
    )
    assert opened.text == vector["text"]
    assert [s.name for s in opened.verified] == ["PeterNeumann"]
    assert opened.unknown == ()


def test_vector_note_with_changed_text_is_rejected(vector: dict[str, Any]) -> None:
    note = vector["text"].replace("answer", "Answer") + "\n" + vector["signature_line"]
    with pytest.raises(SignatureError, match="PeterNeumann \\(key id c74f20a3\\) does not verify"):
        open_note(note, Verifier.from_text(vector["verifier_key"]))


def test_vector_note_with_changed_name_is_rejected(vector: dict[str, Any]) -> None:
    line = vector["signature_line"].replace("PeterNeumann", "PeterNeumanm")
    with pytest.raises(SignatureError, match="no signature is by a known key"):
        open_note(vector["text"] + "\n" + line, Verifier.from_text(vector["verifier_key"]))


def test_vector_note_with_changed_key_id_is_rejected(vector: dict[str, Any]) -> None:
    name, blob = vector["signature_line"][2:].split(" ")
    raw = bytearray(base64.b64decode(blob))
    raw[0] ^= 0x01
    line = f"— {name} {base64.b64encode(bytes(raw)).decode()}\n"
    with pytest.raises(SignatureError, match="no signature is by a known key"):
        open_note(vector["text"] + "\n" + line, Verifier.from_text(vector["verifier_key"]))


def test_verifier_key_with_changed_name_does_not_parse(vector: dict[str, Any]) -> None:
    with pytest.raises(KeyFileError, match="key id c74f20a3"):
        Verifier.from_text(vector["verifier_key"].replace("PeterNeumann", "PeterNeumanm"))


# -- signing and opening ------------------------------------------------------------


def test_sign_then_open_round_trips(signer: Signer) -> None:
    text = "hello\n\nworld\n"  # the text may hold blank lines; the last one separates
    opened = open_note(sign_note(text, signer), signer.verifier)
    assert opened.text == text
    assert opened.verified[0].key_id == signer.key_id


def test_open_accepts_bytes(signer: Signer) -> None:
    assert open_note(sign_note("hi\n", signer).encode(), [signer.verifier]).text == "hi\n"


def test_unknown_signatures_are_ignored_when_a_known_one_verifies(signer: Signer) -> None:
    other = Signer.generate("witness.example/w1")
    note = sign_note("checkpoint\n", signer) + _signature_line(sign_note("checkpoint\n", other))
    opened = open_note(note, signer.verifier)
    assert [s.name for s in opened.unknown] == ["witness.example/w1"]
    both = open_note(note, [signer.verifier, other.verifier])
    assert len(both.verified) == 2


def test_a_bad_signature_by_a_known_key_rejects_the_note(signer: Signer) -> None:
    good = sign_note("one\n", signer)
    forged = "two\n\n" + _signature_line(good)
    with pytest.raises(SignatureError, match=f"key id {signer.key_id:08x}"):
        open_note(forged, signer.verifier)


def test_a_note_signed_only_by_other_keys_is_rejected(signer: Signer) -> None:
    other = Signer.generate("example.com/datatrail")  # same name, other key id
    with pytest.raises(SignatureError, match="no signature is by a known key"):
        open_note(sign_note("x\n", other), signer.verifier)


def test_open_needs_at_least_one_verifier(signer: Signer) -> None:
    with pytest.raises(SignatureError, match="no verifier keys"):
        open_note(sign_note("x\n", signer), [])


@pytest.mark.parametrize(
    ("note", "message"),
    [
        ("text\n— a AAAA\n", "no blank line"),
        ("text\n\n", "no signature lines"),
        ("text\n\n— a AAAAAAAA", "must end with a newline"),
        ("text\n\n- a AAAAAAAA\n", "does not start with"),
        ("text\n\n— a\n", "is not '— <name> <signature>'"),
        ("text\n\n— a b AAAAAAAA\n", "not valid base64"),
        ("text\n\n— a+b AAAAAAAA\n", "invalid key name"),
        ("text\n\n— a !!!!!!!!\n", "not valid base64"),
        ("text\n\n— a AAAA\n", "too short"),
        ("te\x01xt\n\n— a AAAAAAAA\n", "control characters"),
        ("text\r\n\n— a AAAAAAAA\n", "control characters"),
        (b"text\xff\n\n\xe2\x80\x94 a AAAAAAAA\n", "not valid UTF-8"),
        (None, "must be a string"),
    ],
)
def test_malformed_notes_are_rejected(signer: Signer, note: Any, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        open_note(note, signer.verifier)


def test_notes_with_too_many_signatures_are_rejected(signer: Signer) -> None:
    line = _signature_line(sign_note("x\n", signer))
    with pytest.raises(SignatureError, match="at most 100"):
        open_note("x\n\n" + line * 101, signer.verifier)


@pytest.mark.parametrize("text", ["no newline", "", "bad\x00\n"])
def test_sign_note_rejects_text_that_cannot_be_a_note(signer: Signer, text: str) -> None:
    with pytest.raises(SignatureError):
        sign_note(text, signer)


@pytest.mark.parametrize("name", ["", "has space", "has+plus", "tab\there", "nbsp\u00a0x"])
def test_key_names_with_spaces_or_plus_are_rejected(name: str) -> None:
    with pytest.raises(KeyFileError):
        Signer.generate(name)


@pytest.mark.parametrize(
    "text",
    [
        "name+c74f20a3",
        "name+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "name+c74f20a3+not base64",
        "name+c74f20a3+AhpcE=",
        "PeterNeumann+c74f20a3+AhpcE2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_malformed_verifier_keys_are_rejected(text: str) -> None:
    with pytest.raises(KeyFileError):
        Verifier.from_text(text)


def test_signer_repr_does_not_show_the_key(signer: Signer) -> None:
    assert repr(signer) == f"Signer(name='example.com/datatrail', key_id={signer.key_id:08x})"


def test_signature_line_format(signer: Signer) -> None:
    line = _signature_line(sign_note("x\n", signer))
    assert line.startswith("\u2014 example.com/datatrail ")
    raw = base64.b64decode(line.split(" ")[2])
    assert len(raw) == 4 + 64
    assert int.from_bytes(raw[:4], "big") == signer.key_id
    parsed = NoteSignature("example.com/datatrail", signer.key_id, raw[4:])
    assert parsed.line() == line


# -- checkpoints ----------------------------------------------------------------------


def test_checkpoint_body_is_the_c2sp_text() -> None:
    cp = Checkpoint("example.com/log", 3, ROOT)
    assert cp.body() == f"example.com/log\n3\n{base64.b64encode(ROOT).decode()}\n"
    ext = Checkpoint("example.com/log", 3, ROOT, ("ext one", "ext two"))
    assert ext.body().endswith("\next one\next two\n")
    assert Checkpoint.parse(ext.body()) == ext


def test_signed_checkpoint_round_trips(signer: Signer) -> None:
    cp = Checkpoint("example.com/datatrail", 3, ROOT)
    note = sign_checkpoint(cp, signer)
    assert note.startswith(cp.body() + "\n\u2014 example.com/datatrail ")
    assert open_checkpoint(note, signer.verifier) == cp


def test_tampered_checkpoint_size_fails_to_open(signer: Signer) -> None:
    note = sign_checkpoint(Checkpoint("example.com/datatrail", 3, ROOT), signer)
    with pytest.raises(SignatureError, match="does not verify"):
        open_checkpoint(note.replace("\n3\n", "\n4\n", 1), signer.verifier)


def test_checkpoint_from_another_key_fails_to_open(signer: Signer) -> None:
    note = sign_checkpoint(Checkpoint("o", 0, root_hash([])), Signer.generate("o"))
    with pytest.raises(SignatureError, match="no signature is by a known key"):
        open_checkpoint(note, signer.verifier)


def test_empty_tree_checkpoint_has_size_zero() -> None:
    cp = Checkpoint.parse(f"o\n0\n{base64.b64encode(root_hash([])).decode()}\n")
    assert cp.size == 0


_R = base64.b64encode(ROOT).decode()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"o\n3\n{_R}", "end with a newline"),
        ("o\n3\n", "origin, size and root"),
        (f"o\n03\n{_R}\n", "leading zeros"),
        (f"o\n+3\n{_R}\n", "decimal"),
        (f"o\n-3\n{_R}\n", "decimal"),
        (f"o\n 3\n{_R}\n", "decimal"),
        (f"o\n3.0\n{_R}\n", "decimal"),
        (f"o\n18446744073709551616\n{_R}\n", "2\\*\\*64"),
        (f"o\n{'9' * 5000}\n{_R}\n", "decimal"),
        ("o\n3\nAAAA\n", "32 bytes"),
        ("o\n3\nnot base64!\n", "base64"),
        (f"o\n3\n{_R[:-1]}\n", "base64"),
        (f"\n3\n{_R}\n", "origin"),
        (f"o\n3\n{_R}\n\n", "extension"),
        (f"o\n3\n{_R}\next\n\nmore\n", "extension"),
    ],
)
def test_checkpoint_parse_is_strict(text: str, message: str) -> None:
    with pytest.raises(ProofError, match=message):
        Checkpoint.parse(text)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"origin": "", "size": 1, "root": ROOT},
        {"origin": "a\nb", "size": 1, "root": ROOT},
        {"origin": "o", "size": -1, "root": ROOT},
        {"origin": "o", "size": True, "root": ROOT},
        {"origin": "o", "size": 1, "root": ROOT[:31]},
        {"origin": "o", "size": 1, "root": ROOT, "extensions": ("",)},
        {"origin": "o", "size": 1, "root": ROOT, "extensions": ["list"]},
    ],
)
def test_checkpoint_rejects_bad_fields(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ProofError):
        Checkpoint(**kwargs)


LINE = st.text(
    st.characters(min_codepoint=0x20, exclude_categories=("Cs",)), min_size=1, max_size=30
)


@given(
    LINE,
    st.integers(min_value=0, max_value=2**64 - 1),
    st.binary(min_size=32, max_size=32),
    st.lists(LINE, max_size=3).map(tuple),
)
@settings(max_examples=100, deadline=None)
def test_checkpoint_body_round_trips(
    origin: str, size: int, root: bytes, extensions: tuple[str, ...]
) -> None:
    cp = Checkpoint(origin, size, root, extensions)
    assert Checkpoint.parse(cp.body()) == cp


# -- datatrail's binding lines -----------------------------------------------------------

EMPTY = root_hash([])
STEPS = [
    (1, "event log", "2026-11-19T08:00:00.000000Z"),
    (2, "records", "2026-11-19T08:00:00.000001Z"),
]


def _binding(**changes: Any) -> CheckpointBinding:
    fields: dict[str, Any] = {
        "time": "2026-11-20T07:54:37.562660Z",
        "prev_size": 2,
        "prev_root": root_hash([leaf_hash(b"a"), leaf_hash(b"b")]),
        "migrations": 2,
        "migrations_digest": migrations_digest(STEPS),
    }
    return CheckpointBinding(**{**fields, **changes})


def test_binding_lines_round_trip_through_a_signed_checkpoint(signer: Signer) -> None:
    binding = _binding()
    note = sign_checkpoint(Checkpoint("example.com/log", 3, ROOT, binding.lines()), signer)
    lines = note.split("\n")
    assert [line.split(" ")[0] for line in lines[3:6]] == ["time", "prev", "migrations"]
    assert CheckpointBinding.of(open_checkpoint(note, signer.verifier)) == binding


def test_a_note_without_extension_lines_is_legacy_and_lines_after_the_binding_are_allowed() -> None:
    assert CheckpointBinding.of(Checkpoint("example.com/log", 3, ROOT)) is None
    extended = Checkpoint("example.com/log", 3, ROOT, (*_binding().lines(), "newer writer: x"))
    assert CheckpointBinding.of(extended) == _binding()


def test_the_first_checkpoint_names_the_empty_tree() -> None:
    first = _binding(prev_size=0, prev_root=EMPTY)
    assert first.lines()[1] == f"prev 0 {base64.b64encode(EMPTY).decode()}"
    with pytest.raises(ProofError, match="empty root"):
        _binding(prev_size=0)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda ls: ls[:2], "3 extension lines|has 2 extension lines"),
        (lambda ls: [ls[1], ls[0], ls[2]], "not 'time"),
        (lambda ls: ["time yesterday", *ls[1:]], "not YYYY"),
        (lambda ls: [ls[0], "prev 02 " + ls[1].split(" ")[2], ls[2]], "not a decimal"),
        (lambda ls: [ls[0], "prev 3 " + ls[1].split(" ")[2], ls[2]], "not smaller"),
        (lambda ls: [ls[0], ls[1][:-2] + "==", ls[2]], "canonical|base64"),
        (lambda ls: [ls[0], ls[1], ls[2] + " extra"], "not 'time"),
        (lambda ls: [ls[0] + " ", ls[1], ls[2]], "not 'time"),
    ],
)
def test_malformed_binding_lines_are_refused(edit: Any, message: str) -> None:
    lines = tuple(edit(list(_binding().lines())))
    with pytest.raises(ProofError, match=message):
        CheckpointBinding.of(Checkpoint("example.com/log", 3, ROOT, lines))


def test_the_migrations_digest_changes_with_any_cell_and_refuses_other_cells() -> None:
    base = migrations_digest(STEPS)
    assert migrations_digest(list(STEPS)) == base
    for row in range(len(STEPS)):
        for col, changed in enumerate((3, "event log!", "2026-11-19T08:00:00.000009Z")):
            steps = [list(s) for s in STEPS]
            steps[row][col] = changed
            assert migrations_digest([tuple(s) for s in steps]) != base
    assert migrations_digest(STEPS[:1]) != base
    for bad in ([("1", "x", "t")], [(1, b"x", "t")], [(1, "x")]):
        with pytest.raises(ProofError, match="migrations row"):
            migrations_digest(bad)
