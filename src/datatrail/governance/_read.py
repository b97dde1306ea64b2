"""Governed reads: decide, enforce limits, load, mask, and record every attempt.

``read(node, principal=..., purpose=...)`` resolves a dataset or artifact to the
file its version was recorded in, decides under the trail's active policy
(with the labels lineage gives the data), checks the principal's limits,
loads the data as it was recorded (CSV as pandas, Parquet and Arrow files as
Arrow tables, other files as bytes, directories as a path), applies the
decision's masks and returns it. Every attempt, allowed or denied, is an
``access`` record; a denial raises :class:`~datatrail.errors.PolicyDenied`
carrying the decision. Masked values never reach the caller, a log line or an
error message.
"""

from __future__ import annotations

import os
import socket
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from datatrail.errors import ConfigError, NodeNotFound, PolicyDenied, UsageError
from datatrail.governance._alerts import check_volume
from datatrail.governance._classify import classifications_of
from datatrail.governance._decide import Decision, Engine
from datatrail.governance._document import Limit, Policy
from datatrail.governance._masks import apply_masks, mask_salt
from datatrail.governance._records import DATA_READS
from datatrail.model import Actor, Record, from_json, now_ts, parse_node_id, uuid7
from datatrail.store import Home, Store, find_home, open_store

__all__ = ["engine_for", "limit_usage", "read", "record_access", "writable_store"]

_TABLES = {
    "text/csv": "csv",
    "text/tab-separated-values": "tsv",
    "application/vnd.apache.parquet": "parquet",
    "application/vnd.apache.arrow.file": "arrow",
}

_engines: dict[str, Engine] = {}
_stores: dict[str, Store] = {}
_lock = threading.Lock()


def writable_store(
    trail: Any = None, home: str | Path | Home | None = None
) -> tuple[Store, Home | None]:
    """A store that can append signed records, and the trail's home (for its key material)."""
    if trail is not None:
        store = getattr(trail, "store", trail)
        found = getattr(trail, "home", None)
        if getattr(store, "signer", None) is not None:
            return store, found
        if found is None:
            raise ConfigError(
                "governed reads record every attempt, so they need the trail's signing key; "
                "pass home= (the .datatrail folder) or a store opened with its signer"
            )
        target: Home = found
    elif isinstance(home, Home):
        target = home
    elif home is not None:
        folder = Path(home).expanduser().resolve()
        target = Home(path=folder, url=f"sqlite:///{folder / 'trail.db'}")
    else:
        located = find_home()
        if located is None:
            raise NodeNotFound(
                "no trail here: no .datatrail/ and no DATATRAIL_URL; run `datatrail init`"
            )
        target = located
    with _lock:
        store = _stores.get(target.url)
        if store is None:
            signer = target.signer()
            if signer is None:
                raise ConfigError(
                    f"{target.signing_key} is missing; governed reads need it to record"
                )
            store = open_store(target.url, create=False, signer=signer)
            _stores[target.url] = store
    return store, target


def engine_for(store: Store) -> Engine:
    """One engine per store URL, re-checking the active version on each decision."""
    key = f"{store.url}#{id(store)}"
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = Engine(store)
            _engines[key] = engine
    return engine


