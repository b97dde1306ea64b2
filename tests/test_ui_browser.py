"""The web catalog in real headless Chromium: sign in, open each page, follow lineage by clicking.

Chromium is the system one (``/usr/bin/chromium``, or ``DATATRAIL_CHROMIUM``),
driven by Playwright against uvicorn serving the app on a free port in a
background thread. Screenshots of the main pages go to the test's tmp folder
and, when ``DATATRAIL_SCREENSHOTS`` names a folder, there too. Without
Chromium the tests skip and say how to enable them; under ``CI=true`` they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

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
from datatrail.server import create_app, create_token
from datatrail.store import init_home, open_store
from test_ui import Site, build_site

CHROMIUM = os.environ.get("DATATRAIL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _unavailable(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(
        message + " — install Chromium (apt-get install chromium) or point DATATRAIL_CHROMIUM "
        "at a Chromium binary to run the browser tests"
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install 'datatrail[dev]')")
    pw = sync_playwright().start()
    try:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    except Exception as exc:
        pw.stop()
        _unavailable(f"Chromium could not start from {CHROMIUM}: {str(exc).splitlines()[0]}")
    yield chromium
    chromium.close()
    pw.stop()


class Served:
    """uvicorn serving an app on a free loopback port, in a daemon thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return build_site(tmp_path_factory.mktemp("ui-browser") / "demo")


@pytest.fixture(scope="module")
def server(site: Site) -> Iterator[Served]:
    served = Served(site.app)
    yield served
    served.stop()


