"""Verification runs for real: tiny scikit-learn and PyTorch models saved the way MLflow saves them,
and ONNX files, executed on the installed onnxruntime."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from compat_helpers import art, rec

from modelport.schema.compat import derive_compatibility, inspect_onnx
from modelport.schema.compat_explain import explain, matrix
from modelport.schema.kb import get_kb
from modelport.schema.record import Signature
from modelport.schema.verify import (
    CodeExecutionRefused,
    code_execution_needed,
    verify_onnx,
    verify_record,
    verify_sklearn,
)


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
    e = verify_record(rec("reg"), models["sk_reg"], allow_pickle=True)
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
    e = verify_record(rec("pt"), models["pt"], allow_pickle=True)
    assert e.status == "verified", e.evidence
    assert e.path == ["torch-onnx-export"]
    assert e.measurements["input_shape"] == [2, 4]
    assert e.measurements["max_abs_diff"] <= 1e-4
    assert e.measurements["opset"] >= 7


def test_pytorch_shape_from_record_signature(models: dict[str, Path]) -> None:
    r = rec("pt2", signature=Signature(inputs=[{"type": "tensor", "tensor-spec": {"dtype": "float32",
                                                                                  "shape": [-1, 4]}}]))
    e = verify_record(r, models["pt_nosig"], allow_pickle=True)
    assert e.status == "verified", e.evidence


def test_pytorch_without_signature_fails_clearly(models: dict[str, Path]) -> None:
    e = verify_record(rec("pt3"), models["pt_nosig"], allow_pickle=True)
    assert e.status == "failed-verification"
    assert "input shape unknown" in e.measurements["error"]


def test_native_onnx_loads_and_runs(models: dict[str, Path]) -> None:
    e = verify_record(rec("ox"), models["onnx"])
    assert e.status == "verified", e.evidence
    assert e.path == [] and e.measurements["opset"] == 17
    assert e.measurements["output_shapes"][0] == [2]
    assert e.measurements["outputs_finite"] is True
    assert verify_onnx(models["onnx"] / "model.onnx").status == "verified"


def test_pickled_models_are_refused_unless_allowed(models: dict[str, Path]) -> None:
    for name in ("sk_reg", "pt"):
        with pytest.raises(CodeExecutionRefused, match="trusted source"):
            verify_record(rec(name), models[name])
    assert code_execution_needed(models["sk_clf"]) is None  # skops: our allow-list decides
    assert code_execution_needed(models["onnx"]) is None


def test_skops_types_off_our_allow_list_are_refused_whatever_the_mlmodel_trusts(
        models: dict[str, Path], tmp_path: Path) -> None:
    import os
    import shutil

    import skops.io
    import yaml
    from sklearn.preprocessing import FunctionTransformer

    hostile = tmp_path / "hostile"
    shutil.copytree(models["sk_clf"], hostile)
    skops.io.dump(FunctionTransformer(func=os.system), hostile / "model.skops")
    mlmodel = yaml.safe_load((hostile / "MLmodel").read_text())
    # what a registrant controls: the list of types the MLmodel says to trust
    mlmodel["flavors"]["sklearn"]["skops_trusted_types"] = skops.io.get_untrusted_types(
        file=str(hostile / "model.skops"))
    (hostile / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    with pytest.raises(CodeExecutionRefused, match="system"):
        verify_record(rec("hostile"), hostile)


def test_trusted_pickles_run_in_a_sandbox_without_network(models: dict[str, Path], tmp_path: Path) -> None:
    import pickle
    import shutil
    import socket
    import threading

    from modelport.verify_sandbox import verify_in_sandbox

    e = verify_in_sandbox(rec("reg"), models["sk_reg"])
    assert e.status == "verified", e.measurements
    # a pickle that phones home when loaded: inside the sandbox there is no network to reach
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    accepted: list[object] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            accepted.append(listener.accept())

    class PhoneHome:
        def __reduce__(self) -> tuple[object, tuple[object, ...]]:
            return (socket.create_connection, (("127.0.0.1", port), 2))

    hostile = tmp_path / "phone-home"
    shutil.copytree(models["sk_reg"], hostile)
    (hostile / "model.pkl").write_bytes(pickle.dumps(PhoneHome()))
    t = threading.Thread(target=accept)
    t.start()
    e = verify_in_sandbox(rec("phone"), hostile)
    t.join()
    listener.close()
    assert accepted == [] and e.status == "failed-verification"
    assert "unreachable" in e.measurements["error"].lower() or "refused" in e.measurements["error"].lower(), \
        e.measurements


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
