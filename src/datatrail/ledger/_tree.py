"""An in-memory RFC 9162 Merkle tree: append leaves, read roots and proofs of any past size.

:class:`MerkleTree` keeps the hash of every *perfect* subtree in one Python
list per level: ``level k``, position ``i`` is the node covering leaves
``[i * 2**k, (i + 1) * 2**k)`` (the same ``(level, index)`` naming as the
node-based functions in :mod:`datatrail.ledger._merkle`, which supply the
proof layouts). A node is complete once its last leaf is in and never changes
after that, so a proof for any past size is a handful of list reads plus, at
most, one fold of the right edge. It is for rebuilding a log offline (an
auditor with the leaf hashes of an export) and for tests; the stores keep the
same nodes in tables and use the node-based functions.

It gives exactly what :func:`~datatrail.ledger.root_hash`,
:func:`~datatrail.ledger.inclusion_proof` and
:func:`~datatrail.ledger.consistency_proof` give for the same leaves, and
rejects the same inputs with :class:`~datatrail.errors.ProofError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from threading import Lock

from datatrail.errors import ProofError
from datatrail.ledger._merkle import (
    _EMPTY_ROOT,
    _NODE_PREFIX,
    HASH_SIZE,
    _check_consistency_args,
    _check_inclusion_args,
    _fold_joined,
    _hash,
    _hashes,
    _inclusion_top,
    _int,
    _parents,
)

__all__ = ["MerkleTree"]

_LEVELS = 64
"""Levels kept: 2**63 leaf hashes would not fit in any memory."""

_TOPS = 4096
"""Upper path parts kept (at most 64 per tree size asked about); about a megabyte when full."""

_CLIMB = 16
"""Up to this many new leaves, completing their ancestors leaf by leaf beats slicing each level."""


def _climb(levels: list[list[bytes]], at: int) -> None:
    """Add the nodes that leaf ``at`` completes, every leaf before it being done."""
    node, level = levels[0][at], 0
    prefix = _NODE_PREFIX
    while at & 1:  # a right child: its parent is complete now
        h = prefix.copy()
        h.update(levels[level][at - 1])
        h.update(node)
        node = h.digest()
        level += 1
        at >>= 1
        levels[level].append(node)


class MerkleTree:
    """An append-only RFC 9162 Merkle tree held in memory.

    ``MerkleTree(leaf_hashes)`` starts from the given leaf hashes (each
    ``SHA-256(0x00 || entry)``, as :func:`~datatrail.ledger.leaf_hash` makes
    them; 32 bytes). :meth:`append` and :meth:`extend` add more;
    :meth:`root`, :meth:`inclusion_proof` and :meth:`consistency_proof` answer
    for the current size or any earlier one, so one tree serves every
    checkpoint a log has issued.

    Appending only files the leaf hashes; the interior nodes above them are
    hashed on the next read that needs them, a level at a time over
    everything appended since (one tight loop per level instead of a few
    hashes per leaf), so a thousand appends cost what one
    :meth:`extend` of a thousand does. That catching-up runs under a lock,
    so any number of threads may read. Appending is not synchronised: one
    thread appends, or guard the tree with a lock.
    """

    __slots__ = ("_hashed", "_last_root", "_leaves", "_levels", "_lock", "_size", "_tops")

    def __init__(self, leaf_hashes: Sequence[bytes] = ()) -> None:
        # One list per level a tree in memory can reach, made up front so
        # that hashing never has to ask whether the next level exists.
        self._levels: list[list[bytes]] = [[] for _ in range(_LEVELS)]
        self._leaves = self._levels[0]  # level 0, without the indexing on every append
        self._size = 0
        self._hashed = 0  # leaves whose completed ancestors are all in _levels
        self._lock = Lock()
        self._tops: dict[int, list[bytes]] = {}  # see _path
        # A root never changes once its leaves are in: asking again is a lookup.
        self._last_root: tuple[int, bytes] = (0, _EMPTY_ROOT)
        self.extend(leaf_hashes)

    def __repr__(self) -> str:
        return f"MerkleTree(size={self._size})"

    def __len__(self) -> int:
        return self._size

    @property
    def size(self) -> int:
        """The number of leaves."""
        return self._size

    # -- growing --------------------------------------------------------------

    def append(self, leaf_hash: bytes) -> int:
        """Add one leaf hash; returns its index (counting from 0)."""
        if type(leaf_hash) is not bytes or len(leaf_hash) != HASH_SIZE:
            _hash(leaf_hash, "leaf hash")
        index = self._size
        self._leaves.append(leaf_hash)
        self._size = index + 1
        return index

    def extend(self, leaf_hashes: Sequence[bytes]) -> int:
        """Add leaf hashes in order; returns the new size.

        Every hash is checked before any is added, so a bad one leaves the
        tree as it was.
        """
        leaves = _hashes(leaf_hashes, "leaf hashes")
        self._leaves.extend(leaves)
        self._size += len(leaves)
        return self._size

    # -- reading ----------------------------------------------------------------

    def leaf(self, index: int) -> bytes:
        """The leaf hash at ``index``."""
        if not (type(index) is int and 0 <= index < self._size):
            index = _int(index, "leaf index")
            raise ProofError(f"leaf index {index} is not in a tree of {self._size} leaves")
        return self._leaves[index]

    def root(self, size: int | None = None) -> bytes:
        """The tree head of the first ``size`` leaves (default: all); ``SHA-256("")`` for 0."""
        size = self._size if size is None else self._past_size(_int(size, "tree size"))
        if not size:
            return _EMPTY_ROOT
        last_size, last_root = self._last_root
        if size == last_size:
            return last_root
        if self._hashed < size:
            self._catch_up()
        # The right fold of the tree's perfect parts, one per set bit of
        # ``size``, smallest first; the part at ``level`` is node
        # ``(size >> level) - 1`` there.
        levels = self._levels
        level = (size & -size).bit_length() - 1
        rest = size >> level
        root = levels[level][rest - 1]
        prefix = _NODE_PREFIX
        while rest := rest >> 1:
            level += 1
            if rest & 1:
                h = prefix.copy()
                h.update(levels[level][rest - 1])
                h.update(root)
                root = h.digest()
        self._last_root = (size, root)
        return root

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The inclusion proof of leaf ``index`` in the tree of the first ``size`` leaves.

        ``size`` defaults to the whole tree. The same hashes as
        :func:`~datatrail.ledger.inclusion_proof` on those leaves; check it
        with :func:`~datatrail.ledger.verify_inclusion`.
        """
        n = self._size if size is None else size
        if not (type(index) is int and type(n) is int and 0 <= index < n <= self._size):
            index, n = _check_inclusion_args(index, n)
            self._past_size(n)
        if self._hashed < n:
            self._catch_up()
        return self._path(index, n, 0)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """The consistency proof from the first ``old_size`` leaves to the first ``new_size``.

        ``new_size`` defaults to the whole tree. The same hashes as
        :func:`~datatrail.ledger.consistency_proof` on those leaves; check it
        with :func:`~datatrail.ledger.verify_consistency`. Empty for equal
        sizes; an ``old_size`` of 0 is refused, as there is nothing to prove.
        """
        m = old_size
        n = self._size if new_size is None else new_size
        if not (type(m) is int and type(n) is int and 0 < m <= n <= self._size):
            m, n = _check_consistency_args(m, n)
            self._past_size(n)
        if m == n:
            return []
        if self._hashed < n:
            self._catch_up()
        # RFC 9162 §2.1.4's proof is the audit path of the old tree's last
        # leaf in the new tree, from the level of the old tree's smallest
        # perfect part up: below it the path only repeats what that part
        # covers. The part itself goes first unless it is the whole old tree,
        # whose root the verifier already holds.
        shift = (m & -m).bit_length() - 1
        path = self._path(m - 1, n, shift)
        if m != 1 << shift:
            path.insert(0, self._levels[shift][(m - 1) >> shift])
        return path

    def _path(self, index: int, size: int, start: int) -> list[bytes]:
        """The audit path of leaf ``index`` in the tree of ``size``, from level ``start`` up.

        Below the level where ``index`` and ``size - 1`` part ways the path
        climbs a perfect tree: the sibling at level ``k`` is node
        ``(index >> k) ^ 1``. The rest, from that level up, is the same for
        every index that parts ways there (see :func:`_inclusion_top`), and
        its nodes never change once complete, so its hashes, right edge
        folded, are kept per ``(size, level)``.
        """
        levels = self._levels
        inner = (index ^ (size - 1)).bit_length()
        path = [levels[k][(index >> k) ^ 1] for k in range(start, inner - 1)]
        key = size << 7 | inner
        upper = self._tops.get(key)
        if upper is None:
            top, fold = _inclusion_top(size, inner)
            upper = [levels[level][i] for level, i in top]
            if fold > 1:  # the right sibling is cut short by the tree's edge
                upper[:fold] = [_fold_joined(b"".join(upper[:fold]))]
            if len(self._tops) >= _TOPS:
                self._tops.clear()
            self._tops[key] = upper
        path += upper
        return path

    # -- helpers ------------------------------------------------------------------

    def _past_size(self, size: int) -> int:
        if size > self._size:
            raise ProofError(
                f"tree size {size} is larger than the tree, which has {self._size} leaves"
            )
        return size

    def _catch_up(self) -> None:
        """Hash the interior nodes that the leaves appended since the last read complete."""
        with self._lock:
            levels = self._levels
            hashed, size = self._hashed, len(levels[0])
            if size - hashed <= _CLIMB:
                for at in range(hashed, size):
                    _climb(levels, at)
            else:
                level = 0
                while True:
                    below = levels[level]
                    # The first node above that the new leaves change, at an even
                    # position: its left child may be older, and is in ``below``.
                    start = (hashed >> level) & ~1
                    if len(below) - start < 2:
                        break
                    level += 1
                    levels[level].extend(_parents(below[start:]))
            self._hashed = size
