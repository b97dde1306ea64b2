"""Behaviour only the PostgreSQL store has: many writers, lost servers, bulk writes.

The shared contract lives in ``test_store_contract.py``; these tests need the
server (they skip without it, and fail under ``CI=true``).
"""

from __future__ import annotations

import itertools
import multiprocessing
import sys
from collections.abc import Iterator
from typing import Any

import pytest

import _pg
from datatrail.errors import ConfigError, StoreError
from datatrail.ledger import (
    Signer,
    open_checkpoint,
    root_hash,
    signer_key_text,
    verify_consistency,
)
from datatrail.model import ArtifactInfo, IORecorded, JobRef, RunStarted, uuid7
from datatrail.store._postgres import _BULK, PostgresStore, _pg_sql
from test_store_contract import chunks, erasure_of, finished, projections, workload

pytestmark = pytest.mark.postgres

_TS = "2024-05-01T00:00:00.000000Z"


@pytest.fixture
def pg_url() -> str:
    return _pg.require_postgres()


@pytest.fixture
def schema(pg_url: str) -> Iterator[str]:
    with _pg.fresh_schema("pg") as name:
        yield name


@pytest.fixture
def signer() -> Signer:
    return Signer.generate("test")


@pytest.fixture
def store(pg_url: str, schema: str, signer: Signer) -> Iterator[PostgresStore]:
    opened = PostgresStore(pg_url, create=True, signer=signer, schema=schema)
    try:
        yield opened
    finally:
        opened.close()


# -- many writers, one log -----------------------------------------------------------------


def test_concurrent_writers_in_several_processes_build_one_gap_free_log(
    store: PostgresStore, pg_url: str, schema: str, signer: Signer
) -> None:
    workers, batches = 4, 30
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(workers)
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=_pg.append_worker,
            args=(pg_url, schema, signer_key_text(signer), w, batches, barrier, results),
        )
        for w in range(workers)
    ]
    for p in procs:
        p.start()
    reports = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert [r[2] for r in reports] == [None] * workers

    ranges = sorted(
        (first, appended, ids) for _, done, _ in reports for first, appended, ids in done
    )
    writers = [w for _, w in sorted((f, w) for w, done, _ in reports for f, _, _ in done)]
    assert sum(a != b for a, b in itertools.pairwise(writers)) >= workers  # they did overlap
    total = sum(appended for _, appended, _ in ranges)
    # Each batch landed whole, right after the one before it: no gap, no overlap.
    expected_first = 0
    for first, appended, ids in ranges:
        assert first == expected_first
        assert appended == len(ids)
        expected_first += appended
    assert store.size() == total == expected_first
    stored = list(store.events())
    assert [e.index for e in stored] == list(range(total))
    assert [e.id for e in stored] == [i for _, _, ids in ranges for i in ids]
    # One consistent tree: every checkpoint opens, matches the recomputed prefix root,
    # and each one extends the one before.
    leaves = store.leaves()
    assert store.root() == root_hash(leaves)
    checkpoints = store.checkpoints()
    assert [c.size for c in checkpoints] == [f + a for f, a, _ in ranges]
    previous = None
    for c in checkpoints:
        opened = open_checkpoint(c.note, signer.verifier)
        assert opened.size == c.size
        assert opened.root == c.root == root_hash(leaves[: c.size])
        if previous is not None:
            proof = store.consistency_proof(previous.size, c.size)
            assert verify_consistency(previous.size, c.size, previous.root, c.root, proof)
        previous = c
    assert projections(store) == store.derive_projections()


def test_two_store_objects_on_one_schema_share_the_tree(
    store: PostgresStore, pg_url: str, schema: str
) -> None:
    other = PostgresStore(pg_url, schema=schema)
    try:
        for n, batch in enumerate(chunks([finished() for _ in range(20)], [3, 1, 2])):
            (store if n % 2 else other).append(batch)
        # Each object's cached frontier was stale half the time; the tree must not be.
        assert store.root() == other.root() == root_hash(store.leaves())
        assert store.size() == 20
    finally:
        other.close()


def test_a_batch_refused_at_commit_leaves_no_stale_frontier_behind(
    store: PostgresStore, pg_url: str, schema: str
) -> None:
    store.append([finished() for _ in range(3)])
    _pg.admin_execute(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$; "
        "CREATE CONSTRAINT TRIGGER refuse AFTER INSERT ON checkpoints "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse()",
        schema=schema,
    )
    with pytest.raises(StoreError, match="refused at commit"):
        store.append([finished() for _ in range(4)])
    _pg.admin_execute("DROP TRIGGER refuse ON checkpoints", schema=schema)
    # Another writer lands a batch of the same size: the log is now as long as the refused
    # batch would have made it, but its frontier is different.
    other = PostgresStore(pg_url, schema=schema)
    other.append([finished() for _ in range(4)])
    other.close()

    store.append([finished()])

    assert store.size() == 8
    assert store.root() == root_hash(store.leaves())


