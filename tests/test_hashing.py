"""Content hashing: digests, domains, files, directories, the registry, tables, summaries."""

from __future__ import annotations

import itertools
import math
import multiprocessing
import os
import pathlib
import re
import subprocess
import sys
from typing import Any

import blake3
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datatrail.capture._hashing import (
    ContentHash,
    hash_directory,
    hash_file,
    hash_value,
    register_hasher,
    summarize,
)
from datatrail.errors import HashingError, UsageError
from datatrail.model import canonical_bytes

DIGEST = re.compile(r"^blake3:[0-9a-f]{64}$")
FAST = settings(max_examples=40, deadline=None)

ints = st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), min_size=1, max_size=60)
floats = st.lists(
    st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=True)), min_size=1, max_size=60
)
texts = st.lists(st.one_of(st.none(), st.text(max_size=8)), min_size=1, max_size=60)
bools = st.lists(st.one_of(st.none(), st.booleans()), min_size=1, max_size=60)


def digest(value: object) -> str:
    result = hash_value(value)
    assert result is not None, f"no hash for {type(value).__name__}"
    return result.digest


def arrow_table(values: list[Any], type_: pa.DataType) -> pa.Table:
    return pa.table({"c": pa.array(values, type=type_)})


def chunked_table(values: list[Any], type_: pa.DataType, cuts: list[int]) -> pa.Table:
    """The same column split into chunks at ``cuts``."""
    bounds = [0, *sorted(set(cuts)), len(values)]
    chunks = [pa.array(values[a:b], type=type_) for a, b in itertools.pairwise(bounds)]
    return pa.table({"c": pa.chunked_array(chunks, type=type_)})


# -- digests and domains ------------------------------------------------------------------


def test_digest_is_blake3_prefix_and_64_lowercase_hex() -> None:
    for value in (b"x", "x", {"a": 1}, np.arange(3), pd.DataFrame({"a": [1]})):
        result = hash_value(value)
        assert isinstance(result, ContentHash)
        assert DIGEST.match(result.digest)


def test_bytes_digest_is_plain_blake3_so_b3sum_reproduces_it() -> None:
    data = b"hello world"
    assert digest(data) == "blake3:" + blake3.blake3(data).hexdigest()


def test_bytes_bytearray_and_memoryview_of_same_content_hash_equal() -> None:
    data = bytes(range(256)) * 10
    result = hash_value(bytearray(data))
    assert result is not None
    assert result.kind == "bytes"
    assert result.size == len(data)
    assert digest(data) == result.digest == digest(memoryview(data))


def test_non_contiguous_memoryview_hashes_its_bytes() -> None:
    data = bytes(range(100))
    assert digest(memoryview(data)[::2]) == digest(data[::2])


def test_bytes_and_text_never_collide() -> None:
    assert digest(b"abc") != digest("abc")
    # Even bytes crafted to look like the text domain's input cannot collide.
    assert digest(b"datatrail:text\x00abc") != digest("abc")


def test_text_json_and_numpy_domains_are_distinct() -> None:
    assert digest("1") != digest(1)
    assert digest([1, 2]) != digest(np.array([1, 2]))
    assert digest(np.frombuffer(b"abcd", np.uint8)) != digest(b"abcd")


def test_text_is_hashed_as_utf8() -> None:
    result = hash_value("héllo")
    assert result is not None
    assert result.kind == "text"
    assert result.size == len("héllo".encode())


def test_large_buffers_hash_the_same_as_small_ones_would() -> None:
    data = os.urandom((1 << 20) + 17)  # above the multi-threading threshold
    assert digest(data) == "blake3:" + blake3.blake3(data).hexdigest()


