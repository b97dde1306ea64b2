"""``prove``: gather the events that tell a node's story into an offline-checkable bundle.

For a run: its start and finish, every input and output, the code version
and environment it ran with, and the same for its child runs. For an
artifact or a dataset: the events of the runs that produced it. For a job:
the events of its runs. For ``event:N`` (an index or an event id): that entry.
An erased event comes with the receipt that erased it; note that erasing an
event also drops it from the projections, so a node's story no longer finds
it: prove it as ``event:N``. Every event is proven against the newest signed
checkpoint.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from datatrail.audit._bundle import Bundle, BundleEvent, verify_bundle
from datatrail.audit._erase import find_event
from datatrail.audit._verify import resolve_verifier
from datatrail.errors import NodeNotFound, ProofError, StoreError
from datatrail.ledger import Verifier, open_checkpoint
from datatrail.model import NodeId, from_json, now_ts, parse_node_id
from datatrail.store import Store

__all__ = ["prove", "write_bundle"]

_CHUNK = 500


def _parse(node: str | NodeId) -> NodeId | str:
    """A node id, or the event key (index or id) of ``event:…`` and bare indexes."""
    if isinstance(node, NodeId):
        return node
    if node.startswith("event:"):
        return node[len("event:") :]
    if node.strip().isdigit():
        return node.strip()
    if node.startswith(("blake3:", "uuid:")):
        node = "artifact:" + node
    return parse_node_id(node)


def _ints(rows: Iterable[tuple[Any, ...]]) -> list[int]:
    return [r[0] for r in rows if type(r[0]) is int]


class _Story:
    """Which entries to include, and what each must be about (a sanity check on the projections)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.expect: dict[int, tuple[str, str]] = {}
        self.runs_seen: set[str] = set()

    def run(self, run_id: str, *, children: bool) -> None:
        pending = [run_id]
        while pending:
            current = pending.pop()
            if current in self.runs_seen:
                continue
            self.runs_seen.add(current)
            rows = self.store.query(
                "SELECT start_idx, end_idx, code_id, env_id FROM runs WHERE run_id = ?", (current,)
            )
            if not rows:
                raise NodeNotFound(f"no run {current} in this trail")
            start, end, code_id, env_id = rows[0]
            for idx in (start, end):
                if type(idx) is int:
                    self.expect[idx] = ("run_id", current)
            for idx in _ints(
                self.store.query("SELECT idx FROM run_io WHERE run_id = ?", (current,))
            ):
                self.expect[idx] = ("run_id", current)
            for table, column, value in (
                ("code_versions", "code_id", code_id),
                ("environments", "env_id", env_id),
            ):
                if value is not None:
                    for idx in _ints(
                        self.store.query(
                            f"SELECT first_idx FROM {table} WHERE {column} = ?", (value,)
                        )
                    ):
                        self.expect[idx] = (column, str(value))
            if children:
                pending.extend(
                    str(r[0])
                    for r in self.store.query(
                        "SELECT run_id FROM runs WHERE parent_run_id = ?", (current,)
                    )
                )

    def runs(self, sql: str, params: tuple[Any, ...], what: str) -> None:
        found = [str(r[0]) for r in self.store.query(sql, params)]
        if not found:
            raise NodeNotFound(f"no run produced {what} in this trail")
        for run_id in found:
            self.run(run_id, children=False)


def _gather(store: Store, node: NodeId | str) -> dict[int, tuple[str, str]]:
    if isinstance(node, str):
        entry = find_event(store, node)
        return {entry.index: ("id", entry.id)}
    story = _Story(store)
    if node.kind == "run":
        story.run(node.key, children=True)
    elif node.kind == "artifact":
        story.runs(
            "SELECT DISTINCT run_id FROM run_io WHERE artifact_id = ? AND role = 'output'",
            (node.key,),
            f"artifact {node.key}",
        )
    elif node.kind == "dataset":
        story.runs(
            "SELECT DISTINCT run_id FROM run_io WHERE dataset_namespace = ? AND dataset_name = ? "
            "AND role = 'output'",
            (node.namespace, node.name),
            f"dataset {node}",
        )
    else:
        story.runs(
            "SELECT run_id FROM runs WHERE job_namespace = ? AND job_name = ?",
            (node.namespace, node.name),
            f"anything as job {node}",
        )
    return story.expect


