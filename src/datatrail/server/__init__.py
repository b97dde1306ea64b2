"""The HTTP server: the API (OpenAPI at ``/openapi.json``), tokens and roles, OpenLineage
ingest, live events, and the web UI mounted beside it.

``create_app(trail)`` builds the ASGI app; ``datatrail serve`` runs it with uvicorn.
Tokens are made with :func:`create_token` (``datatrail token create``).
"""

from datatrail.server._app import (
    DEFAULT_MAX_BODY,
    ROUTES,
    Settings,
    create_app,
    resolve_home,
    tune_gc_for_serving,
)
from datatrail.server._auth import (
    ROLES,
    Principal,
    TokenInfo,
    authenticate,
    create_token,
    list_tokens,
    require,
    revoke_token,
)
from datatrail.server._routes import ApiRoute, Call, Param

__all__ = [
    "DEFAULT_MAX_BODY",
    "ROLES",
    "ROUTES",
    "ApiRoute",
    "Call",
    "Param",
    "Principal",
    "Settings",
    "TokenInfo",
    "authenticate",
    "create_app",
    "create_token",
    "list_tokens",
    "require",
    "resolve_home",
    "revoke_token",
    "tune_gc_for_serving",
]