def _hash_in_forked_child(values: list[object], conn: Any) -> None:
    conn.send([digest(value) for value in values])
    conn.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_hashes_large_values_after_its_parent_did() -> None:
    # The parent hashes on all cores first, so the multi-threaded hasher's pool exists
    # before the fork; the child must not wait on threads that fork did not copy.
    large = os.urandom(4 << 20)
    frame = pd.DataFrame({"f": np.arange(1 << 19) / 3, "i": np.arange(1 << 19)})
    expected = [digest(large), digest(frame)]
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_hash_in_forked_child, args=([large, frame], sender))
    child.start()
    try:
        assert receiver.poll(60), "the forked child hung hashing a large value"
        assert receiver.recv() == expected
    finally:
        child.kill()
        child.join()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("datatrail", "9043bc09b458e6c64fa0a7902027045d1a89549dd68908491cf7d4578ae3b146"),
        ({"a": [1, 2.5, None]}, "21e8d3480d53590659e3103ff9343e7e45e6ff90867b40b57feb0ed7379c41c6"),
        (
            np.arange(4, dtype="<i8"),
            "fc2d26af6729d6481a35ea560ba93c9a148efe52ef0ebba5dbb428952ff3a0cf",
        ),
        (
            pa.table({"i": [1, None], "s": ["x", "yz"]}),
            "cedfa277c90b5cb8ae1da1d137e503a448220cdd895d9fe25856cbb06da36667",
        ),
    ],
    ids=["text", "json", "numpy", "table"],
)
def test_digests_are_stable_across_versions(value: object, expected: str) -> None:
    # Artifact ids are stored in the log: an encoding change must be deliberate.
    assert digest(value) == "blake3:" + expected


# -- JSON ---------------------------------------------------------------------------------


def test_json_values_are_canonical_key_order_does_not_matter() -> None:
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1})
    result = hash_value({"a": 1})
    assert result is not None
    assert result.kind == "json"


def test_json_tuple_and_list_hash_the_same() -> None:
    assert digest((1, 2, "x")) == digest([1, 2, "x"])


def test_json_values_that_differ_hash_differently() -> None:
    assert digest({"a": 1}) != digest({"a": 2})
    assert digest(None) != digest(False)
    assert digest(True) != digest(1)


def test_json_containing_unencodable_object_returns_none() -> None:
    assert hash_value({"a": object()}) is None


def test_json_with_nan_returns_none_because_json_has_no_nan() -> None:
    assert hash_value({"x": math.nan}) is None


