"""Properties of retention (hypothesis): holds always win, and apply is idempotent."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datatrail.capture._hashing import hash_file
from datatrail.governance import parse_policy
from datatrail.model import ArtifactInfo, IORecorded, JobRef, Record, file_dataset, format_ts, uuid7
from datatrail.retention import AdapterContext, apply, plan
from datatrail.store import SQLiteStore

DAY_NS = 86_400 * 1_000_000_000
AREAS = ("raw", "out", "tmp")

rules = st.lists(
    st.tuples(
        st.sampled_from(AREAS),
        st.one_of(st.none(), st.integers(1, 300)),  # keep_at_least days
        st.integers(1, 300),  # delete_after days (>= keep enforced below)
        st.sampled_from(["delete", "archive", "review"]),
        st.sampled_from(["governance", "compliance"]),
    ),
    min_size=1,
    max_size=4,
)
artifacts = st.lists(
    st.tuples(st.sampled_from(AREAS), st.integers(0, 3), st.integers(0, 400)),
    min_size=1,
    max_size=12,
)


def _policy(spec: list[tuple]) -> object:
    lines = ["retention:"]
    for i, (area, keep, delete, action, mode) in enumerate(spec):
        lines += [
            f"  - id: r{i}",
            f'    match: {{name: "*/{area}/*"}}',
            f"    delete_after: {max(delete, keep or 0)}d",
            f"    action: {action}",
            f"    mode: {mode}",
        ]
        if keep is not None:
            lines.append(f"    keep_at_least: {keep}d")
    return parse_policy("\n".join(lines) + "\n")


def _build(folder: Path, arts: list[tuple], held: set[int]) -> tuple[SQLiteStore, list[Path]]:
    store = SQLiteStore(folder / "trail.db", create=True)
    paths = []
    now = time.time_ns()
    for i, (area, version, age) in enumerate(arts):
        path = folder / area / f"d{version}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"artifact {i}\n")
        paths.append(path)
        store.append(
            [
                IORecorded(
                    id=uuid7(),
                    ts=format_ts(now - age * DAY_NS - (len(arts) - i)),
                    run_id=uuid7(),
                    role="output",
                    artifact=ArtifactInfo(id=hash_file(path).digest, kind="file"),
                    dataset=file_dataset(path),
                    job=JobRef(namespace="default", name="w"),
                )
            ]
        )
    for i in sorted(held):
        store.append(
            [
                Record(
                    id=uuid7(),
                    ts=format_ts(now),
                    topic="hold.added",
                    subject=f"artifact:{hash_file(paths[i]).digest}"
                    if paths[i].exists()
                    else file_dataset(paths[i]).node_id(),
                    data={"case": f"C{i}", "reason": "p", "by": "legal"},
                )
            ]
        )
    return store, paths


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=rules, arts=artifacts, held=st.sets(st.integers(0, 11), max_size=6))
def test_a_held_artifact_never_appears_in_a_delete_plan(spec, arts, held):
    held = {i for i in held if i < len(arts)}
    with tempfile.TemporaryDirectory() as tmp:
        store, paths = _build(Path(tmp), arts, held)
        try:
            result = plan(store, policy=_policy(spec), everything=True)
            held_nodes = {
                f"artifact:{hash_file(paths[i]).digest}" for i in held if paths[i].exists()
            }
            for item in result.items:
                covered = item.node in held_nodes
                if covered:
                    assert item.status == "held" and item.action is None
                if item.status in ("due", "review"):
                    assert not item.holds and item.node not in held_nodes
            # and nothing held is touched by apply
            adapters = AdapterContext(archive_dir=Path(tmp) / "archive")
            applied = apply(store, policy=_policy(spec), adapters=adapters)
            assert not {f"artifact:{a.artifact}" for a in applied.applied} & held_nodes
        finally:
            store.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=rules, arts=artifacts, held=st.sets(st.integers(0, 11), max_size=3))
def test_apply_twice_equals_apply_once(spec, arts, held):
    held = {i for i in held if i < len(arts)}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store, _ = _build(folder, arts, held)
        try:
            policy = _policy(spec)
            adapters = AdapterContext(archive_dir=folder / "archive")
            apply(store, policy=policy, adapters=adapters)
            size = store.size()
            files = sorted((p.relative_to(folder), p.read_text()) for p in folder.rglob("*.csv"))
            counts = plan(store, policy=policy).counts
            second = apply(store, policy=policy, adapters=adapters)
            assert second.applied == [] and second.queued == [] and second.failed == []
            assert store.size() == size
            assert (
                sorted((p.relative_to(folder), p.read_text()) for p in folder.rglob("*.csv"))
                == files
            )
            assert plan(store, policy=policy).counts == counts
        finally:
            store.close()
