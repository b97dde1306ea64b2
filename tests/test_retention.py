"""Retention: the plan and its precedence, apply and its receipts, holds, review, adapters, erasure."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from datatrail.audit import verify
from datatrail.capture._hashing import hash_file
from datatrail.errors import PolicyDenied, UsageError
from datatrail.governance import parse_policy
from datatrail.ledger import load_verifier
from datatrail.model import (
    ArtifactInfo,
    DatasetRef,
    IORecorded,
    JobRef,
    Record,
    RunFinished,
    RunStarted,
    file_dataset,
    format_ts,
    uuid7,
)
from datatrail.retention import (
    AdapterContext,
    add_hold,
    apply,
    decide_review,
    erase_data,
    list_holds,
    plan,
    plan_erasure,
    purged,
    record_event,
    release_hold,
    review_queue,
    sqlite_table_dataset,
    verify_certificate,
)
from datatrail.store import init_home, open_store

DAY_NS = 86_400 * 1_000_000_000

RAW_90D = """
classifications:
  pii: {}
datasets:
  - match: {namespace: file, name: "*/raw/*"}
    classifications: [pii]
    owners: [data-team]
retention:
  - id: raw-90d
    match: {namespace: file, name: "*/raw/*"}
    delete_after: 90d
"""


def ago(days: float) -> str:
    return format_ts(time.time_ns() - int(days * DAY_NS))


@pytest.fixture
def home(tmp_path):
    return init_home(tmp_path / ".datatrail")


@pytest.fixture
def store(home):
    s = open_store(home.url, signer=home.signer())
    yield s
    s.close()


def record(
    store,
    dataset: DatasetRef,
    artifact: str,
    *,
    days_ago: float,
    role: str = "output",
    run_id: str | None = None,
    stats: dict | None = None,
    job: str = "pipeline.load",
) -> str:
    event = IORecorded(
        id=uuid7(),
        ts=ago(days_ago),
        run_id=run_id or uuid7(),
        role=role,  # type: ignore[arg-type]
        artifact=ArtifactInfo(id=artifact, kind="file", stats=stats),
        dataset=dataset,
        job=JobRef(namespace="default", name=job),
    )
    store.append([event])
    return artifact


def record_file(store, path: Path, *, days_ago: float, **kw) -> str:
    return record(store, file_dataset(path), hash_file(path).digest, days_ago=days_ago, **kw)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def policy(text: str = RAW_90D):
    return parse_policy(text)


# -- the plan --------------------------------------------------------------------------------


def test_an_artifact_past_its_delete_after_is_due_and_a_younger_one_is_retained(store, tmp_path):
    old = record_file(store, write(tmp_path / "raw" / "a.csv", "a\n1\n"), days_ago=100)
    young = record_file(store, write(tmp_path / "raw" / "b.csv", "b\n2\n"), days_ago=10)
    result = plan(store, policy=policy(), version=7, everything=True)
    by_art = {d.artifact: d for d in result.items}
    assert by_art[old].status == "due" and by_art[old].action == "delete"
    assert by_art[old].delete_rule == "raw-90d" and by_art[old].policy_version == 7
    assert "raw-90d" in by_art[old].reason and "v7" in by_art[old].reason
    assert by_art[young].status == "retained"
    assert by_art[young].delete_due is not None and by_art[young].delete_due > result.now
    assert result.counts == {"due": 1, "retained": 1}


def test_datasets_no_rule_matches_are_unmatched_and_kept(store, tmp_path):
    art = record_file(store, write(tmp_path / "out" / "r.csv", "r\n"), days_ago=400)
    result = plan(store, policy=policy(), everything=True)
    (item,) = result.items
    assert item.artifact == art and item.status == "unmatched" and item.action is None


def test_keeping_beats_deleting_and_the_longest_keep_wins(store, tmp_path):
    text = (
        RAW_90D
        + """
  - id: keep-120d
    match: {name: "*/raw/*"}
    keep_at_least: 120d
  - id: keep-1y
    match: {name: "*/raw/a*"}
    keep_at_least: 1y
    mode: compliance
"""
    )
    a = record_file(store, write(tmp_path / "raw" / "a.csv", "a\n"), days_ago=200)
    b = record_file(store, write(tmp_path / "raw" / "b.csv", "b\n"), days_ago=200)
    items = {d.artifact: d for d in plan(store, policy=policy(text), everything=True).items}
    assert items[a].status == "kept" and items[a].keep_rule == "keep-1y"
    assert items[a].locked and "compliance" in items[a].reason
    assert "keeping beats deleting" in items[a].reason
    # b has passed its only keep (120d), so the delete rule applies
    assert items[b].status == "due" and items[b].keep_rule == "keep-120d" and not items[b].locked


def test_the_shortest_delete_wins_and_brings_its_action(store, tmp_path):
    text = """
