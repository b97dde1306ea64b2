"""``@track`` and ``run()``: the recorders.

Both keep the current run in a context variable, so nesting follows the call
stack across asyncio tasks (which copy the context) and stays separate per
thread; ``datatrail.bind_context`` carries a run into a worker thread. The
caller's thread does the least it can: make ids, hash data values (their
content must be read while it is what the step saw), and enqueue. Everything
else — binding arguments to names, redaction, code and environment capture,
encoding — happens on the writer thread.

A failure of the recording machinery is logged and swallowed; the user's
function, its result and its exceptions are never changed.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, TypeVar, overload

from datatrail.capture._codeinfo import CodeSite, actor, code_version_for, environment
from datatrail.capture._hooks import (
    OutputContext,
    collect_run_facets,
    io_observers,
    notify_io,
    output_checks,
    run_output_checks,
)
from datatrail.capture._redact import REDACTED, is_secret_name, is_secret_value, redact_params
from datatrail.capture._state import check_level, get_writer, settings
from datatrail.capture._values import SCALARS, artifact_for, is_data
from datatrail.emit._writer import Deferred
from datatrail.errors import DatatrailError, UsageError
from datatrail.model import (
    ArtifactInfo,
    DatasetRef,
    ErrorInfo,
    Event,
    IORecorded,
    JobRef,
    RunFinished,
    RunStarted,
    format_ts,
    uuid7,
)

__all__ = ["RunHandle", "bind_context", "current_run", "run", "track"]

log = logging.getLogger("datatrail")
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

_current: contextvars.ContextVar[RunHandle | None] = contextvars.ContextVar(
    "datatrail_run", default=None
)


def current_run() -> RunHandle | None:
    """The run the calling code is inside, if any."""
    return _current.get()


def bind_context(fn: Callable[..., T]) -> Callable[..., T]:
    """Wrap ``fn`` to run in a copy of the current context, so a worker thread joins the current run."""
    ctx = contextvars.copy_context()

    @functools.wraps(fn)
    def bound(*args: Any, **kwargs: Any) -> T:
        return ctx.copy().run(fn, *args, **kwargs)

    return bound


# -- writer-side builders ---------------------------------------------------------


def _start_events(
    run_id: str,
    job: JobRef,
    parent_run_id: str | None,
    ts_ns: int,
    level: str,
    site: CodeSite,
    params: dict[str, Any],
    inputs: Sequence[tuple[str, ArtifactInfo, DatasetRef | None]],
    facets: dict[str, Any] | None,
) -> list[Event]:
    """A run's start: its code version and environment when new, the start, its inputs.

    ``params`` are the recorded parameters, already bound to names and redacted.
    """
    events: list[Event] = []
    # The actor first: finding the user imports a module, which must not count as
    # a change of environment on the next run.
    who = actor()
    code_id, code_event = code_version_for(site)
    if code_event is not None:
        events.append(code_event)
    env_id, env_event = environment()
    if env_event is not None:
        events.append(env_event)
    ts = format_ts(ts_ns)
    events.append(
        RunStarted(
            id=uuid7(),
            ts=ts,
            run_id=run_id,
            job=job,
            parent_run_id=parent_run_id,
            params=params,
            code_id=code_id,
            env_id=env_id,
            actor=who,
            level=level,  # type: ignore[arg-type]
            facets=facets,
        )
    )
    for label, art, ds in inputs:
        events.append(
            IORecorded(
                id=uuid7(),
                ts=ts,
                run_id=run_id,
                role="input",
                artifact=art,
                dataset=ds,
                label=label,
                job=job,
            )
        )
    return events


def _build_io(
    run_id: str,
    job: JobRef,
    role: Literal["input", "output"],
    ts_ns: int,
    items: list[tuple[str | None, ArtifactInfo, DatasetRef | None]],
) -> Iterable[Event]:
    ts = format_ts(ts_ns)
    return [
        IORecorded(
            id=uuid7(),
            ts=ts,
            run_id=run_id,
            role=role,
            artifact=art,
            dataset=ds,
            label=label,
            job=job,
        )
        for label, art, ds in items
    ]


def _build_end(run_id: str, ts_ns: int, error: ErrorInfo | None) -> Iterable[Event]:
    return [
        RunFinished(
            id=uuid7(),
            ts=format_ts(ts_ns),
            run_id=run_id,
            status="failed" if error else "completed",
            error=error,
        )
    ]


_IMMUTABLE = SCALARS - {type(None)}


def _build_scalar_end(
    run_id: str, job: JobRef, level: str, label: str, value: Any, ts_ns: int
) -> Iterable[Event]:
    """A run that returned an immutable scalar: its output, then its end."""
    events: list[Event] = []
    try:
        art, ds = artifact_for(value, level=level, fresh=True)
        events.extend(_build_io(run_id, job, "output", ts_ns, [(label, art, ds)]))
    except Exception:  # the end must still be recorded
        log.exception("datatrail: recording a returned %s failed", type(value).__name__)
    events.extend(_build_end(run_id, ts_ns, None))
    return events


# -- queue items: built into events on the writer thread ----------------------------


class _End(Deferred, gc=False):
    """A run's end: completed, or failed with ``error``."""

    run_id: str
    ts_ns: int
    error: ErrorInfo | None

    def build(self) -> Iterable[Event]:
        return _build_end(self.run_id, self.ts_ns, self.error)