# -- files --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 10, (1 << 20) + 5])
def test_file_hashes_the_same_as_its_bytes(tmp_path: pathlib.Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    result = hash_file(path)
    assert result.kind == "file"
    assert result.size == size
    assert result.digest == digest(data)


def test_path_value_hashes_the_file_it_names(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,b\n1,2\n")
    result = hash_value(path)
    assert result is not None
    assert result.kind == "file"
    assert result.digest == digest(b"a,b\n1,2\n")
    assert result.media_type == "text/csv"


def test_path_value_naming_a_directory_hashes_the_directory(tmp_path: pathlib.Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    result = hash_value(tmp_path)
    assert result is not None
    assert result.kind == "directory"
    assert result.digest == hash_directory(tmp_path).digest


def test_path_value_naming_nothing_returns_none(tmp_path: pathlib.Path) -> None:
    assert hash_value(tmp_path / "missing.parquet") is None


def test_os_pathlike_values_dispatch_to_the_path_hasher(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"xyz")

    class Handle:
        def __fspath__(self) -> str:
            return str(path)

    assert digest(Handle()) == digest(b"xyz")


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("t.parquet", "application/vnd.apache.parquet"),
        ("t.CSV", "text/csv"),
        ("t.json", "application/json"),
        ("t.unknownext", None),
        ("noext", None),
    ],
)
def test_file_media_type_follows_the_suffix(
    tmp_path: pathlib.Path, name: str, media_type: str | None
) -> None:
    path = tmp_path / name
    path.write_bytes(b"1")
    assert hash_file(path).media_type == media_type


def test_missing_file_raises_hashing_error_naming_the_path(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(HashingError, match=re.escape(str(path))):
        hash_file(path)


def test_directory_passed_to_hash_file_raises_hashing_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(HashingError, match="hash_directory"):
        hash_file(tmp_path)


def test_unreadable_file_raises_hashing_error_naming_the_path(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "secret.bin"
    path.write_bytes(b"x" * 10)

    def deny(*args: object, **kwargs: object) -> object:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("builtins.open", deny)
    with pytest.raises(HashingError, match=re.escape(str(path))) as info:
        hash_file(path)
    assert "Permission denied" in str(info.value)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads anything")
def test_file_without_read_permission_raises_hashing_error(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "locked.bin"
    path.write_bytes(b"x")
    path.chmod(0)
    try:
        with pytest.raises(HashingError, match=re.escape(str(path))):
            hash_value(path)
    finally:
        path.chmod(0o600)


# -- directories --------------------------------------------------------------------------


def make_tree(root: pathlib.Path) -> pathlib.Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.csv").write_text("a\n1\n")
    (root / "sub" / "b.bin").write_bytes(b"\x00\x01")
    return root


def test_directory_hash_depends_on_content_not_location(tmp_path: pathlib.Path) -> None:
    one = hash_directory(make_tree(tmp_path / "one"))
    two = hash_directory(make_tree(tmp_path / "two"))
    assert one.digest == two.digest
    assert one.kind == "directory"
    assert one.size == 6


def test_directory_hash_changes_when_a_file_is_renamed(tmp_path: pathlib.Path) -> None:
    root = make_tree(tmp_path / "d")
    before = hash_directory(root).digest
    (root / "a.csv").rename(root / "c.csv")
    assert hash_directory(root).digest != before


def test_directory_hash_changes_when_a_file_is_edited(tmp_path: pathlib.Path) -> None:
    root = make_tree(tmp_path / "d")
    before = hash_directory(root).digest
    (root / "sub" / "b.bin").write_bytes(b"\x00\x02")
    assert hash_directory(root).digest != before


def test_directory_hash_changes_when_a_file_is_added(tmp_path: pathlib.Path) -> None:
    root = make_tree(tmp_path / "d")
    before = hash_directory(root).digest
    (root / "sub" / "new.txt").write_text("")
    assert hash_directory(root).digest != before


def test_directory_hash_changes_when_a_file_moves_between_folders(tmp_path: pathlib.Path) -> None:
    root = make_tree(tmp_path / "d")
    before = hash_directory(root).digest
    (root / "sub" / "b.bin").rename(root / "b.bin")
    assert hash_directory(root).digest != before


def test_empty_subdirectories_are_not_part_of_the_manifest(tmp_path: pathlib.Path) -> None:
    root = make_tree(tmp_path / "d")
    before = hash_directory(root).digest
    (root / "empty").mkdir()
    assert hash_directory(root).digest == before


def test_missing_directory_raises_hashing_error_naming_it(tmp_path: pathlib.Path) -> None:
    with pytest.raises(HashingError, match=re.escape(str(tmp_path / "gone"))):
        hash_directory(tmp_path / "gone")


# -- the registry -------------------------------------------------------------------------


class Opaque:
    pass


def test_unsupported_type_returns_none_without_raising() -> None:
    assert hash_value(Opaque()) is None
    assert hash_value(lambda: 1) is None
    assert hash_value(pl.LazyFrame({"a": [1]})) is None


def test_registered_type_hasher_applies_to_subclasses_through_the_mro() -> None:
    class Base:
        pass

    class Child(Base):
        pass

    marker = ContentHash(digest="blake3:" + "0" * 64, kind="bytes")
    register_hasher(Base, lambda obj: marker)
    assert hash_value(Child()) is marker


def test_string_registration_matches_by_qualified_name() -> None:
    class Named:
        pass

    marker = ContentHash(digest="blake3:" + "1" * 64, kind="bytes")
    register_hasher(f"{Named.__module__}.{Named.__qualname__}", lambda obj: marker)
    assert hash_value(Named()) is marker


def test_later_registration_replaces_earlier_and_clears_the_cache() -> None:
    class Thing:
        pass

    first = ContentHash(digest="blake3:" + "2" * 64, kind="bytes")
    second = ContentHash(digest="blake3:" + "3" * 64, kind="bytes")
    register_hasher(Thing, lambda obj: first)
    assert hash_value(Thing()) is first
    register_hasher(Thing, lambda obj: second)
    assert hash_value(Thing()) is second


def test_string_registration_never_imports_the_module() -> None:
    register_hasher("datatrail_no_such_package.Frame", lambda obj: None)
    assert hash_value(Opaque()) is None
    assert "datatrail_no_such_package" not in sys.modules


@pytest.mark.parametrize("bad", [42, "nodots", "has space.X"])
def test_register_hasher_misuse_raises_usage_error(bad: Any) -> None:
    with pytest.raises(UsageError):
        register_hasher(bad, lambda obj: None)


def test_register_hasher_with_non_callable_raises_usage_error() -> None:
    with pytest.raises(UsageError, match="callable"):
        register_hasher(Opaque, "not a function")  # type: ignore[arg-type]


def test_hashing_builtin_values_imports_no_table_library() -> None:
    code = (
        "import sys\n"
        "from datatrail.capture._hashing import hash_value\n"
        "before = {m for m in ('pandas', 'polars', 'pyarrow') if m in sys.modules}\n"
        "hash_value(b'x'); hash_value('x'); hash_value({'a': [1]})\n"
        "after = {m for m in ('pandas', 'polars', 'pyarrow') if m in sys.modules}\n"
        "assert 'datatrail.capture._hash_tables' not in sys.modules\n"
        "assert after == before, after - before\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


# -- numpy --------------------------------------------------------------------------------


def test_numpy_array_reports_rows_and_size() -> None:
    result = hash_value(np.zeros((4, 3), dtype=np.float32))
    assert result is not None
    assert (result.kind, result.rows, result.size) == ("numpy", 4, 48)


def test_numpy_non_contiguous_array_equals_its_contiguous_copy() -> None:
    base = np.arange(40, dtype=np.int64).reshape(8, 5)
    view = base[::2, 1:4]
    assert not view.flags.c_contiguous
    assert digest(view) == digest(view.copy())
    assert digest(np.asfortranarray(base)) == digest(base)


def test_numpy_byte_order_does_not_change_the_hash() -> None:
    little = np.arange(10, dtype="<i4")
    assert digest(little.astype(">i4")) == digest(little)


def test_numpy_dtype_and_shape_are_part_of_the_hash() -> None:
    values = np.arange(12, dtype=np.int64)
    assert digest(values) != digest(values.astype(np.int32))
    assert digest(values) != digest(values.reshape(3, 4))


def test_numpy_scalar_is_hashed_as_a_zero_dimensional_array() -> None:
    assert digest(np.float64(1.5)) == digest(np.array(1.5))


def test_numpy_object_array_returns_none() -> None:
    assert hash_value(np.array([object()], dtype=object)) is None


# -- tables: cross-library and layout invariance ------------------------------------------

SAMPLE = {"i": [1, 2, None, 4], "f": [0.5, None, 2.5, -1.0], "s": ["a", None, "ccc", ""]}


def test_pandas_polars_and_pyarrow_versions_of_a_table_hash_equal() -> None:
    frame = pd.DataFrame({"i": [1, 2, 3], "f": [0.5, 1.5, 2.5], "s": ["a", "bb", "ccc"]})
    results = [hash_value(frame), hash_value(pl.from_pandas(frame)), hash_value(pa.table(frame))]
    assert [r.kind for r in results if r] == ["pandas", "polars", "arrow"]
    assert len({r.digest for r in results if r}) == 1
    assert results[0] is not None
    assert results[0].schema == [("i", "int64"), ("f", "double"), ("s", "string")]
    assert results[0].rows == 3


def test_tables_with_nulls_hash_equal_across_libraries() -> None:
    arrow = pa.table(SAMPLE)
    polars = pl.DataFrame(SAMPLE)
    pandas = pd.DataFrame(
        {"i": pd.array(SAMPLE["i"], dtype="Int64"), "f": SAMPLE["f"], "s": SAMPLE["s"]}
    )
    assert digest(arrow) == digest(polars) == digest(pandas)


def test_booleans_with_nulls_hash_equal_across_libraries() -> None:
    values = [True, None, False, True, True, False, None, True, False]
    pandas = pd.DataFrame({"b": pd.array(values, dtype="boolean")})
    assert digest(pa.table({"b": values})) == digest(pl.DataFrame({"b": values})) == digest(pandas)


def test_numpy_bool_column_equals_arrow_bool_column() -> None:
    values = [True, False, False, True]
    assert digest(pd.DataFrame({"b": values})) == digest(pa.table({"b": values}))


def test_timestamps_with_time_zone_hash_equal_across_libraries() -> None:
    stamps = pd.to_datetime(["2024-01-01T00:00:00Z", "2024-06-30T12:30:00Z"], utc=True)
    frame = pd.DataFrame({"t": stamps})
    assert frame["t"].dtype == "datetime64[us, UTC]"
    arrow = pa.table(frame)
    assert digest(frame) == digest(arrow) == digest(pl.from_pandas(frame))
    result = hash_value(frame)
    assert result is not None
    assert result.schema == [("t", "timestamp[us, tz=UTC]")]


def test_naive_datetimes_with_nat_equal_arrow_nulls() -> None:
    frame = pd.DataFrame({"t": pd.to_datetime(["2024-01-01", None, "2024-01-03"])})
    stamps = pa.array([1704067200000000, None, 1704240000000000], pa.timestamp("us"))
    assert digest(frame) == digest(pa.table({"t": stamps}))


def test_string_flavours_hash_as_one_type() -> None:
    values = ["x", None, "yz"]
    plain = digest(arrow_table(values, pa.string()))
    assert digest(arrow_table(values, pa.large_string())) == plain
    assert digest(arrow_table(values, pa.string_view())) == plain
    assert digest(pa.table({"c": pa.array(values).dictionary_encode()})) == plain


def test_pandas_categorical_equals_plain_strings() -> None:
    values = ["a", "b", "a", None]
    categorical = pd.DataFrame({"c": pd.Categorical(values)})
    assert digest(categorical) == digest(pd.DataFrame({"c": values}))


def test_pandas_object_strings_equal_pandas_str_dtype() -> None:
    values = ["a", "bb", None]
    assert digest(pd.DataFrame({"c": pd.Series(values, dtype=object)})) == digest(
        pd.DataFrame({"c": pd.Series(values, dtype="str")})
    )


def test_series_equals_one_column_frame_and_arrow_array() -> None:
    series = pd.Series([1, 2, 3], name="v")
    assert digest(series) == digest(series.to_frame())
    assert digest(pl.Series("v", [1, 2, 3])) == digest(series)
    assert digest(pa.chunked_array([[1], [2, 3]])) == digest(pd.Series([1, 2, 3]))


def test_record_batch_equals_table() -> None:
    batch = pa.record_batch(SAMPLE)
    assert digest(batch) == digest(pa.Table.from_batches([batch]))


@FAST
@given(values=ints, data=st.data())
def test_int_column_hash_is_invariant_under_chunking(values: list[int | None], data: Any) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(values)), max_size=5))
    assert digest(chunked_table(values, pa.int64(), cuts)) == digest(
        arrow_table(values, pa.int64())
    )


@FAST
@given(values=texts, data=st.data())
def test_string_column_hash_is_invariant_under_chunking(
    values: list[str | None], data: Any
) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(values)), max_size=5))
    assert digest(chunked_table(values, pa.string(), cuts)) == digest(
        arrow_table(values, pa.string())
    )


