"""Record → RDF: schema.org first, FAIR4ML and ML-Schema where schema.org has no term, `mp:` only
for the compatibility matrix. Triples are written as N-Triples text because the graph store
(Oxigraph) parses that in Rust far faster than rdflib can build term objects; `to_graph` gives the
same triples as an rdflib Graph for serialization (Turtle, JSON-LD) and SHACL validation."""

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
from modelport.schema.record import CompatibilityEntry, ModelRecord, build
from modelport.schema.versions import VersionRange

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
    """The record's own triples, each node it owns named `<record IRI>#<part>`; the shared nodes it
    links to are added to `shared`."""
    t = _Triples()
    s = _iri(record.iri)
    own = s[:-1]  # `<record IRI` — its nodes append a fragment of safe characters and `>`
    sch = lambda n: f"<{SCHEMA}{n}>"  # noqa: E731
    f4 = lambda n: f"<{FAIR4ML}{n}>"  # noqa: E731
    mp = lambda n: f"<{MP}{n}>"  # noqa: E731
    t.add(s, f"<{RDF_TYPE}>", f4("MLModel"))
    t.add(s, f"<{RDF_TYPE}>", sch("CreativeWork"))
    t.lit(s, sch("identifier"), record.id)
    t.lit(s, sch("name"), record.name)
    t.lit(s, sch("description"), record.description)
    t.lit(s, mp("source"), record.source)
    t.lit(s, mp("sourceKind"), record.source_kind)
    t.lit(s, mp("access"), record.access)
    if record.license:
        lic = license_iri(record.license)
        t.add(s, sch("license"), _iri(lic) if lic else _lit(record.license))
    for i, a in enumerate(record.authors):
        node = f"{own}#author-{i}>"
        t.add(s, sch("author"), node)
        t.add(node, f"<{RDF_TYPE}>", sch("Person" if a.kind == "person" else "Organization"))
        t.lit(node, sch("name"), a.name)
    if record.publisher:
        node = f"{own}#publisher>"
        t.add(s, sch("publisher"), node)
        t.add(s, f4("sharedBy"), node)
        t.add(node, f"<{RDF_TYPE}>", sch("Person" if record.publisher.kind == "person" else "Organization"))
        t.lit(node, sch("name"), record.publisher.name)
        if record.publisher.url:
            t.add(node, sch("url"), url_term(record.publisher.url))
    for task in record.tasks:
        t.add(s, f4("mlTask"), _kb("task", task))
    for lib in record.frameworks:
        t.add(s, mp("library"), _kb("library", lib))
    for fmt in record.formats:
        t.add(s, mp("format"), _kb("format", fmt))
    for kw in record.keywords:
        t.lit(s, sch("keywords"), kw)
    for lang in record.languages:
        t.lit(s, sch("inLanguage"), lang)
    for i, art in enumerate(record.artifacts):
        node = f"{own}#artifact-{i}>"
        t.add(s, sch("distribution"), node)
        t.add(node, f"<{RDF_TYPE}>", sch("DataDownload"))
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
    t.lit(s, mp("architecture"), record.architecture)
    for b in record.base_models:
        target = _iri(record_iri(base, b.ref)) if ":" in b.ref else _lit(b.ref)
        prop = {"finetune": f4("fineTunedFrom"), "adapter": mp("adapterOf"), "quantized": mp("quantizedFrom"),
                "merge": mp("mergedFrom"), "variant": mp("variantOf")}.get(b.relation, mp("derivedFrom"))
        t.add(s, prop, target)
        t.add(s, f"<{PROV}wasDerivedFrom>", target)
    for ds in record.training_datasets:
        t.add(s, f4("trainedOn"), _kb("dataset", ds))
    for i, ev in enumerate(record.evaluations):
        node = f"{own}#eval-{i}>"
        t.add(s, f4("hasEvaluation"), node)
        t.add(node, f"<{RDF_TYPE}>", f4("MLModelEvaluation"))
        t.add(node, f"<{RDF_TYPE}>", f"<{MLS}ModelEvaluation>")
        t.add(node, mp("metric"), _kb("metric", ev.metric))
        t.lit(node, f4("evaluationMetrics"), ev.metric_name or ev.metric)
        t.lit(node, sch("value"), float(ev.value))
        if ev.dataset:
            t.add(node, f4("evaluationDataset"), _kb("dataset", ev.dataset))
        t.lit(node, mp("split"), ev.split)
        t.lit(node, mp("datasetConfig"), ev.dataset_config)
        t.lit(node, mp("verified"), ev.verified)
        t.lit(node, mp("provenance"), ev.provenance)
        if ev.source and ev.source.startswith("http"):
            t.add(node, f"<{PROV}wasDerivedFrom>", url_term(ev.source))
    for i, lat in enumerate(record.latencies):
        node = f"{own}#latency-{i}>"
        t.add(s, mp("latency"), node)
        t.add(node, f"<{RDF_TYPE}>", mp("LatencyMeasurement"))
        t.add(node, mp("hardware"), _kb("hardware", lat.hardware))
        t.lit(node, mp("latencyMs"), float(lat.latency_ms))
        t.lit(node, mp("measured"), lat.measured)
        if lat.source == ESTIMATE_SOURCE and lat.method:
            # The estimate's arithmetic (weight bytes, bandwidth, peak) is in mp:memoryFootprint and
            # the KB's hardware profile; the graph keeps the method's name, not a per-record sentence.
            t.lit(node, mp("method"), lat.method.split(":", 1)[0] + "; batch 1, datasheet peaks, no kernel "
                  "overheads — a lower bound, not a measurement")
        else:
            t.lit(node, mp("method"), lat.method)
        if lat.runtime:
            t.add(node, mp("runtime"), _kb("runtime", lat.runtime))
    t.lit(s, sch("version"), record.version)
    if record.version_group:
        group = record_iri(base, record.version_group)
        t.add(s, sch("isPartOf"), _iri(group))
        t.add(_iri(group), f"<{RDF_TYPE}>", sch("CreativeWorkSeries"))
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
    _compat_triples(t, record, s, shared)
    prov = record.provenance
    if prov.source_url:
        t.add(s, f"<{PROV}hadPrimarySource>", url_term(prov.source_url))
    t.lit(s, f"<{PROV}generatedAtTime>", prov.harvested_at)
    t.lit(s, mp("harvester"), f"{prov.harvester}/{prov.harvester_version}")
    t.lit(s, mp("contentHash"), prov.content_hash)
    for d in prov.defaults_applied:
        t.lit(s, mp("defaultApplied"), d)
    return "\n".join(t.lines) + "\n"


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


