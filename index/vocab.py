"""The names search understands, read from the knowledge base: runtimes, targets, hardware,
licences, metrics, datasets, tasks, formats and frameworks with their labels and aliases, plus
the ontology-aware expansions (narrower tasks, format families, umbrella targets, permissive
licences). The query syntax, the natural-language reader and every backend use this one table,
so a new alias is an edit of `ontology/kb/*.ttl`, not of code.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

from rdflib import RDF, RDFS, SKOS, Literal, URIRef

from modelport.schema.kb import MP, KnowledgeBase, get_kb, local_name
from modelport.schema.versions import parse_version

FACET_OVERFLOW_BIT = 63  # set in a facet bitmask for a value outside the KB vocabulary
STATUS_ORDER = ("convertible", "declared", "native", "verified")
"""Evidence levels, weakest first: a cell satisfies a minimum level when its status ranks at or
above it (`failed-verification` satisfies none)."""


def status_rank(status: str) -> int:
    return STATUS_ORDER.index(status) if status in STATUS_ORDER else -1


def _norm(name: str) -> str:
    """Lower-case with runs of spaces, underscores and hyphens folded to one space."""
    return re.sub(r"[\s_\-]+", " ", name.strip().lower())


@dataclass
class Vocab:
    """Lookup tables built once per KB version."""

    kb_version: str
    runtimes: dict[str, str] = field(default_factory=dict)  # normalised alias → runtime id
    targets: dict[str, str] = field(default_factory=dict)
    hardware: dict[str, str] = field(default_factory=dict)
    licenses: dict[str, str] = field(default_factory=dict)  # alias → SPDX id
    permissive: frozenset[str] = frozenset()
    metrics: dict[str, str] = field(default_factory=dict)
    datasets: dict[str, str] = field(default_factory=dict)
    proportion_metrics: frozenset[str] = frozenset()
    higher_is_better: dict[str, bool] = field(default_factory=dict)
    formats: dict[str, list[str]] = field(default_factory=dict)  # id, label or family → format ids
    frameworks: dict[str, str] = field(default_factory=dict)
    target_includes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    bits: dict[str, dict[str, int]] = field(default_factory=dict)  # facet field → value → bit
    releases: dict[str, list[str]] = field(default_factory=dict)  # runtime → KB release versions
    # Lineage: relation aliases → relation id; phrases (text, "before"/"after", relation or None);
    # words that continue a model name; deployment-format names → format ids; format-requirement
    # templates ("in {format} format").
    relations: dict[str, str] = field(default_factory=dict)
    lineage_phrases: list[tuple[str, str, str | None]] = field(default_factory=list)
    name_words: frozenset[str] = frozenset()
    format_names: dict[str, list[str]] = field(default_factory=dict)
    format_templates: list[str] = field(default_factory=list)
    kb: KnowledgeBase | None = None
    # Names seen while indexing repeat endlessly ("T4", "top-1"); their lookups are remembered.
    # Bounded: cleared when it grows past 100k names.
    _memo: dict[tuple[str, str], str] = field(default_factory=dict)

    # -- names → ids -------------------------------------------------------------------------------
    def runtime(self, name: str) -> str | None:
        return self.runtimes.get(_norm(name))

    def target(self, name: str) -> str | None:
        return self.targets.get(_norm(name))

    def _remember(self, kind: str, name: str, compute: Callable[[], str]) -> str:
        hit = self._memo.get((kind, name))
        if hit is None:
            if len(self._memo) > 100_000:
                self._memo.clear()
            hit = self._memo[(kind, name)] = compute()
        return hit

    def hardware_profile(self, name: str) -> str | None:
        return self._remember("hw", name, lambda: self.hardware.get(_norm(name)) or "") or None

    def license(self, name: str) -> str:
        """SPDX id for a licence name; unknown names stay as given (they may be LicenseRef-…)."""
        hit = self.licenses.get(_norm(name))
        if hit:
            return hit
        assert self.kb is not None
        return self.kb.license_id(name) or name

    def metric(self, name: str) -> str:
        assert self.kb is not None
        kb = self.kb
        return self._remember("metric", name, lambda: self.metrics.get(_norm(name)) or kb.metric_id(name))

    def is_metric(self, name: str) -> bool:
        """Whether the KB knows this metric name (an id, label or alias)."""
        return _norm(name) in self.metrics

    def dataset(self, name: str) -> str:
        assert self.kb is not None
        kb = self.kb
        return self._remember("dataset", name, lambda: self.datasets.get(_norm(name)) or kb.dataset_id(name))

    def task(self, name: str) -> str:
        assert self.kb is not None
        return self.kb.task_id(name) or name.strip().lower()

    def relation(self, name: str) -> str | None:
        """A lineage relation id ("fine-tunes" → "finetune") or None."""
        return self.relations.get(_norm(name))

    def format_ids(self, name: str) -> list[str]:
        """Format ids a deployment-format name or a format id / label / family means."""
        return self.format_names.get(_norm(name)) or self.formats.get(_norm(name), [])

    def framework(self, name: str) -> str:
        return self.frameworks.get(_norm(name), name.strip().lower())

    def knows(self, field_name: str, value: str) -> bool:
        """Whether an indexed task or framework value is a KB id; one that is not came from a source
        (a `SourceTerm`, see index/facts.py). Other fields are not told apart (True)."""
        assert self.kb is not None
        if field_name == "task":
            return value in self.kb.tasks
        if field_name == "framework":
            return value in self.kb.libraries
        return True

    # -- expansions --------------------------------------------------------------------------------
    def expand(self, field_name: str, values: list[str]) -> list[str]:
        """The index values a filter on `field_name` accepts: a task includes its narrower tasks,
        a format name or family its formats, `permissive` every permissive licence."""
        assert self.kb is not None
        out: list[str] = []
        for v in values:
            if field_name == "task":
                tid = self.kb.task_id(v)
                out += sorted(self.kb.task_descendants(tid)) if tid else [v]
            elif field_name == "format":
                out += self.formats.get(_norm(v), [v])
            elif field_name == "license":
                out += sorted(self.permissive) if _norm(v) == "permissive" else [self.license(v)]
            elif field_name == "framework":
                out.append(self.framework(v))
            elif field_name == "target":
                out += self.target_closure(self.target(v) or v)
            elif field_name == "runtime":
                out.append(self.runtime(v) or v)
            elif field_name == "hardware":
                out.append(self.hardware_profile(v) or v)
            else:
                out.append(v)
        return list(dict.fromkeys(out))

    def target_closure(self, target: str) -> list[str]:
        """An umbrella target and every target it includes (transitively): `mobile` → mobile,
        android, ios."""
        out, stack = [], [target]
        while stack:
            t = stack.pop(0)
            if t not in out:
                out.append(t)
                stack.extend(self.target_includes.get(t, ()))
        return out

    def facet_bits(self, field_name: str) -> dict[str, int]:
        """Bit of each value of a closed-vocabulary facet field (the KB's runtimes, targets,
        hardware profiles, formats; the evidence statuses): a record's values of such a field are
        also indexed as one bitmask, which counts ~20× faster than a multi-valued keyword."""
        return self.bits.get(field_name, {})

    def release(self, runtime: str, version: str) -> str | None:
        """The KB release of `runtime` equal to `version` as a PEP 440 version ("1.14.0" → "1.14")."""
        want = parse_version(version)
        if want is None:
            return None
        return next((r for r in self.releases.get(runtime, ()) if parse_version(r) == want), None)

    def is_proportion(self, metric: str) -> bool:
        return metric in self.proportion_metrics

    def normalise_metric_value(self, metric: str, value: float) -> float:
        """Proportion metrics are compared on 0..1: a value above 1 is a percentage."""
        if metric in self.proportion_metrics and value > 1.0:
            return value / 100.0
        return value

    # -- alternations for the natural-language reader ----------------------------------------------
    def names(self, table: str) -> list[str]:
        """Every alias of a table, longest first (so "onnx runtime" wins over "onnx")."""
        return sorted(getattr(self, table), key=len, reverse=True)


def _of_type(kb: KnowledgeBase, cls: URIRef) -> list[URIRef]:
    """The KB's named things of a class, in the graph's order (blank nodes have no id to give)."""
    return [s for s in kb.graph.subjects(RDF.type, cls) if isinstance(s, URIRef)]


def _true(node: object) -> bool:
    """A KB flag: the literal `true`."""
    return isinstance(node, Literal) and node.toPython() is True


def _labels(kb: KnowledgeBase, s: URIRef) -> list[str]:
    g = kb.graph
    out = [local_name(s)]
    for p in (RDFS.label, SKOS.prefLabel, SKOS.altLabel, MP.alias):
        for o in g.objects(s, p):
            if isinstance(o, Literal):
                text = str(o)
                out.append(text)
                # "TensorFlow Lite / LiteRT", "Edge TPU runtime (libedgetpu)": each part is a name too.
                base = re.sub(r"\s*\([^)]*\)", "", text)
                out += [part for part in re.split(r"\s*/\s*", base) if part] if p == RDFS.label else []
    return out


def _add(table: dict[str, str], names: list[str], value: str) -> None:
    for n in names:
        key = _norm(n)
        if key and key not in table:
            table[key] = value


@cache
def _build(kb_version: str) -> Vocab:
    kb = get_kb()
    g = kb.graph
    v = Vocab(kb_version=kb_version, kb=kb)
    # Explicit aliases first, so a label part shared by two things ("TensorFlow") goes to the thing
    # that claims it as an alias.
    for cls, table in ((MP.Runtime, v.runtimes), (MP.DeploymentTarget, v.targets),
                       (MP.HardwareProfile, v.hardware)):
        subjects = sorted(set(_of_type(kb, cls)))
        for s in subjects:
            _add(table, [local_name(s), *(str(o) for o in g.objects(s, MP.alias))], local_name(s))
        for s in subjects:
            _add(table, _labels(kb, s), local_name(s))
    for rid, rt in kb.runtimes.items():
        if rt.python_package:
            _add(v.runtimes, [rt.python_package], rid)
    v.target_includes = {t.id: t.includes for t in kb.compat.targets.values() if t.includes}
    v.releases = {rt: [r.version for r in rels] for rt, rels in kb.compat.releases.items()}
    statuses = ("native", "declared", "convertible", "verified", "failed-verification")
    for name, ids in (("runtime", kb.runtimes), ("target", kb.compat.targets), ("hardware", kb.compat.hardware),
                      ("format", kb.formats), ("status", statuses)):
        ordered = sorted(ids)
        if len(ordered) < FACET_OVERFLOW_BIT:  # otherwise the field is counted as plain keywords
            v.bits[name] = {x: i for i, x in enumerate(ordered)}

    permissive = set()
    for s in _of_type(kb, MP.License):
        spdx = str(g.value(s, MP.spdxId) or local_name(s))
        _add(v.licenses, [spdx, *(str(o) for o in g.objects(s, MP.alias))], spdx)
        perm = g.value(s, MP.permissive)
        if _true(perm):
            permissive.add(spdx)
    v.permissive = frozenset(permissive)

    proportions = set()
    for s in _of_type(kb, MP.Metric):
        mid = local_name(s)
        _add(v.metrics, _labels(kb, s), mid)
        hib = g.value(s, MP.higherIsBetter)
        v.higher_is_better[mid] = bool(hib.toPython()) if isinstance(hib, Literal) else True
        prop = g.value(s, MP.proportion)
        if _true(prop):
            proportions.add(mid)
    v.proportion_metrics = frozenset(proportions)
    for s in _of_type(kb, MP.Dataset):
        _add(v.datasets, _labels(kb, s), local_name(s))

    for f in kb.formats.values():
        for name in (f.id, f.label):
            v.formats.setdefault(_norm(name), []).append(f.id)
    families: dict[str, list[str]] = {}
    for f in kb.formats.values():
        if f.family:
            families.setdefault(_norm(f.family), []).append(f.id)
    for fam, members in families.items():
        # A family name that is also a format id ("onnx", "gguf") keeps meaning the whole family.
        v.formats[fam] = sorted(set(members) | set(v.formats.get(fam, [])))
    for s in _of_type(kb, MP.LineageRelation):
        _add(v.relations, [local_name(s), *(str(o) for o in g.objects(s, MP.alias)),
                           *(str(o) for o in g.objects(s, RDFS.label))], local_name(s))
    phrases = []
    for phrase in g.subjects(RDF.type, MP.LineagePhrase):
        rel = g.value(phrase, MP.relation)
        for pos, prop in (("before", MP.before), ("after", MP.after)):
            phrases += [(str(o).lower(), pos, local_name(rel) if isinstance(rel, URIRef) else None)
                        for o in g.objects(phrase, prop)]
    v.lineage_phrases = sorted(set(phrases), key=lambda p: (-len(p[0]), p))
    v.name_words = frozenset(str(o).lower() for s in g.subjects(MP.word, None) for o in g.objects(s, MP.word))
    for fmt, o in g.subject_objects(MP.queryName):
        if isinstance(fmt, URIRef):
            v.format_names.setdefault(_norm(str(o)), []).append(local_name(fmt))
    v.format_names = {k: sorted(set(ids)) for k, ids in v.format_names.items()}
    v.format_templates = sorted({str(o) for s in g.subjects(RDF.type, MP.FormatPhrase)
                                 for o in g.objects(s, MP.template)}, key=lambda t: (-len(t), t))
    for lib in kb.libraries.values():
        _add(v.frameworks, [lib.id, lib.label, *lib.hub_libraries, *([lib.python_package] if lib.python_package
                                                                      else [])], lib.id)
    return v


def get_vocab() -> Vocab:
    return _build(get_kb().version)


__all__ = ["FACET_OVERFLOW_BIT", "STATUS_ORDER", "Vocab", "get_vocab", "status_rank"]
