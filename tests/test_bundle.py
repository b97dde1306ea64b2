"""Proof bundles: a node's story, checkable offline with the public key and nothing else."""

from __future__ import annotations

import ast
import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import datatrail
import datatrail.audit._bundle
import datatrail.audit._notes
import datatrail.capture
from datatrail.audit import Bundle, erase, prove, read_bundle, verify_bundle, write_bundle
from datatrail.cli import app
from datatrail.errors import NodeNotFound, ProofError
from datatrail.ledger import Checkpoint, Signer, load_signer, sign_checkpoint
from datatrail.store import SQLiteStore

runner = CliRunner()


@dataclass
class Recorded:
    home: Path
    key_text: str
    run_id: str
    child_run_id: str
    output: Path


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    tmp = tmp_path_factory.mktemp("bundle")
    home = tmp / ".datatrail"
    datatrail.configure(home=home)
    source = tmp / "orders.csv"
    source.write_text("id,amount\n1,10\n2,20\n")
    output = tmp / "totals.txt"

    @datatrail.track
    def total(path: Path) -> int:
        return sum(int(line.split(",")[1]) for line in path.read_text().splitlines()[1:])

    try:
        with datatrail.run("nightly", params={"day": "2026-11-20"}) as r:
            r.input(source)
            output.write_text(str(total(source)))
            r.output(output)
        with datatrail.run("unrelated") as r:
            r.input(source)
        datatrail.flush()
    finally:
        datatrail.capture.shutdown()
        datatrail.configure(home=None)
    store = SQLiteStore(home / "trail.db")
    try:
        run_id = store.query("SELECT run_id FROM runs WHERE job_name = 'nightly'")[0][0]
        child = store.query("SELECT run_id FROM runs WHERE parent_run_id = ?", (run_id,))[0][0]
    finally:
        store.close()
    key_text = (home / "verifier.key").read_text().strip()
    return Recorded(home=home, key_text=key_text, run_id=run_id, child_run_id=child, output=output)


@pytest.fixture(scope="module")
def bundle(recorded: Recorded) -> Bundle:
    store = SQLiteStore(recorded.home / "trail.db")
    try:
        return prove(store, f"run:{recorded.run_id}")
    finally:
        store.close()


def _json(bundle: Bundle) -> dict[str, Any]:
    return json.loads(
        json.dumps(
            {
                **{f: getattr(bundle, f) for f in bundle.__struct_fields__ if f != "events"},
                "events": [{f: getattr(e, f) for f in e.__struct_fields__} for e in bundle.events],
            }
        )
    )


def _check(data: dict[str, Any], key: str) -> list[tuple[int | None, str, str]]:
    report = verify_bundle(json.dumps(data).encode(), key)
    return [(f.index, f.check, f.message) for f in report.failures]


def _flip_hex(text: str, pos: int) -> str:
    return text[:pos] + ("0" if text[pos] != "0" else "1") + text[pos + 1 :]


# -- what a bundle holds --------------------------------------------------------------------


def test_a_run_bundle_holds_its_start_finish_io_code_environment_and_child_runs(
    recorded: Recorded, bundle: Bundle
) -> None:
    kinds = [e.kind for e in bundle.events]
    assert kinds.count("run_started") == 2 and kinds.count("run_finished") == 2
    assert kinds.count("io") >= 3  # the run's input and output, the child's input and return
    assert "code_version" in kinds and "environment" in kinds
    runs = {e.event["run_id"] for e in bundle.events if "run_id" in e.event}
    assert runs == {recorded.run_id, recorded.child_run_id}  # not the unrelated run
    assert [e.index for e in bundle.events] == sorted(e.index for e in bundle.events)
    assert bundle.verifier_key == recorded.key_text


def test_a_bundle_verifies_offline_with_only_the_key(recorded: Recorded, bundle: Bundle) -> None:
    report = verify_bundle(json.dumps(_json(bundle)), recorded.key_text)
    assert report.ok, report.failures
    assert report.events == len(bundle.events)
    assert (report.tree_size, report.root) == (bundle.tree_size, bundle.root)


def test_the_offline_checker_imports_nothing_but_the_ledger() -> None:
    allowed = {"datatrail.ledger", "datatrail.errors", "datatrail.audit._notes"}
    for module in (datatrail.audit._bundle, datatrail.audit._notes):
        tree = ast.parse(Path(module.__file__ or "").read_text())
        imported = {
            node.module or ""
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("datatrail")
        }
        assert imported <= allowed, (module.__name__, imported - allowed)


