"""``erase-data``: delete a node's data and everything downstream that carries it, with a certificate.

The closure starts at an artifact, every version of a dataset, or a run's
outputs, and follows the artifact-level lineage (input -> run -> output)
downstream. It stops at runs of jobs the policy declares as removing one of
the labels the start carries (an anonymising step): what they produce no
longer carries the data.

Nothing is touched if any artifact of the closure is under a legal hold or a
compliance-mode keep; governance-mode keeps are overridden and listed in the
certificate. The certificate is canonical JSON signed with the trail's Ed25519
key as a C2SP signed note, and kept in the log as a
``retention.deletion_certificate`` record.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import msgspec

from datatrail.errors import NodeNotFound, PolicyDenied, UsageError
from datatrail.ledger import Signer, Verifier, open_note, sign_note
from datatrail.model import canonical_bytes, now_ts, parse_node_id, uuid7
from datatrail.retention._adapters import AdapterContext, StorageError
from datatrail.retention._apply import Payloads, erase_payloads, payload_events, storage_action
from datatrail.retention._common import (
    TOPIC_CERTIFICATE,
    TOPIC_PURGED,
    acting_actor,
    append_records,
    check_node,
    check_reason,
    principal,
)
from datatrail.retention._facts import load_facts, purge_receipts
from datatrail.retention._plan import Disposition, plan
from datatrail.retention._policy import load_context
from datatrail.store import Store, artifact_edges

__all__ = [
    "CERTIFICATE_FORMAT",
    "ErasureItem",
    "ErasurePlan",
    "ErasureReport",
    "erase_data",
    "plan_erasure",
    "verify_certificate",
]

CERTIFICATE_FORMAT = "datatrail-deletion-certificate/1"
_CHUNK = 400


class ErasureItem(msgspec.Struct, frozen=True, kw_only=True):
    """One artifact (of one dataset, or in memory) in the closure, and what stands in the way."""

    artifact: str
    dataset: str | None
    depth: int
    first_index: int | None
    current: bool = False
    held: list[str] = []
    """Cases of the holds that cover it."""
    locked_by: str | None = None
    """A compliance-mode keep rule in force."""
    overrides: str | None = None
    """A governance-mode keep rule this erasure overrides."""
    purged_at: int | None = None
    """The receipt index if it was purged before."""


class ErasurePlan(msgspec.Struct, frozen=True, kw_only=True):
    """The closure ``erase-data`` would delete, and whether anything blocks it."""

    node: str
    cascade: bool
    items: list[ErasureItem]
    stopped_at: list[str]
    """Runs of declassifying jobs where the closure stopped."""

    @property
    def blocked(self) -> list[ErasureItem]:
        return [i for i in self.items if i.held or i.locked_by]

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = msgspec.to_builtins(self)
        data["blocked"] = [msgspec.to_builtins(i) for i in self.blocked]
        return data


class ErasureReport(msgspec.Struct, frozen=True, kw_only=True):
    """What ``erase-data`` did: the certificate (signed note), its body and its ledger index."""

    certificate: str
    body: dict[str, Any]
    index: int

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data


def _start(store: Store, node: str) -> tuple[str, list[str]]:
    text = check_node(node)
    parsed = parse_node_id(text)
    if parsed.kind == "artifact":
        rows = store.query("SELECT 1 FROM artifacts WHERE artifact_id = ?", (parsed.key,))
        if not rows:
            raise NodeNotFound(f"no artifact {parsed.key} in this trail")
        return text, [parsed.key]
    if parsed.kind == "dataset":
        rows = store.query(
            "SELECT DISTINCT artifact_id FROM run_io WHERE dataset_namespace = ? AND dataset_name = ?",
            (parsed.namespace, parsed.name),
        )
        if not rows:
            raise NodeNotFound(f"no dataset {text} with recorded versions in this trail")
        return text, sorted(str(r[0]) for r in rows)
    if parsed.kind == "run":
        rows = store.query(
            "SELECT DISTINCT artifact_id FROM run_io WHERE run_id = ? AND role = 'output'",
            (parsed.key,),
        )
        if not rows:
            raise NodeNotFound(f"run {parsed.key} recorded no outputs to erase")
        return text, sorted(str(r[0]) for r in rows)
    raise UsageError(f"{text}: erase-data takes an artifact, a dataset or a run, not a job")


def _declassifiers(store: Store, start_artifacts: Sequence[str]) -> list[tuple[str, ...]]:
    """The removed_by globs of the labels the start carries."""
    context = load_context(store)
    if context.policy is None:
        return []
    labels: set[str] = set()
    for art in start_artifacts:
        for ns, name in store.query(
            "SELECT DISTINCT dataset_namespace, dataset_name FROM run_io WHERE artifact_id = ? "
            "AND dataset_name IS NOT NULL",
            (art,),
        ):
            labels.update(context.labels(str(ns), str(name)))
    return [
        context.policy.classifications[label].removed_by
        for label in sorted(labels)
        if label in context.policy.classifications
        and context.policy.classifications[label].removed_by
    ]


def _walk(
    store: Store, start: list[str], cascade: bool, stop: list[tuple[str, ...]]
) -> tuple[dict[str, int], list[str]]:
    """Artifact ids of the downstream closure with their depth (in runs), and runs stopped at."""
    from datatrail.governance import glob_match

    depth = dict.fromkeys(start, 0)
    stopped: list[str] = []
    if not cascade:
        return depth, stopped
    frontier = ["a:" + a for a in start]
    seen = set(frontier)
    level: dict[str, int] = dict.fromkeys(frontier, 0)
    while frontier:
        nxt: list[str] = []
        for i in range(0, len(frontier), _CHUNK):
            chunk = frontier[i : i + _CHUNK]
            edges = artifact_edges(store, chunk, "src")
            runs = sorted({str(d)[2:] for _, d in edges if str(d).startswith("r:")})
            jobs: dict[str, tuple[str, str]] = {}
            if stop and runs:
                run_marks = ", ".join("?" * len(runs))
                for run_id, ns, name in store.query(
                    f"SELECT run_id, job_namespace, job_name FROM runs WHERE run_id IN ({run_marks})",
                    runs,
                ):
                    jobs[str(run_id)] = (str(ns), str(name))
            for src, dst in edges:
                dst = str(dst)
                if dst in seen:
                    continue
                if dst.startswith("r:") and dst[2:] in jobs:
                    ns, name = jobs[dst[2:]]
                    full = f"job:{ns}:{name}"
                    if any(
                        any(glob_match(p, full) or glob_match(p, name) for p in globs)
                        for globs in stop
                    ):
                        stopped.append("run:" + dst[2:])
                        continue
                seen.add(dst)
                level[dst] = level[str(src)] + (1 if dst.startswith("r:") else 0)
                nxt.append(dst)
        frontier = nxt
    for key, lvl in level.items():
        if key.startswith("a:"):
            depth.setdefault(key[2:], lvl)
    return depth, sorted(set(stopped))


def plan_erasure(store: Store, node: str, *, cascade: bool = False) -> ErasurePlan:
    """The closure ``erase-data`` would delete (nothing is changed)."""
    text, start = _start(store, node)
    depth, stopped = _walk(store, start, cascade, _declassifiers(store, start))
    facts = load_facts(store)
    current = plan(store, everything=True, facts=facts)
    by_pair: dict[tuple[str, str], Disposition] = {
        (d.artifact, d.dataset): d for d in current.items
    }
    purged = {(r.artifact, r.dataset): r.index for r in purge_receipts(store)}
    arts = sorted(depth, key=lambda a: (depth[a], a))
    datasets: dict[str, list[str]] = {}
    first: dict[str, int] = {}
    for i in range(0, len(arts), _CHUNK):
        chunk = arts[i : i + _CHUNK]
        marks = ", ".join("?" * len(chunk))
        for art, ns, name in store.query(
            f"SELECT DISTINCT artifact_id, dataset_namespace, dataset_name FROM run_io "
            f"WHERE artifact_id IN ({marks}) AND dataset_name IS NOT NULL",
            chunk,
        ):
            datasets.setdefault(str(art), []).append(f"dataset:{ns}:{name}")
        for art, idx in store.query(
            f"SELECT artifact_id, first_idx FROM artifacts WHERE artifact_id IN ({marks})", chunk
        ):
            first[str(art)] = int(idx)
    runs_of: dict[str, set[str]] = {}
    for run_node in facts.run_outputs:
        for art in facts.run_outputs[run_node]:
            runs_of.setdefault(art, set()).add(run_node)
    items: list[ErasureItem] = []
    for art in arts:
        art_holds = [h.case for h in facts.holds_by_node.get("artifact:" + art, ())]
        for run_node in sorted(runs_of.get(art, ())):
            art_holds.extend(h.case for h in facts.holds_by_node[run_node])
        pairs: list[str | None] = [*sorted(datasets.get(art, []))] or [None]
        for ds in pairs:
            disposition = by_pair.get((art, ds)) if ds is not None else None
            held = list(art_holds)
            if ds is not None:
                held.extend(h.case for h in facts.holds_by_node.get(ds, ()))
            locked = overrides = None
            keep = disposition.keep_until if disposition is not None else None
            if disposition is not None and keep is not None and keep > current.now:
                if disposition.keep_mode == "compliance":
                    locked = disposition.keep_rule
                else:
                    overrides = disposition.keep_rule
            items.append(
                ErasureItem(
                    artifact=art,
                    dataset=ds,
                    depth=depth[art],
                    first_index=first.get(art),
                    current=disposition.current if disposition is not None else False,
                    held=sorted(set(held)),
                    locked_by=locked,
                    overrides=overrides,
                    purged_at=purged.get((art, ds)),
                )
            )
    return ErasurePlan(node=text, cascade=cascade, items=items, stopped_at=stopped)


def _as_disposition(item: ErasureItem) -> Disposition:
    return Disposition(
        artifact=item.artifact,
        dataset=item.dataset or "",
        status="due",
        action="delete",
        reason="erase-data",
        created="",
        first_index=item.first_index or 0,
        current=item.current,
    )


def erase_data(
    store: Store,
    node: str,
    *,
    signer: Signer,
    reason: str,
    cascade: bool = False,
    by: str | None = None,
    adapters: AdapterContext | None = None,
    forget_lineage: bool = False,
) -> ErasureReport:
    """Delete ``node``'s data and its downstream closure; returns the signed deletion certificate.

    Raises :class:`~datatrail.errors.PolicyDenied` (nothing changed) if a legal hold
    or a compliance-mode keep covers any artifact of the closure. ``forget_lineage``
    erases every io event of the closure from the log's payloads, not only those
    carrying values from the data.
    """
    why = check_reason(reason, "erase-data")
    who = principal(by)
    planned = plan_erasure(store, node, cascade=cascade)
    blocked = planned.blocked
    if blocked:
        lines = "; ".join(
            f"{i.artifact} ({i.dataset or 'in memory'}): "
            + (f"held for case {', '.join(i.held)}" if i.held else f"compliance keep {i.locked_by}")
            for i in blocked[:5]
        )
        more = f" and {len(blocked) - 5} more" if len(blocked) > 5 else ""
        raise PolicyDenied(
            f"erase-data {planned.node} refused, nothing was deleted: {lines}{more}. "
            "A legal hold beats every erasure and a compliance-mode keep is locked; "
            "release the hold (`datatrail hold release`) or wait for the keep to pass",
            decision=planned.to_dict(),
        )
    todo = [i for i in planned.items if i.purged_at is None]
    if not todo:
        raise UsageError(
            f"every artifact of {planned.node}'s closure was already purged; "
            "`datatrail retention purged` lists the receipts"
        )
    ctx = adapters or AdapterContext()
    outcomes: list[tuple[ErasureItem, str, str | None]] = []
    for item in todo:
        if item.dataset is None:
            outcomes.append((item, "no-storage", None))
            continue
        try:
            outcomes.append((item, storage_action(_as_disposition(item), "delete", ctx), None))
        except StorageError as exc:
            outcomes.append((item, "failed", str(exc)))
    failures = [(i, e) for i, o, e in outcomes if o == "failed"]
    if failures:
        listed = "; ".join(f"{i.dataset}: {e}" for i, e in failures[:3])
        raise UsageError(
            f"erase-data {planned.node} stopped: the storage of {len(failures)} artifacts could "
            f"not be deleted ({listed}); what was deleted stays deleted, run it again once fixed"
        )
    mode: Payloads = "all" if forget_lineage else "values"
    arts = list(dict.fromkeys(i.artifact for i in todo))
    to_erase = payload_events(store, arts, mode)
    erase_of: dict[str, list[int]] = {}
    for art in arts:
        idxs = {
            int(r[0]) for r in store.query("SELECT idx FROM run_io WHERE artifact_id = ?", (art,))
        }
        erase_of[art] = sorted(idxs.intersection(to_erase))
    cert_id = uuid7()
    records = [
        (
            TOPIC_PURGED,
            "artifact:" + item.artifact,
            {
                "artifact": item.artifact,
                "dataset": item.dataset,
                "hash": item.artifact,
                "action": "erase",
                "rule": None,
                "policy_version": None,
                "storage": outcome,
                "first_index": item.first_index,
                "overrides": item.overrides,
                "reason": why,
                "by": who,
                "erased_events": erase_of.get(item.artifact, []),
                "certificate": cert_id,
            },
        )
        for item, outcome, _ in outcomes
    ]
    actor = acting_actor(who)
    receipts = append_records(store, records, actor=actor)
    erased = erase_payloads(store, to_erase, f"erase-data {planned.node}: {why}", who)
    body: dict[str, Any] = {
        "format": CERTIFICATE_FORMAT,
        "id": cert_id,
        "node": planned.node,
        "cascade": cascade,
        "reason": why,
        "by": who,
        "ts": now_ts(),
        "artifacts": [
            {
                "artifact": item.artifact,
                "hash": item.artifact,
                "dataset": item.dataset,
                "depth": item.depth,
                "ledger_index": item.first_index,
                "receipt_index": index,
                "storage": outcome,
                "erased_events": erase_of.get(item.artifact, []),
                "overrides": item.overrides,
            }
            for (item, outcome, _), index in zip(outcomes, receipts, strict=True)
        ],
        "already_purged": [
            {"artifact": i.artifact, "dataset": i.dataset, "receipt_index": i.purged_at}
            for i in planned.items
            if i.purged_at is not None
        ],
        "stopped_at": planned.stopped_at,
        "erased_events": erased,
        "ledger": {"size": store.size(), "root": store.root().hex()},
        "signer": signer.name,
    }
    note = sign_note(canonical_bytes(body).decode() + "\n", signer)
    (index,) = append_records(
        store,
        [
            (
                TOPIC_CERTIFICATE,
                planned.node,
                {
                    "id": cert_id,
                    "certificate": note,
                    "artifacts": len(outcomes),
                    "reason": why,
                    "by": who,
                },
            )
        ],
        actor=actor,
    )
    return ErasureReport(certificate=note, body=body, index=index)


def verify_certificate(
    note: str, verifier: Verifier, *, store: Store | None = None
) -> dict[str, Any]:
    """Check a certificate's signature (and, given the store, that each receipt it lists is there).

    Returns the certificate body; raises :class:`~datatrail.errors.SignatureError`
    for a bad signature and :class:`~datatrail.errors.UsageError` when the store
    does not hold a receipt the certificate lists.
    """
    opened = open_note(note, verifier)
    body: dict[str, Any] = json.loads(opened.text)
    if body.get("format") != CERTIFICATE_FORMAT:
        raise UsageError(f"not a deletion certificate: format is {body.get('format')!r}")
    if store is not None:
        for entry in body.get("artifacts", []):
            idx = int(entry["receipt_index"])
            rows = store.query("SELECT topic, data FROM records WHERE idx = ?", (idx,))
            if not rows or rows[0][0] != TOPIC_PURGED:
                raise UsageError(f"certificate lists receipt {idx}, which is not a purge receipt")
            data = json.loads(rows[0][1])
            if data.get("artifact") != entry["artifact"] or data.get("certificate") != body["id"]:
                raise UsageError(
                    f"receipt {idx} is for {data.get('artifact')}, not {entry['artifact']}"
                )
    return body
