"""RFC 9162 §2.1 Merkle tree hashing, proofs and their verification.

Two ways in. The list-based functions (:func:`root_hash`, :func:`inclusion_proof`,
:func:`consistency_proof`) take every leaf hash, for tests and small trees. The
node-based functions serve a store that keeps the hash of every *perfect*
subtree, named ``(level, index)``: the node covering leaves
``[index * 2**level, (index + 1) * 2**level)``; level 0 is the leaf hashes.
``*_nodes`` says which nodes a proof needs (O(log n) of them, so one query
fetches them) and ``*_from`` assembles the proof from what was fetched.

Every function here raises :class:`~datatrail.errors.ProofError` (a
``ValueError``) for an input that cannot be a tree, a hash or a proof: a wrong
type, a negative or out-of-range size or index, a hash that is not 32 bytes, a
proof of the wrong length for its sizes. The ``verify_*`` functions return
``False`` only for a well-formed proof that does not prove the claim.
Everything is iterative: no recursion, whatever the tree size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from functools import lru_cache
from itertools import repeat
from operator import itemgetter
from typing import Any

from datatrail.errors import ProofError

__all__ = [
    "HASH_SIZE",
    "append_nodes",
    "consistency_nodes",
    "consistency_proof",
    "consistency_proof_from",
    "frontier_nodes",
    "inclusion_nodes",
    "inclusion_proof",
    "inclusion_proof_from",
    "leaf_hash",
    "node_hash",
    "root_from",
    "root_from_frontier",
    "root_hash",
    "root_nodes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Bytes in every tree hash (SHA-256)."""

NodeId = tuple[int, int]
"""A perfect subtree: ``(level, index)``."""

Layout = tuple[list[NodeId], list[tuple[int, int]]]
"""The nodes a proof needs in proof order, and the runs ``(at, count)`` that fold into one hash.

A run is a subtree cut short by the tree's right edge: not perfect, so not
stored, but the fold of the perfect subtrees it is made of."""

_sha256 = hashlib.sha256
_EMPTY_ROOT = _sha256(b"").digest()
# Copying a context that has already absorbed the prefix is cheaper than
# building a new one per hash (OpenSSL's setup dominates for short inputs).
# Never updated after this line, so sharing them across threads is safe.
_LEAF_PREFIX = _sha256(b"\x00")
_NODE_PREFIX = _sha256(b"\x01")
_BYTES = {bytes}
_HASH_LEN = {HASH_SIZE}


# -- the two RFC 9162 primitives -------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``: the Merkle leaf hash of one entry's bytes."""
    h = _LEAF_PREFIX.copy()
    try:
        h.update(data)
    except (TypeError, BufferError):
        raise ProofError(f"leaf data must be bytes, not {type(data).__name__}") from None
    return h.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``: the hash of an interior node.

    This is the raw primitive and hashes any bytes (the RFC 6962 test vectors
    use short strings); the tree functions insist on 32-byte children.
    """
    try:
        return _sha256(b"\x01" + left + right).digest()
    except TypeError:
        raise ProofError(
            f"node children must be bytes, not {type(left).__name__} and {type(right).__name__}"
        ) from None


# -- input checks -------------------------------------------------------------


def _int(value: Any, what: str, minimum: int = 0) -> int:
    if type(value) is not int:  # bool is an int, and never a size
        raise ProofError(f"{what} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ProofError(f"{what} must be at least {minimum}, got {value}")
    return value


def _hash(value: Any, what: str) -> bytes:
    if type(value) is not bytes:
        raise ProofError(f"{what} must be {HASH_SIZE} bytes, not {type(value).__name__}")
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} must be {HASH_SIZE} bytes (SHA-256), got {len(value)}")
    return value


def _hashes(values: Any, what: str) -> list[bytes]:
    if isinstance(values, str | bytes | bytearray | memoryview) or not isinstance(values, Sequence):
        raise ProofError(f"{what} must be a sequence of hashes, not {type(values).__name__}")
    out = values if type(values) is list else list(values)
    # map() and count() keep the check at C speed for a million leaves.
    n = len(out)
    if list(map(type, out)).count(bytes) != n or list(map(len, out)).count(HASH_SIZE) != n:
        for i, item in enumerate(out):
            _hash(item, f"{what}[{i}]")
    return out


def _split(width: int) -> int:
    """The largest power of two strictly below ``width`` (``width`` >= 2)."""
    return 1 << ((width - 1).bit_length() - 1)


# -- tree shape: which ranges and which perfect nodes -------------------------


def _range_nodes(start: int, end: int) -> list[NodeId]:
    """The perfect subtrees that make up the RFC subtree ``[start, end)``, left to right.

    Every subtree of an RFC 9162 tree starts on a multiple of its largest
    perfect part, so taking the set bits of the width, largest first, works.
    """
    out: list[NodeId] = []
    width = end - start
    while width:
        level = width.bit_length() - 1
        out.append((level, start >> level))
        start += 1 << level
        width -= 1 << level
    return out


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose subtree hashes form the proof, in proof order (bottom up)."""
    lo, hi = 0, size
    out: list[tuple[int, int]] = []
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
    out.reverse()
    return out


