"""Verification runs for real: tiny scikit-learn and PyTorch models saved the way MLflow saves them,
and ONNX files, executed on the installed onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from compat_helpers import art, rec

from modelport.schema.compat import derive_compatibility, inspect_onnx
from modelport.schema.compat_explain import explain, matrix
from modelport.schema.kb import get_kb
from modelport.schema.record import Signature
from modelport.schema.verify import verify_onnx, verify_record, verify_sklearn


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import mlflow.pytorch
    import mlflow.sklearn
    import torch
    from mlflow.models import infer_signature
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression, Ridge

    d = tmp_path_factory.mktemp("verify")
    x, y = load_iris(return_X_y=True)
    clf = LogisticRegression(max_iter=500).fit(x, y)
    mlflow.sklearn.save_model(clf, str(d / "sk_clf"), serialization_format="skops",
                              signature=infer_signature(x, clf.predict(x)))
    reg = Ridge().fit(x, y.astype(float))
    mlflow.sklearn.save_model(reg, str(d / "sk_reg"), serialization_format="cloudpickle")

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    sig = infer_signature(np.zeros((1, 4), np.float32), np.zeros((1, 3), np.float32))
    mlflow.pytorch.save_model(net, str(d / "pt"), signature=sig, serialization_format="pickle")
    mlflow.pytorch.save_model(net, str(d / "pt_nosig"), serialization_format="pickle")

    (d / "onnx").mkdir()
    onx = to_onnx(clf, x[:1].astype(np.float32), options={id(clf): {"zipmap": False}}, target_opset=17)
    (d / "onnx" / "model.onnx").write_bytes(onx.SerializeToString())
    (d / "broken").mkdir()
    (d / "broken" / "model.onnx").write_bytes(b"this is not a protobuf")
    (d / "empty").mkdir()
    return {p.name: p for p in d.iterdir()}


def test_sklearn_mlflow_model_verifies_via_skl2onnx(models: dict[str, Path]) -> None:
    e = verify_record(rec("sk"), models["sk_clf"])
    assert e.status == "verified", e.evidence
    assert e.runtime == "onnxruntime" and e.path == ["skl2onnx"]
    m = e.measurements
    assert m["onnxruntime_version"] == onnxruntime.__version__
    assert e.version_range is not None and e.version_range.contains(onnxruntime.__version__)
    assert 0 <= m["max_abs_diff"] <= m["tolerance"]["atol"] and m["label_agreement"] == 1.0
    assert m["opset"] and m["n_samples"] == 16
    assert e.evidence[0].kind == "verification"


def test_sklearn_regressor_pickled_by_mlflow_verifies(models: dict[str, Path]) -> None:
    e = verify_record(rec("reg"), models["sk_reg"])
    assert e.status == "verified", e.evidence
    assert e.measurements["compared"] == "predict"


def test_comparison_can_fail(models: dict[str, Path]) -> None:
    """With zero tolerance the float32 ONNX model no longer matches float64 scikit-learn exactly."""
    import mlflow.sklearn

    model = mlflow.sklearn.load_model(str(models["sk_reg"]))
    e = verify_sklearn(model, 4, atol=0.0, rtol=0.0)
    assert e.status == "failed-verification"
    assert e.measurements["max_abs_diff"] > 0
    assert "OUTSIDE" in e.evidence[0].detail


def test_pytorch_mlflow_model_verifies_via_torch_onnx_export(models: dict[str, Path]) -> None:
    e = verify_record(rec("pt"), models["pt"])
    assert e.status == "verified", e.evidence
    assert e.path == ["torch-onnx-export"]
    assert e.measurements["input_shape"] == [2, 4]
    assert e.measurements["max_abs_diff"] <= 1e-4
    assert e.measurements["opset"] >= 7


def test_pytorch_shape_from_record_signature(models: dict[str, Path]) -> None:
    r = rec("pt2", signature=Signature(inputs=[{"type": "tensor", "tensor-spec": {"dtype": "float32",
                                                                                  "shape": [-1, 4]}}]))
    e = verify_record(r, models["pt_nosig"])
    assert e.status == "verified", e.evidence


def test_pytorch_without_signature_fails_clearly(models: dict[str, Path]) -> None:
    e = verify_record(rec("pt3"), models["pt_nosig"])
    assert e.status == "failed-verification"
    assert "input shape unknown" in e.measurements["error"]


def test_native_onnx_loads_and_runs(models: dict[str, Path]) -> None:
    e = verify_record(rec("ox"), models["onnx"])
    assert e.status == "verified", e.evidence
    assert e.path == [] and e.measurements["opset"] == 17
    assert e.measurements["output_shapes"][0] == [2]
    assert e.measurements["outputs_finite"] is True
    assert verify_onnx(models["onnx"] / "model.onnx").status == "verified"


def test_broken_onnx_and_empty_dir_fail_with_the_error(models: dict[str, Path]) -> None:
    e = verify_record(rec("bad"), models["broken"])
    assert e.status == "failed-verification" and e.measurements["error"]
    e = verify_record(rec("none"), models["empty"])
    assert e.status == "failed-verification" and "nothing verifiable" in e.measurements["error"]


def test_inspect_onnx_reads_opset_and_ir(models: dict[str, Path]) -> None:
    facts = inspect_onnx(models["onnx"] / "model.onnx")
    assert facts["opset"] == 17 and facts["ml_opset"] >= 1 and facts["ir_version"] >= 8
    assert facts["producer_name"] == "skl2onnx" and "LinearClassifier" in facts["op_types"]


def test_verified_cell_survives_rederivation_and_shows_in_matrix(models: dict[str, Path]) -> None:
    kb = get_kb()
    r = rec("sk2", frameworks=["scikit-learn"], artifacts=[art("model.skops", "skops", 11_000)])
    v = verify_record(r, models["sk_clf"])
    r.compatibility = derive_compatibility(r, kb) + [v]
    r.compatibility = derive_compatibility(r, kb)  # a later re-derivation keeps the verification
    cell = next(e for e in r.compatibility if e.runtime == "onnxruntime" and e.target is None and e.hardware is None)
    # the derived cell (skl2onnx → onnxruntime, convertible) keeps its status; the check is a point in it
    [point] = cell.verifications
    assert cell.status == "convertible" and point.status == "verified"
    assert point.max_abs_diff == v.measurements["max_abs_diff"] and point.version == onnxruntime.__version__
    assert cell.status_at(onnxruntime.__version__) == "verified"
    assert matrix(r, kb)["runtimes"]["onnxruntime"]["verifications"][0]["status"] == "verified"
    assert explain(r, "onnxruntime", kb, version=onnxruntime.__version__)["status"] == "verified"


def _ort_max(kind: str) -> int:
    from onnx import TensorProto, helper

    def loads(opset: int, ir: int) -> bool:
        g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir)
        try:
            onnxruntime.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
            return True
        except Exception:
            return False

    if kind == "opset":
        return max(o for o in range(7, 40) if loads(o, 8))
    return max(i for i in range(3, 30) if loads(13, i))


def test_installed_ort_matches_kb() -> None:
    """The KB row for the installed onnxruntime (if any) states what that wheel really accepts."""
    from modelport.schema.versions import release_prefix

    rows = {r.version: r for r in get_kb().compat.releases_of("onnxruntime")}
    row = rows.get(release_prefix(onnxruntime.__version__, 2))
    if row is None:
        pytest.skip(f"no KB row for onnxruntime {onnxruntime.__version__}")
    assert _ort_max("opset") == row.caps["maxOpset"]
    assert _ort_max("ir") == row.caps["maxIrVersion"]
