"""The SPARQL 1.1 Service Description (https://www.w3.org/TR/sparql11-service-description/) that
GET /sparql without a query returns to a client asking for RDF: the endpoint, the query language, the
result formats, the dataset (the default graph is the union of every graph; the KB is a named graph)
and the limits a query runs under (mp:queryTimeLimit, mp:resultRowCap)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request
from fastapi.responses import Response
from rdflib import RDF, XSD, BNode, Graph, Literal, Namespace, URIRef

from modelport.api.sparql_routes import register_description
from modelport.schema.rdf import KB_GRAPH, PREFIXES
from modelport.settings import Settings

SD = Namespace("http://www.w3.org/ns/sparql-service-description#")
FORMATS = Namespace("http://www.w3.org/ns/formats/")
MP = Namespace(PREFIXES["mp"])
DCTERMS = Namespace("http://purl.org/dc/terms/")

# What a client may Accept for the description, and the rdflib serializer for each.
RDF_MEDIA = {"text/turtle": "turtle", "application/ld+json": "json-ld", "application/n-triples": "nt",
             "application/rdf+xml": "xml"}
# The result formats run_query offers (api/sparql_routes.py), as W3C format IRIs.
RESULT_FORMATS = ("SPARQL_Results_JSON", "SPARQL_Results_XML", "SPARQL_Results_CSV", "SPARQL_Results_TSV",
                  "Turtle", "JSON-LD", "N-Triples")


def description(settings: Settings, endpoint: str) -> Graph:
    g = Graph()
    g.bind("sd", SD)
    g.bind("formats", FORMATS)
    g.bind("mp", MP)
    g.bind("dcterms", DCTERMS)
    svc = URIRef(endpoint)
    g.add((svc, RDF.type, SD.Service))
    g.add((svc, SD.endpoint, svc))
    g.add((svc, SD.supportedLanguage, SD.SPARQL11Query))  # read-only: no SPARQL11Update
    g.add((svc, SD.feature, SD.UnionDefaultGraph))
    for f in RESULT_FORMATS:
        g.add((svc, SD.resultFormat, FORMATS[f]))
    g.add((svc, DCTERMS.description, Literal(
        "ModelPort's model catalog: records (schema.org / FAIR4ML, mp: for the compatibility matrix), the "
        "profiles and compatibility cells they share, and the knowledge base. The default graph is the union "
        "of all graphs; restrict a query to one source with `?m mp:source \"<name>\"`. Read-only.")))
    g.add((svc, MP.queryTimeLimit, Literal(settings.query_timeout_s, datatype=XSD.decimal)))
    g.add((svc, MP.resultRowCap, Literal(settings.max_results * 10, datatype=XSD.integer)))
    ds = BNode()
    g.add((svc, SD.defaultDataset, ds))
    g.add((ds, RDF.type, SD.Dataset))
    default = BNode()
    g.add((ds, SD.defaultGraph, default))
    g.add((default, RDF.type, SD.Graph))
    g.add((default, DCTERMS.description, Literal("the union of every graph: records, shared nodes and the KB")))
    kb = BNode()
    g.add((ds, SD.namedGraph, kb))
    g.add((kb, RDF.type, SD.NamedGraph))
    g.add((kb, SD.name, URIRef(KB_GRAPH)))
    g.add((kb, DCTERMS.description, Literal("the ModelPort vocabulary and knowledge base (formats, runtimes, "
                                            "converters, targets, hardware, tasks, metrics)")))
    return g


def describe(settings: Settings, media: str) -> Response:
    """The description as `media` (one of RDF_MEDIA)."""
    # Named from the configured base IRI, never from the request's Host header.
    endpoint = f"{settings.base_iri.rstrip('/')}/sparql"
    body = description(settings, endpoint).serialize(format=RDF_MEDIA[media])
    return Response(body, media_type=media, headers={"Vary": "Accept"})


def _view(media: str) -> Callable[[Request], Response]:
    def view(request: Request) -> Response:
        return describe(request.app.state.services.settings, media)
    return view


for _media in RDF_MEDIA:  # GET /sparql without a query, for a client accepting RDF (api/sparql_routes.py)
    register_description(_media, _view(_media))
