"""The lineage explorer on a graph of 1,000+ nodes: how soon it is usable in Chromium.

A synthetic trail whose root dataset feeds a tree of jobs and datasets (1,221
nodes downstream; 5,221 in the full run), served by uvicorn on a loopback port
and opened in the system's headless Chromium through Playwright. "Usable" is
measured from the start of navigation to the explorer having drawn its graph
and answered a click (expanding a node re-renders in place), the median of
several loads. The baseline, measured in the same run against the same server,
is the home page loaded to its ``load`` event. ``extra`` has the HTML's server
time and the time to draw the whole graph expanded ("Expand all").
"""

from __future__ import annotations

import os
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from benchmarks._harness import Result, median_time
from datatrail.ledger import load_signer
from datatrail.model import (
    ArtifactInfo,
    DatasetRef,
    IORecorded,
    JobRef,
    RunFinished,
    RunStarted,
    now_ts,
    uuid7,
)
from datatrail.store import init_home, open_store

TARGET_S = 2.0
CHROMIUM = os.environ.get("DATATRAIL_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _graph(folder: Path, fanouts: tuple[int, ...]) -> tuple[Path, int]:
    home = init_home(folder)
    store = open_store(home.url, signer=load_signer(home.signing_key))
    counter = iter(range(10**9))
    ts = now_ts()

    def artifact() -> ArtifactInfo:
        return ArtifactInfo(id=f"blake3:{next(counter):064x}", kind="file", size=1)

    layer = [(DatasetRef(namespace="bench", name="root"), artifact())]
    events: list[Any] = []
    nodes = 1
    for fanout in fanouts:
        nxt = []
        for dataset, art in layer:
            for i in range(fanout):
                job = JobRef(namespace="bench", name=f"{dataset.name}.j{i}")
                out = DatasetRef(namespace="bench", name=f"{dataset.name}.d{i}")
                made, run_id = artifact(), uuid7()
                events += [
                    RunStarted(id=uuid7(), ts=ts, run_id=run_id, job=job),
                    IORecorded(
                        id=uuid7(),
                        ts=ts,
                        run_id=run_id,
                        role="input",
                        artifact=art,
                        dataset=dataset,
                        job=job,
                    ),
                    IORecorded(
                        id=uuid7(),
                        ts=ts,
                        run_id=run_id,
                        role="output",
                        artifact=made,
                        dataset=out,
                        job=job,
                    ),
                    RunFinished(id=uuid7(), ts=ts, run_id=run_id, status="completed"),
                ]
                nxt.append((out, made))
                nodes += 2
        layer = nxt
    store.append(events)
    store.close()
    return home.path, nodes


class _Served:
    def __init__(self, app: Any) -> None:
        import uvicorn

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _failed(name: str, note: str) -> list[Result]:
    return [Result(name=name, ours=0.0, unit="s", target=f"≤ {TARGET_S} s", ok=False, note=note)]


def run(quick: bool) -> list[Result]:
    import httpx

    from datatrail.server import create_app, create_token

    fanouts = (10, 10, 5) if quick else (10, 10, 5, 4)
    loads = 3 if quick else 7
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return _failed("lineage page usable", "playwright is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        trail, nodes = _graph(Path(tmp) / "big", fanouts)
        name = f"lineage page usable in Chromium: {nodes:,}-node graph"
        app = create_app(trail)
        token, _ = create_token(app.state.store, principal="bench", role="viewer")
        served = _Served(app)
        url = f"{served.url}/ui/lineage?node={quote('dataset:bench:root', safe='')}&depth=20"
        pw = sync_playwright().start()
        try:
            try:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            except Exception as exc:
                return _failed(name, f"Chromium did not start from {CHROMIUM}: {exc}")
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            context.add_cookies([{"name": "datatrail_token", "value": token, "url": served.url}])
            page = context.new_page()
            usable: list[float] = []
            home: list[float] = []
            expand_ms: list[float] = []
            for _ in range(loads):
                t0 = time.perf_counter()
                page.goto(url)
                page.wait_for_selector("body[data-lineage-ready='1']")
                page.locator("g.node .toggle").nth(1).click()  # answers a click: expands in place
                page.wait_for_function("window.dtLineage.shown > 11")
                usable.append(time.perf_counter() - t0)
                page.click("#expand-all")
                page.wait_for_function(f"window.dtLineage.shown === {nodes}")
                expand_ms.append(float(page.evaluate("window.dtLineage.renderMs")))
                t1 = time.perf_counter()
                page.goto(served.url + "/ui/", wait_until="load")
                home.append(time.perf_counter() - t1)
            with httpx.Client(cookies={"datatrail_token": token}) as client:
                html_s = median_time(lambda: client.get(url).raise_for_status(), repeat=loads)
            browser.close()
        finally:
            pw.stop()
            served.stop()
            app.state.store.close()
    ours = statistics.median(usable)
    base = statistics.median(home)
    expand = statistics.median(expand_ms)
    return [
        Result(
            name=name,
            ours=ours,
            unit="s",
            target=f"≤ {TARGET_S} s",
            ok=ours <= TARGET_S,
            baseline=base,
            baseline_name="home page load, same server and browser (s)",
            ratio=ours / base if base else None,
            note=(
                f"median of {loads} loads, navigation to drawn and answering a click; "
                f"HTML served in {html_s * 1000:.0f} ms; all {nodes:,} nodes drawn in {expand:.0f} ms"
            ),
            extra={"html_ms": html_s * 1000, "expand_all_ms": expand},
        )
    ]
