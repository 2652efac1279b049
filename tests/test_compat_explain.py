"""matrix(record) and explain(record, subject): the API-facing views of the compatibility matrix,
and the hardware-fit / latency-estimate enrichment."""

from __future__ import annotations

from compat_helpers import GB, MB, art, pin, rec

from modelport.schema.compat import analyze, enrich_record
from modelport.schema.compat_explain import explain, matrix
from modelport.schema.hardware_fit import ESTIMATE_SOURCE, fit_report
from modelport.schema.kb import get_kb
from modelport.schema.record import LatencyMeasurement, ModelRecord


def torch_model() -> ModelRecord:
    return rec("torch", frameworks=["pytorch"], artifacts=[art("data/model.pth", "pytorch-pickle", 13_000)],
               requirements=[pin("torch", "==2.1.2")])


def onnx_model(opset: int = 17) -> ModelRecord:
    return rec("onnx", artifacts=[art("model.onnx", "onnx", 100 * MB, opset=opset)], parameter_count=25_000_000)


def test_explain_conversion_chain_text() -> None:
    out = explain(torch_model(), "onnxruntime")
    assert out["status"] == "convertible"
    assert out["text"].startswith("PyTorch pickle (state dict / full model) → torch.onnx.export "
                                  "(opset 17, confidence medium) → ONNX Runtime ≥ 1.12")
    assert out["cell"]["path"] == ["torch-onnx-export"] and out["cell"]["hops"] == 1


def test_explain_native_and_negative_cells() -> None:
    assert explain(onnx_model(17), "onnxruntime")["text"] == "ONNX → ONNX Runtime ≥ 1.12 (native)"
    no = explain(onnx_model(17), "coreml")
    assert no["status"] is None and "removed from coremltools" in no["text"]
    gguf = rec("g", artifacts=[art("m.Q4_K_M.gguf", "gguf", 4 * GB)])
    assert explain(gguf, "tensorrt")["status"] is None
    opset29 = explain(onnx_model(29), "onnxruntime")
    assert opset29["status"] is None and "opset 29" in opset29["text"]
    assert explain(onnx_model(), "no-such-thing")["kind"] == "unknown"


def test_explain_targets_and_cells() -> None:
    ml = rec("ml", artifacts=[art("Model.mlpackage", "coreml-mlprogram", 30 * MB)])
    ios = explain(ml, "ios")
    assert ios["status"] == "native" and "iOS ≥ 15" in ios["text"]
    assert explain(ml, "coreml@ios")["status"] == "native"
    assert explain(ml, "coreml@android")["status"] is None
    mobile = explain(onnx_model(), "mobile")
    assert mobile["status"] == "native" and "android" in mobile["text"] and "ios" in mobile["text"]
    assert explain(ml, "mobile")["status"] is None


def test_matrix_shape() -> None:
    m = matrix(onnx_model(21))
    assert m["record"] == "test:onnx" and m["kb_version"] == get_kb().version
    ort = m["runtimes"]["onnxruntime"]
    assert ort["status"] == "native" and ort["range"] == "≥ 1.18" and ort["version_range"] == ">=1.18"
    assert m["cells"]["onnxruntime"]["browser"]["status"] == "native"
    assert m["cells"]["onnxruntime"]["edge-tpu"] is None  # ONNX Runtime does not serve the Edge TPU
    assert m["targets"]["cloud-nvidia-gpu"]["status"] == "native"
    assert m["runtimes"]["tensorrt"]["range"] == "≥ 10.15"
    assert "coreml" not in m["runtimes"]
    assert m["hardware_fit"]["t4"]["fits"] is True and m["hardware_fit"]["mcu-cortex-m7"]["fits"] is False


def test_matrix_uses_os_versions_for_core_ml() -> None:
    ml = rec("ml", artifacts=[art("Model.mlmodel", "coreml-neuralnetwork", 3 * MB, coreml_spec_version=7)])
    m = matrix(ml)
    assert m["cells"]["coreml"]["ios"]["range"] == "iOS ≥ 16"
    assert m["cells"]["coreml"]["apple-silicon"]["range"] == "macOS ≥ 13"


def test_llama_cpp_ranges_are_build_numbers() -> None:
    g = rec("g", artifacts=[art("m-IQ2_XS.gguf", "gguf", 2 * GB)])
    assert matrix(g)["runtimes"]["llama-cpp"]["range"] == "build ≥ b1884"


def test_fit_report_explains_misfits() -> None:
    big = rec("big", frameworks=["transformers"], parameter_count=30_000_000_000, dtypes=["float16"],
              artifacts=[art("model.safetensors", "safetensors")])
    fits = {f.hardware: f for f in fit_report(big, get_kb(), analyze(big, get_kb()).runtimes)}
    # 30B × 2 bytes = 60 GB; × 1.2 working memory = 72 GB: fits 80 GiB, not 40 GiB.
    assert fits["a100-80gb"].fits is True and fits["a100-80gb"].weights_bytes == 60_000_000_000
    assert fits["a100-40gb"].fits is False and "GiB" in fits["a100-40gb"].reason
    assert fits["mcu-cortex-m7"].fits is False


def test_enrich_adds_labelled_estimates_and_keeps_measurements() -> None:
    r = onnx_model(17)
    r.latencies = [LatencyMeasurement(hardware="t4", latency_ms=3.1, runtime="onnxruntime", source="vendor benchmark")]
    kb = get_kb()
    enrich_record(r, kb)
    enrich_record(r, kb)  # idempotent: estimates are replaced, not duplicated
    measured = [lat for lat in r.latencies if lat.measured]
    est = [lat for lat in r.latencies if not lat.measured]
    assert [m.latency_ms for m in measured] == [3.1]
    assert len({e.hardware for e in est}) == len(est) > 0
    t4 = next(e for e in est if e.hardware == "t4")
    assert t4.source == ESTIMATE_SOURCE and t4.method and "roofline" in t4.method
    # 100 MB of weights over 320 GB/s dominates 2 × 25M FLOPs over 8.1 TFLOPS: ≈ 0.33 ms.
    assert abs(t4.latency_ms - 100 * MB / 320e9 * 1e3) < 1e-3
    h200 = next(e for e in est if e.hardware == "h200")
    assert h200.latency_ms < t4.latency_ms
