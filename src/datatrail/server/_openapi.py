"""``/openapi.json``: the OpenAPI 3.1 document, built from the route table.

Nothing is documented by hand twice: each :class:`ApiRoute` gives its
parameters, body, response schema and error statuses, and every error response
refers to one ``Error`` schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datatrail.server._routes import ApiRoute, Call
from datatrail.server._schemas import COMPONENTS, ref

__all__ = ["OPENAPI_ROUTE", "openapi_document"]

_ERRORS = {
    400: "Bad input: a parameter, node id or body is wrong (see error.parameter / error.pointer)",
    401: "No token, or a malformed, unknown, revoked or expired one",
    403: "The token's role may not do this (see error.required_roles)",
    404: "No such node, run or checkpoint",
    413: "The request body is over the server's limit",
    415: "The body's Content-Encoding is not identity or gzip",
    422: "The request is well formed but breaks a rule (a contract, a policy)",
    503: "The store is not reachable",
}


def _operation(route: ApiRoute) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.summary,
        "tags": [route.tag],
    }
    roles = ["admin", *route.roles] if route.roles else ["any role"]
    who = "No token needed." if route.public else f"Roles: {', '.join(roles)}."
    op["description"] = (route.description + "\n\n" if route.description else "") + who
    if route.params:
        op["parameters"] = [
            {
                "name": p.name,
                "in": p.where,
                "required": p.required or p.where == "path",
                "description": p.description,
                "schema": p.schema,
            }
            for p in route.params
        ]
    if route.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": route.body}},
        }
    ok_schema = route.response
    if route.media_type == "text/event-stream":
        ok_content = {"text/event-stream": {"schema": {"type": "string"}}}
        op["x-event-schema"] = ok_schema
    else:
        ok_content = {route.media_type: {"schema": ok_schema}}
    responses: dict[str, Any] = {str(route.status): {"description": "OK", "content": ok_content}}
    codes = set(route.errors)
    if not route.public:
        codes |= {401, 403}
    for code in sorted(codes):
        responses[str(code)] = {
            "description": _ERRORS.get(code, "Error"),
            "content": {"application/json": {"schema": ref("Error")}},
        }
    op["responses"] = responses
    op["security"] = [] if route.public else [{"bearer": []}, {"cookie": []}]
    return op


def openapi_document(routes: Sequence[ApiRoute], *, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of these routes."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "datatrail",
            "version": version,
            "description": "Lineage, tamper-evident audit and governance over one verified log. "
            "Every route but /healthz needs a bearer token (`datatrail token create`). Errors are "
            '`{"error": {"code", "message", ...}}`.',
        },
        "paths": paths,
        "components": {
            "schemas": COMPONENTS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "datatrail_token"},
            },
        },
    }


def openapi(call: Call) -> dict[str, Any]:
    """This document."""
    from datatrail import __version__

    return openapi_document(call.state.routes, version=__version__)


OPENAPI_ROUTE = ApiRoute(
    "GET",
    "/openapi.json",
    openapi,
    "The OpenAPI 3.1 document of this API",
    (),
    "meta",
    {"type": "object", "required": ["openapi", "paths"]},
)
