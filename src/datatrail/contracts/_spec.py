"""Contract documents: the YAML a team writes, validated strictly, with file and line errors.

A contracts file (``.datatrail/contracts.yaml``, or every ``*.yaml`` in
``.datatrail/contracts/``) holds one contract per dataset::

    version: 1
    contracts:
      - dataset: file:out/report.csv      # a dataset node id; relative file paths are
        mode: block                       # resolved against the project folder
        columns:
          - {name: region, type: string, nullable: false, unique: true}
          - {name: revenue, type: double, min: 0}
        rows: {min: 1}

The YAML is composed keeping each node's position, turned into plain values
with a path -> position map, and converted with msgspec into frozen Structs;
a validation error's ``$.contracts[0].columns[1].type`` path is mapped back to
the line and column it came from.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any, Final, Literal

import msgspec
import yaml

from datatrail.errors import ContractError, InvalidNodeId
from datatrail.model import DatasetRef, canonical_bytes, parse_node_id

__all__ = [
    "ColumnSpec",
    "Contract",
    "ContractError",
    "FreshnessSpec",
    "LineageSpec",
    "RowsSpec",
    "contract_hash",
    "load_contracts",
    "parse_contracts",
    "parse_duration",
]

Mode = Literal["warn", "alert", "block"]
Scalar = str | int | float | bool


class _Spec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class ColumnSpec(_Spec, frozen=True, kw_only=True):
    """What a column promises: its type, nullability and values."""

    name: str
    type: str | None = None
    """The Arrow type name as datatrail records it (``int64``, ``double``, ``string``, ...)."""
    nullable: bool = True
    unique: bool = False
    allowed: list[Scalar] | None = None
    max_null_rate: float | None = None
    min: Scalar | None = None
    max: Scalar | None = None


class RowsSpec(_Spec, frozen=True, kw_only=True):
    """The row count range a version must fall in."""

    min: int | None = None
    max: int | None = None


class FreshnessSpec(_Spec, frozen=True, kw_only=True):
    """The newest value of a date/time column must be at most ``max_age`` old."""

    column: str
    max_age: str


class LineageSpec(_Spec, frozen=True, kw_only=True):
    """The jobs expected to write the dataset and the datasets expected upstream (drift)."""

    jobs: list[str] = []
    upstream: list[str] = []


class Contract(_Spec, frozen=True, kw_only=True):
    """One dataset's contract."""

    dataset: str
    """The dataset's node id, ``dataset:NAMESPACE:NAME``."""
    mode: Mode = "warn"
    """What a failed check does: ``warn`` (log), ``alert`` (an alert record), ``block`` (raise)."""
    columns: list[ColumnSpec] = []
    extra_columns: Literal["allow", "forbid"] = "allow"
    rows: RowsSpec | None = None
    freshness: FreshnessSpec | None = None
    lineage: LineageSpec | None = None
    description: str | None = None

    def column(self, name: str) -> ColumnSpec | None:
        """The spec of a column, if the contract names it."""
        for col in self.columns:
            if col.name == name:
                return col
        return None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data, defaults left out (the shape kept in the log)."""
        data: dict[str, Any] = msgspec.to_builtins(_compact(self))
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Contract:
        """The contract from its :meth:`to_dict` shape (as recorded in the log)."""
        return msgspec.convert(data, cls)


class _File(_Spec, frozen=True, kw_only=True):
    version: Literal[1] = 1
    contracts: list[Contract] = []


def _compact(value: Any) -> Any:
    """Builtins of a Struct without the fields left at their defaults."""
    if isinstance(value, msgspec.Struct):
        out: dict[str, Any] = {}
        for field in msgspec.structs.fields(value):
            item = getattr(value, field.name)
            default = field.default if field.default is not msgspec.NODEFAULT else None
            if field.default_factory is not msgspec.NODEFAULT:
                default = field.default_factory()
            if field.required or item != default:
                out[field.name] = _compact(item)
        return out
    if isinstance(value, list):
        return [_compact(v) for v in value]
    return value


def contract_hash(contract: Contract) -> str:
    """Hex SHA-256 of the contract's canonical JSON: equal contracts, equal hashes."""
    import hashlib

    return hashlib.sha256(canonical_bytes(contract.to_dict())).hexdigest()


# -- durations ----------------------------------------------------------------------------

_DURATION: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdwy])\s*$")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


