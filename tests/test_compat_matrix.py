"""Table of record facts → expected compatibility cells, written from the KB facts
(ontology/kb/runtime-versions.ttl, converters.ttl, targets.ttl, quantization.ttl, hardware.ttl)."""

from __future__ import annotations

from functools import cache

import pytest
from compat_helpers import GB, MB, art, pin, rec

from modelport.schema.compat import analyze, derive_compatibility
from modelport.schema.kb import get_kb
from modelport.schema.record import CompatibilityEntry, Evidence, ModelRecord
from modelport.schema.versions import VersionRange

PTH = art("data/model.pth", "pytorch-pickle", 13_000)

RECORDS = {
    "onnx17": lambda: rec("onnx17", artifacts=[art("model.onnx", "onnx", 90 * MB, opset=17, ir_version=8)]),
    "onnx18": lambda: rec("onnx18", artifacts=[art("model.onnx", "onnx", 90 * MB, opset=18, ir_version=8)]),
    "onnx21": lambda: rec("onnx21", artifacts=[art("model.onnx", "onnx", 90 * MB, opset=21, ir_version=10)]),
    "onnx22": lambda: rec("onnx22", artifacts=[art("model.onnx", "onnx", 90 * MB, opset=22)]),
    "onnx23": lambda: rec("onnx23", artifacts=[art("model.onnx", "onnx", 90 * MB, opset=23)]),
    "onnx28": lambda: rec("onnx28", artifacts=[art("model.onnx", "onnx", 90 * MB, opset=28, ir_version=14)]),
    "onnx29": lambda: rec("onnx29", artifacts=[art("model.onnx", "onnx", 90 * MB, opset=29)]),
    "onnx8": lambda: rec("onnx8", artifacts=[art("model.onnx", "onnx", 90 * MB, opset=8)]),
    "onnx_ir11": lambda: rec("onnx_ir11", artifacts=[art("model.onnx", "onnx", 90 * MB, opset=17, ir_version=11)]),
    "onnx_ml4": lambda: rec("onnx_ml4", artifacts=[art("model.onnx", "onnx", MB, opset=17, ml_opset=4)]),
    "onnx_bare": lambda: rec("onnx_bare", artifacts=[art("model.onnx", "onnx", 90 * MB)]),
    "onnx_declared": lambda: rec("onnx_declared", declared_formats=["onnx"]),
    "onnx_pinned_ort": lambda: rec("onnx_pinned_ort", artifacts=[art("model.onnx", "onnx", MB, opset=17)],
                                   requirements=[pin("onnxruntime", "==1.17.1")]),
    "torch213": lambda: rec("torch213", frameworks=["pytorch"], artifacts=[PTH],
                            requirements=[pin("torch", "==2.13.0")]),
    "torch21": lambda: rec("torch21", frameworks=["pytorch"], artifacts=[PTH],
                           requirements=[pin("torch", "==2.1.2")]),
    "torch113": lambda: rec("torch113", frameworks=["pytorch"], artifacts=[PTH],
                            requirements=[pin("torch", "==1.13.1")]),
    "llama7b": lambda: rec("llama7b", frameworks=["transformers"], architecture="LlamaForCausalLM",
                           parameter_count=7_000_000_000, dtypes=["bfloat16"],
                           artifacts=[art("model-00001-of-00002.safetensors", "safetensors", 9 * GB),
                                      art("model-00002-of-00002.safetensors", "safetensors", 5 * GB)]),
    "gguf_q4km": lambda: rec("gguf_q4km", frameworks=["llama-cpp"], parameter_count=7_000_000_000,
                             artifacts=[art("llama-2-7b.Q4_K_M.gguf", "gguf", int(3.8 * GB))]),
    "gguf_iq2": lambda: rec("gguf_iq2", artifacts=[art("m-IQ2_XXS.gguf", "gguf", 2 * GB)]),
    "gguf_q4_2": lambda: rec("gguf_q4_2", artifacts=[art("old-q4_2.gguf", "gguf", 2 * GB)]),
    "gguf_plain": lambda: rec("gguf_plain", artifacts=[art("model.gguf", "gguf", 2 * GB)]),
    "gguf_v1": lambda: rec("gguf_v1", artifacts=[art("m.Q8_0.gguf", "gguf", 2 * GB, gguf_version=1)]),
    "skops": lambda: rec("skops", frameworks=["scikit-learn", "mlflow-pyfunc"],
                         artifacts=[art("model.skops", "skops", 11_000)],
                         requirements=[pin("scikit-learn", "==1.9.1"), pin("mlflow", "==3.17.2")]),
    "skpickle": lambda: rec("skpickle", frameworks=["scikit-learn"],
                            artifacts=[art("model.pkl", "sklearn-pickle", 9_000)],
                            requirements=[pin("scikit-learn", "==1.4.2")]),
    "sk_flavor_version": lambda: rec("sk_flavor_version", artifacts=[
        art("model.pkl", "sklearn-pickle", 9_000, sklearn_version="1.3.0")]),
    "xgb": lambda: rec("xgb", frameworks=["xgboost"], artifacts=[art("model.ubj", "xgboost", 50_000)]),
    "lgb": lambda: rec("lgb", frameworks=["lightgbm"], artifacts=[art("model.lgb", "lightgbm", 50_000)]),
    "tf": lambda: rec("tf", frameworks=["tensorflow"],
                      artifacts=[art("saved_model.pb", "tf-savedmodel", 20 * MB, tensorflow_version="2.15.0")]),
    "keras3": lambda: rec("keras3", artifacts=[art("model.keras", "keras", 5 * MB)]),
    "tflite": lambda: rec("tflite", artifacts=[art("model.tflite", "tflite", 300_000)]),
    "tflite_big": lambda: rec("tflite_big", artifacts=[art("model.tflite", "tflite", 50 * MB)]),
    "edgetpu": lambda: rec("edgetpu", artifacts=[art("model_edgetpu.tflite", "edgetpu-tflite", 4 * MB)]),
    "mlprogram": lambda: rec("mlprogram", artifacts=[art("Model.mlpackage", "coreml-mlprogram", 30 * MB)]),
    "coreml_spec4": lambda: rec("coreml_spec4", artifacts=[
        art("Model.mlmodel", "coreml-neuralnetwork", 30 * MB, coreml_spec_version=4)]),
    "tfjs": lambda: rec("tfjs", artifacts=[art("model.json", "tfjs", 10_000),
                                           art("group1-shard1of1.bin", "tfjs", 4 * MB)]),
    "ov11": lambda: rec("ov11", artifacts=[art("openvino_model.xml", "openvino-ir", 10 * MB, ir_version=11)]),
    "trt": lambda: rec("trt", artifacts=[art("model.plan", "tensorrt-engine", 40 * MB)],
                       requirements=[pin("tensorrt", "==8.6.1")]),
    "pte": lambda: rec("pte", artifacts=[art("model.pte", "executorch", 8 * MB)]),
    "pt2": lambda: rec("pt2", artifacts=[art("model.pt2", "torch-export", 8 * MB)]),
    "flax": lambda: rec("flax", frameworks=["jax"], artifacts=[art("flax_model.msgpack", "flax-msgpack", 8 * MB)]),
    "tf1hub": lambda: rec("tf1hub", artifacts=[art("tfhub_module.pb", "tf1-hub-module", 8 * MB)]),
    "pyfunc": lambda: rec("pyfunc", artifacts=[art("python_model.pkl", "mlflow-pyfunc", 1390)],
                          requirements=[pin("mlflow", "==3.17.2")]),
    "framework_only": lambda: rec("framework_only", frameworks=["scikit-learn"]),
    "nothing": lambda: rec("nothing"),
    "verified_kept": lambda: rec("verified_kept", artifacts=[art("model.onnx", "onnx", MB, opset=17)], compatibility=[
        CompatibilityEntry(runtime="onnxruntime", format="onnx", status="verified",
                           version_range=VersionRange(min="1.32.0", max="1.32.0", max_inclusive=True),
                           evidence=[Evidence(kind="verification", detail="ran")],
                           measurements={"max_abs_diff": 0.0})]),
}


