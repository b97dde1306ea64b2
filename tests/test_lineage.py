"""Lineage walks: diamonds, cycles, depth limits, as-of, explain — on SQLite and PostgreSQL.

Each test records into a fresh trail through the public API; the ``trail``
fixture below runs it twice, once over the embedded SQLite store and once
over a PostgreSQL store in a schema of its own (skipped without the server).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import _pg
import datatrail
from datatrail.capture import shutdown
from datatrail.errors import InvalidNodeId, NodeNotFound, UsageError
from datatrail.model import now_ts
from datatrail.store import init_home


def _schema_url(base: str, schema: str) -> str:
    """``base`` with the schema put on the connection's search_path."""
    joiner = "&" if "?" in base else "?"
    return f"{base}{joiner}options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgres"])
def trail(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[], datatrail.Trail]]:
    """Record into a fresh trail; yields a function that flushes and opens it."""
    schema = None
    if request.param == "postgres":
        base = _pg.require_postgres()
        schema = _pg.new_schema_name("lin")
        _pg.admin_execute(f'CREATE SCHEMA "{schema}"')
        url = _schema_url(base, schema)
        home = init_home(tmp_path / ".datatrail", url=url)
        where: str | Path = url
    else:
        home = init_home(tmp_path / ".datatrail")
        where = home.path
    datatrail.configure(home=home, level="standard", enabled=True)
    opened: list[datatrail.Trail] = []

    def read() -> datatrail.Trail:
        datatrail.flush()
        t = datatrail.Trail(where)
        opened.append(t)
        return t

    read.backend = request.param  # type: ignore[attr-defined]
    try:
        yield read
    finally:
        for t in opened:
            t.close()
        shutdown()
        datatrail.configure(home=None, level="standard")
        if schema is not None:
            _pg.drop_schema(schema)


def test_each_backend_records_and_walks_in_its_own_store(trail):
    source()
    t = trail()
    assert (
        type(t.store).__name__
        == {"sqlite": "SQLiteStore", "postgres": "PostgresStore"}[trail.backend]
    )
    assert [n.kind for n in t.upstream(f"artifact:{_output(t, 'source')}").nodes] == [
        "artifact",
        "run",
    ]


@datatrail.track
def source() -> bytes:
    return b"raw"


@datatrail.track
def left(x: bytes) -> bytes:
    return x + b"-left"


@datatrail.track
def right(x: bytes) -> bytes:
    return x + b"-right"


@datatrail.track
def merge(a: bytes, b: bytes) -> bytes:
    return a + b


def _output(t: datatrail.Trail, job: str) -> str:
    (run,) = [r for r in t.runs(limit=500) if r.job_name.endswith("." + job)]
    return t.run(run.run_id).outputs[0].artifact_id


def test_upstream_of_a_diamond_reaches_the_source_once(trail):
    a = source()
    merge(left(a), right(a))
    t = trail()
    top = _output(t, "merge")
    graph = t.upstream(f"artifact:{top}")
    ids = [n.id for n in graph.nodes]
    assert len(ids) == len(set(ids))
    assert f"artifact:{_output(t, 'source')}" in ids
    runs = sorted(n.label.rsplit(".", 1)[-1] for n in graph.nodes if n.kind == "run")
    assert runs == ["left", "merge", "right", "source"]
    depth = {n.id: n.depth for n in graph.nodes}
    assert depth[f"artifact:{_output(t, 'source')}"] == 4
    # every edge joins two nodes of the graph, in data-flow direction
    for e in graph.edges:
        assert e.source in depth and e.target in depth


def test_downstream_of_the_source_reaches_the_merge(trail):
    a = source()
    merge(left(a), right(a))
    t = trail()
    graph = t.downstream(f"artifact:{_output(t, 'source')}")
    assert f"artifact:{_output(t, 'merge')}" in {n.id for n in graph.nodes}


