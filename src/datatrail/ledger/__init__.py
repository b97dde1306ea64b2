"""The tamper-evident ledger: RFC 9162 Merkle tree, proofs, signed checkpoints.

This module is public so that an outside auditor can check datatrail's log
with nothing but the verifier key: :func:`verify_inclusion`,
:func:`verify_consistency` and :func:`open_checkpoint` need no store.

- Hashing and proofs follow RFC 9162 §2.1 exactly (SHA-256, ``0x00`` leaf and
  ``0x01`` node prefixes, ``SHA-256("")`` for the empty tree).
- Checkpoints are C2SP ``tlog-checkpoint`` bodies in C2SP ``signed-note``
  envelopes with Ed25519 keys; the key files use the same text formats.
  Datatrail's own checkpoints add three extension lines (time, predecessor,
  schema steps) that :class:`CheckpointBinding` reads and writes.
- Bad inputs raise :class:`~datatrail.errors.ProofError`,
  :class:`~datatrail.errors.SignatureError` or
  :class:`~datatrail.errors.KeyFileError`, all :class:`~datatrail.errors.LedgerError`.
"""

from datatrail.ledger._binding import CheckpointBinding, migrations_digest
from datatrail.ledger._keys import (
    SIGNING_KEY_FILE,
    VERIFIER_KEY_FILE,
    InsecureKeyFileWarning,
    generate_keypair,
    load_signer,
    load_verifier,
    parse_signer_key,
    signer_key_text,
)
from datatrail.ledger._merkle import (
    HASH_SIZE,
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
from datatrail.ledger._note import (
    Checkpoint,
    NoteSignature,
    NoteText,
    Signer,
    Verifier,
    open_checkpoint,
    open_note,
    sign_checkpoint,
    sign_note,
)
from datatrail.ledger._tree import MerkleTree

__all__ = [
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