def test_bundles_for_an_artifact_and_a_dataset_hold_the_producing_runs(recorded: Recorded) -> None:
    store = SQLiteStore(recorded.home / "trail.db")
    try:
        (artifact,) = store.query(
            "SELECT artifact_id FROM run_io WHERE dataset_name = ? AND role = 'output'",
            (str(recorded.output.resolve()),),
        )[0]
        by_artifact = prove(store, artifact)
        by_dataset = prove(store, f"dataset:file:{recorded.output.resolve()}")
    finally:
        store.close()
    for b in (by_artifact, by_dataset):
        assert {e.event.get("run_id") for e in b.events if e.kind == "run_started"} == {
            recorded.run_id
        }
        assert verify_bundle(b, recorded.key_text).ok


def test_proving_an_unknown_node_fails_clearly(recorded: Recorded) -> None:
    store = SQLiteStore(recorded.home / "trail.db")
    try:
        with pytest.raises(NodeNotFound):
            prove(store, "run:01a1fd1a-0000-7000-8000-000000000000")
    finally:
        store.close()


# -- any changed byte fails, naming what failed ------------------------------------------------


def test_every_changed_byte_of_one_body_fails_naming_the_event(
    recorded: Recorded, bundle: Bundle
) -> None:
    data = _json(bundle)
    k = 2
    ev = data["events"][k]
    body = base64.b64decode(ev["body"])
    for pos in range(len(body)):
        changed = body[:pos] + bytes([body[pos] ^ 0x01]) + body[pos + 1 :]
        ev["body"] = base64.b64encode(changed).decode()
        failures = _check(data, recorded.key_text)
        assert (ev["index"], "leaf_hash") in {(i, c) for i, c, _ in failures}, pos
    ev["body"] = base64.b64encode(body).decode()
    assert _check(data, recorded.key_text) == []


def test_every_changed_digit_of_a_proof_hash_fails_naming_the_event(
    recorded: Recorded, bundle: Bundle
) -> None:
    data = _json(bundle)
    ev = next(e for e in data["events"] if len(e["proof"]) >= 2)
    for n, original in enumerate(list(ev["proof"])):
        for pos in range(64):
            ev["proof"][n] = _flip_hex(original, pos)
            failures = _check(data, recorded.key_text)
            assert [(i, c) for i, c, _ in failures] == [(ev["index"], "inclusion_proof")], (n, pos)
            assert f"event {ev['index']}" in failures[0][2]
        ev["proof"][n] = original


def test_every_changed_character_of_the_checkpoint_note_fails(
    recorded: Recorded, bundle: Bundle
) -> None:
    data = _json(bundle)
    note = data["checkpoint"]
    for pos, c in enumerate(note):
        swapped = "B" if c == "A" else "A" if c.isalnum() else ("x" if c != "x" else "y")
        data["checkpoint"] = note[:pos] + swapped + note[pos + 1 :]
        checks = {c for _, c, _ in _check(data, recorded.key_text)}
        assert checks & {"checkpoint_signature", "checkpoint"}, (pos, c, checks)
    data["checkpoint"] = note
    assert _check(data, recorded.key_text) == []


@pytest.mark.parametrize(
    ("where", "change", "check"),
    [
        (
            "leaf hash",
            lambda d: d["events"][1].update(leaf_hash=_flip_hex(d["events"][1]["leaf_hash"], 5)),
            "leaf_hash",
        ),
        (
            "index",
            lambda d: d["events"][1].update(index=d["events"][1]["index"] + 1),
            "inclusion_proof",
        ),
        (
            "readable copy",
            lambda d: d["events"][1]["event"].update(ts="2000-01-01T00:00:00.000000Z"),
            "event",
        ),
        ("id", lambda d: d["events"][1].update(id="01a1fd1a-0000-7000-8000-000000000000"), "event"),
        ("tree size", lambda d: d.update(tree_size=d["tree_size"] + 1), "checkpoint"),
        ("root", lambda d: d.update(root=_flip_hex(d["root"], 0)), "checkpoint"),
        (
            "verifier key",
            lambda d: d.update(verifier_key=Signer.generate("x").verifier.text),
            "verifier_key",
        ),
    ],
)
def test_a_changed_field_fails_naming_the_check(
    recorded: Recorded, bundle: Bundle, where: str, change: Any, check: str
) -> None:
    data = _json(bundle)
    change(data)
    failures = _check(data, recorded.key_text)
    assert check in {c for _, c, _ in failures}, (where, failures)


def test_the_wrong_key_fails_the_checkpoint_signature(bundle: Bundle) -> None:
    report = verify_bundle(bundle, Signer.generate("impostor").verifier.text)
    assert not report.ok
    assert "checkpoint_signature" in {f.check for f in report.failures}


