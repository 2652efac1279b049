"""The graph's shape: the lean shape answers every question the shape of 2026-12-02 answered (the
fixtures in tests/fixtures/graph, made by make_dump.py from that day's code), records validate against
the SHACL shapes, a Hub record's own triples stay few, and version ranges compare as versions."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyoxigraph as ox
import pytest
from pyshacl import validate
from rdflib import Graph

from modelport.index.graph import GraphStore
from modelport.schema.identity import record_iri
from modelport.schema.kb import ontology_dir
from modelport.schema.rdf import PREFIXES, range_keys, record_rdf, version_key
from modelport.schema.record import CompatibilityEntry, Evidence, ModelRecord, Provenance
from modelport.schema.versions import VersionRange

FIXTURES = Path(__file__).parent / "fixtures" / "graph"
DATE = "2026-12-02"
BASE = "http://graph.test"

# The same questions in today's shape: what many records share is reached through mp:profile, a
# record's own verified cells hang off the record (so `mp:profile?/mp:compatibility` reaches every
# cell), and keywords are one comma-separated schema:keywords text.
NEW_QUERIES = {
    "readme_onnx_names": "SELECT ?m ?name WHERE { ?m mp:profile/mp:format fmt:onnx ; schema:name ?name }",
    "readme_native_onnxruntime": """SELECT ?id ?range WHERE {
  ?m schema:identifier ?id ; mp:profile/mp:compatibility ?c .
  ?c mp:runtime rt:onnxruntime ; mp:status "native" ; mp:versionRange ?range .
}""",
    "web_models": "SELECT ?m ?name WHERE { ?m a fair4ml:MLModel ; schema:name ?name }",
    "tasks_libraries_license": """SELECT ?id ?task ?lib ?lic WHERE { ?m schema:identifier ?id ; mp:profile ?p .
  OPTIONAL { ?p fair4ml:mlTask ?task } OPTIONAL { ?p mp:library ?lib } OPTIONAL { ?p schema:license ?lic } }""",
    "source_kind_access": "SELECT ?id ?src ?kind ?acc WHERE { ?m schema:identifier ?id ; mp:source ?src ; "
                          "mp:profile [ mp:sourceKind ?kind ; mp:access ?acc ] }",
    "publisher": "SELECT ?id ?pub ?url WHERE { ?m schema:identifier ?id ; schema:publisher ?p . "
                 "?p schema:name ?pub . OPTIONAL { ?p schema:url ?url } }",
    "keywords": "SELECT ?id ?kw WHERE { ?m schema:identifier ?id ; schema:keywords ?kw }",
    "languages_datasets": "SELECT ?id ?lang ?ds WHERE { ?m schema:identifier ?id ; mp:profile ?p . "
                          "OPTIONAL { ?p schema:inLanguage ?lang } OPTIONAL { ?p fair4ml:trainedOn ?ds } }",
    "artifacts": """SELECT ?id ?name ?fmt ?size ?sha ?url WHERE { ?m schema:identifier ?id ; schema:distribution ?a .
  ?a schema:name ?name . OPTIONAL { ?a schema:encodingFormat ?fmt } OPTIONAL { ?a schema:contentSize ?size }
  OPTIONAL { ?a mp:sha256 ?sha } OPTIONAL { ?a schema:contentUrl ?url } }""",
    "evaluations": """SELECT ?id ?metric ?value ?ds ?split WHERE { ?m schema:identifier ?id ; fair4ml:hasEvaluation ?e .
  ?e mp:metric ?metric ; schema:value ?value . OPTIONAL { ?e fair4ml:evaluationDataset ?ds }
  OPTIONAL { ?e mp:split ?split } }""",
    "measured_latency": """SELECT ?id ?hw ?ms WHERE { ?m schema:identifier ?id ; mp:latency ?l .
  ?l mp:hardware ?hw ; mp:latencyMs ?ms ; mp:measured true }""",
    "memory": """SELECT ?id ?prec ?wb WHERE { ?m schema:identifier ?id ; mp:memoryFootprint ?f .
  ?f mp:weightsBytes ?wb . OPTIONAL { ?f mp:precision ?prec } }""",
    "all_cells": """SELECT ?id ?status ?rt ?tgt ?hw ?range ?prec ?conf WHERE {
  ?m schema:identifier ?id ; mp:profile?/mp:compatibility ?c . ?c mp:status ?status .
  OPTIONAL { ?c mp:runtime ?rt } OPTIONAL { ?c mp:target ?tgt } OPTIONAL { ?c mp:hardware ?hw }
  OPTIONAL { ?c mp:versionRange ?range } OPTIONAL { ?c mp:precision ?prec } OPTIONAL { ?c mp:confidence ?conf } }""",
    "conversion_steps": """SELECT ?id ?rt ?tgt ?i ?conv WHERE {
  ?m schema:identifier ?id ; mp:profile?/mp:compatibility ?c . ?c mp:conversionStep ?s .
  OPTIONAL { ?c mp:runtime ?rt } OPTIONAL { ?c mp:target ?tgt }
  ?s mp:stepIndex ?i ; mp:converter ?conv }""",
    "verified_runs": """SELECT ?id ?diff WHERE { ?m schema:identifier ?id ; mp:compatibility ?c .
  ?c mp:status "verified" ; prov:wasGeneratedBy ?run . ?run mp:maxAbsDiff ?diff }""",
    # the specific lineage relations (each an rdfs:subPropertyOf prov:wasDerivedFrom in the ontology)
    "lineage": "SELECT ?id ?base WHERE { ?m schema:identifier ?id ; "
               "fair4ml:fineTunedFrom|mp:derivedFrom|mp:adapterOf|mp:quantizedFrom|mp:mergedFrom|mp:variantOf ?base }",
    "dates_counts": """SELECT ?id ?created ?modified ?dl ?likes ?params ?size ?version WHERE {
  ?m schema:identifier ?id .
  OPTIONAL { ?m schema:dateCreated ?created } OPTIONAL { ?m schema:dateModified ?modified }
  OPTIONAL { ?m mp:downloads ?dl } OPTIONAL { ?m mp:likes ?likes } OPTIONAL { ?m mp:parameterCount ?params }
  OPTIONAL { ?m mp:sizeBytes ?size } OPTIONAL { ?m schema:version ?version } }""",
    "links": "SELECT ?id ?url WHERE { ?m schema:identifier ?id . { ?m schema:url ?url } UNION "
             "{ ?m schema:citation ?url } UNION { ?m rdfs:seeAlso ?url } UNION { ?m prov:hadPrimarySource ?url } }",
    "harvester_hash": "SELECT ?id ?h ?hash WHERE { ?m schema:identifier ?id ; mp:profile/mp:harvester ?h ; "
                      "mp:contentHash ?hash }",
}


def _rows(store: ox.Store, query: str) -> list[list[str | None]]:
    res = store.query(query, use_default_graph_as_union=True, prefixes=dict(PREFIXES))
    return sorted(([None if t is None else str(t) for t in sol] for sol in res), key=lambda r: [x or "" for x in r])


def _split_keywords(rows: list[list[str | None]]) -> list[list[str | None]]:
    """(id, one comma-separated keywords text) → (id, keyword) rows, as the old shape had them."""
    out = []
    for rid, text in rows:
        # rows hold literals in N-Triples syntax: strip the quotes
        assert text is not None and text.startswith('"')
        for kw in text[1:-1].split(", "):
            out.append([rid, f'"{kw}"'])
    return sorted(out, key=lambda r: [x or "" for x in r])


@pytest.fixture(scope="module")
def old() -> dict:
    with gzip.open(FIXTURES / f"answers-{DATE}.json.gz", "rt", encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def records() -> list[ModelRecord]:
    with gzip.open(FIXTURES / "records.jsonl.gz", "rt", encoding="utf-8") as f:
        return [ModelRecord.model_validate_json(line) for line in f]


@pytest.fixture(scope="module")
def lean(records: list[ModelRecord]) -> GraphStore:
    g = GraphStore(None)
    shared: dict[str, str] = {}
    own = []
    for r in records:
        x = record_rdf(r, BASE)
        shared.update(x.shared)
        own.append((r.iri, x.own))
    g.add_shared(shared)
    g.add_new(own)
    return g


def test_the_dump_of_the_old_shape_gives_the_recorded_answers(old: dict) -> None:
    """The committed answers are those of the committed dump (the baseline is what it says)."""
    store = ox.Store()
    with gzip.open(FIXTURES / f"dump-{DATE}.nq.gz", "rb") as f:
        store.bulk_load(f.read(), format=ox.RdfFormat.N_QUADS)
    assert len(store) == old["quads"]
    for name in ("readme_onnx_names", "readme_native_onnxruntime", "web_models", "all_cells", "artifacts"):
        assert _rows(store, old["queries"][name]) == old["answers"][name], name


@pytest.mark.parametrize("name", sorted(NEW_QUERIES))
def test_the_lean_shape_answers_what_the_old_shape_answered(name: str, old: dict, lean: GraphStore) -> None:
    assert name in old["answers"]
    got = _rows(lean.store, NEW_QUERIES[name])
    if name == "keywords":
        got = _split_keywords(got)
    assert got == old["answers"][name]
    assert got or name == "verified_runs"  # every question but one has answers in the fixture


def test_the_example_queries_in_the_readme_and_on_the_web_page_are_the_lean_ones(old: dict) -> None:
    """The README and the web page show queries of today's shape, not the old ones."""
    root = Path(__file__).parent.parent
    readme = root.joinpath("README.md").read_text(encoding="utf-8")
    assert "mp:profile/mp:format fmt:onnx" in readme and "mp:profile/mp:compatibility" in readme
    assert "?m mp:format fmt:onnx" not in readme and "?m schema:identifier ?id ; mp:compatibility ?c" not in readme


