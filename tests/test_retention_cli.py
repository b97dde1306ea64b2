"""The retention, hold, erase-data and report commands, with --json, and their bad inputs."""

from __future__ import annotations

import json
import time

import pytest
from typer.testing import CliRunner

from datatrail.capture._hashing import hash_file
from datatrail.cli import app
from datatrail.ledger import load_signer
from datatrail.model import ArtifactInfo, IORecorded, JobRef, file_dataset, format_ts, uuid7
from datatrail.store import open_store

runner = CliRunner()

POLICY = """
retention:
  - id: raw-90d
    match: {namespace: file, name: "*/raw/*"}
    delete_after: 90d
  - id: review-old-out
    match: {namespace: file, name: "*/out/*"}
    delete_after: 30d
    action: review
"""


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def setup(tmp_path):
    code, _, err = invoke("init", str(tmp_path))
    assert code == 0, err
    trail = tmp_path / ".datatrail"
    store = open_store(f"sqlite:///{trail / 'trail.db'}", signer=load_signer(trail / "signing.key"))
    files = {}
    for name, days in (("raw/a.csv", 100), ("raw/b.csv", 10), ("out/<r>.csv", 40)):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{name}\n")
        store.append(
            [
                IORecorded(
                    id=uuid7(),
                    ts=format_ts(time.time_ns() - days * 86_400 * 1_000_000_000),
                    run_id=uuid7(),
                    role="output",
                    artifact=ArtifactInfo(id=hash_file(path).digest, kind="file"),
                    dataset=file_dataset(path),
                    job=JobRef(namespace="default", name="write"),
                )
            ]
        )
        files[name] = path
    store.close()
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    return {"trail": str(trail), "policy": str(policy), "files": files}


def test_plan_json_lists_due_and_review_items_with_their_rules(setup):
    code, out, err = invoke(
        "retention", "plan", "--trail", setup["trail"], "--policy", setup["policy"], "--json"
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["counts"] == {"due": 1, "review": 1, "retained": 1}
    due = next(i for i in data["items"] if i["status"] == "due")
    assert due["dataset"].endswith("/raw/a.csv") and due["delete_rule"] == "raw-90d"
    assert {"artifact", "reason", "delete_due", "keep_until", "holds", "labels"} <= set(due)


def test_plan_for_people_shows_counts_and_rules(setup):
    code, out, _ = invoke(
        "retention", "plan", "--trail", setup["trail"], "--policy", setup["policy"]
    )
    assert code == 0 and "due 1" in out and "raw-90d" in out


def test_apply_deletes_then_a_second_apply_does_nothing(setup):
    args = ("retention", "apply", "--trail", setup["trail"], "--policy", setup["policy"], "--json")
    code, out, err = invoke(*args)
    assert code == 0, err
    data = json.loads(out)
    assert [a["storage"] for a in data["applied"]] == ["deleted"]
    assert len(data["queued"]) == 1
    assert not setup["files"]["raw/a.csv"].exists() and setup["files"]["out/<r>.csv"].exists()
    code, out, _ = invoke(*args)
    again = json.loads(out)
    assert code == 0 and again["applied"] == [] and again["queued"] == []
    code, out, _ = invoke("retention", "purged", "--trail", setup["trail"], "--json")
    assert [r["rule"] for r in json.loads(out)] == ["raw-90d"]


def test_review_approve_through_the_cli(setup):
    base = ("--trail", setup["trail"])
    invoke("retention", "apply", *base, "--policy", setup["policy"])
    code, out, _ = invoke("retention", "review", *base, "--json")
    # the review queue reads the active policy; with none active it is empty
    assert code == 0 and json.loads(out) == []
    code, _, err = invoke(
        "retention", "review", "approve", "blake3:" + "0" * 64, *base, "--reason", "x"
    )
    assert code == 2 and "not awaiting review" in err


def test_holds_add_list_release(setup):
    node = f"dataset:file:{setup['files']['raw/a.csv']}"
    base = ("--trail", setup["trail"])
    code, out, err = invoke(
        "hold", "add", node, "--case", "C-1", "--reason", "litigation", *base, "--json"
    )
    assert code == 0, err
    assert json.loads(out)["case"] == "C-1"
    code, out, _ = invoke("retention", "plan", *base, "--policy", setup["policy"], "--json")
    assert json.loads(out)["counts"]["held"] == 1
    code, out, _ = invoke("hold", "list", *base, "--json")
    assert [h["node"] for h in json.loads(out)] == [node]
    code, _, err = invoke("hold", "add", node, *base, "--reason", "x")
    assert code == 2 and "case" in err
    code, out, _ = invoke(
        "hold", "release", node, "--case", "C-1", "--reason", "settled", *base, "--json"
    )
    assert code == 0 and json.loads(out)["released"]
    code, out, _ = invoke("hold", "list", *base, "--json")
    assert json.loads(out) == []


def test_erase_data_prints_a_certificate_and_refuses_bad_nodes(setup, tmp_path):
    node = f"dataset:file:{setup['files']['raw/b.csv']}"
    base = ("--trail", setup["trail"])
    code, out, _ = invoke("erase-data", node, "--cascade", "--dry-run", *base, "--json")
    assert code == 0 and len(json.loads(out)["items"]) == 1
    cert = tmp_path / "cert.txt"
    code, out, err = invoke(
        "erase-data", node, "--cascade", "--reason", "GDPR", "--out", str(cert), *base, "--json"
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["body"]["artifacts"][0]["storage"] == "deleted"
    assert cert.read_text() == data["certificate"] and "— datatrail-" in data["certificate"]
    code, _, err = invoke("erase-data", "job:default:write", "--reason", "x", *base)
    assert code == 2 and "not a job" in err
    code, _, err = invoke("erase-data", "nonsense", "--reason", "x", *base)
    assert code == 2


def test_retention_event_needs_a_known_node(setup):
    base = ("--trail", setup["trail"])
    node = f"dataset:file:{setup['files']['raw/b.csv']}"
    code, out, err = invoke("retention", "event", "account_closed", node, *base, "--json")
    assert code == 0, err and json.loads(out)["index"] > 0
    code, _, _ = invoke("retention", "event", "account_closed", "dataset:file:/none", *base)
    assert code == 2


def test_compliance_report_json_and_html(setup, tmp_path):
    base = ("--trail", setup["trail"])
    node = f"dataset:file:{setup['files']['raw/b.csv']}"
    invoke("hold", "add", node, "--case", "<case&1>", "--reason", "r", *base)
    code, out, err = invoke("report", "compliance", *base, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["ledger"]["ok"] is True and data["holds"][0]["case"] == "<case&1>"
    page = tmp_path / "report.html"
    code, _, _ = invoke("report", "compliance", *base, "--html", "--out", str(page))
    text = page.read_text()
    assert code == 0 and "&lt;case&amp;1&gt;" in text and "<case&1>" not in text
    code, _, err = invoke("report", "compliance", *base, "--html", "--json")
    assert code == 2 and "one of" in err


def test_commands_on_a_missing_trail_fail_cleanly(tmp_path):
    code, _, err = invoke("retention", "plan", "--trail", str(tmp_path / "nope"))
    assert code == 2 and "no such trail" in err