def _consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """RFC 9162 §2.1.4.1 SUBPROOF(old_size, D[0:new_size], true) as leaf ranges."""
    lo, hi = 0, new_size
    whole_old_tree = True
    out: list[tuple[int, int]] = []
    while old_size != hi:
        k = _split(hi - lo)
        if old_size - lo <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
            whole_old_tree = False
    out.reverse()
    if not whole_old_tree:
        # The old tree is not a subtree of the new one: its last part goes first.
        out.insert(0, (lo, hi))
    return out


def _check_inclusion_args(index: Any, size: Any) -> tuple[int, int]:
    if type(index) is int and type(size) is int and 0 <= index < size:
        return index, size
    index = _int(index, "leaf index")
    size = _int(size, "tree size", 1)
    if index >= size:
        raise ProofError(f"leaf index {index} is not in a tree of {size} leaves")
    return index, size


def _check_consistency_args(old_size: Any, new_size: Any) -> tuple[int, int]:
    if type(old_size) is int and type(new_size) is int and 0 < old_size <= new_size:
        return old_size, new_size
    old_size = _int(old_size, "old tree size", 1)
    new_size = _int(new_size, "new tree size", 1)
    if old_size > new_size:
        raise ProofError(f"old tree size {old_size} is larger than new tree size {new_size}")
    return old_size, new_size


# -- list-based ----------------------------------------------------------------


def _parents(level: list[bytes]) -> list[bytes]:
    """Hash neighbours pairwise; an odd last node is left out.

    Each child goes into the hash on its own: two ``update`` calls cost less than
    building the 64-byte pair first, an allocation per node.
    """
    pairs = iter(level)
    prefix = _NODE_PREFIX
    out: list[bytes] = []
    for left, right in zip(pairs, pairs, strict=False):
        # ``prefix.copy()`` and ``out.append`` each have a specialised call in
        # CPython 3.11; their bound methods held in locals do not.
        h = prefix.copy()
        h.update(left)
        h.update(right)
        out.append(h.digest())
    return out


def _root(hashes: list[bytes]) -> bytes:
    """Level by level; an odd node out is carried up unchanged, which is RFC 9162's shape."""
    if not hashes:
        return _EMPTY_ROOT
    level = hashes
    while len(level) > 1:
        up = _parents(level)
        if len(level) & 1:
            up.append(level[-1])
        level = up
    return level[0]


def root_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """The RFC 9162 tree head of ``leaf_hashes``; ``SHA-256("")`` for none."""
    return _root(_hashes(leaf_hashes, "leaf hashes"))


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """The inclusion proof (audit path) of leaf ``index`` in the tree of ``leaf_hashes``."""
    leaves = _hashes(leaf_hashes, "leaf hashes")
    index, size = _check_inclusion_args(index, len(leaves))
    return [_root(leaves[a:b]) for a, b in _inclusion_ranges(index, size)]


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """The consistency proof from the first ``old_size`` leaves to all of ``leaf_hashes``."""
    leaves = _hashes(leaf_hashes, "leaf hashes")
    old_size, new_size = _check_consistency_args(old_size, len(leaves))
    return [_root(leaves[a:b]) for a, b in _consistency_ranges(old_size, new_size)]


# -- node-based, for the store ---------------------------------------------------


