"""One writer per data dir: a CLI harvest or reindex beside a running `modelport serve` is refused at
once, and `serve` brings the outboxes up to date by itself."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from modelport.datadir_lock import writer_lock
from modelport.mlflow_server import free_port
from modelport.pipeline import Pipeline
from modelport.settings import Settings
from tests.test_pipeline import ScriptedSource, items


def test_serve_drains_the_outboxes_and_refuses_a_second_writer(tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    p = Pipeline(Settings(data_dir=data, base_iri="http://t"))
    p.harvest(ScriptedSource(items(5)), mode="full", project_graph=False)  # the graph is behind
    assert p.catalog.dirty_count("graph") == 5
    p.close()
    env = {"MODELPORT_DATA_DIR": str(data), "PATH": "/usr/bin:/bin", "MODELPORT_EMBEDDINGS": "false",
           "MODELPORT_OUTBOX_DRAIN_INTERVAL_S": "1"}
    port = free_port()
    serve = subprocess.Popen([sys.executable, "-m", "modelport.cli", "serve", "--port", str(port)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline, health = time.monotonic() + 90, {}
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
                if health.get("pending_graph") == 0:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert health.get("pending_graph") == 0, health
        q = httpx.get(f"http://127.0.0.1:{port}/sparql", params={
            "query": "SELECT (COUNT(?m) AS ?n) WHERE { ?m a fair4ml:MLModel }"},
            headers={"Accept": "application/sparql-results+json"}, timeout=30).json()
        assert q["results"]["bindings"][0]["n"]["value"] == "5"
        for args in (["harvest", "mlflow", "--tracking-uri", "http://127.0.0.1:9"], ["reindex"]):
            started = time.monotonic()
            r = subprocess.run([sys.executable, "-m", "modelport.cli", *args], env=env, capture_output=True,
                               text=True, timeout=120)
            assert r.returncode == 3, r.stderr
            err = " ".join(r.stderr.split())
            assert "modelport serve" in err and "POST /harvests" in err and "schedule" in err
            assert "Traceback" not in r.stderr and time.monotonic() - started < 60
    finally:
        serve.terminate()
        serve.wait(timeout=30)
    # the lock went with the process: a writer may start now
    with writer_lock(data, "harvest"):
        pass


def test_a_writer_in_the_same_process_may_nest_but_another_process_may_not(tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with writer_lock(tmp_path, "demo"), writer_lock(tmp_path, "harvest"):
        r = subprocess.run([sys.executable, "-c", (
            "import sys; from pathlib import Path; from modelport.datadir_lock import writer_lock, DataDirBusy\n"
            "try:\n  with writer_lock(Path(sys.argv[1]), 'verify'): print('got it')\n"
            "except DataDirBusy as e: print(e)"), str(tmp_path)], capture_output=True, text=True, timeout=60)
        assert "being written by `modelport demo`" in r.stdout and "POST /harvests" in r.stdout
