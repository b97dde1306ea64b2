"""Event kinds: the facts appended to the log.

Each kind is a frozen, keyword-only msgspec Struct tagged by ``kind``; together
they form the :data:`Event` union. Every field added after version 1 has a
default, so old events still decode; fields from newer writers are ignored on
decode here but never lost, because the log stores each event's original
canonical bytes, not this decoded form.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from datatrail.errors import InvalidEvent
from datatrail.model._naming import DatasetRef, JobRef

__all__ = [
    "SCHEMA_VERSION",
    "Actor",
    "ArtifactInfo",
    "CodeVersion",
    "Environment",
    "ErasureRecorded",
    "ErrorInfo",
    "Event",
    "GitInfo",
    "IORecorded",
    "Record",
    "RunFinished",
    "RunStarted",
    "decode_event",
    "encode_event",
]

SCHEMA_VERSION = 1
"""The event schema version this datatrail writes (``v`` in every event)."""

Level = Literal["minimal", "standard", "full"]
Status = Literal["completed", "failed"]
Role = Literal["input", "output"]


class _Base(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", omit_defaults=False, gc=False
):
    id: str
    """The event's own UUIDv7."""
    ts: str
    """When it happened, UTC, ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    v: int = SCHEMA_VERSION


class Actor(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Who ran or read something."""

    user: str
    host: str


class GitInfo(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The git state of the repository a tracked function lives in."""

    commit: str
    branch: str | None = None
    dirty: bool = False
    diff_hash: str | None = None
    """BLAKE3 of ``git diff HEAD`` (the uncommitted change), when dirty."""
    root: str | None = None
    remote: str | None = None


class ErrorInfo(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An exception that ended a run."""

    type: str
    message: str
    traceback: str = ""


class ArtifactInfo(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One immutable version of a dataset or value, named by its content hash."""

    id: str
    """``blake3:<hex>`` for content-hashed artifacts, ``uuid:<UUIDv7>`` for identity-only ones."""
    kind: str
    size: int | None = None
    rows: int | None = None
    schema: list[tuple[str, str]] | None = None
    media_type: str | None = None
    stats: dict[str, Any] | None = None


class CodeVersion(_Base, frozen=True, kw_only=True, tag="code_version"):
    """Recorded once per process per job: where the code was and what it was."""

    code_id: str
    module: str | None = None
    qualname: str | None = None
    file: str | None = None
    line: int | None = None
    source_hash: str | None = None
    git: GitInfo | None = None


class Environment(_Base, frozen=True, kw_only=True, tag="environment"):
    """The interpreter, platform and imported package versions a run saw."""

    env_id: str
    python: str
    implementation: str
    platform: str
    packages: dict[str, str]


class RunStarted(_Base, frozen=True, kw_only=True, tag="run_started"):
    """A run of a job began."""

    run_id: str
    job: JobRef
    parent_run_id: str | None = None
    params: dict[str, Any] = {}
    code_id: str | None = None
    env_id: str | None = None
    actor: Actor | None = None
    level: Level = "standard"
    facets: dict[str, Any] | None = None
    """Extra run and job facets, kept whole (OpenLineage facets, trace ids, ...)."""


class RunFinished(_Base, frozen=True, kw_only=True, tag="run_finished"):
    """A run ended, completed or failed (with the error)."""

    run_id: str
    status: Status
    error: ErrorInfo | None = None
    facets: dict[str, Any] | None = None
    """Extra run facets recorded at the end, kept whole."""


class IORecorded(_Base, frozen=True, kw_only=True, tag="io"):
    """A run read (``input``) or wrote (``output``) an artifact, of a dataset if it has one."""

    run_id: str
    role: Role
    artifact: ArtifactInfo
    dataset: DatasetRef | None = None
    label: str | None = None
    """The argument name, ``return``, or the label given to ``r.input``/``r.output``."""
    job: JobRef | None = None
    """The job of the run, so lineage between jobs derives from this event alone."""
    facets: dict[str, Any] | None = None
    """Extra dataset facets (schema, quality assertions, OpenLineage facets), kept whole."""


class ErasureRecorded(_Base, frozen=True, kw_only=True, tag="erasure"):
    """A receipt: the payload of the event at ``target_index`` was erased; its leaf hash stays.

    ``target_kind`` and ``target_ts`` keep the erased entry's ``kind`` and
    ``ts`` columns in evidence once its body (which held them) is gone.
    Receipts recorded before they existed lack them; an unset field is left
    out of the encoding, so those receipts keep their bytes and leaf hashes.
    """

    target_index: int
    target_id: str
    leaf_hash: str
    """Hex SHA-256 leaf hash of the erased event, which the tree keeps."""
    reason: str
    actor: Actor | None = None
    target_kind: str | msgspec.UnsetType = msgspec.UNSET
    """The erased event's kind (``run_started``, ``io``, ...)."""
    target_ts: str | msgspec.UnsetType = msgspec.UNSET
    """The erased event's ``ts``."""


class Record(_Base, frozen=True, kw_only=True, tag="record"):
    """Any other fact a part of datatrail keeps in the verified log.

    ``topic`` names what it is (``policy.version``, ``access``, ``hold.add``,
    ``alert``, ``contract.check``, ``openlineage.event``, ...), ``subject`` the node
    it concerns, if any, and ``data`` the fact itself as plain JSON values. Each
    topic's owner defines and documents its ``data``; the store keeps every record
    in the ``records`` projection, indexed by topic and subject.
    """

    topic: str
    subject: str | None = None
    data: dict[str, Any] = {}
    actor: Actor | None = None


Event = RunStarted | RunFinished | IORecorded | CodeVersion | Environment | ErasureRecorded | Record
"""Every kind of event datatrail appends."""

_decoder: msgspec.json.Decoder[Event] = msgspec.json.Decoder(Event)
_encoder = msgspec.json.Encoder(order="sorted")


def encode_event(event: Event) -> bytes:
    """The event's canonical bytes: JSON, sorted keys, no whitespace, UTF-8."""
    return _encoder.encode(event)


def decode_event(data: bytes) -> Event:
    """Decode canonical bytes back into an event, or raise :class:`InvalidEvent`."""
    try:
        event = _decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise InvalidEvent(f"event does not match the schema: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise InvalidEvent(f"event is not valid JSON: {exc}") from exc
    if event.v > SCHEMA_VERSION:
        raise InvalidEvent(
            f"event {event.id} has schema version {event.v}, newer than this datatrail "
            f"understands ({SCHEMA_VERSION}); upgrade datatrail"
        )
    return event
