"""Dagster: materialising real assets records runs, asset datasets and content-hash data versions."""

from __future__ import annotations

import warnings

import pytest

warnings.filterwarnings("ignore", module="dagster")
dg = pytest.importorskip("dagster")

from datatrail.capture._values import artifact_for  # noqa: E402
from datatrail.integrations.dagster import (  # noqa: E402
    DatatrailIOManager,
    asset_dataset,
    data_version,
)


@dg.asset
def raw_orders() -> list[int]:
    return [3, 1, 2]


@dg.asset
def sorted_orders(raw_orders: list[int]) -> dg.Output[list[int]]:
    value = sorted(raw_orders)
    return dg.Output(value, data_version=data_version(value))


@dg.asset(key_prefix=["shop"])
def total(sorted_orders: list[int]) -> int:
    return sum(sorted_orders)


def _materialize() -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [raw_orders, sorted_orders, total], resources={"io_manager": DatatrailIOManager()}
    )


def test_each_materialised_asset_is_a_run_with_its_inputs_as_upstream_datasets(trail) -> None:
    result = _materialize()
    assert result.success
    t = trail()
    runs = {r.job_name: t.run(r.run_id) for r in t.runs()}
    assert set(runs) == {"raw_orders", "sorted_orders", "shop/total"}
    assert all(r.job == f"job:dagster:{name}" for name, r in runs.items())
    assert [i.dataset for i in runs["sorted_orders"].inputs] == ["dataset:dagster:raw_orders"]
    assert [i.dataset for i in runs["shop/total"].inputs] == ["dataset:dagster:sorted_orders"]
    assert [o.dataset for o in runs["shop/total"].outputs] == ["dataset:dagster:shop/total"]
    assert runs["raw_orders"].inputs == []
    assert runs["shop/total"].params["dagster_run_id"] == result.run_id
    # the value sorted_orders produced is the very artifact total read
    assert runs["sorted_orders"].outputs[0].artifact_id == runs["shop/total"].inputs[0].artifact_id
    assert runs["shop/total"].outputs[0].artifact_id == artifact_for(6, level="standard")[0].id


def test_lineage_walks_from_an_asset_back_to_its_sources(trail) -> None:
    _materialize()
    graph = trail().upstream("dataset:dagster:shop/total")
    datasets = {n.id for n in graph.nodes if n.kind == "dataset"}
    assert {"dataset:dagster:raw_orders", "dataset:dagster:sorted_orders"} <= datasets


def test_data_version_is_the_artifact_hash_and_metadata_names_the_run(trail) -> None:
    result = _materialize()
    t = trail()
    by_asset = {
        tuple(
            e.event_specific_data.materialization.asset_key.path
        ): e.event_specific_data.materialization
        for e in result.get_asset_materialization_events()
    }
    sorted_run = next(r for r in t.runs() if r.job_name == "sorted_orders")
    (out,) = t.run(sorted_run.run_id).outputs
    mat = by_asset[("sorted_orders",)]
    assert mat.tags["dagster/data_version"] == out.artifact_id
    assert mat.metadata["datatrail/artifact_id"].value == out.artifact_id
    assert mat.metadata["datatrail/run_id"].value == sorted_run.run_id


def test_asset_dataset_joins_the_key_path() -> None:
    assert asset_dataset(dg.AssetKey(["a", "b"])).node_id() == "dataset:dagster:a/b"
