"""Access decisions: compiled, indexed rules; deny overrides; no allow means deny; fail closed.

A :class:`Decision` is a value (outcome, rule ids, policy version, masks, reason)
that is returned, recorded and shown the same way. An :class:`Engine` compiles
a policy once: rules are indexed by action and by who they name (principal,
``*``, role, group), so a request only looks at the rules that could apply.
Decisions are cached, keyed by policy version. An engine over a store checks
the newest policy record's index (one indexed query) and recompiles when it
moved, so running processes pick up a new version without restart; if the
policy cannot be loaded or evaluated, every answer is deny.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import msgspec

from datatrail.errors import InvalidNodeId
from datatrail.governance._document import AccessRule, Policy
from datatrail.governance._versions import PolicyVersion, active_policy, latest_policy_index
from datatrail.model import parse_node_id
from datatrail.store import Store

__all__ = [
    "DEFAULT_DENY",
    "FAIL_CLOSED",
    "MASK_STRENGTH",
    "NO_POLICY",
    "Decision",
    "Engine",
    "decide",
]

log = logging.getLogger("datatrail")

DEFAULT_DENY = "default-deny"
"""The rule id a decision names when no rule allowed the request."""
FAIL_CLOSED = "fail-closed"
"""The rule id a decision names when the policy could not be loaded or evaluated."""
NO_POLICY = "no-policy"
"""The rule id a decision names when no policy version is active."""

MASK_STRENGTH = ("redact", "null", "hash", "token", "year", "keep_last_4")
"""When two allow rules mask one column differently, the earlier kind here wins."""
_STRENGTH = {kind: i for i, kind in enumerate(MASK_STRENGTH)}
_CACHE_LIMIT = 100_000


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to one request: returned, recorded and shown identically."""

    outcome: Literal["allow", "deny"]
    rules: tuple[str, ...]
    """The rules that produced it (deny rules when denied, else every matching allow rule)."""
    policy_version: int
    """The version that decided (0: a document that was never recorded)."""
    masks: dict[str, str] = {}
    """Column -> mask kind, applied to what is returned."""
    reason: str = ""
    policy_hash: str = ""

    @property
    def allowed(self) -> bool:
        """Whether the request may go ahead."""
        return self.outcome == "allow"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        return {
            "outcome": self.outcome,
            "rules": list(self.rules),
            "policy_version": self.policy_version,
            "policy_hash": self.policy_hash,
            "masks": dict(self.masks),
            "reason": self.reason,
        }


class _Rule:
    __slots__ = (
        "classifications",
        "datasets",
        "effect",
        "id",
        "mask_labels",
        "masks",
        "rule",
        "when",
    )

    def __init__(self, rule: AccessRule) -> None:
        self.rule = rule
        self.id = rule.id
        self.effect = rule.effect
        # A matcher for "every dataset" makes the whole list match anything: drop the test.
        everything = any(
            m.namespace == "*" and m.name == "*" and not m.tags and not m.classifications
            for m in rule.datasets
        )
        self.datasets = () if everything else rule.datasets
        self.classifications = frozenset(rule.classifications)
        self.when = None if rule.when.empty else rule.when
        self.masks = rule.masks
        self.mask_labels = rule.mask_classifications


class _Resource:
    __slots__ = ("labels", "name", "namespace", "node")

    def __init__(
        self, node: str, namespace: str | None, name: str | None, labels: frozenset[str]
    ) -> None:
        self.node = node
        self.namespace = namespace
        self.name = name
        self.labels = labels


