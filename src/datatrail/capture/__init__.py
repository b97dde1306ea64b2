"""Capture: ``@track``, ``run()`` contexts, code version, environment, content hashing, redaction."""

from datatrail.capture._hooks import (
    OutputCheck,
    OutputContext,
    emit_record,
    register_io_observer,
    register_output_check,
    register_run_facets,
)
from datatrail.capture._redact import REDACTED, Secret
from datatrail.capture._state import configure, flush, settings, shutdown
from datatrail.capture._track import RunHandle, bind_context, current_run, run, track

__all__ = [
    "REDACTED",
    "OutputCheck",
    "OutputContext",
    "RunHandle",
    "Secret",
    "bind_context",
    "configure",
    "current_run",
    "emit_record",
    "flush",
    "register_io_observer",
    "register_output_check",
    "register_run_facets",
    "run",
    "settings",
    "shutdown",
    "track",
]