retention:
  - id: archive-30d
    match: {name: "*/raw/*"}
    delete_after: 30d
    action: archive
  - id: delete-60d
    match: {name: "*/raw/*"}
    delete_after: 60d
"""
    art = record_file(store, write(tmp_path / "raw" / "a.csv", "a\n"), days_ago=100)
    (item,) = plan(store, policy=policy(text)).items
    assert item.artifact == art
    assert (item.delete_rule, item.action) == ("archive-30d", "archive")
    assert "shortest delete wins" in item.reason


def test_a_legal_hold_beats_every_rule_until_released(store, tmp_path):
    path = write(tmp_path / "raw" / "a.csv", "a\n")
    art = record_file(store, path, days_ago=100)
    hold = add_hold(store, str(file_dataset(path).node_id()), case="LEGAL-1", reason="litigation")
    (item,) = plan(store, policy=policy()).items
    assert item.status == "held" and item.action is None
    assert [h.case for h in item.holds] == ["LEGAL-1"] and "legal hold" in item.reason
    result = apply(store, policy=policy())
    assert result.applied == [] and path.exists()
    release_hold(store, hold.node, case="LEGAL-1", reason="case closed")
    assert list_holds(store) == []
    assert [h.released is not None for h in list_holds(store, include_released=True)] == [True]
    (item,) = plan(store, policy=policy()).items
    assert item.artifact == art and item.status == "due"


def test_a_hold_on_a_run_holds_what_it_wrote(store, tmp_path):
    run_id = uuid7()
    path = write(tmp_path / "raw" / "a.csv", "a\n")
    record_file(store, path, days_ago=100, run_id=run_id)
    store.append(
        [
            RunStarted(
                id=uuid7(), ts=ago(100), run_id=run_id, job=JobRef(namespace="default", name="x")
            )
        ]
    )
    add_hold(store, f"run:{run_id}", case="C-9", reason="audit")
    (item,) = plan(store, policy=policy()).items
    assert item.status == "held" and item.holds[0].node == f"run:{run_id}"


def test_holding_an_unknown_node_or_without_a_case_is_refused_and_records_nothing(store):
    size = store.size()
    with pytest.raises(UsageError, match="case"):
        add_hold(store, "dataset:file:/nope", case="", reason="x")
    with pytest.raises(LookupError):
        add_hold(store, "dataset:file:/nope", case="C", reason="x")
    with pytest.raises(UsageError, match="not held"):
        release_hold(store, "dataset:file:/nope", case="C", reason="x")
    assert store.size() == size


def test_last_access_clock_restarts_on_each_read(store, tmp_path):
    text = """
retention:
  - id: idle-30d
    match: {name: "*/raw/*"}
    delete_after: 30d
    clock: last_access
"""
    path = write(tmp_path / "raw" / "a.csv", "a\n")
    record_file(store, path, days_ago=100)
    (item,) = plan(store, policy=policy(text)).items
    assert item.status == "due"
    store.append(
        [
            Record(
                id=uuid7(),
                ts=ago(5),
                topic="access",
                subject=file_dataset(path).node_id(),
                data={"principal": "ana", "outcome": "allow"},
            )
        ]
    )
    result = plan(store, policy=policy(text), everything=True)
    assert result.items[0].status == "retained"


def test_an_event_clock_waits_for_the_event(store, tmp_path):
    text = """
retention:
  - id: closed-30d
    match: {name: "*/raw/*"}
    delete_after: 30d
    clock: event:account_closed
