"""Lineage walks on PostgreSQL probe the run_io indexes node by node, whatever the statistics say.

A store loaded in bulk (``datatrail migrate``, a large ingest) has no planner
statistics until autovacuum analyses it; a walk must not fall back to reading
the whole io table then. These tests read the plans the server chooses.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import _pg
from datatrail.lineage import Trail
from datatrail.store import PostgresStore

pytestmark = pytest.mark.postgres

_TS = "2024-05-01T00:00:00.000000Z"
_CHAIN = 100_000  # input artifact -> run -> output artifact, this many times


def _artifact(i: int) -> str:
    return "blake3:" + f"{i:064x}"


@pytest.fixture
def unanalysed_store() -> Iterator[PostgresStore]:
    """A store whose io table holds a long chain written behind its back and never analysed."""
    url = _pg.require_postgres()
    with _pg.fresh_schema("plan") as schema:
        store = PostgresStore(url, create=True, schema=schema)
        try:
            _pg.admin_execute(
                "INSERT INTO run_io (idx, run_id, role, artifact_id, ts) "
                "SELECT 2 * i, 'run-' || i, 'input', 'blake3:' || lpad(to_hex(i), 64, '0'), "
                f"'{_TS}' FROM generate_series(0, {_CHAIN - 1}) i "
                "UNION ALL SELECT 2 * i + 1, 'run-' || i, 'output', "
                f"'blake3:' || lpad(to_hex(i + 1), 64, '0'), '{_TS}' "
                f"FROM generate_series(0, {_CHAIN - 1}) i",
                schema=schema,
            )
            _pg.admin_execute(
                "INSERT INTO artifacts (artifact_id, kind, first_idx, first_ts) "
                f"VALUES ('{_artifact(_CHAIN)}', 'bytes', 0, '{_TS}')",
                schema=schema,
            )
            yield store
        finally:
            store.close()


def _walk_plan(store: PostgresStore, monkeypatch: pytest.MonkeyPatch, **options: Any) -> str:
    """The server's plan for the walk ``Trail.upstream`` runs, and check the walk's answer."""
    seen: list[tuple[str, Any]] = []
    real = store.query

    def record(sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        seen.append((sql, params))
        return real(sql, params)

    monkeypatch.setattr(store, "query", record)
    graph = Trail(store=store).upstream(f"artifact:{_artifact(_CHAIN)}", **options)
    monkeypatch.undo()
    assert len(graph.nodes) == graph.depth + 1  # a chain: one node per step
    (sql, params), *_ = [(s, p) for s, p in seen if "WITH RECURSIVE" in s]
    return "\n".join(str(r[0]) for r in store.query("EXPLAIN " + sql, params))


def test_a_walk_on_an_unanalysed_store_never_scans_the_whole_io_table(
    unanalysed_store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = _walk_plan(unanalysed_store, monkeypatch, depth=20)

    assert "Seq Scan on run_io" not in plan
    # Every step probes an index: an artifact for the runs that wrote it (not every run
    # that read it), a run for what it read.
    assert "run_io_output" in plan
    assert "run_io_run" in plan


def test_a_walk_on_postgresql_is_never_jit_compiled(
    unanalysed_store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rough estimates make the plan look costly; compiling it would take longer than the walk.
    plan = _walk_plan(unanalysed_store, monkeypatch, depth=5)

    assert "JIT" not in plan
    assert unanalysed_store.query("SHOW jit") == [("off",)]