def parse_duration(text: str) -> dt.timedelta:
    """``30m``, ``12h``, ``7d``, ``2w``, ``1y`` (365 days) as a timedelta."""
    found = _DURATION.match(str(text))
    if not found:
        raise ValueError(
            f"{text!r} is not a duration; write a number and a unit: s, m, h, d, w or y (e.g. 7d)"
        )
    return dt.timedelta(seconds=float(found.group(1)) * _UNITS[found.group(2)])


# -- types --------------------------------------------------------------------------------

_TYPE: Final = re.compile(
    r"^(null|bool|u?int(8|16|32|64)|halffloat|float|double|string|binary|"
    r"date32\[day\]|date64\[ms\]|time(32|64)\[(s|ms|us|ns)\]|"
    r"timestamp\[(s|ms|us|ns)(, tz=[^\]]+)?\]|duration\[(s|ms|us|ns)\]|"
    r"decimal(32|64|128|256)?\(\d+, ?-?\d+\)|list<.+>(\[\d+\])?|struct<.*>|map<.+>|object)$"
)


# -- YAML with positions ------------------------------------------------------------------

Marks = dict[str, tuple[int, int]]


class _Scalars(yaml.SafeLoader):
    """Builds one scalar with YAML's own typing (int, float, bool, null, text)."""

    def __init__(self) -> None:
        super().__init__("")


def _plain(node: yaml.Node, path: str, marks: Marks, file: str, scalars: _Scalars) -> Any:
    marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _plain(key_node, path + ".<key>", marks, file, scalars)
            if not isinstance(key, str):
                line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                raise ContractError(
                    f"keys must be text, not {key!r}", file=file, line=line, column=col
                )
            if key in out:
                line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                raise ContractError(f"{key!r} is given twice", file=file, line=line, column=col)
            out[key] = _plain(value_node, f"{path}.{key}", marks, file, scalars)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _plain(item, f"{path}[{i}]", marks, file, scalars) for i, item in enumerate(node.value)
        ]
    value = scalars.construct_object(node)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()  # dates stay text, compared as ISO strings
    return value


def _where(path: str, marks: Marks) -> tuple[int | None, int | None]:
    probe = path
    while probe:
        if probe in marks:
            return marks[probe]
        probe = re.sub(r"(\.[^.\[]+|\[\d+\])$", "", probe)
    return marks.get("$", (None, None))


def _located(message: str, path: str, marks: Marks, file: str) -> ContractError:
    line, column = _where(path, marks)
    doc_path = path[2:] if path.startswith("$.") else path.lstrip("$")
    if doc_path:
        message = f"{doc_path}: {message}"
    return ContractError(message, file=file, line=line, column=column, path=doc_path or None)