@cache
def entries(name: str) -> list[CompatibilityEntry]:
    return derive_compatibility(RECORDS[name](), get_kb())


def runtime_cell(name: str, rt: str) -> CompatibilityEntry | None:
    return next((e for e in entries(name) if e.runtime == rt and e.target is None and e.hardware is None), None)


def target_cell(name: str, t: str) -> CompatibilityEntry | None:
    return next((e for e in entries(name) if e.target == t and e.hardware is None), None)


def hw_cell(name: str, h: str) -> CompatibilityEntry | None:
    return next((e for e in entries(name) if e.hardware == h), None)


# (record, runtime, status or None for "not offered", versions inside the range, versions outside)
RUNTIME_CASES = [
    ("onnx17", "onnxruntime", "native", ["1.12", "1.12.1", "1.14.0", "1.20"], ["1.11", "1.8"]),
    ("onnx18", "onnxruntime", "native", ["1.14"], ["1.13.1"]),
    ("onnx21", "onnxruntime", "native", ["1.18.0", "1.20.1"], ["1.14", "1.17.3"]),
    ("onnx22", "onnxruntime", "native", ["1.21.0"], ["1.20"]),
    ("onnx23", "onnxruntime", "native", ["1.23.2"], ["1.21"]),
    ("onnx28", "onnxruntime", "native", ["1.32.0"], ["1.23"]),
    ("onnx29", "onnxruntime", None, [], []),
    ("onnx8", "onnxruntime", "native", ["0.1", "1.0"], []),
    ("onnx_ir11", "onnxruntime", "native", ["1.23"], ["1.21", "1.18"]),
    ("onnx_ml4", "onnxruntime", "native", ["1.17"], ["1.16"]),
    ("onnx_bare", "onnxruntime", "native", ["0.1", "1.32"], []),
    ("onnx_declared", "onnxruntime", "declared", ["1.0"], []),
    ("onnx_pinned_ort", "onnxruntime", "native", ["1.12"], ["1.11"]),  # the opset fact wins over the pin
    ("onnx17", "tensorrt", "convertible", ["8.5", "10.0"], ["8.4", "8.0", "7.2"]),
    ("onnx21", "tensorrt", "convertible", ["10.15"], ["10.0", "9.2"]),
    ("onnx8", "tensorrt", "convertible", ["8.6", "5.1"], ["10.0", "11.5"]),  # TensorRT 10 parses opset ≥ 9 only
    ("onnx17", "openvino", "native", [], []),
    ("onnx17", "coreml", None, [], []),  # no ONNX → Core ML converter (coremltools dropped it)
    ("onnx17", "llama-cpp", None, [], []),
    ("onnx17", "tflite", None, [], []),
    ("torch213", "pytorch", "native", ["2.13.0", "2.14"], ["2.12"]),
    ("torch213", "onnxruntime", "convertible", ["1.17"], ["1.16"]),  # torch 2.13 writes opset 20
    ("torch21", "onnxruntime", "convertible", ["1.12"], ["1.11"]),  # torch 2.1 writes opset 17
    ("torch113", "onnxruntime", "convertible", ["1.8"], ["1.7"]),  # torch 1.13 writes opset 14
    ("torch21", "tensorrt", "convertible", ["8.5"], ["8.4"]),
    ("torch213", "transformers", None, [], []),  # a plain torch module is not a Transformers checkpoint
    ("torch213", "coreml", "convertible", [], []),
    ("torch213", "executorch", "convertible", [], []),
    ("llama7b", "transformers", "native", ["4.28.0", "4.40"], ["4.27.4"]),
    ("llama7b", "onnxruntime", "convertible", ["1.0"], []),
    ("llama7b", "llama-cpp", "convertible", [], []),
    ("llama7b", "pytorch", "native", [], []),
    ("gguf_q4km", "llama-cpp", "native", ["1", "5000"], []),
    ("gguf_q4km", "tensorrt", None, [], []),
    ("gguf_q4km", "onnxruntime", None, [], []),
    ("gguf_q4km", "transformers", None, [], []),
    ("gguf_iq2", "llama-cpp", "native", ["1884", "3000"], ["1800"]),
    ("gguf_q4_2", "llama-cpp", None, [], []),
    ("gguf_plain", "llama-cpp", "native", ["1"], []),
    ("gguf_v1", "llama-cpp", None, [], []),
    ("skops", "scikit-learn", "native", ["1.9.1", "1.9.3"], ["1.10.0", "1.8.2"]),
    ("skops", "onnxruntime", "convertible", ["1.21"], ["1.20"]),  # skl2onnx 1.20 writes opset 22
    ("skops", "coreml", None, [], []),  # coremltools' sklearn converter takes in-memory estimators (pickle)
    ("skops", "mlflow-pyfunc", "declared", ["3.17.2", "3.99"], ["4.0", "3.17.1"]),
    ("skpickle", "scikit-learn", "native", ["1.4.2"], ["1.5.0", "1.4.1"]),
    ("skpickle", "coreml", "convertible", [], []),
    ("sk_flavor_version", "scikit-learn", "native", ["1.3.2"], ["1.4.0"]),
    ("xgb", "xgboost", "native", [], []),
    ("xgb", "onnxruntime", "convertible", [], []),
    ("lgb", "lightgbm", "native", [], []),
    ("lgb", "onnxruntime", "convertible", [], []),
    ("tf", "tensorflow", "native", ["2.15.0", "2.16"], ["2.14"]),
    ("tf", "tf-serving", "native", ["2.15.0"], ["2.14"]),
    ("tf", "tflite", "convertible", [], []),
    ("tf", "tfjs", "convertible", [], []),
    ("tf", "edgetpu", "convertible", [], []),
    ("tf", "onnxruntime", "convertible", ["1.9"], ["1.8"]),  # tf2onnx writes opset 15 (ORT 1.9 is the first)
    ("tf", "coreml", "convertible", [], []),
    ("keras3", "tensorflow", "native", ["2.12", "2.16"], ["2.11"]),
    ("tflite", "tflite", "native", [], []),
    ("tflite", "tflite-micro", "native", [], []),
    ("tflite", "edgetpu", "convertible", [], []),
    ("edgetpu", "edgetpu", "native", [], []),
    ("mlprogram", "coreml", "native", [], []),
    ("tfjs", "tfjs", "native", [], []),
    ("ov11", "openvino", "native", ["2022.1", "2025.0"], ["2021.4"]),
    ("trt", "tensorrt", "native", ["8.6.1"], ["8.6.2", "10.0"]),  # engines run only on the TensorRT that built them
    ("pte", "executorch", "native", [], []),
    ("pt2", "pytorch", "native", ["2.1.0"], ["2.0.1"]),
    ("pt2", "coreml", "convertible", [], []),
    ("pt2", "executorch", "convertible", [], []),
    ("flax", "tensorflow", "convertible", [], []),
    ("tf1hub", "tensorflow", "native", [], []),
    ("tf1hub", "tfjs", "convertible", [], []),
    ("pyfunc", "mlflow-pyfunc", "native", ["3.17.2", "3.20"], ["4.0"]),
    ("framework_only", "scikit-learn", "declared", [], []),
    # a verification is a point inside the derived cell: status and range stay what opset 17 gives
    ("verified_kept", "onnxruntime", "native", ["1.12", "1.31", "1.32.0"], ["1.11"]),
]


