"""Dataset naming (OpenLineage conventions) and node ids.

A dataset is ``namespace`` + ``name``: a local file is ``file`` + its absolute
path, a PostgreSQL table ``postgres://host:port`` + ``db.schema.table``, an
in-memory value ``inmemory`` + a name.

Node ids name anything in the lineage graph with one scheme::

    dataset:NAMESPACE:NAME     dataset:file:/data/orders.csv
                               dataset:postgres://db:5432:shop.public.orders
    job:NAMESPACE:NAME         job:default:pipeline.clean
    run:RUN_ID                 run:0192f3c4-...
    artifact:ARTIFACT_ID       artifact:blake3:9f2c...

A namespace is either a plain word (``file``, ``inmemory``, ``default``) or a
URL authority ``scheme://host[:port]``; the name is everything after the
separator that follows it, so names may contain colons.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import msgspec

from datatrail.errors import InvalidNodeId

__all__ = [
    "DatasetRef",
    "JobRef",
    "NodeId",
    "file_dataset",
    "inmemory_dataset",
    "parse_node_id",
    "postgres_dataset",
]

NodeKind = Literal["dataset", "job", "run", "artifact"]

_URL_NS = re.compile(r"^([a-z][a-z0-9+.\-]*://[^/:]*(?::\d+)?):(.+)$", re.IGNORECASE)
_WORD_NS = re.compile(r"^([A-Za-z0-9_.\-]+):(.+)$")
_ARTIFACT = re.compile(r"^(blake3:[0-9a-f]{64}|uuid:[0-9a-f\-]{36})$")
_RUN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class DatasetRef(msgspec.Struct, frozen=True, kw_only=True, order=True, gc=False):
    """A named data asset: ``namespace`` + ``name`` as OpenLineage names it."""

    namespace: str
    name: str

    def node_id(self) -> str:
        """This dataset's node id, ``dataset:NAMESPACE:NAME``."""
        return f"dataset:{self.namespace}:{self.name}"


class JobRef(msgspec.Struct, frozen=True, kw_only=True, order=True, gc=False):
    """A named transformation: ``namespace`` + ``name`` (a tracked function's ``module.qualname``)."""

    namespace: str
    name: str

    def node_id(self) -> str:
        """This job's node id, ``job:NAMESPACE:NAME``."""
        return f"job:{self.namespace}:{self.name}"


class NodeId(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A parsed node id: its kind and the key that identifies it."""

    kind: NodeKind
    key: str
    namespace: str | None = None
    name: str | None = None

    def __str__(self) -> str:
        if self.kind in ("dataset", "job"):
            return f"{self.kind}:{self.namespace}:{self.name}"
        return f"{self.kind}:{self.key}"


def _split_ns(rest: str, text: str) -> tuple[str, str]:
    match = _URL_NS.match(rest) or _WORD_NS.match(rest)
    if not match:
        raise InvalidNodeId(
            f"node id {text!r}: expected NAMESPACE:NAME after the kind, "
            "e.g. dataset:file:/data/orders.csv or dataset:postgres://host:5432:db.schema.table"
        )
    return match.group(1), match.group(2)


def parse_node_id(text: str) -> NodeId:
    """Parse ``dataset:…``, ``job:…``, ``run:…`` or ``artifact:…`` into a :class:`NodeId`."""
    kind, sep, rest = text.partition(":")
    if not sep or not rest:
        raise InvalidNodeId(
            f"node id {text!r} has no kind; use dataset:NS:NAME, job:NS:NAME, run:RUN_ID or artifact:ID"
        )
    if kind in ("dataset", "job"):
        namespace, name = _split_ns(rest, text)
        return NodeId(
            kind="dataset" if kind == "dataset" else "job",
            key=f"{namespace}:{name}",
            namespace=namespace,
            name=name,
        )
    if kind == "run":
        if not _RUN.match(rest):
            raise InvalidNodeId(
                f"node id {text!r}: a run id is a UUID such as 0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b"
            )
        return NodeId(kind="run", key=rest)
    if kind == "artifact":
        if not _ARTIFACT.match(rest):
            raise InvalidNodeId(
                f"node id {text!r}: an artifact id is blake3:<64 hex digits> or uuid:<UUID>"
            )
        return NodeId(kind="artifact", key=rest)
    raise InvalidNodeId(
        f"node id {text!r}: unknown kind {kind!r}; use dataset, job, run or artifact"
    )


def file_dataset(path: str | os.PathLike[str]) -> DatasetRef:
    """The dataset of a local file or directory: namespace ``file``, name its absolute path."""
    return DatasetRef(namespace="file", name=Path(path).expanduser().resolve().as_posix())


def postgres_dataset(host: str, port: int, database: str, schema: str, table: str) -> DatasetRef:
    """The dataset of a PostgreSQL table: ``postgres://host:port`` + ``db.schema.table``."""
    return DatasetRef(namespace=f"postgres://{host}:{port}", name=f"{database}.{schema}.{table}")


def inmemory_dataset(name: str) -> DatasetRef:
    """The dataset of an in-memory value: namespace ``inmemory``."""
    return DatasetRef(namespace="inmemory", name=name)
