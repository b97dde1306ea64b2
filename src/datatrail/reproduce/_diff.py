"""What changed between two runs, and the most likely cause of a changed output.

Inputs and outputs are matched by label (the argument name, ``return``, or the
label given to ``r.input``/``r.output``). When an output differs, the causes
are ranked by a fixed rule — changed input content, then changed code, then
changed parameters, then a changed environment — because each later kind is
less often the reason: a new input changes an output almost always, a new
package version only sometimes. When nothing recorded changed yet an output
did, the step is named non-deterministic.
"""

from __future__ import annotations

from typing import Any

import msgspec

from datatrail.lineage import IORecord, RunRecord, Trail

__all__ = ["Cause", "Change", "IOChange", "RunDiff", "diff_runs"]

_MISSING = "(absent)"


class _Result(msgspec.Struct, frozen=True, kw_only=True):
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (the stable ``--json`` shape)."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data


class Change(_Result, frozen=True, kw_only=True):
    """One value that differs: ``a`` in the first run, ``b`` in the second (None: absent)."""

    key: str
    a: Any = None
    b: Any = None


class IOChange(_Result, frozen=True, kw_only=True):
    """An input or output matched by label across the two runs."""

    label: str
    a: str | None = None
    """Artifact id in the first run (None: absent there)."""
    b: str | None = None
    changed: bool
    dataset_a: str | None = None
    dataset_b: str | None = None
    produced_by_a: str | None = None
    """The run that produced the first run's artifact (for inputs), if recorded."""
    produced_by_b: str | None = None


class Cause(_Result, frozen=True, kw_only=True):
    """A candidate explanation of a changed output; ``rank`` 1 is the most likely."""

    rank: int
    kind: str
    """``input``, ``code``, ``params``, ``environment`` or ``nondeterminism``."""
    message: str


class RunDiff(_Result, frozen=True, kw_only=True):
    """Two runs side by side."""

    run_a: str
    run_b: str
    job_a: str
    job_b: str
    outputs_changed: bool
    summary: str
    causes: list[Cause] = []
    params: list[Change] = []
    code: list[Change] = []
    environment: list[Change] = []
    inputs: list[IOChange] = []
    outputs: list[IOChange] = []


def _keyed(ios: list[IORecord]) -> dict[str, IORecord]:
    out: dict[str, IORecord] = {}
    for io in ios:
        base = io.label or io.dataset or io.kind
        key, n = base, 1
        while key in out:
            n += 1
            key = f"{base}#{n}"
        out[key] = io
    return out


def _producer(trail: Trail, artifact_id: str | None) -> str | None:
    if artifact_id is None:
        return None
    rows = trail.store.query(
        "SELECT run_id FROM run_io WHERE artifact_id = ? AND role = 'output' ORDER BY idx LIMIT 1",
        (artifact_id,),
    )
    return str(rows[0][0]) if rows else None


def _io_changes(
    trail: Trail, a: list[IORecord], b: list[IORecord], *, inputs: bool
) -> list[IOChange]:
    ka, kb = _keyed(a), _keyed(b)
    changes = []
    for key in [*ka, *(k for k in kb if k not in ka)]:
        ia, ib = ka.get(key), kb.get(key)
        art_a = ia.artifact_id if ia else None
        art_b = ib.artifact_id if ib else None
        changed = art_a != art_b
        changes.append(
            IOChange(
                label=key,
                a=art_a,
                b=art_b,
                changed=changed,
                dataset_a=ia.dataset if ia else None,
                dataset_b=ib.dataset if ib else None,
                produced_by_a=_producer(trail, art_a) if inputs and changed else None,
                produced_by_b=_producer(trail, art_b) if inputs and changed else None,
            )
        )
    return changes


