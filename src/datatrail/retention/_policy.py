"""The one place retention meets governance: the active policy, labels, owners, notifications.

Retention reads its rules from the active policy version (``policy.*`` records,
read by governance), the classification labels of each dataset (the policy's
dataset rules plus labels that reach it through lineage) and its owners, and
asks governance to notify those owners before it acts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from datatrail.governance import (
    Policy,
    RetentionRule,
    active_policy,
    notify,
)
from datatrail.model import from_json
from datatrail.store import Store

__all__ = ["PolicyContext", "all_dataset_labels", "load_context", "notify_owners"]


@dataclass
class PolicyContext:
    """The policy a plan is made under, with every dataset's labels computed once, set-based."""

    policy: Policy | None
    version: int | None
    store: Store | None = None
    _labels: dict[tuple[str, str], frozenset[str]] | None = field(default=None)

    @property
    def rules(self) -> tuple[RetentionRule, ...]:
        return self.policy.retention if self.policy is not None else ()

    def labels(self, namespace: str, name: str) -> frozenset[str]:
        """Labels of a dataset: the policy's dataset rules, recorded ones, and through lineage."""
        if self._labels is None:
            self._labels = all_dataset_labels(self.store, self.policy) if self.store else {}
        found = self._labels.get((namespace, name))
        if found is None:
            found = self.policy.labels_for(namespace, name) if self.policy else frozenset()
        return found

    def owners(self, namespace: str, name: str) -> tuple[str, ...]:
        """The dataset's owners by the policy's dataset rules."""
        if self.policy is None:
            return ()
        return self.policy.owners_for(namespace, name)


def all_dataset_labels(
    store: Store, policy: Policy | None
) -> dict[tuple[str, str], frozenset[str]]:
    """Every dataset's labels in one pass, at dataset granularity.

    Labels start where governance starts them (the policy's dataset rules and
    ``classification.set`` records) and flow along ``dataset_edges`` (dataset ->
    job -> dataset, and job -> job for in-memory hand-offs), stopped at jobs the
    policy declares as removing the label; labels that do not propagate stay put.
    This is the same rule as :func:`datatrail.governance.classifications_of`,
    applied to whole datasets, so a plan over a million artifacts costs a few
    queries instead of one lineage walk per dataset. It can only over-label
    (a version written by a run that did not read the labelled input still
    counts as derived), which makes retention keep and match more, never less.
    """
    datasets = [
        (str(ns), str(name)) for ns, name in store.query("SELECT namespace, name FROM datasets")
    ]
    seeds: dict[str, set[str]] = {}
    for ns, name in datasets:
        if policy is not None:
            for label in policy.labels_for(ns, name):
                seeds.setdefault(label, set()).add(f"d:{ns}:{name}")
    for subject, data in store.query(
        "SELECT subject, data FROM records WHERE topic = 'classification.set' AND subject IS NOT NULL"
    ):
        label = from_json(data).get("label")
        if isinstance(label, str) and str(subject).startswith("dataset:"):
            seeds.setdefault(label, set()).add("d:" + str(subject)[len("dataset:") :])
    out: dict[str, set[str]] = {}
    edges: dict[str, list[str]] | None = None
    for label, starts in seeds.items():
        spec = policy.classifications.get(label) if policy is not None else None
        reached = set(starts)
        if spec is None or spec.propagate:
            if edges is None:
                edges = {}
                for src, dst in store.query("SELECT src, dst FROM dataset_edges"):
                    edges.setdefault(str(src), []).append(str(dst))
            todo = list(starts)
            while todo:
                node = todo.pop()
                if node.startswith("j:") and spec is not None:
                    ns, _, name = node[2:].partition(":")
                    if spec.removed_by_job(ns, name):
                        continue
                for nxt in edges.get(node, ()):
                    if nxt not in reached:
                        reached.add(nxt)
                        todo.append(nxt)
        for node in reached:
            if node.startswith("d:"):
                out.setdefault(node[2:], set()).add(label)
    result: dict[tuple[str, str], frozenset[str]] = {}
    for ns, name in datasets:
        result[(ns, name)] = frozenset(out.get(f"{ns}:{name}", ()))
    return result


def load_context(
    store: Store, policy: Policy | None = None, version: int | None = None
) -> PolicyContext:
    """The active policy of ``store`` (or the one given, e.g. a candidate to preview)."""
    if policy is not None:
        return PolicyContext(policy=policy, version=version, store=store)
    found = active_policy(store)
    if found is None:
        return PolicyContext(policy=None, version=None, store=store)
    return PolicyContext(policy=found.policy, version=int(found.version), store=store)


def notify_owners(
    store: Store,
    context: PolicyContext,
    event: str,
    by_owner: dict[str, list[dict[str, Any]]],
) -> int:
    """Tell each owner about their datasets' deletion candidates; returns notifications sent."""
    if context.policy is None or not by_owner:
        return 0
    sent = 0
    for owner, items in sorted(by_owner.items()):
        payload = {"event": event, "owner": owner, "items": items, "count": len(items)}
        recipients: Sequence[str] = (owner,)
        notify(store, context.policy, event, recipients, payload, subject=None)
        sent += 1
    return sent
