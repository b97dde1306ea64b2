"""The embedded store: one SQLite file in WAL mode.

One connection per store object, guarded by a lock; appends run in
``BEGIN IMMEDIATE`` transactions that read the tree size and frontier inside
the transaction, so several processes appending to the same file still build
one gap-free log with one consistent tree. Readers in other processes are not
blocked (WAL).

Rows go in as multi-row ``INSERT`` statements, a few hundred rows per step, and
a store that appends folds the WAL back into the file on a thread of its own
(see :class:`_Checkpointer`), so the appending thread rarely pays for that.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import sqlite3
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datatrail.errors import NotAStore, SchemaTooNew, StoreError
from datatrail.ledger import Signer
from datatrail.model import uuid7
from datatrail.store._base import AppendResult, Progress
from datatrail.store._engine import TREE_STRIDE, LogEngine, Prepared, tree_stride
from datatrail.store._schema import MIGRATIONS, SCHEMA_VERSION, sqlite_sql

__all__ = ["SQLiteStore"]

log = logging.getLogger("datatrail")

_AUTOCHECKPOINT = 10_000
"""WAL pages after which a commit checkpoints inline: the bound if the checkpointer lags."""
_CHECKPOINT_PAGES = 2_000
"""Pages the file grows by before the checkpointer folds the WAL back in."""
_CHECKPOINT_IDLE = 2.0
"""Seconds without an append after which the checkpointer's thread ends (it restarts)."""
_POKE_EVENTS = 256
"""Events appended between two looks of the checkpointer at the file's growth."""


# ``INSERT INTO t (a, b) VALUES (?, 'x', ?)`` with an optional ``ON CONFLICT`` tail:
# the statements an append inserts many rows with (never ``INSERT ... SELECT``).
_INSERT_VALUES = re.compile(
    r"(INSERT INTO \w+ \([\w, ]+\) VALUES )(\((?:\?|'\w*')(?:, (?:\?|'\w*'))*\))"
    r"((?: ON CONFLICT .*)?)",
    re.S,
)
_CHUNK_ROWS = 500
_CHUNK_PARAMS = 4000
"""Parameters per multi-row insert, at most (SQLite's own limit may be lower: 999 before 3.32)."""


def _multi_row(sql: str, max_params: int) -> tuple[str, int] | None:
    """``sql`` inserting several rows per statement, and how many; None if it cannot."""
    m = _INSERT_VALUES.fullmatch(sql)
    if m is None or "SELECT" in m.group(3).upper():
        return None
    head, row, tail = m.groups()
    per_chunk = min(_CHUNK_ROWS, max_params // max(1, row.count("?")))
    if per_chunk < 2:
        return None
    return f"{head}{', '.join([row] * per_chunk)}{tail}", per_chunk


_flatten = itertools.chain.from_iterable


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


def _page_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA page_count").fetchall()[0][0])


class _Checkpointer:
    """Folds the WAL back into the database file on its own thread and connection.

    SQLite's auto-checkpoint runs inside the commit that crosses its threshold,
    copying tens of megabytes and syncing the file while the appender waits. This
    thread runs a passive checkpoint (it never blocks writers or readers, of this
    process or others) each time the file has grown by ``pages`` since its last
    one; sqlite3 releases the GIL meanwhile, so it overlaps with the appender. The
    appending connection keeps its auto-checkpoint as the bound on the WAL if this
    thread falls behind or fails. The thread starts on the first append, ends
    after ``idle`` seconds without one (the next restarts it) or when the store
    closes. A fork waits until the thread is outside SQLite (a child must not
    inherit SQLite's locks mid-call); the child starts a thread of its own.
    """

    def __init__(self, path: str, *, pages: int, idle: float) -> None:
        self._path = path
        self._pages = pages
        self._idle = idle
        self._lock = threading.Lock()
        self._in_sqlite = threading.Lock()  # held by the thread around each SQLite call
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._closed = False
        self._base: int | None = None  # the file's page count at the last checkpoint

    def poke(self) -> None:
        """Note that an append committed: wake the thread, starting it if it is not running."""
        thread = self._thread
        if thread is not None and thread.is_alive() and self._pid == os.getpid():
            self._wake.set()
            return
        with self._lock:
            if self._closed:
                return
            thread = self._thread
            if thread is None or not thread.is_alive() or self._pid != os.getpid():
                with _registry_lock:
                    _registry.add(self)
                self._pid = os.getpid()
                self._wake = threading.Event()
                thread = threading.Thread(
                    target=self._run, args=(self._wake,), name="datatrail-checkpoint", daemon=True
                )
                self._thread = thread
                thread.start()
            self._wake.set()

    def close(self) -> None:
        """Stop the thread, letting a checkpoint in progress finish; later pokes do nothing."""
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
            self._wake.set()
        if thread is not None and self._pid == os.getpid():
            thread.join()

    def _forked(self) -> None:
        """In a forked child: the thread did not come along, nor may any lock it held."""
        self._lock = threading.Lock()
        self._in_sqlite = threading.Lock()
        self._wake = threading.Event()
        self._thread = None

    def _run(self, wake: threading.Event) -> None:
        conn: sqlite3.Connection | None = None
        try:
            with self._in_sqlite:
                conn = _connect(self._path)
                if self._base is None:
                    self._base = _page_count(conn)
            while True:
                woken = wake.wait(self._idle)
                with self._lock:
                    if self._closed or self._thread is not threading.current_thread():
                        return
                    if not woken:  # idle: end here; the next append starts a new thread
                        self._thread = None
                        return
                    wake.clear()
                with self._in_sqlite:
                    pages = _page_count(conn)
                    if pages - self._base >= self._pages:
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                        self._base = pages
        except sqlite3.Error:
            # The appending connection's auto-checkpoint still bounds the WAL.
            log.debug("datatrail: a background checkpoint of %s failed", self._path, exc_info=True)
            with self._lock:
                if self._thread is threading.current_thread():
                    self._thread = None
        finally:
            if conn is not None:
                with self._in_sqlite:
                    conn.close()


_registry: weakref.WeakSet[_Checkpointer] = weakref.WeakSet()
_registry_lock = threading.Lock()
_held: list[_Checkpointer] = []


def _before_fork() -> None:
    with _registry_lock:
        running = list(_registry)
    for checkpointer in running:
        checkpointer._in_sqlite.acquire()
        _held.append(checkpointer)


def _after_fork_in_parent() -> None:
    while _held:
        _held.pop()._in_sqlite.release()


def _after_fork_in_child() -> None:
    global _registry_lock
    _registry_lock = threading.Lock()
    for checkpointer in list(_registry):
        checkpointer._forked()
    _held.clear()


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)


