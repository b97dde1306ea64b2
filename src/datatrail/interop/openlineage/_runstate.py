"""What mapping an OpenLineage run event needs to know about its run, and where that comes from.

A run's state is whether it started, which inputs and outputs it recorded, and
its run and job facets merged over its earlier events. All of it is derived
from the log (the ``runs`` and ``run_io`` projections and the run's
``openlineage.event`` records), so it is looked up for many runs at once, in
three queries per 500 runs, rather than three queries per event.

:class:`RunCache` keeps states between requests for a server that appends
OpenLineage events itself. Several servers (and the CLI, and ingest workers)
may append to one store, so the cache proves itself before every use: it knows
the log size at which it is exact, and when the log grew behind its back it
reads the entries in between and forgets every run they touch. A cached state
therefore always equals what a lookup would return; the cache only saves the
lookup.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec

from datatrail.model import canonical_bytes, from_json
from datatrail.store import Store

__all__ = [
    "OPENLINEAGE_TOPIC",
    "RunBook",
    "RunCache",
    "RunState",
    "lookup_runs",
    "merge_facets",
    "run_id_of",
]

OPENLINEAGE_TOPIC = "openlineage.event"
"""The record topic holding each ingested OpenLineage event whole (``data["event"]``)."""

_CHUNK = 500


class RunState(msgspec.Struct, kw_only=True, gc=False):
    """One run as the mapper sees it; replaced, never changed, once shared.

    A server caches thousands: nothing in one is a container the garbage collector
    keeps walking (the struct is untracked; ``ios`` is a dict, not a set, since the
    collector stops tracking a dict of strings and tuples of strings, never a set).
    """

    started: bool = False
    ios: dict[tuple[str, ...], None] = {}
    """The inputs and outputs recorded, as ``(role, namespace, name[, artifact])`` keys."""
    run_facets: dict[str, Any] = {}
    job_facets: dict[str, Any] = {}

    def copy(self) -> RunState:
        """A copy the next event of the run may change."""
        return RunState(
            started=self.started,
            ios=dict(self.ios),
            run_facets=dict(self.run_facets),
            job_facets=dict(self.job_facets),
        )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _is_deleted(facet: Any) -> bool:
    """Whether a facet (decoded, or canonical ``msgspec.Raw`` bytes) says ``_deleted: true``."""
    if isinstance(facet, msgspec.Raw):
        if b'"_deleted":true' not in bytes(facet):  # canonical JSON: no other spelling
            return False
        facet = msgspec.json.decode(facet)  # the key may belong to a nested object
    return isinstance(facet, dict) and facet.get("_deleted") is True


def merge_facets(
    into: dict[str, Any], facets: Any, *, deleted: Iterable[str] | None = None
) -> None:
    """Accumulate facets as the spec says: a later facet replaces one of the same name;
    ``_deleted: true`` removes it.

    Facets may be decoded or canonical ``msgspec.Raw`` bytes; ``deleted`` names the
    deleting ones when the caller knows them already.
    """
    if deleted is not None and not deleted:  # the usual case: each facet replaces its namesake
        into.update(_dict(facets))
        return
    gone = set(deleted) if deleted is not None else None
    for key, facet in _dict(facets).items():
        if (key in gone) if gone is not None else _is_deleted(facet):
            into.pop(key, None)
        else:
            into[key] = facet


class _Facets(msgspec.Struct, gc=False):
    facets: dict[str, msgspec.Raw] = {}


class _StoredEvent(msgspec.Struct, gc=False):
    run: _Facets | None = None
    job: _Facets | None = None


class _StoredRecord(msgspec.Struct, gc=False):
    event: _StoredEvent | None = None


_STORED = msgspec.json.Decoder(_StoredRecord)


def _stored_facets(data: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run and job facets of a stored ``openlineage.event`` record, as canonical bytes."""
    try:
        event = _STORED.decode(data).event or _StoredEvent()
    except msgspec.ValidationError:  # not shaped as ingest writes it: take what there is
        old = _dict(_dict(from_json(data)).get("event"))
        run, job = _dict(old.get("run")), _dict(old.get("job"))
        return _canonical(run.get("facets")), _canonical(job.get("facets"))
    # Copies: slices would keep the whole record's bytes alive in a cached state.
    return (
        {k: v.copy() for k, v in event.run.facets.items()} if event.run else {},
        {k: v.copy() for k, v in event.job.facets.items()} if event.job else {},
    )


def _canonical(facets: Any) -> dict[str, Any]:
    return {k: msgspec.Raw(canonical_bytes(v)) for k, v in _dict(facets).items()}


def lookup_runs(store: Store, run_ids: Iterable[str]) -> dict[str, RunState]:
    """The stored state of each run (a fresh, unstarted state for a run the store does not know).

    Its facets are canonical ``msgspec.Raw`` bytes, as :func:`~._ingest.prepare` keeps them.
    """
    states = {r: RunState() for r in dict.fromkeys(run_ids)}
    ids = list(states)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        marks = ", ".join("?" * len(chunk))
        for run_id, start_idx in store.query(
            f"SELECT run_id, start_idx FROM runs WHERE run_id IN ({marks})", chunk
        ):
            states[run_id].started = start_idx is not None
        for run_id, role, ns, name, art in store.query(
            "SELECT run_id, role, dataset_namespace, dataset_name, artifact_id FROM run_io "
            f"WHERE run_id IN ({marks})",
            chunk,
        ):
            ios = states[run_id].ios
            ios[role, ns or "", name or "", art] = None
            ios[role, ns or "", name or ""] = None
        subjects = [f"run:{r}" for r in chunk]
        for subject, data in store.query(
            f"SELECT subject, data FROM records WHERE topic = ? AND subject IN ({marks}) "
            "ORDER BY idx",
            (OPENLINEAGE_TOPIC, *subjects),
        ):
            state = states[str(subject)[4:]]
            run_facets, job_facets = _stored_facets(data)
            merge_facets(state.run_facets, run_facets)
            merge_facets(state.job_facets, job_facets)
    return states


