"""GET /sparql without a query: an RDF client gets the SPARQL 1.1 Service Description (endpoint, language,
result formats, dataset, limits), a browser the query page, anything else the protocol's error."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from rdflib import RDF, Graph, Literal, URIRef

from modelport.api.sparql_description import FORMATS, MP, SD
from modelport.schema.rdf import KB_GRAPH
from modelport.settings import Settings


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    from modelport.api.app import create_app

    settings = Settings(data_dir=tmp_path_factory.mktemp("sd") / "d", base_iri="http://models.example",
                        embeddings=False, query_timeout_s=7, max_results=100)
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.mark.parametrize(("accept", "fmt"), [("text/turtle", "turtle"), ("application/ld+json", "json-ld"),
                                             ("application/n-triples", "nt"),
                                             ("application/sparql-results+json;q=0, text/turtle", "turtle")])
def test_an_rdf_client_gets_the_service_description(client: TestClient, accept: str, fmt: str) -> None:
    r = client.get("/sparql", headers={"accept": accept, "host": "evil.example"})
    assert r.status_code == 200 and r.headers["content-type"].startswith(accept.split(",")[-1].strip())
    g = Graph().parse(data=r.text, format=fmt)
    svc = URIRef("http://models.example/sparql")  # from the configured base IRI, not the Host header
    assert (svc, RDF.type, SD.Service) in g and (svc, SD.endpoint, svc) in g
    assert (svc, SD.supportedLanguage, SD.SPARQL11Query) in g
    assert (svc, SD.supportedLanguage, SD.SPARQL11Update) not in g  # read-only
    assert (svc, SD.feature, SD.UnionDefaultGraph) in g
    assert {FORMATS.SPARQL_Results_JSON, FORMATS.SPARQL_Results_CSV, FORMATS.Turtle} <= set(
        g.objects(svc, SD.resultFormat))
    assert g.value(svc, MP.queryTimeLimit).toPython() == 7
    assert g.value(svc, MP.resultRowCap) == Literal(1000)
    ds = g.value(svc, SD.defaultDataset)
    names = {g.value(n, SD.name) for n in g.objects(ds, SD.namedGraph)}
    assert URIRef(KB_GRAPH) in names and g.value(ds, SD.defaultGraph) is not None
    assert "evil.example" not in r.text


def test_a_browser_gets_the_page_and_a_bare_client_the_error(client: TestClient) -> None:
    page = client.get("/sparql", headers={"accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    bare = client.get("/sparql", headers={"accept": "application/sparql-results+json"})
    assert bare.status_code == 400 and "missing SPARQL query" in bare.text
    refused = client.get("/sparql", headers={"accept": "text/turtle;q=0, application/sparql-results+json"})
    assert refused.status_code == 400
    # the page only when HTML is preferred (RFC 9110 weights), not whenever text/html is named
    turtle = client.get("/sparql", headers={"accept": "text/html;q=0.5, text/turtle"})
    assert turtle.status_code == 200 and turtle.headers["content-type"].startswith("text/turtle")
    html = client.get("/sparql", headers={"accept": "TEXT/HTML, text/turtle;q=0.5"})
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    # with a query, an RDF Accept is about the query's result as before
    ask = client.get("/sparql", params={"query": "ASK { ?s ?p ?o }"},
                     headers={"accept": "application/sparql-results+json"})
    assert ask.status_code == 200 and ask.json()["boolean"] is True
