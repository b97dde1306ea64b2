"""The embedded store: one SQLite file in WAL mode.

One connection per store object, guarded by a lock; appends run in
``BEGIN IMMEDIATE`` transactions that read the tree size and frontier inside
the transaction, so several processes appending to the same file still build
one gap-free log with one consistent tree. Readers in other processes are not
blocked (WAL).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datatrail.errors import NotAStore, SchemaTooNew, StoreError
from datatrail.ledger import Signer
from datatrail.model import Event, uuid7
from datatrail.store._base import AppendResult, Progress
from datatrail.store._engine import TREE_STRIDE, LogEngine, tree_stride
from datatrail.store._schema import MIGRATIONS, SCHEMA_VERSION, sqlite_sql

__all__ = ["SQLiteStore"]


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


class SQLiteStore(LogEngine):
    """A datatrail store in one SQLite file."""

    def __init__(
        self, path: str | Path, *, create: bool = False, signer: Signer | None = None
    ) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self._lock = threading.RLock()
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
        self._conn.execute("PRAGMA wal_autocheckpoint = 10000")

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
        self._conn.executemany(sql, rows)

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
        with self._lock:
            self._conn.close()

    def append(self, events: Sequence[Event], *, dedupe: bool = True) -> AppendResult:
        return self._append(events, dedupe=dedupe)
