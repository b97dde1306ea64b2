"""Run and artifact ids on every log record: a ``logging.Filter`` and a structlog processor.

::

    handler.addFilter(DatatrailFilter())
    logging.Formatter("%(levelname)s [run=%(datatrail_run_id)s] %(message)s")

    structlog.configure(processors=[add_datatrail_ids, structlog.processors.JSONRenderer()])

Outside a run the ids are ``None`` (the filter never drops a record). This
module is named ``logging`` inside the ``datatrail.integrations`` package; with
absolute imports, ``import logging`` below is the standard library.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

from datatrail.integrations._context import current_ids, ensure_observer

__all__ = ["ATTRIBUTES", "DatatrailFilter", "add_datatrail_ids"]

ATTRIBUTES = (
    "datatrail_run_id",
    "datatrail_job",
    "datatrail_parent_run_id",
    "datatrail_artifact_id",
    "datatrail_artifact_role",
)
"""The attributes the filter sets on each ``LogRecord``; the structlog processor adds the
same names as event keys."""


class DatatrailFilter(logging.Filter):
    """Sets ``datatrail_run_id``, ``datatrail_job``, ``datatrail_parent_run_id``,
    ``datatrail_artifact_id`` and ``datatrail_artifact_role`` on every record; never drops one.

    Attach it to a handler (so every logger that reaches the handler is tagged) or
    to a logger. The artifact id is the one the current run recorded last.
    """

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        ensure_observer()

    def filter(self, record: logging.LogRecord) -> bool:
        ids = current_ids()
        for key, value in ids.items():
            setattr(record, f"datatrail_{key}", value)
        return True


def add_datatrail_ids(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: adds ``run_id``, ``job``, ``parent_run_id``, ``artifact_id`` and
    ``artifact_role`` of the current run, flat, with a ``datatrail_`` prefix.

    Keys the event already has are left alone, so a value bound explicitly wins.
    """
    ensure_observer()
    for key, value in current_ids().items():
        event_dict.setdefault(f"datatrail_{key}", value)
    return event_dict
