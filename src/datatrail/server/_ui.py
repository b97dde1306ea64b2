"""The web catalog: server-rendered pages over the trail, for people.

Every page is a Jinja2 template (autoescaped, so whatever a pipeline or a user
recorded is shown as text, never markup) filled from the same library calls the
API and the CLI make: ``Trail`` for runs and lineage, ``datatrail.governance``
for policies, classifications and governed reads, ``datatrail.retention`` for
holds and deletion dates, ``datatrail.audit`` for verification and bundles.
Where a governance part is not installed the page reads its facts from the
``records`` projection instead. The lineage explorer ships its graph as JSON
and lays it out in the browser (``static/lineage.js``), collapsed by default.

Sign-in pastes an API token, kept in the ``datatrail_token`` cookie (HTTP-only,
SameSite=Strict); each page checks the token and role exactly as the API does.
"""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from datatrail.errors import DatatrailError, NodeNotFound, PolicyDenied, UsageError
from datatrail.lineage import Trail
from datatrail.model import Record, from_json, now_ts, parse_node_id, parse_ts, uuid7
from datatrail.server._auth import COOKIE, Principal, authenticate_sync, require
from datatrail.server._errors import ApiError
from datatrail.store import Store

__all__ = ["ui_routes"]

_HERE = Path(__file__).parent
VIEW = ("viewer", "auditor", "policy-admin")
"""Roles that may browse the catalog and lineage (``admin`` always may)."""
POLICY = ("auditor", "policy-admin")
"""Roles that may read policy versions."""
AUDIT = ("auditor",)
"""Roles that may read the access log, run verification and download bundles."""
_MAX_DEPTH = 50
_PREVIEW_ROWS = 20

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


def _short(value: Any, n: int = 12) -> str:
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
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=True,
        undefined=jinja2.ChainableUndefined,  # records written by others may lack a field
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["node_url"] = node_url
    env.filters["lineage_url"] = lineage_url
    env.filters["short"] = _short
    env.filters["pretty"] = _pretty
    env.filters["when"] = _when
    env.globals["quote"] = lambda s: quote(str(s), safe="")
    return env


def _allowed(who: Principal | None, roles: tuple[str, ...]) -> bool:
    return who is not None and (who.role == "admin" or who.role in roles)


def _render(
    request: Request, template: str, who: Principal | None, status: int = 200, **ctx: Any
) -> HTMLResponse:
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


