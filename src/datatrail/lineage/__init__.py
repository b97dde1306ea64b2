"""Lineage queries: upstream, downstream, as-of, explain, run lookup."""

from datatrail.lineage._records import (
    ArtifactRecord,
    DatasetRecord,
    ExplainRun,
    Explanation,
    IORecord,
    LineageEdge,
    LineageGraph,
    LineageNode,
    RunRecord,
)
from datatrail.lineage._trail import DEFAULT_DEPTH, Trail

__all__ = [
    "DEFAULT_DEPTH",
    "ArtifactRecord",
    "DatasetRecord",
    "ExplainRun",
    "Explanation",
    "IORecord",
    "LineageEdge",
    "LineageGraph",
    "LineageNode",
    "RunRecord",
    "Trail",
]
