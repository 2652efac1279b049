"""The compatibility knowledge base: `ontology/kb/*.ttl` loaded once into typed lookup tables.

Code asks the KB (which format is this file, which runtime loads that format, which SPDX id is
"apache 2.0") instead of carrying its own tables, so adding a runtime is an edit of data.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

from rdflib import RDF, RDFS, SKOS, Graph, Literal, Namespace, URIRef

from modelport.schema.kb_compat import CompatKB, load_compat

MP = Namespace("https://w3id.org/modelport/ns#")
DCTERMS = Namespace("http://purl.org/dc/terms/")
KB_BASE = "https://w3id.org/modelport/kb/"


def ontology_dir() -> Path:
    return Path(str(resources.files("modelport.ontology")))


def local_name(iri: URIRef | str) -> str:
    return str(iri).rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Format:
    id: str
    label: str
    family: str | None
    patterns: tuple[re.Pattern[str], ...]
    hub_tags: tuple[str, ...]
    mlflow_flavors: tuple[str, ...]
    mlflow_serializations: tuple[str, ...]


@dataclass(frozen=True)
class Library:
    id: str
    label: str
    python_package: str | None
    mlflow_flavors: tuple[str, ...]
    flavor_version_key: str | None
    hub_libraries: tuple[str, ...]
    native_runtime: str | None
    declares_formats: tuple[str, ...]


@dataclass(frozen=True)
class Runtime:
    id: str
    label: str
    python_package: str | None
    consumes: tuple[str, ...]
    version_policy: str
    deprecated: bool = False  # kept so explanations can name it; never offered
    succeeded_by: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class Task:
    id: str
    label: str
    alt_labels: tuple[str, ...]
    broader: tuple[str, ...]
    # One sentence from the task's Hugging Face page (tasks.ttl cites it); None where there is none.
    definition: str | None = None


@dataclass
class KnowledgeBase:
    graph: Graph
    version: str
    formats: dict[str, Format] = field(default_factory=dict)
    libraries: dict[str, Library] = field(default_factory=dict)
    runtimes: dict[str, Runtime] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    _license_alias: dict[str, str] = field(default_factory=dict)
    _metric_alias: dict[str, str] = field(default_factory=dict)
    _dataset_alias: dict[str, str] = field(default_factory=dict)
    _task_alias: dict[str, str] = field(default_factory=dict)
    # Runtime releases, converters, targets, hardware, quantization (ontology/kb, schema/kb_compat.py).
    compat: CompatKB = field(default_factory=CompatKB)

    # -- formats ---------------------------------------------------------------------------
    def format_of_path(self, path: str) -> str | None:
        """The KB format a file path is in, or None (configs, tokenizers, READMEs)."""
        for fmt in self.formats.values():
            if any(p.search(path) for p in fmt.patterns):
                return fmt.id
        return None

    def formats_for_hub_tag(self, tag: str) -> list[str]:
        return [f.id for f in self.formats.values() if tag in f.hub_tags]

    def format_for_mlflow(self, flavor: str, serialization: str | None = None) -> str | None:
        for f in self.formats.values():
            if serialization and serialization in f.mlflow_serializations:
                return f.id
        for f in self.formats.values():
            if flavor in f.mlflow_flavors:
                return f.id
        return None

    # -- libraries and runtimes ------------------------------------------------------------
    def library_for_flavor(self, flavor: str) -> Library | None:
        return next((lib for lib in self.libraries.values() if flavor in lib.mlflow_flavors), None)

    def library_for_hub(self, name: str) -> Library | None:
        name = name.lower()
        return next((lib for lib in self.libraries.values() if name in lib.hub_libraries), None)

    def runtimes_for_format(self, fmt: str) -> list[Runtime]:
        return [r for r in self.runtimes.values() if fmt in r.consumes and not r.deprecated]

    def runtime_for_package(self, package: str) -> Runtime | None:
        package = _norm_pkg(package)
        return next(
            (r for r in self.runtimes.values() if r.python_package and _norm_pkg(r.python_package) == package),
            None,
        )

    # -- vocabularies ----------------------------------------------------------------------
    def license_id(self, raw: str | None) -> str | None:
        """SPDX id for a licence as a source spells it; unknown ones become LicenseRef-<raw>."""
        if raw is None or not str(raw).strip():
            return None
        key = str(raw).strip().lower()
        if key in self._license_alias:
            return self._license_alias[key]
        return "LicenseRef-" + re.sub(r"[^A-Za-z0-9.-]+", "-", str(raw).strip()).strip("-")

    def metric_id(self, raw: str) -> str:
        key = raw.strip().lower()
        return self._metric_alias.get(key, re.sub(r"\s+", "-", key))

    def dataset_id(self, raw: str) -> str:
        key = raw.strip().lower()
        return self._dataset_alias.get(key, key)

    def task_id(self, raw: str) -> str | None:
        """Task id for a source's task name; None if it is not a task of the taxonomy."""
        return self._task_alias.get(raw.strip().lower().replace("_", "-"))

    def task_descendants(self, task: str) -> set[str]:
        """The task and every narrower task (transitively)."""
        children: dict[str, list[str]] = defaultdict(list)
        for t in self.tasks.values():
            for b in t.broader:
                children[b].append(t.id)
        out, stack = set(), [task]
        while stack:
            t = stack.pop()
            if t not in out:
                out.add(t)
                stack.extend(children.get(t, []))
        return out


