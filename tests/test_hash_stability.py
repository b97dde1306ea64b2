"""Artifact ids of tables and arrays stay bit-identical whatever the hashing code becomes.

Every digest below is a regression value: it was computed once, by the implementation
committed at bd06ba3 (before the table hasher was reworked for speed), over the corpus
built here, and pasted in. Trails already written hold these ids, so a change that moves
any of them breaks old trails: such a change must be a deliberate, versioned encoding
change, never a side effect of an optimisation.

The corpus is built from integer arithmetic only (no random generators, no
transcendental functions), so it is the same on every platform and numpy version. The
large cases (600,003 rows, about 4.8 MB per float64 column) cross the multi-threading
threshold and the size of the slices columns are hashed in, with NaNs, -0.0 and nulls
placed before, on and after slice boundaries; the corpus is also hashed with much
smaller slices, which must not move a digest either.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from datatrail.capture import _hash_tables
from datatrail.capture._hashing import hash_value

BIG = 600_003  # odd on purpose: no slice size divides it


def _floats(n: int) -> np.ndarray[Any, Any]:
    """Deterministic float64 values of both signs, no NaN."""
    steps = np.arange(n, dtype=np.int64)
    return ((steps * 2_654_435_761) % 1_000_003 - 500_000) / 7.0


def _ints(n: int) -> np.ndarray[Any, Any]:
    steps = np.arange(n, dtype=np.int64)
    return (steps * 2_654_435_761) % (1 << 40) - (1 << 39)


def _with_specials(values: np.ndarray[Any, Any], every: int) -> np.ndarray[Any, Any]:
    """A copy with NaN, negative payload NaN, -0.0, 0.0 and infinities sprinkled in."""
    out = values.copy()
    out[::every] = np.nan
    out[3::every] = -0.0
    out[5::every] = 0.0
    out[7::every] = np.inf
    out[11::every] = -np.inf
    bits = out.view(np.uint64)
    bits[13::every] = 0xFFF8_0000_0000_0001  # a negative NaN with a payload
    return out


def _late_nan(n: int, where: int) -> np.ndarray[Any, Any]:
    out = _floats(n)
    out[where] = np.nan
    return out


def _pandas_cases() -> dict[str, Callable[[], object]]:
    floats = _floats(BIG)
    ints = _ints(BIG)
    stamps = (ints % (10**15)).astype("datetime64[ns]")
    stamps_nat = stamps.copy()
    stamps_nat[::1000] = np.datetime64("NaT")
    strings = [f"s{i % 977}" for i in range(2_000)]
    strings_null: list[str | None] = [None if i % 13 == 0 else s for i, s in enumerate(strings)]
    block = np.arange(40_000, dtype=np.float64).reshape(10_000, 4) / 3.0
    return {
        "pd_small_mixed": lambda: pd.DataFrame(
            {"i": [1, 2, 3], "f": [0.5, 1.5, 2.5], "s": ["a", "bb", "ccc"]}
        ),
        "pd_float_big": lambda: pd.DataFrame({"f": floats}),
        "pd_float_big_specials": lambda: pd.DataFrame({"f": _with_specials(floats, 997)}),
        "pd_float_nan_first_row": lambda: pd.DataFrame({"f": _late_nan(BIG, 0)}),
        "pd_float_nan_last_row": lambda: pd.DataFrame({"f": _late_nan(BIG, BIG - 1)}),
        "pd_float_nan_at_128k": lambda: pd.DataFrame({"f": _late_nan(BIG, 131_072)}),
        "pd_float_nan_before_128k": lambda: pd.DataFrame({"f": _late_nan(BIG, 131_071)}),
        "pd_float_nan_at_512k": lambda: pd.DataFrame({"f": _late_nan(BIG, 524_288)}),
        "pd_float_nan_before_512k": lambda: pd.DataFrame({"f": _late_nan(BIG, 524_287)}),
        "pd_float_neg_zero_only": lambda: pd.DataFrame({"f": np.where(floats > 0, floats, -0.0)}),
        "pd_float_all_nan": lambda: pd.DataFrame({"f": np.full(5_000, np.nan)}),
        "pd_float_empty": lambda: pd.DataFrame({"f": np.array([], dtype=np.float64)}),
        "pd_float32_specials": lambda: pd.DataFrame(
            {"f": _with_specials(floats, 101).astype(np.float32)}
        ),
        "pd_float16": lambda: pd.DataFrame({"f": (floats[:5_000] / 1e3).astype(np.float16)}),
        "pd_big_endian_float": lambda: pd.DataFrame(
            {"f": _with_specials(floats[:10_000], 89).astype(">f8")}
        ),
        "pd_big_endian_int": lambda: pd.DataFrame({"i": ints[:10_000].astype(">i4")}),
        "pd_numeric_4_columns": lambda: pd.DataFrame(
            {"a": floats, "b": ints, "c": floats[::-1].copy(), "d": ints % 100}
        ),
        "pd_int_widths": lambda: pd.DataFrame(
            {
                f"{kind}{width}": (ints[:3_000] % 100).astype(f"{kind}{width}")
                for kind in ("i", "u")
                for width in (1, 2, 4, 8)
            }
        ),
        "pd_bool": lambda: pd.DataFrame({"b": ints[:10_000] % 3 == 0}),
        "pd_datetime_ns": lambda: pd.DataFrame({"t": stamps}),
        "pd_datetime_nat": lambda: pd.DataFrame({"t": stamps_nat}),
        "pd_datetime_utc": lambda: pd.DataFrame(
            {"t": pd.to_datetime(stamps[:1_000]).tz_localize("UTC")}
        ),
        "pd_timedelta": lambda: pd.DataFrame({"d": (ints[:1_000] % 10**12).astype("m8[us]")}),
        "pd_datetime_seconds_unit": lambda: pd.DataFrame(
            {"t": (ints[:1_000] % 10**9).astype("M8[s]")}
        ),
        "pd_categorical": lambda: pd.DataFrame({"c": pd.Categorical(strings_null)}),
        "pd_object_strings": lambda: pd.DataFrame({"s": pd.Series(strings_null, dtype=object)}),
        "pd_str_dtype": lambda: pd.DataFrame({"s": pd.Series(strings_null, dtype="str")}),
        "pd_nullable_int": lambda: pd.DataFrame(
            {"i": pd.array([None if i % 7 == 0 else int(v) for i, v in enumerate(ints[:500])])}
        ),
        "pd_nullable_bool": lambda: pd.DataFrame(
            {"b": pd.array([None if i % 5 == 0 else i % 2 == 0 for i in range(500)], "boolean")}
        ),
        "pd_nullable_float": lambda: pd.DataFrame(
            {"f": pd.array([None if i % 9 == 0 else float(v) for i, v in enumerate(floats[:500])])}
        ),
        "pd_mixed_objects": lambda: pd.DataFrame({"o": [1, "a", 2.5, None, [1, 2]]}),
        "pd_decimal_and_dates": lambda: pd.DataFrame(
            {
                "d": [decimal.Decimal("1.25"), decimal.Decimal("-3.5"), None],
                "t": [dt.date(2024, 1, 1), dt.date(2024, 2, 29), None],
            }
        ),
        "pd_from_2d_block": lambda: pd.DataFrame(block, columns=list("abcd")),
        "pd_from_2d_fortran": lambda: pd.DataFrame(np.asfortranarray(block), columns=list("abcd")),
        "pd_iloc_slice": lambda: pd.DataFrame({"f": floats, "i": ints}).iloc[1_000:250_000],
        "pd_iloc_strided": lambda: pd.DataFrame({"f": _with_specials(floats, 97), "i": ints}).iloc[
            ::3
        ],
        "pd_index_strings": lambda: pd.DataFrame(
            {"v": floats[:100]}, index=[f"r{i}" for i in range(100)]
        ),
        "pd_index_float_nan": lambda: pd.DataFrame(
            {"v": ints[:100]}, index=_with_specials(floats[:100], 17)
        ),
        "pd_index_range_step2": lambda: pd.DataFrame(
            {"v": ints[:100]}, index=pd.RangeIndex(0, 200, 2)
        ),
        "pd_multi_index": lambda: pd.DataFrame(
            {"v": floats[:6]},
            index=pd.MultiIndex.from_tuples([(k, i) for k in "ab" for i in range(3)]),
        ),
        "pd_non_string_column_names": lambda: pd.DataFrame({1: [1.0], (2, 3): [2], None: ["x"]}),
        "pd_series_named": lambda: pd.Series(_with_specials(floats, 101), name="v"),
        "pd_series_unnamed": lambda: pd.Series(ints),
        "pd_empty_frame": lambda: pd.DataFrame(),
        "pd_zero_rows": lambda: pd.DataFrame({"a": pd.Series([], dtype="int64"), "s": []}),
    }


def _polars_cases() -> dict[str, Callable[[], object]]:
    floats = _floats(BIG)
    specials = _with_specials(floats, 997).tolist()
    part = [None if i % 11 == 0 else v for i, v in enumerate(specials[:2_000])]
    return {
        "pl_float_specials": lambda: pl.DataFrame({"f": specials}),
        "pl_float_with_nulls": lambda: pl.DataFrame({"f": part}),
        "pl_chunked": lambda: pl.concat(
            [
                pl.DataFrame({"a": [1, 2, None], "s": ["x", None, "z"], "f": [0.5, None, -0.0]}),
                pl.DataFrame({"a": [4, 5], "s": ["u", "v"], "f": [float("nan"), 2.0]}),
            ],
            rechunk=False,
        ),
        "pl_sliced": lambda: pl.DataFrame({"f": specials, "i": list(range(BIG))}).slice(
            12_345, 150_000
        ),
        "pl_bool_nulls": lambda: pl.DataFrame({"b": [True, None, False, True] * 100}),
        "pl_categorical": lambda: pl.DataFrame(
            {"c": pl.Series(["a", "b", None, "a"] * 50, dtype=pl.Categorical)}
        ),
        "pl_datetime": lambda: pl.DataFrame(
            {"t": [dt.datetime(2024, 1, 1, tzinfo=dt.UTC), None, dt.datetime(2000, 5, 6, 7)]}
        ),
        "pl_list": lambda: pl.DataFrame({"l": [[1, 2], None, [], [3]]}),
        "pl_struct": lambda: pl.DataFrame({"s": [{"a": 1, "b": "x"}, {"a": None, "b": "y"}]}),
        "pl_series": lambda: pl.Series("v", specials[:1_000]),
    }


def _arrow_cases() -> dict[str, Callable[[], object]]:
    floats = _floats(BIG)
    ints = _ints(BIG)
    specials = _with_specials(floats, 997)
    mask = (np.arange(BIG) % 31) == 0
    float_nulls = pa.array(specials, mask=mask)
    int_nulls = pa.array(ints, mask=mask)
    strings = [None if i % 17 == 0 else f"v{i % 1013}" for i in range(5_000)]
    return {
        "pa_float_specials": lambda: pa.table({"f": specials}),
        "pa_float_nulls_and_nans": lambda: pa.table({"f": float_nulls}),
        "pa_float_sliced": lambda: pa.table({"f": float_nulls.slice(7, 200_000)}),
        "pa_float_chunked": lambda: pa.table(
            {
                "f": pa.chunked_array(
                    [float_nulls.slice(0, 1), float_nulls.slice(1, 131_071), float_nulls[131_072:]]
                )
            }
        ),
        "pa_float32_specials": lambda: pa.table({"f": specials.astype(np.float32)}),
        "pa_halffloat": lambda: pa.table({"f": (floats[:2_000] / 1e3).astype(np.float16)}),
        "pa_int_nulls_chunked": lambda: pa.table(
            {"i": pa.chunked_array([int_nulls.slice(0, 1_000), int_nulls.slice(1_000)])}
        ),
        "pa_int_types": lambda: pa.table(
            {
                str(t): pa.array(ints[:1_000] % 100).cast(t)
                for t in (pa.int8(), pa.uint16(), pa.int32(), pa.uint64())
            }
        ),
        "pa_bool_offset": lambda: pa.table(
            {"b": pa.array([None if i % 5 == 0 else i % 3 == 0 for i in range(1_000)]).slice(3)}
        ),
        "pa_strings": lambda: pa.table({"s": pa.array(strings)}),
        "pa_large_string_sliced": lambda: pa.table(
            {"s": pa.array(strings, pa.large_string()).slice(5, 3_000)}
        ),
        "pa_string_view": lambda: pa.table({"s": pa.array(strings, pa.string_view())}),
        "pa_binary": lambda: pa.table({"b": pa.array([None, b"", b"\x00\x01", b"xyz"])}),
        "pa_dictionary": lambda: pa.table({"d": pa.array(strings).dictionary_encode()}),
        "pa_timestamp_tz": lambda: pa.table(
            {"t": pa.array(ints[:1_000] % 10**15, pa.timestamp("us", tz="Europe/Paris"))}
        ),
        "pa_date32_time64": lambda: pa.table(
            {
                "d": pa.array([19_000, None, 0], pa.date32()),
                "t": pa.array([1, None, 86_399_999_999], pa.time64("us")),
            }
        ),
        "pa_decimal": lambda: pa.table(
            {"d": pa.array([decimal.Decimal("1.25"), None], pa.decimal128(10, 2))}
        ),
        "pa_fixed_size_binary": lambda: pa.table(
            {"b": pa.array([b"abcd", None, b"wxyz"], pa.binary(4))}
        ),
        "pa_nulls": lambda: pa.table({"n": pa.nulls(7)}),
        "pa_list": lambda: pa.table({"l": pa.array([[1.5, None], None, [], [float("nan")]])}),
        "pa_struct": lambda: pa.table({"s": pa.array([{"a": 1, "b": "x"}, None])}),
        "pa_record_batch": lambda: pa.record_batch({"f": specials[:100], "i": ints[:100]}),
        "pa_array": lambda: float_nulls.slice(10, 5_000),
        "pa_chunked_array": lambda: pa.chunked_array([[1, None], [3]]),
        "pa_empty_table": lambda: pa.table({"f": pa.array([], pa.float64())}),
    }


def _numpy_cases() -> dict[str, Callable[[], object]]:
    floats = _floats(BIG)
    return {
        "np_float_specials": lambda: _with_specials(floats, 997),
        "np_float_strided": lambda: _with_specials(floats, 997)[::3],
        "np_big_endian": lambda: _with_specials(floats[:1_000], 7).astype(">f8"),
        "np_2d_fortran": lambda: np.asfortranarray(floats[:3_000].reshape(1_000, 3)),
        "np_scalar": lambda: np.float64(-0.0),
        "np_zero_dim": lambda: np.array(5, dtype=np.int16),
        "np_structured": lambda: np.array(
            [(1, 2.5), (3, -0.0)], dtype=[("a", "<i4"), ("b", "<f8")]
        ),
        "np_datetime": lambda: (_ints(100) % 10**9).astype("M8[s]"),
    }


CASES: dict[str, Callable[[], object]] = {
    **_pandas_cases(),
    **_polars_cases(),
    **_arrow_cases(),
    **_numpy_cases(),
}

# name -> (digest, size): computed once from the implementation at bd06ba3 (see the module
# docstring); never regenerate these from the code under test.
EXPECTED: dict[str, tuple[str, int | None]] = {
    "np_2d_fortran": (
        "blake3:80adccbfa92b2723f021d24529b7b7c98a9da3c518d36cf4d7939f520853526e",
        24000,
    ),
    "np_big_endian": (
        "blake3:c209b598d152e475eb14b99893f76e3bb9761b2d35e07b2d3c89579534289743",
        8000,
    ),
    "np_datetime": ("blake3:dd955589457858d66902d0536926eca7d4a8e4c38a4200cc9fa4c314b1188e33", 800),
    "np_float_specials": (
        "blake3:c96e4d54f6ca9f0a579df1286479d521503aa648ab3e82fb9a2600592e923c66",
        4800024,
    ),
    "np_float_strided": (
        "blake3:e82005bbaae163dab4848928de289280b5dcf5b67017129202c7f43c8fe6f891",
        1600008,
    ),
    "np_scalar": ("blake3:a79d83539996fdd3051778e1bf2ff5be140d31c4dac29b17fed52bf5b6af271f", 8),
    "np_structured": (
        "blake3:e41bb5b9751e7887408880602a97aae7838d238aaa4c05b73753acb1dbee6d79",
        24,
    ),
    "np_zero_dim": ("blake3:a850d3b441ea432bf2f5cfa1622f22fbbfcdb56cf72e5d3bd8ecb13c63747ed3", 2),
    "pa_array": ("blake3:da4476072d894e67ad72331a3e4d067d64a1e742ab53c9eb9d029335c9076c13", 45000),
    "pa_binary": ("blake3:36222c4ba99a516d75fcbaff2303bff61bd67843012fb461a4aeebaf050860f5", 41),
    "pa_bool_offset": (
        "blake3:88928559fe714caab826c81e85a31d5a3bf9a183cebd8ac6a250e5e8ee6ba3ec",
        1994,
    ),
    "pa_chunked_array": (
        "blake3:1f6eb8c22d64650701534d567916fbd7af513a1cb84d505a126678145430ab1a",
        27,
    ),
    "pa_date32_time64": (
        "blake3:28ef2ce28243356d0e6eb7f0c7f0cef066b0c4aa542985e2b171244fe04b4c45",
        42,
    ),
    "pa_decimal": ("blake3:f0ae5f30345c8b323350e0c7521e6bf47899385950f77a6fce01f90bc7348e41", 34),
    "pa_dictionary": (
        "blake3:6d866ee5c51c3baca32988f2dc1940af642c8e0ea21f20a0061e9b7a42ed2bfe",
        63351,
    ),
    "pa_empty_table": (
        "blake3:aa1b069c397557d1da9d71468a784f2b18b15ddb540ebeacfd6d272e28c17975",
        0,
    ),
    "pa_fixed_size_binary": (
        "blake3:75e9448d93a1e0faf13e29bd83c5a8c87a69dae3804352731d46e7f1d2d4f345",
        15,
    ),
    "pa_float32_specials": (
        "blake3:9041cf3299a347115c8598f727d5872e9e83feba66187dfc7ab58513f0339b65",
        2400012,
    ),
    "pa_float_chunked": (
        "blake3:f7fdee73afb22c41e8b647c425cf13c26459cd2a427e8b75b15765ccc55c7c16",
        5400027,
    ),
    "pa_float_nulls_and_nans": (
        "blake3:f7fdee73afb22c41e8b647c425cf13c26459cd2a427e8b75b15765ccc55c7c16",
        5400027,
    ),
    "pa_float_sliced": (
        "blake3:af071465520994c6c5fa1e7a095d6e7612448598fad84629b4ceac7b28c533e0",
        1800000,
    ),
    "pa_float_specials": (
        "blake3:5ebf20b8a6fec5554d20d28c13efd8eb34b4c41b7efcaca3b6c822a2c25fb026",
        4800024,
    ),
    "pa_halffloat": (
        "blake3:a7f4f38f2d8c808b0af3b3ae0e753c796bf245c1d76a1f3a6bb596d64c6dd2c4",
        4000,
    ),
    "pa_int_nulls_chunked": (
        "blake3:13d2148cd3b688ca2214f61e282564fe94bdc731882f53e1426c4150cb81cf26",
        5400027,
    ),
    "pa_int_types": (
        "blake3:81609c49e1a6fec1b3f761ce42fba9f810b7811d0290d5f37fc92a1e7454218c",
        15000,
    ),
    "pa_large_string_sliced": (
        "blake3:dee22b5166545c2fac9e5d50d3afa9d71a3df977276ceeafddec7894aa0d8432",
        38018,
    ),
    "pa_list": ("blake3:3b436b1bc5d8de05ad113385092b13f1ccba669eefd802127cb28b0f83be9641", 59),
    "pa_nulls": ("blake3:48a2c692ce351755c28dd94b628adb35bcff85605e49acbec8bb7a88d902adfc", 7),
    "pa_record_batch": (
        "blake3:d42326c5708f6c9415e80bec725b8e80c36b1cc373516320a9e555426faae30e",
        1600,
    ),
    "pa_string_view": (
        "blake3:9d103c6bf3c89aa69210559a0a211c6b673749e84e8499992535e961657c429f",
        63351,
    ),
    "pa_strings": (
        "blake3:9d103c6bf3c89aa69210559a0a211c6b673749e84e8499992535e961657c429f",
        63351,
    ),
    "pa_struct": ("blake3:a8c2f432cd990bc43c88862f7c77a230179174bc4074dddfb8121cfbe97020d5", 27),
    "pa_timestamp_tz": (
        "blake3:4275447c8cba3fd1258c86d47c0ffe48d2cfa64838ebe35469aba123c815242b",
        8000,
    ),
    "pd_big_endian_float": (
        "blake3:0357aa67e49888423ccc305e9c299217272aef225e7116dcb21d69357313ff7e",
        90000,
    ),
    "pd_big_endian_int": (
        "blake3:13b33d2402e57f3c2af105ebc91175d83d99d177aa0c493311f6348d36f23b02",
        40000,
    ),
    "pd_bool": ("blake3:d09cc4d017f753f232d743cc1b816146a9bb70c058d5c64840f353a4b591d6ad", 10000),
    "pd_categorical": (
        "blake3:ce3c88c7b6d0d77478ee8754571875238393a41aa7c79f46a1fca9e48a7a6704",
        25128,
    ),
    "pd_datetime_nat": (
        "blake3:afe7e6149a651ab426aff764ff3c69fa8bd0eb29410cc8c0ee31d82178d184ef",
        5400027,
    ),
    "pd_datetime_ns": (
        "blake3:b2281a06aba81bd9b332da7a64ac3cd2068829f0b903215ffe4378783834dc3e",
        4800024,
    ),
    "pd_datetime_seconds_unit": (
        "blake3:6f34463da3f15d67466b2d0fca56506d1b71a44e4cb3911a500db31bfe6a052b",
        8000,
    ),
    "pd_datetime_utc": (
        "blake3:28dab08e68ce76c3f69088ab66ec74594b1549534426ae1f271068ec74ba16fc",
        8000,
    ),
    "pd_decimal_and_dates": (
        "blake3:a45767f0eff955a81531caacac43ad675786d0a9c2ac882329363e5b5bda1c2c",
        66,
    ),
    "pd_empty_frame": (
        "blake3:9fbf88c9d69ca0e54f622a858c0ec8f1557b9e614221e08c8ce36898e7ad6312",
        0,
    ),
    "pd_float16": (
        "blake3:1682b421ad41690fa3710ef6e462631ecae4f658f93de7382e79475eb897c563",
        10000,
    ),
    "pd_float32_specials": (
        "blake3:54c2186ca2c30807f3e6ebe66fe35021bc081655d9ea5c155443c5eff6345c5e",
        3000015,
    ),
    "pd_float_all_nan": (
        "blake3:c54a9c829f34b37d341bc9dd111e04e5bcdf2ea6c7a7611eecfd3e4a3d3b645d",
        45000,
    ),
    "pd_float_big": (
        "blake3:df8865725d8d18259b1e5ffc95d992264023ef6e84c135217afe8939e02f2226",
        4800024,
    ),
    "pd_float_big_specials": (
        "blake3:c041edc41908e0ba45b401b5f752063302ef53d8d46d168c0e76f6f22ff64ae9",
        5400027,
    ),
    "pd_float_empty": (
        "blake3:aa1b069c397557d1da9d71468a784f2b18b15ddb540ebeacfd6d272e28c17975",
        0,
    ),
    "pd_float_nan_at_128k": (
        "blake3:5f98197ac85cc807e4129da452656f7b76168f08a95f702b22318b40386d2ce0",
        5400027,
    ),
    "pd_float_nan_at_512k": (
        "blake3:aa1c6de01831b6b3229c2faeeb6576a1e3359e3350c299c9f3703b161725e6ed",
        5400027,
    ),
    "pd_float_nan_before_128k": (
        "blake3:3fbd2e198bdb7be26b75dab8849424f937aab6b51d27dfd103c16a8dedfee4c4",
        5400027,
    ),
    "pd_float_nan_before_512k": (
        "blake3:fdc6a2d1ba8a534ebb30066fa19230b78a1633b276d2c68619b05a887f0c83de",
        5400027,
    ),
    "pd_float_nan_first_row": (
        "blake3:d9bd147684e804d6672cb5c9dea6d319747e8fded34256af3206010c1db98699",
        5400027,
    ),
    "pd_float_nan_last_row": (
        "blake3:647eab16bcfded4b97fe2409889dfb06d6e7bc0a85a2bc48bcec50b02a9ba18e",
        5400027,
    ),
    "pd_float_neg_zero_only": (
        "blake3:2f8f041d8619f81741b1bdaf49d0f72f484e55396cf4ddbf7bd8f044a770ab8d",
        4800024,
    ),
    "pd_from_2d_block": (
        "blake3:f76e7ff873d3c34d0bac9c7ea3549829631d898e679aa77beecac88cc6827c98",
        320000,
    ),
    "pd_from_2d_fortran": (
        "blake3:f76e7ff873d3c34d0bac9c7ea3549829631d898e679aa77beecac88cc6827c98",
        320000,
    ),
    "pd_iloc_slice": (
        "blake3:57b1b0275d0066436704e75bb070413082a1a104bffc72819557c13ea3c8b5e9",
        3984000,
    ),
    "pd_iloc_strided": (
        "blake3:edf68bc5afc2a3ad979b5dcdbc8f16c3d56aef384e0fb2c60456d74e045bdf19",
        5000025,
    ),
    "pd_index_float_nan": (
        "blake3:d002daa08162a7cb6e44eb51d4f382db477ec6993999324bb3da20e508bbc88b",
        1700,
    ),
    "pd_index_range_step2": (
        "blake3:642d4d2fa6ed219ff534f67fb1099d6b4a558f280f8a7b57a92cba43eecee288",
        1600,
    ),
    "pd_index_strings": (
        "blake3:98edec38823e3edf16a093c1943f201be52ad10e24f355b7ae6eceb2d81f59ba",
        1890,
    ),
    "pd_int_widths": (
        "blake3:8f793f6e46e0a9190d0abe74b493b081e72c5e636816bcf67820d8a4090da772",
        90000,
    ),
    "pd_mixed_objects": (
        "blake3:6832173a0ec7d877e2f3780da84a2d272b1d2e1949b8379d6c2c5e2a6e9589a9",
        56,
    ),
    "pd_multi_index": (
        "blake3:88c378dc47d9294b3982ab54c3fbbf4e8bb38c9be27ccf50176064b64fa7f20b",
        150,
    ),
    "pd_non_string_column_names": (
        "blake3:e83cc973cffb2525f1a190fca750af0779158a6ee698f54d58cbf1d1a0f47581",
        25,
    ),
    "pd_nullable_bool": (
        "blake3:4367d9bbbf17a44b409ee812d2eec88a579d0f0d1c3b5f08a6b358381f843d14",
        1000,
    ),
    "pd_nullable_float": (
        "blake3:6e71e302f6a1c6e7fce56a8b5e04ac42613217c7c282b4fecd3378a67f94d756",
        4500,
    ),
    "pd_nullable_int": (
        "blake3:cc0cf4dba5b5182e576fc0b9a8e526f3468d53fb56a5e091d2a46e464c92fc72",
        4500,
    ),
    "pd_numeric_4_columns": (
        "blake3:68f70e49131699d888be4783b45f5a5cd644c591b983505a69829bc1d389b788",
        19200096,
    ),
    "pd_object_strings": (
        "blake3:19a76611ca5226800f66d01c87b47ed64d9c697de656aba0dcc71c5b60a278be",
        25128,
    ),
    "pd_series_named": (
        "blake3:fd1b8bec508d8d815862681622437e8a412510cb3b13bd099038333665fab895",
        5400027,
    ),
    "pd_series_unnamed": (
        "blake3:015b6fe38af0d2a19b7544107fb7b668f912ba24fc988701c1baec1897f6e0b1",
        4800024,
    ),
    "pd_small_mixed": (
        "blake3:aec53ee6a08e6d2e88c6352180884a198e29d562e2ea257b38ba755bb781c0e0",
        78,
    ),
    "pd_str_dtype": (
        "blake3:19a76611ca5226800f66d01c87b47ed64d9c697de656aba0dcc71c5b60a278be",
        25128,
    ),
    "pd_timedelta": (
        "blake3:ef7c4a68dc79115a904e32cd8d6123056d9d01c7e10473fd6e1773ea98632e00",
        8000,
    ),
    "pd_zero_rows": ("blake3:86cd22f3031a3918618d47009dc2caf8ef79151cee44fc2b3daf4b8ac8d5465b", 0),
    "pl_bool_nulls": (
        "blake3:baefb9cc11d8fa4482804658cbce383f419395b1499c86ac1b9f1e3b581e78a0",
        800,
    ),
    "pl_categorical": (
        "blake3:3bf5ac93eb20a6a994c2a7973ed43253f2e7a398cd973dc25042b1672cf719cc",
        1950,
    ),
    "pl_chunked": ("blake3:ad6bbd634edafff47d3ea777dba1dc9a43400ac087bc01b4a649122ff9a28eff", 139),
    "pl_datetime": ("blake3:533cd1767f6145ce59770cfa4538075d52541700e6482530602ff17d14ea0c81", 27),
    "pl_float_specials": (
        "blake3:5ebf20b8a6fec5554d20d28c13efd8eb34b4c41b7efcaca3b6c822a2c25fb026",
        4800024,
    ),
    "pl_float_with_nulls": (
        "blake3:3773eee3456cccf55f3409b2b4fcc153504b1db4a7be8fe1cebff23294aab288",
        18000,
    ),
    "pl_list": ("blake3:67e05fa6b5558a6cf18c28e462edb9ee42095f14592f994e1efad2d78d2ff41e", 43),
    "pl_series": ("blake3:b2947cfb29f2932fad1ba43e2bb6ffdeff774e53c6e1ba00ef2dcc87d5bd9a21", 8000),
    "pl_sliced": (
        "blake3:99368f133990836c3e003afa2372e393605d072a9b682a890189141353927a68",
        2400000,
    ),
    "pl_struct": ("blake3:5f5c3f2388383f0ed1371c650d0eff65270812f8daf7b0bda19c6f0fbfa3c106", 32),
}


def test_the_corpus_and_the_pinned_digests_name_the_same_cases() -> None:
    assert sorted(CASES) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(CASES))
def test_digest_is_unchanged(name: str) -> None:
    result = hash_value(CASES[name]())
    assert result is not None
    assert (result.digest, result.size) == EXPECTED[name]


@pytest.mark.parametrize("slice_bytes", [8_192, 1 << 20])
@pytest.mark.parametrize("name", sorted(CASES))
def test_digest_does_not_depend_on_the_slice_size(
    name: str, slice_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1 MiB puts a float64 slice boundary exactly at row 131,072 (see the nan_at cases).
    monkeypatch.setattr(_hash_tables, "_SLICE", slice_bytes)
    result = hash_value(CASES[name]())
    assert result is not None
    assert (result.digest, result.size) == EXPECTED[name]
