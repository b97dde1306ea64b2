"""Governance: policy documents, versions, access decisions, masking, governed reads and writes.

A policy (YAML, validated strictly) declares classifications, dataset matching,
roles, access rules, limits and retention. Versions of it are facts in the log
(``policy.*`` records); decisions are values that name their rules and version;
every governed read is an ``access`` record.
"""

from datatrail.governance._alerts import VolumeAlert, VolumeDetector, check_volume
from datatrail.governance._classify import classifications_of, classify
from datatrail.governance._decide import (
    DEFAULT_DENY,
    FAIL_CLOSED,
    NO_POLICY,
    Decision,
    Engine,
    decide,
)
from datatrail.governance._document import (
    ACTIONS,
    ADMIN_ROLE,
    MASK_KINDS,
    AccessRule,
    Classification,
    Condition,
    DatasetMatch,
    DatasetRule,
    Group,
    Limit,
    Notify,
    Policy,
    Principal,
    RetentionRule,
    Role,
    glob_match,
    load_policy,
    parse_duration,
    parse_policy,
)
from datatrail.governance._explain import explain_policy
from datatrail.governance._masks import apply_masks, mask_salt, mask_value
from datatrail.governance._notify import notify, notify_policy_change
from datatrail.governance._read import limit_usage, read, record_access, writable_store
from datatrail.governance._simulate import Simulation, simulate
from datatrail.governance._versions import (
    ApplyResult,
    PolicyVersion,
    active_policy,
    apply_policy,
    approve_policy,
    compliance_violations,
    diff_versions,
    latest_policy_index,
    policy_history,
    policy_version,
    reject_policy,
    rollback_policy,
)
from datatrail.governance._writes import (
    FLOW_RULE,
    WriteGuard,
    enable_if_configured,
    install_governed_writes,
    principal_name,
)

__all__ = [
    "ACTIONS",
    "ADMIN_ROLE",
    "DEFAULT_DENY",
    "FAIL_CLOSED",
    "FLOW_RULE",
    "MASK_KINDS",
    "NO_POLICY",
    "AccessRule",
    "ApplyResult",
    "Classification",
    "Condition",
    "DatasetMatch",
    "DatasetRule",
    "Decision",
    "Engine",
    "Group",
    "Limit",
    "Notify",
    "Policy",
    "PolicyVersion",
    "Principal",
    "RetentionRule",
    "Role",
    "Simulation",
    "VolumeAlert",
    "VolumeDetector",
    "WriteGuard",
    "active_policy",
    "apply_masks",
    "apply_policy",
    "approve_policy",
    "check_volume",
    "classifications_of",
    "classify",
    "compliance_violations",
    "decide",
    "diff_versions",
    "enable_if_configured",
    "explain_policy",
    "glob_match",
    "install_governed_writes",
    "latest_policy_index",
    "limit_usage",
    "load_policy",
    "mask_salt",
    "mask_value",
    "notify",
    "notify_policy_change",
    "parse_duration",
    "parse_policy",
    "policy_history",
    "policy_version",
    "principal_name",
    "read",
    "record_access",
    "reject_policy",
    "rollback_policy",
    "simulate",
    "writable_store",
]
