"""The background writer: the caller's thread only enqueues; one thread appends.

Items on the queue are ready events, :class:`Deferred` items or ``(builder, args)``
pairs that the writer turns into events, so expensive work (binding arguments,
redaction, code and environment capture, encoding) stays off the caller's
thread. The queue is bounded: a producer that outruns the store waits rather
than grows memory without limit.

If the store cannot be written, the batch is appended to a spill file (one
canonical JSON event per line, fsynced) and replayed in order once the store
answers again; appends are idempotent by event id, so a replay never doubles.
A failure of this machinery is logged, never raised into the user's code.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from datatrail.model import Event, decode_event, encode_event
from datatrail.store import Store

__all__ = ["Deferred", "FlushResult", "SpillFile", "Writer", "replay_orphans", "spill_status"]

log = logging.getLogger("datatrail")

Builder = Callable[..., Iterable[Event]]


class FlushResult(msgspec.Struct, frozen=True, kw_only=True):
    """What ``flush()`` made durable."""

    durable: int
    """Events appended to the store since the writer started."""
    spilled: int
    """Events waiting in the spill file for the store to come back."""
    dropped: int = 0
    """Events lost to errors in the recording machinery (always logged)."""


class Deferred(msgspec.Struct, gc=False):
    """A queue item whose events the writer thread builds, by calling :meth:`build`.

    The hot path's items are these rather than ``(builder, args)`` tuples because a
    struct made with ``gc=False`` is never tracked by the garbage collector: a tuple
    holding a function is, and the collector's full passes over a queue of hundreds
    of thousands of them cost the recording process more than building the events.
    So a subclass must hold nothing that can reach the item again (no cycle through
    it could ever be collected); the values of one call never do.
    """

    def build(self) -> Iterable[Event]:
        """The events this item stands for (run on the writer thread)."""
        raise NotImplementedError


class _Marker:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class Writer:
    """One background thread that drains a bounded queue into a store in batches."""

    def __init__(
        self,
        open_store: Callable[[], Store],
        *,
        spill_dir: Path | None = None,
        max_queue: int = 200_000,
        batch_size: int = 5_000,
        linger: float = 0.02,
    ) -> None:
        self._open_store = open_store
        self._store: Store | None = None
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._linger = linger
        self._spill_dir = spill_dir
        self._spill_path = spill_dir / f"spill-{os.getpid()}.jsonl" if spill_dir else None
        self._spilled = 0
        self._durable = 0
        self._dropped = 0
        self._closed = False
        self._retry_at = 0.0
        self._backoff = 0.5
        self._orphans_checked = spill_dir is None
        self._forwarder: Any = None
        if os.environ.get("DATATRAIL_OPENLINEAGE_URL"):
            # Every committed batch also goes to an OpenLineage backend, in the background.
            from datatrail.interop.openlineage import forwarder_from_env

            self._forwarder = forwarder_from_env()
        self._thread = threading.Thread(target=self._loop, name="datatrail-writer", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # -- producer side (the caller's thread) -------------------------------------

    def submit(self, item: Event | Deferred | tuple[Builder, tuple[Any, ...]]) -> None:
        """Enqueue an event, a deferred item, or a builder and its arguments."""
        q = self._queue
        if q.qsize() >= self._max_queue:
            self._wait_for_room()
        q.put(item)

    def _wait_for_room(self) -> None:
        while self._queue.qsize() >= self._max_queue and self._thread.is_alive():
            time.sleep(0.001)

    def flush(self, timeout: float | None = None) -> FlushResult:
        """Block until everything submitted before this call is appended (or spilled)."""
        if self._thread.is_alive():
            marker = _Marker()
            self._queue.put(marker)
            if not marker.done.wait(timeout):
                log.warning(
                    "datatrail: flush timed out after %ss; events are still queued", timeout
                )
        return FlushResult(durable=self._durable, spilled=self._spilled, dropped=self._dropped)

    def close(self) -> None:
        """Flush and stop the writer thread (also run at interpreter exit)."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=60)
        if self._forwarder is not None:
            self._forwarder.close()
        if self._store is not None:
            try:
                self._store.close()
            except Exception:  # closing is best effort at exit
                log.debug("datatrail: closing the store failed", exc_info=True)
        atexit.unregister(self.close)

    # -- consumer side (the writer thread) ----------------------------------------

    def _loop(self) -> None:
        q = self._queue
        get = q.get_nowait
        while True:
            items = [q.get()]
            append = items.append
            deadline = time.monotonic() + self._linger
            while len(items) < self._batch_size:
                try:
                    # The usual case, a backlog: take what the batch has room for in one loop.
                    for _ in range(self._batch_size - len(items)):
                        append(get())
                except queue.Empty:
                    last = items[-1]
                    # A flush or close waits on this batch: write it now rather than linger.
                    if last is None or isinstance(last, _Marker) or time.monotonic() >= deadline:
                        break
                    time.sleep(0.001)
            stop = self._process(items)
            if stop:
                return

    def _process(self, items: list[Any]) -> bool:
        events: list[Event] = []
        markers: list[_Marker] = []
        stop = False
        for item in items:
            try:
                if isinstance(item, Deferred):  # the usual item
                    events.extend(item.build())
                    continue
                if type(item) is tuple:  # a builder and its arguments
                    builder, args = item
                    events.extend(builder(*args))
                    continue
            except Exception:
                self._dropped += 1
                log.exception(
                    "datatrail: building an event failed; the user's code was not affected"
                )
                continue
            if item is None:
                stop = True
            elif isinstance(item, _Marker):
                markers.append(item)
            else:
                events.append(item)
        if events or markers or stop:
            self._write(events, force_retry=bool(markers) or stop)
        for marker in markers:
            marker.done.set()
        return stop

    def _ensure_store(self) -> Store:
        if self._store is None:
            self._store = self._open_store()
            if not self._orphans_checked and self._spill_dir is not None:
                # Spill files left by processes that died before replaying them: ours now.
                self._orphans_checked = True
                try:
                    self._durable += replay_orphans(self._spill_dir, self._store)
                except Exception as exc:
                    log.warning("datatrail: replaying orphaned spill files failed: %s", exc)
        return self._store

    def _write(self, events: Sequence[Event], *, force_retry: bool) -> None:
        if self._spilled and (force_retry or time.monotonic() >= self._retry_at):
            self._replay_spill()
        if not events:
            return
        if self._spilled:  # keep order: while anything is spilled, new events queue behind it
            self._spill(events)
            return
        try:
            result = self._ensure_store().append(events, dedupe=False)
            self._durable += result.appended
            self._backoff = 0.5
            if self._forwarder is not None:
                self._forwarder.handle(events)
        except Exception as exc:
            log.warning(
                "datatrail: the store is not writable (%s); spilling %d events to disk",
                exc,
                len(events),
            )
            self._reset_store()
            self._spill(events)

    def _reset_store(self) -> None:
        if self._store is not None:
            try:
                self._store.close()
            except Exception:
                log.debug("datatrail: closing a failed store", exc_info=True)
        self._store = None
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, 30.0)

    def _spill(self, events: Sequence[Event]) -> None:
        if self._spill_path is None:
            self._dropped += len(events)
            log.error("datatrail: no spill folder configured; %d events were lost", len(events))
            return
        self._spill_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._spill_path, "ab") as fh:
            for ev in events:
                fh.write(encode_event(ev) + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._spilled += len(events)

    def _replay_spill(self) -> None:
        path = self._spill_path
        if path is None or not path.exists():
            self._spilled = 0
            return
        try:
            lines = path.read_bytes().splitlines()
            events = [decode_event(line) for line in lines if line.strip()]
            store = self._ensure_store()
            for start in range(0, len(events), self._batch_size):
                batch = events[start : start + self._batch_size]
                result = store.append(batch)
                self._durable += result.appended
                if self._forwarder is not None:
                    self._forwarder.handle(batch)
            path.unlink()
            log.info("datatrail: replayed %d spilled events into the store", len(events))
            self._spilled = 0
            self._backoff = 0.5
        except Exception as exc:
            log.warning("datatrail: the store is still not writable (%s); will retry", exc)
            self._reset_store()


# -- spill files of other processes ------------------------------------------------


class SpillFile(msgspec.Struct, frozen=True, kw_only=True):
    """One spill file: whose it is, whether that process still runs, what it holds."""

    path: str
    pid: int
    alive: bool
    events: int
    bytes: int


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def _spill_pid(path: Path) -> int | None:
    stem = path.name.split(".", 1)[0]
    if not stem.startswith("spill-"):
        return None
    try:
        return int(stem[len("spill-") :])
    except ValueError:
        return None


def spill_status(spill_dir: Path) -> list[SpillFile]:
    """Every spill file in ``spill_dir``, with its owner's liveness and event count."""
    found: list[SpillFile] = []
    if not spill_dir.is_dir():
        return found
    for path in sorted(spill_dir.glob("spill-*.jsonl*")):
        pid = _spill_pid(path)
        if pid is None:
            continue
        data = path.read_bytes()
        found.append(
            SpillFile(
                path=str(path),
                pid=pid,
                alive=_pid_alive(pid) and path.name.endswith(".jsonl"),
                events=sum(1 for line in data.splitlines() if line.strip()),
                bytes=len(data),
            )
        )
    return found


def _decode_spill(data: bytes, path: Path) -> list[Event]:
    events: list[Event] = []
    lines = data.split(b"\n")
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            events.append(decode_event(line))
        except Exception:
            if n == len(lines):  # a write cut short by a crash: the line was never durable
                log.warning("datatrail: %s ends in a partial line; it is skipped", path)
                continue
            raise
    return events


def replay_orphans(
    spill_dir: Path, store: Store, *, batch_size: int = 5_000, include_live: bool = False
) -> int:
    """Append the spill files of processes that are gone to ``store``; returns events appended.

    Each file is claimed first by renaming it, so two replayers never take the same
    one; appends deduplicate by event id, so a replay cut short and run again never
    doubles an event. ``include_live`` also takes files whose process still runs
    (only for a process's own shutdown or an operator who knows it is stuck).
    """
    appended = 0
    for spill in spill_status(spill_dir):
        path = Path(spill.path)
        if spill.alive and not include_live:
            continue
        claimed = path
        if path.name.endswith(".jsonl"):
            claimed = path.with_name(f"{path.name}.replaying-{os.getpid()}")
            try:
                path.rename(claimed)
            except FileNotFoundError:
                continue  # another replayer claimed it first
        else:
            owner = claimed.name.rsplit("-", 1)[-1]
            if owner.isdigit() and int(owner) != os.getpid() and _pid_alive(int(owner)):
                continue  # claimed by a replayer that is still at it
        events = _decode_spill(claimed.read_bytes(), claimed)
        for start in range(0, len(events), batch_size):
            appended += store.append(events[start : start + batch_size], dedupe=True).appended
        claimed.unlink()
        log.info("datatrail: replayed %d events from %s", len(events), path.name)
    return appended
