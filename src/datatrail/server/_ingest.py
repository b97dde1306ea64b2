"""OpenLineage ingest: ``POST /api/v1/lineage`` (one event) and ``/api/v1/lineage/batch`` (many).

Compatible with the OpenLineage HTTP transport: JSON bodies, optionally
gzipped, a bearer token. Each OpenLineage event is validated on the request's
thread (a batch's also prepared there, one event decoded at a time), then
mapped to datatrail events by :mod:`datatrail.interop.openlineage` and
appended by the app's group committer (:mod:`datatrail.server._commit`):
the events of requests in flight together go in one transaction, and a request
is answered once its events are durable. An invalid event stores nothing of
itself. An invalid single event gets 400 with the JSON pointer of its first bad
field; a batch answers per event (the OpenLineage batch response shape:
``status``, ``summary``, ``failed_events``), storing the valid ones, and is a 400
only when every event in it failed.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool

from datatrail.errors import InvalidEvent
from datatrail.interop.openlineage._ingest import prepare
from datatrail.interop.openlineage._schema import validate_openlineage
from datatrail.model import Event
from datatrail.server._commit import GroupCommitter
from datatrail.server._errors import ApiError, error_body
from datatrail.server._routes import ApiRoute, Call
from datatrail.server._schemas import BOOL, INT, STR, array_of, obj, ref

__all__ = ["INGEST_ROUTES"]

PRODUCERS = ("producer",)


def _decode(body: bytes | None) -> Any:
    if not body:
        raise InvalidEvent("the request body is empty; send an OpenLineage event as JSON")
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise ApiError(400, "bad_json", f"the body is not valid JSON: {exc}", pointer="") from None


def _an_object(obj: Any) -> Any:
    """``obj`` if it is a JSON object; raises :class:`InvalidEvent` with ``pointer`` if not."""
    if not isinstance(obj, dict):
        exc = InvalidEvent(
            f"an OpenLineage event is a JSON object, not {type(obj).__name__}; "
            "see https://openlineage.io/spec"
        )
        exc.pointer = ""  # type: ignore[attr-defined]
        raise exc
    return obj


def _validated(obj: Any) -> Any:
    """``obj`` if it is a valid OpenLineage event; raises :class:`InvalidEvent` with ``pointer``."""
    validate_openlineage(_an_object(obj))
    return obj


def _pointer(exc: InvalidEvent) -> str:
    pointer = getattr(exc, "pointer", None)
    return pointer if isinstance(pointer, str) else ""


def _committer(call: Call) -> GroupCommitter:
    committer: GroupCommitter = call.state.committer
    return committer


async def lineage_event(call: Call) -> dict[str, Any]:
    """Ingest one OpenLineage RunEvent, DatasetEvent or JobEvent."""
    # One event is checked in microseconds: on the loop, rather than a trip to a thread;
    # the committer prepares it (the loop stays free for the next request).
    obj = _validated(_decode(call.body))
    done = await _committer(call).submit_async([obj])
    (item,) = done.items
    if isinstance(item, InvalidEvent):
        raise item
    return {
        "status": "accepted",
        "events": done.appended,
        "first_index": done.first_index,
        "duplicates": done.duplicates,
    }


async def lineage_batch(call: Call) -> Any:
    """Ingest an array of OpenLineage events; one result per event."""
    checked = await run_in_threadpool(_check_batch, call.body)
    results, failed, valid = checked
    appended = duplicates = 0
    if valid:
        done = await _committer(call).submit_async([obj for _, obj in valid])
        appended, duplicates = done.appended, done.duplicates
        for (i, _), outcome in zip(valid, done.items, strict=True):
            if isinstance(outcome, InvalidEvent):
                _reject(results, failed, i, outcome)
            else:
                results.append({"index": i, "status": "accepted", "events": outcome})
    return _batch_answer(results, failed, appended, duplicates)


_Checked = tuple[list[dict[str, Any]], list[dict[str, Any]], list[tuple[int, Any]]]


def _reject(
    results: list[dict[str, Any]], failed: list[dict[str, Any]], i: int, exc: InvalidEvent
) -> None:
    pointer = f"/{i}{_pointer(exc)}"
    error = error_body(exc)["error"] | {"pointer": pointer}
    failed.append({"index": i, "reason": str(exc), "retriable": False, "pointer": pointer})
    results.append({"index": i, "status": "rejected", "events": 0, "error": error})


_ITEMS = msgspec.json.Decoder(list[msgspec.Raw])


def _check_batch(body: bytes | None) -> _Checked:
    """Decode a batch, validate and prepare each event: (results so far, failures, valid events).

    The array is cut into its elements' bytes first and each event decoded only when
    its turn comes, so one event's objects are alive at a time: the rest of the batch
    waits for the committer as bytes and prepared events, which the garbage collector
    need not walk.
    """
    try:
        items: Any = _ITEMS.decode(body or b"")
    except msgspec.DecodeError:  # empty or not JSON (_decode says), or not an array (below)
        items = _decode(body)
    if not isinstance(items, list):
        raise ApiError(
            400,
            "bad_batch",
            f"a batch is a JSON array of OpenLineage events, not {type(items).__name__}",
            pointer="",
        )
    if not items:
        raise ApiError(400, "bad_batch", "the batch is empty", pointer="")
    results: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    valid: list[tuple[int, Any]] = []
    for i, item in enumerate(items):
        try:
            # Fresh from the decoder: prepare may judge its canonical bytes by typed decodes.
            valid.append((i, prepare(_an_object(msgspec.json.decode(item)), decoded=True)))
        except InvalidEvent as exc:
            _reject(results, failed, i, exc)
    return results, failed, valid


def _batch_answer(
    results: list[dict[str, Any]], failed: list[dict[str, Any]], appended: int, duplicates: int
) -> Any:
    """The OpenLineage batch response; 400 when every event was rejected."""
    from datatrail.server._errors import JSONResponse

    results.sort(key=lambda r: r["index"])
    failed.sort(key=lambda r: r["index"])
    received = len(results)
    successful = received - len(failed)
    body: dict[str, Any] = {
        "status": "success" if not failed else "partial_success",
        "summary": {
            "received": received,
            "successful": successful,
            "failed": len(failed),
            "retriable": 0,
            "non_retriable": len(failed),
        },
        "failed_events": failed,
        "results": results,
        "appended": appended,
        "duplicates": duplicates,
    }
    if not successful:
        first = failed[0]
        body["error"] = {
            "code": "invalid_event",
            "message": f"every event of the batch was rejected; the first at {first['pointer']}: "
            f"{first['reason']}",
            "pointer": first["pointer"],
        }
        return JSONResponse(body, status_code=400)
    return body


def native_events(call: Call) -> dict[str, Any]:
    """Append datatrail's own events (JSON lines), as the HTTP transport of a pipeline sends them."""
    from datatrail.model import decode_event

    if not call.body:
        raise InvalidEvent("the request body is empty; send datatrail events as JSON lines")
    events: list[Event] = []
    for n, line in enumerate(call.body.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            events.append(decode_event(line))
        except InvalidEvent as exc:
            raise ApiError(400, "invalid_event", f"line {n}: {exc}", pointer=f"/{n - 1}") from None
    if not events:
        raise InvalidEvent("the request body holds no events")
    result = call.state.store.append(events)  # deduplicated by event id: retries are harmless
    return {"appended": result.appended, "duplicates": result.duplicates, "size": result.size}


# The request body is an OpenLineage event (or an array of them); the server validates it
# against the OpenLineage JSON schemas itself, so OpenAPI only says "a JSON object".
_OL_EVENT = {
    "type": "object",
    "description": "An OpenLineage RunEvent, DatasetEvent or JobEvent "
    "(https://openlineage.io/apidocs/openapi/).",
}

INGEST_ROUTES: tuple[ApiRoute, ...] = (
    ApiRoute(
        "POST",
        "/api/v1/events",
        native_events,
        "Append datatrail events (the HTTP transport of datatrail's own pipelines)",
        PRODUCERS,
        "ingest",
        obj(("appended", "duplicates", "size"), appended=INT, duplicates=INT, size=INT),
        body={
            "type": "string",
            "description": "datatrail events in canonical JSON, one per line (JSON lines).",
        },
        errors=(400, 413, 415),
        description="All lines are appended in one transaction or, if any line is not a valid "
        "event, none is (400 naming the line). Events already stored (same id) are skipped, so "
        "a client may retry a batch it is unsure about. Gzip bodies are accepted.",
    ),
    ApiRoute(
        "POST",
        "/api/v1/lineage",
        lineage_event,
        "Ingest one OpenLineage event (HTTP transport compatible)",
        PRODUCERS,
        "ingest",
        ref("IngestResult"),
        body=_OL_EVENT,
        errors=(400, 413, 415),
        description="Validated against the OpenLineage JSON schemas; an invalid event gets 400 "
        "with `error.pointer`, the JSON pointer of its first bad field, and nothing of it is "
        "stored. Gzip bodies (`Content-Encoding: gzip`) are accepted; bodies over the server's "
        "limit get 413.",
    ),
    ApiRoute(
        "POST",
        "/api/v1/lineage/batch",
        lineage_batch,
        "Ingest an array of OpenLineage events, with a result per event",
        PRODUCERS,
        "ingest",
        obj(
            ("status", "summary", "failed_events", "results"),
            status={"type": "string", "enum": ["success", "partial_success"]},
            summary=obj(
                ("received", "successful", "failed"),
                received=INT,
                successful=INT,
                failed=INT,
                retriable=INT,
                non_retriable=INT,
            ),
            failed_events=array_of(
                obj(("index", "reason"), index=INT, reason=STR, retriable=BOOL, pointer=STR)
            ),
            results=array_of(
                obj(
                    ("index", "status", "events"),
                    index=INT,
                    status={"type": "string", "enum": ["accepted", "rejected"]},
                    events=INT,
                )
            ),
            appended=INT,
            duplicates=INT,
        ),
        body={"type": "array", "items": _OL_EVENT},
        errors=(400, 413, 415),
        description="Valid events are stored (in one transaction) and invalid ones are not; "
        "`failed_events` lists each rejected event with the JSON pointer of its first bad field "
        "(`/INDEX/...`). When every event fails the answer is 400 with the same body plus `error`.",
    ),
)
"""The OpenLineage ingest routes."""
