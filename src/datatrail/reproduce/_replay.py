"""Replay a recorded run and say whether it reproduces.

The recorded commit is checked out into a temporary ``git worktree``; the
recorded function (module and qualname from the run's code version) is loaded
from the file at that commit; its inputs are restored from the artifact cache
by content hash; it is called with the recorded parameters; and its outputs are
hashed and compared with the recorded ones. The replay is itself a run (job
``replay``, parameter ``replay_of``) that holds the re-executed step as its
child, and a ``replay`` record (subject: the original run) states the verdict.

Refusals are clear and happen before anything runs: a run with no recorded
function, no git commit, a commit the repository does not have, a dirty tree
(unless ``allow_dirty``), a redacted parameter, or an input not in the cache.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import inspect
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Literal

import msgspec

from datatrail.capture import REDACTED
from datatrail.errors import DatatrailError
from datatrail.lineage import IORecord, RunRecord, Trail
from datatrail.reproduce._cache import ArtifactCache, cache_for
from datatrail.reproduce._diff import Change, _env_changes

__all__ = ["REPLAY_TOPIC", "OutputCheck", "ReplayError", "ReplayResult", "replay"]

REPLAY_TOPIC = "replay"


class ReplayError(DatatrailError, ValueError):
    """A run cannot be replayed; the message says why and what would make it replayable."""

    status = 400


class OutputCheck(msgspec.Struct, frozen=True, kw_only=True):
    """One recorded output and what the replay produced for it."""

    label: str
    recorded: str
    replayed: str | None
    same: bool


class ReplayResult(msgspec.Struct, frozen=True, kw_only=True):
    """The verdict of a replay."""

    original_run_id: str
    replay_run_id: str
    """The replay's own run (job ``replay``); the re-executed step is its child."""
    job: str
    commit: str
    verdict: Literal["reproduced", "diverged", "failed"]
    outputs: list[OutputCheck] = []
    first_difference: OutputCheck | None = None
    environment: list[Change] = []
    """What differs between the recorded environment and the replay's."""
    error: str | None = None
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (the ``replay --json`` shape)."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data


