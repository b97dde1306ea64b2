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
A RunEvent's canonical bytes can be judged faster still, by typed decodes in
C (:func:`run_event_view`): the same rules stated as msgspec types
(:func:`~._checks.msgspec_type`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec

from datatrail.errors import InvalidEvent
from datatrail.interop.openlineage._checks import (
    Bad,
    Check,
    Predicate,
    all_of,
    arr,
    enum,
    fast,
    matches,
    msgspec_type,
    obj,
    short,
    string,
    uuid_str,
    want,
    with_fast,
)
from datatrail.interop.openlineage._facets import CONTAINERS, ON_BASE, facets_check

__all__ = [
    "InputView",
    "InvalidOpenLineageEvent",
    "OutputView",
    "RunEventView",
    "event_kind",
    "parse_event_time",
    "run_event_view",
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


# -- RunEvents judged in C -----------------------------------------------------------------
#
# A RunEvent's canonical bytes are judged by two typed decodes. The view mirrors the
# structure _BASE_EVENT, _RUN_EVENT and _IO check, keeping each facets object as a dict
# of canonical bytes (what the mapping stores). The facets decode holds every facets
# object as a struct with a field per standard facet, typed by the facet's rule
# (:func:`~._checks.msgspec_type`); the few other facets (custom ones, which only the
# base rule applies to, and standard ones whose rule no msgspec type states) are judged
# one by one. tests/test_openlineage_typed.py holds the judges to the predicates' verdicts.

_UUID_TEXT = msgspec.Meta(
    pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
_EventType = Literal["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]
Facets = dict[str, msgspec.Raw]
"""Facets by name, each its canonical JSON."""


class RunView(msgspec.Struct, gc=False):
    runId: Annotated[str, _UUID_TEXT]  # noqa: N815 - the OpenLineage names
    facets: Facets = {}


class JobView(msgspec.Struct, gc=False):
    namespace: str
    name: str
    facets: Facets = {}


class InputView(msgspec.Struct, gc=False):
    namespace: str
    name: str
    facets: Facets = {}
    inputFacets: Facets = {}  # noqa: N815


class OutputView(msgspec.Struct, gc=False):
    namespace: str
    name: str
    facets: Facets = {}
    outputFacets: Facets = {}  # noqa: N815


class RunEventView(msgspec.Struct, gc=False):
    """A RunEvent cut from its canonical bytes; facets stay canonical JSON (``msgspec.Raw``)."""

    eventTime: str  # noqa: N815
    producer: str
    schemaURL: str  # noqa: N815
    run: RunView
    job: JobView
    eventType: _EventType | msgspec.UnsetType = msgspec.UNSET  # noqa: N815
    inputs: list[InputView] = []
    outputs: list[OutputView] = []


_RUN_EVENT_VIEW = msgspec.json.Decoder(RunEventView)

Judge = Callable[[msgspec.Raw], bool]
"""Whether one facet (canonical bytes) passes its rule; False may also mean "cannot tell"."""


def _judge(check: Check) -> Judge:
    tp = msgspec_type(check)
    if tp is None:
        ok = fast(check)
        return lambda raw: ok(msgspec.json.decode(raw))
    decode = msgspec.json.Decoder(tp).decode

    def judge(raw: msgspec.Raw) -> bool:
        try:
            decode(raw)
        except msgspec.ValidationError:
            return False
        return True

    return judge


class _Container:
    """How the facets of one container kind (run, job, dataset, input, output) are judged."""

    def __init__(self, kind: str) -> None:
        base, standard = CONTAINERS[kind]
        # A standard facet's rule includes the base rule (as _facets' predicates apply it).
        rules = {
            name: c if ON_BASE.get(c) is base else all_of(base, c) for name, c in standard.items()
        }
        types = {name: msgspec_type(rule) for name, rule in rules.items()}
        self.typed = frozenset(name for name, tp in types.items() if tp is not None)
        """Standard facets the facets decode judges."""
        self.struct = msgspec.defstruct(
            f"_{kind.title()}Facets",
            [
                (f"f{i}", tp, msgspec.field(default=None, name=name))
                for i, (name, tp) in enumerate(types.items())
                if tp is not None
            ],
            kw_only=True,
            gc=False,
        )
        self.others = {name: _judge(rule) for name, rule in rules.items() if types[name] is None}
        """Judges of the standard facets the decode does not judge."""
        self.base = _judge(base)

    def rest_pass(self, facets: Facets) -> bool:
        """Whether the facets the facets decode left alone pass their rules."""
        if self.typed.issuperset(facets):  # the usual case: standard facets only
            return True
        rest = facets.keys() - self.typed
        return all(self.others.get(key, self.base)(facets[key]) for key in rest)


@functools.cache
def _containers() -> tuple[dict[str, _Container], msgspec.json.Decoder[Any]]:
    """The container judges, and the facets decode of a RunEvent.

    Made on first use: building the types and decoders takes milliseconds.
    """
    kinds = {kind: _Container(kind) for kind in CONTAINERS}

    def holder(name: str, **fields: str) -> Any:
        return msgspec.defstruct(
            name,
            [
                (key, kinds[kind].struct, msgspec.field(default=None))
                for key, kind in fields.items()
            ],
            kw_only=True,
            gc=False,
        )

    dataset_in = holder("_InputFacets", facets="dataset", inputFacets="input")
    dataset_out = holder("_OutputFacets", facets="dataset", outputFacets="output")
    event = msgspec.defstruct(
        "_RunEventFacets",
        [
            ("run", holder("_RunHolder", facets="run"), msgspec.field(default=None)),
            ("job", holder("_JobHolder", facets="job"), msgspec.field(default=None)),
            ("inputs", list[dataset_in], msgspec.field(default=None)),  # type: ignore[valid-type]
            ("outputs", list[dataset_out], msgspec.field(default=None)),  # type: ignore[valid-type]
        ],
        kw_only=True,
        gc=False,
    )
    return kinds, msgspec.json.Decoder(event)


def _rest_pass(view: RunEventView, kinds: dict[str, _Container]) -> bool:
    if not (kinds["run"].rest_pass(view.run.facets) and kinds["job"].rest_pass(view.job.facets)):
        return False
    dataset, inputs, outputs = kinds["dataset"], kinds["input"], kinds["output"]
    for ds in view.inputs:
        if not (dataset.rest_pass(ds.facets) and inputs.rest_pass(ds.inputFacets)):
            return False
    for out in view.outputs:
        if not (dataset.rest_pass(out.facets) and outputs.rest_pass(out.outputFacets)):
            return False
    return True


def run_event_view(canonical: bytes, *, judge: bool = True) -> RunEventView | None:
    """The view of a RunEvent's canonical bytes when they pass every rule, else ``None``.

    ``None`` says only that typed decoding could not confirm the event (it may still be
    valid: msgspec refuses ``3.0`` where an integer is due); :func:`validate_openlineage`
    on the decoded event gives the verdict and the pointer. Without ``judge``, for an
    event validated already, only the structure is decoded, the facets not judged.
    """
    try:
        view = _RUN_EVENT_VIEW.decode(canonical)
        if not judge:
            return view
        kinds, facets = _containers()
        facets.decode(canonical)
    except msgspec.ValidationError:
        return None
    if parse_event_time(view.eventTime) is None or not _rest_pass(view, kinds):
        return None
    return view


def validate_facets(kind: str, facets: Any, pointer: str = "") -> None:
    """Check one facets object of ``kind`` run, job, dataset, input or output."""
    if kind not in CONTAINERS:
        raise ValueError(f"unknown facet kind {kind!r}; use one of {', '.join(CONTAINERS)}")
    try:
        facets_check(kind)(facets, pointer)
    except Bad as bad:
        raise InvalidOpenLineageEvent(bad.message, bad.pointer) from None