@FAST
@given(values=bools, data=st.data())
def test_bool_column_hash_is_invariant_under_chunking(values: list[bool | None], data: Any) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(values)), max_size=5))
    assert digest(chunked_table(values, pa.bool_(), cuts)) == digest(
        arrow_table(values, pa.bool_())
    )


@FAST
@given(values=floats, data=st.data())
def test_float_column_hash_is_invariant_under_chunking(
    values: list[float | None], data: Any
) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(values)), max_size=5))
    assert digest(chunked_table(values, pa.float64(), cuts)) == digest(
        arrow_table(values, pa.float64())
    )


@FAST
@given(values=ints, texts_=texts, data=st.data())
def test_table_slice_equals_a_freshly_built_table(
    values: list[int | None], texts_: list[str | None], data: Any
) -> None:
    rows = min(len(values), len(texts_))
    table = pa.table(
        {
            "i": pa.array(values[:rows], pa.int64()),
            "s": pa.array(texts_[:rows], pa.string()),
            "b": pa.array([None if v is None else v % 2 == 0 for v in values[:rows]], pa.bool_()),
        }
    )
    start = data.draw(st.integers(0, rows))
    length = data.draw(st.integers(0, rows - start))
    part = table.slice(start, length)
    fresh = pa.table(part.to_pydict(), schema=table.schema)
    assert digest(part) == digest(fresh)


