"""The web catalog over HTTP: sign-in, roles, escaping, and what each page shows.

One trail for the module: the demo pipeline, a failing step, a run whose name
and parameters are markup, and governance facts (policy versions, access
events, holds, alerts) appended as the records their owners write. Browser
tests (tests/test_ui_browser.py) reuse :func:`build_site`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

import datatrail
from datatrail.audit import read_bundle, verify_bundle
from datatrail.demo import DemoResult, run_demo
from datatrail.governance import apply_policy, parse_policy
from datatrail.model import Actor, Record, now_ts, uuid7
from datatrail.server import create_app, create_token

EVIL_JOB = "<img src=x onerror=alert(1)>"
EVIL_PARAM = "<script>alert('p')</script>"

POLICY_V1 = """\
version: 1
classifications:
  pii: {description: personal data}
datasets:
  - match: {namespace: file, name: "*/raw/customers.csv"}
    classifications: [pii]
    owners: [dana]
    columns: {email: [pii]}
roles:
  analyst: {}
  policy-admin: {}
principals:
  pat: {roles: [policy-admin]}
  viewer-user: {roles: [analyst]}
  admin-user: {roles: [analyst]}
access:
  - id: analysts-read
    effect: allow
    actions: [read]
    roles: [analyst]
    masks: {columns: {email: redact}}
"""
POLICY_V2 = (
    POLICY_V1
    + """\
retention:
  - id: raw-files
    match: {namespace: file, name: "*/raw/*"}
    keep_at_least: 30d
    delete_after: 365d
