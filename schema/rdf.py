"""Record → RDF: schema.org first, FAIR4ML and ML-Schema where schema.org has no term, `mp:` only
for the compatibility matrix. Triples are written as N-Triples text because the graph store
(Oxigraph) parses that in Rust far faster than rdflib can build term objects; `to_graph` gives the
same triples as an rdflib Graph for serialization (Turtle, JSON-LD) and SHACL validation."""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache
from urllib.parse import quote

from rdflib import Graph

from modelport.schema.identity import record_iri
from modelport.schema.kb import KB_BASE, ontology_dir
from modelport.schema.record import ModelRecord

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

PREFIXES = {"schema": SCHEMA, "fair4ml": FAIR4ML, "mls": MLS, "mp": MP, "prov": PROV, "xsd": XSD,
            "rdfs": "http://www.w3.org/2000/01/rdf-schema#", "skos": "http://www.w3.org/2004/02/skos/core#",
            "task": KB_BASE + "task/", "fmt": KB_BASE + "format/", "rt": KB_BASE + "runtime/",
            "lib": KB_BASE + "library/", "tgt": KB_BASE + "target/", "hw": KB_BASE + "hardware/",
            "met": KB_BASE + "metric/", "ds": KB_BASE + "dataset/", "conv": KB_BASE + "converter/"}

_ESC = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r"})


def _iri(value: str) -> str:
    # Keep the IRI valid whatever the source put into an id (spaces, quotes, braces …).
    return "<" + quote(value, safe="/:#?&=@%+~.,;!$'()*[]-_") + ">"


def _lit(value: object) -> str:
    if isinstance(value, bool):
        return f'"{str(value).lower()}"^^<{XSD}boolean>'
    if isinstance(value, int):
        return f'"{value}"^^<{XSD}integer>'
    if isinstance(value, float):
        return f'"{value!r}"^^<{XSD}double>'
    if isinstance(value, datetime):
        return f'"{value.isoformat()}"^^<{XSD}dateTime>'
    return '"' + str(value).translate(_ESC) + '"'


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


def license_iri(spdx: str) -> str | None:
    return None if spdx.startswith("LicenseRef-") else SPDX + spdx


def record_ntriples(record: ModelRecord, base: str) -> str:
    """All triples of one record, each node it owns named `<record IRI>#<part>`."""
    t = _Triples()
    s = _iri(record.iri)
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
        node = _iri(f"{record.iri}#author-{i}")
        t.add(s, sch("author"), node)
        t.add(node, f"<{RDF_TYPE}>", sch("Person" if a.kind == "person" else "Organization"))
        t.lit(node, sch("name"), a.name)
    if record.publisher:
        node = _iri(f"{record.iri}#publisher")
        t.add(s, sch("publisher"), node)
        t.add(s, f4("sharedBy"), node)
        t.add(node, f"<{RDF_TYPE}>", sch("Person" if record.publisher.kind == "person" else "Organization"))
        t.lit(node, sch("name"), record.publisher.name)
        if record.publisher.url:
            t.add(node, sch("url"), _iri(record.publisher.url))
    for task in record.tasks:
        t.add(s, f4("mlTask"), _iri(kb_iri("task", task)))
    for lib in record.frameworks:
        t.add(s, mp("library"), _iri(kb_iri("library", lib)))
    for fmt in record.formats:
        t.add(s, mp("format"), _iri(kb_iri("format", fmt)))
    for kw in record.keywords:
        t.lit(s, sch("keywords"), kw)
    for lang in record.languages:
        t.lit(s, sch("inLanguage"), lang)
    for i, art in enumerate(record.artifacts):
        node = _iri(f"{record.iri}#artifact-{i}")
        t.add(s, sch("distribution"), node)
        t.add(node, f"<{RDF_TYPE}>", sch("DataDownload"))
        t.lit(node, sch("name"), art.path)
        if art.format:
            t.add(node, sch("encodingFormat"), _iri(kb_iri("format", art.format)))
        t.lit(node, sch("contentSize"), art.size_bytes)
        t.lit(node, mp("sha256"), art.sha256)
        t.lit(node, mp("quantization"), art.quantization)
        if art.url:
            t.add(node, sch("contentUrl"), _iri(art.url))
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
        t.add(s, f4("trainedOn"), _iri(kb_iri("dataset", ds)))
    for i, ev in enumerate(record.evaluations):
        node = _iri(f"{record.iri}#eval-{i}")
        t.add(s, f4("hasEvaluation"), node)
        t.add(node, f"<{RDF_TYPE}>", f4("MLModelEvaluation"))
        t.add(node, f"<{RDF_TYPE}>", f"<{MLS}ModelEvaluation>")
        t.add(node, mp("metric"), _iri(kb_iri("metric", ev.metric)))
        t.lit(node, f4("evaluationMetrics"), ev.metric_name or ev.metric)
        t.lit(node, sch("value"), float(ev.value))
        if ev.dataset:
            t.add(node, f4("evaluationDataset"), _iri(kb_iri("dataset", ev.dataset)))
        t.lit(node, mp("split"), ev.split)
        t.lit(node, mp("datasetConfig"), ev.dataset_config)
        t.lit(node, mp("verified"), ev.verified)
        t.lit(node, mp("provenance"), ev.provenance)
        if ev.source and ev.source.startswith("http"):
            t.add(node, f"<{PROV}wasDerivedFrom>", _iri(ev.source))
    for i, lat in enumerate(record.latencies):
        node = _iri(f"{record.iri}#latency-{i}")
        t.add(s, mp("latency"), node)
        t.add(node, f"<{RDF_TYPE}>", mp("LatencyMeasurement"))
        t.add(node, mp("hardware"), _iri(kb_iri("hardware", lat.hardware)))
        t.lit(node, mp("latencyMs"), float(lat.latency_ms))
        t.lit(node, mp("measured"), lat.measured)
        t.lit(node, mp("method"), lat.method)
        if lat.runtime:
            t.add(node, mp("runtime"), _iri(kb_iri("runtime", lat.runtime)))
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
            t.add(s, sch("url"), _iri(link.url))
        elif link.rel == "paper":
            t.add(s, sch("citation"), _iri(link.url))
        else:
            t.add(s, f"<{RDFS_SEEALSO}>", _iri(link.url))
    t.lit(s, f4("intendedUse"), record.card.intended_use)
    lim = "\n\n".join(x for x in (record.card.limitations, record.card.bias) if x)
    t.lit(s, f4("modelRisksBiasLimitations"), lim or None)
    for req in record.requirements:
        t.lit(s, sch("softwareRequirements"), f"{req.name}{req.specifier}")
    _compat_triples(t, record, s)
    prov = record.provenance
    if prov.source_url:
        t.add(s, f"<{PROV}hadPrimarySource>", _iri(prov.source_url))
    t.lit(s, f"<{PROV}generatedAtTime>", prov.harvested_at)
    t.lit(s, mp("harvester"), f"{prov.harvester}/{prov.harvester_version}")
    t.lit(s, mp("contentHash"), prov.content_hash)
    for d in prov.defaults_applied:
        t.lit(s, mp("defaultApplied"), d)
    return "\n".join(t.lines) + "\n"


