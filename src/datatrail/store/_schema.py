"""The store's tables, as portable SQL (SQLite and PostgreSQL), and its migrations.

Two kinds of table. The log itself: ``events`` (one row per appended fact, its
canonical bytes and its Merkle leaf hash), ``tree_nodes`` (perfect-subtree
hashes, so proofs cost O(log n) reads) and ``checkpoints`` (every signed
checkpoint). And projections derived from the log, which ``rebuild`` can drop
and derive again: jobs, runs, datasets, artifacts, run_io, dataset_edges,
code_versions, environments, erasures, records. The artifact-level graph is
read from ``run_io`` (``datatrail.store._graph``); schema 1 kept it a second
time, as ``edges``, which schema 3 drops.

Migrations are small registered steps recorded in ``migrations``; a store whose
recorded version is above :data:`SCHEMA_VERSION` was written by a newer
datatrail and is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "LOG_TABLES",
    "MIGRATIONS",
    "PROJECTION_TABLES",
    "SCHEMA_VERSION",
    "Migration",
    "sqlite_sql",
]

BLOB = "{blob}"  # BLOB in SQLite, BYTEA in PostgreSQL


@dataclass(frozen=True)
class Migration:
    """One schema step: its version, a name, and its SQL statements.

    ``postgres`` holds statements only a PostgreSQL store runs, after the
    portable ones: indexes SQLite has no use for.
    """

    version: int
    name: str
    statements: tuple[str, ...]
    postgres: tuple[str, ...] = ()


_V1_LOG = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    f"""CREATE TABLE events (
        idx BIGINT PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        ts TEXT NOT NULL,
        body {BLOB},
        leaf {BLOB} NOT NULL,
        erased_by BIGINT
    )""",
    f"""CREATE TABLE tree_nodes (
        level INTEGER NOT NULL,
        idx BIGINT NOT NULL,
        hash {BLOB} NOT NULL,
        PRIMARY KEY (level, idx)
    )""",
    f"""CREATE TABLE checkpoints (
        size BIGINT PRIMARY KEY,
        root {BLOB} NOT NULL,
        note TEXT NOT NULL,
        ts TEXT NOT NULL
    )""",
)

_V1_PROJECTIONS = (
    """CREATE TABLE jobs (
        namespace TEXT NOT NULL, name TEXT NOT NULL, first_idx BIGINT NOT NULL, first_ts TEXT NOT NULL,
        PRIMARY KEY (namespace, name)
    )""",
    """CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        job_namespace TEXT, job_name TEXT, parent_run_id TEXT,
        status TEXT NOT NULL, started_at TEXT, ended_at TEXT,
        params TEXT, code_id TEXT, env_id TEXT, actor TEXT, level TEXT, error TEXT,
        start_idx BIGINT, end_idx BIGINT
    )""",
    "CREATE INDEX runs_job ON runs (job_namespace, job_name, started_at)",
    "CREATE INDEX runs_parent ON runs (parent_run_id)",
    "CREATE INDEX runs_started ON runs (started_at)",
    """CREATE TABLE datasets (
        namespace TEXT NOT NULL, name TEXT NOT NULL, first_idx BIGINT NOT NULL, first_ts TEXT NOT NULL,
        PRIMARY KEY (namespace, name)
    )""",
    """CREATE TABLE artifacts (
        artifact_id TEXT PRIMARY KEY, kind TEXT NOT NULL, size BIGINT, rows BIGINT,
        schema TEXT, media_type TEXT, stats TEXT, first_idx BIGINT NOT NULL, first_ts TEXT NOT NULL
    )""",
    """CREATE TABLE run_io (
        idx BIGINT PRIMARY KEY, run_id TEXT NOT NULL, role TEXT NOT NULL, artifact_id TEXT NOT NULL,
        dataset_namespace TEXT, dataset_name TEXT, label TEXT, ts TEXT NOT NULL,
        job_namespace TEXT, job_name TEXT
    )""",
    "CREATE INDEX run_io_artifact ON run_io (artifact_id, role)",
    "CREATE INDEX run_io_run ON run_io (run_id, role)",
    "CREATE INDEX run_io_dataset ON run_io (dataset_namespace, dataset_name, ts)",
    # Artifact-level data flow, one row per io event: input artifact -> run, run -> output artifact.
    "CREATE TABLE edges (idx BIGINT PRIMARY KEY, src TEXT NOT NULL, dst TEXT NOT NULL, ts TEXT NOT NULL)",
    "CREATE INDEX edges_src ON edges (src, dst)",
    "CREATE INDEX edges_dst ON edges (dst, src)",
    # Dataset-level data flow, one row per distinct pair: dataset -> job -> dataset.
    """CREATE TABLE dataset_edges (
        src TEXT NOT NULL, dst TEXT NOT NULL, first_idx BIGINT NOT NULL, first_ts TEXT NOT NULL,
        PRIMARY KEY (src, dst)
    )""",
    "CREATE INDEX dataset_edges_dst ON dataset_edges (dst, src)",
    "CREATE TABLE code_versions (code_id TEXT PRIMARY KEY, body TEXT NOT NULL, first_idx BIGINT NOT NULL)",
    "CREATE TABLE environments (env_id TEXT PRIMARY KEY, body TEXT NOT NULL, first_idx BIGINT NOT NULL)",
    """CREATE TABLE erasures (
        target_idx BIGINT PRIMARY KEY, receipt_idx BIGINT NOT NULL, reason TEXT NOT NULL, ts TEXT NOT NULL
    )""",
)


def sqlite_sql(statement: str) -> str:
    """A portable statement in SQLite's dialect.

    Only ``INTEGER PRIMARY KEY`` makes a column SQLite's rowid; ``BIGINT PRIMARY KEY``
    would add a second B-tree to every insert into the log, run_io and records.
    """
    return statement.replace("{blob}", "BLOB").replace("BIGINT PRIMARY KEY", "INTEGER PRIMARY KEY")


_V2_RECORDS = (
    # Every ``record`` event (policy versions, access decisions, holds, alerts, contracts,
    # OpenLineage payloads, ...), so each part can query its own facts by topic and subject.
    """CREATE TABLE records (
        idx BIGINT PRIMARY KEY, topic TEXT NOT NULL, subject TEXT, ts TEXT NOT NULL,
        data TEXT NOT NULL, actor TEXT
    )""",
    "CREATE INDEX records_topic ON records (topic, subject, idx)",
    "CREATE INDEX records_subject ON records (subject, topic, idx)",
)

# run_io already holds every io event's artifact and run under an index each: the lineage
# walks read the artifact-level graph from it, and nothing writes each edge twice. Runs
# are looked up by parent only for a given parent, so top-level runs need no index entry.
_V3_NO_EDGES = (
    "DROP TABLE edges",
    "DROP INDEX runs_parent",
    "CREATE INDEX runs_parent ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1, "event log, Merkle tree, checkpoints and lineage projections", _V1_LOG + _V1_PROJECTIONS
    ),
    Migration(2, "records: governance, alerts, contracts and interop facts", _V2_RECORDS),
    Migration(
        3,
        "the artifact graph is read from run_io: drop edges; index child runs only",
        _V3_NO_EDGES,
        # PostgreSQL's run_io_artifact is a hash index on the artifact alone (SQLite's is a
        # B-tree on artifact and role): an upstream step at an artifact asks for the runs
        # that wrote it, which this finds without reading every run that read it.
        postgres=(
            "CREATE INDEX run_io_output ON run_io USING hash (artifact_id) WHERE role = 'output'",
        ),
    ),
)

SCHEMA_VERSION = MIGRATIONS[-1].version
"""The newest schema version this datatrail knows."""

LOG_TABLES = ("meta", "migrations", "events", "tree_nodes", "checkpoints")
"""Tables that hold the log itself; verified by recomputing hashes and signatures."""

PROJECTION_TABLES = (
    "jobs",
    "runs",
    "datasets",
    "artifacts",
    "run_io",
    "dataset_edges",
    "code_versions",
    "environments",
    "erasures",
    "records",
)
"""Tables derived from the log; verified by deriving them again and comparing."""
