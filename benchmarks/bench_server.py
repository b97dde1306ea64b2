"""Server: OpenLineage ingest over HTTP (single events and batches) and lineage query latency.

The server runs as a real uvicorn subprocess (``datatrail serve``'s app factory)
and is driven over HTTP from this process, so both sides are what a deployment
does. Each row's baseline is the same work without HTTP, measured in the same
run: validating, mapping and appending the same events straight into a store
(ingest), and ``Trail.lineage`` called directly (queries). The ratio is what
HTTP, auth and JSON cost on top.

The lineage graph is chains of 25 datasets, each step a job whose every run
reads one version and writes the next: 2,000 runs with ``--quick``, 100,000
otherwise (``DATATRAIL_BENCH_RUNS`` overrides; the issue's figure is for 1M).
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._harness import Result, percentile
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
from datatrail.server import create_token
from datatrail.store import Home, init_home, open_store

SINGLE_TARGET = 1_000.0
BATCH_TARGET = 20_000.0
P95_TARGET_MS = 300.0
CHAIN = 25
BATCH = 1_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    """``datatrail serve``'s app in a uvicorn subprocess."""

    def __init__(self, home: Home) -> None:
        self.port = _free_port()
        env = {
            **os.environ,
            "DATATRAIL_SERVE_TRAIL": str(home.path),
            "DATATRAIL_HOME": str(home.path),
        }
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "uvicorn", "datatrail.server._app:app_from_env"),
                *("--factory", "--port", str(self.port), "--log-level", "warning"),
                "--no-access-log",
            ],
            env=env,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        import httpx

        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("the server did not start")
            time.sleep(0.1)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def _token(home: Home, role: str) -> str:
    store = open_store(home.url, signer=home.signer())
    try:
        return create_token(store, principal="bench", role=role)[0]
    finally:
        store.close()


# -- OpenLineage ingest ---------------------------------------------------------------


def _ol_event(i: int) -> dict[str, Any]:
    return {
        "eventType": "COMPLETE",
        "eventTime": "2026-01-01T00:00:00.000Z",
        "run": {"runId": str(uuid.UUID(int=i + 1, version=4))},
        "job": {"namespace": "bench", "name": f"job-{i % 50}"},
        "inputs": [{"namespace": "bench", "name": f"table-{i % 50}"}],
        "outputs": [{"namespace": "bench", "name": f"table-{i % 50 + 1}"}],
        "producer": "https://example.com/datatrail-bench",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
    }


def _parallel(work: list[Any], threads: int, fn: Callable[[Any, Any], None], url: str) -> float:
    """Seconds to run ``fn(client, item)`` over ``work`` split across ``threads`` keep-alive clients."""
    import httpx

    parts = [work[t::threads] for t in range(threads)]
    errors: list[BaseException] = []

    def worker(part: list[Any]) -> None:
        try:
            with httpx.Client(base_url=url, timeout=60) as client:
                for item in part:
                    fn(client, item)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(p,)) for p in parts]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - start


def _ingest_rows(quick: bool, root: Path) -> list[Result]:
    try:
        from datatrail.interop.openlineage import events_from_openlineage, validate_openlineage
    except ImportError as exc:
        note = f"not measured: datatrail.interop.openlineage cannot map events yet ({exc})"
        return [
            Result(
                "ingest single OpenLineage events over HTTP",
                0.0,
                "events/s",
                "≥ 1,000",
                False,
                note=note,
            ),
            Result(
                "ingest OpenLineage batches over HTTP",
                0.0,
                "events/s",
                "≥ 20,000",
                False,
                note=note,
            ),
        ]
    n_single = 1_000 if quick else 5_000
    n_batch = 20_000 if quick else 100_000
    home = init_home(root / "ingest" / ".datatrail")
    token = _token(home, "producer")
    headers = {"Authorization": f"Bearer {token}"}
    server = _Server(home)
    try:
        events = [_ol_event(i) for i in range(n_single)]

        def post_one(client: Any, event: dict[str, Any]) -> None:
            r = client.post("/api/v1/lineage", json=event, headers=headers)
            if r.status_code != 200:
                raise RuntimeError(f"ingest failed: {r.status_code} {r.text[:200]}")

        single_s = _parallel(events, 4, post_one, server.url)
        batch_events = [_ol_event(n_single + i) for i in range(n_batch)]
        batches = [batch_events[i : i + BATCH] for i in range(0, n_batch, BATCH)]

        def post_batch(client: Any, batch: list[dict[str, Any]]) -> None:
            r = client.post("/api/v1/lineage/batch", json=batch, headers=headers)
            if r.status_code != 200 or r.json()["summary"]["failed"]:
                raise RuntimeError(f"batch failed: {r.status_code} {r.text[:200]}")

        batch_s = _parallel(batches, 2, post_batch, server.url)
    finally:
        server.close()

    # Baselines: the same validation, mapping and appends, in process.
    direct = init_home(root / "direct" / ".datatrail")
    store = open_store(direct.url, signer=direct.signer())
    try:
        start = time.perf_counter()
        for event in (_ol_event(10**7 + i) for i in range(n_single)):
            validate_openlineage(event)
            store.append(events_from_openlineage(event))
        direct_single_s = time.perf_counter() - start
        start = time.perf_counter()
        for b in range(0, n_batch, BATCH):
            mapped = []
            for event in (_ol_event(2 * 10**7 + b + i) for i in range(BATCH)):
                validate_openlineage(event)
                mapped.extend(events_from_openlineage(event))
            store.append(mapped)
        direct_batch_s = time.perf_counter() - start
    finally:
        store.close()
    single_rate, batch_rate = n_single / single_s, n_batch / batch_s
    base_single, base_batch = n_single / direct_single_s, n_batch / direct_batch_s
    return [
        Result(
            name=f"ingest {n_single:,} single OpenLineage events over HTTP (4 clients)",
            ours=single_rate,
            unit="events/s",
            target=f"≥ {SINGLE_TARGET:,.0f} events/s",
            ok=single_rate >= SINGLE_TARGET,
            baseline=base_single,
            baseline_name="validate + map + append one by one, in process",
            ratio=single_rate / base_single,
        ),
        Result(
            name=f"ingest {n_batch:,} OpenLineage events over HTTP in batches of {BATCH:,}",
            ours=batch_rate,
            unit="events/s",
            target=f"≥ {BATCH_TARGET:,.0f} events/s",
            ok=batch_rate >= BATCH_TARGET,
            baseline=base_batch,
            baseline_name="validate + map + append per batch, in process",
            ratio=batch_rate / base_batch,
        ),
    ]


