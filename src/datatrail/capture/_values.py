"""Turning a value into an artifact: hashed, remembered, or identity-only.

A value a tracked step produced remembers its artifact (by object identity,
with a weak reference so the memo never keeps data alive), so the next step
that receives it does not hash it again. Values no hasher understands get an
identity-only ``uuid:`` artifact and one warning per type, never an error.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from pathlib import Path
from typing import Any

from datatrail.capture._hashing import (
    ContentHash,
    _lookup,
    hash_directory,
    hash_file,
    hash_value,
    summarize,
)
from datatrail.capture._provenance import trusted_artifact
from datatrail.errors import HashingError
from datatrail.model import ArtifactInfo, DatasetRef, file_dataset, uuid7

__all__ = ["DATA_MODULES", "SCALARS", "artifact_for", "is_data", "remember"]

log = logging.getLogger("datatrail")

SCALARS = frozenset({int, float, str, bool, type(None), complex})
DATA_MODULES = frozenset({"pandas", "polars", "pyarrow", "numpy"})
_DATA_TYPES = (bytes, bytearray, memoryview, os.PathLike)

_memo: dict[int, tuple[weakref.ref[Any], tuple[Any, ...], ContentHash]] = {}
_memo_lock = threading.Lock()
_warned: set[str] = set()


_PLAIN = frozenset({str, int, float, bool, complex, type(None), dict, list, tuple, set, frozenset})


def is_data(value: Any) -> bool:
    """Whether a value is data (an input or output) rather than a parameter.

    Data: bytes, paths, frames, arrays and tables, and any type with a registered
    hasher; plain Python values (numbers, strings, containers) are parameters.
    """
    if isinstance(value, _DATA_TYPES):
        return True
    cls = type(value)
    if cls in _PLAIN:
        return False
    return cls.__module__.partition(".")[0] in DATA_MODULES or _lookup(cls) is not None


def _fingerprint(value: Any) -> tuple[Any, ...]:
    """A cheap check that a remembered object still has the same shape and columns.

    In-place edits of values that keep the shape are not seen; a step's outputs are
    always hashed afresh, so only edits between steps outside any tracked code are missed.
    """
    shape = getattr(value, "shape", None)
    columns = getattr(value, "columns", None)
    try:
        cols = tuple(columns) if columns is not None else None
    except TypeError:
        cols = None
    return (shape if isinstance(shape, tuple) else None, cols)


def remember(value: Any, content: ContentHash) -> None:
    """Remember ``value``'s content hash for as long as the object lives."""
    key = id(value)

    def _forget(_: object, key: int = key) -> None:
        with _memo_lock:
            _memo.pop(key, None)

    try:
        ref = weakref.ref(value, _forget)
    except TypeError:  # bytes, str, tuples: cheap to hash again, cannot be weakly referenced
        return
    with _memo_lock:
        _memo[key] = (ref, _fingerprint(value), content)


def recall(value: Any) -> ContentHash | None:
    """The remembered content hash of this very object, if any."""
    with _memo_lock:
        entry = _memo.get(id(value))
    if entry is None or entry[0]() is not value or entry[1] != _fingerprint(value):
        return None
    return entry[2]


def _info(content: ContentHash, stats: dict[str, Any] | None) -> ArtifactInfo:
    return ArtifactInfo(
        id=content.digest,
        kind=content.kind,
        size=content.size,
        rows=content.rows,
        schema=[(name, dtype) for name, dtype in content.schema]
        if content.schema is not None
        else None,
        media_type=content.media_type,
        stats=stats,
    )


def _identity(kind: str) -> ArtifactInfo:
    return ArtifactInfo(id="uuid:" + uuid7(), kind=kind)


def artifact_for(
    value: Any,
    *,
    level: str,
    as_path: bool = False,
    dataset: DatasetRef | None = None,
    fresh: bool = False,
) -> tuple[ArtifactInfo, DatasetRef | None]:
    """The artifact (and dataset, for files) of a value at a recording level.

    Raises :class:`HashingError` when a path names nothing readable: that is the
    caller's mistake, not the recorder's.
    """
    if as_path or isinstance(value, os.PathLike):
        path = Path(value)
        ds = dataset or file_dataset(path)
        if not path.exists():
            raise HashingError(f"{path}: no such file or directory to record")
        if not fresh:
            # A file written through datatrail names its own artifact in a sidecar; trusted
            # (without hashing) only while size and mtime, or the format's footer, still match.
            trusted = trusted_artifact(path)
            if trusted is not None:
                return trusted[0], ds
        if level == "minimal":
            return _identity("directory" if path.is_dir() else "file"), ds
        hashed = hash_directory(path) if path.is_dir() else hash_file(path)
        return _info(hashed, None), ds
    if level == "minimal":
        return _identity(type(value).__name__), dataset
    content: ContentHash | None = None if fresh else recall(value)
    if content is None:
        content = hash_value(value)
        if content is None:
            name = f"{type(value).__module__}.{type(value).__qualname__}"
            if name not in _warned:
                _warned.add(name)
                log.warning(
                    "datatrail: no content hasher for %s; recording an identity-only artifact", name
                )
            return _identity(type(value).__name__), dataset
        remember(value, content)
    stats = summarize(value) if level == "full" else None
    return _info(content, stats), dataset
