"""Record → RDF: schema.org first, FAIR4ML and ML-Schema where schema.org has no term, `mp:` only
for the compatibility matrix. Triples are written as N-Triples text because the graph store
(Oxigraph) parses that in Rust far faster than rdflib can build term objects; `to_graph` gives the
same triples as an rdflib Graph for serialization (Turtle, JSON-LD) and SHACL validation.

Over ~500 lines: a record's own triples and its compatibility cells' triples are written by the
same N-Triples writer (`_Triples`, `_lit`), term helpers and shared-node memo (`_shared_node`,
`_cached`); the cell half split off would import most of this module's private helpers back.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
from typing import Any
from urllib.parse import quote

from rdflib import Graph

from modelport.schema.hardware_fit import ESTIMATE_SOURCE
from modelport.schema.identity import record_iri
from modelport.schema.kb import KB_BASE, ontology_dir
from modelport.schema.record import CompatibilityEntry, ModelRecord, SourceTerm, build
from modelport.schema.versions import VersionRange, parse_version

SCHEMA = "http://schema.org/"
FAIR4ML = "https://w3id.org/fair4ml#"
MLS = "http://www.w3.org/ns/mls#"
MP = "https://w3id.org/modelport/ns#"
PROV = "http://www.w3.org/ns/prov#"
RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
RDFS_SEEALSO = "http://www.w3.org/2000/01/rdf-schema#seeAlso"
RDFS_COMMENT = "http://www.w3.org/2000/01/rdf-schema#comment"
XSD = "http://www.w3.org/2001/XMLSchema#"
SPDX = "https://spdx.org/licenses/"
KB_GRAPH = "https://w3id.org/modelport/kb"
log = logging.getLogger(__name__)

PREFIXES = {"schema": SCHEMA, "fair4ml": FAIR4ML, "mls": MLS, "mp": MP, "prov": PROV, "xsd": XSD,
            "rdfs": "http://www.w3.org/2000/01/rdf-schema#", "skos": "http://www.w3.org/2004/02/skos/core#",
            "task": KB_BASE + "task/", "fmt": KB_BASE + "format/", "rt": KB_BASE + "runtime/",
            "lib": KB_BASE + "library/", "tgt": KB_BASE + "target/", "hw": KB_BASE + "hardware/",
            "met": KB_BASE + "metric/", "ds": KB_BASE + "dataset/", "conv": KB_BASE + "converter/"}

def _iri(value: str) -> str:
    # Keep the IRI valid whatever the source put into an id (spaces, quotes, braces …).
    return "<" + quote(value, safe="/:#?&=@%+~.,;!$'()*[]-_") + ">"


# Schemes a link from a source may never become in the graph (the web UI renders links).
_UNSAFE_SCHEMES = frozenset({"javascript", "data", "vbscript"})


def url_term(value: str) -> str:
    """A URL from a source as an N-Triples term: an IRI when it is an absolute IRI the store accepts
    (checked by Oxigraph's own IRI parser, so a batch never fails on it), otherwise a plain literal
    keeping what the source said — a relative `run_link` or a broken host must not stop a record."""
    term = _iri(value)
    if value.split(":", 1)[0].strip().lower() not in _UNSAFE_SCHEMES:
        try:
            _ox().NamedNode(term[1:-1])
            return term
        except ValueError:
            pass
    log.debug("not an absolute IRI, kept as a literal: %.200r", value)
    return _lit(value)


@cache
def _ox() -> Any:
    import pyoxigraph

    return pyoxigraph


def _lit(value: object) -> str:
    if isinstance(value, bool):
        return f'"{str(value).lower()}"^^<{XSD}boolean>'
    if isinstance(value, int):
        return f'"{value}"^^<{XSD}integer>'
    if isinstance(value, float):
        return f'"{value!r}"^^<{XSD}double>'
    if isinstance(value, datetime):
        return f'"{value.isoformat()}"^^<{XSD}dateTime>'
    text = str(value)
    if "\\" in text or '"' in text or "\n" in text or "\r" in text:
        # str.replace runs in C per character class; translate() with a dict is ~10x slower on long cards.
        text = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return '"' + text + '"'


class _Triples:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, s: str, p: str, o: str) -> None:
        self.lines.append(f"{s} {p} {o} .")

    def lit(self, s: str, p: str, value: object) -> None:
        if value is not None and value != "":
            self.add(s, p, _lit(value))


VERSION_KEY_OPEN_END = 10**16  # mp:maxVersionKey of a range without an upper bound


def version_key(text: str) -> int | None:
    """A version as an integer that orders like the version: the first four release numbers, each
    given four decimal digits ("1.16" → 1_0016_0000_0000, "1.9" → 1_0009_0000_0000). Pre-, post- and
    local parts are ignored; a release number above 9999 (a date used as a version) has no key."""
    v = parse_version(text)
    if v is None:
        return None
    parts = (list(v.release) + [0, 0, 0])[:4]
    if any(p > 9999 for p in parts) or len(v.release) > 4 and any(v.release[4:]):
        return None
    key = 0
    for p in parts:
        key = key * 10_000 + p
    return key


def range_keys(rng: VersionRange) -> tuple[int | None, int | None]:
    """(lowest key inside, first key above) of a range: a version with key k is in it exactly when
    lo <= k < hi, whatever the bounds' inclusiveness, so one FILTER answers "ranges containing v".
    An open end is 0 below and VERSION_KEY_OPEN_END above; (None, None) if a bound has no key."""
    lo = hi = None
    if rng.min is None:
        lo = 0
    elif (k := version_key(rng.min)) is not None:
        lo = k if rng.min_inclusive else k + 1
    if rng.max is None:
        hi = VERSION_KEY_OPEN_END
    elif (k := version_key(rng.max)) is not None:
        hi = k + 1 if rng.max_inclusive else k
    return (lo, hi) if lo is not None and hi is not None else (None, None)


def kb_iri(kind: str, ident: str) -> str:
    return f"{KB_BASE}{kind}/{ident}"


@lru_cache(maxsize=65536)
def _kb(kind: str, ident: str) -> str:
    """`<…/kb/kind/ident>`, written once per term: a record repeats KB terms dozens of times."""
    return _iri(kb_iri(kind, ident))


def license_iri(spdx: str) -> str | None:
    return None if spdx.startswith("LicenseRef-") else SPDX + spdx


def record_ntriples(record: ModelRecord, base: str) -> str:
    """All triples of one record, shared compatibility nodes included (self-contained)."""
    return record_rdf(record, base).ntriples()


def _record_triples(record: ModelRecord, base: str, shared: dict[str, str]) -> str:
    """The record's own triples — what is only this record's: identity, counts, dates, files,
    evaluations, measurements, its own verification results. Everything it shares with other records
    (where it comes from, task, libraries, formats, licence, languages, training data, the derived
    compatibility matrix) is one shared mp:ModelProfile node, and its publisher and authors are
    shared agent nodes; both are named by a hash of their content and added to `shared`. Nodes the
    record owns are named `<record IRI>#<part>` and untyped (their property says what they are;
    the shapes target them through it)."""
    t = _Triples()
    s = _iri(record.iri)
    own = s[:-1]  # `<record IRI` — its nodes append a fragment of safe characters and `>`
    sch = lambda n: f"<{SCHEMA}{n}>"  # noqa: E731
    f4 = lambda n: f"<{FAIR4ML}{n}>"  # noqa: E731
    mp = lambda n: f"<{MP}{n}>"  # noqa: E731
    t.add(s, f"<{RDF_TYPE}>", f4("MLModel"))
    t.lit(s, sch("identifier"), record.id)
    t.lit(s, sch("name"), record.name)
    t.lit(s, sch("description"), record.description)
    t.lit(s, mp("source"), record.source)
    t.add(s, mp("profile"), _profile(record, shared))
    for a in record.authors:
        t.add(s, sch("author"), _agent(a, shared))
    if record.publisher:
        t.add(s, sch("publisher"), _agent(record.publisher, shared))
    if record.keywords:
        # schema:keywords takes one comma-separated text (schema.org's own definition): one triple, not
        # one per tag. Tags with a comma are rare and keep theirs as a separate value.
        plain = [k for k in record.keywords if "," not in k]
        t.lit(s, sch("keywords"), ", ".join(plain))
        for kw in record.keywords:
            if "," in kw:
                t.lit(s, sch("keywords"), kw)
    for i, art in enumerate(record.artifacts):
        node = f"{own}#artifact-{i}>"
        t.add(s, sch("distribution"), node)
        t.lit(node, sch("name"), art.path)
        if art.format:
            t.add(node, sch("encodingFormat"), _kb("format", art.format))
        t.lit(node, sch("contentSize"), art.size_bytes)
        t.lit(node, mp("sha256"), art.sha256)
        t.lit(node, mp("quantization"), art.quantization)
        if art.url:
            t.add(node, sch("contentUrl"), url_term(art.url))
        for k in ("opset", "ir_version"):
            if isinstance(art.details.get(k), int):
                t.lit(node, mp("onnxOpset" if k == "opset" else "onnxIrVersion"), art.details[k])
    t.lit(s, mp("parameterCount"), record.parameter_count)
    t.lit(s, mp("sizeBytes"), record.size_bytes)
    for b in record.base_models:
        # The specific relation only: each is an rdfs:subPropertyOf prov:wasDerivedFrom (ontology).
        target = _iri(record_iri(base, b.ref)) if ":" in b.ref else _lit(b.ref)
        prop = {"finetune": f4("fineTunedFrom"), "adapter": mp("adapterOf"), "quantized": mp("quantizedFrom"),
                "merge": mp("mergedFrom"), "variant": mp("variantOf")}.get(b.relation, mp("derivedFrom"))
        t.add(s, prop, target)
    for i, ev in enumerate(record.evaluations):
        node = f"{own}#eval-{i}>"
        t.add(s, f4("hasEvaluation"), node)
        t.add(node, mp("metric"), _kb("metric", ev.metric))
        if ev.metric_name and ev.metric_name != ev.metric:
            t.lit(node, f4("evaluationMetrics"), ev.metric_name)
        t.lit(node, sch("value"), float(ev.value))
        if ev.dataset:
            t.add(node, f4("evaluationDataset"), _kb("dataset", ev.dataset))
        t.lit(node, mp("split"), ev.split)
        t.lit(node, mp("datasetConfig"), ev.dataset_config)
        t.lit(node, mp("verified"), ev.verified)
        if ev.provenance != "source":
            t.lit(node, mp("provenance"), ev.provenance)
        if ev.source and ev.source.startswith("http"):
            t.add(node, f"<{PROV}wasDerivedFrom>", url_term(ev.source))
    for i, lat in enumerate(x for x in record.latencies if x.source != ESTIMATE_SOURCE):
        # Estimates are a pure function of the memory footprint below, the parameter count and the KB's
        # hardware profiles: computed when a record is read (API), not stored once per profile.
        node = f"{own}#latency-{i}>"
        t.add(s, mp("latency"), node)
        t.add(node, mp("hardware"), _kb("hardware", lat.hardware))
        t.lit(node, mp("latencyMs"), float(lat.latency_ms))
        t.lit(node, mp("measured"), lat.measured)
        t.lit(node, mp("method"), lat.method)
        if lat.runtime:
            t.add(node, mp("runtime"), _kb("runtime", lat.runtime))
    t.lit(s, sch("version"), record.version)
    if record.version_group:
        group = record_iri(base, record.version_group)
        t.add(s, sch("isPartOf"), _iri(group))
        shared.setdefault(group, f"{_iri(group)} <{RDF_TYPE}> {sch('CreativeWorkSeries')} .\n")
    for alias in record.aliases:
        t.lit(s, mp("alias"), alias)
    t.lit(s, sch("dateCreated"), record.created)
    t.lit(s, sch("dateModified"), record.modified)
    t.lit(s, mp("downloads"), record.popularity.downloads)
    t.lit(s, mp("likes"), record.popularity.likes)
    for link in record.links:
        if link.rel in ("homepage", "source"):
            t.add(s, sch("url"), url_term(link.url))
        elif link.rel == "paper":
            t.add(s, sch("citation"), url_term(link.url))
        else:
            t.add(s, f"<{RDFS_SEEALSO}>", url_term(link.url))
    t.lit(s, f4("intendedUse"), record.card.intended_use)
    lim = "\n\n".join(x for x in (record.card.limitations, record.card.bias) if x)
    t.lit(s, f4("modelRisksBiasLimitations"), lim or None)
    for req in record.requirements:
        t.lit(s, sch("softwareRequirements"), f"{req.name}{req.specifier}")
    _own_compat_triples(t, record, s, shared)
    prov = record.provenance
    if prov.source_url:
        t.add(s, f"<{PROV}hadPrimarySource>", url_term(prov.source_url))
    t.lit(s, f"<{PROV}generatedAtTime>", prov.harvested_at)
    t.lit(s, mp("contentHash"), prov.content_hash)
    for d in prov.defaults_applied:
        t.lit(s, mp("defaultApplied"), d)
    return "\n".join(t.lines) + "\n"


def _agent(a: Any, shared: dict[str, str]) -> str:
    """A person or organization as a shared node: one per (kind, name, url) across all records."""
    def describe() -> _Triples:
        t = _Triples()
        t.add(_SUBJ, f"<{RDF_TYPE}>", f"<{SCHEMA}{'Person' if a.kind == 'person' else 'Organization'}>")
        t.lit(_SUBJ, f"<{SCHEMA}name>", a.name)
        if a.url:
            t.add(_SUBJ, f"<{SCHEMA}url>", url_term(a.url))
        return t

    return _memo_node(_AGENTS, ("agent", a.kind, a.name, a.url), "agent", describe, shared)


def _memo_node(memo: dict[Any, tuple[str, str]], key: Any, kind: str, describe: Callable[[], _Triples],
               shared: dict[str, str]) -> str:
    """A shared node memoised by `key` (its IRI and text): described and hashed once, not per record."""
    hit = memo.get(key)
    if hit is None:
        mine: dict[str, str] = {}
        iri = _shared_node(kind, describe(), mine)
        if len(memo) >= _NODE_CACHE_MAX:
            memo.clear()
        hit = memo[key] = (iri, mine[iri[1:-1]])
    shared[hit[0][1:-1]] = hit[1]
    return hit[0]


_AGENTS: dict[tuple[Any, ...], tuple[str, str]] = {}


def _profile(record: ModelRecord, shared: dict[str, str]) -> str:
    """The record's mp:ModelProfile: the facts it shares with many other records, as one shared node.
    Hub models come in a few hundred combinations of task, libraries, formats, licence and file layout
    (and so of derived matrix) per 100k: a record links to its profile with one triple."""
    cells = _derived_cells(record, shared)
    terms = [_source_term(term, shared) for term in record.source_terms]  # shared nodes, added on every call
    key = (record.source_kind, record.access, record.provenance.harvester, record.provenance.harvester_version,
           record.license, tuple(record.tasks), tuple(record.frameworks), tuple(record.formats),
           tuple(record.languages), record.architecture, tuple(record.training_datasets), tuple(cells),
           tuple(terms))
    hit = _PROFILES.get(key)
    if hit is None:
        sch = lambda n: f"<{SCHEMA}{n}>"  # noqa: E731
        mp = lambda n: f"<{MP}{n}>"  # noqa: E731
        t, s = _Triples(), _SUBJ
        t.add(s, f"<{RDF_TYPE}>", mp("ModelProfile"))
        t.lit(s, mp("sourceKind"), record.source_kind)
        t.lit(s, mp("access"), record.access)
        t.lit(s, mp("harvester"), f"{record.provenance.harvester}/{record.provenance.harvester_version}")
        if record.license:
            lic = license_iri(record.license)
            t.add(s, sch("license"), _iri(lic) if lic else _lit(record.license))
        for task in record.tasks:
            t.add(s, f"<{FAIR4ML}mlTask>", _kb("task", task))
        for lib in record.frameworks:
            t.add(s, mp("library"), _kb("library", lib))
        for term_iri in terms:
            t.add(s, mp("sourceTerm"), term_iri)
        for fmt in record.formats:
            t.add(s, mp("format"), _kb("format", fmt))
        for lang in record.languages:
            t.lit(s, sch("inLanguage"), lang)
        t.lit(s, mp("architecture"), record.architecture)
        for ds in record.training_datasets:
            t.add(s, f"<{FAIR4ML}trainedOn>", _kb("dataset", ds))
        for c in cells:
            t.add(s, mp("compatibility"), c)
        mine: dict[str, str] = {}
        iri = _shared_node("profile", t, mine)
        if len(_PROFILES) >= _NODE_CACHE_MAX:
            _PROFILES.clear()
        hit = _PROFILES[key] = (iri, mine[iri[1:-1]])
    shared[hit[0][1:-1]] = hit[1]
    return hit[0]


_PROFILES: dict[tuple[Any, ...], tuple[str, str]] = {}


def _source_term(term: SourceTerm, shared: dict[str, str]) -> str:
    """A task or library the source names and the KB does not know, as a shared mp:SourceTerm node (a
    schema:DefinedTerm): its vocabulary, the case-folded code that search filters match and the name
    as the source wrote it. Query it as `mp:profile/mp:sourceTerm [ mp:vocabulary "task" ;
    schema:termCode "image-to-3d" ]`; KB terms stay IRIs under fair4ml:mlTask and mp:library."""
    def describe() -> _Triples:
        t = _Triples()
        t.add(_SUBJ, f"<{RDF_TYPE}>", f"<{MP}SourceTerm>")
        t.lit(_SUBJ, f"<{MP}vocabulary>", term.vocabulary)
        t.lit(_SUBJ, f"<{SCHEMA}termCode>", term.key)
        t.lit(_SUBJ, f"<{SCHEMA}name>", term.value)
        t.lit(_SUBJ, f"<{MP}sourceKey>", term.source_key)
        return t

    return _memo_node(_TERMS, (term.vocabulary, term.value, term.source_key), "term", describe, shared)


_TERMS: dict[tuple[str, str, str], tuple[str, str]] = {}


DERIVED_BASE = "https://w3id.org/modelport/derived/"
_SUBJ = "<urn:modelport:this>"  # placeholder subject while a shared node's content is hashed


@dataclass
class RecordRdf:
    """A record's triples: its own graph, plus the shared nodes it links to (named by a hash of their
    content, each stored once in a graph of its own IRI, whichever record brought it first)."""

    own: str
    shared: dict[str, str]

    def ntriples(self) -> str:
        """Self-contained: the record and every shared node it uses (export, SHACL validation)."""
        return self.own + "".join(self.shared.values())


def record_rdf(record: ModelRecord, base: str) -> RecordRdf:
    shared: dict[str, str] = {}
    own = _record_triples(record, base, shared)
    return RecordRdf(own, shared)


def _shared_node(kind: str, t: _Triples, shared: dict[str, str]) -> str:
    """Name the node described by `t` (subject `_SUBJ`) by a hash of that description."""
    body = "\n".join(t.lines) + "\n"
    iri = f"<{DERIVED_BASE}{kind}/{hashlib.sha1(body.encode()).hexdigest()[:24]}>"
    shared[iri[1:-1]] = body.replace(_SUBJ[:-1], iri[:-1])
    return iri


# Shared nodes are derived from (KB version, cell content) alone, so their text is memoized: records
# with the same signature share the same entry objects (schema/compat.py), and hardware cells key on
# the few fields they write.
_NODE_CACHE: dict[Any, tuple[Any, str, dict[str, str]]] = {}
_NODE_CACHE_MAX = 50_000


def _cached(key: Any, anchor: Any, build: Callable[[dict[str, str]], str],
            shared: dict[str, str]) -> str:
    hit = _NODE_CACHE.get(key)
    if hit is None or hit[0] is not anchor:
        if len(_NODE_CACHE) >= _NODE_CACHE_MAX:
            _NODE_CACHE.clear()
        mine: dict[str, str] = {}
        iri = build(mine)
        hit = _NODE_CACHE[key] = (anchor, iri, mine)
    shared.update(hit[2])
    return hit[1]


def _derivation_node(kb_version: str | None, shared: dict[str, str]) -> str:
    """One mp:Derivation activity per KB version: every derived cell says which KB produced it."""
    iri = f"{DERIVED_BASE}derivation/{quote(kb_version or 'unknown', safe='')}"
    if iri not in shared:
        shared[iri] = (f"<{iri}> <{RDF_TYPE}> <{MP}Derivation> .\n"
                       + (f"<{iri}> <{MP}kbVersion> {_lit(kb_version)} .\n" if kb_version else ""))
    return f"<{iri}>"


def _cell_head(t: _Triples, node: str, e: CompatibilityEntry) -> None:
    mp = lambda n: f"<{MP}{n}>"  # noqa: E731
    t.add(node, f"<{RDF_TYPE}>", mp("CompatibilityAssertion"))
    t.lit(node, mp("status"), e.status)
    if e.runtime:
        t.add(node, mp("runtime"), _kb("runtime", e.runtime))
    if e.target:
        t.add(node, mp("target"), _kb("target", e.target))
    if e.hardware:
        t.add(node, mp("hardware"), _kb("hardware", e.hardware))
    if e.version_range:
        rng = e.version_range
        t.lit(node, mp("minVersion"), rng.min)
        t.lit(node, mp("maxVersion"), rng.max)
        if rng.min is not None:
            t.lit(node, mp("minInclusive"), rng.min_inclusive)
        if rng.max is not None:
            t.lit(node, mp("maxInclusive"), rng.max_inclusive)
        t.lit(node, mp("versionRange"), str(rng))
    # A runtime cell without a range holds for every version, as search reads it (index/facts.py).
    lo, hi = (range_keys(e.version_range) if e.version_range
              else (0, VERSION_KEY_OPEN_END) if e.runtime else (None, None))
    if lo is not None and hi is not None:
        t.lit(node, mp("minVersionKey"), lo)
        t.lit(node, mp("maxVersionKey"), hi)
    t.lit(node, mp("confidence"), e.confidence)
    t.lit(node, mp("hops"), len(e.path))


def _cell_body(t: _Triples, node: str, e: CompatibilityEntry) -> None:
    """Precision, format, ordered conversion steps and evidence nodes of a runtime (or verified) cell;
    the step and evidence nodes are named after the cell (`<cell>-step-0>`, `<cell>-evidence-0>`)."""
    base = node[:-1]
    mp = lambda n: f"<{MP}{n}>"  # noqa: E731
    typ = f"<{RDF_TYPE}>"
    t.lit(node, mp("precision"), e.precision)
    if e.format:
        t.add(node, mp("viaFormat"), _kb("format", e.format))
    for j, conv in enumerate(e.path):
        # Steps are nodes with an index: repeated properties alone would lose the chain's order.
        step = f"{base}-step-{j}>"
        t.add(node, mp("conversionStep"), step)
        t.add(step, typ, mp("ConversionStep"))
        t.lit(step, mp("stepIndex"), j)
        t.add(step, mp("converter"), _kb("converter", conv))
    if e.path:
        t.lit(node, mp("conversionPath"), " → ".join(e.path))
    seen: set[tuple[str, str, str | None, str | None]] = set()
    for ev in e.evidence:
        key = (ev.kind, ev.detail, ev.kb_fact, ev.artifact)
        if key in seen:
            continue
        enode = f"{base}-evidence-{len(seen)}>"
        seen.add(key)
        t.add(enode, typ, mp("Evidence"))
        t.lit(enode, mp("evidenceKind"), ev.kind)
        t.lit(enode, f"<{RDFS_COMMENT}>", ev.detail)
        t.lit(enode, mp("kbFact"), ev.kb_fact)
        t.lit(enode, mp("artifactPath"), ev.artifact)
        t.add(node, f"<{PROV}wasDerivedFrom>", enode)


def _kb_version(e: CompatibilityEntry) -> str | None:
    return next((ev.kb_version for ev in e.evidence if ev.kb_version), None)


def _derived_cells(record: ModelRecord, shared: dict[str, str]) -> list[str]:
    """The derived cells (native, declared, convertible; runtime, target and hardware) of the record's
    matrix, as shared nodes added to `shared`; the profile links to them with mp:compatibility.

    They depend only on the KB and on what the record's files are, not on the record's name:
    thousands of Hub models carry the very same cells, each stored once, named by a hash of its
    content. Target and hardware cells rest on a runtime cell (prov:wasDerivedFrom) and add their own
    KB fact."""
    runtime_nodes: dict[str, str] = {}
    out: dict[str, None] = {}
    for e in record.compatibility:
        if e.status in _VERIFY:
            continue  # a cell made by checks alone is the record's own (_own_compat_triples)
        if e.target is None and e.hardware is None:
            node = _cached(id(e), e, lambda sh, e=e: _runtime_cell(e, sh), shared)
            if e.runtime:
                runtime_nodes.setdefault(e.runtime, node)
        else:
            base_cell = runtime_nodes.get(e.runtime or "")
            facts = tuple(ev.kb_fact for ev in e.evidence if ev.kb_fact and not ev.kb_fact.startswith("cell/"))
            key = (e.status, e.runtime, e.target, e.hardware, e.precision, e.confidence, tuple(e.path),
                   e.format, None if e.version_range is None else str(e.version_range), facts, base_cell,
                   _kb_version(e))
            node = _cached(key, None, lambda sh, e=e, b=base_cell, f=facts: _derived_cell(e, b, f, sh), shared)
        out[node] = None
    return list(out)


def _own_compat_triples(t: _Triples, record: ModelRecord, s: str, shared: dict[str, str]) -> None:
    """What of the matrix is the record's own, linked from the record itself with mp:compatibility:
    `modelport verify` points inside a runtime cell (mp:VerifiedPoint, each with its
    mp:VerificationRun; the cell they sit in is the shared derived one its profile links to, or the
    record's own when checks alone make it) and older verified cells; and the weight bytes per
    precision its hardware cells were sized with (mp:memoryFootprint; the working memory is weights ×
    (1 + the KB's mp:activationOverhead))."""
    mp = lambda n: f"<{MP}{n}>"  # noqa: E731
    typ = f"<{RDF_TYPE}>"
    own = s[:-1]
    memory: dict[tuple[str | None, int], None] = {}
    for i, e in enumerate(record.compatibility):
        if e.verifications and e.runtime and e.target is None and e.hardware is None:
            cell = _verified_cell(t, own, s, i, e, shared)
            if cell.startswith(own):
                t.add(s, mp("compatibility"), cell)
        elif e.status in _VERIFY:
            node = f"{own}#compat-{i}>"
            t.add(s, mp("compatibility"), node)
            _cell_head(t, node, e)
            _cell_body(t, node, e)
            m = e.measurements
            act = f"{own}#compat-{i}-run>"
            t.add(node, f"<{PROV}wasGeneratedBy>", act)
            t.add(act, typ, mp("VerificationRun"))
            if isinstance(m.get("max_abs_diff"), int | float):
                t.lit(act, mp("maxAbsDiff"), float(m["max_abs_diff"]))
            tol = m.get("tolerance") if isinstance(m.get("tolerance"), dict) else {}
            for key in ("atol", "rtol"):
                if isinstance(tol.get(key), int | float):
                    t.lit(act, mp(key), float(tol[key]))
            t.lit(act, mp("runtimeVersion"), m.get("onnxruntime_version"))
            t.lit(act, mp("converterName"), m.get("converter"))
            t.lit(act, mp("error"), m.get("error"))
        elif e.hardware:
            wb = e.measurements.get("weights_bytes")
            if isinstance(wb, int):
                memory[(e.precision, wb)] = None
    for j, (precision, wb) in enumerate(memory):
        node = f"{own}#memory-{j}>"
        t.add(s, mp("memoryFootprint"), node)
        t.lit(node, mp("precision"), precision)
        t.lit(node, mp("weightsBytes"), wb)


def _verified_cell(t: _Triples, own: str, s: str, i: int, e: CompatibilityEntry, shared: dict[str, str]) -> str:
    """A runtime cell with `modelport verify` points: the derived cell stays a shared node with its
    own status and range; each point is the record's own mp:CompatibilityAssertion (also typed
    mp:VerifiedPoint) at one version (mp:atVersion, minVersion = maxVersion), inside the cell
    (mp:pointIn) and generated by its mp:VerificationRun. The status at a version is the point's
    where one is at that version, else the cell's where its range holds."""
    mp = lambda n: f"<{MP}{n}>"  # noqa: E731
    typ = f"<{RDF_TYPE}>"
    if e.status in _VERIFY:  # no derived cell: the checks alone make it, so it is the record's own
        cell = f"{own}#compat-{i}>"
        _cell_head(t, cell, e)
        _cell_body(t, cell, e)
        t.add(cell, f"<{PROV}wasGeneratedBy>", f"{own}#compat-{i}-point-0-run>")
    else:
        cell = _cached(id(e), e, lambda sh: _runtime_cell(e, sh), shared)
    for j, p in enumerate(e.verifications):
        node, run = f"{own}#compat-{i}-point-{j}>", f"{own}#compat-{i}-point-{j}-run>"
        rng = VersionRange(min=p.version, max=p.version, max_inclusive=True) if p.version else None
        pe = build(CompatibilityEntry, runtime=e.runtime, status=p.status, format=p.format, version_range=rng,
                   precision=e.precision, path=list(p.path), confidence="high" if p.status == "verified" else None,
                   evidence=list(p.evidence))
        _cell_head(t, node, pe)
        _cell_body(t, node, pe)
        t.add(node, typ, mp("VerifiedPoint"))
        t.lit(node, mp("atVersion"), p.version)
        t.add(node, mp("pointIn"), cell)
        t.add(node, f"<{PROV}wasDerivedFrom>", cell)
        t.add(node, f"<{PROV}wasGeneratedBy>", run)
        t.add(run, typ, mp("VerificationRun"))
        t.lit(run, mp("maxAbsDiff"), p.max_abs_diff)
        for key in ("atol", "rtol"):
            t.lit(run, mp(key), p.tolerance.get(key))
        t.lit(run, mp("runtimeVersion"), p.version)
        t.lit(run, mp("converterName"), p.measurements.get("converter"))
        t.lit(run, mp("platform"), p.platform)
        t.lit(run, mp("artifactSignature"), p.artifacts)
        t.lit(run, mp("error"), p.error)
        when = _when(p.checked_at)
        if when is not None:
            t.lit(run, f"<{PROV}endedAtTime>", when)
        t.add(s, mp("compatibility"), node)
    return cell


def _when(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def _runtime_cell(e: CompatibilityEntry, shared: dict[str, str]) -> str:
    t = _Triples()
    _cell_head(t, _SUBJ, e)
    _cell_body(t, _SUBJ, e)
    t.add(_SUBJ, f"<{PROV}wasGeneratedBy>", _derivation_node(_kb_version(e), shared))
    return _shared_node("cell", t, shared)


def _derived_cell(e: CompatibilityEntry, base_cell: str | None, facts: tuple[str, ...],
                  shared: dict[str, str]) -> str:
    """A target or hardware cell: its own KB facts, resting on the runtime cell it was derived from."""
    t = _Triples()
    _cell_head(t, _SUBJ, e)
    if base_cell:
        t.add(_SUBJ, f"<{PROV}wasDerivedFrom>", base_cell)
        for f in facts:
            t.lit(_SUBJ, f"<{MP}kbFact>", f)
    else:  # an umbrella target over several runtimes ("mobile"): its evidence is its own
        _cell_body(t, _SUBJ, e)
    t.add(_SUBJ, f"<{PROV}wasGeneratedBy>", _derivation_node(_kb_version(e), shared))
    return _shared_node("cell", t, shared)


_VERIFY = ("verified", "failed-verification")


def to_graph(record: ModelRecord, base: str) -> Graph:
    g = Graph()
    for prefix, ns in PREFIXES.items():
        g.bind(prefix, ns)
    g.parse(data=record_ntriples(record, base), format="nt")
    return g


@cache
def jsonld_context() -> dict:
    return json.loads((ontology_dir() / "context.jsonld").read_text())["@context"]


def to_jsonld(record: ModelRecord, base: str) -> str:
    return to_graph(record, base).serialize(format="json-ld", context=jsonld_context(), auto_compact=True)


def to_turtle(record: ModelRecord, base: str) -> str:
    # Oxigraph keeps every literal's lexical form; rdflib's Turtle writer shortens doubles.
    import pyoxigraph as ox

    triples = ox.parse(record_ntriples(record, base), format=ox.RdfFormat.N_TRIPLES)
    return ox.serialize(triples, format=ox.RdfFormat.TURTLE, prefixes=PREFIXES).decode()
