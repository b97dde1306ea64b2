"""OpenTelemetry: runs keep the active trace and span ids; span_run opens a span around a run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import datatrail
from datatrail.integrations import otel
from datatrail.model import RunStarted, decode_event


@pytest.fixture
def tracing() -> Iterator[tuple[object, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel.install()
    yield provider.get_tracer("test"), exporter
    otel.uninstall()
    provider.shutdown()


def _facets(t: datatrail.Trail) -> dict[str, dict]:
    events = [decode_event(se.body) for se in t.store.events() if se.kind == "run_started"]
    return {e.run_id: (e.facets or {}) for e in events if isinstance(e, RunStarted)}


def test_runs_inside_a_span_keep_its_trace_and_span_ids(trail, tracing) -> None:
    tracer, exporter = tracing
    with tracer.start_as_current_span("nightly"), datatrail.run("inside") as inside:  # type: ignore[attr-defined]
        pass
    with datatrail.run("outside") as outside:
        pass
    (span,) = exporter.get_finished_spans()
    facets = _facets(trail())
    assert facets[inside.run_id]["opentelemetry"] == {
        "trace_id": format(span.context.trace_id, "032x"),
        "span_id": format(span.context.span_id, "016x"),
        "trace_flags": int(span.context.trace_flags),
    }
    assert "opentelemetry" not in facets[outside.run_id]


def test_uninstalled_runs_carry_no_trace_ids(trail, tracing) -> None:
    tracer, _ = tracing
    otel.uninstall()
    with tracer.start_as_current_span("quiet"), datatrail.run("untraced") as r:  # type: ignore[attr-defined]
        pass
    assert "opentelemetry" not in _facets(trail())[r.run_id]


def test_span_run_opens_a_span_that_names_the_run_and_nests(trail, tracing) -> None:
    tracer, exporter = tracing
    with (
        otel.span_run("load", tracer=tracer, params={"day": "mon"}) as outer,
        otel.span_run("parse", tracer=tracer) as inner,
    ):
        pass
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["load"].attributes["datatrail.run_id"] == outer.run_id
    assert spans["parse"].attributes["datatrail.parent_run_id"] == outer.run_id
    assert spans["parse"].parent.span_id == spans["load"].context.span_id
    t = trail()
    facets = _facets(t)
    assert facets[inner.run_id]["opentelemetry"]["span_id"] == format(
        spans["parse"].context.span_id, "016x"
    )
    assert t.run(inner.run_id).parent_run_id == outer.run_id
    assert t.run(outer.run_id).params == {"day": "mon"}


def test_span_run_records_a_failure_on_span_and_run(trail, tracing) -> None:
    tracer, exporter = tracing
    with pytest.raises(RuntimeError, match="boom"), otel.span_run("fails", tracer=tracer) as r:
        raise RuntimeError("boom")
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    detail = trail().run(r.run_id)
    assert detail.status == "failed" and detail.error is not None
    assert detail.error["message"] == "boom"
