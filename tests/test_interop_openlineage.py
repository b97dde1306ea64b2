"""OpenLineage in and out: validation against the official schemas, ingest, export, forwarding."""

from __future__ import annotations

import copy
import http.server
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import pytest
from referencing import Registry, Resource
from typer.testing import CliRunner

from datatrail.cli import app
from datatrail.errors import InvalidEvent
from datatrail.interop.openlineage import (
    ALIAS_TOPIC,
    Forwarder,
    InvalidOpenLineageEvent,
    OpenLineageMapper,
    events_from_openlineage,
    export_openlineage,
    forwarder_from_env,
    ingest,
    read_openlineage_lines,
    resolve_alias,
    validate_facets,
    validate_openlineage,
)
from datatrail.lineage import Trail
from datatrail.model import IORecorded, Record, RunFinished, RunStarted
from datatrail.store import SQLiteStore, init_home, open_store

# -- the official schemas, as the reference -------------------------------------------------

_BASES = {
    "RunFacet": "run",
    "JobFacet": "job",
    "DatasetFacet": "dataset",
    "InputDatasetFacet": "input",
    "OutputDatasetFacet": "output",
}


class Official:
    """jsonschema over OpenLineage.json plus each standard facet schema, by container kind.

    Formats are annotations in 2020-12; like datatrail we assert ``uuid`` only.
    """

    def __init__(self, spec: Path) -> None:
        core = json.loads((spec / "OpenLineage.json").read_text())
        facets = [json.loads(p.read_text()) for p in sorted((spec / "facets").glob("*.json"))]
        registry: Registry[Any] = Registry().with_resources(
            (s["$id"], Resource.from_contents(s)) for s in [core, *facets]
        )
        checker = jsonschema.FormatChecker(formats=["uuid"])

        def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
            return jsonschema.Draft202012Validator(
                schema, registry=registry, format_checker=checker
            )

        self.core = validator(core)
        self.by_kind: dict[str, list[tuple[str, jsonschema.Draft202012Validator]]] = {}
        for f in facets:
            for key, prop in f["properties"].items():
                for kind in self._kinds(f, prop):
                    self.by_kind.setdefault(kind, []).append((key, validator(f)))

    @staticmethod
    def _kinds(schema: dict[str, Any], prop: dict[str, Any]) -> set[str]:
        refs = [prop["$ref"]] if "$ref" in prop else [a["$ref"] for a in prop.get("anyOf", [])]
        kinds = set()
        for ref in refs:
            node = schema["$defs"][ref.split("/")[-1]]
            alts = (
                [node]
                if "allOf" in node
                else [schema["$defs"][a["$ref"].split("/")[-1]] for a in node.get("oneOf", [])]
            )
            for alt in alts:
                kinds.add(_BASES[alt["allOf"][0]["$ref"].split("/")[-1]])
        return kinds

    def facet_errors(self, kind: str, facets: Any) -> list[str]:
        if not isinstance(facets, dict):
            return []
        return [
            e.message
            for key, v in self.by_kind.get(kind, [])
            if key in facets
            for e in v.iter_errors({key: facets[key]})
        ]

    def errors(self, ev: Any) -> list[str]:
        errs = [e.message for e in self.core.iter_errors(ev)]
        if not isinstance(ev, dict):
            return errs

        def d(x: Any) -> dict[str, Any]:
            return x if isinstance(x, dict) else {}

        def items(x: Any) -> list[Any]:
            return x if isinstance(x, list) else []

        errs += self.facet_errors("run", d(ev.get("run")).get("facets"))
        errs += self.facet_errors("job", d(ev.get("job")).get("facets"))
        for i in items(ev.get("inputs")):
            errs += self.facet_errors("dataset", d(i).get("facets"))
            errs += self.facet_errors("input", d(i).get("inputFacets"))
        for o in items(ev.get("outputs")):
            errs += self.facet_errors("dataset", d(o).get("facets"))
            errs += self.facet_errors("output", d(o).get("outputFacets"))
        errs += self.facet_errors("dataset", d(ev.get("dataset")).get("facets"))
        return errs