class _ScalarEnd(Deferred, gc=False):
    """The end of a run that returned an immutable scalar, and that output."""

    run_id: str
    job: JobRef
    level: str
    label: str
    value: Any
    ts_ns: int

    def build(self) -> Iterable[Event]:
        return _build_scalar_end(
            self.run_id, self.job, self.level, self.label, self.value, self.ts_ns
        )


class _BlockStart(Deferred, gc=False):
    """The start of a ``run()`` block, whose parameters are given rather than bound."""

    run_id: str
    job: JobRef
    parent_run_id: str | None
    ts_ns: int
    level: str
    site: CodeSite
    params: dict[str, Any]
    redact: frozenset[str]
    facets: dict[str, Any] | None

    def build(self) -> Iterable[Event]:
        params = redact_params(self.params, self.redact)
        return _start_events(
            self.run_id,
            self.job,
            self.parent_run_id,
            self.ts_ns,
            self.level,
            self.site,
            params,
            (),
            self.facets,
        )


class _CallStart(Deferred, gc=False):
    """The start of a call of a tracked function, its arguments as the caller left them."""

    tracked: _Tracked
    run_id: str
    job: JobRef
    parent_run_id: str | None
    ts_ns: int
    level: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] | None
    plain: bool
    """Positional scalars only, as passed: they bind by position, with nothing to unwrap."""
    inputs: Sequence[tuple[str, ArtifactInfo, DatasetRef | None]]
    facets: dict[str, Any] | None

    def build(self) -> Iterable[Event]:
        t = self.tracked
        if self.plain:
            params = t.plain_params(self.args)
        else:
            params = redact_params(t.binder.bind(self.args, self.kwargs or {}), t.redact)
        return _start_events(
            self.run_id,
            self.job,
            self.parent_run_id,
            self.ts_ns,
            self.level,
            t.site,
            params,
            self.inputs,
            self.facets,
        )


def _error_info(exc: BaseException) -> ErrorInfo:
    return ErrorInfo(
        type=f"{type(exc).__module__}.{type(exc).__qualname__}",
        message=str(exc),
        traceback="".join(traceback.format_exception(exc)),
    )


# -- argument binding -------------------------------------------------------------


