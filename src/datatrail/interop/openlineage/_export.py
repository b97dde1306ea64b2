"""OpenLineage out: each run as RunEvents with the standard facets that apply.

A run recorded by datatrail becomes a START event and, once it ended, a
COMPLETE or FAIL event carrying its inputs and outputs. Runs that came in as
OpenLineage are exported as the stored original events, so every facet an
outside producer sent (custom ones included) survives the round trip.
"""

from __future__ import annotations

import inspect
import platform
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import blake3
import msgspec

from datatrail.interop.openlineage._ingest import OPENLINEAGE_TOPIC
from datatrail.interop.openlineage._schema import InvalidOpenLineageEvent, validate_facets
from datatrail.model import decode_event, from_json
from datatrail.store import Store

__all__ = [
    "COLUMN_LINEAGE_TOPIC",
    "DEFAULT_ENV_ALLOWLIST",
    "DatasetOut",
    "export_openlineage",
    "run_event",
]

SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
PRODUCER = "https://github.com/datatrail/datatrail"
COLUMN_LINEAGE_TOPIC = "column_lineage"
"""Records of column lineage: subject the output dataset, data ``{"fields": {...}}``."""
DEFAULT_ENV_ALLOWLIST: tuple[str, ...] = (
    "CI",
    "GITHUB_REPOSITORY",
    "GITHUB_RUN_ID",
    "GITHUB_SHA",
    "GITHUB_WORKFLOW",
    "DATATRAIL_ENV",
    "DATATRAIL_PIPELINE",
)
"""Environment variables that may be exported; everything else (secrets!) never is."""

_FACETS = "https://openlineage.io/spec/facets"
_SCHEMAS = {
    "parent": f"{_FACETS}/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet",
    "errorMessage": f"{_FACETS}/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet",
    "processing_engine": f"{_FACETS}/1-1-1/ProcessingEngineRunFacet.json#/$defs/ProcessingEngineRunFacet",
    "environmentVariables": f"{_FACETS}/1-0-0/EnvironmentVariablesRunFacet.json#/$defs/EnvironmentVariablesRunFacet",
    "sourceCodeLocation": f"{_FACETS}/1-1-0/SourceCodeLocationJobFacet.json#/$defs/SourceCodeLocationJobFacet",
    "sourceCode": f"{_FACETS}/1-0-1/SourceCodeJobFacet.json#/$defs/SourceCodeJobFacet",
    "jobType": f"{_FACETS}/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet",
    "schema": f"{_FACETS}/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet",
    "dataSource": f"{_FACETS}/1-0-1/DatasourceDatasetFacet.json#/$defs/DatasourceDatasetFacet",
    "columnLineage": f"{_FACETS}/1-2-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet",
    "version": f"{_FACETS}/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet",
    "outputStatistics": f"{_FACETS}/1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet",
}


def _version() -> str:
    from datatrail import __version__

    return __version__


def _facet(kind: str, /, **fields: Any) -> dict[str, Any]:
    facet = {"_producer": PRODUCER, "_schemaURL": _SCHEMAS[kind]}
    facet.update({k: v for k, v in fields.items() if v is not None})
    return facet


class DatasetOut(msgspec.Struct, frozen=True, kw_only=True):
    """One input or output of a run, as the exporter needs it."""

    namespace: str
    name: str
    artifact_id: str
    rows: int | None = None
    size: int | None = None
    schema: list[tuple[str, str]] | None = None
    column_lineage: dict[str, Any] | None = None


def _dataset(ds: DatasetOut, role: str) -> dict[str, Any]:
    facets: dict[str, Any] = {
        "dataSource": _facet(
            "dataSource",
            name=ds.namespace,
            uri=ds.namespace if "://" in ds.namespace else f"{ds.namespace}://",
        ),
        "version": _facet("version", datasetVersion=ds.artifact_id),
    }
    if ds.schema:
        facets["schema"] = _facet(
            "schema", fields=[{"name": name, "type": typ} for name, typ in ds.schema]
        )
    if ds.column_lineage is not None and role == "output":
        candidate = {"columnLineage": _facet("columnLineage", **ds.column_lineage)}
        try:
            validate_facets("dataset", candidate)
        except InvalidOpenLineageEvent:
            pass  # a malformed record is left out rather than exported broken
        else:
            facets.update(candidate)
    out: dict[str, Any] = {"namespace": ds.namespace, "name": ds.name, "facets": facets}
    if role == "output" and (ds.rows is not None or ds.size is not None):
        out["outputFacets"] = {
            "outputStatistics": _facet("outputStatistics", rowCount=ds.rows, size=ds.size)
        }
    return out


