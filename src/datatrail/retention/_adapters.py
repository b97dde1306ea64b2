"""Storage adapters: where a dataset's data lives, and how retention deletes or archives it.

Adapters are looked up by dataset namespace in a registry; the built-ins
register through the same :func:`register_adapter` as third-party ones:

- ``file``: a local file or directory (name = absolute path). Before touching
  it the adapter hashes it again: only content equal to the artifact being
  purged is deleted or archived; anything else was written after the trail
  last saw it and is left alone.
- ``sqlite``: a table in an SQLite database file (name = ``/abs/path.db:table``,
  see :func:`sqlite_table_dataset`).
- ``postgres://host:port``: a PostgreSQL table (name = ``db.schema.table``), reached
  through a URL from ``connections`` (namespace -> URL) or
  ``postgresql://host:port/db`` with the usual libpq environment (PGUSER, ...).

An adapter returns what happened as one word: ``deleted``, ``archived``,
``absent`` (nothing there any more) or ``changed`` (the storage holds other
content now, so it was left alone).
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from datatrail.errors import ConfigError, DatatrailError, HashingError, UsageError
from datatrail.model import DatasetRef

__all__ = [
    "AdapterContext",
    "StorageAdapter",
    "StorageError",
    "adapter_for",
    "register_adapter",
    "sqlite_table_dataset",
]


class StorageError(DatatrailError):
    """A storage adapter could not delete or archive a dataset's data."""

    status = 502


@dataclass
class AdapterContext:
    """What adapters may need: connection URLs per namespace and the archive folder."""

    connections: Mapping[str, str] = field(default_factory=dict)
    archive_dir: Path | None = None


@runtime_checkable
class StorageAdapter(Protocol):
    """Deletes or archives the data a dataset names, if it still holds the given artifact."""

    def handles(self, namespace: str) -> bool:
        """Whether this adapter owns datasets of ``namespace``."""
        ...

    def delete(self, ref: DatasetRef, artifact: str, ctx: AdapterContext) -> str:
        """Delete the data; ``deleted``, ``absent`` or ``changed``."""
        ...

    def archive(self, ref: DatasetRef, artifact: str, ctx: AdapterContext) -> str:
        """Move the data out of use into the archive; ``archived``, ``absent`` or ``changed``."""
        ...


_registry: list[StorageAdapter] = []
_lock = threading.Lock()


def register_adapter(adapter: StorageAdapter, *, first: bool = True) -> None:
    """Add a storage adapter; by default it takes precedence over those registered before."""
    if not isinstance(adapter, StorageAdapter):
        raise UsageError(
            f"{adapter!r} is not a storage adapter: it needs handles(), delete() and archive()"
        )
    with _lock:
        if first:
            _registry.insert(0, adapter)
        else:
            _registry.append(adapter)


def adapter_for(namespace: str) -> StorageAdapter | None:
    """The adapter for a namespace, or ``None`` (the data is not somewhere retention can reach)."""
    with _lock:
        adapters = list(_registry)
    for adapter in adapters:
        if adapter.handles(namespace):
            return adapter
    return None


def sqlite_table_dataset(path: str | Path, table: str) -> DatasetRef:
    """The dataset of a table in an SQLite file: namespace ``sqlite``, name ``/abs/path.db:table``."""
    return DatasetRef(
        namespace="sqlite", name=f"{Path(path).expanduser().resolve().as_posix()}:{table}"
    )


def _archive_target(ctx: AdapterContext, artifact: str, name: str) -> Path:
    if ctx.archive_dir is None:
        raise ConfigError(
            "archiving needs an archive folder; give --archive-dir or use a trail home"
        )
    folder = ctx.archive_dir / artifact.replace(":", "-")[:24]
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


