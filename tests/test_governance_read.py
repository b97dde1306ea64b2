"""Governed reads and writes, classification through lineage, limits, alerts, notifications."""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

import datatrail
from datatrail.audit import verify
from datatrail.cli import app
from datatrail.errors import PolicyDenied
from datatrail.governance import (
    FLOW_RULE,
    VolumeDetector,
    apply_policy,
    check_volume,
    classifications_of,
    classify,
    install_governed_writes,
    notify,
    parse_policy,
    read,
)
from datatrail.ledger import load_verifier
from datatrail.model import Record, uuid7
from datatrail.store import Home, Store, open_store

POLICY = """\
classifications:
  pii: {{removed_by: ["*anonymise"]}}
  public: {{propagate: false}}
datasets:
  - match: {{namespace: file, name: "*/raw/*"}}
    classifications: [pii]
    owners: [dpo]
    columns: {{email: [pii]}}
  - match: {{namespace: file, name: "*/public/*"}}
    classifications: [public]
roles:
  analyst: {{}}
  policy-admin: {{}}
principals:
  alice: {{roles: [policy-admin]}}
  bob: {{roles: [analyst]}}
access:
  - id: analysts-fraud
    effect: allow
    actions: [read]
    roles: [analyst]
    when: {{purpose: [fraud]}}
    masks: {{columns: {{card: keep_last_4, birth: year}}, classifications: {{pii: hash}}}}
limits:
  - id: analyst-rows
    roles: [analyst]
    rows: {rows}
    window: 1h
notify:
  command: {command}
"""

EMAILS = [f"person{i}@example.com" for i in range(20)]


@datatrail.track
def load(path: Path) -> Any:
    return pd.read_csv(path)


@datatrail.track
def summarise(frame: Any) -> Any:
    return frame.assign(n=1)


@datatrail.track
def anonymise(frame: Any) -> Any:
    return frame.drop(columns=["email", "birth", "card"])