def _compat_triples(t: _Triples, record: ModelRecord, s: str) -> None:
    """The matrix as mp:CompatibilityAssertion nodes with PROV-O provenance.

    Runtime cells carry their evidence (one node per distinct piece of evidence, shared between
    cells) and their conversion steps. Target and hardware cells rest on a runtime cell: they link
    to it with prov:wasDerivedFrom and add only their own KB fact, which keeps a record's graph a
    few hundred triples instead of thousands. Derived cells share one mp:Derivation activity (with
    the KB version); each verification is an mp:VerificationRun with its numbers."""
    mp = lambda n: f"<{MP}{n}>"  # noqa: E731
    typ = f"<{RDF_TYPE}>"
    derivation = _iri(f"{record.iri}#derivation")
    runtime_nodes: dict[str, str] = {}
    evidence_nodes: dict[tuple[str, str, str | None, str | None], str] = {}
    kb_version = None
    for i, e in enumerate(record.compatibility):
        if e.runtime and e.target is None and e.hardware is None and e.status not in _VERIFY:
            runtime_nodes.setdefault(e.runtime, _iri(f"{record.iri}#compat-{i}"))
    for i, e in enumerate(record.compatibility):
        node = _iri(f"{record.iri}#compat-{i}")
        t.add(s, mp("compatibility"), node)
        t.add(node, typ, mp("CompatibilityAssertion"))
        t.lit(node, mp("status"), e.status)
        if e.runtime:
            t.add(node, mp("runtime"), _iri(kb_iri("runtime", e.runtime)))
        if e.target:
            t.add(node, mp("target"), _iri(kb_iri("target", e.target)))
        if e.hardware:
            t.add(node, mp("hardware"), _iri(kb_iri("hardware", e.hardware)))
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
        base_cell = runtime_nodes.get(e.runtime or "") if (e.target or e.hardware) else None
        if base_cell and base_cell != node:
            t.add(node, f"<{PROV}wasDerivedFrom>", base_cell)
            for ev in e.evidence:
                if ev.kb_fact and not ev.kb_fact.startswith("cell/"):
                    t.lit(node, mp("kbFact"), ev.kb_fact)
            if e.hardware:
                for key, prop in (("weights_bytes", "weightsBytes"), ("working_bytes", "workingBytes")):
                    if isinstance(e.measurements.get(key), int):
                        t.lit(node, mp(prop), e.measurements[key])
        else:
            t.lit(node, mp("precision"), e.precision)
            if e.format:
                t.add(node, mp("viaFormat"), _iri(kb_iri("format", e.format)))
            for j, conv in enumerate(e.path):
                # Steps are nodes with an index: repeated properties alone would lose the chain's order.
                step = _iri(f"{record.iri}#compat-{i}-step-{j}")
                t.add(node, mp("conversionStep"), step)
                t.add(step, typ, mp("ConversionStep"))
                t.lit(step, mp("stepIndex"), j)
                t.add(step, mp("converter"), _iri(kb_iri("converter", conv)))
            if e.path:
                t.lit(node, mp("conversionPath"), " → ".join(e.path))
            for ev in e.evidence:
                key = (ev.kind, ev.detail, ev.kb_fact, ev.artifact)
                enode = evidence_nodes.get(key)
                if enode is None:
                    enode = evidence_nodes[key] = _iri(f"{record.iri}#evidence-{len(evidence_nodes)}")
                    t.add(enode, typ, mp("Evidence"))
                    t.lit(enode, mp("evidenceKind"), ev.kind)
                    t.lit(enode, f"<{RDFS_COMMENT}>", ev.detail)
                    t.lit(enode, mp("kbFact"), ev.kb_fact)
                    t.lit(enode, mp("artifactPath"), ev.artifact)
                kb_version = kb_version or ev.kb_version
                t.add(node, f"<{PROV}wasDerivedFrom>", enode)
        if e.status in _VERIFY:
            m = e.measurements
            act = _iri(f"{record.iri}#compat-{i}-run")
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
        else:
            t.add(node, f"<{PROV}wasGeneratedBy>", derivation)
    if record.compatibility:
        t.add(derivation, typ, mp("Derivation"))
        t.lit(derivation, mp("kbVersion"), kb_version)


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