class _Target:
    def __init__(self, store: Store, node: str) -> None:
        if node.startswith(("blake3:", "uuid:")):
            node = "artifact:" + node
        parsed = parse_node_id(node)
        self.node = str(parsed)
        self.exact = parsed.kind == "artifact"
        if parsed.kind == "dataset":
            rows = store.query(
                "SELECT artifact_id FROM run_io WHERE dataset_namespace = ? AND dataset_name = ? "
                "ORDER BY ts DESC, idx DESC LIMIT 1",
                (parsed.namespace, parsed.name),
            )
            if not rows:
                raise NodeNotFound(f"dataset {parsed} has no recorded version in this trail")
            self.artifact = str(rows[0][0])
            self.namespace: str | None = parsed.namespace
            self.name: str | None = parsed.name
        elif parsed.kind == "artifact":
            self.artifact = parsed.key
            rows = store.query(
                "SELECT dataset_namespace, dataset_name FROM run_io WHERE artifact_id = ? "
                "AND dataset_namespace IS NOT NULL ORDER BY idx DESC LIMIT 1",
                (parsed.key,),
            )
            self.namespace, self.name = (str(rows[0][0]), str(rows[0][1])) if rows else (None, None)
        else:
            raise UsageError(f"{node}: read takes a dataset or an artifact, not a {parsed.kind}")
        found = store.query(
            "SELECT kind, size, media_type, schema FROM artifacts WHERE artifact_id = ?",
            (self.artifact,),
        )
        if not found:
            raise NodeNotFound(f"no artifact {self.artifact} in this trail")
        self.kind, self.size, self.media_type = str(found[0][0]), found[0][1], found[0][2]
        schema = from_json(found[0][3]) if found[0][3] else None
        self.columns: tuple[str, ...] | None = tuple(c for c, _ in schema) if schema else None

    @property
    def resource(self) -> str:
        """The node decisions are about: the dataset when there is one."""
        if self.namespace is not None and self.name is not None:
            return f"dataset:{self.namespace}:{self.name}"
        return self.node

    def load(self) -> Any:
        if self.namespace != "file" or self.name is None:
            where = f"dataset:{self.namespace}:{self.name}" if self.namespace else "no dataset"
            raise NodeNotFound(
                f"{self.node} was recorded in memory ({where}); its content was not kept, so "
                "it cannot be read back. Read a dataset written to a file instead"
            )
        path = Path(self.name)
        if not path.exists():
            raise NodeNotFound(f"{self.node}: {path} no longer exists")
        if self.exact:
            from datatrail.capture._hashing import hash_directory, hash_file

            current = (hash_directory(path) if path.is_dir() else hash_file(path)).digest
            if current != self.artifact:
                raise NodeNotFound(
                    f"{path} now holds another version than {self.artifact}; read the dataset "
                    "for its current version"
                )
        if self.kind == "directory" or path.is_dir():
            return path
        kind = _TABLES.get(self.media_type or "")
        if kind in ("csv", "tsv"):
            import pandas as pd

            return pd.read_csv(path, sep="," if kind == "csv" else "\t")
        if kind == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path)
        if kind == "arrow":
            import pyarrow.feather as feather

            return feather.read_table(path)
        return path.read_bytes()


def _measure(data: Any) -> tuple[int | None, int | None, tuple[str, ...] | None]:
    module = type(data).__module__.partition(".")[0]
    if module == "pandas" and hasattr(data, "columns"):
        return (
            len(data),
            int(data.memory_usage(deep=True).sum()),
            tuple(str(c) for c in data.columns),
        )
    if module == "pyarrow" and hasattr(data, "column_names"):
        return int(data.num_rows), int(data.nbytes), tuple(data.column_names)
    if isinstance(data, bytes):
        return None, len(data), None
    if isinstance(data, Path):
        total = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
        return None, total, None
    return None, None, None


def record_access(
    store: Store,
    node: str,
    *,
    principal: str,
    action: str,
    purpose: str | None,
    decision: Decision,
    rows: int | None = None,
    size: int | None = None,
    masked: list[str] | None = None,
    via: str = "python",
    reason: str | None = None,
    resource: str | None = None,
) -> None:
    """Append the ``access`` record of one attempt."""
    data = {
        "principal": principal,
        "action": action,
        "purpose": purpose,
        "outcome": decision.outcome,
        "rules": list(decision.rules),
        "policy_version": decision.policy_version,
        "reason": reason or decision.reason,
        "rows": rows,
        "bytes": size,
        "masked": sorted(masked or []),
        "via": via,
        "resource": resource or node,
    }
    store.append(
        [
            Record(
                id=uuid7(),
                ts=now_ts(),
                topic="access",
                subject=node,
                data=data,
                actor=Actor(user=principal, host=socket.gethostname()),
            )
        ],
        dedupe=False,
    )


def _applies(limit: Limit, policy: Policy, principal: str) -> bool:
    if "*" in limit.principals or principal in limit.principals:
        return True
    if limit.roles and not set(limit.roles).isdisjoint(policy.roles_of(principal)):
        return True
    return bool(limit.groups) and not set(limit.groups).isdisjoint(policy.groups_of(principal))


def limit_usage(
    store: Store, principal: str, limit: Limit, *, now: datetime | None = None
) -> tuple[int, int]:
    """Rows and bytes the principal was given (allowed reads) within the limit's window."""
    moment = (now or datetime.now(UTC)) - limit.window
    since = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    rows = store.query(
        f"SELECT data FROM records WHERE {DATA_READS} AND ts >= ? AND data LIKE ?",
        (since, f'%"{principal}"%'),
    )
    total_rows = total_bytes = 0
    for (text,) in rows:
        data = from_json(text)
        if data.get("principal") == principal and data.get("outcome") == "allow":
            total_rows += int(data.get("rows") or 0)
            total_bytes += int(data.get("bytes") or 0)
    return total_rows, total_bytes