class _Snapshot:
    """A parameter value copied on the caller's thread (it may change after the call)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


_INPUT = object()  # marks an argument recorded as an input rather than a parameter


def _snapshot(value: Any) -> Any:
    import msgspec

    if is_secret_value(value):
        return _Snapshot(REDACTED)
    try:
        return _Snapshot(msgspec.to_builtins(value, str_keys=True))
    except (TypeError, ValueError, msgspec.EncodeError):
        text = repr(value)
        return _Snapshot(text if len(text) <= 200 else text[:197] + "...")


class _Binder:
    """Maps positional and keyword arguments to parameter names, off the caller's thread."""

    def __init__(self, sig: inspect.Signature, only: frozenset[str] | None) -> None:
        self.positional: list[str] = []
        self.varargs: str | None = None
        self.defaults: dict[str, Any] = {}
        self.only = only
        skip_first = False
        for i, p in enumerate(sig.parameters.values()):
            if i == 0 and p.name in ("self", "cls"):
                skip_first = True
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                self.positional.append(p.name)
            elif p.kind is p.VAR_POSITIONAL:
                self.varargs = p.name
            if p.default is not p.empty and p.kind is not p.VAR_KEYWORD:
                self.defaults[p.name] = p.default
        self.skip = self.positional[0] if skip_first and self.positional else None
        # Scalar defaults are recorded when not passed; others (a frame, a client) are not.
        self.scalar_defaults = [(n, d) for n, d in self.defaults.items() if type(d) in SCALARS]
        # Nothing to default, skip or filter: a call with positional scalars binds by zip.
        self.plain = (
            self.varargs is None and not self.scalar_defaults and self.skip is None and only is None
        )

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        names = self.positional
        if self.plain and not kwargs:
            # zip truncates, as for the general case; its keyword would double this line's cost.
            out = dict(zip(names, args))  # noqa: B905
            for value in out.values():
                if type(value) not in SCALARS:
                    return self._unwrap(out)
            return out
        out = dict(zip(names, args, strict=False))
        if len(args) > len(names) and self.varargs:
            out[self.varargs] = list(args[len(names) :])
        if kwargs:
            out.update(kwargs)
        for name, default in self.scalar_defaults:
            if name not in out:
                out[name] = default
        if self.skip:
            out.pop(self.skip, None)
        if self.only is None:
            for value in out.values():
                if type(value) not in SCALARS:
                    break
            else:
                return out  # the usual call: scalar parameters, nothing to unwrap
        return self._unwrap(out)

    def _unwrap(self, out: dict[str, Any]) -> dict[str, Any]:
        """Drop inputs and unlisted names; take snapshot values out of their wrappers."""
        result: dict[str, Any] = {}
        for name, value in out.items():
            if value is _INPUT or (self.only is not None and name not in self.only):
                continue
            if isinstance(value, _Snapshot):
                value = value.value
            elif isinstance(value, list):
                value = [
                    v.value if isinstance(v, _Snapshot) else v for v in value if v is not _INPUT
                ]
            result[name] = value
        return result


# -- the run handle ---------------------------------------------------------------


