"""Retention at scale: a plan over 1,000,000 artifacts (100,000 with --quick).

One SQLite trail with N artifact versions spread over 1,000 datasets, ages
from 0 to 400 days, built by appending ``io`` events in batches of 20,000. A
policy with five retention rules (delete after 90 days, a compliance keep of
180 days, a review rule, a last-access rule, an event clock), a legal hold on
ten datasets, accesses and clock events recorded for some of them.

- plan: ``datatrail.retention.plan`` (a decision for every artifact: counts of
  every status, what is due, in review or held), mean of 2, against the bare
  SQL scan of the rows it starts from (the floor any plan pays);
- plan + rendering: the same with every listed item's dates, rules and reason
  made (what ``retention plan --json`` prints).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from benchmarks._harness import Result
from datatrail.governance import parse_policy
from datatrail.model import ArtifactInfo, DatasetRef, IORecorded, JobRef, Record, format_ts, uuid7
from datatrail.retention import plan
from datatrail.store import init_home, open_store

DATASETS = 1_000
BATCH = 20_000
TARGET_S = 10.0
ROUNDS = 2
"""Plans timed (each ~15 s at 1M with its items rendered; make bench stays under ten minutes)."""
DAY_NS = 86_400 * 1_000_000_000

POLICY = """
classifications:
  pii: {}
  financial: {}
datasets:
  - match: {name: "/data/hr/*"}
    classifications: [pii]
    owners: [hr-team]
  - match: {name: "/data/finance/*"}
    classifications: [financial]
retention:
  - id: raw-90d
    match: {namespace: file, name: "/data/raw/*"}
    delete_after: 90d
  - id: finance-keep
    match: {classifications: [financial]}
    keep_at_least: 180d
    delete_after: 200d
    mode: compliance
  - id: hr-review
    match: {classifications: [pii]}
    delete_after: 365d
    action: review
  - id: logs-idle
    match: {name: "/data/logs/*"}
    delete_after: 30d
    clock: last_access
  - id: closed-accounts
    match: {name: "/data/accounts/*"}
    delete_after: 30d
    clock: event:account_closed
"""

_AREAS = ("raw", "finance", "hr", "logs", "accounts")


def _dataset(i: int) -> DatasetRef:
    return DatasetRef(namespace="file", name=f"/data/{_AREAS[i % len(_AREAS)]}/table_{i}.parquet")


def build(folder: Path, n: int) -> str:
    """A trail of ``n`` artifacts over ``DATASETS`` datasets; returns its store URL."""
    home = init_home(folder / ".datatrail")
    store = open_store(home.url, signer=home.signer())
    now = time.time_ns()
    job = JobRef(namespace="bench", name="writer")
    try:
        for start in range(0, n, BATCH):
            events = []
            for i in range(start, min(n, start + BATCH)):
                age = (i * 7919) % 400
                events.append(
                    IORecorded(
                        id=uuid7(),
                        ts=format_ts(now - age * DAY_NS - i),
                        run_id=uuid7(),
                        role="output",
                        artifact=ArtifactInfo(id=f"blake3:{i:064x}", kind="table", rows=100),
                        dataset=_dataset(i % DATASETS),
                        job=job,
                    )
                )
            store.append(events, dedupe=False)
        extra: list[object] = []
        for i in range(0, DATASETS, 100):  # legal holds on ten datasets
            extra.append(
                Record(
                    id=uuid7(),
                    ts=format_ts(now),
                    topic="hold.added",
                    subject=_dataset(i).node_id(),
                    data={"case": f"CASE-{i}", "reason": "bench", "by": "legal"},
                )
            )
        for i in range(3, DATASETS, 5):  # logs read recently
            extra.append(
                Record(
                    id=uuid7(),
                    ts=format_ts(now - (i % 60) * DAY_NS),
                    topic="access",
                    subject=_dataset(i).node_id(),
                    data={"principal": "ana", "outcome": "allow"},
                )
            )
        for i in range(4, DATASETS, 10):  # half of the account tables closed
            extra.append(
                Record(
                    id=uuid7(),
                    ts=format_ts(now - 45 * DAY_NS),
                    topic="event.account_closed",
                    subject=_dataset(i).node_id(),
                    data={"name": "account_closed"},
                )
            )
        store.append(extra, dedupe=False)  # type: ignore[arg-type]
    finally:
        store.close()
    return home.url


def run(quick: bool) -> list[Result]:
    n = 100_000 if quick else 1_000_000
    policy = parse_policy(POLICY)
    with tempfile.TemporaryDirectory(prefix="dt-bench-retention-") as tmp:
        t0 = time.perf_counter()
        url = build(Path(tmp), n)
        built = time.perf_counter() - t0
        store = open_store(url)
        try:
            scans = []
            for _ in range(3):
                t = time.perf_counter()
                store.query(
                    "SELECT dataset_namespace, dataset_name, artifact_id, ts, idx FROM run_io "
                    "WHERE dataset_name IS NOT NULL ORDER BY idx"
                )
                scans.append(time.perf_counter() - t)
            plans = []
            rendered = []
            result = None
            for _ in range(ROUNDS):
                t = time.perf_counter()
                result = plan(store, policy=policy, version=1)
                plans.append(time.perf_counter() - t)
                listed = len(result.items)  # dates and reasons of every listed item
                rendered.append(time.perf_counter() - t)
        finally:
            store.close()
    assert result is not None
    ours, base = statistics.mean(plans), statistics.median(scans)
    whole = statistics.mean(rendered)
    counts = {f"count_{k}": float(v) for k, v in result.counts.items()}
    return [
        Result(
            name=f"retention plan, {n:,} artifacts",
            ours=ours,
            unit="s",
            target=f"<= {TARGET_S:g} s at 1,000,000",
            ok=ours <= TARGET_S * (n / 1_000_000),
            baseline=base,
            baseline_name="bare SQL scan of the rows",
            ratio=ours / base if base else None,
            note=f"decisions for every artifact; store built in {built:.0f} s",
            extra={"listed": float(listed), **counts},
        ),
        Result(
            name=f"retention plan + {listed:,} listed items rendered",
            ours=whole,
            unit="s",
            target=f"<= {TARGET_S:g} s at 1,000,000",
            ok=whole <= TARGET_S * (n / 1_000_000),
            baseline=base,
            baseline_name="bare SQL scan of the rows",
            ratio=whole / base if base else None,
            note="with each listed item's dates, rules and reason (what --json prints)",
        ),
    ]
