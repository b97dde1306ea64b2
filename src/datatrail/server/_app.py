"""``create_app``: the ASGI app over one trail's store.

The app is stateless beyond its store connection: tokens, events and
everything else live in the store (what it caches, the store can always
overrule), so any number of servers can serve one PostgreSQL store.
``app.state`` holds ``home`` (the trail folder, for keys; ``None`` when given a
bare store), ``store``, ``trail`` (a :class:`Trail` over the store),
``settings``, ``routes`` (the API route table), ``committer`` (the OpenLineage
group committer) and ``access`` (the queue of access records); their two
background threads start on first use and finish their work when the app's
lifespan ends. The web UI's routes (``datatrail.server._ui.ui_routes``) are
mounted at ``/`` behind the API.
"""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount

from datatrail.errors import ConfigError
from datatrail.lineage import Trail
from datatrail.server._access import AccessLog
from datatrail.server._api import API_ROUTES
from datatrail.server._auth import Authenticator
from datatrail.server._commit import GroupCommitter
from datatrail.server._errors import JSONResponse
from datatrail.server._governance import GOVERNANCE_ROUTES
from datatrail.server._ingest import INGEST_ROUTES
from datatrail.server._openapi import OPENAPI_ROUTE
from datatrail.server._routes import ApiRoute, starlette_route
from datatrail.server._stream import STREAM_ROUTES
from datatrail.store import HOME_DIRNAME, Home, Store, find_home, open_store

__all__ = [
    "DEFAULT_MAX_BODY",
    "ROUTES",
    "Settings",
    "app_from_env",
    "create_app",
    "resolve_home",
    "tune_gc_for_serving",
]

DEFAULT_MAX_BODY = 16 * 1024 * 1024
"""Request bodies (after gunzip) larger than this get 413."""

ROUTES: tuple[ApiRoute, ...] = (
    *API_ROUTES,
    *INGEST_ROUTES,
    *STREAM_ROUTES,
    *GOVERNANCE_ROUTES,
    OPENAPI_ROUTE,
)
"""Every API route; OpenAPI and the auth tests walk this table."""


@dataclass(frozen=True)
class Settings:
    """Server knobs, in ``app.state.settings``."""

    max_body: int = DEFAULT_MAX_BODY
    poll_interval: float = 0.5
    """Seconds between the event stream's looks at the store's size."""
    heartbeat: float = 15.0
    """Seconds between keep-alive comments on an idle event stream."""
    token_cache_seconds: float = 2.0
    """How long a checked token is trusted before the store is asked again."""


def resolve_home(home_or_url: Home | str | os.PathLike[str]) -> Home:
    """The trail a server serves: a :class:`Home`, a project or trail folder, a store file or a URL."""
    if isinstance(home_or_url, Home):
        return home_or_url
    text = os.fspath(home_or_url)
    if "://" in text:
        keys = os.environ.get("DATATRAIL_HOME")
        if keys:
            return Home(path=Path(keys).expanduser().resolve(), url=text)
        if text.startswith("sqlite:///"):
            return Home(path=Path(text[len("sqlite:///") :]).resolve().parent, url=text)
        found = find_home()
        return Home(path=found.path if found else Path.cwd() / HOME_DIRNAME, url=text)
    path = Path(text).expanduser().resolve()
    if path.is_dir():
        if (path / HOME_DIRNAME).is_dir():
            path = path / HOME_DIRNAME
        return Home(path=path, url=f"sqlite:///{path / 'trail.db'}")
    if path.is_file():
        return Home(path=path.parent, url=f"sqlite:///{path}")
    raise ConfigError(f"{text}: no such trail folder, store file or URL; run `datatrail init`")


