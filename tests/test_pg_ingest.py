"""How the PostgreSQL store ingests fast and still stores exactly what the contract says.

An append ships its bulk writes from a thread of its own, skips the query for
stored event ids and writes new runs with ``COPY`` (unique constraints catch
the rare batch where either bet loses, and it is appended again without
them), sends set-insert columns as joined strings, and keeps content-hash
lookups in hash indexes. Each test pins one of those to the store's contract:
same log, same tree, same projections as deriving them again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

import _pg
from datatrail.errors import StoreError
from datatrail.ledger import Signer, root_hash
from datatrail.model import Event, JobRef, RunFinished, RunStarted, uuid7
from datatrail.store._postgres import (
    _COOL_DOWN,
    _IDS,
    _PG_INDEXES,
    _RUNS,
    _SHORTCUT_KEYS,
    PostgresStore,
    _pack,
)
from datatrail.store._schema import MIGRATIONS
from test_store_contract import chunks, finished, projections, workload

pytestmark = pytest.mark.postgres

_TS = "2024-05-01T00:00:00.000000Z"


@pytest.fixture
def store() -> Iterator[PostgresStore]:
    url = _pg.require_postgres()
    with _pg.fresh_schema("ingest") as schema:
        opened = PostgresStore(url, create=True, signer=Signer.generate("test"), schema=schema)
        try:
            yield opened
        finally:
            opened.close()


def _consistent(store: PostgresStore) -> None:
    """The log is gap-free, the tree matches its leaves, the projections match the log."""
    assert [e.index for e in store.events()] == list(range(store.size()))
    assert store.root() == root_hash(store.leaves())
    assert projections(store) == store.derive_projections()


def _start(run_id: str, **params: Any) -> RunStarted:
    return RunStarted(
        id=uuid7(), ts=_TS, run_id=run_id, job=JobRef(namespace="t", name="job"), params=params
    )


# -- stored ids and restarted runs --------------------------------------------------------------


def test_a_batch_with_stored_ids_skips_them_and_counts_them(store: PostgresStore) -> None:
    first = workload(3)
    store.append(first)
    fresh = workload(2)

    result = store.append([fresh[0], first[1], *fresh[1:], first[0]])

    assert (result.first_index, result.appended, result.duplicates) == (
        len(first),
        len(fresh),
        2,
    )
    assert [e.id for e in store.events(len(first))] == [e.id for e in fresh]
    _consistent(store)


def test_a_run_started_again_in_a_later_batch_takes_the_later_start(store: PostgresStore) -> None:
    run_id, other = uuid7(), uuid7()
    store.append([_start(run_id, attempt=1)])

    # One batch: a run seen before (its row must be updated) and a new one.
    store.append([_start(other, attempt=1), _start(run_id, attempt=2), finished(run_id)])

    rows = {r[0]: r for r in store.table_rows("runs")}
    assert rows[run_id][4] == "completed"
    assert rows[run_id][7] == '{"attempt":2}'
    assert rows[other][4] == "running"
    _consistent(store)


def test_after_a_shortcut_loses_the_next_appends_go_without_it(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken: list[frozenset[str]] = []
    real = store._drop_stored

    def spy(tx: Any, encoded: Any) -> Any:
        taken.append(store._shortcuts())
        return real(tx, encoded)

    monkeypatch.setattr(store, "_drop_stored", spy)
    replayed = [finished()]
    store.append(replayed)
    store.append([*replayed, finished()])  # meets a stored id
    for _ in range(_COOL_DOWN + 1):
        store.append([finished()])

    # The replayed batch: with the shortcuts, then again without any.
    assert taken[0] == taken[1] == {_IDS, _RUNS}
    assert taken[2] == frozenset()
    # The id check is back for a while; the run shortcut, which did not lose, stays.
    assert taken[3 : 3 + _COOL_DOWN] == [{_RUNS}] * _COOL_DOWN
    assert taken[-1] == {_IDS, _RUNS}
    _consistent(store)


def test_the_constraints_the_shortcuts_rely_on_exist_by_the_names_it_knows(
    store: PostgresStore,
) -> None:
    # A loss is recognised by the constraint that caught it; renamed, it would surface as an error.
    rows = store.query(
        "SELECT conname FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
        "WHERE n.nspname = ? AND c.contype IN ('p', 'u')",
        (store.schema,),
    )

    assert set(_SHORTCUT_KEYS) <= {r[0] for r in rows}


def test_without_the_id_check_a_stored_id_is_refused(store: PostgresStore) -> None:
    event = finished()
    store.append([event])

    with pytest.raises(StoreError, match="events_id_key"):
        store.append([event], dedupe=False)
    assert store.size() == 1


# -- failures while writes are in flight ------------------------------------------------------


def test_a_write_refused_mid_batch_leaves_nothing_and_the_store_keeps_working(
    store: PostgresStore,
) -> None:
    store.append(workload(2))
    before = (store.size(), store.root(), projections(store))
    _pg.admin_execute(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'no io rows today'; END $$; "
        "CREATE TRIGGER refuse BEFORE INSERT ON run_io FOR EACH ROW EXECUTE FUNCTION refuse()",
        schema=store.schema,
    )

    with pytest.raises(StoreError, match="no io rows today"):
        store.append(workload(2))

    assert (store.size(), store.root(), projections(store)) == before
    _pg.admin_execute("DROP TRIGGER refuse ON run_io", schema=store.schema)
    store.append(workload(2))
    _consistent(store)


def test_log_entries_refused_by_the_server_fail_the_append_instead_of_hanging_it(
    store: PostgresStore,
) -> None:
    _pg.admin_execute(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'no entries today'; END $$; "
        "CREATE TRIGGER refuse BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse()",
        schema=store.schema,
    )
    outcome: list[BaseException | None] = []

    def append() -> None:
        try:
            store.append(workload(3))
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    appending = threading.Thread(target=append, daemon=True)
    appending.start()
    appending.join(timeout=60)

    assert not appending.is_alive()
    assert isinstance(outcome[0], StoreError)
    assert "no entries today" in str(outcome[0])
    assert store.size() == 0


def test_an_error_raised_while_writes_are_in_flight_rolls_the_batch_back(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.append(workload(2))
    before = (store.size(), store.root(), projections(store))

    def fail(*args: Any) -> str:
        raise RuntimeError("signing failed")

    monkeypatch.setattr(store, "_checkpoint_tx", fail)
    with pytest.raises(RuntimeError, match="signing failed"):
        store.append(workload(30))
    monkeypatch.undo()

    assert (store.size(), store.root(), projections(store)) == before
    store.append(workload(2))
    _consistent(store)


def test_rows_handed_to_a_write_may_be_reused_by_the_caller(store: PostgresStore) -> None:
    rows: list[tuple[Any, ...]] = [(0, "t", "s", _TS, "{}", None)]
    with store._begin() as tx:
        store._executemany(
            tx,
            "INSERT INTO records (idx, topic, subject, ts, data, actor) VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        rows.clear()

    assert store.table_rows("records") == [(0, "t", "s", _TS, "{}", None)]


def test_closing_the_store_stops_its_writer_thread(store: PostgresStore) -> None:
    store.append(workload(1))
    assert any(t.name.startswith("datatrail-pg") for t in threading.enumerate())

    store.close()

    assert not any(t.name.startswith("datatrail-pg") for t in threading.enumerate())


# -- columns shipped as joined strings -----------------------------------------------------------


def test_a_column_packs_into_one_string_with_nulls_marked() -> None:
    assert _pack(["a", None, ""], "text") == "a\x1f\x1e\x1f"
    assert _pack([1, None, -30], "int8") == "1\x1f\x1e\x1f-30"


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        (["a\x1fb"], "text"),  # holds the separator
        (["\x1e"], "text"),  # would read as NULL
        ([""], "text"),  # one empty string would split into no element
        ([3], "text"),  # not a string
        ([True], "int8"),  # a bool is not a number here
        ([1.5], "int8"),
        (["7"], "int8"),
    ],
)
def test_a_column_that_cannot_pack_goes_as_an_array(values: list[Any], kind: str) -> None:
    assert _pack(values, kind) is None


def test_names_holding_the_separators_are_stored_exactly(store: PostgresStore) -> None:
    odd = ["a\x1fb", "\x1e", "", "plain"]
    events: list[Event] = []
    for name in odd:
        run_id = uuid7()
        events += [
            RunStarted(
                id=uuid7(),
                ts=_TS,
                run_id=run_id,
                job=JobRef(namespace="t", name=name or "empty"),
                params={"name": name},
            ),
            RunFinished(id=uuid7(), ts=_TS, run_id=run_id, status="completed"),
        ]

    store.append(events)

    assert sorted(r[1] for r in store.table_rows("jobs")) == sorted(n or "empty" for n in odd)
    _consistent(store)  # every row as deriving the log again in SQLite gives it


def test_batches_of_every_size_store_the_contract_rows(store: PostgresStore) -> None:
    for batch in chunks(workload(40), [1, 17, 3, 60]):
        store.append(batch)

    _consistent(store)


# -- indexes -----------------------------------------------------------------------------------


def test_content_hash_lookups_use_hash_indexes(store: PostgresStore) -> None:
    rows = store.query(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = ? "
        "AND indexname IN ('run_io_artifact', 'run_io_output')",
        (store.schema,),
    )

    assert len(rows) == 2
    assert all("USING hash" in definition for _, definition in rows)


def test_every_index_rewrite_names_a_statement_of_the_schema() -> None:
    # A schema change that renames one of these would otherwise quietly lose the rewrite.
    statements = {s for migration in MIGRATIONS for s in migration.statements}

    assert set(_PG_INDEXES) <= statements
