"""The command line: clear errors with non-zero exits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run(*args: str, env_dir: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "modelport.cli", *args], capture_output=True, text=True,
                          env={"MODELPORT_DATA_DIR": env_dir, "PATH": "/usr/bin:/bin"}, timeout=120)


def test_unreachable_mlflow_is_a_clear_error(tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = run("harvest", "mlflow", "--tracking-uri", "http://127.0.0.1:9", env_dir=str(tmp_path))
    assert r.returncode == 1
    assert "unreachable" in r.stderr and "Traceback" not in r.stderr


def test_bad_uri_is_a_clear_error(tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = run("harvest", "mlflow", "--tracking-uri", "not a uri", env_dir=str(tmp_path))
    assert r.returncode == 1 and "not a tracking URI" in r.stderr


def test_search_and_sparql_on_an_empty_catalog(tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = run("search", "anything", "--json", env_dir=str(tmp_path))
    assert r.returncode == 0 and '"total": 0' in r.stdout.replace('"total":0', '"total": 0')
    r = run("sparql", "SELECT ?x WHERE {", env_dir=str(tmp_path))
    assert r.returncode == 1 and "SPARQL" in r.stderr
    r = run("sparql", "SELECT (COUNT(*) AS ?n) WHERE { ?s a mp:Runtime }", env_dir=str(tmp_path))
    assert r.returncode == 0 and int(r.stdout.splitlines()[1]) > 10


def test_search_syntax_errors_point_at_the_token(tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = run("search", "task:image-classification runtime:warpdrive@9", env_dir=str(tmp_path))
    assert r.returncode == 2 and "warpdrive" in r.stderr and "position" in r.stderr