class RunHandle:
    """One run in progress: its ids, and ``input``/``output`` to record datasets explicitly."""

    __slots__ = ("_finished", "_pending", "_recording", "job", "level", "parent_run_id", "run_id")

    def __init__(
        self,
        run_id: str,
        job: JobRef,
        parent_run_id: str | None,
        level: str,
        _recording: bool = True,
    ) -> None:
        self.run_id = run_id
        self.job = job
        self.parent_run_id = parent_run_id
        self.level = level
        self._recording = _recording
        self._finished = False
        # Paths passed in: (label, path, (mtime_ns, size) or None if missing at the start).
        self._pending: Sequence[tuple[str, Any, tuple[int, int] | None]] = ()

    def __repr__(self) -> str:
        return (
            f"RunHandle(run_id={self.run_id!r}, job={self.job!r}, "
            f"parent_run_id={self.parent_run_id!r}, level={self.level!r})"
        )

    def input(self, value: T, *, name: str | None = None, dataset: DatasetRef | None = None) -> T:
        """Record ``value`` (a Path, a frame, bytes, ...) as an input of this run; returns it unchanged."""
        self._io("input", value, name, dataset)
        return value

    def output(self, value: T, *, name: str | None = None, dataset: DatasetRef | None = None) -> T:
        """Record ``value`` as an output of this run; returns it unchanged."""
        self._io("output", value, name, dataset)
        return value

    def _output_context(
        self,
        label: str | None,
        value: Any,
        art: ArtifactInfo,
        ds: DatasetRef | None,
        *,
        role: str = "output",
    ) -> OutputContext:
        return OutputContext(
            run_id=self.run_id,
            job=self.job,
            parent_run_id=self.parent_run_id,
            level=self.level,
            label=label,
            value=value,
            artifact=art,
            dataset=ds,
            role=role,
        )

    def _io(
        self,
        role: Literal["input", "output"],
        value: Any,
        name: str | None,
        dataset: DatasetRef | None,
    ) -> None:
        if self._finished:
            raise UsageError(
                f"run {self.run_id} ({self.job.name}) has finished; record {role}s inside it"
            )
        if dataset is not None and not isinstance(dataset, DatasetRef):
            raise UsageError(
                f"dataset must be a datatrail.DatasetRef, not {type(dataset).__name__}"
            )
        if not self._recording:
            return
        # A missing path raises HashingError: that is the caller's mistake, not the recorder's.
        art, ds = artifact_for(value, level=self.level, dataset=dataset, fresh=role == "output")
        if role == "output" and output_checks():
            # A check that raises (PolicyDenied, a blocking contract) stops the output here.
            run_output_checks([self._output_context(name, value, art, ds)])
        _submit(_build_io, (self.run_id, self.job, role, time.time_ns(), [(name, art, ds)]))
        if io_observers():
            notify_io([self._output_context(name, value, art, ds, role=role)])


_Item = Deferred | tuple[Callable[..., Iterable[Event]], tuple[Any, ...]]


def _submit(builder: Callable[..., Iterable[Event]], args: tuple[Any, ...]) -> None:
    _submit_item(lambda: (builder, args))


def _submit_item(make: Callable[[], _Item]) -> None:
    """Enqueue the item ``make`` returns, called once the writer has started.

    Starting the writer installs the run facet providers, so an item that collects
    run facets sees them on a process's first run too.
    """
    try:
        writer = get_writer()
        writer.submit(make())
    except DatatrailError:
        raise
    except Exception:
        log.exception("datatrail: could not enqueue an event; the user's code was not affected")


# -- run() ------------------------------------------------------------------------


