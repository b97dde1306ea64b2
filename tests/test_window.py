"""Streaming windows: child runs of the stream, with offsets, files, counts and sampled batch hashes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

import datatrail
from datatrail.capture._window import TOPIC, window, windows_for
from datatrail.errors import UsageError
from datatrail.model import DatasetRef

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
TOPIC_DS = DatasetRef(namespace="kafka://broker:9092", name="orders")


def test_a_window_is_a_child_run_with_offsets_outputs_counts_and_event_times(
    trail, tmp_path: Path
) -> None:
    part = tmp_path / "date=2026-11-20" / "hour=08"
    part.mkdir(parents=True)
    (part / "part-0.csv").write_text("id\n1\n2\n")
    with datatrail.run("orders-stream") as stream:
        with datatrail.window(
            stream, start=T0, end=T0 + timedelta(minutes=5), watermark=T0 + timedelta(minutes=6)
        ) as w:
            w.input_offsets(TOPIC_DS, partition=0, start=100, end=250)
            w.event_time(T0 + timedelta(seconds=3), T0 + timedelta(minutes=4))
            w.count(input_rows=150, output_rows=2, late=1)
            w.output(part)
            assert datatrail.current_run() is w.run
        assert datatrail.current_run() is stream
    t = trail()
    detail = t.run(w.run_id)
    assert detail.parent_run_id == stream.run_id
    assert detail.job_name == "orders-stream.window"
    assert detail.params["window_start"] == "2026-11-20T08:00:00.000000Z"
    assert detail.params["watermark"] == "2026-11-20T08:06:00.000000Z"
    assert [i.dataset for i in detail.inputs] == ["dataset:kafka://broker:9092:orders"]
    (summary,) = windows_for(t, f"dataset:file:{part.resolve()}")
    assert summary["window_run_id"] == w.run_id
    assert summary["inputs"][0]["offsets"] == {
        "source": "dataset:kafka://broker:9092:orders",
        "partition": 0,
        "start": 100,
        "end": 250,
    }
    assert summary["counts"]["input_rows"] == 150 and summary["counts"]["late"] == 1
    assert summary["event_time"] == {
        "min": "2026-11-20T08:00:03.000000Z",
        "max": "2026-11-20T08:04:00.000000Z",
    }
    assert summary["status"] == "completed"


def test_windows_for_names_every_window_that_wrote_a_partition(trail, tmp_path: Path) -> None:
    out = tmp_path / "agg.csv"
    with datatrail.run("s") as stream:
        for i in range(3):
            with window(
                stream, start=T0 + timedelta(minutes=i), end=T0 + timedelta(minutes=i + 1)
            ) as w:
                w.input_offsets(TOPIC_DS, partition=1, start=i * 10, end=i * 10 + 10)
                out.write_text(f"n\n{i}\n")
                w.output(out)
    t = trail()
    found = windows_for(t, f"dataset:file:{out.resolve()}")
    assert [f["inputs"][0]["offsets"]["start"] for f in found] == [0, 10, 20]
    last_artifact = found[-1]["outputs"][0]["artifact_id"]
    (only,) = windows_for(t, f"artifact:{last_artifact}")
    assert only["inputs"][0]["offsets"]["end"] == 30


def test_sampling_hashes_one_batch_in_four_and_records_the_rate(trail) -> None:
    batches = [pd.DataFrame({"v": [i, i + 1]}) for i in range(8)]
    with (
        datatrail.run("s") as stream,
        window(stream, start=T0, end=T0 + timedelta(minutes=1), sample=0.25) as w,
    ):
        for b in batches:
            w.input(b, name="batch")
    t = trail()
    assert len(t.run(w.run_id).inputs) == 2
    rows = t.store.query("SELECT data FROM records WHERE topic = ?", (TOPIC,))
    (summary,) = [json.loads(d) for (d,) in rows]
    assert summary["sample"] == 0.25
    assert summary["counts"]["batches"] == 8
    assert summary["counts"]["hashed_batches"] == 2
    assert summary["counts"]["input_rows"] == 16


def test_each_makes_one_window_per_micro_batch_bounded_by_its_event_times(trail) -> None:
    batches = [
        pd.DataFrame({"ts": [T0 + timedelta(seconds=s) for s in (i * 10, i * 10 + 9)]})
        for i in range(3)
    ]
    with datatrail.run("micro") as stream:
        seen = [
            (w.run_id, len(b))
            for w, b in window.each(
                batches,
                stream,
                event_time=lambda b: (b.ts.min().to_pydatetime(), b.ts.max().to_pydatetime()),
            )
        ]
    t = trail()
    children = [t.run(r) for r, _ in seen]
    assert all(c.parent_run_id == stream.run_id for c in children)
    assert [c.params["window_start"] for c in children] == [
        "2026-11-20T08:00:00.000000Z",
        "2026-11-20T08:00:10.000000Z",
        "2026-11-20T08:00:20.000000Z",
    ]
    assert all(len(c.inputs) == 1 for c in children)


def test_a_failure_inside_a_window_fails_the_window_only(trail) -> None:
    with (
        datatrail.run("s") as stream,
        pytest.raises(RuntimeError),
        window(stream, start=T0, end=T0) as w,
    ):
        raise RuntimeError("bad batch")
    t = trail()
    assert t.run(w.run_id).status == "failed"
    assert t.run(stream.run_id).status == "completed"


def test_misuse_is_a_clear_error(trail) -> None:
    with pytest.raises(UsageError, match="stream's run"):
        window(start=T0, end=T0)
    with datatrail.run("s") as stream:
        with pytest.raises(UsageError, match="before its start"):
            window(stream, start=T0, end=T0 - timedelta(seconds=1))
        with pytest.raises(UsageError, match="sample"):
            window(stream, start=T0, end=T0, sample=2)
        with pytest.raises(UsageError, match="not understood"):
            window(stream, start="yesterday-ish", end=T0)
        with window(stream, start=T0, end=T0) as w, pytest.raises(UsageError, match="start <= end"):
            w.input_offsets(TOPIC_DS, start=5, end=1)
    assert datatrail.window is window
