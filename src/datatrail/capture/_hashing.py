"""Content hashing: the ``blake3:<hex>`` identity of every artifact, chosen by type.

This module owns :class:`ContentHash`, the registry of hashers by Python type
(:func:`register_hasher`, :func:`hash_value`), the built-in hashers for bytes,
text, files, directories, JSON-able values and numpy arrays, and the dispatch of
:func:`summarize`. DataFrames and Arrow tables are hashed in ``_hash_tables``,
which is imported only when such a value is seen, so pandas, polars and pyarrow
are never imported for a value that is not one of theirs.

Domain separation, decided once:

* ``bytes`` content and a ``file`` holding the same bytes deliberately get the
  same digest, and that digest is plain BLAKE3 of the content: a file's
  artifact *is* its bytes, and ``b3sum FILE`` reproduces it without datatrail.
* Every other kind is hashed in BLAKE3's key-derivation mode (context
  :data:`HASH_CONTEXT`) and its input starts with ``b"datatrail:<kind>\\x00"``.
  The mode alone keeps these digests disjoint from plain BLAKE3, so no byte
  string, however crafted, can collide with a text, JSON, array, table or
  directory digest; the prefix keeps the structured kinds apart from one another.
  pandas, polars and Arrow tables share one ``table`` domain on purpose, so the
  same logical table hashes the same in each library.

numpy arrays are hashed as their dtype (little-endian), shape and C-order bytes,
exactly: unlike tables they have no null semantics, so NaN payloads count.
JSON-able values are hashed as ``datatrail.model.canonical_bytes``; a value
with no faithful JSON form (an arbitrary object, NaN or infinity, which JSON
would write as null) gets no hash.

Buffers of 1 MiB or more are hashed with ``max_threads=AUTO`` (all cores);
smaller ones single-threaded, where starting threads would cost more than it
saves. In a forked child, large buffers get a thread pool of their own instead:
AUTO's pool lives in the parent and its threads are not copied by ``fork``.
"""

from __future__ import annotations

import math
import os
import pathlib
import stat
import struct
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any, Final

import blake3
import msgspec

from datatrail.errors import HashingError, InvalidEvent, UsageError
from datatrail.model import canonical_bytes

__all__ = [
    "HASH_CONTEXT",
    "ContentHash",
    "Hasher",
    "hash_directory",
    "hash_file",
    "hash_value",
    "register_hasher",
    "summarize",
]

HASH_CONTEXT: Final = "datatrail 2025-01-01 content hash v1"
"""BLAKE3 key-derivation context for every kind except ``bytes`` and ``file``."""

PARALLEL_THRESHOLD: Final = 1 << 20
"""Buffers at least this large are hashed on all cores."""

_READ_WHOLE_LIMIT: Final = 1 << 20

_MEDIA_TYPES: Final[dict[str, str]] = {
    ".parquet": "application/vnd.apache.parquet",
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".json": "application/json",
    ".jsonl": "application/jsonl",
    ".ndjson": "application/jsonl",
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".xml": "application/xml",
    ".html": "text/html",
    ".arrow": "application/vnd.apache.arrow.file",
    ".feather": "application/vnd.apache.arrow.file",
    ".arrows": "application/vnd.apache.arrow.stream",
    ".avro": "application/avro",
    ".orc": "application/vnd.apache.orc",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".npy": "application/x-npy",
    ".gz": "application/gzip",
    ".zip": "application/zip",
    ".zst": "application/zstd",
    ".pdf": "application/pdf",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
}


class ContentHash(msgspec.Struct, frozen=True, kw_only=True):
    """The content identity of one artifact, with what is cheap to know about it.

    ``digest`` is ``"blake3:"`` and 64 lowercase hex digits. ``kind`` says which
    hasher made it (``bytes``, ``text``, ``file``, ``directory``, ``pandas``,
    ``polars``, ``arrow``, ``numpy`` or ``json``). ``size`` is the number of
    content bytes hashed, ``rows`` the length of the first axis of a table or
    array, ``schema`` the ``(column name, normalised type)`` pairs of a table in
    column order, and ``media_type`` the IANA media type of a file when its
    suffix tells it.
    """

    digest: str
    kind: str
    size: int | None = None
    rows: int | None = None
    schema: list[tuple[str, str]] | None = None
    media_type: str | None = None


