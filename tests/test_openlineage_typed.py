"""RunEvents judged by typed decodes: never a different verdict from the validator's.

The server prepares a batch's events from their canonical bytes, judging a
RunEvent by msgspec typed decodes (the checkers' rules stated as msgspec
types) and walking it with the validator only when those cannot confirm it.
A typed decode that accepted an event the validator refuses would store an
invalid event, so every sample and every mutation of one is judged both ways.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from tests.test_interop_openlineage import _mutated, _paths, _samples

from datatrail.interop.openlineage import OpenLineageMapper, validate_openlineage
from datatrail.interop.openlineage._checks import (
    arr,
    integer,
    lazy,
    msgspec_type,
    number,
    obj,
    one_of,
    string,
)
from datatrail.interop.openlineage._ingest import PreparedEvent, prepare
from datatrail.interop.openlineage._schema import (
    InvalidOpenLineageEvent,
    _valid,
    run_event_view,
)
from datatrail.model import canonical_bytes, encode_event

_P = {"_producer": "https://example.com/p", "_schemaURL": "https://example.com/s"}


def _is_run_event(event: Any) -> bool:
    return isinstance(event, dict) and "run" in event and "job" in event


def _json(event: Any) -> Any:
    """``event`` as the server has it: decoded from JSON."""
    return msgspec.json.decode(msgspec.json.encode(event))


def _rich(sample: dict[str, Any]) -> dict[str, Any]:
    """The sample with custom facets and the facets msgspec types cannot state (one_of, any_of)."""
    event = copy.deepcopy(sample)
    event["run"]["facets"]["custom"] = {**_P, "anything": [1, {"x": None}]}
    event["job"]["facets"]["lineage"] = {
        **_P,
        "entries": [{"type": "JOB", "namespace": "n", "name": "j", "inputs": []}],
    }
    event["inputs"][0]["inputFacets"]["subset"] = {
        **_P,
        "inputCondition": {"type": "location", "locations": ["s3://b/k"]},
    }
    event["outputs"][0]["facets"]["schema"]["fields"] = [
        {"name": "a", "type": "struct", "fields": [{"name": "b", "fields": [{"name": "c"}]}]}
    ]
    event["outputs"][0]["outputFacets"]["mine"] = {**_P, "n": 3}
    return event


def _candidates(testdata: Path) -> Iterator[tuple[str, Any]]:
    """Every sample RunEvent, the rich one, and every mutation of each."""
    samples = _samples(testdata)
    full = dict(samples)["openlineage/client-tests/example_full_event.json"]
    # The large samples add time, not kinds of fields.
    runs = [(n, e) for n, e in samples if _is_run_event(e) and sum(1 for _ in _paths(e)) <= 200]
    runs.append(("rich", _rich(full)))
    for name, event in runs:
        yield name, event
        for _, op, mutated in _mutated(event):
            yield f"{name} {op!r}", mutated


def _verdict(event: Any) -> tuple[bool, str | None, str | None]:
    try:
        validate_openlineage(event)
    except InvalidOpenLineageEvent as exc:
        return False, exc.pointer, str(exc)
    return True, None, None


def test_a_typed_decode_never_accepts_an_event_the_validator_refuses(testdata: Path) -> None:
    confirmed = refused = unconfirmed = 0
    wrong = []
    for name, candidate in _candidates(testdata):
        event = _json(candidate)
        if not _is_run_event(event):
            continue
        view = run_event_view(canonical_bytes(event))
        valid = _valid(event)
        if view is not None and not valid:
            wrong.append(name)
        confirmed += view is not None
        refused += view is None and not valid
        unconfirmed += view is None and valid
    assert wrong == []
    # both verdicts are common, and a valid RunEvent is almost always confirmed in C
    assert confirmed > 2_000 and refused > 8_000
    assert unconfirmed == 0


def test_the_rich_event_is_confirmed_and_each_kind_of_facet_is_judged(testdata: Path) -> None:
    full = dict(_samples(testdata))["openlineage/client-tests/example_full_event.json"]
    rich = _rich(full)
    assert run_event_view(canonical_bytes(rich)) is not None
    broken = [copy.deepcopy(rich) for _ in range(5)]
    broken[0]["run"]["facets"]["custom"]["_producer"] = 1  # a custom facet's base rule
    broken[1]["job"]["facets"]["lineage"] = {**_P, "inputs": [{"type": "OTHER"}]}  # any_of
    broken[2]["inputs"][0]["inputFacets"]["subset"]["inputCondition"]["type"] = "other"
    broken[3]["outputs"][0]["facets"]["schema"]["fields"][0]["fields"][0]["fields"][0]["name"] = 2
    broken[4]["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] = 1.5
    for event in broken:
        assert run_event_view(canonical_bytes(event)) is None
        assert not _valid(event)


def _prepared(event: Any) -> tuple[PreparedEvent | None, tuple[bool, str | None, str | None]]:
    """What prepare makes of a decoded event, and its verdict as _verdict says it."""
    try:
        return prepare(copy.deepcopy(event), decoded=True), (True, None, None)
    except InvalidOpenLineageEvent as exc:
        return None, (False, exc.pointer, str(exc))


def test_prepare_refuses_what_the_validator_refuses_with_the_same_pointer(
    testdata: Path,
) -> None:
    compared = 0
    for name, candidate in _candidates(testdata):
        if not (name.startswith("rich") or "example_full_event" in name):
            continue
        event = _json(candidate)
        if not isinstance(event, dict):
            continue
        prep, verdict = _prepared(event)
        assert verdict == _verdict(event), name
        if prep is not None:
            slow = prepare(copy.deepcopy(event), validated=True)
            made = [encode_event(e) for e in OpenLineageMapper().map_prepared(prep)]
            expected = [encode_event(e) for e in OpenLineageMapper().map_prepared(slow)]
            assert made == expected, name
        compared += 1
    assert compared > 1_000


def test_an_integer_written_with_a_fraction_is_left_to_the_validator(testdata: Path) -> None:
    """msgspec refuses 3.0 for an int; JSON Schema (and the validator) accept it."""
    full = dict(_samples(testdata))["openlineage/client-tests/example_full_event.json"]
    event = copy.deepcopy(full)
    event["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] = 2000.0
    event = _json(event)
    assert run_event_view(canonical_bytes(event)) is None
    prep = prepare(event, decoded=True)  # valid all the same
    assert prep.ios[1].rows == 2000


def test_a_recursive_rule_becomes_a_recursive_type() -> None:
    field: Any = None
    field = obj({"name": string, "fields": arr(lazy(lambda: field))}, ("name",))
    decoder = msgspec.json.Decoder(msgspec_type(field))
    deep: dict[str, Any] = {
        "name": "a",
        "fields": [{"name": "b", "fields": [{"name": "c", "fields": []}]}],
    }
    decoder.decode(msgspec.json.encode(deep))
    deep["fields"][0]["fields"][0]["name"] = 7
    with pytest.raises(msgspec.ValidationError, match=r"fields\[0\]\.fields\[0\]\.name"):
        decoder.decode(msgspec.json.encode(deep))


def test_rules_msgspec_types_cannot_state_have_no_type() -> None:
    assert msgspec_type(one_of(string, number, what="x")) is None
    assert msgspec_type(obj({"a": string}, together=("a", "b"))) is None
    assert msgspec_type(obj({"a": string}, extra=number)) is None
    assert msgspec_type(arr(one_of(string, number, what="x"))) is None
    assert msgspec_type(obj({"a": arr(integer)})) is not None


def test_a_closed_object_type_refuses_unknown_fields_and_an_open_one_ignores_them() -> None:
    closed = msgspec.json.Decoder(msgspec_type(obj({"a": string}, ("a",), closed=True)))
    opened = msgspec.json.Decoder(msgspec_type(obj({"a": string}, ("a", "b"))))
    with pytest.raises(msgspec.ValidationError):
        closed.decode(b'{"a": "x", "f0": 1}')  # the struct's own attribute names are no way in
    opened.decode(b'{"a": "x", "b": null, "c": 1}')  # "b" is required, of any type
    with pytest.raises(msgspec.ValidationError):
        opened.decode(b'{"a": "x"}')