def parse_contracts(
    text: str, *, file: str = "<contracts>", base: Path | None = None
) -> list[Contract]:
    """Parse and validate a contracts document; relative file datasets resolve against ``base``."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ContractError(
            f"not valid YAML: {problem}", file=file, line=line, column=column
        ) from None
    if root is None:
        return []
    marks: Marks = {}
    data = _plain(root, "$", marks, file, _Scalars())
    if not isinstance(data, dict):
        raise _located(
            "a contracts file is a mapping with `version` and `contracts`", "$", marks, file
        )
    try:
        parsed = msgspec.convert(data, _File)
    except msgspec.ValidationError as exc:
        message = str(exc)
        path = "$"
        if " - at `" in message:
            message, _, rest = message.partition(" - at `")
            path = rest.rstrip("`")
        unknown = re.search(r"unknown field `([^`]+)`", message)
        if unknown:
            path = f"{path}.{unknown.group(1)}"
            message += "; check its spelling against docs/contracts.md"
        raise _located(message, path, marks, file) from None
    out: list[Contract] = []
    seen: dict[str, int] = {}
    for i, contract in enumerate(parsed.contracts):
        here = f"$.contracts[{i}]"
        checked = _validate(contract, here, marks, file, base)
        if checked.dataset in seen:
            raise _located(
                f"{checked.dataset} already has a contract (contracts[{seen[checked.dataset]}]); "
                "keep one contract per dataset",
                here + ".dataset",
                marks,
                file,
            )
        seen[checked.dataset] = i
        out.append(checked)
    return out


def _dataset_id(text: str, base: Path | None) -> str:
    raw = text if text.startswith("dataset:") else "dataset:" + text
    node = parse_node_id(raw)
    if node.kind != "dataset" or node.namespace is None or node.name is None:
        raise InvalidNodeId(f"{text!r} is not a dataset")
    name = node.name
    if node.namespace == "file" and not name.startswith("/"):
        name = str(((base or Path.cwd()) / name).resolve())
    return DatasetRef(namespace=node.namespace, name=name).node_id()


def _validate(c: Contract, here: str, marks: Marks, file: str, base: Path | None) -> Contract:
    def bad(message: str, path: str) -> ContractError:
        return _located(message, here + path, marks, file)

    try:
        dataset = _dataset_id(c.dataset, base)
    except InvalidNodeId as exc:
        raise bad(str(exc), ".dataset") from None
    names: set[str] = set()
    for j, col in enumerate(c.columns):
        at = f".columns[{j}]"
        if not col.name:
            raise bad("a column needs a non-empty name", at + ".name")
        if col.name in names:
            raise bad(f"column {col.name!r} is declared twice", at + ".name")
        names.add(col.name)
        if col.type is not None and not _TYPE.match(col.type):
            raise bad(
                f"column {col.name!r}: unknown type {col.type!r}; use an Arrow type name such as "
                "int64, double, string, bool, timestamp[us], date32[day]",
                at + ".type",
            )
        if col.max_null_rate is not None and not 0 <= col.max_null_rate <= 1:
            raise bad(
                f"column {col.name!r}: max_null_rate must be between 0 and 1", at + ".max_null_rate"
            )
        if col.min is not None and col.max is not None and _gt(col.min, col.max):
            raise bad(f"column {col.name!r}: min {col.min!r} is above max {col.max!r}", at + ".min")
        if col.allowed is not None and not col.allowed:
            raise bad(f"column {col.name!r}: allowed must list at least one value", at + ".allowed")
    if c.rows is not None:
        for key in ("min", "max"):
            value = getattr(c.rows, key)
            if value is not None and value < 0:
                raise bad(f"rows.{key} must not be negative", f".rows.{key}")
        if c.rows.min is not None and c.rows.max is not None and c.rows.min > c.rows.max:
            raise bad(f"rows.min {c.rows.min} is above rows.max {c.rows.max}", ".rows.min")
    if c.freshness is not None:
        try:
            parse_duration(c.freshness.max_age)
        except ValueError as exc:
            raise bad(str(exc), ".freshness.max_age") from None
        if c.columns and c.freshness.column not in names:
            raise bad(
                f"freshness.column {c.freshness.column!r} is not one of the declared columns",
                ".freshness.column",
            )
    lineage = c.lineage
    if lineage is not None:
        jobs = []
        for j, job in enumerate(lineage.jobs):
            text = job if job.startswith("job:") else "job:" + job
            try:
                parsed = parse_node_id(text)
            except InvalidNodeId as exc:
                raise bad(str(exc), f".lineage.jobs[{j}]") from None
            jobs.append(str(parsed))
        ups = []
        for j, up in enumerate(lineage.upstream):
            try:
                ups.append(_dataset_id(up, base))
            except InvalidNodeId as exc:
                raise bad(str(exc), f".lineage.upstream[{j}]") from None
        lineage = LineageSpec(jobs=jobs, upstream=ups)
    return msgspec.structs.replace(c, dataset=dataset, lineage=lineage)


def _gt(a: Scalar, b: Scalar) -> bool:
    try:
        return bool(a > b)  # type: ignore[operator]
    except TypeError:
        return False


def load_contracts(path: str | Path, *, base: Path | None = None) -> list[Contract]:
    """Contracts from a YAML file, or from every ``*.yaml``/``*.yml`` in a folder (name order).

    ``base`` is where relative file datasets resolve: by default the folder that holds
    the trail folder (``.datatrail/``), else the file's folder.
    """
    target = Path(path)
    if not target.exists():
        raise ContractError(f"no contracts at {target}", file=str(target))
    files = (
        sorted(p for p in target.iterdir() if p.suffix in (".yaml", ".yml"))
        if target.is_dir()
        else [target]
    )
    found: list[Contract] = []
    owner: dict[str, str] = {}
    for file in files:
        folder = file.parent
        root = base or (folder.parent if folder.name == ".datatrail" else folder)
        if folder.name == "contracts" and folder.parent.name == ".datatrail":
            root = base or folder.parent.parent
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ContractError(f"cannot read: {exc}", file=str(file)) from None
        for contract in parse_contracts(text, file=str(file), base=root):
            if contract.dataset in owner:
                raise ContractError(
                    f"{contract.dataset} also has a contract in {owner[contract.dataset]}",
                    file=str(file),
                )
            owner[contract.dataset] = str(file)
            found.append(contract)
    return found
