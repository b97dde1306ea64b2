"""What every page of the web catalog shares: templates, the sign-in and role check, access
events, and small readers of the ``records`` projection.

:func:`page` wraps a page function with the token check (the sign-in form on
401), the role check (an error page on 403) and the error page for any
datatrail error, and records the read as an access event, as the API does for
its GET routes (see :mod:`datatrail.server._access`).
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from datatrail.errors import DatatrailError, UsageError
from datatrail.lineage import Trail
from datatrail.model import from_json
from datatrail.server._auth import COOKIE, Principal, authenticate_sync, require
from datatrail.server._errors import ApiError
from datatrail.server._routes import record_read
from datatrail.store import Store

__all__ = [
    "AUDIT",
    "HERE",
    "POLICY",
    "VIEW",
    "Page",
    "checkpoint",
    "count",
    "holds",
    "int_param",
    "last_verify",
    "like",
    "lineage_url",
    "local",
    "login_page",
    "node_param",
    "node_url",
    "open_items",
    "optional",
    "page",
    "records",
    "render",
    "short",
    "state",
]

HERE = Path(__file__).parent
VIEW = ("viewer", "auditor", "policy-admin")
"""Roles that may browse the catalog and lineage (``admin`` always may)."""
POLICY = ("auditor", "policy-admin")
"""Roles that may read policy versions."""
AUDIT = ("auditor",)
"""Roles that may read the access log, run verification and download bundles."""

Page = Callable[[Request, Principal], "tuple[str, dict[str, Any]] | Response"]


def node_url(node: str) -> str:
    """The page of a node id."""
    kind = node.split(":", 1)[0]
    if kind == "run":
        return "/ui/run/" + quote(node.split(":", 1)[1], safe="")
    return f"/ui/{kind}?id=" + quote(node, safe="")


def lineage_url(node: str, depth: int | None = None) -> str:
    """The lineage explorer centred on a node id."""
    return "/ui/lineage?node=" + quote(node, safe="") + (f"&depth={depth}" if depth else "")


def short(value: Any, n: int = 12) -> str:
    """A value cut for a table cell; content hashes keep their prefix."""
    text = "" if value is None else str(value)
    if text.startswith("blake3:"):
        return "blake3:" + text[7 : 7 + n]
    return text if len(text) <= 80 else text[:77] + "…"


def _when(ts: Any) -> str:
    """A recorded time, to the second, for people (the full value stays in the log)."""
    text = "" if ts is None else str(ts)
    return text[:19].replace("T", " ") + (" UTC" if len(text) >= 19 else "")


def _pretty(value: Any, indent: int | None = None) -> str:
    """JSON for people (autoescaping makes it safe; ``tojson`` is only for ``<script>``)."""
    return json.dumps(value, indent=indent, ensure_ascii=False, default=str, sort_keys=True)


@functools.cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.ChainableUndefined,  # records written by others may lack a field
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["node_url"] = node_url
    env.filters["lineage_url"] = lineage_url
    env.filters["short"] = short
    env.filters["pretty"] = _pretty
    env.filters["when"] = _when
    env.globals["quote"] = lambda s: quote(str(s), safe="")
    return env


def _allowed(who: Principal | None, roles: tuple[str, ...]) -> bool:
    return who is not None and (who.role == "admin" or who.role in roles)


def render(
    request: Request, template: str, who: Principal | None, status: int = 200, **ctx: Any
) -> HTMLResponse:
    """A page from its template, with the navigation the caller's role allows."""
    html = (
        _env()
        .get_template(template)
        .render(
            who=who,
            can_view=_allowed(who, VIEW),
            can_policy=_allowed(who, POLICY),
            can_audit=_allowed(who, AUDIT),
            path=request.url.path,
            **ctx,
        )
    )
    return HTMLResponse(html, status_code=status)


def local(target: str | None) -> str:
    """Only same-site paths are followed after sign-in (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/ui/"
    return target


def login_page(request: Request, message: str | None, status: int) -> HTMLResponse:
    """The sign-in form, coming back to the page asked for."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    nxt = request.query_params.get("next") if request.url.path == "/ui/login" else target
    return render(request, "login.html", None, status, message=message, next=local(nxt))


def _page_node(request: Request) -> str | None:
    """The node a page is about: ``?id=``, ``?node=`` or the run in its path."""
    node = request.query_params.get("id") or request.query_params.get("node")
    if node:
        return node.strip()
    run_id = request.path_params.get("run_id")
    return f"run:{run_id}" if run_id else None


def _record(
    request: Request,
    who: Principal | None,
    allowed: bool,
    status: int,
    failure: BaseException | None,
) -> None:
    if request.method != "GET":
        return  # an action (verifying) records its own result; only reads are access events
    route = getattr(request.scope.get("route"), "path", request.url.path)
    record_read(
        request,
        via="ui",
        route=f"GET {route}",
        node=_page_node(request),
        principal=who,
        allowed=allowed,
        status=status,
        failure=failure,
    )


