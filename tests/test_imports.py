"""Import rules that keep data flowing one way (docs/ARCHITECTURE.md): harvesters import neither the
CLI nor the settings (not even through another module); generic code (pipeline, services, api) names
no particular search backend; schema modules do not import each other in circles.

The graph is read from the source with `ast` (every import, including those inside functions and
under TYPE_CHECKING), module names from pyproject's package-dir mapping: the repository's top-level
folders are sub-packages of `modelport`, which import-graph tools that walk one folder do not see.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterable
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@cache
def modules() -> dict[str, Path]:
    """Every module of the `modelport` package → its file."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    found: dict[str, Path] = {}
    for package, folder in sorted(config.items()):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([package, *parts])
            found.setdefault(name, path)
    return found


@cache
def imports_of(module: str) -> frozenset[str]:
    """The `modelport` modules `module` imports anywhere in its file (a `from pkg import name` of a
    sub-module counts as that sub-module)."""
    mods = modules()
    path = mods[module]
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                pkg = module.split(".") if is_pkg else module.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join([*pkg, *([base] if base else [])])
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return frozenset(m for m in out if m in mods and m != module)


def reachable(start: str) -> dict[str, str]:
    """Every module `start` imports, directly or not → the module that imports it (to show a chain)."""
    seen: dict[str, str] = {}
    todo = [start]
    while todo:
        m = todo.pop()
        for n in imports_of(m):
            if n not in seen and n != start:
                seen[n] = m
                todo.append(n)
    return seen


def chain(start: str, end: str, via: dict[str, str]) -> str:
    path = [end]
    while path[-1] != start and path[-1] in via:
        path.append(via[path[-1]])
    return " -> ".join(reversed(path))


def under(prefix: str) -> list[str]:
    return [m for m in modules() if m == prefix or m.startswith(prefix + ".")]


def test_the_graph_sees_every_package() -> None:
    names = set(modules())
    assert {"modelport.cli", "modelport.settings", "modelport.harvesters.registry", "modelport.schema.compat",
            "modelport.index.embedded.backend", "modelport.api.app", "modelport.pipeline"} <= names
    assert "modelport.harvesters.base" in imports_of("modelport.harvesters.registry")


def test_harvesters_import_neither_the_cli_nor_the_settings() -> None:
    bad = []
    for m in under("modelport.harvesters"):
        via = reachable(m)
        bad += [chain(m, f, via) for f in ("modelport.cli", "modelport.settings") if f in via]
    assert not bad, "harvesters must get what they need from SourceContext/Options:\n" + "\n".join(bad)


# Each backend package (a name covers its sub-modules) and the shims at their former import paths.
BACKENDS = ("modelport.index.embedded", "modelport.index.elasticsearch",
            "modelport.index.tantivy_backend", "modelport.index.elasticsearch_backend")
GENERIC = ("modelport.pipeline", "modelport.job_report", "modelport.projections", "modelport.graph_feeder",
           "modelport.services", "modelport.api")
# Generic code reaches a backend only through index/backends.py (which opens the configured one and
# its hybrid searcher) and the `SearchBackend` Protocol (index/search.py).


def _is_backend(module: str) -> bool:
    return any(module == b or module.startswith(b + ".") for b in BACKENDS)


def _generic_backend_imports() -> set[tuple[str, str]]:
    generic = [m for g in GENERIC for m in under(g)]
    return {(m, n) for m in generic for n in imports_of(m) if _is_backend(n)}


def test_generic_code_names_no_particular_search_backend() -> None:
    found = _generic_backend_imports()
    assert not found, f"generic code imports a particular search backend (use index/backends.py): {sorted(found)}"


def test_the_backend_rule_can_fail() -> None:
    """The rule above names modules that exist (a backend moved to a new package must be listed
    here, or the rule would pass by naming nothing), and it sees the imports of the one module that
    does open each backend (index/backends.py)."""
    assert set(BACKENDS) <= set(modules()), f"BACKENDS names a module that does not exist: {BACKENDS}"
    opened = {b for n in imports_of("modelport.index.backends") for b in BACKENDS if n == b or n.startswith(b + ".")}
    assert {"modelport.index.embedded", "modelport.index.elasticsearch"} <= opened
    # Every module of a backend package counts, not only the package.
    assert all(_is_backend(m) for m in under("modelport.index.embedded") + under("modelport.index.elasticsearch"))


def _cycles(nodes: Iterable[str]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), restricted to `nodes`."""
    nodes = set(nodes)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in imports_of(v) & nodes:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


# compat and hardware_fit share their working cells through schema/cells.py, below both.
KNOWN_SCHEMA_CYCLES: list[list[str]] = []


def test_schema_modules_do_not_import_each_other_in_circles() -> None:
    new = [c for c in _cycles(under("modelport.schema")) if c not in KNOWN_SCHEMA_CYCLES]
    assert not new, f"schema modules importing each other in a circle: {new}"
