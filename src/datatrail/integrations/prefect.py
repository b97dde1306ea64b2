"""Prefect 3: every flow run and task run recorded as a run, with parent links.

One line of set-up, before the flows run::

    datatrail.integrations.prefect.install()

From then on each call of a flow or task function is recorded as
``@datatrail.track`` records a call (data arguments hashed as inputs, the return
value as the output, other arguments as parameters), under the job named after
the Prefect flow or task. Runs nest as Prefect's do: a task run's parent is its
flow run's run, a subflow's parent is the flow that called it; Prefect carries
the context into its task runner threads, so ``.submit()`` and ``.map()`` keep the
link. Each such run keeps a ``prefect`` facet with Prefect's own ids
(``flow_run_id``, ``task_run_id``, names), so one side can be found from the other.

It works by wrapping the function Prefect's flow and task engines call user code
through (``call_with_parameters``); a task whose result comes from Prefect's
cache does not call user code and so records no run. Each retry is its own run.
"""

from __future__ import annotations

import contextvars
import inspect
import threading
from collections.abc import Callable
from typing import Any

from datatrail.capture import register_run_facets, track
from datatrail.errors import ConfigError

__all__ = ["FACET", "install", "installed", "uninstall"]

FACET = "prefect"
"""The key of the facet on ``RunStarted.facets`` with Prefect's ids."""

_lock = threading.Lock()
_originals: dict[str, Callable[..., Any]] = {}
_remove_facets: Callable[[], None] | None = None
_tracked: dict[tuple[int, str], tuple[Callable[..., Any], Callable[..., Any]]] = {}
# Set by the engine wrapper just before the tracked call; read once by the facet provider,
# so only the run this integration starts gets Prefect's ids, not runs the user opens inside.
_calling: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "datatrail_prefect_calling", default=None
)


def _modules() -> tuple[Any, Any]:
    try:
        import prefect.flow_engine as flow_engine
        import prefect.task_engine as task_engine
    except ImportError as exc:
        raise ConfigError(
            "the Prefect integration needs Prefect 3: pip install 'datatrail[prefect]'"
        ) from exc
    return flow_engine, task_engine


def _facets() -> dict[str, Any] | None:
    kind = _calling.get()
    if kind is None:
        return None
    _calling.set(None)
    from prefect.context import FlowRunContext, TaskRunContext

    data: dict[str, Any] = {"type": kind}
    flow_ctx = FlowRunContext.get()
    if flow_ctx is not None and flow_ctx.flow_run is not None:
        data["flow_run_id"] = str(flow_ctx.flow_run.id)
        data["flow_run_name"] = flow_ctx.flow_run.name
        data["flow_name"] = flow_ctx.flow.name if flow_ctx.flow is not None else None
        if kind == "flow" and flow_ctx.flow_run.parent_task_run_id is not None:
            data["parent_task_run_id"] = str(flow_ctx.flow_run.parent_task_run_id)
    if kind == "task":
        task_ctx = TaskRunContext.get()
        if task_ctx is not None:
            data["task_run_id"] = str(task_ctx.task_run.id)
            data["task_run_name"] = task_ctx.task_run.name
            data["task_name"] = task_ctx.task.name
            data["run_count"] = task_ctx.task_run.run_count
    return {FACET: data}


def _name(kind: str) -> str | None:
    from prefect.context import FlowRunContext, TaskRunContext

    if kind == "task":
        task_ctx = TaskRunContext.get()
        return task_ctx.task.name if task_ctx is not None else None
    flow_ctx = FlowRunContext.get()
    return flow_ctx.flow.name if flow_ctx is not None and flow_ctx.flow is not None else None


def _tracked_for(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    key = (id(fn), name)
    with _lock:
        entry = _tracked.get(key)
        if entry is not None and entry[0] is fn:
            return entry[1]
    wrapped = track(name=name)(fn)
    with _lock:
        _tracked[key] = (fn, wrapped)
    return wrapped


def _wrapper(kind: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def call_with_parameters(fn: Callable[..., Any], parameters: dict[str, Any]) -> Any:
        name = _name(kind)
        if name is None:
            return original(fn, parameters)
        tracked = _tracked_for(fn, name)
        if inspect.iscoroutinefunction(fn):
            # The run starts when the coroutine is first awaited: mark the call there.
            async def call() -> Any:
                token = _calling.set(kind)
                try:
                    return await original(tracked, parameters)
                finally:
                    _calling.reset(token)

            return call()
        token = _calling.set(kind)
        try:
            return original(tracked, parameters)
        finally:
            _calling.reset(token)

    call_with_parameters.__datatrail_original__ = original  # type: ignore[attr-defined]
    return call_with_parameters


def installed() -> bool:
    """Whether :func:`install` is in effect."""
    return bool(_originals)


def install() -> Callable[[], None]:
    """Record every Prefect flow run and task run in this process from now on.

    Idempotent; returns :func:`uninstall`.
    """
    global _remove_facets
    flow_engine, task_engine = _modules()
    with _lock:
        if _originals:
            return uninstall
        for kind, module in (("flow", flow_engine), ("task", task_engine)):
            original = module.call_with_parameters
            _originals[kind] = original
            module.call_with_parameters = _wrapper(kind, original)
        _remove_facets = register_run_facets(_facets)
    return uninstall


def uninstall() -> None:
    """Stop recording Prefect runs (runs in progress finish as recorded)."""
    global _remove_facets
    flow_engine, task_engine = _modules()
    with _lock:
        for kind, module in (("flow", flow_engine), ("task", task_engine)):
            original = _originals.pop(kind, None)
            if original is not None:
                module.call_with_parameters = original
        remove, _remove_facets = _remove_facets, None
        _tracked.clear()
    if remove is not None:
        remove()
