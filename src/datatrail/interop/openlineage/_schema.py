"""A fast validator for OpenLineage 2-0-2 events and the standard facets.

The official JSON Schemas are not shipped (nor needed at runtime): the event
structure and every standard facet are described here in a few small checkers
written for datatrail, and the test suite cross-checks them against
``jsonschema`` validating the official schemas on every sample event. Formats
are annotations in the schemas; of them only ``uuid`` is asserted (run ids
become node ids), plus an ``eventTime`` that must parse as ISO 8601 (with or
without a zone, as Marquez accepts), since every datatrail event needs a time.

Errors name the JSON pointer of the first bad field (``/run/runId``). An event
is first judged by the checkers' predicates (:func:`~._checks.fast`), which
build no pointers; only an event they refuse is checked again to say where.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from datatrail.errors import InvalidEvent
from datatrail.interop.openlineage._checks import (
    Bad,
    Check,
    Predicate,
    arr,
    enum,
    fast,
    matches,
    obj,
    short,
    string,
    uuid_str,
    want,
    with_fast,
)
from datatrail.interop.openlineage._facets import CONTAINERS, ON_BASE, facets_check

__all__ = [
    "InvalidOpenLineageEvent",
    "event_kind",
    "parse_event_time",
    "validate_facets",
    "validate_openlineage",
]


class InvalidOpenLineageEvent(InvalidEvent):
    """An OpenLineage event breaks the 2-0-2 schema; ``pointer`` names the first bad field."""

    def __init__(self, message: str, pointer: str) -> None:
        super().__init__(f"{pointer or '/'}: {message}")
        self.pointer = pointer
        """JSON pointer (RFC 6901) of the first bad field, ``""`` for the whole event."""
        self.reason = message


# -- the event -----------------------------------------------------------------------------


def _both(first: Predicate, second: Predicate) -> Predicate:
    return lambda value: first(value) and second(value)


def _facets(kind: str) -> Check:
    """The facets checker of a container, with a predicate that mirrors it rule for rule."""
    check = facets_check(kind)
    base, standard = CONTAINERS[kind]
    base_ok = fast(base)
    # A standard facet's predicate, with the base rule unless its checker includes it already.
    standard_ok = {
        name: fast(c) if ON_BASE.get(c) is base else _both(base_ok, fast(c))
        for name, c in standard.items()
    }

    def ok(value: Any) -> bool:
        if not isinstance(value, dict):
            return False
        for key, facet in value.items():
            known = standard_ok.get(key, base_ok)
            if not known(facet):
                return False
        return True

    return with_fast(check, ok)


_RUN = obj({"runId": uuid_str, "facets": _facets("run")}, ("runId",))
_JOB = obj({"namespace": string, "name": string, "facets": _facets("job")}, ("namespace", "name"))
_DATASET = obj(
    {"namespace": string, "name": string, "facets": _facets("dataset")}, ("namespace", "name")
)
_INPUT = obj(
    {
        "namespace": string,
        "name": string,
        "facets": _facets("dataset"),
        "inputFacets": _facets("input"),
    },
    ("namespace", "name"),
)
_OUTPUT = obj(
    {
        "namespace": string,
        "name": string,
        "facets": _facets("dataset"),
        "outputFacets": _facets("output"),
    },
    ("namespace", "name"),
)
_EVENT_TYPE = enum("START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER")
_IO = obj({"inputs": arr(_INPUT), "outputs": arr(_OUTPUT)})


_NANOS = re.compile(r"(\.\d{6})\d+")
_last_time: tuple[str, datetime | None] = ("", None)


def parse_event_time(text: str) -> datetime | None:
    """``eventTime`` as an aware datetime (UTC when it has no zone), or None if it does not parse."""
    global _last_time
    last = _last_time  # validation and mapping parse each event's time: the second is free
    if last[0] == text:
        return last[1]
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    # Python keeps microseconds; producers send up to nanoseconds.
    value = _NANOS.sub(r"\1", value)
    try:
        moment: datetime | None = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    _last_time = (text, moment)  # one tuple, swapped whole: threads see a consistent pair
    return moment


def _event_time(value: Any, p: str) -> None:
    string(value, p)
    if parse_event_time(value) is None:
        raise Bad(p, f"not an ISO 8601 date-time: {short(value)}")


with_fast(_event_time, lambda v: isinstance(v, str) and parse_event_time(v) is not None)


_BASE_EVENT = obj(
    {"eventTime": _event_time, "producer": string, "schemaURL": string},
    ("eventTime", "producer", "schemaURL"),
)


def event_kind(event: Mapping[str, Any]) -> str:
    """Which event a (valid) object is: ``run``, ``job`` or ``dataset``."""
    if "run" in event and "job" in event:
        return "run"
    if (
        "job" in event
        and "run" not in event
        and matches(_JOB, event["job"], "/job") is None
        and matches(_IO, event, "") is None
    ):
        return "job"
    return "dataset"


_RUN_EVENT = obj({"eventType": _EVENT_TYPE, "run": _RUN, "job": _JOB}, ("run", "job"))
_BASE_OK, _RUN_EVENT_OK, _IO_OK = fast(_BASE_EVENT), fast(_RUN_EVENT), fast(_IO)
_JOB_OK, _DATASET_OK = fast(_JOB), fast(_DATASET)


def _valid(event: Any) -> bool:
    """Whether :func:`_validate` would pass ``event``, by the predicates (no pointers)."""
    if not isinstance(event, dict) or not _BASE_OK(event):
        return False
    has_run, has_job = "run" in event, "job" in event
    if has_run and has_job:
        return _RUN_EVENT_OK(event) and _IO_OK(event)
    job_ok = has_job and _JOB_OK(event["job"]) and _IO_OK(event)
    ds_ok = "dataset" in event and _DATASET_OK(event["dataset"])
    return job_ok != ds_ok  # exactly one of JobEvent and DatasetEvent


def _validate(event: Any) -> None:
    if not isinstance(event, dict):
        want("an OpenLineage event (a JSON object)", event, "")
    _BASE_EVENT(event, "")
    has_run, has_job, has_dataset = "run" in event, "job" in event, "dataset" in event
    if has_run and has_job:  # only a RunEvent can have both
        _RUN_EVENT(event, "")
        _IO(event, "")
        return
    # Otherwise exactly one of JobEvent (job, no run) and DatasetEvent (dataset) must match.
    job_error: Bad | None = None
    if has_job:  # no run here
        job_error = matches(_JOB, event["job"], "/job") or matches(_IO, event, "")
    ds_error = matches(_DATASET, event["dataset"], "/dataset") if has_dataset else None
    job_ok = has_job and job_error is None
    ds_ok = has_dataset and ds_error is None
    if job_ok and ds_ok:
        raise Bad(
            "/dataset", "an event with a job and a dataset is both a JobEvent and a DatasetEvent"
        )
    if job_ok or ds_ok:
        return
    if job_error is not None:
        raise job_error
    if ds_error is not None:
        raise ds_error
    if has_run:
        raise Bad("/job", "required field is missing (a RunEvent has a run and a job)")
    raise Bad(
        "/run", "required field is missing (an event needs a run and a job, a job, or a dataset)"
    )


def validate_openlineage(event: Any) -> None:
    """Check an OpenLineage 2-0-2 RunEvent, JobEvent or DatasetEvent and its standard facets.

    Raises :class:`InvalidOpenLineageEvent` (an :class:`~datatrail.errors.InvalidEvent`)
    whose ``pointer`` names the first bad field and whose message says what is wrong.
    """
    if _valid(event):
        return
    try:
        _validate(event)
    except Bad as bad:
        raise InvalidOpenLineageEvent(bad.message, bad.pointer) from None


def validate_facets(kind: str, facets: Any, pointer: str = "") -> None:
    """Check one facets object of ``kind`` run, job, dataset, input or output."""
    if kind not in CONTAINERS:
        raise ValueError(f"unknown facet kind {kind!r}; use one of {', '.join(CONTAINERS)}")
    try:
        facets_check(kind)(facets, pointer)
    except Bad as bad:
        raise InvalidOpenLineageEvent(bad.message, bad.pointer) from None