# -- an unreachable or vanishing server -----------------------------------------------------------


def test_an_unreachable_server_raises_store_error_naming_it_without_the_password() -> None:
    port = _pg.closed_port()

    with pytest.raises(
        StoreError, match=rf"cannot reach PostgreSQL at postgresql://127\.0\.0\.1:{port}/test"
    ) as raised:
        PostgresStore(f"postgresql://postgres:s3cret@127.0.0.1:{port}/test", create=True)

    assert "s3cret" not in str(raised.value)
    assert "DATATRAIL_URL" in str(raised.value)


def test_reads_and_appends_raise_store_error_while_the_server_is_gone_and_recover_after(
    pg_url: str, schema: str
) -> None:
    proxy = _pg.TcpProxy("127.0.0.1", 5432)
    proxy.start()
    store = PostgresStore(proxy.url(pg_url), create=True, schema=schema)
    try:
        store.append([finished() for _ in range(3)])
        proxy.cut()

        with pytest.raises(StoreError, match="cannot reach PostgreSQL"):
            store.size()
        pending = [finished() for _ in range(4)]
        with pytest.raises(StoreError, match="cannot reach PostgreSQL"):
            store.append(pending)

        proxy.start()
        result = store.append(pending)
        assert (result.first_index, result.appended) == (3, 4)
        assert store.root() == root_hash(store.leaves())
    finally:
        proxy.cut()
        store.close()


def test_a_connection_lost_mid_batch_leaves_nothing_and_the_batch_can_be_replayed(
    pg_url: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = _pg.TcpProxy("127.0.0.1", 5432)
    proxy.start()
    store = PostgresStore(proxy.url(pg_url), create=True, schema=schema)
    try:
        store.append(workload(3))
        before = (store.size(), store.root(), projections(store))
        real = store._executemany

        def cut_then_write(tx: Any, sql: str, rows: Any) -> None:
            proxy.cut()
            real(tx, sql, rows)

        monkeypatch.setattr(store, "_executemany", cut_then_write)
        batch = workload(2)
        with pytest.raises(StoreError, match="lost the connection") as raised:
            store.append(batch)
        assert "append it again" in str(raised.value)
        monkeypatch.undo()

        proxy.start()
        assert (store.size(), store.root(), projections(store)) == before
        replay = store.append(batch)
        assert (replay.appended, replay.duplicates) == (len(batch), 0)
        assert store.root() == root_hash(store.leaves())
        assert projections(store) == store.derive_projections()
    finally:
        proxy.cut()
        store.close()


def test_a_dropped_idle_connection_is_replaced_without_an_error(
    store: PostgresStore, pg_url: str
) -> None:
    store.append([finished()])
    pid = store.query("SELECT pg_backend_pid()")[0][0]
    _pg.admin_execute(f"SELECT pg_terminate_backend({int(pid)})")

    assert store.size() == 1
    assert store.append([finished()]).first_index == 1
    assert store.query("SELECT pg_backend_pid()")[0][0] != pid


def test_a_closed_store_refuses_work(store: PostgresStore) -> None:
    store.close()

    with pytest.raises(StoreError, match="closed"):
        store.size()


def test_without_psycopg_the_store_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)

    with pytest.raises(ConfigError, match=r"pip install 'datatrail\[postgres\]'"):
        PostgresStore("postgresql://postgres@127.0.0.1:5432/test")


# -- SQL and bulk writes -----------------------------------------------------------------------------


def test_portable_placeholders_become_psycopg_ones_and_percent_signs_stay_literal(
    store: PostgresStore,
) -> None:
    assert _pg_sql("SELECT '?', ? WHERE a LIKE '1%'") == "SELECT '?', %s WHERE a LIKE '1%%'"
    assert store.query("SELECT '100%', '?', ?", ("x",)) == [("100%", "?", "x")]