Hasher = Callable[[Any], ContentHash | None]
"""A hasher: takes a value of its registered type, returns its ContentHash.

It may return ``None`` to say the value is of its type but cannot be hashed
canonically (a dict holding an arbitrary object or a NaN, an object-dtype
column); :func:`hash_value` then returns ``None`` too.
"""


# -- BLAKE3 primitives shared with _hash_tables -------------------------------------------


_forked = False


def _note_fork() -> None:
    global _forked
    _forked = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_note_fork)


def _threads(size: int) -> int:
    if size < PARALLEL_THRESHOLD:
        return 1
    if _forked:
        # AUTO hashes on rayon's global pool, whose threads a fork does not copy: once the
        # parent has used it, a child's AUTO hasher waits on them forever. An explicit
        # count starts a pool for this hasher alone (tens of microseconds).
        return os.cpu_count() or 1
    return blake3.blake3.AUTO


def raw_hasher(size: int = 0) -> blake3.blake3:
    """A plain BLAKE3 hasher, on all cores when ``size`` reaches the threshold."""
    return blake3.blake3(max_threads=_threads(size))


def domain_hasher(kind: str, size: int = 0) -> blake3.blake3:
    """A key-derivation-mode BLAKE3 hasher already fed ``b"datatrail:<kind>\\x00"``."""
    hasher = blake3.blake3(derive_key_context=HASH_CONTEXT, max_threads=_threads(size))
    hasher.update(b"datatrail:" + kind.encode("ascii") + b"\x00")
    return hasher


def format_digest(hasher: blake3.blake3) -> str:
    """The ``blake3:<hex>`` spelling of a hasher's digest."""
    return "blake3:" + hasher.hexdigest()


def u64(value: int) -> bytes:
    """``value`` as 8 little-endian bytes (lengths and counts in hashed headers)."""
    return struct.pack("<Q", value)


# -- the registry -------------------------------------------------------------------------

_lock = threading.Lock()
_by_type: dict[type, Hasher] = {}
_by_name: dict[str, Hasher] = {}
# Per-type dispatch results; weak so classes made at run time can still be collected.
_dispatch_cache: weakref.WeakKeyDictionary[type, Hasher | None] = weakref.WeakKeyDictionary()
_UNSET: Final = object()


def register_hasher(type_or_qualname: type | str, fn: Hasher) -> None:
    """Make ``fn`` the hasher for values of a type and of its subclasses.

    ``type_or_qualname`` is a class, or a dotted ``"module.QualName"`` string
    such as ``"pandas.DataFrame"``; the string form never imports the module: a
    value matches when a class in its MRO has that qualified name, either where
    it is defined or where its package exports it (resolved through modules
    already imported, which they are, since the value exists). Abstract base
    classes such as :class:`os.PathLike` match through ``issubclass``. A later
    registration for the same key replaces the earlier one. The built-in
    hashers are registered through this function too.
    """
    if not callable(fn):
        raise UsageError(f"register_hasher: fn must be callable, got {type(fn).__name__}")
    with _lock:
        if isinstance(type_or_qualname, type):
            _by_type[type_or_qualname] = fn
        elif isinstance(type_or_qualname, str):
            if "." not in type_or_qualname.strip(".") or " " in type_or_qualname:
                raise UsageError(
                    f"register_hasher: {type_or_qualname!r} is not a 'module.QualName' string; "
                    "pass the class or a dotted name such as 'pandas.DataFrame'"
                )
            _by_name[type_or_qualname] = fn
        else:
            raise UsageError(
                "register_hasher: the first argument must be a class or a 'module.QualName' "
                f"string, got {type(type_or_qualname).__name__}"
            )
        _dispatch_cache.clear()


def _resolve(qualname: str) -> object:
    """The object named ``qualname``, looked up only in modules already imported."""
    parts = qualname.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module = sys.modules.get(".".join(parts[:cut]))
        if module is None:
            continue
        obj: object = module
        for attr in parts[cut:]:
            obj = getattr(obj, attr, _UNSET)
            if obj is _UNSET:
                return _UNSET
        return obj
    return _UNSET


