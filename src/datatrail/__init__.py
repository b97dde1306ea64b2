"""datatrail: an audit-grade memory for data pipelines.

Record runs with ``@datatrail.track`` and ``with datatrail.run(...)``; ask where
data came from with :class:`Trail` (``upstream``, ``downstream``, ``explain``);
prove nothing was altered with :mod:`datatrail.ledger`.
"""

from datatrail.capture import (
    REDACTED,
    RunHandle,
    Secret,
    bind_context,
    configure,
    current_run,
    flush,
    run,
    track,
)
from datatrail.emit import FlushResult
from datatrail.errors import DatatrailError
from datatrail.lineage import (
    Explanation,
    LineageEdge,
    LineageGraph,
    LineageNode,
    RunRecord,
    Trail,
)
from datatrail.model import DatasetRef, JobRef, file_dataset, inmemory_dataset, postgres_dataset

__version__ = "0.1.0"

__all__ = [
    "REDACTED",
    "DatasetRef",
    "DatatrailError",
    "Explanation",
    "FlushResult",
    "JobRef",
    "LineageEdge",
    "LineageGraph",
    "LineageNode",
    "RunHandle",
    "RunRecord",
    "Secret",
    "Trail",
    "__version__",
    "bind_context",
    "configure",
    "current_run",
    "file_dataset",
    "flush",
    "inmemory_dataset",
    "postgres_dataset",
    "run",
    "track",
]