@pytest.mark.parametrize(("name", "runtime", "status", "inside", "outside"), RUNTIME_CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in RUNTIME_CASES])
def test_runtime_cell(name: str, runtime: str, status: str | None, inside: list[str], outside: list[str]) -> None:
    cell = runtime_cell(name, runtime)
    if status is None:
        assert cell is None, f"{runtime} should not be offered for {name}: {cell}"
        return
    assert cell is not None, f"no {runtime} cell for {name}"
    assert cell.status == status
    rng = cell.version_range or VersionRange()
    for v in inside:
        assert rng.contains(v), f"{name}: {runtime} {rng} should contain {v}"
    for v in outside:
        assert not rng.contains(v), f"{name}: {runtime} {rng} should exclude {v}"
    assert cell.evidence, "every cell carries evidence"


# (record, runtime, expected converter path, expected path confidence)
PATH_CASES = [
    ("onnx17", "tensorrt", ["trtexec"], "medium"),
    ("torch213", "onnxruntime", ["torch-onnx-export"], "medium"),
    ("torch213", "tensorrt", ["torch-onnx-export", "trtexec"], "medium"),
    ("torch213", "coreml", ["torch-jit-trace", "coremltools-torchscript"], "medium"),
    ("llama7b", "onnxruntime", ["optimum-onnx"], "high"),
    ("llama7b", "llama-cpp", ["convert-hf-to-gguf"], "medium"),
    # skl2onnx itself is "high", but opset 22 → ORT 1.21 rests on a "medium" KB row: the weakest fact wins.
    ("skops", "onnxruntime", ["skl2onnx"], "medium"),
    ("xgb", "coreml", ["coremltools-xgboost"], "low"),
    ("tf", "edgetpu", ["tflite-converter", "edgetpu-compiler"], "low"),
    ("tf", "tflite", ["tflite-converter"], "high"),
    ("keras3", "tfjs", ["tensorflowjs-converter"], "medium"),
    ("flax", "tfjs", ["jax2tf", "tensorflowjs-converter"], "low"),
    ("pt2", "executorch", ["executorch-export"], "medium"),
    ("onnx17", "openvino", [], "high"),
]