def test_a_checkpoint_re_signed_by_the_real_key_over_another_root_fails_every_proof(
    recorded: Recorded, bundle: Bundle
) -> None:
    signer = load_signer(recorded.home / "signing.key")
    data = _json(bundle)
    data["checkpoint"] = sign_checkpoint(
        Checkpoint(origin=bundle.origin, size=bundle.tree_size, root=bytes(32)), signer
    )
    data["root"] = bytes(32).hex()
    failures = _check(data, recorded.key_text)
    assert {i for i, c, _ in failures if c == "inclusion_proof"} == {e.index for e in bundle.events}


def test_the_note_binds_its_time_and_a_legacy_note_over_the_same_head_verifies_too(
    recorded: Recorded, bundle: Bundle
) -> None:
    assert "\ntime " in bundle.checkpoint and "\nprev " in bundle.checkpoint
    signer = load_signer(recorded.home / "signing.key")
    data = _json(bundle)
    data["checkpoint"] = sign_checkpoint(
        Checkpoint(origin=bundle.origin, size=bundle.tree_size, root=bytes.fromhex(bundle.root)),
        signer,
    )
    assert _check(data, recorded.key_text) == []


def test_a_file_that_is_not_a_bundle_is_refused(tmp_path: Path, recorded: Recorded) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"hello": 1}')
    with pytest.raises(ProofError, match="not a datatrail proof bundle"):
        verify_bundle(read_bundle(path), recorded.key_text)


# -- erased events ------------------------------------------------------------------------------


def test_an_erased_event_is_proven_by_its_leaf_and_comes_with_its_receipt(tmp_path: Path) -> None:
    home = tmp_path / ".datatrail"
    datatrail.configure(home=home)
    source = tmp_path / "a.csv"
    source.write_text("x\n")
    try:
        with datatrail.run("import", params={"who": "someone"}) as r:
            r.input(source)
        datatrail.flush()
    finally:
        datatrail.capture.shutdown()
        datatrail.configure(home=None)
    store = SQLiteStore(home / "trail.db", signer=load_signer(home / "signing.key"))
    try:
        run_id, start = store.query("SELECT run_id, start_idx FROM runs")[0]
        receipt = erase(store, start, reason="asked").receipt_index
        b = prove(store, f"event:{start}")
        story = prove(store, f"run:{run_id}")
    finally:
        store.close()
    # The body (and with it the run id) is gone, so the run's story no longer finds it.
    assert start not in {e.index for e in story.events}
    erased = next(e for e in b.events if e.index == start)
    assert erased.body is None and erased.erased_by == receipt
    assert receipt in {e.index for e in b.events}
    key = (home / "verifier.key").read_text()
    report = verify_bundle(b, key)
    assert report.ok, report.failures
    assert report.erased == [start]
    data = _json(b)
    data["events"] = [e for e in data["events"] if e["index"] != receipt]
    assert (start, "erasure_receipt") in {(i, c) for i, c, _ in _check(data, key)}
    # The body is gone, so the receipt is what says which kind of event it was.
    data = _json(b)
    for e in data["events"]:
        if e["index"] == start:
            e["kind"] = "io"
    assert [(i, c) for i, c, _ in _check(data, key)] == [(start, "erasure_receipt")]


# -- the CLI -------------------------------------------------------------------------------------


def test_cli_prove_then_verify_bundle_offline(
    tmp_path: Path, recorded: Recorded, bundle: Bundle
) -> None:
    out = tmp_path / "bundle.json"
    result = runner.invoke(
        app,
        [
            "prove",
            f"run:{recorded.run_id}",
            "--out",
            str(out),
            "--trail",
            str(recorded.home),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["events"] == len(bundle.events) and summary["out"] == str(out)
    key_file = tmp_path / "auditor.key"
    key_file.write_text(recorded.key_text + "\n")
    for key in (str(key_file), recorded.key_text):
        ok = runner.invoke(app, ["verify-bundle", str(out), "--key", key, "--json"])
        assert ok.exit_code == 0, ok.output
        assert json.loads(ok.stdout)["ok"] is True
    data = json.loads(out.read_text())
    idx = data["events"][3]["index"]
    data["events"][3]["proof"][0] = _flip_hex(data["events"][3]["proof"][0], 10)
    out.write_text(json.dumps(data))
    bad = runner.invoke(app, ["verify-bundle", str(out), "--key", str(key_file)])
    assert bad.exit_code == 1
    assert f"event {idx}: inclusion_proof" in bad.stdout
    assert write_bundle(bundle, out) == out and read_bundle(out) == bundle


def test_cli_verify_bundle_with_a_missing_file_is_bad_input(
    tmp_path: Path, recorded: Recorded
) -> None:
    result = runner.invoke(
        app, ["verify-bundle", str(tmp_path / "nope.json"), "--key", recorded.key_text]
    )
    assert result.exit_code == 2
    assert "cannot read bundle" in result.stderr
