"""OpenTelemetry: runs carry the active trace and span ids, and runs can open spans.

:func:`install` registers a run facet provider: every run that starts while a
span is active keeps ``{"opentelemetry": {"trace_id", "span_id", "trace_flags"}}``
in its ``RunStarted.facets`` (ids as lowercase hex, as W3C Trace Context writes
them), so a run can be found from a trace and a trace from a run.
:func:`span_run` opens a span and a run inside it, and tags the span with the
run's ids (``datatrail.run_id``, ``datatrail.job``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from datatrail.capture import RunHandle, register_run_facets, run
from datatrail.errors import ConfigError

__all__ = ["FACET", "install", "span_run", "trace_facets", "uninstall"]

FACET = "opentelemetry"
"""The key of the facet this integration adds to ``RunStarted.facets``."""

_lock = threading.Lock()
_remove: Callable[[], None] | None = None


def _trace() -> Any:
    try:
        from opentelemetry import trace
    except ImportError as exc:  # pragma: no cover - the extra is installed in development
        raise ConfigError(
            "the OpenTelemetry integration needs opentelemetry-api: pip install 'datatrail[otel]'"
        ) from exc
    return trace


def trace_facets() -> dict[str, Any] | None:
    """The facet for the span active in this thread, or None when there is none."""
    ctx = _trace().get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return {
        FACET: {
            "trace_id": format(ctx.trace_id, "032x"),
            "span_id": format(ctx.span_id, "016x"),
            "trace_flags": int(ctx.trace_flags),
        }
    }


def install() -> Callable[[], None]:
    """Keep the active trace and span ids on every run that starts from now on.

    Idempotent; returns :func:`uninstall`.
    """
    global _remove
    _trace()
    with _lock:
        if _remove is None:
            _remove = register_run_facets(trace_facets)
    return uninstall


def uninstall() -> None:
    """Stop adding trace ids to new runs."""
    global _remove
    with _lock:
        remove, _remove = _remove, None
    if remove is not None:
        remove()


@contextmanager
def span_run(
    name: str,
    *,
    tracer: Any = None,
    params: dict[str, Any] | None = None,
    namespace: str | None = None,
    level: str | None = None,
    attributes: dict[str, Any] | None = None,
) -> Iterator[RunHandle]:
    """Open a span named ``name`` and, inside it, a run of job ``name``; yields the run.

    The run keeps the span's trace and span ids (whether or not :func:`install`
    was called); the span gets ``datatrail.run_id``, ``datatrail.job`` and, when
    the run is nested, ``datatrail.parent_run_id``. An exception is recorded on
    both (the span's status becomes ERROR) and re-raised.
    """
    trace = _trace()
    use = tracer if tracer is not None else trace.get_tracer("datatrail")
    # A provider of its own (not trace_facets itself), so removing it never removes install()'s.
    remove = register_run_facets(lambda: trace_facets())
    try:
        with use.start_as_current_span(name, attributes=attributes or {}) as span:
            recorder = run(name, params=params, namespace=namespace, level=level)
            handle = recorder.__enter__()
            remove()
            remove = _noop
            span.set_attribute("datatrail.run_id", handle.run_id)
            span.set_attribute("datatrail.job", handle.job.name)
            if handle.parent_run_id is not None:
                span.set_attribute("datatrail.parent_run_id", handle.parent_run_id)
            try:
                yield handle
            except BaseException as exc:
                recorder.__exit__(type(exc), exc, exc.__traceback__)
                raise
            recorder.__exit__(None, None, None)
    finally:
        remove()


def _noop() -> None:
    return None
