"""Tokens and roles: every route refuses the unauthenticated and the wrong role (acceptance 5)."""

from __future__ import annotations

import json
import logging
import re

import pytest
from tests.test_server_support import bearer, client, issue_tokens
from typer.testing import CliRunner

from datatrail.cli import app as cli
from datatrail.model import from_json
from datatrail.server import ROLES, ROUTES, create_token, list_tokens, revoke_token
from datatrail.server._auth import COOKIE, parse_expires
from datatrail.store import init_home, open_store

runner = CliRunner()


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return init_home(tmp_path_factory.mktemp("auth") / ".datatrail")


@pytest.fixture(scope="module")
def tokens(home):
    return issue_tokens(home)


@pytest.fixture(scope="module")
def api(home):
    with client(home, token_cache_seconds=0) as c:
        yield c


def _example_path(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "0192f3c4-0000-7000-8000-000000000000", path)


def test_tokens_are_stored_as_sha256_records_only(home, tokens):
    store = open_store(home.url)
    try:
        rows = store.query("SELECT subject, data FROM records WHERE topic = 'token.created'")
        raw = json.dumps([r[1] for r in rows])
    finally:
        store.close()
    assert len(rows) >= len(ROLES)
    for token in tokens.values():
        assert token not in raw
        assert token.split("_", 2)[2] not in raw
    data = from_json(rows[0][1])
    assert data["hash"].startswith("sha256:") and len(data["hash"]) == 7 + 64
    assert rows[0][0] == f"token:{data['token_id']}"


@pytest.mark.parametrize("route", [r for r in ROUTES if not r.public], ids=lambda r: r.name)
def test_every_route_refuses_requests_without_a_token(api, route):
    response = api.request(route.method, _example_path(route.path))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("route", [r for r in ROUTES if not r.public], ids=lambda r: r.name)
def test_every_route_refuses_a_forged_token(api, tokens, route):
    real = tokens["admin"]
    forged = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    response = api.request(route.method, _example_path(route.path), headers=bearer(forged))
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("route", "role"),
    [
        (r, role)
        for r in ROUTES
        if r.roles and not r.public
        for role in ROLES
        if role != "admin" and role not in r.roles
    ],
    ids=lambda v: v if isinstance(v, str) else v.name,
)
def test_every_route_refuses_roles_it_does_not_list(api, tokens, route, role):
    response = api.request(route.method, _example_path(route.path), headers=bearer(tokens[role]))
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "forbidden"
    assert "admin" in error["required_roles"] and role not in error["required_roles"]


def test_roles_are_checked_before_parameters(api, tokens):
    # a producer asking for lineage without nodeId learns nothing about the route's parameters
    response = api.get("/api/v1/lineage", headers=bearer(tokens["producer"]))
    assert response.status_code == 403


def test_healthz_needs_no_token(api):
    response = api.get("/healthz")
    assert response.status_code == 200 and response.json()["ok"] is True


def test_the_ui_cookie_authenticates_like_the_header(api, tokens):
    api.cookies.set(COOKIE, tokens["viewer"])
    try:
        response = api.get("/api/v1/me")
    finally:
        api.cookies.clear()
    assert response.status_code == 200
    assert response.json() == {
        "principal": "viewer-user",
        "role": "viewer",
        "token_id": tokens["viewer"].split("_")[1],
    }


@pytest.mark.parametrize(
    "header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer not-a-token", "Bearer dtk_zz_abc"]
)
def test_malformed_authorization_headers_get_401(api, header):
    response = api.get("/api/v1/me", headers={"Authorization": header})
    assert response.status_code == 401


def test_a_revoked_token_stops_working(home, api):
    store = open_store(home.url, signer=home.signer())
    try:
        token, info = create_token(store, principal="temp", role="viewer")
        assert api.get("/api/v1/me", headers=bearer(token)).status_code == 200
        revoked = revoke_token(store, info.token_id)
        assert revoked.revoked is not None
        listed = {t.token_id: t for t in list_tokens(store)}
        assert listed[info.token_id].revoked == revoked.revoked
    finally:
        store.close()
    response = api.get("/api/v1/me", headers=bearer(token))
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]


def test_an_expired_token_is_refused(home, api):
    store = open_store(home.url, signer=home.signer())
    try:
        token, _ = create_token(store, principal="old", role="viewer", expires="2001-01-01")
    finally:
        store.close()
    response = api.get("/api/v1/me", headers=bearer(token))
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


def test_expiry_spans_and_bad_expiry():
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_expires("30d", now=now) == "2026-01-31T00:00:00.000000Z"
    assert parse_expires("12h", now=now) == "2026-01-01T12:00:00.000000Z"
    assert parse_expires("never") is None
    from datatrail.errors import UsageError

    with pytest.raises(UsageError, match="not understood"):
        parse_expires("soon")
    with pytest.raises(UsageError, match="longer than 0"):
        parse_expires("0d")


def test_unknown_roles_are_refused(home):
    from datatrail.errors import UsageError

    store = open_store(home.url, signer=home.signer())
    try:
        with pytest.raises(UsageError, match="not one of"):
            create_token(store, principal="x", role="superuser")
    finally:
        store.close()


def test_tokens_never_reach_the_logs(home, tokens, caplog):
    caplog.set_level(logging.DEBUG)
    with client(home, token_cache_seconds=0) as c:
        c.get("/api/v1/lineage", params={"nodeId": "nonsense"}, headers=bearer(tokens["viewer"]))
        c.get("/api/v1/me", headers=bearer(tokens["viewer"] + "x"))
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert tokens["viewer"] not in text
    assert tokens["viewer"].split("_", 2)[2] not in text


def test_token_cli_creates_lists_and_revokes(home):
    trail = str(home.path)
    result = runner.invoke(
        cli,
        [
            "token",
            "create",
            "--principal",
            "ci",
            "--role",
            "producer",
            "--expires",
            "7d",
            "--trail",
            trail,
            "--json",
        ],
    )
    assert result.exit_code == 0, result.stderr
    made = json.loads(result.stdout)
    assert made["token"].startswith("dtk_") and made["role"] == "producer" and made["expires"]
    listed = runner.invoke(cli, ["token", "list", "--trail", trail, "--json"])
    rows = {t["token_id"]: t for t in json.loads(listed.stdout)}
    assert rows[made["token_id"]]["principal"] == "ci"
    assert made["token"] not in listed.stdout
    revoked = runner.invoke(cli, ["token", "revoke", made["token_id"], "--trail", trail, "--json"])
    assert revoked.exit_code == 0 and json.loads(revoked.stdout)["revoked"]
    again = runner.invoke(cli, ["token", "revoke", made["token_id"], "--trail", trail])
    assert again.exit_code == 2 and "already revoked" in again.stderr


def test_token_cli_rejects_a_bad_role(home):
    result = runner.invoke(
        cli, ["token", "create", "--principal", "x", "--role", "root", "--trail", str(home.path)]
    )
    assert result.exit_code == 2 and "not one of" in result.stderr
