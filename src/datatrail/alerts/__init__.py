"""Alerts: lineage drift, pattern anomalies and broken contracts, recorded in the log and sent."""

from datatrail.alerts._core import (
    Alert,
    ack,
    alert_id,
    alert_record,
    emit_alert,
    list_alerts,
    notify_alert,
)
from datatrail.alerts._detect import (
    AnomalySettings,
    Detection,
    DriftSettings,
    History,
    detect_anomalies,
    detect_drift,
    load_history,
)
from datatrail.alerts._scan import ScanResult, scan

__all__ = [
    "Alert",
    "AnomalySettings",
    "Detection",
    "DriftSettings",
    "History",
    "ScanResult",
    "ack",
    "alert_id",
    "alert_record",
    "detect_anomalies",
    "detect_drift",
    "emit_alert",
    "list_alerts",
    "load_history",
    "notify_alert",
    "scan",
]