def page(*roles: str) -> Callable[[Page], Callable[[Request], Any]]:
    """A page handler behind the token check and role check, rendered or turned into an error
    page, and recorded as an access event."""

    def wrap(fn: Page) -> Callable[[Request], Any]:
        @functools.wraps(fn)
        async def endpoint(request: Request) -> Response:
            try:
                who = await run_in_threadpool(authenticate_sync, request)
            except ApiError as exc:
                _record(request, None, False, 401, exc)
                return login_page(request, str(exc) if request.cookies.get(COOKIE) else None, 401)
            allowed = False
            try:
                require(who, *roles)
                allowed = True
                out = await run_in_threadpool(fn, request, who)
            except DatatrailError as exc:
                status = int(getattr(exc, "status", 500))
                status = status if 400 <= status <= 599 else 500
                _record(request, who, allowed, status, exc)
                return render(
                    request,
                    "error.html",
                    who,
                    status,
                    title="Not allowed" if status == 403 else "Error",
                    message=str(exc),
                )
            if isinstance(out, Response):
                response: Response = out
            else:
                template, ctx = out
                response = render(request, template, who, **ctx)
            _record(request, who, True, response.status_code, None)
            return response

        return endpoint

    return wrap


def state(request: Request) -> tuple[Store, Trail]:
    """The app's store and trail."""
    return request.app.state.store, request.app.state.trail


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    """A whole-number query parameter within bounds, or :class:`UsageError` (400)."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"{name} must be a whole number, not {raw!r}") from None
    if not low <= value <= high:
        raise UsageError(f"{name} must be between {low} and {high}, not {value}")
    return value


def node_param(request: Request, name: str = "id") -> str:
    """A node id the page needs, or :class:`UsageError` (400) saying how to give it."""
    raw = request.query_params.get(name, "").strip()
    if not raw:
        raise UsageError(
            f"the page needs ?{name}=NODE_ID (dataset:NS:NAME, job:…, run:…, artifact:…)"
        )
    return raw


def like(text: str) -> str:
    """A case-insensitive SQL ``LIKE`` pattern matching ``text`` literally."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def records(
    store: Store,
    topics: tuple[str, ...],
    *,
    subject: str | None = None,
    since: str | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """Newest-first records of some topics, as dicts with their data decoded."""
    sql = f"SELECT idx, topic, subject, ts, data, actor FROM records WHERE topic IN ({', '.join('?' * len(topics))})"
    params: list[Any] = list(topics)
    if subject is not None:
        sql += " AND subject = ?"
        params.append(subject)
    if since is not None:
        sql += " AND ts >= ?"
        params.append(since)
    rows = store.query(sql + " ORDER BY idx DESC LIMIT ?", (*params, limit))
    out = []
    for idx, topic, subj, ts, data, actor in rows:
        decoded = from_json(data) if data else {}
        out.append(
            {
                "index": idx,
                "topic": topic,
                "subject": subj,
                "ts": ts,
                "data": decoded if isinstance(decoded, dict) else {"value": decoded},
                "actor": from_json(actor) if actor else None,
            }
        )
    return out


def open_items(
    store: Store, opened: str, closed: str, key: Callable[[dict[str, Any]], Any], **kw: Any
) -> list[dict[str, Any]]:
    """Records of ``opened`` not followed by a matching ``closed`` (holds, unacknowledged alerts)."""
    rows = records(store, (opened, closed), limit=10_000, **kw)
    done: set[Any] = set()
    out = []
    for row in rows:  # newest first: a close seen before its open cancels it
        k = key(row)
        if row["topic"] == closed:
            done.add(k)
        elif k not in done:
            done.add(k)
            out.append(row)
    return out


def holds(store: Store, subject: str | None = None) -> list[dict[str, Any]]:
    """Legal holds still in force, newest first."""
    return open_items(
        store,
        "hold.added",
        "hold.released",
        lambda r: (r["subject"], r["data"].get("case")),
        subject=subject,
    )


def last_verify(store: Store) -> dict[str, Any] | None:
    """The newest recorded verification, if any."""
    found = records(store, ("audit.verify",), limit=1)
    return found[0] if found else None


def checkpoint(store: Store) -> dict[str, Any] | None:
    """The newest checkpoint, for display."""
    latest = store.latest_checkpoint()
    if latest is None:
        return None
    return {"size": latest.size, "root": latest.root.hex(), "ts": latest.ts, "note": latest.note}


def optional(module: str, name: str) -> Any:
    """A function of a governance part, or ``None`` where that part is not installed (yet)."""
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def count(store: Store, table: str) -> int:
    """How many rows a table holds."""
    return int(store.query(f"SELECT COUNT(*) FROM {table}")[0][0])
