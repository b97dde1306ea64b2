"""API tokens and roles: who is calling, and may they.

A token is shown once, when it is made (``datatrail token create``), and kept
only as its SHA-256 in a ``token.created`` record of the log; revoking appends
a ``token.revoked`` record. Both are ordinary events of the verified trail, so
who could call the API, and since when, is itself auditable. A token looks like
``dtk_<token_id>_<secret>``: the id finds the record, the hash of the whole
token must match it.

Requests carry the token as ``Authorization: Bearer TOKEN`` or, for the web
UI, in the ``datatrail_token`` cookie. Tokens never appear in logs or error
messages. Roles: ``viewer`` (read lineage and catalog), ``producer`` (ingest
only), ``auditor`` (access log, reports, proofs), ``policy-admin`` (policies),
``admin`` (everything).
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import re
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from datatrail.errors import UsageError
from datatrail.model import Actor, Record, from_json, now_ts, parse_ts, uuid7
from datatrail.server._errors import ApiError
from datatrail.store import Store

__all__ = [
    "COOKIE",
    "ROLES",
    "Authenticator",
    "Principal",
    "TokenInfo",
    "authenticate",
    "authenticate_cached",
    "create_token",
    "list_tokens",
    "parse_expires",
    "require",
    "revoke_token",
]

ROLES = ("viewer", "producer", "auditor", "policy-admin", "admin")
"""Every role a token can carry; ``admin`` may do everything."""

COOKIE = "datatrail_token"
"""The cookie the web UI keeps the token in."""

_PREFIX = "dtk"
_SPAN = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: the token's principal name, its role and the token's id."""

    name: str
    role: str
    token_id: str


class TokenInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What the trail knows about one token (never the token itself)."""

    token_id: str
    principal: str
    role: str
    hash: str
    """``sha256:<hex>`` of the whole token."""
    created: str
    expires: str | None = None
    created_by: str | None = None
    revoked: str | None = None
    """When it was revoked, if it was."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (the ``--json`` shape of ``datatrail token list``)."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out


def _hash(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


def _actor(by: str | None) -> Actor:
    return Actor(user=by or getpass.getuser(), host=socket.gethostname())


def parse_expires(text: str | None, *, now: datetime | None = None) -> str | None:
    """When a token made now expires: ``30d``, ``12h``, ``2w``, ``90m``, an ISO time, or never."""
    if text is None or text.strip().lower() in ("", "never", "none"):
        return None
    text = text.strip()
    match = _SPAN.match(text)
    if match:
        if int(match.group(1)) == 0:
            raise UsageError(f"--expires {text!r}: a token must live longer than 0")
        moment = (now or datetime.now(UTC)) + timedelta(
            **{_UNITS[match.group(2)]: int(match.group(1))}
        )
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}Z"
    if not re.match(r"^\d{4}-\d{2}-\d{2}", text):
        raise UsageError(
            f"--expires {text!r} is not understood; use a span (30d, 12h, 2w, 90m), "
            "an ISO time (2027-01-31T00:00:00Z) or 'never'"
        )
    return parse_ts(text)


def _records(store: Store, token_id: str | None = None) -> list[tuple[str, str, str]]:
    sql = "SELECT topic, ts, data FROM records WHERE topic IN ('token.created', 'token.revoked')"
    params: tuple[Any, ...] = ()
    if token_id is not None:
        sql += " AND subject = ?"
        params = (f"token:{token_id}",)
    return [(str(t), str(ts), str(d)) for t, ts, d in store.query(sql + " ORDER BY idx", params)]


def _fold(
    rows: list[tuple[str, str, str]], actors: dict[str, str] | None = None
) -> list[TokenInfo]:
    found: dict[str, TokenInfo] = {}
    for topic, ts, raw in rows:
        data = from_json(raw)
        if not isinstance(data, dict) or not isinstance(data.get("token_id"), str):
            continue
        tid = data["token_id"]
        if topic == "token.created" and tid not in found:
            found[tid] = TokenInfo(
                token_id=tid,
                principal=str(data.get("principal", "")),
                role=str(data.get("role", "")),
                hash=str(data.get("hash", "")),
                created=ts,
                expires=data.get("expires"),
                created_by=(actors or {}).get(tid),
            )
        elif topic == "token.revoked" and tid in found and found[tid].revoked is None:
            found[tid] = msgspec.structs.replace(found[tid], revoked=ts)
    return list(found.values())


def create_token(
    store: Store,
    *,
    principal: str,
    role: str,
    expires: str | None = None,
    by: str | None = None,
) -> tuple[str, TokenInfo]:
    """Make a token: append its ``token.created`` record; return the token (shown once) and its info.

    ``expires`` is a span (``30d``), an ISO time or ``None`` for never.
    """
    if role not in ROLES:
        raise UsageError(f"role {role!r} is not one of {', '.join(ROLES)}")
    principal = principal.strip()
    if not principal:
        raise UsageError("a token needs a principal name (--principal)")
    until = parse_expires(expires)
    token_id = secrets.token_hex(8)
    token = f"{_PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"
    ts = now_ts()
    digest = _hash(token)
    data = {
        "token_id": token_id,
        "principal": principal,
        "role": role,
        "hash": digest,
        "expires": until,
    }
    actor = _actor(by)
    store.append(
        [
            Record(
                id=uuid7(),
                ts=ts,
                topic="token.created",
                subject=f"token:{token_id}",
                data=data,
                actor=actor,
            )
        ],
        dedupe=False,
    )
    info = TokenInfo(
        token_id=token_id,
        principal=principal,
        role=role,
        hash=digest,
        created=ts,
        expires=until,
        created_by=actor.user,
    )
    return token, info