# -- lineage queries ------------------------------------------------------------------


def _artifact(step: int, round_no: int) -> ArtifactInfo:
    digest = hashlib.blake2b(f"{step}/{round_no}".encode(), digest_size=32).hexdigest()
    return ArtifactInfo(id=f"blake3:{digest}", kind="table", rows=100)


def _build_graph(home: Home, runs: int) -> tuple[str, str]:
    """Chains of datasets; returns the last dataset's node id and its newest artifact's."""
    store = open_store(home.url, signer=home.signer())
    rounds = max(1, runs // (CHAIN - 1))
    ns = 1_700_000_000 * 10**9
    pending: list[Any] = []
    try:
        for r in range(rounds):
            for step in range(CHAIN - 1):
                ns += 1_000
                ts = format_ts(ns)
                run_id = uuid7()
                job = JobRef(namespace="bench", name=f"step-{step:02d}")
                pending += [
                    RunStarted(id=uuid7(), ts=ts, run_id=run_id, job=job),
                    IORecorded(
                        id=uuid7(),
                        ts=ts,
                        run_id=run_id,
                        role="input",
                        job=job,
                        artifact=_artifact(step, r),
                        dataset=DatasetRef(namespace="bench", name=f"table-{step:02d}"),
                    ),
                    IORecorded(
                        id=uuid7(),
                        ts=ts,
                        run_id=run_id,
                        role="output",
                        job=job,
                        artifact=_artifact(step + 1, r),
                        dataset=DatasetRef(namespace="bench", name=f"table-{step + 1:02d}"),
                    ),
                    RunFinished(id=uuid7(), ts=ts, run_id=run_id, status="completed"),
                ]
                if len(pending) >= 20_000:
                    store.append(pending, dedupe=False)
                    pending = []
        if pending:
            store.append(pending, dedupe=False)
    finally:
        store.close()
    last = f"table-{CHAIN - 1:02d}"
    return f"dataset:bench:{last}", f"artifact:{_artifact(CHAIN - 1, rounds - 1).id}"


def _lineage_rows(quick: bool, root: Path) -> list[Result]:
    import httpx

    from datatrail.lineage import Trail

    runs = int(os.environ.get("DATATRAIL_BENCH_RUNS", 2_000 if quick else 100_000))
    requests = 100 if quick else 300
    home = init_home(root / "graph" / ".datatrail")
    dataset, artifact = _build_graph(home, runs)
    token = _token(home, "viewer")
    server = _Server(home)
    rows = []
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client, Trail(home.path) as trail:
            for label, node in (("dataset", dataset), ("artifact", artifact)):
                params = {"nodeId": node, "depth": 20}
                headers = {"Authorization": f"Bearer {token}"}
                first = client.get("/api/v1/lineage", params=params, headers=headers)
                if first.status_code != 200 or len(first.json()["nodes"]) < 20:
                    raise RuntimeError(
                        f"lineage query failed: {first.status_code} {first.text[:200]}"
                    )
                http_ms, direct_ms = [], []
                for _ in range(requests):
                    t0 = time.perf_counter()
                    client.get("/api/v1/lineage", params=params, headers=headers).json()
                    http_ms.append((time.perf_counter() - t0) * 1000)
                    t0 = time.perf_counter()
                    trail.lineage(node, depth=20).to_dict()
                    direct_ms.append((time.perf_counter() - t0) * 1000)
                p95, base = percentile(http_ms, 95), percentile(direct_ms, 95)
                rows.append(
                    Result(
                        name=f"GET /api/v1/lineage depth 20 from a {label}, {runs:,}-run graph (p95)",
                        ours=p95,
                        unit="ms",
                        target=f"≤ {P95_TARGET_MS:.0f} ms p95 (issue: on a 1M-run graph)",
                        ok=p95 <= P95_TARGET_MS,
                        baseline=base,
                        baseline_name="Trail.lineage in process (p95)",
                        ratio=p95 / base if base else None,
                        note=f"{requests} requests; {len(first.json()['nodes'])} nodes returned; "
                        f"median {percentile(http_ms, 50):.1f} ms",
                    )
                )
    finally:
        server.close()
    return rows


def run(quick: bool) -> list[Result]:
    """Benchmark rows for the server."""
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        root = Path(tmp)
        return [*_ingest_rows(quick, root), *_lineage_rows(quick, root)]
