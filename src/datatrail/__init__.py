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
from datatrail.errors import ContractViolation, DatatrailError, PolicyDenied, PolicyError
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

# Entry points that live in optional parts, imported on first use so that
# ``import datatrail`` stays light: name -> (module, attribute).
_LAZY = {
    "read": ("datatrail.governance", "read"),
    "sql": ("datatrail.columns", "sql"),
    "window": ("datatrail.capture._window", "window"),
    "windows_for": ("datatrail.capture._window", "windows_for"),
}


def __getattr__(name: str) -> object:
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'datatrail' has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


__all__ = [
    "REDACTED",
    "ContractViolation",
    "DatasetRef",
    "DatatrailError",
    "Explanation",
    "FlushResult",
    "JobRef",
    "LineageEdge",
    "LineageGraph",
    "LineageNode",
    "PolicyDenied",
    "PolicyError",
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
