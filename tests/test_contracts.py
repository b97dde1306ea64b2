"""Data contracts: declared in YAML, versioned in the log, checked on every output."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import datatrail
from datatrail.contracts import (
    Contract,
    ContractError,
    apply_contracts,
    contract_versions,
    diff_contracts,
    evaluate,
    infer_contract,
    install,
    parse_contracts,
)
from datatrail.errors import ContractViolation, NodeNotFound

ORDERS = datatrail.DatasetRef(namespace="warehouse", name="orders")

CONTRACT = """\
version: 1
contracts:
  - dataset: warehouse:orders
    mode: {mode}
    columns:
      - {{name: order_id, type: int64, nullable: false, unique: true}}
      - {{name: status, type: string, allowed: [paid, refunded]}}
      - {{name: amount, type: double, min: 0}}
    rows: {{min: 1}}
"""


def frame(**extra: list) -> pd.DataFrame:
    data = {
        "order_id": [1, 2, 3],
        "status": ["paid", "paid", "refunded"],
        "amount": [10.0, 20.5, 3.25],
    }
    data.update(extra)
    return pd.DataFrame(data)


@pytest.fixture
def contracted(trail) -> Iterator:
    """A trail with the contracts check installed; ``write(mode)`` declares the contract."""
    remove = install(trail.home)

    def write(mode: str = "warn") -> None:
        (trail.home / "contracts.yaml").write_text(CONTRACT.format(mode=mode))

    trail.write = write  # type: ignore[attr-defined]
    yield trail
    remove()


def records(t: datatrail.Trail, topic: str) -> list[tuple[str | None, dict]]:
    rows = t.store.query("SELECT subject, data FROM records WHERE topic = ? ORDER BY idx", (topic,))
    return [(subject, json.loads(data)) for subject, data in rows]


def publish(df: pd.DataFrame) -> None:
    with datatrail.run("publish-orders") as r:
        r.output(df, dataset=ORDERS)


def test_a_compatible_change_passes_and_the_output_registers(contracted) -> None:
    contracted.write("block")
    publish(frame(channel=["web", "shop", "web"]))  # an added column breaks no reader
    t = contracted()
    (check,) = records(t, "contract.check")
    assert check[1]["success"] is True
    assert check[1]["dataset"] == "dataset:warehouse:orders"
    assert check[1]["contract_version"] == 1
    assert check[0] == "artifact:" + t.latest_version("warehouse", "orders")
    assert {a["assertion"] for a in check[1]["assertions"]} >= {
        "column_present",
        "type",
        "not_null",
        "unique",
        "allowed_values",
        "min",
        "row_count",
    }
    (version,) = records(t, "contract.version")
    assert version[0] == "dataset:warehouse:orders" and version[1]["version"] == 1


def test_a_removed_column_fails_the_check_naming_the_column(contracted) -> None:
    contracted.write("warn")
    publish(frame().drop(columns=["amount"]))
    t = contracted()
    (check,) = records(t, "contract.check")
    assert check[1]["success"] is False
    failed = [a for a in check[1]["assertions"] if not a["success"]]
    assert failed == [
        {
            "assertion": "column_present",
            "column": "amount",
            "success": False,
            "expected": True,
            "actual": False,
        }
    ]
    # warn: the output is still registered, and no alert is raised
    assert t.latest_version("warehouse", "orders")
    assert records(t, "alert") == []


def test_block_stops_the_output_and_the_step_raises(contracted) -> None:
    contracted.write("block")

    @datatrail.track
    def build() -> None:
        with datatrail.run("inner") as r:
            r.output(frame(status=["paid", "lost", "paid"]), dataset=ORDERS)

    with pytest.raises(ContractViolation, match="column 'status'") as caught:
        build()
    assert "lost" in str(caught.value)
    assert caught.value.result.success is False
    t = contracted()
    with pytest.raises(NodeNotFound):
        t.latest_version("warehouse", "orders")
    failed = {r.job_name: r.status for r in t.runs()}
    assert set(failed.values()) == {"failed"}
    (check,) = records(t, "contract.check")
    assert check[1]["success"] is False
    (alert,) = records(t, "alert")
    assert alert[1]["kind"] == "contract" and alert[1]["severity"] == "critical"
    assert "allowed_values(status)" in alert[1]["message"]


def test_alert_mode_raises_an_alert_and_keeps_the_output(contracted) -> None:
    contracted.write("alert")
    publish(frame(order_id=[1, 1, 2]))
    t = contracted()
    assert t.latest_version("warehouse", "orders")
    (alert,) = records(t, "alert")
    assert alert[0] == "dataset:warehouse:orders"
    assert "unique(order_id)" in alert[1]["message"]


def test_outputs_of_other_datasets_and_minimal_level_are_not_checked(contracted) -> None:
    contracted.write("block")
    with datatrail.run("other") as r:
        r.output(
            frame().drop(columns=["amount"]), dataset=datatrail.DatasetRef(namespace="x", name="y")
        )
    with datatrail.run("quick", level="minimal") as r:
        r.output(frame().drop(columns=["amount"]), dataset=ORDERS)
    assert records(contracted(), "contract.check") == []


def test_an_edited_contract_file_is_a_new_version(contracted) -> None:
    contracted.write("warn")
    publish(frame())
    (contracted.home / "contracts.yaml").write_text(
        CONTRACT.format(mode="warn").replace("min: 0}", "min: 5}")
    )
    publish(frame())
    t = contracted()
    versions = [v.version for v in contract_versions(t.store, "warehouse:orders")]
    assert versions == [1, 2]
    checks = records(t, "contract.check")
    assert [c[1]["contract_version"] for c in checks] == [1, 2]
    assert [c[1]["success"] for c in checks] == [True, False]


def test_a_csv_file_output_is_read_and_checked(contracted, tmp_path: Path) -> None:
    out = tmp_path / "orders.csv"
    (contracted.home / "contracts.yaml").write_text(
        f"version: 1\ncontracts:\n  - dataset: file:{out}\n    mode: block\n"
        "    columns:\n      - {name: order_id, type: int64}\n      - {name: amount}\n"
    )
    frame().drop(columns=["amount"]).to_csv(out, index=False)
    with datatrail.run("export") as r, pytest.raises(ContractViolation, match="'amount'"):
        r.output(out)
    frame().to_csv(out, index=False)
    with datatrail.run("export") as r:
        r.output(out)
    checks = records(contracted(), "contract.check")
    assert [c[1]["success"] for c in checks] == [False, True]


def test_value_assertions_report_expected_and_actual() -> None:
    (contract,) = parse_contracts(
        CONTRACT.format(mode="warn").replace("    rows:", "      - {name: day}\n    rows:")
        + "    freshness: {column: day, max_age: 2d}\n"
    )
    df = frame(day=pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03"]))
    df.loc[1, "order_id"] = 1
    df.loc[2, "amount"] = -1.0
    now = dt.datetime(2026, 1, 10, tzinfo=dt.UTC)
    result = evaluate(contract, version=3, value=df, now=now)
    failed = {(a.assertion, a.column): (a.expected, a.actual) for a in result.failures}
    assert failed == {
        ("unique", "order_id"): (3, 2),
        ("min", "amount"): (0, -1.0),
        ("freshness", "day"): ("newest value at most 2d old", "2026-01-03T00:00:00+00:00"),
    }
    fresh = evaluate(contract, version=3, value=df, now=dt.datetime(2026, 1, 4, tzinfo=dt.UTC))
    assert ("freshness", "day") not in {(a.assertion, a.column) for a in fresh.failures}


def test_nulls_and_row_counts_are_checked() -> None:
    (contract,) = parse_contracts(CONTRACT.format(mode="warn"))
    empty = frame().iloc[0:0]
    result = evaluate(contract, version=1, value=empty)
    assert [(a.assertion, a.actual) for a in result.failures] == [("row_count", 0)]
    nulls = frame(order_id=[1.0, None, 3.0])
    result = evaluate(contract, version=1, value=nulls)
    failed = {(a.assertion, a.column): a.actual for a in result.failures}
    assert failed == {("type", "order_id"): "double", ("not_null", "order_id"): 1}


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("version: 1\ncontracts:\n  - dataset: a:b\n    mode: blok\n", ":4:11", "mode"),
        (
            "version: 1\ncontracts:\n  - dataset: a:b\n    columns:\n      - {name: x, nulable: true}\n",
            ":5:",
            "nulable",
        ),
        (
            "version: 1\ncontracts:\n  - dataset: a:b\n    columns:\n      - {name: x, type: strin}\n",
            ":5:",
            "unknown type 'strin'",
        ),
        ("version: 1\ncontracts:\n  - dataset: ':'\n", ":3:", "dataset"),
        (
            "version: 1\ncontracts:\n  - dataset: a:b\n  - dataset: a:b\n",
            ":4:",
            "already has a contract",
        ),
        (
            "version: 1\ncontracts:\n  - dataset: a:b\n    rows: {min: 5, max: 2}\n",
            ":4:",
            "rows.min",
        ),
        (
            "version: 1\ncontracts:\n  - dataset: a:b\n    freshness: {column: t, max_age: soon}\n",
            ":4:",
            "not a duration",
        ),
        ("version: 1\ncontracts: [\n", ":", "not valid YAML"),
        ("version: 2\n", ":1:", "version"),
    ],
)
def test_bad_contract_files_name_file_and_line(text: str, where: str, words: str) -> None:
    with pytest.raises(ContractError) as caught:
        parse_contracts(text, file="contracts.yaml")
    message = str(caught.value)
    assert message.startswith("contracts.yaml" + where), message
    assert words in message


def test_relative_file_datasets_resolve_against_the_project(tmp_path: Path) -> None:
    (contract,) = parse_contracts("contracts:\n  - dataset: file:out/report.csv\n", base=tmp_path)
    assert contract.dataset == f"dataset:file:{tmp_path / 'out' / 'report.csv'}"


def test_apply_records_only_changed_contracts_and_infer_reads_the_schema(trail) -> None:
    publish(frame())
    t = trail()
    (contract,) = parse_contracts(CONTRACT.format(mode="warn"))
    first = apply_contracts(t.store, [contract], reason="first", by="ana")
    assert [(v.version, v.reason, v.by) for v in first] == [(1, "first", "ana")]
    assert apply_contracts(t.store, [contract], reason="again") == []
    inferred = infer_contract(t.store, "dataset:warehouse:orders")
    assert [(c.name, c.type, c.nullable) for c in inferred.columns] == [
        ("order_id", "int64", True),
        ("status", "string", True),
        ("amount", "double", True),
    ]
    assert inferred.rows is not None and inferred.rows.min == 1


# -- diff verdicts ----------------------------------------------------------------------

BASE = {
    "dataset": "dataset:w:t",
    "columns": [
        {"name": "id", "type": "int32", "nullable": False, "unique": True},
        {"name": "status", "type": "string", "allowed": ["a", "b"]},
        {"name": "amount", "type": "float", "min": 0, "max": 100, "max_null_rate": 0.1},
    ],
    "rows": {"min": 10, "max": 1000},
    "freshness": {"column": "amount", "max_age": "1d"},
}


def changed(path: str, value: object) -> dict:
    data = json.loads(json.dumps(BASE))
    if path.startswith("col:"):
        _, name, key = path.split(":")
        for col in data["columns"]:
            if col["name"] == name:
                if value is None:
                    col.pop(key, None)
                else:
                    col[key] = value
    elif path == "drop":
        data["columns"] = [c for c in data["columns"] if c["name"] != value]
    elif path == "add":
        data["columns"].append(value)
    else:
        data[path] = value
    return data


@pytest.mark.parametrize(
    ("name", "after", "verdict", "kinds"),
    [
        ("identical", BASE, "backward-compatible", []),
        (
            "column added",
            changed("add", {"name": "note", "type": "string"}),
            "backward-compatible",
            ["column_added"],
        ),
        ("column removed", changed("drop", "status"), "breaking", ["column_removed"]),
        (
            "int32 widened to int64",
            changed("col:id:type", "int64"),
            "backward-compatible",
            ["type"],
        ),
        (
            "float widened to double",
            changed("col:amount:type", "double"),
            "backward-compatible",
            ["type"],
        ),
        ("int32 narrowed to int16", changed("col:id:type", "int16"), "breaking", ["type"]),
        ("string to int64", changed("col:status:type", "int64"), "breaking", ["type"]),
        ("nulls newly allowed", changed("col:id:nullable", True), "breaking", ["nullable"]),
        ("uniqueness dropped", changed("col:id:unique", False), "breaking", ["unique"]),
        (
            "allowed value added",
            changed("col:status:allowed", ["a", "b", "c"]),
            "breaking",
            ["allowed"],
        ),
        (
            "allowed value removed",
            changed("col:status:allowed", ["a"]),
            "backward-compatible",
            ["allowed"],
        ),
        ("max raised", changed("col:amount:max", 500), "breaking", ["max"]),
        ("min raised", changed("col:amount:min", 5), "backward-compatible", ["min"]),
        (
            "null rate loosened",
            changed("col:amount:max_null_rate", 0.5),
            "breaking",
            ["max_null_rate"],
        ),
        (
            "row range narrowed",
            changed("rows", {"min": 20, "max": 900}),
            "backward-compatible",
            ["rows"],
        ),
        (
            "staler data allowed",
            changed("freshness", {"column": "amount", "max_age": "7d"}),
            "breaking",
            ["freshness"],
        ),
        ("mode changed", changed("mode", "block"), "backward-compatible", ["mode"]),
        (
            "renamed column",
            changed("drop", "amount")
            | {
                "columns": [
                    *changed("drop", "amount")["columns"],
                    {"name": "total", "type": "float"},
                ]
            },
            "breaking",
            ["column_removed", "column_added"],
        ),
    ],
)
def test_diff_verdicts_match_hand_written_expectations(
    name: str, after: dict, verdict: str, kinds: list[str]
) -> None:
    result = diff_contracts(Contract.from_dict(BASE), Contract.from_dict(after), before=1, after=2)
    assert result.verdict == verdict, name
    assert [c.kind for c in result.changes] == kinds, name
