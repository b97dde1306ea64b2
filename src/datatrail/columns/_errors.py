"""The column lineage room's error (to move into ``datatrail.errors`` with the next tree update)."""

from __future__ import annotations

from datatrail.errors import DatatrailError

__all__ = ["SQLLineageError"]


class SQLLineageError(DatatrailError, ValueError):
    """A SQL statement whose column lineage cannot be read; the message says what and how to fix it."""

    status = 400
