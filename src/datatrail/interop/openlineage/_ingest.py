"""OpenLineage in: map events to datatrail events and append them.

Every accepted OpenLineage event is kept exactly as received in one
``openlineage.event`` record, so exporting it again keeps every facet, known,
custom or unknown. Beside it, RunEvents become the datatrail facts lineage
queries read: ``RunStarted`` on the first event of a run, ``IORecorded`` per
input and output (once per run, dataset and version), ``RunFinished`` on
COMPLETE, FAIL or ABORT, with the run's facets merged across its events as the
spec's accumulation rules say. ``symlinks`` make ``dataset.alias`` records.

Event ids derive from the OpenLineage event's content, so ingesting the same
event twice (at-least-once producers, a re-imported file) stores it once.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from datatrail.errors import InvalidEvent
from datatrail.interop.openlineage._runstate import (
    OPENLINEAGE_TOPIC,
    RunBook,
    RunState,
    merge_facets,
)
from datatrail.interop.openlineage._schema import (
    InvalidOpenLineageEvent,
    event_kind,
    parse_event_time,
    validate_openlineage,
)
from datatrail.model import (
    ArtifactInfo,
    DatasetRef,
    ErrorInfo,
    Event,
    IORecorded,
    JobRef,
    Record,
    RunFinished,
    RunStarted,
    canonical_bytes,
    format_ts,
    from_json,
)
from datatrail.store import Store

__all__ = [
    "ALIAS_TOPIC",
    "OPENLINEAGE_TOPIC",
    "IngestResult",
    "OpenLineageMapper",
    "Unreadable",
    "events_from_openlineage",
    "ingest",
    "read_openlineage_lines",
    "resolve_alias",
]

ALIAS_TOPIC = "dataset.alias"
"""Records naming an alias dataset (subject) and its canonical dataset (``data["target"]``)."""

_NS = uuid.UUID("5b0c7f0e-3c1a-4d55-9a51-6f70656e6c69")  # datatrail's namespace for derived ids
_NS_BYTES = _NS.bytes
_BLAKE3 = re.compile(r"^blake3:[0-9a-f]{64}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FINISHED = {"COMPLETE": "completed", "FAIL": "failed", "ABORT": "failed"}
_BATCH = 500


def _uuid5_text(sha1: bytes) -> str:
    """The text of the version 5 UUID whose name hashed to ``sha1`` (what ``uuid.uuid5`` makes).

    Written out because ids are minted several times per ingested event and the
    ``uuid`` module's objects cost more than the hashing.
    """
    raw = bytearray(sha1[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _derived_uuid(*parts: str) -> str:
    return _uuid5_text(hashlib.sha1(_NS_BYTES + "\x1f".join(parts).encode()).digest())


def _ts(event_time: str) -> str:
    moment = parse_event_time(event_time)
    if moment is None:  # validated already; keep the type checker honest
        raise InvalidOpenLineageEvent("not an ISO 8601 date-time", "/eventTime")
    micros = (moment - _EPOCH) // timedelta(microseconds=1)
    return format_ts(micros * 1000)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def artifact_id_for(
    namespace: str, name: str, facets: Any, *, run_id: str, role: str, event_time: str
) -> tuple[str, bool]:
    """The artifact id of a dataset in an event, and whether it came from a version facet.

    A ``version`` facet names one version of the dataset, whoever reads or writes it, so
    producer and consumer meet on one artifact; a datatrail content hash is kept as is.
    Without one, the identity is derived from the run, dataset and event time.
    """
    version = _dict(_dict(facets).get("version")).get("datasetVersion")
    if isinstance(version, str):
        if _BLAKE3.match(version):
            return version, True
        return "uuid:" + _derived_uuid("version", namespace, name, version), True
    return "uuid:" + _derived_uuid("identity", run_id, role, namespace, name, event_time), False


def _schema(facets: dict[str, Any]) -> list[tuple[str, str]] | None:
    fields = _dict(facets.get("schema")).get("fields")
    if not isinstance(fields, list):
        return None
    return [(str(f.get("name")), str(f.get("type", ""))) for f in fields if isinstance(f, dict)]


def _stat(facets: dict[str, Any], key: str, field: str) -> int | None:
    value = _dict(facets.get(key)).get(field)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class OpenLineageMapper:
    """Maps OpenLineage events to datatrail events, remembering the runs it has seen.

    With a ``store``, runs started by earlier ingests are looked up there, so a
    COMPLETE arriving in a later request neither starts its run again nor repeats
    its inputs, and its facets are merged with those of the run's earlier events.
    """

    def __init__(self, store: Store | None = None, *, book: RunBook | None = None) -> None:
        self.store = store
        self.book = book if book is not None else RunBook(store)
        """Where run states come from; mappers of requests appended together share one."""
        self._aliases: set[tuple[str, str]] = set()

    def prefetch(self, objs: Sequence[Any]) -> None:
        """Look up the stored state of every run these events name, in a few queries for all.

        Optional: :meth:`map` looks up a run it does not know by itself, one run at a time.
        """
        self.book.prefetch(objs)

    def map(self, obj: Any, *, validated: bool = False) -> list[Event]:
        """Validate one OpenLineage event and return the datatrail events it makes.

        Raises :class:`InvalidOpenLineageEvent` (with ``pointer``) for an invalid event;
        the mapper's memory changes only when the event is accepted. ``validated``
        skips the check for an event :func:`validate_openlineage` has just passed.
        """
        if not validated:
            validate_openlineage(obj)
        digest = hashlib.sha256(canonical_bytes(obj)).hexdigest()
        ts = _ts(obj["eventTime"])
        counter = iter(range(1_000_000))
        prefix = hashlib.sha1(_NS_BYTES + f"openlineage\x1f{digest}\x1f".encode())

        def next_id() -> str:
            h = prefix.copy()
            h.update(str(next(counter)).encode())
            return _uuid5_text(h.digest())

        kind = event_kind(obj)
        events: list[Event] = []
        new_aliases: set[tuple[str, str]] = set()
        if kind == "run":
            run_id = obj["run"]["runId"].lower()
            subject = f"run:{run_id}"
            state = self.book.state(run_id).copy()
            events.extend(self._run_events(obj, run_id, ts, state, next_id))
        elif kind == "job":
            subject = JobRef(namespace=obj["job"]["namespace"], name=obj["job"]["name"]).node_id()
            declared = {
                role: [
                    DatasetRef(namespace=d["namespace"], name=d["name"]).node_id()
                    for d in obj.get(role, [])
                ]
                for role in ("inputs", "outputs")
            }
            events.append(
                Record(id=next_id(), ts=ts, topic="job.declared", subject=subject, data=declared)
            )
        else:
            ds = obj["dataset"]
            subject = DatasetRef(namespace=ds["namespace"], name=ds["name"]).node_id()
            events.append(
                Record(id=next_id(), ts=ts, topic="dataset.declared", subject=subject, data={})
            )
        for ds in self._datasets(obj, kind):
            target = DatasetRef(namespace=ds["namespace"], name=ds["name"]).node_id()
            links = _dict(_dict(ds.get("facets")).get("symlinks")).get("identifiers")
            for link in links if isinstance(links, list) else []:
                alias = DatasetRef(namespace=link["namespace"], name=link["name"]).node_id()
                pair = (alias, target)
                if alias == target or pair in self._aliases or pair in new_aliases:
                    continue
                new_aliases.add(pair)
                events.append(
                    Record(
                        id=next_id(),
                        ts=ts,
                        topic=ALIAS_TOPIC,
                        subject=alias,
                        data={"target": target, "type": link.get("type")},
                    )
                )
        events.append(
            Record(
                id=next_id(), ts=ts, topic=OPENLINEAGE_TOPIC, subject=subject, data={"event": obj}
            )
        )
        if kind == "run":
            self.book.made[run_id] = state
        self._aliases |= new_aliases
        return events

    @staticmethod
    def _datasets(obj: dict[str, Any], kind: str) -> list[dict[str, Any]]:
        if kind == "dataset":
            return [obj["dataset"]]
        return [*obj.get("inputs", []), *obj.get("outputs", [])]

    def _run_events(
        self,
        obj: dict[str, Any],
        run_id: str,
        ts: str,
        state: RunState,
        next_id: Callable[[], str],
    ) -> Iterable[Event]:
        run, job_obj = obj["run"], obj["job"]
        job = JobRef(namespace=job_obj["namespace"], name=job_obj["name"])
        run_facets = _dict(run.get("facets"))
        job_facets = _dict(job_obj.get("facets"))
        merge_facets(state.run_facets, run_facets)
        merge_facets(state.job_facets, job_facets)
        if not state.started:
            state.started = True
            parent = _dict(_dict(run_facets.get("parent")).get("run")).get("runId")
            yield RunStarted(
                id=next_id(),
                ts=ts,
                run_id=run_id,
                job=job,
                parent_run_id=parent.lower() if isinstance(parent, str) else None,
                facets={
                    "openlineage": {
                        "producer": obj["producer"],
                        "run": run_facets,
                        "job": job_facets,
                    }
                },
            )
        for role, key, items in (
            ("input", "inputFacets", obj.get("inputs", [])),
            ("output", "outputFacets", obj.get("outputs", [])),
        ):
            for ds in items:
                ns, name = ds["namespace"], ds["name"]
                facets = _dict(ds.get("facets"))
                art_id, versioned = artifact_id_for(
                    ns, name, facets, run_id=run_id, role=role, event_time=obj["eventTime"]
                )
                seen = (role, ns, name, art_id) if versioned else (role, ns, name)
                if seen in state.ios:
                    continue
                # Both keys, as a lookup of the stored run_io rows makes them (_runstate).
                state.ios.add((role, ns, name, art_id))
                state.ios.add((role, ns, name))
                io_facets = _dict(ds.get(key))
                stats_key = "inputStatistics" if role == "input" else "outputStatistics"
                yield IORecorded(
                    id=next_id(),
                    ts=ts,
                    run_id=run_id,
                    role="input" if role == "input" else "output",
                    artifact=ArtifactInfo(
                        id=art_id,
                        kind="dataset",
                        rows=_stat(io_facets, stats_key, "rowCount"),
                        size=_stat(io_facets, stats_key, "size"),
                        schema=_schema(facets),
                    ),
                    dataset=DatasetRef(namespace=ns, name=name),
                    job=job,
                    facets={"openlineage": {"facets": facets, key: io_facets}},
                )
        status = _FINISHED.get(obj.get("eventType", ""))
        if status is not None:
            error = None
            if obj["eventType"] == "FAIL":
                msg = _dict(state.run_facets.get("errorMessage"))
                error = ErrorInfo(
                    type=str(msg.get("programmingLanguage", "OpenLineage")) + " error",
                    message=str(msg.get("message", "the run failed (OpenLineage FAIL)")),
                    traceback=str(msg.get("stackTrace", "")),
                )
            elif obj["eventType"] == "ABORT":
                error = ErrorInfo(type="Aborted", message="the run was aborted (OpenLineage ABORT)")
            yield RunFinished(
                id=next_id(),
                ts=ts,
                run_id=run_id,
                status="completed" if status == "completed" else "failed",
                error=error,
                facets={
                    "openlineage": {
                        "eventType": obj["eventType"],
                        "run": dict(state.run_facets),
                        "job": dict(state.job_facets),
                    }
                },
            )


def events_from_openlineage(obj: Any, *, store: Store | None = None) -> list[Event]:
    """The datatrail events one OpenLineage event makes.

    Without ``store`` the event is treated as its run's first (a ``RunStarted`` is
    made). With ``store``, runs already in it are not started again and their
    facets merge. Several events of one run in one request: use one
    :class:`OpenLineageMapper` for all of them (or :func:`ingest`).
    Raises :class:`InvalidOpenLineageEvent` with the JSON pointer of the first bad field.
    """
    return OpenLineageMapper(store).map(obj)


class IngestResult(msgspec.Struct, frozen=True, kw_only=True):
    """What happened to one OpenLineage event (or line) offered to :func:`ingest`."""

    line: int
    """1-based position in the input (the line number of a JSON lines file)."""
    ok: bool
    kind: str | None = None
    """``run``, ``job`` or ``dataset`` for an accepted event."""
    subject: str | None = None
    """The node the event concerns (``run:…``, ``job:…``, ``dataset:…``)."""
    events: int = 0
    """datatrail events appended (0 when every one was already stored)."""
    error: str | None = None
    pointer: str | None = None
    """JSON pointer of the first bad field of a rejected event."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        result: dict[str, Any] = msgspec.to_builtins(self)
        return result


