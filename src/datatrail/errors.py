"""The one exception tree of datatrail.

Every error datatrail raises on purpose derives from :class:`DatatrailError`.
Where a builtin fits, the error also derives from it, so callers that already
catch ``ValueError`` or ``PermissionError`` keep working::

    DatatrailError
    ├── ConfigError                    bad configuration or environment
    ├── UsageError (TypeError)         the API was called the wrong way
    ├── InvalidEvent (ValueError)      an event that does not decode or validate
    ├── NodeNotFound (LookupError)     an unknown node id (run, artifact, dataset, job)
    ├── InvalidNodeId (ValueError)     a node id that does not parse
    ├── StoreError                     the store cannot be opened or written
    │   ├── NotAStore                  the file or database is not a datatrail store
    │   └── SchemaTooNew               the store was written by a newer datatrail
    ├── LedgerError                    Merkle tree and checkpoint problems
    │   ├── ProofError (ValueError)    a proof or its inputs are malformed
    │   ├── SignatureError             a signed note does not verify
    │   └── KeyFileError (ValueError)  a key file is missing or malformed
    ├── HashingError (ValueError)      content that cannot be read to be hashed
    ├── DocumentError (ValueError)     a YAML document that does not validate (file, line, column)
    │   ├── PolicyError                a policy document
    │   └── ContractError              a contracts document
    ├── PolicyDenied (PermissionError) governance refused an action; carries the decision
    └── ContractViolation (ValueError) an output breaks its dataset's contract (mode ``block``)

Each error carries a message that says what was wrong and what to do. Errors
that can reach HTTP carry a ``status``.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ContractError",
    "ContractViolation",
    "DatatrailError",
    "DocumentError",
    "HashingError",
    "InvalidEvent",
    "InvalidNodeId",
    "KeyFileError",
    "LedgerError",
    "NodeNotFound",
    "NotAStore",
    "PolicyDenied",
    "PolicyError",
    "ProofError",
    "SchemaTooNew",
    "SignatureError",
    "StoreError",
    "UsageError",
]


class DatatrailError(Exception):
    """Root of every error datatrail raises on purpose."""

    status: int = 500


class ConfigError(DatatrailError):
    """The configuration (environment variables, URLs, files) is not usable."""

    status = 500


class UsageError(DatatrailError, TypeError):
    """The API was used the wrong way (misuse always raises)."""

    status = 400


class InvalidEvent(DatatrailError, ValueError):
    """An event does not decode, or breaks the event schema."""

    status = 400


class NodeNotFound(DatatrailError, LookupError):
    """No run, artifact, dataset or job has the given id."""

    status = 404


class InvalidNodeId(DatatrailError, ValueError):
    """A node id does not follow ``kind:...`` (see ``datatrail.model.parse_node_id``)."""

    status = 400


class StoreError(DatatrailError):
    """The store cannot be opened, read or written."""

    status = 503


class NotAStore(StoreError):
    """The file or database exists but is not a datatrail store."""

    status = 500


class SchemaTooNew(StoreError):
    """The store was written by a newer version of datatrail than this one."""

    status = 500


class LedgerError(DatatrailError):
    """A problem with the Merkle tree, a proof, a checkpoint or a key."""


class ProofError(LedgerError, ValueError):
    """A proof, hash or tree size is malformed (wrong length, index out of range, ...)."""

    status = 400


class SignatureError(LedgerError):
    """A signed note or checkpoint does not verify with the given key."""

    status = 400


class KeyFileError(LedgerError, ValueError):
    """A signing or verifier key is missing or malformed."""


class HashingError(DatatrailError, ValueError):
    """Content could not be read to be hashed (unreadable file, vanished path)."""

    status = 400


class DocumentError(DatatrailError, ValueError):
    """A YAML document (policy, contracts) does not parse or validate, located in its file.

    The message starts ``FILE:LINE:COLUMN:``; ``path`` says where in the document's
    structure, as ``access[2].actions[0]``.
    """

    status = 400

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        path: str | None = None,
    ) -> None:
        where = ""
        if file is not None:
            where = file
            if line is not None:
                where += f":{line}"
                if column is not None:
                    where += f":{column}"
            where += ": "
        super().__init__(where + message)
        self.file = file
        self.line = line
        self.column = column
        self.path = path


class PolicyError(DocumentError):
    """A policy document does not parse or validate; the message names file, line and column."""


class ContractError(DocumentError):
    """A contracts document does not parse or validate; the message names file, line and column."""


class PolicyDenied(DatatrailError, PermissionError):
    """Governance refused an action. ``decision`` is the full decision value (rules, version, reason)."""

    status = 403

    def __init__(self, message: str, decision: object = None) -> None:
        super().__init__(message)
        self.decision = decision


class ContractViolation(DatatrailError, ValueError):
    """An output breaks its dataset's contract and the contract's mode is ``block``."""

    status = 422

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result
