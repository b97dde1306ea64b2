"""Stores: the append-only log, its Merkle tree and checkpoints, and the projections.

``open_store(url)`` opens a backend by URL scheme; every backend meets the
:class:`Store` protocol and passes one contract test suite.
"""

from datatrail.store._base import AppendResult, Progress, Store, StoredCheckpoint, StoredEvent
from datatrail.store._engine import derive_in_memory
from datatrail.store._graph import artifact_edges
from datatrail.store._home import HOME_DIRNAME, Home, find_home, init_home, open_store
from datatrail.store._postgres import PostgresStore
from datatrail.store._schema import LOG_TABLES, PROJECTION_TABLES, SCHEMA_VERSION
from datatrail.store._sqlite import SQLiteStore

__all__ = [
    "HOME_DIRNAME",
    "LOG_TABLES",
    "PROJECTION_TABLES",
    "SCHEMA_VERSION",
    "AppendResult",
    "Home",
    "PostgresStore",
    "Progress",
    "SQLiteStore",
    "Store",
    "StoredCheckpoint",
    "StoredEvent",
    "artifact_edges",
    "derive_in_memory",
    "find_home",
    "init_home",
    "open_store",
]