def _name_match(cls: type) -> Hasher | None:
    module = getattr(cls, "__module__", "") or ""
    qualname = getattr(cls, "__qualname__", cls.__name__)
    direct = _by_name.get(f"{module}.{qualname}")
    if direct is not None:
        return direct
    top = module.split(".", 1)[0]
    for key, fn in _by_name.items():
        # Cheap filter first: same top-level package, same trailing name.
        same_place = key.split(".", 1)[0] == top and key.rsplit(".", 1)[1] == cls.__name__
        if same_place and _resolve(key) is cls:
            return fn
    return None


def _lookup(cls: type) -> Hasher | None:
    try:
        return _dispatch_cache[cls]
    except KeyError:
        pass
    with _lock:
        found: Hasher | None = None
        for base in cls.__mro__:
            found = _by_type.get(base) or _name_match(base)
            if found is not None:
                break
        if found is None:
            # Virtual subclasses (os.PathLike and other ABCs); the latest registration wins.
            for registered, fn in reversed(list(_by_type.items())):
                if registered is not object and issubclass(cls, registered):
                    found = fn
                    break
        _dispatch_cache[cls] = found
    return found


def hash_value(obj: object) -> ContentHash | None:
    """Hash ``obj`` with the hasher registered for its type.

    Returns ``None`` when no hasher applies, or when the hasher declines the
    value (a JSON container holding a non-JSON object, a path that names
    nothing); it never raises for an unsupported type. Raises
    :class:`~datatrail.errors.HashingError` only for content that exists but
    cannot be read, such as a file without read permission.
    """
    fn = _lookup(type(obj))
    if fn is None:
        return None
    return fn(obj)


# -- bytes, text, JSON --------------------------------------------------------------------


def _hash_bytes(obj: bytes | bytearray | memoryview) -> ContentHash:
    view = memoryview(obj)
    if not view.c_contiguous or view.format not in ("B", "b", "c"):
        view = memoryview(view.tobytes())
    size = view.nbytes
    hasher = raw_hasher(size)
    hasher.update(view)
    return ContentHash(digest=format_digest(hasher), kind="bytes", size=size)


def _hash_text(obj: str) -> ContentHash:
    # surrogatepass: a str holding lone surrogates still has one deterministic encoding.
    data = obj.encode("utf-8", "surrogatepass")
    hasher = domain_hasher("text", len(data))
    hasher.update(data)
    return ContentHash(digest=format_digest(hasher), kind="text", size=len(data))


def _non_finite(value: object) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_non_finite(item) for item in value)
    return False


def _hash_json(obj: object) -> ContentHash | None:
    try:
        data = canonical_bytes(obj)
    except (TypeError, ValueError, InvalidEvent, msgspec.EncodeError):
        # Not JSON-able (an arbitrary object inside): no canonical form, so no hash.
        return None
    if b"null" in data and _non_finite(obj):
        # JSON spells NaN and infinities as null; hashing that would make {"x": nan}
        # collide with {"x": None}, so such values have no canonical form either.
        return None
    hasher = domain_hasher("json", len(data))
    hasher.update(data)
    return ContentHash(digest=format_digest(hasher), kind="json", size=len(data))


# -- files and directories ----------------------------------------------------------------


def _unreadable(path: str, exc: OSError) -> HashingError:
    reason = exc.strerror or str(exc)
    return HashingError(
        f"cannot read {path!r} to hash it: {reason}; check that it exists and is readable"
    )


def _media_type(path: str) -> str | None:
    return _MEDIA_TYPES.get(os.path.splitext(path)[1].lower())


def _file_digest(path: str, size: int) -> str:
    """Plain BLAKE3 of a regular file: mmapped on all cores when large, else read once."""
    hasher = raw_hasher(size)
    try:
        if size >= _READ_WHOLE_LIMIT:
            hasher.update_mmap(path)
        else:
            with open(path, "rb") as handle:
                hasher.update(handle.read())
    except OSError as exc:
        raise _unreadable(path, exc) from exc
    return format_digest(hasher)