@pytest.mark.parametrize(("name", "runtime", "path", "confidence"), PATH_CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in PATH_CASES])
def test_conversion_path(name: str, runtime: str, path: list[str], confidence: str) -> None:
    cell = runtime_cell(name, runtime)
    assert cell is not None
    assert cell.path == path
    assert cell.hops == len(path) <= 3
    assert cell.confidence == confidence


# (record, target, status or None, range text check: versions inside / outside)
TARGET_CASES = [
    ("onnx17", "browser", "native", ["1.12"], ["1.11"]),
    ("onnx17", "android", "native", [], []),
    ("onnx17", "mobile", "native", [], []),
    ("onnx17", "edge-tpu", None, [], []),
    ("onnx17", "microcontroller", None, [], []),
    ("onnx17", "cloud-nvidia-gpu", "native", [], []),
    ("mlprogram", "ios", "native", ["15", "17.2"], ["14.8"]),  # ML programs need iOS 15
    ("mlprogram", "apple-silicon", "native", ["12.0"], ["11.7"]),
    ("mlprogram", "android", None, [], []),
    ("mlprogram", "mobile", None, [], []),  # mobile needs Android too
    ("coreml_spec4", "ios", "native", ["13"], ["12.4"]),
    ("tf", "ios", "convertible", [], []),
    ("tflite", "microcontroller", "native", [], []),
    ("tflite", "mobile", "native", [], []),
    ("edgetpu", "edge-tpu", "native", [], []),
    ("tfjs", "browser", "native", [], []),
    ("gguf_q4km", "cloud-nvidia-gpu", "native", [], []),
    ("gguf_q4km", "browser", None, [], []),
    ("pte", "mobile", "native", [], []),
    ("nothing", "cloud-cpu", None, [], []),
]