class run:  # noqa: N801 - a context manager used like a function, as contextlib's are
    """Record a block (or each call of a decorated function) as one run of job ``name``.

    ::

        with datatrail.run("nightly-orders", params={"day": "2026-11-20"}) as r:
            df = pd.read_csv(r.input(Path("data/orders.csv")))
            ...
            r.output(Path("out/report.parquet"))

    Runs nest: a run or tracked call inside it becomes its child. An exception
    is recorded (type, message, traceback) and re-raised unchanged.
    """

    def __init__(
        self,
        name: str,
        *,
        params: dict[str, Any] | None = None,
        namespace: str | None = None,
        level: str | None = None,
        redact: Sequence[str] = (),
    ) -> None:
        if not isinstance(name, str) or not name:
            raise UsageError("run() needs a job name, e.g. datatrail.run('nightly-orders')")
        if params is not None and not isinstance(params, dict):
            raise UsageError(f"params must be a dict, not {type(params).__name__}")
        self.name = name
        self.params = dict(params or {})
        self.namespace = namespace
        self.level = check_level(level) if level is not None else None
        self.redact = tuple(redact)
        self._stack: list[tuple[RunHandle, contextvars.Token[RunHandle | None]]] = []
        frame = sys._getframe(1)
        self._site = CodeSite(
            func=None,
            module=frame.f_globals.get("__name__"),
            qualname=None,
            file=frame.f_code.co_filename,
            line=frame.f_lineno,
        )

    def __enter__(self) -> RunHandle:
        st = settings()
        parent = _current.get()
        level = self.level or (parent.level if parent else st.level)
        handle = RunHandle(
            run_id=uuid7(),
            job=JobRef(namespace=self.namespace or st.namespace, name=self.name),
            parent_run_id=parent.run_id if parent else None,
            level=level,
            _recording=st.enabled,
        )
        if st.enabled:
            params = {
                k: (_snapshot(v) if type(v) not in SCALARS else v) for k, v in self.params.items()
            }
            plain = {k: (v.value if isinstance(v, _Snapshot) else v) for k, v in params.items()}
            ts_ns, redact = time.time_ns(), frozenset(self.redact)
            _submit_item(
                lambda: _BlockStart(
                    handle.run_id,
                    handle.job,
                    handle.parent_run_id,
                    ts_ns,
                    level,
                    self._site,
                    plain,
                    redact,
                    collect_run_facets(),
                )
            )
        token = _current.set(handle)
        self._stack.append((handle, token))
        return handle

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        handle, token = self._stack.pop()
        _current.reset(token)
        handle._finished = True
        if handle._recording:
            end = _End(handle.run_id, time.time_ns(), _error_info(exc) if exc is not None else None)
            _submit_item(lambda: end)

    async def __aenter__(self) -> RunHandle:
        return self.__enter__()

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, fn: F) -> F:
        """Use as a decorator: each call of ``fn`` is a new run with these options."""
        options = {
            "params": self.params,
            "namespace": self.namespace,
            "level": self.level,
            "redact": self.redact,
        }
        name = self.name
        site = CodeSite(
            func=fn,
            module=getattr(fn, "__module__", None),
            qualname=getattr(fn, "__qualname__", None),
            file=inspect.getsourcefile(fn) if inspect.isfunction(fn) else None,
            line=fn.__code__.co_firstlineno if hasattr(fn, "__code__") else None,
        )

        def fresh() -> run:
            r = run(name, **options)  # type: ignore[arg-type]
            r._site = site
            return r

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                async with fresh():
                    return await fn(*args, **kwargs)

            return awrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with fresh():
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


# -- @track -----------------------------------------------------------------------


