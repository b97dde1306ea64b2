"""The central store: PostgreSQL, with the same tables and contract as the embedded one.

One connection per store object, guarded by a lock, in autocommit mode with
explicit transactions. Every append transaction first takes a transaction-level
advisory lock derived from the schema name and only then reads the tree size
and frontier, so any number of processes and hosts appending to one store build
one gap-free log with one consistent tree. Reads never take that lock.

Writes keep the portable SQL of the engine and the projections as the
definition of what happens, and only change how it travels: rows that cannot
conflict (log entries, tree nodes, run_io, records) go by binary ``COPY``, and
each projection upsert becomes one ``INSERT ... SELECT`` over arrays applied
in row order. A statement not recognised exactly takes ``executemany``.

An append keeps the server busy (index upkeep, WAL) for longer than Python
takes to prepare it (encoding, hashing, deriving), so the bulk writes of a
transaction run on a thread of their own, in order, while the caller goes on
preparing the next ones; any read in the transaction, and the commit, waits
for them first. An append also takes two shortcuts that unique constraints
make safe: it does not ask which of its event ids are stored (the index on
``events.id`` finds them anyway), and it writes the runs that start in the
batch with ``COPY`` as new rows (the primary key finds one seen before); a
batch where either bet loses is rolled back and appended again without them.
Lookups by content hash use hash indexes, which stay small enough to keep in
memory where a B-tree over random keys would not.

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
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple

from datatrail.errors import ConfigError, NotAStore, SchemaTooNew, StoreError
from datatrail.ledger import Signer
from datatrail.model import now_ts, uuid7
from datatrail.store._base import AppendResult, Progress
from datatrail.store._engine import TREE_STRIDE, LogEngine, Prepared, tree_stride
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


# Indexes that only ever answer "which rows have this content hash": lineage walks,
# artifact lookups and the projections' hand-off join all ask by equality. Their keys are
# random (content hashes), so a B-tree takes every insert at a random leaf and, once it
# outgrows shared_buffers, a read and a write per insert; a hash index keeps a 4-byte code
# per row, a quarter of the size or less, and stays in memory far longer.
_PG_INDEXES = {
    "CREATE INDEX run_io_artifact ON run_io (artifact_id, role)": (
        "CREATE INDEX run_io_artifact ON run_io USING hash (artifact_id)"
    ),
}


_TEXT_COLUMN = re.compile(r"\bTEXT\b")


def _pg_ddl(statement: str) -> str:
    """A portable schema statement in PostgreSQL's dialect.

    Text columns compare by bytes (``COLLATE "C"``), as SQLite's do: ids, content
    hashes, timestamps and dataset names are keys, not prose, and a locale's
    collation would make every index insert and lookup call ``strcoll``.
    """
    statement = _PG_INDEXES.get(statement, statement).replace("{blob}", "BYTEA")
    if statement.startswith("CREATE TABLE"):
        statement = _TEXT_COLUMN.sub('TEXT COLLATE "C"', statement)
    return statement


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

    Each column travels as one string that the server splits again
    (``packed``, see :func:`_pack`), or, when its values do not allow that,
    as a binary array (``statement``).
    """

    statement: str
    packed: str
    types: tuple[str, ...]
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
    columns = select or ", ".join(f"u.{n}" for n in names)

    def over(arrays: str) -> str:
        return (
            f"{head} SELECT {columns} FROM unnest({arrays}) WITH ORDINALITY "
            f"AS u({', '.join(names)}, ord){join} ORDER BY u.ord {tail}"
        )

    # %b: arrays go in binary, several times cheaper to dump than array text.
    arrays = ", ".join(f"%b::{t}[]" for t in types)
    split = ", ".join(f"string_to_array(%b, chr(31), chr(30))::{t}[]" for t in types)
    return _SetInsert(over(arrays), over(split), tuple(types), key, unique="DO UPDATE" in tail)


_SEP, _NULL = "\x1f", "\x1e"  # ASCII unit separator; record separator marks a NULL
_INTEGER_TYPES = {int, type(None)}  # exactly: a bool is an int too, but not a number here


def _pack(values: Sequence[Any], kind: str) -> str | None:
    """A column as one string for ``string_to_array(s, chr(31), chr(30))``, else ``None``.

    One join in C instead of dumping every value into an array element, a
    small part of the client's work for the same column. Only for values that
    cannot be mistaken for the separators: ``str`` without them in a text
    column, ``int`` in an integer one; ``None`` becomes the NULL marker.
    """
    if kind == "text":
        try:
            joined = _SEP.join([_NULL if v is None else v for v in values])
        except TypeError:  # a value that is not a string
            return None
    else:
        if not set(map(type, values)) <= _INTEGER_TYPES:
            return None
        joined = _SEP.join([_NULL if v is None else str(v) for v in values])
    if (
        not joined  # one empty string: string_to_array would make no element of it
        or joined.count(_SEP) != len(values) - 1
        or joined.count(_NULL) != values.count(None)
    ):
        return None
    return joined


