"""Dagster: asset materialisations recorded as runs, asset keys as datasets.

One line of set-up, the IO manager every asset goes through::

    dg.Definitions(assets=[...], resources={"io_manager": DatatrailIOManager(inner)})

``inner`` is the IO manager that really stores the values (``dg.InMemoryIOManager()``
when none is given). Each materialised asset becomes one run of the job named
after its asset key (namespace ``dagster``): the upstream values it loaded are
its inputs and the value it produced is its output, each an artifact hashed by
content and a version of the dataset ``dagster:<asset/key/path>``. The run keeps
the Dagster run id, step key and partition as parameters, and Dagster's
materialisation metadata gets ``datatrail/run_id`` and ``datatrail/artifact_id``.

Data versions: :func:`data_version` gives a ``dg.DataVersion`` that *is* the
datatrail artifact id of a value, so ``return dg.Output(df, data_version=data_version(df))``
makes Dagster's data version and datatrail's content hash one and the same.

The run is written when the asset's output is handled; a step that fails before
that records no run (Dagster's own event log keeps the failure).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from datatrail.errors import ConfigError

try:
    import dagster
except ImportError as exc:  # pragma: no cover - the extra is installed in development
    raise ConfigError(
        "the Dagster integration needs dagster: pip install 'datatrail[dagster]'"
    ) from exc

from datatrail.capture import run, settings
from datatrail.capture._values import artifact_for
from datatrail.model import DatasetRef

__all__ = ["NAMESPACE", "DatatrailIOManager", "asset_dataset", "data_version"]

log = logging.getLogger("datatrail")

NAMESPACE = "dagster"
"""The namespace of the datasets (asset keys) and jobs (assets) this integration records."""


def asset_dataset(asset_key: Any, namespace: str = NAMESPACE) -> DatasetRef:
    """The dataset of a Dagster asset key: ``dagster`` + the key's path joined by ``/``."""
    path = getattr(asset_key, "path", asset_key)
    if isinstance(path, str):
        path = [path]
    return DatasetRef(namespace=namespace, name="/".join(str(p) for p in path))


def data_version(value: Any) -> Any:
    """A ``dagster.DataVersion`` equal to the artifact id datatrail records for ``value``."""
    art, _ = artifact_for(value, level="standard")
    return dagster.DataVersion(art.id)


class _Step:
    __slots__ = ("inputs",)

    def __init__(self) -> None:
        self.inputs: list[tuple[str, Any, DatasetRef | None]] = []


class DatatrailIOManager(dagster.IOManager):
    """Records every asset output (and the inputs it loaded) as a run; stores through ``inner``."""

    def __init__(self, inner: Any = None, *, namespace: str = NAMESPACE) -> None:
        self.inner = inner if inner is not None else dagster.InMemoryIOManager()  # type: ignore[no-untyped-call]
        self.namespace = namespace
        self._lock = threading.Lock()
        self._steps: dict[tuple[str, str], _Step] = {}

    def _step(self, run_id: str, step_key: str) -> _Step:
        with self._lock:
            return self._steps.setdefault((run_id, step_key), _Step())

    def load_input(self, context: Any) -> Any:
        value = self.inner.load_input(context)
        try:
            if context.has_asset_key and settings().enabled:
                step_ctx = context.step_context
                self._step(step_ctx.run_id, step_ctx.step.key).inputs.append(
                    (context.name, value, asset_dataset(context.asset_key, self.namespace))
                )
        except Exception:
            log.exception("datatrail: could not note a Dagster input; the step goes on")
        return value

    def handle_output(self, context: Any, obj: Any) -> None:
        if not context.has_asset_key or not settings().enabled:
            self.inner.handle_output(context, obj)
            return
        with self._lock:
            step = self._steps.pop((context.run_id, context.step_key), _Step())
        ds = asset_dataset(context.asset_key, self.namespace)
        params: dict[str, Any] = {
            "dagster_run_id": context.run_id,
            "step_key": context.step_key,
            "asset_key": ds.name,
        }
        if context.has_partition_key:
            params["partition_key"] = context.partition_key
        with run(ds.name, namespace=self.namespace, params=params) as r:
            for label, value, in_ds in step.inputs:
                r.input(value, name=label, dataset=in_ds)
            # An output check that refuses (PolicyDenied, a blocking contract) stops the
            # value before it is stored, and fails the step.
            r.output(obj, name=context.name, dataset=ds)
            self.inner.handle_output(context, obj)
            art, _ = artifact_for(obj, level=r.level)
        context.add_output_metadata({"datatrail/run_id": r.run_id, "datatrail/artifact_id": art.id})