class _Tracked:
    """Per-function recording state, computed once at decoration time."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None,
        namespace: str | None,
        inputs: Sequence[str] | None,
        params: Sequence[str] | None,
        level: str | None,
        redact: Sequence[str],
        outputs: bool,
    ) -> None:
        self.fn = fn
        self.name = name or f"{fn.__module__}.{fn.__qualname__}"
        self.namespace = namespace
        self.level = check_level(level) if level is not None else None
        self.redact = frozenset(redact)
        self.record_outputs = outputs
        sig = inspect.signature(fn)
        known = set(sig.parameters)
        for group, names in (("inputs", inputs), ("params", params)):
            unknown = sorted(set(names or ()) - known)
            if unknown:
                raise UsageError(
                    f"track({group}=...) names {unknown} that {self.name} has no parameter for"
                )
        self.inputs = frozenset(inputs or ())
        self.binder = _Binder(sig, frozenset(params) if params is not None else None)
        self.positional = self.binder.positional
        try:
            file = inspect.getsourcefile(fn)
        except TypeError:
            file = None
        self.site = CodeSite(
            func=fn,
            module=fn.__module__,
            qualname=fn.__qualname__,
            file=file,
            line=fn.__code__.co_firstlineno if hasattr(fn, "__code__") else None,
        )
        # For calls with positional scalars only: the names to redact among the positional
        # parameters, decided once here rather than for every call on the writer thread.
        self.plain = self.binder.plain
        self.secret_positional = tuple(
            n for n in self.positional if n in self.redact or is_secret_name(n)
        )
        self._jobs: dict[str, JobRef] = {}

    def job(self, namespace: str) -> JobRef:
        ref = self._jobs.get(namespace)
        if ref is None:
            ref = self._jobs[namespace] = JobRef(
                namespace=self.namespace or namespace, name=self.name
            )
        return ref

    def start(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> RunHandle | None:
        """Record the start of a call; None if recording is off. Never raises but for misuse.

        The hot path: a call with scalar arguments costs an id, a clock read and one
        queue put; binding names, redaction and encoding wait for the writer thread.
        """
        st = settings()
        if not st.enabled:
            return None
        parent = _current.get()
        level: str
        parent_run_id: str | None
        if parent is None:
            level = self.level or st.level
            parent_run_id = None
        else:
            level = self.level or parent.level
            parent_run_id = parent.run_id
        job = self._jobs.get(st.namespace) or self.job(st.namespace)
        handle = RunHandle(uuid7(), job, parent_run_id, level)
        try:
            inputs: Sequence[tuple[str, ArtifactInfo, DatasetRef | None]] = ()
            observed: list[Any] | None = None
            if self.inputs or not _all_scalars(args, kwargs):
                observed = [] if io_observers() else None
                found: list[tuple[str, ArtifactInfo, DatasetRef | None]] = []
                pending: list[tuple[str, Any, tuple[int, int] | None]] = []
                handle._pending = pending
                args, kwargs = self._classify(args, kwargs, level, found, pending, observed)
                inputs = found
                plain = False
            else:
                plain = self.plain and not kwargs
            writer = get_writer()  # first: starting it installs the facet providers
            writer.submit(
                _CallStart(
                    self,
                    handle.run_id,
                    job,
                    parent_run_id,
                    time.time_ns(),
                    level,
                    args,
                    kwargs or None,
                    plain,
                    inputs,
                    collect_run_facets(),
                )
            )
            if observed:
                notify_io(
                    handle._output_context(label, value, art, ds, role="input")
                    for (label, art, ds), value in zip(inputs, observed, strict=True)
                )
        except DatatrailError:
            raise
        except Exception:
            log.exception(
                "datatrail: recording the start of %s failed; the call goes on", self.name
            )
        return handle

    def plain_params(self, args: tuple[Any, ...]) -> dict[str, Any]:
        """Parameters of a call with positional scalars only, bound and redacted.

        What binding and then ``redact_params`` make of such a call, without either:
        scalars have nothing to unwrap, and their names' secrecy is known already.
        """
        # zip truncates, as binding does; its keyword would double this line's cost.
        params = dict(zip(self.positional, args))  # noqa: B905
        for name in self.secret_positional:
            if name in params:
                params[name] = REDACTED
        return params

    def _classify(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        level: str,
        inputs: list[tuple[str, ArtifactInfo, DatasetRef | None]],
        pending: list[tuple[str, Any, tuple[int, int] | None]],
        observed: list[Any] | None = None,
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        names = self.positional
        new_args = []
        for i, value in enumerate(args):
            label = (
                names[i] if i < len(names) else f"{self.binder.varargs or 'args'}[{i - len(names)}]"
            )
            new_args.append(self._one(label, value, level, inputs, pending, observed))
        new_kwargs = {
            k: self._one(k, v, level, inputs, pending, observed) for k, v in kwargs.items()
        }
        return tuple(new_args), new_kwargs

    def _one(
        self,
        label: str,
        value: Any,
        level: str,
        inputs: list[tuple[str, ArtifactInfo, DatasetRef | None]],
        pending: list[tuple[str, Any, tuple[int, int] | None]],
        observed: list[Any] | None = None,
    ) -> Any:
        forced = label in self.inputs
        if isinstance(value, os.PathLike):
            # A path that does not exist yet is where the call will write: an output if it
            # appears. One that exists is an input, and also an output if the call changes it.
            try:
                st = os.stat(value)
            except OSError:
                pending.append((label, value, None))
                return os.fspath(value)
            pending.append((label, value, (st.st_mtime_ns, st.st_size)))
        if forced or is_data(value):
            if label == self.binder.skip:
                return value
            art, ds = artifact_for(value, level=level, as_path=forced and isinstance(value, str))
            inputs.append((label, art, ds))
            if observed is not None:
                observed.append(value)
            return _INPUT
        if type(value) in SCALARS:
            return value
        return _snapshot(value)

    def outputs(self, handle: RunHandle, result: Any, label: str = "return") -> None:
        if not self.record_outputs:
            return
        items: list[tuple[str | None, ArtifactInfo, DatasetRef | None]] = []
        values: list[Any] = []
        try:
            for name, path, before in handle._pending:
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                if before is None or before != (st.st_mtime_ns, st.st_size):
                    art, ds = artifact_for(path, level=handle.level, fresh=True)
                    items.append((name, art, ds))
                    values.append(path)
            handle._pending = ()
            if result is None:
                pass  # nothing returned: only the paths that appeared are outputs
            elif isinstance(result, tuple) and any(is_data(v) for v in result):
                for i, v in enumerate(result):
                    if v is not None:
                        art, ds = artifact_for(v, level=handle.level, fresh=True)
                        items.append((f"{label}[{i}]", art, ds))
                        values.append(v)
            else:
                art, ds = artifact_for(result, level=handle.level, fresh=True)
                items.append((label, art, ds))
                values.append(result)
        except Exception:
            log.exception(
                "datatrail: recording the output of %s failed; the call goes on", self.name
            )
            return
        if items and output_checks():
            # Outside the guard: a check that raises is the step's error, and nothing is registered.
            run_output_checks(
                handle._output_context(name, value, art, ds)
                for (name, art, ds), value in zip(items, values, strict=True)
            )
        try:
            if items:
                get_writer().submit(
                    (_build_io, (handle.run_id, handle.job, "output", time.time_ns(), items))
                )
                if io_observers():
                    notify_io(
                        handle._output_context(name, value, art, ds)
                        for (name, art, ds), value in zip(items, values, strict=True)
                    )
        except Exception:
            log.exception(
                "datatrail: recording the output of %s failed; the call goes on", self.name
            )

    def complete(self, handle: RunHandle, result: Any, label: str = "return") -> None:
        """Record the outputs and the end; an output check that refuses fails the run and raises."""
        if not handle._pending:
            if result is None:
                self.finish(handle, None)  # nothing returned and no paths passed: no outputs
                return
            if type(result) in _IMMUTABLE and self.record_outputs:
                # A returned number or string is a value, not data: it cannot change after
                # the return, so the writer thread hashes it, and output checks and io
                # observers (which guard and keep data) do not see it. The output and the
                # end travel as one queue item.
                handle._finished = True
                try:
                    get_writer().submit(
                        _ScalarEnd(
                            handle.run_id, handle.job, handle.level, label, result, time.time_ns()
                        )
                    )
                except Exception:
                    log.exception("datatrail: recording the end of %s failed", self.name)
                return
        try:
            self.outputs(handle, result, label)
        except BaseException as exc:
            self.finish(handle, exc)
            raise
        self.finish(handle, None)

    def finish(self, handle: RunHandle, exc: BaseException | None) -> None:
        handle._finished = True
        try:
            error = _error_info(exc) if exc is not None else None
            get_writer().submit(_End(handle.run_id, time.time_ns(), error))
        except Exception:
            log.exception("datatrail: recording the end of %s failed", self.name)


def _all_scalars(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether every argument is a plain scalar (nothing to hash, nothing to copy)."""
    for a in args:
        if type(a) not in SCALARS:
            return False
    if kwargs:
        for a in kwargs.values():
            if type(a) not in SCALARS:
                return False
    return True


