"""``scan``: run every detector over the trail and record the alerts not raised before."""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from datatrail.alerts._core import alert_id, alert_record, notify_alert, recorded_ids
from datatrail.alerts._detect import (
    AnomalySettings,
    Detection,
    DriftSettings,
    detect_anomalies,
    detect_drift,
    load_history,
)
from datatrail.model import Record, parse_ts
from datatrail.store import Store

__all__ = ["ScanResult", "scan"]

log = logging.getLogger("datatrail")


class ScanResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a scan looked at and the alerts it raised (already-raised ones are not repeated)."""

    runs: int
    detections: int
    raised: list[dict[str, Any]]
    notified: int

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data


def _declared(store: Store) -> dict[str, tuple[set[str], set[str]]]:
    """Lineage declared in the newest contract of each dataset."""
    from datatrail.contracts._versions import latest_contracts

    out: dict[str, tuple[set[str], set[str]]] = {}
    for dataset, version in latest_contracts(store).items():
        lineage = version.contract.lineage
        if lineage is not None and (lineage.jobs or lineage.upstream):
            out[dataset] = (set(lineage.jobs), set(lineage.upstream))
    return out


def scan(
    store: Store,
    *,
    since: str | None = None,
    kinds: tuple[str, ...] = ("lineage_drift", "anomaly"),
    notify: bool = True,
    drift: DriftSettings = DriftSettings(),
    anomaly: AnomalySettings = AnomalySettings(),
) -> ScanResult:
    """Detect lineage drift and anomalies; record each new alert once, and notify it.

    The whole history is replayed to learn baselines; only detections on runs started
    at or after ``since`` (ISO time, date, or 30m/2h/7d ago) are raised. Idempotent:
    an alert's id derives from its kind, subject and run, and ids already recorded are
    skipped, so scanning twice raises nothing the second time.
    """
    history = load_history(store)
    found: list[Detection] = []
    if "lineage_drift" in kinds:
        found.extend(detect_drift(history, declared=_declared(store), settings=drift))
    if "anomaly" in kinds:
        found.extend(detect_anomalies(history, settings=anomaly))
    cutoff = parse_ts(since) if since else None
    if cutoff is not None:
        found = [d for d in found if d.ts is not None and d.ts >= cutoff]
    done = recorded_ids(store)
    records: list[Record] = []
    for d in found:
        aid = alert_id(d.kind, d.subject, d.key)
        if aid in done:
            continue
        done.add(aid)
        records.append(
            alert_record(
                kind=d.kind,
                subject=d.subject,
                key=d.key,
                severity=d.severity,  # type: ignore[arg-type]
                message=d.message,
                details=d.details,
            )
        )
    if records:
        store.append(records)
    raised = [{"subject": r.subject, **r.data} for r in records]
    notified = sum(1 for alert in raised if notify and notify_alert(store, alert))
    return ScanResult(
        runs=len(history.runs), detections=len(found), raised=raised, notified=notified
    )
