"""datatrail.pandas: reads and writes inside a run record their files without r.input/r.output."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

import datatrail
from datatrail import pandas as dtpd
from datatrail.capture import register_output_check
from datatrail.capture._hashing import hash_file
from datatrail.errors import PolicyDenied, UsageError


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"id": [1, 2, 3], "amount": [9.5, 3.0, 7.25]})


def test_read_csv_and_to_parquet_record_file_datasets(trail, tmp_path: Path, frame) -> None:
    src = tmp_path / "orders.csv"
    frame.to_csv(src, index=False)
    out = tmp_path / "orders.parquet"
    with datatrail.run("convert") as r:
        df = dtpd.read_csv(src)
        dtpd.to_parquet(df, out, index=False)
    detail = trail().run(r.run_id)
    assert [(i.dataset, i.artifact_id) for i in detail.inputs] == [
        (f"dataset:file:{src.resolve()}", hash_file(src).digest)
    ]
    assert [(o.dataset, o.artifact_id) for o in detail.outputs] == [
        (f"dataset:file:{out.resolve()}", hash_file(out).digest)
    ]
    pd.testing.assert_frame_equal(pd.read_parquet(out), frame)


def test_a_later_run_reading_the_output_is_linked_downstream(trail, tmp_path: Path, frame) -> None:
    out = tmp_path / "clean.parquet"
    with datatrail.run("produce") as producer:
        dtpd.to_parquet(frame, out)
    with datatrail.run("consume") as consumer:
        back = dtpd.read_parquet(out)
    t = trail()
    assert (
        t.run(consumer.run_id).inputs[0].artifact_id
        == t.run(producer.run_id).outputs[0].artifact_id
    )
    runs = {n.id for n in t.upstream(f"run:{consumer.run_id}").nodes if n.kind == "run"}
    assert f"run:{producer.run_id}" in runs
    assert back.attrs["datatrail"]["made_by_run"] == producer.run_id
    assert back.attrs["datatrail"]["read_by_run"] == consumer.run_id


def test_writers_embed_the_run_in_parquet_and_feather_metadata(
    trail, tmp_path: Path, frame
) -> None:
    with datatrail.run("write") as r:
        dtpd.to_parquet(frame, tmp_path / "a.parquet")
        dtpd.to_feather(frame, tmp_path / "a.feather")
        dtpd.to_csv(frame, tmp_path / "a.csv", index=False)
    from datatrail.capture._provenance import embedded_claim, read_sidecar

    for name in ("a.parquet", "a.feather"):
        claim = embedded_claim(tmp_path / name)
        assert claim is not None and claim["run_id"] == r.run_id
        assert claim["content_id"] == frame.attrs["datatrail"]["content_id"]
    assert embedded_claim(tmp_path / "a.csv") is None
    car = read_sidecar(tmp_path / "a.csv")
    assert car is not None and car["run_id"] == r.run_id
    assert car["artifact_id"] == hash_file(tmp_path / "a.csv").digest
    assert b"datatrail.provenance" in pq.read_schema(tmp_path / "a.parquet").metadata
    assert len(trail().run(r.run_id).outputs) == 3


def test_outside_a_run_the_calls_are_plain_pandas(trail, tmp_path: Path, frame) -> None:
    dtpd.to_parquet(frame, tmp_path / "p.parquet")
    back = dtpd.read_parquet(tmp_path / "p.parquet")
    assert "datatrail" not in back.attrs
    assert not (tmp_path / "p.parquet.datatrail.json").exists()
    assert trail().runs() == []


def test_a_refused_output_leaves_no_file_and_fails_the_run(trail, tmp_path: Path, frame) -> None:
    def refuse(ctx) -> None:
        if ctx.dataset is not None and ctx.dataset.name.endswith("public.parquet"):
            raise PolicyDenied("public output refused")

    remove = register_output_check(refuse)
    try:
        with pytest.raises(PolicyDenied), datatrail.run("leak") as r:
            dtpd.to_parquet(frame, tmp_path / "public.parquet")
    finally:
        remove()
    assert sorted(os.listdir(tmp_path)) == [".datatrail"]
    detail = trail().run(r.run_id)
    assert detail.status == "failed" and detail.outputs == []


def test_bad_arguments_are_usage_errors(trail, tmp_path: Path, frame) -> None:
    with datatrail.run("bad"):
        with pytest.raises(UsageError, match="partition_cols"):
            dtpd.to_parquet(frame, tmp_path / "x", partition_cols=["id"])
        with pytest.raises(UsageError, match="DatasetRef"):
            dtpd.to_csv(frame, tmp_path / "x.csv", dataset="orders")  # type: ignore[arg-type]
