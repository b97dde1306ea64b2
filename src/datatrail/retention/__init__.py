"""Retention, legal holds, erasure with cascade and the compliance report.

- :func:`plan` says, for every artifact of every dataset, when it may go, how
  long it must stay, what holds it, and which rule and policy version say so.
- :func:`apply` carries the plan out through storage adapters, with a purge
  receipt per artifact; ``review`` items wait in a queue for
  :func:`decide_review`.
- :func:`add_hold` / :func:`release_hold` / :func:`list_holds`: legal holds.
- :func:`erase_data` deletes a node's data and its downstream closure and
  returns a signed deletion certificate (:func:`verify_certificate`).
- :func:`compliance_report` gathers what an auditor asks for.
- :func:`purged` answers whether an artifact was purged, from its receipts.

Every fact is a record in the verified log (topics ``hold.*``,
``retention.*``, ``event.NAME``); see ``docs/retention.md``.
"""

from datatrail.retention._adapters import (
    AdapterContext,
    StorageAdapter,
    StorageError,
    adapter_for,
    register_adapter,
    sqlite_table_dataset,
)
from datatrail.retention._apply import (
    AppliedItem,
    ApplyResult,
    ReviewRecord,
    apply,
    decide_review,
    review_queue,
)
from datatrail.retention._erasure import (
    CERTIFICATE_FORMAT,
    ErasureItem,
    ErasurePlan,
    ErasureReport,
    erase_data,
    plan_erasure,
    verify_certificate,
)
from datatrail.retention._facts import Hold, PurgeReceipt, purge_receipts
from datatrail.retention._holds import add_hold, list_holds, record_event, release_hold
from datatrail.retention._plan import STATUSES, Disposition, HoldRef, RetentionPlan, plan
from datatrail.retention._report import ComplianceReport, compliance_report, render_html
from datatrail.store import Store

__all__ = [
    "CERTIFICATE_FORMAT",
    "STATUSES",
    "AdapterContext",
    "AppliedItem",
    "ApplyResult",
    "ComplianceReport",
    "Disposition",
    "ErasureItem",
    "ErasurePlan",
    "ErasureReport",
    "Hold",
    "HoldRef",
    "PurgeReceipt",
    "RetentionPlan",
    "ReviewRecord",
    "StorageAdapter",
    "StorageError",
    "adapter_for",
    "add_hold",
    "apply",
    "compliance_report",
    "decide_review",
    "erase_data",
    "list_holds",
    "plan",
    "plan_erasure",
    "purge_receipts",
    "purged",
    "record_event",
    "register_adapter",
    "release_hold",
    "render_html",
    "review_queue",
    "sqlite_table_dataset",
    "verify_certificate",
]


def purged(store: Store, artifact: str) -> list[PurgeReceipt]:
    """The purge receipts of an artifact (empty if it was never purged): the lineage flag."""
    return purge_receipts(store, artifact)