@pytest.mark.parametrize(("name", "target", "status", "inside", "outside"), TARGET_CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in TARGET_CASES])
def test_target_cell(name: str, target: str, status: str | None, inside: list[str], outside: list[str]) -> None:
    cell = target_cell(name, target)
    if status is None:
        assert cell is None, f"{target} should not be offered for {name}: {cell}"
        return
    assert cell is not None and cell.status == status
    rng = cell.version_range or VersionRange()
    assert all(rng.contains(v) for v in inside), rng
    assert not any(rng.contains(v) for v in outside), rng


# (record, hardware profile, fits)
HARDWARE_CASES = [
    ("llama7b", "t4", False),  # 14 GiB of safetensors × 1.2 working memory > 16 GiB
    ("llama7b", "a10g", True),
    ("llama7b", "a100-40gb", True),
    ("llama7b", "jetson-orin-nano-8gb", False),
    ("gguf_q4km", "t4", True),
    ("gguf_q4km", "jetson-orin-nano-8gb", True),
    ("gguf_q4km", "mcu-cortex-m7", False),
    ("tflite", "mcu-cortex-m7", True),
    ("tflite_big", "mcu-cortex-m7", False),
    ("onnx17", "cpu-4core-server", True),
]


@pytest.mark.parametrize(("name", "hw", "fits"), HARDWARE_CASES, ids=[f"{c[0]}-{c[1]}" for c in HARDWARE_CASES])
def test_hardware_fit(name: str, hw: str, fits: bool) -> None:
    cell = hw_cell(name, hw)
    assert (cell is not None) == fits
    if cell is not None:
        m = cell.measurements
        assert m["fits"] is True and m["working_bytes"] <= m["memory_bytes"] or hw == "mcu-cortex-m7"


