"""Group commit of OpenLineage ingest, and the run cache that several servers can trust.

Requests waiting together are appended in one transaction and each learns what
became of its own events; a START and its COMPLETE in one group make one run;
a server's cached run states always equal what the store says, even while
another server appends to the same store.
"""

from __future__ import annotations

import copy
import itertools
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from datatrail.interop.openlineage._runstate import RunState, lookup_runs
from datatrail.model import IORecorded, RunFinished, RunStarted, decode_event
from datatrail.server._commit import GroupCommitter
from datatrail.store import Home, init_home, open_store


def _sample(testdata: Path) -> dict[str, Any]:
    sample: dict[str, Any] = json.loads(
        (testdata / "openlineage" / "client-tests" / "example_full_event.json").read_text()
    )
    return sample


def _event(sample: dict[str, Any], run: str, kind: str, *, second: int = 0, **extra: Any) -> Any:
    event = copy.deepcopy(sample)
    event["run"]["runId"] = run
    event["eventType"] = kind
    event["eventTime"] = f"2026-01-01T00:00:{second:02d}.000Z"
    event.update(extra)
    return event


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return init_home(tmp_path / ".datatrail")


def _kinds(home: Home, run: str) -> list[str]:
    store = open_store(home.url)
    try:
        out = []
        for stored in store.events():
            if stored.body is None:
                continue
            ev = decode_event(stored.body)
            if isinstance(ev, RunStarted | RunFinished | IORecorded) and ev.run_id == run:
                out.append(type(ev).__name__)
        return out
    finally:
        store.close()


def _checkpoints(home: Home) -> int:
    with sqlite3.connect(home.path / "trail.db") as con:
        return int(con.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0])


def test_requests_waiting_together_share_one_transaction(home, testdata):
    sample = _sample(testdata)
    store = open_store(home.url, signer=home.signer())
    committer = GroupCommitter(store)
    runs = [str(uuid.uuid4()) for _ in range(6)]
    results: dict[int, Any] = {}
    # Another writer holds the write lock, so the first group waits and the rest queue up.
    blocker = sqlite3.connect(home.path / "trail.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    before = _checkpoints(home)

    def post(i: int) -> None:
        results[i] = committer.submit([_event(sample, runs[i], "START")])

    def waiting() -> tuple[bool, int]:
        with committer._cond:  # the committer changes both under this lock
            return committer._thread is not None, len(committer._pending)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(runs))]
    threads[0].start()
    while waiting() != (True, 0):  # the first request is in and taken: it waits for the lock
        time.sleep(0.001)
    for t in threads[1:]:
        t.start()
    while waiting() != (True, len(runs) - 1):
        time.sleep(0.001)
    blocker.execute("ROLLBACK")
    blocker.close()
    for t in threads:
        t.join()
    committer.close()
    store.close()
    assert _checkpoints(home) - before == 2  # the first request alone, then the other five
    spans = sorted((r.first_index, r.first_index + r.appended) for r in results.values())
    assert all(r.appended == 4 and r.duplicates == 0 for r in results.values())
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))  # no overlap


