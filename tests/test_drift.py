"""Lineage drift and anomaly detection on seeded synthetic histories (precision and recall)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from datatrail.alerts import list_alerts, scan
from datatrail.model import (
    ArtifactInfo,
    DatasetRef,
    IORecorded,
    JobRef,
    RunFinished,
    RunStarted,
    format_ts,
    uuid7,
)
from datatrail.store import SQLiteStore

T0 = 1_790_000_000 * 10**9
MINUTE = 60 * 10**9


@dataclass
class Seeder:
    """Builds runs as the recorders would, into a real store."""

    events: list = field(default_factory=list)
    clock: int = T0
    n: int = 0

    def art(self, rows: int, size: int) -> ArtifactInfo:
        self.n += 1
        return ArtifactInfo(id="blake3:" + f"{self.n:064x}", kind="pandas", rows=rows, size=size)

    def run(
        self,
        job: str,
        *,
        reads: list[str] = (),  # type: ignore[assignment]
        writes: list[str] = (),  # type: ignore[assignment]
        duration_ms: float = 1000.0,
        rows: int = 1000,
        size: int = 80_000,
        failed: bool = False,
        handoff: bool = False,
    ) -> str:
        ref = JobRef(namespace="default", name=job)
        run_id = uuid7()
        start = self.clock
        self.clock += MINUTE
        ev = self.events
        ev.append(RunStarted(id=uuid7(), ts=format_ts(start), run_id=run_id, job=ref))
        for name in reads:
            ds = DatasetRef(namespace="file", name=name)
            ev.append(
                IORecorded(
                    id=uuid7(),
                    ts=format_ts(start + 1),
                    run_id=run_id,
                    role="input",
                    artifact=self.art(rows, size),
                    dataset=ds,
                    job=ref,
                )
            )
        if not failed:
            for name in writes:
                ds = DatasetRef(namespace="file", name=name)
                ev.append(
                    IORecorded(
                        id=uuid7(),
                        ts=format_ts(start + 2),
                        run_id=run_id,
                        role="output",
                        artifact=self.art(rows, size),
                        dataset=ds,
                        job=ref,
                    )
                )
        end = start + int(duration_ms * 1e6)
        ev.append(
            RunFinished(
                id=uuid7(),
                ts=format_ts(end),
                run_id=run_id,
                status="failed" if failed else "completed",
            )
        )
        return run_id

    def store(self, path: Path) -> SQLiteStore:
        store = SQLiteStore(path / "trail.db", create=True)
        store.append(self.events, dedupe=False)
        return store


def score(name: str, flagged: set[str], truth: set[str]) -> tuple[float, float]:
    hits = len(flagged & truth)
    precision = hits / len(flagged) if flagged else 1.0
    recall = hits / len(truth) if truth else 1.0
    print(
        f"{name}: precision {precision:.3f}, recall {recall:.3f} ({hits}/{len(truth)} found, {len(flagged)} flagged)"
    )
    return precision, recall


PIPES = {
    "/lake/orders.parquet": ("jobs.orders", ["/raw/orders.csv", "/raw/fx.csv"]),
    "/lake/customers.parquet": ("jobs.customers", ["/raw/crm.csv", "/raw/regions.csv"]),
    "/lake/revenue.parquet": ("jobs.revenue", ["/lake/orders.parquet", "/lake/customers.parquet"]),
}


def lineage_history(rng: random.Random, runs: int, inject: bool) -> tuple[Seeder, set[str]]:
    seeder = Seeder()
    truth: set[str] = set()
    last_injected = dict.fromkeys(PIPES, -100)
    count = dict.fromkeys(PIPES, 0)
    for i in range(runs):
        ds = list(PIPES)[i % len(PIPES)]
        job, reads = PIPES[ds]
        count[ds] += 1
        k = count[ds]
        if inject and k > 12 and k - last_injected[ds] > 8 and rng.random() < 0.12:
            last_injected[ds] = k
            how = rng.choice(("new_upstream", "missing", "new_job", "swap"))
            if how == "new_upstream":
                rid = seeder.run(job, reads=[*reads, f"/raw/extra{i}.csv"], writes=[ds])
            elif how == "missing":
                rid = seeder.run(job, reads=reads[:1], writes=[ds])
            elif how == "new_job":
                rid = seeder.run(f"jobs.rogue{i}", reads=reads, writes=[ds])
            else:
                rid = seeder.run(job, reads=[reads[0], f"/raw/other{i}.csv"], writes=[ds])
            truth.add(rid)
        else:
            seeder.run(job, reads=reads, writes=[ds])
    return seeder, truth


def test_drift_detection_precision_and_recall(tmp_path: Path) -> None:
    seeder, truth = lineage_history(random.Random(7), 1000, inject=True)
    assert len(truth) >= 20
    store = seeder.store(tmp_path)
    result = scan(store, kinds=("lineage_drift",), notify=False)
    flagged = {a["details"]["run_id"] for a in result.raised}
    precision, recall = score("lineage drift", flagged, truth)
    assert precision >= 0.9
    assert recall >= 0.9
    # every alert names the difference it saw
    for alert in result.raised:
        d = alert["details"]
        assert d["new_job"] or d["new_upstream"] or d["missing_upstream"]
        assert alert["kind"] == "lineage_drift" and alert["subject"].startswith("dataset:file:")


def test_a_new_upstream_alert_names_the_dataset(tmp_path: Path) -> None:
    seeder = Seeder()
    for _ in range(6):
        seeder.run("jobs.orders", reads=["/raw/orders.csv"], writes=["/lake/orders.parquet"])
    odd = seeder.run(
        "jobs.orders", reads=["/raw/orders.csv", "/raw/leak.csv"], writes=["/lake/orders.parquet"]
    )
    (alert,) = scan(seeder.store(tmp_path), notify=False).raised
    assert alert["details"]["run_id"] == odd
    assert alert["details"]["new_upstream"] == ["dataset:file:/raw/leak.csv"]
    assert "new upstream dataset:file:/raw/leak.csv" in alert["message"]


def test_drift_follows_in_memory_handoffs_to_the_nearest_datasets(tmp_path: Path) -> None:
    from datatrail.alerts import detect_drift, load_history

    seeder = Seeder()
    for i in range(8):
        reads = ["/raw/a.csv"] if i < 7 else ["/raw/b.csv"]
        load = seeder.run("jobs.load", reads=reads)
        # the load run outputs an in-memory frame that the save run reads
        frame = seeder.art(10, 100)
        seeder.events.append(
            IORecorded(
                id=uuid7(),
                ts=format_ts(seeder.clock),
                run_id=load,
                role="output",
                artifact=frame,
                job=JobRef(namespace="default", name="jobs.load"),
            )
        )
        save = uuid7()
        ref = JobRef(namespace="default", name="jobs.save")
        seeder.events += [
            RunStarted(id=uuid7(), ts=format_ts(seeder.clock + 5), run_id=save, job=ref),
            IORecorded(
                id=uuid7(),
                ts=format_ts(seeder.clock + 6),
                run_id=save,
                role="input",
                artifact=frame,
                job=ref,
            ),
            IORecorded(
                id=uuid7(),
                ts=format_ts(seeder.clock + 7),
                run_id=save,
                role="output",
                artifact=seeder.art(10, 100),
                dataset=DatasetRef(namespace="file", name="/out/r.csv"),
                job=ref,
            ),
            RunFinished(
                id=uuid7(), ts=format_ts(seeder.clock + 8), run_id=save, status="completed"
            ),
        ]
        seeder.clock += MINUTE
    found = detect_drift(load_history(seeder.store(tmp_path)))
    (drift,) = found
    assert drift.details["new_upstream"] == ["dataset:file:/raw/b.csv"]
    assert drift.details["missing_upstream"] == ["dataset:file:/raw/a.csv"]


def anomaly_history(rng: random.Random, runs: int, inject: bool) -> tuple[Seeder, set[str]]:
    seeder = Seeder()
    truth: set[str] = set()
    jobs = [f"jobs.step{j}" for j in range(5)]
    base = {job: (rng.uniform(200, 5000), rng.randint(1000, 100_000)) for job in jobs}
    seen = dict.fromkeys(jobs, 0)
    for i in range(runs):
        job = jobs[i % len(jobs)]
        seen[job] += 1
        duration, rows = base[job]
        d = rng.gauss(duration, duration * 0.05)
        r = max(1, int(rng.gauss(rows, rows * 0.03)))
        s = int(r * 80 * rng.uniform(0.98, 1.02))
        bad = inject and seen[job] > 30 and rng.random() < 0.04
        if bad:
            how = rng.choice(("slow", "fewer", "more", "bigger"))
            if how == "slow":
                d *= rng.uniform(4, 10)
            elif how == "fewer":
                r, s = r // 20, s // 20
            elif how == "more":
                r, s = r * 5, s * 5
            else:
                s *= 6
        rid = seeder.run(job, writes=[f"/lake/{job}.parquet"], duration_ms=d, rows=r, size=s)
        if bad:
            truth.add(rid)
    return seeder, truth


def test_anomaly_detection_precision_and_recall(tmp_path: Path) -> None:
    seeder, truth = anomaly_history(random.Random(11), 1000, inject=True)
    assert len(truth) >= 20
    result = scan(seeder.store(tmp_path), kinds=("anomaly",), notify=False)
    flagged = {a["details"]["run_id"] for a in result.raised}
    precision, recall = score("anomalies", flagged, truth)
    assert precision >= 0.9
    assert recall >= 0.9
    some = result.raised[0]
    assert some["details"]["metrics"] and "median" in some["message"]


@pytest.mark.parametrize("seed", [1, 2])
def test_no_alert_on_a_stable_history_of_1000_runs(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    lineage, _ = lineage_history(rng, 1000, inject=False)
    patterns, _ = anomaly_history(rng, 1000, inject=False)
    for name, seeder in (("lineage", lineage), ("patterns", patterns)):
        folder = tmp_path / name
        folder.mkdir()
        result = scan(seeder.store(folder), notify=False)
        assert result.runs == 1000
        assert result.raised == [], result.raised[:3]


def test_a_failure_burst_is_one_anomaly(tmp_path: Path) -> None:
    seeder = Seeder()
    for i in range(60):
        seeder.run("jobs.flaky", writes=["/lake/f.parquet"], failed=i in (10, 35))
    ids = [seeder.run("jobs.flaky", writes=["/lake/f.parquet"], failed=True) for _ in range(6)]
    alerts = scan(seeder.store(tmp_path), notify=False).raised
    bursts = [a for a in alerts if "failure_rate" in a["details"]["metrics"]]
    assert len(bursts) == 1
    assert bursts[0]["details"]["run_id"] in ids
    assert bursts[0]["severity"] == "critical"


def test_scan_is_idempotent_and_alerts_can_be_acknowledged(tmp_path: Path) -> None:
    from datatrail.alerts import ack

    seeder, _ = anomaly_history(random.Random(3), 300, inject=True)
    store = seeder.store(tmp_path)
    first = scan(store, notify=False)
    assert first.raised
    again = scan(store, notify=False)
    assert again.raised == [] and again.detections == first.detections
    listed = list_alerts(store)
    assert len(listed) == len(first.raised)
    target = listed[0]
    acked = ack(store, target.alert_id, by="ana", note="known backfill")
    assert acked.acked and acked.ack is not None and acked.ack["note"] == "known backfill"
    assert [a.alert_id for a in list_alerts(store, unacked=True)] == [
        a.alert_id for a in listed[1:]
    ]
    assert list_alerts(store, kind="lineage_drift") == []
