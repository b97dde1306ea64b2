"""RFC 9162 Merkle hashing and proofs: known answers, conformance vectors, properties."""

from __future__ import annotations

import base64
import contextlib
import json
import re
from pathlib import Path
from typing import Any

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import datatrail.ledger as ledger
from datatrail.errors import LedgerError, ProofError
from datatrail.ledger import (
    append_nodes,
    consistency_nodes,
    consistency_proof,
    consistency_proof_from,
    frontier_nodes,
    inclusion_nodes,
    inclusion_proof,
    inclusion_proof_from,
    leaf_hash,
    node_hash,
    root_from,
    root_from_frontier,
    root_hash,
    root_nodes,
    verify_consistency,
    verify_inclusion,
)

# Only to name the vector files at collection time; the tests read them via `testdata`.
_MERKLE_DIR = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "merkle" / "testdata"


def _vector_files(kind: str) -> list[str]:
    base = _MERKLE_DIR / kind
    return sorted(str(p.relative_to(_MERKLE_DIR)) for p in base.rglob("*.json"))


INCLUSION_FILES = _vector_files("inclusion")
CONSISTENCY_FILES = _vector_files("consistency")

# Vectors we reject on purpose although transparency-dev accepts them. The Go
# verifier never checks hash lengths when the sizes are equal; we require every
# hash to be 32 bytes, so 12-byte "roots" are malformed input here.
STRICTER_THAN_GO = {
    "consistency/additional/sizes-are-equal-one-and-proof-is-empty.json": "12-byte roots",
}

MAX_LEAVES = 300
LEAVES = [leaf_hash(b"event %d" % i) for i in range(MAX_LEAVES)]
ROOTS = [root_hash(LEAVES[:n]) for n in range(MAX_LEAVES + 1)]


def _all_nodes() -> dict[tuple[int, int], bytes]:
    completed, _ = append_nodes([], 0, LEAVES)
    nodes = {(level, index): h for level, index, h in completed}
    nodes.update(((0, i), h) for i, h in enumerate(LEAVES))
    return nodes


