"""The central store: PostgreSQL, with the same tables and contract as the embedded one.

One connection per store object, guarded by a lock, in autocommit mode with
explicit transactions. Every append transaction first takes a transaction-level
advisory lock derived from the schema name and only then reads the tree size
and frontier, so any number of processes and hosts appending to one store build
one gap-free log with one consistent tree. Reads never take that lock.

Writes keep the portable SQL of the engine and the projections as the
definition of what happens, and only change how it travels: rows that cannot
conflict (log entries, tree nodes, run_io, edges) go by binary ``COPY``, and
each projection upsert becomes one ``INSERT ... SELECT`` over arrays applied
in row order. A statement not recognised exactly takes ``executemany``.

A lost or refused connection surfaces as :class:`StoreError` (the background
writer spills the batch and replays it later; replays are idempotent because
stored event ids are skipped), and the next call reconnects.
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple

from datatrail.errors import ConfigError, NotAStore, SchemaTooNew, StoreError
from datatrail.ledger import Signer
from datatrail.model import Event, now_ts, uuid7
from datatrail.store._base import AppendResult, Progress
from datatrail.store._engine import LogEngine
from datatrail.store._schema import MIGRATIONS, SCHEMA_VERSION

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresStore"]

_CONNECT_TIMEOUT = 5  # seconds, unless the URL says otherwise


def _import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ConfigError(
            "the PostgreSQL store needs psycopg 3, which is not installed; "
            "install it with: pip install 'datatrail[postgres]'"
        ) from None
    return psycopg


@functools.lru_cache(maxsize=1024)
def _pg_sql(sql: str) -> str:
    """Portable SQL as psycopg SQL: ``?`` outside quotes becomes ``%s``; every ``%`` is doubled.

    psycopg scans the whole statement for ``%`` placeholders without knowing
    about quotes, so a literal ``%`` must be doubled even inside a string.
    """
    out: list[str] = []
    quote = ""
    for ch in sql:
        if ch == "%":
            out.append("%%")
            continue
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "?":
            out.append("%s")
            continue
        out.append(ch)
    return "".join(out)


_IN_LIST = re.compile(r" IN \(\?(?:, \?)*\)")


@functools.lru_cache(maxsize=256)
def _in_list_as_any(sql: str) -> str | None:
    """``... x IN (?, ?, ...)`` (its only placeholders) as ``... x = ANY(%b)``, else ``None``.

    The engine looks ids and tree nodes up with IN lists of up to 500
    placeholders; psycopg parses such a statement on every call, while one
    array parameter costs next to nothing and means the same.
    """
    match = _IN_LIST.search(sql)
    if match is None or sql.count("?") != match.group(0).count("?"):
        return None
    return _pg_sql(sql[: match.start()]) + " = ANY(%b)" + _pg_sql(sql[match.end() :])


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lock_key(schema: str) -> int:
    """The advisory-lock key of a store: a signed 64-bit number derived from its schema name."""
    digest = hashlib.sha256(f"datatrail append lock\x00{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class _Copy(NamedTuple):
    """Rows that can never conflict, written with binary COPY."""

    statement: str
    types: tuple[str, ...]


class _SetInsert(NamedTuple):
    """A row-by-row upsert rewritten as one INSERT ... SELECT over arrays, one per column.

    The rows are applied in their order (``WITH ORDINALITY`` ... ``ORDER BY``),
    so first-wins inserts keep the same winner. ``ON CONFLICT DO UPDATE``
    cannot touch one row twice in a statement, so an update statement
    (``unique``) takes this path only when the batch's keys are distinct.
    """

    statement: str
    key: tuple[int, ...]
    unique: bool


def _set_insert(
    head: str,
    types: Sequence[str],
    tail: str,
    *,
    key: tuple[int, ...],
    select: str = "",
    join: str = "",
) -> _SetInsert:
    names = [f"c{i}" for i in range(len(types))]
    # %b: arrays go in binary, several times cheaper to dump than array text.
    arrays = ", ".join(f"%b::{t}[]" for t in types)
    columns = select or ", ".join(f"u.{n}" for n in names)
    statement = (
        f"{head} SELECT {columns} FROM unnest({arrays}) WITH ORDINALITY AS u({', '.join(names)}, ord)"
        f"{join} ORDER BY u.ord {tail}"
    )
    return _SetInsert(statement, key, unique="DO UPDATE" in tail)


_RUN_START_SET = (
    "ON CONFLICT (run_id) DO UPDATE SET job_namespace = excluded.job_namespace, "
    "job_name = excluded.job_name, parent_run_id = excluded.parent_run_id, "
    "started_at = excluded.started_at, params = excluded.params, code_id = excluded.code_id, "
    "env_id = excluded.env_id, actor = excluded.actor, level = excluded.level, "
    "start_idx = excluded.start_idx"
)
_RUN_END_SET = (
    "ON CONFLICT (run_id) DO UPDATE SET status = excluded.status, ended_at = excluded.ended_at, "
    "error = excluded.error, end_idx = excluded.end_idx"
)
_RUN_WHOLE_SET = (
    "ON CONFLICT (run_id) DO UPDATE SET job_namespace = excluded.job_namespace, "
    "job_name = excluded.job_name, parent_run_id = excluded.parent_run_id, "
    "started_at = excluded.started_at, params = excluded.params, code_id = excluded.code_id, "
    "env_id = excluded.env_id, actor = excluded.actor, level = excluded.level, "
    "start_idx = excluded.start_idx, status = excluded.status, ended_at = excluded.ended_at, "
    "error = excluded.error, end_idx = excluded.end_idx"
)

# Bulk writes keyed by the exact portable SQL the engine and the projections issue. A
# statement that is not here (or that changed) goes through executemany unchanged, so
# these are only ever faster ways to do the same thing; a test pins that every current
# statement has one.
_BULK: dict[str, _Copy | _SetInsert] = {
    "INSERT INTO events (idx, id, kind, ts, body, leaf) VALUES (?, ?, ?, ?, ?, ?)": _Copy(
        "COPY events (idx, id, kind, ts, body, leaf) FROM STDIN (FORMAT BINARY)",
        ("int8", "text", "text", "text", "bytea", "bytea"),
    ),
    "INSERT INTO tree_nodes (level, idx, hash) VALUES (?, ?, ?)": _Copy(
        "COPY tree_nodes (level, idx, hash) FROM STDIN (FORMAT BINARY)",
        ("int4", "int8", "bytea"),
    ),
    # run_io and edges are keyed by the new entries' own indexes: they cannot conflict.
    "INSERT INTO run_io (idx, run_id, role, artifact_id, dataset_namespace, dataset_name, label, ts, "
    "job_namespace, job_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)": _Copy(
        "COPY run_io (idx, run_id, role, artifact_id, dataset_namespace, dataset_name, label, ts, "
        "job_namespace, job_name) FROM STDIN (FORMAT BINARY)",
        ("int8", "text", "text", "text", "text", "text", "text", "text", "text", "text"),
    ),
    "INSERT INTO records (idx, topic, subject, ts, data, actor) VALUES (?, ?, ?, ?, ?, ?)": _Copy(
        "COPY records (idx, topic, subject, ts, data, actor) FROM STDIN (FORMAT BINARY)",
        ("int8", "text", "text", "text", "text", "text"),
    ),
    "INSERT INTO edges (idx, src, dst, ts) VALUES (?, ?, ?, ?)": _Copy(
        "COPY edges (idx, src, dst, ts) FROM STDIN (FORMAT BINARY)",
        ("int8", "text", "text", "text"),
    ),
    "INSERT INTO jobs (namespace, name, first_idx, first_ts) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (namespace, name) DO NOTHING": _set_insert(
        "INSERT INTO jobs (namespace, name, first_idx, first_ts)",
        ("text", "text", "int8", "text"),
        "ON CONFLICT (namespace, name) DO NOTHING",
        key=(0, 1),
    ),
    "INSERT INTO datasets (namespace, name, first_idx, first_ts) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (namespace, name) DO NOTHING": _set_insert(
        "INSERT INTO datasets (namespace, name, first_idx, first_ts)",
        ("text", "text", "int8", "text"),
        "ON CONFLICT (namespace, name) DO NOTHING",
        key=(0, 1),
    ),
    "INSERT INTO artifacts (artifact_id, kind, size, rows, schema, media_type, stats, first_idx, first_ts) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (artifact_id) DO NOTHING": _set_insert(
        "INSERT INTO artifacts (artifact_id, kind, size, rows, schema, media_type, stats, first_idx, first_ts)",
        ("text", "text", "int8", "int8", "text", "text", "text", "int8", "text"),
        "ON CONFLICT (artifact_id) DO NOTHING",
        key=(0,),
    ),
    "INSERT INTO code_versions (code_id, body, first_idx) VALUES (?, ?, ?) "
    "ON CONFLICT (code_id) DO NOTHING": _set_insert(
        "INSERT INTO code_versions (code_id, body, first_idx)",
        ("text", "text", "int8"),
        "ON CONFLICT (code_id) DO NOTHING",
        key=(0,),
    ),
    "INSERT INTO environments (env_id, body, first_idx) VALUES (?, ?, ?) "
    "ON CONFLICT (env_id) DO NOTHING": _set_insert(
        "INSERT INTO environments (env_id, body, first_idx)",
        ("text", "text", "int8"),
        "ON CONFLICT (env_id) DO NOTHING",
        key=(0,),
    ),
    "INSERT INTO runs (run_id, job_namespace, job_name, parent_run_id, status, started_at, params, "
    "code_id, env_id, actor, level, start_idx) VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?) "
    + _RUN_START_SET: _set_insert(
        "INSERT INTO runs (run_id, job_namespace, job_name, parent_run_id, status, started_at, "
        "params, code_id, env_id, actor, level, start_idx)",
        ("text",) * 10 + ("int8",),
        _RUN_START_SET,
        key=(0,),
        select="u.c0, u.c1, u.c2, u.c3, 'running', u.c4, u.c5, u.c6, u.c7, u.c8, u.c9, u.c10",
    ),
    "INSERT INTO runs (run_id, status, ended_at, error, end_idx) VALUES (?, ?, ?, ?, ?) "
    + _RUN_END_SET: _set_insert(
        "INSERT INTO runs (run_id, status, ended_at, error, end_idx)",
        ("text", "text", "text", "text", "int8"),
        _RUN_END_SET,
        key=(0,),
    ),
    "INSERT INTO runs (run_id, job_namespace, job_name, parent_run_id, status, started_at, params, "
    "code_id, env_id, actor, level, start_idx, ended_at, error, end_idx) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) " + _RUN_WHOLE_SET: _set_insert(
        "INSERT INTO runs (run_id, job_namespace, job_name, parent_run_id, status, started_at, "
        "params, code_id, env_id, actor, level, start_idx, ended_at, error, end_idx)",
        ("text",) * 11 + ("int8", "text", "text", "int8"),
        _RUN_WHOLE_SET,
        key=(0,),
    ),
    "INSERT INTO dataset_edges (src, dst, first_idx, first_ts) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (src, dst) DO NOTHING": _set_insert(
        "INSERT INTO dataset_edges (src, dst, first_idx, first_ts)",
        ("text", "text", "int8", "text"),
        "ON CONFLICT (src, dst) DO NOTHING",
        key=(0, 1),
    ),
    # Per row: the jobs of earlier io events that output the artifact this run reads.
    # Rows are keyed by their own index: a later read of the same artifact can see
    # producers an earlier one could not, so none of them may be dropped.
    "INSERT INTO dataset_edges (src, dst, first_idx, first_ts) "
    "SELECT DISTINCT 'j:' || o.job_namespace || ':' || o.job_name, ?, ?, ? FROM run_io o "
    "WHERE o.artifact_id = ? AND o.role = 'output' AND o.idx < ? AND o.job_name IS NOT NULL "
    "ON CONFLICT (src, dst) DO NOTHING": _set_insert(
        "INSERT INTO dataset_edges (src, dst, first_idx, first_ts)",
        ("text", "int8", "text", "text", "int8"),
        "ON CONFLICT (src, dst) DO NOTHING",
        key=(4,),
        select="'j:' || o.job_namespace || ':' || o.job_name, u.c0, u.c1, u.c2",
        join=" JOIN run_io o ON o.artifact_id = u.c3 AND o.role = 'output' AND o.idx < u.c4"
        " AND o.job_name IS NOT NULL",
    ),
    "INSERT INTO erasures (target_idx, receipt_idx, reason, ts) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (target_idx) DO NOTHING": _set_insert(
        "INSERT INTO erasures (target_idx, receipt_idx, reason, ts)",
        ("int8", "int8", "text", "text"),
        "ON CONFLICT (target_idx) DO NOTHING",
        key=(0,),
    ),
}


class PostgresStore(LogEngine):
    """A datatrail store in a PostgreSQL database (optionally in its own schema).

    ``url`` is a libpq connection URL (``postgresql://user@host:5432/db``).
    ``schema`` names the PostgreSQL schema holding the tables; it is created
    (with ``create=True``) if missing and put on the connection's
    ``search_path``. Without it the store lives in the connection's current
    schema (normally ``public``; ``?options=-csearch_path%3Dname`` in the URL
    chooses another).
    """

    def __init__(
        self,
        url: str,
        *,
        create: bool = False,
        signer: Signer | None = None,
        schema: str | None = None,
    ) -> None:
        self._pg = _import_psycopg()
        self.url = url
        self.schema = schema
        self._where = self._describe(url)
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._closed = False
        conn = self._live()
        try:
            if schema is None:
                current = conn.execute("SELECT current_schema()").fetchone()
                if current is None or current[0] is None:
                    raise StoreError(
                        f"{self._where} has no schema on the search_path to hold a store; "
                        "pass schema=NAME or set search_path"
                    )
                self._schema_name = str(current[0])
            else:
                self._schema_name = schema
            self._lock_key = _lock_key(self._schema_name)
            self._open_schema(create)
        except BaseException:
            self.close()
            raise
        super().__init__(signer=signer, origin=self.meta()["origin"])

    # -- connection -------------------------------------------------------------

    def _describe(self, url: str) -> str:
        """Where the store is, for messages: host, port and database, never the password."""
        try:
            params = self._pg.conninfo.conninfo_to_dict(url)
        except self._pg.Error:
            return "the PostgreSQL server (unparsable URL)"
        host = params.get("host") or params.get("hostaddr") or "localhost"
        port = params.get("port") or "5432"
        where = f"postgresql://{host}:{port}/{params.get('dbname', '')}"
        return where if self.schema is None else f"{where} (schema {self.schema})"

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        pg = self._pg
        options: dict[str, Any] = {"autocommit": True}
        try:
            if "connect_timeout" not in pg.conninfo.conninfo_to_dict(self.url):
                options["connect_timeout"] = _CONNECT_TIMEOUT
        except pg.Error as exc:
            raise ConfigError(f"not a usable PostgreSQL URL: {_first_line(exc)}") from None
        try:
            conn = pg.connect(self.url, **options)
        except pg.Error as exc:
            raise StoreError(
                f"cannot reach PostgreSQL at {self._where}: {_first_line(exc)}; check that the "
                "server is running and the URL (DATATRAIL_URL) is right"
            ) from exc
        # COPY looks bytea dumpers up by type: use the plain (C) one, not psycopg's
        # DB-API wrapper-aware one, which costs a Python call per value.
        conn.adapters.register_dumper(None, pg.types.string.BytesBinaryDumper)
        try:
            if self.schema is not None:
                conn.execute(
                    pg.sql.SQL("SET search_path TO {}").format(pg.sql.Identifier(self.schema))
                )
        except pg.Error as exc:
            conn.close()
            raise self._failure(exc, "set the search_path") from exc
        return conn  # type: ignore[no-any-return]

    def _live(self) -> psycopg.Connection[tuple[Any, ...]]:
        """The open connection, reconnecting if the last one was lost."""
        if self._closed:
            raise StoreError(f"the store at {self._where} was closed; open it again")
        if self._conn is None or self._conn.closed:
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            self._conn = self._connect()
        return self._conn

    def _failure(self, exc: BaseException, action: str) -> StoreError:
        conn = self._conn
        if conn is None or conn.closed:
            return StoreError(
                f"lost the connection to PostgreSQL at {self._where} while trying to {action}: "
                f"{_first_line(exc)}. Nothing is lost: keep the batch (the writer spills it) and "
                "append it again when the server is back; event ids already stored are skipped"
            )
        return StoreError(f"PostgreSQL at {self._where} failed to {action}: {_first_line(exc)}")

    # -- transactions -------------------------------------------------------------

    def _start(self, locked: bool) -> tuple[Any, Any]:
        """Begin a transaction (taking the append lock if ``locked``), reconnecting once if dead."""
        pg = self._pg
        for attempt in (1, 2):
            conn = self._live()
            tx = conn.transaction()
            try:
                tx.__enter__()
            except pg.Error as exc:
                if attempt == 1 and conn.closed:
                    continue
                raise self._failure(exc, "start a transaction") from exc
            if not locked:
                return conn, tx
            try:
                # Read committed: the size and frontier read after this see every earlier append.
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
            except pg.Error as exc:
                tx.__exit__(type(exc), exc, exc.__traceback__)
                if attempt == 1 and conn.closed:
                    continue
                raise self._failure(exc, "take the append lock") from exc
            return conn, tx
        raise AssertionError("unreachable")  # pragma: no cover

    @contextmanager
    def _transaction(self, *, locked: bool, action: str) -> Iterator[Any]:
        with self._lock:
            conn, tx = self._start(locked)
            try:
                yield conn
            except BaseException as exc:
                # The engine caches the frontier before COMMIT; a batch that did not land
                # must not leave it behind, or a later append of the same size would use it.
                self._frontier_cache = None
                # Roll back; psycopg only logs a rollback that fails on a lost connection.
                tx.__exit__(type(exc), exc, exc.__traceback__)
                if isinstance(exc, self._pg.Error):
                    raise self._failure(exc, action) from exc
                raise
            try:
                tx.__exit__(None, None, None)
            except self._pg.Error as exc:
                self._frontier_cache = None
                raise self._failure(exc, f"commit ({action})") from exc

    # -- schema -------------------------------------------------------------------

    def _table_names(self, conn: Any) -> set[str]:
        rows = conn.execute(
            "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = %s",
            (self._schema_name,),
        ).fetchall()
        return {str(r[0]) for r in rows}

    def _open_schema(self, create: bool) -> None:
        pg = self._pg
        where = self._where
        with self._transaction(locked=True, action="open the store") as conn:
            if create and self.schema is not None:
                conn.execute(
                    pg.sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                        pg.sql.Identifier(self.schema)
                    )
                )
            tables = self._table_names(conn)
            if tables and "meta" not in tables:
                raise NotAStore(
                    f"{where} holds tables but is not a datatrail store (no meta table); "
                    "use an empty database or schema"
                )
            if "meta" in tables:
                self._check_store(conn, tables)
            elif create:
                self._create(conn)
            else:
                raise StoreError(
                    f"no datatrail store at {where}; create one with `datatrail init` "
                    "(or open it with create=True)"
                )

    def _check_store(self, conn: Any, tables: set[str]) -> None:
        pg = self._pg
        where = self._where
        if "migrations" not in tables:
            raise NotAStore(f"{where} has a meta table but is not a datatrail store")
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
            version = int(conn.execute("SELECT MAX(version) FROM migrations").fetchone()[0] or 0)
        except pg.OperationalError:
            raise
        except pg.DatabaseError as exc:
            raise NotAStore(f"{where} is not a datatrail store ({_first_line(exc)})") from None
        if row is None or row[0] != "datatrail":
            raise NotAStore(f"{where} has a meta table but is not a datatrail store")
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"{where} has schema version {version}, but this datatrail knows up to "
                f"{SCHEMA_VERSION}; upgrade datatrail to read it"
            )
        self._apply_migrations(conn, version)

    def _create(self, conn: Any) -> None:
        store_id = uuid7()
        conn.execute(
            "CREATE TABLE migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        self._apply_migrations(conn, 0)
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO meta (key, value) VALUES (%s, %s)",
                [
                    ("format", "datatrail"),
                    ("store_id", store_id),
                    ("origin", f"datatrail/{store_id}"),
                ],
            )

    def _apply_migrations(self, conn: Any, current: int) -> None:
        for migration in MIGRATIONS:
            if migration.version <= current:
                continue
            for statement in migration.statements:
                conn.execute(statement.replace("{blob}", "BYTEA"))
            conn.execute(
                "INSERT INTO migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                (migration.version, migration.name, now_ts()),
            )

    # -- LogEngine hooks ----------------------------------------------------------

    def _begin(self) -> Any:
        return self._transaction(locked=True, action="append a batch")

    def _read(self, fn: Callable[[Any], Any]) -> Any:
        # Proof reads touch only immutable tree nodes: no need to queue behind appends.
        with self._transaction(locked=False, action="read tree nodes") as tx:
            return fn(tx)

    def _execute(self, tx: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        as_any = _in_list_as_any(sql) if params else None
        if as_any is not None:
            cur = tx.execute(as_any, [list(params)])
        else:
            cur = tx.execute(_pg_sql(sql), params)
        return cur.fetchall() if cur.description is not None else []

    def _executemany(self, tx: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        plan = _BULK.get(sql)
        with tx.cursor() as cur:
            if isinstance(plan, _Copy):
                with cur.copy(plan.statement) as pipe:
                    pipe.set_types(plan.types)
                    for row in rows:
                        pipe.write_row(row)
                return
            if isinstance(plan, _SetInsert):
                batch = _distinct(rows, plan.key, keep_all=plan.unique)
                if batch is not None:
                    cur.execute(
                        plan.statement, [list(column) for column in zip(*batch, strict=True)]
                    )
                    return
            cur.executemany(_pg_sql(sql), rows)

    # -- reads --------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        pg = self._pg
        statement = _pg_sql(sql)
        with self._lock:
            for attempt in (1, 2):
                conn = self._live()
                try:
                    cur = conn.execute(statement, params)
                    return cur.fetchall() if cur.description is not None else []
                except pg.Error as exc:
                    # A read is safe to repeat: after a dropped connection, reconnect once.
                    if attempt == 1 and conn.closed:
                        continue
                    raise self._failure(exc, "read") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def table_rows(self, table: str) -> list[tuple[Any, ...]]:
        columns = self.query(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            (self._schema_name, table),
        )
        if not columns:
            raise StoreError(f"no table {table!r} in {self._where}")
        # Byte order and NULLs first, as SQLite sorts, so rows compare equal across backends.
        order = ", ".join(
            _quote_ident(str(name)) + (' COLLATE "C"' if kind == "text" else "") + " NULLS FIRST"
            for name, kind in columns
        )
        return self.query(f"SELECT * FROM {_quote_ident(table)} ORDER BY {order}")

    def tables(self) -> list[str]:
        """Every table of the store."""
        rows = self.query(
            "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = ? ORDER BY tablename",
            (self._schema_name,),
        )
        return [str(r[0]) for r in rows]

    def rebuild(self, progress: Progress | None = None) -> int:
        with self._transaction(locked=True, action="rebuild the projections") as tx:
            total: int = self._rebuild_locked(tx, progress)
        return total

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def append(self, events: Sequence[Event], *, dedupe: bool = True) -> AppendResult:
        return self._append(events, dedupe=dedupe)


def _distinct(
    rows: Sequence[Sequence[Any]], key: tuple[int, ...], *, keep_all: bool
) -> Sequence[Sequence[Any]] | None:
    """The rows to send in one set statement, or ``None`` if they must go one by one.

    First-wins inserts drop later rows with a key already seen (they would be
    no-ops); update statements need distinct keys, else row by row.
    """
    if not rows:
        return None
    keys = list(map(itemgetter(*key), rows))
    if len(set(keys)) == len(keys):
        return rows
    if keep_all:
        return None
    seen: set[Any] = set()
    kept = []
    for k, row in zip(keys, rows, strict=True):
        if k not in seen:
            seen.add(k)
            kept.append(row)
    return kept


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
