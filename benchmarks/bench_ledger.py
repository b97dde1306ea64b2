"""Ledger: datatrail's in-memory Merkle tree against pymerkle's, on the same leaves.

The rival is pymerkle's ``InmemoryTree``; ours is ``datatrail.ledger.MerkleTree``,
the same job (an RFC 9162 tree in memory). Rows with the issue's ≥ 10× target:

- append N 200-byte events, in batches of 1,000 (``extend`` against
  ``append_entries``) and one at a time (``append`` against ``append_entry``),
  each side hashing the events into leaves and taking the root after every
  batch; the two trees grow side by side, taking turns at every batch;
- inclusion proofs for 1,000 random leaves of the full tree, every proof
  checked equal to pymerkle's;
- consistency proofs from 1,000 random earlier sizes to the full tree, every
  proof verified against both roots (pymerkle's path has its own layout, not
  RFC 9162's, so the two cannot be compared hash for hash).

Then the store's path, for information: ``leaf_hash`` + ``append_nodes`` in
batches against bare SHA-256 leaf hashing (its own target), and inclusion
proofs through the node-based functions reading a dict of every node (directly,
and as a SQL store does: ``inclusion_nodes``, one fetch,
``inclusion_proof_from``), against the same pymerkle proofs. Rows report
medians; pymerkle's proofs are timed warm.
"""

from __future__ import annotations

import gc
import hashlib
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from benchmarks._harness import Result
from datatrail.ledger import (
    MerkleTree,
    append_nodes,
    consistency_proof,
    inclusion_nodes,
    inclusion_proof,
    inclusion_proof_from,
    leaf_hash,
    root_from_frontier,
    verify_consistency,
    verify_inclusion,
)

EVENT_BYTES = 200
BATCH = 1_000
PROOFS = 1_000
APPEND_TARGET = 200_000
RATIO_TARGET = 10.0
TURN = 10
"""Batches each rival appends before the other takes its turn in an append race."""
INFORMATIONAL = "informational: what a SQL-backed store pays in Python before its fetch"


def _events(n: int) -> list[bytes]:
    rng = random.Random(20240601)
    return [rng.randbytes(EVENT_BYTES) for _ in range(n)]


def _append_all(
    events: list[bytes], sink: Callable[[list[tuple[int, int, bytes]]], object]
) -> list[bytes]:
    """What the store does per batch: hash the events, extend the tree, write the new nodes."""
    frontier: list[bytes] = []
    size = 0
    for start in range(0, len(events), BATCH):
        leaves = [leaf_hash(e) for e in events[start : start + BATCH]]
        completed, frontier = append_nodes(frontier, size, leaves)
        sink(completed)
        size += len(leaves)
    return frontier


def _interleaved(timed: dict[str, tuple[Callable[[], object], int]]) -> dict[str, float]:
    """Median seconds per call of each function, taking turns round by round.

    Shared machines drift; alternating rivals makes both see the same weather.
    """
    samples: dict[str, list[float]] = {name: [] for name in timed}
    for round_no in range(max(rounds for _, rounds in timed.values())):
        for name, (fn, rounds) in timed.items():
            if round_no < rounds:
                start = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def _vs_pymerkle(
    name: str, rate: float, py_rate: float, unit: str, py_name: str, note: str
) -> Result:
    return Result(
        name=name,
        ours=rate,
        unit=unit,
        target=f"≥ {RATIO_TARGET:.0f}× pymerkle",
        ok=rate / py_rate >= RATIO_TARGET,
        baseline=py_rate,
        baseline_name=py_name,
        ratio=rate / py_rate,
        note=note,
    )


def _py_batch(tree: Any, batch: list[bytes]) -> None:
    tree.append_entries(batch)
    tree.get_root()


def _ours_batch(tree: MerkleTree, batch: list[bytes]) -> None:
    tree.extend([leaf_hash(e) for e in batch])
    tree.root()