def _ui_routes() -> list[BaseRoute]:
    # The web UI lives in _ui.py, written separately; until it exists the server is API-only.
    try:
        from datatrail.server._ui import ui_routes  # type: ignore[import-not-found,unused-ignore]
    except ModuleNotFoundError as exc:
        if exc.name != "datatrail.server._ui":
            raise
        return []
    routes: list[BaseRoute] = list(ui_routes())
    return routes


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(
        {"error": {"code": code, "message": f"{request.method} {request.url.path}: {exc.detail}"}},
        status_code=exc.status_code,
        headers=exc.headers,
    )


def create_app(
    home_or_url: Home | str | os.PathLike[str] | Store,
    *,
    max_body: int = DEFAULT_MAX_BODY,
    poll_interval: float = 0.5,
    heartbeat: float = 15.0,
    token_cache_seconds: float = 2.0,
    extra_routes: tuple[ApiRoute, ...] = (),
    spill_dir: str | os.PathLike[str] | None = None,
) -> Starlette:
    """The datatrail ASGI app over a trail (folder, store file, URL, :class:`Home` or open store).

    ``max_body`` bounds request bodies (after gunzip; larger ones get 413).
    A store passed in is used as is (and not closed with the app); anything
    else is opened with the trail's signing key, so appends are checkpointed.
    ``spill_dir`` is where access records wait while the store does not answer
    (default: ``spill/server`` in the trail folder).
    """
    if max_body < 1:
        raise ConfigError(f"max_body must be positive, not {max_body}")
    owned = not isinstance(home_or_url, Store)
    if isinstance(home_or_url, Store):
        home: Home | None = None
        store: Any = home_or_url
    else:
        home = resolve_home(home_or_url)
        store = open_store(home.url, create=False, signer=home.signer())
    settings = Settings(
        max_body=max_body,
        poll_interval=poll_interval,
        heartbeat=heartbeat,
        token_cache_seconds=token_cache_seconds,
    )
    routes = (*ROUTES, *extra_routes)
    committer = GroupCommitter(store)
    access = AccessLog(
        store, home=home, spill_dir=Path(spill_dir) if spill_dir is not None else None
    )

    running = [0]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Counted, because test clients may run the lifespan of one app more than once at a time.
        running[0] += 1
        try:
            yield
        finally:
            running[0] -= 1
            if running[0] == 0:
                # Answer what is in flight and make every access record durable first.
                committer.close()
                access.close()
                if owned:
                    store.close()

    app = Starlette(
        routes=[
            *(starlette_route(r) for r in routes),
            Mount("/", routes=_ui_routes()),
        ],
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.home = home
    app.state.store = store
    app.state.trail = Trail(store=store)
    app.state.trail.home = home
    app.state.settings = settings
    app.state.routes = routes
    app.state.auth = Authenticator(store, cache_seconds=token_cache_seconds)
    app.state.committer = committer
    app.state.access = access
    return app


def tune_gc_for_serving() -> None:
    """Set the garbage collector for a process that only serves (``datatrail serve``).

    Everything loaded so far (modules, the app, its caches) moves to the permanent
    generation, and the youngest generation is collected every 20,000 allocations
    rather than 700: ingest makes and drops many short-lived objects, and collecting
    them that often cost 10-20% of a batch. Only for the server's own process, never
    for a library caller's.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)


def app_from_env() -> Starlette:
    """The app for ``uvicorn --factory`` (``datatrail serve --workers N``): configured by env vars.

    ``DATATRAIL_SERVE_TRAIL`` names the trail; ``DATATRAIL_SERVE_MAX_BODY`` the body limit.
    A serving process, so the collector is tuned for it (:func:`tune_gc_for_serving`).
    """
    trail = os.environ.get("DATATRAIL_SERVE_TRAIL")
    if not trail:
        found = find_home()
        if found is None:
            raise ConfigError("no trail to serve: set DATATRAIL_SERVE_TRAIL or DATATRAIL_URL")
        app = create_app(found)
    else:
        limit = os.environ.get("DATATRAIL_SERVE_MAX_BODY")
        app = create_app(trail, max_body=int(limit) if limit else DEFAULT_MAX_BODY)
    tune_gc_for_serving()
    return app
