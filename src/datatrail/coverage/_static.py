"""Static lineage coverage: functions that read or write data, and whether they are tracked.

Each function (and method) of a module or source tree is parsed with ``ast``,
never imported. Its own body (nested functions are their own entries) is
searched for data calls:

* reads: ``read_*``/``scan_*`` calls (pandas, polars, pyarrow), ``open()`` or
  ``Path.open()`` without a write mode, ``read_text``/``read_bytes``, SQL
  ``SELECT`` text passed to ``execute``/``sql``/``read_sql``;
* writes: ``to_csv``/``to_parquet``/... (pandas), ``write_csv``/``write_parquet``/...
  (polars, pyarrow), ``write_table``, ``write_text``/``write_bytes``, ``open()``
  with a ``w``/``a``/``x`` mode, SQL ``INSERT``/``UPDATE``/``DELETE``/``CREATE``/
  ``COPY``/``MERGE`` text.

A function is tracked when it is decorated with ``track`` (``@datatrail.track``,
``@track(...)``) or opens a ``datatrail.run(...)`` block. A function that
writes on purpose without lineage is marked with ``# datatrail: untracked`` on
its ``def`` line or the line above, and reported as ``excused``.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path
from typing import Any, Final, Literal

import msgspec

from datatrail.errors import UsageError

__all__ = ["CoverageReport", "DataCall", "FunctionCoverage", "analyze", "analyze_source"]

_READS: Final = re.compile(r"^(read_\w+|scan_\w+|read_text|read_bytes|read_table|load)$")
_WRITES: Final = re.compile(
    r"^(to_(csv|parquet|json|excel|feather|sql|hdf|pickle|orc|stata|xml)|"
    r"write_(csv|parquet|ipc|json|ndjson|excel|database|delta|avro|table|text|bytes|dataset|feather)|"
    r"sink_\w+|savez?|tofile)$"
)
_SQL_WRITE: Final = re.compile(r"^\s*(insert|update|delete|create|copy|merge|drop|alter)\b", re.I)
_SQL_READ: Final = re.compile(r"^\s*(select|with)\b", re.I)
_SQL_CALLS: Final = frozenset({"execute", "executemany", "sql", "read_sql"})
_ATTR_ONLY: Final = frozenset({"save", "savez", "tofile", "load"})
_PRAGMA: Final = re.compile(r"#\s*datatrail:\s*untracked")
_NOT_DATA: Final = frozenset({"json.load", "yaml.load", "pickle.load", "importlib.load"})


class DataCall(msgspec.Struct, frozen=True, kw_only=True):
    """One data read or write found in a function's body."""

    kind: Literal["read", "write"]
    call: str
    line: int


class FunctionCoverage(msgspec.Struct, frozen=True, kw_only=True):
    """One function that reads or writes data, and whether its lineage is recorded."""

    file: str
    line: int
    qualname: str
    status: Literal["tracked", "untracked", "excused"]
    reads: list[DataCall] = []
    writes: list[DataCall] = []
    first_line: int = 0
    """The line of its first decorator (Python's ``co_firstlineno``), else ``line``."""


class CoverageReport(msgspec.Struct, frozen=True, kw_only=True):
    """Lineage coverage of a module or source tree."""

    target: str
    files: int
    functions: list[FunctionCoverage]

    @property
    def untracked(self) -> list[FunctionCoverage]:
        """Functions that read or write data with no lineage recorded."""
        return [f for f in self.functions if f.status == "untracked"]

    @property
    def covered(self) -> float:
        """The share of data functions that are tracked or excused (1.0 when there are none)."""
        if not self.functions:
            return 1.0
        return 1 - len(self.untracked) / len(self.functions)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data, with the summary figures."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        data["untracked"] = len(self.untracked)
        data["coverage"] = round(self.covered, 4)
        return data


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else node.attr
    if isinstance(node, ast.Call):
        return _dotted(node.func) + "()"
    return ""


