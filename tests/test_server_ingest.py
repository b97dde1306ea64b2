"""OpenLineage ingest over HTTP: the shared conformance events (acceptance 1) and the real
openlineage-python client (acceptance 2)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from tests.test_server_support import bearer, client, issue_tokens, live_server

from datatrail.audit import verify
from datatrail.server import create_app
from datatrail.store import PROJECTION_TABLES, init_home, open_store
from test_interop_openlineage import Official, _template


def _files(testdata: Path) -> list[Path]:
    return sorted(
        [
            *(testdata / "openlineage" / "proxy" / "fluentd" / "events").glob("*.json"),
            *(testdata / "openlineage" / "client-tests").glob("*.json"),
            *(testdata / "marquez" / "events").rglob("*.json"),
        ]
    )


def _shared() -> Path:
    from tests.conftest import SHARED_TESTDATA

    return SHARED_TESTDATA


# Valid means what the official OpenLineage 2-0-2 JSON Schemas say (core and facets), judged by
# jsonschema here, independently of the server's own validator.
_OFFICIAL = Official(_shared() / "openlineage" / "spec")


def _invalid(path: Path) -> bool:
    return bool(_OFFICIAL.errors(json.loads(path.read_text())))


VALID = [p for p in _files(_shared()) if not _invalid(p)]
INVALID = [p for p in _files(_shared()) if _invalid(p)]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return init_home(tmp_path_factory.mktemp("ingest") / ".datatrail")


@pytest.fixture(scope="module")
def tokens(home):
    return issue_tokens(home, ("producer", "viewer"))


@pytest.fixture(scope="module")
def api(home):
    with client(home) as c:
        yield c


def _snapshot(home) -> tuple[int, dict[str, int]]:
    store = open_store(home.url)
    try:
        counts = {t: store.query(f"SELECT COUNT(*) FROM {t}")[0][0] for t in PROJECTION_TABLES}
        return store.size(), counts
    finally:
        store.close()


def _node_of(event: dict) -> str:
    if "job" in event:
        return f"job:{event['job']['namespace']}:{event['job']['name']}"
    dataset = event["dataset"]
    return f"dataset:{dataset['namespace']}:{dataset['name']}"


@pytest.mark.parametrize("path", VALID, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_valid_events_are_accepted_and_their_lineage_is_queryable(api, tokens, path):
    event = json.loads(path.read_text())
    response = api.post("/api/v1/lineage", json=event, headers=bearer(tokens["producer"]))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted"
    graph = api.get(
        "/api/v1/lineage", params={"nodeId": _node_of(event)}, headers=bearer(tokens["viewer"])
    )
    assert graph.status_code == 200, graph.text
    assert graph.json()["root"] == _node_of(event)


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_events_get_400_with_a_pointer_and_store_nothing(api, tokens, home, path):
    api.app.state.access.flush()  # earlier tests' reads are access events, appended meanwhile
    before = _snapshot(home)
    response = api.post(
        "/api/v1/lineage", content=path.read_bytes(), headers=bearer(tokens["producer"])
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["pointer"].startswith("/") and error["message"]
    assert _snapshot(home) == before
    assert verify(open_store(home.url)).ok


def test_a_batch_stores_the_valid_events_and_points_at_the_invalid(api, tokens, home):
    good = json.loads(VALID[0].read_text())
    bad = json.loads(INVALID[0].read_text())
    response = api.post(
        "/api/v1/lineage/batch", json=[good, bad], headers=bearer(tokens["producer"])
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "partial_success"
    assert body["summary"] == {
        "received": 2,
        "successful": 1,
        "failed": 1,
        "retriable": 0,
        "non_retriable": 1,
    }
    assert body["failed_events"][0]["index"] == 1
    assert body["failed_events"][0]["pointer"].startswith("/1/")
    only_bad = api.post("/api/v1/lineage/batch", json=[bad], headers=bearer(tokens["producer"]))
    assert only_bad.status_code == 400 and only_bad.json()["error"]["pointer"].startswith("/0/")


def test_gzipped_bodies_are_accepted(api, tokens):
    event = json.loads(VALID[-1].read_text())
    response = api.post(
        "/api/v1/lineage",
        content=gzip.compress(json.dumps(event).encode()),
        headers={**bearer(tokens["producer"]), "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200, response.text


def test_the_marquez_pipeline_arrives_as_one_lineage_graph(tmp_path, testdata):
    home = init_home(tmp_path / ".datatrail")
    tokens = issue_tokens(home, ("producer", "viewer"))
    events = _template(testdata)  # placeholders filled: START at 00:00, ends N minutes later
    with client(home) as api:
        response = api.post(
            "/api/v1/lineage/batch", json=events, headers=bearer(tokens["producer"])
        )
        assert response.status_code == 200, response.text
        assert response.json()["summary"]["successful"] == len(events)
        # Every job that read and wrote: its output's upstream holds the job and its inputs.
        checked = 0
        for event in events:
            if not (event.get("inputs") and event.get("outputs")):
                continue
            out = event["outputs"][0]
            graph = api.get(
                "/api/v1/lineage",
                params={"nodeId": f"dataset:{out['namespace']}:{out['name']}", "depth": 10},
                headers=bearer(tokens["viewer"]),
            ).json()
            ids = {n["id"] for n in graph["nodes"]}
            job = event["job"]
            assert f"job:{job['namespace']}:{job['name']}" in ids
            assert {f"dataset:{i['namespace']}:{i['name']}" for i in event["inputs"]} <= ids
            checked += 1
        assert checked >= 4, "the template chains jobs through datasets"


def test_the_openlineage_python_client_reports_a_three_job_pipeline(tmp_path, monkeypatch):
    from openlineage.client import OpenLineageClient
    from openlineage.client.event_v2 import Dataset, Job, Run, RunEvent, RunState
    from openlineage.client.uuid import generate_new_uuid

    home = init_home(tmp_path / ".datatrail")
    tokens = issue_tokens(home, ("producer", "viewer"))
    app = create_app(home)
    with live_server(app) as base:
        for name in ("OPENLINEAGE_CONFIG", "OPENLINEAGE_ENDPOINT", "OPENLINEAGE_DISABLED"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("OPENLINEAGE_URL", base)
        monkeypatch.setenv("OPENLINEAGE_API_KEY", tokens["producer"])
        ol = OpenLineageClient()
        producer = "https://example.com/datatrail-tests"
        steps = [
            ("extract", "raw.orders", "stage.orders"),
            ("clean", "stage.orders", "clean.orders"),
        ]
        steps.append(("report", "clean.orders", "mart.report"))
        for job, source, target in steps:
            run = Run(runId=str(generate_new_uuid()))
            for state in (RunState.START, RunState.COMPLETE):
                ol.emit(
                    RunEvent(
                        eventType=state,
                        eventTime=f"2026-01-01T00:00:0{1 if state == RunState.START else 2}Z",
                        run=run,
                        job=Job(namespace="shop", name=job),
                        producer=producer,
                        inputs=[Dataset(namespace="warehouse", name=source)],
                        outputs=[Dataset(namespace="warehouse", name=target)],
                    )
                )
        import httpx

        graph = httpx.get(
            f"{base}/api/v1/lineage",
            params={"nodeId": "dataset:warehouse:mart.report", "depth": 10},
            headers=bearer(tokens["viewer"]),
        ).json()
    ids = {n["id"] for n in graph["nodes"]}
    assert {
        "dataset:warehouse:raw.orders",
        "dataset:warehouse:stage.orders",
        "dataset:warehouse:clean.orders",
        "job:shop:extract",
        "job:shop:clean",
        "job:shop:report",
    } <= ids
