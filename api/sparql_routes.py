"""SPARQL 1.1 Protocol endpoint (query only): GET ?query=, form POST and direct POST; results in
JSON, XML, CSV or TSV; graphs in Turtle, JSON-LD or N-Triples. Update and federation (SERVICE) are
refused before anything runs; every query runs in a killable worker process within the time limit
and memory budget (index/sparql_pool.py).

GET /sparql without a query dispatches on the negotiated media type to the views registered with
`register_description` (a service description, an HTML query page); with none matching it is a 400."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from modelport.api.models_routes import negotiate
from modelport.index.sparql_exec import GRAPH_MEDIA, RESULT_MEDIA, SparqlError, check
from modelport.index.sparql_pool import QueryLimitError, QueryRefused

router = APIRouter(tags=["sparql"])

RESULT_ALIASES = {"application/json": "json", "application/xml": "xml", "text/xml": "xml"}
UPDATE_REFUSED = "SPARQL Update is not accepted on this endpoint (read-only)"

# media type → view answering GET /sparql without a query (filled by other modules at import).
DescriptionView = Callable[[Request], Response]
_DESCRIPTIONS: dict[str, DescriptionView] = {}


def register_description(media_type: str, view: DescriptionView) -> None:
    """Offer `view` for GET /sparql without `query` when the client accepts `media_type`."""
    _DESCRIPTIONS[media_type] = view


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "malformed query, or SERVICE (federation is off)"},
    403: {"description": "SPARQL Update refused (read-only endpoint)"},
    406: {"description": "no acceptable result format"},
    413: {"description": "request larger than MODELPORT_MAX_REQUEST_BYTES"},
    503: {"description": "a limit stopped the query (time, memory, answer size) or all workers are busy; "
                         "`limit` names the setting"},
}
_MEDIA_TYPES = (*RESULT_MEDIA.values(), *GRAPH_MEDIA.values())
_ANSWERS = {200: {"description": "the answer in the negotiated format",
                  "content": {m: {"schema": {"type": "string"}} for m in _MEDIA_TYPES}}, **_ERRORS}


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


async def run_query(request: Request, query: str) -> Response:
    started = time.monotonic()  # the time limit counts from here, waiting for a worker included
    settings = request.app.state.services.settings
    if not query.strip():
        raise HTTPException(400, "missing SPARQL query (give it as `query`)")
    try:
        form = check(query)
    except SparqlError as e:
        raise HTTPException(403 if str(e) == UPDATE_REFUSED else 400, f"SPARQL: {e}") from None
    if form in ("SELECT", "ASK"):
        offers = RESULT_MEDIA if form == "SELECT" else {k: RESULT_MEDIA[k] for k in ("json", "xml")}
        key = negotiate(request.headers.get("accept", ""), _format_param(request, offers), offers, RESULT_ALIASES)
    else:
        offers = GRAPH_MEDIA
        key = negotiate(request.headers.get("accept", ""), _format_param(request, offers), offers)
    pool = request.app.state.sparql_pool
    try:
        ans = await anyio.to_thread.run_sync(
            partial(pool.run, query, key, settings.query_timeout_s, settings.max_results * 10, started),
            limiter=request.app.state.sparql_limiter)
    except QueryRefused as e:
        raise HTTPException(400, f"SPARQL: {e}") from None
    except QueryLimitError as e:
        headers = {"Retry-After": str(e.retry_after)} if e.retry_after else None
        elapsed = round(time.monotonic() - started, 3)
        content: dict[str, Any] = {"detail": str(e), "limit": e.limit, "elapsed_s": elapsed}
        if e.peak_rss_kb:
            content["worker_peak_rss_mb"] = round(e.peak_rss_kb / 1024, 1)
        return JSONResponse(status_code=e.status, headers=headers, content=content)
    headers = {"X-Result-Truncated": "true"} if ans.truncated else {}
    return Response(ans.body, media_type=offers[key], headers=headers)


def _no_query(request: Request) -> Response:
    if _DESCRIPTIONS and request.headers.get("accept", "").strip():
        views = {media: media for media in _DESCRIPTIONS}
        try:
            media = negotiate(request.headers["accept"], None, views)
        except HTTPException:
            media = None
        if media is not None:
            return _DESCRIPTIONS[media](request)
    raise HTTPException(400, "missing SPARQL query (give it as `query`)")


def _wants_page(request: Request) -> bool:
    """A GET without a query: the HTML page when the client prefers text/html over every registered
    description (RFC 9110 weights, as `negotiate`), so `text/html;q=0.5, text/turtle` gets Turtle."""
    accept = request.headers.get("accept", "")
    if "html" not in accept.lower():
        return False
    offers = {media: media for media in _DESCRIPTIONS} | {"text/html": "text/html"}
    try:
        return negotiate(accept, None, offers) == "text/html"
    except HTTPException:
        return False


@router.get("/sparql", responses=_ANSWERS)
async def sparql_get(
    request: Request,
    query: Annotated[str | None, Query(description="A SPARQL 1.1 query (URL-encoded)")] = None,
    format: Annotated[str | None, Query(description="json, xml, csv, tsv / turtle, json-ld, nt; overrides "
                                                    "Accept")] = None,  # noqa: ARG001 (read by _format_param)
) -> Response:
    """`?query=` (URL-encoded). `format` (json, xml, csv, tsv / turtle, json-ld, nt) overrides Accept;
    `format=html`, or a browser's GET without a query, gets the SPARQL page."""
    if "update" in request.query_params:
        raise HTTPException(403, UPDATE_REFUSED)
    if format == "html" or (not (query or "").strip() and _wants_page(request)):
        from modelport.api.sparql_page import render  # the SPARQL page, for a browser

        # In a thread of the SPARQL limiter: the page's query waits for a worker like any other.
        return await anyio.to_thread.run_sync(render, request, request.app.state.services, query or "",
                                              limiter=request.app.state.sparql_limiter)
    if query is None:
        return _no_query(request)
    return await run_query(request, query)


_FORM_SCHEMA = {"type": "object", "properties": {
    "query": {"type": "string", "description": "A SPARQL 1.1 query"},
    "default-graph-uri": {"type": "string"}, "named-graph-uri": {"type": "string"}}}


@router.post("/sparql", responses={**_ANSWERS, 415: {"description": "unsupported request content type"}},
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/sparql-query": {"schema": {"type": "string"}},
                 "application/x-www-form-urlencoded": {"schema": _FORM_SCHEMA}}}})
async def sparql_post(
    request: Request,
    format: Annotated[str | None, Query(description="Overrides Accept, as for GET")] = None,  # noqa: ARG001
) -> Response:
    """Form POST (`application/x-www-form-urlencoded`, `query=`) or direct POST
    (`application/sparql-query`). `application/sparql-update` and `update=` are refused with 403."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/sparql-query":
        query = (await request.body()).decode("utf-8", errors="replace")
    elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            form = await request.form(max_files=0, max_fields=64)
        except HTTPException:
            raise
        except Exception as e:  # noqa: BLE001 — a malformed form is the client's 400, whatever the parser raised
            raise HTTPException(400, f"malformed form body: {type(e).__name__}") from None
        if "update" in form:
            raise HTTPException(403, UPDATE_REFUSED)
        query = str(form.get("query", ""))
    elif ctype == "application/sparql-update":
        raise HTTPException(403, UPDATE_REFUSED)
    else:
        raise HTTPException(415, f"unsupported content type {ctype[:100]!r}; send application/sparql-query or a form")
    return await run_query(request, query)