class _Compiled:
    """One policy's rules, indexed by action and by who they name."""

    def __init__(self, policy: Policy, version: int) -> None:
        self.policy = policy
        self.version = version
        self.rules = [_Rule(r) for r in policy.access]
        self.index: dict[str, dict[str, tuple[int, ...]]] = {}
        building: dict[str, dict[str, list[int]]] = {}
        for i, rule in enumerate(policy.access):
            keys = [f"p:{p}" for p in rule.principals]
            keys += [f"r:{r}" for r in rule.roles]
            keys += [f"g:{g}" for g in rule.groups]
            for action in rule.actions:
                by_key = building.setdefault(action, {})
                for key in keys:
                    by_key.setdefault(key, []).append(i)
        self.index = {a: {k: tuple(v) for k, v in keys.items()} for a, keys in building.items()}
        self.timed = any(r.when is not None and (r.when.hours or r.when.days) for r in self.rules)
        self._who: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {}

    def who(self, principal: str) -> tuple[tuple[str, ...], dict[str, str]]:
        found = self._who.get(principal)
        if found is None:
            policy = self.policy
            keys = [f"p:{principal}", "p:*"]
            keys += [f"r:{r}" for r in sorted(policy.roles_of(principal))]
            keys += [f"g:{g}" for g in sorted(policy.groups_of(principal))]
            spec = policy.principals.get(principal)
            found = (tuple(keys), dict(spec.attributes) if spec is not None else {})
            if len(self._who) < _CACHE_LIMIT:
                self._who[principal] = found
        return found


def _resource(policy: Policy, node: str, labels: Iterable[str] | None) -> _Resource:
    namespace = name = None
    try:
        parsed = parse_node_id(node)
    except InvalidNodeId:
        parsed = None
    if parsed is not None and parsed.kind == "dataset":
        namespace, name = parsed.namespace, parsed.name
    if labels is None:
        found = (
            policy.labels_for(namespace, name)
            if namespace is not None and name is not None
            else frozenset()
        )
    else:
        found = frozenset(labels)
    return _Resource(node, namespace, name, found)


def _resource_matches(rule: _Rule, res: _Resource) -> bool:
    if rule.datasets:
        if res.namespace is None or res.name is None:
            return False
        if not any(m.matches(res.namespace, res.name, (), res.labels) for m in rule.datasets):
            return False
    return not rule.classifications or not rule.classifications.isdisjoint(res.labels)


def _conditions_hold(
    rule: _Rule, purpose: str | None, attributes: Mapping[str, str], now: float | None
) -> bool:
    when = rule.when
    if when is None:
        return True
    if when.purposes and purpose not in when.purposes:
        return False
    for key, values in when.attributes.items():
        if attributes.get(key) not in values:
            return False
    if when.days or when.hours:
        moment = time.gmtime(time.time() if now is None else now)
        if (
            when.days
            and ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[moment.tm_wday] not in when.days
        ):
            return False
        if when.hours:
            minute = moment.tm_hour * 60 + moment.tm_min
            start, end = when.hours
            inside = start <= minute < end if start <= end else (minute >= start or minute < end)
            if not inside:
                return False
    return True


def _evaluate(
    compiled: _Compiled,
    principal: str,
    action: str,
    node: str,
    purpose: str | None,
    attributes: Mapping[str, str] | None,
    columns: tuple[str, ...] | None,
    labels: Iterable[str] | None,
    now: float | None,
) -> Decision:
    policy = compiled.policy
    keys, own_attributes = compiled.who(principal)
    attrs = {**(attributes or {}), **own_attributes}
    by_key = compiled.index.get(action)
    candidates: set[int] = set()
    if by_key:
        for key in keys:
            found = by_key.get(key)
            if found:
                candidates.update(found)
    res = _resource(policy, node, labels)
    allows: list[_Rule] = []
    denies: list[_Rule] = []
    for i in sorted(candidates):
        rule = compiled.rules[i]
        if not _resource_matches(rule, res) or not _conditions_hold(rule, purpose, attrs, now):
            continue
        (denies if rule.effect == "deny" else allows).append(rule)
    version = compiled.version
    where = f"policy v{version}" if version else "an unrecorded policy"
    purpose_text = f" for {purpose}" if purpose else " with no purpose given"
    if denies:
        ids = tuple(r.id for r in denies)
        return Decision(
            outcome="deny",
            rules=ids,
            policy_version=version,
            reason=f"{principal} may not {action} {node}: denied by {', '.join(ids)} ({where})",
            policy_hash=policy.hash,
        )
    if not allows:
        return Decision(
            outcome="deny",
            rules=(DEFAULT_DENY,),
            policy_version=version,
            reason=f"{principal} may not {action} {node}{purpose_text}: no rule allows it ({where})",
            policy_hash=policy.hash,
        )
    masks = _masks(policy, res, allows, columns)
    ids = tuple(r.id for r in allows)
    reason = f"{principal} may {action} {node}{purpose_text}: allowed by {', '.join(ids)} ({where})"
    if masks:
        reason += "; masked: " + ", ".join(f"{c} ({k})" for c, k in sorted(masks.items()))
    return Decision(
        outcome="allow",
        rules=ids,
        policy_version=version,
        masks=masks,
        reason=reason,
        policy_hash=policy.hash,
    )


