"""Every read through the API and the web UI is an access event: who, what, the decision, why.

Reads are recorded in the background (no commit on the request path), refused
reads by a principal the trail knows are recorded as denials, and the records
survive a store that is away for a while and the server's shutdown.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from tests.test_server_support import bearer, client, issue_tokens

from datatrail.server import ROUTES, create_app, revoke_token
from datatrail.store import Home, init_home, open_store

RUN_ID = "0192f3c4-0000-7000-8000-000000000000"
# Parameters that make each route answer at once (an error is fine: the read is still one).
_PARAMS: dict[str, dict[str, Any]] = {
    "/api/v1/events/stream": {"node": "nonsense"},  # refused before streaming
    "/api/v1/ledger/inclusion": {"index": 0},
    "/api/v1/ledger/consistency": {"old": 1},
    "/api/v1/policies/diff": {"old": 1, "new": 2},
}


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return init_home(tmp_path / ".datatrail")


@pytest.fixture
def tokens(home: Home) -> dict[str, str]:
    return issue_tokens(home)


def _access(home: Home) -> list[dict[str, Any]]:
    store = open_store(home.url)
    try:
        rows = store.query(
            "SELECT subject, data FROM records WHERE topic = 'access' ORDER BY idx", ()
        )
    finally:
        store.close()
    return [{"subject": subject, **json.loads(data)} for subject, data in rows]


def _get(c: TestClient, path: str, token: str | None, **params: Any) -> int:
    headers = bearer(token) if token else {}
    return c.get(path, params=params, headers=headers).status_code


def _read_routes() -> list[str]:
    return [r.path for r in ROUTES if r.method == "GET" and not r.public]


def test_every_authenticated_get_route_records_an_access_event(home, tokens):
    with client(home) as c:
        for path in _read_routes():
            params = _PARAMS.get(path, {"nodeId": "dataset:test:nothing"})
            _get(c, path.replace("{runId}", RUN_ID), tokens["admin"], **params)
        c.app.state.access.flush()
    logged = {r["route"] for r in _access(home) if r["principal"] == "admin-user"}
    missing = [p for p in _read_routes() if f"GET {p}" not in logged]
    assert not missing, f"GET routes that did not record their read: {missing}"


def test_a_read_names_principal_route_node_decision_and_purpose(home, tokens):
    node = "dataset:warehouse:orders"
    with client(home) as c:
        status = _get(c, "/api/v1/lineage", tokens["viewer"], nodeId=node, purpose="audit-42")
        c.app.state.access.flush()
    (record,) = [r for r in _access(home) if r.get("route") == "GET /api/v1/lineage"]
    assert record["subject"] == node and record["resource"] == node
    assert record["principal"] == "viewer-user" and record["role"] == "viewer"
    assert record["outcome"] == "allow" and record["decided_by"] == "role"
    assert record["rules"] == ["role:viewer"] and record["action"] == "view"
    assert record["purpose"] == "audit-42" and record["via"] == "api"
    assert record["status"] == status == 404  # allowed to ask; the node is not there


def test_a_run_read_is_about_the_run(home, tokens):
    with client(home) as c:
        _get(c, f"/api/v1/runs/{RUN_ID}", tokens["viewer"])
        c.app.state.access.flush()
    (record,) = [r for r in _access(home) if r.get("route") == "GET /api/v1/runs/{runId}"]
    assert record["subject"] == f"run:{RUN_ID}"


def test_a_role_refusal_is_recorded_as_a_denial_with_its_reason(home, tokens):
    with client(home) as c:
        assert _get(c, "/api/v1/lineage", tokens["producer"], nodeId="dataset:a:b") == 403
        c.app.state.access.flush()
    (record,) = [r for r in _access(home) if r["principal"] == "producer-user"]
    assert record["outcome"] == "deny" and record["status"] == 403
    assert "has role producer" in record["reason"] and record["rules"] == []
    assert record["subject"] == "dataset:a:b"


def test_a_revoked_token_is_recorded_but_a_stranger_is_not(home, tokens):
    store = open_store(home.url, signer=home.signer())
    try:
        token_id = tokens["viewer"].split("_")[1]
        revoke_token(store, token_id)
    finally:
        store.close()
    with client(home, token_cache_seconds=0) as c:
        assert _get(c, "/api/v1/datasets", tokens["viewer"]) == 401
        assert _get(c, "/api/v1/datasets", "dtk_0000000000000000_made-up") == 401
        assert _get(c, "/api/v1/datasets", None) == 401
        c.app.state.access.flush()
    records = _access(home)
    assert [(r["principal"], r["outcome"], r["status"]) for r in records] == [
        ("viewer-user", "deny", 401)
    ]
    assert "revoked" in records[0]["reason"]


def test_a_governed_data_read_is_recorded_once_by_governance(home, tokens):
    with client(home) as c:
        # No such dataset: the governed read stops before deciding, so the route records it.
        _get(c, "/api/v1/dataset/data", tokens["viewer"], nodeId="dataset:file:/nope")
        c.app.state.access.flush()
    (record,) = _access(home)
    assert record["route"] == "GET /api/v1/dataset/data" and record["status"] == 404


def test_web_pages_record_reads_and_refusals(home, tokens):
    app = create_app(home)
    c = TestClient(app, follow_redirects=False)
    c.cookies.set("datatrail_token", tokens["viewer"])
    assert c.get("/ui/lineage", params={"node": "dataset:a:b"}).status_code in (200, 404)
    assert c.get("/ui/audit").status_code == 403
    c.cookies.set("datatrail_token", "dtk_0000000000000000_made-up")
    assert c.get("/ui/").status_code == 401
    app.state.access.flush()
    got = [(r["route"], r["outcome"], r["subject"], r["via"]) for r in _access(home)]
    assert got == [
        ("GET /ui/lineage", "allow", "dataset:a:b", "ui"),
        ("GET /ui/audit", "deny", None, "ui"),
    ]
    app.state.access.close()


def test_a_read_adds_no_commit_to_its_request(home, tokens):
    app = create_app(home)
    c = TestClient(app)
    # Another writer holds the store's write lock: a request that committed would wait for it.
    blocker = sqlite3.connect(home.path / "trail.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        assert _get(c, "/api/v1/datasets", tokens["viewer"]) == 200
        assert _get(c, "/api/v1/jobs", tokens["viewer"]) == 200
        assert _access(home) == []  # answered, not yet recorded
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    app.state.access.flush()
    assert [r["route"] for r in _access(home)] == ["GET /api/v1/datasets", "GET /api/v1/jobs"]
    app.state.access.close()


def test_records_wait_on_disk_while_the_store_is_away_and_arrive_later(home, tokens):
    app = create_app(home)
    c = TestClient(app)
    db = home.path / "trail.db"
    away = db.with_name("trail.db.away")
    db.rename(away)  # the server keeps its open connection; the writer cannot open one
    try:
        assert _get(c, "/api/v1/datasets", tokens["viewer"]) == 200
        result = app.state.access.flush()
        assert result.spilled == 1 and result.dropped == 0
        spilled = list(app.state.access.spill_dir.glob("spill-*.jsonl"))
        assert len(spilled) == 1 and b'"topic":"access"' in spilled[0].read_bytes()
    finally:
        away.rename(db)
    result = app.state.access.flush()
    assert result.spilled == 0
    assert [r["route"] for r in _access(home)] == ["GET /api/v1/datasets"]
    assert not list(app.state.access.spill_dir.glob("spill-*.jsonl"))
    app.state.access.close()


def test_shutting_the_server_down_makes_every_record_durable(home, tokens):
    with client(home) as c:
        for _ in range(25):
            _get(c, "/api/v1/datasets", tokens["viewer"])
        # no flush: the lifespan's end must append what is queued
    assert len(_access(home)) == 25


def test_every_web_page_records_its_read(home, tokens):
    from starlette.routing import Route

    from datatrail.server._ui import ui_routes

    pages = [
        r.path
        for r in ui_routes()
        if isinstance(r, Route)
        and "GET" in (r.methods or ())
        and r.path.startswith("/ui/")
        and r.path != "/ui/login"
    ]
    app = create_app(home)
    c = TestClient(app, follow_redirects=False)
    c.cookies.set("datatrail_token", tokens["admin"])
    for path in pages:
        c.get(path.replace("{run_id}", RUN_ID), params={"id": "dataset:a:b", "node": "dataset:a:b"})
    app.state.access.flush()
    logged = {r["route"] for r in _access(home)}
    missing = [p for p in pages if f"GET {p}" not in logged]
    assert not missing, f"pages that did not record their read: {missing}"
    app.state.access.close()