@lru_cache(maxsize=1024)
def _inclusion_top(size: int, inner: int) -> tuple[tuple[NodeId, ...], int]:
    """The nodes of an inclusion proof from level ``inner - 1`` up, and how many of them fold.

    ``inner`` counts the levels below the one where a leaf index and
    ``size - 1`` part ways. Every index with the same ``inner`` shares its
    bits above that level with ``size - 1`` and has a 0 where ``size - 1``
    has its 1, so this part of the path depends only on ``(size, inner)``:
    cached, a tree size has at most 64 of them. At level ``inner - 1`` the
    sibling is on the right and is the one place the tree's right edge can
    cut a subtree short (then it is the fold of the perfect parts that come
    first here); above it each set bit of the index adds a perfect left sibling.
    """
    last = size - 1
    top: list[NodeId] = []
    fold = 0
    if inner:
        level = inner - 1
        if size & ((1 << level) - 1):
            top = _range_nodes((last >> level) << level, size)
        else:
            top = [(level, last >> level)]
        fold = len(top)
    top += [
        (level, (last >> level) ^ 1)
        for level in range(inner, last.bit_length())
        if last >> level & 1
    ]
    return tuple(top), fold


def _inclusion_layout(index: int, size: int) -> tuple[list[NodeId], int]:
    """The nodes of an inclusion proof, bottom up, and how many nodes from ``inner - 1`` fold.

    Below level ``inner - 1`` the path climbs a perfect tree: the sibling at
    ``level`` is node ``(index >> level) ^ 1``. The rest comes from
    :func:`_inclusion_top`. One list, no tree walk.
    """
    inner = (index ^ (size - 1)).bit_length()
    top, fold = _inclusion_top(size, inner)
    wanted = [(level, (index >> level) ^ 1) for level in range(inner - 1)]
    wanted += top
    return wanted, fold


def _consistency_layout(old_size: int, new_size: int) -> Layout:
    flat: list[NodeId] = []
    folds: list[tuple[int, int]] = []
    for start, end in _consistency_ranges(old_size, new_size):
        width = end - start
        if width & (width - 1):
            parts = _range_nodes(start, end)
            folds.append((len(flat), len(parts)))
            flat += parts
        else:
            level = width.bit_length() - 1
            flat.append((level, start >> level))
    return flat, folds


def _fetch(nodes: Mapping[NodeId, bytes], wanted: list[NodeId]) -> list[bytes]:
    """Look the nodes up at C speed; only a failing check builds an error message."""
    values: list[Any]
    if type(nodes) is dict:
        if len(nodes) == len(wanted) and list(nodes) == wanted:
            # Exactly the nodes named, in the order named (what a store builds
            # from one fetch): its values are the answer, no lookups needed.
            values = list(nodes.values())
        elif len(wanted) > 1:
            try:  # every lookup in one C loop, without a method call each
                values = list(itemgetter(*wanted)(nodes))
            except KeyError:
                values = list(map(nodes.get, wanted))  # the check below names the missing one
        else:
            values = list(map(nodes.get, wanted))
    elif isinstance(nodes, Mapping):
        values = list(map(nodes.get, wanted))
    else:
        raise ProofError(f"nodes must be a mapping, not {type(nodes).__name__}")
    if values and (set(map(type, values)) != _BYTES or set(map(len, values)) != _HASH_LEN):
        for (level, index), value in zip(wanted, values, strict=True):
            if value is None:
                raise ProofError(
                    f"tree node (level {level}, index {index}) is missing; "
                    "fetch every node the matching *_nodes() function names"
                )
            _hash(value, f"tree node (level {level}, index {index})")
    return values


def _fold(parts: list[bytes]) -> bytes:
    """Hash perfect parts (left to right) into their RFC subtree: a right fold."""
    if len(parts) == 1:
        return parts[0]
    return _fold_joined(b"".join(parts))


@lru_cache(maxsize=512)
def _fold_joined(joined: bytes) -> bytes:
    # Memoised on the parts' bytes, so always exact: nearly every proof of a
    # given tree size folds the same few right-edge subtrees.
    acc = joined[-HASH_SIZE:]
    for end in range(len(joined) - HASH_SIZE, 0, -HASH_SIZE):
        acc = _sha256(b"\x01" + joined[end - HASH_SIZE : end] + acc).digest()
    return acc


def _assemble(nodes: Mapping[NodeId, bytes], layout: Layout) -> list[bytes]:
    wanted, folds = layout
    values = _fetch(nodes, wanted)
    for at, count in reversed(folds):
        values[at : at + count] = [_fold(values[at : at + count])]
    return values