def _py_one_by_one(tree: Any, batch: list[bytes]) -> None:
    append = tree.append_entry
    for e in batch:
        append(e)
    tree.get_root()


def _ours_one_by_one(tree: MerkleTree, batch: list[bytes]) -> None:
    append = tree.append
    for e in batch:
        append(leaf_hash(e))
    tree.root()


def _race(
    batches: list[list[bytes]],
    rivals: dict[str, tuple[Callable[[], Any], Callable[[Any, list[bytes]], None]]],
    rounds: int,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Grow one tree per rival, the rivals taking turns at appending the same batches.

    Returns the median seconds each rival spent over ``rounds`` and the trees of
    the last round. A turn is :data:`TURN` batches (some milliseconds), so the
    weather of a shared machine falls on all rivals alike, and who goes first
    flips from turn to turn. The collector stays on, as in any program: each side
    pays for the collections its own allocations set off (pymerkle's tree is
    millions of linked objects, ours is lists of bytes, which the collector
    does not track). The inputs and the empty trees are frozen first, so no
    collection walks the million events or the trees' top-level containers.
    """
    samples: dict[str, list[float]] = {name: [] for name in rivals}
    trees: dict[str, Any] = {}
    order = list(rivals)
    for _ in range(rounds):
        trees.clear()
        gc.collect()
        trees.update((name, make()) for name, (make, _) in rivals.items())
        gc.freeze()
        try:
            spent = dict.fromkeys(rivals, 0.0)
            for k in range(0, len(batches), TURN):
                turn = batches[k : k + TURN]
                for name in order if k // TURN % 2 else reversed(order):
                    grow, tree = rivals[name][1], trees[name]
                    start = time.perf_counter()
                    for batch in turn:
                        grow(tree, batch)
                    spent[name] += time.perf_counter() - start
        finally:
            gc.unfreeze()
        for name, seconds in spent.items():
            samples[name].append(seconds)
    return {name: statistics.median(values) for name, values in samples.items()}, trees


def run(quick: bool) -> list[Result]:
    """Benchmark rows for the ledger (100k leaves quick, 1M full)."""
    from pymerkle import InmemoryTree  # dev-only dependency
    from pymerkle import verify_consistency as pymerkle_verify_consistency

    n = 100_000 if quick else 1_000_000
    events = _events(n)
    batches = [events[start : start + BATCH] for start in range(0, n, BATCH)]

    # -- append: MerkleTree against InmemoryTree -------------------------------
    rounds = 3 if quick else 2  # pymerkle takes ~10 s a round at 1M leaves
    # One pymerkle tree at a time: two would walk each other in full collections.
    batch_s, batch_trees = _race(
        batches,
        {
            "pymerkle": (lambda: InmemoryTree(algorithm="sha256"), _py_batch),
            "ours": (MerkleTree, _ours_batch),
        },
        rounds,
    )
    tree, py_tree = batch_trees["ours"], batch_trees["pymerkle"]
    del batch_trees
    single_s, single_trees = _race(
        batches,
        {
            "pymerkle": (lambda: InmemoryTree(algorithm="sha256"), _py_one_by_one),
            "ours": (MerkleTree, _ours_one_by_one),
        },
        rounds,
    )
    root = tree.root()
    if tree.size != n or {root} != {
        py_tree.get_root(),
        single_trees["ours"].root(),
        single_trees["pymerkle"].get_root(),
    }:
        raise AssertionError("pymerkle and datatrail disagree on the root; results are void")
    del single_trees

    note = (
        f"both hash the events and take the root after every {BATCH:,}; the trees grow "
        f"side by side, {TURN * BATCH:,} leaves a turn; median of {rounds} rounds"
    )
    rows = [
        _vs_pymerkle(
            f"append {n:,} × {EVENT_BYTES}-byte events, batches of {BATCH:,} (MerkleTree.extend)",
            n / batch_s["ours"],
            n / batch_s["pymerkle"],
            "leaves/s",
            "pymerkle InmemoryTree.append_entries",
            note,
        ),
        _vs_pymerkle(
            f"append {n:,} × {EVENT_BYTES}-byte events, one at a time (MerkleTree.append)",
            n / single_s["ours"],
            n / single_s["pymerkle"],
            "leaves/s",
            "pymerkle InmemoryTree.append_entry",
            note,
        ),
    ]

    # -- proofs: MerkleTree against InmemoryTree, on the trees just built -------
    leaves = [leaf_hash(e) for e in events]  # for the checks below only
    rng = random.Random(7)
    indexes = [rng.randrange(n) for _ in range(PROOFS)]
    old_sizes = [rng.randrange(1, n + 1) for _ in range(PROOFS)]

    ours_proofs = [tree.inclusion_proof(i) for i in indexes]
    py_proofs = [py_tree.prove_inclusion(i + 1).path[1:] for i in indexes]  # from one; leaf first
    if ours_proofs != py_proofs:
        raise AssertionError("pymerkle and datatrail disagree on an inclusion proof")
    for i, proof in list(zip(indexes, ours_proofs, strict=True))[:20]:
        if not verify_inclusion(leaves[i], i, n, proof, root):
            raise AssertionError(f"our inclusion proof for leaf {i} does not verify")
    if ours_proofs[0] != inclusion_proof(leaves, indexes[0]):
        raise AssertionError("MerkleTree and the RFC 9162 reference disagree; results are void")

    for old in old_sizes:
        old_root = py_tree.get_root(old)
        proof = tree.consistency_proof(old)
        if not verify_consistency(old, n, old_root, root, proof):
            raise AssertionError(f"our consistency proof from {old} does not verify")
        # pymerkle's verifier raises when its own proof does not hold.
        pymerkle_verify_consistency(old_root, root, py_tree.prove_consistency(old))
    if tree.consistency_proof(old_sizes[0]) != consistency_proof(leaves, old_sizes[0]):
        raise AssertionError("MerkleTree and the RFC 9162 reference disagree; results are void")

    def pymerkle_inclusion() -> None:
        for i in indexes:
            py_tree.prove_inclusion(i + 1)

    def ours_inclusion() -> None:
        for i in indexes:
            tree.inclusion_proof(i)

    def pymerkle_consistency() -> None:
        for old in old_sizes:
            py_tree.prove_consistency(old)

    def ours_consistency() -> None:
        for old in old_sizes:
            tree.consistency_proof(old)

    # The proofs allocate little that lives; parking the trees' millions of objects
    # where the collector does not walk them keeps either side from paying for the other.
    gc.collect()
    gc.freeze()
    try:
        t0 = time.perf_counter()
        pymerkle_inclusion()  # the first, cold round warms pymerkle's subroot cache
        cold_s = time.perf_counter() - t0
        pymerkle_consistency()
        proof_s = _interleaved(
            {
                "pymerkle inclusion": (pymerkle_inclusion, 7),
                "inclusion": (ours_inclusion, 7),
                "pymerkle consistency": (pymerkle_consistency, 7),
                "consistency": (ours_consistency, 7),
            }
        )
    finally:
        gc.unfreeze()
    py_prate = PROOFS / proof_s["pymerkle inclusion"]
    rows.append(
        _vs_pymerkle(
            f"inclusion proofs, {PROOFS:,} random leaves of {n:,} (MerkleTree.inclusion_proof)",
            PROOFS / proof_s["inclusion"],
            py_prate,
            "proofs/s",
            "pymerkle prove_inclusion (warm cache)",
            f"each equal to pymerkle's; pymerkle's first, cold round: {PROOFS / cold_s:,.0f}/s",
        )
    )
    rows.append(
        _vs_pymerkle(
            f"consistency proofs, {PROOFS:,} random old sizes to {n:,} "
            "(MerkleTree.consistency_proof)",
            PROOFS / proof_s["consistency"],
            PROOFS / proof_s["pymerkle consistency"],
            "proofs/s",
            "pymerkle prove_consistency (warm cache)",
            "each side's proof verified against both roots; pymerkle's path is its own "
            "layout, not RFC 9162's",
        )
    )
    rows += _store_rows(events, indexes, py_tree, py_prate, pymerkle_inclusion, n)
    return rows


def _store_rows(
    events: list[bytes],
    indexes: list[int],
    py_tree: Any,
    py_prate: float,
    pymerkle_inclusion: Callable[[], None],
    n: int,
) -> list[Result]:
    """The store's own path: append_nodes batches, and proofs from a dict of every node."""
    sha256 = hashlib.sha256
    append_s = _interleaved(
        {
            # A store writes each batch's nodes out and lets them go; len()
            # stands in for that write, so this times the ledger, not a list.
            "ours": (lambda: _append_all(events, len), 3),
            "raw": (lambda: [sha256(b"\x00" + e).digest() for e in events], 3),
        }
    )
    stored: list[tuple[int, int, bytes]] = []
    root = root_from_frontier(_append_all(events, stored.extend), n)
    if py_tree.get_root() != root:
        raise AssertionError("pymerkle and the store path disagree on the root; results are void")
    ours_rate, raw_rate = n / append_s["ours"], n / append_s["raw"]
    rows = [
        Result(
            name=f"append {n:,} × {EVENT_BYTES}-byte events (leaf_hash + append_nodes)",
            ours=ours_rate,
            unit="leaves/s",
            target=f"≥ {APPEND_TARGET:,} leaves/s",
            ok=ours_rate >= APPEND_TARGET,
            baseline=raw_rate,
            baseline_name="SHA-256 leaf hashing alone",
            ratio=ours_rate / raw_rate,
            note=f"batches of {BATCH}, nodes handed to the store per batch; "
            "the baseline is the floor, not a rival",
        )
    ]

    nodes = {(level, index): h for level, index, h in stored}
    nodes.update(((0, i), leaf_hash(e)) for i, e in enumerate(events))
    for i in indexes[:20]:
        proof = inclusion_proof_from(nodes, i, n)
        if not verify_inclusion(nodes[(0, i)], i, n, proof, root):
            raise AssertionError(f"the store path's inclusion proof for leaf {i} does not verify")
        if py_tree.prove_inclusion(i + 1).path[1:] != proof:
            raise AssertionError(f"pymerkle and the store path disagree on leaf {i}'s proof")

    def dict_proofs() -> None:
        # The in-memory dict is the node store: the proof reads it directly.
        for i in indexes:
            inclusion_proof_from(nodes, i, n)

    def store_flow_proofs() -> None:
        # What a SQL store does: name the nodes, fetch them in one query, assemble.
        get = nodes.__getitem__
        for i in indexes:
            wanted = inclusion_nodes(i, n)
            inclusion_proof_from(dict(zip(wanted, map(get, wanted), strict=True)), i, n)

    proof_s = _interleaved(
        {
            "pymerkle": (pymerkle_inclusion, 5),
            "dict as node store": (dict_proofs, 5),
            "inclusion_nodes + one fetch + assemble": (store_flow_proofs, 5),
        }
    )
    # pymerkle again beside these rows: the dict's cold lookups make the weather here.
    py_here = PROOFS / proof_s.pop("pymerkle")
    for label, seconds in proof_s.items():
        rate = PROOFS / seconds
        rows.append(
            Result(
                name=f"inclusion proofs, {PROOFS:,} random leaves of {n:,} ({label})",
                ours=rate,
                unit="proofs/s",
                target=INFORMATIONAL,
                ok=True,
                baseline=py_here,
                baseline_name="pymerkle prove_inclusion (warm cache)",
                ratio=rate / py_here,
                note="a dict of every node, looked up cold; the store's own proof "
                "latency has its target in bench_verify (p50 ≤ 1 ms)",
                extra={"pymerkle_proofs_per_s_beside_the_tree_rows": py_prate},
            )
        )
    return rows
