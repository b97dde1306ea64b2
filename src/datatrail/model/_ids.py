"""UUIDv7 ids (RFC 9562): time-ordered, so a run id sorts by start time.

Generation is on the caller's hot path, so it avoids ``uuid.UUID`` objects and
``os.urandom`` syscalls: 48 bits of Unix milliseconds, then a 12-bit counter
that keeps ids made in the same millisecond in order (RFC 9562 method 1), then
62 random bits from a generator seeded from the OS and reseeded after fork.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time

__all__ = ["is_uuid7", "uuid7", "uuid7_time_ms"]

_rng = random.Random(os.urandom(16))
_lock = threading.Lock()
_last_ms = 0
_counter = 0
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


_bits = _rng.getrandbits
_time_ns = time.time_ns
_VERSION_VARIANT = (0x7 << 76) | (0b10 << 62)


def _reseed() -> None:
    _rng.seed(os.urandom(16))


os.register_at_fork(after_in_child=_reseed)


def uuid7() -> str:
    """A new UUIDv7 as its canonical 36-character lowercase string."""
    global _last_ms, _counter
    ms = _time_ns() // 1_000_000
    with _lock:
        if ms <= _last_ms:
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                _last_ms += 1
                _counter = 0
            ms = _last_ms
        else:
            _last_ms = ms
            _counter = _bits(8)  # leave room to count within the millisecond
        counter = _counter
    h = ((ms << 80) | _VERSION_VARIANT | (counter << 64) | _bits(62)).to_bytes(16).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def is_uuid7(value: str) -> bool:
    """Whether ``value`` is a canonical lowercase UUIDv7 string."""
    return bool(_UUID_RE.match(value))


def uuid7_time_ms(value: str) -> int:
    """The Unix time in milliseconds encoded in a UUIDv7."""
    return int(value.replace("-", "")[:12], 16)