def _compat_triples(t: _Triples, record: ModelRecord, s: str, shared: dict[str, str]) -> None:
    """The matrix as mp:CompatibilityAssertion nodes with PROV-O provenance.

    Derived cells (native, declared, convertible; runtime, target and hardware) depend only on the
    KB and on what the record's files are, not on the record's name: thousands of Hub models carry the
    very same cells. They are shared nodes named by a hash of their content, each stored once, and a
    record links to them with mp:compatibility — a Hub record's graph is a few dozen triples for the
    matrix instead of hundreds, and a SPARQL pattern `?m mp:compatibility ?c . ?c mp:runtime …` reads
    the same. Target and hardware cells rest on a runtime cell (prov:wasDerivedFrom) and add their own
    KB fact; what is the record's own (its weight bytes per precision) hangs off the record. Cells
    from `modelport verify` are the record's own nodes, each with its mp:VerificationRun and numbers."""
    mp = lambda n: f"<{MP}{n}>"  # noqa: E731
    typ = f"<{RDF_TYPE}>"
    own = s[:-1]
    runtime_nodes: dict[str, str] = {}
    memory: dict[tuple[str | None, int, int], None] = {}
    for i, e in enumerate(record.compatibility):
        if e.verifications and e.runtime and e.target is None and e.hardware is None:
            node = _verified_cell(t, own, s, i, e, shared)
            runtime_nodes.setdefault(e.runtime, node)
        elif e.status in _VERIFY:
            node = f"{own}#compat-{i}>"
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
        elif e.target is None and e.hardware is None:
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
            if e.hardware:
                wb, kb_ = e.measurements.get("weights_bytes"), e.measurements.get("working_bytes")
                if isinstance(wb, int) and isinstance(kb_, int):
                    memory[(e.precision, wb, kb_)] = None
        t.add(s, mp("compatibility"), node)
    for j, (precision, wb, kb_) in enumerate(memory):
        node = f"{own}#memory-{j}>"
        t.add(s, mp("memoryFootprint"), node)
        t.add(node, typ, mp("MemoryFootprint"))
        t.lit(node, mp("precision"), precision)
        t.lit(node, mp("weightsBytes"), wb)
        t.lit(node, mp("workingBytes"), kb_)


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
