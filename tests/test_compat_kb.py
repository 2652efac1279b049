"""The compatibility knowledge is data: adding a runtime release, a converter or a target is a
Turtle edit that changes the derivation, with no code change. Plus sanity checks on the shipped KB."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from compat_helpers import MB, art, rec

from modelport.schema.compat import derive_compatibility
from modelport.schema.compat_explain import explain
from modelport.schema.kb import get_kb, load_kb, ontology_dir
from modelport.schema.kb_compat import CONFIDENCE_RANK
from modelport.schema.record import CompatibilityEntry, ModelRecord

PREFIXES = """
@prefix mp:   <https://w3id.org/modelport/ns#> .
@prefix rt:   <https://w3id.org/modelport/kb/runtime/> .
@prefix fmt:  <https://w3id.org/modelport/kb/format/> .
@prefix rel:  <https://w3id.org/modelport/kb/release/> .
@prefix cv:   <https://w3id.org/modelport/kb/converter/> .
@prefix tgt:  <https://w3id.org/modelport/kb/target/> .
@prefix hw:   <https://w3id.org/modelport/kb/hardware/> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
"""


@pytest.fixture
def kb_copy(tmp_path: Path) -> Path:
    d = tmp_path / "kb"
    shutil.copytree(ontology_dir() / "kb", d)
    return d


def cell(entries: list[CompatibilityEntry], runtime: str | None = None, target: str | None = None,
         hardware: str | None = None) -> CompatibilityEntry | None:
    return next((e for e in entries if e.runtime == runtime and e.target == target and e.hardware == hardware)
                if target is None and hardware is None else
                (e for e in entries if (target is None or e.target == target) and e.hardware == hardware), None)


def onnx_model(opset: int, **details: Any) -> ModelRecord:
    return rec(f"onnx{opset}", artifacts=[art("model.onnx", "onnx", 50 * MB, opset=opset, **details)])


def test_adding_a_runtime_release_is_a_data_edit(kb_copy: Path) -> None:
    before = load_kb(kb_copy)
    assert cell(derive_compatibility(onnx_model(29), before), "onnxruntime") is None
    (kb_copy / "zz-ort-next.ttl").write_text(PREFIXES + """
rel:onnxruntime-1.40 a mp:RuntimeRelease ; mp:releaseOf rt:onnxruntime ; mp:version "1.40" ;
    mp:minOpset 7 ; mp:maxOpset 29 ; mp:maxIrVersion 14 .
""")
    after = load_kb(kb_copy)
    assert after.version != before.version  # evidence points at the KB version it was derived from
    c = cell(derive_compatibility(onnx_model(29, ir_version=14), after), "onnxruntime")
    assert c is not None and c.status == "native"
    assert c.version_range is not None and c.version_range.contains("1.40.0") and not c.version_range.contains("1.32")
    assert any(e.kb_version == after.version for e in c.evidence)
    # Older models are unaffected by the new row.
    c17 = cell(derive_compatibility(onnx_model(17), after), "onnxruntime")
    assert c17 is not None and c17.version_range is not None and c17.version_range.min == "1.12"


def test_adding_a_release_can_narrow_a_conservative_gap(kb_copy: Path) -> None:
    """Opset 23 → 1.23 today because 1.22 is not in the table; a verified 1.22 row moves the minimum."""
    base = cell(derive_compatibility(onnx_model(23), load_kb(kb_copy)), "onnxruntime")
    assert base is not None and base.version_range is not None and base.version_range.min == "1.23"
    (kb_copy / "zz-ort-122.ttl").write_text(PREFIXES + """
rel:onnxruntime-1.22 a mp:RuntimeRelease ; mp:releaseOf rt:onnxruntime ; mp:version "1.22" ;
    mp:minOpset 7 ; mp:maxOpset 23 ; mp:maxIrVersion 11 .
""")
    c = cell(derive_compatibility(onnx_model(23), load_kb(kb_copy)), "onnxruntime")
    assert c is not None and c.version_range is not None and c.version_range.min == "1.22"


def test_adding_a_converter_is_a_data_edit(kb_copy: Path) -> None:
    record = onnx_model(17)
    assert cell(derive_compatibility(record, load_kb(kb_copy)), "coreml") is None
    (kb_copy / "zz-converter.ttl").write_text(PREFIXES + """
