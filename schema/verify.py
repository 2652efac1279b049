"""Verification job: actually run a model on ONNX Runtime and record the numbers, turning a derived
cell into `verified` (or `failed-verification`, with the error).

- scikit-learn: convert with skl2onnx, compare onnxruntime with scikit-learn on the same random inputs;
- ONNX: load and execute natively, check the outputs are finite;
- PyTorch: export with torch.onnx.export, compare onnxruntime with torch on the same random inputs.

Works on local files: an MLflow model directory (`MLmodel` + flavour files, as `mlflow.*.save_model`
writes them) or a bare `.onnx` file / directory holding one.

No code from a model is executed unless asked: ONNX and skops files are loaded here (skops only
when every type in the file is on ModelPort's own allow-list, never the list the MLmodel carries);
pickled models (scikit-learn pickle/cloudpickle, PyTorch) need `allow_pickle=True`, which
`modelport verify` passes only for sources marked trusted, inside a sandbox process
(modelport/verify_sandbox.py).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from modelport.errors import ModelPortError
from modelport.schema.record import CompatibilityEntry, Evidence, ModelRecord
from modelport.schema.versions import VersionRange

DEFAULT_SAMPLES = 16
# float32 ONNX kernels against float64 scikit-learn / float32 torch: differences of ~1e-6 are
# rounding; 1e-4 absolute + 1e-3 relative flags real divergence (optimum uses 1e-5 for its exports).
DEFAULT_ATOL = 1e-4
DEFAULT_RTOL = 1e-3


class VerificationError(ModelPortError, RuntimeError):
    """The model could not be verified (nothing verifiable found, unknown input shape, …)."""


class CodeExecutionRefused(VerificationError):
    """Loading the model would run code from it (a pickle, or skops types off our allow-list)."""


# skops files may hold only these types (ModelPort's list, fixed here, whatever a remote MLmodel
# names as trusted): scikit-learn estimators and their parts, numpy/scipy containers and scalars.
SKOPS_ALLOWED_PREFIXES = ("sklearn.", "numpy.", "scipy.sparse.")
SKOPS_ALLOWED_TYPES = frozenset({"builtins.slice", "builtins.bytes", "builtins.bytearray", "builtins.complex",
                                 "collections.OrderedDict", "collections.defaultdict"})


def _skops_allowed(type_name: str) -> bool:
    return type_name in SKOPS_ALLOWED_TYPES or type_name.startswith(SKOPS_ALLOWED_PREFIXES)


def code_execution_needed(artifact_dir: str | Path) -> str | None:
    """Why loading the model in `artifact_dir` would execute code from it (None: it would not)."""
    d = Path(artifact_dir)
    if d.is_file():
        return None if d.suffix == ".onnx" else f"{d.name} is not an ONNX file"
    try:
        flavors = (_read_mlmodel(d).get("flavors") or {}) if d.is_dir() else {}
    except Exception:  # noqa: BLE001 — an unreadable MLmodel loads nothing; verification reports it
        return None
    if "onnx" in flavors or (not flavors and any(d.rglob("*.onnx"))):
        return None
    if "sklearn" in flavors:
        fmt = (flavors["sklearn"] or {}).get("serialization_format", "cloudpickle")
        return None if fmt == "skops" else f"a scikit-learn model serialized with {fmt} (unpickling runs its code)"
    if "pytorch" in flavors:
        return "a PyTorch model (torch.load unpickles it)"
    return None


def failed_entry(record: ModelRecord, artifact_dir: str | Path, error: str) -> CompatibilityEntry:
    m: dict[str, Any] = {"error": error}
    with contextlib.suppress(ImportError):
        m["onnxruntime_version"] = _ort_version()
    return _entry("failed-verification", path=[], measurements=m, artifact=str(artifact_dir),
                  detail=f"verification of {record.id} failed: {error}")


def load_skops(model_dir: Path, flavor: dict[str, Any]) -> Any:
    """A skops-serialized estimator, refused unless every type it holds is on our allow-list."""
    import skops.io

    path = model_dir / str(flavor.get("pickled_model") or "model.skops")
    if not path.resolve().is_relative_to(model_dir.resolve()):
        raise CodeExecutionRefused(f"the skops file {path} lies outside the model directory")
    unknown = [t for t in skops.io.get_untrusted_types(file=str(path)) if not _skops_allowed(t)]
    if unknown:
        raise CodeExecutionRefused(f"skops file holds types off ModelPort's allow-list: {', '.join(unknown[:10])}")
    return skops.io.load(str(path), trusted=skops.io.get_untrusted_types(file=str(path)))


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def _entry(status: str, *, path: list[str], detail: str, measurements: dict[str, Any],
           artifact: str | None) -> CompatibilityEntry:
    ort_v = measurements.get("onnxruntime_version")
    rng = VersionRange(min=ort_v, max=ort_v, max_inclusive=True) if ort_v else None
    return CompatibilityEntry(
        runtime="onnxruntime", format="onnx", version_range=rng, status=status,  # type: ignore[arg-type]
        path=path, confidence="high" if status == "verified" else None, precision="fp32",
        evidence=[Evidence(kind="verification", detail=detail, artifact=artifact)], measurements=measurements)


def _read_mlmodel(directory: Path) -> dict[str, Any]:
    from modelport.harvesters.bounded import load_yaml

    p = directory / "MLmodel"
    data = load_yaml(p.read_text(errors="replace")[:1_000_000]) if p.is_file() else {}
    return data if isinstance(data, dict) else {}


def _signature_inputs(record: ModelRecord, mlmodel: dict[str, Any]) -> list[dict[str, Any]]:
    if record.signature and record.signature.inputs:
        return list(record.signature.inputs)
    sig = (mlmodel.get("signature") or {}).get("inputs")
    if isinstance(sig, str):
        try:
            return list(json.loads(sig))
        except ValueError:
            return []
    return list(sig or [])


def _tensor_shape(inputs: list[dict[str, Any]], batch: int) -> tuple[int, ...] | None:
    """Shape of the single tensor input of an MLflow signature, with -1 dims set to `batch`."""
    if len(inputs) != 1 or inputs[0].get("type") != "tensor":
        return None
    spec = inputs[0].get("tensor-spec") or {}
    shape = spec.get("shape")
    if not shape:
        return None
    return tuple(batch if int(d) < 0 else int(d) for d in shape)


def _compare(ref: np.ndarray, got: np.ndarray, atol: float, rtol: float) -> tuple[float, bool]:
    ref = np.asarray(ref, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64).reshape(ref.shape)
    diff = np.abs(ref - got)
    max_abs = float(diff.max()) if diff.size else 0.0
    ok = bool(np.all(diff <= atol + rtol * np.abs(ref)))
    return max_abs, ok


# -- scikit-learn ------------------------------------------------------------------------------------
def verify_sklearn(model: Any, n_features: int, *, n_samples: int = DEFAULT_SAMPLES, seed: int = 0,
                   atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL,
                   artifact: str | None = None) -> CompatibilityEntry:
    import onnxruntime as ort
    import skl2onnx
    from skl2onnx import to_onnx

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_samples, n_features)).astype(np.float32)
    m: dict[str, Any] = {"onnxruntime_version": _ort_version(), "converter": "skl2onnx",
                         "converter_version": skl2onnx.__version__, "n_samples": n_samples, "seed": seed,
                         "tolerance": {"atol": atol, "rtol": rtol}}
    try:
        is_clf = hasattr(model, "predict_proba")
        options = {id(model): {"zipmap": False}} if is_clf else None
        onx = to_onnx(model, x[:1], options=options)
        m["opset"] = next((o.version for o in onx.opset_import if o.domain in ("", "ai.onnx")), None)
        sess = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
        outs = sess.run(None, {sess.get_inputs()[0].name: x})
        if is_clf:
            label_match = float(np.mean(np.asarray(outs[0]).ravel() == np.asarray(model.predict(x)).ravel()))
            max_abs, ok = _compare(model.predict_proba(x), outs[1], atol, rtol)
            m.update(max_abs_diff=max_abs, label_agreement=label_match, compared="predict_proba")
            ok = ok and label_match == 1.0
        else:
            max_abs, ok = _compare(np.asarray(model.predict(x)).reshape(n_samples, -1), outs[0], atol, rtol)
            m.update(max_abs_diff=max_abs, compared="predict")
    except Exception as exc:  # the conversion or the run failed: that is the finding
        m["error"] = f"{type(exc).__name__}: {exc}"
        return _entry("failed-verification", path=["skl2onnx"], measurements=m, artifact=artifact,
                      detail=f"skl2onnx → onnxruntime {m['onnxruntime_version']} failed: {m['error']}")
    status = "verified" if ok else "failed-verification"
    detail = (f"skl2onnx {m['converter_version']} (opset {m.get('opset')}) → onnxruntime "
              f"{m['onnxruntime_version']}: max |Δ| {m['max_abs_diff']:.3g} on {n_samples} random inputs "
              f"({'within' if ok else 'OUTSIDE'} atol {atol:g} + rtol {rtol:g})")
    return _entry(status, path=["skl2onnx"], measurements=m, artifact=artifact, detail=detail)


# -- PyTorch -------------------------------------------------------------------------------------------
def verify_pytorch(model: Any, input_shape: tuple[int, ...], *, seed: int = 0, atol: float = DEFAULT_ATOL,
                   rtol: float = DEFAULT_RTOL, opset: int | None = None,
                   artifact: str | None = None, exported: Any = None) -> CompatibilityEntry:
    """`exported`: the torch.export ExportedProgram when the model was saved that way (MLflow's
    default "pt2" format); it goes through the dynamo exporter, which needs `onnxscript`."""
    import onnxruntime as ort
    import torch

    m: dict[str, Any] = {"onnxruntime_version": _ort_version(), "converter": "torch.onnx.export",
                         "converter_version": torch.__version__, "input_shape": list(input_shape), "seed": seed,
                         "tolerance": {"atol": atol, "rtol": rtol}}
    try:
        # torch.export modules (MLflow's "pt2" format) refuse eval(): they are inference graphs already.
        with contextlib.suppress(NotImplementedError):
            model.eval()
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(*input_shape, generator=gen)
        with torch.no_grad():
            ref = model(x)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "model.onnx"
            # The TorchScript-based exporter needs no onnxscript; the dynamo one (default from 2.9) does.
            kwargs: dict[str, Any] = {"input_names": ["input"], "dynamic_axes": {"input": {0: "batch"}},
                                      "dynamo": False}
            if exported is not None:
                kwargs = {"dynamo": True}
                m["converter"] = "torch.onnx.export (dynamo, ExportedProgram)"
            if opset is not None:
                kwargs["opset_version"] = opset
            with warnings.catch_warnings():  # the legacy-exporter deprecation notice is expected here
                warnings.simplefilter("ignore", DeprecationWarning)
                torch.onnx.export(exported if exported is not None else model, (x,), str(out), **kwargs)
            from modelport.schema.compat import inspect_onnx

            facts = inspect_onnx(out)
            m["opset"] = facts.get("opset")
            sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
            got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        max_abs, ok = _compare(ref.detach().numpy(), got, atol, rtol)
        m.update(max_abs_diff=max_abs, compared="forward")
    except Exception as exc:
        m["error"] = f"{type(exc).__name__}: {exc}"
        return _entry("failed-verification", path=["torch-onnx-export"], measurements=m, artifact=artifact,
                      detail=f"torch.onnx.export → onnxruntime {m['onnxruntime_version']} failed: {m['error']}")
    status = "verified" if ok else "failed-verification"
    detail = (f"torch {m['converter_version']} torch.onnx.export (opset {m.get('opset')}) → onnxruntime "
              f"{m['onnxruntime_version']}: max |Δ| {max_abs:.3g} on input {list(input_shape)} "
              f"({'within' if ok else 'OUTSIDE'} atol {atol:g} + rtol {rtol:g})")
    return _entry(status, path=["torch-onnx-export"], measurements=m, artifact=artifact, detail=detail)


# -- ONNX (native) -------------------------------------------------------------------------------------
_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
               "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_,
               "tensor(uint8)": np.uint8, "tensor(int8)": np.int8}


def verify_onnx(path: str | Path, *, batch: int = 2, seed: int = 0) -> CompatibilityEntry:
    import onnxruntime as ort

    from modelport.schema.compat import inspect_onnx

    m: dict[str, Any] = {"onnxruntime_version": _ort_version(), "seed": seed}
    try:
        facts = inspect_onnx(path)
        m.update(opset=facts.get("opset"), ir_version=facts.get("ir_version"))
        t0 = time.perf_counter()
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(seed)
        feeds = {}
        for i in sess.get_inputs():
            dtype = _ORT_DTYPES.get(i.type)
            if dtype is None:
                raise VerificationError(f"input {i.name!r} has type {i.type}, which random inputs cannot fill")
            shape = [d if isinstance(d, int) and d > 0 else batch for d in i.shape]
            if np.issubdtype(dtype, np.floating):
                feeds[i.name] = rng.standard_normal(shape).astype(dtype)
            elif dtype is np.bool_:
                feeds[i.name] = rng.integers(0, 2, shape).astype(bool)
            else:
                feeds[i.name] = rng.integers(0, 3, shape).astype(dtype)
        outs = sess.run(None, feeds)
        m["run_ms"] = round((time.perf_counter() - t0) * 1e3, 3)
        m["output_shapes"] = [list(np.shape(o)) for o in outs]
        finite = all(np.all(np.isfinite(o)) for o in outs if np.issubdtype(np.asarray(o).dtype, np.number))
        m["outputs_finite"] = bool(finite)
    except Exception as exc:
        m["error"] = f"{type(exc).__name__}: {exc}"
        return _entry("failed-verification", path=[], measurements=m, artifact=str(path),
                      detail=f"onnxruntime {m['onnxruntime_version']} could not run {Path(path).name}: {m['error']}")
    status = "verified" if finite else "failed-verification"
    detail = (f"onnxruntime {m['onnxruntime_version']} loaded and ran {Path(path).name} (opset {m.get('opset')}, "
              f"IR {m.get('ir_version')}) on random inputs: outputs {m['output_shapes']}"
              + ("" if finite else ", NOT all finite"))
    return _entry(status, path=[], measurements=m, artifact=str(path), detail=detail)


# -- dispatcher ------------------------------------------------------------------------------------------
def verify_record(record: ModelRecord, artifact_dir: str | Path, *, n_samples: int = DEFAULT_SAMPLES,
                  seed: int = 0, allow_pickle: bool = False) -> CompatibilityEntry:
    """Verify the model whose files lie in `artifact_dir` (an MLflow model directory or a folder /
    file with an `.onnx` model). Always returns an entry: `verified` with the numbers in
    `measurements`, or `failed-verification` with the error. Without `allow_pickle`, a model that
    only loads by unpickling raises CodeExecutionRefused instead (nothing is claimed about it)."""
    d = Path(artifact_dir)
    if not allow_pickle and (why := code_execution_needed(d)):
        raise CodeExecutionRefused(f"{record.id}: {why}; verify it only from a trusted source")
    try:
        if d.is_file() and d.suffix == ".onnx":
            return verify_onnx(d, seed=seed)
        if not d.is_dir():
            raise VerificationError(f"{d} is neither a model directory nor an .onnx file")
        mlmodel = _read_mlmodel(d)
        flavors = mlmodel.get("flavors") or {}
        inputs = _signature_inputs(record, mlmodel)
        if "onnx" in flavors:
            return verify_onnx(d / flavors["onnx"].get("data", "model.onnx"), seed=seed)
        if "sklearn" in flavors:
            flavor = flavors["sklearn"] or {}
            if flavor.get("serialization_format") == "skops":
                model = load_skops(d, flavor)  # our allow-list, not the one the MLmodel names
            else:
                import mlflow.sklearn

                model = mlflow.sklearn.load_model(str(d))  # only with allow_pickle (checked above)
            n_features = getattr(model, "n_features_in_", None)
            if n_features is None and inputs and all(i.get("type") != "tensor" for i in inputs):
                n_features = len(inputs)
            if n_features is None:
                raise VerificationError("cannot tell the number of input features (no n_features_in_, no signature)")
            return verify_sklearn(model, int(n_features), n_samples=n_samples, seed=seed, artifact=str(d))
        if "pytorch" in flavors:
            import mlflow.pytorch

            shape = _tensor_shape(inputs, batch=2)
            if shape is None:
                raise VerificationError("PyTorch model without a single-tensor signature: input shape unknown")
            pt2 = sorted(d.rglob("*.pt2"))
            if pt2:
                import torch

                exported = torch.export.load(str(pt2[0]))
                return verify_pytorch(exported.module(), shape, seed=seed, artifact=str(d), exported=exported)
            model = mlflow.pytorch.load_model(str(d), map_location="cpu")
            return verify_pytorch(model, shape, seed=seed, artifact=str(d))
        onnx_files = sorted(d.rglob("*.onnx"))
        if onnx_files:
            return verify_onnx(onnx_files[0], seed=seed)
        raise VerificationError(
            f"nothing verifiable in {d}: need an MLflow sklearn/pytorch/onnx model or an .onnx file"
            + (f" (flavours: {', '.join(sorted(flavors))})" if flavors else ""))
    except CodeExecutionRefused:
        raise
    except Exception as exc:
        return failed_entry(record, d, f"{type(exc).__name__}: {exc}")


__all__ = ["verify_record", "verify_sklearn", "verify_pytorch", "verify_onnx", "VerificationError",
           "CodeExecutionRefused", "code_execution_needed", "failed_entry", "load_skops"]
