"""Every record any test stored in any catalog under this session's temp directory must convert to
RDF that conforms to ontology/shapes.ttl. tests/conftest.py runs that check once after every other
test, whatever the order or selection (moved to the end when collected, run at session finish when
a selection left it out)."""

from __future__ import annotations

import pytest
from pyshacl import validate
from rdflib import Graph
from rdflib.namespace import SH

from modelport.index.catalog import Catalog
from modelport.schema.identity import record_iri
from modelport.schema.kb import ontology_dir
from modelport.schema.rdf import record_ntriples


def test_every_record_of_the_suite_conforms_to_the_shapes(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.getbasetemp()
    data = Graph()
    count = 0
    for i, path in enumerate(sorted(root.rglob("catalog.sqlite"))):
        # Tests reuse ids and base IRIs across catalogs: give each catalog its own IRIs.
        base = f"http://shacl.test/{i}"
        cat = Catalog(path)
        for rec in cat.iter_records(include_deleted=True):
            rec.iri = record_iri(base, rec.id)
            data.parse(data=record_ntriples(rec, base), format="nt")
            count += 1
        cat.close()
    if count == 0:
        pytest.skip("no test in this run stored records (run the whole suite)")
    shapes = Graph().parse(ontology_dir() / "shapes.ttl", format="turtle")
    conforms, _, report = validate(data, shacl_graph=shapes, inference="none", allow_warnings=False)
    assert conforms, report[:5000]


def test_shapes_reject_a_broken_record() -> None:
    """The shapes are not vacuous: a record graph missing its name and with a bad status fails."""
    shapes = Graph().parse(ontology_dir() / "shapes.ttl", format="turtle")
    bad = Graph().parse(data="""
        @prefix fair4ml: <https://w3id.org/fair4ml#> . @prefix schema: <http://schema.org/> .
        @prefix mp: <https://w3id.org/modelport/ns#> . @prefix prov: <http://www.w3.org/ns/prov#> .
        <http://x/m> a fair4ml:MLModel ; schema:identifier "nocolon" ; mp:source "s" ;
            mp:compatibility <http://x/m#c> .
        <http://x/m#c> a mp:CompatibilityAssertion ; mp:status "probably" ; mp:hops 0 .
    """, format="turtle")
    conforms, results, _ = validate(bad, shacl_graph=shapes, inference="none")
    assert not conforms
    paths = {str(p) for p in results.objects(None, SH.resultPath)}
    assert {"http://schema.org/name", "http://schema.org/identifier", "https://w3id.org/modelport/ns#status",
            "http://www.w3.org/ns/prov#wasDerivedFrom"} <= paths
