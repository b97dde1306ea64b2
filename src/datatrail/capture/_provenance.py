"""Provenance that travels with the data: claims inside files, sidecars, and trusting them.

A file written through datatrail carries who made it in two places:

* **inside the file**, where the format has room (Parquet footer key-value
  metadata, Arrow IPC schema metadata, under ``datatrail.provenance``): the run
  id, the job and the content id of the table written. A file cannot hold the
  hash of its own bytes, so this claim names the run, not the file's artifact;
* **a sidecar** ``NAME.datatrail.json`` next to it (for every format): the
  file's artifact id (BLAKE3 of its bytes), the run and job, and what the file
  looked like when that hash was taken: its size, its mtime in nanoseconds and,
  for Parquet and Arrow files, a hash of the footer.

Reading the file as an input trusts the sidecar's artifact id without hashing
only when the file still matches it: same size, and the same mtime or (a copy
that got a new mtime) the same footer. Otherwise the file is hashed as usual.
``DATATRAIL_TRUST_SIDECARS=0`` turns the shortcut off. Claims inside files are
never used for identity, only shown (``datatrail identify``), because tools copy
schema metadata into files they rewrite.
"""

from __future__ import annotations

import json
import os
import stat as stat_module
import time
from pathlib import Path
from typing import Any, Final

import blake3

from datatrail.capture._hashing import _media_type, hash_file
from datatrail.errors import HashingError
from datatrail.model import ArtifactInfo, format_ts

__all__ = [
    "METADATA_KEY",
    "SIDECAR_SUFFIX",
    "embedded_claim",
    "embedded_metadata",
    "footer_hash",
    "identify",
    "read_sidecar",
    "sidecar_path",
    "trusted_artifact",
    "write_sidecar",
]

SIDECAR_SUFFIX: Final = ".datatrail.json"
METADATA_KEY: Final = "datatrail.provenance"
FORMAT: Final = 1
_FOOTER_LIMIT: Final = 64 << 20


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """Where the sidecar of ``path`` lives: ``NAME.datatrail.json`` beside it."""
    p = Path(path)
    return p.with_name(p.name + SIDECAR_SUFFIX)


def _trust_sidecars() -> bool:
    return os.environ.get("DATATRAIL_TRUST_SIDECARS", "1").lower() not in ("0", "false", "no")


def footer_hash(path: str | os.PathLike[str]) -> str | None:
    """BLAKE3 of a Parquet or Arrow IPC file's footer (its schema and block layout), or None.

    The footer is read from the end of the file (a few KiB); any other file gives None.
    """
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            if size < 12:
                return None
            handle.seek(size - 10)
            tail = handle.read(10)
            if tail.endswith(b"PAR1"):
                length, end = int.from_bytes(tail[2:6], "little"), size - 8
            elif tail.endswith(b"ARROW1"):
                length, end = int.from_bytes(tail[0:4], "little", signed=True), size - 10
            else:
                return None
            if length <= 0 or length > min(end, _FOOTER_LIMIT):
                return None
            handle.seek(end - length)
            footer = handle.read(length)
    except OSError:
        return None
    return "blake3:" + blake3.blake3(footer).hexdigest()