def test_every_statement_of_an_append_has_a_bulk_path(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: set[str] = set()
    real = store._executemany

    def record(tx: Any, sql: str, rows: Any) -> None:
        seen.add(sql)
        real(tx, sql, rows)

    monkeypatch.setattr(store, "_executemany", record)
    for batch in chunks(workload(12), [40]):
        store.append(batch)
    first_io = next(e.index for e in store.events() if e.kind == "io")
    store.append([erasure_of(store, first_io)])

    assert seen
    assert seen - set(_BULK) == set()


def test_bulk_writes_keep_first_wins_and_last_update_within_one_batch(store: PostgresStore) -> None:
    events = workload(12)
    restarted = next(e for e in events if isinstance(e, RunStarted))
    again = RunStarted(
        id=uuid7(), ts=restarted.ts, run_id=restarted.run_id, job=restarted.job, params={"n": 2}
    )

    store.append([*events, again])  # one batch: repeated artifacts, datasets and a restart

    assert projections(store) == store.derive_projections()


def test_bulk_writes_link_every_producer_a_repeated_read_can_see(store: PostgresStore) -> None:
    def run(job: str) -> tuple[str, RunStarted]:
        run_id = uuid7()
        return run_id, RunStarted(
            id=uuid7(), ts=_TS, run_id=run_id, job=JobRef(namespace="t", name=job)
        )

    jobs: dict[str, JobRef] = {}

    def io(run_id: str, role: str) -> IORecorded:
        return IORecorded(
            id=uuid7(),
            ts=_TS,
            run_id=run_id,
            role=role,  # type: ignore[arg-type]
            artifact=ArtifactInfo(id="uuid:0192a000-0000-7000-8000-000000000001", kind="frame"),
            job=jobs[run_id],
        )

    a, start_a = run("a")
    b, start_b = run("b")
    c, start_c = run("c")
    jobs.update({a: start_a.job, b: start_b.job, c: start_c.job})
    # c reads the frame after a made it, then again after b made it too: the second read
    # links b -> c, which the first could not see.
    store.append(
        [
            start_a,
            start_b,
            start_c,
            io(a, "output"),
            io(c, "input"),
            io(b, "output"),
            io(c, "input"),
        ]
    )

    edges = {(src, dst) for src, dst, *_ in store.table_rows("dataset_edges")}
    assert edges == {("j:t:a", "j:t:c"), ("j:t:b", "j:t:c")}
    assert projections(store) == store.derive_projections()


# -- text collation ------------------------------------------------------------------------


def _text_collations(schema: str) -> set[str | None]:
    import psycopg

    with psycopg.connect(_pg.PG_URL) as conn:
        rows = conn.execute(
            "SELECT DISTINCT collation_name FROM information_schema.columns "
            "WHERE table_schema = %s AND data_type = 'text' AND table_name <> 'migrations'",
            (schema,),
        ).fetchall()
    return {r[0] for r in rows}


def _lineage_of_every_output(url: str, schema: str, signer: Signer) -> dict[str, Any]:
    from datatrail.audit import verify
    from datatrail.lineage import Trail

    store = PostgresStore(url, signer=signer, schema=schema)
    try:
        outputs = [
            "r:" + r[0] for r in store.query("SELECT run_id FROM run_io WHERE role = 'output'")
        ]
        trail = Trail(store=store)
        walks = {
            run: sorted(n.id for n in trail.downstream("run:" + run[2:], depth=5).nodes)
            for run in outputs
        }
        report = verify(store, verifier=signer.verifier)
        assert report.ok, report.faults
        return {"collation": store.key_collation, "walks": walks}
    finally:
        store.close()


def test_text_columns_compare_by_bytes_and_a_store_in_the_default_collation_still_walks(
    pg_url: str, schema: str, signer: Signer
) -> None:
    store = PostgresStore(pg_url, create=True, signer=signer, schema=schema)
    try:
        for batch in chunks(workload(12), (7, 3)):
            store.append(batch)
    finally:
        store.close()
    assert _text_collations(schema) == {"C"}
    new = _lineage_of_every_output(pg_url, schema, signer)
    assert new["collation"] == ' COLLATE "C"'
    assert new["walks"] and any(len(nodes) > 1 for nodes in new["walks"].values())

    # A store made before text columns were byte-ordered: the database's default collation.
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = %s AND data_type = 'text'",
            (schema,),
        ).fetchall()
        for table, column in columns:
            conn.execute(
                f'ALTER TABLE "{schema}"."{table}" ALTER COLUMN "{column}" '
                'TYPE text COLLATE "default"'
            )
    assert _text_collations(schema) == {None}
    old = _lineage_of_every_output(pg_url, schema, signer)
    assert old["collation"] == ""
    assert old["walks"] == new["walks"]
