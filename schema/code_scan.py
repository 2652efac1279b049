"""Model source code → the facts code migration needs (framework, layer types, model style), read
with `ast` only: a source's code is never imported or executed. Which names are layers, model base
classes and Sequential containers of which framework is KB data (`mp:CodeFramework`,
ontology/kb/code-migration.ttl)."""

from __future__ import annotations

import ast
from collections import Counter

from modelport.schema.kb import KnowledgeBase
from modelport.schema.record import SourceCode

MAX_CODE_BYTES = 256 * 1024  # larger files are listed, not read


def _dotted(node: ast.AST) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name → fully qualified name, from the file's imports."""
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    out[a.asname] = a.name
                else:
                    out[a.name.split(".")[0]] = a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def _resolve(name: str, aliases: dict[str, str]) -> str:
    head, _, rest = name.partition(".")
    full = aliases.get(head, head)
    return f"{full}.{rest}" if rest else full


def scan_python(path: str, text: str, kb: KnowledgeBase, size: int | None = None) -> SourceCode:
    """What `text` (a Python file) builds, as far as its syntax tells: the KB code framework whose
    layers it instantiates most, those layers' class names, and whether it subclasses the
    framework's model base class or stacks a Sequential container. A file that does not parse, is
    too large or uses no known framework gives a SourceCode without framework and layer types."""
    size = size if size is not None else len(text.encode("utf-8", "replace"))
    blank = SourceCode(path=path, size_bytes=size)
    if size > MAX_CODE_BYTES:
        return blank
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return blank
    aliases = _aliases(tree)
    layers: dict[str, set[str]] = {}
    hits: Counter[str] = Counter()
    styles: dict[str, set[str]] = {}
    frameworks = kb.compat.code_frameworks.values()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                name = _dotted(base)
                full = _resolve(name, aliases) if name else ""
                for fw in frameworks:
                    if full in fw.module_bases:
                        styles.setdefault(fw.id, set()).add("subclassing")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if not name:
                continue
            full = _resolve(name, aliases)
            for fw in frameworks:
                if full in fw.sequential:
                    styles.setdefault(fw.id, set()).add("sequential")
                    continue
                for ns in fw.layer_namespaces:
                    rest = full[len(ns) + 1:] if full.startswith(ns + ".") else ""
                    if rest and "." not in rest and rest[:1].isupper():  # a class, not nn.functional.relu
                        layers.setdefault(fw.id, set()).add(rest)
                        hits[fw.id] += 1
    if not hits:
        return blank
    fw_id = hits.most_common(1)[0][0]
    found = styles.get(fw_id, set())
    # A subclassed model that stacks a Sequential inside is read as subclassing: that is the class
    # the migration has to rebuild.
    style = "subclassing" if "subclassing" in found else ("sequential" if "sequential" in found else None)
    return SourceCode(path=path, framework=fw_id, layer_types=sorted(layers[fw_id]), style=style,  # type: ignore[arg-type]
                      size_bytes=size)


__all__ = ["scan_python", "MAX_CODE_BYTES"]
