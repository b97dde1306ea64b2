"""Interop benchmarks: OpenLineage validation and ingest.

- validate: ``validate_openlineage`` on the Marquez template's 26 events (schema,
  dataSource, sql, columnLineage, ... facets), events per second, against
  ``jsonschema`` validating the same events with the official 2-0-2 schemas
  (core schema plus each standard facet schema), which is what a server would
  otherwise run. Target: at least 10x faster.
- ingest: ``ingest`` of N RunEvents (START + COMPLETE pairs, one input and one
  output each) into a fresh SQLite trail, events per second (no baseline: the
  append path is measured in bench_verify). Target: 2,000 events/s.
"""

from __future__ import annotations

import json
import re
import tempfile
import uuid
from pathlib import Path
from typing import Any

from benchmarks._harness import Result, median_time
from datatrail.interop.openlineage import ingest, validate_openlineage
from datatrail.store import init_home, open_store

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "testdata"


def _template() -> list[dict[str, Any]]:
    text = (SHARED / "marquez" / "metadata.template.json").read_text()
    text = text.replace("{{RUN_START_TIME}}", "2024-01-01T00:00:00Z")
    text = re.sub(r"\{\{RUN_END_TIME_AFTER_(\d+)_MINUTES\}\}", "2024-01-01T00:10:00Z", text)
    events: list[dict[str, Any]] = json.loads(text)
    return events


def _official() -> Any:
    import jsonschema
    from referencing import Registry, Resource

    spec = SHARED / "openlineage" / "spec"
    core = json.loads((spec / "OpenLineage.json").read_text())
    facets = [json.loads(p.read_text()) for p in sorted((spec / "facets").glob("*.json"))]
    registry: Registry[Any] = Registry().with_resources(
        (s["$id"], Resource.from_contents(s)) for s in [core, *facets]
    )
    core_validator = jsonschema.Draft202012Validator(core, registry=registry)
    by_key: dict[str, list[Any]] = {}
    for f in facets:
        for key in f["properties"]:
            by_key.setdefault(key, []).append(jsonschema.Draft202012Validator(f, registry=registry))

    def check(event: dict[str, Any]) -> None:
        core_validator.validate(event)
        containers = [
            event.get("run", {}).get("facets", {}),
            event.get("job", {}).get("facets", {}),
        ]
        for ds in [*event.get("inputs", []), *event.get("outputs", [])]:
            containers.append(ds.get("facets", {}))
        for facets_obj in containers:
            for key, value in facets_obj.items():
                for v in by_key.get(key, []):
                    v.validate({key: value})

    return check


def _pairs(n: int) -> list[dict[str, Any]]:
    events = []
    for i in range(n // 2):
        run_id = str(uuid.uuid4())
        base = {
            "eventTime": f"2024-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z",
            "producer": "https://example.com/bench",
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
            "run": {"runId": run_id},
            "job": {"namespace": "bench", "name": f"job{i % 50}"},
            "inputs": [{"namespace": "bench", "name": f"table{i % 100}"}],
        }
        out = [{"namespace": "bench", "name": f"table{(i + 1) % 100}"}]
        events.append({**base, "eventType": "START"})
        events.append({**base, "eventType": "COMPLETE", "outputs": out})
    return events


def run(quick: bool) -> list[Result]:
    events = _template()
    official = _official()
    ours = median_time(lambda: [validate_openlineage(e) for e in events], repeat=5)
    theirs = median_time(lambda: [official(e) for e in events], repeat=3)
    rate, base_rate = len(events) / ours, len(events) / theirs
    results = [
        Result(
            name="OpenLineage validate (Marquez template)",
            ours=rate,
            unit="events/s",
            target=">= 10x jsonschema",
            ok=rate >= 10 * base_rate,
            baseline=base_rate,
            baseline_name="jsonschema, official schemas",
            ratio=rate / base_rate,
        )
    ]
    n = 2_000 if quick else 20_000
    batch = _pairs(n)
    with tempfile.TemporaryDirectory() as tmp:
        home = init_home(Path(tmp) / ".datatrail")
        store = open_store(home.url, signer=home.signer())
        try:
            seconds = median_time(lambda: ingest(store, batch), repeat=1)
        finally:
            store.close()
    results.append(
        Result(
            name=f"OpenLineage ingest ({n} events, SQLite)",
            ours=n / seconds,
            unit="events/s",
            target=">= 2,000 events/s",
            ok=n / seconds >= 2000,
        )
    )
    return results