"""
)


@dataclass
class Site:
    """A trail with a bit of everything, its app, and one token per role."""

    app: Starlette
    demo: DemoResult
    tokens: dict[str, str]
    failed_run: str
    evil_run: str

    @property
    def report(self) -> str:
        return f"dataset:file:{self.demo.report}"

    @property
    def customers(self) -> str:
        return f"dataset:file:{Path(self.demo.directory) / 'raw' / 'customers.csv'}"

    @property
    def orders(self) -> str:
        return f"dataset:file:{Path(self.demo.directory) / 'raw' / 'orders.csv'}"


def _explode(x: int) -> int:
    raise ValueError(f"boom {x}")


def _record(topic: str, subject: str | None, data: dict[str, Any], user: str = "ops") -> Record:
    return Record(
        id=uuid7(),
        ts=now_ts(),
        topic=topic,
        subject=subject,
        data=data,
        actor=Actor(user=user, host="test"),
    )


def build_site(folder: Path) -> Site:
    """Run the demo into ``folder``, add a failing and a hostile run, governance facts, tokens."""
    from datatrail.capture import shutdown

    demo = run_demo(folder)
    trail_dir = Path(demo.trail)
    datatrail.configure(home=trail_dir)
    try:
        explode = datatrail.track(_explode)
        with (
            datatrail.run(EVIL_JOB, params={"note": EVIL_PARAM}),
            pytest.raises(ValueError, match="boom"),
        ):
            explode(3)
        datatrail.flush()
    finally:
        shutdown()
        datatrail.configure(home=None)
    app = create_app(trail_dir)
    store = app.state.store
    report = f"dataset:file:{demo.report}"
    orders = f"dataset:file:{Path(demo.directory) / 'raw' / 'orders.csv'}"

    def access(who: str, outcome: str, node: str, purpose: str | None) -> Record:
        return _record(
            "access",
            node,
            {
                "principal": who,
                "action": "read",
                "purpose": purpose,
                "outcome": outcome,
                "rules": ["r-analysts"] if outcome == "allow" else ["default-deny"],
                "policy_version": 2,
                "reason": f"{outcome} for {who}",
                "rows": 10 if outcome == "allow" else 0,
                "bytes": 100,
                "masked": ["email"] if outcome == "allow" else [],
                "via": "api",
            },
            user=who,
        )

    for text, reason in ((POLICY_V1, "first policy"), (POLICY_V2, "keep raw files a year")):
        apply_policy(store, parse_policy(text), principal="pat", reason=reason)
    store.append(
        [
            _record(
                "classification.set", orders, {"label": "pii", "reason": "has emails", "by": "pat"}
            ),
            _record("hold.added", orders, {"case": "CASE-7", "reason": "litigation", "by": "lee"}),
            _record("hold.added", report, {"case": "CASE-8", "reason": "old", "by": "lee"}),
            _record("hold.released", report, {"case": "CASE-8", "reason": "settled", "by": "lee"}),
            access("ana", "allow", orders, "fraud"),
            access("bob", "deny", orders, None),
            access("bob", "deny", report, None),
            _record(
                "alert",
                "principal:bob",
                {
                    "alert_id": "a1",
                    "kind": "access_volume",
                    "severity": "warning",
                    "message": "bob read 40x his usual volume",
                    "details": {},
                },
            ),
            _record(
                "alert",
                None,
                {
                    "alert_id": "a2",
                    "kind": "lineage_drift",
                    "severity": "info",
                    "message": "acknowledged drift",
                    "details": {},
                },
            ),
            _record("alert.ack", None, {"alert_id": "a2", "by": "lee", "note": "fine"}),
        ]
    )
    tokens = {
        role: create_token(store, principal=f"{role}-user", role=role)[0]
        for role in ("viewer", "producer", "auditor", "policy-admin", "admin")
    }
    trail = app.state.trail
    failed = trail.runs(status="failed", limit=1)[0].run_id
    evil = trail.runs(job=EVIL_JOB, limit=1)[0].run_id
    return Site(app=app, demo=demo, tokens=tokens, failed_run=failed, evil_run=evil)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return build_site(tmp_path_factory.mktemp("ui") / "demo")


def client(site: Site, role: str | None = "admin") -> TestClient:
    c = TestClient(site.app, follow_redirects=False)
    if role is not None:
        c.cookies.set("datatrail_token", site.tokens[role])
    return c


def text_of(html: str) -> str:
    """The visible text of a page, roughly: tags dropped, entities decoded, spaces collapsed."""
    no_tags = re.sub(r"<script.*?</script>|<[^>]+>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(no_tags))


PAGES = (
    "/ui/",
    "/ui/search?q=clean",
    "/ui/lineage",
    "/ui/policies",
    "/ui/audit",
    "/ui/verify",
)


def _node_pages(site: Site) -> list[str]:
    return [
        "/ui/dataset?id=" + site.report,
        f"/ui/run/{site.failed_run}",
        "/ui/bundle?node=" + site.report,
    ]


# -- sign-in and roles ------------------------------------------------------------------------


def test_every_page_without_a_token_is_refused_with_the_sign_in_form(site: Site) -> None:
    c = client(site, role=None)
    for path in (*PAGES, *_node_pages(site)):
        r = c.get(path)
        assert r.status_code == 401, path
        assert 'name="token"' in r.text
        assert site.demo.report_artifact not in r.text  # nothing of the trail leaks


def test_a_bad_cookie_is_refused_and_says_why(site: Site) -> None:
    c = TestClient(site.app, follow_redirects=False)
    c.cookies.set("datatrail_token", "dtk_0000000000000000_nope")
    r = c.get("/ui/")
    assert r.status_code == 401
    assert "not known to this trail" in r.text


def test_a_producer_token_opens_no_page(site: Site) -> None:
    c = client(site, "producer")
    for path in (*PAGES, *_node_pages(site)):
        r = c.get(path)
        assert r.status_code == 403, path
        assert "has role producer" in text_of(r.text)


def test_viewers_browse_but_cannot_audit_or_read_policies(site: Site) -> None:
    c = client(site, "viewer")
    for path in ("/ui/", "/ui/search?q=x", "/ui/lineage", "/ui/dataset?id=" + site.report):
        assert c.get(path).status_code == 200, path
    for path in ("/ui/policies", "/ui/audit", "/ui/verify", "/ui/bundle?node=" + site.report):
        assert c.get(path).status_code == 403, path
    assert c.post("/ui/verify").status_code == 403
    nav = c.get("/ui/").text
    assert 'href="/ui/audit"' not in nav and 'href="/ui/policies"' not in nav


def test_auditors_and_policy_admins_get_their_pages(site: Site) -> None:
    auditor, admin = client(site, "auditor"), client(site, "policy-admin")
    assert auditor.get("/ui/audit").status_code == 200
    assert auditor.get("/ui/policies").status_code == 200
    assert admin.get("/ui/policies").status_code == 200
    assert admin.get("/ui/audit").status_code == 403


def test_sign_in_checks_the_token_and_keeps_it_in_a_strict_http_only_cookie(site: Site) -> None:
    c = client(site, role=None)
    bad = c.post("/ui/login", data={"token": "dtk_0000000000000000_x", "next": "/ui/audit"})
    assert bad.status_code == 401 and "not known" in bad.text
    assert "datatrail_token" not in bad.headers.get("set-cookie", "")
    good = c.post("/ui/login", data={"token": site.tokens["viewer"], "next": "/ui/search?q=a"})
    assert good.status_code == 303
    assert good.headers["location"] == "/ui/search?q=a"
    cookie = good.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert c.get("/ui/").status_code == 200  # the cookie now signs requests in


def test_sign_in_never_redirects_off_site(site: Site) -> None:
    c = client(site, role=None)
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        r = c.post("/ui/login", data={"token": site.tokens["viewer"], "next": target})
        assert r.headers["location"] == "/ui/", target


def test_the_sign_in_form_comes_back_to_the_page_asked_for(site: Site) -> None:
    r = client(site, role=None).get("/ui/search?q=orders")
    assert 'name="next" value="/ui/search?q=orders"' in r.text


def test_sign_out_clears_the_cookie(site: Site) -> None:
    r = client(site).post("/ui/logout")
    assert r.status_code == 303
    assert 'datatrail_token=""' in r.headers["set-cookie"]


# -- escaping ---------------------------------------------------------------------------------


def test_recorded_markup_is_shown_as_text_never_as_markup(site: Site) -> None:
    c = client(site)
    for path in ("/ui/search?q=onerror", f"/ui/run/{site.evil_run}", "/ui/"):
        html = c.get(path).text
        assert EVIL_JOB not in html and EVIL_PARAM not in html, path
        assert "&lt;img src=x onerror=alert(1)&gt;" in html, path
    run_page = text_of(c.get(f"/ui/run/{site.evil_run}").text)
    assert EVIL_PARAM in run_page  # shown, as text


def test_a_search_query_is_echoed_escaped(site: Site) -> None:
    html = client(site).get("/ui/search", params={"q": '"><script>x()</script>'}).text
    assert "<script>x()" not in html
    assert "&#34;&gt;&lt;script&gt;x()" in html


# -- pages ------------------------------------------------------------------------------------


def test_home_counts_match_the_store_and_lists_the_failed_run(site: Site) -> None:
    c = client(site)
    site.app.state.access.flush()  # no earlier read's access event lands while we compare
    store = site.app.state.store
    size = store.latest_checkpoint().size
    html = c.get("/ui/").text
    for table in ("runs", "jobs", "datasets", "artifacts"):
        n = store.query(f"SELECT COUNT(*) FROM {table}")[0][0]
        assert re.search(rf'data-count="{table}"><b>{n:,}</b>', html), table
    failed = html.split('id="failed"', 1)[1]
    assert site.failed_run[:13] in failed
    assert f"{size:,}" in html


def test_search_finds_datasets_jobs_and_runs_case_insensitively(site: Site) -> None:
    c = client(site)
    text = c.get("/ui/search", params={"q": "ORDERS"}).text
    assert site.orders.removeprefix("dataset:") in unescape(text)
    assert "nightly-orders" in text
    by_id = c.get("/ui/search", params={"q": site.failed_run[:18]}).text
    assert f"/ui/run/{site.failed_run}" in by_id
    assert "none" in text_of(c.get("/ui/search", params={"q": "100%_sure"}).text)


def test_run_page_shows_params_code_environment_io_and_the_error(site: Site) -> None:
    trail = site.app.state.trail
    run = trail.run(site.failed_run)
    text = text_of(client(site).get(f"/ui/run/{site.failed_run}").text)
    assert "failed" in text
    assert run.error is not None
    assert f"ValueError: {run.error['message']}" in text
    assert "Traceback" in text and "_explode" in text
    git = (run.code or {}).get("git")
    if git:
        assert git["commit"] in text
        assert ("dirty (uncommitted changes)" if git["dirty"] else "clean") in text
    env = run.environment or {}
    assert env["python"] in text
    assert f"{run.duration_ms:.1f} ms" in text
    parent = trail.run(run.parent_run_id or "")
    parent_text = text_of(client(site).get(f"/ui/run/{parent.run_id}").text)
    assert '"' + EVIL_PARAM + '"' in parent_text  # parameters, JSON-shown


def test_run_page_lists_inputs_and_outputs_with_their_datasets(site: Site) -> None:
    trail = site.app.state.trail
    (nightly,) = trail.runs(job="nightly-orders", limit=1)
    html = client(site).get(f"/ui/run/{nightly.run_id}").text
    outputs = html.split('id="outputs"', 1)[1]
    assert "report.csv" in outputs
    assert "day" in text_of(html) and "2026-11-20" in html


def test_unknown_nodes_and_bad_parameters_get_error_pages(site: Site) -> None:
    c = client(site)
    missing = c.get("/ui/run/0192f3c4-0000-7000-8000-000000000000")
    assert missing.status_code == 404 and "no run" in missing.text
    assert c.get("/ui/dataset?id=dataset:file:/nope").status_code == 404
    assert c.get("/ui/dataset?id=nonsense").status_code == 400
    assert c.get("/ui/dataset").status_code == 400
    deep = c.get("/ui/lineage", params={"node": site.report, "depth": "abc"})
    assert deep.status_code == 400 and "depth must be a whole number" in deep.text


def test_dataset_page_shows_versions_schema_classification_and_holds(site: Site) -> None:
    trail = site.app.state.trail
    c = client(site)
    html = c.get("/ui/dataset", params={"id": site.orders}).text
    text = text_of(html)
    record = trail.dataset("file", site.orders.split(":", 2)[2])
    for v in record.versions:
        assert v["artifact_id"][:19] in html
    latest = trail.artifact(record.versions[-1]["artifact_id"])
    for column, _type in latest.schema or []:
        assert column in text
    assert "pii set by pat" in text and "has emails" in text
    assert "Legal hold CASE-7" in text and "litigation" in text
    report = text_of(c.get("/ui/dataset", params={"id": site.report}).text)
    assert "CASE-8" not in report  # released


def test_lineage_page_embeds_both_directions_for_the_browser(site: Site) -> None:
    r = client(site).get("/ui/lineage", params={"node": site.orders, "depth": "5"})
    assert r.status_code == 200
    raw = re.search(r'id="lineage-data">(.*?)</script>', r.text, re.S)
    assert raw is not None
    graph = json.loads(raw.group(1))
    expect = site.app.state.trail.downstream(site.orders, depth=5)
    assert graph["root"] == site.orders and graph["depth"] == 5
    assert {n[0] for n in graph["down"]["nodes"]} == {n.id for n in expect.nodes}
    assert len(graph["down"]["edges"]) == len(expect.edges)
    assert [n[0] for n in graph["up"]["nodes"]] == [site.orders]  # a raw file: nothing upstream


def test_policies_page_shows_the_active_version_history_and_a_diff(site: Site) -> None:
    from datatrail.governance import active_policy

    c = client(site, "policy-admin")
    active = active_policy(site.app.state.store)
    assert active is not None and active.version == 2
    html = c.get("/ui/policies").text
    text = text_of(html)
    assert f'id="active-version">{active.version}<' in html
    assert active.explain.splitlines()[0] in text  # the plain-words rendering
    assert "keep raw files a year" in text and "first policy" in text
    diff = c.get("/ui/policies", params={"a": "1", "b": "2"}).text
    assert '<span class="add">+retention:</span>' in diff
    assert '<span class="add">+  - id: raw-files</span>' in diff
    assert '<span class="del">' not in diff.split('id="diff"', 1)[1].split("</pre>", 1)[0]
    assert c.get("/ui/policies", params={"a": "1", "b": "9"}).status_code == 404


def _audit_rows(c: TestClient, **params: str) -> list[tuple[str, str]]:
    html = c.get("/ui/audit", params=params).text
    table = html.split('id="access-table"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'<tr class="outcome-(\w+)"><td[^>]*>[^<]*</td><td>([^<]*)</td>', table)


def test_audit_page_filters_the_access_log(site: Site) -> None:
    c = client(site, "auditor")

    def rows(**params: str) -> list[tuple[str, str]]:
        return _audit_rows(c, action="read", **params)  # data reads; page views are "view"

    assert sorted(rows()) == [("allow", "ana"), ("deny", "bob"), ("deny", "bob")]
    assert rows(principal="ana") == [("allow", "ana")]
    assert rows(outcome="deny") == [("deny", "bob"), ("deny", "bob")]
    assert rows(subject=site.report) == [("deny", "bob")]
    assert rows(purpose="fraud") == [("allow", "ana")]
    assert rows(since="2999-01-01") == []
    assert c.get("/ui/audit", params={"since": "yesterday-ish"}).status_code == 400


def test_page_reads_are_in_the_access_log_as_views(site: Site) -> None:
    client(site, "viewer").get("/ui/dataset", params={"id": site.orders})
    site.app.state.access.flush()
    views = _audit_rows(
        client(site, "auditor"), action="view", principal="viewer-user", subject=site.orders
    )
    assert views and views[0] == ("allow", "viewer-user")


def test_compliance_dashboard_counts_open_holds_denials_and_open_alerts(site: Site) -> None:
    site.app.state.access.flush()  # refused page reads of earlier tests are denials too
    store = site.app.state.store
    denied = sum(
        json.loads(data)["outcome"] == "deny"
        for (data,) in store.query("SELECT data FROM records WHERE topic = 'access'")
    )
    assert denied >= 2  # bob's two, at least
    html = client(site, "auditor").get("/ui/audit").text
    holds = text_of(html.split('id="holds"', 1)[1].split("</div>", 1)[0])
    assert "CASE-7" in holds and "CASE-8" not in holds
    denials = text_of(html.split('id="denials"', 1)[1].split("</div>", 1)[0])
    assert denials.startswith(f"> Denied reads {denied}")
    alerts = text_of(html.split('id="alerts"', 1)[1].split("</div>", 1)[0])
    assert "bob read 40x" in alerts and "acknowledged drift" not in alerts


def test_verifying_from_the_web_records_the_result_and_shows_it(site: Site) -> None:
    c = client(site, "auditor")
    store = site.app.state.store
    site.app.state.access.flush()
    before = store.size()
    r = c.post("/ui/verify")
    assert r.status_code == 303
    (idx, data) = store.query(
        "SELECT idx, data FROM records WHERE topic = 'audit.verify' ORDER BY idx DESC LIMIT 1"
    )[0]
    assert idx == before  # appended to the log, as every fact is
    assert '"ok":true' in data and '"by":"auditor-user"' in data
    text = text_of(c.get("/ui/verify").text)
    assert f"by auditor-user: passed ({before} entries)" in text


def test_audit_bundle_downloads_and_verifies_offline(site: Site, tmp_path: Path) -> None:
    r = client(site, "auditor").get("/ui/bundle", params={"node": site.report})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert "attachment" in r.headers["content-disposition"]
    path = tmp_path / "bundle.json"
    path.write_bytes(r.content)
    home = site.app.state.home
    report = verify_bundle(read_bundle(path), home.verifier_key)
    assert report.ok and report.node == site.report and report.events > 0


def test_static_files_are_served(site: Site) -> None:
    c = client(site, role=None)
    assert "dtLineage" in c.get("/ui/static/lineage.js").text
    assert c.get("/ui/static/app.css").status_code == 200


# -- governance on the dataset page -----------------------------------------------------------


def test_dataset_page_shows_owner_policy_classification_path_and_retention(site: Site) -> None:
    from datatrail.retention import plan

    store = site.app.state.store
    text = text_of(client(site, "viewer").get("/ui/dataset", params={"id": site.customers}).text)
    assert "owner dana" in text and "policy version 2" in text
    assert "pii via dataset:file:" in text  # the path that brought the label
    latest = store.query(
        "SELECT artifact_id FROM run_io WHERE dataset_name = ? ORDER BY idx DESC LIMIT 1",
        (site.customers.split(":", 2)[2],),
    )[0][0]
    (item,) = list(plan(store, artifact=latest, everything=True).items)
    assert item.keep_rule == "raw-files" and item.delete_rule == "raw-files"
    assert f"keep until {item.keep_until[:19].replace('T', ' ')} UTC rule raw-files" in text
    assert f"delete due {item.delete_due[:19].replace('T', ' ')} UTC rule raw-files" in text


def _access_rows(site: Site, principal: str) -> list[str]:
    """The principal's governed data reads (``read``; page views are ``view``)."""
    return [
        str(r[0])
        for r in site.app.state.store.query(
            "SELECT data FROM records WHERE topic = 'access' AND data LIKE ? AND data LIKE ? "
            "ORDER BY idx",
            (f'%"principal":"{principal}"%', '%"action":"read"%'),
        )
    ]


