"""The SQLite store's write path: the background checkpointer and multi-row inserts."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from datatrail.model import (
    ArtifactInfo,
    Event,
    IORecorded,
    JobRef,
    RunFinished,
    RunStarted,
    format_ts,
    uuid7,
)
from datatrail.store import SQLiteStore, _sqlite
from datatrail.store._engine import derive_in_memory
from datatrail.store._projections import _SQL_JOB_EDGE, _SQL_RUN_START, _SQL_RUN_WHOLE
from datatrail.store._schema import PROJECTION_TABLES


def _runs(n: int, *, job: str = "step") -> list[Event]:
    """``n`` runs of one job, each a start and an end with scalar params."""
    events: list[Event] = []
    ref = JobRef(namespace="tests", name=job)
    for i in range(n):
        run_id = uuid7()
        ts = format_ts(time.time_ns())
        events.append(
            RunStarted(id=uuid7(), ts=ts, run_id=run_id, job=ref, params={"i": i, "pad": "x" * 200})
        )
        events.append(RunFinished(id=uuid7(), ts=ts, run_id=run_id, status="completed"))
    return events


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@pytest.fixture
def small_checkpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checkpoint after 20 pages of growth, looked at after every append, so small tests
    exercise the thread."""
    monkeypatch.setattr(_sqlite, "_CHECKPOINT_PAGES", 20)
    monkeypatch.setattr(_sqlite, "_POKE_EVENTS", 1)


