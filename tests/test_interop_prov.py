"""W3C PROV export: loads with ``prov``, refers only to what it defines, and keeps time order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from prov.model import ProvDocument
from typer.testing import CliRunner

from datatrail.cli import app
from datatrail.interop import export_prov, prov_document
from datatrail.lineage import Trail

# Which element kind each relation's fields must name (PROV-DM).
_REFS = {
    "used": {"prov:activity": "activity", "prov:entity": "entity"},
    "wasGeneratedBy": {"prov:entity": "entity", "prov:activity": "activity"},
    "wasDerivedFrom": {
        "prov:generatedEntity": "entity",
        "prov:usedEntity": "entity",
        "prov:activity": "activity",
    },
    "wasAssociatedWith": {"prov:activity": "activity", "prov:agent": "agent"},
    "wasAttributedTo": {"prov:entity": "entity", "prov:agent": "agent"},
    "wasInformedBy": {"prov:informed": "activity", "prov:informant": "activity"},
}


@pytest.fixture(scope="module")
def demo_doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from datatrail.demo import run_demo

    trail = run_demo(tmp_path_factory.mktemp("demo") / "demo").trail
    with Trail(trail) as t:
        return prov_document(t.store)


def test_prov_json_of_the_demo_loads_with_the_prov_package(demo_doc: dict[str, Any]) -> None:
    document = ProvDocument.deserialize(content=json.dumps(demo_doc), format="json")
    records = list(document.get_records())
    relations = sum(len(demo_doc.get(k, {})) for k in _REFS)
    elements = sum(len(demo_doc.get(k, {})) for k in ("entity", "activity", "agent"))
    assert len(records) == relations + elements
    assert all(demo_doc.get(kind) for kind in _REFS), "every relation kind is present"


def test_every_relation_refers_to_defined_elements(demo_doc: dict[str, Any]) -> None:
    dangling = [
        (kind, rid, field, target)
        for kind, fields in _REFS.items()
        for rid, body in demo_doc.get(kind, {}).items()
        for field, element in fields.items()
        if (target := body.get(field)) is None or target not in demo_doc[element]
    ]
    assert dangling == []


def test_times_are_in_order(demo_doc: dict[str, Any]) -> None:
    acts = demo_doc["activity"]
    for body in demo_doc["used"].values():
        act = acts[body["prov:activity"]]
        assert act["prov:startTime"] <= body["prov:time"] <= act.get("prov:endTime", "9")
    generated = {}
    for body in demo_doc["wasGeneratedBy"].values():
        act = acts[body["prov:activity"]]
        assert act["prov:startTime"] <= body["prov:time"] <= act.get("prov:endTime", "9")
        generated[body["prov:entity"]] = body["prov:time"]
    for body in demo_doc["wasDerivedFrom"].values():
        used = generated.get(body["prov:usedEntity"])
        if used is not None:  # sources read from outside have no generation here
            assert used <= generated[body["prov:generatedEntity"]]
    for body in demo_doc["wasInformedBy"].values():
        informant, informed = acts[body["prov:informant"]], acts[body["prov:informed"]]
        assert informant["prov:startTime"] <= informed.get("prov:endTime", "9")


def test_entities_are_artifacts_and_activities_are_runs(demo_doc: dict[str, Any]) -> None:
    assert all(k.startswith("artifact:blake3:") for k in demo_doc["entity"])
    assert all(k.startswith("run:") for k in demo_doc["activity"])
    assert all(k.startswith("agent:") for k in demo_doc["agent"])
    datasets = {e.get("dt:dataset") for e in demo_doc["entity"].values()}
    assert any(d and d.endswith("/raw/orders.csv") for d in datasets)


def test_prov_n_is_written_through_the_prov_package(tmp_path: Path) -> None:
    from datatrail.demo import run_demo

    trail = run_demo(tmp_path / "demo").trail
    out = tmp_path / "trail.provn"
    result = CliRunner().invoke(
        app, ["export", "--format", "prov-n", "-o", str(out), "--trail", trail, "--json"]
    )
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.startswith("document") and "wasGeneratedBy(" in text and "used(" in text
    with Trail(trail) as t:
        assert json.loads(export_prov(t.store))["activity"]