def hash_file(path: os.PathLike[str] | str) -> ContentHash:
    """Hash the bytes of a regular file (kind ``file``).

    The digest equals that of the same bytes passed to :func:`hash_value`, and
    that of ``b3sum``. Large files are memory-mapped and hashed on all cores.
    Raises :class:`~datatrail.errors.HashingError`, naming the path, when the
    path is missing, not a regular file, or cannot be read.
    """
    name = os.fspath(path)
    try:
        info = os.stat(name)
    except OSError as exc:
        raise _unreadable(name, exc) from exc
    if stat.S_ISDIR(info.st_mode):
        raise HashingError(
            f"cannot hash {name!r} as a file: it is a directory; use hash_directory()"
        )
    if not stat.S_ISREG(info.st_mode):
        raise HashingError(
            f"cannot hash {name!r}: it is not a regular file (device, FIFO or socket)"
        )
    digest = _file_digest(name, info.st_size)
    return ContentHash(digest=digest, kind="file", size=info.st_size, media_type=_media_type(name))


def _walk_error(exc: OSError) -> None:
    raise _unreadable(str(exc.filename), exc) from exc


def hash_directory(path: os.PathLike[str] | str) -> ContentHash:
    """Hash a directory tree as a manifest of its files (kind ``directory``).

    The manifest lists every regular file below ``path`` (symlinks to files are
    followed, symlinked directories are not entered, empty directories, FIFOs
    and sockets are left out) as ``[relative posix path, file digest, size]``,
    sorted by path, encoded as canonical JSON and hashed. Renaming, editing,
    adding or removing a file therefore changes the digest. ``size`` is the
    total of the file sizes. Raises :class:`~datatrail.errors.HashingError`
    when the directory or a file in it cannot be read.
    """
    root = os.fspath(path)
    if not os.path.isdir(root):
        if not os.path.exists(root):
            raise HashingError(f"cannot hash directory {root!r}: it does not exist")
        raise HashingError(f"cannot hash {root!r} as a directory: it is a file; use hash_file()")
    manifest: list[tuple[str, str, int]] = []
    total = 0
    for dirpath, dirnames, filenames in os.walk(root, onerror=_walk_error):
        dirnames.sort()
        for filename in filenames:
            full = os.path.join(dirpath, filename)
            try:
                info = os.stat(full)
            except OSError as exc:
                raise _unreadable(full, exc) from exc
            if not stat.S_ISREG(info.st_mode):
                continue
            relative = pathlib.PurePath(os.path.relpath(full, root)).as_posix()
            manifest.append((relative, _file_digest(full, info.st_size), info.st_size))
            total += info.st_size
    manifest.sort()
    try:
        encoded = canonical_bytes(manifest)
    except (TypeError, ValueError, msgspec.EncodeError) as exc:
        raise HashingError(
            f"cannot hash directory {root!r}: a file name is not valid Unicode ({exc}); rename it"
        ) from exc
    hasher = domain_hasher("directory", len(encoded))
    hasher.update(encoded)
    return ContentHash(digest=format_digest(hasher), kind="directory", size=total)


def _hash_path(obj: os.PathLike[str]) -> ContentHash | None:
    name = os.fsdecode(obj)
    if os.path.isdir(name):
        return hash_directory(name)
    if os.path.isfile(name):
        return hash_file(name)
    # A path naming nothing (or a FIFO, a socket) has no content to hash.
    return None


# -- numpy ----------------------------------------------------------------------------------


def _hash_numpy(obj: Any) -> ContentHash | None:
    import numpy as np

    array = np.asarray(obj)
    if array.dtype.hasobject:
        return None
    if not array.flags.c_contiguous:
        array = array.copy(order="C")  # not ascontiguousarray: it turns 0-d into 1-d
    if array.dtype.byteorder == ">" or (array.dtype.byteorder == "=" and sys.byteorder == "big"):
        array = array.astype(array.dtype.newbyteorder("<"))
    dtype_name = array.dtype.str if array.dtype.fields is None else str(array.dtype.descr)
    header = canonical_bytes({"dtype": dtype_name, "shape": list(array.shape)})
    size = int(array.nbytes)
    hasher = domain_hasher("numpy", size)
    hasher.update(u64(len(header)) + header)
    if size:
        hasher.update(array.reshape(-1).view(np.uint8).data)
    rows = int(array.shape[0]) if array.ndim else None
    return ContentHash(digest=format_digest(hasher), kind="numpy", size=size, rows=rows)


