"""Hashing and summaries of tables: pandas, polars and pyarrow, from column buffers.

Imported by ``_hashing`` only when a table value is hashed. Every table is
hashed column by column from its buffers, never row by row, normalised so that
the same logical content gives the same digest however it is chunked, sliced or
laid out, and in whichever of the three libraries it lives.

Per column, three plain BLAKE3 streams, each fed chunk after chunk, so a chunk
boundary cannot move a byte from one stream into another (nor can the slices of a
few MiB that a column needing NaN checks or zeroing is fixed up and fed in, each
while it is still in cache):

* values: fixed-width types as their little-endian value bytes over exactly the
  rows the array covers (its offset respected), zero under nulls, float NaNs
  rewritten to the one quiet NaN; booleans one byte (0/1) per row, 0 under
  nulls; strings and binaries their lengths as int64, 0 under nulls;
* validity, only when the column has nulls: one byte per row, 1 valid, 0 null;
* data, strings and binaries only: the bytes of the non-null values in order.

Dictionary arrays are decoded, extension arrays hashed as their storage,
string/binary views as strings/binaries. Types with no buffer rule (lists,
structs, maps, unions) fall back to one MessagePack encoding per
``to_pylist()`` element: correct, and slow.

The column digest is BLAKE3 (``column`` domain) over its type name, row count,
null count and the stream digests. The table digest is BLAKE3 (``table``
domain) over canonical JSON ``{"rows": n, "schema": [[name, type], ...]}`` and
the column digests in order.

Type names are Arrow's, with one name per logical type across libraries:
``string`` (string, large_string, string_view, pandas ``str``, polars
``String``), ``binary`` likewise, ``list<...>`` for every list flavour;
numpy/pandas dtypes map to Arrow's names (``int64``, ``double``, ``float``,
``halffloat``, ``bool``, ``timestamp[us, tz=UTC]``, ``duration[ns]``).

pandas rules: NaN in a float column and NaT in a datetime column are nulls (as
pandas' ``isna`` and every pandas→Arrow/polars converter say); in Arrow and
polars NaN is a value, distinct from null. A ``RangeIndex`` with step 1 is
ignored whatever its start, so ``df.iloc[10:20]`` equals a fresh frame of the
same values; any other index is folded in as trailing columns ``__index__``
(``__index__0``, ``__index__1``, ... for a MultiIndex) and the header gains
``"index": k``. Index names are not hashed. Non-string column names are hashed
as ``str(name)``. A Series (pandas or polars) or an Arrow array is a one-column
table named after the series (``""`` when unnamed).
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datatrail.capture._hashing import (
    ContentHash,
    domain_hasher,
    format_digest,
    raw_hasher,
    u64,
)
from datatrail.model import canonical_bytes

__all__ = ["hash_arrow", "hash_pandas", "hash_polars", "summarize_table"]

_NUMPY_TO_ARROW: Final[dict[str, str]] = {
    "i1": "int8",
    "i2": "int16",
    "i4": "int32",
    "i8": "int64",
    "u1": "uint8",
    "u2": "uint16",
    "u4": "uint32",
    "u8": "uint64",
    "f2": "halffloat",
    "f4": "float",
    "f8": "double",
    "b1": "bool",
}
_ARROW_TIME_UNITS: Final = frozenset({"s", "ms", "us", "ns"})
_NAT: Final = np.iinfo(np.int64).min
_SLICE: Final = 1 << 22
"""Bytes of a column hashed per step: checked and fixed up in cache, then hashed."""


class _Unhashable(Exception):
    """A column holds values with no canonical encoding (arbitrary Python objects)."""


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, dt.datetime | dt.date | dt.time):
        return obj.isoformat()
    if isinstance(obj, decimal.Decimal):
        return str(obj)
    raise TypeError(f"no canonical encoding for {type(obj).__qualname__}")


_msgpack: Final = msgspec.msgpack.Encoder(order="sorted", enc_hook=_enc_hook)


# -- type names ---------------------------------------------------------------------------


def _storage(t: Any) -> Any:
    """The type whose buffers are hashed: extension → storage, dictionary → values."""
    while True:
        if isinstance(t, pa.ExtensionType):
            t = t.storage_type
        elif pa.types.is_dictionary(t):
            t = t.value_type
        else:
            return t


def type_name(t: Any) -> str:
    """The library-independent name of an Arrow type (see the module docstring)."""
    if isinstance(t, pa.ExtensionType):
        return str(t)
    if pa.types.is_dictionary(t):
        return type_name(t.value_type)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return "binary"
    if pa.types.is_fixed_size_list(t):
        return f"list<{type_name(t.value_type)}>[{t.list_size}]"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or _is_list_view(t):
        return f"list<{type_name(t.value_type)}>"
    if pa.types.is_struct(t):
        fields = ", ".join(
            f"{t.field(i).name}: {type_name(t.field(i).type)}" for i in range(t.num_fields)
        )
        return f"struct<{fields}>"
    if pa.types.is_map(t):
        return f"map<{type_name(t.key_type)}, {type_name(t.item_type)}>"
    return str(t)


def _is_list_view(t: Any) -> bool:
    return bool(pa.types.is_list_view(t) or pa.types.is_large_list_view(t))


def _layout(t: Any) -> str:
    """How a storage type is streamed: null, bool, float, fixed, var, or object."""
    if pa.types.is_null(t):
        return "null"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "var"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "var"
    if pa.types.is_string_view(t) or pa.types.is_binary_view(t):
        return "view"
    try:
        width = t.bit_width
    except ValueError:
        return "object"
    return "fixed" if width % 8 == 0 else "object"


# -- one column ---------------------------------------------------------------------------


class _Column:
    """The value, validity and data streams of one column, and its digest."""

    def __init__(self, name: str, *, rows: int, nulls: int, nbytes: int, var: bool) -> None:
        self.name = name
        self.rows = rows
        self.nulls = nulls
        self.values = raw_hasher(nbytes)
        self.validity = raw_hasher(rows) if nulls else None
        self.data = raw_hasher(nbytes) if var else None
        self.fed = 0

    def feed(self, hasher: Any, buffer: np.ndarray[Any, Any] | bytes) -> None:
        if isinstance(buffer, np.ndarray):
            # BLAKE3 takes byte buffers only; a contiguous view costs nothing.
            buffer = np.ascontiguousarray(buffer).reshape(-1).view(np.uint8)
            self.fed += buffer.nbytes
        else:
            self.fed += len(buffer)
        hasher.update(buffer)

    def open_validity(self, valid_rows: int) -> None:
        """Start the validity stream when the first null turns up after ``valid_rows`` rows."""
        self.validity = raw_hasher(self.rows)
        for start in range(0, valid_rows, _SLICE):
            self.feed(self.validity, _ones(min(_SLICE, valid_rows - start)))

    def digest(self) -> bytes:
        hasher = domain_hasher("column")
        encoded = self.name.encode()
        hasher.update(u64(len(encoded)) + encoded + u64(self.rows) + u64(self.nulls))
        hasher.update(self.values.digest())
        if self.validity is not None:
            hasher.update(self.validity.digest())
        if self.data is not None:
            hasher.update(self.data.digest())
        return bytes(hasher.digest())


_ONES = np.ones(0, np.uint8)


def _ones(count: int) -> np.ndarray[Any, Any]:
    """``count`` 1 bytes, the validity of null-free rows, from one buffer grown on demand."""
    global _ONES
    ones = _ONES
    if len(ones) < count:
        ones = np.ones(count, np.uint8)
        ones.flags.writeable = False
        _ONES = ones
    return ones[:count]


def _canonical_floats(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """``values`` with every NaN rewritten to the one quiet NaN (copied only if any)."""
    if values.size == 0 or not _any_nan(values):
        return values
    missing = np.isnan(values)
    fixed = values.copy()
    fixed[missing] = np.nan
    return fixed


def _any_nan(values: np.ndarray[Any, Any]) -> bool:
    # np.minimum propagates NaN, and its SIMD reduction runs at memory speed without
    # writing a mask: far cheaper than isnan().any(), and cheaper still on a slice that
    # is in cache, where BLAKE3 then finds it. (A BLAS dot product would be as fast
    # alone, but its threads fight BLAKE3's.)
    return math.isnan(float(np.minimum.reduce(values)))


def _validity(chunk: Any) -> np.ndarray[Any, Any]:
    """One byte per row of an Arrow array: 1 valid, 0 null."""
    rows = len(chunk)
    if chunk.null_count == 0:
        return np.ones(rows, np.uint8)
    if chunk.null_count == rows:
        return np.zeros(rows, np.uint8)
    bitmap = chunk.buffers()[0]
    if bitmap is None:  # unions and the like keep validity elsewhere
        valid: np.ndarray[Any, Any] = pc.is_valid(chunk).to_numpy(zero_copy_only=False)
        return valid.view(np.uint8)
    offset = chunk.offset
    bits = np.unpackbits(np.frombuffer(bitmap, np.uint8), count=offset + rows, bitorder="little")
    return bits[offset:]


def _decode(chunk: Any) -> Any:
    while True:
        if isinstance(chunk.type, pa.ExtensionType):
            chunk = chunk.storage
        elif pa.types.is_dictionary(chunk.type):
            chunk = chunk.dictionary_decode()
        elif pa.types.is_string_view(chunk.type):
            chunk = chunk.cast(pa.large_string())
        elif pa.types.is_binary_view(chunk.type):
            chunk = chunk.cast(pa.large_binary())
        else:
            return chunk


def _feed_fixed(
    col: _Column, values: np.ndarray[Any, Any], valid: np.ndarray[Any, Any] | None
) -> None:
    """Feed fixed-width values (numpy, little-endian), zeroing the slots under nulls."""
    if valid is not None:
        values = np.where(valid.reshape((-1,) + (1,) * (values.ndim - 1)).astype(bool), values, 0)
    col.feed(col.values, np.ascontiguousarray(values).reshape(-1).view(np.uint8))


def _feed_arrow_chunk(col: _Column, chunk: Any, layout: str) -> None:
    rows = len(chunk)
    if rows == 0:
        return
    valid = _validity(chunk) if col.validity is not None else None
    if col.validity is not None and valid is not None:
        col.feed(col.validity, valid)
    chunk_valid = valid if chunk.null_count else None
    offset = chunk.offset
    buffers = chunk.buffers()
    if layout == "null":
        return
    if layout == "object":
        encoded = []
        for item in chunk.to_pylist():
            try:
                packed = _msgpack.encode(item)
            except (TypeError, ValueError) as exc:
                raise _Unhashable(str(exc)) from exc
            encoded.append(u64(len(packed)) + packed)
        col.feed(col.values, b"".join(encoded))
        return
    if layout == "bool":
        bits = np.unpackbits(
            np.frombuffer(buffers[1], np.uint8), count=offset + rows, bitorder="little"
        )
        flags = bits[offset:]
        col.feed(col.values, flags if chunk_valid is None else flags & chunk_valid)
        return
    if layout == "var":
        _feed_var(col, chunk, chunk_valid)
        return
    width = chunk.type.bit_width // 8
    raw = np.frombuffer(buffers[1], np.uint8, count=(offset + rows) * width)[offset * width :]
    if layout == "fixed" and chunk_valid is None:
        col.feed(col.values, raw)  # nothing to fix up: one call, on every core at once
        return
    # Slice by slice, so NaN checks and zeroing under nulls work on data still in cache.
    step = max(1, _SLICE // width)
    for start in range(0, rows, step):
        part = raw[start * width : (start + step) * width]
        part_valid = None if chunk_valid is None else chunk_valid[start : start + step]
        if layout == "float":
            _feed_fixed(col, _canonical_floats(part.view(f"<f{width}")), part_valid)
        else:
            _feed_fixed(col, part.reshape(-1, width), part_valid)


def _feed_var(col: _Column, chunk: Any, valid: np.ndarray[Any, Any] | None) -> None:
    large = pa.types.is_large_string(chunk.type) or pa.types.is_large_binary(chunk.type)
    offsets_of = np.int64 if large else np.int32

    def offsets(array: Any) -> np.ndarray[Any, Any]:
        start = array.offset
        whole = np.frombuffer(array.buffers()[1], offsets_of, count=start + len(array) + 1)
        return whole[start:]

    bounds = offsets(chunk)
    lengths = np.diff(bounds).astype("<i8")
    if valid is not None and lengths[valid == 0].any():
        # Bytes under a null slot are garbage: rebuild without them (rare, so a copy is fine).
        empty = (
            "" if pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type) else b""
        )
        chunk = pc.fill_null(chunk, pa.scalar(empty, chunk.type))
        bounds = offsets(chunk)
        lengths = np.diff(bounds).astype("<i8")
    col.feed(col.values, lengths)
    assert col.data is not None
    data = chunk.buffers()[2]
    if data is not None and bounds[-1] > bounds[0]:
        col.feed(col.data, np.frombuffer(data, np.uint8)[int(bounds[0]) : int(bounds[-1])])


def _arrow_column(name: str, column: Any) -> tuple[str, _Column]:
    """Hash an Arrow Array or ChunkedArray; returns (type name, column)."""
    given: Sequence[Any] = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    # Decoded first: a dictionary may hold nulls of its own that only show once decoded.
    chunks = [_decode(chunk) for chunk in given]
    layout = _layout(_storage(column.type))
    var = layout in ("var", "view")
    nulls = sum(chunk.null_count for chunk in chunks)
    col = _Column(name, rows=len(column), nulls=nulls, nbytes=column.nbytes, var=var)
    for chunk in chunks:
        _feed_arrow_chunk(col, chunk, "var" if var else layout)
    return type_name(column.type), col


def _numpy_column(name: str, values: np.ndarray[Any, Any]) -> tuple[str, _Column] | None:
    """Hash a numpy-backed pandas column; None when its dtype has no fast path."""
    dtype = values.dtype
    if dtype.kind in "mM":
        unit = np.datetime_data(dtype)[0]
        if unit not in _ARROW_TIME_UNITS or dtype.byteorder == ">":
            return None
        tname = f"timestamp[{unit}]" if dtype.kind == "M" else f"duration[{unit}]"
        return tname, _numpy_stream(name, values.view("<i8"), _nat_mask)
    arrow_name = _NUMPY_TO_ARROW.get(f"{dtype.kind}{dtype.itemsize}")
    if arrow_name is None:
        return None
    return arrow_name, _numpy_stream(name, values, _nan_mask if dtype.kind == "f" else None)


def _nan_mask(part: np.ndarray[Any, Any]) -> np.ndarray[Any, Any] | None:
    return np.isnan(part) if _any_nan(part) else None


def _nat_mask(part: np.ndarray[Any, Any]) -> np.ndarray[Any, Any] | None:
    # NaT is the smallest int64, so the minimum finds one without writing a mask.
    return part == _NAT if int(np.minimum.reduce(part)) == _NAT else None


def _numpy_stream(
    name: str,
    values: np.ndarray[Any, Any],
    missing_of: Callable[[np.ndarray[Any, Any]], np.ndarray[Any, Any] | None] | None,
) -> _Column:
    """Hash a 1-d column slice by slice: each checked for missing values while in cache.

    Missing values (pandas' NaN and NaT) are nulls: zero in the value stream, and the
    validity stream opens at the first one, with a 1 for every row before it.
    """
    rows = len(values)
    little = values.dtype.newbyteorder("<")
    col = _Column(name, rows=rows, nulls=0, nbytes=values.nbytes, var=False)
    if missing_of is None and values.dtype == little and values.flags.c_contiguous:
        # Nothing to check or copy: one call, which BLAKE3 spreads over every core at once.
        col.feed(col.values, values)
        return col
    step = max(1, _SLICE // values.itemsize)
    for start in range(0, rows, step):
        # Copied only when strided (a column of a 2-d block) or big-endian: one slice at a
        # time, so the copy stays in cache.
        part = np.ascontiguousarray(values[start : start + step], dtype=little)
        missing = None if missing_of is None else missing_of(part)
        if missing is not None:
            if col.validity is None:
                col.open_validity(start)
            col.nulls += int(np.count_nonzero(missing))
            col.feed(col.validity, (~missing).view(np.uint8))
            col.feed(col.values, np.where(missing, 0, part))
        else:
            if col.validity is not None:
                col.feed(col.validity, _ones(len(part)))
            col.feed(col.values, part)
    return col


# -- tables -------------------------------------------------------------------------------


def _table(
    kind: str, rows: int, columns: Iterable[tuple[str, _Column]], *, index: int = 0
) -> ContentHash:
    schema: list[tuple[str, str]] = []
    digests: list[bytes] = []
    fed = 0
    for tname, col in columns:
        schema.append((col.name, tname))
        digests.append(col.digest())
        fed += col.fed
    header_fields: dict[str, Any] = {"rows": rows, "schema": [list(pair) for pair in schema]}
    if index:
        header_fields["index"] = index
    header = canonical_bytes(header_fields)
    hasher = domain_hasher("table")
    hasher.update(u64(len(header)) + header)
    hasher.update(b"".join(digests))
    return ContentHash(digest=format_digest(hasher), kind=kind, size=fed, rows=rows, schema=schema)


def _arrow_columns(table: Any) -> list[tuple[str, _Column]]:
    return [_arrow_column(str(name), table.column(i)) for i, name in enumerate(table.column_names)]


def hash_arrow(obj: Any) -> ContentHash | None:
    """Hash a pyarrow Table, RecordBatch, Array or ChunkedArray (kind ``arrow``)."""
    try:
        if isinstance(obj, pa.Table | pa.RecordBatch):
            return _table("arrow", obj.num_rows, _arrow_columns(obj))
        return _table("arrow", len(obj), [_arrow_column("", obj)])
    except _Unhashable:
        return None


def hash_polars(obj: Any) -> ContentHash | None:
    """Hash a polars DataFrame or Series through its Arrow buffers (kind ``polars``)."""
    import polars as pl

    dtypes = [obj.dtype] if isinstance(obj, pl.Series) else obj.dtypes
    if any(dtype == pl.Object for dtype in dtypes):
        # polars exports Object columns as raw pointers: no content to hash.
        return None
    try:
        if isinstance(obj, pl.Series):
            return _table("polars", len(obj), [_arrow_column(obj.name, obj.to_arrow())])
        return _table("polars", obj.height, _arrow_columns(obj.to_arrow()))
    except (_Unhashable, pl.exceptions.PolarsError, pa.ArrowException, TypeError, ValueError):
        # Object columns have no Arrow form and no canonical encoding.
        return None


def _pandas_to_arrow(values: Any) -> Any:
    """An Arrow array for a pandas Series or Index (NaN and NaT become nulls)."""
    if isinstance(values.dtype, np.dtype):
        return pa.array(np.asarray(values), from_pandas=True)
    return pa.array(values.array, from_pandas=True)


def _pandas_column(name: str, values: Any) -> tuple[str, _Column]:
    if isinstance(values.dtype, np.dtype) and values.dtype.kind != "O":
        # to_numpy, not np.asarray: the same view without pandas' attribute probing.
        fast = _numpy_column(name, values.to_numpy())
        if fast is not None:
            return fast
    try:
        arrow = _pandas_to_arrow(values)
    except (pa.ArrowException, TypeError, ValueError):
        # Mixed Python objects: encode each value; fails for objects without an encoding.
        col = _Column(name, rows=len(values), nulls=0, nbytes=0, var=False)
        encoded = []
        for item in values.tolist():
            try:
                packed = _msgpack.encode(item)
            except (TypeError, ValueError) as exc:
                raise _Unhashable(str(exc)) from exc
            encoded.append(u64(len(packed)) + packed)
        col.feed(col.values, b"".join(encoded))
        return "object", col
    return _arrow_column(name, arrow)


def _index_columns(index: Any) -> list[Any]:
    import pandas as pd

    if isinstance(index, pd.RangeIndex) and index.step == 1:
        return []
    if isinstance(index, pd.MultiIndex):
        return [index.get_level_values(i) for i in range(index.nlevels)]
    return [index]


def hash_pandas(obj: Any) -> ContentHash | None:
    """Hash a pandas DataFrame or Series (kind ``pandas``); see the module rules."""
    import pandas as pd

    frame = (
        obj.to_frame(name="" if obj.name is None else obj.name)
        if isinstance(obj, pd.Series)
        else obj
    )
    index = _index_columns(frame.index)
    try:
        # items(), not iloc[:, i]: the same columns by position, at a third of the cost.
        columns = [_pandas_column(str(name), values) for name, values in frame.items()]
        if len(index) == 1:
            columns.append(_pandas_column("__index__", index[0]))
        else:
            columns.extend(_pandas_column(f"__index__{i}", level) for i, level in enumerate(index))
    except _Unhashable:
        return None
    return _table("pandas", len(frame), columns, index=len(index))


# -- summaries ----------------------------------------------------------------------------


def _iso(value: int, unit: str, *, utc: bool) -> str:
    instant = np.array(value, dtype=np.int64).view(f"datetime64[{unit}]")
    return str(np.datetime_as_string(instant, timezone="UTC" if utc else "naive"))


def _bounds(column: Any) -> tuple[Any, Any] | None:
    """JSON-able (min, max) of a numeric or date/time Arrow column, else None."""
    t = column.type
    if pa.types.is_dictionary(t):
        column = column.cast(t.value_type)
        t = column.type
    numeric = pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
    temporal = pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_time(t)
    if not (numeric or temporal) or column.null_count == len(column):
        return None
    if numeric:
        if pa.types.is_floating(t) and pa.types.is_float16(t):
            column = column.cast(pa.float32())
        found = pc.min_max(column)
        low, high = found["min"].as_py(), found["max"].as_py()
        if pa.types.is_decimal(t):
            return str(low), str(high)
        return _json_number(low), _json_number(high)
    storage = pa.int32() if t.bit_width == 32 else pa.int64()
    found = pc.min_max(column.cast(storage))
    low, high = int(found["min"].as_py()), int(found["max"].as_py())
    if pa.types.is_timestamp(t):
        utc = t.tz is not None
        return _iso(low, t.unit, utc=utc), _iso(high, t.unit, utc=utc)
    if pa.types.is_date32(t):
        return _iso(low, "D", utc=False), _iso(high, "D", utc=False)
    if pa.types.is_date64(t):
        day = 86_400_000  # date64 counts milliseconds, always whole days
        return _iso(low // day, "D", utc=False), _iso(high // day, "D", utc=False)
    return _iso(low, t.unit, utc=False).split("T")[1], _iso(high, t.unit, utc=False).split("T")[1]


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _column_stats(column: Any) -> dict[str, Any]:
    stats: dict[str, Any] = {"nulls": int(column.null_count)}
    bounds = _bounds(column)
    if bounds is not None:
        stats["min"], stats["max"] = bounds
    return stats


# Distinct estimates: HyperLogLog (2^14 registers, about 0.8% standard error) over a 64-bit
# hash of each non-null value, vectorised; polars' own HyperLogLog when polars is there.
_HLL_P: Final = 14
_MIX1: Final = np.uint64(0xFF51AFD7ED558CCD)
_MIX2: Final = np.uint64(0xC4CEB9FE1A85EC53)


def _mix(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """MurmurHash3's 64-bit finaliser: every input bit reaches every output bit."""
    x = x ^ (x >> np.uint64(33))
    x *= _MIX1
    x ^= x >> np.uint64(33)
    x *= _MIX2
    x ^= x >> np.uint64(33)
    return x


def _hash_strings(chunk: Any) -> np.ndarray[Any, Any]:
    """A 64-bit hash per value of a null-free string/binary chunk, without a Python loop."""
    large = pa.types.is_large_string(chunk.type) or pa.types.is_large_binary(chunk.type)
    offsets = np.frombuffer(
        chunk.buffers()[1], np.int64 if large else np.int32, count=chunk.offset + len(chunk) + 1
    )[chunk.offset :].astype(np.int64)
    lengths = np.diff(offsets)
    data = chunk.buffers()[2]
    raw = (
        np.frombuffer(data, np.uint8)[offsets[0] : offsets[-1]]
        if data is not None
        else np.zeros(0, np.uint8)
    )
    hashed = _mix(lengths.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15))
    if raw.size:
        # Each byte times a weight for its position within its value, summed per value.
        starts = offsets[:-1] - offsets[0]
        position = np.arange(raw.size, dtype=np.int64) - np.repeat(starts, lengths)
        weights = _mix(np.arange(1, int(lengths.max()) + 1, dtype=np.uint64))
        terms = (raw.astype(np.uint64) + np.uint64(1)) * weights[position]
        nonempty = lengths > 0
        sums = np.add.reduceat(terms, starts[nonempty])
        hashed[nonempty] ^= _mix(sums)
    return hashed