def _file_pages(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA page_count").fetchone()[0])
    finally:
        conn.close()


def test_appends_are_folded_into_the_file_by_the_checkpointer(
    tmp_path: Path, small_checkpoints: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With SQLite's own auto-checkpoint off, only the checkpointer can move pages
    # from the WAL into the database file.
    monkeypatch.setattr(_sqlite, "_AUTOCHECKPOINT", 0)
    path = tmp_path / "trail.db"
    store = SQLiteStore(path, create=True)
    try:
        before = path.stat().st_size
        for _ in range(5):
            store.append(_runs(100), dedupe=False)
        thread = store._checkpointer._thread
        assert thread is not None and thread.name == "datatrail-checkpoint" and thread.is_alive()
        grown = _wait_for(lambda: path.stat().st_size > before + 20 * 4096)
        assert grown, "the database file never received the appended pages"
    finally:
        store.close()


def test_the_appending_connection_keeps_an_auto_checkpoint_as_the_bound(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "trail.db", create=True)
    try:
        pages = store._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        assert pages == _sqlite._AUTOCHECKPOINT > 0
    finally:
        store.close()


def test_the_wal_stays_bounded_across_many_appends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The shipped proportions, scaled down: the checkpointer folds in every quarter of
    # the auto-checkpoint bound; a commit here writes about 50 frames.
    monkeypatch.setattr(_sqlite, "_AUTOCHECKPOINT", 1000)
    monkeypatch.setattr(_sqlite, "_CHECKPOINT_PAGES", 250)
    path = tmp_path / "trail.db"
    wal = Path(f"{path}-wal")
    store = SQLiteStore(path, create=True)
    largest = 0
    try:
        for _ in range(200):
            store.append(_runs(50), dedupe=False)
            largest = max(largest, wal.stat().st_size)
        total = _file_pages(path)
    finally:
        store.close()
    frame = 4096 + 24  # a page and its header
    assert total > 4000  # the log outgrew the bound four times over
    # The bound, plus the few commits that can land while a checkpoint is in progress.
    assert largest <= 1500 * frame + 32


def test_the_wal_stays_bounded_when_the_checkpointer_never_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_sqlite, "_AUTOCHECKPOINT", 100)
    monkeypatch.setattr(_sqlite._Checkpointer, "poke", lambda self: None)
    path = tmp_path / "trail.db"
    wal = Path(f"{path}-wal")
    store = SQLiteStore(path, create=True)
    largest = 0
    try:
        for _ in range(60):
            store.append(_runs(50), dedupe=False)
            largest = max(largest, wal.stat().st_size)
        assert store._checkpointer._thread is None
    finally:
        store.close()
    assert largest <= (100 + 60) * (4096 + 24) + 32


def test_two_store_objects_append_to_one_file(tmp_path: Path, small_checkpoints: None) -> None:
    path = tmp_path / "trail.db"
    first = SQLiteStore(path, create=True)
    second = SQLiteStore(path)
    errors: list[BaseException] = []

    def append_many(store: SQLiteStore, job: str) -> None:
        try:
            for _ in range(20):
                store.append(_runs(40, job=job), dedupe=False)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [
        threading.Thread(target=append_many, args=(first, "a")),
        threading.Thread(target=append_many, args=(second, "b")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors
        assert first.size() == second.size() == 2 * 20 * 40 * 2
        assert [c.size for c in first.checkpoints()][-1] == first.size()
        assert first.root() == second.root()
    finally:
        first.close()
        second.close()
    reopened = SQLiteStore(path)
    try:
        assert reopened.size() == 3200
        assert reopened.query("PRAGMA integrity_check") == [("ok",)]
    finally:
        reopened.close()


def test_closing_the_store_stops_its_checkpointer_and_leaves_a_whole_file(
    tmp_path: Path, small_checkpoints: None
) -> None:
    path = tmp_path / "trail.db"
    store = SQLiteStore(path, create=True)
    store.append(_runs(200), dedupe=False)
    thread = store._checkpointer._thread
    assert thread is not None and thread.is_alive()
    store.close()
    assert not thread.is_alive()
    assert not Path(f"{path}-wal").exists()  # the last connection folded the WAL in
    store._checkpointer.poke()  # an append racing the close starts nothing
    assert store._checkpointer._thread is None
    reopened = SQLiteStore(path)
    try:
        assert reopened.size() == 400
        assert reopened.query("PRAGMA integrity_check") == [("ok",)]
    finally:
        reopened.close()


def test_reads_never_start_a_checkpointer(tmp_path: Path) -> None:
    path = tmp_path / "trail.db"
    SQLiteStore(path, create=True).close()
    store = SQLiteStore(path)
    try:
        store.size()
        store.checkpoints()
        assert store._checkpointer._thread is None
    finally:
        store.close()


def test_small_commits_wake_the_checkpointer_only_every_few_hundred_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pokes: list[int] = []
    monkeypatch.setattr(_sqlite._Checkpointer, "poke", lambda self: pokes.append(1))
    store = SQLiteStore(tmp_path / "trail.db", create=True)
    try:
        for _ in range(_sqlite._POKE_EVENTS // 2 - 1):  # one run, two events, per commit
            store.append(_runs(1), dedupe=False)
        assert pokes == []
        store.append(_runs(1), dedupe=False)
        assert len(pokes) == 1
        store.append(_runs(1), dedupe=False)
        assert len(pokes) == 1
        store.append(_runs(_sqlite._POKE_EVENTS), dedupe=False)  # a large batch: at once
        assert len(pokes) == 2
    finally:
        store.close()


def test_an_idle_checkpointer_ends_and_the_next_append_restarts_it(
    tmp_path: Path, small_checkpoints: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_sqlite, "_CHECKPOINT_IDLE", 0.05)
    store = SQLiteStore(tmp_path / "trail.db", create=True)
    try:
        store.append(_runs(10), dedupe=False)
        first = store._checkpointer._thread
        assert first is not None
        assert _wait_for(lambda: not first.is_alive())
        store.append(_runs(10), dedupe=False)
        second = store._checkpointer._thread
        assert second is not None and second is not first and second.is_alive()
    finally:
        store.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_runs_a_checkpointer_of_its_own(
    tmp_path: Path, small_checkpoints: None
) -> None:
    path = tmp_path / "trail.db"
    store = SQLiteStore(path, create=True)
    try:
        for _ in range(5):  # each poke makes the thread checkpoint: fork mid-way
            store.append(_runs(20), dedupe=False)
        parent_thread = store._checkpointer._thread
        assert parent_thread is not None and parent_thread.is_alive()
        pid = os.fork()
        if pid == 0:  # the child: the parent's thread is not running here
            code = 1
            try:
                other = SQLiteStore(path)  # SQLite is usable here: no lock came along held
                other.close()
                checkpointer = store._checkpointer
                checkpointer.poke()
                own = checkpointer._thread
                if own is not None and own is not parent_thread and own.is_alive():
                    checkpointer.close()
                    code = 0 if not own.is_alive() else 2
            finally:
                os._exit(code)
        deadline = time.monotonic() + 30
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail("the forked child hung")
            time.sleep(0.01)
        assert os.waitstatus_to_exitcode(status) == 0
        assert parent_thread.is_alive()  # the child's close left the parent's thread alone
    finally:
        store.close()


# -- multi-row inserts --------------------------------------------------------------


def test_statements_that_insert_from_a_select_are_run_row_by_row() -> None:
    assert _sqlite._multi_row(_SQL_JOB_EDGE, 4000) is None
    assert _sqlite._multi_row("UPDATE events SET body = NULL WHERE idx = ?", 4000) is None


def test_a_multi_row_upsert_keeps_its_conflict_clause() -> None:
    plan = _sqlite._multi_row(_SQL_RUN_WHOLE, 4000)
    assert plan is not None
    sql, per_chunk = plan
    assert per_chunk * 15 <= 4000
    assert sql.count("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)") == per_chunk
    assert sql.endswith(_SQL_RUN_WHOLE.split(" VALUES ", 1)[1].split(")", 1)[1])


def test_a_multi_row_insert_keeps_its_literal_values() -> None:
    plan = _sqlite._multi_row(_SQL_RUN_START, 4000)
    assert plan is not None
    sql, per_chunk = plan
    assert sql.count("'running'") == per_chunk


def test_multi_row_inserts_stay_within_sqlites_parameter_limit() -> None:
    plan = _sqlite._multi_row(_SQL_RUN_WHOLE, 999)  # the limit before SQLite 3.32
    assert plan is not None and plan[1] * 15 <= 999
    assert _sqlite._multi_row(_SQL_RUN_WHOLE, 20) is None  # not even two rows fit


def test_large_batches_store_the_same_rows_as_row_by_row_inserts(tmp_path: Path) -> None:
    # Runs split across batches (upserts of existing rows), io events, duplicates of a
    # job within a batch: the stored projections must equal a row-by-row derivation.
    store = SQLiteStore(tmp_path / "trail.db", create=True)
    try:
        job = JobRef(namespace="tests", name="mixed")
        pending = []
        for batch in range(3):
            events: list[Event] = []
            for i in range(900):
                run_id = uuid7()
                ts = format_ts(time.time_ns())
                events.append(
                    RunStarted(id=uuid7(), ts=ts, run_id=run_id, job=job, params={"i": i})
                )
                art = ArtifactInfo(id=f"blake3:{batch:02d}{i:062d}", kind="value")
                events.append(
                    IORecorded(
                        id=uuid7(), ts=ts, run_id=run_id, role="output", artifact=art, job=job
                    )
                )
                if i % 2:
                    events.append(RunFinished(id=uuid7(), ts=ts, run_id=run_id, status="completed"))
                else:
                    pending.append(run_id)  # ends in a later batch
            for run_id in pending[:-100]:
                events.append(
                    RunFinished(
                        id=uuid7(), ts=format_ts(time.time_ns()), run_id=run_id, status="failed"
                    )
                )
            pending = pending[-100:]
            store.append(events, dedupe=False)
        stored = {table: store.table_rows(table) for table in PROJECTION_TABLES}
        assert stored == derive_in_memory(store)
        assert len(stored["runs"]) == 2700
    finally:
        store.close()
