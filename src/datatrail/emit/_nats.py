"""NATS JetStream transport: producers publish events to a stream, workers commit them.

A producer (``DATATRAIL_TRANSPORT=nats://host:4222``) publishes each batch the
writer hands it as one JetStream message: the batch's events as canonical JSON
lines. ``publish`` returns only once JetStream has stored the message, so what
``flush()`` reports durable is in the stream. The message id header is the
batch's first event id plus its size, so a producer that retries a publish does
not store it twice within the stream's duplicate window.

Ingest workers (``datatrail ingest``) share one durable pull consumer. Each
fetches messages, appends their events to the store with deduplication by event
id, and acknowledges only after the append committed. A worker killed at any
point leaves its messages unacknowledged; JetStream redelivers them after the
ack wait, and the store drops the events it already holds — nothing is lost and
nothing is doubled. Any number of workers can run at once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from datatrail.errors import ConfigError, InvalidEvent
from datatrail.model import Event, decode_event, encode_event
from datatrail.store import AppendResult, Store

__all__ = [
    "DEFAULT_STREAM",
    "DEFAULT_SUBJECT",
    "IngestStats",
    "NatsSink",
    "ingest",
]

log = logging.getLogger("datatrail")

DEFAULT_STREAM = "DATATRAIL"
DEFAULT_SUBJECT = "datatrail.events"
DURABLE = "datatrail-ingest"
_MAX_MESSAGE = 512 * 1024  # well under the server's default 1 MiB max_payload
T = TypeVar("T")


def _nats() -> Any:
    try:
        import nats
    except ImportError as exc:  # pragma: no cover - the extra is part of [dev]
        raise ConfigError(
            "the NATS transport needs the nats extra: pip install 'datatrail[nats]'"
        ) from exc
    return nats


def _server_url(url: str) -> str:
    if not url.startswith(("nats://", "tls://")):
        raise ConfigError(f"{url!r} is not a NATS URL; use nats://host:4222")
    return url


async def _ensure_stream(js: Any, stream: str, subject: str) -> None:
    from nats.js.errors import NotFoundError

    try:
        await js.stream_info(stream)
    except NotFoundError:
        await js.add_stream(name=stream, subjects=[subject], duplicate_window=120.0)


def _chunks(lines: list[bytes]) -> list[list[bytes]]:
    chunks: list[list[bytes]] = []
    current: list[bytes] = []
    size = 0
    for line in lines:
        if current and size + len(line) + 1 > _MAX_MESSAGE:
            chunks.append(current)
            current, size = [], 0
        current.append(line)
        size += len(line) + 1
    if current:
        chunks.append(current)
    return chunks


class _Loop:
    """An asyncio loop on a daemon thread, for the synchronous writer to call into."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="datatrail-nats", daemon=True
        )
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


class NatsSink:
    """A writer target that publishes batches to JetStream (the ``Store.append`` shape).

    It raises on any failure (server down, no ack in time), so the writer spills
    the batch and replays it later, exactly as for a store.
    """

    def __init__(
        self,
        url: str,
        *,
        stream: str = DEFAULT_STREAM,
        subject: str = DEFAULT_SUBJECT,
        timeout: float = 10.0,
    ) -> None:
        self.url = _server_url(url)
        self._stream = stream
        self._subject = subject
        self._timeout = timeout
        self._loop = _Loop()
        self._nc: Any = None
        self._js: Any = None
        try:
            self._loop.run(self._connect(), timeout)
        except BaseException:
            self._loop.stop()
            raise

    async def _connect(self) -> None:
        nats = _nats()
        self._nc = await nats.connect(
            self.url, connect_timeout=self._timeout, max_reconnect_attempts=0, allow_reconnect=False
        )
        self._js = self._nc.jetstream(timeout=self._timeout)
        await _ensure_stream(self._js, self._stream, self._subject)

    async def _publish(self, chunks: list[list[bytes]], ids: list[str]) -> None:
        acks = [
            self._js.publish(
                self._subject,
                b"\n".join(chunk),
                headers={"Nats-Msg-Id": f"{first}+{len(chunk)}"},
            )
            for chunk, first in zip(chunks, ids, strict=True)
        ]
        await asyncio.gather(*acks)

    def append(self, events: Sequence[Event], *, dedupe: bool = True) -> AppendResult:
        """Publish ``events`` and wait until JetStream has stored them."""
        lines = [encode_event(ev) for ev in events]
        chunks = _chunks(lines)
        firsts: list[str] = []
        pos = 0
        for chunk in chunks:
            firsts.append(events[pos].id)
            pos += len(chunk)
        self._loop.run(self._publish(chunks, firsts), self._timeout * 2)
        return AppendResult(
            first_index=-1,
            appended=len(events),
            duplicates=0,
            size=-1,
            root=b"",
            checkpoint=None,
        )

    def close(self) -> None:
        """Close the connection and stop its loop."""
        try:
            if self._nc is not None:  # every publish was acknowledged: nothing to drain
                self._loop.run(self._nc.close(), self._timeout)
        except Exception:
            log.debug("datatrail: closing the NATS connection failed", exc_info=True)
        finally:
            self._loop.stop()


