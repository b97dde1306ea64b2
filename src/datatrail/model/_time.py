"""Timestamps: one fixed UTC format so that strings sort as times do."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

from datatrail.errors import UsageError

__all__ = ["format_ts", "now_ts", "parse_ts"]

_RELATIVE = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


_second: tuple[int, str] = (-1, "")


def format_ts(ns: int) -> str:
    """Format Unix nanoseconds as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    global _second
    secs, rem = divmod(ns, 1_000_000_000)
    cached = _second  # one strftime per second; the pair is swapped whole, so threads agree
    if cached[0] != secs:
        cached = (secs, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)))
        _second = cached
    return f"{cached[1]}.{rem // 1000:06d}Z"


def now_ts() -> str:
    """The current time in the event timestamp format."""
    return format_ts(time.time_ns())


def parse_ts(text: str, *, now: datetime | None = None) -> str:
    """Parse a user's time (ISO 8601, a date, or ``30m``/``2h``/``7d`` ago) into the event format."""
    text = text.strip()
    match = _RELATIVE.match(text)
    if match:
        base = now or datetime.now(UTC)
        moment = base - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    else:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(
                f"time {text!r} is not understood; use ISO 8601 (2026-11-20T08:00:00Z), a date "
                "(2026-11-20) or a span ago (30m, 2h, 7d)"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}Z"
