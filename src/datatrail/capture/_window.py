"""Streaming: lineage per window, not per record.

``with datatrail.window(stream, start=..., end=..., watermark=...) as w`` records one
window of a long-running stream processor as a child run of the stream's run
(job ``<stream job>.window``): its inputs (files, in-memory batches, and ranges of
upstream offsets), its outputs, its row counts and the event-time range it saw.
When it closes, a ``stream.window`` record keeps that summary, so
:func:`windows_for` can answer which windows, and which upstream offsets or
files, produced a given output partition.

Hashing every micro-batch may cost more than a stream can afford: ``sample``
(0 to 1) is the share of in-memory batches hashed and recorded as artifacts;
the others are only counted. Sampling is deterministic (batch 0, then evenly
spaced, per stream run) and the rate and counts are recorded with each window.
Files and offset ranges are always recorded.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

from datatrail.capture._hooks import (
    emit_record,
    io_observers,
    notify_io,
    output_checks,
    run_output_checks,
)
from datatrail.capture._track import RunHandle, _build_io, _current, _submit, run
from datatrail.capture._values import artifact_for, is_data
from datatrail.errors import UsageError
from datatrail.model import ArtifactInfo, DatasetRef, format_ts, parse_ts

__all__ = ["TOPIC", "WindowHandle", "window", "windows_for"]

TOPIC = "stream.window"
"""The record topic of a window's summary (subject ``run:<window run id>``)."""

B = TypeVar("B")

_lock = threading.Lock()
_samplers: dict[str, list[float]] = {}  # stream run id -> [credit]; bounded below
_MAX_STREAMS = 1024


def _ts(value: Any, what: str) -> str:
    if isinstance(value, datetime):
        when = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return format_ts(int(when.timestamp() * 1_000_000) * 1000)
    if isinstance(value, str):
        return parse_ts(value)  # a bad string raises UsageError naming it
    raise UsageError(
        f"window {what} must be a datetime or an ISO time string, not {type(value).__name__}"
    )


def _take_sample(stream_id: str, rate: float) -> bool:
    """Whether the next batch of this stream is hashed: batch 0, then one in every 1/rate."""
    if rate <= 0:
        return False
    with _lock:
        credit = _samplers.get(stream_id)
        if credit is None:
            if len(_samplers) >= _MAX_STREAMS:
                _samplers.pop(next(iter(_samplers)))
            credit = _samplers[stream_id] = [1.0]
        else:
            credit[0] += rate
        if credit[0] >= 1.0 - 1e-9:
            credit[0] -= 1.0
            return True
        return False


def _rows(value: Any) -> int | None:
    if not is_data(value) or isinstance(value, (bytes, bytearray, memoryview)):
        return None
    try:
        return len(value)
    except TypeError:
        return None


