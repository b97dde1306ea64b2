"""Erasing an event's payload: the bytes are gone, the tree still verifies, a receipt says why."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

import datatrail
import datatrail.capture
from datatrail.audit import erase, verify
from datatrail.cli import app
from datatrail.errors import InvalidEvent, NodeNotFound, UsageError
from datatrail.ledger import load_signer
from datatrail.model import ErasureRecorded, decode_event, now_ts, uuid7
from datatrail.store import SQLiteStore

SECRET = "Zelda Quartermaine, +44 7700 900461"

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A trail with two runs; the first one's parameters hold personal data."""
    home = tmp_path / ".datatrail"
    datatrail.configure(home=home)
    source = tmp_path / "customers.csv"
    source.write_text("id,name\n1,someone\n")
    try:
        with datatrail.run("import-customer", params={"customer": SECRET, "batch": 7}) as r:
            r.input(source)
        with datatrail.run("nightly", params={"day": "2026-11-20"}) as r:
            r.input(source)
        datatrail.flush()
    finally:
        datatrail.capture.shutdown()
        datatrail.configure(home=None)
    return home


def _store(home: Path) -> SQLiteStore:
    return SQLiteStore(home / "trail.db", signer=load_signer(home / "signing.key"))


def _secret_entry(store: SQLiteStore) -> int:
    (idx,) = (e.index for e in store.events() if e.body is not None and SECRET.encode() in e.body)
    return idx


def _cells_holding(path: Path, needle: str) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        found = []
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in conn.execute(f"SELECT * FROM {table}"):
                for cell in row:
                    text = cell.decode("utf-8", "replace") if isinstance(cell, bytes) else str(cell)
                    if needle in text:
                        found.append(table)
        return found
    finally:
        conn.close()


def _state(store: SQLiteStore) -> tuple[int, int, bytes]:
    return store.size(), len(store.checkpoints()), store.root()


def test_erased_payload_is_gone_from_every_row_and_from_the_file(home: Path) -> None:
    store = _store(home)
    try:
        target = _secret_entry(store)
        assert _cells_holding(home / "trail.db", SECRET)  # in the event and in runs.params
        result = erase(store, target, reason="GDPR art. 17 request 2026-114")
        entry = store.event(target)
        assert entry is not None and entry.body is None
        assert entry.erased_by == result.receipt_index
    finally:
        store.close()
    assert result.scrubbed
    assert _cells_holding(home / "trail.db", SECRET) == []
    raw = (home / "trail.db").read_bytes()
    wal = home / "trail.db-wal"
    raw += wal.read_bytes() if wal.exists() else b""
    assert SECRET.encode() not in raw


def test_verify_passes_and_reports_the_entry_as_erased_by_its_receipt(home: Path) -> None:
    store = _store(home)
    try:
        target = _secret_entry(store)
        result = erase(store, target, reason="GDPR art. 17 request 2026-114")
        report = verify(store)
    finally:
        store.close()
    assert report.ok, report.faults
    (erased,) = report.erased
    assert (erased.index, erased.erased_by) == (target, result.receipt_index)
    assert erased.reason == "GDPR art. 17 request 2026-114"
    assert erased.id == result.target_id


def test_the_receipt_names_the_erased_entrys_kind_and_time(home: Path) -> None:
    store = _store(home)
    try:
        target = store.event(_secret_entry(store))
        assert target is not None
        result = erase(store, target.index, reason="asked")
        stored = store.event(result.receipt_index)
        assert stored is not None and stored.body is not None
        receipt = decode_event(stored.body)
    finally:
        store.close()
    assert isinstance(receipt, ErasureRecorded)
    assert (receipt.target_kind, receipt.target_ts) == (target.kind, target.ts)


