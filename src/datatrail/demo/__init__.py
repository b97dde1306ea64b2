"""The shipped demo: a realistic pipeline run into a fresh folder, then its lineage and story."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import msgspec

from datatrail.errors import ConfigError
from datatrail.lineage import Explanation, LineageGraph

__all__ = ["DemoResult", "run_demo"]

_MARKER = ".datatrail-demo"


class DemoResult(msgspec.Struct, frozen=True, kw_only=True):
    """What the demo made: where, how much, the report's lineage and explanation."""

    directory: str
    trail: str
    runs: int
    events: int
    report: str
    report_artifact: str
    lineage: LineageGraph
    explanation: Explanation

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data


# datatrail: untracked (sets up the demo folder; the pipeline itself is tracked)
def run_demo(directory: str | Path, *, fresh: bool = False) -> DemoResult:
    """Run the demo pipeline in ``directory`` (its own trail inside), and read back its lineage."""
    import datatrail
    from datatrail.capture import shutdown
    from datatrail.demo._pipeline import nightly, write_raw_data

    folder = Path(directory).resolve()
    if folder.exists() and any(folder.iterdir()):
        if not (folder / _MARKER).exists():
            raise ConfigError(
                f"{folder} exists and is not a demo folder; choose an empty or new --dir"
            )
        if fresh:
            shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / _MARKER).write_text("made by `datatrail demo`\n")
    trail_dir = folder / ".datatrail"
    previous = datatrail.capture.settings()
    datatrail.configure(home=trail_dir)
    try:
        raw = write_raw_data(folder / "raw")
        report_path = nightly(raw, folder / "out")
        datatrail.flush()
    finally:
        shutdown()
        datatrail.configure(home=previous.home)
    with datatrail.Trail(trail_dir) as trail:
        artifact = trail.latest_version("file", str(report_path))
        graph = trail.upstream(f"artifact:{artifact}")
        explanation = trail.explain(f"artifact:{artifact}")
        runs = trail.store.query("SELECT COUNT(*) FROM runs")[0][0]
        events = trail.store.size()
    return DemoResult(
        directory=str(folder),
        trail=str(trail_dir),
        runs=int(runs),
        events=int(events),
        report=str(report_path),
        report_artifact=artifact,
        lineage=graph,
        explanation=explanation,
    )
