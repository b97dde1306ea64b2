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
    run_id_of,
)
from datatrail.interop.openlineage._schema import (
    InputView,
    InvalidOpenLineageEvent,
    OutputView,
    RunEventView,
    event_kind,
    parse_event_time,
    run_event_view,
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
    "PreparedEvent",
    "PreparedIO",
    "Unreadable",
    "events_from_openlineage",
    "ingest",
    "prepare",
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


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def _uuid5_text(sha1: str) -> str:
    """The text of the version 5 UUID whose name hashed to ``sha1`` (hex; what ``uuid.uuid5`` makes).

    Written out because ids are minted several times per ingested event and the
    ``uuid`` module's objects cost more than the hashing: the version nibble becomes
    5 and the variant's two top bits 10 (RFC 4122), right in the hex text.
    """
    h = sha1
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


def _derived_uuid(*parts: str) -> str:
    return _uuid5_text(hashlib.sha1(_NS_BYTES + "\x1f".join(parts).encode()).hexdigest())


# A UTC time with a four-digit year from 1000 on, the form most producers send: its
# datatrail time is the same text, the fraction cut or padded to six digits.
_UTC_TEXT = re.compile(r"([1-9]\d{3}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,6})\d*)?[Zz]")


def _ts(event_time: str) -> str:
    moment = parse_event_time(event_time)
    if moment is None:  # validated already; keep the type checker honest
        raise InvalidOpenLineageEvent("not an ISO 8601 date-time", "/eventTime")
    utc_text = _UTC_TEXT.fullmatch(event_time)
    if utc_text is not None:
        return f"{utc_text[1]}.{(utc_text[2] or '').ljust(6, '0')}Z"
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is not None and utc.year >= 1000:  # written as format_ts writes it, without the sums
        return (
            f"{utc.year}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:"
            f"{utc.second:02d}.{utc.microsecond:06d}Z"
        )
    micros = (moment - _EPOCH) // timedelta(microseconds=1)
    return format_ts(micros * 1000)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _at(value: Any, *keys: str) -> Any:
    """``value[k1][k2]...``, or ``None`` from the first step that is not an object with the key."""
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def artifact_id_for(
    namespace: str, name: str, facets: Any, *, run_id: str, role: str, event_time: str
) -> tuple[str, bool]:
    """The artifact id of a dataset in an event, and whether it came from a version facet.

    A ``version`` facet names one version of the dataset, whoever reads or writes it, so
    producer and consumer meet on one artifact; a datatrail content hash is kept as is.
    Without one, the identity is derived from the run, dataset and event time.
    """
    version = _at(facets, "version", "datasetVersion")
    if isinstance(version, str):
        if _BLAKE3.match(version):
            return version, True
        return "uuid:" + _derived_uuid("version", namespace, name, version), True
    return "uuid:" + _derived_uuid("identity", run_id, role, namespace, name, event_time), False


def _schema(facets: dict[str, Any]) -> list[tuple[str, str]] | None:
    fields = _at(facets, "schema", "fields")
    if not isinstance(fields, list):
        return None
    return [(str(f.get("name")), str(f.get("type", ""))) for f in fields if isinstance(f, dict)]


def _stat(stats: Any, field: str) -> int | None:
    value = stats.get(field) if isinstance(stats, dict) else None
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


# -- preparing an event --------------------------------------------------------------------
#
# What an event makes depends on its run's state only in a few decisions (start the run?
# record this input again?); everything else is worked out from the event alone, by
# :func:`prepare`, on whichever thread has the event (a server's request thread), so the
# committer that owns the run states does little per event. A prepared event holds the
# pieces of the event its datatrail events carry as canonical JSON (``msgspec.Raw`` slices
# of the event's canonical bytes, which encode to exactly the bytes the decoded values
# would; a facets object is a dict of its facets' slices, which the canonical encoder's
# sorted keys put back in their order), not as the decoded objects: the garbage
# collector has almost nothing to walk while a batch waits for its commit, and nothing
# is encoded twice.


class PreparedIO(msgspec.Struct, frozen=True, gc=False):
    """One input or output of a RunEvent, as its ``IORecorded`` needs it."""

    role: str
    namespace: str
    name: str
    artifact: str
    versioned: bool
    rows: int | None
    size: int | None
    schema: list[tuple[str, str]] | None
    facets: Any
    io_key: str
    io_facets: Any


class PreparedEvent(msgspec.Struct, frozen=True, gc=False):
    """A valid OpenLineage event, worked out as far as it can be without its run's state.

    Made by :func:`prepare`; :meth:`OpenLineageMapper.map_prepared` turns it into
    datatrail events. JSON values (the event, facets) are ``msgspec.Raw`` canonical
    JSON, or the decoded objects for :meth:`OpenLineageMapper.map`.
    """

    kind: str
    subject: str
    digest: str
    """SHA-256 (hex) of the event's canonical bytes: the seed of its datatrail event ids."""
    ts: str
    event: Any
    """The event whole, as the ``openlineage.event`` record keeps it."""
    event_type: str | None = None
    run_id: str = ""
    job: JobRef | None = None
    producer: str = ""
    parent: str | None = None
    run_facets: dict[str, Any] = {}
    job_facets: dict[str, Any] = {}
    deleted: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
    """Names of the run and job facets this event deletes (``_deleted: true``)."""
    ios: tuple[PreparedIO, ...] = ()
    aliases: tuple[tuple[str, str, Any], ...] = ()
    """``(alias node, canonical node, link type)`` of each symlink, in event order."""
    declared: dict[str, list[str]] | None = None


def _deleted(facets: dict[str, Any]) -> tuple[str, ...]:
    return tuple(
        key
        for key, facet in facets.items()
        if isinstance(facet, dict) and facet.get("_deleted") is True
    )


def _prepared_io(
    role: str, ds: dict[str, Any], cut: InputView | OutputView | None, run_id: str, event_time: str
) -> PreparedIO:
    """One input or output of a RunEvent; ``cut`` its view (canonical facets), if there is one."""
    ns, name = ds["namespace"], ds["name"]
    facets = _dict(ds.get("facets"))
    if role == "input":
        key, stats_key = "inputFacets", "inputStatistics"
        io_facets = _dict(ds.get(key))
        io_value: Any = cut.inputFacets if isinstance(cut, InputView) else io_facets
    else:
        key, stats_key = "outputFacets", "outputStatistics"
        io_facets = _dict(ds.get(key))
        io_value = cut.outputFacets if isinstance(cut, OutputView) else io_facets
    art_id, versioned = artifact_id_for(
        ns, name, facets, run_id=run_id, role=role, event_time=event_time
    )
    stats = io_facets.get(stats_key)
    return PreparedIO(
        role=role,
        namespace=ns,
        name=name,
        artifact=art_id,
        versioned=versioned,
        rows=_stat(stats, "rowCount") if stats is not None else None,
        size=_stat(stats, "size") if stats is not None else None,
        schema=_schema(facets) if "schema" in facets else None,
        facets=cut.facets if cut is not None else facets,
        io_key=key,
        io_facets=io_value,
    )


def _aliases(obj: dict[str, Any], kind: str) -> tuple[tuple[str, str, Any], ...]:
    found = []
    datasets = (
        [obj["dataset"]] if kind == "dataset" else [*obj.get("inputs", []), *obj.get("outputs", [])]
    )
    for ds in datasets:
        links = _at(ds, "facets", "symlinks", "identifiers")
        if not isinstance(links, list) or not links:
            continue
        target = f"dataset:{ds['namespace']}:{ds['name']}"
        for link in links:
            found.append((f"dataset:{link['namespace']}:{link['name']}", target, link.get("type")))
    return tuple(found)


def prepare(
    obj: Any, *, validated: bool = False, raw: bool = True, decoded: bool = False
) -> PreparedEvent:
    """Validate one OpenLineage event and work out all of its mapping that needs no run state.

    Raises :class:`InvalidOpenLineageEvent` (with ``pointer``) for an invalid event;
    ``validated`` skips the check for an event :func:`validate_openlineage` has just
    passed. With ``raw`` (the default) the JSON values it keeps are canonical
    ``msgspec.Raw`` bytes; without, the event's own objects.

    ``decoded`` says ``obj`` was just decoded from JSON, so holds nothing but dicts,
    lists, strings, numbers, booleans and nulls, exactly what its canonical bytes say:
    a RunEvent is then judged by typed decodes of those bytes (:func:`run_event_view`),
    which the mapping reads too, and walked by the validator only when they cannot
    confirm it. (Other objects encode as JSON they are not: a tuple as an array.)
    """
    view: RunEventView | None = None
    if (
        decoded
        and raw
        and not validated
        and isinstance(obj, dict)
        and "run" in obj
        and "job" in obj
    ):
        canonical = canonical_bytes(obj)
        view = run_event_view(canonical)
        if view is None:
            validate_openlineage(obj)  # the verdict, and where an invalid event goes wrong
    else:
        if not validated:
            validate_openlineage(obj)
        canonical = canonical_bytes(obj)
    digest = hashlib.sha256(canonical).hexdigest()
    ts = _ts(obj["eventTime"])
    kind = event_kind(obj)
    if kind == "job":
        job = obj["job"]
        declared = {
            role: [f"dataset:{d['namespace']}:{d['name']}" for d in obj.get(role, [])]
            for role in ("inputs", "outputs")
        }
        return PreparedEvent(
            kind=kind,
            subject=f"job:{job['namespace']}:{job['name']}",
            digest=digest,
            ts=ts,
            event=msgspec.Raw(canonical) if raw else obj,
            aliases=_aliases(obj, kind),
            declared=declared,
        )
    if kind == "dataset":
        ds = obj["dataset"]
        return PreparedEvent(
            kind=kind,
            subject=f"dataset:{ds['namespace']}:{ds['name']}",
            digest=digest,
            ts=ts,
            event=msgspec.Raw(canonical) if raw else obj,
            aliases=_aliases(obj, kind),
        )
    if raw and view is None:
        view = run_event_view(canonical, judge=False)
        raw = view is not None  # None: not a valid event after all; keep the objects
    run, job_obj = obj["run"], obj["job"]
    run_id = run["runId"].lower()
    run_facets = _dict(run.get("facets"))
    job_facets = _dict(job_obj.get("facets"))
    parent = _at(run_facets, "parent", "run", "runId")
    event_time = obj["eventTime"]
    inputs, outputs = obj.get("inputs", ()), obj.get("outputs", ())
    if view is not None:
        ios = [
            *(
                _prepared_io("input", ds, cut, run_id, event_time)
                for ds, cut in zip(inputs, view.inputs, strict=True)
            ),
            *(
                _prepared_io("output", ds, cut, run_id, event_time)
                for ds, cut in zip(outputs, view.outputs, strict=True)
            ),
        ]
    else:
        ios = [
            *(_prepared_io("input", ds, None, run_id, event_time) for ds in inputs),
            *(_prepared_io("output", ds, None, run_id, event_time) for ds in outputs),
        ]
    if view is not None:
        # Copies: run states outlive the event (a server caches them), its bytes need not.
        kept_run: dict[str, Any] = {k: v.copy() for k, v in view.run.facets.items()}
        kept_job: dict[str, Any] = {k: v.copy() for k, v in view.job.facets.items()}
    else:
        kept_run, kept_job = run_facets, job_facets
    return PreparedEvent(
        kind=kind,
        subject=f"run:{run_id}",
        digest=digest,
        ts=ts,
        event=msgspec.Raw(canonical) if raw else obj,
        event_type=obj.get("eventType"),
        run_id=run_id,
        job=JobRef(namespace=job_obj["namespace"], name=job_obj["name"]),
        producer=obj["producer"],
        parent=parent.lower() if isinstance(parent, str) else None,
        run_facets=kept_run,
        job_facets=kept_job,
        # Canonical JSON spells a key one way: without it in the bytes, no facet has it.
        deleted=(_deleted(run_facets), _deleted(job_facets))
        if b'"_deleted"' in canonical
        else ((), ()),
        ios=tuple(ios),
        aliases=_aliases(obj, kind) if b'"symlinks"' in canonical else (),
    )


def _plain(value: Any) -> Any:
    """``value`` as decoded JSON (it may be canonical ``msgspec.Raw`` bytes)."""
    return msgspec.json.decode(value) if isinstance(value, msgspec.Raw) else value


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

        Takes OpenLineage events or :class:`PreparedEvent`\\ s. Optional: :meth:`map`
        looks up a run it does not know by itself, one run at a time.
        """
        self.book.prefetch_runs(
            obj.run_id if isinstance(obj, PreparedEvent) else run_id_of(obj) for obj in objs
        )

    def map(self, obj: Any, *, validated: bool = False) -> list[Event]:
        """Validate one OpenLineage event and return the datatrail events it makes.

        Raises :class:`InvalidOpenLineageEvent` (with ``pointer``) for an invalid event;
        the mapper's memory changes only when the event is accepted. ``validated``
        skips the check for an event :func:`validate_openlineage` has just passed.
        The events hold the event's own objects (``Record.data["event"] is obj``).
        """
        return self.map_prepared(prepare(obj, validated=validated, raw=False))

    def map_prepared(self, prep: PreparedEvent) -> list[Event]:
        """The datatrail events a prepared event makes, given the runs seen so far."""
        ts = prep.ts
        counter = iter(range(1_000_000))
        prefix = hashlib.sha1(_NS_BYTES + f"openlineage\x1f{prep.digest}\x1f".encode())

        def next_id() -> str:
            h = prefix.copy()
            h.update(str(next(counter)).encode())
            return _uuid5_text(h.hexdigest())

        events: list[Event] = []
        state: RunState | None = None
        if prep.kind == "run":
            state = self.book.state(prep.run_id).copy()
            self._run_events(prep, state, next_id, events)
        elif prep.kind == "job":
            events.append(
                Record(
                    id=next_id(),
                    ts=ts,
                    topic="job.declared",
                    subject=prep.subject,
                    data=prep.declared or {},
                )
            )
        else:
            events.append(
                Record(id=next_id(), ts=ts, topic="dataset.declared", subject=prep.subject, data={})
            )
        new_aliases: set[tuple[str, str]] = set()
        for alias, target, link_type in prep.aliases:
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
                    data={"target": target, "type": link_type},
                )
            )
        events.append(
            Record(
                id=next_id(),
                ts=ts,
                topic=OPENLINEAGE_TOPIC,
                subject=prep.subject,
                data={"event": prep.event},
            )
        )
        if state is not None:
            self.book.made[prep.run_id] = state
        self._aliases |= new_aliases
        return events

    @staticmethod
    def _run_events(
        prep: PreparedEvent, state: RunState, next_id: Callable[[], str], out: list[Event]
    ) -> None:
        run_id, job, ts = prep.run_id, prep.job, prep.ts
        assert job is not None  # a RunEvent's
        merge_facets(state.run_facets, prep.run_facets, deleted=prep.deleted[0])
        merge_facets(state.job_facets, prep.job_facets, deleted=prep.deleted[1])
        if not state.started:
            state.started = True
            out.append(
                RunStarted(
                    id=next_id(),
                    ts=ts,
                    run_id=run_id,
                    job=job,
                    parent_run_id=prep.parent,
                    facets={
                        "openlineage": {
                            "producer": prep.producer,
                            "run": prep.run_facets,
                            "job": prep.job_facets,
                        }
                    },
                )
            )
        ios = state.ios
        for io in prep.ios:
            role, ns, name, art_id = io.role, io.namespace, io.name, io.artifact
            if ((role, ns, name, art_id) if io.versioned else (role, ns, name)) in ios:
                continue
            # Both keys, as a lookup of the stored run_io rows makes them (_runstate).
            ios[role, ns, name, art_id] = None
            ios[role, ns, name] = None
            out.append(
                IORecorded(
                    id=next_id(),
                    ts=ts,
                    run_id=run_id,
                    role="input" if role == "input" else "output",
                    artifact=ArtifactInfo(
                        id=art_id, kind="dataset", rows=io.rows, size=io.size, schema=io.schema
                    ),
                    dataset=DatasetRef(namespace=ns, name=name),
                    job=job,
                    facets={"openlineage": {"facets": io.facets, io.io_key: io.io_facets}},
                )
            )
        event_type = prep.event_type or ""
        status = _FINISHED.get(event_type)
        if status is None:
            return
        error = None
        if event_type == "FAIL":
            msg = _dict(_plain(state.run_facets.get("errorMessage")))
            error = ErrorInfo(
                type=str(msg.get("programmingLanguage", "OpenLineage")) + " error",
                message=str(msg.get("message", "the run failed (OpenLineage FAIL)")),
                traceback=str(msg.get("stackTrace", "")),
            )
        elif event_type == "ABORT":
            error = ErrorInfo(type="Aborted", message="the run was aborted (OpenLineage ABORT)")
        if isinstance(prep.event, msgspec.Raw):
            run_facets, job_facets = dict(state.run_facets), dict(state.job_facets)
        else:  # facets looked up in the store are canonical bytes: decode them for map()
            run_facets = {k: _plain(v) for k, v in state.run_facets.items()}
            job_facets = {k: _plain(v) for k, v in state.job_facets.items()}
        out.append(
            RunFinished(
                id=next_id(),
                ts=ts,
                run_id=run_id,
                status="completed" if status == "completed" else "failed",
                error=error,
                facets={
                    "openlineage": {
                        "eventType": event_type,
                        "run": run_facets,
                        "job": job_facets,
                    }
                },
            )
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
                prep = prepare(obj)
            except InvalidOpenLineageEvent as exc:
                flush()
                results.append(
                    IngestResult(line=line, ok=False, error=exc.reason, pointer=exc.pointer)
                )
            else:
                pending.append((line, prep.kind, prep.subject, mapper.map_prepared(prep)))
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
