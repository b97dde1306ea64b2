"""Auditing a trail: verify it end to end, erase a payload with a receipt, prove a story offline.

- :func:`verify` checks every entry, tree node, checkpoint and projection of a
  store and returns a :class:`VerifyReport` whose faults point at what changed
  (:data:`FAULT_KINDS` lists them) and which lists, as :class:`Unbound`, what
  a trail from an older datatrail holds that no signature binds
  (:data:`UNBOUND_KINDS`).
- :func:`erase` removes an event's payload and appends the receipt that
  accounts for it; the leaf hash, and so the tree, stays.
- :func:`prove` gathers the events that tell a node's story into a
  :class:`Bundle` with inclusion proofs against a signed checkpoint;
  :func:`verify_bundle` checks one offline with nothing but the public key.
- :func:`consistency` proves the log still extends a checkpoint kept earlier.
"""

from datatrail.audit._bundle import (
    BUNDLE_FORMAT,
    Bundle,
    BundleEvent,
    BundleFailure,
    BundleReport,
    read_bundle,
    verify_bundle,
)
from datatrail.audit._consistency import ConsistencyReport, consistency
from datatrail.audit._erase import ErasureResult, erase, find_event
from datatrail.audit._faults import (
    FAULT_KINDS,
    UNBOUND_KINDS,
    CheckpointInfo,
    ErasedEntry,
    Fault,
    Unbound,
    VerifyReport,
)
from datatrail.audit._prove import prove, write_bundle
from datatrail.audit._verify import resolve_verifier, verify

__all__ = [
    "BUNDLE_FORMAT",
    "FAULT_KINDS",
    "UNBOUND_KINDS",
    "Bundle",
    "BundleEvent",
    "BundleFailure",
    "BundleReport",
    "CheckpointInfo",
    "ConsistencyReport",
    "ErasedEntry",
    "ErasureResult",
    "Fault",
    "Unbound",
    "VerifyReport",
    "consistency",
    "erase",
    "find_event",
    "prove",
    "read_bundle",
    "resolve_verifier",
    "verify",
    "verify_bundle",
    "write_bundle",
]
