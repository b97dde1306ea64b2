"""Secret redaction for recorded parameters.

A parameter is redacted when its name looks like a secret (password, token,
secret, api key, private key, credentials, ...) or its value is of a secret
type (``datatrail.Secret``, pydantic's ``SecretStr``/``SecretBytes``). The
value never reaches the queue's events, the log or any output.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["REDACTED", "Secret", "is_secret_name", "redact_params"]

REDACTED = "[REDACTED]"

_SECRET_NAME = re.compile(
    r"(pass(word|wd|phrase)?|secret|token|api[_-]?key|private[_-]?key|access[_-]?key|"
    r"credential|auth|(^|[_-])key$|^key$|dsn|conn(ection)?[_-]?str(ing)?|cookie|session[_-]?id)",
    re.IGNORECASE,
)
_SECRET_TYPES = {"SecretStr", "SecretBytes", "Secret"}


class Secret:
    """Wrap a value to keep it out of every record: ``fetch(token=datatrail.Secret(t))``."""

    __slots__ = ("_value",)

    def __init__(self, value: Any) -> None:
        self._value = value

    def get(self) -> Any:
        """The wrapped value."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED})"

    __str__ = __repr__


@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """Whether a parameter name looks like it holds a secret."""
    return bool(_SECRET_NAME.search(name))


def _is_secret_value(value: Any) -> bool:
    return type(value).__name__ in _SECRET_TYPES


_PLAIN = frozenset({int, float, str, bool, type(None)})


def _redact_value(value: Any) -> Any:
    if type(value) in _PLAIN:
        return value
    if _is_secret_value(value):
        return REDACTED
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and is_secret_name(k) else _redact_value(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    return value


def redact_params(params: dict[str, Any], extra: Iterable[str] = ()) -> dict[str, Any]:
    """A copy of ``params`` with secret-looking names and secret-typed values replaced."""
    names = set(extra)
    return {
        name: (REDACTED if name in names or is_secret_name(name) else _redact_value(value))
        for name, value in params.items()
    }
