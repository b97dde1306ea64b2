"""Prefect 3: real flows and tasks, run on Prefect's ephemeral local API, recorded with parent links.

Prefect 3 runs flows against an API; with no ``PREFECT_API_URL`` it starts a
temporary local server (offline, on 127.0.0.1) once per session.
"""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from datatrail.model import RunStarted, decode_event

# Prefect 3.8's server passes min_items= to fastapi.Body, which newer FastAPI releases refuse.
# The shim renames the argument so the real server starts; it changes nothing else.
_SHIM = textwrap.dedent(
    """
    import fastapi

    _body = fastapi.Body

    def _compatible_body(*args, **kwargs):
        if "min_items" in kwargs:
            kwargs["min_length"] = kwargs.pop("min_items")
        if "max_items" in kwargs:
            kwargs["max_length"] = kwargs.pop("max_items")
        return _body(*args, **kwargs)

    try:
        _body(min_items=1)
    except TypeError:
        fastapi.Body = _compatible_body
    """
)


@pytest.fixture(scope="module")
def prefect_env(tmp_path_factory) -> Iterator[object]:
    shim_dir = tmp_path_factory.mktemp("prefect-shim")
    (shim_dir / "sitecustomize.py").write_text(_SHIM)
    home = tmp_path_factory.mktemp("prefect-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", os.pathsep.join([str(shim_dir), os.environ.get("PYTHONPATH", "")]))
        mp.setenv("PREFECT_HOME", str(home))
        mp.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
        mp.delenv("PREFECT_API_URL", raising=False)
        sys.path.insert(0, str(shim_dir))
        try:
            exec(compile(_SHIM, "sitecustomize", "exec"), {})
        finally:
            sys.path.remove(str(shim_dir))
        prefect = pytest.importorskip("prefect")
        from prefect.settings import PREFECT_HOME, temporary_settings

        from datatrail.integrations import prefect as integration

        with temporary_settings(updates={PREFECT_HOME: str(home)}):
            integration.install()
            try:
                yield prefect
            finally:
                integration.uninstall()


def _facets(t) -> dict[str, dict]:
    events = [decode_event(se.body) for se in t.store.events() if se.kind == "run_started"]
    return {e.run_id: (e.facets or {}) for e in events if isinstance(e, RunStarted)}


def test_flows_tasks_and_subflows_are_runs_linked_like_prefect_runs(trail, prefect_env) -> None:
    from prefect import flow, task
    from prefect.context import FlowRunContext, TaskRunContext

    seen: dict[str, list[str]] = {"double": [], "increment": [], "flows": []}

    @task
    def double(x: int) -> int:
        seen["double"].append(str(TaskRunContext.get().task_run.id))
        return 2 * x

    @task
    def increment(x: int) -> int:
        seen["increment"].append(str(TaskRunContext.get().task_run.id))
        return x + 1

    @flow
    def child(x: int) -> int:
        seen["flows"].append(str(FlowRunContext.get().flow_run.id))
        return increment(x)

    @flow
    def parent(n: int) -> int:
        seen["flows"].append(str(FlowRunContext.get().flow_run.id))
        a = double(n)
        b = double.submit(a).result()  # on Prefect's thread pool task runner
        return child(b)

    assert parent(3) == 13
    t = trail()
    runs = [t.run(r.run_id) for r in t.runs(limit=100)]
    by_job: dict[str, list] = {}
    for r in runs:
        by_job.setdefault(r.job_name, []).append(r)
    assert sorted(by_job) == ["child", "double", "increment", "parent"]
    (root,) = by_job["parent"]
    (sub,) = by_job["child"]
    assert root.parent_run_id is None
    assert root.params == {"n": 3}
    assert sub.parent_run_id == root.run_id
    assert [r.parent_run_id for r in by_job["double"]] == [root.run_id, root.run_id]
    assert sorted(r.params["x"] for r in by_job["double"]) == [3, 6]
    assert by_job["increment"][0].parent_run_id == sub.run_id
    assert all(r.status == "completed" for r in runs)

    facets = _facets(t)
    assert sorted(facets[r.run_id]["prefect"]["task_run_id"] for r in by_job["double"]) == sorted(
        seen["double"]
    )
    assert facets[by_job["increment"][0].run_id]["prefect"]["task_run_id"] == seen["increment"][0]
    parent_flow_id, child_flow_id = seen["flows"]
    assert facets[root.run_id]["prefect"]["flow_run_id"] == parent_flow_id
    assert facets[root.run_id]["prefect"]["type"] == "flow"
    assert facets[sub.run_id]["prefect"]["flow_run_id"] == child_flow_id
    assert facets[by_job["increment"][0].run_id]["prefect"]["flow_run_id"] == child_flow_id


def test_a_failing_task_is_a_failed_run_under_its_flow(trail, prefect_env) -> None:
    from prefect import flow, task

    @task
    def explode(payload: bytes) -> None:
        raise ValueError("bad payload")

    @flow
    def fragile() -> None:
        explode(b"x")

    with pytest.raises(ValueError, match="bad payload"):
        fragile()
    t = trail()
    runs = {r.job_name: t.run(r.run_id) for r in t.runs()}
    assert runs["explode"].status == "failed"
    assert runs["explode"].error["message"] == "bad payload"
    assert runs["explode"].parent_run_id == runs["fragile"].run_id
    assert runs["fragile"].status == "failed"
    # a data argument is hashed as the task's input
    assert [i.label for i in runs["explode"].inputs] == ["payload"]


def test_uninstall_stops_recording(trail, prefect_env, tmp_path: Path) -> None:
    from prefect import flow

    from datatrail.integrations import prefect as integration

    @flow
    def quiet() -> int:
        return 1

    integration.uninstall()
    try:
        assert quiet() == 1
    finally:
        integration.install()
    assert trail().runs() == []
