"""Group commit for OpenLineage ingest: requests that arrive together share one transaction.

A request decodes, validates and prepares its events on its own thread (all
of their mapping that needs no run state, see
:func:`~datatrail.interop.openlineage._ingest.prepare`), hands them to the
committer and waits. The committer takes every request waiting, maps their
events together (one lookup for all the runs they name, against a
:class:`~datatrail.interop.openlineage._runstate.RunCache` that stays exact
while other servers append too), appends them in one transaction and tells
each request what became of its events. A request is answered only once its
events are durable, and N requests in flight cost one commit and one checkpoint
signature instead of N.

Requests mapped together behave as if they had come one after the other, in
the order they reached the committer: a COMPLETE mapped after its START in the
same group finishes the run the START began. If a group's append fails, each
request of it is tried alone, so one request's failure is not its neighbours'.

A commit has a fixed cost (the transaction, the checkpoint signature) that a
small group shares among few events. So before committing a small group the
committer waits, briefly (at most ``linger``, and never longer than the last
commit took), for the requests it expects: those of the last group, whose
clients typically send their next event as soon as they are answered, and
those that queued behind it. Four clients posting one event at a time then
share each commit four ways rather than two or three. A lone client is never
kept waiting: it is the one request expected. Groups of ``linger_below``
events or more are committed at once, so batches never wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from datatrail.errors import InvalidEvent
from datatrail.interop.openlineage._ingest import OpenLineageMapper, PreparedEvent, prepare
from datatrail.interop.openlineage._runstate import RunBook, RunCache, run_id_of
from datatrail.model import Event
from datatrail.server._errors import ApiError
from datatrail.store import AppendResult, Store

__all__ = ["Committed", "GroupCommitter"]

_ID_CHUNK = 500


@dataclass
class Committed:
    """What became of one request's OpenLineage events."""

    items: list[int | InvalidEvent]
    """Per event: how many datatrail events it made, or why it was refused."""
    appended: int = 0
    """datatrail events of the request newly stored (not already in the log)."""
    duplicates: int = 0
    first_index: int | None = None
    """Log index of the request's first newly stored event."""


@dataclass
class _Job:
    objs: list[Any]
    done: threading.Event | None = None
    """Set when a thread waits (:meth:`GroupCommitter.submit`)."""
    future: asyncio.Future[Committed] | None = None
    """Set when an async caller waits: the answer goes to its event loop."""
    result: Committed | None = None
    error: BaseException | None = None

    def finish(self, result: Committed | None, error: BaseException | None = None) -> None:
        """Keep the outcome; the committer tells the caller (:func:`_answer`) after the group."""
        self.result, self.error = result, error