def _hash_chunk(chunk: Any) -> np.ndarray[Any, Any] | None:
    """64-bit hashes of a null-free Arrow chunk's values, or None for types with no rule."""
    t = chunk.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t):
        return _hash_strings(chunk)
    if pa.types.is_large_binary(t):
        return _hash_strings(chunk)
    if pa.types.is_boolean(t):
        return _mix(np.asarray(chunk.to_numpy(zero_copy_only=False), dtype=np.uint64))
    if _layout(t) not in ("fixed", "float") or t.bit_width > 64:
        return None
    width = t.bit_width // 8
    raw = np.frombuffer(chunk.buffers()[1], np.uint8, count=(chunk.offset + len(chunk)) * width)
    values = raw[chunk.offset * width :].view(f"<u{width}")
    if pa.types.is_floating(t):
        floats = values.view(f"<f{width}")
        values = (floats + 0.0).view(f"<u{width}")  # -0.0 and 0.0 are one value
    return _mix(values.astype(np.uint64, copy=False))  # _mix's first step makes a new array


_HLL_SLICE: Final = 1 << 16
"""Values hashed at a time: every temporary array of a slice stays in the CPU's cache."""
_HLL_LOW: Final = np.uint64((1 << (64 - _HLL_P)) - 1)


def _hll_update(registers: np.ndarray[Any, Any], hashed: np.ndarray[Any, Any]) -> None:
    """Fold 64-bit hashes into the registers (``hashed`` is used up as scratch space).

    A hash's top ``_HLL_P`` bits pick its register; its rank is the leading zeros of
    the other bits, plus one. With a 1 appended below them (so a hash whose other bits
    are all zero ranks ``65 - _HLL_P``), those bits are an integer under 2**51, exact
    as a float, whose exponent is its bit length less one: no rounding, no loop.
    """
    index = (hashed >> np.uint64(64 - _HLL_P)).view(np.int64)  # under 2**_HLL_P: no cast
    hashed &= _HLL_LOW
    hashed <<= np.uint64(1)
    hashed |= np.uint64(1)
    exponent = hashed.view(np.int64).astype(np.float64).view(np.uint64)
    exponent >>= np.uint64(52)  # biased by 1023; the sign bit is 0
    rank = (np.uint64(65 - _HLL_P + 1023) - exponent).astype(np.uint8)
    np.maximum.at(registers, index, rank)


