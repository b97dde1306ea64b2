"""Classification through lineage: which labels a node carries, and the path that brought each.

Labels start on datasets, from the policy's dataset rules or from a recorded
``classification.set`` (``datatrail classify``). A label that propagates flows
to every artifact derived from a labelled dataset, through runs and in-memory
hand-offs, unless a run on the path belongs to a job the policy declares as
removing that label (``classifications.<label>.removed_by``). A label that does
not propagate stays on its dataset and that dataset's own versions.
"""

from __future__ import annotations

import socket
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from datatrail.errors import NodeNotFound, PolicyError, UsageError
from datatrail.governance._document import Policy
from datatrail.governance._versions import active_policy
from datatrail.model import Actor, Record, from_json, now_ts, parse_node_id, uuid7
from datatrail.store import Store, artifact_edges

__all__ = ["classifications_of", "classify", "dataset_labels", "store_of"]

_CHUNK = 500
_MAX_NODES = 200_000


def store_of(trail_or_store: Any) -> Store:
    """The store of a :class:`~datatrail.Trail` or a store itself."""
    store = getattr(trail_or_store, "store", None)
    return store if store is not None else trail_or_store  # type: ignore[no-any-return]


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def dataset_labels(
    store: Store, policy: Policy | None, namespace: str, name: str
) -> dict[str, str]:
    """Labels attached to a dataset itself: label -> where from (``policy`` or the record)."""
    out: dict[str, str] = {}
    if policy is not None:
        for label in sorted(policy.labels_for(namespace, name)):
            out[label] = "policy"
    for idx, data in store.query(
        "SELECT idx, data FROM records WHERE topic = ? AND subject = ? ORDER BY idx",
        ("classification.set", f"dataset:{namespace}:{name}"),
    ):
        label = from_json(data).get("label")
        if isinstance(label, str):
            out.setdefault(label, f"classification.set@{idx}")
    return out


