"""``verify`` on clean trails, and the audit commands' exit codes and ``--json`` shapes."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import datatrail
import datatrail.capture
from datatrail.audit import FAULT_KINDS, UNBOUND_KINDS, consistency, verify
from datatrail.cli import app
from datatrail.errors import KeyFileError
from datatrail.ledger import (
    Checkpoint,
    CheckpointBinding,
    Signer,
    load_signer,
    load_verifier,
    migrations_digest,
    open_checkpoint,
    root_hash,
    sign_checkpoint,
)
from datatrail.model import RunFinished, now_ts, uuid7
from datatrail.store import SQLiteStore, init_home
from datatrail.store._copy import copy_trail
from datatrail.store._schema import MIGRATIONS

runner = CliRunner()


def _record(home: Path, data: Path, runs: int = 2) -> None:
    datatrail.configure(home=home)
    source = data / "orders.csv"
    source.write_text("id,amount\n1,10\n")

    @datatrail.track
    def double(path: Path) -> bytes:
        return path.read_bytes() * 2

    try:
        for i in range(runs):
            with datatrail.run("nightly", params={"i": i}) as r:
                r.input(source)
                out = data / f"out-{i}.bin"
                out.write_bytes(double(source))
                r.output(out)
            datatrail.flush()
    finally:
        datatrail.capture.shutdown()
        datatrail.configure(home=None)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / ".datatrail"
    _record(home, tmp_path)
    return home


def _invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


# -- the library ------------------------------------------------------------------------------


def test_a_clean_trail_verifies_with_the_size_and_root_of_its_leaves(home: Path) -> None:
    store = SQLiteStore(home / "trail.db")
    try:
        report = verify(store)
        assert report.ok, report.faults
        assert report.size == store.size() > 0
        assert report.root == root_hash(store.leaves()).hex() == store.root().hex()
        latest = store.latest_checkpoint()
        assert latest is not None and report.latest_checkpoint is not None
        assert report.latest_checkpoint.size == latest.size == report.size
        assert report.latest_checkpoint.note == latest.note
        assert report.checkpoints == len(store.checkpoints()) >= 2
        assert report.faults == [] and report.first_fault is None and report.erased == []
    finally:
        store.close()


def test_an_empty_trail_verifies_with_the_empty_root(tmp_path: Path) -> None:
    home = init_home(tmp_path / ".datatrail")
    store = SQLiteStore(home.path / "trail.db")
    try:
        report = verify(store)
    finally:
        store.close()
    assert report.ok and report.size == 0 and report.latest_checkpoint is None
    assert report.root == hashlib.sha256(b"").hexdigest()


def test_the_key_can_be_given_as_text_and_the_wrong_key_fails_every_checkpoint(home: Path) -> None:
    store = SQLiteStore(home / "trail.db")
    try:
        assert verify(store, verifier=(home / "verifier.key").read_text()).ok
        report = verify(store, verifier=Signer.generate("impostor").verifier)
    finally:
        store.close()
    assert not report.ok
    kinds = {f.kind for f in report.faults}
    assert kinds == {"checkpoint_signature", "checkpoint_missing_for_tail"}
    assert report.first_fault is not None and report.first_fault.index == 0


def test_without_any_key_verify_says_to_pass_one(home: Path) -> None:
    (home / "verifier.key").unlink()
    store = SQLiteStore(home / "trail.db")
    try:
        with pytest.raises(KeyFileError, match="--key"):
            verify(store)
    finally:
        store.close()


def test_progress_reaches_its_total_without_going_back(home: Path) -> None:
    seen: list[tuple[int, int]] = []
    store = SQLiteStore(home / "trail.db")
    try:
        verify(store, progress=lambda done, total: seen.append((done, total)))
    finally:
        store.close()
    assert seen and seen[-1][0] == seen[-1][1] > 0
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_the_report_is_plain_json_and_every_fault_kind_is_documented(home: Path) -> None:
    conn = sqlite3.connect(home / "trail.db")
    conn.execute("UPDATE events SET body = body || x'20' WHERE idx = 3")
    conn.commit()
    conn.close()
    store = SQLiteStore(home / "trail.db")
    try:
        report = verify(store)
    finally:
        store.close()
    data = json.loads(json.dumps(report.to_dict()))
    assert set(data) == {
        "ok",
        "size",
        "root",
        "latest_checkpoint",
        "faults",
        "first_fault",
        "faults_total",
        "erased",
        "checkpoints",
        "seconds",
        "unbound",
    }
    assert data["ok"] is False and data["unbound"] == []
    assert data["first_fault"] == {
        "kind": "leaf_mismatch",
        "index": 3,
        "table": "events",
        "detail": data["first_fault"]["detail"],
    }
    assert {f["kind"] for f in data["faults"]} <= set(FAULT_KINDS)


def test_consistency_proves_a_longer_log_extends_a_kept_checkpoint(tmp_path: Path) -> None:
    home = tmp_path / ".datatrail"
    _record(home, tmp_path, runs=1)
    store = SQLiteStore(home / "trail.db")
    kept = store.latest_checkpoint()
    store.close()
    assert kept is not None
    _record(home, tmp_path, runs=2)
    store = SQLiteStore(home / "trail.db")
    try:
        report = consistency(store, kept.note)
    finally:
        store.close()
    assert report.ok, report.detail
    assert report.old_size == kept.size < report.new_size
    assert report.proof


# -- what the checkpoint notes bind ----------------------------------------------------------


def _make_legacy(db: Path, signer: Signer) -> list[int]:
    """Re-sign every checkpoint as datatrail did before binding lines: the tree head alone."""
    conn = sqlite3.connect(db)
    try:
        (origin,) = conn.execute("SELECT value FROM meta WHERE key = 'origin'").fetchone()
        rows = conn.execute("SELECT size, root FROM checkpoints ORDER BY size").fetchall()
        for size, root in rows:
            note = sign_checkpoint(Checkpoint(origin=origin, size=size, root=bytes(root)), signer)
            conn.execute("UPDATE checkpoints SET note = ? WHERE size = ?", (note, size))
        conn.commit()
    finally:
        conn.close()
    return [size for size, _ in rows]


def _verify(home: Path, db: Path | None = None) -> Any:
    store = SQLiteStore(db or home / "trail.db")
    try:
        return verify(store, verifier=load_verifier(home / "verifier.key"))
    finally:
        store.close()


def test_every_note_binds_its_time_its_predecessor_and_the_schema_steps(home: Path) -> None:
    store = SQLiteStore(home / "trail.db")
    try:
        stored = store.checkpoints()
        steps = store.query("SELECT version, name, applied_at FROM migrations ORDER BY version")
    finally:
        store.close()
    verifier = load_verifier(home / "verifier.key")
    previous = (0, hashlib.sha256(b"").digest())
    for row in stored:
        binding = CheckpointBinding.of(open_checkpoint(row.note, verifier))
        assert binding is not None
        assert binding.time == row.ts
        assert (binding.prev_size, binding.prev_root) == previous
        assert binding.migrations == len(steps) == len(MIGRATIONS)
        assert binding.migrations_digest == migrations_digest(steps)
        previous = (row.size, row.root)


def test_a_legacy_trail_verifies_and_reports_what_it_does_not_bind(home: Path) -> None:
    legacy = _make_legacy(home / "trail.db", load_signer(home / "signing.key"))
    report = _verify(home)
    assert report.ok, report.faults
    assert {u.kind for u in report.unbound} == {"legacy_checkpoints", "migrations_not_signed"}
    assert {u.kind: u.count for u in report.unbound} == {
        "legacy_checkpoints": len(legacy),
        "migrations_not_signed": len(MIGRATIONS),
    }
    assert set(UNBOUND_KINDS) >= {u.kind for u in report.unbound}
    code, out, _ = _invoke("verify", "--trail", str(home))
    assert code == 0 and "unbound" in out and f"{len(legacy)} checkpoints" in out


def test_a_legacy_trail_binds_every_checkpoint_from_its_next_append(
    home: Path, tmp_path: Path
) -> None:
    legacy = _make_legacy(home / "trail.db", load_signer(home / "signing.key"))
    assert len(legacy) >= 2
    _record(home, tmp_path, runs=1)
    report = _verify(home)
    assert report.ok, report.faults
    assert [(u.kind, u.count) for u in report.unbound] == [("legacy_checkpoints", len(legacy))]
    store = SQLiteStore(home / "trail.db")
    try:
        first_bound = next(c for c in store.checkpoints() if c.size > legacy[-1])
        last_legacy = next(c for c in store.checkpoints() if c.size == legacy[-1])
    finally:
        store.close()
    binding = CheckpointBinding.of(
        open_checkpoint(first_bound.note, load_verifier(home / "verifier.key"))
    )
    assert binding is not None
    assert (binding.prev_size, binding.prev_root) == (last_legacy.size, last_legacy.root)
    # By design an earlier legacy checkpoint can go unseen; the one a bound note names cannot.
    for size, seen in ((legacy[0], False), (legacy[-1], True)):
        copy = tmp_path / f"without-{size}.db"
        copy.write_bytes((home / "trail.db").read_bytes())
        conn = sqlite3.connect(copy)
        conn.execute("DELETE FROM checkpoints WHERE size = ?", (size,))
        conn.commit()
        conn.close()
        report = _verify(home, copy)
        assert ("checkpoint_chain" in {f.kind for f in report.faults}) is seen, report.faults


def test_a_kept_legacy_checkpoint_is_still_extended_by_a_bound_log(
    home: Path, tmp_path: Path
) -> None:
    _make_legacy(home / "trail.db", load_signer(home / "signing.key"))
    store = SQLiteStore(home / "trail.db")
    kept = store.latest_checkpoint()
    store.close()
    assert kept is not None and "\ntime " not in kept.note
    _record(home, tmp_path, runs=1)
    store = SQLiteStore(home / "trail.db")
    try:
        latest = store.latest_checkpoint()
        report = consistency(store, kept.note)
    finally:
        store.close()
    assert latest is not None and "\ntime " in latest.note
    assert report.ok, report.detail


def test_a_copied_trail_verifies_with_the_same_root_and_binds_the_same_rows(
    home: Path, tmp_path: Path
) -> None:
    source = SQLiteStore(home / "trail.db")
    target = SQLiteStore(tmp_path / "copy" / "trail.db", create=True)
    try:
        copy_trail(source, target)
        assert target.root() == source.root()
        assert target.table_rows("migrations") == source.table_rows("migrations")
    finally:
        source.close()
        target.close()
    report = _verify(home, tmp_path / "copy" / "trail.db")
    assert report.ok, report.faults
    assert report.unbound == []


def test_a_trail_kept_at_every_tree_level_is_copied_as_it_is_and_still_verifies(
    tmp_path: Path,
) -> None:
    signer = Signer.generate("old")
    source = SQLiteStore(tmp_path / "old.db", create=True, signer=signer)
    source._conn.execute("DELETE FROM meta WHERE key = 'tree_stride'")  # as stores made before
    source.close()
    source = SQLiteStore(tmp_path / "old.db", signer=signer)
    target = SQLiteStore(tmp_path / "copy.db", create=True, signer=signer)
    try:
        for _ in range(3):
            source.append(
                [
                    RunFinished(id=uuid7(), ts=now_ts(), run_id=uuid7(), status="completed")
                    for _ in range(11)
                ]
            )
        copy_trail(source, target)
        target.append([RunFinished(id=uuid7(), ts=now_ts(), run_id=uuid7(), status="failed")])
        levels = {r[0] for r in target.query("SELECT DISTINCT level FROM tree_nodes")}
        assert (target.stride, "tree_stride" in target.meta()) == (1, False)
        assert levels == {1, 2, 3, 4, 5}  # 34 entries: every level is kept, as in the source
        report = verify(target, verifier=signer.verifier)
        assert report.ok, report.faults
        target._conn.execute("DELETE FROM tree_nodes WHERE level = 2 AND idx = 3")
        report = verify(target, verifier=signer.verifier)
        assert (report.ok, report.first_fault and report.first_fault.kind) == (
            False,
            "tree_node_missing",
        )
    finally:
        source.close()
        target.close()


# -- the CLI ------------------------------------------------------------------------------------


def test_cli_verify_exit_0_prints_size_root_and_checkpoint(home: Path) -> None:
    code, out, _ = _invoke("verify", "--trail", str(home))
    assert code == 0
    store = SQLiteStore(home / "trail.db")
    size, root = store.size(), store.root().hex()
    store.close()
    assert f"{size} entries" in out and root in out and f"size {size}" in out
    code, out, _ = _invoke("verify", "--trail", str(home), "--json")
    assert code == 0
    data = json.loads(out)
    assert (data["ok"], data["size"], data["root"]) == (True, size, root)
    assert data["latest_checkpoint"]["size"] == size


def test_cli_verify_exit_1_names_the_first_bad_index_and_kind(home: Path) -> None:
    conn = sqlite3.connect(home / "trail.db")
    conn.execute("UPDATE events SET ts = '2020-01-01T00:00:00.000000Z' WHERE idx = 4")
    conn.commit()
    conn.close()
    code, out, _ = _invoke("verify", "--trail", str(home))
    assert code == 1
    assert "event_columns_mismatch at entry 4" in out
    code, out, _ = _invoke("verify", "--trail", str(home), "--json")
    assert code == 1
    assert json.loads(out)["first_fault"]["index"] == 4


def test_cli_verify_with_a_store_file_and_an_explicit_key(home: Path, tmp_path: Path) -> None:
    key = tmp_path / "auditor.key"
    key.write_text((home / "verifier.key").read_text())
    code, _, _ = _invoke("verify", "--trail", str(home / "trail.db"), "--key", str(key))
    assert code == 0
    other = tmp_path / "other.key"
    other.write_text(Signer.generate("other").verifier.text + "\n")
    code, out, _ = _invoke("verify", "--trail", str(home), "--key", str(other))
    assert code == 1 and "checkpoint" in out


def test_cli_verify_bad_input_exits_2(tmp_path: Path) -> None:
    code, _, err = _invoke("verify", "--trail", str(tmp_path / "nowhere"))
    assert code == 2 and "no such trail" in err
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    code, _, err = _invoke("verify", "--trail", str(junk))
    assert code == 2 and "not a datatrail store" in err


def test_cli_checkpoint_prints_the_signed_note_and_its_json(home: Path) -> None:
    store = SQLiteStore(home / "trail.db")
    latest = store.latest_checkpoint()
    store.close()
    assert latest is not None
    code, out, _ = _invoke("checkpoint", "--trail", str(home))
    assert code == 0 and out == latest.note
    code, out, _ = _invoke("checkpoint", "--trail", str(home), "--json")
    data = json.loads(out)
    assert code == 0
    assert set(data) == {"size", "root", "origin", "ts", "signed", "note"}
    assert (data["size"], data["root"], data["signed"]) == (latest.size, latest.root.hex(), True)


def test_cli_checkpoint_on_an_empty_trail_is_bad_input(tmp_path: Path) -> None:
    init_home(tmp_path / ".datatrail")
    code, _, err = _invoke("checkpoint", "--trail", str(tmp_path / ".datatrail"))
    assert code == 2 and "no checkpoint yet" in err


def test_cli_consistency_with_a_kept_checkpoint(home: Path, tmp_path: Path) -> None:
    kept = tmp_path / "kept.note"
    code, out, _ = _invoke("checkpoint", "--trail", str(home))
    kept.write_text(out)
    _record(home, tmp_path, runs=1)
    code, out, _ = _invoke("consistency", str(kept), "--trail", str(home))
    assert code == 0 and "consistent" in out
    code, out, _ = _invoke("consistency", str(kept), "--trail", str(home), "--json")
    data = json.loads(out)
    assert code == 0 and data["ok"] is True and data["proof"]
    assert set(data) == {
        "ok",
        "detail",
        "origin",
        "old_size",
        "old_root",
        "new_size",
        "new_root",
        "proof",
        "checkpoint",
    }


def test_cli_consistency_fails_for_an_altered_forged_or_rolled_back_checkpoint(
    home: Path, tmp_path: Path
) -> None:
    store = SQLiteStore(home / "trail.db")
    latest, origin = store.latest_checkpoint(), store.meta()["origin"]
    store.close()
    assert latest is not None
    altered = tmp_path / "altered.note"
    altered.write_text(latest.note.replace(f"\n{latest.size}\n", f"\n{latest.size + 1}\n"))
    code, out, _ = _invoke("consistency", str(altered), "--trail", str(home), "--json")
    assert code == 1 and "does not verify" in json.loads(out)["detail"]
    # Signed with the real key, but over a root the log never had: a fork.
    forged = tmp_path / "forged.note"
    signer = load_signer(home / "signing.key")
    forged.write_text(
        sign_checkpoint(Checkpoint(origin=origin, size=latest.size - 1, root=bytes(32)), signer)
    )
    code, out, _ = _invoke("consistency", str(forged), "--trail", str(home), "--json")
    assert code == 1 and "rewritten or forked" in json.loads(out)["detail"]
    # A checkpoint from the future: the log now holds fewer entries than it signed.
    future = tmp_path / "future.note"
    future.write_text(
        sign_checkpoint(Checkpoint(origin=origin, size=latest.size + 5, root=bytes(32)), signer)
    )
    code, out, _ = _invoke("consistency", str(future), "--trail", str(home), "--json")
    assert code == 1 and "removed or the log was rolled back" in json.loads(out)["detail"]
    code, _, err = _invoke("consistency", str(tmp_path / "missing.note"), "--trail", str(home))
    assert code == 2 and "cannot read" in err


def test_cli_key_show_prints_the_verifier_key(home: Path) -> None:
    text = (home / "verifier.key").read_text().strip()
    code, out, _ = _invoke("key", "show", "--trail", str(home))
    assert code == 0 and out.strip() == text
    code, out, _ = _invoke("key", "show", "--trail", str(home), "--json")
    data = json.loads(out)
    assert code == 0 and data["key"] == text
    assert data["key_id"] == text.split("+")[1] and data["name"] == text.split("+")[0]


def test_every_fault_kind_is_explained_in_the_auditing_guide() -> None:
    guide = (Path(__file__).resolve().parents[1] / "docs" / "auditing.md").read_text()
    missing = [kind for kind in FAULT_KINDS if f"| `{kind}` |" not in guide]
    assert missing == []


def test_every_unbound_kind_is_explained_in_the_auditing_guide() -> None:
    guide = (Path(__file__).resolve().parents[1] / "docs" / "auditing.md").read_text()
    assert [kind for kind in UNBOUND_KINDS if f"| `{kind}` |" not in guide] == []
