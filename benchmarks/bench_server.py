"""Server: OpenLineage ingest over HTTP (single events and batches) and lineage query latency.

The server runs as a real uvicorn subprocess (``datatrail serve``'s app factory)
and is driven over HTTP from this process, so both sides are what a deployment
does. Each row's baseline is the same work without HTTP, measured in the same
run: validating, mapping and appending the same events straight into a store
(ingest), and ``Trail.lineage`` called directly (queries). The ratio is what
HTTP, auth and JSON cost on top.

Ingest events are the official OpenLineage sample (``client-tests/example_full_event.json``
under the shared test data: run, job and dataset facets, a schema, quality assertions,
output statistics), one START and one COMPLETE per run, each run with its own id, job
and tables. A run's COMPLETE follows its START on the same connection (single events)
or a few hundred events later, often in the next batch (batches), as a producer
sends them. Request bodies are encoded before the clock starts, and each client is
a lean keep-alive HTTP/1.1 connection (:class:`_Client`), so the figure is the server's.

The lineage graph is :func:`benchmarks.bench_core._synthetic_graph` (1M runs in
1,000 chains with random cross-links; 100,000 with ``--quick``;
``DATATRAIL_BENCH_RUNS`` overrides), served as a trail, and queried upstream at
depth 20 from random chain tips with a viewer's token.
"""

from __future__ import annotations

import copy
import json
import os
import random
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
from datatrail.server import create_token
from datatrail.store import Home, init_home, open_store

SINGLE_TARGET = 1_000.0
BATCH_TARGET = 20_000.0
P95_TARGET_MS = 300.0
BATCH = 1_000
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "testdata"
SAMPLE = SHARED / "openlineage" / "client-tests" / "example_full_event.json"


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
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _ = _Client(self.port).request("GET", "/healthz")
                if status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("the server did not start")
            time.sleep(0.1)

    def close(self) -> None:
        self.proc.terminate()  # uvicorn shuts down gracefully: the app's lifespan ends
        self.proc.wait(timeout=30)


