"""Shared fixtures: a real MLflow server with real registered models, harvested once per session,
and the API served over real HTTP for third-party clients."""

from __future__ import annotations

import os
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


@pytest.fixture(scope="session")
def elasticsearch_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real single-node Elasticsearch started for this session (tools/es-node: assembled from Maven
    Central, loopback, security off, data in a temp dir, 512 MiB heap), stopped at the end. With
    MODELPORT_TEST_ELASTICSEARCH_URL set, that server is used instead and nothing is started."""
    external = os.environ.get("MODELPORT_TEST_ELASTICSEARCH_URL", "").strip()
    if external:
        yield external
        return
    from modelport.index.elasticsearch.node import start_node

    node = start_node(tmp_path_factory.mktemp("es-node"), heap="512m")  # 360 test records need little
    try:
        _warm_up(node.url)
        yield node.url
    finally:
        node.stop()


def _warm_up(url: str) -> None:
    """One index, search and aggregation before the tests: a fresh JVM's first requests are slow
    (class loading, JIT), slow enough to run past a 0.5 s facet time limit on a loaded machine."""
    name = "modelport-warm-up"
    with httpx.Client(base_url=url, timeout=60) as c:
        c.put(f"/{name}", json={"settings": {"number_of_replicas": 0}})
        c.post(f"/{name}/_bulk", params={"refresh": "true"}, content="".join(
            f'{{"index":{{}}}}\n{{"k":"v{i % 5}","n":{i}}}\n' for i in range(200)),
            headers={"content-type": "application/x-ndjson"})
        for _ in range(3):
            c.post(f"/{name}/_search", json={"query": {"range": {"n": {"gte": 10}}}, "size": 10,
                                             "aggs": {"k": {"terms": {"field": "k.keyword"}}}})
        c.delete(f"/{name}")


@pytest.fixture(scope="session")
def tfhub_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory holding the TF Hub documentation sample, crawled once per session by the real
    CLI (tests copy it before serving it: a server writes its data directory)."""
    from serve_helpers import harvest_tfhub_fixture

    d = tmp_path_factory.mktemp("tfhub-data")
    harvest_tfhub_fixture(d)
    return d


# -- the SHACL check of every stored record runs once, after everything else ---------------------------
SHACL_CHECK = "test_every_record_of_the_suite_conforms_to_the_shapes"
_SHACL_SELECTED = pytest.StashKey[bool]()


@pytest.hookimpl(trylast=True)  # after -k/-m deselection and any reordering plugin
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """The check reads what the other tests stored, so it goes last whatever the file order."""
    last = [i for i in items if i.name == SHACL_CHECK]
    items[:] = [i for i in items if i.name != SHACL_CHECK] + last
    config.stash[_SHACL_SELECTED] = bool(last)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A run whose selection left the check out (-k, a file, a node id) still validates what it
    stored: a record that does not conform fails the run."""
    config = session.config
    if config.stash.get(_SHACL_SELECTED, True) or exitstatus in (
            pytest.ExitCode.INTERRUPTED, pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.NO_TESTS_COLLECTED):
        return
    if getattr(config, "workerinput", None) is not None:  # an xdist worker: the controller checks
        return
    from tests.test_shacl import test_every_record_of_the_suite_conforms_to_the_shapes as check

    reporter = config.pluginmanager.get_plugin("terminalreporter")
    try:
        check(config._tmp_path_factory)  # type: ignore[attr-defined]  # the session's own temp root
    except pytest.skip.Exception:
        return  # nothing stored in this run
    except AssertionError as e:
        if reporter is not None:
            reporter.write_line(f"SHACL check of the records this run stored FAILED:\n{str(e)[:5000]}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        return
    if reporter is not None:
        reporter.write_line("SHACL check of the records this run stored: conforms")
