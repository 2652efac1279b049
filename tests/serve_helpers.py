"""A real `modelport serve` in a subprocess on a loopback port, for the hostile-client tests and the
hostile-load bench: start, wait until its SPARQL workers are up, read its memory, stop it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from modelport.mlflow_server import free_port

REPO = Path(__file__).resolve().parent.parent
TFHUB_DOCS = REPO / "tests" / "fixtures" / "tfhub" / "docs"


def harvest_tfhub_fixture(data_dir: Path) -> None:
    """The TF Hub documentation sample, crawled into `data_dir` by the real CLI (Scrapy, file://)."""
    env = {**os.environ, "MODELPORT_DATA_DIR": str(data_dir), "MODELPORT_EMBEDDINGS": "false"}
    r = subprocess.run([sys.executable, "-m", "modelport.cli", "harvest", "tfhub", "--root", TFHUB_DOCS.as_uri()],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]


def proc_kb(pid: int, field: str = "VmRSS") -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def pids_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains `text` (a unique data-directory path)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state = next((ln for ln in (entry / "status").read_text().splitlines() if ln.startswith("State:")), "")
            except OSError:
                continue
            if text in cmd and "Z (zombie)" not in state:
                out.append(int(entry.name))
    return out


class Served:
    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.env = {**os.environ, "MODELPORT_DATA_DIR": str(data_dir), "MODELPORT_EMBEDDINGS": "false",
                    **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir / f"serve-{self.port}.log"

    def start(self, timeout_s: float = 120.0) -> Served:
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "modelport.cli", "serve", "--port", str(self.port)],
                                         env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.wait_ready(timeout_s)
        return self

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until every SPARQL worker is up (after start, or after workers were killed and replaced)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"serve exited: {self.log.read_text()[-2000:]}"
            try:
                health = httpx.get(f"{self.url}/health", timeout=2).json()
                if health["sparql"]["ready"] == health["sparql"]["workers"]:
                    return
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"serve did not become ready: {self.log.read_text()[-2000:]}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss_kb(self) -> int:
        return proc_kb(self.pid)

    def health(self) -> dict:
        return httpx.get(f"{self.url}/health", timeout=10).json()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Served:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


HEAVY = {
    "count-product": "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i }",
    "order-by-product": "SELECT ?a ?d WHERE { ?a ?b ?c . ?d ?e ?f } ORDER BY ?c ?f",
    "ask-product": "ASK { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i FILTER(STR(?c) = CONCAT(STR(?f), STR(?i), 'x')) }",
    "construct-ordered": "CONSTRUCT { ?a ?b ?f } WHERE { ?a ?b ?c . ?d ?e ?f } ORDER BY DESC(?c) LIMIT 1",
    "describe-grouped": "DESCRIBE ?a WHERE { { SELECT ?a (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i } "
                        "GROUP BY ?a } }",
    "property-path": "SELECT (COUNT(*) AS ?n) WHERE { ?a (<urn:x:p>|!<urn:x:q>)* ?b . ?c ?d ?e }",
    "string-functions": "SELECT (MAX(STRLEN(CONCAT(STR(?c), STR(?f), STR(?i)))) AS ?n) "
                        "WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i }",
}


def concat_doubling(times: int = 26) -> str:
    """The 868-character probe: a string doubled `times` times with CONCAT (2^26 × 32 bytes = 2 GiB)."""
    binds = ['BIND("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" AS ?s0)']
    binds += [f"BIND(CONCAT(?s{i}, ?s{i}) AS ?s{i + 1})" for i in range(times)]
    return f"SELECT (STRLEN(?s{times}) AS ?n) WHERE {{ {' '.join(binds)} }}"