def _wrap(t: _Tracked) -> Callable[..., Any]:
    fn = t.fn
    if inspect.isasyncgenfunction(fn):
        return _wrap_async_gen(t)
    if inspect.isgeneratorfunction(fn):
        return _wrap_gen(t)
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def awrapper(*args: Any, **kwargs: Any) -> Any:
            handle = t.start(args, kwargs)
            if handle is None:
                return await fn(*args, **kwargs)
            token = _current.set(handle)
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                _current.reset(token)
                t.finish(handle, exc)
                raise
            _current.reset(token)
            t.complete(handle, result)
            return result

        return awrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        handle = t.start(args, kwargs)
        if handle is None:
            return fn(*args, **kwargs)
        token = _current.set(handle)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            _current.reset(token)
            t.finish(handle, exc)
            raise
        _current.reset(token)
        t.complete(handle, result)
        return result

    return wrapper


def _wrap_gen(t: _Tracked) -> Callable[..., Any]:
    fn = t.fn

    @functools.wraps(fn)
    def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
        handle = t.start(args, kwargs)
        gen = fn(*args, **kwargs)
        if handle is None:
            return (yield from gen)
        n = 0
        to_send: Any = None
        to_throw: BaseException | None = None
        while True:
            token = _current.set(handle)
            try:
                if to_throw is not None:
                    pending, to_throw = to_throw, None
                    item = gen.throw(pending)
                else:
                    item = gen.send(to_send)
            except StopIteration as stop:
                _current.reset(token)
                t.complete(handle, stop.value)
                return stop.value
            except BaseException as exc:
                _current.reset(token)
                t.finish(handle, exc)
                raise
            _current.reset(token)
            try:
                t.outputs(handle, item, f"yield[{n}]")
            except BaseException as exc:
                gen.close()
                t.finish(handle, exc)
                raise
            n += 1
            try:
                to_send = yield item
            except GeneratorExit:
                gen.close()
                t.finish(handle, None)
                raise
            except BaseException as exc:
                to_throw = exc

    return gen_wrapper


