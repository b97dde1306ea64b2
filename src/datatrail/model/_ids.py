"""UUIDv7 ids (RFC 9562): time-ordered, so a run id sorts by start time.

Generation is on the caller's hot path, so it avoids ``uuid.UUID`` objects and
``os.urandom`` syscalls: 48 bits of Unix milliseconds, then a 12-bit counter
that keeps ids made in the same millisecond in order (RFC 9562 method 1), then
62 random bits from a generator seeded from the OS and reseeded after fork.

The usual id takes no lock: the current millisecond's state is one tuple,
replaced whole, and its counter an ``itertools.count``, whose ``next()`` the GIL
makes atomic. So every id is unique, and the ids a thread makes increase; only
a thread paused between reading the state and counting can, on waking, make one
id of the millisecond just past, as if it had run just before the pause.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import threading
import time
from collections.abc import Iterator

__all__ = ["is_uuid7", "uuid7", "uuid7_time_ms"]

_rng = random.Random(os.urandom(16))
_lock = threading.Lock()  # taken only to move to a new millisecond
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


_bits = _rng.getrandbits
_time_ns = time.time_ns
_VARIANT = 0b10 << 62  # the top bits of the last 64: RFC 9562's variant
_COUNTERS = [f"{n:03x}-" for n in range(0x1000)]  # the 12-bit counter as text, precomputed

# The millisecond ids are made in (never behind the last one, even if the clock
# steps back), the ids' first 15 characters for it ("tttttttt-tttt-7"), its counter.
_now: tuple[int, str, Iterator[int]] = (0, "", iter(()))


def _ms_prefix(ms: int) -> str:
    return f"{ms >> 16:08x}-{ms & 0xFFFF:04x}-7"


def _after_fork() -> None:
    """A child gets its own random stream, and a lock no parent thread can be holding."""
    global _lock
    _rng.seed(os.urandom(16))
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork)


def uuid7() -> str:
    """A new UUIDv7 as its canonical 36-character lowercase string."""
    ms = _time_ns() // 1_000_000
    last, prefix, counts = _now
    counter = next(counts, 0x1000) if ms <= last else 0x1000
    if counter > 0xFFF:  # a new millisecond, or this one's counter ran out
        prefix, counter = _next_millisecond(ms)
    # 62 random bits under the variant: the last 16 hex digits, split 4 and 12 by
    # hex() itself (a separator every 6 bytes from the right) rather than by slicing.
    return f"{prefix}{_COUNTERS[counter]}{(_VARIANT | _bits(62)).to_bytes(8).hex('-', 6)}"


def _next_millisecond(ms: int) -> tuple[str, int]:
    """Move on to millisecond ``ms`` (or the next one, if the counter ran out); a prefix and count."""
    global _now
    with _lock:
        while True:
            last, prefix, counts = _now
            if ms <= last:  # another thread moved on already, or the clock stepped back
                counter = next(counts, 0x1000)
                if counter <= 0xFFF:
                    return prefix, counter
                ms = last + 1  # counter exhausted: borrow the next millisecond
            # Start the count low but random, leaving room to count within the millisecond.
            _now = (ms, _ms_prefix(ms), itertools.count(_bits(8)))


def is_uuid7(value: str) -> bool:
    """Whether ``value`` is a canonical lowercase UUIDv7 string."""
    return bool(_UUID_RE.match(value))


def uuid7_time_ms(value: str) -> int:
    """The Unix time in milliseconds encoded in a UUIDv7."""
    return int(value.replace("-", "")[:12], 16)
