"""Extension points of the recorders: checks on outputs, and records beside runs.

Governance (may this step write this data?) and data contracts (does this output
keep its dataset's contract?) both need a say before an output is registered.
They register an *output check*: a function called with every output a run is
about to record. A check that raises stops the output from being registered and
the exception reaches the producing step unchanged; a check that returns lets it
through. Checks run in the caller's thread, in registration order.

:func:`emit_record` appends a :class:`~datatrail.model.Record` through the same
writer as the run events, so facts a check derives (a contract result, a denied
write) land in the log in order with the run they concern.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from datatrail.model import ArtifactInfo, DatasetRef, Event, JobRef, Record, format_ts, uuid7

__all__ = [
    "OutputCheck",
    "OutputContext",
    "emit_record",
    "output_checks",
    "register_output_check",
    "run_output_checks",
]


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


OutputCheck = Callable[[OutputContext], None]

_lock = threading.Lock()
_checks: tuple[OutputCheck, ...] = ()


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
