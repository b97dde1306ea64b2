"""Canonical bytes: the one encoding that is hashed, signed and compared.

JSON with keys sorted, no insignificant whitespace, UTF-8, in the spirit of
RFC 8785: msgspec's ``order="sorted"`` sorts both struct fields and dict keys,
and writes floats in their shortest round-trip form. JSON has no NaN or
infinity; such floats are written as ``null``, as most JSON writers do.
"""

from __future__ import annotations

from typing import Any

import msgspec

from datatrail.errors import InvalidEvent

__all__ = ["canonical_bytes", "from_json"]

_encoder = msgspec.json.Encoder(order="sorted")
_decoder = msgspec.json.Decoder()


def canonical_bytes(value: Any) -> bytes:
    """Encode ``value`` (a msgspec Struct or JSON-able value) as canonical JSON bytes."""
    return _encoder.encode(value)


def from_json(data: bytes | str) -> Any:
    """Decode JSON bytes into builtins (dict, list, str, int, float, bool, None)."""
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise InvalidEvent(f"not valid JSON: {exc}") from exc