def test_a_hub_record_owns_few_triples_and_shares_the_rest(records: list[ModelRecord]) -> None:
    hub = [r for r in records if r.source_kind == "huggingface" and r.provenance.harvester == "huggingface"]
    assert len(hub) >= 60
    own = [record_rdf(r, BASE).own for r in hub]
    for text in own:
        # no derived cell, estimate or profile fact is repeated per record
        assert "/derived/cell/" not in text and "roofline" not in text and "#sourceKind" not in text
        assert text.count("<https://w3id.org/modelport/ns#profile>") == 1
    mean = sum(t.count("\n") for t in own) / len(own)
    assert mean < 60, mean  # was 175 (bench/results/graph-floor-2026-11-23.md); measured in bench/


def test_records_replace_and_remove_as_a_whole(records: list[ModelRecord]) -> None:
    """A record's own nodes (artifacts, evaluations, verified cells and their runs) go with it, and
    nothing of any other record does: replacing or removing one record leaves its neighbours' triples
    exactly as they were (a delete once matched every triple of the default graph)."""
    r = next(x for x in records if any(c.status == "verified" for c in x.compatibility) and x.artifacts
             and x.evaluations)
    others = [x for x in records if x.id != r.id][:5]
    g = GraphStore(None)
    x = record_rdf(r, BASE)
    g.add_shared(x.shared)
    g.add_new([(r.iri, x.own)])
    shared_quads = len(g.store) - x.own.count("\n")
    for o in others:
        y = record_rdf(o, BASE)
        g.add_shared(y.shared)
        g.add_new([(o.iri, y.own)])

    def neighbours() -> set[ox.Quad]:
        return {q for q in g.store.quads_for_pattern(None, None, None, ox.DefaultGraph())
                if any(str(q.subject.value).startswith(o.iri) for o in others)}

    before = neighbours()
    assert len(before) == sum(record_rdf(o, BASE).own.count("\n") for o in others)
    g.replace([(r.iri, record_rdf(r.model_copy(update={"evaluations": [], "artifacts": []}), BASE).own)])
    assert not [q for q in g.store.quads_for_pattern(None, ox.NamedNode(PREFIXES["schema"] + "value"), None)
                if str(q.subject.value).startswith(r.iri + "#")]  # its evaluations went with the old version
    assert g.has_record(r.iri)
    assert neighbours() == before and all(g.has_record(o.iri) for o in others)
    g.remove([r.iri])
    assert not g.has_record(r.iri) and neighbours() == before
    g.remove([o.iri for o in others])
    # no record triple is left; every shared node stays, whole
    assert not list(g.store.quads_for_pattern(None, None, None, ox.DefaultGraph()))
    shared = {k: v for y in [x, *(record_rdf(o, BASE) for o in others)] for k, v in y.shared.items()}
    assert len(g.store) == sum(nt.count("\n") for nt in shared.values()) and shared_quads > 0