"""
    path = write(tmp_path / "raw" / "a.csv", "a\n")
    record_file(store, path, days_ago=100)
    (item,) = plan(store, policy=policy(text), everything=True).items
    assert item.status == "waiting"
    record_event(store, "account_closed", file_dataset(path).node_id(), at=ago(40))
    (item,) = plan(store, policy=policy(text)).items
    assert item.status == "due" and "account_closed" in item.reason


# -- apply -----------------------------------------------------------------------------------


def test_apply_deletes_the_file_writes_a_receipt_and_a_second_apply_does_nothing(store, tmp_path):
    path = write(tmp_path / "raw" / "a.csv", "a\n1\n")
    art = record_file(store, path, days_ago=100)
    result = apply(store, policy=policy(), version=3, by="retention-bot")
    (item,) = result.applied
    assert (item.artifact, item.storage, item.rule) == (art, "deleted", "raw-90d")
    assert not path.exists()
    (receipt,) = purged(store, art)
    assert receipt.hash == art and receipt.rule == "raw-90d" and receipt.policy_version == 3
    assert receipt.by == "retention-bot" and receipt.index == item.receipt_index
    size = store.size()
    again = apply(store, policy=policy(), version=3)
    assert again.applied == [] and again.queued == [] and store.size() == size
    assert plan(store, policy=policy(), everything=True).counts == {"purged": 1}


def test_an_old_version_superseded_by_a_newer_one_is_purged_without_touching_storage(
    store, tmp_path
):
    path = write(tmp_path / "raw" / "a.csv", "version 1\n")
    v1 = record_file(store, path, days_ago=100)
    write(path, "version 2\n")
    v2 = record_file(store, path, days_ago=1)
    (item,) = apply(store, policy=policy()).applied
    assert (item.artifact, item.storage) == (v1, "superseded")
    assert path.read_text() == "version 2\n"
    assert purged(store, v2) == []


def test_a_file_changed_since_it_was_recorded_is_left_alone(store, tmp_path):
    path = write(tmp_path / "raw" / "a.csv", "recorded\n")
    record_file(store, path, days_ago=100)
    write(path, "written later, never recorded\n")
    (item,) = apply(store, policy=policy()).applied
    assert item.storage == "changed" and path.read_text().startswith("written later")


def test_archive_moves_a_directory_into_the_archive_folder(store, tmp_path):
    text = """
retention:
  - id: archive-raw
    match: {name: "*/raw/*"}
    delete_after: 30d
    action: archive
"""
    folder = tmp_path / "raw" / "batch"
    write(folder / "part-0.csv", "x\n")
    write(folder / "part-1.csv", "y\n")
    from datatrail.capture._hashing import hash_directory

    art = record(store, file_dataset(folder), hash_directory(folder).digest, days_ago=40)
    archive = tmp_path / "archive"
    (item,) = apply(
        store, policy=policy(text), adapters=AdapterContext(archive_dir=archive)
    ).applied
    assert (item.artifact, item.storage, item.action) == (art, "archived", "archive")
    assert not folder.exists()
    moved = list(archive.rglob("part-1.csv"))
    assert len(moved) == 1 and moved[0].read_text() == "y\n"


def test_classified_values_in_provenance_are_erased_and_verify_still_passes(store, home, tmp_path):
    path = write(tmp_path / "raw" / "people.csv", "email\nann@example.com\n")
    stats = {"rows": 1, "columns": {"email": {"min": "ann@example.com", "max": "ann@example.com"}}}
    art = record_file(store, path, days_ago=100, stats=stats)
    (item,) = apply(store, policy=policy()).applied
    assert len(item.erased_events) == 1
    stored = store.event(item.erased_events[0])
    assert stored is not None and stored.body is None and stored.erased_by is not None
    assert b"ann@example.com" not in Path(home.path / "trail.db").read_bytes()
    report = verify(store)
    assert report.ok, report.first_fault
    assert [e.index for e in report.erased] == item.erased_events
    assert purged(store, art)[0].erased_events == item.erased_events


def test_sqlite_tables_registered_as_datasets_are_dropped(store, tmp_path):
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER)")
        conn.execute("CREATE TABLE keep_me (id INTEGER)")
    text = """
retention:
  - id: tables-30d
    match: {namespace: sqlite, name: "*:orders"}
    delete_after: 30d
"""
    record(store, sqlite_table_dataset(db, "orders"), "blake3:" + "ab" * 32, days_ago=40)
    (item,) = apply(store, policy=policy(text)).applied
    assert item.storage == "deleted"
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"keep_me"}


def test_postgres_tables_registered_as_datasets_are_dropped(store):
    from tests._pg import PG_URL, admin_execute, fresh_schema, require_postgres

    require_postgres()
    import psycopg

    from datatrail.model import postgres_dataset

    info = psycopg.conninfo.conninfo_to_dict(PG_URL)
    host, port, db = info.get("host", "127.0.0.1"), int(info.get("port", 5432)), info["dbname"]
    with fresh_schema("ret") as schema:
        admin_execute(f'CREATE SCHEMA "{schema}"')
        admin_execute(f'CREATE TABLE "{schema}".orders (id int)')
        admin_execute(f'CREATE TABLE "{schema}".customers (id int)')
        ref = postgres_dataset(str(host), port, str(db), schema, "orders")
        text = f"""
retention:
  - id: pg-30d
    match: {{namespace: "postgres://*", name: "*.{schema}.orders"}}
    delete_after: 30d