def test_depth_limits_the_walk(trail):
    a = source()
    merge(left(a), right(a))
    t = trail()
    graph = t.upstream(f"artifact:{_output(t, 'merge')}", depth=2)
    assert max(n.depth for n in graph.nodes) == 2
    assert {n.kind for n in graph.nodes if n.depth == 2} == {"artifact"}
    assert f"artifact:{_output(t, 'source')}" not in {n.id for n in graph.nodes}


def test_a_job_that_reads_and_writes_one_table_terminates(trail, tmp_path):
    table = tmp_path / "table.csv"
    table.write_text("v\n0\n")
    for i in range(3):
        with datatrail.run("increment") as r:
            r.input(table)
            table.write_text(f"v\n{i + 1}\n")
            r.output(table)
    t = trail()
    node = f"dataset:file:{table.resolve()}"
    graph = t.upstream(node)
    assert {n.id for n in graph.nodes} == {node, "job:default:increment"}
    assert {(e.source, e.target) for e in graph.edges} == {
        (node, "job:default:increment"),
        ("job:default:increment", node),
    }


def test_dataset_lineage_crosses_in_memory_steps(trail, tmp_path):
    raw = tmp_path / "raw.bin"
    raw.write_bytes(b"raw")
    out = tmp_path / "out.bin"

    @datatrail.track
    def load(path):
        return path.read_bytes()

    @datatrail.track
    def store(data: bytes, path) -> None:
        path.write_bytes(data)

    store(left(load(raw)), out)
    t = trail()
    graph = t.upstream(f"dataset:file:{out.resolve()}")
    ids = {n.id for n in graph.nodes}
    assert f"dataset:file:{raw.resolve()}" in ids
    assert any(i.endswith(".left") for i in ids)


def test_as_of_ignores_what_was_recorded_later(trail, tmp_path):
    a, b, c = (tmp_path / n for n in ("a.csv", "b.csv", "c.csv"))
    a.write_text("a")
    c.write_text("c")
    with datatrail.run("build") as r:
        r.input(a)
        b.write_text("from a")
        r.output(b)
    datatrail.flush()
    time.sleep(0.01)
    cut = now_ts()
    time.sleep(0.01)
    with datatrail.run("rebuild") as r:
        r.input(c)
        b.write_text("from c")
        r.output(b)
    t = trail()
    node = f"dataset:file:{b.resolve()}"
    now = {n.id for n in t.upstream(node).nodes}
    then = {n.id for n in t.upstream(node, as_of=cut).nodes}
    assert f"dataset:file:{c.resolve()}" in now
    assert f"dataset:file:{c.resolve()}" not in then
    assert f"dataset:file:{a.resolve()}" in then
    versions = t.dataset("file", str(b.resolve())).versions
    assert len(versions) == 2
    assert t.latest_version("file", str(b.resolve()), as_of=cut) == versions[0]["artifact_id"]


def test_explain_tells_the_whole_story_with_params_and_code(trail):
    a = source()
    merge(left(a), right(a))
    t = trail()
    story = t.explain(f"artifact:{_output(t, 'merge')}")
    (step,) = story.produced_by
    assert step.run.job_name.endswith(".merge")
    assert step.run.code is not None and step.run.code["qualname"] == "merge"
    assert len(step.inputs) == 2
    grand = [s.run.job_name.rsplit(".", 1)[-1] for i in step.inputs for s in i.produced_by]
    assert sorted(grand) == ["left", "right"]
    sources = [i2 for i in step.inputs for s in i.produced_by for i2 in s.inputs]
    assert [x.seen_above for x in sources].count(
        True
    ) == 1  # the diamond's second path is not re-told


def test_unknown_and_malformed_nodes_raise_clear_errors(trail):
    source()
    t = trail()
    with pytest.raises(NodeNotFound, match="no artifact"):
        t.upstream("artifact:blake3:" + "0" * 64)
    with pytest.raises(InvalidNodeId):
        t.upstream("orders.csv")
    with pytest.raises(NodeNotFound, match="no run"):
        t.run("01a1fd15-d160-70ea-81dc-0ee6ade20b1f")
    with pytest.raises(UsageError, match="depth"):
        t.upstream(f"artifact:{_output(t, 'source')}", depth=-1)
