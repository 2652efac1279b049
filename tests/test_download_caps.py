"""Bounded downloads from a registry that lists no sizes: the session's real `mlflow server` behind a
local proxy that drops `file_size` from artifact listings, as a careless or hostile registry would.
Files of unknown size are streamed and stopped at the configured cap (a clear reason on the record or
in the verify report, nothing partial kept); within the cap they are read as before."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from modelport.harvesters.artifact_download import OverCap, download_file, download_tree, walk
from modelport.harvesters.mlflow_registry import MlflowSource
from modelport.pipeline import Pipeline
from modelport.settings import Settings

ONNX_ID = "mlflow:iris-onnx/1"


@dataclass
class Proxy:
    uri: str
    listings: list[str]


@pytest.fixture(scope="module")
def sizeless(mlflow_server: object) -> Iterator[Proxy]:
    upstream = mlflow_server.uri  # type: ignore[attr-defined]
    listings: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
            pass

        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            r = httpx.request(self.command, upstream + self.path, content=body, headers=headers, timeout=60)
            data = r.content
            if r.headers.get("content-type", "").startswith("application/json") and "mlflow-artifacts" in self.path:
                doc = json.loads(data or b"{}")
                if isinstance(doc, dict) and isinstance(doc.get("files"), list):
                    listings.append(self.path)
                    for f in doc["files"]:
                        f.pop("file_size", None)  # the registry does not say how big its files are
                    data = json.dumps(doc).encode()
            # Nor how long a file is: artifact bodies come without Content-Length (HTTP/1.0, the end is
            # the connection closing), so only the bytes themselves can stop a download.
            sizeless_body = "mlflow-artifacts/artifacts/" in self.path and r.status_code == 200
            self.send_response(r.status_code)
            for k, v in r.headers.items():
                if k.lower() not in ("content-length", "transfer-encoding", "content-encoding", "connection"):
                    self.send_header(k, v)
            if sizeless_body:
                self.close_connection = True
            else:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = _forward  # noqa: N815

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield Proxy(f"http://127.0.0.1:{srv.server_port}", listings)
    finally:
        srv.shutdown()
        srv.server_close()


def _harvest(proxy: Proxy, tmp_path: Path, **caps: int) -> Pipeline:
    settings = Settings(data_dir=tmp_path / "data", base_iri="http://test", embeddings=False)
    p = Pipeline(settings)
    report = p.harvest(MlflowSource(proxy.uri, name="mlflow", cache_dir=settings.data_dir / "cache", **caps),
                       mode="full")
    assert report.status in ("ok", "partial") and report.counts["inserted"] >= 5, report.errors
    return p


@pytest.fixture(scope="module")
def harvested(sizeless: Proxy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """One harvest through the proxy with the default caps."""
    p = _harvest(sizeless, tmp_path_factory.mktemp("sizeless"))
    yield p
    p.close()


def test_files_of_unknown_size_are_streamed_within_the_cap(sizeless: Proxy, harvested: Pipeline) -> None:
    p = harvested
    assert sizeless.listings  # the listings the harvester read had no sizes
    rec = p.catalog.get(ONNX_ID)
    assert rec is not None
    onnx = next(a for a in rec.artifacts if a.path.endswith(".onnx"))
    assert onnx.size_bytes is None  # unknown, as the registry said
    assert onnx.details.get("opset") == 17  # yet read: streamed, within the cap
    assert "not_downloaded" not in rec.source_facts and rec.source_facts.get("flavors")


def test_a_stream_past_the_cap_is_stopped_with_a_reason_and_the_harvest_goes_on(sizeless: Proxy,
                                                                                 tmp_path: Path) -> None:
    p = _harvest(sizeless, tmp_path, max_inspect_bytes=100, max_text_file_bytes=64)
    rec = p.catalog.get(ONNX_ID)
    assert rec is not None
    onnx = next(a for a in rec.artifacts if a.path.endswith(".onnx"))
    assert "opset" not in onnx.details
    (why,) = [n for n in rec.source_facts["not_downloaded"] if ".onnx" in n]
    assert "size not listed" in why and "over the cap of 100 bytes" in why
    assert any("MLmodel not downloaded" in e and "over the cap of 64 bytes" in e for e in rec.source_facts["errors"])
    assert len(list(p.catalog.iter_records(source="mlflow"))) >= 5  # every version still recorded
    p.close()


def test_an_aborted_download_leaves_nothing(sizeless: Proxy, tmp_path: Path) -> None:
    from mlflow import MlflowClient
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    uri = MlflowClient(tracking_uri=sizeless.uri, registry_uri=sizeless.uri).get_model_version_download_uri(
        "iris-onnx", "1")
    repo = get_artifact_repository(uri, tracking_uri=sizeless.uri, registry_uri=sizeless.uri)
    files = {f["path"]: f["size"] for f in walk(repo) if not f["is_dir"]}
    onnx = next(path for path in files if path.endswith(".onnx"))
    assert files[onnx] is None
    with pytest.raises(OverCap, match="stopped after"):
        download_file(repo, onnx, tmp_path / "one", cap=100)
    assert not any((tmp_path / "one").rglob("*.*"))  # no file, no .part
    with pytest.raises(OverCap):
        download_tree(repo, tmp_path / "all", cap=300)
    assert not (tmp_path / "all").exists()
    whole = download_tree(repo, tmp_path / "ok", cap=10_000_000)
    assert (whole / onnx).stat().st_size > 100 and (whole / "MLmodel").is_file()


def test_verify_streams_unknown_sizes_against_max_download_bytes(harvested: Pipeline) -> None:
    from modelport.verify_job import verify

    p = harvested
    p.settings.max_download_bytes = 300
    report = verify(p, source="mlflow", only={ONNX_ID})
    assert report.results == {} and report.checked == 0  # nothing claimed, nothing counted as checked
    (why,) = report.skipped
    assert why.startswith(ONNX_ID) and "over the cap of" in why and "max_download_bytes" in why
    p.settings.max_download_bytes = 50_000_000
    report = verify(p, source="mlflow", only={ONNX_ID})
    assert report.skipped == [] and report.results[ONNX_ID].status == "verified" and report.checked == 1
