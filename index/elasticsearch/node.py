"""A real single-node Elasticsearch for the test suite and the benchmarks: the launcher under
`tools/es-node` (a pom resolved by Maven from Maven Central into the local repository, one Java class),
run in its own JVM on a free loopback port, security off (the open-source server has none), data in a
given directory, stopped by `stop()` or, whatever happens to this process, when its stdin closes.

Not used by `modelport serve`: a deployment points MODELPORT_ELASTICSEARCH_URL at its own cluster.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from modelport.errors import ServiceUnavailable
from modelport.mlflow_server import free_port

LAUNCHER = Path(__file__).resolve().parents[2] / "tools" / "es-node"
RESOLVE_SCRIPT = LAUNCHER.parent / "es_node_resolve.sh"
MAIN_CLASS = "io.modelport.esnode.ModelNode"
READY = "MODELPORT_ES_READY "
DEFAULT_HEAP = "1g"  # the machine is shared: a node for 360 test records or a 100k benchmark fits in this


class NodeError(ServiceUnavailable):
    """The launcher could not be built or the node did not start; the message says why."""


def _outputs() -> tuple[Path, Path]:
    target = LAUNCHER / "target"
    return target / "classes", target / "classpath.txt"


def _stale() -> bool:
    classes, classpath = _outputs()
    stamp = classpath.with_name(".resolved")  # touched by the resolve script after each good build
    if not stamp.exists() or not classpath.exists() or not (classes / "io/modelport/esnode/ModelNode.class").exists():
        return True
    built = stamp.stat().st_mtime
    sources = [LAUNCHER / "pom.xml", *LAUNCHER.joinpath("src").rglob("*.java")]
    return any(s.stat().st_mtime > built for s in sources)


_BUILD_LOCK = threading.Lock()


def ensure_launcher(timeout_s: float = 900.0) -> list[str]:
    """Resolve and compile the launcher when it is missing or older than its sources (the Makefile's
    test target does this up front; here it covers a bare `pytest`); returns the JVM classpath."""
    with _BUILD_LOCK:
        if _stale():
            if shutil.which("mvn") is None:
                raise NodeError("Maven (mvn) is needed to assemble the Elasticsearch test node from Maven Central; "
                                "install it (apt-get install maven) or run `make test`")
            proc = subprocess.run(["bash", str(RESOLVE_SCRIPT)], capture_output=True, text=True, timeout=timeout_s)
            if proc.returncode != 0 or _stale():
                raise NodeError(f"building {LAUNCHER} failed (exit {proc.returncode}):\n"
                                f"{(proc.stdout + proc.stderr)[-3000:]}")
        classes, classpath = _outputs()
        return [str(classes), *classpath.read_text().strip().split(os.pathsep)]


def java_command() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise NodeError("a Java 17+ runtime is needed for the Elasticsearch test node (apt-get install openjdk-17-jdk)")
    return java


@dataclass
class ElasticsearchNode:
    home: Path
    port: int
    process: subprocess.Popen[str]
    log_path: Path
    _lines: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def heap(self) -> dict[str, int]:
        """The node's JVM heap now (bytes used, committed and max), from its own node stats."""
        stats = httpx.get(f"{self.url}/_nodes/_local/stats/jvm", timeout=10).json()
        mem = next(iter(stats["nodes"].values()))["jvm"]["mem"]
        return {"used": int(mem["heap_used_in_bytes"]), "committed": int(mem["heap_committed_in_bytes"]),
                "max": int(mem["heap_max_in_bytes"])}

    def stop(self, timeout_s: float = 30.0) -> None:
        """Close its stdin (the node shuts down cleanly on EOF); terminate, then kill, if it lingers."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_node(home: Path, *, heap: str = DEFAULT_HEAP, port: int | None = None,
               timeout_s: float = 180.0) -> ElasticsearchNode:
    """Start a node with its data under `home` and wait until its cluster health is at least yellow."""
    classpath = ensure_launcher()
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_path = home / "node.log"
    cmd = [java_command(), f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseSerialGC", "-Djava.awt.headless=true",
           f"-Djava.io.tmpdir={home}", "-Dfile.encoding=UTF-8", "-cp", os.pathsep.join(classpath), MAIN_CLASS,
           str(home), str(port)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    node = ElasticsearchNode(home, port, proc, log_path)
    ready = threading.Event()

    def pump() -> None:  # the node's output to its log file; READY when it answers
        assert proc.stdout is not None
        with log_path.open("a", encoding="utf-8") as log:
            for line in proc.stdout:
                log.write(line)
                log.flush()
                if line.startswith(READY):
                    ready.set()

    threading.Thread(target=pump, name="es-node-log", daemon=True).start()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise NodeError(f"the Elasticsearch node exited with {proc.returncode}:\n{_tail(log_path)}")
        if ready.wait(0.5):
            break
    else:
        node.stop()
        raise NodeError(f"the Elasticsearch node did not start in {timeout_s:.0f} s:\n{_tail(log_path)}")
    with contextlib.suppress(httpx.HTTPError):
        httpx.get(f"{node.url}/_cluster/health", params={"wait_for_status": "yellow", "timeout": "60s"}, timeout=70)
    return node


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-chars:]
    except OSError:
        return "(no log)"