class _Graph:
    """The upstream closure of a node: edges child -> parents, run jobs, artifact datasets."""

    def __init__(self, store: Store, start: str) -> None:
        self.store = store
        self.parents: dict[str, list[str]] = {}
        self.jobs: dict[str, tuple[str, str]] = {}
        todo: deque[str] = deque([start])
        seen = {start}
        while todo:
            batch = [todo.popleft() for _ in range(min(len(todo), _CHUNK))]
            found = self._expand(batch)
            for child, parents in found.items():
                self.parents.setdefault(child, []).extend(parents)
                for parent in parents:
                    if parent not in seen and len(seen) < _MAX_NODES:
                        seen.add(parent)
                        todo.append(parent)
        runs = [n[4:] for n in seen if n.startswith("run:")]
        for chunk in _chunks(runs):
            for run_id, ns, name in store.query(
                f"SELECT run_id, job_namespace, job_name FROM runs WHERE run_id IN ({_marks(len(chunk))})",
                chunk,
            ):
                self.jobs["run:" + run_id] = (ns or "", name or "")

    def _expand(self, batch: list[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        keys = []
        for node in batch:
            kind, _, rest = node.partition(":")
            if kind == "dataset":
                parsed = parse_node_id(node)
                versions = self.store.query(
                    "SELECT DISTINCT artifact_id FROM run_io WHERE dataset_namespace = ? AND dataset_name = ?",
                    (parsed.namespace, parsed.name),
                )
                out[node] = ["artifact:" + str(v[0]) for v in versions]
            elif kind == "artifact":
                keys.append("a:" + rest)
            elif kind == "run":
                keys.append("r:" + rest)
        for chunk in _chunks(keys):
            for src, dst in sorted(set(artifact_edges(self.store, chunk, "dst"))):
                child = ("artifact:" if dst.startswith("a:") else "run:") + dst[2:]
                parent = ("artifact:" if src.startswith("a:") else "run:") + src[2:]
                out.setdefault(child, []).append(parent)
        artifacts = [k[2:] for k in keys if k.startswith("a:")]
        for chunk in _chunks(artifacts):
            for art, ns, name in self.store.query(
                "SELECT DISTINCT artifact_id, dataset_namespace, dataset_name FROM run_io "
                f"WHERE artifact_id IN ({_marks(len(chunk))}) AND dataset_namespace IS NOT NULL",
                chunk,
            ):
                # The dataset an artifact is a version of is a source of labels, not a path on.
                out.setdefault("artifact:" + art, []).append(f"dataset-of:{ns}:{name}")
        return out


def classifications_of(
    trail_or_store: Any,
    node: str,
    *,
    policy: Policy | None = None,
) -> dict[str, list[str]]:
    """Label -> the path of node ids that brought it, from the labelled dataset down to ``node``.

    ``policy`` defaults to the trail's active version (none: only recorded labels count).
    """
    store = store_of(trail_or_store)
    if node.startswith(("blake3:", "uuid:")):
        node = "artifact:" + node
    parsed = parse_node_id(node)
    if parsed.kind == "job":
        raise UsageError("classifications belong to datasets, artifacts and runs, not jobs")
    node = str(parsed)
    if policy is None:
        active = active_policy(store)
        policy = active.policy if active is not None else None
    graph = _Graph(store, node)
    result: dict[str, list[str]] = {}
    own: dict[str, dict[str, str]] = {}

    def labels_of(dataset_key: str) -> dict[str, str]:
        if dataset_key not in own:
            ns_name = dataset_key.split(":", 1)[1]
            ds = parse_node_id("dataset:" + ns_name)
            own[dataset_key] = dataset_labels(store, policy, ds.namespace or "", ds.name or "")
        return own[dataset_key]

    if parsed.kind == "dataset":
        for label in labels_of("dataset-of:" + parsed.key):
            result[label] = [node]
    # Breadth first from the node up, so each label's path is a shortest one; a run of a job
    # that removes a label stops that label (and only that label) from passing.
    candidates = _sources(graph)
    for label_source, label in sorted(
        ((src, lab) for src in candidates for lab in labels_of(src)), key=lambda p: (p[1], p[0])
    ):
        if label in result:
            continue
        path = _path(graph, node, label_source, label, policy)
        if path is not None:
            result[label] = path
    return dict(sorted(result.items()))


def _sources(graph: _Graph) -> set[str]:
    return {p for parents in graph.parents.values() for p in parents if p.startswith("dataset-of:")}


def _blocked(graph: _Graph, run: str, label: str, policy: Policy | None) -> bool:
    if policy is None or label not in policy.classifications:
        return False
    ns, name = graph.jobs.get(run, ("", ""))
    return policy.classifications[label].removed_by_job(ns, name)


def _path(
    graph: _Graph, start: str, source: str, label: str, policy: Policy | None
) -> list[str] | None:
    propagates = (
        policy is None
        or label not in policy.classifications
        or policy.classifications[label].propagate
    )
    came_from: dict[str, str | None] = {start: None}
    todo: deque[str] = deque([start])
    while todo:
        current = todo.popleft()
        for parent in graph.parents.get(current, ()):
            if parent in came_from:
                continue
            if parent.startswith("run:") and _blocked(graph, parent, label, policy):
                continue
            if parent.startswith("dataset-of:") and parent != source:
                continue
            came_from[parent] = current
            if parent == source:
                path = []
                step: str | None = parent
                while step is not None:
                    path.append(step)
                    step = came_from[step]
                path[0] = "dataset:" + source.split(":", 1)[1]
                if not propagates and any(p.startswith("run:") for p in path):
                    return None
                if path[0] == start:
                    return [start]
                return path
            todo.append(parent)
    return None


def classify(
    trail_or_store: Any,
    dataset: str,
    label: str,
    *,
    reason: str,
    by: str,
) -> int:
    """Record that a dataset carries a label; returns the record's log index."""
    store = store_of(trail_or_store)
    parsed = parse_node_id(dataset)
    if parsed.kind != "dataset":
        raise UsageError(f"{dataset}: only datasets are classified (dataset:NAMESPACE:NAME)")
    if not reason.strip():
        raise UsageError("a classification needs a reason (--reason TEXT)")
    if not store.query(
        "SELECT 1 FROM datasets WHERE namespace = ? AND name = ?", (parsed.namespace, parsed.name)
    ):
        raise NodeNotFound(f"no dataset {parsed} in this trail")
    active = active_policy(store)
    if active is not None and label not in active.policy.classifications:
        known = ", ".join(sorted(active.policy.classifications)) or "none"
        raise PolicyError(
            f"classification {label!r} is not declared in policy version {active.version} "
            f"(declared: {known}); add it to the policy first"
        )
    record = Record(
        id=uuid7(),
        ts=now_ts(),
        topic="classification.set",
        subject=str(parsed),
        data={"label": label, "reason": reason, "by": by},
        actor=Actor(user=by, host=socket.gethostname()),
    )
    result = store.append([record], dedupe=False)
    return result.first_index
