"""Model records: GET /models/{id} as JSON, JSON-LD or Turtle (content negotiation), and record
IRIs (`/model/<source>/<id>`) that dereference to them."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from modelport.api.deps import services
from modelport.schema.identity import record_id
from modelport.schema.rdf import to_jsonld, to_turtle
from modelport.services import Services

if TYPE_CHECKING:
    from modelport.index.catalog import StoredRecord

router = APIRouter(tags=["models"])

_QVALUE = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?")
MEDIA = {"json": "application/json", "jsonld": "application/ld+json", "turtle": "text/turtle"}
# The model page is one more negotiated representation; JSON stays the first offer (`*/*` gets JSON).
OFFERS = {**MEDIA, "html": "text/html"}


def _ranges(accept: str) -> list[tuple[str, str, float, int]]:
    """The Accept header as (type, subtype, q, position) media ranges (RFC 9110 §12.5.1): names are
    case-insensitive, `q` is 0..1 with at most three decimals; a range with a malformed `q` or name
    is ignored (one bad element does not make the whole header unacceptable). Linear in the header."""
    out = []
    for pos, element in enumerate(accept.split(",")):
        media, *params = element.split(";")
        media = media.strip().lower()
        typ, slash, sub = media.partition("/")
        if not slash or not typ or not sub or (typ == "*" and sub != "*"):
            continue
        q = 1.0
        for p in params:
            name, eq, value = p.strip().partition("=")
            if eq and name.strip().lower() == "q":
                q = _qvalue(value.strip())
                break
        if q >= 0:
            out.append((typ, sub, q, pos))
    return out


def _qvalue(v: str) -> float:
    """RFC 9110 §12.4.2 weight: "0" ["." 0-3 DIGIT] or "1" ["." 0-3 "0"]; -1 when malformed."""
    return float(v) if _QVALUE.fullmatch(v) else -1.0


def negotiate(accept: str, explicit: str | None, offers: dict[str, str],
              aliases: dict[str, str] | None = None) -> str:
    """Pick a format key from `offers` (key → media type, in the server's order of preference):
    `?format=` wins; else the Accept header per RFC 9110 — each offer gets the weight of the most
    specific range matching it (type/subtype > type/* > */*), weight 0 means "not acceptable", the
    highest weight wins and ties go to the range the client listed first, then to the server's
    order. No Accept header: the first offer. Nothing acceptable: 406. `aliases` maps further media
    types to offer keys (e.g. application/json → the SPARQL JSON results)."""
    if explicit:
        if explicit not in offers:
            raise HTTPException(406, f"format {explicit!r} not offered; choose one of {sorted(offers)}")
        return explicit
    if not accept.strip():
        return next(iter(offers))
    ranges = _ranges(accept)
    names: list[tuple[str, str]] = [(m.lower(), k) for k, m in offers.items()]
    names += [(m.lower(), k) for m, k in (aliases or {}).items() if k in offers]
    best: tuple[float, int, int] | None = None
    chosen: str | None = None
    for order, (media, key) in enumerate(names):
        typ, _, sub = media.partition("/")
        match: tuple[int, float, int] | None = None  # (specificity, q, position)
        for rtyp, rsub, q, pos in ranges:
            if rtyp == typ and rsub == sub:
                spec = 2
            elif rtyp == typ and rsub == "*":
                spec = 1
            elif rtyp == "*":
                spec = 0
            else:
                continue
            if match is None or spec > match[0]:
                match = (spec, q, pos)
        if match is None or match[1] <= 0:
            continue
        rank = (match[1], -match[2], -order)
        if best is None or rank > best:
            best, chosen = rank, key
    if chosen is None:
        raise HTTPException(406, f"none of {accept[:200]!r} is offered; offered: {sorted(offers.values())}")
    return chosen


def load(svc: Services, model_id: str) -> StoredRecord:
    stored = svc.catalog.get_stored(model_id)
    if stored is None:
        raise HTTPException(404, f"no model with id {model_id!r}")
    if stored.deleted_at:
        raise HTTPException(410, f"model {model_id!r} was removed upstream on {stored.deleted_at} "
                                 f"({stored.deleted_reason})")
    return stored


@router.get("/models/{model_id:path}/compatibility/{subject}")
def get_compatibility_cell(
    model_id: str, subject: str, svc: Annotated[Services, Depends(services)],
    version: Annotated[str | None, Query(max_length=64, description="a runtime version: the status at that "
                                         "version (a check there decides, else the derived range)")] = None,
) -> dict:
    """Explain one cell: a runtime (`onnxruntime`), a target (`android`), a hardware profile (`t4`) or
    `runtime@target`, with the conversion chain, version range and evidence — or why it is not offered."""
    from modelport.schema.compat_explain import explain

    out = explain(load(svc, model_id).record, subject, version=version)
    if out.get("kind") == "unknown":
        raise HTTPException(404, out["text"])
    if out.get("kind") == "invalid":
        raise HTTPException(422, out["text"])
    return out


@router.get("/models/{model_id:path}/compatibility")
def get_compatibility(model_id: str, svc: Annotated[Services, Depends(services)]) -> dict:
    """The compatibility matrix: runtimes × targets, each cell with status, version range and evidence."""
    from modelport.schema.compat_explain import matrix

    return matrix(load(svc, model_id).record)


@router.get("/models/{model_id:path}", responses={200: {"content": {m: {} for m in OFFERS.values()}}})
def get_model(
    model_id: str, request: Request, svc: Annotated[Services, Depends(services)],
    format: Annotated[str | None, Query(description="json, jsonld, turtle or html; overrides Accept")] = None,
) -> Response:
    """One record. Accept `application/json` (the record), `application/ld+json` (schema.org /
    FAIR4ML JSON-LD), `text/turtle` or `text/html` (the model page)."""
    key = negotiate(request.headers.get("accept", ""), format, OFFERS)
    if key == "html":
        from modelport.api.model_page import render, render_missing

        try:
            stored = load(svc, model_id)
        except HTTPException as e:  # a person gets a page that says so and offers a search
            return render_missing(request, model_id, e)
        return render(request, svc, stored)
    stored = load(svc, model_id)
    rec = stored.record
    base = svc.settings.base_iri
    if key == "jsonld":
        return Response(to_jsonld(rec, base), media_type=MEDIA["jsonld"])
    if key == "turtle":
        return Response(to_turtle(rec, base), media_type=MEDIA["turtle"])
    body = rec.model_dump(mode="json")
    body["_catalog"] = {"first_seen": stored.first_seen, "last_seen": stored.last_seen}
    return JSONResponse(body)


@router.get("/model/{source}/{local_id:path}", include_in_schema=False)
def dereference(source: str, local_id: str, request: Request) -> RedirectResponse:
    """Record IRIs resolve here: 303 See Other to the record, keeping content negotiation."""
    target = f"/models/{quote(record_id(source, local_id), safe='/:@')}"
    if request.url.query:
        target += "?" + request.url.query
    return RedirectResponse(target, status_code=303)