def _local(target: str | None) -> str:
    """Only same-site paths are followed after sign-in (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/ui/"
    return target


def _login_page(request: Request, message: str | None, status: int) -> HTMLResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    nxt = request.query_params.get("next") if request.url.path == "/ui/login" else target
    return _render(request, "login.html", None, status, message=message, next=_local(nxt))


def page(*roles: str) -> Callable[[Page], Callable[[Request], Any]]:
    """A page handler behind the token check and role check, rendered or turned into an error page."""

    def wrap(fn: Page) -> Callable[[Request], Any]:
        @functools.wraps(fn)
        async def endpoint(request: Request) -> Response:
            try:
                who = await run_in_threadpool(authenticate_sync, request)
            except ApiError as exc:
                return _login_page(request, str(exc) if request.cookies.get(COOKIE) else None, 401)
            try:
                require(who, *roles)
                out = await run_in_threadpool(fn, request, who)
            except DatatrailError as exc:
                status = int(getattr(exc, "status", 500))
                return _render(
                    request,
                    "error.html",
                    who,
                    status if 400 <= status <= 599 else 500,
                    title="Not allowed" if status == 403 else "Error",
                    message=str(exc),
                )
            if isinstance(out, Response):
                return out
            template, ctx = out
            return _render(request, template, who, **ctx)

        return endpoint

    return wrap


def _state(request: Request) -> tuple[Store, Trail]:
    return request.app.state.store, request.app.state.trail


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
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


def _records(
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


def _open_items(
    store: Store, opened: str, closed: str, key: Callable[[dict[str, Any]], Any], **kw: Any
) -> list[dict[str, Any]]:
    """Records of ``opened`` not followed by a matching ``closed`` (holds, unacknowledged alerts)."""
    rows = _records(store, (opened, closed), limit=10_000, **kw)
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


def _holds(store: Store, subject: str | None = None) -> list[dict[str, Any]]:
    return _open_items(
        store,
        "hold.added",
        "hold.released",
        lambda r: (r["subject"], r["data"].get("case")),
        subject=subject,
    )


def _alerts(store: Store) -> list[dict[str, Any]]:
    return _open_items(store, "alert", "alert.ack", lambda r: r["data"].get("alert_id"))


def _last_verify(store: Store) -> dict[str, Any] | None:
    found = _records(store, ("audit.verify",), limit=1)
    return found[0] if found else None


def _checkpoint(store: Store) -> dict[str, Any] | None:
    latest = store.latest_checkpoint()
    if latest is None:
        return None
    return {"size": latest.size, "root": latest.root.hex(), "ts": latest.ts, "note": latest.note}


def _optional(module: str, name: str) -> Any:
    """A function of a governance part, or ``None`` where that part is not installed (yet)."""
    import importlib

    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def _count(store: Store, table: str) -> int:
    return int(store.query(f"SELECT COUNT(*) FROM {table}")[0][0])


# -- pages ----------------------------------------------------------------------------------


@page(*VIEW)
def home(request: Request, who: Principal) -> tuple[str, dict[str, Any]]:
    store, trail = _state(request)
    counts = {t: _count(store, t) for t in ("runs", "jobs", "datasets", "artifacts")}
    counts["events"] = store.size()
    return "home.html", {
        "title": "Home",
        "counts": counts,
        "recent": trail.runs(limit=10),
        "failed": trail.runs(status="failed", limit=10),
        "checkpoint": _checkpoint(store),
        "verify": _last_verify(store),
    }


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@page(*VIEW)
def search(request: Request, who: Principal) -> tuple[str, dict[str, Any]]:
    store, _ = _state(request)
    q = request.query_params.get("q", "").strip()
    found: dict[str, list[Any]] = {"datasets": [], "jobs": [], "runs": []}
    if q:
        pattern = _like(q)
        found["datasets"] = [
            f"dataset:{ns}:{name}"
            for ns, name in store.query(
                "SELECT namespace, name FROM datasets WHERE LOWER(namespace || ':' || name) "
                "LIKE ? ESCAPE '\\' ORDER BY name LIMIT 50",
                (pattern,),
            )
        ]
        found["jobs"] = [
            f"job:{ns}:{name}"
            for ns, name in store.query(
                "SELECT namespace, name FROM jobs WHERE LOWER(namespace || ':' || name) "
                "LIKE ? ESCAPE '\\' ORDER BY name LIMIT 50",
                (pattern,),
            )
        ]
        found["runs"] = store.query(
            "SELECT run_id, job_name, status, started_at FROM runs WHERE LOWER(run_id) LIKE ? "
            "ESCAPE '\\' OR LOWER(job_name) LIKE ? ESCAPE '\\' ORDER BY started_at DESC LIMIT 50",
            (pattern, pattern),
        )
    return "search.html", {"title": "Search", "q": q, "found": found}


def _node_param(request: Request, name: str = "id") -> str:
    raw = request.query_params.get(name, "").strip()
    if not raw:
        raise UsageError(
            f"the page needs ?{name}=NODE_ID (dataset:NS:NAME, job:…, run:…, artifact:…)"
        )
    return raw


def _facets(store: Store, artifact_id: str) -> dict[str, Any]:
    """The dataset facets recorded with a version (quality assertions, schema, …), merged."""
    out: dict[str, Any] = {}
    for (idx,) in store.query(
        "SELECT idx FROM run_io WHERE artifact_id = ? ORDER BY idx LIMIT 20", (artifact_id,)
    ):
        event = store.event(int(idx))
        body = from_json(event.body) if event is not None and event.body is not None else None
        if isinstance(body, dict) and isinstance(body.get("facets"), dict):
            out.update(body["facets"])
    return out


def _governance(store: Store, trail: Trail, node: str, ns: str, name: str) -> dict[str, Any]:
    """Owner, classifications with why, and retention status of a dataset's latest version."""
    info: dict[str, Any] = {"owners": [], "labels": {}, "retention": None, "policy_version": None}
    active = _optional("datatrail.governance", "active_policy")
    version = active(store) if active is not None else None
    if version is not None:
        info["policy_version"] = version.version
        info["owners"] = list(version.policy.owners_for(ns, name))
    why = _optional("datatrail.governance", "classifications_of")
    if why is not None:
        info["labels"] = {k: list(v) for k, v in why(store, node).items()}
    plan = _optional("datatrail.retention", "plan")
    latest = store.query(
        "SELECT artifact_id FROM run_io WHERE dataset_namespace = ? AND dataset_name = ? "
        "ORDER BY idx DESC LIMIT 1",
        (ns, name),
    )
    if plan is not None and latest:
        items = plan(store, artifact=str(latest[0][0]), everything=True).items
        mine = [d for d in items if d.dataset == node] or list(items)
        info["retention"] = mine[0].to_dict() if mine else None
    return info


