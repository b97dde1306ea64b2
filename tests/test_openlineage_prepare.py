"""Prepared OpenLineage events: the server's ingest path stores what mapping the event would.

The server prepares each event on its request thread (validation, ids, facets cut
from the canonical bytes) and maps it against run states on the committer; the
log must hold exactly the bytes the plain :meth:`OpenLineageMapper.map` makes,
and a batch must still be judged event by event.
"""

from __future__ import annotations

import copy
import gc
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.test_server_support import bearer, client, issue_tokens

from datatrail.interop.openlineage import OpenLineageMapper, validate_openlineage
from datatrail.interop.openlineage._ingest import _EPOCH, _ts, prepare
from datatrail.interop.openlineage._runstate import lookup_runs
from datatrail.interop.openlineage._schema import parse_event_time
from datatrail.model import Record, RunFinished, encode_event, format_ts, now_ts, uuid7
from datatrail.store import Store, init_home, open_store

_P = {"_producer": "https://example.com/p", "_schemaURL": "https://example.com/s"}


def _sample(testdata: Path) -> dict[str, Any]:
    sample: dict[str, Any] = json.loads(
        (testdata / "openlineage" / "client-tests" / "example_full_event.json").read_text()
    )
    return sample


def _run(sample: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """START, RUNNING and an end of one run, with the facet changes mapping must follow."""
    base = copy.deepcopy(sample)
    base["run"]["runId"] = f"3f5e2a8c-1b2d-4c3e-8f9a-0b1c2d3e4f{n:02d}".upper()
    base["job"]["name"] = f"job_{n}"
    start = copy.deepcopy(base) | {"eventType": "START", "eventTime": "2026-02-01T10:00:00Z"}
    running = copy.deepcopy(base) | {
        "eventType": "RUNNING",
        "eventTime": "2026-02-01T10:00:10.123456789+02:00",
    }
    running["run"]["facets"]["progress"] = {**_P, "done": 0.5, "nested": {"_deleted": True}}
    running["job"]["facets"]["documentation"] = {**_P, "_deleted": True, "description": "x"}
    side = {
        "namespace": "s3://bucket",
        "name": "side",
        "facets": {
            "version": {**_P, "datasetVersion": str(n)},
            "symlinks": {**_P, "identifiers": [{"namespace": "hive", "name": "t", "type": "T"}]},
        },
    }
    running["outputs"] = [*running["outputs"], side]
    end = copy.deepcopy(base) | {"eventType": ("COMPLETE", "FAIL", "ABORT")[n % 3]}
    end["eventTime"] = "2026-02-01T10:01:00.5-05:00"
    end["run"]["facets"]["errorMessage"] = {**_P, "message": "boom", "programmingLanguage": "PY"}
    return [start, running, end]


def _mixed(testdata: Path) -> list[dict[str, Any]]:
    events = [e for n in range(3) for e in _run(_sample(testdata), n)]
    events.append(
        {
            "eventTime": "2026-02-01T00:00:00Z",
            "producer": "p",
            "schemaURL": "s",
            "job": {"namespace": "n", "name": "j"},
            "inputs": [{"namespace": "n", "name": "a"}],
            "outputs": [],
        }
    )
    events.append(
        {
            "eventTime": "2026-02-01T00:00:01Z",
            "producer": "p",
            "schemaURL": "s",
            "dataset": {"namespace": "n", "name": "c"},
        }
    )
    for event in events:
        validate_openlineage(event)
    return events


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    home = init_home(tmp_path / ".datatrail")
    opened = open_store(home.url, signer=home.signer())
    yield opened
    opened.close()


def test_a_prepared_event_makes_the_bytes_map_makes(testdata: Path) -> None:
    events = _mixed(testdata)
    plain, prepared = OpenLineageMapper(), OpenLineageMapper()
    for event in events:
        made = [encode_event(e) for e in plain.map(copy.deepcopy(event))]
        cut = [encode_event(e) for e in prepared.map_prepared(prepare(copy.deepcopy(event)))]
        assert cut == made
    assert prepare(events[0]).kind == "run"
    assert prepare(events[-2]).kind == "job" and prepare(events[-1]).kind == "dataset"


def test_a_prepared_event_holds_none_of_the_decoded_event(testdata: Path) -> None:
    event = _mixed(testdata)[2]
    prep = prepare(event)
    expected = [encode_event(e) for e in OpenLineageMapper().map_prepared(prep)]
    assert not gc.is_tracked(prep)  # nothing for the collector to walk while a batch waits
    event["run"]["facets"]["errorMessage"]["message"] = "changed after preparing"
    event["outputs"][0]["facets"].clear()
    assert [encode_event(e) for e in OpenLineageMapper().map_prepared(prep)] == expected


def test_a_run_continued_in_a_later_request_merges_the_stored_facets(
    store: Store, testdata: Path
) -> None:
    start, running, end = _run(_sample(testdata), 1)
    del end["job"]["facets"]["documentation"]  # so only the stored events speak of it
    store.append(OpenLineageMapper(store).map(start))
    store.append(OpenLineageMapper(store).map(running))
    # The run's earlier facets now come from the store, as canonical bytes.
    state = lookup_runs(store, [start["run"]["runId"].lower()])[start["run"]["runId"].lower()]
    assert all(isinstance(v, msgspec.Raw) for v in state.run_facets.values())
    plain = OpenLineageMapper(store).map(copy.deepcopy(end))
    cut = OpenLineageMapper(store).map_prepared(prepare(copy.deepcopy(end)))
    assert [encode_event(e) for e in cut] == [encode_event(e) for e in plain]
    (finish,) = [e for e in plain if isinstance(e, RunFinished)]
    facets = (finish.facets or {})["openlineage"]
    # a facet with a nested "_deleted" stays; the job facet RUNNING deleted is gone
    assert facets["run"]["progress"]["nested"] == {"_deleted": True}
    assert "documentation" not in facets["job"]
    assert facets["run"]["errorMessage"]["message"] == "boom"  # decoded for map()'s callers


def test_run_state_reads_stored_records_of_any_shape(store: Store) -> None:
    run_id = "3f5e2a8c-1b2d-4c3e-8f9a-0b1c2d3e4f50"
    facet = {**_P, "b": 2, "a": [1, {"z": None}]}
    store.append(
        [
            Record(
                id=uuid7(),
                ts=now_ts(),
                topic="openlineage.event",
                subject=f"run:{run_id}",
                data={"event": {"run": {"facets": {"custom": facet}}, "job": "not an object"}},
            )
        ]
    )
    state = lookup_runs(store, [run_id])[run_id]
    assert state.run_facets == {"custom": msgspec.Raw(msgspec.json.encode(facet, order="sorted"))}
    assert state.job_facets == {}


_ZONES = st.sampled_from(["Z", "z", "", "+00:00", "-05:30", "+14:00", "+0200"])


@given(
    moment=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    zone=_ZONES,
    digits=st.sampled_from([0, 3, 6, 9]),
)
def test_event_times_are_written_as_format_ts_writes_them(
    moment: datetime, zone: str, digits: int
) -> None:
    fraction = f".{moment.microsecond:06d}{'789'}"[: digits + 1] if digits else ""
    text = moment.replace(microsecond=0).isoformat() + fraction + zone
    parsed = parse_event_time(text)
    assert parsed is not None
    micros = (parsed - _EPOCH) // timedelta(microseconds=1)
    assert _ts(text) == format_ts(micros * 1000)
    assert parsed.tzinfo is not None and parsed.astimezone(UTC).tzinfo is UTC


# -- the batch route ------------------------------------------------------------------------


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Any]:
    home = init_home(tmp_path / ".datatrail")
    tokens = issue_tokens(home, ("producer",))
    with client(home) as c:
        c.headers.update(bearer(tokens["producer"]))
        yield c


def test_a_batch_that_is_not_an_array_of_json_is_refused_whole(api: Any) -> None:
    not_json = api.post("/api/v1/lineage/batch", content=b"[{nope")
    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == "bad_json"
    not_array = api.post("/api/v1/lineage/batch", json={"eventType": "START"})
    assert not_array.status_code == 400 and "not dict" in not_array.json()["error"]["message"]
    empty = api.post("/api/v1/lineage/batch", content=b"[]")
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "bad_batch"


def test_a_batch_element_that_is_not_an_object_is_rejected_alone(api: Any, testdata: Path) -> None:
    start = _run(_sample(testdata), 1)[0]
    response = api.post("/api/v1/lineage/batch", json=[start, [1, 2], "text"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["summary"]["successful"] == 1
    assert [(f["index"], f["pointer"]) for f in body["failed_events"]] == [(1, "/1"), (2, "/2")]
    assert body["appended"] == 4  # RunStarted, two IORecorded, the record
