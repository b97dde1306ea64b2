"""The demo pipeline governed end to end: classify, read (masked / denied), limit, hold, retention,
erase with cascade; then the trail verifies and the compliance report shows every one of those facts.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from datatrail.audit import verify
from datatrail.demo import run_demo
from datatrail.errors import PolicyDenied
from datatrail.governance import apply_policy, classifications_of, classify, parse_policy, read
from datatrail.ledger import load_verifier
from datatrail.model import format_ts
from datatrail.retention import (
    add_hold,
    apply,
    compliance_report,
    erase_data,
    plan,
    render_html,
    verify_certificate,
)
from datatrail.store import Home, open_store

POLICY = """
classifications:
  pii:
    description: personal data
roles:
  analyst: {}
  policy-admin: {}
principals:
  ana: {roles: [analyst]}
  admin: {roles: [policy-admin]}
datasets:
  - match: {namespace: file, name: "*/raw/customers.csv"}
    owners: [privacy-team]
    columns:
      email: [pii]
      name: [pii]
access:
  - id: analysts-investigate
    effect: allow
    actions: [read]
    roles: [analyst]
    when: {purpose: [fraud-investigation]}
    masks:
      classifications: {pii: hash}
limits:
  - id: analyst-daily
    roles: [analyst]
    window: 1d
    rows: 300
retention:
  - id: raw-90d
    match: {namespace: file, name: "*/raw/*"}
    delete_after: 90d
"""

LATER = 100  # days: every raw file is past raw-90d by then


@pytest.fixture(scope="module")
def governed(tmp_path_factory):
    demo = run_demo(tmp_path_factory.mktemp("e2e") / "demo")
    trail_dir = Path(demo.trail)
    home = Home(path=trail_dir, url=f"sqlite:///{trail_dir / 'trail.db'}")
    store = open_store(home.url, signer=home.signer())
    apply_policy(store, parse_policy(POLICY), principal="admin", reason="govern the demo")
    yield demo, home, store
    store.close()


def _raw(demo, name: str) -> str:
    return f"dataset:file:{Path(demo.directory) / 'raw' / name}"


def test_the_demo_governed_end_to_end(governed):
    demo, home, store = governed
    customers = _raw(demo, "customers.csv")
    report = f"dataset:file:{demo.report}"

    # 1. classify a raw input pii, and watch the label reach the report through lineage
    classify(store, customers, "pii", reason="holds names and emails", by="privacy-officer")
    path = classifications_of(store, report)["pii"]
    assert path[0] == customers and path[-1] == report

    # 2. read it as an analyst: without a purpose denied, with one the pii columns masked
    with pytest.raises(PolicyDenied):
        read(customers, principal="ana", home=home)
    frame = read(customers, principal="ana", purpose="fraud-investigation", home=home)
    assert len(frame) == 200
    assert not frame["email"].astype(str).str.contains("@example.com").any()
    assert set(frame["region"]) <= {"north", "south", "east", "west"}  # unlabelled, unmasked

    # 3. a second read would exceed the analyst's 300 rows a day
    with pytest.raises(PolicyDenied, match=r"analyst-daily|300"):
        read(customers, principal="ana", purpose="fraud-investigation", home=home)

    # 4. a legal hold on the products file, then retention as of 100 days later
    products = _raw(demo, "products.csv")
    add_hold(store, products, case="LEGAL-7", reason="supplier dispute", by="counsel")
    later = format_ts(time.time_ns() + LATER * 86_400 * 1_000_000_000)
    planned = plan(store, now=later)
    by_dataset = {d.dataset: d for d in planned.items}
    assert by_dataset[products].status == "held"
    assert by_dataset[customers].status == "due" and by_dataset[customers].labels == ["pii"]
    assert planned.policy_version == 1
    applied = apply(store, now=later, by="retention-bot")
    deleted = {a.dataset for a in applied.applied if a.storage == "deleted"}
    assert deleted == {customers, _raw(demo, "orders.csv")}
    assert not (Path(demo.directory) / "raw" / "customers.csv").exists()
    assert (Path(demo.directory) / "raw" / "products.csv").exists()
    assert apply(store, now=later).applied == []  # idempotent

    # 5. erase the customers' data with everything downstream of it, with a certificate
    result = erase_data(
        store,
        customers,
        signer=home.signer(),
        reason="GDPR erasure request 2026-114",
        cascade=True,
        by="privacy-officer",
        forget_lineage=True,
    )
    body = verify_certificate(result.certificate, load_verifier(home.verifier_key), store=store)
    erased_datasets = {a["dataset"] for a in body["artifacts"]}
    assert report in erased_datasets and not Path(demo.report).exists()
    assert body["erased_events"], "the closure's io payloads were erased"

    # 6. the trail still verifies, erasures accounted for by their receipts
    check = verify(store)
    assert check.ok, check.first_fault
    assert {e.index for e in check.erased} >= set(body["erased_events"])

    # 7. the compliance report shows each fact
    rep = compliance_report(store, verifier=load_verifier(home.verifier_key))
    assert rep.ledger["ok"] is True and rep.ledger["erased_entries"] >= len(body["erased_events"])
    assert any(c["label"] == "pii" and c["node"] == customers for c in rep.classification_changes)
    denied = rep.denied_accesses
    assert {d["principal"] for d in denied} == {"ana"} and len(denied) == 2
    assert any(
        "300" in (d["reason"] or "") or "analyst-daily" in (d["rules"] or []) for d in denied
    )
    assert [(h["node"], h["case"]) for h in rep.holds] == [(products, "LEGAL-7")]
    purged = {(p["dataset"], p["action"]) for p in rep.purges}
    assert (customers, "delete") in purged and (report, "erase") in purged
    assert [c["id"] for c in rep.certificates] == [body["id"]]
    assert [p["version"] for p in rep.policy_changes] == [1]
    page = render_html(rep)
    assert "LEGAL-7" in page and "GDPR erasure request 2026-114" in page and "verified" in page
