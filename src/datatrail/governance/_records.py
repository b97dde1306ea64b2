"""Which ``access`` records are reads of data.

The server records every catalog view (an API route or a web page) as an
``access`` record too, decided by the caller's role (``decided_by: role``).
A view moves no rows and asks no policy rule, so whatever reasons about data
reads — limits, volume baselines, policy simulation, the retention clock that
counts from the last access — selects its records with :data:`DATA_READS`.
Record data is stored as canonical JSON (no whitespace), so the pattern is exact.
"""

from __future__ import annotations

__all__ = ["DATA_READS"]

DATA_READS = "topic = 'access' AND data NOT LIKE '%\"decided_by\":\"role\"%'"
"""A SQL condition on ``records``: access records of data reads, not catalog views."""
