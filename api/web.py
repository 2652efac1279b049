"""The web page: a search box, facets to narrow by, and results linking to each record."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from modelport.api.deps import services
from modelport.index.search import FILTER_FIELDS, SearchQuery
from modelport.services import Services

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
FACETS = ["source", "task", "framework", "format", "license", "runtime", "status"]


@router.get("/", response_class=HTMLResponse)
def home(request: Request, svc: Annotated[Services, Depends(services)], q: str = "") -> HTMLResponse:
    filters = {f: request.query_params.getlist(f) for f in FILTER_FIELDS if request.query_params.getlist(f)}
    res = svc.search(SearchQuery(text=q[:2000], filters=filters, facets=FACETS, limit=30))

    def toggle(field: str, value: str) -> str:
        params = [(k, v) for k, v in request.query_params.multi_items()]
        if (field, value) in params:
            params.remove((field, value))
        else:
            params.append((field, value))
        return "/?" + urlencode(params)

    return templates.TemplateResponse(request, "index.html", {
        "q": q, "res": res, "filters": filters, "toggle": toggle, "records": svc.catalog.count()})
