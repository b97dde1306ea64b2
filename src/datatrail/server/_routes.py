"""The route table: one :class:`ApiRoute` per route, from which both the app and OpenAPI are built.

A route states its method and path, the roles that may call it, its query
parameters (as JSON schemas, which are also how they are parsed and checked),
its request body and its response schema. :func:`starlette_route` wraps a
handler with what every route shares: authentication, the role check,
parameter parsing, the body limit, rendering the result and errors, and for
every authenticated GET an access event (:mod:`datatrail.server._access`).
Tests walk the same table, so a route cannot be added without auth, access
events and documentation.
"""

from __future__ import annotations

import gzip
import inspect
import logging
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from datatrail.errors import PolicyDenied
from datatrail.server._auth import Principal, authenticate_cached, authenticate_sync, require
from datatrail.server._errors import ApiError, JSONResponse, error_response

__all__ = ["ApiRoute", "Call", "Param", "read_body", "record_read", "starlette_route"]

log = logging.getLogger("datatrail.server")


@dataclass(frozen=True)
class Param:
    """A query or path parameter, described by a JSON schema that is also how it is parsed."""

    name: str
    schema: dict[str, Any]
    required: bool = False
    description: str = ""
    where: str = "query"


@dataclass
class Call:
    """One request as a handler sees it: the caller, the parsed parameters, the body."""

    request: Request
    principal: Principal
    params: dict[str, Any]
    body: bytes | None = None

    @property
    def state(self) -> Any:
        """The app's state (``home``, ``store``, ``trail``, ``settings``)."""
        return self.request.app.state


Handler = Callable[[Call], Any] | Callable[[Call], Awaitable[Any]]


@dataclass(frozen=True)
class ApiRoute:
    """One route of the API."""

    method: str
    path: str
    handler: Handler
    summary: str
    roles: tuple[str, ...]
    """Roles that may call it besides ``admin``; ``()`` means any authenticated caller."""
    tag: str
    response: dict[str, Any]
    params: tuple[Param, ...] = ()
    body: dict[str, Any] | None = None
    """The JSON schema of the request body, if it takes one."""
    errors: tuple[int, ...] = ()
    """Error statuses beyond 401/403, which every authenticated route has."""
    media_type: str = "application/json"
    status: int = 200
    description: str = ""
    public: bool = False
    """No token needed (only ``/healthz``)."""
    governed: bool = False
    """The handler reads through :mod:`datatrail.governance`, which records the access
    decision itself; the route records one only when the call ended before that."""
    extra_responses: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The operation id."""
        return getattr(self.handler, "__name__", self.path).strip("_")


# -- parameters -----------------------------------------------------------------------


def _bad(param: Param, message: str) -> ApiError:
    return ApiError(
        400, "bad_parameter", f"parameter {param.name!r}: {message}", parameter=param.name
    )


def _parse(param: Param, raw: str) -> Any:
    schema = param.schema
    kind = schema.get("type", "string")
    value: Any
    if kind == "integer":
        try:
            value = int(raw)
        except ValueError:
            raise _bad(param, f"{raw!r} is not an integer") from None
        if "minimum" in schema and value < schema["minimum"]:
            raise _bad(param, f"{value} is below the minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise _bad(param, f"{value} is above the maximum {schema['maximum']}")
        return value
    if kind == "boolean":
        lowered = raw.lower()
        if lowered not in ("true", "false", "1", "0"):
            raise _bad(param, f"{raw!r} is not true or false")
        return lowered in ("true", "1")
    value = raw
    if "enum" in schema and value not in schema["enum"]:
        raise _bad(param, f"{raw!r} is not one of {', '.join(schema['enum'])}")
    if len(value) < schema.get("minLength", 0):
        raise _bad(param, f"must be at least {schema['minLength']} characters")
    if len(value) > schema.get("maxLength", 10_000):
        raise _bad(param, f"must be at most {schema.get('maxLength', 10_000)} characters")
    if "\x00" in value:
        raise _bad(param, "must not contain NUL characters")
    return value


def parse_params(route: ApiRoute, request: Request) -> dict[str, Any]:
    """The route's parameters, parsed and checked; defaults filled in."""
    out: dict[str, Any] = {}
    for param in route.params:
        raw = (
            request.path_params.get(param.name)
            if param.where == "path"
            else request.query_params.get(param.name)
        )
        if raw is None or (raw == "" and param.schema.get("type") in ("integer", "boolean")):
            if param.required:
                raise _bad(param, "is required")
            out[param.name] = param.schema.get("default")
            continue
        out[param.name] = _parse(param, str(raw))
    return out


