"""Data export: the log and the projection tables as JSON lines and Parquet."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from datatrail.cli import app
from datatrail.errors import UsageError
from datatrail.interop import export_jsonl, export_parquet
from datatrail.lineage import Trail


@pytest.fixture(scope="module")
def demo_trail(tmp_path_factory: pytest.TempPathFactory) -> str:
    from datatrail.demo import run_demo

    return run_demo(tmp_path_factory.mktemp("demo") / "demo").trail


def test_jsonl_events_are_the_whole_log_in_order(demo_trail: str) -> None:
    out = io.StringIO()
    with Trail(demo_trail) as t:
        count = export_jsonl(t.store, out)
        size = t.store.size()
        leaf0 = t.store.leaves(0, 1)[0].hex()
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert count == size == len(rows)
    assert [r["index"] for r in rows] == list(range(size))
    assert rows[0]["leaf"] == leaf0
    assert {r["kind"] for r in rows} >= {"run_started", "run_finished", "io"}
    assert all(r["event"]["id"] == r["id"] for r in rows)


def test_jsonl_of_a_projection_names_columns_and_decodes_json(demo_trail: str) -> None:
    out = io.StringIO()
    with Trail(demo_trail) as t:
        count = export_jsonl(t.store, out, table="runs")
        runs = t.store.query("SELECT COUNT(*) FROM runs")[0][0]
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert count == runs
    assert all(isinstance(r["params"], dict) for r in rows)
    assert {r["status"] for r in rows} == {"completed"}


def test_parquet_round_trips_the_rows(demo_trail: str, tmp_path: Path) -> None:
    path = tmp_path / "io.parquet"
    with Trail(demo_trail) as t:
        count = export_parquet(t.store, path, table="run_io")
        ids = sorted(r[0] for r in t.store.query("SELECT artifact_id FROM run_io"))
    table = pq.read_table(path)
    assert table.num_rows == count
    assert sorted(table.column("artifact_id").to_pylist()) == ids


def test_parquet_events_keep_each_event_as_json_text(demo_trail: str, tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    result = CliRunner().invoke(
        app,
        ["export", "--format", "parquet", "-o", str(path), "--trail", demo_trail, "--json"],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    table = pq.read_table(path)
    assert summary["count"] == table.num_rows
    first = json.loads(table.column("event").to_pylist()[0])
    assert first["id"] == table.column("id").to_pylist()[0]


def test_an_unknown_table_is_refused_with_the_choices(demo_trail: str) -> None:
    with Trail(demo_trail) as t, pytest.raises(UsageError, match="runs"):
        export_jsonl(t.store, io.StringIO(), table="secrets")
    result = CliRunner().invoke(
        app, ["export", "--format", "jsonl", "--table", "nope", "--trail", demo_trail]
    )
    assert result.exit_code == 2


def test_parquet_needs_an_output_file(demo_trail: str) -> None:
    result = CliRunner().invoke(app, ["export", "--format", "parquet", "--trail", demo_trail])
    assert result.exit_code == 2
    assert "-o" in result.output
