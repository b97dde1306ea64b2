"""Governance and retention routes: holds, the access log, policies; each calls the real package."""

from __future__ import annotations

import pytest
from tests.test_server_support import bearer, client, demo_home, issue_tokens

from datatrail.model import Record, now_ts, uuid7
from datatrail.store import open_store


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return demo_home(tmp_path_factory.mktemp("gov") / "demo")


@pytest.fixture(scope="module")
def tokens(home):
    return issue_tokens(home)


@pytest.fixture(scope="module")
def api(home):
    with client(home) as c:
        yield c


@pytest.fixture(scope="module")
def report(api, tokens):
    (found,) = api.get(
        "/api/v1/datasets", params={"q": "report"}, headers=bearer(tokens["viewer"])
    ).json()
    return found["node_id"]


def test_a_hold_placed_over_http_is_listed_and_released(api, tokens, report):
    body = {"node": report, "case": "CASE-7", "reason": "litigation"}
    placed = api.post("/api/v1/holds", json=body, headers=bearer(tokens["auditor"]))
    assert placed.status_code == 200, placed.text
    assert placed.json()["by"] == "auditor-user"
    listed = api.get("/api/v1/holds", headers=bearer(tokens["viewer"])).json()
    assert [(h["node"], h["case"]) for h in listed] == [(report, "CASE-7")]
    released = api.post("/api/v1/holds/release", json=body, headers=bearer(tokens["auditor"]))
    assert released.status_code == 200 and released.json()["released"]
    assert api.get("/api/v1/holds", headers=bearer(tokens["viewer"])).json() == []
    everything = api.get("/api/v1/holds", params={"all": "true"}, headers=bearer(tokens["viewer"]))
    assert len(everything.json()) == 1


def test_a_hold_body_missing_a_field_points_at_it(api, tokens, report):
    response = api.post(
        "/api/v1/holds", json={"node": report, "case": "X"}, headers=bearer(tokens["auditor"])
    )
    assert response.status_code == 400 and response.json()["error"]["pointer"] == "/reason"


def test_the_access_log_filters_by_principal_and_outcome(api, tokens, home, report):
    store = open_store(home.url, signer=home.signer())
    try:
        store.append(
            [
                Record(
                    id=uuid7(),
                    ts=now_ts(),
                    topic="access",
                    subject=report,
                    data={"principal": who, "action": "read", "outcome": outcome},
                )
                for who, outcome in (("ann", "allow"), ("bob", "deny"), ("ann", "deny"))
            ]
        )
    finally:
        store.close()
    headers = bearer(tokens["auditor"])
    log = api.get("/api/v1/access", params={"principal": "ann"}, headers=headers).json()
    assert [e["outcome"] for e in log] == ["deny", "allow"]
    denied = api.get("/api/v1/access", params={"outcome": "deny"}, headers=headers).json()
    assert {e["principal"] for e in denied} == {"ann", "bob"}
    assert all(e["node"] == report for e in denied)


def test_no_policy_yet_is_a_404_and_versions_are_empty(api, tokens):
    headers = bearer(tokens["policy-admin"])
    assert api.get("/api/v1/policies/current", headers=headers).status_code == 404
    assert api.get("/api/v1/policies/versions", headers=headers).json() == []


def test_a_policy_that_does_not_parse_is_refused_with_its_location(api, tokens):
    response = api.post(
        "/api/v1/policies/apply",
        json={"content": "version: 1\naccess: [[[\n", "reason": "try"},
        headers=bearer(tokens["policy-admin"]),
    )
    assert response.status_code == 400
    assert "<request body>" in response.json()["error"]["message"]
