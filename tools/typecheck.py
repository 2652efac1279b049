"""Type-check the `modelport` package with mypy (`make test` runs this; config in pyproject's [tool.mypy]).

Why not plain `mypy index modelport`: the repository's top-level folders are sub-packages of one import
package (`index/` is `modelport.index`, see pyproject's package-dir), which mypy cannot derive from the
folder layout, and the editable install maps them with an import hook mypy does not run. Given the
folders, mypy names the modules `index.search` and cannot resolve `modelport.index.search`, so every
cross-module type would silently be `Any`. This script hands mypy each file with its real module name
(the same package-dir mapping tests/test_imports.py reads) so imports between the folders resolve.

Usage: `python tools/typecheck.py` (exit 0 when clean, 1 with the errors printed).
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

from mypy import build
from mypy.errors import CompileError
from mypy.main import process_options
from mypy.modulefinder import BuildSource

ROOT = Path(__file__).resolve().parents[1]


def sources() -> list[BuildSource]:
    """Every module of the package with its file, from pyproject's package-dir mapping."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    out: dict[str, BuildSource] = {}
    for package, folder in sorted(config.items()):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([package, *parts])
            out.setdefault(name, BuildSource(str(path.relative_to(ROOT)), name, None))
    return list(out.values())


def main() -> int:
    _, options = process_options(["--config-file", str(ROOT / "pyproject.toml")], require_targets=False)
    try:
        result = build.build(sources(), options)
    except CompileError as e:
        print("\n".join(e.messages), file=sys.stderr)
        return 2
    for line in result.errors:
        print(line)
    n = sum(1 for line in result.errors if ": error:" in line)
    print(f"mypy: {n} error(s) in {len(result.files)} modules" if n else "mypy: no errors")
    return 1 if n else 0


if __name__ == "__main__":
    sys.exit(main())
