"""Live updates: ``GET /api/v1/events/stream``, server-sent events of entries as they land.

The stream polls the store's size (cheap: one indexed ``MAX``) and sends each
new entry as one SSE message whose ``id`` is its log index, so a client that
reconnects with ``Last-Event-ID`` resumes exactly where it stopped. Polling,
not in-process notification, is what keeps servers stateless: an event
appended by another server, a pipeline or an ingest worker shows up the same.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from datatrail.errors import InvalidNodeId
from datatrail.model import NodeId, from_json, parse_node_id
from datatrail.server._api import READERS
from datatrail.server._routes import ApiRoute, Call, Param
from datatrail.server._schemas import STR, obj

__all__ = ["STREAM_ROUTES", "event_matches"]

_BATCH = 1000
_encoder = msgspec.json.Encoder()


def _kind_matches(kinds: list[str], kind: str, topic: str | None) -> bool:
    for wanted in kinds:
        if wanted.endswith("*"):
            if kind.startswith(wanted[:-1]) or (topic or "").startswith(wanted[:-1]):
                return True
        elif wanted in (kind, topic):
            return True
    return False


def _node_matches(node: NodeId, event: dict[str, Any]) -> bool:
    if event.get("subject") == str(node):
        return True
    if node.kind == "run":
        return event.get("run_id") == node.key
    if node.kind == "artifact":
        art = event.get("artifact")
        return isinstance(art, dict) and art.get("id") == node.key
    ref = event.get("dataset") if node.kind == "dataset" else event.get("job")
    return (
        isinstance(ref, dict)
        and ref.get("namespace") == node.namespace
        and ref.get("name") == node.name
    )


def event_matches(
    kinds: list[str], node: NodeId | None, kind: str, event: dict[str, Any] | None
) -> bool:
    """Whether an entry passes the stream's ``kind`` and ``node`` filters.

    ``kinds`` holds event kinds (``run_started``, ``io``, ``record``, ...) or record
    topics (``access``, ``alert``); a trailing ``*`` matches a prefix (``policy.*``).
    An entry is about a node when it names it: its run, dataset, job, artifact or
    a record's subject.
    """
    topic = event.get("topic") if isinstance(event, dict) else None
    if kinds and not _kind_matches(kinds, kind, topic if isinstance(topic, str) else None):
        return False
    if node is not None:
        return isinstance(event, dict) and _node_matches(node, event)
    return True


def _read(store: Any, start: int, end: int) -> list[tuple[int, str, str, str, Any]]:
    out = []
    for entry in store.events(start, end):
        event = from_json(entry.body) if entry.body is not None else None
        out.append((entry.index, entry.id, entry.kind, entry.ts, event))
    return out


async def stream(call: Call) -> StreamingResponse:
    """New entries of the log as server-sent events, filtered by kind and node."""
    p = call.params
    kinds = [k.strip() for k in (p["kind"] or "").split(",") if k.strip()]
    node = parse_node_id(p["node"]) if p["node"] else None
    if node is not None and node.kind not in ("dataset", "job", "run", "artifact"):
        raise InvalidNodeId(f"node {p['node']!r} is not a node id")  # pragma: no cover
    store = call.state.store
    settings = call.state.settings
    resume = call.request.headers.get("last-event-id", "")
    if resume.strip().isdigit():
        position = int(resume) + 1
    elif p["from"] is not None:
        position = p["from"]
    else:
        position = await run_in_threadpool(store.size)
    limit: int | None = p["limit"]

    async def messages() -> AsyncIterator[bytes]:
        nonlocal position
        sent = 0
        yield b": datatrail event stream\nretry: 2000\n\n"
        last_beat = time.monotonic()
        while True:
            size = await run_in_threadpool(store.size)
            while position < size:
                end = min(size, position + _BATCH)
                for index, eid, kind, ts, event in await run_in_threadpool(
                    _read, store, position, end
                ):
                    if event_matches(kinds, node, kind, event):
                        data = _encoder.encode(
                            {"index": index, "id": eid, "kind": kind, "ts": ts, "event": event}
                        )
                        yield b"id: %d\ndata: %s\n\n" % (index, data)
                        sent += 1
                        if limit is not None and sent >= limit:
                            return
                position = end
            if time.monotonic() - last_beat >= settings.heartbeat:
                yield b": keepalive\n\n"
                last_beat = time.monotonic()
            await asyncio.sleep(settings.poll_interval)

    return StreamingResponse(
        messages(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


STREAM_ROUTES: tuple[ApiRoute, ...] = (
    ApiRoute(
        "GET",
        "/api/v1/events/stream",
        stream,
        "Server-sent events: new log entries as they land",
        READERS,
        "events",
        obj(("index", "id", "kind", "ts"), index={"type": "integer"}, id=STR, kind=STR, ts=STR),
        params=(
            Param(
                "kind",
                {"type": "string", "maxLength": 1000},
                description="Comma-separated event kinds or record topics; a trailing * "
                "matches a prefix (run_started,io,access,policy.*).",
            ),
            Param(
                "node",
                {"type": "string", "maxLength": 4096},
                description="Only entries about this node id (its run, dataset, job, artifact "
                "or a record's subject).",
            ),
            Param(
                "from",
                {"type": "integer", "minimum": 0, "maximum": 2**62},
                description="Start at this log index (default: only new entries). "
                "A Last-Event-ID header takes precedence.",
            ),
            Param(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": 1_000_000},
                description="Close the stream after this many messages.",
            ),
        ),
        errors=(400,),
        media_type="text/event-stream",
        description="Each message is `id: INDEX` and `data: {index, id, kind, ts, event}`, "
        "where `event` is the entry as JSON (null if its payload was erased). "
        "Comment lines are sent as keep-alives.",
    ),
)
"""The live-updates route."""
