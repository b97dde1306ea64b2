"""The in-memory MerkleTree: the same roots and proofs as the RFC 9162 reference functions."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.test_ledger_merkle import leaf_in_tree, two_sizes

from datatrail.errors import ProofError
from datatrail.ledger import (
    MerkleTree,
    append_nodes,
    consistency_proof,
    consistency_proof_from,
    inclusion_proof,
    inclusion_proof_from,
    leaf_hash,
    root_from,
    root_hash,
    root_nodes,
    verify_consistency,
    verify_inclusion,
)

MAX_LEAVES = 300
LEAVES = [leaf_hash(b"entry %d" % i) for i in range(MAX_LEAVES)]
ROOTS = [root_hash(LEAVES[:n]) for n in range(MAX_LEAVES + 1)]
FULL = MerkleTree(LEAVES)

# Where RFC 9162 trees change shape: around powers of two, and the smallest trees.
EDGE_SIZES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 300]


# -- known shapes ------------------------------------------------------------------


def test_an_empty_tree_has_the_empty_root_and_no_proofs() -> None:
    tree = MerkleTree()
    assert tree.size == len(tree) == 0
    assert tree.root() == root_hash([])
    with pytest.raises(ProofError, match="tree size must be at least 1, got 0"):
        tree.inclusion_proof(0)
    with pytest.raises(ProofError, match="new tree size must be at least 1, got 0"):
        tree.consistency_proof(1)


def test_small_trees_have_the_rfc_shape() -> None:
    a, b, c = LEAVES[:3]
    tree = MerkleTree([a, b, c])
    assert tree.root(1) == a
    assert tree.root() == root_hash([a, b, c])
    assert tree.inclusion_proof(2) == [root_hash([a, b])]
    assert tree.inclusion_proof(0) == [b, c]
    assert tree.consistency_proof(2) == [c]


def test_append_returns_the_index_and_extend_the_size() -> None:
    tree = MerkleTree()
    assert tree.append(LEAVES[0]) == 0
    assert tree.append(LEAVES[1]) == 1
    assert tree.extend(LEAVES[2:10]) == 10
    assert tree.extend([]) == 10
    assert [tree.leaf(i) for i in range(10)] == LEAVES[:10]
    assert repr(tree) == "MerkleTree(size=10)"


@pytest.mark.parametrize("size", EDGE_SIZES)
def test_every_proof_of_an_edge_size_equals_the_reference(size: int) -> None:
    leaves = LEAVES[:size]
    tree = MerkleTree(leaves)
    assert tree.root() == ROOTS[size]
    for index in range(size):
        assert tree.inclusion_proof(index) == inclusion_proof(leaves, index), index
    for old in range(1, size + 1):
        assert tree.consistency_proof(old) == consistency_proof(leaves, old), old


def test_consistency_between_equal_sizes_is_empty() -> None:
    assert FULL.consistency_proof(7, 7) == []
    assert FULL.consistency_proof(MAX_LEAVES) == []


# -- properties against the reference functions ---------------------------------------

# The same strategies as the node-based functions are checked with (same MAX_LEAVES).


@given(st.integers(min_value=0, max_value=MAX_LEAVES))
@settings(max_examples=150, deadline=None)
def test_root_of_any_past_size_equals_the_reference(size: int) -> None:
    assert FULL.root(size) == ROOTS[size]
    assert MerkleTree(LEAVES[:size]).root() == ROOTS[size]


@given(leaf_in_tree())
@settings(max_examples=200, deadline=None)
def test_inclusion_proof_of_any_past_size_equals_the_reference(case: tuple[int, int]) -> None:
    index, size = case
    expected = inclusion_proof(LEAVES[:size], index)
    assert FULL.inclusion_proof(index, size) == expected
    assert MerkleTree(LEAVES[:size]).inclusion_proof(index) == expected
    assert verify_inclusion(LEAVES[index], index, size, expected, ROOTS[size])


@given(two_sizes())
@settings(max_examples=200, deadline=None)
def test_consistency_proof_of_any_past_sizes_equals_the_reference(case: tuple[int, int]) -> None:
    old, new = case
    expected = consistency_proof(LEAVES[:new], old)
    assert FULL.consistency_proof(old, new) == expected
    assert MerkleTree(LEAVES[:new]).consistency_proof(old) == expected
    assert verify_consistency(old, new, ROOTS[old], ROOTS[new], expected)


# One step of growing a tree: append some leaves one by one, or extend by a batch.
STEP = st.tuples(st.sampled_from(["append", "extend"]), st.integers(min_value=0, max_value=70))


@given(st.lists(STEP, max_size=12), st.data())
@settings(max_examples=150, deadline=None)
def test_growing_in_any_steps_with_reads_between_equals_the_reference(
    steps: list[tuple[str, int]], data: Any
) -> None:
    # Reads between appends make the tree hash what is pending at odd moments:
    # after one leaf, after a few, after many, for a past size or the current one.
    tree = MerkleTree()
    size = 0
    for how, count in steps:
        batch = LEAVES[size : size + count]
        if how == "append":
            for leaf in batch:
                tree.append(leaf)
        else:
            tree.extend(batch)
        size += len(batch)
        assert tree.size == size
        if size and data.draw(st.booleans(), label="read now"):
            seen = data.draw(st.integers(min_value=1, max_value=size), label="read at size")
            index = data.draw(st.integers(min_value=0, max_value=seen - 1), label="index")
            old = data.draw(st.integers(min_value=1, max_value=seen), label="old size")
            assert tree.inclusion_proof(index, seen) == inclusion_proof(LEAVES[:seen], index)
            assert tree.consistency_proof(old, seen) == consistency_proof(LEAVES[:seen], old)
    assert tree.root() == ROOTS[size]
    if size:
        index = data.draw(st.integers(min_value=0, max_value=size - 1), label="last index")
        assert tree.inclusion_proof(index) == inclusion_proof(LEAVES[:size], index)


def test_appending_one_by_one_and_extending_make_the_same_tree() -> None:
    one_by_one = MerkleTree()
    for leaf in LEAVES:
        one_by_one.append(leaf)
    batched = MerkleTree()
    for start in range(0, MAX_LEAVES, 37):
        batched.extend(LEAVES[start : start + 37])
    for size in EDGE_SIZES:
        assert one_by_one.root(size) == batched.root(size) == FULL.root(size) == ROOTS[size]
    assert one_by_one.inclusion_proof(100) == batched.inclusion_proof(100)


def test_readers_in_threads_catch_up_once() -> None:
    # Every reader finds the same pending leaves; hashing them twice would
    # put each interior node in its level twice and break every later proof.
    leaves = [leaf_hash(b"threaded %d" % i) for i in range(20_000)]
    tree = MerkleTree()
    for leaf in leaves:
        tree.append(leaf)
    start = threading.Barrier(8)
    roots: list[bytes] = []

    def read() -> None:
        start.wait()
        roots.append(tree.root())

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = root_hash(leaves)
    assert roots == [expected] * 8
    assert tree.inclusion_proof(12_345) == inclusion_proof(leaves, 12_345)
    tree.extend(LEAVES)
    assert tree.root() == root_hash(leaves + LEAVES)


def test_a_caller_changing_its_list_afterwards_does_not_change_the_tree() -> None:
    leaves = list(LEAVES[:10])
    tree = MerkleTree(leaves)
    leaves[3] = LEAVES[200]
    leaves.append(LEAVES[201])
    assert tree.size == 10
    assert tree.root() == ROOTS[10]


# -- bad input is refused with ProofError, and changes nothing ------------------------


def test_sizes_beyond_the_tree_are_refused() -> None:
    tree = MerkleTree(LEAVES[:5])
    with pytest.raises(ProofError, match="tree size 6 is larger than the tree, which has 5"):
        tree.root(6)
    with pytest.raises(ProofError, match="tree size 6 is larger than the tree"):
        tree.inclusion_proof(0, 6)
    with pytest.raises(ProofError, match="tree size 6 is larger than the tree"):
        tree.consistency_proof(2, 6)
    with pytest.raises(ProofError, match="leaf index 5 is not in a tree of 5"):
        tree.leaf(5)


def test_proof_arguments_are_checked_like_the_reference_functions() -> None:
    tree = MerkleTree(LEAVES[:5])
    with pytest.raises(ProofError, match="leaf index 5 is not in a tree of 5"):
        tree.inclusion_proof(5)
    with pytest.raises(ProofError, match="leaf index 3 is not in a tree of 3"):
        tree.inclusion_proof(3, 3)
    with pytest.raises(ProofError, match="leaf index must be at least 0, got -1"):
        tree.inclusion_proof(-1)
    with pytest.raises(ProofError, match="leaf index must be an int, not bool"):
        tree.inclusion_proof(True)
    with pytest.raises(ProofError, match="tree size must be an int, not float"):
        tree.inclusion_proof(0, 2.0)  # type: ignore[arg-type]
    with pytest.raises(ProofError, match="old tree size must be at least 1, got 0"):
        tree.consistency_proof(0)
    with pytest.raises(ProofError, match="old tree size 4 is larger than new tree size 3"):
        tree.consistency_proof(4, 3)
    with pytest.raises(ProofError, match="tree size must be at least 0, got -1"):
        tree.root(-1)


@pytest.mark.parametrize("bad", [b"", b"\x00" * 31, b"\x00" * 33, "a" * 32, None, 7])
def test_a_bad_leaf_hash_is_refused_and_the_tree_is_unchanged(bad: Any) -> None:
    tree = MerkleTree(LEAVES[:5])
    with pytest.raises(ProofError, match="leaf hash"):
        tree.append(bad)
    with pytest.raises(ProofError, match=r"leaf hashes\[2\]"):
        tree.extend([LEAVES[5], LEAVES[6], bad, LEAVES[7]])
    assert tree.size == 5
    assert tree.root() == ROOTS[5]
    tree.append(LEAVES[5])
    assert tree.root() == ROOTS[6]


@pytest.mark.parametrize("bad", [b"\x00" * 64, "leaves", {(0, 0): LEAVES[0]}, 3, None])
def test_extend_needs_a_sequence_of_hashes(bad: Any) -> None:
    tree = MerkleTree()
    with pytest.raises(ProofError, match="must be a sequence of hashes"):
        tree.extend(bad)
    with pytest.raises(ProofError, match="must be a sequence of hashes"):
        MerkleTree(bad)
    assert tree.size == 0


GARBAGE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(max_value=-1),
    st.integers(min_value=MAX_LEAVES + 1, max_value=2**70),
    st.floats(),
    st.text(max_size=40),
    st.binary(max_size=40),
    st.lists(st.one_of(st.none(), st.binary(max_size=40), st.integers()), max_size=4),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
FIELD = st.one_of(GARBAGE, st.integers(min_value=0, max_value=MAX_LEAVES))


def _first(size: Any, default: int = MAX_LEAVES) -> list[bytes]:
    """The leaves of the tree of ``size`` (called only once the tree accepted ``size``)."""
    return LEAVES[: default if size is None else size]


def _same_as_reference(call: Any, reference: Any) -> None:
    """The tree either refuses with ProofError or answers what the reference answers."""
    try:
        got = call()
    except ProofError:
        return
    assert got == reference()


@given(FIELD, FIELD)
@settings(max_examples=300, deadline=None)
def test_garbage_arguments_raise_proof_error_or_give_the_reference_answer(a: Any, b: Any) -> None:
    small = MerkleTree(LEAVES[:9])
    _same_as_reference(lambda: FULL.inclusion_proof(a, b), lambda: inclusion_proof(_first(b), a))
    _same_as_reference(lambda: FULL.inclusion_proof(a), lambda: inclusion_proof(LEAVES, a))
    _same_as_reference(
        lambda: FULL.consistency_proof(a, b), lambda: consistency_proof(_first(b), a)
    )
    _same_as_reference(lambda: FULL.consistency_proof(a), lambda: consistency_proof(LEAVES, a))
    _same_as_reference(lambda: FULL.root(a), lambda: ROOTS[MAX_LEAVES if a is None else a])
    _same_as_reference(lambda: FULL.leaf(a), lambda: LEAVES[a])
    _same_as_reference(
        lambda: small.inclusion_proof(a, b),
        lambda: inclusion_proof(_first(b, 9), a),
    )
    _same_as_reference(
        lambda: small.consistency_proof(a, b),
        lambda: consistency_proof(_first(b, 9), a),
    )
    # Whatever was refused, the trees answer as before.
    assert FULL.root() == ROOTS[MAX_LEAVES]
    assert small.root() == ROOTS[9]


@given(GARBAGE)
@settings(max_examples=150, deadline=None)
def test_garbage_leaves_raise_proof_error_and_change_nothing(a: Any) -> None:
    tree = MerkleTree(LEAVES[:9])
    for call in (lambda: tree.append(a), lambda: tree.extend(a), lambda: tree.extend([a])):
        with contextlib.suppress(ProofError):
            call()
    grown = tree.size - 9
    assert 0 <= grown <= 2  # only a valid 32-byte hash (alone, or in a list) gets in
    assert tree.root(9) == ROOTS[9]


def test_proofs_stay_right_when_asked_about_many_sizes() -> None:
    # Thousands of (size, level) pairs: the kept upper path parts fill up and
    # are dropped along the way; every answer must still be the node-based one.
    leaves = [leaf_hash(b"many %d" % i) for i in range(5_000)]
    completed, _ = append_nodes([], 0, leaves)
    nodes = {(level, index): h for level, index, h in completed}
    nodes.update(((0, i), h) for i, h in enumerate(leaves))
    tree = MerkleTree(leaves)
    for _ in range(2):
        for size in range(1, 5_001):
            for index in {0, size // 2, size - 1}:
                assert tree.inclusion_proof(index, size) == inclusion_proof_from(
                    nodes, index, size
                ), (index, size)
            assert tree.consistency_proof(1 + size // 3, size) == consistency_proof_from(
                nodes, 1 + size // 3, size
            )


def test_a_root_asked_again_after_growth_or_for_an_older_size_is_the_reference() -> None:
    # The tree remembers its last root; growing, or asking about another
    # size, must never hand that one back.
    tree = MerkleTree(LEAVES[:100])
    assert tree.root() == tree.root() == ROOTS[100]
    assert tree.root(64) == ROOTS[64]
    assert tree.root() == ROOTS[100]
    tree.append(LEAVES[100])
    assert tree.root() == ROOTS[101]
    assert tree.root(100) == ROOTS[100]
    tree.extend(LEAVES[101:])
    assert tree.root() == ROOTS[MAX_LEAVES]
    assert [tree.root(n) for n in EDGE_SIZES] == [ROOTS[n] for n in EDGE_SIZES]


# A few thousand leaves, checked against the node-based functions on the same nodes.
MANY = 2_345
MANY_LEAVES = [leaf_hash(b"many leaves %d" % i) for i in range(MANY)]
MANY_NODES = {(level, index): h for level, index, h in append_nodes([], 0, MANY_LEAVES)[0]}
MANY_NODES.update(((0, i), h) for i, h in enumerate(MANY_LEAVES))


def test_readers_get_exact_answers_while_one_thread_appends() -> None:
    # The documented sharing: one thread appends while others read. Whatever
    # size a reader sees, its answers for that size are the node-based ones.
    tree = MerkleTree(MANY_LEAVES[:10])
    failures: list[str] = []
    done = threading.Event()

    def append() -> None:
        try:
            for i, leaf in enumerate(MANY_LEAVES[10:]):
                tree.append(leaf)
                if i % 7 == 0:
                    time.sleep(0)  # let a reader in between two appends
        finally:
            done.set()

    def read(seed: int) -> None:
        step = 0
        while not done.is_set() or step < 3:
            step += 1
            size = tree.size
            index = (seed * 7919 + step * 104_729) % size
            old = 1 + (seed + step * 31) % size
            parts = {node: MANY_NODES[node] for node in root_nodes(size)}
            if tree.root(size) != root_from(parts, size):
                failures.append(f"root({size})")
            if tree.leaf(index) != MANY_LEAVES[index]:
                failures.append(f"leaf({index})")
            if tree.inclusion_proof(index, size) != inclusion_proof_from(MANY_NODES, index, size):
                failures.append(f"inclusion_proof({index}, {size})")
            if tree.consistency_proof(old, size) != consistency_proof_from(MANY_NODES, old, size):
                failures.append(f"consistency_proof({old}, {size})")

    readers = [threading.Thread(target=read, args=(seed,)) for seed in range(4)]
    writer = threading.Thread(target=append)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # threads take turns often, mid-method included
    try:
        for t in readers:
            t.start()
        writer.start()
        for t in [writer, *readers]:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert failures == []
    assert tree.size == MANY
    assert tree.root() == root_from({n: MANY_NODES[n] for n in root_nodes(MANY)}, MANY)
