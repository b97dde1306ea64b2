"""How errors leave the server: one JSON shape, one status per error, one handler.

Every error response is ``{"error": {"code": ..., "message": ..., ...}}``.
:class:`ApiError` is raised by the server's own checks (authentication, roles,
parameters, bodies); any :class:`~datatrail.errors.DatatrailError` raised by
the library is rendered with its ``status`` and a code derived from its class
(``NodeNotFound`` -> ``node_not_found``). Anything else is a 500 whose message
says nothing about the internals (it is logged with its traceback instead).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from starlette.responses import Response

from datatrail.errors import DatatrailError

__all__ = ["ERROR_SCHEMA", "ApiError", "JSONResponse", "error_body", "error_response"]

log = logging.getLogger("datatrail.server")

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "A stable machine-readable code."},
                "message": {"type": "string", "description": "What was wrong and what to do."},
                "pointer": {
                    "type": "string",
                    "description": "JSON pointer of the first bad field of a request body.",
                },
                "parameter": {"type": "string", "description": "The bad query parameter."},
                "required_roles": {"type": "array", "items": {"type": "string"}},
            },
        }
    },
}
"""The JSON schema of every error response (``components.schemas.Error`` in OpenAPI)."""

_encoder = msgspec.json.Encoder()


class JSONResponse(Response):
    """A JSON response encoded by msgspec (fast, and strict about what it can encode)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _encoder.encode(content)


class ApiError(DatatrailError):
    """An error the server raises itself, with its HTTP status, code and extra fields."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.extra = extra
        self.headers = headers or {}
        self.principal: Any = None
        """Who was refused, when the server knows (a revoked or expired token); never sent."""


def _code_of(exc: DatatrailError) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


def error_body(exc: DatatrailError) -> dict[str, Any]:
    """The JSON body for a datatrail error."""
    if isinstance(exc, ApiError):
        return {"error": {"code": exc.code, "message": str(exc), **exc.extra}}
    error: dict[str, Any] = {"code": _code_of(exc), "message": str(exc)}
    pointer = getattr(exc, "pointer", None)
    if isinstance(pointer, str):
        error["pointer"] = pointer
    return {"error": error}


def error_response(exc: BaseException) -> JSONResponse:
    """The response for any exception raised while serving a request."""
    if isinstance(exc, DatatrailError):
        status = int(getattr(exc, "status", 500))
        if not 400 <= status <= 599:
            status = 500
        headers = exc.headers if isinstance(exc, ApiError) else None
        if status >= 500:
            log.error("request failed: %s: %s", type(exc).__name__, exc)
        return JSONResponse(error_body(exc), status_code=status, headers=headers)
    log.exception("unexpected error while serving a request")
    return JSONResponse(
        {
            "error": {
                "code": "internal_error",
                "message": "internal server error; see the server log",
            }
        },
        status_code=500,
    )
