"""No secret is stored, logged or served: a recognisable secret put in every place a user can
configure one is searched for in the catalog, the other files of the data dir, a graph dump, the
job log, the logs and every API response."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from modelport.pipeline import Pipeline
from modelport.schema.redact import redact_text, redact_url
from modelport.settings import Settings, SourceConfig
from modelport.sources import build_source

SECRET = "XyzzySecret4242"


def test_urls_lose_userinfo_and_secret_parameters() -> None:
    assert redact_url(f"http://u:{SECRET}@h:5000/api?x=1&token={SECRET}") == "http://h:5000/api?x=1"
    assert redact_url(f"https://b.s3.amazonaws.com/k?X-Amz-Signature={SECRET}&X-Amz-Credential=a&v=2") == \
        "https://b.s3.amazonaws.com/k?v=2"
    assert redact_url("https://huggingface.co/org/m?revision=main") == "https://huggingface.co/org/m?revision=main"
    assert SECRET not in redact_text(f"GET http://me:{SECRET}@10.0.0.1/x failed; retry https://h/?api_key={SECRET}")


def test_a_planted_secret_appears_nowhere(mlflow_server: object, tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from modelport.api.app import create_app

    monkeypatch.setenv("MODELPORT_ELASTICSEARCH_API_KEY", SECRET + "es")
    host = mlflow_server.uri.split("://", 1)[1]  # type: ignore[attr-defined]
    sources = [
        SourceConfig(name="reg", kind="mlflow", options={"tracking_uri": f"http://mp:{SECRET}@{host}"}),
        # a source whose server is down: its error message quotes the URL
        SourceConfig(name="dead", kind="mlflow", options={"tracking_uri": f"http://mp:{SECRET}@127.0.0.1:9",
                                                           "request_retries": 0}),
        SourceConfig(name="kag", kind="kaggle", options={"api_token": SECRET + "kg", "endpoint": "http://127.0.0.1:9"}),
        SourceConfig(name="hub", kind="huggingface", options={"token": SECRET + "hf",
                                                              "endpoint": "http://127.0.0.1:9"}),
    ]
    settings = Settings(data_dir=tmp_path / "data", base_iri="http://modelport.test", sources=sources,
                        embeddings=False, admin_token="admin-token-for-this-test")
    for shown in (repr(settings), str(settings), settings.model_dump_json(), repr(sources)):
        assert SECRET not in shown
    assert build_source(sources[2], settings).api_token.get_secret_value() == SECRET + "kg"  # still usable
    caplog.set_level(logging.INFO)
    p = Pipeline(settings)
    report = p.harvest(build_source(sources[0], settings), mode="full")
    assert report.counts["inserted"] > 3
    with pytest.raises(Exception, match="unreachable"):
        p.harvest(build_source(sources[1], settings), mode="full")
    dump = p.graph.query("CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p ?o }")  # records, shared nodes and KB
    graph_text = dump.result.graph.serialize(format="nt")
    jobs = [j.__dict__ for j in p.catalog.jobs()]
    p.close()
    assert "mp@" not in graph_text and SECRET not in graph_text
    assert SECRET not in repr(jobs) and any("unreachable" in e["reason"] for j in jobs for e in j["errors"])

    responses: list[str] = []
    with TestClient(create_app(settings)) as client:
        assert client.post("/harvests", json={"source": "dead"},
                           headers={"Authorization": "Bearer admin-token-for-this-test"}).status_code == 202
        for _ in range(100):  # the scheduler runs it in the background
            last = {s["source"]: s for s in client.get("/harvests/sources").json()}["dead"]["last"]
            if last and last.get("status") == "failed":
                break
            import time
            time.sleep(0.1)
        ids = [h["id"] for h in client.get("/search", params={"limit": 50}).json()["hits"]]
        paths = ["/", "/health", "/harvests", "/harvests/sources", "/search?q=model&limit=50",
                 "/sparql?query=CONSTRUCT%20%7B%3Fs%20%3Fp%20%3Fo%7D%20WHERE%20%7B%3Fs%20%3Fp%20%3Fo%7D"]
        for rid in ids:
            paths += [f"/models/{rid}", f"/models/{rid}/compatibility"]
        for path in paths:
            for accept in ("application/json", "text/turtle", "application/ld+json", "text/html"):
                r = client.get(path, headers={"Accept": accept})
                assert r.status_code < 500, (path, r.text[:200])
                responses.append(r.text)
    assert len(ids) > 3 and "unreachable" in " ".join(responses)
    for text in responses:
        assert SECRET not in text and "mp@" not in text

    logs = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert SECRET not in logs
    for f in (tmp_path / "data").rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f
