"""Issue 11's probes, each against a real `modelport serve` subprocess on loopback holding the TF Hub
fixture records: heavy SPARQL of every form stops at its time limit or memory budget (statuses,
times, the worker's peak RSS, the server's own RSS), the server keeps answering meanwhile, request
size caps, SERVICE refused without an outbound connection, the admin token, number bounds, forged
cursors, content negotiation, and SIGTERM stopping `serve` (and the demo's MLflow server) in time."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serve_helpers import HEAVY, Served, concat_doubling, pids_mentioning, proc_kb

TIMEOUT_S = 2.0
BUDGET_MB = 256
TOKEN = "test-admin-token-0123456789"
ENV = {"MODELPORT_QUERY_TIMEOUT_S": str(TIMEOUT_S), "MODELPORT_QUERY_MEMORY_MB": str(BUDGET_MB),
       "MODELPORT_SPARQL_SNAPSHOT_INTERVAL_S": "0", "MODELPORT_ADMIN_TOKEN": TOKEN}


@pytest.fixture(scope="module")
def data_dir(tfhub_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("hostile")
    shutil.copytree(tfhub_data, d, dirs_exist_ok=True)
    return d


@pytest.fixture(scope="module")
def served(data_dir: Path) -> Iterator[Served]:
    with Served(data_dir, ENV) as s:
        yield s


def sparql(s: Served, query: str, **kw: object) -> tuple[httpx.Response, float]:
    t0 = time.monotonic()
    r = httpx.get(f"{s.url}/sparql", params={"query": query}, timeout=60, **kw)  # type: ignore[arg-type]
    return r, time.monotonic() - t0


def test_a_normal_query_answers(served: Served) -> None:
    r, took = sparql(served, "SELECT (COUNT(*) AS ?n) WHERE { ?m a fair4ml:MLModel }")
    assert r.status_code == 200
    assert int(r.json()["results"]["bindings"][0]["n"]["value"]) > 30
    assert took < 2


@pytest.mark.parametrize("name", sorted(HEAVY))
def test_every_heavy_query_form_stops_at_its_time_limit(served: Served, name: str) -> None:
    served.wait_ready()
    rss_before = served.rss_kb()
    r, took = sparql(served, HEAVY[name])
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["limit"] in ("query_timeout_s", "query_memory_mb")
    if body["limit"] == "query_timeout_s":
        assert f"{TIMEOUT_S:g} s limit" in body["detail"] and "MODELPORT_QUERY_TIMEOUT_S" in body["detail"]
    assert body["elapsed_s"] < TIMEOUT_S + 1 and took < TIMEOUT_S + 2  # was: 144 s for the COUNT, 10 s limit
    # The server itself did not do the work (was: +450 MB kept after the ORDER BY).
    assert served.rss_kb() - rss_before < 64 * 1024
    served.wait_ready()  # the stopped worker is replaced
    assert sparql(served, "ASK { ?s ?p ?o }")[0].status_code == 200


def test_string_doubling_stops_at_the_memory_budget(served: Served) -> None:
    query = concat_doubling()
    assert len(query) < 1000
    served.wait_ready()
    rss_before = served.rss_kb()
    r, took = sparql(served, query)
    assert r.status_code == 503, r.text
    assert r.json()["limit"] == "query_memory_mb" and f"{BUDGET_MB} MB" in r.json()["detail"]
    assert took < TIMEOUT_S + 1
    pool = served.health()["sparql"]
    # The worker's peak resident memory: its idle size plus at most the budget (was: the server grew 2 GB).
    assert 0 < r.json()["worker_peak_rss_mb"] <= pool["idle_rss_mb"] + BUDGET_MB, (r.json(), pool)
    assert served.rss_kb() - rss_before < 64 * 1024


def test_health_and_search_answer_while_four_heavy_queries_run(served: Served) -> None:
    served.wait_ready()
    results: list[tuple[int, float, float]] = []

    def heavy() -> None:
        r, took = sparql(served, HEAVY["count-product"])
        results.append((r.status_code, took, r.json()["elapsed_s"]))

    threads = [threading.Thread(target=heavy) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    latencies = []
    with httpx.Client(base_url=served.url, timeout=10) as http:
        while any(t.is_alive() for t in threads):
            for path in ("/health", "/search?q=mobilenet&facets=none"):
                t0 = time.monotonic()
                assert http.get(path).status_code == 200
                latencies.append(time.monotonic() - t0)
    for t in threads:
        t.join()
    assert [code for code, _, _ in results] == [503] * 4
    # Those waiting for a worker wait within their own limit. Generous bounds: the test itself keeps the
    # server busy and this machine is shared (load ~20 on 2 cores seen); the single-query tests above
    # hold the server's clock to the limit + 1 s, and bench/hostile_load.py measures it.
    assert max(server for _, _, server in results) < TIMEOUT_S + 2, results
    assert max(took for _, took, _ in results) < TIMEOUT_S + 3, results
    latencies.sort()
    # Generous on a shared machine; bench/hostile_load.py measures the percentiles.
    assert latencies[len(latencies) // 2] < 0.5 and latencies[-1] < 2, latencies


def test_spaces_before_a_query_are_read_in_linear_time(served: Served) -> None:
    served.wait_ready()
    body = " " * 50_000 + "SELECT ?m WHERE { ?m a fair4ml:MLModel } LIMIT 1"
    t0 = time.monotonic()
    r = httpx.post(f"{served.url}/sparql", content=body, headers={"Content-Type": "application/sparql-query"},
                   timeout=30)
    assert r.status_code == 200 and time.monotonic() - t0 < 1  # was: every endpoint frozen for 16.7 s
    # A prologue-heavy text near the cap: still fast.
    body = "PREFIX p: <urn:x> # c\n" * 2500 + "ASK {}"
    t0 = time.monotonic()
    assert httpx.post(f"{served.url}/sparql", content=body, headers={"Content-Type": "application/sparql-query"},
                      timeout=30).status_code == 200
    assert time.monotonic() - t0 < 1


def test_request_bodies_and_query_strings_are_capped(served: Served) -> None:
    big = " " * 70_000 + "ASK {}"
    r = httpx.post(f"{served.url}/sparql", content=big, headers={"Content-Type": "application/sparql-query"})
    assert r.status_code == 413 and "65536 bytes" in r.json()["detail"]
    r = httpx.post(f"{served.url}/sparql", data={"query": big})
    assert r.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(20):
            yield b" " * 8192

    r = httpx.post(f"{served.url}/sparql", content=chunks(), headers={"Content-Type": "application/sparql-query"})
    assert r.status_code == 413
    # httpx refuses to send a URL this long itself: write the request line by hand.
    with socket.create_connection(("127.0.0.1", served.port)) as conn:
        conn.sendall(f"GET /sparql?query={'%20' * 25_000}ASK%20%7B%7D HTTP/1.1\r\nHost: x\r\n"
                     "Connection: close\r\n\r\n".encode())
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413") and b"MODELPORT_MAX_REQUEST_BYTES" in answer
    assert httpx.get(f"{served.url}/health").status_code == 200


def test_service_is_refused_without_any_outbound_request(served: Served) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        for target in (f"http://127.0.0.1:{port}/sparql", "file:///etc/passwd"):
            for query in (f"SELECT * WHERE {{ SERVICE <{target}> {{ ?s ?p ?o }} }}",
                          f"select * {{ service silent <{target}> {{ ?s ?p ?o }} }}"):
                r, _ = sparql(served, query)
                assert r.status_code == 400 and "federation is off" in r.json()["detail"], r.text
        time.sleep(0.3)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
    finally:
        listener.close()
    # The word inside a string or as a prefixed name is no SERVICE.
    r, _ = sparql(served, 'PREFIX ex: <urn:x:> SELECT * WHERE { ?s ex:service "SERVICE <http://x/>" }')
    assert r.status_code == 200


def test_admin_routes_need_the_token(served: Served) -> None:
    url = f"{served.url}/harvests"
    r = httpx.post(url, json={"source": "x"})
    assert r.status_code == 401 and "MODELPORT_ADMIN_TOKEN" in r.json()["detail"]
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = httpx.post(url, json={"source": "x"}, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 403 and "wrong" in r.json()["detail"] and TOKEN not in r.text
    r = httpx.post(url, json={"source": "x"}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 404  # authorized; no such source
    assert TOKEN not in served.log.read_text()


def test_admin_routes_are_off_without_a_configured_token(data_dir: Path) -> None:
    from fastapi.testclient import TestClient

    from modelport.api.app import create_app
    from modelport.settings import Settings

    settings = Settings(data_dir=data_dir / "no-token", embeddings=False, sparql_workers=1)
    with TestClient(create_app(settings)) as http:
        r = http.post("/harvests", json={"source": "x"}, headers={"Authorization": "Bearer anything"})
        assert r.status_code == 403 and "MODELPORT_ADMIN_TOKEN" in r.json()["detail"]
        assert "access-control-allow-origin" not in http.get("/health", headers={"Origin": "http://a.test"}).headers


def test_cors_is_configurable(data_dir: Path) -> None:
    from fastapi.testclient import TestClient

    from modelport.api.app import create_app
    from modelport.settings import Settings

    settings = Settings(data_dir=data_dir / "cors", embeddings=False, sparql_workers=1,
                        cors_origins=["http://a.test"])
    with TestClient(create_app(settings)) as http:
        assert http.get("/health", headers={"Origin": "http://a.test"}).headers["access-control-allow-origin"] \
            == "http://a.test"
        assert "access-control-allow-origin" not in http.get("/health", headers={"Origin": "http://b.test"}).headers


def test_numbers_out_of_range_are_a_400_naming_the_token(served: Served) -> None:
    for q in ("params<1e999", "mobilenet params<1e300", "top1>1e999", "latency@t4<1e999ms"):
        r = httpx.get(f"{served.url}/search", params={"q": q})
        assert r.status_code == 400, (q, r.text)
        detail = r.json()["detail"]
        assert detail["error"] == "query_syntax" and detail["token"] in q and "out of range" in detail["message"]


def test_forged_cursors_are_a_400(served: Served) -> None:
    params = {"q": "", "sort": "downloads", "limit": 2, "facets": "none"}
    page = httpx.get(f"{served.url}/search", params=params).json()
    cursor = page["next_cursor"]
    assert cursor and httpx.get(f"{served.url}/search", params={**params, "cursor": cursor}).status_code == 200
    payload, _, mac = cursor.partition(".")
    state = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    for change in ({"n": "x"}, {"a": "x"}, {"a": [{"k": 1}]}, {"n": -5}, {"n": 10**30}):
        forged = base64.urlsafe_b64encode(json.dumps({**state, **change}).encode()).decode().rstrip("=")
        for c in (f"{forged}.{mac}", forged, f"{forged}.AAAA"):
            r = httpx.get(f"{served.url}/search", params={**params, "cursor": c})
            assert r.status_code == 400 and r.json()["detail"]["error"] == "cursor", (change, r.text)


@pytest.mark.parametrize(("accept", "expected"), [
    ("application/json;q=0.1, text/turtle;q=0.9", "text/turtle"),
    ("TEXT/TURTLE", "text/turtle"),
    ("text/turtle;q=0.000, application/ld+json", "application/ld+json"),
    ("text/turtle;Q=0, application/json;q=0.5", "application/json"),
    ("text/*;q=0.2, application/ld+json;q=0.3", "application/ld+json"),
    ("*/*", "application/json"),
])
def test_content_negotiation_follows_rfc_9110(served: Served, accept: str, expected: str) -> None:
    rid = httpx.get(f"{served.url}/search", params={"q": "mobilenet", "limit": 1}).json()["hits"][0]["id"]
    r = httpx.get(f"{served.url}/models/{rid}", headers={"Accept": accept})
    assert r.status_code == 200 and r.headers["content-type"].startswith(expected)


def test_nothing_acceptable_is_a_406(served: Served) -> None:
    rid = httpx.get(f"{served.url}/search", params={"q": "mobilenet", "limit": 1}).json()["hits"][0]["id"]
    for accept in ("text/turtle;q=0, application/json;q=0, application/ld+json;q=0, */*;q=0", "image/png"):
        assert httpx.get(f"{served.url}/models/{rid}", headers={"Accept": accept}).status_code == 406
    r, _ = sparql(served, "SELECT * WHERE { ?s ?p ?o } LIMIT 1",
                  headers={"Accept": "application/json;q=0.1, text/csv;q=0.9"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")


def test_sigterm_stops_serve_within_5_s_while_heavy_queries_run(tfhub_data: Path, tmp_path: Path) -> None:
    shutil.copytree(tfhub_data, tmp_path / "data")  # its own: the module's server holds the other one
    with Served(tmp_path / "data", ENV | {"MODELPORT_QUERY_TIMEOUT_S": "30"}) as s:
        workers = s.health()["sparql"]["worker_pids"]
        threads = [threading.Thread(target=lambda: sparql(s, HEAVY["count-product"])) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        s.proc.wait(10)  # type: ignore[union-attr]
        took = time.monotonic() - t0
        assert took < 5, took
        time.sleep(0.5)
        assert not [p for p in workers if proc_kb(p)], "SPARQL workers outlived the server"
        for t in threads:
            t.join(10)


def test_demo_killed_leaves_no_mlflow_server(tmp_path: Path) -> None:
    """SIGTERM, then SIGKILL 2 s later (what a supervisor does), while the demo runs: its MLflow server
    and that server's workers go too (was: left running, orphaned)."""
    pytest.importorskip("mlflow.server")
    from modelport.mlflow_server import free_port

    data = tmp_path / "demo-data"
    port, mlflow_port = free_port(), free_port()
    env = {**os.environ, "MODELPORT_DATA_DIR": str(data), "MODELPORT_EMBEDDINGS": "false"}
    demo = subprocess.Popen([sys.executable, "-m", "modelport.cli", "demo", "--port", str(port),
                             "--mlflow-port", str(mlflow_port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{mlflow_port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail("the demo's MLflow server did not start")
        assert pids_mentioning(str(data / "mlflow"))
        demo.send_signal(signal.SIGTERM)
        time.sleep(2)
        if demo.poll() is None:
            demo.kill()
        demo.wait(10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and pids_mentioning(str(data / "mlflow")):
            time.sleep(0.2)
        assert not pids_mentioning(str(data / "mlflow")), "the MLflow server outlived the demo"
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{mlflow_port}/health", timeout=2)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
