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
_acquire = _lock.acquire
_release = _lock.release
_last_ms = 0
_counter = 0
_prefix = ""  # the id's first 15 characters for _last_ms: "tttttttt-tttt-7"
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


_bits = _rng.getrandbits
_time_ns = time.time_ns
_VARIANT = 0b10 << 62  # the top bits of the last 64: RFC 9562's variant
_COUNTERS = [f"{n:03x}-" for n in range(0x1000)]  # the 12-bit counter as text, precomputed


def _ms_prefix(ms: int) -> str:
    return f"{ms >> 16:08x}-{ms & 0xFFFF:04x}-7"


def _after_fork() -> None:
    """A child gets its own random stream, and a lock no parent thread can be holding."""
    global _lock, _acquire, _release, _prefix
    _rng.seed(os.urandom(16))
    _lock = threading.Lock()
    _acquire, _release = _lock.acquire, _lock.release
    _prefix = _ms_prefix(_last_ms)


os.register_at_fork(after_in_child=_after_fork)


def uuid7() -> str:
    """A new UUIDv7 as its canonical 36-character lowercase string."""
    global _last_ms, _counter, _prefix
    ms = _time_ns() // 1_000_000
    _acquire()
    try:
        if ms > _last_ms:
            _last_ms = ms
            _counter = counter = _bits(8)  # leave room to count within the millisecond
            _prefix = prefix = _ms_prefix(ms)
        else:
            _counter = counter = _counter + 1
            if counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                _last_ms += 1
                _counter = counter = 0
                _prefix = _ms_prefix(_last_ms)
            prefix = _prefix
    finally:
        _release()
    # 62 random bits under the variant: the last 16 hex digits, split 4 and 12.
    tail = (_VARIANT | _bits(62)).to_bytes(8).hex()
    return f"{prefix}{_COUNTERS[counter]}{tail[:4]}-{tail[4:]}"


def is_uuid7(value: str) -> bool:
    """Whether ``value`` is a canonical lowercase UUIDv7 string."""
    return bool(_UUID_RE.match(value))


def uuid7_time_ms(value: str) -> int:
    """The Unix time in milliseconds encoded in a UUIDv7."""
    return int(value.replace("-", "")[:12], 16)
