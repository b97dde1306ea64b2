"""Extension points of the recorders: output checks, io observers, run facets, records."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import datatrail
from datatrail.capture import (
    OutputContext,
    emit_record,
    register_io_observer,
    register_output_check,
    register_run_facets,
)
from datatrail.errors import PolicyDenied


@pytest.fixture
def removers() -> Iterator[list]:
    found: list = []
    yield found
    for remove in found:
        remove()


def test_a_refusing_check_stops_the_output_and_fails_the_step(trail, removers) -> None:
    seen: list[OutputContext] = []

    def check(ctx: OutputContext) -> None:
        seen.append(ctx)
        if ctx.label == "return" and ctx.job.name.endswith(".leak"):
            raise PolicyDenied("pii may not land in a public dataset")

    removers.append(register_output_check(check))

    @datatrail.track
    def leak(x: bytes) -> bytes:
        return x + b"!"

    @datatrail.track
    def fine(x: bytes) -> bytes:
        return x + b"?"

    with pytest.raises(PolicyDenied, match="public dataset"):
        leak(b"secret")
    assert fine(b"ok") == b"ok?"
    t = trail()
    runs = {r.job_name.rsplit(".", 1)[-1]: t.run(r.run_id) for r in t.runs()}
    assert runs["leak"].status == "failed"
    assert (
        runs["leak"].error is not None
        and runs["leak"].error["type"] == "datatrail.errors.PolicyDenied"
    )
    assert runs["leak"].outputs == []
    assert [o.label for o in runs["fine"].outputs] == ["return"]
    assert [c.role for c in seen] == ["output", "output"]


def test_handle_output_check_refuses_before_registering(trail, removers, tmp_path: Path) -> None:
    def check(ctx: OutputContext) -> None:
        if ctx.dataset is not None and ctx.dataset.name.endswith("public.csv"):
            raise PolicyDenied("refused")

    removers.append(register_output_check(check))
    public = tmp_path / "public.csv"
    public.write_text("a\n1\n")
    private = tmp_path / "private.csv"
    private.write_text("a\n2\n")
    with datatrail.run("publish") as r:
        r.output(private)
        with pytest.raises(PolicyDenied):
            r.output(public)
        assert r.output(private) == private
    t = trail()
    (run,) = t.runs()
    detail = t.run(run.run_id)
    assert [o.dataset for o in detail.outputs] == [f"dataset:file:{private.resolve()}"] * 2


def test_observers_see_inputs_and_outputs_with_values(trail, removers) -> None:
    seen: list[tuple[str, str | None, object]] = []
    removers.append(register_io_observer(lambda c: seen.append((c.role, c.label, c.value))))

    def broken(ctx: OutputContext) -> None:
        raise RuntimeError("observer bug")

    removers.append(register_io_observer(broken))

    @datatrail.track
    def double(data: bytes) -> bytes:
        return data * 2

    assert double(b"ab") == b"abab"
    assert seen == [("input", "data", b"ab"), ("output", "return", b"abab")]
    t = trail()
    assert t.run(t.runs()[0].run_id).status == "completed"


def test_run_facets_are_kept_on_the_start_event(trail, removers) -> None:
    removers.append(register_run_facets(lambda: {"trace": {"trace_id": "ab" * 16}}))
    removers.append(register_run_facets(lambda: None))

    with datatrail.run("traced"):
        pass
    t = trail()
    from datatrail.model import RunStarted, decode_event
    from datatrail.store import SQLiteStore

    t.close()
    store = SQLiteStore(trail.home / "trail.db")
    try:
        starts = [
            decode_event(e.body) for e in store.events() if e.kind == "run_started" and e.body
        ]
    finally:
        store.close()
    assert len(starts) == 1
    assert isinstance(starts[0], RunStarted)
    facets = dict(starts[0].facets or {})
    facets.pop("environmentVariables", None)  # allowlisted variables such as CI, when set
    assert facets == {"trace": {"trace_id": "ab" * 16}}


def test_records_land_in_the_records_projection(trail) -> None:
    with datatrail.run("checked") as r:
        emit_record("contract.check", subject=f"run:{r.run_id}", data={"passed": False, "n": 3})
    t = trail()
    t.close()
    from datatrail.store import SQLiteStore

    store = SQLiteStore(trail.home / "trail.db")
    try:
        rows = store.query("SELECT topic, subject, data, actor FROM records")
    finally:
        store.close()
    assert len(rows) == 1
    topic, subject, data, actor = rows[0]
    assert (topic, subject) == ("contract.check", f"run:{r.run_id}")
    assert data == '{"n":3,"passed":false}'
    assert actor is not None and '"user"' in actor