def _masks(
    policy: Policy, res: _Resource, allows: list[_Rule], columns: tuple[str, ...] | None
) -> dict[str, str]:
    masks: dict[str, str] = {}

    def put(column: str, kind: str) -> None:
        if columns is not None and column not in columns:
            return
        current = masks.get(column)
        if current is None or _STRENGTH[kind] < _STRENGTH[current]:
            masks[column] = kind

    column_labels: dict[str, frozenset[str]] | None = None
    for rule in allows:
        for column, kind in rule.masks.items():
            put(column, kind)
        if rule.mask_labels:
            if column_labels is None:
                column_labels = (
                    policy.columns_for(res.namespace, res.name)
                    if res.namespace is not None and res.name is not None
                    else {}
                )
            for column, labels in column_labels.items():
                for label, kind in rule.mask_labels.items():
                    if label in labels:
                        put(column, kind)
    return masks


def _fail(reason: str, rule: str, version: int = 0) -> Decision:
    return Decision(outcome="deny", rules=(rule,), policy_version=version, reason=reason)


class Engine:
    """Compiled rules with a decision cache keyed by policy version.

    ``Engine(policy)`` decides under a fixed document (or :class:`PolicyVersion`);
    ``Engine(store)`` under the store's active version, re-checked on every
    decision (or every ``check_every`` seconds) with one indexed query.
    """

    def __init__(
        self,
        source: Store | Policy | PolicyVersion | None,
        *,
        check_every: float = 0.0,
        cache: bool = True,
    ) -> None:
        self._store: Store | None = None
        self._compiled: _Compiled | None = None
        self._shadow: _Compiled | None = None
        self._error: str | None = None
        self._seen_index = -2
        self._checked_at = 0.0
        self._check_every = check_every
        self._use_cache = cache
        self._cache: dict[tuple[Any, ...], Decision] = {}
        self._lock = threading.Lock()
        if isinstance(source, Policy):
            self._compiled = _Compiled(source, 0)
        elif isinstance(source, PolicyVersion):
            self._compiled = _Compiled(source.policy, source.version)
        elif source is None:
            self._error = "no policy was given"
        else:
            self._store = source
            self.refresh(force=True)

    @property
    def policy(self) -> Policy | None:
        """The document in force, if one loaded."""
        return self._compiled.policy if self._compiled is not None else None

    @property
    def version(self) -> int | None:
        """The version in force (0 for an unrecorded document), if one loaded."""
        return self._compiled.version if self._compiled is not None else None

    @property
    def shadow_version(self) -> int | None:
        """The shadow candidate evaluated beside the active version, if any."""
        return self._shadow.version if self._shadow is not None else None

    def refresh(self, *, force: bool = False) -> bool:
        """Reload from the store if a policy record was added since; returns whether it did."""
        store = self._store
        if store is None:
            return False
        now = time.monotonic()
        if not force and self._check_every and now - self._checked_at < self._check_every:
            return False
        self._checked_at = now
        try:
            latest = latest_policy_index(store)
            if latest == self._seen_index and not force:
                return False
            active = active_policy(store)
            shadow = _latest_shadow(store, active)
        except Exception as exc:
            # Fail closed: whatever went wrong, nothing is allowed until a policy loads.
            log.warning("datatrail: the policy could not be loaded; denying everything: %s", exc)
            with self._lock:
                self._compiled = None
                self._shadow = None
                self._error = f"the policy could not be loaded ({exc})"
                self._seen_index = -2
                self._cache.clear()
            return True
        with self._lock:
            self._seen_index = latest
            self._compiled = _Compiled(active.policy, active.version) if active else None
            self._shadow = _Compiled(shadow.policy, shadow.version) if shadow else None
            self._error = None if active else "no policy version is active"
            self._cache.clear()
        return True

    def decide(
        self,
        principal: str,
        action: str,
        resource_node: str,
        *,
        purpose: str | None = None,
        attributes: Mapping[str, str] | None = None,
        columns: Iterable[str] | None = None,
        labels: Iterable[str] | None = None,
        now: float | None = None,
    ) -> Decision:
        """Decide one request: deny overrides allow, no matching allow means deny."""
        if self._store is not None:
            self.refresh()
        return self._decide(
            self._compiled,
            principal,
            action,
            resource_node,
            purpose,
            attributes,
            columns,
            labels,
            now,
        )

    def shadow_decide(
        self,
        principal: str,
        action: str,
        resource_node: str,
        *,
        purpose: str | None = None,
        attributes: Mapping[str, str] | None = None,
        columns: Iterable[str] | None = None,
        labels: Iterable[str] | None = None,
        now: float | None = None,
    ) -> Decision | None:
        """The shadow candidate's decision on the same request (``None`` without a candidate)."""
        shadow = self._shadow
        if shadow is None:
            return None
        return self._decide(
            shadow, principal, action, resource_node, purpose, attributes, columns, labels, now
        )

    def _decide(
        self,
        compiled: _Compiled | None,
        principal: str,
        action: str,
        node: str,
        purpose: str | None,
        attributes: Mapping[str, str] | None,
        columns: Iterable[str] | None,
        labels: Iterable[str] | None,
        now: float | None,
    ) -> Decision:
        if compiled is None:
            error = self._error or "no policy version is active"
            rule = NO_POLICY if error == "no policy version is active" else FAIL_CLOSED
            return _fail(f"{principal} may not {action} {node}: {error}; denied", rule)
        cols = tuple(columns) if columns is not None else None
        key: tuple[Any, ...] | None = None
        if self._use_cache:
            key = (
                id(compiled),
                compiled.version,
                principal,
                action,
                node,
                purpose,
                tuple(sorted(attributes.items())) if attributes else None,
                cols,
                frozenset(labels) if labels is not None else None,
                int((time.time() if now is None else now) // 60) if compiled.timed else None,
            )
            hit = self._cache.get(key)
            if hit is not None:
                return hit
        try:
            decision = _evaluate(
                compiled, principal, action, node, purpose, attributes, cols, labels, now
            )
        except Exception as exc:  # fail closed, and say so
            log.warning("datatrail: a policy decision failed; denying: %s", exc)
            return _fail(
                f"{principal} may not {action} {node}: the policy could not be evaluated ({exc})",
                FAIL_CLOSED,
                compiled.version,
            )
        if key is not None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = decision
        return decision


def _latest_shadow(store: Store, active: PolicyVersion | None) -> PolicyVersion | None:
    from datatrail.governance._versions import policy_history

    rows = store.query(
        "SELECT MAX(idx) FROM records WHERE topic = ? AND data LIKE ?",
        ("policy.proposed", '%"shadow":true%'),
    )
    if not rows or rows[0][0] is None:
        return None
    for entry in reversed(policy_history(store)):
        if entry.shadow:
            if entry.status != "shadow" or (active is not None and entry.index < active.index):
                return None
            return entry
    return None


_engines: dict[tuple[int, str, int], Engine] = {}
_engines_lock = threading.Lock()


def decide(
    policy_or_version: Policy | PolicyVersion,
    principal: str,
    action: str,
    resource_node: str,
    *,
    purpose: str | None = None,
    attributes: Mapping[str, str] | None = None,
    columns: Iterable[str] | None = None,
    labels: Iterable[str] | None = None,
) -> Decision:
    """Decide one request under a policy document or recorded version (compiled once, cached)."""
    if isinstance(policy_or_version, PolicyVersion):
        policy, version = policy_or_version.policy, policy_or_version.version
    else:
        policy, version = policy_or_version, 0
    key = (id(policy), policy.hash, version)
    engine = _engines.get(key)
    if engine is None:
        with _engines_lock:
            if len(_engines) > 32:
                _engines.clear()
            engine = _engines.setdefault(key, Engine(policy_or_version))
    return engine.decide(
        principal,
        action,
        resource_node,
        purpose=purpose,
        attributes=attributes,
        columns=columns,
        labels=labels,
    )