def _code_facets(code: Mapping[str, Any] | None) -> dict[str, Any]:
    if not code:
        return {}
    facets: dict[str, Any] = {}
    git = code.get("git") or {}
    file = code.get("file")
    if git.get("commit"):
        root = git.get("root")
        rel = file
        if file and root:
            try:
                rel = Path(file).relative_to(root).as_posix()
            except ValueError:
                rel = file
        remote = git.get("remote")
        url = _blob_url(remote, git["commit"], rel) if remote and rel else None
        facets["sourceCodeLocation"] = _facet(
            "sourceCodeLocation",
            type="git",
            url=url or (Path(file).as_uri() if file and Path(file).is_absolute() else "file:///"),
            repoUrl=remote,
            path=rel,
            version=git["commit"],
            branch=git.get("branch"),
        )
    source = _recorded_source(code)
    if source is not None:
        facets["sourceCode"] = _facet("sourceCode", language="python", sourceCode=source)
    return facets


def _blob_url(remote: str, commit: str, path: str) -> str | None:
    base = remote.removesuffix(".git")
    if base.startswith("git@") and ":" in base:
        host, repo = base[4:].split(":", 1)
        base = f"https://{host}/{repo}"
    if not base.startswith(("https://", "http://")):
        return None
    return f"{base}/blob/{commit}/{path}"


def _recorded_source(code: Mapping[str, Any]) -> str | None:
    """The source of the recorded function, only if the file still holds exactly it."""
    file, line, wanted = code.get("file"), code.get("line"), code.get("source_hash")
    if not (file and isinstance(line, int) and line > 0 and wanted):
        return None
    try:
        lines = Path(file).read_text().splitlines(keepends=True)
        block = "".join(inspect.getblock(lines[line - 1 :]))
    except (OSError, UnicodeDecodeError, IndexError, SyntaxError):
        return None
    found = "blake3:" + blake3.blake3(block.encode()).hexdigest()
    return block if found == wanted else None


def run_event(
    event_type: str,
    *,
    run_id: str,
    job_namespace: str,
    job_name: str,
    event_time: str,
    parent: tuple[str, str, str] | None = None,
    error: Mapping[str, Any] | None = None,
    inputs: Sequence[DatasetOut] = (),
    outputs: Sequence[DatasetOut] = (),
    code: Mapping[str, Any] | None = None,
    python: str | None = None,
    env: Mapping[str, str] | None = None,
    env_allowlist: Sequence[str] = DEFAULT_ENV_ALLOWLIST,
) -> dict[str, Any]:
    """One OpenLineage RunEvent for a datatrail run. ``parent`` is (run id, job ns, job name)."""
    run_facets: dict[str, Any] = {
        "processing_engine": _facet(
            "processing_engine",
            name="datatrail",
            version=_version(),
            openlineageAdapterVersion=_version(),
        )
    }
    if python:
        run_facets["processing_engine"]["name"] = f"datatrail (python {python})"
    if parent is not None:
        run_facets["parent"] = _facet(
            "parent",
            run={"runId": parent[0]},
            job={"namespace": parent[1], "name": parent[2]},
        )
    if error is not None:
        run_facets["errorMessage"] = _facet(
            "errorMessage",
            message=f"{error.get('type', 'Error')}: {error.get('message', '')}",
            programmingLanguage="PYTHON",
            stackTrace=error.get("traceback") or None,
        )
    allowed = set(env_allowlist)
    variables = [
        {"name": k, "value": str(v)} for k, v in sorted((env or {}).items()) if k in allowed
    ]
    if variables:
        run_facets["environmentVariables"] = _facet(
            "environmentVariables", environmentVariables=variables
        )
    job_facets = {
        "jobType": _facet(
            "jobType",
            processingType="BATCH",
            integration="DATATRAIL",
            jobType="TASK" if parent is not None else "JOB",
        ),
        **_code_facets(code),
    }
    return {
        "eventType": event_type,
        "eventTime": event_time,
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URL,
        "run": {"runId": run_id, "facets": run_facets},
        "job": {"namespace": job_namespace, "name": job_name, "facets": job_facets},
        "inputs": [_dataset(d, "input") for d in inputs],
        "outputs": [_dataset(d, "output") for d in outputs],
    }


def _json(text: str | None) -> Any:
    return None if text is None else from_json(text)


