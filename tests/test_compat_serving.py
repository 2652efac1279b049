"""Serving platforms as targets (issue 18, item 2), code migration as a converter kind (item 3),
ONNX.js and TFLite Micro's op coverage, and a cited source on every KB node of the compatibility
kinds (item 4)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from compat_helpers import MB, art, pin, rec

from modelport.index.embedded import TantivyBackend
from modelport.index.query_syntax import compile_query
from modelport.schema.code_scan import scan_python
from modelport.schema.compat import derive_compatibility
from modelport.schema.compat_explain import explain
from modelport.schema.kb import get_kb, load_kb, missing_sources, ontology_dir
from modelport.schema.record import CompatibilityEntry, ModelRecord

KB = get_kb()


def derived(r: ModelRecord) -> ModelRecord:
    r.compatibility = derive_compatibility(r, KB)
    return r


def cell(r: ModelRecord, runtime: str) -> CompatibilityEntry | None:
    return next((e for e in r.compatibility if e.runtime == runtime and e.target is None and e.hardware is None), None)


def target(r: ModelRecord, t: str) -> CompatibilityEntry | None:
    return next((e for e in r.compatibility if e.target == t and e.hardware is None), None)


# The brief's recommendation platform: a TensorFlow, a PyTorch and an XGBoost model behind one
# KServe V2 / Open Inference Protocol API.
PLATFORM = {
    "tf": lambda: rec("tf", frameworks=["tensorflow"], artifacts=[art("1/saved_model.pb", "tf-savedmodel", 20 * MB)],
                      requirements=[pin("tensorflow", "==2.15.0")]),
    "torch": lambda: rec("torch", frameworks=["pytorch"], artifacts=[art("model.pth", "pytorch-pickle", 20 * MB)]),
    "torch-export": lambda: rec("torch-export", frameworks=["pytorch"],
                                artifacts=[art("model.pt2", "torch-export", 20 * MB)]),
    "xgb": lambda: rec("xgb", frameworks=["xgboost"], artifacts=[art("model.ubj", "xgboost", MB)],
                       requirements=[pin("xgboost", "==1.7.6")]),
}


def test_a_tensorflow_a_pytorch_and_an_xgboost_model_all_reach_kserve_v2(tmp_path: Path) -> None:
    recs = {k: derived(f()) for k, f in PLATFORM.items()}
    tf, torch, exported, xgb = (target(recs[k], "kserve-v2") for k in ("tf", "torch", "torch-export", "xgb"))
    # each with the serving runtime that would serve it and the conversion, if any
    assert tf is not None and tf.runtime == "triton-tensorflow" and tf.status == "native" and tf.path == []
    assert tf.version_range is not None and tf.version_range.contains("2.15.0")  # TensorFlow versions
    assert torch is not None and torch.runtime == "torchserve" and torch.status == "native"
    assert exported is not None and exported.runtime == "triton-onnxruntime" and exported.status == "convertible"
    assert exported.path == ["torch-onnx-export"]
    assert xgb is not None and xgb.runtime == "kserve-xgbserver" and xgb.status == "native"
    assert "mlserver-xgboost:native" in xgb.measurements["alternatives"]
    text = explain(recs["torch-export"], "kserve-v2", KB)["text"]
    assert "torch.onnx.export" in text and "Triton" in text
    # and the search finds all of them for target:kserve-v2
    b = TantivyBackend(tmp_path / "idx")
    b.upsert(list(recs.values()))
    b.commit()
    q, _ = compile_query("target:kserve-v2")
    assert {h.id for h in b.search(q).hits} == {r.id for r in recs.values()}
    q, _ = compile_query("runs on open inference protocol")
    assert {h.id for h in b.search(q).hits} == {r.id for r in recs.values()}  # the target's alias, in words
    q, _ = compile_query("target:kserve-v2 status:native")
    assert {h.id for h in b.search(q).hits} == {"test:tf", "test:torch", "test:xgb"}
    b.close()


def test_kserve_major_versions_limit_the_servers() -> None:
    xgb2 = derived(rec("xgb2", frameworks=["xgboost"], artifacts=[art("model.ubj", "xgboost", MB)],
                       requirements=[pin("xgboost", "==2.0.3")]))
    assert cell(xgb2, "kserve-xgbserver") is None  # KServe's xgbserver takes xgboost 1 models
    out = explain(xgb2, "kserve-xgbserver", KB)
    assert "takes XGBoost 1.x models" in out["text"]
    mls = cell(xgb2, "mlserver-xgboost")  # MLServer takes 1 and 2
    assert mls is not None and mls.version_range is not None and mls.version_range.contains("2.0.3")
    assert not mls.version_range.contains("3.0")
    assert target(xgb2, "kserve-v2").runtime == "mlserver-xgboost"  # type: ignore[union-attr]
    # a range shown for a serving runtime is in the framework's versions
    assert "XGBoost ≥ 2.0.3, < 3" in explain(xgb2, "mlserver-xgboost", KB)["text"]


@pytest.mark.parametrize(("arch", "model_type"), [
    ("LlamaForCausalLM", "llama"), ("MistralForCausalLM", "mistral"), ("Qwen2ForCausalLM", "qwen2"),
    ("GemmaForCausalLM", "gemma"), ("Phi3ForCausalLM", "phi3")])
def test_vllm_and_tgi_serve_the_architecture_families_from_config_json(arch: str, model_type: str) -> None:
    r = derived(rec(model_type, frameworks=["transformers"], architecture=arch,
                    source_facts={"model_type": model_type},
                    artifacts=[art("model.safetensors", "safetensors", 4000 * MB)]))
    v, t = cell(r, "vllm"), cell(r, "tgi")
    assert v is not None and v.status == "native" and v.version_range is not None and v.version_range.min
    assert t is not None and t.confidence == "medium"  # listed, but since when is not in the KB
    assert target(r, "llm-serving") is not None


def test_llm_servers_are_not_offered_for_other_architectures_or_weights() -> None:
    bert = derived(rec("bert", frameworks=["transformers"], architecture="BertModel",
                       artifacts=[art("model.safetensors", "safetensors", 400 * MB)]))
    assert cell(bert, "vllm") is None and cell(bert, "tgi") is None
    assert "serves only the architectures" in explain(bert, "vllm", KB)["text"]
    assert cell(bert, "kserve-huggingfaceserver") is not None  # Transformers serves any of them


# -- code migration -----------------------------------------------------------------------------------
TORCH_NET = '''
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 3))

    def forward(self, x):
        return torch.nn.functional.softmax(self.body(x), dim=-1)
'''
KERAS_NET = '''
import tensorflow as tf
from tensorflow.keras import layers
model = tf.keras.Sequential([layers.Conv2D(8, 3), layers.MaxPool2D(), layers.Flatten(), layers.Dense(10)])
'''


def test_code_is_read_without_running_it() -> None:
    sc = scan_python("code/net.py", TORCH_NET, KB)
    assert sc.framework == "pytorch" and sc.style == "subclassing"
    assert sc.layer_types == ["Dropout", "Linear", "ReLU"]  # functional calls and containers are not layers
    k = scan_python("model.py", KERAS_NET, KB)
    assert k.framework == "tensorflow" and k.style == "sequential"
    assert k.layer_types == ["Conv2D", "Dense", "Flatten", "MaxPool2D"]
    # hostile or foreign input gives a blank record, never an error
    for text in ("def f(:\n", "(" * 100_000, "import os\nos.system('rm -rf /')\n", "x" * 300_000):
        blank = scan_python("x.py", text, KB)
        assert blank.framework is None and blank.layer_types is None


def test_code_migration_is_offered_where_the_code_is_in_the_tools_coverage() -> None:
    r = derived(rec("mig", frameworks=["pytorch"], artifacts=[art("model.pth", "pytorch-pickle", MB)],
                    source_code=[scan_python("code/net.py", TORCH_NET, KB)]))
    tf = cell(r, "tensorflow")
    assert tf is not None and tf.status == "convertible" and tf.path == ["besser-nn-pytorch-to-tensorflow"]
    assert tf.confidence == "low"
    ev = " ".join(e.detail for e in tf.evidence)
    assert "arXiv 2511.02610" in ev and "not its trained weights" in ev
    conv = KB.compat.converters["besser-nn-pytorch-to-tensorflow"]
    assert conv.kind == "code-migration" and {"sequential", "subclassing"} == set(conv.styles)
    # the other direction, from Keras code
    k = derived(rec("mig-k", frameworks=["tensorflow"], source_code=[scan_python("m.py", KERAS_NET, KB)]))
    pt = cell(k, "pytorch")
    assert pt is not None and pt.path == ["besser-nn-tensorflow-to-pytorch"]


def test_code_migration_is_never_offered_for_weights_only_or_uncovered_code() -> None:
    weights = derived(rec("w", frameworks=["pytorch"], artifacts=[art("model.pth", "pytorch-pickle", MB)]))
    assert cell(weights, "tensorflow") is None
    gelu = derived(rec("g", artifacts=[art("model.pth", "pytorch-pickle", MB)],
                       source_code=[scan_python("n.py", TORCH_NET.replace("nn.ReLU()", "nn.GELU()"), KB)]))
    assert cell(gelu, "tensorflow") is None
    assert "outside" in explain(gelu, "tensorflow", KB)["text"] and "GELU" in explain(gelu, "tensorflow", KB)["text"]
    from modelport.schema.record import SourceCode

    listed = derived(rec("l", artifacts=[art("model.pth", "pytorch-pickle", MB)],
                         source_code=[SourceCode(path="modeling_x.py", framework="pytorch")]))
    assert cell(listed, "tensorflow") is None  # a Hub file listed but not read: layer types unknown
    assert "not known" in explain(listed, "tensorflow", KB)["text"]


def test_mlflow_code_paths_reach_the_record(mlflow_server: object, tmp_path: Path) -> None:
    """A model logged with code_paths in the session's real MLflow server (removed again afterwards, so
    the demo registry stays as other tests expect it): the harvester reads its Python file, ast only."""
    import mlflow
    import mlflow.pyfunc
    from mlflow import MlflowClient

    from modelport.harvesters.mlflow_registry import MlflowSource
    from modelport.pipeline import Pipeline
    from modelport.settings import Settings

    code = tmp_path / "netdef.py"
    code.write_text(TORCH_NET)

    class Wrapper(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]  # noqa: ANN001, ANN202
            return model_input

    server = mlflow_server
    client = MlflowClient(server.uri)  # type: ignore[attr-defined]
    try:
        mlflow.set_tracking_uri(server.uri)  # type: ignore[attr-defined]
        with mlflow.start_run():
            mlflow.pyfunc.log_model(name="model", python_model=Wrapper(), code_paths=[str(code)],
                                    registered_model_name="with-code")
        settings = Settings(data_dir=tmp_path / "d", base_iri="http://modelport.test")
        p = Pipeline(settings)
        p.harvest(MlflowSource(server.uri, name="mlflow", cache_dir=settings.data_dir / "cache"),  # type: ignore[attr-defined]
                  mode="full")
        r = p.catalog.get("mlflow:with-code/1")
        [sc] = [c for c in r.source_code if c.path.endswith("netdef.py")]
        assert sc.framework == "pytorch" and sc.layer_types == ["Dropout", "Linear", "ReLU"]
        tf = cell(r, "tensorflow")
        assert tf is not None and tf.path == ["besser-nn-pytorch-to-tensorflow"]
        p.close()
    finally:
        client.delete_registered_model("with-code")


# -- ONNX.js, TFLite Micro ------------------------------------------------------------------------------
def test_onnxjs_is_known_as_the_predecessor_of_onnxruntime_web() -> None:
    rt = KB.runtimes["onnxjs"]
    assert rt.deprecated and rt.succeeded_by == "onnxruntime"
    r = derived(rec("ox", artifacts=[art("model.onnx", "onnx", MB, opset=13)]))
    assert cell(r, "onnxjs") is None and cell(r, "onnxruntime") is not None
    text = explain(r, "onnxjs", KB)["text"]
    assert "deprecated" in text and "ONNX Runtime" in text
    assert target(r, "browser").runtime == "onnxruntime"  # type: ignore[union-attr]


def test_tflite_micro_op_coverage_limits_the_microcontroller_target() -> None:
    ok = derived(rec("kws", artifacts=[art("kws.tflite", "tflite", 200_000,
                                           op_types=["CONV_2D", "FULLY_CONNECTED", "SOFTMAX", "RESHAPE"])]))
    assert cell(ok, "tflite-micro") is not None and target(ok, "microcontroller") is not None
    big = derived(rec("nlp", artifacts=[art("nlp.tflite", "tflite", 200_000,
                                            op_types=["FULLY_CONNECTED", "EMBEDDING_LOOKUP", "BATCH_MATMUL"])]))
    assert cell(big, "tflite-micro") is None and target(big, "microcontroller") is None
    text = explain(big, "tflite-micro", KB)["text"]
    assert "BATCH_MATMUL" in text and "EMBEDDING_LOOKUP" in text
    assert cell(big, "tflite") is not None  # the phone runtime still takes it
    unknown = derived(rec("u", artifacts=[art("u.tflite", "tflite", 200_000)]))
    c = cell(unknown, "tflite-micro")
    assert c is not None and c.confidence == "low"  # operators not known: offered, at low confidence


# -- every KB node of the compatibility kinds cites a source ---------------------------------------------
def test_every_runtime_release_format_converter_target_and_hardware_node_cites_a_source() -> None:
    assert missing_sources(get_kb()) == []


def test_the_source_check_fails_on_a_node_without_one(tmp_path: Path) -> None:
    kb_dir = tmp_path / "kb"
    shutil.copytree(ontology_dir() / "kb", kb_dir)
    f = kb_dir / "serving.ttl"
    f.write_text(f.read_text() + "\n<https://w3id.org/modelport/kb/runtime/uncited> a mp:Runtime ; "
                 "rdfs:label \"Uncited\" .\n")
    assert missing_sources(load_kb(kb_dir)) == ["Runtime https://w3id.org/modelport/kb/runtime/uncited"]


def test_hub_modelling_files_are_listed_not_read_so_no_migration_is_offered() -> None:
    from modelport.harvesters.base import SourceRecord
    from modelport.harvesters.huggingface import HuggingFaceSource

    src = HuggingFaceSource("huggingface", endpoint="https://hub.example")
    payload = {"id": "org/custom", "sha": "a" * 40, "library_name": "transformers", "tags": ["pytorch"],
               "siblings": [{"rfilename": "config.json"}, {"rfilename": "modeling_custom.py"},
                            {"rfilename": "configuration_custom.py"}, {"rfilename": "pytorch_model.bin", "size": 10}]}
    r = src.normalize(SourceRecord(local_id="org/custom", payload=payload))
    assert [c.path for c in r.source_code] == ["modeling_custom.py", "configuration_custom.py"]
    assert all(c.layer_types is None for c in r.source_code)  # the listing has no contents
    r.compatibility = derive_compatibility(r, KB)
    assert cell(r, "tensorflow") is None
