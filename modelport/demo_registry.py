"""Fill a real MLflow registry with real models for the demo and the tests: two versions of a
scikit-learn classifier (alias, tags, metrics), an ONNX model, a custom pyfunc, a PyTorch model,
a version whose MLmodel is corrupt, and a prompt (which harvests must skip).

Needs the `demo` extra (mlflow, scikit-learn, skl2onnx, torch). Idempotent: models already
registered are left alone."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

EXPERIMENT = "modelport-demo"
DEMO_MODELS = ("iris-classifier", "iris-onnx", "text-normalizer", "tiny-mlp", "broken-model")


def populate(tracking_uri: str) -> list[str]:
    """Register whatever demo model is missing; returns the names registered now."""
    import mlflow
    from mlflow import MlflowClient

    # MLflow narrates every run and registration at INFO; the demo prints its own summary.
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    existing = {rm.name for rm in client.search_registered_models(max_results=1000)}
    mlflow.set_experiment(EXPERIMENT)
    done = []
    for name, fn in (("iris-classifier", _iris), ("iris-onnx", _onnx), ("text-normalizer", _pyfunc),
                     ("tiny-mlp", _torch), ("broken-model", _broken)):
        if name not in existing:
            fn(client, name)
            done.append(name)
    _prompt()
    return done


def _iris_data() -> tuple[Any, Any]:  # (pandas frames: pandas ships no type information here)
    from sklearn.datasets import load_iris

    data = load_iris(as_frame=True)
    return data.data, data.target


def _iris(client: MlflowClient, name: str) -> None:
    import mlflow
    from sklearn.linear_model import LogisticRegression

    X, y = _iris_data()
    for version, c in ((1, 0.1), (2, 1.0)):
        with mlflow.start_run(run_name=f"{name}-v{version}"):
            model = LogisticRegression(C=c, max_iter=300).fit(X, y)
            mlflow.log_params({"C": c, "max_iter": 300})
            mlflow.log_metric("train_accuracy", float(model.score(X, y)))
            mlflow.sklearn.log_model(model, name="model", input_example=X.head(3),
                                     registered_model_name=name)
    client.update_registered_model(name, description="Logistic regression on the iris flowers data set.")
    client.set_registered_model_tag(name, "task", "tabular-classification")
    client.set_registered_model_tag(name, "license", "apache-2.0")
    client.set_registered_model_tag(name, "dataset", "iris")
    client.set_model_version_tag(name, "2", "validation_status", "approved")
    client.set_registered_model_alias(name, "champion", "2")
    client.set_registered_model_alias(name, "previous", "1")


def _onnx(client: MlflowClient, name: str) -> None:
    import mlflow
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestClassifier

    X, y = _iris_data()
    model = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(X, y)
    onx = to_onnx(model, X.values[:1].astype("float32"), target_opset={"": 17, "ai.onnx.ml": 3},
                  options={id(model): {"zipmap": False}})
    with mlflow.start_run(run_name=name):
        mlflow.log_metric("test_accuracy", float(model.score(X, y)))
        mlflow.onnx.log_model(onx, name="model", registered_model_name=name)
    client.update_registered_model(name, description="Random forest on iris, exported to ONNX (opset 17).")
    client.set_registered_model_tag(name, "task", "tabular-classification")
    client.set_registered_model_tag(name, "license", "mit")


def _pyfunc(client: MlflowClient, name: str) -> None:
    import mlflow
    import pandas as pd
    from mlflow.pyfunc.model import PythonModel

    class TextNormalizer(PythonModel):
        # Unannotated on purpose: MLflow reads predict's annotations as the model's signature, which it
        # infers from `input_example` instead.
        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]  # noqa: ANN001, ANN202
            return [str(x).strip().lower() for x in model_input.iloc[:, 0]]

    with mlflow.start_run(run_name=name):
        mlflow.pyfunc.log_model(name="model", python_model=TextNormalizer(),
                                input_example=pd.DataFrame({"text": ["Hello World "]}),
                                registered_model_name=name)
    client.update_registered_model(name, description="Custom pyfunc that lower-cases and trims text.")
    client.set_registered_model_tag(name, "task", "text2text-generation")


def _torch(client: MlflowClient, name: str) -> None:
    import mlflow
    import numpy as np
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)).eval()
    example = np.random.default_rng(0).random((2, 4), dtype=np.float32)
    with mlflow.start_run(run_name=name):
        mlflow.log_param("hidden", 16)
        mlflow.pytorch.log_model(model, name="model", input_example=example, registered_model_name=name)
    client.update_registered_model(name, description="A tiny PyTorch MLP classifier for four features.")
    client.set_registered_model_tag(name, "task", "tabular-classification")
    client.set_registered_model_tag(name, "license", "apache-2.0")


def _broken(client: MlflowClient, name: str) -> None:
    """A version whose MLmodel is not YAML: harvests must still record it."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_name=name) as run:
        d = Path(tmp) / "broken"
        d.mkdir()
        (d / "MLmodel").write_text("flavors: [this is: not: valid yaml\n  - {\n")
        (d / "model.pkl").write_bytes(b"not really a pickle")
        mlflow.log_artifacts(str(d), artifact_path="broken")
        client.create_registered_model(name, description="A version with a corrupt MLmodel file.")
        client.create_model_version(name, source=f"{run.info.artifact_uri}/broken", run_id=run.info.run_id)


def _prompt() -> None:
    import mlflow

    try:
        mlflow.genai.register_prompt(name="summarize-prompt", template="Summarize: {{text}}")
    except Exception as e:  # prompt registry may be unavailable on old servers; not a model anyway
        log.info("prompt not registered: %s", e)
