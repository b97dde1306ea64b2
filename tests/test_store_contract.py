"""The store contract: one suite, run over every backend (SQLite and PostgreSQL).

Each test takes the ``store`` fixture (a fresh, empty, signed store) or the
``backend`` fixture (a place to open stores in: a temporary directory for
SQLite, a fresh schema for PostgreSQL, dropped afterwards).
"""

from __future__ import annotations

import base64
import itertools
import random
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import pytest

import _pg
from datatrail.errors import InvalidEvent, NotAStore, SchemaTooNew, SignatureError, StoreError
from datatrail.ledger import (
    Signer,
    consistency_proof,
    inclusion_proof,
    open_checkpoint,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from datatrail.model import (
    Actor,
    ArtifactInfo,
    CodeVersion,
    DatasetRef,
    Environment,
    ErasureRecorded,
    ErrorInfo,
    Event,
    IORecorded,
    JobRef,
    Record,
    RunFinished,
    RunStarted,
    is_uuid7,
    uuid7,
)
from datatrail.store import LOG_TABLES, PROJECTION_TABLES, SCHEMA_VERSION, SQLiteStore, Store

# -- backends ------------------------------------------------------------------------


class Backend(Protocol):
    """Somewhere to open stores: named places, and a way to write behind a store's back."""

    name: str

    def open(
        self, where: str = "main", *, create: bool = False, signer: Signer | None = None
    ) -> Any: ...

    def execute(self, where: str, sql: str) -> None: ...


class SQLiteBackend:
    """One SQLite file per place, in a temporary directory."""

    name = "sqlite"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def open(
        self, where: str = "main", *, create: bool = False, signer: Signer | None = None
    ) -> SQLiteStore:
        return SQLiteStore(self.directory / f"{where}.db", create=create, signer=signer)

    def execute(self, where: str, sql: str) -> None:
        conn = sqlite3.connect(self.directory / f"{where}.db")
        try:
            conn.execute(sql)
            conn.commit()
        finally:
            conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield SQLiteBackend(tmp_path)
        return
    with _pg.postgres_backend() as pg:
        yield pg


@pytest.fixture
def signer() -> Signer:
    return Signer.generate("test")


@pytest.fixture
def store(backend: Backend, signer: Signer) -> Iterator[Store]:
    opened = backend.open(create=True, signer=signer)
    try:
        yield opened
    finally:
        opened.close()


# -- events ----------------------------------------------------------------------------

_clock = itertools.count()


def _ts() -> str:
    n = next(_clock)
    return f"2024-05-01T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}.000000Z"


def _artifact(n: int) -> ArtifactInfo:
    return ArtifactInfo(
        id=f"blake3:{n:064x}",
        kind="file",
        size=100 + n,
        rows=n if n % 2 else None,
        schema=[("id", "int64"), ("name", "string")],
        stats={"n": n},
        media_type="text/csv",
    )


# Mixed case and punctuation, so any ordering other than byte order shows up.
_JOBS = [
    JobRef(namespace="tests", name="etl.Clean"),
    JobRef(namespace="tests", name="etl.aggregate"),
    JobRef(namespace="Tests", name="_load"),
]
_DATASETS = [
    DatasetRef(namespace="file", name="/data/Zeta.csv"),
    DatasetRef(namespace="file", name="/data/alpha.csv"),
    DatasetRef(namespace="postgres://db:5432", name="wh.public.Orders"),
]


def finished(run_id: str | None = None) -> RunFinished:
    return RunFinished(id=uuid7(), ts=_ts(), run_id=run_id or uuid7(), status="completed")


def workload(runs: int) -> list[Event]:
    """A pipeline's worth of events: code, environment, nested runs and their inputs and outputs.

    Artifacts and datasets repeat across runs, some runs hand a value to the
    next, some fail, some finish before they start, and one run is started
    twice, so every projection rule (first-wins inserts, commuting start/finish
    upserts, job-to-job edges) is exercised.
    """
    code = CodeVersion(id=uuid7(), ts=_ts(), code_id="code:1", module="etl", qualname="clean")
    env = Environment(
        id=uuid7(),
        ts=_ts(),
        env_id="env:1",
        python="3.11.7",
        implementation="CPython",
        platform="linux",
        packages={"pandas": "2.2.0"},
    )
    events: list[Event] = [code, env]
    parent: str | None = None
    for r in range(runs):
        run_id = uuid7()
        start = RunStarted(
            id=uuid7(),
            ts=_ts(),
            run_id=run_id,
            job=_JOBS[r % len(_JOBS)],
            parent_run_id=parent,
            params={"r": r, "mode": "full"},
            code_id="code:1",
            env_id="env:1",
            actor=Actor(user="ana", host="h1") if r % 2 else None,
        )
        # An input with no dataset is an in-memory hand-off: the previous run's output.
        inputs = [
            IORecorded(
                id=uuid7(),
                ts=_ts(),
                run_id=run_id,
                role="input",
                artifact=_artifact((r + k) % 5 if (r + k) % 4 else 99 + r),
                dataset=_DATASETS[(r + k) % len(_DATASETS)] if (r + k) % 4 else None,
                label=f"in{k}",
                job=start.job,
            )
            for k in range(1 + r % 2)
        ]
        output = IORecorded(
            id=uuid7(),
            ts=_ts(),
            run_id=run_id,
            role="output",
            artifact=_artifact(100 + r),
            dataset=_DATASETS[r % len(_DATASETS)],
            label="return",
            job=start.job,
        )
        failed = r % 6 == 5
        finish = RunFinished(
            id=uuid7(),
            ts=_ts(),
            run_id=run_id,
            status="failed" if failed else "completed",
            error=ErrorInfo(type="ValueError", message=f"bad row {r}") if failed else None,
        )
        if r % 3 == 2:
            events += [finish, start, *inputs, output]
        else:
            events += [start, *inputs, output, finish]
        if r == 4:
            restart = RunStarted(
                id=uuid7(), ts=_ts(), run_id=run_id, job=start.job, params={"r": r, "retry": True}
            )
            events.append(restart)
        if r % 5 == 1:
            events.append(
                Record(
                    id=uuid7(),
                    ts=_ts(),
                    topic="alert",
                    subject=f"run:{run_id}",
                    data={"r": r, "reason": "slow"},
                    actor=Actor(user="ana", host="h1") if r % 2 else None,
                )
            )
        parent = run_id if r % 4 == 0 else parent
    return events


def chunks(events: Sequence[Event], sizes: Sequence[int]) -> Iterator[list[Event]]:
    """``events`` cut into consecutive batches whose sizes cycle through ``sizes``."""
    pos = 0
    for size in itertools.cycle(sizes):
        if pos >= len(events):
            return
        yield list(events[pos : pos + size])
        pos += size


def snapshot(store: Store) -> dict[str, Any]:
    """Everything observable about a store's contents."""
    state: dict[str, Any] = {t: store.table_rows(t) for t in (*LOG_TABLES, *PROJECTION_TABLES)}
    state["size"] = store.size()
    state["root"] = store.root()
    return state


def projections(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    return {t: store.table_rows(t) for t in PROJECTION_TABLES}


def erasure_of(store: Store, index: int, reason: str = "subject request") -> ErasureRecorded:
    stored = store.event(index)
    assert stored is not None
    return ErasureRecorded(
        id=uuid7(),
        ts=_ts(),
        target_index=index,
        target_id=stored.id,
        leaf_hash=stored.leaf.hex(),
        reason=reason,
    )


# -- appending ---------------------------------------------------------------------------


def test_append_assigns_consecutive_indexes(store: Store) -> None:
    first, second = [finished() for _ in range(3)], [finished() for _ in range(2)]

    a = store.append(first)
    b = store.append(second)

    assert (a.first_index, a.appended, a.size) == (0, 3, 3)
    assert (b.first_index, b.appended, b.size) == (3, 2, 5)
    assert [store.event(e.id).index for e in first + second] == [0, 1, 2, 3, 4]  # type: ignore[union-attr]
    assert store.size() == 5


def test_duplicate_event_ids_are_skipped_and_counted(store: Store) -> None:
    a, b, c = finished(), finished(), finished()
    store.append([a, b])

    result = store.append([b, c, c])

    assert (result.appended, result.duplicates, result.first_index) == (1, 2, 2)
    assert store.size() == 3
    assert store.event(c.id).index == 2  # type: ignore[union-attr]


def test_an_append_of_only_known_events_changes_nothing(store: Store) -> None:
    known = finished()
    store.append([known])
    before = snapshot(store)

    result = store.append([known])

    assert (result.appended, result.duplicates, result.checkpoint) == (0, 1, None)
    assert result.root == before["root"]
    assert snapshot(store) == before


def test_a_batch_with_an_invalid_erasure_is_rolled_back_whole(store: Store) -> None:
    for batch in chunks(workload(6), [4, 3]):
        store.append(batch)
    before = snapshot(store)
    target = store.event(3)
    assert target is not None
    bad = ErasureRecorded(
        id=uuid7(),
        ts=_ts(),
        target_index=3,
        target_id=target.id,
        leaf_hash="00" * 32,  # not the entry's leaf
        reason="wrong leaf",
    )

    with pytest.raises(InvalidEvent, match="leaf"):
        store.append([*workload(2), bad])

    assert snapshot(store) == before
    # And the store goes on from where it was, with a tree that still adds up.
    after = store.append(workload(1))
    assert after.first_index == before["size"]
    assert store.root() == root_hash(store.leaves())


# -- the Merkle tree ----------------------------------------------------------------------


def test_root_and_size_match_the_tree_recomputed_from_the_leaves(store: Store) -> None:
    for batch in chunks(workload(8), [1, 5, 2, 9]):
        store.append(batch)

    leaves = store.leaves()

    assert store.size() == len(leaves) > 0
    assert store.root() == root_hash(leaves)
    for n in range(1, len(leaves) + 1):
        assert store.root(n) == root_hash(leaves[:n])


def test_inclusion_proofs_verify_for_every_entry_and_size(store: Store) -> None:
    for batch in chunks([finished() for _ in range(24)], [1, 2, 3, 5, 8]):
        store.append(batch)
    leaves = store.leaves()

    for n in range(1, len(leaves) + 1):
        root = store.root(n)
        for i in range(n):
            proof = store.inclusion_proof(i, n)
            assert verify_inclusion(leaves[i], i, n, proof, root), (i, n)


def test_consistency_proofs_verify_between_every_pair_of_sizes(store: Store) -> None:
    for batch in chunks([finished() for _ in range(24)], [3, 1, 4]):
        store.append(batch)
    roots = {n: store.root(n) for n in range(1, store.size() + 1)}

    for new in roots:
        for old in range(1, new + 1):
            proof = store.consistency_proof(old, new)
            assert verify_consistency(old, new, roots[old], roots[new], proof), (old, new)


def test_every_append_signs_a_checkpoint_that_opens_with_the_signers_verifier(
    store: Store, signer: Signer
) -> None:
    results = [store.append(batch) for batch in chunks(workload(4), [3, 6])]

    stored = store.checkpoints()

    assert [c.size for c in stored] == [r.size for r in results]
    assert [c.note for c in stored] == [r.checkpoint for r in results]
    origin = store.meta()["origin"]
    for c in stored:
        opened = open_checkpoint(c.note, signer.verifier)
        assert (opened.origin, opened.size, opened.root) == (origin, c.size, c.root)
        assert c.root == store.root(c.size)
    assert store.latest_checkpoint() == stored[-1]
    with pytest.raises(SignatureError):
        open_checkpoint(stored[-1].note, Signer.generate("someone-else").verifier)


# -- projections ---------------------------------------------------------------------------


def test_projections_from_small_appends_equal_rebuild_and_derivation(store: Store) -> None:
    for batch in chunks(workload(24), [1, 3, 7, 2]):
        store.append(batch)

    incremental = projections(store)
    derived = store.derive_projections()
    replayed = store.rebuild()

    assert replayed == store.size()
    assert all(incremental[t] for t in PROJECTION_TABLES if t != "erasures")
    assert incremental == derived
    assert projections(store) == derived


def test_run_start_and_finish_give_the_same_row_in_either_order(store: Store) -> None:
    def pair(run_id: str) -> tuple[RunStarted, RunFinished]:
        start = RunStarted(
            id=uuid7(),
            ts="2024-05-01T00:00:00.000000Z",
            run_id=run_id,
            job=_JOBS[0],
            params={"p": 1},
            actor=Actor(user="ana", host="h1"),
        )
        finish = RunFinished(
            id=uuid7(),
            ts="2024-05-01T00:00:05.000000Z",
            run_id=run_id,
            status="failed",
            error=ErrorInfo(type="KeyError", message="x"),
        )
        return start, finish

    in_order, reversed_ = uuid7(), uuid7()
    start, finish = pair(in_order)
    store.append([start])
    store.append([finish])
    start, finish = pair(reversed_)
    store.append([finish])
    store.append([start])

    rows = {r[0]: r for r in store.table_rows("runs")}
    # Everything but the run id and the indexes of the two events is the same.
    assert rows[in_order][1:13] == rows[reversed_][1:13]
    assert rows[in_order][4] == "failed"
    assert rows[in_order][5] == "2024-05-01T00:00:00.000000Z"
    assert rows[in_order][6] == "2024-05-01T00:00:05.000000Z"


# -- erasure ---------------------------------------------------------------------------------


def test_erasure_clears_the_body_keeps_the_leaf_and_records_the_receipt(store: Store) -> None:
    for batch in chunks(workload(6), [5]):
        store.append(batch)
    io_index = next(e.index for e in store.events() if e.kind == "io")
    before = store.event(io_index)
    assert before is not None and before.body is not None
    root_before = store.root()

    receipt = store.append([erasure_of(store, io_index, "gdpr art. 17")])

    after = store.event(io_index)
    assert after is not None
    assert after.body is None
    assert after.leaf == before.leaf
    assert after.erased_by == receipt.first_index
    assert store.root(receipt.first_index) == root_before
    assert store.root() == root_hash(store.leaves())
    assert [r[:3] for r in store.table_rows("erasures")] == [
        (io_index, receipt.first_index, "gdpr art. 17")
    ]
    assert io_index not in {r[0] for r in store.table_rows("run_io")}
    assert projections(store) == store.derive_projections()
    store.rebuild()
    assert projections(store) == store.derive_projections()


def test_an_entry_cannot_be_erased_twice(store: Store) -> None:
    store.append([finished(), finished()])
    first = erasure_of(store, 1)
    store.append([first])

    with pytest.raises(InvalidEvent, match="already erased"):
        store.append([erasure_of(store, 1)])


# -- reading ------------------------------------------------------------------------------------


def test_events_iterate_in_order_across_batch_boundaries(store: Store) -> None:
    appended = [finished() for _ in range(10_004)]
    for batch in chunks(appended, [4_999, 2, 5_003]):
        store.append(batch)

    read = list(store.events())

    assert [e.index for e in read] == list(range(len(appended)))
    assert [e.id for e in read] == [e.id for e in appended]
    assert all(isinstance(e.body, bytes) and isinstance(e.leaf, bytes) for e in read[:3])
    assert [e.index for e in store.events(4_998, 5_003)] == [4_998, 4_999, 5_000, 5_001, 5_002]


def test_meta_names_the_store_and_its_origin(store: Store) -> None:
    meta = store.meta()

    assert meta["format"] == "datatrail"
    assert is_uuid7(meta["store_id"])
    assert meta["origin"] == f"datatrail/{meta['store_id']}"


# -- opening ----------------------------------------------------------------------------------


def test_reopening_a_store_keeps_its_contents(backend: Backend, signer: Signer) -> None:
    first = backend.open(create=True, signer=signer)
    for batch in chunks(workload(5), [4]):
        first.append(batch)
    before = snapshot(first)
    meta = first.meta()
    first.close()

    again = backend.open(signer=signer)
    try:
        assert snapshot(again) == before
        assert again.meta() == meta
        more = again.append(workload(2))
        assert more.first_index == before["size"]
        assert again.root() == root_hash(again.leaves())
    finally:
        again.close()


def test_opening_a_missing_store_without_create_raises_store_error(backend: Backend) -> None:
    with pytest.raises(StoreError, match="no datatrail store") as raised:
        backend.open("nowhere")

    assert not isinstance(raised.value, NotAStore)


def test_opening_something_that_is_not_a_store_raises_not_a_store(backend: Backend) -> None:
    backend.execute("foreign", "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")

    with pytest.raises(NotAStore):
        backend.open("foreign", create=True)


def test_a_store_from_a_newer_datatrail_raises_schema_too_new(
    backend: Backend, signer: Signer
) -> None:
    backend.open(create=True, signer=signer).close()
    backend.execute(
        "main",
        "INSERT INTO migrations (version, name, applied_at) "
        f"VALUES ({SCHEMA_VERSION + 1}, 'from the future', '2099-01-01T00:00:00.000000Z')",
    )

    with pytest.raises(SchemaTooNew, match=f"schema version {SCHEMA_VERSION + 1}"):
        backend.open(signer=signer)


# -- the stored tree ----------------------------------------------------------------------------


def _tree_rows(store: Store) -> list[tuple[int, int]]:
    return [(int(r[0]), int(r[1])) for r in store.query("SELECT level, idx FROM tree_nodes")]


def _perfect_nodes(size: int, levels: Sequence[int]) -> set[tuple[int, int]]:
    """Every complete perfect subtree of a tree of ``size`` leaves on ``levels``."""
    return {(level, i) for level in levels for i in range(size >> level)}


def test_a_new_store_keeps_every_second_tree_level_and_proves_from_it(store: Store) -> None:
    events = [finished() for _ in range(700)]
    for batch in chunks(events, [1, 37, 255, 2, 300, 16, 89]):
        store.append(batch)
    leaves = store.leaves()
    n = len(leaves)

    assert store.meta()["tree_stride"] == "2"
    assert sorted(_tree_rows(store)) == sorted(_perfect_nodes(n, [2, 4, 6, 8]))
    rng = random.Random(5)
    sizes = {1, 15, 16, 17, 255, 256, 257, 511, 512, 699, n, *rng.sample(range(1, n + 1), 12)}
    for size in sorted(sizes):
        root = store.root(size)
        assert root == root_hash(leaves[:size])
        for i in {0, size - 1, size // 2, *rng.sample(range(size), min(size, 6))}:
            proof = store.inclusion_proof(i, size)
            assert proof == inclusion_proof(leaves[:size], i), (i, size)
        for old in {1, size, max(1, size // 3), *rng.sample(range(1, size + 1), min(size, 4))}:
            proof = store.consistency_proof(old, size)
            assert proof == consistency_proof(leaves[:size], old), (old, size)


def test_a_store_made_before_strides_keeps_every_level(backend: Backend, signer: Signer) -> None:
    backend.open(create=True, signer=signer).close()
    backend.execute("main", "DELETE FROM meta WHERE key = 'tree_stride'")  # as older stores are
    store = backend.open(signer=signer)
    try:
        for batch in chunks([finished() for _ in range(50)], [3, 20, 27]):
            store.append(batch)
        leaves = store.leaves()

        assert store.stride == 1
        assert sorted(_tree_rows(store)) == sorted(_perfect_nodes(50, range(1, 6)))
        assert store.inclusion_proof(33) == inclusion_proof(leaves, 33)
        assert store.root() == root_hash(leaves)
    finally:
        store.close()


@pytest.mark.parametrize("value", ["0", "9", "two", " 2", ""])
def test_a_store_whose_tree_stride_is_not_a_small_number_is_refused(
    backend: Backend, signer: Signer, value: str
) -> None:
    backend.open(create=True, signer=signer).close()
    backend.execute("main", f"UPDATE meta SET value = '{value}' WHERE key = 'tree_stride'")

    with pytest.raises(StoreError, match="tree_stride"):
        backend.open(signer=signer)


def test_two_handles_appending_in_turn_keep_one_checkpoint_chain(
    backend: Backend, signer: Signer
) -> None:
    from datatrail.audit import verify

    first = backend.open(create=True, signer=signer)
    second = backend.open(signer=signer)
    try:
        for turn in range(6):
            (first if turn % 3 else second).append([finished() for _ in range(turn + 1)])
        report = verify(first, verifier=signer.verifier)
        notes = [open_checkpoint(cp.note, signer.verifier) for cp in first.checkpoints()]

        assert report.ok, report.faults[:3]
        assert [n.size for n in notes] == [1, 3, 6, 10, 15, 21]
        assert [n.extensions[1] for n in notes[1:]] == [
            f"prev {a.size} {base64.b64encode(a.root).decode()}" for a in notes[:-1]
        ]
    finally:
        first.close()
        second.close()


# -- schema 3: the artifact graph is read from run_io -------------------------------------------

# How schema 2 derived its edges table: one edge per io event, input artifact -> run -> output.
_SCHEMA2_EDGES = (
    "INSERT INTO edges (idx, src, dst, ts) SELECT idx, "
    "CASE role WHEN 'input' THEN 'a:' || artifact_id ELSE 'r:' || run_id END, "
    "CASE role WHEN 'input' THEN 'r:' || run_id ELSE 'a:' || artifact_id END, ts FROM run_io"
)


def _closure(
    edges: Sequence[tuple[str, str]], start: str, side: int, depth: int
) -> tuple[set[str], set[tuple[str, str]]]:
    """The nodes within ``depth`` edges of ``start``, walking into ``side`` (0: src, 1: dst),
    and the edges leaving the nodes nearer than ``depth`` (what a walk lists)."""
    found, frontier, listed = {start}, {start}, set()
    for _ in range(depth):
        leaving = {e for e in edges if e[1 - side] in frontier}
        listed |= leaving
        frontier = {e[side] for e in leaving} - found
        found |= frontier
    return found, listed


def test_a_schema_2_store_opens_as_schema_3_and_walks_the_graph_its_edges_held(
    backend: Backend, signer: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datatrail.audit import verify
    from datatrail.lineage import Trail
    from datatrail.store import _postgres, _schema, _sqlite, artifact_edges

    schema2 = _schema.MIGRATIONS[:2]
    for module in (_sqlite, _postgres):
        monkeypatch.setattr(module, "MIGRATIONS", schema2)
    old = backend.open(create=True, signer=signer)
    try:
        for batch in chunks(workload(16), [5, 9]):
            old.append(batch)
    finally:
        old.close()
    backend.execute("main", _SCHEMA2_EDGES)
    old = backend.open(signer=signer)
    try:
        edges = [(str(s), str(d)) for _, s, d, _ in old.table_rows("edges")]
        assert old.schema_version() == 2
    finally:
        old.close()
    monkeypatch.undo()

    store = backend.open(signer=signer)
    try:
        assert store.schema_version() == SCHEMA_VERSION == 3
        assert "edges" not in store.tables()
        nodes = sorted({n for edge in edges for n in edge})
        some = set(nodes[::3])
        for side, end in (("src", 0), ("dst", 1)):
            expected = sorted(e for e in edges if e[end] in some)
            assert expected and sorted(artifact_edges(store, sorted(some), side)) == expected
        trail = Trail(store=store)
        walked = 0
        for node in nodes:
            node_id = ("artifact:" if node.startswith("a:") else "run:") + node[2:]
            for direction, into in (("upstream", 0), ("downstream", 1)):
                graph = trail.lineage(node_id, direction=direction, depth=4)
                key = {"artifact": "a:", "run": "r:"}
                keys = {key[n.id.split(":", 1)[0]] + n.id.split(":", 1)[1] for n in graph.nodes}
                listed = {
                    tuple(
                        key[x.split(":", 1)[0]] + x.split(":", 1)[1] for x in (e.source, e.target)
                    )
                    for e in graph.edges
                }
                assert (keys, listed) == _closure(edges, node, into, 4), (node, direction)
                walked += len(keys) > 1
        assert walked > len(nodes)  # most nodes have neighbours both ways
        assert verify(store, verifier=signer.verifier).ok
    finally:
        store.close()
