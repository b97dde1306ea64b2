"""What a tracked call hands the writer: items the garbage collector never sees, same events."""

from __future__ import annotations

import gc
import logging
import sys
import threading
from collections.abc import Iterable
from typing import Any

import pytest

import datatrail
from datatrail.capture import _state
from datatrail.capture._redact import redact_params
from datatrail.capture._track import _Tracked
from datatrail.emit import Writer
from datatrail.emit._writer import Deferred
from datatrail.model import Event, RunFinished, RunStarted, decode_event, is_uuid7, uuid7


def _events(trail: Any) -> list[Event]:
    t = trail()
    return [decode_event(e.body) for e in t.store.events() if e.body is not None]


class _Collect:
    """Stands in for the writer: keeps what is submitted, writes nothing."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def submit(self, item: Any) -> None:
        self.items.append(item)


@pytest.fixture
def collected(trail: Any, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    @datatrail.track
    def warm() -> None:
        return None

    warm()  # the real writer starts (and installs its extensions) before the stand-in
    datatrail.flush()
    stand_in = _Collect()
    monkeypatch.setattr(_state._state, "writer", stand_in)
    return stand_in.items


# -- ids, made on the caller's and the writer's threads at once --------------------------


def test_ids_made_by_many_threads_at_once_are_unique_and_increase_per_thread() -> None:
    # A tiny switch interval makes threads change in the middle of making an id.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    made: list[list[str]] = [[] for _ in range(4)]
    start = threading.Barrier(len(made))

    def make(ids: list[str]) -> None:
        start.wait()
        for _ in range(20_000):
            ids.append(uuid7())

    threads = [threading.Thread(target=make, args=(ids,)) for ids in made]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    everything = [i for ids in made for i in ids]
    assert len(set(everything)) == len(everything) == 80_000
    assert all(ids == sorted(ids) for ids in made)
    assert all(is_uuid7(i) for i in everything)


# -- the queue items ----------------------------------------------------------------------


def test_queued_items_of_calls_and_blocks_are_untracked_by_the_garbage_collector(
    collected: list[Any],
) -> None:
    @datatrail.track
    def returns_none(i: int, scale: float) -> None:
        return None

    @datatrail.track
    def returns_scalar(i: int) -> float:
        return i * 0.5

    @datatrail.track
    def fails(i: int) -> None:
        raise ValueError(i)

    returns_none(1, 0.5)
    returns_scalar(2)
    with pytest.raises(ValueError):
        fails(3)
    with datatrail.run("block", params={"day": "2026-11-20", "nested": {"k": [1]}}):
        pass
    assert len(collected) == 8
    assert all(isinstance(item, Deferred) for item in collected)
    gc.collect()
    assert not any(gc.is_tracked(item) for item in collected)
    # (a function's first start also carries its code version: not what this is about)
    kinds = [
        [type(e).__name__ for e in item.build() if type(e).__name__ != "CodeVersion"]
        for item in collected
    ]
    assert kinds == [
        ["RunStarted"],
        ["RunFinished"],
        ["RunStarted"],
        ["IORecorded", "RunFinished"],
        ["RunStarted"],
        ["RunFinished"],
        ["RunStarted"],
        ["RunFinished"],
    ]
    (failed,) = collected[5].build()
    assert isinstance(failed, RunFinished) and failed.status == "failed"
    assert failed.error is not None and failed.error.type == "builtins.ValueError"


def test_a_call_with_keyword_or_data_arguments_is_bound_in_full(collected: list[Any]) -> None:
    @datatrail.track
    def step(a: int, b: float, c: Any) -> None:
        return None

    step(1, 0.5, c={"k": [1, 2]})
    step(2, 1.5, [3])
    starts = [item.build()[-1] for item in collected[::2]]
    assert all(isinstance(s, RunStarted) for s in starts)
    assert [s.params for s in starts] == [
        {"a": 1, "b": 0.5, "c": {"k": [1, 2]}},
        {"a": 2, "b": 1.5, "c": [3]},
    ]


# -- binding positional scalars --------------------------------------------------------------


def test_positional_scalars_redact_secret_names_and_the_names_listed(trail: Any) -> None:
    @datatrail.track(redact=["host"])
    def connect(host: str, password: str, n_tokens: int, apiKey: str) -> None:  # noqa: N803
        return None

    connect("db", "hunter2", 3, "k-123")
    (start,) = [e for e in _events(trail) if isinstance(e, RunStarted)]
    assert start.params == {
        "host": datatrail.REDACTED,
        "password": datatrail.REDACTED,
        "n_tokens": 3,
        "apiKey": datatrail.REDACTED,
    }


def _plain(a: int, token: str, b: float) -> None:
    return None


def _self_first(self: Any, a: int) -> None:
    return None


def _defaults(a: int, secret: str = "s", b: int = 2) -> None:
    return None


def _star(a: int, *rest: Any) -> None:
    return None


def _tracked(fn: Any, redact: tuple[str, ...] = ()) -> _Tracked:
    return _Tracked(
        fn,
        name=None,
        namespace=None,
        inputs=None,
        params=None,
        level=None,
        redact=redact,
        outputs=True,
    )


@pytest.mark.parametrize(
    ("fn", "args"),
    [
        (_plain, (1, "t", 0.5)),
        (_plain, (1, "t")),
        (_plain, (1, "t", 0.5, 9)),
        (_plain, (1j, None, True)),
    ],
)
def test_positional_scalars_bind_as_general_binding_and_redaction_would(
    fn: Any, args: tuple[Any, ...]
) -> None:
    t = _tracked(fn, redact=("b",))
    assert t.plain
    assert t.plain_params(args) == redact_params(t.binder.bind(args, {}), t.redact)
    assert list(t.plain_params(args)) == list(redact_params(t.binder.bind(args, {}), t.redact))


@pytest.mark.parametrize("fn", [_self_first, _defaults, _star])
def test_signatures_with_self_defaults_or_star_args_are_not_bound_by_position_alone(
    fn: Any,
) -> None:
    t = _tracked(fn)
    assert not t.plain


def test_recorded_events_of_tracked_calls_and_blocks(trail: Any) -> None:
    @datatrail.track
    def step(i: int, scale: float) -> None:
        return None

    for i in range(3):
        step(i, 0.5)
    with datatrail.run("block", params={"day": "2026-11-20"}):
        pass
    events = _events(trail)
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "CodeVersion",
        "Environment",
        "RunStarted",
        "RunFinished",
        "RunStarted",
        "RunFinished",
        "RunStarted",
        "RunFinished",
        "CodeVersion",
        "RunStarted",
        "RunFinished",
    ]
    starts = [e for e in events if isinstance(e, RunStarted)]
    assert [s.params for s in starts] == [
        {"i": 0, "scale": 0.5},
        {"i": 1, "scale": 0.5},
        {"i": 2, "scale": 0.5},
        {"day": "2026-11-20"},
    ]
    code_ids = [e.code_id for e in events if type(e).__name__ == "CodeVersion"]
    assert [s.code_id for s in starts] == [code_ids[0]] * 3 + [code_ids[1]]
    assert len({s.env_id for s in starts}) == 1 and starts[0].env_id is not None
    assert all(s.level == "standard" and s.actor is not None for s in starts)
    ends = [e for e in events if isinstance(e, RunFinished)]
    assert [e.run_id for e in ends] == [s.run_id for s in starts]
    assert all(e.status == "completed" and e.error is None for e in ends)


def test_a_new_trail_records_the_code_version_again(trail: Any, tmp_path: Any) -> None:
    @datatrail.track
    def step(i: int) -> None:
        return None

    step(1)
    first = _events(trail)
    datatrail.configure(home=tmp_path / "other" / ".datatrail")
    step(2)
    datatrail.flush()
    with datatrail.Trail(tmp_path / "other" / ".datatrail") as other:
        second = [decode_event(e.body) for e in other.store.events() if e.body is not None]
    code = [[e for e in evs if type(e).__name__ == "CodeVersion"] for evs in (first, second)]
    assert len(code[0]) == len(code[1]) == 1
    assert code[0][0].code_id == code[1][0].code_id


# -- the writer --------------------------------------------------------------------------


class _Boom(Deferred, gc=False):
    def build(self) -> Iterable[Event]:
        raise RuntimeError("no events today")


class _One(Deferred, gc=False):
    run_id: str

    def build(self) -> Iterable[Event]:
        return [
            RunFinished(
                id="018f0000-0000-7000-8000-000000000000",
                ts="2026-11-20T00:00:00.000000Z",
                run_id=self.run_id,
                status="completed",
            )
        ]


def test_a_deferred_item_that_fails_is_dropped_and_logged_and_the_next_is_written(
    trail: Any, caplog: pytest.LogCaptureFixture
) -> None:
    writer = _state.get_writer()
    assert isinstance(writer, Writer)
    with caplog.at_level(logging.ERROR, logger="datatrail"):
        writer.submit(_Boom())
        writer.submit(_One("018f0000-0000-7000-8000-000000000001"))
        result = datatrail.flush()
    assert result.dropped == 1 and result.durable == 1
    assert "building an event failed" in caplog.text and "no events today" in caplog.text
    (event,) = _events(trail)
    assert isinstance(event, RunFinished) and event.run_id.endswith("0001")


def test_the_first_run_block_of_a_trail_keeps_the_allowlisted_variables(
    trail: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The variables are read when the writer starts, as the first run begins.
    _state.shutdown()
    monkeypatch.setattr(_state, "_ALLOWLIST", None)
    monkeypatch.setattr(_state, "_ENV_FACET", None)
    monkeypatch.setenv("DATATRAIL_ENV_ALLOWLIST", "DT_TEST_QUEUE_BUILD")
    monkeypatch.setenv("DT_TEST_QUEUE_BUILD", "build-7")
    with datatrail.run("first"):
        pass
    (start,) = [e for e in _events(trail) if isinstance(e, RunStarted)]
    assert start.facets == {"environmentVariables": {"DT_TEST_QUEUE_BUILD": "build-7"}}
