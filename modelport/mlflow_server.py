"""Start and stop a real local `mlflow server` (SQL backend, proxied artifacts, loopback only):
used by `modelport demo` and by the test suite.

The server runs under a small supervisor (`python -m modelport.mlflow_server supervise …`) that leads
its own process group and dies with its parent: if whoever started it is killed outright (SIGKILL,
so no cleanup of its own runs), the supervisor is told by the kernel (PR_SET_PDEATHSIG) and stops the
whole group — mlflow and the uvicorn workers it spawns — so no MLflow server is left orphaned."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class MlflowServer:
    root: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        # mlflow spawns uvicorn workers (and job consumers): stop the whole process group.
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)


def start_mlflow_server(root: Path, port: int | None = None, timeout_s: float = 120.0) -> MlflowServer:
    root.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    cmd = [str(mlflow_bin) if mlflow_bin.exists() else "mlflow", "server",
           "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
           "--artifacts-destination", str(root / "artifacts"),
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = (root / "server.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "modelport.mlflow_server", "supervise", *cmd], stdout=log,
                            stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = MlflowServer(root, port, proc)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {proc.returncode}; see {root / 'server.log'}")
        try:
            if httpx.get(f"{server.uri}/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.stop()
    raise TimeoutError(f"mlflow server did not become healthy in {timeout_s:.0f} s; see {root / 'server.log'}")


def _supervise(cmd: list[str]) -> int:
    """Run `cmd` in this process's group (this process leads it) until it exits, or until our parent
    dies or we get SIGTERM/SIGINT: then stop the group (SIGTERM, SIGKILL after 5 s)."""
    import ctypes

    parent = os.getppid()

    def stop_group(*_: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the group signal reaches us too
        with contextlib.suppress(ProcessLookupError):
            os.killpg(0, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(0, signal.SIGKILL)
        os._exit(0)

    child = subprocess.Popen(cmd)
    signal.signal(signal.SIGTERM, stop_group)
    signal.signal(signal.SIGINT, stop_group)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    while child.poll() is None:
        if os.getppid() != parent:  # the parent died before PR_SET_PDEATHSIG took effect
            stop_group()
        time.sleep(0.5)
    return child.returncode or 0


if __name__ == "__main__" and len(sys.argv) > 2 and sys.argv[1] == "supervise":
    sys.exit(_supervise(sys.argv[2:]))