@FAST
@given(values=ints, data=st.data())
def test_concatenated_slices_equal_the_original(values: list[int | None], data: Any) -> None:
    table = arrow_table(values, pa.int64())
    cut = data.draw(st.integers(0, len(values)))
    rejoined = pa.concat_tables([table.slice(0, cut), table.slice(cut)])
    assert digest(rejoined) == digest(table)


def test_polars_rechunk_does_not_change_the_hash() -> None:
    first = pl.DataFrame({"a": [1, 2, None], "s": ["x", None, "z"]})
    second = pl.DataFrame({"a": [4, 5], "s": ["u", "v"]})
    stacked = pl.concat([first, second], rechunk=False)
    assert stacked.n_chunks() == 2
    assert digest(stacked) == digest(stacked.rechunk())


def test_pandas_iloc_slice_equals_a_fresh_frame() -> None:
    frame = pd.DataFrame(
        {"a": np.arange(100), "f": np.arange(100) / 3, "s": [str(i) for i in range(100)]}
    )
    part = frame.iloc[10:20]
    fresh = pd.DataFrame(
        {"a": np.arange(10, 20), "f": np.arange(10, 20) / 3, "s": [str(i) for i in range(10, 20)]}
    )
    assert digest(part) == digest(fresh)


def test_pandas_frame_from_2d_array_equals_frame_from_columns() -> None:
    block = np.arange(20, dtype=np.float64).reshape(5, 4)
    from_block = pd.DataFrame(block, columns=list("abcd"))
    from_columns = pd.DataFrame({name: block[:, i].copy() for i, name in enumerate("abcd")})
    assert digest(from_block) == digest(from_columns)


