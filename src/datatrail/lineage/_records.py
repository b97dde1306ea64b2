"""Typed results of lineage queries; their ``to_dict()`` is the ``--json`` shape."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = [
    "ArtifactRecord",
    "DatasetRecord",
    "ExplainRun",
    "Explanation",
    "IORecord",
    "LineageEdge",
    "LineageGraph",
    "LineageNode",
    "RunRecord",
]


class _Record(msgspec.Struct, frozen=True, kw_only=True):
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (the stable ``--json`` shape)."""
        result: dict[str, Any] = msgspec.to_builtins(self)
        return result


class IORecord(_Record, frozen=True, kw_only=True):
    """One input or output of a run."""

    artifact_id: str
    role: Literal["input", "output"]
    kind: str
    label: str | None = None
    dataset: str | None = None
    """The dataset's node id, if the artifact is a version of a dataset."""
    size: int | None = None
    rows: int | None = None
    ts: str


class RunRecord(_Record, frozen=True, kw_only=True):
    """Everything recorded about one run."""

    run_id: str
    job: str
    """The job's node id, ``job:NAMESPACE:NAME``."""
    job_name: str
    parent_run_id: str | None = None
    status: str
    started_at: str | None = None
    ended_at: str | None = None
    duration_ms: float | None = None
    params: dict[str, Any] = {}
    code: dict[str, Any] | None = None
    environment: dict[str, Any] | None = None
    actor: dict[str, Any] | None = None
    level: str | None = None
    error: dict[str, Any] | None = None
    inputs: list[IORecord] = []
    outputs: list[IORecord] = []
    children: list[str] = []


class ArtifactRecord(_Record, frozen=True, kw_only=True):
    """One artifact: its content identity, the datasets it is a version of, who made and used it."""

    artifact_id: str
    kind: str
    size: int | None = None
    rows: int | None = None
    schema: list[tuple[str, str]] | None = None
    media_type: str | None = None
    stats: dict[str, Any] | None = None
    first_seen: str
    datasets: list[str] = []
    produced_by: list[str] = []
    used_by: list[str] = []


class DatasetRecord(_Record, frozen=True, kw_only=True):
    """A dataset and its versions (artifacts), oldest first."""

    node_id: str
    namespace: str
    name: str
    first_seen: str
    versions: list[dict[str, Any]] = []


class LineageNode(_Record, frozen=True, kw_only=True):
    """A node of a lineage graph."""

    id: str
    kind: Literal["dataset", "job", "run", "artifact"]
    label: str
    depth: int
    attrs: dict[str, Any] = {}


class LineageEdge(_Record, frozen=True, kw_only=True):
    """A data-flow edge: ``source`` feeds ``target``."""

    source: str
    target: str


class LineageGraph(_Record, frozen=True, kw_only=True):
    """The upstream or downstream closure of a node."""

    root: str
    direction: Literal["upstream", "downstream"]
    depth: int
    as_of: str | None = None
    nodes: list[LineageNode] = []
    edges: list[LineageEdge] = []


class ExplainRun(_Record, frozen=True, kw_only=True):
    """One step of a derivation: the run and how each of its inputs was made."""

    run: RunRecord
    inputs: list[Explanation] = []


class Explanation(_Record, frozen=True, kw_only=True):
    """How an artifact was made: the runs that produced it, recursively."""

    artifact: ArtifactRecord
    produced_by: list[ExplainRun] = []
    seen_above: bool = False
    """True when this artifact was already explained higher up (a cycle or a diamond)."""