"""
        record(store, ref, "blake3:" + "cd" * 32, days_ago=40)
        adapters = AdapterContext(connections={ref.namespace: PG_URL})
        (item,) = apply(store, policy=policy(text), adapters=adapters).applied
        assert item.storage == "deleted"
        with psycopg.connect(PG_URL) as conn:
            left = {
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                    (schema,),
                )
            }
        assert left == {"customers"}
        # idempotent against the server too: the table is gone, nothing more to do
        assert apply(store, policy=policy(text), adapters=adapters).applied == []


def test_a_storage_failure_is_reported_and_writes_no_receipt(store, tmp_path):
    text = """
retention:
  - id: pg-30d
    match: {namespace: "postgres://*"}
    delete_after: 30d
"""
    ref = DatasetRef(namespace="postgres://127.0.0.1:1", name="db.public.gone")
    art = record(store, ref, "blake3:" + "ee" * 32, days_ago=40)
    result = apply(store, policy=policy(text))
    assert result.applied == [] and result.failed[0].artifact == art
    assert "--connect" in (result.failed[0].error or "")
    assert purged(store, art) == []


# -- review ----------------------------------------------------------------------------------

REVIEW = """
retention:
  - id: review-30d
    match: {name: "*/raw/*"}
    delete_after: 30d
    action: review
"""


def test_review_items_are_queued_once_and_nothing_is_deleted_without_a_decision(store, tmp_path):
    path = write(tmp_path / "raw" / "a.csv", "a\n")
    art = record_file(store, path, days_ago=40)
    first = apply(store, policy=policy(REVIEW))
    assert [d.artifact for d in first.queued] == [art] and first.applied == []
    size = store.size()
    second = apply(store, policy=policy(REVIEW))
    assert second.queued == [] and second.applied == [] and store.size() == size
    assert path.exists()
    assert [d.artifact for d in review_queue(store, policy=policy(REVIEW))] == [art]
    decide_review(store, art, decision="approve", reason="no longer needed", policy=policy(REVIEW))
    (done,) = apply(store, policy=policy(REVIEW)).applied
    assert done.artifact == art and done.action == "delete" and not path.exists()


def test_extending_in_review_keeps_the_item_until_then(store, tmp_path):
    from datetime import timedelta

    path = write(tmp_path / "raw" / "a.csv", "a\n")
    art = record_file(store, path, days_ago=40)
    with pytest.raises(UsageError, match="reason"):
        decide_review(store, art, decision="extend", reason="", policy=policy(REVIEW))
    record_ = decide_review(
        store,
        art,
        decision="extend",
        reason="audit in progress",
        extend_by=timedelta(days=60),
        policy=policy(REVIEW),
    )
    (item,) = plan(store, policy=policy(REVIEW), everything=True).items
    assert item.status == "kept" and item.keep_until == record_.until
    assert "audit in progress" in item.reason
    assert apply(store, policy=policy(REVIEW)).applied == [] and path.exists()
    later = plan(store, policy=policy(REVIEW), now=format_ts(time.time_ns() + 61 * DAY_NS))
    assert [d.status for d in later.items] == ["review"]


def test_deciding_on_an_item_not_in_the_queue_is_refused(store, tmp_path):
    art = record_file(store, write(tmp_path / "raw" / "a.csv", "a\n"), days_ago=1)
    with pytest.raises(UsageError, match="not awaiting review"):
        decide_review(store, art, decision="approve", reason="x", policy=policy(REVIEW))


# -- erase-data ------------------------------------------------------------------------------


def _chain(store, tmp_path):
    """raw/people.csv -> clean (in memory) -> out/report.csv, and an unrelated file."""
    raw = write(tmp_path / "raw" / "people.csv", "email\nann@example.com\n")
    report = write(tmp_path / "out" / "report.csv", "n\n1\n")
    other = write(tmp_path / "out" / "other.csv", "z\n")
    r1, r2 = uuid7(), uuid7()
    raw_art = record_file(store, raw, days_ago=5, role="input", run_id=r1)
    mem = "blake3:" + "77" * 32
    store.append(
        [
            IORecorded(
                id=uuid7(),
                ts=ago(5),
                run_id=r1,
                role="output",
                artifact=ArtifactInfo(id=mem, kind="DataFrame", stats={"min": "ann@example.com"}),
                job=JobRef(namespace="default", name="clean"),
            ),
            IORecorded(
                id=uuid7(),
                ts=ago(5),
                run_id=r2,
                role="input",
                artifact=ArtifactInfo(id=mem, kind="DataFrame"),
                job=JobRef(namespace="default", name="report"),
            ),
            RunFinished(id=uuid7(), ts=ago(5), run_id=r2, status="completed"),
        ]
    )
    rep_art = record_file(store, report, days_ago=5, run_id=r2, job="report")
    other_art = record_file(store, other, days_ago=5)
    return raw, report, other, raw_art, mem, rep_art, other_art


def test_erase_data_cascade_deletes_the_closure_and_signs_a_certificate(store, home, tmp_path):
    raw, report, other, raw_art, mem, rep_art, other_art = _chain(store, tmp_path)
    planned = plan_erasure(store, file_dataset(raw).node_id(), cascade=True)
    assert {i.artifact for i in planned.items} == {raw_art, mem, rep_art}
    result = erase_data(
        store, file_dataset(raw).node_id(), signer=home.signer(), reason="GDPR-77", cascade=True
    )
    assert not raw.exists() and not report.exists() and other.exists()
    body = verify_certificate(result.certificate, load_verifier(home.verifier_key), store=store)
    listed = {a["artifact"]: a for a in body["artifacts"]}
    assert set(listed) == {raw_art, mem, rep_art}
    assert all(isinstance(a["ledger_index"], int) for a in body["artifacts"])
    assert listed[mem]["erased_events"], "the in-memory value's statistics are erased"
    rows = store.query("SELECT topic, data FROM records WHERE idx = ?", (result.index,))
    assert rows[0][0] == "retention.deletion_certificate"
    assert json.loads(rows[0][1])["certificate"] == result.certificate
    assert purged(store, other_art) == []
    assert verify(store).ok


def test_a_tampered_certificate_does_not_verify(store, home, tmp_path):
    from datatrail.errors import SignatureError

    raw, *_ = _chain(store, tmp_path)
    result = erase_data(store, file_dataset(raw).node_id(), signer=home.signer(), reason="x")
    forged = result.certificate.replace('"cascade":false', '"cascade":true')
    assert forged != result.certificate
    with pytest.raises(SignatureError):
        verify_certificate(forged, load_verifier(home.verifier_key))


def test_erase_data_without_cascade_erases_only_the_node(store, home, tmp_path):
    raw, report, _, raw_art, *_ = _chain(store, tmp_path)
    result = erase_data(store, file_dataset(raw).node_id(), signer=home.signer(), reason="x")
    assert [a["artifact"] for a in result.body["artifacts"]] == [raw_art]
    assert report.exists()


def test_erase_data_is_refused_whole_when_anything_downstream_is_held(store, home, tmp_path):
    raw, report, _, _, _, rep_art, _ = _chain(store, tmp_path)
    add_hold(store, f"artifact:{rep_art}", case="LEGAL-5", reason="subpoena")
    size = store.size()
    with pytest.raises(PolicyDenied, match="LEGAL-5"):
        erase_data(
            store, file_dataset(raw).node_id(), signer=home.signer(), reason="x", cascade=True
        )
    assert raw.exists() and report.exists() and store.size() == size


def test_erase_data_respects_a_compliance_keep_and_overrides_a_governance_one(
    store, home, tmp_path
):
    raw, *_ = _chain(store, tmp_path)
    locked = """
