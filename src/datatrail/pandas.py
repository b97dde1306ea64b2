"""pandas I/O that records what it reads and writes: ``datatrail.pandas.read_csv`` and friends.

Inside a run (``with datatrail.run(...)`` or a ``@datatrail.track`` function) each
reader records its file as an input and each writer its file as an output, as
``r.input(path)`` / ``r.output(path)`` would, with the file's dataset
(``file`` + absolute path). Outside a run they are the plain pandas calls.

Writers also make the file carry its provenance: Parquet and Feather (Arrow IPC)
files get the run id, job and the frame's content id in their schema metadata,
every file gets a ``NAME.datatrail.json`` sidecar with its artifact id, and the
frame's ``attrs["datatrail"]`` names the artifact. A later read, in this process
or another, trusts the sidecar instead of hashing the file again while the
file's size and mtime (or footer) still match. A file is written under a
temporary name and renamed only after the output checks (governance, contracts)
accept it.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datatrail.capture import current_run
from datatrail.capture._provenance import (
    embedded_metadata,
    publish,
    read_sidecar,
    record_read,
    trusted_artifact,
)
from datatrail.capture._values import artifact_for
from datatrail.errors import UsageError
from datatrail.model import DatasetRef, file_dataset

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "read_csv",
    "read_feather",
    "read_parquet",
    "to_csv",
    "to_feather",
    "to_parquet",
]

ATTRS_KEY = "datatrail"


def _local(path: Any) -> Path | None:
    """The local path a pandas path argument names, or None (a URL, a buffer, an open file)."""
    if isinstance(path, os.PathLike) or (isinstance(path, str) and "://" not in path):
        return Path(path)
    return None


def _check_dataset(dataset: DatasetRef | None) -> None:
    if dataset is not None and not isinstance(dataset, DatasetRef):
        raise UsageError(f"dataset must be a datatrail.DatasetRef, not {type(dataset).__name__}")


def _read(
    reader: Any, path: Any, args: tuple[Any, ...], kwargs: dict[str, Any], dataset: Any
) -> pd.DataFrame:
    _check_dataset(dataset)
    handle = current_run()
    local = _local(path)
    attrs: dict[str, Any] | None = None
    if handle is not None and local is not None:
        art = record_read(handle, local, dataset=dataset, name=local.name)
        car = read_sidecar(local) if trusted_artifact(local) is not None else None
        attrs = {
            "artifact_id": art.id,
            "dataset": (dataset or file_dataset(local)).node_id(),
            "read_by_run": handle.run_id,
            "made_by_run": car.get("run_id") if car else None,
        }
    frame = reader(path, *args, **kwargs)
    if attrs is not None:
        frame.attrs[ATTRS_KEY] = attrs
    return frame  # type: ignore[no-any-return]


def read_csv(
    path: Any, *args: Any, dataset: DatasetRef | None = None, **kwargs: Any
) -> pd.DataFrame:
    """``pandas.read_csv``, recording the file as an input of the current run."""
    import pandas

    return _read(pandas.read_csv, path, args, kwargs, dataset)


def read_parquet(
    path: Any, *args: Any, dataset: DatasetRef | None = None, **kwargs: Any
) -> pd.DataFrame:
    """``pandas.read_parquet``, recording the file as an input of the current run."""
    import pandas

    return _read(pandas.read_parquet, path, args, kwargs, dataset)


def read_feather(
    path: Any, *args: Any, dataset: DatasetRef | None = None, **kwargs: Any
) -> pd.DataFrame:
    """``pandas.read_feather`` (Arrow IPC), recording the file as an input of the current run."""
    import pandas

    return _read(pandas.read_feather, path, args, kwargs, dataset)


def _write(
    frame: pd.DataFrame,
    path: Any,
    dataset: DatasetRef | None,
    plain: Any,
    write: Any,
) -> None:
    _check_dataset(dataset)
    handle = current_run()
    final = _local(path)
    if handle is None or final is None:
        plain()
        return
    final = final.resolve()
    content_id = None
    if handle.level != "minimal":
        content_id = artifact_for(frame, level=handle.level)[0].id
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}.datatrail.tmp")
    try:
        write(
            tmp,
            embedded_metadata(
                run_id=handle.run_id, job=handle.job.node_id(), content_id=content_id
            ),
        )
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    art = publish(
        handle,
        tmp,
        final,
        dataset=dataset or file_dataset(final),
        name=final.name,
        content_id=content_id,
    )
    frame.attrs[ATTRS_KEY] = {
        "artifact_id": art.id,
        "dataset": (dataset or file_dataset(final)).node_id(),
        "made_by_run": handle.run_id,
        "content_id": content_id,
    }


def _arrow_table(frame: pd.DataFrame, index: bool | None, extra: dict[str, str]) -> Any:
    import pyarrow as pa

    table = pa.Table.from_pandas(frame, preserve_index=index)
    metadata = dict(table.schema.metadata or {})
    metadata.update({k.encode(): v.encode() for k, v in extra.items()})
    return table.replace_schema_metadata(metadata)


def to_parquet(
    frame: pd.DataFrame,
    path: Any,
    *,
    dataset: DatasetRef | None = None,
    index: bool | None = None,
    compression: str | None = "snappy",
    **kwargs: Any,
) -> None:
    """``frame.to_parquet(path)`` through pyarrow, recorded as an output of the current run.

    The file's schema metadata carries the run id, the job and the frame's content
    id; ``kwargs`` go to ``pyarrow.parquet.write_table``.
    """
    if "partition_cols" in kwargs:
        raise UsageError(
            "datatrail.pandas.to_parquet writes one file; partition_cols writes a directory, "
            "use frame.to_parquet and r.output(directory)"
        )

    def write(target: Path, extra: dict[str, str]) -> None:
        import pyarrow.parquet as pq

        pq.write_table(_arrow_table(frame, index, extra), target, compression=compression, **kwargs)

    _write(
        frame,
        path,
        dataset,
        lambda: frame.to_parquet(path, index=index, compression=compression, **kwargs),  # type: ignore[arg-type]
        write,
    )


def to_feather(
    frame: pd.DataFrame, path: Any, *, dataset: DatasetRef | None = None, **kwargs: Any
) -> None:
    """``frame.to_feather(path)`` (Arrow IPC file), recorded as an output of the current run.

    The file's schema metadata carries the run id, the job and the frame's content id.
    """

    def write(target: Path, extra: dict[str, str]) -> None:
        import pyarrow.feather as feather

        feather.write_feather(_arrow_table(frame, None, extra), target, **kwargs)

    _write(frame, path, dataset, lambda: frame.to_feather(path, **kwargs), write)


def to_csv(
    frame: pd.DataFrame, path: Any, *, dataset: DatasetRef | None = None, **kwargs: Any
) -> None:
    """``frame.to_csv(path)``, recorded as an output of the current run (provenance in a sidecar)."""

    def write(target: Path, extra: dict[str, str]) -> None:
        frame.to_csv(target, **kwargs)

    _write(frame, path, dataset, lambda: frame.to_csv(path, **kwargs), write)
