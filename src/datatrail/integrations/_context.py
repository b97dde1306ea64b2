"""What the current run has recorded so far, for integrations that tag logs and spans.

An io observer keeps, per run, the id of the artifact it recorded last. Only a
bounded number of runs is remembered (the oldest forgotten first), so a
long-lived process does not grow without end.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from datatrail.capture import OutputContext, current_run, register_io_observer

__all__ = ["RunIds", "current_ids", "ensure_observer"]

_MAX_RUNS = 4096

_lock = threading.Lock()
_last: OrderedDict[str, tuple[str, str]] = OrderedDict()
_installed = False


def _observe(ctx: OutputContext) -> None:
    with _lock:
        _last[ctx.run_id] = (ctx.artifact.id, ctx.role)
        _last.move_to_end(ctx.run_id)
        while len(_last) > _MAX_RUNS:
            _last.popitem(last=False)


def ensure_observer() -> None:
    """Start remembering each run's latest artifact (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    register_io_observer(_observe)


RunIds = dict[str, Any]


def current_ids() -> RunIds:
    """The current run's ids: ``run_id``, ``job``, ``parent_run_id``, ``artifact_id``, ``artifact_role``.

    Every value is ``None`` outside a run; ``artifact_id`` is the artifact the run
    recorded last (an input or an output), ``None`` before its first.
    """
    handle = current_run()
    if handle is None:
        return {
            "run_id": None,
            "job": None,
            "parent_run_id": None,
            "artifact_id": None,
            "artifact_role": None,
        }
    with _lock:
        last = _last.get(handle.run_id)
    return {
        "run_id": handle.run_id,
        "job": handle.job.name,
        "parent_run_id": handle.parent_run_id,
        "artifact_id": last[0] if last else None,
        "artifact_role": last[1] if last else None,
    }