def _preview(trail: Trail, node: str, who: Principal, purpose: str | None) -> dict[str, Any]:
    """Read through governance (masks applied, an access event recorded) and tabulate the head."""
    read = _optional("datatrail.governance", "read")
    if read is None:
        return {"error": "governed reads need datatrail.governance, which is not installed"}

    try:
        data = read(node, principal=who.name, purpose=purpose or None, trail=trail, via="ui")
    except PolicyDenied as exc:
        decision = exc.decision
        return {
            "denied": str(exc),
            "decision": decision.to_dict() if hasattr(decision, "to_dict") else None,
        }
    if hasattr(data, "to_pandas") and not hasattr(data, "iloc"):
        data = data.slice(0, _PREVIEW_ROWS).to_pandas() if hasattr(data, "slice") else data
    if hasattr(data, "iloc") and hasattr(data, "columns"):
        head = data.head(_PREVIEW_ROWS)
        return {
            "columns": [str(c) for c in head.columns],
            "rows": [["" if v is None else str(v) for v in row] for row in head.itertuples(False)],
            "total": len(data),
        }
    if isinstance(data, bytes | bytearray):
        return {"text": bytes(data[:4096]).decode("utf-8", "replace"), "total": len(data)}
    return {"text": str(data)}


@page(*VIEW)
def dataset(request: Request, who: Principal) -> tuple[str, dict[str, Any]]:
    store, trail = _state(request)
    node = _node_param(request)
    parsed = parse_node_id(node)
    if parsed.kind != "dataset":
        raise UsageError(f"{node} is not a dataset id (dataset:NAMESPACE:NAME)")
    ns, name = parsed.namespace or "", parsed.name or ""
    record = trail.dataset(ns, name)
    latest = trail.artifact(record.versions[-1]["artifact_id"]) if record.versions else None
    facets = _facets(store, latest.artifact_id) if latest else {}
    quality = {
        k: v
        for k, v in facets.items()
        if any(w in k.lower() for w in ("quality", "assertion", "metric", "expectation"))
    }
    preview = None
    if request.query_params.get("preview"):
        preview = _preview(trail, node, who, request.query_params.get("purpose"))
    return "dataset.html", {
        "title": name,
        "node": node,
        "record": record,
        "latest": latest,
        "facets": facets,
        "quality": quality,
        "gov": _governance(store, trail, node, ns, name),
        "set_labels": _records(store, ("classification.set",), subject=node),
        "holds": _holds(store, node),
        "purged": _records(store, ("retention.purged",), subject=node, limit=50),
        "preview": preview,
        "purpose": request.query_params.get("purpose", ""),
    }


@page(*VIEW)
def run(request: Request, who: Principal) -> tuple[str, dict[str, Any]]:
    _, trail = _state(request)
    record = trail.run(request.path_params["run_id"])
    return "run.html", {"title": f"run {record.job_name}", "run": record}


@page(*VIEW)
def job(request: Request, who: Principal) -> tuple[str, dict[str, Any]]:
    _, trail = _state(request)
    node = str(trail.resolve(_node_param(request)))
    if not node.startswith("job:"):
        raise UsageError(f"{node} is not a job id (job:NAMESPACE:NAME)")
    runs = trail.runs(job=node, limit=50)
    return "job.html", {"title": node.split(":", 2)[-1], "node": node, "runs": runs}