def test_the_shapes_accept_the_lean_records(records: list[ModelRecord]) -> None:
    data = Graph()
    shared: dict[str, str] = {}
    chosen = [r for i, r in enumerate(records) if i % 4 == 0 or any(c.status in ("verified", "failed-verification")
                                                                     for c in r.compatibility)]
    for r in chosen:
        x = record_rdf(r, BASE)
        shared.update(x.shared)
        data.parse(data=x.own, format="nt")
    data.parse(data="".join(shared.values()), format="nt")
    shapes = Graph().parse(ontology_dir() / "shapes.ttl", format="turtle")
    conforms, _, report = validate(data, shacl_graph=shapes, inference="none", allow_warnings=False)
    assert conforms, report[:5000]


# -- comparable versions ------------------------------------------------------------------------
def test_version_keys_order_like_versions() -> None:
    keys = [version_key(v) for v in ("0.9", "1.9", "1.10", "1.16", "1.16.1", "2", "2.0.0.1", "10.0")]
    assert all(k is not None for k in keys) and keys == sorted(keys) and len(set(keys)) == len(keys)
    assert version_key("1.16") == 1_0016_0000_0000 and version_key("1.16.0") == version_key("1.16")
    assert version_key("20240101") is None and version_key("not a version") is None
    assert range_keys(VersionRange(min="1.9", max="1.10")) == (version_key("1.9"), version_key("1.10"))
    lo, hi = range_keys(VersionRange(min="1.9", min_inclusive=False, max="1.10", max_inclusive=True))
    assert lo == version_key("1.9") + 1 and hi == version_key("1.10") + 1  # type: ignore[operator]


