"""`modelport demo`: a real local MLflow registry with real models, harvested and served."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from modelport.settings import Settings

console = Console()


def _verify(settings: Settings) -> None:
    """Check the registry's models numerically, so the demo shows `verified` cells."""
    from modelport.pipeline import Pipeline
    from modelport.verify_job import verify

    pipeline = Pipeline(settings)
    try:
        with console.status("verifying models against ONNX Runtime"):
            # The demo's own registry, filled by this process with models it built: trusted, so its
            # pickled models are loaded (in the sandbox).
            report = verify(pipeline, source="mlflow-demo", trusted={"mlflow-demo"})
    finally:
        pipeline.close()
    console.print(f"verified {report.verified} of {report.checked} models "
                  f"({report.failed} failed verification, with their error recorded)")


def _tfhub(settings: Settings) -> None:
    """A second, local source: the TF Hub documentation sample that ships with the tests."""
    from modelport.cli import run_harvest
    from modelport.harvesters.tfhub import TFHubSource

    docs = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "tfhub" / "docs"
    if not docs.is_dir():  # installed without the repository: nothing local to crawl
        return
    cache = settings.data_dir / "cache" / "tfhub" / "tfhub-sample"
    run_harvest(TFHubSource(docs.as_uri(), name="tfhub-sample", cache_dir=cache),
                "full", settings=settings)


def run_demo(settings: Settings, port: int, mlflow_port: int, serve_api: bool) -> None:
    from modelport.cli import run_harvest
    from modelport.demo_registry import populate
    from modelport.harvesters.mlflow_registry import MlflowSource
    from modelport.mlflow_server import start_mlflow_server

    settings.ensure_dirs()
    console.print(f"[bold]ModelPort demo[/] — data in {settings.data_dir.resolve()}")
    with console.status("starting a local MLflow tracking server (SQL backend, proxied artifacts)"):
        server = start_mlflow_server(settings.data_dir / "mlflow", port=mlflow_port)
    try:
        console.print(f"MLflow server: {server.uri}")
        with console.status("registering demo models (scikit-learn ×2, ONNX, pyfunc, PyTorch, a broken one)"):
            added = populate(server.uri)
        console.print(f"registered: {', '.join(added) if added else 'nothing new (already there)'}")
        run_harvest(MlflowSource(server.uri, name="mlflow-demo", cache_dir=settings.data_dir / "cache"),
                    "full", settings=settings)
        _verify(settings)
        _tfhub(settings)
        if not serve_api:
            return
        base = f"http://127.0.0.1:{port}"
        console.print("\n[bold]Try:[/]")
        for url in (f"{base}/", f"{base}/search?q=iris&format=onnx", f"{base}/search?q=classifier&runtime=onnxruntime",
                    f"{base}/models/mlflow-demo:iris-classifier/2",
                    f"{base}/models/mlflow-demo:iris-classifier/2?format=turtle",
                    f"{base}/sparql?query=SELECT%20%3Fm%20%3Fname%20WHERE%20%7B%20%3Fm%20a%20fair4ml%3AMLModel%20%3B"
                    f"%20schema%3Aname%20%3Fname%20%7D", f"{base}/docs", f"{server.uri} (MLflow UI)"):
            console.print(f"  {url}")
        console.print("\nCtrl-C stops the API and the MLflow server.")
        from modelport.api.app import create_app, run_server

        # run_server ends the process once the API has stopped: the MLflow server is stopped first.
        run_server(create_app(settings, warm_search=True), "127.0.0.1", port, on_exit=server.stop)
    finally:
        server.stop()