@datatrail.track
def save(frame: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


@pytest.fixture
def world(trail, tmp_path: Path) -> Iterator[dict[str, Any]]:
    raw = tmp_path / "raw" / "customers.csv"
    raw.parent.mkdir()
    pd.DataFrame(
        {
            "customer_id": range(20),
            "email": EMAILS,
            "card": [f"4111111111{i:06d}" for i in range(20)],
            "birth": [f"19{50 + i}-03-0{1 + i % 9}" for i in range(20)],
        }
    ).to_csv(raw, index=False)
    save(summarise(load(raw)), tmp_path / "out" / "derived.csv")
    save(anonymise(load(raw)), tmp_path / "out" / "clean.csv")
    datatrail.flush()
    home = Home(path=trail.home, url=f"sqlite:///{trail.home / 'trail.db'}")
    store = open_store(home.url, signer=home.signer())
    yield {"home": home, "store": store, "dir": tmp_path, "raw": raw, "trail": trail}
    store.close()


def use(world: dict[str, Any], rows: int = 1000, command: str = "[cat]") -> None:
    text = POLICY.format(rows=rows, command=command)
    apply_policy(world["store"], parse_policy(text), principal="alice", reason="test")


def ds(world: dict[str, Any], rel: str) -> str:
    return f"dataset:file:{(world['dir'] / rel).resolve().as_posix()}"


def accesses(store: Store) -> list[dict[str, Any]]:
    return [
        json.loads(r[0])
        for r in store.query("SELECT data FROM records WHERE topic = 'access' ORDER BY idx")
    ]


def test_labels_flow_downstream_with_their_path(world: dict[str, Any]) -> None:
    use(world)
    labels = classifications_of(world["store"], ds(world, "out/derived.csv"))
    assert set(labels) == {"pii"}
    path = labels["pii"]
    assert path[0] == ds(world, "raw/customers.csv")
    assert path[-1] == ds(world, "out/derived.csv")
    assert any(step.startswith("run:") for step in path)


def test_a_declared_anonymising_step_stops_the_label(world: dict[str, Any]) -> None:
    use(world)
    assert classifications_of(world["store"], ds(world, "out/clean.csv")) == {}


def test_classify_adds_a_label_that_flows_too(world: dict[str, Any]) -> None:
    use(world)
    store = world["store"]
    classify(store, ds(world, "out/clean.csv"), "pii", reason="re-identifiable", by="alice")
    assert classifications_of(store, ds(world, "out/clean.csv"))["pii"] == [
        ds(world, "out/clean.csv")
    ]
    with pytest.raises(ValueError, match="not declared"):
        classify(store, ds(world, "out/clean.csv"), "secret", reason="x", by="alice")


def test_a_governed_read_masks_and_records(world: dict[str, Any]) -> None:
    use(world)
    frame = read(
        ds(world, "raw/customers.csv"), principal="bob", purpose="fraud", home=world["home"]
    )
    assert isinstance(frame, pd.DataFrame) and len(frame) == 20
    shown = frame.to_csv()
    assert not any(email in shown for email in EMAILS)
    assert frame["card"][3].endswith(f"{3:06d}"[-4:]) and frame["card"][3].startswith("****")
    assert list(frame["birth"][:2]) == [1950, 1951]
    again = read(
        ds(world, "raw/customers.csv"), principal="bob", purpose="fraud", home=world["home"]
    )
    assert list(again["email"]) == list(frame["email"])  # salted hashes are stable
    record = accesses(world["store"])[-1]
    assert record["outcome"] == "allow" and record["rules"] == ["analysts-fraud"]
    assert record["masked"] == ["birth", "card", "email"] and record["rows"] == 20
    assert record["policy_version"] == 1 and record["purpose"] == "fraud"


def test_a_denied_read_raises_with_the_decision_and_is_recorded(world: dict[str, Any]) -> None:
    use(world)
    with pytest.raises(PolicyDenied) as caught:
        read(ds(world, "raw/customers.csv"), principal="bob", home=world["home"])
    decision = caught.value.decision
    assert decision.outcome == "deny" and decision.policy_version == 1
    assert isinstance(caught.value, PermissionError)
    record = accesses(world["store"])[-1]
    assert record["outcome"] == "deny" and record["reason"] == decision.reason
    assert not any(email in str(caught.value) for email in EMAILS)


def test_limits_are_enforced_per_principal(world: dict[str, Any]) -> None:
    use(world, rows=30)
    read(ds(world, "raw/customers.csv"), principal="bob", purpose="fraud", home=world["home"])
    with pytest.raises(PolicyDenied) as caught:
        read(ds(world, "raw/customers.csv"), principal="bob", purpose="fraud", home=world["home"])
    assert "analyst-rows" in caught.value.decision.rules
    assert [a["outcome"] for a in accesses(world["store"])] == ["allow", "deny"]


def test_the_trail_still_verifies_after_governance_records(world: dict[str, Any]) -> None:
    use(world)
    read(ds(world, "raw/customers.csv"), principal="bob", purpose="fraud", home=world["home"])
    with pytest.raises(PolicyDenied):
        read(ds(world, "raw/customers.csv"), principal="eve", purpose="fraud", home=world["home"])
    report = verify(world["store"], verifier=load_verifier(world["home"].verifier_key))
    assert report.ok, report.first_fault


def test_pii_may_not_land_in_a_public_dataset(world: dict[str, Any]) -> None:
    use(world)
    remove = install_governed_writes(world["home"])
    try:
        frame = load(world["raw"])
        with pytest.raises(PolicyDenied) as caught:
            save(summarise(frame), world["dir"] / "public" / "leak.csv")
        assert caught.value.decision.rules == (FLOW_RULE,)
        save(anonymise(frame), world["dir"] / "public" / "ok.csv")
    finally:
        remove()
    datatrail.flush()
    store = world["store"]
    names = [r[0] for r in store.query("SELECT dataset_name FROM run_io WHERE role = 'output'")]
    assert str((world["dir"] / "public" / "ok.csv").resolve()) in names
    assert str((world["dir"] / "public" / "leak.csv").resolve()) not in names
    denied = [a for a in accesses(store) if a["action"] == "write"]
    assert len(denied) == 1 and denied[0]["outcome"] == "deny" and denied[0]["labels"] == ["pii"]


def test_notifications_are_sent_and_recorded_and_failures_never_raise(
    world: dict[str, Any],
) -> None:
    sink = world["dir"] / "sink.json"
    script = f"import sys; open({str(sink)!r}, 'w').write(sys.stdin.read())"
    use(world, command=json.dumps([sys.executable, "-c", script]))
    store = world["store"]
    from datatrail.governance import active_policy

    policy = active_policy(store).policy  # type: ignore[union-attr]
    data = notify(store, policy, "retention.candidates", ["dpo"], {"count": 2})
    assert data["ok"] is True and data["channel"] == "command"
    assert json.loads(sink.read_text())["payload"] == {"count": 2}
    broken = parse_policy(
        POLICY.format(rows=1, command=json.dumps([sys.executable, "-c", "raise SystemExit(3)"]))
    )
    failed = notify(store, broken, "x", ["dpo"], {})
    assert failed["ok"] is False and "exited with 3" in failed["error"]
    recorded = [
        json.loads(r[0])
        for r in store.query("SELECT data FROM records WHERE topic = 'notification'")
    ]
    assert [r["ok"] for r in recorded] == [True, False]


def test_a_recorded_burst_far_above_the_baseline_raises_one_alert(world: dict[str, Any]) -> None:
    store = world["store"]

    def access(day: int, hour: int, rows: int) -> Record:
        return Record(
            id=uuid7(),
            ts=f"2026-11-{day:02d}T{hour:02d}:10:00.000000Z",
            topic="access",
            subject="dataset:file:/x",
            data={"principal": "bob", "action": "read", "outcome": "allow", "rows": rows},
        )

    store.append([access(1 + h // 24, h % 24, 100 + h % 7) for h in range(40)])
    quiet = "2026-11-02T15:30:00.000000Z"
    assert check_volume(store, "bob", subject="dataset:file:/x", now=quiet) is None
    store.append([access(3, 2, 50_000)])
    burst = "2026-11-03T02:30:00.000000Z"
    alert = check_volume(store, "bob", subject="dataset:file:/x", now=burst)
    assert alert is not None and alert["kind"] == "access_volume"
    assert alert["details"]["rows"] == 50_000 and alert["details"]["baseline_median"] < 200
    assert (
        check_volume(store, "bob", subject="dataset:file:/x", now=burst) is None
    )  # once per window
    assert len(store.query("SELECT 1 FROM records WHERE topic = 'alert'")) == 1


def test_synthetic_bursts_are_found_with_high_precision_and_recall() -> None:
    rng = random.Random(20261120)
    principals = [f"user{i}" for i in range(40)]
    base = {p: rng.uniform(50, 2000) for p in principals}
    buckets = 24 * 21
    injected: set[tuple[str, int]] = set()
    while len(injected) < 40:
        injected.add((rng.choice(principals), rng.randrange(24 * 3, buckets)))
    detector = VolumeDetector()
    found: set[tuple[str, int]] = set()
    for b in range(buckets):
        for p in principals:
            if (p, b) in injected:
                volume = base[p] * rng.uniform(15, 60)
            elif rng.random() < 0.35:
                volume = base[p] * rng.lognormvariate(0, 0.35)
            else:
                continue
            if detector.observe(p, b, volume) is not None:
                found.add((p, b))
    true = len(found & injected)
    precision = true / len(found) if found else 0.0
    recall = true / len(injected)
    print(f"volume alerts: precision {precision:.3f} recall {recall:.3f} ({len(found)} alerts)")
    assert precision >= 0.9
    assert recall >= 0.9


# -- CLI ------------------------------------------------------------------------------------

runner = CliRunner()


def cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cli_policy_validate_apply_log_explain(world: dict[str, Any]) -> None:
    folder = str(world["home"].path)
    good = world["dir"] / "policy.yaml"
    good.write_text(POLICY.format(rows=10, command="[cat]"))
    bad = world["dir"] / "bad.yaml"
    bad.write_text(POLICY.format(rows="lots", command="[cat]"))
    code, out, err = cli("policy", "validate", str(bad))
    assert code == 2 and f"{bad}:" in err and "limits[0].rows" in err
    code, out, _ = cli("policy", "validate", str(good), "--json")
    assert code == 0 and json.loads(out)["access"] == 1
    code, out, err = cli(
        "policy",
        "apply",
        str(good),
        "--reason",
        "start",
        "--principal",
        "alice",
        "--trail",
        folder,
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["status"] == "active"
    code, out, _ = cli("policy", "log", "--trail", folder, "--json")
    assert [v["version"] for v in json.loads(out)] == [1]
    code, out, _ = cli("policy", "explain", "--trail", folder)
    assert "Members of role analyst may read" in out
    code, out, err = cli(
        "policy", "apply", str(good), "--reason", "x", "--principal", "mallory", "--trail", folder
    )
    assert code == 2  # unchanged document: nothing to do is fine, but mallory is no admin
    assert "policy-admin" in err


def test_cli_why_classified_and_access_log(world: dict[str, Any]) -> None:
    use(world)
    folder = str(world["home"].path)
    code, out, err = cli(
        "why-classified", ds(world, "out/derived.csv"), "--trail", folder, "--json"
    )
    assert code == 0, err
    assert list(json.loads(out)["labels"]) == ["pii"]
    with pytest.raises(PolicyDenied):
        read(ds(world, "raw/customers.csv"), principal="bob", home=world["home"])
    code, out, _ = cli("access-log", "--principal", "bob", "--trail", folder, "--json")
    entries = json.loads(out)
    assert [e["outcome"] for e in entries] == ["deny"]
    assert entries[0]["node"] == ds(world, "raw/customers.csv")