def test_garbage_under_nulls_does_not_change_the_hash() -> None:
    validity = pa.py_buffer(np.packbits([1, 0, 1], bitorder="little").tobytes())

    def ints_with(hidden: int) -> pa.Array:
        values = pa.py_buffer(np.array([7, hidden, 9], dtype=np.int64).tobytes())
        return pa.Array.from_buffers(pa.int64(), 3, [validity, values], null_count=1)

    def strings_with(hidden: bytes) -> pa.Array:
        data = b"a" + hidden + b"cd"
        offsets = np.array([0, 1, 1 + len(hidden), len(data)], dtype=np.int32)
        buffers = [validity, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data)]
        return pa.Array.from_buffers(pa.string(), 3, buffers, null_count=1)

    assert digest(pa.table({"c": ints_with(0)})) == digest(pa.table({"c": ints_with(12345)}))
    assert digest(pa.table({"c": strings_with(b"")})) == digest(
        pa.table({"c": strings_with(b"junk")})
    )
    assert digest(pa.table({"c": ints_with(0)})) == digest(pa.table({"c": pa.array([7, None, 9])}))


def test_nested_list_column_is_hashed_and_chunk_invariant() -> None:
    values = [[1, 2], None, [], [3]]
    whole = pa.table({"c": pa.array(values)})
    split = pa.table({"c": pa.chunked_array([pa.array(values[:1]), pa.array(values[1:])])})
    result = hash_value(whole)
    assert result is not None
    assert result.schema == [("c", "list<int64>")]
    assert digest(split) == result.digest
    assert digest(pa.table({"c": pa.array([[1, 2], None, [], [4]])})) != result.digest


def test_pandas_object_column_of_arbitrary_objects_returns_none() -> None:
    assert hash_value(pd.DataFrame({"o": [Opaque(), Opaque()]})) is None


def test_polars_object_column_returns_none() -> None:
    frame = pl.DataFrame({"o": [Opaque()]}, schema={"o": pl.Object})
    assert hash_value(frame) is None
    assert hash_value(frame["o"]) is None


# -- tables: sensitivity ------------------------------------------------------------------


@FAST
@given(a=ints, s=texts, data=st.data())
def test_changing_any_single_value_changes_the_hash(
    a: list[int | None], s: list[str | None], data: Any
) -> None:
    rows = min(len(a), len(s))
    columns: dict[str, list[Any]] = {"a": a[:rows], "s": s[:rows]}
    schema = pa.schema([("a", pa.int64()), ("s", pa.string())])
    before = digest(pa.table(columns, schema=schema))
    column = data.draw(st.sampled_from(["a", "s"]))
    row = data.draw(st.integers(0, rows - 1))
    old = columns[column][row]
    if column == "a":
        new: Any = 0 if old is None else (None if old == 0 else (old + 1 if old < 2**63 - 1 else 0))
    else:
        new = "" if old is None else old + "x"
    columns[column] = [*columns[column][:row], new, *columns[column][row + 1 :]]
    assert digest(pa.table(columns, schema=schema)) != before


