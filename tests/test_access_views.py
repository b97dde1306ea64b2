"""Catalog views are access records too, but not reads of data.

The server records every page and API view as an ``access`` record decided by
its roles (``decided_by: role``). Policy simulation, volume alerts and the
retention clock that counts from the last access must look past them: a view
asked no policy rule, moved no rows, and does not keep data alive.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from datatrail.governance import parse_policy, simulate
from datatrail.governance._alerts import VolumeAlert, VolumeDetector, check_volume
from datatrail.model import Record, format_ts, uuid7
from datatrail.retention._facts import load_facts
from datatrail.store import Store, init_home, open_store

POLICY = """\
roles:
  analyst: {}
principals:
  carol: {roles: [analyst]}
access:
  - id: analysts-read
    effect: allow
    actions: [read]
    roles: [analyst]
"""

VIEWED = "dataset:file:/data/viewed.csv"
READ = "dataset:file:/data/read.csv"


def _access(subject: str, *, hours_ago: int = 0, **data: object) -> Record:
    ts = format_ts(time.time_ns() - hours_ago * 3_600 * 10**9)
    return Record(
        id=uuid7(), ts=ts, topic="access", subject=subject, data={"principal": "carol", **data}
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    home = init_home(tmp_path / ".datatrail")
    s = open_store(home.url, signer=home.signer())
    s.append(
        [
            _access(
                VIEWED,
                hours_ago=3,
                action="view",
                decided_by="role",
                outcome="allow",
                rows=0,
                route="/datasets",
            ),
            _access(READ, action="read", outcome="allow", rows=120, resource=READ),
        ]
    )
    yield s
    s.close()


def test_a_view_does_not_reset_the_last_access_clock(store: Store) -> None:
    facts = load_facts(store)
    assert READ in facts.last_access
    assert VIEWED not in facts.last_access


def test_simulation_replays_reads_not_views(store: Store) -> None:
    result = simulate(store, parse_policy(POLICY), since="1d")
    assert result.replayed == 1


def test_views_do_not_enter_the_volume_series(store: Store) -> None:
    class Spy(VolumeDetector):
        def observe(self, principal: str, bucket: int, volume: float) -> VolumeAlert | None:
            observed.append(volume)
            return super().observe(principal, bucket, volume)

    observed: list[float] = []
    check_volume(store, "carol", detector=Spy())
    assert observed == [120.0]  # the read's rows; the earlier view adds no bucket of its own