class _Exporter:
    def __init__(self, store: Store, env_allowlist: Sequence[str]) -> None:
        self.store = store
        self.env_allowlist = env_allowlist
        self._code: dict[str, Any] = {}
        self._env: dict[str, Any] = {}

    def code(self, code_id: str | None) -> Any:
        if code_id is None:
            return None
        if code_id not in self._code:
            rows = self.store.query("SELECT body FROM code_versions WHERE code_id = ?", (code_id,))
            self._code[code_id] = _json(rows[0][0]) if rows else None
        return self._code[code_id]

    def env(self, env_id: str | None) -> Any:
        if env_id is None:
            return None
        if env_id not in self._env:
            rows = self.store.query("SELECT body FROM environments WHERE env_id = ?", (env_id,))
            self._env[env_id] = _json(rows[0][0]) if rows else None
        return self._env[env_id]

    def start_facets(self, index: int | None) -> dict[str, Any]:
        """The facets kept on the run's RunStarted event (not in any projection)."""
        stored = self.store.event(index) if index is not None else None
        if stored is None or stored.body is None:
            return {}
        event = decode_event(stored.body)
        facets = getattr(event, "facets", None)
        return facets if isinstance(facets, dict) else {}

    def column_lineage(self, node_id: str) -> Any:
        rows = self.store.query(
            "SELECT data FROM records WHERE topic = ? AND subject = ? ORDER BY idx DESC LIMIT 1",
            (COLUMN_LINEAGE_TOPIC, node_id),
        )
        return _json(rows[0][0]) if rows else None

    def io(self, run_id: str) -> tuple[list[DatasetOut], list[DatasetOut]]:
        rows = self.store.query(
            "SELECT io.role, io.artifact_id, io.dataset_namespace, io.dataset_name, a.rows, a.size, "
            "a.schema FROM run_io io LEFT JOIN artifacts a ON a.artifact_id = io.artifact_id "
            "WHERE io.run_id = ? ORDER BY io.idx",
            (run_id,),
        )
        found: dict[str, list[DatasetOut]] = {"input": [], "output": []}
        seen: set[tuple[str, str, str, str]] = set()
        for role, art, ns, name, n_rows, size, schema in rows:
            ns, name = (ns, name) if ns is not None else ("inmemory", art)
            if (role, ns, name, art) in seen:
                continue
            seen.add((role, ns, name, art))
            lineage = self.column_lineage(f"dataset:{ns}:{name}") if role == "output" else None
            found[role].append(
                DatasetOut(
                    namespace=ns,
                    name=name,
                    artifact_id=art,
                    rows=n_rows,
                    size=size,
                    schema=[(str(c[0]), str(c[1])) for c in _json(schema) or []] or None,
                    column_lineage=lineage if isinstance(lineage, dict) else None,
                )
            )
        return found["input"], found["output"]

    def run_events(self, row: tuple[Any, ...]) -> list[dict[str, Any]]:
        run_id, jns, jname, parent_id, status, started, ended, code_id, env_id, error, start = row
        parent = None
        if parent_id:
            prow = self.store.query(
                "SELECT job_namespace, job_name FROM runs WHERE run_id = ?", (parent_id,)
            )
            if prow and prow[0][1] is not None:
                parent = (parent_id, prow[0][0], prow[0][1])
        env_body = self.env(env_id) or {}
        start_facets = self.start_facets(start)
        common: dict[str, Any] = {
            "run_id": run_id,
            "job_namespace": jns or "default",
            "job_name": jname or "unknown",
            "parent": parent,
            "code": self.code(code_id),
            "python": env_body.get("python"),
            "env": start_facets.get("environmentVariables"),
            "env_allowlist": self.env_allowlist,
        }
        inputs, outputs = self.io(run_id)
        events = [run_event("START", event_time=started, inputs=inputs, **common)]
        if status in ("completed", "failed") and ended:
            events.append(
                run_event(
                    "COMPLETE" if status == "completed" else "FAIL",
                    event_time=ended,
                    error=_json(error) if status == "failed" else None,
                    inputs=inputs,
                    outputs=outputs,
                    **common,
                )
            )
        return events


def export_openlineage(
    store: Store,
    *,
    since: str | None = None,
    env_allowlist: Sequence[str] = DEFAULT_ENV_ALLOWLIST,
) -> Iterator[dict[str, Any]]:
    """Every run (started at or after ``since``) as OpenLineage RunEvents, oldest first.

    Runs ingested from OpenLineage yield their original events unchanged; the rest are
    built from the trail (START, then COMPLETE or FAIL with inputs and outputs).
    """
    floor = since or ""
    exporter = _Exporter(store, env_allowlist)
    ol_runs = {
        subject[4:]
        for (subject,) in store.query(
            "SELECT DISTINCT subject FROM records WHERE topic = ? AND subject LIKE 'run:%'",
            (OPENLINEAGE_TOPIC,),
        )
    }
    rows = store.query(
        "SELECT r.run_id, r.job_namespace, r.job_name, r.parent_run_id, r.status, r.started_at, "
        "r.ended_at, r.code_id, r.env_id, r.error, r.start_idx FROM runs r "
        "WHERE r.started_at >= ? ORDER BY r.started_at, r.run_id",
        (floor,),
    )
    for row in rows:
        if row[0] in ol_runs:
            for (data,) in store.query(
                "SELECT data FROM records WHERE topic = ? AND subject = ? ORDER BY idx",
                (OPENLINEAGE_TOPIC, f"run:{row[0]}"),
            ):
                yield from_json(data)["event"]
            continue
        yield from exporter.run_events(row)
    # Job and dataset events that came in as OpenLineage go back out as they came.
    for (data,) in store.query(
        "SELECT data FROM records WHERE topic = ? AND subject NOT LIKE 'run:%' AND ts >= ? "
        "ORDER BY idx",
        (OPENLINEAGE_TOPIC, floor),
    ):
        yield from_json(data)["event"]


def python_version() -> str:
    """This interpreter's version, for the processing_engine facet of live events."""
    return platform.python_version()
