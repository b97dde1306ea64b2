"""Masks applied to tables before anyone sees them: redact, null, salted hash, last 4, token, year.

Masks work column by column on pandas DataFrames and Arrow tables and return a
new table; the input is never changed. Masked values are replaced, not hidden:
nothing of the original value reaches the output, and errors name the column
and the mask kind, never a value. Nulls stay null.

The salt for ``hash`` and ``token`` comes from the environment variable the
policy names in ``salt_env``, else is derived from the trail's signing key, so
the same value hashes the same way within one trail and differently across trails.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

from datatrail.errors import ConfigError, PolicyDenied, UsageError

__all__ = ["REDACTED_TEXT", "apply_masks", "mask_salt", "mask_value", "maskable"]

REDACTED_TEXT = "[redacted]"
_YEAR = re.compile(r"^\s*(\d{4})(?:[-/]\d{1,2}(?:[-/]\d{1,2})?)?(?:[T ].*)?$")


def mask_salt(*, salt_env: str | None, key_file: Path | None, fallback: str) -> bytes:
    """The salt for hash and token masks (never logged, never recorded)."""
    if salt_env:
        value = os.environ.get(salt_env)
        if not value:
            raise ConfigError(
                f"the policy takes its mask salt from ${salt_env}, which is not set; set it "
                "(the same value everywhere this trail is read)"
            )
        return hashlib.sha256(b"datatrail-mask-salt\x00" + value.encode()).digest()
    if key_file is not None and key_file.exists():
        return hashlib.sha256(b"datatrail-mask-salt\x00" + key_file.read_bytes()).digest()
    return hashlib.sha256(b"datatrail-mask-salt\x00" + fallback.encode()).digest()


def _digest(salt: bytes, purpose: bytes, value: Any) -> bytes:
    return hmac.new(salt, purpose + b"\x00" + str(value).encode(), hashlib.sha256).digest()


def _year(value: Any) -> int | None:
    if isinstance(value, datetime | date):
        return value.year
    year = getattr(value, "year", None)  # pandas Timestamp, numpy datetime via pandas
    if isinstance(year, int):
        return year
    match = _YEAR.match(str(value))
    return int(match.group(1)) if match else None


def mask_value(kind: str, value: Any, salt: bytes) -> Any:
    """One value masked (``None`` stays ``None``)."""
    if value is None:
        return None
    if kind == "redact":
        return REDACTED_TEXT
    if kind == "null":
        return None
    if kind == "hash":
        return _digest(salt, b"hash", value).hex()[:32]
    if kind == "token":
        return "tok_" + base64.b32encode(_digest(salt, b"token", value)).decode()[:16].lower()
    if kind == "keep_last_4":
        text = str(value)
        return "*" * max(len(text) - 4, 4) + (text[-4:] if len(text) > 4 else "")
    if kind == "year":
        return _year(value)
    raise UsageError(f"unknown mask kind {kind!r}")


def _is_null(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN and NaT
    except Exception:
        return False


def _pandas(frame: Any, masks: Mapping[str, str], salt: bytes) -> Any:
    out = frame.copy(deep=True)
    for column, kind in masks.items():
        if column not in out.columns:
            continue
        series = out[column]
        if kind == "null":
            out[column] = _objects([None] * len(series), out.index)
            continue
        values = [None if _is_null(v) else mask_value(kind, v, salt) for v in series.tolist()]
        if kind == "year":
            import pandas as pd

            out[column] = pd.array(values, dtype="Int64")
        else:
            out[column] = _objects(values, out.index)
    return out


def _objects(values: list[Any], index: Any) -> Any:
    import pandas as pd

    return pd.Series(values, index=index, dtype="object")


def _arrow(table: Any, masks: Mapping[str, str], salt: bytes) -> Any:
    import pyarrow as pa

    for column, kind in masks.items():
        if column not in table.column_names:
            continue
        position = table.column_names.index(column)
        values = table.column(position).to_pylist()
        if kind == "null":
            array = pa.nulls(len(values), type=pa.string())
        elif kind == "year":
            array = pa.array(
                [None if v is None else mask_value(kind, v, salt) for v in values], type=pa.int32()
            )
        else:
            array = pa.array(
                [None if v is None else mask_value(kind, v, salt) for v in values], type=pa.string()
            )
        table = table.set_column(position, pa.field(column, array.type), array)
    return table


def maskable(data: Any) -> bool:
    """Whether masks can be applied to this kind of data (pandas or Arrow tables)."""
    module = type(data).__module__.partition(".")[0]
    return module in ("pandas", "pyarrow") and hasattr(
        data, "columns" if module == "pandas" else "column_names"
    )


def apply_masks(data: Any, masks: Mapping[str, str], salt: bytes) -> Any:
    """A copy of a pandas DataFrame or Arrow table with the masks applied.

    Masks on data that cannot be masked (bytes, a path) are refused with
    :class:`PolicyDenied`, rather than handing out unmasked content.
    """
    if not masks:
        return data
    module = type(data).__module__.partition(".")[0]
    if module == "pandas" and hasattr(data, "columns"):
        return _pandas(data, masks, salt)
    if module == "pyarrow" and hasattr(data, "column_names"):
        return _arrow(data, masks, salt)
    raise PolicyDenied(
        f"the policy requires masks on {', '.join(sorted(masks))}, but this data is "
        f"{type(data).__name__}, which cannot be masked column by column; refused"
    )