def root_nodes(size: int) -> list[NodeId]:
    """The perfect nodes, left to right, whose hashes give the root of a tree of ``size``."""
    return _range_nodes(0, _int(size, "tree size"))


def frontier_nodes(size: int) -> list[NodeId]:
    """The frontier of a tree of ``size``: one perfect node per set bit, largest first.

    The same nodes as :func:`root_nodes`; named for what ``append_nodes`` needs.
    """
    return root_nodes(size)


def root_from(nodes: Mapping[NodeId, bytes], size: int) -> bytes:
    """The root of the tree of ``size`` leaves from the nodes :func:`root_nodes` named."""
    parts = root_nodes(size)
    return _fold(_fetch(nodes, parts)) if parts else _EMPTY_ROOT


def root_from_frontier(frontier: Sequence[bytes], size: int) -> bytes:
    """The root of a tree of ``size`` from its frontier hashes (largest subtree first)."""
    parts = frontier_nodes(size)
    hashes = _hashes(frontier, "frontier")
    if len(hashes) != len(parts):
        raise ProofError(
            f"a tree of {size} leaves has {len(parts)} frontier hashes, got {len(hashes)}"
        )
    return _fold(hashes) if hashes else _EMPTY_ROOT


_last_inclusion: tuple[int, int, list[NodeId], int] = (-1, -1, [], 0)
"""The layout :func:`inclusion_nodes` computed last: ``(index, size, nodes, fold)``.

A store names the nodes, fetches them and assembles with the same arguments,
so the assembly reuses it. It is a pure function of ``(index, size)`` and is
replaced whole, never mutated (callers get a copy), so threads may share it.
"""


def inclusion_nodes(index: int, size: int) -> list[NodeId]:
    """The perfect nodes an inclusion proof of leaf ``index`` in a tree of ``size`` needs.

    At most about ``2 * log2(size)`` of them, so a store fetches them in one
    query. Level-0 nodes are leaf hashes.
    """
    global _last_inclusion
    if not (type(index) is int and type(size) is int and 0 <= index < size):
        index, size = _check_inclusion_args(index, size)
    wanted, fold = _inclusion_layout(index, size)
    _last_inclusion = (index, size, wanted, fold)
    return wanted.copy()


def inclusion_proof_from(nodes: Mapping[NodeId, bytes], index: int, size: int) -> list[bytes]:
    """Assemble the inclusion proof from the nodes :func:`inclusion_nodes` named."""
    if not (type(index) is int and type(size) is int and 0 <= index < size):
        index, size = _check_inclusion_args(index, size)
    last = _last_inclusion
    if last[0] == index and last[1] == size:
        wanted, fold = last[2], last[3]
    else:
        wanted, fold = _inclusion_layout(index, size)
    values = _fetch(nodes, wanted)
    if fold > 1:
        at = (index ^ (size - 1)).bit_length() - 1
        values[at : at + fold] = [_fold_joined(b"".join(values[at : at + fold]))]
    return values


def consistency_nodes(old_size: int, new_size: int) -> list[NodeId]:
    """The perfect nodes a consistency proof from ``old_size`` to ``new_size`` needs."""
    old_size, new_size = _check_consistency_args(old_size, new_size)
    return _consistency_layout(old_size, new_size)[0]


def consistency_proof_from(
    nodes: Mapping[NodeId, bytes], old_size: int, new_size: int
) -> list[bytes]:
    """Assemble the consistency proof from the nodes :func:`consistency_nodes` named."""
    old_size, new_size = _check_consistency_args(old_size, new_size)
    return _assemble(nodes, _consistency_layout(old_size, new_size))


