"""The benchmark scripts in bench/ are not run by the suite (a benchmark is not a timed test), so a
refactor that moves a name breaks them silently — bench/search.py imported a function from
modelport.pipeline inside its build step for weeks after the function moved. This check resolves
every `from modelport… import …` in them, at any depth, without running them."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
SCRIPTS = sorted(BENCH.glob("*.py"))


def _imports(path: Path) -> list[tuple[int, str, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [(node.lineno, node.module, alias.name) for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("modelport")
            for alias in node.names]


def test_there_are_benchmarks_to_check() -> None:
    assert len(SCRIPTS) >= 10 and any(_imports(p) for p in SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_modelport_import_of_a_benchmark_resolves(script: Path) -> None:
    missing = []
    for line, module, name in _imports(script):
        mod = importlib.import_module(module)
        if name != "*" and not hasattr(mod, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ImportError:
                missing.append(f"{script.name}:{line}: from {module} import {name}")
    assert not missing, missing