@pytest.fixture(scope="module")
def official(testdata: Path) -> Official:
    return Official(testdata / "openlineage" / "spec")


def _template(testdata: Path) -> list[dict[str, Any]]:
    text = (testdata / "marquez" / "metadata.template.json").read_text()
    text = text.replace("{{RUN_START_TIME}}", "2024-01-01T00:00:00Z")
    text = re.sub(
        r"\{\{RUN_END_TIME_AFTER_(\d+)_MINUTES\}\}",
        lambda m: f"2024-01-01T00:{int(m.group(1)):02d}:00Z",
        text,
    )
    events: list[dict[str, Any]] = json.loads(text)
    return events


def _samples(testdata: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every whole sample event (facet-only samples left out), with its name."""
    found = []
    for root in (testdata / "openlineage", testdata / "marquez"):
        for path in sorted(root.rglob("*.json")):
            if "/spec/facets/" in path.as_posix() or "/registry/" in path.as_posix():
                continue
            if path.name == "metadata.template.json":
                continue
            data = json.loads(path.read_text())
            if isinstance(data, dict) and "eventTime" in data:
                found.append((path.relative_to(testdata).as_posix(), data))
    found += [(f"marquez/metadata.template.json#{i}", e) for i, e in enumerate(_template(testdata))]
    return found


def _mine_ok(event: Any) -> bool:
    try:
        validate_openlineage(event)
    except InvalidOpenLineageEvent:
        return False
    return True


# -- validation -------------------------------------------------------------------------------


def test_every_sample_event_is_judged_as_the_official_schemas_judge_it(
    testdata: Path, official: Official
) -> None:
    samples = _samples(testdata)
    assert len(samples) >= 50
    verdicts = {name: (not official.errors(ev), _mine_ok(ev)) for name, ev in samples}
    assert {n: v for n, v in verdicts.items() if v[0] != v[1]} == {}
    # the set holds both kinds, so agreement means something
    assert sum(a for a, _ in verdicts.values()) >= 40
    assert verdicts["openlineage/proxy/fluentd/events/event_no_run_id.json"] == (False, False)
    assert verdicts["openlineage/proxy/fluentd/events/event_simple.json"] == (True, True)


def _paths(obj: Any, here: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield (*here, k)
            yield from _paths(v, (*here, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield (*here, i)
            yield from _paths(v, (*here, i))


def test_mutated_events_are_judged_as_the_official_schemas_judge_them(
    testdata: Path, official: Official
) -> None:
    names = {
        "openlineage/client-tests/example_full_event.json",
        "openlineage/client-tests/serde_example_dataset_event.json",
        "openlineage/client-tests/serde_example_job_event.json",
        "marquez/metadata.template.json#25",
    }
    disagreements = []
    count = 0
    for name, event in _samples(testdata):
        if name not in names:
            continue
        for path, op, mutated in _mutated(event):
            if path == ("eventTime",) and op == "text":
                continue  # datatrail also needs eventTime to parse (documented)
            count += 1
            if (not official.errors(mutated)) != _mine_ok(mutated):
                disagreements.append((name, path, op))
    assert count > 700
    assert disagreements == []


def _mutated(event: Any) -> Iterator[tuple[tuple[Any, ...], Any, Any]]:
    """``(path, op, copy)``: every field deleted, or set to text, a float, [], {} or null."""
    for path in _paths(event):
        for op in ("delete", "text", 1.5, [], {}, None):
            mutated = copy.deepcopy(event)
            parent = mutated
            for key in path[:-1]:
                parent = parent[key]
            if op == "delete":
                del parent[path[-1]]
            else:
                parent[path[-1]] = op
            yield path, op, mutated


def test_the_quick_verdict_always_agrees_with_the_check_that_points(testdata: Path) -> None:
    """Validation trusts the pointer-free predicates when they accept: they must never differ."""
    from datatrail.interop.openlineage._checks import Bad
    from datatrail.interop.openlineage._schema import _valid, _validate

    disagreements = []
    count = 0
    for name, event in _samples(testdata):
        if sum(1 for _ in _paths(event)) > 200:
            continue  # the large samples add time, not kinds of fields
        for candidate in (event, *(m for _, _, m in _mutated(event))):
            try:
                _validate(candidate)
                checked = True
            except Bad:
                checked = False
            count += 1
            if _valid(candidate) != checked:
                disagreements.append(name)
    assert count > 5_000
    assert disagreements == []


def test_derived_ids_are_the_uuid5_they_always_were() -> None:
    import uuid

    from datatrail.interop.openlineage._ingest import _NS, _derived_uuid

    for parts in (("openlineage", "ab" * 32, "0"), ("version", "ns", "näme", "v1"), ("",)):
        assert _derived_uuid(*parts) == str(uuid.uuid5(_NS, "\x1f".join(parts)))


def test_facet_examples_of_the_spec_are_judged_as_the_official_schemas_judge_them(
    testdata: Path, official: Official
) -> None:
    checked = 0
    for path in sorted((testdata / "openlineage" / "spec" / "tests").glob("*/*.json")):
        facets = json.loads(path.read_text())
        for kind, known in official.by_kind.items():
            if not any(key in facets for key, _ in known):
                continue
            want = not official.facet_errors(kind, facets)
            try:
                validate_facets(kind, facets)
                got = True
            except InvalidOpenLineageEvent:
                got = False
            assert got == want, (path.name, kind)
            checked += 1
    assert checked >= 35


def _run_event(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "eventType": "START",
        "eventTime": "2024-05-01T10:00:00.123456789+02:00",
        "producer": "https://example.com/producer",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": "3f5e2a8c-1b2d-4c3e-8f9a-0b1c2d3e4f50"},
        "job": {"namespace": "etl", "name": "load_orders"},
        "inputs": [{"namespace": "postgres://db:5432", "name": "shop.public.raw_orders"}],
        "outputs": [],
    }
    event.update(changes)
    return event


def test_a_missing_run_id_is_named_by_its_json_pointer() -> None:
    event = _run_event(run={})
    with pytest.raises(InvalidEvent) as info:
        validate_openlineage(event)
    assert isinstance(info.value, InvalidOpenLineageEvent)
    assert info.value.pointer == "/run/runId"
    assert "/run/runId" in str(info.value)


def test_a_bad_field_deep_in_a_facet_is_named_by_its_json_pointer() -> None:
    facet = {"_producer": "p", "_schemaURL": "s", "rowCount": "many"}
    event = _run_event(
        outputs=[{"namespace": "n", "name": "t", "outputFacets": {"outputStatistics": facet}}]
    )
    with pytest.raises(InvalidOpenLineageEvent) as info:
        validate_openlineage(event)
    assert info.value.pointer == "/outputs/0/outputFacets/outputStatistics/rowCount"
    assert "integer" in str(info.value)


def test_an_unknown_event_type_and_an_unparsable_time_are_rejected() -> None:
    with pytest.raises(InvalidOpenLineageEvent) as info:
        validate_openlineage(_run_event(eventType="DONE"))
    assert info.value.pointer == "/eventType"
    with pytest.raises(InvalidOpenLineageEvent) as info:
        validate_openlineage(_run_event(eventTime="yesterday"))
    assert info.value.pointer == "/eventTime"


# -- mapping -----------------------------------------------------------------------------------


def test_a_run_accumulates_across_start_and_complete() -> None:
    mapper = OpenLineageMapper()
    start = mapper.map(_run_event())
    complete = mapper.map(
        _run_event(
            eventType="COMPLETE",
            eventTime="2024-05-01T08:05:00Z",
            outputs=[{"namespace": "postgres://db:5432", "name": "shop.public.orders"}],
        )
    )
    kinds = [type(e).__name__ for e in start], [type(e).__name__ for e in complete]
    assert kinds == (
        ["RunStarted", "IORecorded", "Record"],
        ["IORecorded", "RunFinished", "Record"],
    )
    started = start[0]
    assert isinstance(started, RunStarted)
    assert started.ts == "2024-05-01T08:00:00.123456Z"  # +02:00 to UTC, nanoseconds cut
    finished = complete[1]
    assert isinstance(finished, RunFinished) and finished.status == "completed"
    out = complete[0]
    assert isinstance(out, IORecorded) and out.role == "output"
    assert out.dataset is not None and out.dataset.name == "shop.public.orders"


def test_a_failed_run_keeps_its_error_message_and_parent() -> None:
    parent_id = "0a1b2c3d-4e5f-4a6b-9c8d-7e6f5a4b3c2d"
    facets = {
        "parent": {
            "_producer": "p",
            "_schemaURL": "s",
            "run": {"runId": parent_id.upper()},
            "job": {"namespace": "airflow", "name": "dag"},
        },
        "errorMessage": {
            "_producer": "p",
            "_schemaURL": "s",
            "message": "table not found",
            "programmingLanguage": "JAVA",
            "stackTrace": "at X",
        },
    }
    event = _run_event(
        eventType="FAIL", run={"runId": "3F5E2A8C-1B2D-4C3E-8F9A-0B1C2D3E4F50", "facets": facets}
    )
    events = events_from_openlineage(event)
    started = next(e for e in events if isinstance(e, RunStarted))
    finished = next(e for e in events if isinstance(e, RunFinished))
    assert started.run_id == "3f5e2a8c-1b2d-4c3e-8f9a-0b1c2d3e4f50"
    assert started.parent_run_id == parent_id
    assert finished.status == "failed"
    assert finished.error is not None and finished.error.message == "table not found"
    assert finished.error.traceback == "at X"


def test_a_version_facet_joins_producer_and_consumer_on_one_artifact() -> None:
    version = {"version": {"_producer": "p", "_schemaURL": "s", "datasetVersion": "42"}}
    ds = {"namespace": "s3://bucket", "name": "orders", "facets": version}
    writer = _run_event(eventType="COMPLETE", inputs=[], outputs=[ds])
    reader = _run_event(
        eventType="COMPLETE",
        run={"runId": "9c8d7e6f-5a4b-4c3d-8e1f-0a1b2c3d4e5f"},
        job={"namespace": "etl", "name": "report"},
        inputs=[ds],
    )
    out = [e for e in events_from_openlineage(writer) if isinstance(e, IORecorded)]
    inp = [e for e in events_from_openlineage(reader) if isinstance(e, IORecorded)]
    assert out[0].artifact.id == inp[0].artifact.id
    assert out[0].artifact.id.startswith("uuid:")


def test_the_original_event_is_kept_whole_in_a_record() -> None:
    custom = {"_producer": "p", "_schemaURL": "s", "anything": [1, {"x": None}]}
    event = _run_event(
        run={"runId": "3f5e2a8c-1b2d-4c3e-8f9a-0b1c2d3e4f50", "facets": {"acme_custom": custom}}
    )
    record = events_from_openlineage(event)[-1]
    assert isinstance(record, Record) and record.topic == "openlineage.event"
    assert record.subject == "run:3f5e2a8c-1b2d-4c3e-8f9a-0b1c2d3e4f50"
    assert record.data == {"event": event}


# -- ingest ------------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    home = init_home(tmp_path / ".datatrail")
    opened = open_store(home.url, signer=home.signer())
    assert isinstance(opened, SQLiteStore)
    yield opened
    opened.close()


def test_ingest_reports_rejected_lines_and_stores_nothing_of_them(store: SQLiteStore) -> None:
    good = json.dumps(_run_event())
    bad = json.dumps(_run_event(run={}))
    text = f"{good}\nnot json\n\n{bad}\n"
    objs, lines = read_openlineage_lines(text)
    results = ingest(store, objs, lines=lines)
    assert [(r.line, r.ok) for r in results] == [(1, True), (2, False), (4, False)]
    assert results[1].error is not None and "JSON" in results[1].error
    assert results[2].pointer == "/run/runId"
    stored = store.query("SELECT subject FROM records WHERE topic = 'openlineage.event'")
    assert stored == [("run:3f5e2a8c-1b2d-4c3e-8f9a-0b1c2d3e4f50",)]


def test_ingesting_the_same_events_twice_stores_them_once(
    store: SQLiteStore, testdata: Path
) -> None:
    events = _template(testdata)
    first = ingest(store, events)
    size = store.size()
    second = ingest(store, events)
    assert all(r.ok for r in first) and all(r.ok for r in second)
    assert store.size() == size
    assert sum(r.events for r in second) == 0
    assert store.query("SELECT COUNT(*) FROM runs WHERE status = 'completed'") == [(13,)]


def test_a_complete_in_a_later_ingest_does_not_restart_its_run(store: SQLiteStore) -> None:
    ingest(store, [_run_event()])
    ingest(store, [_run_event(eventType="COMPLETE", eventTime="2024-05-01T09:00:00Z")])
    rows = store.query("SELECT status, started_at, ended_at FROM runs")
    assert rows == [("completed", "2024-05-01T08:00:00.123456Z", "2024-05-01T09:00:00.000000Z")]
    assert store.query("SELECT COUNT(*) FROM run_io") == [(1,)]


def test_events_from_openlineage_with_a_store_does_not_restart_a_stored_run(
    store: SQLiteStore,
) -> None:
    store.append(events_from_openlineage(_run_event(), store=store))
    later = events_from_openlineage(_run_event(eventType="COMPLETE"), store=store)
    assert [type(e).__name__ for e in later] == ["RunFinished", "Record"]


def test_run_ids_of_any_uuid_version_are_accepted_and_queryable(store: SQLiteStore) -> None:
    v4 = "3f5e2a8c-1b2d-4c3e-8f9a-0b1c2d3e4f50"
    v1 = "f99310b4-3c3c-1a1a-2b2b-c1b95c24ff11"
    ingest(store, [_run_event(eventType="COMPLETE"), _run_event(run={"runId": v1})])
    trail = Trail(store=store)
    assert trail.run(v4).status == "completed"
    assert trail.run(v1).status == "running"
    assert trail.resolve(f"run:{v1}").key == v1


def test_symlinks_make_aliases_of_one_dataset(store: SQLiteStore) -> None:
    links = {
        "symlinks": {
            "_producer": "p",
            "_schemaURL": "s",
            "identifiers": [{"namespace": "hive", "name": "shop.orders", "type": "TABLE"}],
        }
    }
    ds = {"namespace": "s3://bucket", "name": "warehouse/orders", "facets": links}
    ingest(store, [_run_event(inputs=[ds])])
    aliases = store.query("SELECT subject, data FROM records WHERE topic = ?", (ALIAS_TOPIC,))
    assert len(aliases) == 1
    assert (
        resolve_alias(store, "dataset:hive:shop.orders") == "dataset:s3://bucket:warehouse/orders"
    )
    assert resolve_alias(store, "dataset:other:x") == "dataset:other:x"
    assert store.query("SELECT namespace, name FROM datasets") == [
        ("s3://bucket", "warehouse/orders")
    ]


# -- export ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_trail(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from datatrail.demo import run_demo

    return Path(run_demo(tmp_path_factory.mktemp("demo") / "demo").trail)


def test_every_event_exported_from_the_demo_validates(demo_trail: Path, official: Official) -> None:
    with Trail(demo_trail) as t:
        events = list(export_openlineage(t.store))
        runs = t.store.query("SELECT COUNT(*) FROM runs")[0][0]
    assert len(events) == 2 * runs
    assert {e["eventType"] for e in events} == {"START", "COMPLETE"}
    assert [official.errors(e) for e in events if official.errors(e)] == []
    child = next(e for e in events if "parent" in e["run"]["facets"])
    assert child["job"]["facets"]["sourceCodeLocation"]["version"]
    outputs = [o for e in events for o in e["outputs"]]
    assert outputs and all(
        o["facets"]["version"]["datasetVersion"].startswith("blake3:") for o in outputs
    )


def test_exported_marquez_events_validate_and_keep_every_facet(
    store: SQLiteStore, testdata: Path, official: Official
) -> None:
    sent = _template(testdata)
    ingest(store, sent)
    back = list(export_openlineage(store))
    assert [official.errors(e) for e in back if official.errors(e)] == []
    key = lambda e: (e["run"]["runId"], e["eventType"])  # noqa: E731
    assert sorted(back, key=key) == sorted(sent, key=key)


def test_a_custom_facet_survives_the_round_trip(store: SQLiteStore) -> None:
    custom = {"_producer": "p", "_schemaURL": "s", "nested": {"deep": [1, 2.5, "x"]}}
    event = _run_event(job={"namespace": "etl", "name": "load_orders", "facets": {"acme": custom}})
    ingest(store, [event])
    assert list(export_openlineage(store)) == [event]


def test_column_lineage_records_become_the_column_lineage_facet(
    store: SQLiteStore, official: Official
) -> None:
    from datatrail.model import ArtifactInfo, DatasetRef, JobRef, uuid7

    run_id = uuid7()
    job = JobRef(namespace="default", name="clean")
    out = DatasetRef(namespace="file", name="/data/out.csv")
    fields = {
        "total": {
            "inputFields": [
                {
                    "namespace": "file",
                    "name": "/data/in.csv",
                    "field": "amount",
                    "transformations": [{"type": "DIRECT", "subtype": "AGGREGATION"}],
                }
            ]
        }
    }
    store.append(
        [
            RunStarted(id=uuid7(), ts="2024-01-01T00:00:00.000000Z", run_id=run_id, job=job),
            IORecorded(
                id=uuid7(),
                ts="2024-01-01T00:00:01.000000Z",
                run_id=run_id,
                role="output",
                artifact=ArtifactInfo(id="blake3:" + "ab" * 32, kind="file", rows=3, size=10),
                dataset=out,
                job=job,
            ),
            Record(
                id=uuid7(),
                ts="2024-01-01T00:00:01.000000Z",
                topic="column_lineage",
                subject=out.node_id(),
                data={"fields": fields},
            ),
            RunFinished(
                id=uuid7(), ts="2024-01-01T00:00:02.000000Z", run_id=run_id, status="completed"
            ),
        ]
    )
    complete = list(export_openlineage(store))[-1]
    assert official.errors(complete) == []
    facets = complete["outputs"][0]["facets"]
    assert facets["columnLineage"]["fields"] == fields
    assert complete["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 3


def test_export_since_leaves_out_earlier_runs(store: SQLiteStore) -> None:
    ingest(store, [_run_event()])
    assert list(export_openlineage(store, since="2024-05-02T00:00:00.000000Z")) == []
    assert len(list(export_openlineage(store, since="2024-05-01T00:00:00.000000Z"))) == 1


# -- forwarder ---------------------------------------------------------------------------------


class _Collector(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str | None, dict[str, Any]]]] = []
    fail_first: ClassVar[int] = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if _Collector.fail_first > 0:
            _Collector.fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        _Collector.received.append((self.path, self.headers.get("Authorization"), json.loads(body)))
        self.send_response(201)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[str]:
    _Collector.received = []
    _Collector.fail_first = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_forwarder_posts_runs_as_openlineage_events(collector: str, official: Official) -> None:
    from datatrail.model import ArtifactInfo, JobRef, uuid7

    forwarder = forwarder_from_env(
        {"DATATRAIL_OPENLINEAGE_URL": collector, "DATATRAIL_OPENLINEAGE_API_KEY": "k3y"}
    )
    assert forwarder is not None
    _Collector.fail_first = 1  # the first POST fails; the retry must deliver it
    forwarder.backoff = 0.01
    run_id = uuid7()
    job = JobRef(namespace="default", name="step")
    forwarder.handle(
        [RunStarted(id=uuid7(), ts="2024-01-01T00:00:00.000000Z", run_id=run_id, job=job)]
    )
    forwarder.handle(
        [
            IORecorded(
                id=uuid7(),
                ts="2024-01-01T00:00:01.000000Z",
                run_id=run_id,
                role="output",
                artifact=ArtifactInfo(id="blake3:" + "cd" * 32, kind="pandas", rows=5),
                job=job,
            ),
            RunFinished(
                id=uuid7(), ts="2024-01-01T00:00:02.000000Z", run_id=run_id, status="completed"
            ),
        ]
    )
    assert forwarder.flush(timeout=10)
    forwarder.close()
    assert [(p, a, e["eventType"]) for p, a, e in _Collector.received] == [
        ("/api/v1/lineage", "Bearer k3y", "START"),
        ("/api/v1/lineage", "Bearer k3y", "COMPLETE"),
    ]
    complete = _Collector.received[1][2]
    assert complete["run"]["runId"] == run_id
    assert complete["outputs"][0]["name"] == "blake3:" + "cd" * 32
    assert [official.errors(e) for _, _, e in _Collector.received] == [[], []]
    assert forwarder.sent == 2 and forwarder.failed == 0


def test_the_forwarder_gives_up_quietly_when_the_backend_is_down() -> None:
    from datatrail.model import JobRef, uuid7

    forwarder = Forwarder("http://127.0.0.1:9", retries=1, backoff=0.01, timeout=1)
    forwarder.handle(
        [
            RunStarted(
                id=uuid7(),
                ts="2024-01-01T00:00:00.000000Z",
                run_id=uuid7(),
                job=JobRef(namespace="d", name="j"),
            )
        ]
    )
    assert forwarder.flush(timeout=10)
    forwarder.close()
    assert forwarder.sent == 0 and forwarder.failed == 1


def test_no_url_means_no_forwarder() -> None:
    assert forwarder_from_env({}) is None
    assert forwarder_from_env({"DATATRAIL_OPENLINEAGE_URL": "ftp://x"}) is None


# -- CLI ---------------------------------------------------------------------------------------


def test_cli_import_reports_rejected_lines_and_export_writes_them_back(
    tmp_path: Path, official: Official
) -> None:
    home = init_home(tmp_path / ".datatrail")
    source = tmp_path / "events.jsonl"
    source.write_text(json.dumps(_run_event()) + "\n" + json.dumps(_run_event(run={})) + "\n")
    runner = CliRunner()
    result = runner.invoke(app, ["import", str(source), "--trail", str(home.path), "--json"])
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert report["accepted"] == 1
    assert report["rejected"] == [
        {"line": 2, "error": "required field is missing", "pointer": "/run/runId"}
    ]
    out = tmp_path / "out.jsonl"
    result = runner.invoke(
        app,
        ["export", "--format", "openlineage", "-o", str(out), "--trail", str(home.path), "--json"],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["count"] == 1
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert exported == [_run_event()]


def test_cli_export_refuses_an_unknown_format(tmp_path: Path) -> None:
    home = init_home(tmp_path / ".datatrail")
    result = CliRunner().invoke(app, ["export", "--format", "xml", "--trail", str(home.path)])
    assert result.exit_code == 2
    assert "openlineage" in result.output
