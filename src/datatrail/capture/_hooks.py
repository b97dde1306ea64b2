"""Extension points of the recorders: output checks, io observers, run facets, records.

Governance (may this step write this data?) and data contracts (does this output
keep its dataset's contract?) both need a say before an output is registered.
They register an *output check*: a function called with every output a run is
about to record. A check that raises stops the output from being registered and
the exception reaches the producing step unchanged; a check that returns lets it
through. Checks run in the caller's thread, in registration order.

Checks and observers see data: frames, arrays, tables, bytes, files and paths. A
step that returns a plain number or string returns a value, not data; it is still
recorded as an output, but hashed on the writer thread without passing them.

An *io observer* sees every input and output after it is recorded (the artifact
cache keeps content with it); its exceptions are logged and swallowed. A *run
facet provider* is called in the caller's thread when a run starts and returns
facets to keep on the ``RunStarted`` event (OpenTelemetry trace and span ids).

:func:`emit_record` appends a :class:`~datatrail.model.Record` through the same
writer as the run events, so facts a check derives (a contract result, a denied
write) land in the log in order with the run they concern.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from datatrail.model import ArtifactInfo, DatasetRef, Event, JobRef, Record, format_ts, uuid7

__all__ = [
    "IOObserver",
    "OutputCheck",
    "OutputContext",
    "RunFacets",
    "collect_run_facets",
    "emit_record",
    "io_observers",
    "notify_io",
    "output_checks",
    "register_io_observer",
    "register_output_check",
    "register_run_facets",
    "run_output_checks",
]

log = logging.getLogger("datatrail")


@dataclass(frozen=True, slots=True)
class OutputContext:
    """One output about to be recorded, as a check sees it."""

    run_id: str
    job: JobRef
    parent_run_id: str | None
    level: str
    label: str | None
    value: Any
    """The output itself: a path, a frame, bytes, ... as the step produced it."""
    artifact: ArtifactInfo
    dataset: DatasetRef | None
    role: str = "output"
    """``output``, or ``input`` for io observers."""


OutputCheck = Callable[[OutputContext], None]
IOObserver = Callable[[OutputContext], None]
RunFacets = Callable[[], "dict[str, Any] | None"]

_lock = threading.Lock()
_checks: tuple[OutputCheck, ...] = ()
_observers: tuple[IOObserver, ...] = ()
_facets: tuple[RunFacets, ...] = ()


def register_io_observer(observer: IOObserver) -> Callable[[], None]:
    """Call ``observer`` with every input and output once recorded; returns its remover."""
    global _observers
    with _lock:
        if observer not in _observers:
            _observers = (*_observers, observer)

    def remove() -> None:
        global _observers
        with _lock:
            _observers = tuple(o for o in _observers if o is not observer)

    return remove


def io_observers() -> tuple[IOObserver, ...]:
    """The registered io observers."""
    return _observers


def notify_io(contexts: Iterable[OutputContext]) -> None:
    """Tell every observer about each recorded input or output; their errors are only logged."""
    for ctx in contexts:
        for observer in _observers:
            try:
                observer(ctx)
            except Exception:
                log.exception("datatrail: an io observer failed; the run goes on")


def register_run_facets(provider: RunFacets) -> Callable[[], None]:
    """Call ``provider`` when each run starts; the facets it returns are kept on the run."""
    global _facets
    with _lock:
        if provider not in _facets:
            _facets = (*_facets, provider)

    def remove() -> None:
        global _facets
        with _lock:
            _facets = tuple(f for f in _facets if f is not provider)

    return remove


def collect_run_facets() -> dict[str, Any] | None:
    """The facets every provider gives for a run starting now, or None when there are none."""
    if not _facets:
        return None
    merged: dict[str, Any] = {}
    for provider in _facets:
        try:
            facets = provider()
        except Exception:
            log.exception("datatrail: a run facet provider failed; the run goes on")
            continue
        if facets:
            merged.update(facets)
    return merged or None


def register_output_check(check: OutputCheck) -> Callable[[], None]:
    """Call ``check`` on every output before it is registered; returns a function that removes it.

    Registering the same function twice has no further effect.
    """
    global _checks
    with _lock:
        if check not in _checks:
            _checks = (*_checks, check)

    def remove() -> None:
        global _checks
        with _lock:
            _checks = tuple(c for c in _checks if c is not check)

    return remove


def output_checks() -> tuple[OutputCheck, ...]:
    """The registered checks, in the order they run."""
    return _checks


def run_output_checks(contexts: Iterable[OutputContext]) -> None:
    """Run every check on every output; the first exception propagates."""
    checks = _checks
    if not checks:
        return
    for ctx in contexts:
        for check in checks:
            check(ctx)


def _build_records(records: list[Record]) -> Iterable[Event]:
    return records


def emit_record(
    topic: str,
    *,
    subject: str | None = None,
    data: dict[str, Any] | None = None,
    ts_ns: int | None = None,
) -> str:
    """Append a :class:`Record` through the process's writer; returns its event id.

    It is written asynchronously like run events; ``datatrail.flush()`` waits for it.
    """
    import time

    from datatrail.capture._codeinfo import actor
    from datatrail.capture._state import get_writer

    event_id = uuid7()
    record = Record(
        id=event_id,
        ts=format_ts(ts_ns if ts_ns is not None else time.time_ns()),
        topic=topic,
        subject=subject,
        data=data or {},
        actor=actor(),
    )
    get_writer().submit((_build_records, ([record],)))
    return event_id