def _dict_changes(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[Change]:
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if va != vb:
            out.append(Change(key=prefix + key, a=va, b=vb))
    return out


def _code_changes(a: dict[str, Any] | None, b: dict[str, Any] | None) -> list[Change]:
    def flat(code: dict[str, Any] | None) -> dict[str, Any]:
        if not code:
            return {}
        git = code.get("git") or {}
        return {
            "module": code.get("module"),
            "qualname": code.get("qualname"),
            "source_hash": code.get("source_hash"),
            "commit": git.get("commit"),
            "dirty": git.get("dirty"),
            "diff_hash": git.get("diff_hash"),
        }

    return _dict_changes(flat(a), flat(b))


def _env_changes(a: dict[str, Any] | None, b: dict[str, Any] | None) -> list[Change]:
    a, b = a or {}, b or {}
    changes = _dict_changes(
        {k: a.get(k) for k in ("python", "implementation", "platform")},
        {k: b.get(k) for k in ("python", "implementation", "platform")},
    )
    changes += _dict_changes(a.get("packages") or {}, b.get("packages") or {}, prefix="package:")
    return changes


def _short(artifact: str | None) -> str:
    if artifact is None:
        return _MISSING
    return artifact[:19] if artifact.startswith("blake3:") else artifact


def _causes(
    inputs: list[IOChange], code: list[Change], params: list[Change], env: list[Change]
) -> list[Cause]:
    causes: list[Cause] = []
    for change in inputs:
        if not change.changed:
            continue
        via = f", produced by run {change.produced_by_b}" if change.produced_by_b else ""
        causes.append(
            Cause(
                rank=0,
                kind="input",
                message=f"input {change.label!r} changed content: {_short(change.a)} → "
                f"{_short(change.b)}{via}; a step's output follows its input content first",
            )
        )
    if code:
        what = ", ".join(c.key for c in code)
        causes.append(
            Cause(
                rank=0,
                kind="code",
                message=f"the code changed ({what}); the step itself computes something else",
            )
        )
    if params:
        what = ", ".join(f"{c.key}: {c.a!r} → {c.b!r}" for c in params)
        causes.append(Cause(rank=0, kind="params", message=f"parameters changed ({what})"))
    if env:
        shown = ", ".join(f"{c.key} {c.a or _MISSING} → {c.b or _MISSING}" for c in env[:5])
        more = f" and {len(env) - 5} more" if len(env) > 5 else ""
        causes.append(
            Cause(
                rank=0,
                kind="environment",
                message=f"the environment changed ({shown}{more}); library behaviour can shift "
                "between versions",
            )
        )
    if not causes:
        causes.append(
            Cause(
                rank=0,
                kind="nondeterminism",
                message="nothing recorded changed (inputs, code, parameters, environment), yet "
                "the output did: the step is non-deterministic (time, randomness, unordered "
                "iteration, or state it does not record)",
            )
        )
    return [msgspec.structs.replace(c, rank=i + 1) for i, c in enumerate(causes)]


def _diff(trail: Trail, a: RunRecord, b: RunRecord) -> RunDiff:
    params = _dict_changes(a.params, b.params)
    code = _code_changes(a.code, b.code)
    env = _env_changes(a.environment, b.environment)
    inputs = _io_changes(trail, a.inputs, b.inputs, inputs=True)
    outputs = _io_changes(trail, a.outputs, b.outputs, inputs=False)
    changed = [o for o in outputs if o.changed]
    causes = _causes(inputs, code, params, env) if changed else []
    if not a.outputs and not b.outputs:
        summary = "neither run recorded outputs"
    elif changed:
        summary = (
            f"{len(changed)} of {len(outputs)} outputs differ "
            f"({', '.join(o.label for o in changed)}); most likely cause: {causes[0].message}"
        )
    else:
        summary = f"all {len(outputs)} outputs are identical"
    return RunDiff(
        run_a=a.run_id,
        run_b=b.run_id,
        job_a=a.job,
        job_b=b.job,
        outputs_changed=bool(changed),
        summary=summary,
        causes=causes,
        params=params,
        code=code,
        environment=env,
        inputs=inputs,
        outputs=outputs,
    )


def diff_runs(trail: Trail, run_a: str, run_b: str) -> RunDiff:
    """Compare two runs: parameters, code, environment, inputs and outputs, with ranked causes.

    Raises :class:`~datatrail.errors.NodeNotFound` for an unknown run id.
    """
    a = trail.run(run_a.removeprefix("run:"))
    b = trail.run(run_b.removeprefix("run:"))
    return _diff(trail, a, b)
