"""The query, ledger and meta routes over a trail holding the demo pipeline; errors; OpenAPI; SSE."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading

import httpx
import pytest
from tests.test_server_support import bearer, client, demo_home, issue_tokens, live_server

from datatrail.audit import verify_bundle
from datatrail.ledger import load_verifier, open_checkpoint, verify_consistency, verify_inclusion
from datatrail.model import Record, now_ts, uuid7
from datatrail.server import ROUTES, create_app
from datatrail.store import open_store


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return demo_home(tmp_path_factory.mktemp("api") / "demo")


@pytest.fixture(scope="module")
def tokens(home):
    return issue_tokens(home)


@pytest.fixture(scope="module")
def api(home, tokens):
    with client(home) as c:
        c.headers.update(bearer(tokens["viewer"]))
        yield c


@pytest.fixture(scope="module")
def report(api):
    (found,) = list(api.get("/api/v1/datasets", params={"q": "report"}).json())
    return found


def test_datasets_list_names_versions_and_filters(api, report):
    everything = api.get("/api/v1/datasets").json()
    assert len(everything) > len([report])
    assert report["versions"] == 1 and report["node_id"].endswith("report.csv")
    assert api.get("/api/v1/datasets", params={"q": "no-such-thing"}).json() == []
    page = api.get("/api/v1/datasets", params={"limit": 2, "offset": 1}).json()
    assert [d["node_id"] for d in page] == [d["node_id"] for d in everything[1:3]]


def test_search_wildcards_are_literal(api):
    assert api.get("/api/v1/search", params={"q": "%"}).json() == []
    hits = api.get("/api/v1/search", params={"q": "REPORT"}).json()
    assert {h["kind"] for h in hits} >= {"dataset", "job"}


def test_lineage_of_the_report_reaches_the_raw_files(api, report):
    graph = api.get("/api/v1/lineage", params={"nodeId": report["node_id"], "depth": 20}).json()
    assert graph["root"] == report["node_id"] and graph["direction"] == "upstream"
    names = {n["id"] for n in graph["nodes"]}
    assert any(n.endswith("raw/orders.csv") for n in names)
    assert all(e["source"] in names and e["target"] in names for e in graph["edges"])
    shallow = api.get("/api/v1/lineage", params={"nodeId": report["node_id"], "depth": 1}).json()
    assert len(shallow["nodes"]) < len(graph["nodes"])


def test_downstream_lineage_of_a_raw_file_reaches_the_report(api):
    (orders,) = api.get("/api/v1/datasets", params={"q": "raw/orders.csv"}).json()
    graph = api.get(
        "/api/v1/lineage", params={"nodeId": orders["node_id"], "direction": "downstream"}
    ).json()
    assert any(n["id"].endswith("report.csv") for n in graph["nodes"])


def test_dataset_detail_versions_and_artifact(api, report):
    detail = api.get("/api/v1/dataset", params={"nodeId": report["node_id"]}).json()
    assert len(detail["versions"]) == 1
    assert detail["latest"]["artifact_id"] == detail["versions"][0]["artifact_id"]
    assert detail["producers"] and all(p.startswith("job:") for p in detail["producers"])
    versions = api.get("/api/v1/dataset/versions", params={"nodeId": report["node_id"]}).json()
    assert versions == detail["versions"]
    art = api.get("/api/v1/artifact", params={"nodeId": versions[0]["artifact_id"]}).json()
    assert report["node_id"] in art["datasets"] and art["produced_by"]


def test_runs_jobs_and_one_run(api):
    runs = api.get("/api/v1/runs", params={"limit": 100}).json()
    assert len(runs) == 11
    failed = api.get("/api/v1/runs", params={"status": "failed"}).json()
    assert failed == []
    one = api.get(f"/api/v1/runs/{runs[0]['run_id']}").json()
    assert one["run_id"] == runs[0]["run_id"] and "environment" in one
    jobs = api.get("/api/v1/jobs").json()
    assert sum(j["runs"] for j in jobs) == 11
    assert all(j["last_run"] for j in jobs)


def test_explain_follows_the_report_back(api, report):
    explained = api.get("/api/v1/explain", params={"nodeId": report["node_id"]}).json()
    assert explained["produced_by"] and explained["produced_by"][0]["inputs"]


@pytest.mark.parametrize(
    ("path", "params", "status", "field"),
    [
        ("/api/v1/lineage", {}, 400, "nodeId"),
        ("/api/v1/lineage", {"nodeId": "dataset:file:/nope"}, 404, None),
        ("/api/v1/lineage", {"nodeId": "what"}, 400, None),
        ("/api/v1/lineage", {"nodeId": "job:a:b", "depth": "-1"}, 400, "depth"),
        ("/api/v1/lineage", {"nodeId": "job:a:b", "depth": "ten"}, 400, "depth"),
        ("/api/v1/lineage", {"nodeId": "job:a:b", "direction": "sideways"}, 400, "direction"),
        ("/api/v1/runs", {"since": "yesterday-ish"}, 400, None),
        ("/api/v1/runs/not-a-run", {}, 404, None),
        ("/api/v1/dataset", {"nodeId": "job:a:b"}, 400, None),
        ("/api/v1/search", {"q": ""}, 400, "q"),
        ("/api/v1/explain", {"nodeId": "job:x:y"}, 404, None),
    ],
)
def test_bad_requests_get_json_errors_naming_the_problem(api, path, params, status, field):
    response = api.get(path, params=params)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] and error["message"]
    if field is not None:
        assert error["parameter"] == field


def test_unknown_routes_get_the_json_error_shape(api):
    response = api.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# -- ledger ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def auditor(home, tokens):
    with client(home) as c:
        c.headers.update(bearer(tokens["auditor"]))
        yield c


def test_checkpoint_verifies_with_the_trail_key(api, home):
    cp = api.get("/api/v1/ledger/checkpoint").json()
    opened = open_checkpoint(cp["note"], load_verifier(home.verifier_key))
    assert opened.size == cp["size"] and opened.root.hex() == cp["root"]
    assert cp["verifier_key"] == home.verifier_key.read_text().strip()


def test_inclusion_and_consistency_proofs_verify(auditor):
    size = auditor.get("/api/v1/ledger/checkpoint").json()["size"]
    for index in (0, size // 2, size - 1):
        p = auditor.get("/api/v1/ledger/inclusion", params={"index": index}).json()
        assert verify_inclusion(
            bytes.fromhex(p["leaf_hash"]),
            index,
            p["size"],
            [bytes.fromhex(h) for h in p["proof"]],
            bytes.fromhex(p["root"]),
        )
    c = auditor.get("/api/v1/ledger/consistency", params={"old": 3, "new": size}).json()
    assert verify_consistency(
        3,
        size,
        bytes.fromhex(c["old_root"]),
        bytes.fromhex(c["new_root"]),
        [bytes.fromhex(h) for h in c["proof"]],
    )
    # Far past the end: each read above appended its access event meanwhile.
    bad = auditor.get("/api/v1/ledger/inclusion", params={"index": size + 10**6})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "proof_error"


def test_audit_bundle_of_the_report_verifies_offline(auditor, home, report):
    import msgspec

    from datatrail.audit import Bundle

    response = auditor.get("/api/v1/ledger/bundle", params={"nodeId": report["node_id"]})
    assert response.status_code == 200
    bundle = msgspec.convert(response.json(), Bundle)
    result = verify_bundle(bundle, load_verifier(home.verifier_key))
    assert result.ok and bundle.events


# -- OpenAPI --------------------------------------------------------------------------


def test_openapi_documents_every_route_with_its_errors(api):
    spec = api.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    for route in ROUTES:
        op = spec["paths"][route.path][route.method.lower()]
        codes = set(op["responses"])
        assert str(route.status) in codes
        if not route.public:
            assert {"401", "403"} <= codes and op["security"]
        for param in route.params:
            assert param.name in {p["name"] for p in op.get("parameters", [])}
        for code in codes - {str(route.status)}:
            schema = op["responses"][code]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}
    assert set(spec["paths"]) == {r.path for r in ROUTES}


# -- bodies ---------------------------------------------------------------------------


def test_bodies_over_the_limit_get_413_even_gzipped(home, tokens):
    with client(home, max_body=1000) as c:
        c.headers.update(bearer(tokens["producer"]))
        big = c.post("/api/v1/lineage", content=b"x" * 2000)
        assert big.status_code == 413 and big.json()["error"]["limit"] == 1000
        bomb = gzip.compress(b"[" + b" " * 100_000 + b"]")
        assert len(bomb) < 1000
        response = c.post(
            "/api/v1/lineage/batch", content=bomb, headers={"Content-Encoding": "gzip"}
        )
        assert response.status_code == 413


def test_bad_gzip_and_bad_json_get_400(home, tokens):
    with client(home) as c:
        c.headers.update(bearer(tokens["producer"]))
        response = c.post(
            "/api/v1/lineage", content=b"not gzip", headers={"Content-Encoding": "gzip"}
        )
        assert response.status_code == 400 and response.json()["error"]["code"] == "bad_gzip"
        response = c.post("/api/v1/lineage", content=b"{nope")
        assert response.status_code == 400 and response.json()["error"]["pointer"] == ""
        response = c.post("/api/v1/lineage", content=b"x", headers={"Content-Encoding": "br"})
        assert response.status_code == 415


# -- live events ----------------------------------------------------------------------


def _append_record(home, topic: str, subject: str | None) -> None:
    store = open_store(home.url, signer=home.signer())
    try:
        store.append([Record(id=uuid7(), ts=now_ts(), topic=topic, subject=subject, data={"n": 1})])
    finally:
        store.close()


def test_event_stream_sends_new_entries_filtered_by_kind_and_node(home, tokens):
    app = create_app(home, poll_interval=0.05)
    received: list[dict] = []
    ready = threading.Event()
    with live_server(app) as base:

        def listen() -> None:
            with (
                httpx.Client(base_url=base, timeout=20) as http,
                http.stream(
                    "GET",
                    "/api/v1/events/stream",
                    params={"kind": "alert", "node": "dataset:file:/watched", "limit": 2},
                    headers=bearer(tokens["viewer"]),
                ) as response,
            ):
                assert response.headers["content-type"].startswith("text/event-stream")
                ready.set()
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        received.append(json.loads(line[6:]))

        thread = threading.Thread(target=listen)
        thread.start()
        assert ready.wait(20)
        _append_record(home, "alert", "dataset:file:/elsewhere")  # other node
        _append_record(home, "access", "dataset:file:/watched")  # other kind
        _append_record(home, "alert", "dataset:file:/watched")
        _append_record(home, "alert", "dataset:file:/watched")
        thread.join(timeout=20)
    assert not thread.is_alive()
    assert [e["event"]["topic"] for e in received] == ["alert", "alert"]
    assert all(e["event"]["subject"] == "dataset:file:/watched" for e in received)
    assert received[0]["index"] < received[1]["index"]


def test_event_stream_resumes_after_last_event_id(home, tokens):
    size = open_store(home.url).size()
    _append_record(home, "alert", "dataset:file:/resume")
    app = create_app(home, poll_interval=0.05)
    with (
        live_server(app) as base,
        httpx.Client(base_url=base, timeout=20) as http,
        http.stream(
            "GET",
            "/api/v1/events/stream",
            params={"limit": 1},
            headers={**bearer(tokens["viewer"]), "Last-Event-ID": str(size - 1)},
        ) as response,
    ):
        lines = [ln for ln in response.iter_lines() if ln.startswith("id: ")]
    assert lines == [f"id: {size}"]


def test_event_stream_rejects_a_bad_node_before_streaming(api):
    response = api.get("/api/v1/events/stream", params={"node": "nonsense"})
    assert response.status_code == 400


def test_the_serving_process_tunes_its_collector_but_a_library_caller_keeps_its_own(home, tmp_path):
    script = (
        "import gc, json\n"
        "from datatrail.server import create_app\n"
        "from datatrail.server._app import app_from_env\n"
        "before = gc.get_threshold()\n"
        f"create_app({str(home.path)!r})\n"
        "library = gc.get_threshold()\n"
        "app_from_env()\n"
        "print(json.dumps([before, library, gc.get_threshold(), gc.get_freeze_count()]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "DATATRAIL_SERVE_TRAIL": str(home.path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    before, library, serving, frozen = json.loads(done.stdout.strip().splitlines()[-1])
    assert library == before  # building the app in someone's process changes nothing
    assert serving == [20_000, 10, 10]
    assert frozen > 0