def _git(root: str | Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["git", "-C", str(root), *args],
        capture_output=True,
        check=False,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def _check_code(run: RunRecord, allow_dirty: bool) -> tuple[dict[str, Any], str, Path, Path]:
    code = run.code or {}
    if not code.get("qualname") or not code.get("module"):
        children = ", ".join(run.children[:5]) or "none recorded"
        raise ReplayError(
            f"run {run.run_id} ({run.job_name}) is a `with datatrail.run(...)` block, not a "
            f"tracked function: there is nothing to call. Replay its tracked steps instead "
            f"(children: {children})"
        )
    if "<locals>" in code["qualname"]:
        raise ReplayError(
            f"{code['module']}.{code['qualname']} is defined inside another function; only "
            "module-level functions (and methods of module-level classes) can be imported again"
        )
    git = code.get("git")
    if not git or not git.get("commit") or not git.get("root"):
        raise ReplayError(
            f"run {run.run_id} has no recorded git commit: its code ({code.get('file')}) was not "
            "in a git repository when it ran; commit the pipeline and run it again"
        )
    if git.get("dirty") and not allow_dirty:
        raise ReplayError(
            f"run {run.run_id} ran from a dirty tree (uncommitted changes on top of "
            f"{git['commit'][:12]}); the commit alone is not the code that ran. Pass "
            "--allow-dirty to replay the commit anyway"
        )
    root = Path(git["root"])
    if not root.is_dir():
        raise ReplayError(
            f"the repository {root} of run {run.run_id} is not here; replay on a machine "
            "with a clone of it"
        )
    if _git(root, "cat-file", "-e", f"{git['commit']}^{{commit}}").returncode != 0:
        raise ReplayError(
            f"commit {git['commit']} is unknown to the repository at {root}; fetch it "
            "(git fetch --all) and try again"
        )
    file = code.get("file")
    if not file:
        raise ReplayError(f"run {run.run_id} recorded no source file for its function")
    try:
        relative = Path(file).resolve().relative_to(root.resolve())
    except ValueError:
        raise ReplayError(
            f"the source file {file} is outside the recorded repository {root}"
        ) from None
    return code, git["commit"], root, relative


def _check_inputs(run: RunRecord, cache: ArtifactCache) -> None:
    for io in run.inputs:
        if not io.artifact_id.startswith("blake3:"):
            raise ReplayError(
                f"input {io.label!r} of run {run.run_id} was recorded without its content "
                f"({io.artifact_id}); record the run at level full to replay it"
            )
        if io.artifact_id not in cache:
            raise ReplayError(
                f"input {io.label!r} ({io.artifact_id}) of run {run.run_id} is not in the "
                f"artifact cache at {cache.root}; record runs at level full with the cache on "
                "(or it was evicted)"
            )
    for key, value in run.params.items():
        if value == REDACTED:
            raise ReplayError(
                f"parameter {key!r} of run {run.run_id} was redacted when recorded; its value "
                "is unknown, so the call cannot be repeated"
            )


@contextmanager
def _worktree(root: Path, commit: str) -> Iterator[Path]:
    scratch = Path(tempfile.mkdtemp(prefix="datatrail-replay-"))
    tree = scratch / "tree"
    done = _git(root, "worktree", "add", "--detach", str(tree), commit)
    if done.returncode != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        raise ReplayError(
            f"git could not check out {commit} into a worktree: "
            f"{done.stderr.decode(errors='replace').strip()}"
        )
    try:
        yield tree
    finally:
        _git(root, "worktree", "remove", "--force", str(tree))
        shutil.rmtree(scratch, ignore_errors=True)
        _git(root, "worktree", "prune")


@contextmanager
def _module_from(tree: Path, relative: Path, module_name: str) -> Iterator[Any]:
    """Load ``module_name`` from the worktree's copy of its file, under its own name, for a while."""
    path = tree / relative
    if not path.exists():
        raise ReplayError(f"{relative} does not exist at the recorded commit")
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ReplayError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(module_name)
    # The file's folder first on the path, so its sibling modules come from the same commit.
    extra = str(path.parent)
    sys.path.insert(0, extra)
    sys.modules[module_name] = module
    try:
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise ReplayError(
                f"importing {module_name} from the recorded commit failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        yield module
    finally:
        if previous is not None:
            sys.modules[module_name] = previous
        else:
            sys.modules.pop(module_name, None)
        with suppress(ValueError):
            sys.path.remove(extra)


def _resolve(module: Any, qualname: str) -> Any:
    target = module
    for part in qualname.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise ReplayError(f"{module.__name__} has no {qualname} at the recorded commit")
    if not callable(target):
        raise ReplayError(f"{module.__name__}.{qualname} is not callable")
    return target


def _is_output_path(io: IORecord) -> bool:
    return io.kind in ("file", "directory")


def _arguments(
    fn: Any, run: RunRecord, cache: ArtifactCache, scratch: Path
) -> tuple[list[Any], dict[str, Any], dict[str, Path]]:
    """Positional and keyword arguments for the call, and where file outputs will appear."""
    values: dict[str, Any] = dict(run.params)
    for n, io in enumerate(run.inputs):
        label = io.label or f"input{n}"
        value = cache.load(io.artifact_id, restore_to=scratch / "inputs" / str(n))
        values[label] = value
    redirected: dict[str, Path] = {}
    for n, io in enumerate(run.outputs):
        if _is_output_path(io) and io.label in values and io.label not in redirected:
            original = Path(str(values[io.label]))
            target = scratch / "outputs" / str(n) / original.name
            target.parent.mkdir(parents=True, exist_ok=True)
            redirected[io.label] = target
            # Only a path argument is watched for appearing: the call got a Path-like, give one.
            values[io.label] = target
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return [], values, redirected
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for p in sig.parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            i = 0
            while f"{p.name}[{i}]" in values:
                args.append(values.pop(f"{p.name}[{i}]"))
                i += 1
            if p.name in values:
                extra = values.pop(p.name)
                args.extend(extra if isinstance(extra, list) else [extra])
            continue
        if p.kind is p.VAR_KEYWORD:
            kwargs.update(values)
            values = {}
            continue
        if p.name not in values:
            continue
        if p.kind is p.POSITIONAL_ONLY:
            args.append(values.pop(p.name))
        else:
            kwargs[p.name] = values.pop(p.name)
    return args, kwargs, redirected


def _replayed_value(label: str, result: Any, redirected: dict[str, Path]) -> Any:
    if label in redirected:
        return redirected[label]
    if label == "return":
        return result
    if label.startswith("return[") and label.endswith("]") and isinstance(result, tuple):
        index = int(label[7:-1])
        return result[index] if index < len(result) else None
    return None


def _hash(value: Any) -> str | None:
    from datatrail.capture._values import artifact_for

    if value is None:
        return None
    try:
        art, _ = artifact_for(value, level="standard", fresh=True)
    except DatatrailError:
        return None
    return art.id if art.id.startswith("blake3:") else None


def _current_environment(recorded: dict[str, Any] | None) -> dict[str, Any]:
    packages: dict[str, str] = {}
    for name in (recorded or {}).get("packages") or {}:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": packages,
    }


def replay(
    run_id: str,
    *,
    trail: Trail | str | os.PathLike[str] | None = None,
    allow_dirty: bool = False,
) -> ReplayResult:
    """Replay one recorded run of a tracked function and compare its outputs.

    ``trail`` is an open :class:`~datatrail.Trail`, a trail folder, or None for
    the trail in use. The replay is recorded into the same trail. Raises
    :class:`ReplayError` when the run cannot be replayed (see the module doc).
    """
    import datatrail
    from datatrail.capture import emit_record, settings, shutdown

    opened = trail if isinstance(trail, Trail) else Trail(trail)
    try:
        run = opened.run(run_id.removeprefix("run:"))
        home = opened.home
        cache = cache_for(home) if home is not None else cache_for()
    finally:
        if not isinstance(trail, Trail):
            opened.close()
    code, commit, root, relative = _check_code(run, allow_dirty)
    _check_inputs(run, cache)

    previous = settings()
    # Record into the original's trail; keep the running writer if it already writes there.
    switch = home is not None and (previous.home is None or previous.home.path != home.path)
    if switch:
        datatrail.configure(home=home)
    try:
        with (
            _worktree(root, commit) as tree,
            _module_from(tree, relative, code["module"]) as module,
            tempfile.TemporaryDirectory(prefix="datatrail-replay-io-") as scratch_dir,
        ):
            fn = _resolve(module, code["qualname"])
            args, kwargs, redirected = _arguments(fn, run, cache, Path(scratch_dir))
            with datatrail.run(
                "replay",
                params={"replay_of": run.run_id, "job": run.job_name, "commit": commit},
                level="standard",
            ) as handle:
                error: str | None = None
                result: Any = None
                try:
                    result = fn(*args, **kwargs)
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}"
                checks = []
                for n, io in enumerate(run.outputs):
                    label = io.label or f"output{n}"
                    replayed = None if error else _hash(_replayed_value(label, result, redirected))
                    checks.append(
                        OutputCheck(
                            label=label,
                            recorded=io.artifact_id,
                            replayed=replayed,
                            same=replayed == io.artifact_id,
                        )
                    )
                env = _env_changes(run.environment, _current_environment(run.environment))
                first = next((c for c in checks if not c.same), None)
                verdict: Literal["reproduced", "diverged", "failed"]
                if error is not None:
                    verdict = "failed"
                    message = f"the replayed call raised {error}"
                elif first is None:
                    verdict = "reproduced"
                    message = f"all {len(checks)} outputs are byte-identical to the recorded ones"
                else:
                    verdict = "diverged"
                    message = (
                        f"output {first.label!r} differs: recorded {first.recorded}, replayed "
                        f"{first.replayed or 'nothing'}"
                    )
                outcome = ReplayResult(
                    original_run_id=run.run_id,
                    replay_run_id=handle.run_id,
                    job=run.job,
                    commit=commit,
                    verdict=verdict,
                    outputs=checks,
                    first_difference=first,
                    environment=env,
                    error=error,
                    message=message,
                )
                emit_record(
                    REPLAY_TOPIC,
                    subject=f"run:{run.run_id}",
                    data={
                        "original_run_id": run.run_id,
                        "replay_run_id": handle.run_id,
                        "verdict": verdict,
                        "commit": commit,
                        "first_difference": msgspec.to_builtins(first) if first else None,
                        "outputs": msgspec.to_builtins(checks),
                        "environment": msgspec.to_builtins(env),
                        "error": error,
                    },
                )
        datatrail.flush()
    finally:
        if switch:
            shutdown()
            datatrail.configure(home=previous.home)
    return outcome
