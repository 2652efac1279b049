"""Kaggle Models source through the real kagglesdk client against a local fake of
`POST /api/v1/models.ModelApiService/ListModels` (paging by nextPageToken, Basic auth)."""

from __future__ import annotations

import base64
import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("kagglesdk", reason="the kaggle extra is required")

from modelport.harvesters.base import Checkpoint, ListingComplete, SourceError, SourceRecord  # noqa: E402
from modelport.harvesters.kaggle import (  # noqa: E402
    KaggleSource,
    format_for_framework,
    framework_slug,
    library_for_framework,
)
from modelport.pipeline import Pipeline  # noqa: E402
from modelport.settings import Settings  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "kaggle" / "models.json"
USER, KEY = "modelport-test", "secret-key"
INSTANCES = 14


@dataclass
class FakeState:
    models: list[dict[str, Any]]
    bodies: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)  # statuses to answer before serving normally
    fail_headers: dict[str, str] = field(default_factory=dict)  # sent with those answers (Retry-After)


class FakeKaggle(http.server.BaseHTTPRequestHandler):
    state: FakeState

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        st = self.state
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        st.paths.append(self.path)
        st.bodies.append(body)
        if self.path != "/api/v1/models.ModelApiService/ListModels":
            return self._json(404, {"code": 404, "message": f"no such method {self.path}"})
        expected = "Basic " + base64.b64encode(f"{USER}:{KEY}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            return self._json(401, {"code": 401, "message": "Unauthenticated"})
        if st.fail_next:
            return self._json(st.fail_next.pop(0), {"code": 503, "message": "try again"}, st.fail_headers)
        models = list(st.models)
        if body.get("owner"):
            models = [m for m in models if m["author"] == body["owner"]]
        if body.get("search"):
            q = body["search"].lower()
            models = [m for m in models if q in (m["title"] + " " + m["ref"]).lower()]
        if body.get("sortBy") in ("LIST_MODELS_ORDER_BY_UPDATE_TIME", "updateTime"):
            models.sort(key=lambda m: m["updateTime"], reverse=True)
        size = int(body.get("pageSize") or 20)
        start = int(body.get("pageToken") or 0)
        page = models[start:start + size]
        nxt = str(start + size) if start + size < len(models) else ""
        return self._json(200, {"models": page, "nextPageToken": nxt, "totalResults": len(models)})


@pytest.fixture
def fake() -> Iterator[tuple[str, FakeState]]:
    state = FakeState(models=json.loads(FIXTURE.read_text())["models"])
    handler = type("Handler", (FakeKaggle,), {"state": state})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_port}/api", state
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture(autouse=True)
def _no_local_kaggle_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The SDK also looks for tokens in the environment and in ~/.kaggle: keep the test hermetic.
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_API_V1_TOKEN", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def _source(endpoint: str, **kw: Any) -> KaggleSource:
    return KaggleSource(endpoint=endpoint, username=USER, key=KEY, page_size=3,
                        backoff_s=0.01, **kw)


def test_framework_mapping_is_kb_data() -> None:
    assert format_for_framework("MODEL_FRAMEWORK_TENSOR_FLOW_2") == "tf-savedmodel"
    assert format_for_framework("tensorFlow1") == "tf1-hub-module"
    assert format_for_framework("TfLite") == "tflite"
    assert format_for_framework("MODEL_FRAMEWORK_TF_JS") == "tfjs"
    assert format_for_framework("PyTorch") == "pytorch-pickle"
    assert format_for_framework("Gguf") == "gguf" and format_for_framework("Onnx") == "onnx"
    assert format_for_framework("Keras") == "keras" and format_for_framework("Coral") == "edgetpu-tflite"
    assert format_for_framework("GemmaCpp") is None
    assert library_for_framework("MODEL_FRAMEWORK_PY_TORCH") == "pytorch"
    assert library_for_framework("TfJs") == "tfjs"
    assert framework_slug("MODEL_FRAMEWORK_TENSOR_FLOW_2") == "tensorFlow2"
    assert framework_slug("MODEL_FRAMEWORK_GEMMA_CPP") == "gemmaCpp"


def test_listing_pages_through_next_page_token(fake: tuple[str, FakeState]) -> None:
    endpoint, state = fake
    events = list(_source(endpoint).events("full", None))
    records = [e for e in events if isinstance(e, SourceRecord)]
    assert len(records) == INSTANCES and len({r.local_id for r in records}) == INSTANCES
    assert len(state.bodies) == 3  # 7 models, 3 per page
    assert [b.get("pageToken") for b in state.bodies] == [None, "3", "6"]
    assert all(b["pageSize"] == 3 and b["sortBy"] == "LIST_MODELS_ORDER_BY_UPDATE_TIME" for b in state.bodies)
    assert set(state.paths) == {"/api/v1/models.ModelApiService/ListModels"}
    # a checkpoint after each page but the last, then the final one, then the complete listing
    cps = [e for e in events if isinstance(e, Checkpoint)]
    assert [c.state["page_token"] for c in cps] == ["3", "6", None]
    assert isinstance(events[-1], ListingComplete) and events[-1].listed == INSTANCES


