"""Detectors: lineage drift per dataset and pattern anomalies per job, over the recorded history.

Both replay the history in log order, so the same history always gives the
same detections (and, through deterministic alert ids, the same alerts).

**Lineage drift.** For each dataset, the jobs that write it and, per writing
job, the datasets its runs read: directly, or through in-memory values that
earlier runs made (the nearest datasets upstream). Learned from history: a
writer job never seen before (once the dataset has at least ``warmup``
writes), an upstream dataset never seen before for that job, or an upstream
that every one of the job's last ``window`` writes read and this one does not.
A contract's ``lineage`` section, when declared, replaces what history says.

**Anomalies.** For each job, rolling baselines over its previous ``window``
completed runs of duration, output rows and output bytes: a run whose robust
z-score ``|x - median| / (1.4826 * MAD)`` exceeds ``threshold`` (and that is at
least ``min_change`` away from the median, relatively, and for durations at
least ``min_duration_change_ms``) is an anomaly. The
failure rate over the last ``recent`` runs is compared with the baseline rate
before them the same way, as a binomial excess.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from datatrail.store import Store

__all__ = [
    "AnomalySettings",
    "Detection",
    "DriftSettings",
    "History",
    "RunFacts",
    "detect_anomalies",
    "detect_drift",
    "load_history",
]


@dataclass
class RunFacts:
    """What the detectors know about one run."""

    run_id: str
    job: str
    status: str
    started_at: str | None
    index: int
    duration_ms: float | None = None
    rows_out: int | None = None
    bytes_out: int | None = None
    inputs: list[tuple[int, str, str | None]] = field(default_factory=list)
    """(io index, artifact id, dataset node id or None)."""
    outputs: list[tuple[int, str, str | None]] = field(default_factory=list)


@dataclass
class History:
    """Runs in log order and who produced each artifact."""

    runs: list[RunFacts]
    by_id: dict[str, RunFacts]
    producers: dict[str, list[tuple[int, str]]]
    """artifact id -> [(io index, run id)] of the runs that output it, in order."""


@dataclass(frozen=True)
class Detection:
    """One thing worth an alert: its kind, subject, key (for the alert id) and what was found."""

    kind: str
    subject: str
    key: str
    severity: str
    message: str
    details: dict[str, Any]
    ts: str | None


@dataclass(frozen=True)
class DriftSettings:
    """How lineage drift is learned."""

    warmup: int = 3
    """Writes of a dataset (or by a job) before novelty counts as drift."""
    window: int = 5
    """An upstream read by each of this many latest writes is expected."""
    depth: int = 20


@dataclass(frozen=True)
class AnomalySettings:
    """How far outside its baseline a run must be to be an anomaly."""

    window: int = 50
    min_history: int = 20
    threshold: float = 6.0
    min_change: float = 0.25
    recent: int = 10
    min_failures: int = 3
    min_duration_change_ms: float = 250.0
    """Duration deviations smaller than this are scheduling noise, never an anomaly."""


def _ms(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    a = datetime.fromisoformat(start.replace("Z", "+00:00"))
    b = datetime.fromisoformat(end.replace("Z", "+00:00"))
    return (b - a).total_seconds() * 1000


def load_history(store: Store) -> History:
    """Every run with its inputs, outputs and output sizes, in log order."""
    runs: list[RunFacts] = []
    by_id: dict[str, RunFacts] = {}
    for run_id, jns, jname, status, started, ended, start_idx in store.query(
        "SELECT run_id, job_namespace, job_name, status, started_at, ended_at, start_idx "
        "FROM runs ORDER BY start_idx"
    ):
        facts = RunFacts(
            run_id=run_id,
            job=f"job:{jns}:{jname}",
            status=status,
            started_at=started,
            index=int(start_idx or 0),
            duration_ms=_ms(started, ended) if status == "completed" else None,
        )
        runs.append(facts)
        by_id[run_id] = facts
    producers: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for idx, run_id, role, art, dns, dname, rows, size in store.query(
        "SELECT io.idx, io.run_id, io.role, io.artifact_id, io.dataset_namespace, io.dataset_name, "
        "a.rows, a.size FROM run_io io LEFT JOIN artifacts a ON a.artifact_id = io.artifact_id "
        "ORDER BY io.idx"
    ):
        facts_or_none = by_id.get(run_id)
        if facts_or_none is None:
            continue
        ds = f"dataset:{dns}:{dname}" if dname is not None else None
        entry = (int(idx), str(art), ds)
        if role == "input":
            facts_or_none.inputs.append(entry)
        else:
            facts_or_none.outputs.append(entry)
            producers[str(art)].append((int(idx), run_id))
            if rows is not None:
                facts_or_none.rows_out = (facts_or_none.rows_out or 0) + int(rows)
            if size is not None:
                facts_or_none.bytes_out = (facts_or_none.bytes_out or 0) + int(size)
    return History(runs=runs, by_id=by_id, producers=dict(producers))


def _upstream(history: History, run: RunFacts, depth: int) -> set[str]:
    """The nearest datasets upstream of a run, through in-memory hand-offs."""
    found: set[str] = set()
    seen: set[str] = {run.run_id}
    frontier = [run]
    for _ in range(depth):
        nxt: list[RunFacts] = []
        for current in frontier:
            for idx, art, ds in current.inputs:
                if ds is not None:
                    found.add(ds)
                    continue
                made = [r for i, r in history.producers.get(art, []) if i < idx]
                if made and made[-1] not in seen:
                    seen.add(made[-1])
                    nxt.append(history.by_id[made[-1]])
        if not nxt:
            break
        frontier = nxt
    return found


def detect_drift(
    history: History,
    *,
    declared: dict[str, tuple[set[str], set[str]]] | None = None,
    settings: DriftSettings = DriftSettings(),
) -> list[Detection]:
    """Lineage drift over the whole history (``declared``: dataset -> (jobs, upstreams))."""
    declared = declared or {}
    writes: dict[str, int] = defaultdict(int)
    jobs_seen: dict[str, set[str]] = defaultdict(set)
    ups_seen: dict[tuple[str, str], set[str]] = defaultdict(set)
    ups_recent: dict[tuple[str, str], deque[set[str]]] = defaultdict(
        lambda: deque(maxlen=settings.window)
    )
    out: list[Detection] = []
    for run in history.runs:
        if run.status != "completed":
            continue
        datasets = sorted({ds for _, _, ds in run.outputs if ds is not None})
        if not datasets:
            continue
        upstream = _upstream(history, run, settings.depth)
        for ds in datasets:
            key = (ds, run.job)
            current = upstream - {ds}
            new_job: str | None = None
            new_ups: set[str] = set()
            missing: set[str] = set()
            if ds in declared:
                jobs, ups = declared[ds]
                if jobs and run.job not in jobs:
                    new_job = run.job
                if ups:
                    new_ups = current - ups
                    missing = ups - current
            else:
                if writes[ds] >= settings.warmup and run.job not in jobs_seen[ds]:
                    new_job = run.job
                recent = ups_recent[key]
                if len(recent) >= settings.warmup:
                    new_ups = current - ups_seen[key]
                if len(recent) == settings.window:
                    missing = set.intersection(*recent) - current
            writes[ds] += 1
            jobs_seen[ds].add(run.job)
            ups_seen[key] |= current
            ups_recent[key].append(current)
            if not (new_job or new_ups or missing):
                continue
            parts = []
            if new_job:
                parts.append(f"new writer job {new_job}")
            if new_ups:
                parts.append("new upstream " + ", ".join(sorted(new_ups)))
            if missing:
                parts.append("no longer reads " + ", ".join(sorted(missing)))
            out.append(
                Detection(
                    kind="lineage_drift",
                    subject=ds,
                    key=run.run_id,
                    severity="warning",
                    message=f"{ds} written by run {run.run_id} ({run.job}): " + "; ".join(parts),
                    details={
                        "run_id": run.run_id,
                        "job": run.job,
                        "new_job": new_job,
                        "new_upstream": sorted(new_ups),
                        "missing_upstream": sorted(missing),
                        "declared": ds in declared,
                    },
                    ts=run.started_at,
                )
            )
    return out


def _robust(values: Iterable[float]) -> tuple[float, float]:
    data = list(values)
    median = statistics.median(data)
    mad = statistics.median(abs(v - median) for v in data)
    return median, mad


def detect_anomalies(
    history: History, *, settings: AnomalySettings = AnomalySettings()
) -> list[Detection]:
    """Runs far outside their own job's rolling baselines, and failure-rate bursts."""
    out: list[Detection] = []
    by_job: dict[str, list[RunFacts]] = defaultdict(list)
    for run in history.runs:
        by_job[run.job].append(run)
    metrics = ("duration_ms", "rows_out", "bytes_out")
    for job, runs in by_job.items():
        baseline: dict[str, deque[float]] = {m: deque(maxlen=settings.window) for m in metrics}
        outcomes: deque[bool] = deque(maxlen=settings.window + settings.recent)
        bursting = False
        for run in runs:
            if run.status == "running":
                continue
            found: dict[str, Any] = {}
            if run.status == "completed":
                for metric in metrics:
                    value = getattr(run, metric)
                    if value is None:
                        continue
                    past = baseline[metric]
                    if len(past) >= settings.min_history:
                        median, mad = _robust(past)
                        scale = 1.4826 * mad or max(abs(median) * 0.01, 1e-9)
                        score = abs(value - median) / scale
                        change = abs(value - median) / max(abs(median), 1e-9)
                        small = (
                            metric == "duration_ms"
                            and abs(value - median) < settings.min_duration_change_ms
                        )
                        if (
                            score > settings.threshold
                            and change > settings.min_change
                            and not small
                        ):
                            found[metric] = {
                                "value": value,
                                "median": median,
                                "mad": mad,
                                "score": round(score, 2),
                            }
                    past.append(float(value))
            if found:
                named = ", ".join(
                    f"{m} {v['value']:g} (median {v['median']:g})" for m, v in found.items()
                )
                out.append(
                    Detection(
                        kind="anomaly",
                        subject=f"run:{run.run_id}",
                        key=run.run_id,
                        severity="warning",
                        message=f"run {run.run_id} of {job} is far outside its baseline: {named}",
                        details={"run_id": run.run_id, "job": job, "metrics": found},
                        ts=run.started_at,
                    )
                )
            outcomes.append(run.status == "failed")
            burst = _failure_burst(list(outcomes), settings)
            if burst is not None and not bursting:
                rate, base = burst
                out.append(
                    Detection(
                        kind="anomaly",
                        subject=job,
                        key=f"failures:{run.run_id}",
                        severity="critical",
                        message=f"{job}: {rate:.0%} of the last {settings.recent} runs failed "
                        f"(baseline {base:.0%})",
                        details={
                            "run_id": run.run_id,
                            "job": job,
                            "metrics": {"failure_rate": {"value": rate, "baseline": base}},
                        },
                        ts=run.started_at,
                    )
                )
            bursting = burst is not None
    return out


def _failure_burst(outcomes: list[bool], settings: AnomalySettings) -> tuple[float, float] | None:
    if len(outcomes) < settings.recent + settings.min_history:
        return None
    recent = outcomes[-settings.recent :]
    before = outcomes[: -settings.recent]
    failures = sum(recent)
    if failures < settings.min_failures:
        return None
    rate = failures / len(recent)
    base = sum(before) / len(before)
    spread = math.sqrt(max(base * (1 - base), 0.01) / len(recent))
    if rate - base > settings.threshold / 2 * spread and rate > 2 * base:
        return rate, base
    return None
