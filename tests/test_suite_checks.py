"""The SHACL check of every stored record runs whatever the selection: a pytest run that leaves
tests/test_shacl.py out (a file, -k) still validates what its tests stored at session finish and
fails on a record that does not conform (tests/conftest.py)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

INNER = textwrap.dedent('''
    from modelport.harvesters.base import new_provenance
    from modelport.index.catalog import Catalog
    from modelport.schema.record import ModelRecord


    class Src:
        kind = "scripted"
        harvester_version = "t"


    def test_stores_a_record(tmp_path):
        cat = Catalog(tmp_path / "catalog.sqlite")
        rec = ModelRecord(id="s:x", source="s", source_kind="scripted", local_id="x", name=NAME,
                          provenance=new_provenance(Src(), None))
        with cat.transaction():
            cat.upsert_many([rec])
        cat.close()
''')


def run_inner(root: Path, name: str) -> subprocess.CompletedProcess[str]:
    d = root / ("named" if name else "unnamed")
    d.mkdir()
    (d / "test_inner.py").write_text(f"NAME = {name!r}\n" + INNER)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
                           "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"),
                           "--basetemp", str(d / "basetemp"), str(d / "test_inner.py")],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_a_selection_without_the_shacl_test_still_fails_on_a_bad_record() -> None:
    # Outside this session's temp root: the outer run's own check must not see the bad record.
    with tempfile.TemporaryDirectory(prefix="modelport-inner-") as tmp:
        bad = run_inner(Path(tmp), "")  # no schema:name: the shapes require one
        assert bad.returncode == 1, bad.stdout + bad.stderr
        assert "1 passed" in bad.stdout and "SHACL check of the records this run stored FAILED" in bad.stdout
        assert "schema1:name" in bad.stdout or "schema.org/name" in bad.stdout
        good = run_inner(Path(tmp), "a model")
        assert good.returncode == 0, good.stdout + good.stderr
        assert "SHACL check of the records this run stored: conforms" in good.stdout