retention:
  - id: keep-7y
    match: {name: "*/raw/*"}
    keep_at_least: 7y
    mode: compliance
"""
    from datatrail.governance import apply_policy

    apply_policy(store, policy(locked), principal="admin", reason="regulation")
    with pytest.raises(PolicyDenied, match="compliance keep keep-7y"):
        erase_data(store, file_dataset(raw).node_id(), signer=home.signer(), reason="x")
    assert raw.exists()
    soft = locked.replace("compliance", "governance").replace("keep-7y", "keep-soft")
    other = init_home(tmp_path / "second")
    second = open_store(other.url, signer=other.signer())
    try:
        raw2, *_ = _chain(second, tmp_path / "second-data")
        apply_policy(second, policy(soft), principal="admin", reason="soft keep")
        result = erase_data(second, file_dataset(raw2).node_id(), signer=other.signer(), reason="x")
        assert result.body["artifacts"][0]["overrides"] == "keep-soft"
    finally:
        second.close()


def test_archiving_without_an_archive_folder_is_refused_before_anything_is_done(store, tmp_path):
    from datatrail.errors import ConfigError

    text = """
retention:
  - id: archive-raw
    match: {name: "*/raw/*"}
    delete_after: 30d
    action: archive
"""
    path = write(tmp_path / "raw" / "a.csv", "a\n")
    record_file(store, path, days_ago=40)
    size = store.size()
    with pytest.raises(ConfigError, match="archive"):
        apply(store, policy=policy(text))
    assert path.exists() and store.size() == size