class SQLiteStore(LogEngine):
    """A datatrail store in one SQLite file."""

    def __init__(
        self, path: str | Path, *, create: bool = False, signer: Signer | None = None
    ) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self._lock = threading.RLock()
        self._checkpointer = _Checkpointer(
            str(self.path), pages=_CHECKPOINT_PAGES, idle=_CHECKPOINT_IDLE
        )
        self._unpoked = 0  # events appended since the checkpointer was last woken
        exists = self.path.exists()
        if not exists and not create:
            raise StoreError(
                f"no datatrail store at {self.path}; run `datatrail init` or set DATATRAIL_URL"
            )
        if exists and self.path.is_dir():
            raise NotAStore(f"{self.path} is a directory, not a datatrail store file")
        if not exists:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = _connect(str(self.path))
        self._max_params = min(
            _CHUNK_PARAMS, self._conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        )
        self._multi: dict[str, tuple[str, int] | None] = {}  # multi-row forms of inserts
        try:
            # Identify the file before writing anything to it (WAL mode is a write).
            self._open_schema(exists, create)
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise NotAStore(f"{self.path} is not a datatrail store ({exc})") from None
        except BaseException:
            self._conn.close()
            raise
        meta = self.meta()
        origin = meta.get("origin")
        if origin is None:
            self._conn.close()
            raise NotAStore(
                f"{self.path} has no origin in its meta table; it is not a complete datatrail store"
            )
        try:
            stride = tree_stride(meta)
        except StoreError:
            self._conn.close()
            raise
        super().__init__(signer=signer, origin=origin, stride=stride)

    # -- schema ---------------------------------------------------------------

    def _open_schema(self, existed: bool, create: bool) -> None:
        tables = {
            r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if existed and tables and "meta" not in tables:
            raise NotAStore(
                f"{self.path} is an SQLite database but not a datatrail store (no meta table)"
            )
        if "meta" in tables:
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
            if row is None or row[0] != "datatrail":
                raise NotAStore(f"{self.path} is an SQLite database but not a datatrail store")
            version = int(
                self._conn.execute("SELECT MAX(version) FROM migrations").fetchone()[0] or 0
            )
            if version > SCHEMA_VERSION:
                raise SchemaTooNew(
                    f"{self.path} has schema version {version}, but this datatrail knows up to "
                    f"{SCHEMA_VERSION}; upgrade datatrail to read it"
                )
            self._set_pragmas()
            self._migrate(version)
            return
        if existed and tables:
            raise NotAStore(f"{self.path} is an SQLite database but not a datatrail store")
        if existed and not create:
            raise NotAStore(f"{self.path} is empty, not a datatrail store; run `datatrail init`")
        self._set_pragmas()
        self._create()

    def _set_pragmas(self) -> None:
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._conn.execute(
            "PRAGMA cache_size = -65536"
        )  # 64 MiB: index pages of a large log stay hot
        # Fold the WAL back into the file every ~40 MB rather than every 4 MB: small
        # commits (one OpenLineage event, one access record) stop paying for checkpoints.
        # Large appends are folded in sooner, off this connection, by the checkpointer.
        self._conn.execute(f"PRAGMA wal_autocheckpoint = {_AUTOCHECKPOINT}")

    def _create(self) -> None:
        store_id = uuid7()
        with self._tx():
            self._conn.execute(
                "CREATE TABLE migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            self._apply_migrations(0)
            self._conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [
                    ("format", "datatrail"),
                    ("store_id", store_id),
                    ("origin", f"datatrail/{store_id}"),
                    ("tree_stride", str(TREE_STRIDE)),
                ],
            )

    def _migrate(self, version: int) -> None:
        if version < SCHEMA_VERSION:
            with self._tx():
                self._apply_migrations(version)

    def _apply_migrations(self, current: int) -> None:
        from datatrail.model import now_ts

        for migration in MIGRATIONS:
            if migration.version <= current:
                continue
            for statement in migration.statements:
                self._conn.execute(sqlite_sql(statement))
            self._conn.execute(
                "INSERT INTO migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, now_ts()),
            )

    # -- transactions ---------------------------------------------------------

    class _Tx:
        def __init__(self, store: SQLiteStore) -> None:
            self.store = store

        def __enter__(self) -> sqlite3.Connection:
            self.store._lock.acquire()
            try:
                self.store._conn.execute("BEGIN IMMEDIATE")
            except BaseException:
                self.store._lock.release()
                raise
            return self.store._conn

        def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
            try:
                self.store._conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
            finally:
                self.store._lock.release()

    def _tx(self) -> SQLiteStore._Tx:
        return SQLiteStore._Tx(self)

    # -- LogEngine hooks ------------------------------------------------------

    def _begin(self) -> Any:
        return self._tx()

    def _execute(self, tx: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, params).fetchall()

    def _executemany(self, tx: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        # executemany steps once per row and releases the GIL around each step, so a
        # busy producer thread makes every row wait for the GIL; a chunk of rows in one
        # multi-row INSERT is one step.
        try:
            plan = self._multi[sql]
        except KeyError:
            plan = self._multi[sql] = _multi_row(sql, self._max_params)
        done = 0
        if plan is not None and len(rows) >= plan[1]:
            multi, per_chunk = plan
            full = len(rows) - len(rows) % per_chunk
            execute = self._conn.execute
            for start in range(0, full, per_chunk):
                execute(multi, list(_flatten(rows[start : start + per_chunk])))
            done = full
        if done < len(rows):
            self._conn.executemany(sql, rows[done:] if done else rows)

    # -- reads ----------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def table_rows(self, table: str) -> list[tuple[Any, ...]]:
        names = {r[0] for r in self.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if table not in names:
            raise StoreError(f"no table {table!r} in {self.path}")
        with self._lock:
            ncols = len(self._conn.execute(f"SELECT * FROM {table} LIMIT 0").description)
        order = ", ".join(str(i + 1) for i in range(ncols))
        return self.query(f"SELECT * FROM {table} ORDER BY {order}")

    def tables(self) -> list[str]:
        """Every table in the store file."""
        return [
            r[0]
            for r in self.query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            if not r[0].startswith("sqlite_")
        ]

    def rebuild(self, progress: Progress | None = None) -> int:
        with self._tx():
            return self._rebuild_locked(None, progress)

    def close(self) -> None:
        self._checkpointer.close()
        with self._lock:
            self._conn.close()

    def _store(self, batch: list[Prepared], *, dedupe: bool) -> AppendResult:
        result = self._append(batch, dedupe=dedupe)
        if result.appended:
            # The checkpointer looks at the file's growth every few hundred events, not
            # after every small commit (one OpenLineage event, one access record).
            self._unpoked += result.appended
            if self._unpoked >= _POKE_EVENTS:
                self._unpoked = 0
                self._checkpointer.poke()
        return result