def append_nodes(
    frontier: Sequence[bytes], size: int, new_leaves: Sequence[bytes]
) -> tuple[list[tuple[int, int, bytes]], list[bytes]]:
    """Append ``new_leaves`` to a tree of ``size`` leaves whose frontier is ``frontier``.

    ``frontier`` holds the hashes of the nodes :func:`frontier_nodes` names
    for ``size``. Returns every perfect node of level >= 1 that the new leaves
    complete, as ``(level, index, hash)`` (level 0 is ``new_leaves`` itself),
    and the frontier of the grown tree. The work is done a level at a time,
    so a batch costs one list comprehension per level.
    """
    size = _int(size, "tree size")
    old_parts = frontier_nodes(size)
    old_hashes = _hashes(frontier, "frontier")
    if len(old_hashes) != len(old_parts):
        raise ProofError(
            f"a tree of {size} leaves has {len(old_parts)} frontier hashes, got {len(old_hashes)}"
        )
    old = {level: h for (level, _), h in zip(old_parts, old_hashes, strict=True)}
    leaves = _hashes(new_leaves, "new leaves")
    new_size = size + len(leaves)

    completed: list[tuple[int, int, bytes]] = []
    last: dict[int, tuple[int, bytes]] = {}  # level -> (index, hash) of its rightmost new node
    current = leaves
    level = 0
    while current:
        first = size >> level  # index of the first node on this level the batch completes
        last[level] = (first + len(current) - 1, current[-1])
        if first & 1:
            # Its left sibling was complete before: the old frontier holds it.
            current = [old[level], *current]
            first -= 1
        parents = _parents(current)
        level += 1
        completed.extend(
            zip(repeat(level), range(first >> 1, (first >> 1) + len(parents)), parents)
        )
        current = parents

    new_frontier = []
    for lvl, idx in frontier_nodes(new_size):
        mine = last.get(lvl)
        new_frontier.append(mine[1] if mine is not None and mine[0] == idx else old[lvl])
    return completed, new_frontier


# -- verification (RFC 9162 §2.1.3.2 and §2.1.4.2) -----------------------------


def _inclusion_length(index: int, size: int) -> int:
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether ``proof`` shows ``leaf_hash`` at ``index`` in the tree ``root`` of ``tree_size``.

    Returns ``False`` when the hashes do not match. Raises ``ProofError`` when
    the inputs cannot form an inclusion proof: wrong types, a hash that is not
    32 bytes, ``tree_size`` < 1, ``index`` >= ``tree_size``, or a proof whose
    length is not the one the index and size call for.
    """
    leaf = _hash(leaf_hash, "leaf hash")
    index, tree_size = _check_inclusion_args(index, tree_size)
    path = _hashes(proof, "inclusion proof")
    expected_root = _hash(root, "root hash")
    want = _inclusion_length(index, tree_size)
    if len(path) != want:
        raise ProofError(
            f"an inclusion proof for leaf {index} in a tree of {tree_size} has {want} hashes, "
            f"got {len(path)}"
        )
    fn, sn, acc = index, tree_size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            acc = _sha256(b"\x01" + p + acc).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            acc = _sha256(b"\x01" + acc + p).digest()
        fn >>= 1
        sn >>= 1
    return sn == 0 and acc == expected_root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether ``proof`` shows the tree ``new_root`` extends the tree ``old_root``.

    Equal sizes need an empty proof and equal roots. Returns ``False`` when the
    hashes do not match. Raises ``ProofError`` when the inputs cannot form a
    consistency proof: wrong types, a hash that is not 32 bytes, ``old_size``
    < 1 (every tree extends the empty one, so there is nothing to prove),
    ``old_size`` > ``new_size``, or a proof of the wrong length for the sizes
    (including a non-empty proof for equal sizes).
    """
    old_size, new_size = _check_consistency_args(old_size, new_size)
    first = _hash(old_root, "old root")
    second = _hash(new_root, "new root")
    path = _hashes(proof, "consistency proof")
    if old_size == new_size:
        if path:
            raise ProofError(
                f"a consistency proof between equal sizes is empty, got {len(path)} hashes"
            )
        return first == second

    shift = (old_size & -old_size).bit_length() - 1  # trailing zero bits of old_size
    inner = ((old_size - 1) ^ (new_size - 1)).bit_length()
    border = ((old_size - 1) >> inner).bit_count()
    old_is_perfect = old_size == 1 << shift
    want = (0 if old_is_perfect else 1) + inner - shift + border
    if len(path) != want:
        raise ProofError(
            f"a consistency proof from {old_size} to {new_size} has {want} hashes, got {len(path)}"
        )
    if old_is_perfect:
        path = [first, *path]
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = _sha256(b"\x01" + c + fr).digest()
            sr = _sha256(b"\x01" + c + sr).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = _sha256(b"\x01" + sr + c).digest()
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first and sr == second
