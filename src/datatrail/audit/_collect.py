"""The fault collector shared by the verify passes, and small value helpers."""

from __future__ import annotations

import re
from bisect import bisect_left, insort
from decimal import Decimal

from datatrail.audit._faults import Fault, Unbound

__all__ = ["TS_FORMAT", "Faults", "as_bytes", "norm", "short"]

TS_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
"""The one timestamp format datatrail writes."""

_KEEP = 1000


class Faults:
    """Collects faults; keeps the first 1000 but tracks the lowest-index one among all.

    Also collects what is unbound by design (:class:`~datatrail.audit.Unbound`):
    not faults, but what an auditor must know the trail does not prove.
    """

    def __init__(self) -> None:
        self.unbound_items: list[Unbound] = []
        self.items: list[Fault] = []
        self.total = 0
        self.first: Fault | None = None
        self._first_key: tuple[bool, int] = (True, 0)
        self.bad_entries: list[int] = []
        """Log indexes already blamed by an entry-level fault, ascending (for pinpointing)."""

    def add(self, kind: str, index: int | None, table: str, detail: str) -> None:
        fault = Fault(kind=kind, index=index, table=table, detail=detail)
        self.total += 1
        if len(self.items) < _KEEP:
            self.items.append(fault)
        key = (index is None, 0 if index is None else index)
        if self.first is None or key < self._first_key:
            self.first, self._first_key = fault, key

    def unbound(self, kind: str, table: str, count: int, detail: str) -> None:
        """Note stored values that no signature binds, by the design of an older datatrail."""
        self.unbound_items.append(Unbound(kind=kind, table=table, count=count, detail=detail))

    def blame_entry(self, kind: str, index: int, detail: str) -> None:
        """A fault in one log entry: remembered so tree and checkpoint faults can point at it."""
        self.suspect(index)
        self.add(kind, index, "events", detail)

    def suspect(self, index: int) -> None:
        """Remember ``index`` as the entry to point at for faults found later over its range."""
        if not self.bad_entries or self.bad_entries[-1] < index:
            self.bad_entries.append(index)
        elif self.first_bad_in(index, index + 1) is None:
            insort(self.bad_entries, index)

    def first_bad_in(self, start: int, end: int) -> int | None:
        """The lowest already-blamed entry in ``[start, end)``, if any."""
        pos = bisect_left(self.bad_entries, start)
        if pos < len(self.bad_entries) and self.bad_entries[pos] < end:
            return self.bad_entries[pos]
        return None


def as_bytes(value: object) -> bytes | None:
    """A stored BLOB as bytes (SQLite gives bytes, PostgreSQL memoryview); None if not bytes-like."""
    if type(value) is bytes:
        return value
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return None


def norm(value: object) -> object:
    """One stored cell, normalised across drivers for comparison."""
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    return value


def short(value: object, limit: int = 60) -> str:
    """``repr`` cut to ``limit`` characters, for fault details."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
