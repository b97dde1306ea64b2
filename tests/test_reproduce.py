"""Reproducibility: the artifact cache, run diffs and replay from a git worktree.

Replays run against a temporary git repository holding a small pipeline
module (and a copy of the shipped demo pipeline), so the commit, the tree's
cleanliness and the code are under the test's control.
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from typer.testing import CliRunner

import datatrail
from datatrail.capture._hashing import hash_file, hash_value
from datatrail.cli import app
from datatrail.errors import NodeNotFound
from datatrail.model import ArtifactInfo
from datatrail.reproduce import (
    ArtifactCache,
    ReplayError,
    cache_delete,
    cache_for,
    cache_path,
    diff_runs,
    install_cache,
    replay,
)

STEPS = '''
"""A small pipeline for replay tests."""
import random
from pathlib import Path

import datatrail


@datatrail.track
def scale(frame, factor=2):
    out = frame.copy()
    out["v"] = out["v"] * factor
    return out


@datatrail.track
def noisy(frame):
    out = frame.copy()
    out["noise"] = [random.random() for _ in range(len(out))]
    return out


@datatrail.track
def double(values):
    return values * 2


@datatrail.track
def write_csv(frame, path):
    frame.to_csv(path, index=False)


@datatrail.track
def read_csv(path):
    import pandas as pd

    return pd.read_csv(path)
'''


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        capture_output=True,
        check=True,
        text=True,
    )
    return done.stdout.strip()


def _make_repo(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True)
    _git(path, "init", "-q")
    for name, text in files.items():
        (path / name).write_text(text)
    _git(path, "add", ".")
    _git(path, "commit", "-q", "-m", "pipeline")
    return path


def _import(repo: Path, name: str):
    sys.path.insert(0, str(repo))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(repo))


@pytest.fixture
def full(trail) -> Iterator:
    """Record at level full with the artifact cache observer installed."""
    datatrail.configure(level="full")
    remove = install_cache()
    yield trail
    remove()


@pytest.fixture
def steps(tmp_path) -> Iterator:
    name = f"steps_{uuid.uuid4().hex[:8]}"
    repo = _make_repo(tmp_path / "repo", {f"{name}.py": STEPS})
    module = _import(repo, name)
    module.repo = repo  # type: ignore[attr-defined]
    yield module
    sys.modules.pop(name, None)


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"k": ["a", "b", "c"], "v": [1, 2, 3]})


def _run_of(t: datatrail.Trail, suffix: str) -> str:
    found = [r for r in t.runs(limit=500) if r.job_name.endswith("." + suffix)]
    assert found, f"no run of {suffix}"
    return found[0].run_id


# -- the cache -------------------------------------------------------------------------


def _art(value) -> ArtifactInfo:
    content = hash_value(value)
    assert content is not None
    return ArtifactInfo(id=content.digest, kind=content.kind)


@pytest.mark.parametrize(
    ("value", "fmt"),
    [
        (pd.DataFrame({"a": [1, 2], "b": ["x", None], "c": [0.5, float("nan")]}), "parquet-pandas"),
        (pl.DataFrame({"a": [1, 2], "b": ["x", None]}), "parquet-polars"),
        (pa.table({"a": [1, 2], "b": ["x", "y"]}), "parquet-arrow"),
        (np.arange(12, dtype=np.int32).reshape(3, 4), "npy"),
        (b"raw bytes", "bytes"),
        ({"a": [1, 2], "b": {"c": None}}, "json"),
        (pd.Series([1.5, 2.5], name="s"), "pickle"),
    ],
)
def test_cache_gives_back_content_with_the_same_hash(tmp_path, value, fmt) -> None:
    cache = ArtifactCache(tmp_path / "cache")
    art = _art(value)
    entry = cache.put(value, art)
    assert entry is not None and entry.format == fmt
    assert cache.path(art.id) == tmp_path / "cache" / art.id[7:9] / art.id[7:]
    back = cache.load(art.id)
    assert hash_value(back).digest == art.id


def test_cache_copies_files_and_restores_them_under_their_name(tmp_path) -> None:
    source = tmp_path / "orders.csv"
    source.write_text("id,v\n1,2\n")
    art = ArtifactInfo(id=hash_file(source).digest, kind="file")
    cache = ArtifactCache(tmp_path / "cache")
    assert cache.put(source, art).name == "orders.csv"
    source.write_text("changed later\n")
    restored = cache.load(art.id, restore_to=tmp_path / "restore")
    assert restored == tmp_path / "restore" / "orders.csv"
    assert restored.read_text() == "id,v\n1,2\n"


def test_cache_evicts_least_recently_used_beyond_its_cap(tmp_path) -> None:
    import os

    cache = ArtifactCache(tmp_path / "cache", max_bytes=10**9)
    ids = []
    for i in range(3):
        value = bytes([i]) * 1000
        art = _art(value)
        cache.put(value, art)
        ids.append(art.id)
        manifest = cache.root / art.id[7:9] / (art.id[7:] + ".json")
        os.utime(manifest, ns=(10**18 + i * 10**9, 10**18 + i * 10**9))
    cache.load(ids[0])  # the oldest becomes the most recently used
    assert cache.status().entries == 3 and cache.status().bytes == 3000
    evicted = cache.evict(max_bytes=2000)
    assert [e.artifact_id for e in evicted] == [ids[1]]
    assert ids[1] not in cache and ids[0] in cache and ids[2] in cache
    assert [e.artifact_id for e in cache.evict(everything=True)] == [ids[2], ids[0]]
    assert cache.status().entries == 0


def test_cache_refuses_identity_only_artifacts(tmp_path) -> None:
    with pytest.raises(TypeError, match="not a content-hashed artifact id"):
        ArtifactCache(tmp_path / "c").path("uuid:0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b")


def test_full_level_runs_fill_the_cache_and_standard_ones_do_not(full, steps) -> None:
    frame = _frame()
    out = steps.scale(frame, factor=3)
    datatrail.configure(level="standard")
    untouched = steps.scale(pd.DataFrame({"k": ["z"], "v": [9]}))
    t = full()
    home = full.home
    assert cache_path(_art(frame).id, home) is not None
    assert cache_path(_art(out).id, home) is not None
    assert cache_path(_art(untouched).id, home) is None
    assert cache_delete(_art(out).id, home) is True
    assert cache_path(_art(out).id, home) is None
    assert cache_for(home).status().entries == 1
    t.close()


# -- diff --------------------------------------------------------------------------------


def test_diff_names_the_changed_input_before_the_changed_parameter(trail, steps) -> None:
    first = steps.scale(_frame(), factor=2)
    changed = _frame()
    changed.loc[0, "v"] = 100
    steps.scale(changed, factor=3)
    t = trail()
    runs = [r.run_id for r in reversed(t.runs())]
    result = diff_runs(t, runs[0], runs[1])
    assert result.outputs_changed is True
    assert [c.kind for c in result.causes] == ["input", "params"]
    assert "'frame' changed content" in result.causes[0].message
    assert [(c.key, c.a, c.b) for c in result.params] == [("factor", 2, 3)]
    assert [o.changed for o in result.outputs] == [True]
    assert result.outputs[0].a == _art(first).id
    assert result.summary.startswith("1 of 1 outputs differ (return); most likely cause: input")


def test_diff_traces_a_changed_input_to_the_run_that_produced_it(trail, steps) -> None:
    a = steps.scale(_frame(), factor=1)
    steps.double(a)
    b = steps.scale(_frame(), factor=5)
    steps.double(b)
    t = trail()
    doubles = [r.run_id for r in reversed(t.runs()) if r.job_name.endswith(".double")]
    scales = [r.run_id for r in reversed(t.runs()) if r.job_name.endswith(".scale")]
    result = diff_runs(t, doubles[0], doubles[1])
    assert result.params == [] and result.code == []
    change = result.inputs[0]
    assert change.changed is True
    assert (change.produced_by_a, change.produced_by_b) == (scales[0], scales[1])
    assert f"produced by run {scales[1]}" in result.causes[0].message


def test_diff_of_identical_runs_and_of_a_nondeterministic_step(trail, steps) -> None:
    steps.scale(_frame())
    steps.scale(_frame())
    steps.noisy(_frame())
    steps.noisy(_frame())
    t = trail()
    scales = [r.run_id for r in t.runs() if r.job_name.endswith(".scale")]
    same = diff_runs(t, scales[0], scales[1])
    assert same.outputs_changed is False and same.causes == []
    assert same.summary == "all 1 outputs are identical"
    noisy = [r.run_id for r in t.runs() if r.job_name.endswith(".noisy")]
    result = diff_runs(t, noisy[1], noisy[0])
    assert [c.kind for c in result.causes] == ["nondeterminism"]


def test_diff_of_an_unknown_run_is_not_found(trail, steps) -> None:
    steps.scale(_frame())
    t = trail()
    with pytest.raises(NodeNotFound):
        diff_runs(t, t.runs()[0].run_id, "0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b")


# -- replay ------------------------------------------------------------------------------


def test_replay_reproduces_a_deterministic_step_and_links_to_the_original(full, steps) -> None:
    steps.scale(_frame(), factor=4)
    t = full()
    original = _run_of(t, "scale")
    t.close()
    result = replay(original, trail=full.home)
    assert result.verdict == "reproduced", result.message
    assert [(o.label, o.same) for o in result.outputs] == [("return", True)]
    t = full()
    replay_run = t.run(result.replay_run_id)
    assert replay_run.job_name == "replay" and replay_run.params["replay_of"] == original
    assert len(replay_run.children) == 1
    child = t.run(replay_run.children[0])
    assert child.job_name.endswith(".scale") and child.params == {"factor": 4}
    records = t.store.query("SELECT subject, data FROM records WHERE topic = 'replay' ORDER BY idx")
    assert records[0][0] == f"run:{original}"
    assert json.loads(records[0][1])["verdict"] == "reproduced"


def test_replay_of_a_nondeterministic_step_is_diverged_naming_the_output(full, steps) -> None:
    steps.noisy(_frame())
    t = full()
    original = _run_of(t, "noisy")
    t.close()
    result = replay(original, trail=full.home)
    assert result.verdict == "diverged"
    assert result.first_difference is not None and result.first_difference.label == "return"
    assert "output 'return' differs" in result.message


def test_replay_restores_file_inputs_and_redirects_file_outputs(full, steps, tmp_path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("k,v\na,1\nb,2\n")
    frame = steps.read_csv(source)
    target = tmp_path / "out" / "result.csv"
    target.parent.mkdir()
    steps.write_csv(frame, target)
    source.unlink()  # the replay must not need the original file
    t = full()
    read_run, write_run = _run_of(t, "read_csv"), _run_of(t, "write_csv")
    t.close()
    assert replay(read_run, trail=full.home).verdict == "reproduced"
    written = replay(write_run, trail=full.home)
    assert written.verdict == "reproduced", written.message
    assert [o.label for o in written.outputs] == ["path"]
    assert target.read_text().startswith("k,v")  # the original output was not overwritten


def test_replay_refuses_a_dirty_tree_unless_allowed(full, steps) -> None:
    path = Path(steps.__file__)
    path.write_text(path.read_text() + "\n# an uncommitted edit\n")
    steps.scale(_frame())
    t = full()
    original = _run_of(t, "scale")
    t.close()
    with pytest.raises(ReplayError, match="dirty tree"):
        replay(original, trail=full.home)
    assert replay(original, trail=full.home, allow_dirty=True).verdict == "reproduced"


def test_replay_refuses_an_input_missing_from_the_cache(trail, steps) -> None:
    steps.scale(_frame())  # level standard: nothing cached
    t = trail()
    original = _run_of(t, "scale")
    t.close()
    with pytest.raises(ReplayError, match="not in the artifact cache"):
        replay(original, trail=trail.home)


def test_replay_refuses_an_unknown_commit(full, steps) -> None:
    steps.scale(_frame())
    t = full()
    original = _run_of(t, "scale")
    t.close()
    repo = steps.repo
    shutil.rmtree(repo / ".git")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "history rewritten")
    with pytest.raises(ReplayError, match="unknown to the repository"):
        replay(original, trail=full.home)


def test_replay_refuses_a_run_block(full, steps) -> None:
    with datatrail.run("block") as r:
        steps.scale(_frame())
    t = full()
    t.close()
    with pytest.raises(ReplayError, match="not a tracked function"):
        replay(r.run_id, trail=full.home)


# -- acceptance 4: every demo step replays byte-identically --------------------------------


def test_every_demo_step_reproduces_byte_identical_outputs(full, tmp_path) -> None:
    source = Path(datatrail.__file__).parent / "demo" / "_pipeline.py"
    name = f"demo_pipeline_{uuid.uuid4().hex[:8]}"
    repo = _make_repo(tmp_path / "demo-repo", {f"{name}.py": source.read_text()})
    pipeline = _import(repo, name)
    try:
        raw = pipeline.write_raw_data(tmp_path / "raw", orders=300)
        pipeline.nightly(raw, tmp_path / "out")
        t = full()
        steps = [r for r in t.runs(limit=100) if r.parent_run_id is not None]
        t.close()
        assert {r.job_name.rsplit(".", 1)[-1] for r in steps} == {
            "load",
            "clean",
            "join",
            "enrich",
            "aggregate",
            "build_report",
            "save",
        }
        verdicts = {}
        for step in steps:
            result = replay(step.run_id, trail=full.home)
            verdicts[f"{step.job_name}:{step.run_id}"] = (result.verdict, result.message)
        assert all(v == "reproduced" for v, _ in verdicts.values()), verdicts
        assert len(verdicts) == 10
    finally:
        sys.modules.pop(name, None)


# -- CLI -----------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_diff_replay_and_cache(full, steps) -> None:
    steps.scale(_frame(), factor=2)
    steps.noisy(_frame())
    changed = _frame()
    changed.loc[1, "v"] = 7
    steps.scale(changed, factor=2)
    t = full()
    scales = [r.run_id for r in reversed(t.runs()) if r.job_name.endswith(".scale")]
    noisy = _run_of(t, "noisy")
    t.close()
    home = str(full.home)

    result = runner.invoke(app, ["diff", scales[0], scales[1], "--trail", home, "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["causes"][0]["kind"] == "input" and data["outputs_changed"] is True

    result = runner.invoke(app, ["replay", scales[0], "--trail", home, "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["verdict"] == "reproduced"

    result = runner.invoke(app, ["replay", noisy, "--trail", home, "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["first_difference"]["label"] == "return"

    result = runner.invoke(app, ["replay", "not-a-run", "--trail", home])
    assert result.exit_code == 2 and "no run" in result.stderr

    result = runner.invoke(app, ["cache", "status", "--trail", home, "--json"])
    assert result.exit_code == 0
    status = json.loads(result.stdout)
    assert status["entries"] >= 4 and status["by_format"]["parquet-pandas"] >= 4

    result = runner.invoke(app, ["cache", "evict", "--max-bytes", "0", "--trail", home, "--json"])
    assert result.exit_code == 0
    evicted = json.loads(result.stdout)
    assert len(evicted["evicted"]) == status["entries"] and evicted["status"]["entries"] == 0

    result = runner.invoke(app, ["cache", "evict", "--max-bytes", "-1", "--trail", home])
    assert result.exit_code == 2 and "must not be negative" in result.stderr
