"""Alerts and contracts from the command line, and the quality metrics recorded at level full."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
from typer.testing import CliRunner

import datatrail
from datatrail.capture._hash_tables import _HLL_P, _hll, _hll_update, summarize_table
from datatrail.cli import app

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_quality_metrics_at_level_full_count_nulls_distinct_bytes_and_bounds(trail) -> None:
    frame = pd.DataFrame(
        {
            "id": np.arange(1000),
            "city": ["a", "b", None, "c"] * 250,
            "day": pd.to_datetime(["2026-01-01", "2026-02-01"] * 500),
        }
    )
    with datatrail.run("stats", level="full") as r:
        r.output(frame, dataset=datatrail.DatasetRef(namespace="w", name="t"))
    t = trail()
    stats = t.artifact(t.latest_version("w", "t")).stats
    assert stats is not None
    assert stats["rows"] == 1000 and stats["bytes"] > 1000 * 8
    assert stats["columns"]["id"] == {"nulls": 0, "min": 0, "max": 999, "distinct": 1000}
    assert stats["columns"]["city"] == {"nulls": 250, "distinct": 3}
    assert stats["columns"]["day"]["distinct"] == 2
    assert stats["columns"]["day"]["min"].startswith("2026-01-01")


def test_distinct_estimates_are_within_three_percent_on_every_path() -> None:
    rng = np.random.default_rng(5)
    for cardinality in (1, 50, 20_000, 300_000):
        values = rng.integers(0, cardinality, 400_000)
        exact = len(np.unique(values))
        words = pa.array(np.char.add("w", values.astype(str)))
        for column in (pa.array(values), pa.array(values.astype(float)), words):
            estimate = _hll(column)
            assert estimate is not None
            assert abs(estimate - exact) <= max(1, 0.03 * exact), (cardinality, column.type)
    summary = summarize_table(pl.DataFrame({"x": [1, 1, 2, None]}))
    assert summary is not None and summary["columns"]["x"]["distinct"] == 2


def test_hll_registers_hold_each_buckets_highest_rank_as_the_definition_gives_it() -> None:
    # Ranks by the definition, one hash at a time: leading zeros of the bits below the
    # bucket's, plus one; a hash whose lower bits are all zero ranks 65 - p.
    p = _HLL_P
    low_bits = 64 - p
    edges = [0, 1, 2**64 - 1, 2**63, 1 << (low_bits - 1), (1 << low_bits) - 1, 1 << low_bits, 3]
    rng = random.Random(11)
    hashes = edges + [rng.getrandbits(64) for _ in range(50_000)]
    hashes += [rng.getrandbits(64) >> rng.randrange(64) for _ in range(5_000)]  # long zero runs
    expected = [0] * (1 << p)
    for h in hashes:
        low = h & ((1 << low_bits) - 1)
        rank = low_bits - low.bit_length() + 1
        expected[h >> low_bits] = max(expected[h >> low_bits], rank)
    registers = np.zeros(1 << p, dtype=np.uint8)
    _hll_update(registers, np.array(hashes, dtype=np.uint64))
    assert registers.tolist() == expected


def test_contract_commands_round_trip(tmp_path: Path, trail) -> None:
    ds = datatrail.DatasetRef(namespace="w", name="orders")
    with datatrail.run("publish") as r:
        r.output(pd.DataFrame({"id": [1, 2], "amount": [1.5, 2.5]}), dataset=ds)
    trail()  # flushed
    home = str(trail.home)
    code, out, err = invoke(
        "contract", "infer", "dataset:w:orders", "--mode", "block", "--trail", home
    )
    assert code == 0, err
    assert "dataset: dataset:w:orders" in out and "type: int64" in out
    first = tmp_path / "v1.yaml"
    first.write_text(out)
    code, out, err = invoke(
        "contract", "apply", str(first), "--reason", "first", "--trail", home, "--json"
    )
    assert code == 0, err
    assert [v["version"] for v in json.loads(out)] == [1]
    second = tmp_path / "v2.yaml"
    second.write_text(first.read_text().replace("  - name: amount\n    type: double\n", ""))
    code, out, _ = invoke(
        "contract", "diff", "dataset:w:orders", "1", str(second), "--trail", home, "--json"
    )
    assert code == 1
    data = json.loads(out)
    assert data["verdict"] == "breaking"
    assert [(c["kind"], c["column"]) for c in data["changes"]] == [("column_removed", "amount")]
    code, out, _ = invoke("contract", "show", "dataset:w:orders", "--trail", home, "--json")
    assert code == 0 and json.loads(out)["contract"]["mode"] == "block"
    code, _, err = invoke("contract", "show", "dataset:w:nope", "--trail", home)
    assert code == 2 and "no recorded contract" in err


def test_alert_commands_scan_list_and_ack(trail) -> None:
    rng = random.Random(4)
    for i in range(30):
        with datatrail.run("orders-load") as r:
            rows = 1000 + rng.randint(-10, 10) if i < 29 else 5
            r.output(
                pd.DataFrame({"x": range(rows)}),
                dataset=datatrail.DatasetRef(namespace="w", name="o"),
            )
    trail()  # flushed
    home = str(trail.home)
    code, out, err = invoke("alerts", "scan", "--trail", home, "--no-notify", "--json")
    assert code == 0, err
    raised = json.loads(out)["raised"]
    assert [a["kind"] for a in raised] == ["anomaly"]
    assert "rows_out" in raised[0]["details"]["metrics"]
    code, out, _ = invoke("alerts", "scan", "--trail", home, "--no-notify", "--json")
    assert json.loads(out)["raised"] == []
    code, out, _ = invoke("alerts", "--trail", home, "--json")
    (alert,) = json.loads(out)
    assert alert["acked"] is False
    code, out, _ = invoke(
        "alerts", "ack", alert["alert_id"], "--note", "test data", "--trail", home, "--json"
    )
    assert code == 0 and json.loads(out)["ack"]["note"] == "test data"
    code, out, _ = invoke("alerts", "--unacked", "--trail", home, "--json")
    assert json.loads(out) == []
    code, _, err = invoke("alerts", "ack", "anomaly-0000", "--trail", home)
    assert code == 2 and "no alert" in err