def _hll(column: Any) -> int | None:
    """Estimated number of distinct non-null values of an Arrow column (HyperLogLog)."""
    m = 1 << _HLL_P
    registers = np.zeros(m, dtype=np.uint8)
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    for chunk in chunks:
        chunk = _decode(chunk)
        if chunk.null_count:
            chunk = pc.drop_null(chunk)
        for start in range(0, len(chunk), _HLL_SLICE):
            hashed = _hash_chunk(chunk.slice(start, _HLL_SLICE))
            if hashed is None:
                return None
            _hll_update(registers, hashed)
    zeros = int((registers == 0).sum())
    if zeros == m:
        return 0
    alpha = 0.7213 / (1 + 1.079 / m)
    estimate = alpha * m * m / float(np.sum(np.ldexp(1.0, -registers.astype(np.int64))))
    if estimate <= 2.5 * m and zeros:
        estimate = m * math.log(m / zeros)  # linear counting: exact-ish for small counts
    return round(estimate)


def _polars_distinct(names: list[str], columns: list[Any]) -> dict[str, int]:
    """polars' HyperLogLog over every column at once (in parallel); {} without polars."""
    try:
        import polars as pl
    except ImportError:
        return {}
    keep = [i for i, c in enumerate(columns) if _layout(_storage(c.type)) != "object"]
    if not keep:
        return {}
    try:
        frame = pl.from_arrow(pa.table({f"c{i}": columns[i] for i in keep}), rechunk=False)
        assert isinstance(frame, pl.DataFrame)
        found = frame.select(pl.all().approx_n_unique()).row(0)
    except (pl.exceptions.PolarsError, pa.ArrowException, TypeError, ValueError):
        return {}
    out: dict[str, int] = {}
    for i, value in zip(keep, found, strict=True):
        nulls = columns[i].null_count
        out[names[i]] = max(0, int(value) - (1 if nulls else 0))  # polars counts null as a value
    return out