NODES = _all_nodes()


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def _load(testdata: Path, rel: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((testdata / "merkle" / "testdata" / rel).read_text())
    return data


def _flip(value: bytes, bit: int) -> bytes:
    out = bytearray(value)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# -- public surface ---------------------------------------------------------------


def test_public_api_is_pinned() -> None:
    assert ledger.__all__ == [
        "HASH_SIZE",
        "SIGNING_KEY_FILE",
        "VERIFIER_KEY_FILE",
        "Checkpoint",
        "CheckpointBinding",
        "InsecureKeyFileWarning",
        "MerkleTree",
        "NoteSignature",
        "NoteText",
        "Signer",
        "Verifier",
        "append_nodes",
        "consistency_nodes",
        "consistency_proof",
        "consistency_proof_from",
        "frontier_nodes",
        "generate_keypair",
        "inclusion_nodes",
        "inclusion_proof",
        "inclusion_proof_from",
        "leaf_hash",
        "load_signer",
        "load_verifier",
        "migrations_digest",
        "node_hash",
        "open_checkpoint",
        "open_note",
        "parse_signer_key",
        "root_from",
        "root_from_frontier",
        "root_hash",
        "root_nodes",
        "sign_checkpoint",
        "sign_note",
        "signer_key_text",
        "verify_consistency",
        "verify_inclusion",
    ]

    def isort_style(name: str) -> tuple[int, str]:
        kind = 0 if name.isupper() else 1 if name[0].isupper() else 2
        return kind, name

    assert ledger.__all__ == sorted(ledger.__all__, key=isort_style)
    assert all(getattr(ledger, name) is not None for name in ledger.__all__)


def test_proof_error_is_a_value_error_and_a_ledger_error() -> None:
    assert issubclass(ProofError, ValueError)
    assert issubclass(ProofError, LedgerError)


# -- known answers ------------------------------------------------------------------


def test_rfc6962_known_answers(testdata: Path) -> None:
    answers = json.loads((testdata / "hashes.json").read_text())["rfc6962"]
    assert answers, "hashes.json has no rfc6962 answers"
    for key, want in answers.items():
        if key == "empty_tree_root":
            got = root_hash([])
        elif m := re.fullmatch(r'leaf_hash\("(.*)"\)', key):
            got = leaf_hash(m[1].encode())
        elif m := re.fullmatch(r'children\("(.*)","(.*)"\)', key):
            got = node_hash(m[1].encode(), m[2].encode())
        else:
            pytest.fail(f"unknown known-answer key {key!r} in hashes.json")
        assert got.hex() == want, key


def test_blake3_known_answers(testdata: Path) -> None:
    answers = json.loads((testdata / "hashes.json").read_text())["blake3"]
    assert answers
    for text, want in answers.items():
        assert blake3.blake3(text.encode()).hexdigest() == want


def test_small_trees_have_the_rfc_shape() -> None:
    a, b, c = LEAVES[:3]
    assert root_hash([a]) == a
    assert root_hash([a, b]) == node_hash(a, b)
    assert root_hash([a, b, c]) == node_hash(node_hash(a, b), c)


# -- conformance vectors (transparency-dev/merkle) --------------------------------


def test_merkle_vectors_are_present(testdata: Path) -> None:
    assert (testdata / "merkle" / "testdata" / "inclusion").is_dir()
    assert len(INCLUSION_FILES) > 50
    assert len(CONSISTENCY_FILES) > 50


def _accepts(check: Any) -> bool:
    try:
        return bool(check())
    except ProofError:
        return False


@pytest.mark.parametrize("rel", INCLUSION_FILES)
def test_inclusion_vector(testdata: Path, rel: str) -> None:
    v = _load(testdata, rel)
    proof = [_b64(p) for p in v["proof"] or []]  # Go writes an empty proof as null
    ok = _accepts(
        lambda: verify_inclusion(
            _b64(v["leafHash"]), v["leafIdx"], v["treeSize"], proof, _b64(v["root"])
        )
    )
    assert ok is not v["wantErr"], v["desc"]


@pytest.mark.parametrize("rel", CONSISTENCY_FILES)
def test_consistency_vector(testdata: Path, rel: str) -> None:
    v = _load(testdata, rel)
    proof = [_b64(p) for p in v["proof"] or []]

    def check() -> bool:
        return verify_consistency(v["size1"], v["size2"], _b64(v["root1"]), _b64(v["root2"]), proof)

    if rel in STRICTER_THAN_GO:
        with pytest.raises(ProofError, match="32 bytes"):
            check()
        return
    assert _accepts(check) is not v["wantErr"], v["desc"]


def test_equal_sizes_with_equal_32_byte_roots_and_no_proof_are_consistent() -> None:
    assert verify_consistency(7, 7, ROOTS[7], ROOTS[7], []) is True
    assert verify_consistency(7, 7, ROOTS[7], ROOTS[6], []) is False


# -- edge cases rejected cleanly ------------------------------------------------


def test_inclusion_proof_rejects_index_outside_the_tree() -> None:
    with pytest.raises(ProofError, match="not in a tree of 5"):
        inclusion_proof(LEAVES[:5], 5)
    with pytest.raises(ProofError, match="not in a tree of 5"):
        verify_inclusion(LEAVES[5], 5, 5, [], ROOTS[5])


def test_inclusion_in_an_empty_tree_is_malformed() -> None:
    with pytest.raises(ProofError, match="tree size"):
        inclusion_proof([], 0)
    with pytest.raises(ProofError, match="tree size"):
        verify_inclusion(LEAVES[0], 0, 0, [], ROOTS[0])


def test_consistency_from_the_empty_tree_is_malformed() -> None:
    with pytest.raises(ProofError, match="old tree size"):
        consistency_proof(LEAVES[:4], 0)
    with pytest.raises(ProofError, match="old tree size"):
        verify_consistency(0, 4, ROOTS[0], ROOTS[4], [])


def test_consistency_with_old_size_above_new_size_is_malformed() -> None:
    with pytest.raises(ProofError, match="larger than"):
        verify_consistency(5, 4, ROOTS[5], ROOTS[4], [])
    with pytest.raises(ProofError, match="larger than"):
        consistency_nodes(5, 4)


def test_consistency_between_equal_sizes_needs_an_empty_proof() -> None:
    assert consistency_proof(LEAVES[:6], 6) == []
    with pytest.raises(ProofError, match="equal sizes"):
        verify_consistency(6, 6, ROOTS[6], ROOTS[6], [ROOTS[6]])


@pytest.mark.parametrize("bad", [b"", b"\x00" * 31, b"\x00" * 33])
def test_hashes_that_are_not_32_bytes_are_malformed(bad: bytes) -> None:
    proof = inclusion_proof(LEAVES[:8], 3)
    with pytest.raises(ProofError, match="32 bytes"):
        verify_inclusion(bad, 3, 8, proof, ROOTS[8])
    with pytest.raises(ProofError, match="32 bytes"):
        verify_inclusion(LEAVES[3], 3, 8, proof, bad)
    with pytest.raises(ProofError, match="32 bytes"):
        verify_inclusion(LEAVES[3], 3, 8, [bad, *proof[1:]], ROOTS[8])
    with pytest.raises(ProofError, match="32 bytes"):
        root_hash([*LEAVES[:3], bad])


def test_proofs_of_the_wrong_length_are_malformed() -> None:
    proof = inclusion_proof(LEAVES[:8], 3)
    with pytest.raises(ProofError, match="has 3 hashes, got 2"):
        verify_inclusion(LEAVES[3], 3, 8, proof[:-1], ROOTS[8])
    with pytest.raises(ProofError, match="has 3 hashes, got 4"):
        verify_inclusion(LEAVES[3], 3, 8, [*proof, ROOTS[8]], ROOTS[8])
    cproof = consistency_proof(LEAVES[:8], 3)
    with pytest.raises(ProofError, match="from 3 to 8"):
        verify_consistency(3, 8, ROOTS[3], ROOTS[8], cproof[1:])


def test_node_based_proofs_name_the_missing_node() -> None:
    with pytest.raises(ProofError, match=r"\(level 0, index 1\) is missing"):
        inclusion_proof_from({}, 0, 2)
    with pytest.raises(ProofError, match=r"\(level 0, index 4\) is missing"):
        consistency_proof_from({}, 4, 5)
    with pytest.raises(ProofError, match=r"\(level 2, index 0\) is missing"):
        root_from({}, 5)


@pytest.mark.parametrize(("index", "size"), [(0, 2), (2, 7), (6, 7), (100, 300)])
def test_node_based_proofs_reject_a_malformed_node(index: int, size: int) -> None:
    for node in inclusion_nodes(index, size):
        bad = {n: NODES[n] for n in inclusion_nodes(index, size)}
        bad[node] = bad[node][:31]
        level, idx = node
        with pytest.raises(ProofError, match=rf"\(level {level}, index {idx}\) must be 32 bytes"):
            inclusion_proof_from(bad, index, size)


def test_node_based_proofs_need_a_mapping() -> None:
    with pytest.raises(ProofError, match="must be a mapping"):
        inclusion_proof_from([], 0, 2)  # type: ignore[arg-type]


GARBAGE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(max_value=-1),
    st.floats(),
    st.text(max_size=40),
    st.binary(max_size=40),
    st.lists(st.one_of(st.none(), st.binary(max_size=40), st.integers()), max_size=4),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
FIELD = st.one_of(GARBAGE, st.sampled_from([LEAVES[0], ROOTS[5], 0, 3, 5, []]))


@given(FIELD, FIELD, FIELD, FIELD, FIELD)
@settings(max_examples=200, deadline=None)
def test_verify_inclusion_on_garbage_returns_a_bool_or_raises_proof_error(
    a: Any, b: Any, c: Any, d: Any, e: Any
) -> None:
    with contextlib.suppress(ProofError):
        assert isinstance(verify_inclusion(a, b, c, d, e), bool)


@given(FIELD, FIELD, FIELD, FIELD, FIELD)
@settings(max_examples=200, deadline=None)
def test_verify_consistency_on_garbage_returns_a_bool_or_raises_proof_error(
    a: Any, b: Any, c: Any, d: Any, e: Any
) -> None:
    with contextlib.suppress(ProofError):
        assert isinstance(verify_consistency(a, b, c, d, e), bool)


@given(GARBAGE, GARBAGE)
@settings(max_examples=100, deadline=None)
def test_node_functions_on_garbage_raise_proof_error(a: Any, b: Any) -> None:
    for call in (
        lambda: inclusion_nodes(a, b),
        lambda: consistency_nodes(a, b),
        lambda: root_nodes(a),
        lambda: append_nodes(a, 1, [LEAVES[0]]),
        lambda: inclusion_proof(a, 0),
        lambda: leaf_hash(a) if not isinstance(a, bytes) else None,
    ):
        with contextlib.suppress(ProofError):
            call()


def test_huge_trees_need_no_recursion_and_few_nodes() -> None:
    size = 2**62 + 12345
    assert len(inclusion_nodes(size - 1, size)) < 2 * 63
    assert len(consistency_nodes(size // 3, size)) < 2 * 63
    proof = [LEAVES[0]] * 62
    assert verify_inclusion(LEAVES[1], 0, 2**62, proof, ROOTS[1]) is False


# -- properties -------------------------------------------------------------------

SIZE = st.integers(min_value=1, max_value=MAX_LEAVES)


@st.composite
def leaf_in_tree(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(SIZE)
    return draw(st.integers(min_value=0, max_value=size - 1)), size


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    new = draw(SIZE)
    return draw(st.integers(min_value=1, max_value=new)), new


@given(leaf_in_tree())
@settings(max_examples=150, deadline=None)
def test_generated_inclusion_proofs_verify(case: tuple[int, int]) -> None:
    index, size = case
    proof = inclusion_proof(LEAVES[:size], index)
    assert verify_inclusion(LEAVES[index], index, size, proof, ROOTS[size])


@given(two_sizes())
@settings(max_examples=150, deadline=None)
def test_generated_consistency_proofs_verify(case: tuple[int, int]) -> None:
    old, new = case
    proof = consistency_proof(LEAVES[:new], old)
    assert verify_consistency(old, new, ROOTS[old], ROOTS[new], proof)


@given(leaf_in_tree(), st.data())
@settings(max_examples=150, deadline=None)
def test_flipping_any_bit_breaks_an_inclusion_proof(case: tuple[int, int], data: Any) -> None:
    index, size = case
    proof = inclusion_proof(LEAVES[:size], index)
    target = data.draw(st.integers(min_value=0, max_value=len(proof) + 1), label="target")
    bit = data.draw(st.integers(min_value=0, max_value=255), label="bit")
    leaf, root = LEAVES[index], ROOTS[size]
    if target == len(proof):
        leaf = _flip(leaf, bit)
    elif target == len(proof) + 1:
        root = _flip(root, bit)
    else:
        proof[target] = _flip(proof[target], bit)
    assert verify_inclusion(leaf, index, size, proof, root) is False


@given(two_sizes().filter(lambda c: c[0] < c[1]), st.data())
@settings(max_examples=150, deadline=None)
def test_flipping_any_bit_breaks_a_consistency_proof(case: tuple[int, int], data: Any) -> None:
    old, new = case
    proof = consistency_proof(LEAVES[:new], old)
    target = data.draw(st.integers(min_value=0, max_value=len(proof) + 1), label="target")
    bit = data.draw(st.integers(min_value=0, max_value=255), label="bit")
    old_root, new_root = ROOTS[old], ROOTS[new]
    if target == len(proof):
        old_root = _flip(old_root, bit)
    elif target == len(proof) + 1:
        new_root = _flip(new_root, bit)
    else:
        proof[target] = _flip(proof[target], bit)
    assert verify_consistency(old, new, old_root, new_root, proof) is False


@given(leaf_in_tree())
@settings(max_examples=150, deadline=None)
def test_node_based_inclusion_proof_equals_list_based(case: tuple[int, int]) -> None:
    index, size = case
    wanted = inclusion_nodes(index, size)
    fetched = {node: NODES[node] for node in wanted}
    assert inclusion_proof_from(fetched, index, size) == inclusion_proof(LEAVES[:size], index)
    assert len(wanted) <= 2 * size.bit_length()


@given(leaf_in_tree(), leaf_in_tree(), st.randoms(use_true_random=False))
@settings(max_examples=150, deadline=None)
def test_inclusion_proofs_from_any_fetch_order_and_interleaving_equal_list_based(
    case: tuple[int, int], other: tuple[int, int], rng: Any
) -> None:
    index, size = case
    expected = inclusion_proof(LEAVES[:size], index)
    wanted = inclusion_nodes(index, size)
    shuffled = list(wanted)
    rng.shuffle(shuffled)
    inclusion_nodes(*other)  # another proof named in between
    assert inclusion_proof_from({n: NODES[n] for n in shuffled}, index, size) == expected
    assert inclusion_proof_from(NODES, index, size) == expected  # every node of the tree
    named = inclusion_nodes(index, size)
    named.reverse()  # what a caller does with its copy cannot change the next proof
    named.append((0, 0))
    assert inclusion_proof_from({n: NODES[n] for n in wanted}, index, size) == expected


def test_a_fetch_holding_other_nodes_in_the_named_order_is_not_taken_for_the_answer() -> None:
    wanted = inclusion_nodes(100, 300)
    decoys = [(level, idx + 1) for level, idx in wanted]
    with pytest.raises(ProofError, match="is missing"):
        inclusion_proof_from({n: NODES.get(n, LEAVES[0]) for n in decoys}, 100, 300)


@given(two_sizes())
@settings(max_examples=150, deadline=None)
def test_node_based_consistency_proof_equals_list_based(case: tuple[int, int]) -> None:
    old, new = case
    wanted = consistency_nodes(old, new)
    fetched = {node: NODES[node] for node in wanted}
    assert consistency_proof_from(fetched, old, new) == consistency_proof(LEAVES[:new], old)
    assert len(wanted) <= 2 * new.bit_length()


@given(st.integers(min_value=0, max_value=MAX_LEAVES))
@settings(max_examples=100, deadline=None)
def test_root_of_any_past_size_from_nodes(size: int) -> None:
    fetched = {node: NODES[node] for node in root_nodes(size)}
    assert root_from(fetched, size) == ROOTS[size]


@given(
    st.lists(st.integers(min_value=0, max_value=MAX_LEAVES), max_size=8).map(sorted),
    st.integers(min_value=0, max_value=MAX_LEAVES),
)
@settings(max_examples=100, deadline=None)
def test_append_in_batches_equals_one_big_append(cuts: list[int], end: int) -> None:
    cuts = [c for c in cuts if c <= end]
    frontier: list[bytes] = []
    size = 0
    nodes: list[tuple[int, int, bytes]] = []
    for cut in [*cuts, end]:
        completed, frontier = append_nodes(frontier, size, LEAVES[size:cut])
        nodes.extend(completed)
        size = cut
        assert len(frontier) == len(frontier_nodes(size))
        assert root_from_frontier(frontier, size) == ROOTS[size]
    whole, whole_frontier = append_nodes([], 0, LEAVES[:end])
    assert sorted(nodes) == sorted(whole)
    assert frontier == whole_frontier
    assert all(level >= 1 and NODES[(level, index)] == h for level, index, h in nodes)


def test_append_completes_every_perfect_node() -> None:
    completed, frontier = append_nodes([], 0, LEAVES[:8])
    assert sorted((level, index) for level, index, _ in completed) == [
        (1, 0),
        (1, 1),
        (1, 2),
        (1, 3),
        (2, 0),
        (2, 1),
        (3, 0),
    ]
    assert frontier == [ROOTS[8]]
    assert frontier_nodes(13) == [(3, 0), (2, 2), (0, 12)]


def test_append_rejects_a_frontier_that_does_not_fit_the_size() -> None:
    with pytest.raises(ProofError, match="has 2 frontier hashes, got 1"):
        append_nodes([LEAVES[0]], 3, [LEAVES[3]])