class WindowHandle:
    """One open window: record its inputs, outputs, counts and event times."""

    def __init__(self, handle: RunHandle, stream: RunHandle, summary: dict[str, Any]) -> None:
        self.run = handle
        """The window's own run (a child of the stream's run)."""
        self.stream = stream
        self._summary = summary
        self._lock = threading.Lock()

    @property
    def run_id(self) -> str:
        """The window run's id."""
        return self.run.run_id

    def _record(
        self,
        role: str,
        value: Any,
        name: str | None,
        dataset: DatasetRef | None,
        extra: dict[str, Any] | None = None,
    ) -> ArtifactInfo:
        handle = self.run
        if handle._finished:
            raise UsageError(f"window {handle.run_id} has closed; record {role}s inside it")
        if dataset is not None and not isinstance(dataset, DatasetRef):
            raise UsageError(
                f"dataset must be a datatrail.DatasetRef, not {type(dataset).__name__}"
            )
        art, ds = artifact_for(value, level=handle.level, dataset=dataset, fresh=role == "output")
        if role == "output" and output_checks():
            run_output_checks([handle._output_context(name, value, art, ds)])
        if handle._recording:
            _submit(_build_io, (handle.run_id, handle.job, role, time.time_ns(), [(name, art, ds)]))
            if io_observers():
                notify_io([handle._output_context(name, value, art, ds, role=role)])
        entry = {
            "label": name,
            "artifact_id": art.id,
            "dataset": ds.node_id() if ds is not None else None,
            **(extra or {}),
        }
        with self._lock:
            self._summary["inputs" if role == "input" else "outputs"].append(entry)
        return art

    def input(self, value: B, *, name: str | None = None, dataset: DatasetRef | None = None) -> B:
        """Record an input: a file (always) or an in-memory batch (hashed if sampled, else counted)."""
        rows = _rows(value)
        counts = self._summary["counts"]
        if rows is not None or not hasattr(value, "__fspath__"):
            with self._lock:
                counts["batches"] += 1
                if rows is not None:
                    counts["input_rows"] += rows
            if not _take_sample(self.stream.run_id, self._summary["sample"]):
                return value
            with self._lock:
                counts["hashed_batches"] += 1
        self._record("input", value, name, dataset)
        return value

    def input_offsets(
        self,
        dataset: DatasetRef,
        *,
        start: int,
        end: int,
        partition: int | str | None = None,
        name: str | None = None,
    ) -> ArtifactInfo:
        """Record a range of upstream offsets ``[start, end)`` of one partition as an input."""
        if not isinstance(dataset, DatasetRef):
            raise UsageError("input_offsets needs the upstream topic as a datatrail.DatasetRef")
        if not isinstance(start, int) or not isinstance(end, int) or start > end:
            raise UsageError(f"offsets must be integers with start <= end, got {start!r}..{end!r}")
        offsets = {
            "source": dataset.node_id(),
            "partition": partition,
            "start": start,
            "end": end,
        }
        label = name or (f"offsets[{partition}]" if partition is not None else "offsets")
        return self._record("input", offsets, label, dataset, {"offsets": offsets})

    def output(self, value: B, *, name: str | None = None, dataset: DatasetRef | None = None) -> B:
        """Record an output (a file, a partition directory, a batch); it is always hashed."""
        rows = _rows(value)
        if rows is not None:
            with self._lock:
                self._summary["counts"]["output_rows"] += rows
        self._record("output", value, name, dataset)
        return value

    def count(self, *, input_rows: int = 0, output_rows: int = 0, late: int = 0) -> None:
        """Add to the window's counts (rows read, rows written, late records dropped)."""
        with self._lock:
            counts = self._summary["counts"]
            counts["input_rows"] += input_rows
            counts["output_rows"] += output_rows
            counts["late"] += late

    def event_time(self, first: Any, last: Any | None = None) -> None:
        """Widen the event-time range the window saw to include ``first`` (and ``last``)."""
        for value in (first, last) if last is not None else (first,):
            ts = _ts(value, "event time")
            with self._lock:
                span = self._summary["event_time"]
                if span["min"] is None or ts < span["min"]:
                    span["min"] = ts
                if span["max"] is None or ts > span["max"]:
                    span["max"] = ts