def _arrow_summary(names: list[str], columns: list[Any], rows: int) -> dict[str, Any]:
    stats = {name: _column_stats(column) for name, column in zip(names, columns, strict=True)}
    distinct = _polars_distinct(names, columns)
    for name, column in zip(names, columns, strict=True):
        value = distinct.get(name)
        if value is None:
            value = _hll(column)
        if value is not None:
            # An estimate never above the rows that hold a value.
            stats[name]["distinct"] = min(value, len(column) - column.null_count)
    size = sum(int(column.nbytes) for column in columns)
    return {"rows": rows, "bytes": size, "columns": stats}


def summarize_table(obj: Any) -> dict[str, Any] | None:
    """Quality metrics of a pandas, polars or Arrow table or column, from Arrow buffers.

    ``{"rows", "bytes", "columns": {name: {"nulls", "distinct", "min", "max"}}}``: bytes
    is the data's size in Arrow form; distinct is a HyperLogLog estimate of the non-null
    values; min and max only for numbers, dates and times.
    """
    if isinstance(obj, pa.Table | pa.RecordBatch):
        labels = [str(name) for name in obj.column_names]
        return _arrow_summary(labels, [obj.column(i) for i in range(len(labels))], obj.num_rows)
    if isinstance(obj, pa.Array | pa.ChunkedArray):
        return _arrow_summary([""], [obj], len(obj))
    module = type(obj).__module__.split(".", 1)[0]
    if module == "polars":
        import polars as pl

        if isinstance(obj, pl.Series):
            obj = obj.to_frame()
        try:
            return summarize_table(obj.to_arrow())
        except (pl.exceptions.PolarsError, pa.ArrowException, TypeError, ValueError):
            return {
                "rows": obj.height,
                "columns": {name: {"nulls": int(obj[name].null_count())} for name in obj.columns},
            }
    import pandas as pd

    frame = (
        obj.to_frame(name="" if obj.name is None else obj.name)
        if isinstance(obj, pd.Series)
        else obj
    )
    names: list[str] = []
    columns: list[Any] = []
    others: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(frame.columns):
        values = frame.iloc[:, i]
        try:
            columns.append(_pandas_to_arrow(values))
            names.append(str(name))
        except (pa.ArrowException, TypeError, ValueError):
            others[str(name)] = {"nulls": int(values.isna().sum())}
    summary = _arrow_summary(names, columns, len(frame))
    if others:
        ordered = [str(name) for name in frame.columns]
        merged = {**summary["columns"], **others}
        summary["columns"] = {name: merged[name] for name in ordered}
    return summary