def test_evidence_names_the_kb_fact_and_version() -> None:
    kb = get_kb()
    cell = runtime_cell("onnx17", "onnxruntime")
    assert cell is not None
    facts = [e for e in cell.evidence if e.kb_fact and e.kb_fact.startswith("release/onnxruntime-1.12")]
    assert facts and facts[0].kb_version == kb.version
    assert any(e.kind == "artifact" and e.artifact == "model.onnx" for e in cell.evidence)


def test_blocked_reasons_are_kept_for_explanations() -> None:
    a = analyze(RECORDS["onnx29"](), get_kb())
    assert "onnxruntime" not in a.runtimes
    assert any("opset 29" in r for r in a.blocked["onnxruntime"])
    a = analyze(RECORDS["torch213"](), get_kb())
    assert any("transformers" in r for r in a.blocked["transformers"])


def test_gguf_precision_and_sizes() -> None:
    cell = runtime_cell("gguf_q4km", "llama-cpp")
    assert cell is not None and cell.precision == "Q4_K_M"
    t4 = hw_cell("gguf_q4km", "t4")
    assert t4 is not None and t4.measurements["weights_bytes"] == int(3.8 * GB)


def test_derivation_is_deterministic() -> None:
    kb = get_kb()
    a = [e.model_dump() for e in derive_compatibility(RECORDS["tf"](), kb)]
    b = [e.model_dump() for e in derive_compatibility(RECORDS["tf"](), kb)]
    assert a == b


def test_record_with_matrix_validates_and_round_trips() -> None:
    r: ModelRecord = RECORDS["llama7b"]()
    r.compatibility = derive_compatibility(r, get_kb())
    again = ModelRecord.model_validate_json(r.model_dump_json())
    assert again.compatibility == r.compatibility


def test_case_table_is_large_enough() -> None:
    assert len(RUNTIME_CASES) + len(PATH_CASES) + len(TARGET_CASES) + len(HARDWARE_CASES) >= 60