def _over_limit(
    store: Store, policy: Policy, principal: str, rows: int, size: int
) -> tuple[Limit, str] | None:
    for limit in policy.limits:
        if not _applies(limit, policy, principal):
            continue
        used_rows, used_bytes = limit_usage(store, principal, limit)
        if limit.rows is not None and used_rows + rows > limit.rows:
            return limit, f"{used_rows + rows:,} rows would exceed {limit.rows:,}"
        if limit.bytes is not None and used_bytes + size > limit.bytes:
            return limit, f"{used_bytes + size:,} bytes would exceed {limit.bytes:,}"
    return None


def _limited(decision: Decision, limit: Limit, detail: str, principal: str) -> Decision:
    window = int(limit.window.total_seconds())
    return Decision(
        outcome="deny",
        rules=(*decision.rules, limit.id),
        policy_version=decision.policy_version,
        reason=f"{principal} is over limit {limit.id}: {detail} in any {window}s window",
        policy_hash=decision.policy_hash,
    )


def _shadow(store: Store, engine: Engine, node: str, decision: Decision, **request: Any) -> None:
    shadow = engine.shadow_decide(**request)
    if shadow is None or (shadow.outcome, shadow.masks) == (decision.outcome, decision.masks):
        return
    store.append(
        [
            Record(
                id=uuid7(),
                ts=now_ts(),
                topic="policy.shadow",
                subject=node,
                data={
                    "principal": request["principal"],
                    "action": request["action"],
                    "purpose": request.get("purpose"),
                    "active": decision.to_dict(),
                    "candidate": shadow.to_dict(),
                },
            )
        ],
        dedupe=False,
    )


def read(
    node: str,
    *,
    principal: str,
    purpose: str | None = None,
    trail: Any = None,
    home: str | Path | Home | None = None,
    attributes: dict[str, str] | None = None,
    via: str = "python",
) -> Any:
    """The data of a dataset or artifact, masked as the policy says, or :class:`PolicyDenied`."""
    if not principal:
        raise UsageError("read needs the principal reading (principal='alice')")
    store, found_home = writable_store(trail, home)
    target = _Target(store, node)
    engine = engine_for(store)
    request = {
        "principal": principal,
        "action": "read",
        "resource_node": target.resource,
        "purpose": purpose,
        "attributes": attributes,
        "columns": target.columns,
    }
    try:
        labels = list(classifications_of(store, target.node, policy=engine.policy))
        decision = engine.decide(**request, labels=labels)  # type: ignore[arg-type]
    except Exception as exc:
        decision = Decision(
            outcome="deny",
            rules=("fail-closed",),
            policy_version=engine.version or 0,
            reason=f"{principal} may not read {target.node}: the decision failed ({type(exc).__name__})",
        )
        labels = []
    _shadow(store, engine, target.node, decision, labels=labels, **request)
    if not decision.allowed:
        record_access(
            store,
            target.node,
            principal=principal,
            action="read",
            purpose=purpose,
            decision=decision,
            via=via,
            resource=target.resource,
        )
        raise PolicyDenied(decision.reason, decision)
    policy = engine.policy
    if policy is not None and policy.limits:
        over = _over_limit(store, policy, principal, 0, 0)
        if over is not None:
            denied = _limited(decision, *over, principal)
            record_access(
                store,
                target.node,
                principal=principal,
                action="read",
                purpose=purpose,
                decision=denied,
                via=via,
                resource=target.resource,
            )
            raise PolicyDenied(denied.reason, denied)
    data = target.load()
    salt = mask_salt(
        salt_env=policy.salt_env if policy else None,
        key_file=found_home.signing_key if found_home is not None else None,
        fallback=store.url,
    )
    masked_data = apply_masks(data, decision.masks, salt) if decision.masks else data
    rows, size, columns = _measure(masked_data)
    masked = [c for c in decision.masks if columns is None or c in columns]
    if policy is not None and policy.limits:
        over = _over_limit(store, policy, principal, rows or 0, size or 0)
        if over is not None:
            denied = _limited(decision, *over, principal)
            record_access(
                store,
                target.node,
                principal=principal,
                action="read",
                purpose=purpose,
                decision=denied,
                via=via,
                resource=target.resource,
            )
            raise PolicyDenied(denied.reason, denied)
    record_access(
        store,
        target.node,
        principal=principal,
        action="read",
        purpose=purpose,
        decision=decision,
        rows=rows,
        size=size,
        masked=masked,
        via=via,
        resource=target.resource,
    )
    if os.environ.get("DATATRAIL_VOLUME_ALERTS", "1") != "0":
        check_volume(store, principal, subject=target.node)
    return masked_data
