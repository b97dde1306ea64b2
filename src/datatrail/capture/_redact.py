"""Secret redaction for recorded parameters.

A parameter is redacted when its name looks like a secret (password, token,
secret, api key, private key, credentials, ...) or its value is of a secret
type (``datatrail.Secret``, pydantic's ``SecretStr``/``SecretBytes``). The
value never reaches the queue's events, the log or any output.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["REDACTED", "Secret", "is_secret_name", "is_secret_value", "redact_params"]

REDACTED = "[REDACTED]"

_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "pass",
        "secret",
        "secrets",
        "token",
        "apikey",
        "credential",
        "credentials",
        "auth",
        "cookie",
        "dsn",
        "privatekey",
        "sessionid",
    }
)
_SECRET_PAIRS = frozenset(
    {
        ("api", "key"),
        ("private", "key"),
        ("access", "key"),
        ("secret", "key"),
        ("signing", "key"),
        ("session", "id"),
        ("conn", "str"),
        ("connection", "string"),
    }
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
    """Whether a parameter name looks like it holds a secret.

    The name is split into words (``snake_case``, ``kebab-case``, ``camelCase``); it is
    secret if a word is one of password, token, secret, auth, cookie, dsn, ... or two
    neighbours form api key, private key, access key, session id, ...; a name that is
    just ``key`` counts too. So ``api_key`` and ``authToken`` are redacted; ``author``,
    ``n_tokens`` and ``sort_key`` are not.
    """
    words = [w.lower() for w in _WORDS.findall(name)]
    if words == ["key"] or any(w in _SECRET_WORDS for w in words):
        return True
    return any(pair in _SECRET_PAIRS for pair in itertools.pairwise(words))


def is_secret_value(value: Any) -> bool:
    """Whether a value is of a secret-holding type (or a dict holding one)."""
    if type(value).__name__ in _SECRET_TYPES:
        return True
    if isinstance(value, dict):
        return any(is_secret_value(v) for v in value.values())
    return False


_PLAIN = frozenset({int, float, str, bool, type(None)})


def _redact_value(value: Any) -> Any:
    if type(value) in _PLAIN:
        return value
    if is_secret_value(value):
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
    names = frozenset(extra)
    plain = _PLAIN
    out: dict[str, Any] = {}
    for name, value in params.items():
        if name in names or is_secret_name(name):
            out[name] = REDACTED
        elif type(value) in plain:
            out[name] = value
        else:
            out[name] = _redact_value(value)
    return out