def _entries(store: Store, indexes: list[int]) -> dict[int, tuple[Any, ...]]:
    out: dict[int, tuple[Any, ...]] = {}
    for start in range(0, len(indexes), _CHUNK):
        chunk = indexes[start : start + _CHUNK]
        marks = ", ".join("?" * len(chunk))
        for row in store.query(
            f"SELECT idx, id, kind, body, leaf, erased_by FROM events WHERE idx IN ({marks})", chunk
        ):
            out[int(row[0])] = row
    return out


def prove(
    store: Store, node: str | NodeId, *, verifier: Verifier | str | Path | None = None
) -> Bundle:
    """A :class:`~datatrail.audit.Bundle` of ``node``'s events, proven against the newest checkpoint.

    ``node`` is a node id (``run:…``, ``artifact:…``, ``dataset:…``, ``job:…``),
    a bare artifact id, or one entry as ``event:INDEX``, ``event:ID`` or ``INDEX``. The bundle is checked with :func:`verify_bundle`
    before it is returned, so a damaged store raises instead of producing it.
    """
    parsed = _parse(node)
    key = resolve_verifier(store, verifier)
    latest = store.latest_checkpoint()
    if latest is None:
        raise StoreError("the trail has no checkpoint yet; record something first")
    checkpoint = open_checkpoint(latest.note, key)
    expect = _gather(store, parsed)
    rows = _entries(store, sorted(expect))
    receipts = [r[5] for r in rows.values() if r[3] is None and type(r[5]) is int]
    rows.update(_entries(store, [i for i in receipts if i not in rows]))
    events: list[BundleEvent] = []
    for idx in sorted(rows):
        _, eid, kind, body, leaf, erased_by = rows[idx]
        if idx >= checkpoint.size:
            raise ProofError(
                f"entry {idx} is newer than the latest checkpoint (size {checkpoint.size}); "
                "run `datatrail verify`"
            )
        raw = None if body is None else bytes(body)
        decoded = None if raw is None else from_json(raw)
        if raw is not None and idx in expect:
            field, value = expect[idx]
            if not isinstance(decoded, dict) or decoded.get(field) != value:
                raise ProofError(
                    f"the projections say entry {idx} is about {field} {value}, but it is not; "
                    "run `datatrail verify`"
                )
        events.append(
            BundleEvent(
                index=idx,
                id=str(eid),
                kind=str(kind),
                leaf_hash=bytes(leaf).hex(),
                body=None if raw is None else base64.b64encode(raw).decode("ascii"),
                event=decoded,
                erased_by=erased_by,
                proof=[h.hex() for h in store.inclusion_proof(idx, checkpoint.size)],
            )
        )
    bundle = Bundle(
        node=f"event:{next(iter(expect))}" if isinstance(parsed, str) else str(parsed),
        origin=checkpoint.origin,
        tree_size=checkpoint.size,
        root=checkpoint.root.hex(),
        checkpoint=latest.note,
        verifier_key=key.text,
        created_at=now_ts(),
        events=events,
    )
    check = verify_bundle(bundle, key)
    if not check.ok:
        raise ProofError(
            f"the store gave a proof that does not check ({check.failures[0].message}); "
            "run `datatrail verify`"
        )
    return bundle


def write_bundle(bundle: Bundle, path: str | Path) -> Path:
    """Write ``bundle`` as indented JSON; returns the path."""
    out = Path(path)
    out.write_bytes(msgspec.json.format(msgspec.json.encode(bundle), indent=2) + b"\n")
    return out