def list_tokens(store: Store) -> list[TokenInfo]:
    """Every token ever made, oldest first, with its revocation if any."""
    actors: dict[str, str] = {}
    for subject, raw in store.query(
        "SELECT subject, actor FROM records WHERE topic = 'token.created'"
    ):
        actor = from_json(raw) if raw else None
        if isinstance(actor, dict) and isinstance(subject, str):
            actors[subject.removeprefix("token:")] = str(actor.get("user"))
    return _fold(_records(store), actors)


def revoke_token(store: Store, token_id: str, *, by: str | None = None) -> TokenInfo:
    """Revoke a token by its id: append ``token.revoked``; the token stops working at once."""
    found = _fold(_records(store, token_id))
    if not found:
        raise UsageError(f"no token {token_id!r}; `datatrail token list` shows them")
    info = found[0]
    if info.revoked is not None:
        raise UsageError(f"token {token_id} was already revoked at {info.revoked}")
    ts = now_ts()
    store.append(
        [
            Record(
                id=uuid7(),
                ts=ts,
                topic="token.revoked",
                subject=f"token:{token_id}",
                data={
                    "token_id": token_id,
                    "principal": info.principal,
                    "role": info.role,
                    "hash": info.hash,
                    "expires": info.expires,
                },
                actor=_actor(by),
            )
        ],
        dedupe=False,
    )
    return msgspec.structs.replace(info, revoked=ts)


def _unauthorized(message: str, principal: Principal | None = None) -> ApiError:
    exc = ApiError(
        401, "unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="datatrail"'}
    )
    exc.principal = principal  # a token the trail issued: its refusal is an access event
    return exc


class Authenticator:
    """Checks tokens against the trail, remembering good ones for ``cache_seconds``.

    Several servers may share one store, so a revocation made elsewhere is seen
    within ``cache_seconds`` (0 checks the store on every request).
    """

    def __init__(self, store: Store, *, cache_seconds: float = 2.0) -> None:
        self.store = store
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Principal, str | None]] = {}
        self._lock = threading.Lock()

    def check(self, token: str) -> Principal:
        """The principal of a token, or :class:`ApiError` 401 (malformed, unknown, revoked, expired)."""
        digest = _hash(token)
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(digest)
        if cached is not None and now - cached[0] < self.cache_seconds:
            principal, expires = cached[1], cached[2]
        else:
            principal, expires = self._lookup(token, digest)
            if self.cache_seconds > 0:
                with self._lock:
                    if len(self._cache) > 10_000:
                        self._cache.clear()
                    self._cache[digest] = (now, principal, expires)
        if expires is not None and expires <= now_ts():
            raise _unauthorized(
                f"token {principal.token_id} expired at {expires}; make a new one", principal
            )
        return principal

    def cached(self, token: str) -> Principal | None:
        """The token's principal if it was checked within ``cache_seconds``, else ``None``.

        Never asks the store, so it may run on the event loop; ``None`` means "call
        :meth:`check`" (which also says why a token is refused).
        """
        with self._lock:
            cached = self._cache.get(_hash(token))
        if cached is None or time.monotonic() - cached[0] >= self.cache_seconds:
            return None
        principal, expires = cached[1], cached[2]
        if expires is not None and expires <= now_ts():
            return None
        return principal

    def _lookup(self, token: str, digest: str) -> tuple[Principal, str | None]:
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != _PREFIX or not re.fullmatch(r"[0-9a-f]{16}", parts[1]):
            raise _unauthorized("the token is malformed; tokens look like dtk_<id>_<secret>")
        found = _fold(_records(self.store, parts[1]))
        if not found or not hmac.compare_digest(found[0].hash, digest):
            raise _unauthorized("the token is not known to this trail")
        info = found[0]
        if info.revoked is not None:
            raise _unauthorized(
                f"token {info.token_id} was revoked at {info.revoked}",
                Principal(name=info.principal, role=info.role, token_id=info.token_id),
            )
        return Principal(name=info.principal, role=info.role, token_id=info.token_id), info.expires


def bearer_token(conn: HTTPConnection) -> str | None:
    """The token a request carries: ``Authorization: Bearer`` first, then the UI's cookie."""
    header = conn.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise _unauthorized("the Authorization header must be 'Bearer TOKEN'")
        return value.strip()
    return conn.cookies.get(COOKIE) or None


def authenticate_cached(conn: HTTPConnection) -> Principal | None:
    """The caller if their token was checked moments ago (no store query), else ``None``."""
    token = bearer_token(conn)
    if token is None:
        return None
    auth: Authenticator = conn.app.state.auth
    return auth.cached(token)


def authenticate_sync(conn: HTTPConnection) -> Principal:
    """:func:`authenticate`, for code already off the event loop."""
    token = bearer_token(conn)
    if token is None:
        raise _unauthorized(
            "this route needs a token: send 'Authorization: Bearer TOKEN' "
            "(make one with `datatrail token create`)"
        )
    auth: Authenticator = conn.app.state.auth
    return auth.check(token)


async def authenticate(conn: HTTPConnection) -> Principal:
    """The caller of a request, or :class:`ApiError` 401 (no, malformed, unknown, revoked or expired token)."""
    if bearer_token(conn) is None:
        return authenticate_sync(conn)
    return await run_in_threadpool(authenticate_sync, conn)


def require(principal: Principal, *roles: str) -> Principal:
    """``principal`` if its role is one of ``roles`` (``admin`` always is), else :class:`ApiError` 403."""
    if principal.role == "admin" or principal.role in roles:
        return principal
    allowed = sorted({*roles, "admin"})
    raise ApiError(
        403,
        "forbidden",
        f"{principal.name} has role {principal.role}; this needs one of {', '.join(allowed)}",
        required_roles=allowed,
    )