@FAST
@given(values=st.lists(st.floats(allow_nan=False), min_size=1, max_size=40), data=st.data())
def test_changing_one_float_in_a_pandas_frame_changes_the_hash(
    values: list[float], data: Any
) -> None:
    row = data.draw(st.integers(0, len(values) - 1))
    before = digest(pd.DataFrame({"f": values}))
    changed = list(values)
    changed[row] = math.nextafter(values[row], math.inf) if values[row] != math.inf else 0.0
    assert digest(pd.DataFrame({"f": changed})) != before


def test_renaming_a_column_changes_the_hash() -> None:
    assert digest(pa.table({"a": [1, 2]})) != digest(pa.table({"b": [1, 2]}))


def test_reordering_columns_changes_the_hash() -> None:
    assert digest(pa.table({"a": [1], "b": [2]})) != digest(pa.table({"b": [2], "a": [1]}))


def test_changing_int64_to_int32_with_the_same_values_changes_the_hash() -> None:
    wide = pa.table({"a": pa.array([1, 2, 3], pa.int64())})
    assert digest(wide) != digest(wide.cast(pa.schema([("a", pa.int32())])))
    frame = pd.DataFrame({"a": np.array([1, 2, 3], dtype=np.int64)})
    assert digest(frame) != digest(frame.astype(np.int32))


def test_nulls_and_zeros_hash_differently() -> None:
    assert digest(pa.table({"a": [0, 1]})) != digest(pa.table({"a": [None, 1]}))
    assert digest(pa.table({"s": ["", "x"]})) != digest(pa.table({"s": [None, "x"]}))
    assert digest(pa.table({"b": [False, True]})) != digest(pa.table({"b": [None, True]}))


def test_moving_a_string_boundary_changes_the_hash() -> None:
    assert digest(pa.table({"s": ["ab", "c"]})) != digest(pa.table({"s": ["a", "bc"]}))


def test_different_row_counts_of_empty_columns_hash_differently() -> None:
    assert digest(pa.table({"n": pa.nulls(2)})) != digest(pa.table({"n": pa.nulls(3)}))


# -- tables: NaN and index rules ----------------------------------------------------------


def test_pandas_nan_is_a_null_and_equals_arrow_null() -> None:
    with_nan = pd.DataFrame({"f": [1.0, np.nan, 3.0]})
    assert digest(with_nan) == digest(pa.table({"f": [1.0, None, 3.0]}))
    assert digest(with_nan) == digest(pd.DataFrame({"f": [1.0, None, 3.0]}))


def test_arrow_nan_is_a_value_distinct_from_null() -> None:
    nan = pa.table({"f": pa.array([1.0, math.nan], pa.float64())})
    null = pa.table({"f": pa.array([1.0, None], pa.float64())})
    assert digest(nan) != digest(null)
    assert digest(pl.DataFrame({"f": [1.0, math.nan]})) == digest(nan)


def test_nan_payloads_hash_the_same() -> None:
    quiet = np.array([1.0, np.nan])
    other = quiet.copy()
    other.view(np.uint64)[1] = 0xFFF8_0000_0000_0001  # a negative NaN with a payload
    assert math.isnan(other[1])
    assert digest(pa.table({"f": pa.array(quiet)})) == digest(pa.table({"f": pa.array(other)}))


def test_range_index_with_step_one_is_ignored_whatever_its_start() -> None:
    values = {"a": [1, 2, 3]}
    shifted = pd.DataFrame(values, index=pd.RangeIndex(50, 53))
    assert digest(shifted) == digest(pd.DataFrame(values))


def test_non_trivial_index_is_folded_in() -> None:
    plain = pd.DataFrame({"a": [1, 2, 3]})
    assert digest(plain.set_axis(["x", "y", "z"])) != digest(plain)
    assert digest(plain.set_axis(pd.RangeIndex(0, 6, 2))) != digest(plain)
    assert digest(plain.set_axis(["x", "y", "z"])) != digest(plain.set_axis(["x", "y", "w"]))
    result = hash_value(plain.set_axis(["x", "y", "z"]))
    assert result is not None
    assert result.schema == [("a", "int64"), ("__index__", "string")]