def _numpy_summary(obj: Any) -> dict[str, Any] | None:
    import numpy as np

    array = np.asarray(obj)
    if array.ndim == 0:
        return None
    flat = array.reshape(-1)
    kind = array.dtype.kind
    if kind in "fc":
        missing = np.isnan(flat)
    elif kind in "mM":
        missing = np.isnat(flat)
    else:
        missing = np.zeros(flat.shape, dtype=bool)
    nulls = int(missing.sum())
    stats: dict[str, Any] = {"nulls": nulls}
    if nulls < flat.size and kind in "iufM":
        present = flat[~missing] if nulls else flat
        low, high = present.min(), present.max()
        if kind == "M":
            stats["min"] = str(np.datetime_as_string(low))
            stats["max"] = str(np.datetime_as_string(high))
        else:
            stats["min"], stats["max"] = _json_number(low.item()), _json_number(high.item())
    return {"rows": int(array.shape[0]), "columns": {"": stats}}


def _json_number(value: object) -> int | float | None:
    """An int or finite float as is; NaN and infinities (not JSON) as None."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return None


# -- tables (lazy: _hash_tables imports pyarrow) ------------------------------------------


def _tables() -> Any:
    try:
        from datatrail.capture import _hash_tables
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"hashing DataFrames and Arrow tables needs pyarrow ({exc}); "
            "install it with: pip install 'datatrail[pandas]'"
        ) from exc
    return _hash_tables


def _hash_pandas(obj: Any) -> ContentHash | None:
    result: ContentHash | None = _tables().hash_pandas(obj)
    return result


def _hash_polars(obj: Any) -> ContentHash | None:
    result: ContentHash | None = _tables().hash_polars(obj)
    return result


def _hash_arrow(obj: Any) -> ContentHash | None:
    result: ContentHash | None = _tables().hash_arrow(obj)
    return result


_SUMMARY_NAMES: Final = (
    "pandas.DataFrame",
    "pandas.Series",
    "polars.DataFrame",
    "polars.Series",
    "pyarrow.Table",
    "pyarrow.RecordBatch",
    "pyarrow.Array",
    "pyarrow.ChunkedArray",
)


def _is_named(cls: type, qualname: str) -> bool:
    top = qualname.split(".", 1)[0]
    for base in cls.__mro__:
        module = getattr(base, "__module__", "") or ""
        same_place = module.split(".", 1)[0] == top and base.__name__ == qualname.rsplit(".", 1)[1]
        if same_place and _resolve(qualname) is base:
            return True
    return False


def summarize(obj: object) -> dict[str, Any] | None:
    """Summary statistics of a table, frame or array; ``None`` for anything else.

    Returns ``{"rows": n, "columns": {name: {"nulls": k, "min": ..., "max": ...}}}``.
    ``min`` and ``max`` appear only for numeric and date/time columns that have
    a non-null value, as JSON-able values: ints, finite floats (a NaN or
    infinite bound is ``None``), decimals as strings, dates and times as ISO
    8601 strings (UTC instants end in ``Z``). Nulls follow the hashing rules: a
    NaN in a pandas float column or a numpy float array counts as null. Computed
    with vectorised library calls, never a Python loop over rows.
    """
    cls = type(obj)
    if _is_named(cls, "numpy.ndarray"):
        return _numpy_summary(obj)
    for name in _SUMMARY_NAMES:
        if _is_named(cls, name):
            result: dict[str, Any] | None = _tables().summarize_table(obj)
            return result
    return None


def _register_builtins() -> None:
    for raw in (bytes, bytearray, memoryview):
        register_hasher(raw, _hash_bytes)
    register_hasher(str, _hash_text)
    for jsonable in (dict, list, tuple, int, float, bool, type(None)):
        register_hasher(jsonable, _hash_json)
    register_hasher(os.PathLike, _hash_path)
    register_hasher(pathlib.PurePath, _hash_path)
    register_hasher("numpy.ndarray", _hash_numpy)
    register_hasher("numpy.generic", _hash_numpy)
    register_hasher("pandas.DataFrame", _hash_pandas)
    register_hasher("pandas.Series", _hash_pandas)
    register_hasher("polars.DataFrame", _hash_polars)
    register_hasher("polars.Series", _hash_polars)
    for arrow in ("pyarrow.Table", "pyarrow.RecordBatch", "pyarrow.Array", "pyarrow.ChunkedArray"):
        register_hasher(arrow, _hash_arrow)


_register_builtins()
