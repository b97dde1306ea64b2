"""The web catalog: server-rendered pages over the trail, for people.

Every page is a Jinja2 template (autoescaped, so whatever a pipeline or a user
recorded is shown as text, never markup) filled from the same library calls the
API and the CLI make. The pages live by group: the catalog and lineage
explorer in :mod:`datatrail.server._ui_catalog`, policies, audit and
verification in :mod:`datatrail.server._ui_audit`, and what they share
(templates, the token and role check, access events) in
:mod:`datatrail.server._ui_base`. This module holds sign-in and the route table.

Sign-in pastes an API token, kept in the ``datatrail_token`` cookie (HTTP-only,
SameSite=Strict); each page checks the token and role exactly as the API does,
and each page read is an access event, as each API read is.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from datatrail.server._auth import COOKIE
from datatrail.server._errors import ApiError
from datatrail.server._ui_audit import audit, bundle, policies, run_verify, verification
from datatrail.server._ui_base import HERE, lineage_url, local, login_page, node_url, render
from datatrail.server._ui_catalog import artifact, dataset, home, job, lineage, run, search

__all__ = ["lineage_url", "node_url", "ui_routes"]


async def login(request: Request) -> Response:
    """GET shows the form; POST checks the pasted token and keeps it in the cookie."""
    if request.method == "GET":
        return login_page(request, None, 200)
    body = (await request.body()).decode("utf-8", "replace")
    form = {k: v[0] for k, v in parse_qs(body).items()}
    token = form.get("token", "").strip()
    target = local(form.get("next"))
    if not token:
        return render(request, "login.html", None, 400, message="paste a token", next=target)
    try:
        await run_in_threadpool(request.app.state.auth.check, token)
    except ApiError as exc:
        return render(request, "login.html", None, 401, message=str(exc), next=target)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


async def logout(request: Request) -> Response:
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


async def root(request: Request) -> Response:
    return RedirectResponse("/ui/", status_code=307)


def ui_routes() -> list[BaseRoute]:
    """The web catalog's routes, mounted at ``/`` by ``create_app``."""
    return [
        Route("/", root),
        Route("/ui/login", login, methods=["GET", "POST"]),
        Route("/ui/logout", logout, methods=["POST"]),
        Route("/ui/", home),
        Route("/ui/search", search),
        Route("/ui/dataset", dataset),
        Route("/ui/job", job),
        Route("/ui/artifact", artifact),
        Route("/ui/run/{run_id}", run),
        Route("/ui/lineage", lineage),
        Route("/ui/policies", policies),
        Route("/ui/audit", audit),
        Route("/ui/verify", verification),
        Route("/ui/verify", run_verify, methods=["POST"]),
        Route("/ui/bundle", bundle),
        Mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static"),
    ]
