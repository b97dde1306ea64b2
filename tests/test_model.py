"""Ids, node ids, canonical bytes, timestamps and event decoding."""

import pytest

from datatrail.errors import InvalidEvent, InvalidNodeId, UsageError
from datatrail.model import (
    JobRef,
    RunStarted,
    canonical_bytes,
    decode_event,
    encode_event,
    format_ts,
    is_uuid7,
    parse_node_id,
    parse_ts,
    uuid7,
    uuid7_time_ms,
)


def test_uuid7_is_canonical_unique_and_time_ordered():
    ids = [uuid7() for _ in range(5000)]
    assert all(is_uuid7(i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert uuid7_time_ms(ids[0]) <= uuid7_time_ms(ids[-1])


@pytest.mark.parametrize(
    ("text", "namespace", "name"),
    [
        ("dataset:file:/data/orders.csv", "file", "/data/orders.csv"),
        (
            "dataset:postgres://db:5432:shop.public.orders",
            "postgres://db:5432",
            "shop.public.orders",
        ),
        ("dataset:s3://bucket:key/with:colons", "s3://bucket", "key/with:colons"),
        ("job:default:pipeline.clean", "default", "pipeline.clean"),
        ("dataset:file:C:/weird:name", "file", "C:/weird:name"),
    ],
)
def test_parse_node_id_splits_namespace_and_name(text, namespace, name):
    node = parse_node_id(text)
    assert (node.namespace, node.name) == (namespace, name)
    assert str(node) == text


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "orders.csv",
        "dataset:",
        "dataset:nocolon",
        "run:not-a-uuid",
        "artifact:sha1:abc",
        "table:x:y",
    ],
)
def test_bad_node_ids_raise_a_message_naming_the_id(bad):
    with pytest.raises(InvalidNodeId) as info:
        parse_node_id(bad)
    assert repr(bad) in str(info.value) or "node id" in str(info.value)


def test_canonical_bytes_sort_keys_without_whitespace():
    assert (
        canonical_bytes({"b": 1, "a": {"d": [1, 2], "c": "é"}})
        == '{"a":{"c":"é","d":[1,2]},"b":1}'.encode()
    )


def test_event_round_trips_through_canonical_bytes():
    ev = RunStarted(
        id=uuid7(),
        ts=format_ts(0),
        run_id=uuid7(),
        job=JobRef(namespace="n", name="j"),
        params={"z": 1, "a": 2},
    )
    data = encode_event(ev)
    assert decode_event(data) == ev
    assert data.index(b'"a":2') < data.index(b'"z":1')


def test_newer_schema_version_is_refused_with_a_clear_message():
    ev = RunStarted(
        id=uuid7(), ts=format_ts(0), run_id=uuid7(), job=JobRef(namespace="n", name="j"), v=99
    )
    with pytest.raises(InvalidEvent, match="schema version 99"):
        decode_event(encode_event(ev))


def test_unknown_fields_from_newer_writers_are_tolerated_on_decode():
    ev = RunStarted(
        id=uuid7(), ts=format_ts(0), run_id=uuid7(), job=JobRef(namespace="n", name="j")
    )
    data = encode_event(ev)[:-1] + b',"zzz_new_field":{"x":1}}'
    assert decode_event(data).run_id == ev.run_id


def test_parse_ts_accepts_iso_dates_and_spans():
    assert parse_ts("2026-11-20") == "2026-11-20T00:00:00.000000Z"
    assert parse_ts("2026-11-20T08:00:00+01:00") == "2026-11-20T07:00:00.000000Z"
    assert parse_ts("2h") < parse_ts("1h")
    with pytest.raises(UsageError, match="not understood"):
        parse_ts("yesterday-ish")
