"""SPARQL 1.1 Protocol endpoint (query only): GET ?query=, form POST and direct POST; results in
JSON, XML, CSV or TSV; graphs in Turtle, JSON-LD or N-Triples. Update is refused."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from rdflib import XSD, Literal
from rdflib.query import Result

from modelport.api.deps import services
from modelport.api.models_routes import negotiate
from modelport.index.graph import SparqlError, SparqlTimeout
from modelport.services import Services

router = APIRouter(tags=["sparql"])

RESULT_MEDIA = {"json": "application/sparql-results+json", "xml": "application/sparql-results+xml",
                "csv": "text/csv", "tsv": "text/tab-separated-values"}
RESULT_ALIASES = {"application/json": "json", "application/xml": "xml", "text/xml": "xml"}
GRAPH_MEDIA = {"turtle": "text/turtle", "json-ld": "application/ld+json", "nt": "application/n-triples"}


def _tsv(result: Result) -> str:
    """SPARQL 1.1 TSV results (rdflib ships a TSV parser but no serializer): `?var` headers and
    terms in Turtle syntax, tabs and newlines inside literals escaped."""
    lines = ["\t".join(f"?{v}" for v in result.vars or [])]
    for row in result.bindings:
        cells = []
        for v in result.vars or []:
            term = row.get(v)
            if isinstance(term, Literal) and term.datatype == XSD.string:
                term = Literal(str(term))  # RDF 1.1: a simple literal is an xsd:string; write it plainly
            cells.append("" if term is None else term.n3().replace("\t", "\\t").replace("\n", "\\n"))
        lines.append("\t".join(cells))
    return "\n".join(lines) + "\n"


def _accept(request: Request) -> str:
    accept = request.headers.get("accept", "")
    for alias, key in RESULT_ALIASES.items():
        accept = accept.replace(alias, RESULT_MEDIA[key])
    return accept


def _format_param(request: Request, offers: dict[str, str]) -> str | None:
    """`format`/`output` as a key or a media type; several clients (SPARQLWrapper among them) send both
    forms at once, so the first value that names an offer wins and unknown values fall back to Accept."""
    for name in ("format", "output"):
        for value in request.query_params.getlist(name):
            value = RESULT_ALIASES.get(value, value)
            if value in offers:
                return value
            for key, media in offers.items():
                if value == media:
                    return key
    return None


def run_query(svc: Services, query: str, request: Request) -> Response:
    if not query.strip():
        raise HTTPException(400, "missing SPARQL query (give it as `query`)")
    try:
        ans = svc.graph.query(query, timeout_s=svc.settings.query_timeout_s, max_rows=svc.settings.max_results * 10)
    except SparqlError as e:
        status = 403 if "Update" in str(e) else 400
        raise HTTPException(status, f"SPARQL: {e}") from e
    except SparqlTimeout as e:
        raise HTTPException(503, str(e)) from e
    headers = {"X-Result-Truncated": "true"} if ans.truncated else {}
    if ans.kind in ("SELECT", "ASK"):
        offers = RESULT_MEDIA if ans.kind == "SELECT" else {k: RESULT_MEDIA[k] for k in ("json", "xml")}
        key = negotiate(_accept(request), _format_param(request, offers), offers)
        body = _tsv(ans.result) if key == "tsv" else ans.result.serialize(format=key)
        return Response(body, media_type=offers[key], headers=headers)
    key = negotiate(request.headers.get("accept", ""), _format_param(request, GRAPH_MEDIA), GRAPH_MEDIA)
    return Response(ans.result.graph.serialize(format=key), media_type=GRAPH_MEDIA[key], headers=headers)


@router.get("/sparql")
def sparql_get(request: Request, svc: Annotated[Services, Depends(services)], query: str = "",
               format: str | None = None) -> Response:  # noqa: ARG001  (documented here, read by _format_param)
    """`?query=` (URL-encoded). `format` (json, xml, csv, tsv / turtle, json-ld, nt) overrides Accept;
    `format=html`, or a browser's GET without a query, gets the SPARQL page."""
    if "update" in request.query_params:
        raise HTTPException(403, "SPARQL Update is not accepted on this endpoint (read-only)")
    if format == "html" or (not query.strip() and "text/html" in request.headers.get("accept", "")):
        from modelport.api.sparql_page import render  # the SPARQL page, for a browser

        return render(request, svc, query)
    return run_query(svc, query, request)


@router.post("/sparql")
async def sparql_post(request: Request, svc: Annotated[Services, Depends(services)],
                      format: str | None = None) -> Response:  # noqa: ARG001
    """Form POST (`application/x-www-form-urlencoded`, `query=`) or direct POST
    (`application/sparql-query`). `application/sparql-update` and `update=` are refused with 403."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/sparql-query":
        query = (await request.body()).decode("utf-8", errors="replace")
    elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        if "update" in form:
            raise HTTPException(403, "SPARQL Update is not accepted on this endpoint (read-only)")
        query = str(form.get("query", ""))
    elif ctype == "application/sparql-update":
        raise HTTPException(403, "SPARQL Update is not accepted on this endpoint (read-only)")
    else:
        raise HTTPException(415, f"unsupported content type {ctype!r}; send application/sparql-query or a form")
    return run_query(svc, query, request)