def _wrap_async_gen(t: _Tracked) -> Callable[..., Any]:
    fn = t.fn

    @functools.wraps(fn)
    async def agen_wrapper(*args: Any, **kwargs: Any) -> Any:
        handle = t.start(args, kwargs)
        agen = fn(*args, **kwargs)
        n = 0
        try:
            while True:
                token = _current.set(handle) if handle is not None else None
                try:
                    item = await agen.__anext__()
                except StopAsyncIteration:
                    break
                finally:
                    if token is not None:
                        _current.reset(token)
                if handle is not None:
                    t.outputs(handle, item, f"yield[{n}]")
                n += 1
                yield item
        except (GeneratorExit, asyncio.CancelledError):
            await agen.aclose()
            if handle is not None:
                t.finish(handle, None)
            raise
        except BaseException as exc:
            if handle is not None:
                t.finish(handle, exc)
            raise
        if handle is not None:
            t.finish(handle, None)

    return agen_wrapper


@overload
def track(fn: F, /) -> F: ...


@overload
def track(
    fn: None = None,
    /,
    *,
    name: str | None = None,
    namespace: str | None = None,
    inputs: Sequence[str] | None = None,
    params: Sequence[str] | None = None,
    level: str | None = None,
    redact: Sequence[str] = (),
    outputs: bool = True,
) -> Callable[[F], F]: ...


def track(
    fn: F | None = None,
    /,
    *,
    name: str | None = None,
    namespace: str | None = None,
    inputs: Sequence[str] | None = None,
    params: Sequence[str] | None = None,
    level: str | None = None,
    redact: Sequence[str] = (),
    outputs: bool = True,
) -> F | Callable[[F], F]:
    """Record every call of a function as a run: ``@track`` or ``@track(name=..., level=...)``.

    Data arguments (frames, arrays, tables, bytes, paths) become inputs, hashed
    by content; other arguments become parameters (secrets redacted); the
    return value becomes an output. Works the same for sync, async, generator
    and async generator functions, and keeps the function's signature.

    ``inputs`` names arguments to record as inputs even if they look like
    parameters (a ``str`` there is taken as a file path); ``params`` limits the
    recorded parameters to those names; ``redact`` adds names to redact;
    ``level`` is ``minimal``, ``standard`` or ``full``.
    """

    def decorate(f: F) -> F:
        if not callable(f):
            raise UsageError(f"@track decorates functions, not {type(f).__name__}")
        tracked = _Tracked(
            f,
            name=name,
            namespace=namespace,
            inputs=inputs,
            params=params,
            level=level,
            redact=redact,
            outputs=outputs,
        )
        wrapped = _wrap(tracked)
        wrapped.__datatrail_job__ = tracked.name  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    if fn is not None:
        return decorate(fn)
    return decorate
