"""Producers → NATS JetStream → ingest workers → PostgreSQL, end to end, with a loss count.

Three producer processes publish a pipeline's ordinary traffic (per run a start,
an input, an output and a finish; see ``bench_postgres``) in writer-sized
batches through :class:`~datatrail.emit._nats.NatsSink`, while two
``datatrail ingest`` worker processes commit it to a PostgreSQL store. The
clock runs from the first publish until the store holds every event; the loss
count is the number of published events that are not in the store (and the
duplicate count the number stored twice, which the unique id forbids). The
baseline is the publish side alone, measured in the same run: how fast the
producers can hand events to JetStream.

Needs NATS (``DATATRAIL_BENCH_NATS_URL``, default ``nats://127.0.0.1:4222``) and
PostgreSQL (as ``bench_postgres``); works in a stream and a schema of its own.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
import uuid
from typing import Any

from benchmarks._harness import Result
from benchmarks.bench_postgres import _URL, _batches, _drop, _unreachable

TARGET = 20_000  # events/s end to end
PRODUCERS = 3
WORKERS = 2
_NATS = os.environ.get("DATATRAIL_BENCH_NATS_URL", "nats://127.0.0.1:4222")


def _produce(stream: str, subject: str, total: int, done: Any) -> None:
    from datatrail.emit._nats import NatsSink

    sink = NatsSink(_NATS, stream=stream, subject=subject, timeout=60)
    published = 0
    try:
        for batch in _batches(total):
            for start in range(0, len(batch), 5_000):
                sink.append(batch[start : start + 5_000])
            published += len(batch)
    finally:
        sink.close()
    done.put(published)


def _consume(stream: str, subject: str, url: str, key: str, stop: Any) -> None:
    import threading

    from datatrail.emit._nats import ingest
    from datatrail.ledger import parse_signer_key
    from datatrail.store._postgres import PostgresStore

    flag = threading.Event()

    def watch() -> None:
        stop.wait()
        flag.set()

    threading.Thread(target=watch, daemon=True).start()
    ingest(
        _NATS,
        lambda: PostgresStore(url, signer=parse_signer_key(key), create=True),
        stream=stream,
        subject=subject,
        batch=8,
        ack_wait=120,
        stop=flag,
    )


async def _delete_stream(name: str) -> None:
    import nats

    nc = await nats.connect(_NATS)
    try:
        await nc.jetstream().delete_stream(name)
    except Exception:
        pass
    finally:
        await nc.close()


def _nats_down() -> str | None:
    import socket

    host, _, port = _NATS.removeprefix("nats://").partition(":")
    try:
        with socket.create_connection((host, int(port or 4222)), timeout=3):
            return None
    except OSError as exc:
        return str(exc)


def run(quick: bool) -> list[Result]:
    from datatrail.ledger import Signer
    from datatrail.ledger._keys import signer_key_text
    from datatrail.store._postgres import PostgresStore

    total = 60_000 if quick else 1_020_000  # a multiple of the 10,000-event batch per producer
    per_producer = total // PRODUCERS // 10_000 * 10_000
    total = per_producer * PRODUCERS
    name = f"NATS → {WORKERS} workers → PostgreSQL: {total:,} events from {PRODUCERS} producers"
    reason = _unreachable() or _nats_down()
    if reason is not None:
        return [
            Result(
                name=name,
                ours=0.0,
                unit="events/s",
                target=f"≥ {TARGET:,} events/s, 0 lost",
                ok=False,
                note=f"a server is not reachable: {reason}",
            )
        ]
    tag = f"{os.getpid()}_{uuid.uuid4().hex[:8]}"
    stream, subject, schema = f"DT_BENCH_{tag}".upper(), f"dtbench.{tag}", f"dt_bench_nats_{tag}"
    url = f"{_URL}?options=-csearch_path%3D{schema}"
    signer = Signer.generate("bench")
    ctx = multiprocessing.get_context("spawn")
    done: Any = ctx.Queue()
    stop = ctx.Event()
    import psycopg

    with psycopg.connect(_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    PostgresStore(url, create=True, signer=signer).close()
    workers = [
        ctx.Process(target=_consume, args=(stream, subject, url, signer_key_text(signer), stop))
        for _ in range(WORKERS)
    ]
    producers = [
        ctx.Process(target=_produce, args=(stream, subject, per_producer, done))
        for _ in range(PRODUCERS)
    ]
    store = PostgresStore(url)
    try:
        for w in workers:
            w.start()
        start = time.perf_counter()
        for p in producers:
            p.start()
        published = sum(done.get(timeout=1800) for _ in producers)
        publish_s = time.perf_counter() - start
        deadline = time.monotonic() + 1800
        stored = store.size()
        while stored < published and time.monotonic() < deadline:
            time.sleep(0.2)
            stored = store.size()
        elapsed = time.perf_counter() - start
        (distinct,) = store.query("SELECT COUNT(DISTINCT id) FROM events")[0]
    finally:
        stop.set()
        for p in (*producers, *workers):
            p.join(timeout=60)
            if p.is_alive():
                p.terminate()
        store.close()
        _drop(schema)
        asyncio.run(_delete_stream(stream))
    lost = published - int(distinct)
    doubled = stored - int(distinct)
    rate = stored / elapsed
    publish_rate = published / publish_s
    return [
        Result(
            name=name,
            ours=rate,
            unit="events/s",
            target=f"≥ {TARGET:,} events/s, 0 lost",
            ok=rate >= TARGET and lost == 0 and doubled == 0 and published == total,
            baseline=publish_rate,
            baseline_name="publishing alone, same run (events/s)",
            ratio=rate / publish_rate,
            note=f"{published:,} published, {stored:,} stored, {lost} lost, {doubled} doubled; "
            f"{elapsed:.1f}s end to end",
            extra={"lost": float(lost), "doubled": float(doubled), "seconds": elapsed},
        )
    ]