def _receipt(store: SQLiteStore, index: int, **named: str) -> ErasureRecorded:
    target = store.event(index)
    assert target is not None
    return ErasureRecorded(
        id=uuid7(),
        ts=now_ts(),
        target_index=index,
        target_id=target.id,
        leaf_hash=target.leaf.hex(),
        reason="asked",
        **named,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    "named",
    [
        {"target_kind": "io"},
        {"target_ts": "2001-01-01T00:00:00.000000Z"},
        {"target_kind": "io", "target_ts": "2001-01-01T00:00:00.000000Z"},
    ],
)
def test_a_receipt_naming_another_kind_or_time_is_refused_whole(
    home: Path, named: dict[str, str]
) -> None:
    store = _store(home)
    try:
        target = _secret_entry(store)
        kind = store.event(target).kind  # type: ignore[union-attr]
        receipt = _receipt(store, target, **{"target_kind": kind, **named})
        before = _state(store)
        with pytest.raises(InvalidEvent, match=f"entry {target} is a {kind} event"):
            store.append([receipt])
        assert _state(store) == before
        assert store.event(target).body is not None  # type: ignore[union-attr]
    finally:
        store.close()


def test_a_receipt_from_before_kind_and_time_were_named_is_reported_unbound(home: Path) -> None:
    store = _store(home)
    try:
        target = _secret_entry(store)
        store.append([_receipt(store, target)])  # as datatrail wrote receipts before
        report = verify(store)
    finally:
        store.close()
    assert report.ok, report.faults
    assert [e.index for e in report.erased] == [target]
    assert [(u.kind, u.count) for u in report.unbound] == [("legacy_erasure_receipts", 1)]


def test_the_leaf_and_every_earlier_root_stay(home: Path) -> None:
    store = _store(home)
    try:
        target = _secret_entry(store)
        before_size, before_root = store.size(), store.root()
        leaf = store.leaves()[target]
        erase(store, target, reason="asked")
        assert store.leaves()[target] == leaf
        assert store.root(before_size) == before_root
    finally:
        store.close()


def test_erase_by_event_id_works_like_erase_by_index(home: Path) -> None:
    store = _store(home)
    try:
        target = store.event(_secret_entry(store))
        assert target is not None
        result = erase(store, target.id, reason="asked")
        assert result.target_index == target.index
    finally:
        store.close()


def test_erasing_twice_fails_clearly_and_writes_nothing(home: Path) -> None:
    store = _store(home)
    try:
        target = _secret_entry(store)
        erase(store, target, reason="asked")
        state = _state(store)
        with pytest.raises(InvalidEvent, match="already erased"):
            erase(store, target, reason="again")
        assert _state(store) == state
    finally:
        store.close()


def test_erasing_a_receipt_fails_clearly_and_writes_nothing(home: Path) -> None:
    store = _store(home)
    try:
        receipt = erase(store, _secret_entry(store), reason="asked").receipt_index
        state = _state(store)
        with pytest.raises(InvalidEvent, match="receipts cannot be erased"):
            erase(store, receipt, reason="hide the receipt")
        assert _state(store) == state
    finally:
        store.close()


@pytest.mark.parametrize("event", ["999", "01a1fd1a-0000-7000-8000-000000000000"])
def test_erasing_an_unknown_event_fails_clearly_and_writes_nothing(home: Path, event: str) -> None:
    store = _store(home)
    try:
        state = _state(store)
        with pytest.raises(NodeNotFound, match=r"no (entry|event)"):
            erase(store, event, reason="asked")
        assert _state(store) == state
    finally:
        store.close()


def test_an_erasure_needs_a_reason(home: Path) -> None:
    store = _store(home)
    try:
        state = _state(store)
        with pytest.raises(UsageError, match="reason"):
            erase(store, 0, reason="  ")
        assert _state(store) == state
    finally:
        store.close()


def test_cli_erase_prints_the_receipt_and_refuses_a_second_time(home: Path) -> None:
    store = SQLiteStore(home / "trail.db")
    try:
        target = _secret_entry(store)
    finally:
        store.close()
    args = ["erase", str(target), "--reason", "GDPR", "--trail", str(home)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["target_index"] == target and data["reason"] == "GDPR"
    assert data["receipt_index"] > target and data["scrubbed"] is True
    again = runner.invoke(app, args)
    assert again.exit_code == 2
    assert "already erased" in again.stderr
    verified = runner.invoke(app, ["verify", "--trail", str(home), "--json"])
    assert verified.exit_code == 0
    assert json.loads(verified.stdout)["erased"][0]["erased_by"] == data["receipt_index"]
