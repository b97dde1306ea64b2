"""Contract versions in the log, and contracts inferred from what was recorded.

A version is a ``contract.version`` record (subject: the dataset's node id;
data: ``{version, hash, contract, reason, by}``). Versions count up from 1 per
dataset; applying a contract equal to the latest version records nothing.
"""

from __future__ import annotations

import getpass
from typing import Any

import msgspec

from datatrail.contracts._spec import ColumnSpec, Contract, RowsSpec, contract_hash
from datatrail.errors import NodeNotFound
from datatrail.model import Actor, Record, now_ts, parse_node_id, uuid7
from datatrail.store import Store

__all__ = [
    "ContractVersion",
    "apply_contracts",
    "contract_version",
    "contract_versions",
    "infer_contract",
    "latest_contracts",
    "version_record",
]

TOPIC = "contract.version"


class ContractVersion(msgspec.Struct, frozen=True, kw_only=True):
    """One recorded version of a dataset's contract."""

    dataset: str
    version: int
    hash: str
    contract: Contract
    reason: str = ""
    by: str | None = None
    ts: str = ""
    index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (the contract in its compact shape)."""
        return {
            "dataset": self.dataset,
            "version": self.version,
            "hash": self.hash,
            "contract": self.contract.to_dict(),
            "reason": self.reason,
            "by": self.by,
            "ts": self.ts,
            "index": self.index,
        }


def _from_row(row: tuple[Any, ...]) -> ContractVersion:
    idx, subject, ts, data = row
    body = msgspec.json.decode(data) if isinstance(data, str | bytes) else data
    return ContractVersion(
        dataset=str(subject),
        version=int(body["version"]),
        hash=str(body["hash"]),
        contract=Contract.from_dict(body["contract"]),
        reason=str(body.get("reason") or ""),
        by=body.get("by"),
        ts=str(ts),
        index=int(idx),
    )


def contract_versions(store: Store, dataset: str | None = None) -> list[ContractVersion]:
    """Every recorded version (of one dataset, if given), oldest first."""
    if dataset is None:
        rows = store.query(
            "SELECT idx, subject, ts, data FROM records WHERE topic = ? ORDER BY idx", (TOPIC,)
        )
    else:
        rows = store.query(
            "SELECT idx, subject, ts, data FROM records WHERE topic = ? AND subject = ? ORDER BY idx",
            (TOPIC, _dataset(dataset)),
        )
    return [_from_row(r) for r in rows]


def latest_contracts(store: Store) -> dict[str, ContractVersion]:
    """The newest version of every dataset's contract, by dataset node id."""
    latest: dict[str, ContractVersion] = {}
    for version in contract_versions(store):
        latest[version.dataset] = version
    return latest


def contract_version(store: Store, dataset: str, version: int | None = None) -> ContractVersion:
    """One version of a dataset's contract (the newest when ``version`` is None)."""
    found = contract_versions(store, dataset)
    if not found:
        raise NodeNotFound(
            f"{_dataset(dataset)} has no recorded contract; record one with "
            "`datatrail contract apply`"
        )
    if version is None:
        return found[-1]
    for item in found:
        if item.version == version:
            return item
    raise NodeNotFound(
        f"{_dataset(dataset)} has no contract version {version} (versions 1 to {found[-1].version})"
    )


def _dataset(text: str) -> str:
    node = parse_node_id(text if text.startswith("dataset:") else "dataset:" + text)
    return str(node)


def version_record(
    contract: Contract, version: int, *, reason: str, by: str | None = None
) -> Record:
    """The ``contract.version`` record for a new version."""
    return Record(
        id=uuid7(),
        ts=now_ts(),
        topic=TOPIC,
        subject=contract.dataset,
        data={
            "version": version,
            "hash": contract_hash(contract),
            "contract": contract.to_dict(),
            "reason": reason,
            "by": by,
        },
        actor=_actor(),
    )


def _actor() -> Actor:
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Actor(user=user, host=socket.gethostname())


def apply_contracts(
    store: Store, contracts: list[Contract], *, reason: str, by: str | None = None
) -> list[ContractVersion]:
    """Record a new version of every contract that differs from its latest version.

    Returns the versions recorded (empty when nothing changed). Appended in one batch,
    so either all land or none.
    """
    latest = latest_contracts(store)
    records: list[Record] = []
    for contract in contracts:
        current = latest.get(contract.dataset)
        if current is not None and current.hash == contract_hash(contract):
            continue
        number = current.version + 1 if current is not None else 1
        records.append(version_record(contract, number, reason=reason, by=by))
    if not records:
        return []
    result = store.append(records)
    first = result.first_index
    return [
        ContractVersion(
            dataset=str(r.subject),
            version=int(r.data["version"]),
            hash=str(r.data["hash"]),
            contract=Contract.from_dict(r.data["contract"]),
            reason=reason,
            by=by,
            ts=r.ts,
            index=first + i,
        )
        for i, r in enumerate(records)
    ]


# -- inference ------------------------------------------------------------------------------


def infer_contract(
    store: Store, dataset: str, *, mode: str = "warn", table: Any = None
) -> Contract:
    """A starting contract for a dataset, from its newest recorded version.

    Columns and types come from the recorded schema (or from ``table``, or from the
    dataset's file when the schema was not recorded); columns with no nulls in the
    recorded statistics are declared not nullable. Edit the result before applying it.
    """
    from datatrail.contracts._evaluate import _schema_of, to_arrow

    node = parse_node_id(_dataset(dataset))
    assert node.namespace is not None
    assert node.name is not None
    rows = store.query(
        "SELECT a.schema, a.stats, a.rows FROM run_io io JOIN artifacts a "
        "ON a.artifact_id = io.artifact_id WHERE io.dataset_namespace = ? AND io.dataset_name = ? "
        "ORDER BY io.idx DESC LIMIT 1",
        (node.namespace, node.name),
    )
    if not rows and table is None:
        raise NodeNotFound(f"{node} has no recorded version to infer a contract from")
    schema: list[tuple[str, str]] | None = None
    stats: dict[str, Any] = {}
    count: int | None = None
    if rows:
        raw_schema, raw_stats, count = rows[0]
        if raw_schema:
            schema = [(str(a), str(b)) for a, b in msgspec.json.decode(raw_schema)]
        if raw_stats:
            stats = msgspec.json.decode(raw_stats).get("columns", {})
    if table is None and schema is None and node.namespace == "file":
        from pathlib import Path

        table = to_arrow(Path(node.name))
    if table is not None:
        schema = _schema_of(table)
        count = table.num_rows
        stats = {name: {"nulls": int(table.column(name).null_count)} for name in table.column_names}
    if schema is None:
        raise NodeNotFound(
            f"{node}: no schema was recorded (record it at level standard or full) and its "
            "data cannot be read"
        )
    columns = []
    for name, type_ in schema:
        if name.startswith("__index__"):
            continue
        nulls = stats.get(name, {}).get("nulls")
        columns.append(
            ColumnSpec(name=name, type=type_, nullable=not (nulls == 0 and count is not None))
        )
    return Contract(
        dataset=str(node),
        mode=mode,  # type: ignore[arg-type]
        columns=columns,
        rows=RowsSpec(min=1) if count else None,
    )