class _Client:
    """One keep-alive HTTP/1.1 connection over a plain socket, light on the CPU we share.

    Load generators are lean so that the figure is the server's: the standard
    library's ``http.client`` spends about 0.27 ms of CPU a request here (headers
    through ``email.parser``, a buffered reader), and four client threads share
    one GIL, so at one event a request it was a quarter of each round trip. This
    sends each request as one ``sendall`` and reads the response by its
    ``Content-Length`` (which the server always sets; anything else is an error).
    """

    def __init__(self, port: int, headers: dict[str, str] | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.head = f"Host: 127.0.0.1:{port}\r\n{extra}".encode()
        self.buffer = b""

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\n".encode() + self.head
        if body is not None:
            head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        self.sock.sendall(head + b"\r\n" + (body or b""))
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            self._read()
        lines = self.buffer[:end].split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise RuntimeError(f"{method} {path}: a response without Content-Length: {lines!r}")
        start = end + 4
        while len(self.buffer) < start + length:
            self._read()
        payload, self.buffer = self.buffer[start : start + length], self.buffer[start + length :]
        return status, payload

    def _read(self) -> None:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


def _token(home: Home, role: str) -> str:
    store = open_store(home.url, signer=home.signer())
    try:
        return create_token(store, principal="bench", role=role)[0]
    finally:
        store.close()


# -- OpenLineage ingest ---------------------------------------------------------------


def _sample() -> dict[str, Any]:
    sample: dict[str, Any] = json.loads(SAMPLE.read_text())
    return sample


def _run_events(
    sample: dict[str, Any], run: int, seed: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The START and COMPLETE of one run, built from the official sample."""
    complete = copy.deepcopy(sample)
    complete["run"]["runId"] = str(uuid.UUID(int=seed * 10**9 + run + 1, version=4))
    complete["job"]["name"] = f"warehouse.etl.task_{run % 400}"
    table = run % 1_000
    complete["inputs"][0]["name"] = f"warehouse.staging.table_{table}"
    complete["outputs"][0]["name"] = f"warehouse.mart.table_{table}"
    second = 1_767_225_600 + seed * 10**7 + run  # 2026-01-01 onwards, one run a second
    start_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    end_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second + 30))
    complete["eventTime"] = f"{end_at}.{run % 1000:03d}Z"
    start = copy.deepcopy(complete)
    start["eventType"] = "START"
    start["eventTime"] = f"{start_at}.{run % 1000:03d}Z"
    del start["outputs"][0]["outputFacets"]  # statistics are known at the end
    del start["inputs"][0]["inputFacets"]
    return start, complete


def _stream(sample: dict[str, Any], runs: int, seed: int, lag: int) -> list[dict[str, Any]]:
    """START and COMPLETE events of ``runs`` runs; each COMPLETE comes ``lag`` runs after its START."""
    pairs = [_run_events(sample, r, seed) for r in range(runs)]
    out: list[dict[str, Any]] = []
    for r in range(runs + lag):
        if r < runs:
            out.append(pairs[r][0])
        if r >= lag:
            out.append(pairs[r - lag][1])
    return out


def _parallel(
    parts: list[list[Any]], fn: Callable[[_Client, Any], None], port: int, headers: dict[str, str]
) -> float:
    """Seconds to run ``fn(client, item)`` over each part on its own keep-alive connection."""
    errors: list[BaseException] = []
    ready = threading.Barrier(len(parts) + 1)

    def worker(part: list[Any]) -> None:
        client = _Client(port, headers)
        try:
            ready.wait()
            for item in part:
                fn(client, item)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)
        finally:
            client.close()

    pool = [threading.Thread(target=worker, args=(p,)) for p in parts]
    for t in pool:
        t.start()
    ready.wait()
    start = time.perf_counter()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed


def _post(path: str, check: Callable[[int, bytes], bool]) -> Callable[[_Client, bytes], None]:
    def post(client: _Client, body: bytes) -> None:
        status, text = client.request("POST", path, body)
        if not check(status, text):
            raise RuntimeError(f"POST {path} failed: {status} {text[:300]!r}")

    return post


def _single_ok(status: int, body: bytes) -> bool:
    return status == 200


def _batch_ok(status: int, body: bytes) -> bool:
    return status == 200 and json.loads(body)["summary"]["failed"] == 0


def _ingest_rows(quick: bool, root: Path) -> list[Result]:
    from datatrail.interop.openlineage import OpenLineageMapper

    sample = _sample()
    n_single = 2_000 if quick else 5_000
    n_batch = 20_000 if quick else 40_000
    clients = 4
    home = init_home(root / "ingest" / ".datatrail")
    headers = {"Authorization": f"Bearer {_token(home, 'producer')}"}
    # Single events: each client sends its runs' START then COMPLETE, one request each.
    singles = _stream(sample, n_single // 2, seed=1, lag=0)
    per_client = [
        [
            json.dumps(e).encode()
            for pair in range(c, n_single // 2, clients)
            for e in singles[2 * pair : 2 * pair + 2]
        ]
        for c in range(clients)
    ]
    batch_events = _stream(sample, n_batch // 2, seed=2, lag=300)
    bodies = [json.dumps(batch_events[i : i + BATCH]).encode() for i in range(0, n_batch, BATCH)]
    server = _Server(home)
    try:
        single_s = _parallel(per_client, _post("/api/v1/lineage", _single_ok), server.port, headers)
        # Two producers, each posting its batches in order.
        batch_s = _parallel(
            [bodies[0::2], bodies[1::2]],
            _post("/api/v1/lineage/batch", _batch_ok),
            server.port,
            headers,
        )
    finally:
        server.close()
    stored = _stored(home)

    # Baselines: the same validation, mapping and appends, in process.
    direct = init_home(root / "direct" / ".datatrail")
    store = open_store(direct.url, signer=direct.signer())
    try:
        events = _stream(sample, n_single // 2, seed=3, lag=0)
        start = time.perf_counter()
        for event in events:  # as one request each: a mapper that knows the store, per event
            store.append(OpenLineageMapper(store).map(event))
        direct_single_s = time.perf_counter() - start
        events = _stream(sample, n_batch // 2, seed=4, lag=300)
        start = time.perf_counter()
        for b in range(0, n_batch, BATCH):
            mapper = OpenLineageMapper(store)
            store.append([e for event in events[b : b + BATCH] for e in mapper.map(event)])
        direct_batch_s = time.perf_counter() - start
    finally:
        store.close()
    single_rate, batch_rate = n_single / single_s, n_batch / batch_s
    base_single, base_batch = n_single / direct_single_s, n_batch / direct_batch_s
    return [
        Result(
            name=f"ingest {n_single:,} single OpenLineage events over HTTP ({clients} clients)",
            ours=single_rate,
            unit="events/s",
            target=f"≥ {SINGLE_TARGET:,.0f} events/s",
            ok=single_rate >= SINGLE_TARGET,
            baseline=base_single,
            baseline_name="validate + map + append one by one, in process",
            ratio=single_rate / base_single,
            note=f"{stored:,} datatrail events stored for {n_single + n_batch:,} OpenLineage events",
        ),
        Result(
            name=f"ingest {n_batch:,} OpenLineage events over HTTP in batches of {BATCH:,} (2 clients)",
            ours=batch_rate,
            unit="events/s",
            target=f"≥ {BATCH_TARGET:,.0f} events/s",
            ok=batch_rate >= BATCH_TARGET,
            baseline=base_batch,
            baseline_name="validate + map + append per batch, in process",
            ratio=batch_rate / base_batch,
        ),
    ]


def _stored(home: Home) -> int:
    store = open_store(home.url)
    try:
        return int(store.query("SELECT COUNT(*) FROM events")[0][0])
    finally:
        store.close()


# -- lineage queries ------------------------------------------------------------------


def _lineage_rows(quick: bool, root: Path) -> list[Result]:
    from urllib.parse import urlencode

    from benchmarks.bench_core import _synthetic_graph
    from datatrail.lineage import Trail

    runs = int(os.environ.get("DATATRAIL_BENCH_RUNS", 100_000 if quick else 1_000_000))
    requests = 100 if quick else 300
    home = init_home(root / "graph" / ".datatrail")
    t0 = time.perf_counter()
    tips = _synthetic_graph(home.path / "trail.db", runs, lanes=1_000)
    built_s = time.perf_counter() - t0
    token = _token(home, "viewer")
    rng = random.Random(11)
    nodes = [f"artifact:{rng.choice(tips)}" for _ in range(requests)]
    server = _Server(home)
    http_ms, direct_ms, sizes = [], [], []
    try:
        client = _Client(server.port, {"Authorization": f"Bearer {token}"})
        with Trail(home.path) as trail:

            def query(node: str) -> dict[str, Any]:
                status, body = client.request(
                    "GET", "/api/v1/lineage?" + urlencode({"nodeId": node, "depth": 20})
                )
                if status != 200:
                    raise RuntimeError(f"lineage query failed: {status} {body[:200]!r}")
                graph: dict[str, Any] = json.loads(body)
                return graph

            for node in nodes[:10]:  # warm both paths
                query(node)
                trail.lineage(node, depth=20).to_dict()
            for node in nodes:  # interleaved, so both see the same machine
                t = time.perf_counter()
                graph = query(node)
                http_ms.append((time.perf_counter() - t) * 1000)
                sizes.append(len(graph["nodes"]))
                t = time.perf_counter()
                trail.lineage(node, depth=20).to_dict()
                direct_ms.append((time.perf_counter() - t) * 1000)
        client.close()
    finally:
        server.close()
    if min(sizes) < 20:
        raise RuntimeError(f"a depth-20 closure returned only {min(sizes)} nodes")
    p95, base = percentile(http_ms, 95), percentile(direct_ms, 95)
    return [
        Result(
            name=f"GET /api/v1/lineage depth 20 upstream, {runs:,}-run graph (p95)",
            ours=p95,
            unit="ms",
            target=f"≤ {P95_TARGET_MS:.0f} ms p95 (issue: on a 1M-run graph)",
            ok=p95 <= P95_TARGET_MS,
            baseline=base,
            baseline_name="Trail.lineage in process (p95)",
            ratio=p95 / base if base else None,
            note=f"{requests} requests from random tips; median {percentile(http_ms, 50):.1f} ms "
            f"(in process {percentile(direct_ms, 50):.1f} ms); median closure "
            f"{percentile([float(s) for s in sizes], 50):.0f} nodes; graph built in {built_s:.0f}s",
        )
    ]


def run(quick: bool) -> list[Result]:
    """Benchmark rows for the server."""
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        root = Path(tmp)
        return [*_ingest_rows(quick, root), *_lineage_rows(quick, root)]
