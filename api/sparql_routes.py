"""SPARQL 1.1 Protocol endpoint (query only): GET ?query=, form POST and direct POST; results in
JSON, XML, CSV or TSV; graphs in Turtle, JSON-LD or N-Triples. Update is refused."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response

from modelport.api.deps import services
from modelport.api.models_routes import negotiate
from modelport.index.graph import SparqlError, SparqlTimeout
from modelport.services import Services

router = APIRouter(tags=["sparql"])

RESULT_MEDIA = {"json": "application/sparql-results+json", "xml": "application/sparql-results+xml",
                "csv": "text/csv", "tsv": "text/tab-separated-values"}
RESULT_ALIASES = {"application/json": "json", "application/xml": "xml", "text/xml": "xml"}
GRAPH_MEDIA = {"turtle": "text/turtle", "json-ld": "application/ld+json", "nt": "application/n-triples"}


def _accept(request: Request) -> str:
    accept = request.headers.get("accept", "")
    for alias, key in RESULT_ALIASES.items():
        accept = accept.replace(alias, RESULT_MEDIA[key])
    return accept


def run_query(svc: Services, query: str, request: Request, fmt: str | None) -> Response:
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
        key = negotiate(_accept(request), fmt, offers)
        return Response(ans.result.serialize(format=key), media_type=offers[key], headers=headers)
    key = negotiate(request.headers.get("accept", ""), fmt, GRAPH_MEDIA)
    return Response(ans.result.graph.serialize(format=key), media_type=GRAPH_MEDIA[key], headers=headers)


@router.get("/sparql")
def sparql_get(request: Request, svc: Annotated[Services, Depends(services)], query: str = "",
               format: str | None = None) -> Response:
    """`?query=` (URL-encoded). `format` (json, xml, csv, tsv / turtle, json-ld, nt) overrides Accept."""
    if "update" in request.query_params:
        raise HTTPException(403, "SPARQL Update is not accepted on this endpoint (read-only)")
    return run_query(svc, query, request, format)


@router.post("/sparql")
async def sparql_post(request: Request, svc: Annotated[Services, Depends(services)],
                      format: str | None = None) -> Response:
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
    return run_query(svc, query, request, format)
