"""Ledger: appending leaves and proving inclusion, against pymerkle on the same data.

Three rows. Appending 200-byte events (``leaf_hash`` plus ``append_nodes`` in
batches, as the store does) in leaves per second, against the bare SHA-256
leaf hashing it cannot beat and against pymerkle's ``InmemoryTree``. Then
inclusion proofs for 1,000 random leaves of the full tree through the
node-based path (``inclusion_nodes`` -> fetch from an in-memory dict ->
``inclusion_proof_from``) against pymerkle's ``prove_inclusion`` on the same
tree. Both trees must agree on the root and the proofs, or the run fails.
"""

from __future__ import annotations

import hashlib
import random
import time

from benchmarks._harness import Result, median_time
from datatrail.ledger import (
    append_nodes,
    inclusion_nodes,
    inclusion_proof_from,
    leaf_hash,
    root_from_frontier,
    verify_inclusion,
)

EVENT_BYTES = 200
BATCH = 1_000
PROOFS = 1_000
APPEND_TARGET = 200_000
RATIO_TARGET = 10.0


def _events(n: int) -> list[bytes]:
    rng = random.Random(20240601)
    return [rng.randbytes(EVENT_BYTES) for _ in range(n)]


def _append_all(events: list[bytes]) -> tuple[list[tuple[int, int, bytes]], list[bytes]]:
    """What the store does per batch: hash the events, then extend the tree."""
    stored: list[tuple[int, int, bytes]] = []
    frontier: list[bytes] = []
    size = 0
    for start in range(0, len(events), BATCH):
        leaves = [leaf_hash(e) for e in events[start : start + BATCH]]
        completed, frontier = append_nodes(frontier, size, leaves)
        stored.extend(completed)
        size += len(leaves)
    return stored, frontier


def run(quick: bool) -> list[Result]:
    """Benchmark rows for the ledger (100k leaves quick, 1M full)."""
    from pymerkle import InmemoryTree  # dev-only dependency

    n = 100_000 if quick else 1_000_000
    repeat = 3
    events = _events(n)

    # -- append ------------------------------------------------------------
    ours_s = median_time(lambda: _append_all(events), repeat=repeat)
    sha256 = hashlib.sha256
    raw_s = median_time(lambda: [sha256(b"\x00" + e).digest() for e in events], repeat=repeat)

    def pymerkle_append() -> InmemoryTree:
        tree = InmemoryTree(algorithm="sha256")
        for e in events:
            tree.append_entry(e)
        return tree

    # pymerkle is ~10x slower: one round at 1M leaves keeps the run short.
    py_rounds = repeat if quick else 1
    py_s = median_time(pymerkle_append, repeat=py_rounds)
    tree = pymerkle_append()

    stored, frontier = _append_all(events)
    root = root_from_frontier(frontier, n)
    if tree.get_root() != root:
        raise AssertionError("pymerkle and datatrail disagree on the root; results are void")

    ours_rate, raw_rate, py_rate = n / ours_s, n / raw_s, n / py_s
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
            note=f"batches of {BATCH}; the baseline is the floor, not a rival",
        ),
        Result(
            name=f"append {n:,} leaves vs pymerkle",
            ours=ours_rate,
            unit="leaves/s",
            target=f"≥ {RATIO_TARGET:.0f}× pymerkle",
            ok=ours_rate / py_rate >= RATIO_TARGET,
            baseline=py_rate,
            baseline_name="pymerkle InmemoryTree.append_entry",
            ratio=ours_rate / py_rate,
            note=f"pymerkle timed over {py_rounds} round(s)",
        ),
    ]

    # -- inclusion proofs ----------------------------------------------------
    nodes = {(level, index): h for level, index, h in stored}
    nodes.update(((0, i), leaf_hash(e)) for i, e in enumerate(events))
    rng = random.Random(7)
    indexes = [rng.randrange(n) for _ in range(PROOFS)]

    def ours_proofs() -> None:
        for i in indexes:
            fetched = {node: nodes[node] for node in inclusion_nodes(i, n)}
            inclusion_proof_from(fetched, i, n)

    def pymerkle_proofs() -> None:
        for i in indexes:
            tree.prove_inclusion(i + 1)  # pymerkle counts leaves from one

    for i in indexes[:20]:
        proof = inclusion_proof_from(nodes, i, n)
        if not verify_inclusion(nodes[(0, i)], i, n, proof, root):
            raise AssertionError(f"our inclusion proof for leaf {i} does not verify")
        if tree.prove_inclusion(i + 1).path[1:] != proof:  # pymerkle's path starts at the leaf
            raise AssertionError(f"pymerkle and datatrail disagree on the proof of leaf {i}")

    t0 = time.perf_counter()
    pymerkle_proofs()  # warm pymerkle's subroot cache so both sides are measured warm
    cold_s = time.perf_counter() - t0
    ours_p = median_time(ours_proofs, repeat=5)
    py_p = median_time(pymerkle_proofs, repeat=5)
    ours_prate, py_prate = PROOFS / ours_p, PROOFS / py_p
    rows.append(
        Result(
            name=f"inclusion proofs, {PROOFS:,} random leaves of {n:,} (node-based)",
            ours=ours_prate,
            unit="proofs/s",
            target=f"≥ {RATIO_TARGET:.0f}× pymerkle",
            ok=ours_prate / py_prate >= RATIO_TARGET,
            baseline=py_prate,
            baseline_name="pymerkle prove_inclusion (warm cache)",
            ratio=ours_prate / py_prate,
            note=f"pymerkle's first, cold round took {cold_s:.2f}s",
            extra={"pymerkle_cold_proofs_per_s": PROOFS / cold_s},
        )
    )
    return rows
