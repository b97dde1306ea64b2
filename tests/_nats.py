"""NATS JetStream test fixtures: the server URL and a stream of its own per test.

Tests that need the server call :func:`require_nats`: when it is not reachable
they skip, except under CI (``CI=true``), where they fail. ``DATATRAIL_TEST_NATS_URL``
names the server (default ``nats://127.0.0.1:4222``).
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

NATS_URL = os.environ.get("DATATRAIL_TEST_NATS_URL", "nats://127.0.0.1:4222")


@functools.lru_cache(maxsize=1)
def _unreachable_reason() -> str | None:
    try:
        import nats  # noqa: F401
    except ImportError:
        return "nats-py is not installed; pip install 'datatrail[nats]'"
    host, _, port = NATS_URL.removeprefix("nats://").partition(":")
    try:
        with socket.create_connection((host, int(port or 4222)), timeout=3):
            pass
    except OSError as exc:
        return str(exc)
    return None


def require_nats() -> str:
    """The test server's URL; skips if unreachable (fails under ``CI=true``)."""
    reason = _unreachable_reason()
    if reason is not None:
        message = (
            f"NATS not reachable at {NATS_URL}; start it with `start-stop-daemon --start --oknodo "
            "--background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js "
            f"-sd /var/lib/nats-server` or set DATATRAIL_TEST_NATS_URL ({reason})"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return NATS_URL


@dataclass(frozen=True)
class Stream:
    url: str
    name: str
    subject: str

    def env(self) -> dict[str, str]:
        """Environment for a producer process publishing to this stream."""
        return {
            "DATATRAIL_TRANSPORT": self.url,
            "DATATRAIL_NATS_STREAM": self.name,
            "DATATRAIL_NATS_SUBJECT": self.subject,
        }


async def _delete(url: str, name: str) -> None:
    import nats

    nc = await nats.connect(url)
    try:
        await nc.jetstream().delete_stream(name)
    except Exception:
        pass
    finally:
        await nc.close()


@contextmanager
def fresh_stream(label: str = "t") -> Iterator[Stream]:
    """A stream (and subject) no other test uses; deleted afterwards."""
    url = require_nats()
    tag = f"{label}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    stream = Stream(url=url, name=f"DT_{tag}".upper(), subject=f"dt.{tag}")
    try:
        yield stream
    finally:
        asyncio.run(_delete(url, stream.name))
