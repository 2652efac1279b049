"""Shared fixtures: a real MLflow server with real registered models, harvested once per session,
and the API served over real HTTP for third-party clients."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from modelport.settings import Settings


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    pytest.importorskip("mlflow.server", reason="the demo extra (full mlflow) is required")
    from modelport.demo_registry import populate
    from modelport.mlflow_server import start_mlflow_server

    server = start_mlflow_server(tmp_path_factory.mktemp("mlflow"))
    try:
        populate(server.uri)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def harvested(mlflow_server: object, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A data directory holding one full harvest of the session's MLflow registry."""
    from modelport.harvesters.mlflow_registry import MlflowSource
    from modelport.pipeline import Pipeline

    settings = Settings(data_dir=tmp_path_factory.mktemp("harvested"), base_iri="http://modelport.test")
    pipeline = Pipeline(settings)
    report = pipeline.harvest(MlflowSource(mlflow_server.uri, name="mlflow", cache_dir=settings.data_dir / "cache"),
                              mode="full")
    pipeline.close()
    settings.__dict__["first_report"] = report
    return settings


class LiveServer:
    def __init__(self, app: object) -> None:
        import uvicorn

        from modelport.mlflow_server import free_port

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise TimeoutError("API did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def api(harvested: Settings) -> Iterator[LiveServer]:
    """The API on a real loopback port over the harvested data."""
    from modelport.api.app import create_app

    with LiveServer(create_app(harvested)) as live:
        yield live


def catalogs_under(root: Path) -> list[Path]:
    return sorted(root.rglob("catalog.sqlite"))