@dataclass
class IngestStats:
    """What an ingest worker did."""

    messages: int = 0
    events: int = 0
    appended: int = 0
    duplicates: int = 0
    rejected: int = 0
    """Lines that are not datatrail events; they are logged and acknowledged (never retried)."""
    errors: list[str] = field(default_factory=list)


def _decode_message(data: bytes, stats: IngestStats) -> list[Event]:
    events: list[Event] = []
    for n, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            events.append(decode_event(line))
        except InvalidEvent as exc:
            stats.rejected += 1
            log.error("datatrail ingest: line %d of a message is not an event: %s", n, exc)
    return events


async def _ingest(
    url: str,
    open_store: Callable[[], Store],
    *,
    stream: str,
    subject: str,
    durable: str,
    batch: int,
    ack_wait: float,
    idle_exit: float | None,
    max_events: int | None,
    stop: threading.Event,
    progress: Callable[[IngestStats], None] | None,
) -> IngestStats:
    from nats.js.api import AckPolicy, ConsumerConfig

    nats = _nats()
    stats = IngestStats()
    try:
        nc = await nats.connect(
            _server_url(url), connect_timeout=10, max_reconnect_attempts=-1, reconnect_time_wait=1
        )
    except Exception as exc:
        raise ConfigError(f"cannot reach NATS at {url}: {exc or type(exc).__name__}") from exc
    store = open_store()
    try:
        js = nc.jetstream(timeout=30)
        config = ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT, ack_wait=ack_wait, max_ack_pending=10_000
        )
        for attempt in range(5):  # workers starting together race to create the consumer
            try:
                await _ensure_stream(js, stream, subject)
                sub = await js.pull_subscribe(
                    subject, durable=durable, stream=stream, config=config
                )
                break
            except TimeoutError:
                if attempt == 4:
                    raise
                await asyncio.sleep(0.5 * (attempt + 1))
        idle_since = time.monotonic()
        while not stop.is_set():
            if max_events is not None and stats.events >= max_events:
                break
            try:
                msgs = await sub.fetch(batch, timeout=0.5)
            except TimeoutError:  # nothing to fetch (nats' own timeout derives from it)
                msgs = []
            if not msgs:
                if idle_exit is not None and time.monotonic() - idle_since >= idle_exit:
                    break
                continue
            idle_since = time.monotonic()
            events: list[Event] = []
            for msg in msgs:
                events.extend(_decode_message(msg.data, stats))
            # The append commits or raises; only then are the messages acknowledged. A crash
            # between the two redelivers them, and the store drops what it already holds.
            result = await asyncio.to_thread(store.append, events, dedupe=True)
            for msg in msgs:
                await msg.ack()
            stats.messages += len(msgs)
            stats.events += len(events)
            stats.appended += result.appended
            stats.duplicates += result.duplicates
            if progress is not None:
                progress(stats)
    finally:
        try:
            await nc.flush(timeout=10)  # the last acknowledgements reach the server
        except Exception:  # unacknowledged messages are redelivered: nothing is lost
            log.debug("datatrail ingest: flushing the NATS connection failed", exc_info=True)
        finally:
            await nc.close()
            store.close()
    return stats


def ingest(
    url: str,
    open_store: Callable[[], Store],
    *,
    stream: str = DEFAULT_STREAM,
    subject: str = DEFAULT_SUBJECT,
    durable: str = DURABLE,
    batch: int = 64,
    ack_wait: float = 30.0,
    idle_exit: float | None = None,
    max_events: int | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[IngestStats], None] | None = None,
) -> IngestStats:
    """Run one ingest worker until ``stop`` is set (or idle for ``idle_exit`` seconds).

    ``batch`` is the number of messages fetched at once (each holds up to a writer batch).
    Raises :class:`StoreError` if the store cannot be written; unacknowledged messages
    stay in the stream for the next worker.
    """
    return asyncio.run(
        _ingest(
            url,
            open_store,
            stream=stream,
            subject=subject,
            durable=durable,
            batch=batch,
            ack_wait=ack_wait,
            idle_exit=idle_exit,
            max_events=max_events,
            stop=stop or threading.Event(),
            progress=progress,
        )
    )