def _is_track(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    name = _dotted(target)
    return name == "track" or name.endswith(".track")


def _opens_run(node: ast.With | ast.AsyncWith) -> bool:
    for item in node.items:
        expr = item.context_expr
        if isinstance(expr, ast.Call):
            name = _dotted(expr.func)
            if name in ("run", "datatrail.run", "dt.run") or name.endswith("datatrail.run"):
                return True
    return False


def _mode(call: ast.Call, position: int) -> str:
    if len(call.args) > position:
        given = call.args[position]
        if isinstance(given, ast.Constant):
            return str(given.value)
    for kw in call.keywords:
        if kw.arg == "mode" and isinstance(kw.value, ast.Constant):
            return str(kw.value.value)
    return "r"


def _sql_text(call: ast.Call) -> str | None:
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    if call.args and isinstance(call.args[0], ast.JoinedStr):
        parts = [v.value for v in call.args[0].values if isinstance(v, ast.Constant)]
        return "".join(str(p) for p in parts)
    return None


def _classify(call: ast.Call) -> tuple[Literal["read", "write"], str] | None:
    name = _dotted(call.func)
    attr = name.rsplit(".", 1)[-1].removesuffix("()")
    if name in _NOT_DATA:
        return None
    if name == "open" or (attr == "open" and isinstance(call.func, ast.Attribute)):
        mode = _mode(call, 1 if name == "open" else 0)
        owner = _dotted(call.func.value) if isinstance(call.func, ast.Attribute) else ""
        if owner in ("gzip", "io", "os", "bz2", "lzma"):
            mode = _mode(call, 1)
        return ("write" if any(c in mode for c in "wax+") else "read"), name
    if attr in _SQL_CALLS:
        text = _sql_text(call)
        if text is not None:
            if _SQL_WRITE.match(text):
                return "write", name
            if _SQL_READ.match(text):
                return "read", name
        return ("read", name) if attr == "read_sql" else None
    if attr in _ATTR_ONLY and not isinstance(call.func, ast.Attribute):
        return None  # a bare save(...) is the caller's own function, not numpy's
    if _WRITES.match(attr):
        return "write", name
    if _READS.match(attr) and attr != "load":
        return "read", name
    return None


class _Visitor(ast.NodeVisitor):
    def __init__(self, file: str, lines: list[str]) -> None:
        self.file = file
        self.lines = lines
        self.scope: list[str] = []
        self.found: list[FunctionCoverage] = []

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._function(node)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        qualname = ".".join([*self.scope, node.name])
        reads: list[DataCall] = []
        writes: list[DataCall] = []
        runs = False
        stack: list[ast.AST] = list(node.body)
        while stack:
            item = stack.pop()
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
                continue  # its own entry
            if isinstance(item, ast.With | ast.AsyncWith) and _opens_run(item):
                runs = True
            if isinstance(item, ast.Call):
                found = _classify(item)
                if found is not None:
                    kind, name = found
                    entry = DataCall(kind=kind, call=name, line=item.lineno)
                    (writes if kind == "write" else reads).append(entry)
            stack.extend(ast.iter_child_nodes(item))
        if reads or writes:
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            nearby = self.lines[max(0, first - 2) : node.lineno]
            if any(_is_track(d) for d in node.decorator_list) or runs:
                status: Literal["tracked", "untracked", "excused"] = "tracked"
            elif any(_PRAGMA.search(line) for line in nearby):
                status = "excused"
            else:
                status = "untracked"
            self.found.append(
                FunctionCoverage(
                    file=self.file,
                    line=node.lineno,
                    first_line=first,
                    qualname=qualname,
                    status=status,
                    reads=sorted(reads, key=lambda c: c.line),
                    writes=sorted(writes, key=lambda c: c.line),
                )
            )
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()


def analyze_source(source: str, file: str = "<source>") -> list[FunctionCoverage]:
    """The data functions of one module's source text."""
    try:
        tree = ast.parse(source, filename=file)
    except SyntaxError as exc:
        raise UsageError(f"{file}:{exc.lineno}: cannot parse: {exc.msg}") from None
    visitor = _Visitor(file, source.splitlines())
    visitor.visit(tree)
    return sorted(visitor.found, key=lambda f: f.line)


def _files(target: str) -> list[Path]:
    path = Path(target)
    if path.exists():
        if path.is_dir():
            return sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)
        return [path]
    try:
        spec = importlib.util.find_spec(target)
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        raise UsageError(f"{target}: neither a path nor an importable Python module")
    if spec.submodule_search_locations:
        return sorted(
            p
            for location in spec.submodule_search_locations
            for p in Path(location).rglob("*.py")
            if "__pycache__" not in p.parts
        )
    return [Path(spec.origin)]


def analyze(target: str | Path) -> CoverageReport:
    """Lineage coverage of a module name (``pkg.mod``), a ``.py`` file or a folder of them."""
    files = _files(str(target))
    found: list[FunctionCoverage] = []
    for file in files:
        try:
            source = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{file}: cannot read: {exc}") from None
        found.extend(analyze_source(source, str(file.resolve())))
    return CoverageReport(target=str(target), files=len(files), functions=found)