# -- bodies ---------------------------------------------------------------------------


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "body_too_large",
        f"the request body is over the server's limit of {limit:,} bytes; "
        "send fewer events per batch or raise --max-body",
        limit=limit,
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, decompressed if gzipped; :class:`ApiError` 413 past ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise ApiError(
            415,
            "unsupported_encoding",
            f"Content-Encoding {encoding!r} is not supported; send identity or gzip",
        )
    # Decompress with a bound, so a small gzip bomb cannot fill memory.
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
        if len(out) > limit or inflater.unconsumed_tail:
            raise _too_large(limit)
        if not inflater.eof:
            raise ApiError(400, "bad_gzip", "the gzip body is truncated")
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise ApiError(400, "bad_gzip", f"the body is not valid gzip ({exc})") from None
    return out


# -- wrapping -------------------------------------------------------------------------


def _render(route: ApiRoute, result: Any) -> Response:
    if isinstance(result, Response):
        return result
    return JSONResponse(result, status_code=route.status)


@dataclass
class _Seen:
    """What the wrapper learnt of a request before it ended: who called, and whether the
    role check let them."""

    principal: Principal | None = None
    allowed: bool = False


def record_read(
    request: Request,
    *,
    via: str,
    route: str,
    node: str | None,
    principal: Principal | None,
    allowed: bool,
    status: int,
    failure: BaseException | None,
) -> None:
    """Queue the access event of one read; a refusal of a caller the trail knows counts too.

    Never raises: a failure of the recording machinery is logged, not the caller's problem.
    """
    if principal is None:
        principal = getattr(failure, "principal", None)
        if not isinstance(principal, Principal):
            return  # no token, or one this trail never issued: see _access's docstring
    query = {k: v for k, v in request.query_params.items() if k not in ("nodeId", "purpose")}
    reason = f"role {principal.role} may call {route}" if allowed else str(failure)
    try:
        request.app.state.access.record(
            principal,
            via=via,
            route=route,
            node=node[:4096] if node else None,
            allowed=allowed,
            reason=reason,
            status=status,
            purpose=(request.query_params.get("purpose") or "")[:200] or None,
            query=query,
        )
    except Exception:
        log.exception("could not queue the access event of %s by %s", route, principal.name)


def _api_node(request: Request) -> str | None:
    node = request.query_params.get("nodeId")
    if node:
        return node
    run_id = request.path_params.get("runId")
    return f"run:{run_id}" if run_id else None


def starlette_route(route: ApiRoute) -> Route:
    """The Starlette route for an API route: auth, roles, parameters, body, rendering, errors."""
    is_async = inspect.iscoroutinefunction(route.handler)
    reads = route.method == "GET" and not route.public
    label = f"{route.method} {route.path}"

    def prepare(
        request: Request, seen: _Seen, known: Principal | None = None
    ) -> tuple[Principal, dict[str, Any]]:
        if route.public:
            principal = Principal(name="anonymous", role="", token_id="")
        else:
            principal = seen.principal = known or authenticate_sync(request)
            if route.roles:
                require(principal, *route.roles)
        seen.allowed = True
        return principal, parse_params(route, request)

    def run_sync(request: Request, seen: _Seen) -> Any:
        principal, params = prepare(request, seen)
        return route.handler(Call(request=request, principal=principal, params=params))

    async def serve(request: Request, seen: _Seen) -> Response:
        if not is_async and route.body is None:
            # The common case: one trip to the thread pool for auth and the handler.
            return _render(route, await run_in_threadpool(run_sync, request, seen))
        # Credentials are checked before a (possibly large) body is read; a token checked
        # moments ago needs no store query, so no trip to the thread pool either.
        known = None if route.public else authenticate_cached(request)
        if known is not None:
            principal, params = prepare(request, seen, known)
        else:
            principal, params = await run_in_threadpool(prepare, request, seen)
        call = Call(request=request, principal=principal, params=params)
        if route.body is not None:
            call.body = await read_body(request, request.app.state.settings.max_body)
        if is_async:
            result = await route.handler(call)
        else:
            result = await run_in_threadpool(route.handler, call)
        return _render(route, result)

    async def endpoint(request: Request) -> Response:
        seen = _Seen()
        failure: Exception | None = None
        try:
            response = await serve(request, seen)
        except Exception as exc:
            failure = exc
            response = error_response(exc)
        governed_it = route.governed and (failure is None or isinstance(failure, PolicyDenied))
        if reads and not governed_it:
            record_read(
                request,
                via="api",
                route=label,
                node=_api_node(request),
                principal=seen.principal,
                allowed=seen.allowed,
                status=response.status_code,
                failure=failure,
            )
        return response

    endpoint.__name__ = route.name
    return Route(route.path, endpoint, methods=[route.method], name=route.name)
