"""pytest plugin: fail the run when a pipeline function that writes data emitted no lineage.

Enable with ``pytest --datatrail-coverage=TARGET`` (a module name, file or folder;
repeatable), loaded by ``-p datatrail.coverage.pytest_plugin`` or the ``pytest11``
entry point. The targets' data-writing functions are found statically
(:func:`datatrail.coverage.analyze`); while the tests run, each call of one of
them is watched, and the outputs datatrail records during the call are counted.
A writer that was called and never recorded an output fails the session, with
its file and line. Functions marked ``# datatrail: untracked`` are left alone.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import pytest

from datatrail.coverage._static import FunctionCoverage, analyze

__all__ = ["LineageWatch", "pytest_addoption", "pytest_configure"]


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--datatrail-coverage=TARGET``: the modules or paths whose writers must emit lineage."""
    group = parser.getgroup("datatrail")
    group.addoption(
        "--datatrail-coverage",
        action="append",
        default=[],
        metavar="TARGET",
        help="Fail when a data-writing function of TARGET (module, file or folder) "
        "runs without recording lineage. Repeatable.",
    )


class LineageWatch:
    """Counts, per watched writer, its calls and the datatrail outputs recorded during them."""

    def __init__(self, writers: list[FunctionCoverage]) -> None:
        self.writers = {(w.file, line): w for w in writers for line in {w.line, w.first_line}}
        self.by_qualname = {w.qualname: (w.file, w.line) for w in writers}
        self.calls: dict[tuple[str, int], int] = {}
        self.with_lineage: dict[tuple[str, int], int] = {}
        self._local = threading.local()
        self._remove: Any = None

    def _stack(self) -> list[list[int]]:
        stack: list[list[int]] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = []
            self._local.stack = stack
        return stack

    def _profile(self, frame: Any, event: str, arg: Any) -> None:
        if event not in ("call", "return"):
            return
        code = frame.f_code
        key = (code.co_filename, code.co_firstlineno)
        writer = self.writers.get(key)
        if writer is None:
            return
        stack = self._stack()
        ident = (writer.file, writer.line)
        if event == "call":
            self.calls[ident] = self.calls.get(ident, 0) + 1
            stack.append([0])
        elif stack:
            outputs = stack.pop()[0]
            if outputs:
                self.with_lineage[ident] = self.with_lineage.get(ident, 0) + 1

    def _observe(self, ctx: Any) -> None:
        if ctx.role != "output":
            return
        for entry in self._stack():
            entry[0] += 1  # an output inside the call (a ``with datatrail.run`` block)
        # A tracked function records its outputs just after its body returns, as its job
        # (``module.qualname``): credit the writer of that name.
        name = ctx.job.name
        for qualname, ident in self.by_qualname.items():
            if name == qualname or name.endswith("." + qualname):
                self.with_lineage[ident] = self.with_lineage.get(ident, 0) + 1

    def start(self) -> None:
        """Begin watching calls (this thread and new ones) and recorded outputs."""
        from datatrail.capture import register_io_observer

        self._remove = register_io_observer(self._observe)
        sys.setprofile(self._profile)
        threading.setprofile(self._profile)

    def stop(self) -> None:
        """Stop watching."""
        sys.setprofile(None)
        threading.setprofile(None)
        if self._remove is not None:
            self._remove()

    def silent(self) -> list[FunctionCoverage]:
        """Writers that were called and never recorded an output."""
        seen: dict[tuple[str, int], FunctionCoverage] = {
            (w.file, w.line): w for w in self.writers.values()
        }
        return [
            w
            for ident, w in sorted(seen.items())
            if self.calls.get(ident) and not self.with_lineage.get(ident)
        ]


_KEY = pytest.StashKey[LineageWatch]()


def pytest_configure(config: pytest.Config) -> None:
    """Start watching when ``--datatrail-coverage`` names targets."""
    targets = config.getoption("--datatrail-coverage", default=[]) or []
    if not targets:
        return
    writers = [
        f
        for target in targets
        for f in analyze(target).functions
        if f.writes and f.status != "excused"
    ]
    watch = LineageWatch(writers)
    config.stash[_KEY] = watch
    watch.start()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the session when a watched writer ran without lineage."""
    watch = session.config.stash.get(_KEY, None)
    if watch is None:
        return
    watch.stop()
    if watch.silent() and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """List each writer that ran without lineage, with file and line."""
    watch = config.stash.get(_KEY, None)
    if watch is None:
        return
    silent = watch.silent()
    terminalreporter.section("datatrail lineage coverage")
    if not silent:
        terminalreporter.write_line(
            f"every watched writer that ran recorded lineage ({len(watch.calls)} ran)"
        )
        return
    for w in silent:
        calls = ", ".join(f"{c.call} (line {c.line})" for c in w.writes)
        terminalreporter.write_line(
            f"{w.file}:{w.line}: {w.qualname} writes data ({calls}) but recorded no lineage"
        )