def test_folded_index_never_collides_with_a_real_index_named_column() -> None:
    folded = pd.DataFrame({"a": [1, 2]}, index=pd.Index([5, 6]))
    real = pd.DataFrame({"a": [1, 2], "__index__": [5, 6]})
    assert digest(folded) != digest(real)


def test_multi_index_levels_are_folded_in_as_columns() -> None:
    index = pd.MultiIndex.from_tuples([("a", 1), ("b", 2)])
    result = hash_value(pd.DataFrame({"v": [1.0, 2.0]}, index=index))
    assert result is not None
    assert [name for name, _ in result.schema or []] == ["v", "__index__0", "__index__1"]


# -- summaries ----------------------------------------------------------------------------


def test_summarize_pandas_frame_matches_hand_computed_statistics() -> None:
    frame = pd.DataFrame(
        {
            "i": [3, -1, 7, 0],
            "f": [0.5, np.nan, -2.25, 10.0],
            "s": ["b", None, "a", "c"],
            "t": pd.to_datetime(["2024-03-01", None, "2023-12-31", "2024-01-15"]),
        }
    )
    summary = summarize(frame)
    assert summary is not None
    assert summary.pop("bytes") >= 4 * (8 + 8 + 8)  # the Arrow buffers at least
    assert summary == {
        "rows": 4,
        "columns": {
            "i": {"nulls": 0, "min": -1, "max": 7, "distinct": 4},
            "f": {"nulls": 1, "min": -2.25, "max": 10.0, "distinct": 3},
            "s": {"nulls": 1, "distinct": 3},
            "t": {
                "nulls": 1,
                "distinct": 3,
                "min": "2023-12-31T00:00:00.000000",
                "max": "2024-03-01T00:00:00.000000",
            },
        },
    }


def test_summarize_polars_and_arrow_agree_with_pandas() -> None:
    data = {"i": [3, None, 7], "f": [1.5, 2.5, None]}
    expected = {
        "rows": 3,
        "columns": {
            "i": {"nulls": 1, "min": 3, "max": 7, "distinct": 2},
            "f": {"nulls": 1, "min": 1.5, "max": 2.5, "distinct": 2},
        },
    }
    for summary in (summarize(pa.table(data)), summarize(pl.DataFrame(data))):
        assert summary is not None
        assert summary.pop("bytes") >= 2 * 3 * 8
        assert summary == expected


def test_summarize_reports_utc_instants_and_dates_as_iso_strings() -> None:
    table = pa.table(
        {
            "ts": pa.array([0, 86_400_000_000], pa.timestamp("us", tz="UTC")),
            "d": pa.array([19_000, None], pa.date32()),
        }
    )
    summary = summarize(table)
    assert summary is not None
    assert summary["columns"]["ts"]["max"] == "1970-01-02T00:00:00.000000Z"
    assert summary["columns"]["d"] == {
        "nulls": 1,
        "min": "2022-01-08",
        "max": "2022-01-08",
        "distinct": 1,
    }


def test_summarize_numpy_array_counts_nan_as_null() -> None:
    assert summarize(np.array([2.0, np.nan, -1.0])) == {
        "rows": 3,
        "columns": {"": {"nulls": 1, "min": -1.0, "max": 2.0}},
    }


def test_summarize_all_null_column_has_no_bounds() -> None:
    summary = summarize(pa.table({"a": pa.array([None, None], pa.int64())}))
    assert summary is not None
    assert summary.pop("bytes") > 0
    assert summary == {"rows": 2, "columns": {"a": {"nulls": 2, "distinct": 0}}}


def test_summarize_non_tabular_value_returns_none() -> None:
    assert summarize({"a": 1}) is None
    assert summarize(b"bytes") is None
    assert summarize(Opaque()) is None


def test_summary_is_json_able() -> None:
    frame = pd.DataFrame({"f": [math.inf, 1.0], "d": pd.to_datetime(["2024-01-01", "2024-01-02"])})
    summary = summarize(frame)
    assert summary is not None
    assert summary["columns"]["f"]["max"] is None  # infinite bounds are not JSON
    assert canonical_bytes(summary)