def _norm_pkg(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _strs(g: Graph, s: URIRef, p: URIRef) -> tuple[str, ...]:
    return tuple(sorted(str(o) for o in g.objects(s, p)))


def _str(g: Graph, s: URIRef, p: URIRef) -> str | None:
    v = g.value(s, p)
    return str(v) if v is not None else None


def _ids(g: Graph, s: URIRef, p: URIRef) -> tuple[str, ...]:
    return tuple(sorted(local_name(o) for o in g.objects(s, p)))


def load_kb(directory: Path | None = None) -> KnowledgeBase:
    """Parse every Turtle file of the KB directory; the KB version is a hash of their bytes."""
    directory = directory or ontology_dir() / "kb"
    g = Graph()
    digest = hashlib.sha256()
    for path in sorted(directory.glob("*.ttl")):
        data = path.read_bytes()
        digest.update(path.name.encode() + data)
        g.parse(data=data, format="turtle")
    kb = KnowledgeBase(graph=g, version=digest.hexdigest()[:12])

    for s in g.subjects(RDF.type, MP.Format):
        kb.formats[local_name(s)] = Format(
            id=local_name(s),
            label=_str(g, s, RDFS.label) or local_name(s),
            family=_str(g, s, MP.family),
            patterns=tuple(re.compile(p, re.IGNORECASE) for p in _strs(g, s, MP.filePattern)),
            hub_tags=_strs(g, s, MP.hubTag),
            mlflow_flavors=_strs(g, s, MP.mlflowFlavor),
            mlflow_serializations=_strs(g, s, MP.mlflowSerialization),
        )
    for s in g.subjects(RDF.type, MP.Library):
        rt = g.value(s, MP.nativeRuntime)
        kb.libraries[local_name(s)] = Library(
            id=local_name(s),
            label=_str(g, s, RDFS.label) or local_name(s),
            python_package=_str(g, s, MP.pythonPackage),
            mlflow_flavors=_strs(g, s, MP.mlflowFlavor),
            flavor_version_key=_str(g, s, MP.flavorVersionKey),
            hub_libraries=_strs(g, s, MP.hubLibrary),
            native_runtime=local_name(rt) if rt is not None else None,
            declares_formats=_ids(g, s, MP.declaresFormat),
        )
    for s in g.subjects(RDF.type, MP.Runtime):
        kb.runtimes[local_name(s)] = Runtime(
            id=local_name(s),
            label=_str(g, s, RDFS.label) or local_name(s),
            python_package=_str(g, s, MP.pythonPackage),
            consumes=_ids(g, s, MP.consumes),
            version_policy=_str(g, s, MP.versionPolicy) or "min-only",
            deprecated=bool(g.value(s, MP.deprecated)),
            succeeded_by=local_name(g.value(s, MP.succeededBy)) if g.value(s, MP.succeededBy) is not None else None,
            source=_str(g, s, DCTERMS.source),
        )
    for s in g.subjects(RDF.type, SKOS.Concept):
        if g.value(s, SKOS.inScheme) != MP.TaskScheme:
            continue
        tid = local_name(s)
        alts = _strs(g, s, SKOS.altLabel)
        label = _str(g, s, SKOS.prefLabel) or tid
        kb.tasks[tid] = Task(id=tid, label=label, alt_labels=alts, broader=_ids(g, s, SKOS.broader),
                             definition=_str(g, s, SKOS.definition))
        for name in (tid, label, *alts):
            kb._task_alias[name.lower().replace("_", "-")] = tid
            kb._task_alias[name.lower().replace(" ", "-")] = tid
    for s in g.subjects(RDF.type, MP.License):
        spdx = _str(g, s, MP.spdxId) or local_name(s)
        for a in (spdx, *_strs(g, s, MP.alias)):
            kb._license_alias[a.lower()] = spdx
    for s in g.subjects(RDF.type, MP.Metric):
        for a in (local_name(s), *_strs(g, s, MP.alias)):
            kb._metric_alias[a.lower()] = local_name(s)
    for s in g.subjects(RDF.type, MP.Dataset):
        for a in (local_name(s), *_strs(g, s, MP.alias)):
            kb._dataset_alias[a.lower()] = local_name(s)
    kb.compat = load_compat(g)
    return kb


SOURCED_CLASSES = ("Runtime", "RuntimeRelease", "Format", "Converter", "DeploymentTarget", "HardwareProfile")


def missing_sources(kb: KnowledgeBase) -> list[str]:
    """KB nodes of the compatibility kinds without a `dcterms:source` web address: every such fact
    must say where it comes from ("<class> <iri>", sorted)."""
    out = []
    for cls in SOURCED_CLASSES:
        for s in kb.graph.subjects(RDF.type, MP[cls]):
            src = kb.graph.value(s, DCTERMS.source)
            if src is None or not str(src).startswith(("http://", "https://")):
                out.append(f"{cls} {s}")
    return sorted(out)


@cache
def get_kb() -> KnowledgeBase:
    return load_kb()


__all__ = ["missing_sources", "SOURCED_CLASSES",
           "MP", "KB_BASE", "KnowledgeBase", "Format", "Library", "Runtime", "Task", "get_kb", "load_kb",
           "local_name", "ontology_dir", "Literal"]