def test_a_preview_goes_through_the_policy_masked_and_recorded(site: Site) -> None:
    import pandas as pd

    raw = pd.read_csv(site.customers.split(":", 2)[2])
    before = len(_access_rows(site, "viewer-user"))
    html = (
        client(site, "viewer")
        .get("/ui/dataset", params={"id": site.customers, "preview": "1", "purpose": "support"})
        .text
    )
    table = html.split('id="preview-table"', 1)[1].split("</table>", 1)[0]
    headers = re.findall(r"<th>([^<]*)</th>", table)
    assert headers == list(raw.columns)
    cells = re.findall(r"<tr>((?:<td>[^<]*</td>)+)</tr>", table)
    rows = [re.findall(r"<td>([^<]*)</td>", c) for c in cells]
    assert len(rows) == 20
    email = headers.index("email")
    assert all(row[email] != raw["email"][i] for i, row in enumerate(rows))
    assert all(row[headers.index("name")] == raw["name"][i] for i, row in enumerate(rows))
    assert "@example.com" not in html  # a masked value never reaches the page
    after = _access_rows(site, "viewer-user")
    assert len(after) == before + 1
    assert '"via":"ui"' in after[-1] and '"masked":["email"]' in after[-1]
    assert '"purpose":"support"' in after[-1]


def test_a_preview_the_policy_refuses_shows_the_reason_and_is_recorded(site: Site) -> None:
    before = len(_access_rows(site, "auditor-user"))
    html = (
        client(site, "auditor")
        .get("/ui/dataset", params={"id": site.customers, "preview": "1"})
        .text
    )
    assert 'id="denied"' in html and "preview-table" not in html
    assert "@example.com" not in html
    after = _access_rows(site, "auditor-user")
    assert len(after) == before + 1 and '"outcome":"deny"' in after[-1]