def _answer(jobs: list[_Job]) -> None:
    """Wake each job's caller: a thread directly, an event loop with one callback for all."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
    for job in jobs:
        if job.future is not None:
            by_loop.setdefault(job.future.get_loop(), []).append(job)
        if job.done is not None:
            job.done.set()
    for loop, waiting in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits there any more
            loop.call_soon_threadsafe(_settle, waiting)


def _settle(jobs: list[_Job]) -> None:
    for job in jobs:
        future = job.future
        assert future is not None
        if future.done():  # the request was cancelled (its client went away); the events stay
            continue
        if job.error is not None:
            future.set_exception(job.error)
        else:
            assert job.result is not None
            future.set_result(job.result)


def _run_id(obj: Any) -> str | None:
    return (obj.run_id or None) if isinstance(obj, PreparedEvent) else run_id_of(obj)


@dataclass
class _Mapped:
    job: _Job
    items: list[int | InvalidEvent]
    events: list[Event]


class GroupCommitter:
    """One thread that maps and appends the OpenLineage events of concurrent requests together."""

    def __init__(
        self,
        store: Store,
        *,
        max_events: int = 10_000,
        cache_runs: int = 20_000,
        linger: float = 0.002,
        linger_below: int = 64,
    ) -> None:
        self.store = store
        self.max_events = max_events
        self.linger = linger
        """The longest wait (seconds) for expected requests before a small group is committed
        (never longer than the last commit took); 0 commits at once."""
        self.linger_below = linger_below
        """A group of this many events or more is committed without waiting."""
        self.cache = RunCache(store, max_runs=cache_runs)
        self._pending: deque[_Job] = deque()
        self._pending_events = 0
        self._want = 1
        """How many requests waiting wake the committer (more while it lingers)."""
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    # -- the requests' side -------------------------------------------------------------

    def submit(self, objs: list[Any]) -> Committed:
        """Map and append validated OpenLineage events; returns once they are durable.

        Each is an event :func:`~datatrail.interop.openlineage._schema.validate_openlineage`
        passed, or better, the :class:`PreparedEvent` :func:`prepare` made of it on the
        caller's thread, which leaves the committer only what depends on run states.

        Raises what the append raised (the store's error) when nothing could be stored.
        """
        done = threading.Event()
        job = _Job(objs, done=done)
        self._enqueue(job)
        done.wait()
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    async def submit_async(self, objs: list[Any]) -> Committed:
        """:meth:`submit` for the event loop: waits without holding a thread."""
        job = _Job(objs, future=asyncio.get_running_loop().create_future())
        self._enqueue(job)
        assert job.future is not None
        return await job.future

    def _enqueue(self, job: _Job) -> None:
        with self._cond:
            if self._stopping:
                raise ApiError(
                    503, "shutting_down", "the server is shutting down; send the events again"
                )
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="datatrail-ingest", daemon=True
                )
                self._thread.start()
            self._pending.append(job)
            self._pending_events += len(job.objs)
            if len(self._pending) >= self._want or self._pending_events >= self.linger_below:
                self._cond.notify()

    def close(self, timeout: float = 60.0) -> None:
        """Commit what is waiting, then stop the thread; later submits start it again."""
        with self._cond:
            thread, self._stopping = self._thread, True
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout)
        with self._cond:
            self._thread, self._stopping = None, False

    # -- the committer's side -----------------------------------------------------------

    def _loop(self) -> None:
        expected = 0  # requests likely to come soon: the last group's and those queued behind it
        took = 0.0  # seconds the last commit took
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if not self._pending:
                    return
                self._linger(expected, min(self.linger, took))
                jobs = self._take()
            started = time.monotonic()
            self._commit(jobs)
            took = time.monotonic() - started
            with self._cond:  # counted before anyone is answered, so no request counts twice
                expected = len(self._pending) + len(jobs)
            _answer(jobs)

    def _linger(self, expected: int, wait: float) -> None:
        """With the lock held: wait up to ``wait`` seconds for ``expected`` requests in all.

        Only while the group would be small; a submit that completes the group, or
        makes it big enough, wakes the committer at once.
        """
        if (
            wait <= 0
            or len(self._pending) >= expected
            or self._pending_events >= self.linger_below
            or self._stopping
        ):
            return
        deadline = time.monotonic() + wait
        self._want = expected
        try:
            while (
                len(self._pending) < expected
                and self._pending_events < self.linger_below
                and not self._stopping
            ):
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(left)
        finally:
            self._want = 1

    def _take(self) -> list[_Job]:
        jobs = [self._pending.popleft()]
        total = len(jobs[0].objs)
        while self._pending and total + len(self._pending[0].objs) <= self.max_events:
            job = self._pending.popleft()
            total += len(job.objs)
            jobs.append(job)
        self._pending_events -= total
        return jobs

    def _commit(self, jobs: list[_Job]) -> None:
        try:
            self._commit_group(jobs)
        except BaseException as exc:
            # The append's outcome is unknown to the cache; start it afresh.
            self.cache.clear()
            if len(jobs) == 1:
                jobs[0].finish(None, exc)
                return
            for job in jobs:
                try:
                    self._commit_group([job])
                except BaseException as alone:
                    self.cache.clear()
                    job.finish(None, alone)

    def _commit_group(self, jobs: list[_Job]) -> None:
        self.cache.sync()
        book = RunBook(self.store, self.cache)
        book.prefetch_runs(_run_id(obj) for job in jobs for obj in job.objs)
        mapped = [self._map(job, book) for job in jobs]
        events = [ev for m in mapped for ev in m.events]
        if not events:
            for m in mapped:
                m.job.finish(Committed(items=m.items))
            return
        result = self.store.append(events)
        self.cache.remember(
            book.made,
            first_index=result.first_index,
            size=result.size,
            duplicates=result.duplicates,
        )
        fresh = self._fresh(events, result)
        offset = 0
        for m in mapped:
            mine = fresh[offset : offset + len(m.events)]
            offset += len(m.events)
            stored = [idx for idx in mine if idx is not None]
            m.job.finish(
                Committed(
                    items=m.items,
                    appended=len(stored),
                    duplicates=len(mine) - len(stored),
                    first_index=min(stored) if stored else None,
                )
            )

    def _map(self, job: _Job, book: RunBook) -> _Mapped:
        # One mapper per request, sharing the group's run states: aliases are remembered
        # per request, as they are when requests are mapped one by one.
        mapper = OpenLineageMapper(self.store, book=book)
        items: list[int | InvalidEvent] = []
        events: list[Event] = []
        for obj in job.objs:
            try:
                prep = obj if isinstance(obj, PreparedEvent) else prepare(obj, validated=True)
                made = mapper.map_prepared(prep)
            except InvalidEvent as exc:
                items.append(exc)
                continue
            items.append(len(made))
            events.extend(made)
        return _Mapped(job=job, items=items, events=events)

    def _fresh(self, events: list[Event], result: AppendResult) -> list[int | None]:
        """Each event's log index if this append stored it, ``None`` if it was already there."""
        if not result.duplicates:
            return list(range(result.first_index, result.first_index + len(events)))
        where: dict[str, int] = {}
        ids = list(dict.fromkeys(ev.id for ev in events))
        for start in range(0, len(ids), _ID_CHUNK):
            chunk = ids[start : start + _ID_CHUNK]
            marks = ", ".join("?" * len(chunk))
            for event_id, idx in self.store.query(
                f"SELECT id, idx FROM events WHERE id IN ({marks})", chunk
            ):
                where[str(event_id)] = int(idx)
        out: list[int | None] = []
        claimed: set[str] = set()
        for ev in events:
            idx = where.get(ev.id)
            if idx is not None and idx >= result.first_index and ev.id not in claimed:
                claimed.add(ev.id)
                out.append(idx)
            else:
                out.append(None)
        return out
