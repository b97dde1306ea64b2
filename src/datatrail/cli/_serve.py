"""Server commands: ``serve`` (the HTTP API and web UI) and ``token create|list|revoke``.

uvicorn and starlette are imported inside the commands, so ``datatrail --help``
stays fast and the CLI works without the ``server`` extra until these are used.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from datatrail.cli._common import JsonOpt, TrailOpt, console, emit_json, fail, guarded
from datatrail.errors import ConfigError, KeyFileError

__all__ = ["register"]


def _server_module() -> Any:
    try:
        import uvicorn  # noqa: F401

        from datatrail import server
    except ImportError as exc:
        raise ConfigError(
            f"the server needs the 'server' extra ({exc}); install it with: "
            "pip install 'datatrail[server]'"
        ) from None
    return server


def _trail_target(trail: str | None, url: str | None) -> Any:
    from datatrail.store import find_home

    server = _server_module()
    if url is not None:
        return server.resolve_home(url)
    if trail is not None:
        if "://" not in trail and not Path(trail).exists():
            raise fail(f"{trail}: no such trail folder or store file")
        return server.resolve_home(trail)
    home = find_home()
    if home is None:
        raise fail("no trail here: run `datatrail init`, or pass --trail or --url")
    return home


def _signing_store(trail: str | None) -> Any:
    from datatrail.store import open_store

    home = _trail_target(trail, None)
    signer = home.signer()
    if signer is None:
        raise KeyFileError(
            f"changing tokens appends to the trail, which needs its signing key ({home.signing_key})"
        )
    return open_store(home.url, create=False, signer=signer)


@guarded
def serve_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8765, "--port", help="Port to listen on.", min=0, max=65535),
    workers: int = typer.Option(1, "--workers", help="Worker processes.", min=1, max=64),
    tls_cert: Path | None = typer.Option(None, "--tls-cert", help="TLS certificate (PEM)."),
    tls_key: Path | None = typer.Option(None, "--tls-key", help="TLS private key (PEM)."),
    url: str | None = typer.Option(
        None, "--url", help="Store URL (sqlite:///… or postgresql://…); default: the trail."
    ),
    max_body: int = typer.Option(
        16 * 1024 * 1024, "--max-body", help="Largest request body in bytes (after gunzip).", min=1
    ),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
    trail: str | None = TrailOpt,
) -> None:
    """Serve the HTTP API, OpenLineage ingest and the web UI over this trail's store."""
    import uvicorn

    if (tls_cert is None) != (tls_key is None):
        raise fail("--tls-cert and --tls-key go together; give both or neither")
    for path in (tls_cert, tls_key):
        if path is not None and not path.is_file():
            raise fail(f"{path}: no such file")
    home = _trail_target(trail, url)
    scheme = "https" if tls_cert else "http"
    console.print(
        f"[green]datatrail serving[/] {escape(home.url.split('@')[-1])} at "
        f"{scheme}://{escape(host)}:{port} ({workers} worker{'s' if workers > 1 else ''})",
        highlight=False,
    )
    tls: dict[str, Any] = (
        {"ssl_certfile": str(tls_cert), "ssl_keyfile": str(tls_key)} if tls_cert else {}
    )
    common: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "proxy_headers": True,
        "server_header": False,
        **tls,
    }
    if workers > 1:
        # Worker processes import the app themselves; the trail travels in the environment.
        os.environ["DATATRAIL_SERVE_TRAIL"] = home.url
        os.environ.setdefault("DATATRAIL_HOME", str(home.path))
        os.environ["DATATRAIL_SERVE_MAX_BODY"] = str(max_body)
        uvicorn.run("datatrail.server._app:app_from_env", factory=True, workers=workers, **common)
        return
    server = _server_module()
    app = server.create_app(home, max_body=max_body)
    server.tune_gc_for_serving()
    uvicorn.run(app, **common)


@guarded
def token_create_command(
    principal: str = typer.Option(..., "--principal", help="Who the token is for."),
    role: str = typer.Option(
        ..., "--role", help="viewer, producer, auditor, policy-admin or admin."
    ),
    expires: str | None = typer.Option(
        None, "--expires", help="Lifetime (30d, 12h, 2w), an ISO time, or never (default)."
    ),
    trail: str | None = TrailOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Make an API token. It is printed once; the trail keeps only its SHA-256."""
    server = _server_module()
    store = _signing_store(trail)
    try:
        token, info = server.create_token(store, principal=principal, role=role, expires=expires)
    finally:
        store.close()
    if as_json:
        emit_json({"token": token, **info.to_dict()})
        return
    console.print(f"[green]token made[/] for {escape(info.principal)} ({info.role})")
    console.print(f"  id       {info.token_id}")
    console.print(f"  expires  {info.expires or 'never'}")
    console.print("  token    (shown once; keep it secret)")
    console.print(token, highlight=False, soft_wrap=True)


@guarded
def token_list_command(trail: str | None = TrailOpt, as_json: bool = JsonOpt) -> None:
    """List tokens (ids, principals, roles, expiry, revocation; never the tokens)."""
    from datatrail.store import open_store

    server = _server_module()
    home = _trail_target(trail, None)
    store = open_store(home.url, create=False)
    try:
        tokens = server.list_tokens(store)
    finally:
        store.close()
    if as_json:
        emit_json([t.to_dict() for t in tokens])
        return
    table = Table("id", "principal", "role", "created", "expires", "revoked")
    for t in tokens:
        table.add_row(
            t.token_id,
            escape(t.principal),
            t.role,
            t.created,
            t.expires or "never",
            t.revoked or "",
        )
    console.print(table)


@guarded
def token_revoke_command(
    token_id: str = typer.Argument(..., help="The token's id (from `datatrail token list`)."),
    trail: str | None = TrailOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Revoke a token; servers refuse it from then on (within their short token cache)."""
    server = _server_module()
    store = _signing_store(trail)
    try:
        info = server.revoke_token(store, token_id)
    finally:
        store.close()
    if as_json:
        emit_json(info.to_dict())
        return
    console.print(
        f"[green]revoked[/] token {info.token_id} of {escape(info.principal)} at {info.revoked}"
    )


def register(app: typer.Typer) -> None:
    """Add ``serve`` and the ``token`` group to the CLI."""
    app.command("serve")(serve_command)
    tokens = typer.Typer(help="API tokens for the server.", no_args_is_help=True)
    tokens.command("create")(token_create_command)
    tokens.command("list")(token_list_command)
    tokens.command("revoke")(token_revoke_command)
    app.add_typer(tokens, name="token")
