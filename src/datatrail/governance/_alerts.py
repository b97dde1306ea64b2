"""Volume alerts: a principal reading far more than their own rolling baseline.

Volumes are bucketed per principal (an hour by default). A bucket is anomalous
when it is far above the median of that principal's recent active buckets, by a
robust z-score (median and MAD, the MAD scaled to a standard deviation and
floored so a perfectly steady reader does not alarm on noise) and by a plain
ratio. The same :class:`VolumeDetector` scores recorded access history in
:func:`check_volume` and synthetic histories in tests.
"""

from __future__ import annotations

import socket
import statistics
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from datatrail.governance._records import DATA_READS
from datatrail.model import Actor, Record, from_json, now_ts, uuid7
from datatrail.store import Store

__all__ = ["VolumeAlert", "VolumeDetector", "check_volume"]

_BUCKET = timedelta(hours=1)


@dataclass(frozen=True)
class VolumeAlert:
    """One anomalous bucket of one principal."""

    principal: str
    bucket: int
    volume: float
    median: float
    score: float

    def message(self) -> str:
        """A sentence for the alert record."""
        return (
            f"{self.principal} read {self.volume:,.0f} rows in one window, "
            f"{self.volume / max(self.median, 1):.1f}x their usual {self.median:,.0f}"
        )


@dataclass
class VolumeDetector:
    """Scores each (principal, bucket, volume) against that principal's previous active buckets."""

    history: int = 48
    """How many previous active buckets form the baseline."""
    min_history: int = 8
    z: float = 6.0
    ratio: float = 4.0
    _seen: dict[str, deque[float]] = field(default_factory=dict)

    def score(self, principal: str, volume: float) -> tuple[float, float] | None:
        """(robust z, baseline median) of a volume, or ``None`` while the baseline is short."""
        past = self._seen.get(principal)
        if past is None or len(past) < self.min_history:
            return None
        median = statistics.median(past)
        mad = statistics.median(abs(v - median) for v in past)
        spread = max(1.4826 * mad, 0.1 * median, 1.0)
        return (volume - median) / spread, median

    def observe(self, principal: str, bucket: int, volume: float) -> VolumeAlert | None:
        """Score a bucket, then add it to the baseline (anomalies are left out of it)."""
        scored = self.score(principal, volume)
        alert = None
        if scored is not None:
            z, median = scored
            if z > self.z and volume > self.ratio * max(median, 1.0):
                alert = VolumeAlert(principal, bucket, volume, median, z)
        if alert is None and volume > 0:
            self._seen.setdefault(principal, deque(maxlen=self.history)).append(volume)
        return alert


def _bucket(ts: str, size: timedelta) -> int:
    moment = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return int(moment.timestamp() // size.total_seconds())


def check_volume(
    store: Store,
    principal: str,
    *,
    subject: str | None = None,
    now: str | None = None,
    bucket: timedelta = _BUCKET,
    lookback: timedelta = timedelta(days=30),
    detector: VolumeDetector | None = None,
) -> dict[str, Any] | None:
    """Score the principal's current bucket; record an ``alert`` (once per bucket) if anomalous.

    ``subject`` is the node whose read tipped the volume over (the alert's subject).
    Returns the alert's data when one was recorded.
    """
    current_ts = now or now_ts()
    current = _bucket(current_ts, bucket)
    since = datetime.fromisoformat(current_ts.replace("Z", "+00:00")) - lookback
    rows = store.query(
        f"SELECT ts, data FROM records WHERE {DATA_READS} AND ts >= ? AND data LIKE ? ORDER BY idx",
        (since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z"), f'%"{principal}"%'),
    )
    volumes: dict[int, float] = {}
    for ts, text in rows:
        data = from_json(text)
        if data.get("principal") != principal or data.get("outcome") != "allow":
            continue
        volumes[_bucket(ts, bucket)] = volumes.get(_bucket(ts, bucket), 0.0) + float(
            data.get("rows") or 0
        )
    if current not in volumes:
        return None
    detector = detector or VolumeDetector()
    for b in sorted(volumes):
        if b < current:
            detector.observe(principal, b, volumes[b])
    found = detector.observe(principal, current, volumes[current])
    if found is None:
        return None
    alert_id = f"access_volume:{principal}:{current}"
    if store.query(
        "SELECT 1 FROM records WHERE topic = ? AND data LIKE ?",
        ("alert", f'%"{alert_id}"%'),
    ):
        return None
    data = {
        "alert_id": alert_id,
        "kind": "access_volume",
        "severity": "warning",
        "message": found.message(),
        "details": {
            "principal": principal,
            "window_start": datetime.fromtimestamp(current * bucket.total_seconds(), UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            "window_seconds": int(bucket.total_seconds()),
            "rows": found.volume,
            "baseline_median": found.median,
            "score": round(found.score, 2),
        },
    }
    store.append(
        [
            Record(
                id=uuid7(),
                ts=now_ts(),
                topic="alert",
                subject=subject,
                data=data,
                actor=Actor(user=principal, host=socket.gethostname()),
            )
        ],
        dedupe=False,
    )
    return data
