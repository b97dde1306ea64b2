"""Lineage coverage: untracked data readers and writers found statically, and the pytest plugin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from typer.testing import CliRunner

from datatrail.cli import app
from datatrail.coverage import analyze, analyze_source

PIPELINE = '''\
from pathlib import Path

import pandas as pd
import polars as pl

import datatrail


@datatrail.track
def load(path: Path) -> pd.DataFrame:
    return pd.read_csv(path)


@datatrail.track
def save(frame: pd.DataFrame, path: Path) -> None:
    frame.to_parquet(path)


def sneaky_export(frame: pd.DataFrame, path: Path) -> None:
    """A writer nobody tracked."""
    frame.to_csv(path, index=False)


def nightly(raw: Path, out: Path) -> None:
    with datatrail.run("nightly") as r:
        frame = pl.read_csv(r.input(raw))
        frame.write_parquet(out)
        r.output(out)


def log_line(path: Path) -> None:  # datatrail: untracked (an operational log, not data)
    with open(path, "a") as fh:
        fh.write("done\\n")


class Loader:
    def fetch(self, conn) -> list:
        return conn.execute("SELECT * FROM orders").fetchall()

    def store(self, conn) -> None:
        conn.execute(f"INSERT INTO orders VALUES ({1})")


def pure(x: int) -> int:
    return x + 1
'''


def plant(folder: Path) -> Path:
    path = folder / "planted_pipeline.py"
    path.write_text(PIPELINE)
    return path


def test_a_planted_untracked_writer_is_named_with_file_and_line(tmp_path: Path) -> None:
    path = plant(tmp_path)
    report = analyze(path)
    by_name = {f.qualname: f for f in report.functions}
    assert set(by_name) == {
        "load",
        "save",
        "sneaky_export",
        "nightly",
        "log_line",
        "Loader.fetch",
        "Loader.store",
    }
    sneaky = by_name["sneaky_export"]
    assert sneaky.status == "untracked"
    assert sneaky.file == str(path.resolve()) and sneaky.line == 19
    assert [(c.kind, c.call, c.line) for c in sneaky.writes] == [("write", "frame.to_csv", 21)]
    assert {f.qualname for f in report.untracked} == {
        "sneaky_export",
        "Loader.fetch",
        "Loader.store",
    }
    assert by_name["log_line"].status == "excused"
    assert by_name["nightly"].status == "tracked"
    assert [c.call for c in by_name["nightly"].writes] == ["frame.write_parquet"]
    assert [c.kind for c in by_name["Loader.fetch"].reads] == ["read"]
    assert by_name["Loader.store"].writes[0].line == 41


def test_open_modes_decide_read_or_write() -> None:
    found = analyze_source(
        "def a(p):\n    open(p).read()\n\ndef b(p):\n    p.open('w')\n\ndef c(p):\n    p.write_text('x')\n"
    )
    assert [(f.qualname, [c.kind for c in f.reads + f.writes]) for f in found] == [
        ("a", ["read"]),
        ("b", ["write"]),
        ("c", ["write"]),
    ]


def test_the_coverage_command_prints_json_and_fails_on_untracked(tmp_path: Path) -> None:
    path = plant(tmp_path)
    result = CliRunner().invoke(app, ["coverage", str(path), "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["untracked"] == 3
    assert any(f["qualname"] == "sneaky_export" and f["line"] == 19 for f in data["functions"])
    clean = tmp_path / "clean.py"
    clean.write_text("import datatrail\n\n@datatrail.track\ndef f(df, p):\n    df.to_csv(p)\n")
    result = CliRunner().invoke(app, ["coverage", str(clean)])
    assert result.exit_code == 0
    bad = CliRunner().invoke(app, ["coverage", "no.such.module_here"])
    assert bad.exit_code == 2


def test_the_demo_pipeline_steps_are_all_tracked() -> None:
    report = analyze("datatrail.demo._pipeline")
    tracked = {f.qualname for f in report.functions if f.status == "tracked"}
    assert {"load", "save"} <= tracked
    assert report.untracked == []  # write_raw_data is excused by its pragma
    whole = analyze("datatrail.demo")
    assert whole.untracked == []
    assert {f.qualname for f in whole.functions if f.status == "excused"} == {
        "write_raw_data",
        "run_demo",
    }


def test_the_pytest_plugin_fails_a_run_whose_writer_emitted_no_lineage(tmp_path: Path) -> None:
    path = plant(tmp_path)
    tests = tmp_path / "test_planted.py"
    tests.write_text(
        textwrap.dedent(
            """
            import pandas as pd
            import datatrail
            import planted_pipeline as p

            def test_pipeline(tmp_path):
                datatrail.configure(home=tmp_path / ".datatrail")
                frame = pd.DataFrame({"a": [1, 2]})
                p.save(frame, tmp_path / "ok.parquet")
                p.sneaky_export(frame, tmp_path / "quiet.csv")
                datatrail.flush()
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    args = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",  # the plugin itself comes in through its pytest11 entry point
    ]
    run = subprocess.run(
        [*args, f"--datatrail-coverage={path}", str(tests)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 passed" in run.stdout
    assert f"{path.resolve()}:19: sneaky_export writes data" in run.stdout
    assert "save" not in run.stdout.split("datatrail lineage coverage")[1].split("writes data")[0]
