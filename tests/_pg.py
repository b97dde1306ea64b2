"""PostgreSQL test fixtures: the server URL, a fresh schema per test, a cuttable TCP proxy.

Tests that need the server call :func:`require_postgres`: when the server is
not reachable they skip, except under CI (``CI=true``), where they fail, so a
broken CI database never passes silently. ``DATATRAIL_TEST_PG_URL`` names the
server (default ``postgresql://postgres@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import functools
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pytest

from datatrail.ledger import Signer, parse_signer_key
from datatrail.model import RunFinished, now_ts, uuid7

PG_URL = os.environ.get("DATATRAIL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@functools.lru_cache(maxsize=1)
def _unreachable_reason() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed; pip install 'datatrail[postgres]'"
    try:
        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


def _host_port(url: str) -> str:
    try:
        import psycopg

        params = psycopg.conninfo.conninfo_to_dict(url)
    except Exception:
        return url.rsplit("@", 1)[-1]
    return f"{params.get('host', 'localhost')}:{params.get('port', 5432)}"


def require_postgres() -> str:
    """The test server's URL; skips the test if it is unreachable (fails under ``CI=true``)."""
    reason = _unreachable_reason()
    if reason is not None:
        message = (
            f"PostgreSQL not reachable at {_host_port(PG_URL)}; start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` "
            f"or set DATATRAIL_TEST_PG_URL ({reason})"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return PG_URL


def admin_execute(sql: str, *, schema: str | None = None, url: str = PG_URL) -> None:
    """Run SQL on a connection of its own (autocommit), in ``schema`` if given."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        if schema is not None:
            conn.execute(f'SET search_path TO "{schema}"')
        conn.execute(sql)


def drop_schema(schema: str) -> None:
    """Drop a test schema and everything in it."""
    admin_execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def new_schema_name(label: str = "t") -> str:
    """A schema name no other test (or process) uses."""
    return f"dt_{label}_{os.getpid()}_{uuid.uuid4().hex[:10]}"


@contextmanager
def fresh_schema(label: str = "t") -> Iterator[str]:
    """A schema name that nobody uses yet; the schema is dropped afterwards."""
    schema = new_schema_name(label)
    try:
        yield schema
    finally:
        drop_schema(schema)


class PostgresBackend:
    """Places for stores in one PostgreSQL database: one schema per place, all dropped at the end."""

    name = "postgres"

    def __init__(self, url: str) -> None:
        self.url = url
        self._base = new_schema_name("c")
        self._schemas: set[str] = set()

    def schema(self, where: str) -> str:
        """The schema of place ``where``."""
        schema = f"{self._base}_{where}"
        self._schemas.add(schema)
        return schema

    def open(
        self, where: str = "main", *, create: bool = False, signer: Signer | None = None
    ) -> Any:
        from datatrail.store._postgres import PostgresStore

        return PostgresStore(self.url, create=create, signer=signer, schema=self.schema(where))

    def execute(self, where: str, sql: str) -> None:
        """Run SQL in place ``where`` behind the store's back (creating the schema if needed)."""
        schema = self.schema(where)
        admin_execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        admin_execute(sql, schema=schema)

    def cleanup(self) -> None:
        for schema in self._schemas:
            drop_schema(schema)


@contextmanager
def postgres_backend() -> Iterator[PostgresBackend]:
    """A :class:`PostgresBackend` on the test server (skips if unreachable)."""
    backend = PostgresBackend(require_postgres())
    try:
        yield backend
    finally:
        backend.cleanup()


# -- many writers ------------------------------------------------------------------


def append_worker(
    url: str,
    schema: str,
    signer_key: str,
    worker: int,
    batches: int,
    barrier: Any,
    results: Any,
) -> None:
    """Append ``batches`` small batches to one store (run in a child process)."""
    from datatrail.store._postgres import PostgresStore

    try:
        store = PostgresStore(url, schema=schema, signer=parse_signer_key(signer_key))
        barrier.wait(timeout=60)
        done = []
        for b in range(batches):
            events = [
                RunFinished(id=uuid7(), ts=now_ts(), run_id=uuid7(), status="completed")
                for _ in range(1 + (b + worker) % 7)
            ]
            result = store.append(events)
            done.append((result.first_index, result.appended, [e.id for e in events]))
        store.close()
        results.put((worker, done, None))
    except BaseException as exc:  # report to the parent rather than dying silently
        results.put((worker, [], repr(exc)))


# -- a TCP proxy whose plug can be pulled -------------------------------------------


class TcpProxy:
    """Forwards a local port to a server; :meth:`cut` drops every connection and stops listening.

    :meth:`start` listens again on the same port, so a client pointed at the
    proxy sees its server vanish and come back without touching the server.
    """

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Stop listening and drop every open connection."""
        if self._listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone leaves it listening.
            with suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for s in sockets:
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def url(self, base: str) -> str:
        """``base`` (a postgresql:// URL) pointed at this proxy."""
        import psycopg

        return psycopg.conninfo.make_conninfo(base, host="127.0.0.1", port=str(self.port))


def closed_port() -> int:
    """A local TCP port with nothing listening on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
