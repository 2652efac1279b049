"""The web page: a search box (the query syntax and plain-language constraints both work), facets to
narrow by, how the query was read, and results linking to each record."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from modelport.api.deps import services
from modelport.api.search_routes import run_search
from modelport.index.search import FILTER_FIELDS
from modelport.services import Services

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
FACETS = ["source", "task", "framework", "format", "license", "runtime", "target", "status", "params"]


@router.get("/", response_class=HTMLResponse)
def home(request: Request, svc: Annotated[Services, Depends(services)], q: str = "", nl: bool = True,
         cursor: str | None = None) -> HTMLResponse:
    filters = {f: request.query_params.getlist(f) for f in FILTER_FIELDS if request.query_params.getlist(f)}
    error: dict[str, Any] | None = None
    res = None
    try:
        res = run_search(svc, q[:2000], nl=nl, filters=filters, facets=FACETS, limit=30, cursor=cursor)
    except HTTPException as e:
        error = e.detail if isinstance(e.detail, dict) else {"message": str(e.detail)}

    def toggle(field: str, value: str) -> str:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
        if (field, value) in params:
            params.remove((field, value))
        else:
            params.append((field, value))
        return "/?" + urlencode(params)

    def page(next_cursor: str) -> str:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
        return "/?" + urlencode([*params, ("cursor", next_cursor)])

    return templates.TemplateResponse(request, "index.html", {
        "q": q, "nl": nl, "res": res, "error": error, "filters": filters, "toggle": toggle, "page": page,
        "records": svc.catalog.count()})