def read_sidecar(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The sidecar of ``path`` as a dict, or None when it is absent or not one of ours."""
    try:
        data = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("datatrail_provenance") != FORMAT:
        return None
    return data


def write_sidecar(
    path: str | os.PathLike[str],
    artifact: ArtifactInfo,
    *,
    run_id: str,
    job: str,
    content_id: str | None = None,
) -> Path:
    """Write ``NAME.datatrail.json`` for a file whose bytes hash to ``artifact.id``.

    Written to a temporary name and renamed, so a reader never sees half a sidecar.
    """
    p = Path(path)
    st = os.stat(p)
    data: dict[str, Any] = {
        "datatrail_provenance": FORMAT,
        "file": p.name,
        "artifact_id": artifact.id,
        "run_id": run_id,
        "job": job,
        "content_id": content_id,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "footer": footer_hash(p),
        "written_at": format_ts(time.time_ns()),
    }
    target = sidecar_path(p)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return target


def trusted_artifact(
    path: str | os.PathLike[str], info: os.stat_result | None = None
) -> tuple[ArtifactInfo, str] | None:
    """The artifact a valid sidecar gives for ``path`` without hashing, and why it is trusted.

    ``why`` is ``mtime`` (size and mtime unchanged) or ``footer`` (size and footer
    unchanged: a copy). None when there is no sidecar, it does not match the file,
    or ``DATATRAIL_TRUST_SIDECARS=0``.
    """
    if not _trust_sidecars():
        return None
    car = read_sidecar(path)
    if car is None:
        return None
    try:
        st = info if info is not None else os.stat(path)
    except OSError:
        return None
    artifact_id = car.get("artifact_id")
    if (
        not stat_module.S_ISREG(st.st_mode)
        or not isinstance(artifact_id, str)
        or not artifact_id.startswith("blake3:")
        or car.get("size") != st.st_size
    ):
        return None
    if car.get("mtime_ns") == st.st_mtime_ns:
        why = "mtime"
    elif car.get("footer") and car.get("footer") == footer_hash(path):
        why = "footer"
    else:
        return None
    info_out = ArtifactInfo(
        id=artifact_id, kind="file", size=st.st_size, media_type=_media_type(os.fspath(path))
    )
    return info_out, why


def embedded_metadata(*, run_id: str, job: str, content_id: str | None) -> dict[str, str]:
    """The key-value pair a writer puts in a Parquet or Arrow schema's metadata."""
    claim = {
        "v": FORMAT,
        "run_id": run_id,
        "job": job,
        "content_id": content_id,
        "written_at": format_ts(time.time_ns()),
    }
    return {METADATA_KEY: json.dumps(claim, sort_keys=True, separators=(",", ":"))}


def embedded_claim(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The claim a Parquet or Arrow IPC file carries in its schema metadata, or None.

    Only the footer is read. Files of other formats, unreadable files and files
    without a claim give None; pyarrow is imported only for a file that has a footer.
    """
    if footer_hash(path) is None:
        return None
    try:
        import pyarrow.ipc as ipc
        import pyarrow.parquet as pq
    except ImportError:
        return None
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
        if magic == b"PAR1":
            metadata = pq.read_schema(path).metadata
        else:
            with ipc.open_file(path) as reader:
                metadata = reader.schema.metadata
    except Exception:  # a damaged file has no claim we can read; identify still hashes it
        return None
    raw = (metadata or {}).get(METADATA_KEY.encode())
    if raw is None:
        return None
    try:
        claim = json.loads(raw)
    except ValueError:
        return None
    return claim if isinstance(claim, dict) else None


def identify(
    path: str | os.PathLike[str], *, trail: Any = None, rehash: bool = False
) -> dict[str, Any]:
    """Which run made a file: its artifact id, the claims it carries, and what the trail knows.

    ``trail`` is an open :class:`~datatrail.lineage.Trail` (or None: claims only).
    ``rehash`` hashes the file even when its sidecar could be trusted. The result is
    the ``--json`` shape of ``datatrail identify``.
    """
    p = Path(path)
    try:
        st = os.stat(p)
    except OSError as exc:
        raise HashingError(
            f"{p}: {exc.strerror or exc}; give the path of an existing file"
        ) from exc
    if not stat_module.S_ISREG(st.st_mode):
        raise HashingError(f"{p}: not a regular file; identify names one file")
    trusted = None if rehash else trusted_artifact(p, st)
    if trusted is not None:
        artifact_id, how = trusted[0].id, f"sidecar ({trusted[1]})"
    else:
        artifact_id, how = hash_file(p).digest, "hash"
    sidecar = read_sidecar(p)
    embedded = embedded_claim(p)
    made_by: list[dict[str, Any]] = []
    known: bool | None = None
    if trail is not None:
        from datatrail.errors import NodeNotFound

        try:
            record = trail.artifact(artifact_id)
        except NodeNotFound:
            known = False
        else:
            known = True
            for run_id in record.produced_by:
                run = trail.run(run_id)
                made_by.append(
                    {
                        "run_id": run.run_id,
                        "job": run.job,
                        "status": run.status,
                        "started_at": run.started_at,
                        "ended_at": run.ended_at,
                    }
                )
    claimed = {c["run_id"] for c in (sidecar, embedded) if c and isinstance(c.get("run_id"), str)}
    confirmed: bool | None = None
    if trail is not None and claimed:
        confirmed = bool(claimed & {m["run_id"] for m in made_by})
    return {
        "path": str(p.resolve()),
        "artifact_id": artifact_id,
        "identified_by": how,
        "size": st.st_size,
        "known": known,
        "made_by": made_by,
        "claims": {"sidecar": sidecar, "embedded": embedded},
        "claim_confirmed": confirmed,
    }


# -- recording files written and read through datatrail --------------------------------


def record_read(
    handle: Any, path: Path, *, dataset: Any = None, name: str | None = None
) -> ArtifactInfo:
    """Record ``path`` as an input of the run ``handle``; a valid sidecar spares the hash."""
    from datatrail.capture._hooks import io_observers, notify_io
    from datatrail.capture._track import _build_io, _submit
    from datatrail.capture._values import artifact_for

    _check_open(handle, "input")
    art, ds = artifact_for(path, level=handle.level, dataset=dataset)
    _submit(_build_io, (handle.run_id, handle.job, "input", time.time_ns(), [(name, art, ds)]))
    if io_observers():
        notify_io([handle._output_context(name, path, art, ds, role="input")])
    return art


def publish(
    handle: Any,
    tmp: Path,
    final: Path,
    *,
    dataset: Any,
    name: str | None,
    content_id: str | None,
) -> ArtifactInfo:
    """Make the file written at ``tmp`` the output ``final`` of the run ``handle``.

    The output checks see it first: one that refuses removes ``tmp`` and raises, so
    nothing refused is left at ``final``. Then it is renamed into place, recorded,
    and given its sidecar.
    """
    from datatrail.capture._hooks import io_observers, notify_io, output_checks, run_output_checks
    from datatrail.capture._track import _build_io, _submit
    from datatrail.capture._values import artifact_for

    try:
        _check_open(handle, "output")
        art, ds = artifact_for(tmp, level=handle.level, dataset=dataset, fresh=True)
        if output_checks():
            run_output_checks([handle._output_context(name, final, art, ds)])
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _submit(_build_io, (handle.run_id, handle.job, "output", time.time_ns(), [(name, art, ds)]))
    if io_observers():
        notify_io([handle._output_context(name, final, art, ds)])
    if art.id.startswith("blake3:"):
        write_sidecar(
            final, art, run_id=handle.run_id, job=handle.job.node_id(), content_id=content_id
        )
    return art


def _check_open(handle: Any, role: str) -> None:
    from datatrail.errors import UsageError

    if handle._finished:
        raise UsageError(
            f"run {handle.run_id} ({handle.job.name}) has finished; record {role}s inside it"
        )