class Unreadable(msgspec.Struct, frozen=True):
    """A line that could not be read as JSON; :func:`ingest` reports it as rejected."""

    error: str


def ingest(
    store: Store,
    objs: Iterable[Any],
    *,
    lines: Sequence[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
    total: int = 0,
    mapper: OpenLineageMapper | None = None,
) -> list[IngestResult]:
    """Validate, map and append OpenLineage events; one result per event, in order.

    An invalid event (or a :func:`read_openlineage_lines` placeholder for an unreadable
    line) is reported with its reason and nothing of it is stored; valid events are
    appended in batches. Events already stored (same content) are skipped, not doubled.
    ``lines`` gives each element's line number (default: its 1-based position).
    """
    mapper = mapper or OpenLineageMapper(store)
    results: list[IngestResult] = []
    pending: list[tuple[int, str, str, list[Event]]] = []

    def flush() -> None:
        if not pending:
            return
        batch = [ev for *_, evs in pending for ev in evs]
        stored = _stored_ids(store, [ev.id for ev in batch])
        store.append(batch)
        for line, kind, subject, evs in pending:
            fresh = sum(ev.id not in stored for ev in evs)
            results.append(
                IngestResult(line=line, ok=True, kind=kind, subject=subject, events=fresh)
            )
        pending.clear()

    for i, obj in enumerate(_prefetched(mapper, objs)):
        line = lines[i] if lines is not None else i + 1
        if isinstance(obj, Unreadable):
            flush()
            results.append(IngestResult(line=line, ok=False, error=obj.error))
        else:
            try:
                events = mapper.map(obj)
            except InvalidOpenLineageEvent as exc:
                flush()
                results.append(
                    IngestResult(line=line, ok=False, error=exc.reason, pointer=exc.pointer)
                )
            else:
                record = events[-1]
                subject = record.subject if isinstance(record, Record) else None
                pending.append((line, event_kind(obj), subject or "", events))
                if len(pending) >= _BATCH:
                    flush()
        if progress is not None:
            progress(i + 1, max(total, i + 1))
    flush()
    return results


def _prefetched(mapper: OpenLineageMapper, objs: Iterable[Any]) -> Iterator[Any]:
    """``objs`` in order, each chunk's runs looked up together before its events are mapped."""
    chunk: list[Any] = []
    for obj in objs:
        chunk.append(obj)
        if len(chunk) >= _BATCH:
            mapper.prefetch(chunk)
            yield from chunk
            chunk = []
    mapper.prefetch(chunk)
    yield from chunk


def _stored_ids(store: Store, ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(ids), _BATCH):
        chunk = ids[start : start + _BATCH]
        marks = ", ".join("?" * len(chunk))
        found.update(
            r[0] for r in store.query(f"SELECT id FROM events WHERE id IN ({marks})", chunk)
        )
    return found


def read_openlineage_lines(data: bytes | str) -> tuple[list[Any], list[int]]:
    """Parse JSON lines (or one JSON array) into events and their line numbers.

    A line that is not JSON becomes an :class:`Unreadable` placeholder that
    :func:`ingest` reports; blank lines are skipped but keep the numbering.
    """
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            whole = from_json(stripped)
        except InvalidEvent as exc:
            return [Unreadable(f"the file is not a JSON array of events: {exc}")], [1]
        items = whole if isinstance(whole, list) else [whole]
        return items, list(range(1, len(items) + 1))
    objs: list[Any] = []
    numbers: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            objs.append(from_json(line))
        except InvalidEvent as exc:
            objs.append(Unreadable(str(exc)))
        numbers.append(number)
    return objs, numbers


def resolve_alias(store: Store, node_id: str, *, max_hops: int = 16) -> str:
    """The canonical node id of a dataset known by an alias (OpenLineage ``symlinks``).

    Follows ``dataset.alias`` records (the latest for each alias wins) up to
    ``max_hops`` steps and stops on a cycle; a node with no alias is returned as is.
    """
    current = node_id
    seen = {current}
    for _ in range(max_hops):
        rows = store.query(
            "SELECT data FROM records WHERE topic = ? AND subject = ? ORDER BY idx DESC LIMIT 1",
            (ALIAS_TOPIC, current),
        )
        if not rows:
            return current
        target = _dict(from_json(rows[0][0])).get("target")
        if not isinstance(target, str) or target in seen:
            return current
        seen.add(target)
        current = target
    return current