@page(*VIEW)
def artifact(request: Request, who: Principal) -> tuple[str, dict[str, Any]]:
    store, trail = _state(request)
    node = _node_param(request)
    key = node.removeprefix("artifact:")
    record = trail.artifact(key)
    return "artifact.html", {
        "title": _short(key),
        "node": "artifact:" + key,
        "record": record,
        "facets": _facets(store, key),
    }


def _graph(trail: Trail, node: str, depth: int) -> dict[str, Any]:
    """Both closures of a node, compactly: the browser lays them out (static/lineage.js)."""

    def side(direction: str) -> dict[str, Any]:
        g = trail.lineage(node, direction=direction, depth=depth)  # type: ignore[arg-type]
        return {
            "nodes": [[n.id, n.kind, n.label, n.depth] for n in g.nodes],
            "edges": [[e.source, e.target] for e in g.edges],
        }

    return {"root": node, "depth": depth, "up": side("upstream"), "down": side("downstream")}


@page(*VIEW)
def lineage(request: Request, who: Principal) -> tuple[str, dict[str, Any]]:
    _, trail = _state(request)
    raw = request.query_params.get("node", "").strip()
    depth = _int(request, "depth", 3, 1, _MAX_DEPTH)
    graph = None
    if raw:
        node = str(trail.resolve(raw))
        graph = _graph(trail, node, depth)
    return "lineage.html", {"title": "Lineage", "node": raw, "depth": depth, "graph": graph}


def _policy_versions(store: Store) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
    history = _records(
        store,
        (
            "policy.proposed",
            "policy.approved",
            "policy.rejected",
            "policy.activated",
            "policy.rolled_back",
        ),
        limit=1000,
    )
    versions: dict[int, dict[str, Any]] = {}
    for row in reversed(history):  # oldest first: the first record with content defines it
        data = row["data"]
        version = data.get("version")
        if isinstance(version, int) and "content" in data and version not in versions:
            versions[version] = {**data, "ts": row["ts"]}
    return history, versions


def _active_version(store: Store, history: list[dict[str, Any]]) -> int | None:
    active_policy = _optional("datatrail.governance", "active_policy")
    if active_policy is not None:
        current = active_policy(store)
        return None if current is None else int(current.version)
    for row in history:
        if row["topic"] in ("policy.activated", "policy.rolled_back"):
            version = row["data"].get("version")
            return int(version) if isinstance(version, int) else None
    return None


def _diff_class(line: str) -> str:
    if line.startswith(("---", "+++", "@@")):
        return "hdr"
    return {"+": "add", "-": "del"}.get(line[:1], "ctx")


@page(*POLICY)
def policies(request: Request, who: Principal) -> tuple[str, dict[str, Any]]:
    store, _ = _state(request)
    history, versions = _policy_versions(store)
    active = _active_version(store, history)
    a = _int(request, "a", 0, 0, 10**9) or None
    b = _int(request, "b", 0, 0, 10**9) or None
    diff: list[tuple[str, str]] | None = None
    if a and b:
        for v in (a, b):
            if v not in versions:
                raise NodeNotFound(f"no policy version {v} with content in this trail")
        lines = difflib.unified_diff(
            str(versions[a]["content"]).splitlines(),
            str(versions[b]["content"]).splitlines(),
            f"version {a}",
            f"version {b}",
            lineterm="",
        )
        diff = [(_diff_class(ln), ln) for ln in lines]
    return "policies.html", {
        "title": "Policies",
        "active": active,
        "current": versions.get(active) if active else None,
        "history": history,
        "versions": sorted(versions, reverse=True),
        "a": a,
        "b": b,
        "diff": diff,
    }


