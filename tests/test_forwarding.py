"""The live OpenLineage forwarder, wired into the writer: committed runs reach a backend."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

import datatrail
from datatrail.capture import shutdown


class _Backend(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Backend.received.append((self.headers.get("Authorization", ""), json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_pipeline_is_forwarded_to_an_openlineage_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Backend)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Backend.received = []
    monkeypatch.setenv("DATATRAIL_OPENLINEAGE_URL", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("DATATRAIL_OPENLINEAGE_API_KEY", "sekret")
    source = tmp_path / "in.csv"
    source.write_text("a\n1\n")
    datatrail.configure(home=tmp_path / ".datatrail")
    try:
        with datatrail.run("forwarded") as r:
            r.input(source)
            out = tmp_path / "out.csv"
            out.write_text("a\n2\n")
            r.output(out)
        datatrail.flush()
    finally:
        shutdown()  # closes the forwarder, which sends what it holds
        datatrail.configure(home=None)
        deadline = time.monotonic() + 10
        while len(_Backend.received) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.shutdown()
    events = []
    for auth, body in _Backend.received:
        assert auth == "Bearer sekret"
        events.extend(body if isinstance(body, list) else [body])
    types = [e["eventType"] for e in events if e["job"]["name"] == "forwarded"]
    assert "COMPLETE" in types
    complete = next(e for e in events if e.get("eventType") == "COMPLETE")
    assert [d["name"] for d in complete["inputs"]] == [str(source.resolve())]
    assert [d["name"] for d in complete["outputs"]] == [str(out.resolve())]


def test_only_allowlisted_environment_variables_are_recorded_and_exported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datatrail.capture import _state
    from datatrail.interop.openlineage import export_openlineage
    from datatrail.store import SQLiteStore

    monkeypatch.setattr(_state, "_ALLOWLIST", None)
    monkeypatch.setattr(_state, "_ENV_FACET", None)  # restored after: no facet leaks out
    monkeypatch.setenv("DATATRAIL_ENV_ALLOWLIST", "DT_TEST_BUILD, DT_TEST_UNSET")
    monkeypatch.setenv("DT_TEST_BUILD", "build-42")
    monkeypatch.setenv("DT_TEST_SECRET", "hunter2")
    datatrail.configure(home=tmp_path / ".datatrail")
    try:
        with datatrail.run("with-env"):
            pass
        datatrail.flush()
    finally:
        shutdown()
        datatrail.configure(home=None)
        monkeypatch.setattr(_state, "_ALLOWLIST", None)
    store = SQLiteStore(tmp_path / ".datatrail" / "trail.db")
    try:
        raw = b"".join(e.body or b"" for e in store.events())
        assert b"build-42" in raw and b"hunter2" not in raw
        events = list(export_openlineage(store, env_allowlist=("DT_TEST_BUILD",)))
    finally:
        store.close()
    facets = [e["run"]["facets"].get("environmentVariables") for e in events]
    variables = [f["environmentVariables"] for f in facets if f]
    assert variables and all(
        v == [{"name": "DT_TEST_BUILD", "value": "build-42"}] for v in variables
    )