def _blocked_first_commit(
    home: Home, committer: GroupCommitter, post: Callable[[], None], hold: float
) -> tuple[threading.Thread, Callable[[], threading.Thread]]:
    """Run ``post`` in a thread while another writer holds the lock, until its group is taken.

    Returns that thread and ``release``, which lets the lock go ``hold`` seconds after it is
    called (from a thread it returns): the first commit takes that long.
    """
    blocker = sqlite3.connect(home.path / "trail.db", isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    first = threading.Thread(target=post)
    first.start()
    while _waiting(committer) != (True, 0):  # taken alone, waiting for the lock
        time.sleep(0.001)

    def release() -> threading.Thread:
        def later() -> None:
            time.sleep(hold)
            blocker.execute("ROLLBACK")
            blocker.close()

        thread = threading.Thread(target=later)
        thread.start()
        return thread

    return first, release


def _waiting(committer: GroupCommitter) -> tuple[bool, int]:
    with committer._cond:  # the committer changes both under this lock
        return committer._thread is not None, len(committer._pending)


def test_a_small_group_waits_for_the_clients_just_answered(home, testdata):
    """Three clients: the first is answered alone, then all three share the next commit."""
    sample = _sample(testdata)
    store = open_store(home.url, signer=home.signer())
    committer = GroupCommitter(store, linger=30.0)
    runs = [str(uuid.uuid4()) for _ in range(4)]
    before = _checkpoints(home)

    def first_client() -> None:  # answered, it sends its next event at once
        committer.submit([_event(sample, runs[0], "START")])
        committer.submit([_event(sample, runs[3], "START")])

    first, release = _blocked_first_commit(home, committer, first_client, hold=0.3)
    others = [
        threading.Thread(target=committer.submit, args=([_event(sample, run, "START")],))
        for run in runs[1:3]
    ]
    for t in others:
        t.start()
    while _waiting(committer) != (True, 2):
        time.sleep(0.001)
    released = release()
    for t in [first, *others, released]:
        t.join()
    committer.close()
    store.close()
    assert _checkpoints(home) - before == 2  # the first alone, then the three together


def test_a_lone_client_is_never_kept_waiting(home, testdata):
    sample = _sample(testdata)
    store = open_store(home.url, signer=home.signer())
    committer = GroupCommitter(store, linger=30.0)
    waited: list[float] = []

    def client() -> None:
        committer.submit([_event(sample, str(uuid.uuid4()), "START")])
        started = time.monotonic()
        committer.submit([_event(sample, str(uuid.uuid4()), "START")])
        waited.append(time.monotonic() - started)

    first, release = _blocked_first_commit(home, committer, client, hold=0.5)
    release().join()
    first.join()
    committer.close()
    store.close()
    assert waited[0] < 0.25  # its commit, not the half second the last commit took


def test_a_group_of_many_events_is_committed_without_waiting(home, testdata):
    """A batch does not wait for the client just answered (which may never send again)."""
    sample = _sample(testdata)
    store = open_store(home.url, signer=home.signer())
    committer = GroupCommitter(store, linger=30.0, linger_below=2)
    answered: dict[str, float] = {}

    def post(name: str, count: int) -> None:
        committer.submit([_event(sample, str(uuid.uuid4()), "START") for _ in range(count)])
        answered[name] = time.monotonic()

    first, release = _blocked_first_commit(home, committer, lambda: post("first", 1), hold=0.5)
    batch = threading.Thread(target=post, args=("batch", 2))
    batch.start()
    while _waiting(committer) != (True, 1):
        time.sleep(0.001)
    released = release()
    for t in (first, batch, released):
        t.join()
    committer.close()
    store.close()
    assert answered["batch"] - answered["first"] < 0.25


def test_a_start_and_its_complete_in_one_group_make_one_run(home, testdata):
    sample = _sample(testdata)
    run = str(uuid.uuid4())
    store = open_store(home.url, signer=home.signer())
    committer = GroupCommitter(store)
    start, complete = _event(sample, run, "START"), _event(sample, run, "COMPLETE", second=30)
    done = committer.submit([start, complete])
    committer.close()
    store.close()
    assert done.items == [4, 2]  # START: started, input, output, record; COMPLETE: end, record
    assert _kinds(home, run) == ["RunStarted", "IORecorded", "IORecorded", "RunFinished"]


def test_sending_the_same_events_again_stores_nothing_new(home, testdata):
    sample = _sample(testdata)
    run = str(uuid.uuid4())
    events = [_event(sample, run, "START"), _event(sample, run, "COMPLETE", second=30)]
    store = open_store(home.url, signer=home.signer())
    committer = GroupCommitter(store)
    first = committer.submit(events)
    again = committer.submit(events)
    committer.close()
    store.close()
    assert first.appended == 6 and first.duplicates == 0
    # The run is known now, so fewer events are made, and each is already stored.
    assert again.appended == 0 and again.duplicates == sum(again.items) > 0
    assert again.first_index is None


def _same(a: RunState, b: RunState) -> bool:
    return (a.started, a.ios, a.run_facets, a.job_facets) == (
        b.started,
        b.ios,
        b.run_facets,
        b.job_facets,
    )


def test_a_cached_run_always_equals_what_the_store_says_with_two_servers(home, testdata):
    """Two servers on one store, taking turns on the same runs: every cached state is exact."""
    sample = _sample(testdata)
    runs = [str(uuid.uuid4()) for _ in range(4)]
    stores = [open_store(home.url, signer=home.signer()) for _ in range(2)]
    servers = [GroupCommitter(s) for s in stores]
    extra_output = {"namespace": "warehouse", "name": "side.table"}
    try:
        for step, kind in enumerate(("START", "RUNNING", "COMPLETE")):
            for i, run in enumerate(runs):
                server = servers[(i + step) % 2]  # each event of a run goes to another server
                event = _event(sample, run, kind, second=step)
                event["run"]["facets"][f"step{step}"] = {
                    "_producer": "https://example.com/test",
                    "_schemaURL": "https://example.com/schema",
                }
                if kind == "RUNNING":
                    event["outputs"] = [*event["outputs"], extra_output]
                server.submit([event])
                for s in servers:
                    s.cache.sync()
                    for r in runs:
                        cached = s.cache.get(r)
                        if cached is not None:
                            assert _same(cached, lookup_runs(s.store, [r])[r])
        for run in runs:
            kinds = _kinds(home, run)
            assert kinds.count("RunStarted") == 1 and kinds.count("RunFinished") == 1
            assert kinds.count("IORecorded") == 3  # input, output, and the side table once
    finally:
        for s in servers:
            s.close()
        for st in stores:
            st.close()


def test_the_finish_carries_facets_another_server_recorded(home, testdata):
    sample = _sample(testdata)
    run = str(uuid.uuid4())
    stores = [open_store(home.url, signer=home.signer()) for _ in range(2)]
    a, b = (GroupCommitter(s) for s in stores)
    try:
        a.submit([_event(sample, run, "START")])
        running = _event(sample, run, "RUNNING", second=10)
        running["run"]["facets"]["progress"] = {
            "_producer": "https://example.com/test",
            "_schemaURL": "https://example.com/schema",
            "done": 0.5,
        }
        b.submit([running])
        a.submit([_event(sample, run, "COMPLETE", second=20)])  # a has the run cached
    finally:
        a.close()
        b.close()
    store = stores[0]
    (body,) = [
        e.body
        for e in store.events()
        if e.body is not None and e.kind == "run_finished" and run.encode() in e.body
    ]
    finish = decode_event(body)
    for s in stores:
        s.close()
    assert isinstance(finish, RunFinished)
    assert "progress" in (finish.facets or {})["openlineage"]["run"]


@pytest.mark.postgres
def test_two_servers_on_one_postgresql_store_build_the_log_one_server_would(testdata):
    """The deployment the cache is for: servers on one PostgreSQL store, a run's events split
    between them; the log holds each run once, with every output and facet."""
    import _pg
    from datatrail.ledger import Signer
    from datatrail.store import PostgresStore

    url = _pg.require_postgres()
    sample = _sample(testdata)
    runs = [str(uuid.uuid4()) for _ in range(3)]
    signer = Signer.generate("test")
    with _pg.fresh_schema("commit") as schema:
        stores = [PostgresStore(url, create=True, signer=signer, schema=schema) for _ in range(2)]
        servers = [GroupCommitter(s) for s in stores]
        try:
            for step, kind in enumerate(("START", "RUNNING", "COMPLETE")):
                for i, run in enumerate(runs):
                    event = _event(sample, run, kind, second=step)
                    event["run"]["facets"][f"step{step}"] = {
                        "_producer": "https://example.com/test",
                        "_schemaURL": "https://example.com/schema",
                    }
                    servers[(i + step) % 2].submit([event])
                    for s in servers:
                        s.cache.sync()
                        for r in runs:
                            cached = s.cache.get(r)
                            if cached is not None:
                                assert _same(cached, lookup_runs(s.store, [r])[r])
            finishes = []
            for stored in stores[0].events():
                if stored.body is not None and stored.kind in ("run_started", "run_finished"):
                    finishes.append(decode_event(stored.body))
        finally:
            for s in servers:
                s.close()
            for st in stores:
                st.close()
    assert sorted(type(e).__name__ for e in finishes) == ["RunFinished"] * 3 + ["RunStarted"] * 3
    for finish in (e for e in finishes if isinstance(e, RunFinished)):
        assert {"step0", "step1", "step2"} <= set((finish.facets or {})["openlineage"]["run"])