def _access_log(request: Request, store: Store) -> tuple[list[dict[str, Any]], dict[str, str]]:
    filters = {
        k: request.query_params.get(k, "").strip()
        for k in ("principal", "outcome", "subject", "since", "purpose")
    }
    since = parse_ts(filters["since"]) if filters["since"] else None
    limit = _int(request, "limit", 200, 1, 5000)
    rows = _records(
        store, ("access",), subject=filters["subject"] or None, since=since, limit=20_000
    )
    out = []
    for row in rows:
        data = row["data"]
        if filters["principal"] and data.get("principal") != filters["principal"]:
            continue
        if filters["outcome"] and data.get("outcome") != filters["outcome"]:
            continue
        if filters["purpose"] and data.get("purpose") != filters["purpose"]:
            continue
        out.append(row)
        if len(out) >= limit:
            break
    return out, filters


def _compliance(store: Store) -> dict[str, Any]:
    overdue: list[dict[str, Any]] | None = None
    review = 0
    report = _optional("datatrail.retention", "compliance_report")
    if report is not None:
        made = report(store, check_ledger=False)
        overdue, review = made.overdue, made.totals.get("review_queue", 0)
    denials = [
        r for r in _records(store, ("access",), limit=5000) if r["data"].get("outcome") == "deny"
    ]
    return {
        "overdue": overdue,
        "review": review,
        "holds": _holds(store),
        "denials": denials[:50],
        "denials_total": len(denials),
        "alerts": _alerts(store),
    }


@page(*AUDIT)
def audit(request: Request, who: Principal) -> tuple[str, dict[str, Any]]:
    store, _ = _state(request)
    log, filters = _access_log(request, store)
    return "audit.html", {
        "title": "Audit",
        "log": log,
        "filters": filters,
        "compliance": _compliance(store),
    }


@page(*AUDIT)
def verification(request: Request, who: Principal) -> tuple[str, dict[str, Any]]:
    store, _ = _state(request)
    return "verify.html", {
        "title": "Verification",
        "checkpoint": _checkpoint(store),
        "verify": _last_verify(store),
        "node": request.query_params.get("node", ""),
    }


def _verifier(request: Request) -> Path | None:
    home = getattr(request.app.state, "home", None)
    key = getattr(home, "verifier_key", None)
    return key if isinstance(key, Path) and key.exists() else None


@page(*AUDIT)
def run_verify(request: Request, who: Principal) -> Response:
    """Verify the whole trail now and record the result, so the page can show the last one."""
    from datatrail.audit import verify

    store, _ = _state(request)
    report = verify(store, verifier=_verifier(request))
    first = report.first_fault
    data = {
        "ok": report.ok,
        "size": report.size,
        "root": report.root,
        "faults_total": report.faults_total,
        "first_fault": None if first is None else first.detail,
        "checkpoints": report.checkpoints,
        "seconds": report.seconds,
        "by": who.name,
    }
    from datatrail.model import Actor

    store.append(
        [
            Record(
                id=uuid7(),
                ts=now_ts(),
                topic="audit.verify",
                subject=None,
                data=data,
                actor=Actor(user=who.name, host="datatrail-ui"),
            )
        ],
        dedupe=False,
    )
    return RedirectResponse("/ui/verify", status_code=303)


@page(*AUDIT)
def bundle(request: Request, who: Principal) -> Response:
    """An audit bundle for any node, as a JSON download checkable offline."""
    import msgspec

    from datatrail.audit import prove

    store, _ = _state(request)
    node = _node_param(request, "node")
    made = prove(store, node, verifier=_verifier(request))
    safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in node)[:80]
    return Response(
        msgspec.json.format(msgspec.json.encode(made), indent=2),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="bundle-{safe}.json"'},
    )


# -- sign-in --------------------------------------------------------------------------------


async def login(request: Request) -> Response:
    """GET shows the form; POST checks the pasted token and keeps it in the cookie."""
    if request.method == "GET":
        return _login_page(request, None, 200)
    body = (await request.body()).decode("utf-8", "replace")
    form = {k: v[0] for k, v in parse_qs(body).items()}
    token = form.get("token", "").strip()
    target = _local(form.get("next"))
    if not token:
        return _render(request, "login.html", None, 400, message="paste a token", next=target)
    try:
        await run_in_threadpool(request.app.state.auth.check, token)
    except ApiError as exc:
        return _render(request, "login.html", None, 401, message=str(exc), next=target)
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
        Mount("/ui/static", StaticFiles(directory=_HERE / "static"), name="ui-static"),
    ]