@pytest.fixture
def page(browser: Any, server: Served, site: Site) -> Iterator[Any]:
    """A page signed in as admin (through the cookie the sign-in form sets)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.add_cookies(
        [{"name": "datatrail_token", "value": site.tokens["admin"], "url": server.url}]
    )
    p = context.new_page()
    p.set_default_timeout(10_000)
    yield p
    context.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folders = [tmp_path_factory.mktemp("screenshots")]
    extra = os.environ.get("DATATRAIL_SCREENSHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        folders.append(Path(extra))
    return folders


def snap(p: Any, shots: list[Path], name: str) -> None:
    path = shots[0] / f"{name}.png"
    p.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5_000  # a rendered page, not a blank one
    for extra in shots[1:]:
        shutil.copy(path, extra / path.name)


def test_signing_in_with_a_pasted_token_opens_the_home_page(
    browser: Any, server: Served, site: Site, shots: list[Path]
) -> None:
    context = browser.new_context()
    p = context.new_page()
    p.goto(server.url + "/ui/search?q=orders")
    assert p.locator("h1").inner_text() == "Sign in"
    snap(p, shots, "login")
    p.fill("#token", site.tokens["viewer"])
    p.click("button[type=submit]")
    p.wait_for_url("**/ui/search?q=orders")
    assert "nightly-orders" in p.locator("#found-jobs").inner_text()
    assert p.locator(".who .role").inner_text() == "viewer"
    context.close()


def test_each_main_page_renders(page: Any, server: Served, site: Site, shots: list[Path]) -> None:
    store = site.app.state.store
    runs = store.query("SELECT COUNT(*) FROM runs")[0][0]
    page.goto(server.url + "/ui/")
    assert page.locator('[data-count="runs"] b').inner_text() == str(runs)
    assert site.failed_run[:13] in page.locator("#failed").inner_text()
    snap(page, shots, "home")
    visits = {
        "search": ("/ui/search?q=orders", "#found-datasets", "orders.csv"),
        "dataset": ("/ui/dataset?id=" + quote(site.orders, safe=""), "#classifications", "pii"),
        "run": (f"/ui/run/{site.failed_run}", "#error", "ValueError"),
        "policies": ("/ui/policies?a=1&b=2", "#diff", "+retention:"),
        "audit": ("/ui/audit", "#holds", "CASE-7"),
        "verification": ("/ui/verify", "#checkpoint", "entries"),
    }
    for name, (path, selector, expect) in visits.items():
        page.goto(server.url + path)
        assert expect in page.locator(selector).inner_text(), name
        snap(page, shots, name)


def test_a_masked_column_shows_masked_on_screen(
    browser: Any, server: Served, site: Site, shots: list[Path]
) -> None:
    import pandas as pd

    raw = pd.read_csv(site.customers.split(":", 2)[2])
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.add_cookies(
        [{"name": "datatrail_token", "value": site.tokens["viewer"], "url": server.url}]
    )
    p = context.new_page()
    p.goto(server.url + "/ui/dataset?id=" + quote(site.customers, safe=""))
    p.fill("input[name=purpose]", "support")
    p.click("#preview button[type=submit]")
    table = p.locator("#preview-table")
    table.wait_for()
    headers = table.locator("thead th").all_inner_texts()
    email = headers.index("email") + 1
    shown = table.locator(f"tbody td:nth-child({email})").all_inner_texts()
    names = table.locator(f"tbody td:nth-child({headers.index('name') + 1})").all_inner_texts()
    assert len(shown) == 20
    assert names == list(raw["name"][:20])  # unmasked columns show their values
    assert not set(shown) & set(raw["email"])  # the masked one never does
    assert "@example.com" not in p.locator("body").inner_text()
    snap(p, shots, "dataset-preview")
    context.close()


def _lineage(page: Any, server: Served, node: str, depth: int = 5) -> None:
    page.goto(f"{server.url}/ui/lineage?node={quote(node, safe='')}&depth={depth}")
    page.wait_for_selector("body[data-lineage-ready='1']")


def test_following_a_lineage_path_by_clicking(
    page: Any, server: Served, site: Site, shots: list[Path]
) -> None:
    trail = site.app.state.trail
    _lineage(page, server, site.report)
    assert page.locator("#lineage-root").inner_text() == site.report
    snap(page, shots, "lineage")
    node = site.report
    for _ in range(3):  # walk three steps upstream, by clicking
        step = next(n.id for n in trail.upstream(node, depth=1).nodes if n.depth == 1)
        page.locator(f'g.node[data-id="{step}"] a').click()
        page.wait_for_url(f"**/ui/lineage?node={quote(step, safe='')}*")
        page.wait_for_selector("body[data-lineage-ready='1']")
        assert page.locator("#lineage-root").inner_text() == step
        node = step


def test_expanding_a_node_shows_its_neighbours_in_place(
    page: Any, server: Served, site: Site
) -> None:
    graph = site.app.state.trail.downstream(site.orders, depth=5)
    _lineage(page, server, site.orders)
    first = [n.id for n in graph.nodes if n.depth == 1]
    second = {n.id for n in graph.nodes if n.depth == 2}
    assert page.locator("g.node").count() == 1 + len(first)  # collapsed: root and neighbours
    page.locator(f'g.node[data-id="{first[0]}"] .toggle').click()
    ids = set(page.locator("g.node").evaluate_all("els => els.map(e => e.dataset.id)"))
    assert ids & second  # the next layer appeared without leaving the page
    assert page.url.endswith("depth=5")
    page.click("#expand-all")
    assert page.locator("g.node").count() == len(graph.nodes)


def synthetic_graph(folder: Path, fanouts: tuple[int, ...] = (10, 10, 5)) -> tuple[Path, str, int]:
    """A trail whose root dataset feeds a tree of jobs and datasets; returns (trail, root, nodes).

    Each level's datasets are read by ``fanout`` jobs, each writing one new dataset.
    """
    home = init_home(folder)
    store = open_store(home.url, signer=load_signer(home.signing_key))
    events: list[Any] = []
    counter = iter(range(10**9))

    def artifact() -> ArtifactInfo:
        return ArtifactInfo(id=f"blake3:{next(counter):064x}", kind="file", size=1)

    root = DatasetRef(namespace="bench", name="root")
    layer = [(root, artifact())]
    nodes = 1
    ts = now_ts()
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
    return home.path, "dataset:bench:root", nodes


def test_a_thousand_node_lineage_stays_collapsed_and_interactive(
    browser: Any, tmp_path: Path, shots: list[Path]
) -> None:
    trail_dir, root, total = synthetic_graph(tmp_path / "big")
    assert total >= 1000
    app = create_app(trail_dir)
    token, _ = create_token(app.state.store, principal="ana", role="viewer")
    served = Served(app)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        context.add_cookies([{"name": "datatrail_token", "value": token, "url": served.url}])
        p = context.new_page()
        _lineage(p, served, root, depth=10)
        stats = p.locator("#lineage-stats").inner_text()
        assert stats.startswith(f"11 of {total} nodes shown")  # collapsed by default
        p.click("#expand-all")
        assert p.locator("g.node").count() == total
        assert p.locator("#lineage-stats").inner_text().startswith(f"{total} of {total}")
        snap(p, shots, "lineage-1000")
        p.click("#collapse-all")
        more = "job:bench:root.j3"
        p.locator(f'g.node[data-id="{more}"] a').click()  # still responds: move to a node
        p.wait_for_selector("body[data-lineage-ready='1']")
        assert p.locator("#lineage-root").inner_text() == more
    finally:
        context.close()
        served.stop()
        app.state.store.close()