def _with_ranges(ranges: dict[str, VersionRange]) -> list[ModelRecord]:
    from datetime import UTC, datetime

    out = []
    for name, rng in ranges.items():
        r = ModelRecord(id=f"t:{name}", source="t", source_kind="mlflow", local_id=name, name=name,
                        provenance=Provenance(harvested_at=datetime(2026, 12, 2, tzinfo=UTC), harvester="t",
                                              harvester_version="1", content_hash="0" * 64),
                        compatibility=[CompatibilityEntry(
                            runtime="onnxruntime", format="onnx", status="native", version_range=rng, confidence="high",
                            evidence=[Evidence(kind="kb", detail=f"range {rng}", kb_version="t")])])
        r.iri = record_iri(BASE, r.id)
        out.append(r)
    return out


def test_ranges_containing_a_version_are_one_filter() -> None:
    """The README's query: ">=1.9" and ">=1.16" contain 1.16, "<1.10" does not — compared as text, "1.9"
    sorts after "1.16" and the answer was wrong."""
    recs = _with_ranges({"ge-1.9": VersionRange(min="1.9"), "ge-1.16": VersionRange(min="1.16"),
                         "lt-1.10": VersionRange(max="1.10"), "1.9-to-1.16": VersionRange(min="1.9", max="1.16"),
                         "1.9-to-1.16-incl": VersionRange(min="1.9", max="1.16", max_inclusive=True),
                         "gt-1.16": VersionRange(min="1.16", min_inclusive=False)})
    g = GraphStore(None)
    for r in recs:
        x = record_rdf(r, BASE)
        g.add_shared(x.shared)
        g.add_new([(r.iri, x.own)])
    q = """SELECT ?id WHERE {
  ?m schema:identifier ?id ; mp:profile/mp:compatibility ?c .
  ?c mp:runtime rt:onnxruntime ; mp:minVersionKey ?lo ; mp:maxVersionKey ?hi .
  FILTER(?lo <= 1001600000000 && 1001600000000 < ?hi)
}"""
    got = {row[0].value for row in g.store.query(q, use_default_graph_as_union=True, prefixes=dict(PREFIXES))}
    assert got == {"t:ge-1.9", "t:ge-1.16", "t:1.9-to-1.16-incl"}
    text = """SELECT ?id WHERE { ?m schema:identifier ?id ; mp:profile/mp:compatibility ?c .
  ?c mp:minVersion ?v . FILTER(?v <= "1.16") }"""
    wrong = {row[0].value for row in g.store.query(text, use_default_graph_as_union=True, prefixes=dict(PREFIXES))}
    assert "t:ge-1.9" not in wrong  # why the keys exist: as text, "1.9" > "1.16"
