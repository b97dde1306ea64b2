"""Reading policy YAML with its positions kept, so every error names file, line and column.

PyYAML composes the text into nodes that carry marks; :func:`compose` turns the
nodes into plain values and a :class:`Source` that maps each document path
(``("retention", 1, "delete_after")``) back to where it was written. Validation
then reports any problem through :meth:`Source.error`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import msgspec
import yaml

from datatrail.errors import PolicyError

__all__ = ["Path_", "Source", "compose", "convert", "format_path", "merge"]

Path_ = tuple[str | int, ...]
"""A place in a document: keys and list indexes from the top."""

_SCALARS = yaml.constructor.SafeConstructor()


@dataclass
class Source:
    """Where each value of a composed document was written."""

    file: str
    values: dict[Path_, tuple[str, int, int]] = field(default_factory=dict)
    """path -> (file, line, column) of the value, 1-based."""
    keys: dict[Path_, tuple[str, int, int]] = field(default_factory=dict)
    """path -> (file, line, column) of the mapping key that introduced it."""

    def where(self, path: Path_, *, key: bool = False) -> tuple[str, int | None, int | None]:
        """The nearest recorded position of ``path`` (walking up to its parents)."""
        probe = path
        while True:
            table = self.keys if key and probe in self.keys else self.values
            if probe in table:
                return table[probe]
            if not probe:
                return (self.file, None, None)
            probe = probe[:-1]
            key = False

    def error(self, path: Path_, message: str, *, key: bool = False) -> NoReturn:
        """Raise a :class:`PolicyError` located at ``path``."""
        file, line, column = self.where(path, key=key)
        shown = format_path(path)
        text = f"{shown}: {message}" if shown else message
        raise PolicyError(text, file=file, line=line, column=column, path=shown or None)

    def shift(self, prefix: Path_, offset: int) -> Source:
        """A copy whose list items under ``prefix`` are renumbered by ``offset`` (for merging)."""
        n = len(prefix)

        def move(table: dict[Path_, tuple[str, int, int]]) -> dict[Path_, tuple[str, int, int]]:
            out = {}
            for path, mark in table.items():
                index = path[n] if len(path) > n and path[:n] == prefix else None
                if isinstance(index, int):
                    path = (*prefix, index + offset, *path[n + 1 :])
                out[path] = mark
            return out

        return Source(self.file, move(self.values), move(self.keys))


def format_path(path: Path_) -> str:
    """``("retention", 1, "delete_after")`` as ``retention[1].delete_after``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def _mark(file: str, node: yaml.Node) -> tuple[str, int, int]:
    return (file, node.start_mark.line + 1, node.start_mark.column + 1)


def _build(node: yaml.Node, path: Path_, source: Source, depth: int = 0) -> Any:
    if depth > 64:
        source.error(path, "the document nests too deeply (or an alias refers to itself)")
    source.values[path] = _mark(source.file, node)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                source.error(path, "YAML merge keys (<<) are not supported in policies")
            key = (
                _SCALARS.construct_object(key_node)
                if isinstance(key_node, yaml.ScalarNode)
                else None
            )
            if not isinstance(key, str):
                source.values[path] = _mark(source.file, key_node)
                source.error(path, f"keys must be text, not {key!r}")
            child = (*path, key)
            source.keys[child] = _mark(source.file, key_node)
            if key in out:
                source.error(child, f"key {key!r} appears twice", key=True)
            out[key] = _build(value_node, child, source, depth + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), source, depth + 1) for i, item in enumerate(node.value)]
    value = _SCALARS.construct_object(node)
    if not isinstance(value, str | int | float | bool | type(None)):
        # Dates and timestamps: keep them as written; fields that want text get text.
        value = str(node.value)
    return value


def compose(text: str, file: str) -> list[tuple[dict[str, Any], Source]]:
    """Every YAML document in ``text`` as a plain mapping with where each value was written."""
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "malformed YAML"
        raise PolicyError(
            f"not valid YAML: {problem}",
            file=file,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"not valid YAML: {exc}", file=file) from None
    documents: list[tuple[dict[str, Any], Source]] = []
    for number, node in enumerate(nodes):
        source = Source(file)
        if not isinstance(node, yaml.MappingNode):
            source.values[()] = _mark(file, node)
            source.error((), f"document {number + 1} must be a mapping of policy sections")
        documents.append((_build(node, (), source), source))
    return documents


def merge(
    documents: Sequence[tuple[dict[str, Any], Source]], file: str
) -> tuple[dict[str, Any], Source]:
    """Documents (of a stream or a folder) as one: lists joined, mappings united, no key twice."""
    merged: dict[str, Any] = {}
    source = Source(file)
    for doc, part in documents:
        for key, value in doc.items():
            if key not in merged:
                merged[key] = value
                if isinstance(value, list):
                    merged[key] = list(value)
                elif isinstance(value, dict):
                    merged[key] = dict(value)
                continue
            current = merged[key]
            if isinstance(current, list) and isinstance(value, list):
                part = part.shift((key,), len(current))
                current.extend(value)
            elif isinstance(current, dict) and isinstance(value, dict):
                for name in value:
                    if name in current:
                        part.error((key, name), f"{name!r} is defined twice", key=True)
                current.update(value)
            else:
                part.error((key,), f"section {key!r} is given twice", key=True)
        for table, extra in ((source.values, part.values), (source.keys, part.keys)):
            for path, mark in extra.items():
                if path not in table:
                    table[path] = mark
    return merged, source


_PATH_TOKEN = re.compile(r"\.([^.\[]+)|\[(\d+)\]|\[\.\.\.\]")
_AT = re.compile(r"^(?P<message>.*) - at `\$(?P<path>[^`]*)`$", re.DOTALL)
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>[^`]+)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")


def _relative(path_text: str) -> Path_:
    out: list[str | int] = []
    for match in _PATH_TOKEN.finditer(path_text):
        if match.group(1) is not None:
            out.append(match.group(1))
        elif match.group(2) is not None:
            out.append(int(match.group(2)))
    return tuple(out)


def _plain_message(message: str) -> str:
    message = message.replace("`", "")
    message = message.replace("Expected str", "expected text").replace("Expected ", "expected ")
    return message.replace("Invalid enum value", "not one of the allowed values:")


def convert(
    value: Any, type_: Any, path: Path_, source: Source, *, allowed: Sequence[str] = ()
) -> Any:
    """``msgspec.convert`` with any validation error located at its place in the document."""
    try:
        return msgspec.convert(value, type_, strict=True)
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = _AT.match(text)
        rel: Path_ = ()
        message = text
        if match:
            rel = _relative(match.group("path"))
            message = match.group("message")
        unknown = _UNKNOWN.match(message)
        if unknown:
            name = unknown.group("field")
            hint = f"; allowed here: {', '.join(allowed)}" if allowed and not rel else ""
            source.error((*path, *rel, name), f"unknown key {name!r}{hint}", key=True)
        missing = _MISSING.match(message)
        if missing:
            source.error((*path, *rel), f"missing required key {missing.group('field')!r}")
        source.error((*path, *rel), _plain_message(message))
