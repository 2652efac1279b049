"""Loading a pickled model runs whatever code its author put in it. `modelport verify` does that
only for sources the configuration marks `trusted`, and then here: in a child process with CPU,
memory and time limits and no network (a new Linux network namespace: only a loopback that is
down). Where no namespace can be made, pickled models are refused with a message, never loaded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

from modelport.errors import ServiceUnavailable
from modelport.schema.record import CompatibilityEntry, ModelRecord

CPU_SECONDS = 300
MEMORY_BYTES = 8 * 1024**3  # address space: torch alone maps ~2 GB at import
WALL_SECONDS = 600


class SandboxUnavailable(ServiceUnavailable):
    """No isolated process can be made here: untrusted code must not be run."""


@cache
def network_isolation() -> list[str]:
    """The command prefix that runs a program without network, or raises SandboxUnavailable saying
    why. `unshare --net` as root; `unshare --map-root-user --net` (an unprivileged user namespace)
    otherwise. Checked once by running `true` that way."""
    unshare = shutil.which("unshare")
    if unshare is None:
        raise SandboxUnavailable("`unshare` (util-linux) is not installed: no network namespace can be made")
    tried = []
    for prefix in ([unshare, "--net"], [unshare, "--map-root-user", "--net"]):
        r = subprocess.run([*prefix, "true"], capture_output=True, text=True, timeout=30, check=False)
        if r.returncode == 0:
            return prefix
        tried.append(f"{' '.join(prefix[1:])}: {r.stderr.strip() or r.returncode}")
    raise SandboxUnavailable("cannot make a network namespace here (" + "; ".join(tried) + ")")


def _limits(cpu_s: int, mem_bytes: int) -> None:  # runs in the child before exec
    import resource

    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))
    resource.setrlimit(resource.RLIMIT_AS, (mem_bytes, mem_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.setsid()


def verify_in_sandbox(record: ModelRecord, artifact_dir: str | Path, *, cpu_s: int = CPU_SECONDS,
                      mem_bytes: int = MEMORY_BYTES, wall_s: float = WALL_SECONDS) -> CompatibilityEntry:
    """`schema.verify.verify_record(..., allow_pickle=True)` in an isolated child process; the entry
    it returns, or a `failed-verification` entry saying what stopped it (limit, crash)."""
    from modelport.schema.verify import failed_entry

    prefix = network_isolation()
    with tempfile.TemporaryDirectory(prefix="modelport-verify-") as tmp:
        rec_path, out_path = Path(tmp, "record.json"), Path(tmp, "entry.json")
        rec_path.write_text(record.model_dump_json())
        cmd = [*prefix, sys.executable, "-m", "modelport.verify_sandbox", str(rec_path), str(artifact_dir),
               str(out_path)]
        env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "PYTHONNOUSERSITE": "1", "OMP_NUM_THREADS": "1",
               "MLFLOW_TRACKING_URI": "file://" + tmp + "/mlruns"}
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=wall_s, cwd=tmp, env=env,
                                  preexec_fn=lambda: _limits(cpu_s, mem_bytes), check=False)  # noqa: PLW1509
        except subprocess.TimeoutExpired:
            return failed_entry(record, artifact_dir, f"sandbox: ran past the time limit of {wall_s:g} s")
        if proc.returncode != 0 or not out_path.is_file():
            tail = (proc.stderr or "").strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
            return failed_entry(record, artifact_dir, f"sandbox: the loader process failed ({tail[0][:300]})")
        return CompatibilityEntry.model_validate_json(out_path.read_text())


def main(argv: list[str]) -> int:
    from modelport.schema.verify import verify_record

    rec_path, artifact_dir, out_path = argv
    record = ModelRecord.model_validate_json(Path(rec_path).read_text())
    entry = verify_record(record, artifact_dir, allow_pickle=True)
    Path(out_path).write_text(json.dumps(entry.model_dump(mode="json")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
