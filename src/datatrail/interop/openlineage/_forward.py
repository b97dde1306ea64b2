"""The live forwarder: send OpenLineage events to any OpenLineage backend as runs happen.

``forwarder_from_env()`` reads ``DATATRAIL_OPENLINEAGE_URL`` (and the optional
``DATATRAIL_OPENLINEAGE_API_KEY``, sent as a bearer token). The writer hands it
each committed batch with ``handle(events)``, which only puts the batch on a
bounded queue: a background thread turns runs into RunEvents (START when a
run starts, COMPLETE or FAIL with its inputs and outputs when it ends;
ingested OpenLineage events pass through whole) and POSTs them, retrying with
exponential backoff. A full queue drops the batch with a warning; nothing
here ever blocks or raises into the pipeline.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import msgspec

from datatrail.interop.openlineage._export import DatasetOut, run_event
from datatrail.interop.openlineage._ingest import OPENLINEAGE_TOPIC
from datatrail.model import (
    CodeVersion,
    Environment,
    Event,
    IORecorded,
    Record,
    RunFinished,
    RunStarted,
)

__all__ = ["Forwarder", "forwarder_from_env"]

log = logging.getLogger("datatrail")

URL_ENV = "DATATRAIL_OPENLINEAGE_URL"
KEY_ENV = "DATATRAIL_OPENLINEAGE_API_KEY"
_ENDPOINT = "/api/v1/lineage"
_STOP = object()


class _Run(msgspec.Struct, kw_only=True):
    job: tuple[str, str]
    parent: str | None
    code_id: str | None
    env_id: str | None
    env: dict[str, str] | None
    inputs: list[DatasetOut] = []
    outputs: list[DatasetOut] = []


def _endpoint(url: str) -> str:
    parts = urlsplit(url)
    if parts.path in ("", "/"):
        return url.rstrip("/") + _ENDPOINT
    return url


class Forwarder:
    """POSTs the OpenLineage events of appended datatrail events, in a background thread."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        max_queue: int = 1000,
        retries: int = 5,
        backoff: float = 0.5,
        timeout: float = 10.0,
    ) -> None:
        self.url = _endpoint(url)
        self.api_key = api_key
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.sent = 0
        """OpenLineage events delivered."""
        self.failed = 0
        """OpenLineage events given up on after every retry."""
        self.dropped = 0
        """Batches dropped because the queue was full."""
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._runs: dict[str, _Run] = {}
        self._jobs: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._code: OrderedDict[str, Any] = OrderedDict()
        self._python: dict[str, str] = {}
        self._ingested: set[str] = set()
        self._idle = threading.Condition()
        self._busy = 0
        self._thread = threading.Thread(
            target=self._loop, name="datatrail-openlineage", daemon=True
        )
        self._thread.start()

    # -- the caller's side: never blocks, never raises ---------------------------------

    def handle(self, events: Sequence[Event]) -> None:
        """Queue a committed batch of datatrail events for forwarding (returns at once)."""
        if not events:
            return
        try:
            with self._idle:
                self._busy += 1
            self._queue.put_nowait(list(events))
        except queue.Full:
            with self._idle:
                self._busy -= 1
            self.dropped += 1
            log.warning("datatrail: OpenLineage forwarder queue full; a batch was dropped")
        except Exception:  # the pipeline must never see a forwarder failure
            log.exception("datatrail: OpenLineage forwarder could not queue a batch")

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued batch is sent or given up on; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._busy:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (up to ``timeout``) and stop the thread."""
        self.flush(timeout)
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    # -- the background thread ------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            try:
                for ol in self.convert(item):
                    self._deliver(ol)
            except Exception:
                log.exception("datatrail: OpenLineage forwarder failed on a batch")
            finally:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

    def _deliver(self, event: dict[str, Any]) -> None:
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                self._post(event)
            except Exception as exc:
                if attempt == self.retries:
                    self.failed += 1
                    log.warning(
                        "datatrail: OpenLineage event for run %s not delivered to %s: %s",
                        event.get("run", {}).get("runId"),
                        self.url,
                        exc,
                    )
                    return
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
            else:
                self.sent += 1
                return

    def _post(self, event: dict[str, Any]) -> None:
        body = json.dumps(event, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            if response.status >= 300:
                raise OSError(f"HTTP {response.status}")

    @staticmethod
    def _remember(cache: OrderedDict[str, Any], key: str, value: Any, limit: int = 10_000) -> None:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > limit:
            cache.popitem(last=False)

    def convert(self, events: Sequence[Event]) -> list[dict[str, Any]]:
        """The OpenLineage events a batch of datatrail events makes (state kept across batches)."""
        out: list[dict[str, Any]] = []
        for ev in events:
            if isinstance(ev, Record):
                if ev.topic == OPENLINEAGE_TOPIC and isinstance(ev.data.get("event"), dict):
                    out.append(ev.data["event"])
            elif isinstance(ev, CodeVersion):
                self._remember(self._code, ev.code_id, msgspec.to_builtins(ev))
            elif isinstance(ev, Environment):
                self._python[ev.env_id] = ev.python
            elif isinstance(ev, RunStarted):
                if ev.facets and "openlineage" in ev.facets:
                    self._ingested.add(ev.run_id)  # its original events pass through whole
                    continue
                self._remember(self._jobs, ev.run_id, (ev.job.namespace, ev.job.name))
                env = (ev.facets or {}).get("environmentVariables")
                run = _Run(
                    job=(ev.job.namespace, ev.job.name),
                    parent=ev.parent_run_id,
                    code_id=ev.code_id,
                    env_id=ev.env_id,
                    env=env if isinstance(env, dict) else None,
                    inputs=[],
                    outputs=[],
                )
                self._runs[ev.run_id] = run
                out.append(self._event("START", ev.run_id, run, ev.ts))
            elif isinstance(ev, IORecorded):
                run_or_none = self._runs.get(ev.run_id)
                if run_or_none is None:
                    continue
                ds = ev.dataset
                item = DatasetOut(
                    namespace=ds.namespace if ds is not None else "inmemory",
                    name=ds.name if ds is not None else ev.artifact.id,
                    artifact_id=ev.artifact.id,
                    rows=ev.artifact.rows,
                    size=ev.artifact.size,
                    schema=[(str(a), str(b)) for a, b in ev.artifact.schema or []] or None,
                )
                (run_or_none.inputs if ev.role == "input" else run_or_none.outputs).append(item)
            elif isinstance(ev, RunFinished):
                if ev.run_id in self._ingested:
                    self._ingested.discard(ev.run_id)
                    continue
                run_or_none = self._runs.pop(ev.run_id, None)
                if run_or_none is None:
                    continue
                kind = "COMPLETE" if ev.status == "completed" else "FAIL"
                error = msgspec.to_builtins(ev.error) if ev.error is not None else None
                out.append(self._event(kind, ev.run_id, run_or_none, ev.ts, error=error))
        return out

    def _event(
        self, kind: str, run_id: str, run: _Run, ts: str, *, error: Any = None
    ) -> dict[str, Any]:
        parent = None
        if run.parent is not None and run.parent in self._jobs:
            jns, jname = self._jobs[run.parent]
            parent = (run.parent, jns, jname)
        done = kind != "START"
        return run_event(
            kind,
            run_id=run_id,
            job_namespace=run.job[0],
            job_name=run.job[1],
            event_time=ts,
            parent=parent,
            error=error if isinstance(error, dict) else None,
            inputs=run.inputs,
            outputs=run.outputs if done else (),
            code=self._code.get(run.code_id) if run.code_id else None,
            python=self._python.get(run.env_id) if run.env_id else None,
            env=run.env,
        )


def forwarder_from_env(environ: dict[str, str] | None = None) -> Forwarder | None:
    """A forwarder to ``DATATRAIL_OPENLINEAGE_URL``, or None when it is not set."""
    env = os.environ if environ is None else environ
    url = env.get(URL_ENV, "").strip()
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        log.warning("datatrail: %s=%r is not an http(s) URL; forwarding is off", URL_ENV, url)
        return None
    return Forwarder(url, api_key=env.get(KEY_ENV) or None)