def run_id_of(obj: Any) -> str | None:
    """The (lowercased) run id of what looks like a RunEvent, else ``None``."""
    if not isinstance(obj, dict) or "job" not in obj:
        return None
    run_id = _dict(obj.get("run")).get("runId")
    return run_id.lower() if isinstance(run_id, str) else None


class RunCache:
    """Run states between requests, exact at a known log size (see the module docstring).

    Used by one thread at a time (the server's committer). ``max_runs`` bounds the
    memory (the least recently mapped runs go first); a gap of more than ``max_gap``
    entries appended by others is not read: the cache is emptied instead.
    """

    def __init__(self, store: Store, *, max_runs: int = 20_000, max_gap: int = 20_000) -> None:
        self.store = store
        self.max_runs = max_runs
        self.max_gap = max_gap
        self._runs: dict[str, RunState] = {}
        self._size: int | None = None

    def __len__(self) -> int:
        return len(self._runs)

    @property
    def size(self) -> int | None:
        """The log size at which the cache is exact (``None`` before the first :meth:`sync`)."""
        return self._size

    def sync(self) -> None:
        """Make the cache exact for the log as it stands now."""
        size = self.store.size()
        if self._size is None:
            self._runs.clear()
        elif size != self._size:
            self._forget(self._size, size)
        self._size = size

    def get(self, run_id: str) -> RunState | None:
        """The run's state, if cached (exact as of the last :meth:`sync` or :meth:`remember`)."""
        return self._runs.get(run_id)

    def remember(
        self, states: Mapping[str, RunState], *, first_index: int, size: int, duplicates: int
    ) -> None:
        """Keep the states an append just made durable (it landed at ``first_index``).

        When some of the events were already stored, the log may hold them in another
        order than the mapping assumed, so those runs are forgotten rather than kept.
        Entries others appended between the last sync and this append are read and
        the runs they touch forgotten.
        """
        if self._size is None:
            return
        for run_id, state in states.items():
            self._runs.pop(run_id, None)
            if not duplicates and state.started:
                self._runs[run_id] = state  # newest last: trimming drops the oldest
        if first_index != self._size:
            self._forget(self._size, first_index)
        self._size = size
        while len(self._runs) > self.max_runs:
            del self._runs[next(iter(self._runs))]

    def clear(self) -> None:
        """Forget everything (after an append whose outcome is unknown)."""
        self._runs.clear()
        self._size = None

    def _forget(self, start: int, end: int) -> None:
        """Forget the runs that the log entries ``[start, end)`` touch."""
        if not self._runs:
            return
        if end < start or end - start > self.max_gap or self._erasures(start, end):
            self._runs.clear()
            return
        touched = {
            str(r)
            for (r,) in self.store.query(
                "SELECT DISTINCT run_id FROM run_io WHERE idx >= ? AND idx < ?", (start, end)
            )
        }
        for (subject,) in self.store.query(
            "SELECT subject FROM records WHERE idx >= ? AND idx < ? AND topic = ?",
            (start, end, OPENLINEAGE_TOPIC),
        ):
            if isinstance(subject, str) and subject.startswith("run:"):
                touched.add(subject[4:])
        for run_id in touched:
            self._runs.pop(run_id, None)

    def _erasures(self, start: int, end: int) -> bool:
        # An erasure may remove facets any run had merged: nothing cached can be trusted.
        rows = self.store.query(
            "SELECT COUNT(*) FROM events WHERE idx >= ? AND idx < ? AND kind = 'erasure'",
            (start, end),
        )
        return bool(rows[0][0])


class RunBook:
    """The run states one mapping pass sees: made by it, cached, or looked up in the store.

    Mappers of several requests appended together share one book, so a COMPLETE
    mapped after its START in the same group finishes the run the START began.
    """

    def __init__(self, store: Store | None = None, cache: RunCache | None = None) -> None:
        self.store = store
        self.cache = cache
        self.made: dict[str, RunState] = {}
        """States made by mapping, by run id (what :meth:`RunCache.remember` keeps)."""
        self._found: dict[str, RunState] = {}

    def state(self, run_id: str) -> RunState:
        """The run's state before the event being mapped."""
        state = self.made.get(run_id)
        if state is None and self.cache is not None:
            state = self.cache.get(run_id)
        if state is None:
            state = self._found.get(run_id)
        if state is None:
            if self.store is None:
                return RunState()
            state = lookup_runs(self.store, (run_id,))[run_id]
            self._found[run_id] = state
        return state

    def prefetch(self, objs: Sequence[Any]) -> None:
        """Look up every run these events name that the book does not know, all at once."""
        self.prefetch_runs(run_id_of(obj) for obj in objs)

    def prefetch_runs(self, run_ids: Iterable[str | None]) -> None:
        """Look up every one of these runs that the book does not know, all at once."""
        if self.store is None:
            return
        wanted = []
        for run_id in run_ids:
            if (
                run_id is None
                or run_id in self.made
                or run_id in self._found
                or (self.cache is not None and self.cache.get(run_id) is not None)
            ):
                continue
            wanted.append(run_id)
        if wanted:
            self._found.update(lookup_runs(self.store, wanted))
