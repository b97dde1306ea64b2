"""Helpers the server tests share: trails with tokens, a client, a live uvicorn server.

(Named ``test_server_*`` so it sits with the server tests; it holds no tests itself.)
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from datatrail.server import ROLES, create_app, create_token
from datatrail.store import Home, open_store


def issue_tokens(home: Home, roles: tuple[str, ...] = ROLES) -> dict[str, str]:
    """One fresh token per role, made through the library as `datatrail token create` does."""
    store = open_store(home.url, signer=home.signer())
    try:
        return {role: create_token(store, principal=f"{role}-user", role=role)[0] for role in roles}
    finally:
        store.close()


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for a token."""
    return {"Authorization": f"Bearer {token}"}


def demo_home(folder: Path) -> Home:
    """A trail holding the demo pipeline's runs."""
    from datatrail.demo import run_demo

    result = run_demo(folder)
    path = Path(result.trail)
    return Home(path=path, url=f"sqlite:///{path / 'trail.db'}")


def client(home: Home, **kwargs: Any) -> TestClient:
    """An in-process client of the app over ``home``."""
    return TestClient(create_app(home, **kwargs), raise_server_exceptions=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Run ``app`` under a real uvicorn on a free local port; yields the base URL."""
    import uvicorn

    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