cv:hypothetical-onnx2mlprogram a mp:Converter ; rdfs:label "hypothetical ONNX → ML program" ;
    mp:input fmt:onnx ; mp:output fmt:coreml-mlprogram ; mp:confidence "low" ; mp:outputSpecVersion 7 .
""")
    kb = load_kb(kb_copy)
    entries = derive_compatibility(record, kb)
    c = cell(entries, "coreml")
    assert c is not None and c.status == "convertible"
    assert c.path == ["hypothetical-onnx2mlprogram"] and c.confidence == "low"
    text = explain(record, "coreml", kb)["text"]
    assert "hypothetical ONNX → ML program" in text


def test_adding_a_target_and_hardware_is_a_data_edit(kb_copy: Path) -> None:
    (kb_copy / "zz-target.ttl").write_text(PREFIXES + """
tgt:set-top-box a mp:DeploymentTarget ; rdfs:label "Set-top box" ; mp:servedBy rt:onnxruntime .
hw:stb-2gb a mp:HardwareProfile ; rdfs:label "Set-top box 2 GiB" ; mp:kind "soc" ; mp:target tgt:set-top-box ;
    mp:memoryGiB 2 ; mp:memoryBandwidthGBs 12.8 ; mp:fp32TFLOPS 0.1 .
""")
    kb = load_kb(kb_copy)
    entries = derive_compatibility(onnx_model(17), kb)
    t = next(e for e in entries if e.target == "set-top-box" and e.hardware is None)
    assert t.runtime == "onnxruntime" and t.status == "native"
    h = next(e for e in entries if e.hardware == "stb-2gb")
    assert h.measurements["weights_bytes"] == 50 * MB


def test_removing_a_release_row_removes_the_claim(kb_copy: Path) -> None:
    ttl = kb_copy / "runtime-versions.ttl"
    keep = [line for line in ttl.read_text().splitlines()
            if not line.startswith("rel:onnxruntime-1.32 ") and "load probe of onnxruntime 1.32" not in line]
    ttl.write_text("\n".join(keep))
    assert cell(derive_compatibility(onnx_model(28), load_kb(kb_copy)), "onnxruntime") is None


# -- sanity of the shipped facts -----------------------------------------------------------------
ORT_MAX_OPSET = {"1.8": 14, "1.10": 15, "1.11": 16, "1.12": 17, "1.13": 17, "1.14": 18, "1.15": 19, "1.16": 19,
                 "1.17": 20, "1.18": 21, "1.19": 21, "1.20": 21}


def test_ort_table_matches_the_published_table() -> None:
    rows = {r.version: r for r in get_kb().compat.releases_of("onnxruntime")}
    for version, opset in ORT_MAX_OPSET.items():
        assert rows[version].caps["maxOpset"] == opset, version
    assert rows["1.17"].caps["maxIrVersion"] == 9 and rows["1.18"].caps["maxIrVersion"] == 10


def test_every_fact_cites_a_source() -> None:
    c = get_kb().compat
    for rels in c.releases.values():
        for r in rels:
            assert r.source, r.iri
    for conv in c.converters.values():
        assert conv.source, conv.id
        assert conv.inputs and conv.outputs, conv.id
        assert conv.confidence in CONFIDENCE_RANK, conv.id
    for h in c.hardware.values():
        assert h.source and (h.memory_bytes or 0) > 0, h.id
        if h.kind == "gpu":
            assert h.bandwidth_gbs and h.fp16_tflops and h.fp32_tflops, h.id


def test_no_onnx_to_coreml_converter_is_offered() -> None:
    c = get_kb().compat
    coreml = set(get_kb().runtimes["coreml"].consumes)
    assert not [x for x in c.converters_from("onnx") if set(x.outputs) & coreml]
    assert [x for x in c.withdrawn_from("onnx") if set(x.outputs) & coreml]  # kept as an explainable fact


def test_kb_formats_referenced_by_compat_facts_exist() -> None:
    kb = get_kb()
    for conv in kb.compat.converters.values():
        assert set(conv.inputs) | set(conv.outputs) <= set(kb.formats), conv.id
    for t in kb.compat.targets.values():
        assert set(t.served_by) <= set(kb.runtimes), t.id
        assert set(t.includes) <= set(kb.compat.targets), t.id
    for h in kb.compat.hardware.values():
        assert set(h.targets) <= set(kb.compat.targets), h.id
