"""Every core command, with --json, and the bad inputs that must fail cleanly."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datatrail.cli import app

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("demo") / "run"
    code, out, err = invoke("demo", "--dir", str(folder), "--json")
    assert code == 0, err
    return json.loads(out)


def test_init_makes_store_keys_and_policy(tmp_path):
    code, out, _ = invoke("init", str(tmp_path), "--json")
    assert code == 0
    data = json.loads(out)
    home = tmp_path / ".datatrail"
    assert data["trail"] == str(home)
    assert (home / "trail.db").exists() and (home / "policy.yaml").exists()
    assert (home / "signing.key").stat().st_mode & 0o777 == 0o600
    assert data["verifier_key"].startswith("datatrail-")
    # idempotent: the same key survives a second init
    code, out2, _ = invoke("init", str(tmp_path), "--json")
    assert code == 0 and json.loads(out2)["verifier_key"] == data["verifier_key"]


def test_demo_reaches_from_the_report_back_to_every_raw_file(demo):
    names = {n["attrs"].get("dataset") for n in demo["lineage"]["nodes"] if n["kind"] == "artifact"}
    raw = {
        f"dataset:file:{Path(demo['directory']) / 'raw' / f}"
        for f in ("orders.csv", "customers.csv", "products.csv")
    }
    assert raw <= names
    jobs = {n["label"].rsplit(".", 1)[-1] for n in demo["lineage"]["nodes"] if n["kind"] == "run"}
    assert {"clean", "enrich", "aggregate", "build_report", "save", "load"} <= jobs
    assert demo["explanation"]["artifact"]["artifact_id"] == demo["report_artifact"]
    assert demo["runs"] == 11
    # the nested step: enrich calls join twice, recorded as its child runs
    code, out, _ = invoke(
        "runs", "--trail", demo["trail"], "--job", "datatrail.demo._pipeline.enrich", "--json"
    )
    (enrich,) = json.loads(out)
    code, out, _ = invoke("runs", "--trail", demo["trail"], "--parent", enrich["run_id"], "--json")
    assert code == 0
    assert [r["job_name"] for r in json.loads(out)] == ["datatrail.demo._pipeline.join"] * 2


def test_runs_lists_newest_first_with_filters(demo):
    code, out, _ = invoke("runs", "--trail", demo["trail"], "--json")
    assert code == 0
    runs = json.loads(out)
    assert len(runs) == demo["runs"]
    assert [r["started_at"] for r in runs] == sorted((r["started_at"] for r in runs), reverse=True)
    code, out, _ = invoke("runs", "--trail", demo["trail"], "--roots", "--json")
    (root,) = json.loads(out)
    assert root["job_name"] == "nightly-orders" and root["params"] == {
        "day": "2026-11-20",
        "min_quantity": 1,
    }
    code, out, _ = invoke(
        "runs", "--trail", demo["trail"], "--job", "datatrail.demo._pipeline.join", "--json"
    )
    assert len(json.loads(out)) == 2


def test_show_run_artifact_and_dataset(demo):
    _, out, _ = invoke("runs", "--trail", demo["trail"], "--roots", "--json")
    run_id = json.loads(out)[0]["run_id"]
    code, out, _ = invoke("show", run_id, "--trail", demo["trail"], "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["kind"] == "run" and len(shown["run"]["children"]) == 8
    code, out, _ = invoke("show", demo["report_artifact"], "--trail", demo["trail"], "--json")
    assert json.loads(out)["artifact"]["media_type"] == "text/csv"
    code, out, _ = invoke(
        "show", f"dataset:file:{demo['report']}", "--trail", demo["trail"], "--json"
    )
    assert json.loads(out)["dataset"]["versions"][0]["artifact_id"] == demo["report_artifact"]
    code, out, _ = invoke("show", run_id, "--trail", demo["trail"])
    assert code == 0 and "nightly-orders" in out


def test_lineage_both_directions_and_rich_output(demo):
    raw = f"dataset:file:{Path(demo['directory']) / 'raw' / 'orders.csv'}"
    code, out, _ = invoke("lineage", raw, "--downstream", "--trail", demo["trail"], "--json")
    assert code == 0
    graph = json.loads(out)
    assert graph["direction"] == "downstream"
    assert f"dataset:file:{demo['report']}" in {n["id"] for n in graph["nodes"]}
    code, out, _ = invoke(
        "lineage",
        f"dataset:file:{demo['report']}",
        "--depth",
        "1",
        "--trail",
        demo["trail"],
        "--json",
    )
    assert max(n["depth"] for n in json.loads(out)["nodes"]) == 1
    code, out, _ = invoke("lineage", raw, "--downstream", "--trail", demo["trail"])
    assert code == 0 and "report.csv" in out


def test_explain_prints_the_derivation(demo):
    code, out, _ = invoke("explain", demo["report_artifact"], "--trail", demo["trail"], "--json")
    assert code == 0
    story = json.loads(out)
    assert story["produced_by"], "the report was made by some run"
    code, out, _ = invoke("explain", demo["report_artifact"], "--trail", demo["trail"])
    assert "made by" in out


def test_rebuild_gives_identical_projections(demo, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(demo["trail"], copy)
    from datatrail.store import PROJECTION_TABLES, SQLiteStore

    before = SQLiteStore(copy / "trail.db")
    rows_before = {t: before.table_rows(t) for t in PROJECTION_TABLES}
    before.close()
    code, out, _ = invoke("rebuild", "--trail", str(copy), "--json")
    assert code == 0 and json.loads(out)["events_replayed"] == demo["events"]
    after = SQLiteStore(copy / "trail.db")
    assert {t: after.table_rows(t) for t in PROJECTION_TABLES} == rows_before
    assert after.derive_projections() == rows_before
    after.close()


def test_unknown_node_is_a_clear_error(demo):
    code, _, err = invoke("show", "artifact:blake3:" + "0" * 64, "--trail", demo["trail"])
    assert code == 2 and "no artifact" in err
    code, _, err = invoke("lineage", "orders.csv", "--trail", demo["trail"])
    assert code == 2 and "node id" in err


def _snapshot(path: Path) -> bytes:
    return path.read_bytes()


def test_a_file_that_is_not_a_store_is_refused_and_left_untouched(tmp_path):
    bogus = tmp_path / "notes.db"
    bogus.write_bytes(b"just some text, not a database" * 10)
    before = _snapshot(bogus)
    code, _, err = invoke("runs", "--trail", str(bogus))
    assert code == 2 and "not a datatrail store" in err
    assert _snapshot(bogus) == before
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    before = _snapshot(other)
    code, _, err = invoke("runs", "--trail", str(other))
    assert code == 2 and "not a datatrail store" in err
    assert _snapshot(other) == before
    assert not (tmp_path / "other.db-wal").exists()


def test_a_store_from_a_newer_datatrail_is_refused_and_left_untouched(demo, tmp_path):
    copy = tmp_path / "newer"
    shutil.copytree(demo["trail"], copy)
    con = sqlite3.connect(copy / "trail.db")
    con.execute("INSERT INTO migrations VALUES (999, 'from the future', '2030-01-01')")
    con.commit()
    con.close()
    before = _snapshot(copy / "trail.db")
    code, _, err = invoke("runs", "--trail", str(copy))
    assert code == 2 and "schema version 999" in err and "upgrade" in err
    assert _snapshot(copy / "trail.db") == before


def test_a_missing_trail_is_a_clear_error(tmp_path):
    code, _, err = invoke("runs", "--trail", str(tmp_path / "nowhere"))
    assert code == 2 and "no such trail" in err


def test_demo_refuses_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    code, _, err = invoke("demo", "--dir", str(tmp_path), "--fresh")
    assert code == 2 and "not a demo folder" in err
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_names_with_markup_characters_are_shown_verbatim(tmp_path):
    import datatrail
    from datatrail.capture import shutdown

    home = tmp_path / ".datatrail"
    odd = tmp_path / "sales[b]:x.csv"
    odd.write_text("a\n")
    datatrail.configure(home=home)
    try:
        with datatrail.run("[bold]job") as r:
            r.input(odd)
        datatrail.flush()
    finally:
        shutdown()
        datatrail.configure(home=None)
    code, out, _ = invoke(
        "lineage", f"dataset:file:{odd.resolve()}", "--downstream", "--trail", str(home)
    )
    assert code == 0
    assert "sales[b]:x.csv" in out.replace("\n", "")
    assert "[bold]job" in out


def test_show_artifact_renders_quality_metrics_at_level_full(tmp_path):
    import pandas as pd

    import datatrail
    from datatrail.capture import shutdown

    home = tmp_path / ".datatrail"
    frame = pd.DataFrame({"amount": [3.5, None, 7.25, 1.0], "region": ["n", "s", None, "n"]})
    datatrail.configure(home=home, level="full")
    try:
        with datatrail.run("quality") as r:
            r.output(frame, name="report")
        datatrail.flush()
    finally:
        shutdown()
        datatrail.configure(home=None, level="standard")
    code, out, err = invoke("runs", "--trail", str(home), "--json")
    assert code == 0, err
    run_id = json.loads(out)[0]["run_id"]
    code, out, err = invoke("show", run_id, "--trail", str(home), "--json")
    artifact = json.loads(out)["run"]["outputs"][0]["artifact_id"]
    code, out, err = invoke("show", artifact, "--trail", str(home))
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.count("│") >= 5]
    cells = {
        row[0]: row
        for row in ([c.strip() for c in line.split("│") if c.strip()] for line in lines)
        if row
    }
    assert cells["amount"] == ["amount", "1", "3", "1.0", "7.25"]
    assert cells["region"] == ["region", "1", "2"]