class FileAdapter:
    """Local files and directories (namespace ``file``)."""

    def handles(self, namespace: str) -> bool:
        return namespace == "file"

    def _state(self, ref: DatasetRef, artifact: str) -> tuple[Path, str]:
        from datatrail.capture._hashing import hash_directory, hash_file

        path = Path(ref.name)
        if not path.exists():
            return path, "absent"
        try:
            found = hash_directory(path) if path.is_dir() else hash_file(path)
        except HashingError as exc:
            raise StorageError(f"{path}: cannot read it to check its content: {exc}") from None
        return path, "same" if found.digest == artifact else "changed"

    def delete(self, ref: DatasetRef, artifact: str, ctx: AdapterContext) -> str:
        path, state = self._state(ref, artifact)
        if state != "same":
            return state
        try:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError as exc:
            raise StorageError(f"{path}: cannot delete it: {exc}") from None
        return "deleted"

    def archive(self, ref: DatasetRef, artifact: str, ctx: AdapterContext) -> str:
        path, state = self._state(ref, artifact)
        if state != "same":
            return state
        target = _archive_target(ctx, artifact, path.name)
        try:
            shutil.move(str(path), str(target))
        except OSError as exc:
            raise StorageError(f"{path}: cannot move it to {target}: {exc}") from None
        return "archived"


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class SQLiteTableAdapter:
    """Tables in SQLite database files (namespace ``sqlite``, name ``/path.db:table``)."""

    def handles(self, namespace: str) -> bool:
        return namespace == "sqlite"

    def _open(self, ref: DatasetRef) -> tuple[sqlite3.Connection | None, str]:
        path, sep, table = ref.name.rpartition(":")
        if not sep or not table:
            raise UsageError(f"dataset sqlite:{ref.name}: the name must be /path/to/file.db:table")
        if not Path(path).is_file():
            return None, table
        return sqlite3.connect(path, isolation_level=None, timeout=30.0), table

    def _exists(self, conn: sqlite3.Connection, table: str) -> bool:
        rows = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchall()
        return bool(rows)

    def delete(self, ref: DatasetRef, artifact: str, ctx: AdapterContext) -> str:
        conn, table = self._open(ref)
        if conn is None:
            return "absent"
        try:
            if not self._exists(conn, table):
                return "absent"
            conn.execute("PRAGMA secure_delete = ON")
            conn.execute(f"DROP TABLE {_quote(table)}")
            return "deleted"
        except sqlite3.Error as exc:
            raise StorageError(f"sqlite:{ref.name}: cannot drop the table: {exc}") from None
        finally:
            conn.close()

    def archive(self, ref: DatasetRef, artifact: str, ctx: AdapterContext) -> str:
        conn, table = self._open(ref)
        if conn is None:
            return "absent"
        try:
            if not self._exists(conn, table):
                return "absent"
            target = f"archived_{table}_{artifact.split(':')[-1][:12]}"
            conn.execute(f"ALTER TABLE {_quote(table)} RENAME TO {_quote(target)}")
            return "archived"
        except sqlite3.Error as exc:
            raise StorageError(f"sqlite:{ref.name}: cannot archive the table: {exc}") from None
        finally:
            conn.close()


class PostgresTableAdapter:
    """PostgreSQL tables (namespace ``postgres://host:port``, name ``db.schema.table``)."""

    archive_schema = "datatrail_archive"

    def handles(self, namespace: str) -> bool:
        return namespace.startswith(("postgres://", "postgresql://"))

    def _parts(self, ref: DatasetRef) -> tuple[str, str, str]:
        parts = ref.name.split(".")
        if len(parts) != 3 or not all(parts):
            raise UsageError(
                f"dataset {ref.namespace}:{ref.name}: a PostgreSQL table is named db.schema.table"
            )
        return parts[0], parts[1], parts[2]

    def _url(self, ref: DatasetRef, database: str, ctx: AdapterContext) -> str:
        given = ctx.connections.get(ref.namespace)
        if given:
            return given
        authority = ref.namespace.split("://", 1)[1]
        return f"postgresql://{authority}/{database}"

    def _run(self, ref: DatasetRef, ctx: AdapterContext, archive: str | None) -> str:
        try:
            import psycopg
            from psycopg import sql
        except ImportError:  # pragma: no cover - the postgres extra is part of dev installs
            raise ConfigError(
                "deleting PostgreSQL tables needs psycopg: pip install 'datatrail[postgres]'"
            ) from None
        database, schema, table = self._parts(ref)
        url = self._url(ref, database, ctx)
        try:
            with psycopg.connect(url, autocommit=False, connect_timeout=10) as conn:
                found = conn.execute(
                    "SELECT 1 FROM information_schema.tables WHERE table_schema = %s "
                    "AND table_name = %s",
                    (schema, table),
                ).fetchall()
                if not found:
                    return "absent"
                name = sql.Identifier(schema, table)
                if archive is None:
                    conn.execute(sql.SQL("DROP TABLE {}").format(name))
                    return "deleted"
                conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                        sql.Identifier(self.archive_schema)
                    )
                )
                target = f"{schema}_{table}_{archive}"[:63]
                conn.execute(
                    sql.SQL("ALTER TABLE {} RENAME TO {}").format(name, sql.Identifier(target))
                )
                conn.execute(
                    sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(
                        sql.Identifier(schema, target), sql.Identifier(self.archive_schema)
                    )
                )
                return "archived"
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StorageError(
                f"{ref.namespace}:{ref.name}: {first}; give the server's URL with "
                f"--connect '{ref.namespace}=postgresql://USER@HOST:PORT/{database}'"
            ) from None

    def delete(self, ref: DatasetRef, artifact: str, ctx: AdapterContext) -> str:
        return self._run(ref, ctx, None)

    def archive(self, ref: DatasetRef, artifact: str, ctx: AdapterContext) -> str:
        return self._run(ref, ctx, artifact.split(":")[-1][:12])


for _builtin in (FileAdapter(), SQLiteTableAdapter(), PostgresTableAdapter()):
    register_adapter(_builtin, first=False)