def test_records_through_the_pipeline(fake: tuple[str, FakeState], tmp_path: Path) -> None:
    endpoint, _ = fake
    pipe = Pipeline(Settings(data_dir=tmp_path / "data", base_iri="http://test"))
    report = pipe.harvest(_source(endpoint), mode="full")
    assert report.counts["inserted"] == INSTANCES, report.errors

    r = pipe.catalog.get("kaggle:google/mobilenet-v2/tensorFlow2/100-224-classification")
    assert r is not None
    assert r.declared_formats == ["tf-savedmodel"] and r.frameworks == ["tensorflow"]
    assert r.license == "Apache-2.0" and r.tasks == ["image-classification"] and r.version == "2"
    assert r.training_datasets == ["imagenet-1k"] and r.popularity.likes == 42
    assert r.size_bytes == 14_000_000 and r.version_group == "kaggle:google/mobilenet-v2"
    assert {link.rel: link.url for link in r.links}["kaggle"] == \
        "https://www.kaggle.com/models/google/mobilenet-v2/tensorFlow2/100-224-classification/2"
    assert r.publisher is not None and r.publisher.name == "google"
    coral = pipe.catalog.get("kaggle:google/mobilenet-v2/coral/default")
    assert coral is not None and coral.formats == ["edgetpu-tflite"]
    assert any(c.format == "edgetpu-tflite" for c in coral.compatibility)

    ft = pipe.catalog.get("kaggle:alice/mobilenet-v2-flowers/tensorFlow2/default")
    assert ft is not None and ft.license == "MIT"
    assert [(b.ref, b.relation) for b in ft.base_models] == [
        ("kaggle:google/mobilenet-v2/tensorFlow2/100-224-classification", "finetune")]
    gguf = pipe.catalog.get("kaggle:bob/tinyllama-gguf/gguf/q4_k_m")
    assert gguf is not None and gguf.formats == ["gguf"] and gguf.tasks == ["text-generation"]
    assert gguf.base_models[0].ref == "https://huggingface.co/TinyLlama/TinyLlama-1.1B-Chat-v1.0"
    gemma_cpp = pipe.catalog.get("kaggle:google/gemma/gemmaCpp/2b-it-sfp")
    assert gemma_cpp is not None and gemma_cpp.declared_formats == [] and gemma_cpp.license == "LicenseRef-Gemma"
    assert pipe.catalog.get("kaggle:onnx/resnet50/onnx/resnet50-v1-12").formats == ["onnx"]  # type: ignore[union-attr]

    # A model disappears upstream: the next complete listing tombstones its instance.
    fake[1].models = [m for m in fake[1].models if m["ref"] != "onnx/resnet50"]
    again = pipe.harvest(_source(endpoint), mode="full")
    assert again.counts["tombstoned"] == 1 and again.counts["unchanged"] == INSTANCES - 1


def test_incremental_stops_at_the_watermark(fake: tuple[str, FakeState]) -> None:
    endpoint, state = fake
    src = _source(endpoint)
    events = list(src.events("full", None))
    final = [e for e in events if isinstance(e, Checkpoint)][-1].state
    assert final["watermark"] == "2024-06-01T00:00:00.000Z"  # newest updateTime seen
    state.bodies.clear()
    # One model updated since: it is listed, then the model at the watermark itself (an update in
    # the same instant may have been missed), and the listing stops at the first older model.
    state.models[3]["updateTime"] = "2024-07-01T00:00:00Z"
    inc = list(src.events("incremental", final))
    recs = [e.local_id for e in inc if isinstance(e, SourceRecord)]
    assert recs[0] == "keras/bert/keras/bert_base_en_uncased"
    assert {r.split("/")[1] for r in recs[1:]} == {"gemma"} and len(recs) == 5
    assert len(state.bodies) == 1
    assert not any(isinstance(e, ListingComplete) for e in inc)


def test_errors(fake: tuple[str, FakeState]) -> None:
    endpoint, state = fake
    state.fail_next = [503, 503]
    assert sum(isinstance(e, SourceRecord) for e in _source(endpoint).events("full", None)) == INSTANCES
    with pytest.raises(SourceError, match="refused the credentials"):
        list(KaggleSource(endpoint=endpoint, username=USER, key="wrong", page_size=3).events("full", None))
    with pytest.raises(SourceError, match="KAGGLE_USERNAME"):
        KaggleSource(endpoint=endpoint)
    with pytest.raises(SourceError, match="cannot reach"):
        list(_source("http://127.0.0.1:9/api", retries=0).events("full", None))


def test_cli_reads_credentials_from_env(fake: tuple[str, FakeState], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from modelport.cli import app

    endpoint, state = fake
    monkeypatch.setenv("MODELPORT_DATA_DIR", str(tmp_path / "cli"))
    monkeypatch.setenv("KAGGLE_USERNAME", USER)
    monkeypatch.setenv("KAGGLE_KEY", KEY)
    runner = CliRunner()
    r = runner.invoke(app, ["harvest", "kaggle", "--endpoint", endpoint, "--owner", "google"])
    assert r.exit_code == 0, r.output
    assert Pipeline(Settings()).catalog.count(source="kaggle") == 10
    assert all(b["owner"] == "google" for b in state.bodies)
    monkeypatch.delenv("KAGGLE_KEY")
    r = runner.invoke(app, ["harvest", "kaggle", "--endpoint", endpoint])
    assert r.exit_code == 1 and "error" in r.output


def test_retry_waits_what_the_server_says(fake: tuple[str, FakeState]) -> None:
    """Kaggle's listing goes through the one retry policy (harvesters/ratelimit.py): a 429 with
    Retry-After is waited for as long as it says, not the configured 10 ms back-off."""
    import time

    url, state = fake
    state.fail_next, state.fail_headers = [429], {"Retry-After": "1"}
    t0 = time.monotonic()
    ids = [e.local_id for e in _source(url, retries=2).events("full", None) if isinstance(e, SourceRecord)]
    assert time.monotonic() - t0 >= 0.95
    assert len(ids) == INSTANCES and state.fail_next == []