_RUN_START_SQL = (
    "INSERT INTO runs (run_id, job_namespace, job_name, parent_run_id, status, started_at, params, "
    "code_id, env_id, actor, level, start_idx) VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?) "
)
_RUN_END_SQL = "INSERT INTO runs (run_id, status, ended_at, error, end_idx) VALUES (?, ?, ?, ?, ?) "
_RUN_WHOLE_SQL = (
    "INSERT INTO runs (run_id, job_namespace, job_name, parent_run_id, status, started_at, params, "
    "code_id, env_id, actor, level, start_idx, ended_at, error, end_idx) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
)
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
    # run_io is keyed by the new entries' own indexes: it cannot conflict.
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
    _RUN_START_SQL + _RUN_START_SET: _set_insert(
        "INSERT INTO runs (run_id, job_namespace, job_name, parent_run_id, status, started_at, "
        "params, code_id, env_id, actor, level, start_idx)",
        ("text",) * 10 + ("int8",),
        _RUN_START_SET,
        key=(0,),
        select="u.c0, u.c1, u.c2, u.c3, 'running', u.c4, u.c5, u.c6, u.c7, u.c8, u.c9, u.c10",
    ),
    _RUN_END_SQL + _RUN_END_SET: _set_insert(
        "INSERT INTO runs (run_id, status, ended_at, error, end_idx)",
        ("text", "text", "text", "text", "int8"),
        _RUN_END_SET,
        key=(0,),
    ),
    _RUN_WHOLE_SQL + _RUN_WHOLE_SET: _set_insert(
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


# Shortcuts an append takes on a bet that nearly always wins; a unique constraint catches
# the case it loses, and the batch is rolled back and appended again without it.
_IDS = "ids"  # no query for stored event ids: the unique index on events.id finds them
_RUNS = "runs"  # runs started (or run whole) in a batch are new: COPY them, no upsert
_SHORTCUT_KEYS = {"events_id_key": _IDS, "runs_pkey": _RUNS}  # PostgreSQL's constraint names
_COOL_DOWN = 16  # appends that go without a shortcut after it lost: losses come in runs

_RUN_COLUMNS = (
    "run_id, job_namespace, job_name, parent_run_id, status, started_at, params, "
    "code_id, env_id, actor, level, start_idx, ended_at, error, end_idx"
)
_RUN_TYPES = ("text",) * 11 + ("int8", "text", "text", "int8")


class _NewRuns(NamedTuple):
    """The upsert of runs that start in a batch, as a COPY of its rows when their ids are new."""

    copy: _Copy
    status: str | None  # a value to add to each row for a status the SQL writes itself


_NEW_RUNS: dict[str, _NewRuns] = {
    _RUN_WHOLE_SQL + _RUN_WHOLE_SET: _NewRuns(
        _Copy(f"COPY runs ({_RUN_COLUMNS}) FROM STDIN (FORMAT BINARY)", _RUN_TYPES), None
    ),
    _RUN_START_SQL + _RUN_START_SET: _NewRuns(
        _Copy(
            "COPY runs (run_id, job_namespace, job_name, parent_run_id, started_at, params, "
            "code_id, env_id, actor, level, start_idx, status) FROM STDIN (FORMAT BINARY)",
            ("text",) * 10 + ("int8", "text"),
        ),
        "running",
    ),
}


class _ShortcutLost(Exception):
    """An append's shortcut met the case it bets against (internal; the append is retried)."""

    def __init__(self, shortcut: str) -> None:
        super().__init__(shortcut)
        self.shortcut = shortcut


class _Writer:
    """Runs one transaction's bulk writes, in order, on a thread of its own.

    The server takes longer over a batch's rows than Python takes to prepare
    them; shipping them from a second thread lets the two overlap. The first
    failure is kept and every later write is skipped (the transaction is
    aborted anyway); :meth:`wait` re-raises it in the caller's thread.
    """

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future[None]] = []
        self._failed = False

    def submit(self, fn: Callable[[], None]) -> Future[None]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="datatrail-pg")
        future = self._pool.submit(self._run, fn)
        self._pending.append(future)
        return future

    def _run(self, fn: Callable[[], None]) -> None:
        if self._failed:
            return
        try:
            fn()
        except BaseException:
            self._failed = True
            raise

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    def wait(self) -> None:
        """Wait for every submitted write; raise the first failure, if any."""
        pending, self._pending = self._pending, []
        error: BaseException | None = None
        for future in pending:
            try:
                future.result()
            except BaseException as exc:  # the writes' own errors, re-raised below
                error = error or exc
        self._failed = False
        if error is not None:
            raise error

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


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
        self._writer = _Writer()
        # Per appending thread: the shortcuts its current append takes (see append()).
        self._taking = threading.local()
        # Per shortcut: how many more appends go without it since it last lost.
        self._cooling = dict.fromkeys((_IDS, _RUNS), 0)
        self.key_collation = ""
        """``COLLATE "C"`` for a value that must match the store's text columns in a
        recursive query, or nothing: stores made before datatrail's text columns compared
        by bytes keep the database's default collation."""
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
            meta = self.meta()
            stride = tree_stride(meta)
            collation = self.query(
                "SELECT collation_name FROM information_schema.columns "
                "WHERE table_schema = ? AND table_name = 'run_io' AND column_name = 'run_id'",
                (self._schema_name,),
            )
            self.key_collation = ' COLLATE "C"' if collation == [("C",)] else ""
        except BaseException:
            self.close()
            raise
        super().__init__(signer=signer, origin=meta["origin"], stride=stride)

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
            # The store's statements are short and their row estimates often rough (a freshly
            # loaded store has no statistics yet): JIT would compile for hundreds of
            # milliseconds to save microseconds.
            conn.execute("SET jit = off")
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
                self._writer.wait()  # every write of the batch, before COMMIT
            except BaseException as exc:
                # A batch that did not land must not leave its frontier or checkpoint cached,
                # or a later append of the same size would use them.
                self._forget_tail()
                self._abandon_writes(conn)
                # Roll back; psycopg only logs a rollback that fails on a lost connection.
                tx.__exit__(type(exc), exc, exc.__traceback__)
                lost = self._shortcut_lost(exc)
                if lost is not None:
                    raise _ShortcutLost(lost) from exc
                if isinstance(exc, self._pg.Error):
                    raise self._failure(exc, action) from exc
                raise
            try:
                tx.__exit__(None, None, None)
            except self._pg.Error as exc:
                self._forget_tail()
                raise self._failure(exc, f"commit ({action})") from exc

    def _abandon_writes(self, conn: Any) -> None:
        """Stop the writes still queued or running, so the transaction can be rolled back."""
        if not self._writer.busy:
            return
        if not conn.closed:
            # A write may be mid-statement: ask the server to stop it rather than wait it out.
            cancel = getattr(conn, "cancel_safe", None) or conn.cancel  # psycopg < 3.2: cancel
            with suppress(self._pg.Error):
                cancel()
        with suppress(BaseException):  # already failing: the first error is the one raised
            self._writer.wait()

    def _shortcuts(self) -> frozenset[str]:
        """The shortcuts the calling thread's append takes."""
        taken: frozenset[str] = getattr(self._taking, "shortcuts", frozenset())
        return taken

    def _shortcut_lost(self, exc: BaseException) -> str | None:
        """The shortcut whose bet ``exc`` shows lost, if it is one this append took."""
        if not isinstance(exc, self._pg.errors.UniqueViolation):
            return None
        shortcut = _SHORTCUT_KEYS.get(exc.diag.constraint_name or "")
        return shortcut if shortcut in self._shortcuts() else None

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
                    ("tree_stride", str(TREE_STRIDE)),
                ],
            )

    def _apply_migrations(self, conn: Any, current: int) -> None:
        for migration in MIGRATIONS:
            if migration.version <= current:
                continue
            for statement in (*migration.statements, *migration.postgres):
                conn.execute(_pg_ddl(statement))
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
        if self._writer.busy:
            self._writer.wait()  # a read must see the batch's writes; a write must follow them
        as_any = _in_list_as_any(sql) if params else None
        if as_any is not None:
            cur = tx.execute(as_any, [list(params)])
        else:
            cur = tx.execute(_pg_sql(sql), params)
        return cur.fetchall() if cur.description is not None else []

    def _executemany(self, tx: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        # The statement and its parameters are made here, while the writer thread is still
        # busy with earlier rows; it then only has to ship them.
        write, copies = self._prepare_write(sql, rows)
        if copies and not self._writer.busy:
            # The first rows of a batch (its log entries): wait while the writer hands them
            # to the connection. Formatting them takes it a few milliseconds; interleaved
            # with the caller's own Python (hashing, deriving) under the GIL, it would take
            # several times as long, and the server would wait for them.
            handed = threading.Event()
            done = self._writer.submit(lambda: write(tx, handed))
            done.add_done_callback(lambda _: handed.set())  # failed, or skipped after a failure
            handed.wait()
        else:
            self._writer.submit(lambda: write(tx, None))

    def _prepare_write(self, sql: str, rows: Sequence[Sequence[Any]]) -> tuple[_WriteFn, bool]:
        """How to write ``rows`` with ``sql`` (its bulk plan, else executemany), and if by COPY.

        What it returns holds lists of its own, so the caller may reuse ``rows``.
        """
        new_runs = _NEW_RUNS.get(sql) if _RUNS in self._shortcuts() else None
        if new_runs is not None:
            status = new_runs.status
            copied = [(*row, status) for row in rows] if status is not None else list(rows)
            return lambda tx, handed: _copy_rows(tx, new_runs.copy, copied, handed), True
        plan = _BULK.get(sql)
        if isinstance(plan, _Copy):
            copied = list(rows)
            return lambda tx, handed: _copy_rows(tx, plan, copied, handed), True
        if isinstance(plan, _SetInsert):
            batch = _distinct(rows, plan.key, keep_all=plan.unique)
            if batch is not None:
                columns = [list(column) for column in zip(*batch, strict=True)]
                packed = [_pack(c, t) for c, t in zip(columns, plan.types, strict=True)]
                if None in packed:
                    return lambda tx, _: _execute_once(tx, plan.statement, columns), False
                return lambda tx, _: _execute_once(tx, plan.packed, packed), False
        statement, copied = _pg_sql(sql), list(rows)
        return lambda tx, _: _execute_each(tx, statement, copied), False

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
            self._writer.close()
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _store(self, batch: list[Prepared], *, dedupe: bool) -> AppendResult:
        # Stored ids (a replay after a lost connection, a redelivered message) and runs seen
        # before (a run restarted in a later batch) are rare, and unique constraints find
        # them anyway: append with the shortcuts, and only if one of them loses, roll back
        # and append again without.
        shortcuts = self._take_shortcuts(dedupe=dedupe)
        if shortcuts:
            self._taking.shortcuts = shortcuts
            try:
                return self._append(batch, dedupe=dedupe)
            except _ShortcutLost as lost:
                with self._lock:
                    self._cooling[lost.shortcut] = _COOL_DOWN
            finally:
                self._taking.shortcuts = frozenset()
        return self._append(batch, dedupe=dedupe)

    def _take_shortcuts(self, *, dedupe: bool) -> frozenset[str]:
        """The shortcuts the next append may take: none that lost in the last few appends."""
        taken = set()
        with self._lock:
            for shortcut, left in self._cooling.items():
                if left:
                    self._cooling[shortcut] = left - 1
                elif dedupe or shortcut != _IDS:  # without the id check there is none to skip
                    taken.add(shortcut)
        return frozenset(taken)

    def _drop_stored(self, tx: Any, encoded: list[Prepared]) -> tuple[list[Prepared], int]:
        """The batch without repeated ids, and without stored ones unless the id check is skipped."""
        ids = [item[0].id for item in encoded]
        found: set[str] = set()
        if encoded and _IDS not in self._shortcuts():
            # One array parameter and one round trip, however large the batch.
            found = {r[0] for r in tx.execute("SELECT id FROM events WHERE id = ANY(%b)", [ids])}
        elif len(set(ids)) == len(ids):
            return encoded, 0  # the common case, found in C: nothing repeats, nothing to check
        kept = []
        for item in encoded:
            event_id = item[0].id
            if event_id not in found:
                found.add(event_id)
                kept.append(item)
        return kept, len(encoded) - len(kept)


# A prepared write: run it on a connection; a COPY sets the event (if any) once its rows
# are handed to the connection.
_WriteFn = Callable[[Any, "threading.Event | None"], None]


def _copy_rows(
    tx: Any, plan: _Copy, rows: Sequence[Sequence[Any]], handed: threading.Event | None
) -> None:
    with tx.cursor() as cur, cur.copy(plan.statement) as pipe:
        pipe.set_types(plan.types)
        for row in rows:
            pipe.write_row(row)
        if handed is not None:
            handed.set()  # before the COPY ends: the server still has the rows to write


def _execute_once(tx: Any, statement: str, params: Sequence[Any]) -> None:
    with tx.cursor() as cur:
        cur.execute(statement, params)


def _execute_each(tx: Any, statement: str, rows: Sequence[Sequence[Any]]) -> None:
    with tx.cursor() as cur:
        cur.executemany(statement, rows)


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
    # Filled back to front, each key ends up with the position of its first row.
    first = dict(zip(reversed(keys), range(len(keys) - 1, -1, -1), strict=True))
    if len(first) == len(keys):
        return rows
    if keep_all:
        return None
    return [rows[i] for i in sorted(first.values())]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