class window:  # noqa: N801 - a context manager used like a function, as datatrail.run is
    """Record one window of a stream as a child run of the stream's run.

    ::

        with datatrail.run("orders-stream") as stream:
            for batch in consumer:
                with datatrail.window(stream, start=t0, end=t1, watermark=wm) as w:
                    w.input_offsets(topic, partition=0, start=batch.first, end=batch.last + 1)
                    w.output(write_partition(batch))

    ``stream`` is the stream's run handle (default: the current run). ``start``
    and ``end`` bound the window in event time, ``watermark`` is the stream's
    watermark when it closed; each a datetime or an ISO time string.
    """

    def __init__(
        self,
        stream: RunHandle | None = None,
        *,
        start: Any,
        end: Any,
        watermark: Any = None,
        sample: float = 1.0,
        name: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        parent = stream if stream is not None else _current.get()
        if not isinstance(parent, RunHandle):
            raise UsageError(
                "window() needs the stream's run: pass the handle of `with datatrail.run(...)`, "
                "or open the window inside that run"
            )
        if isinstance(sample, bool) or not isinstance(sample, (int, float)) or not 0 <= sample <= 1:
            raise UsageError(f"window sample must be a number from 0 to 1, got {sample!r}")
        self.stream = parent
        self.start = _ts(start, "start")
        self.end = _ts(end, "end")
        if self.end < self.start:
            raise UsageError(f"window end {self.end} is before its start {self.start}")
        self.watermark = _ts(watermark, "watermark") if watermark is not None else None
        self.sample = float(sample)
        self.name = name or f"{parent.job.name}.window"
        self.params = dict(params or {})
        self._active: list[tuple[run, Any, WindowHandle]] = []

    def __enter__(self) -> WindowHandle:
        params = {
            **self.params,
            "window_start": self.start,
            "window_end": self.end,
            "watermark": self.watermark,
            "sample": self.sample,
        }
        recorder = run(self.name, params=params, namespace=self.stream.job.namespace)
        token = _current.set(self.stream)  # the window is the stream's child, wherever it opens
        try:
            handle = recorder.__enter__()
        except BaseException:
            _current.reset(token)
            raise
        summary: dict[str, Any] = {
            "stream_run_id": self.stream.run_id,
            "window_run_id": handle.run_id,
            "start": self.start,
            "end": self.end,
            "watermark": self.watermark,
            "sample": self.sample,
            "event_time": {"min": None, "max": None},
            "counts": {
                "input_rows": 0,
                "output_rows": 0,
                "late": 0,
                "batches": 0,
                "hashed_batches": 0,
            },
            "inputs": [],
            "outputs": [],
        }
        w = WindowHandle(handle, self.stream, summary)
        self._active.append((recorder, token, w))
        return w

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        recorder, token, w = self._active.pop()
        try:
            if w.run._recording:
                summary = dict(w._summary, status="failed" if exc is not None else "completed")
                emit_record(TOPIC, subject=f"run:{w.run_id}", data=summary)
        finally:
            recorder.__exit__(exc_type, exc, tb)
            _current.reset(token)

    @staticmethod
    def each(
        batches: Iterable[B],
        stream: RunHandle | None = None,
        *,
        event_time: Any = None,
        sample: float = 1.0,
        name: str | None = None,
    ) -> Iterator[tuple[WindowHandle, B]]:
        """One window per micro-batch: yields ``(window, batch)`` with the batch recorded as input.

        ``event_time(batch)`` returns the batch's ``(first, last)`` event times,
        which bound the window; without it the window spans the wall-clock time
        the batch was processed. The window closes when the next batch is asked
        for. Use ``with window(...)`` instead when a failure must fail the window.
        """
        parent = stream if stream is not None else _current.get()
        for batch in batches:
            if event_time is not None:
                first, last = event_time(batch)
            else:
                first = last = datetime.now(UTC)
            with window(parent, start=first, end=last, sample=sample, name=name) as w:
                w.event_time(first, last)
                w.input(batch, name="batch")
                yield w, batch


def windows_for(trail: Any, node: str) -> list[dict[str, Any]]:
    """The windows that produced ``node`` (a ``dataset:…`` or ``artifact:…`` id), oldest first.

    Each is the ``stream.window`` summary: the window's bounds, counts, event-time
    range, and its inputs (files, batches, offset ranges) and outputs.
    """
    from datatrail.model import parse_node_id

    parsed = parse_node_id(node)
    store = trail.store
    if parsed.kind == "dataset":
        rows = store.query(
            "SELECT DISTINCT run_id FROM run_io WHERE role = 'output' "
            "AND dataset_namespace = ? AND dataset_name = ?",
            (parsed.namespace, parsed.name),
        )
    elif parsed.kind == "artifact":
        rows = store.query(
            "SELECT DISTINCT run_id FROM run_io WHERE role = 'output' AND artifact_id = ?",
            (parsed.key,),
        )
    else:
        raise UsageError(f"windows_for takes a dataset or artifact node id, not {node!r}")
    found: list[dict[str, Any]] = []
    for (run_id,) in rows:
        for (data,) in store.query(
            "SELECT data FROM records WHERE topic = ? AND subject = ? ORDER BY idx",
            (TOPIC, f"run:{run_id}"),
        ):
            found.append(json.loads(data))
    return sorted(found, key=lambda w: (w["start"], w["window_run_id"]))
