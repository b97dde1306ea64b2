"""Alerts as records in the log: raising (once), listing, acknowledging, notifying.

An alert is an ``alert`` record (subject: the node it concerns; data:
``{alert_id, kind, severity, message, details}``); acknowledging one is an
``alert.ack`` record. Alert ids are derived from what the alert is about (its
kind, subject and a key such as the run id), so detecting the same thing
twice yields the same id and raises nothing new.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any, Literal

import msgspec

from datatrail.model import Actor, Record, now_ts, parse_ts, uuid7
from datatrail.store import Store

__all__ = [
    "Alert",
    "ack",
    "alert_id",
    "alert_record",
    "emit_alert",
    "list_alerts",
    "notify_alert",
    "recorded_ids",
]

log = logging.getLogger("datatrail")

Severity = Literal["info", "warning", "critical"]
SEVERITIES = ("info", "warning", "critical")


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """One alert as listed: the record's data, where it is in the log, and its acknowledgement."""

    alert_id: str
    kind: str
    severity: str
    subject: str | None
    message: str
    details: dict[str, Any] = {}
    ts: str
    index: int
    acked: bool = False
    ack: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data


def alert_id(kind: str, subject: str | None, key: str) -> str:
    """The deterministic id of the alert of ``kind`` about ``subject`` for ``key``."""
    digest = hashlib.sha256(f"{kind}\x00{subject or ''}\x00{key}".encode()).hexdigest()
    return f"{kind}-{digest[:16]}"


def _actor() -> Actor:
    from datatrail.capture._codeinfo import actor

    return actor()


def alert_record(
    *,
    kind: str,
    subject: str | None,
    key: str,
    severity: Severity = "warning",
    message: str,
    details: dict[str, Any] | None = None,
    ts: str | None = None,
) -> Record:
    """The ``alert`` record for one detection."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    return Record(
        id=uuid7(),
        ts=ts or now_ts(),
        topic="alert",
        subject=subject,
        data={
            "alert_id": alert_id(kind, subject, key),
            "kind": kind,
            "severity": severity,
            "message": message,
            "details": details or {},
        },
        actor=_actor(),
    )


def emit_alert(
    *,
    kind: str,
    subject: str | None,
    key: str,
    severity: Severity = "warning",
    message: str,
    details: dict[str, Any] | None = None,
) -> str:
    """Raise an alert from inside a pipeline (through the writer); returns its alert id.

    Notification happens when the alert is stored: ``datatrail alerts scan`` (or
    :func:`datatrail.alerts.scan`) sends what was not sent yet.
    """
    from datatrail.capture import emit_record

    record = alert_record(
        kind=kind, subject=subject, key=key, severity=severity, message=message, details=details
    )
    emit_record("alert", subject=subject, data=record.data)
    return str(record.data["alert_id"])


def recorded_ids(store: Store, topic: str = "alert") -> set[str]:
    """Alert ids already recorded under ``topic`` (``alert`` or ``alert.ack``)."""
    from datatrail.lineage._trail import _json

    return {
        str(_json(data).get("alert_id"))
        for (data,) in store.query("SELECT data FROM records WHERE topic = ?", (topic,))
    }


def list_alerts(
    store: Store,
    *,
    since: str | None = None,
    kind: str | None = None,
    unacked: bool = False,
    limit: int | None = None,
) -> list[Alert]:
    """Alerts, newest first (``since``: ISO time, date, or 30m/2h/7d ago)."""
    from datatrail.lineage._trail import _json

    sql = "SELECT idx, subject, ts, data FROM records WHERE topic = ?"
    params: list[Any] = ["alert"]
    if since:
        sql += " AND ts >= ?"
        params.append(parse_ts(since))
    sql += " ORDER BY idx DESC"
    acks: dict[str, dict[str, Any]] = {}
    for ts, data in store.query("SELECT ts, data FROM records WHERE topic = 'alert.ack'"):
        body = _json(data)
        acks[str(body.get("alert_id"))] = {**body, "ts": ts}
    out: list[Alert] = []
    seen: set[str] = set()
    for idx, subject, ts, data in store.query(sql, params):
        body = _json(data)
        aid = str(body.get("alert_id"))
        if aid in seen:
            continue  # a duplicate raised by two processes at once: show it once
        seen.add(aid)
        if kind is not None and body.get("kind") != kind:
            continue
        acked = acks.get(aid)
        if unacked and acked is not None:
            continue
        out.append(
            Alert(
                alert_id=aid,
                kind=str(body.get("kind")),
                severity=str(body.get("severity")),
                subject=subject,
                message=str(body.get("message")),
                details=body.get("details") or {},
                ts=ts,
                index=int(idx),
                acked=acked is not None,
                ack=acked,
            )
        )
        if limit is not None and len(out) >= limit:
            break
    return out


def ack(store: Store, alert: str, *, by: str, note: str = "") -> Alert:
    """Record that ``by`` acknowledged an alert; returns the alert as now listed.

    Raises :class:`~datatrail.errors.NodeNotFound` for an unknown alert id, and
    acknowledging twice records nothing new.
    """
    from datatrail.errors import NodeNotFound

    found = {a.alert_id: a for a in list_alerts(store)}
    current = found.get(alert)
    if current is None:
        raise NodeNotFound(f"no alert {alert!r} in this trail; `datatrail alerts` lists them")
    if current.acked:
        return current
    record = Record(
        id=uuid7(),
        ts=now_ts(),
        topic="alert.ack",
        subject=current.subject,
        data={"alert_id": alert, "by": by, "note": note},
        actor=_actor(),
    )
    store.append([record])
    return {a.alert_id: a for a in list_alerts(store)}[alert]


def notify_alert(store: Store, alert: Alert | dict[str, Any]) -> bool:
    """Send an alert through governance's notification hook; False when there is none.

    The hook records the notification itself; its failures never reach the caller.
    """
    import importlib

    try:
        governance = importlib.import_module("datatrail.governance")
    except ImportError:
        return False
    notify = getattr(governance, "notify", None)
    active_policy = getattr(governance, "active_policy", None)
    if notify is None or active_policy is None:
        return False
    data = alert.to_dict() if isinstance(alert, Alert) else alert
    try:
        version = active_policy(store)
        policy = version.policy if version is not None else None
        recipients: tuple[str, ...] = ()
        subject = data.get("subject") or ""
        if policy is not None and str(subject).startswith("dataset:"):
            from datatrail.model import parse_node_id

            node = parse_node_id(str(subject))
            recipients = tuple(policy.owners_for(node.namespace, node.name))
        notify(store, policy, "alert", recipients, data)
    except Exception:
        log.exception("datatrail: sending alert %s failed", data.get("alert_id"))
        return False
    return True
