"""Provenance that travels with files: sidecars trusted only while the file still matches, and identify."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import datatrail
from datatrail import pandas as dtpd
from datatrail.capture._hashing import hash_file
from datatrail.capture._provenance import identify, read_sidecar, sidecar_path, trusted_artifact
from datatrail.capture._values import artifact_for
from datatrail.cli import app

FAKE = "blake3:" + "ab" * 32


def _forge(path: Path, artifact_id: str = FAKE) -> None:
    """Put an artifact id in the sidecar that no hash would give: seeing it proves no hash was taken."""
    car = json.loads(sidecar_path(path).read_text())
    car["artifact_id"] = artifact_id
    sidecar_path(path).write_text(json.dumps(car))


@pytest.fixture
def written(trail, tmp_path: Path) -> tuple[Path, str]:
    out = tmp_path / "data" / "t.parquet"
    out.parent.mkdir()
    with datatrail.run("make") as r:
        dtpd.to_parquet(pd.DataFrame({"x": range(100)}), out)
    datatrail.flush()
    return out, r.run_id


def test_a_matching_sidecar_is_used_instead_of_hashing(written) -> None:
    path, _ = written
    _forge(path)
    assert artifact_for(path, level="standard")[0].id == FAKE


def test_a_rewritten_file_of_another_size_is_hashed_again(written) -> None:
    path, _ = written
    _forge(path)
    pd.DataFrame({"x": range(5)}).to_parquet(path)
    assert trusted_artifact(path) is None
    assert artifact_for(path, level="standard")[0].id == hash_file(path).digest


def test_a_parquet_copy_with_a_new_mtime_is_trusted_by_its_footer(written, tmp_path: Path) -> None:
    path, _ = written
    copy = tmp_path / "copy.parquet"
    shutil.copyfile(path, copy)
    shutil.copyfile(sidecar_path(path), sidecar_path(copy))
    assert copy.stat().st_mtime_ns != path.stat().st_mtime_ns
    trusted = trusted_artifact(copy)
    assert trusted is not None and trusted[1] == "footer"
    assert trusted[0].id == hash_file(copy).digest


def test_a_csv_with_a_new_mtime_is_hashed_again(trail, tmp_path: Path) -> None:
    out = tmp_path / "t.csv"
    with datatrail.run("make"):
        dtpd.to_csv(pd.DataFrame({"x": [1]}), out)
    copy = tmp_path / "c.csv"
    shutil.copyfile(out, copy)
    shutil.copyfile(sidecar_path(out), sidecar_path(copy))
    os.utime(copy, ns=(0, out.stat().st_mtime_ns + 5))
    _forge(copy)
    assert trusted_artifact(copy) is None
    assert artifact_for(copy, level="standard")[0].id == hash_file(copy).digest


def test_trust_can_be_turned_off(written, monkeypatch) -> None:
    path, _ = written
    _forge(path)
    monkeypatch.setenv("DATATRAIL_TRUST_SIDECARS", "0")
    assert artifact_for(path, level="standard")[0].id == hash_file(path).digest


def test_outputs_are_always_hashed_fresh(written) -> None:
    path, _ = written
    _forge(path)
    assert artifact_for(path, level="standard", fresh=True)[0].id == hash_file(path).digest


def test_another_process_reading_the_file_links_to_the_original_run(written, trail) -> None:
    path, producer = written
    _forge(path, hash_file(path).digest)  # the true id: the point is the run link
    script = textwrap.dedent(
        f"""
        import datatrail
        from datatrail import pandas as dtpd
        datatrail.configure(home={str(trail.home)!r})
        with datatrail.run("other-process") as r:
            frame = dtpd.read_parquet({str(path)!r})
        datatrail.flush()
        print(r.run_id, frame.attrs["datatrail"]["made_by_run"])
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    consumer, made_by = done.stdout.split()
    assert made_by == producer
    t = trail()
    assert t.run(consumer).inputs[0].artifact_id == t.run(producer).outputs[0].artifact_id
    assert f"run:{producer}" in {n.id for n in t.upstream(f"run:{consumer}").nodes}


def test_identify_names_the_run_and_its_claims(written, trail) -> None:
    path, producer = written
    result = identify(path, trail=trail())
    assert result["made_by"][0]["run_id"] == producer
    assert result["identified_by"] == "sidecar (mtime)"
    assert result["claims"]["embedded"]["run_id"] == producer
    assert result["claims"]["sidecar"]["run_id"] == producer
    assert result["claim_confirmed"] is True


def test_identify_flags_a_rewritten_file_whose_metadata_still_claims_the_run(
    written, trail
) -> None:
    path, producer = written
    import pyarrow.parquet as pq

    table = pq.read_table(path)  # pyarrow keeps the schema metadata, claim included
    pq.write_table(table.slice(0, 10), path)
    result = identify(path, trail=trail())
    assert result["identified_by"] == "hash"
    assert result["claims"]["embedded"]["run_id"] == producer
    assert result["made_by"] == [] and result["known"] is False
    assert result["claim_confirmed"] is False


runner = CliRunner()


def test_cli_identify_json_and_exit_codes(written, trail, tmp_path: Path) -> None:
    path, producer = written
    home = str(trail.home)
    res = runner.invoke(app, ["identify", str(path), "--trail", home, "--json"])
    assert res.exit_code == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["made_by"][0]["run_id"] == producer
    assert data["artifact_id"] == hash_file(path).digest
    stranger = tmp_path / "stranger.bin"
    stranger.write_bytes(b"never recorded")
    res = runner.invoke(app, ["identify", str(stranger), "--trail", home, "--json"])
    assert res.exit_code == 1
    assert json.loads(res.stdout)["known"] is False
    res = runner.invoke(app, ["identify", str(tmp_path / "missing.csv"), "--trail", home])
    assert res.exit_code == 2 and "missing.csv" in res.stderr
    res = runner.invoke(app, ["identify", str(path), "--trail", home])
    assert res.exit_code == 0 and producer in res.stdout


def test_read_sidecar_ignores_foreign_json(tmp_path: Path) -> None:
    target = tmp_path / "f.csv"
    target.write_text("a\n")
    sidecar_path(target).write_text('{"something": "else"}')
    assert read_sidecar(target) is None
    assert trusted_artifact(target) is None
