"""GET /search: free text with filters, facets and pagination."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query

from modelport.api.deps import services
from modelport.index.search import FILTER_FIELDS, SearchQuery, SortKey
from modelport.services import SearchResponse, Services

router = APIRouter(tags=["search"])

ListParam = Annotated[list[str] | None, Query()]


@router.get("/search", response_model=SearchResponse)
def search(
    svc: Annotated[Services, Depends(services)],
    q: Annotated[str, Query(max_length=2000, description="Free text")] = "",
    source: ListParam = None, task: ListParam = None, framework: ListParam = None, format: ListParam = None,
    license: ListParam = None, language: ListParam = None, publisher: ListParam = None, tag: ListParam = None,
    runtime: ListParam = None, status: ListParam = None,
    facets: Annotated[str, Query(description="Comma-separated facet fields, or 'none'")] =
        "source,task,framework,format,license,runtime",
    sort: SortKey = "relevance",
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> SearchResponse:
    """Search the catalog. Repeat a filter to accept any of its values (`task=a&task=b`); filters of
    different fields must all hold. Facet counts are computed under the same query."""
    given = {"source": source, "task": task, "framework": framework, "format": format, "license": license,
             "language": language, "publisher": publisher, "tag": tag, "runtime": runtime, "status": status}
    facet_list = [] if facets.strip().lower() == "none" else [f.strip() for f in facets.split(",") if f.strip()]
    unknown = [f for f in facet_list if f not in FILTER_FIELDS]
    if unknown:
        raise HTTPException(400, f"unknown facet field(s) {unknown}; known: {list(FILTER_FIELDS)}")
    query = SearchQuery(text=q, filters={k: v for k, v in given.items() if v}, facets=facet_list, sort=sort,
                        limit=limit, offset=offset)
    return svc.search(query)
