"""GET /search: the query syntax and natural-language constraints in `q`, filters as parameters,
facets and cursor pagination; every response says how `q` was read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import ValidationError

from modelport.api.deps import services
from modelport.index.query_syntax import SYNTAX_HELP, QuerySyntaxError, compile_query
from modelport.index.search import DEFAULT_FACETS as SEARCH_DEFAULT_FACETS
from modelport.index.search import (
    FACET_FIELDS,
    CursorError,
    Interpretation,
    LineageConstraint,
    SearchQuery,
    SortKey,
    Status,
)
from modelport.services import SearchResponse, Services

router = APIRouter(tags=["search"])

ListParam = Annotated[list[str] | None, Query()]
DEFAULT_FACETS = ",".join(SEARCH_DEFAULT_FACETS)


class SearchPage(SearchResponse):
    """A page of results with the reading of `q` (constraints taken, text left) and the cursor of
    the next page."""

    interpretation: Interpretation | None = None


def run_search(svc: Services, q: str, *, nl: bool = True, filters: dict[str, list[str]] | None = None,
               facets: list[str] | None = None, sort: SortKey | None = None, min_status: str | None = None,
               limit: int = 20, offset: int = 0, cursor: str | None = None, explain: bool = False) -> SearchPage:
    """Parse `q`, merge the parameters and search; raises HTTPException(400) with a body that
    names what was wrong (the offending token and its position for a syntax error)."""
    try:
        base = SearchQuery(filters=filters or {}, facets=facets or [], sort=sort or "relevance",
                           min_status=min_status, limit=limit, offset=offset, cursor=cursor, explain=explain)
        query, interpretation = compile_query(q, nl=nl, base=base, lineage_probe=_lineage_probe(svc))
        if sort is not None:  # an explicit parameter wins over a sort: qualifier
            query = query.model_copy(update={"sort": sort})
        res = svc.search(query)
    except QuerySyntaxError as e:
        raise HTTPException(400, detail=e.to_dict()) from None
    except CursorError as e:
        raise HTTPException(400, detail={"error": "cursor", "message": str(e)}) from None
    except ValidationError as e:
        raise HTTPException(400, detail={"error": "query", "message": "; ".join(
            f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors())}) from None
    return SearchPage(**res.model_dump(), interpretation=interpretation)


def _lineage_probe(svc: Services) -> Callable[[LineageConstraint], bool] | None:
    """Whether a base model named in words has descendants in the catalog (so the phrase is a
    constraint, not text); None for a backend that cannot walk model trees."""
    walk = getattr(svc.search_backend, "lineage", None)
    if walk is None:
        return None
    return lambda c: bool(walk(c).generation)


@router.get("/search", response_model=SearchPage, description=(
    "Search the catalog.\n\n" + SYNTAX_HELP + "\n\nNatural-language constraints in `q` (\"compatible with ONNX "
    "Runtime 1.14+\", \"over 90 % accuracy on ImageNet\", \"under 50 ms on a T4\", \"runs on Android\", "
    "\"Apache licensed\", \"smaller than 100M parameters\", \"fits in 4 GB\") become constraints too unless "
    "`nl=false`; `interpretation` in the response lists every constraint taken from `q` and the text left for "
    "ranking. A malformed qualifier is a 400 whose body names the token and its position:\n\n"
    "`{\"detail\": {\"error\": \"query_syntax\", \"message\": …, \"token\": \"params<abc\", \"position\": 12, "
    "\"hint\": …}}`\n\nFilter parameters repeat for any-of (`task=a&task=b`); different fields must all hold. "
    "Facet counts are computed under the same query, each within a time limit (`timed_out: true` when it ran "
    "out). Page with `next_cursor` (stable while the index is unchanged; `offset` still works for shallow "
    "pages)."))
def search(
    svc: Annotated[Services, Depends(services)],
    q: Annotated[str, Query(max_length=2000, description="Free text with qualifiers (see above)")] = "",
    nl: Annotated[bool, Query(description="Read natural-language constraints in q")] = True,
    source: ListParam = None, task: ListParam = None, framework: ListParam = None, format: ListParam = None,
    license: ListParam = None, language: ListParam = None, publisher: ListParam = None, tag: ListParam = None,
    runtime: ListParam = None,
    status: Annotated[list[str] | None, Query(description="Some compatibility cell has exactly this status "
                                                          "(for 'at least', use min_status)")] = None,
    target: ListParam = None, hardware: ListParam = None,
    min_status: Annotated[Status | None, Query(description="Minimum evidence of runtime/target/hardware "
                                                           "constraints: convertible < declared < native < "
                                                           "verified")] = None,
    facets: Annotated[str, Query(description="Comma-separated facet fields, or 'none'")] = DEFAULT_FACETS,
    sort: SortKey | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
    explain: Annotated[bool, Query(description="Each hit says why it ranks where it does: BM25 and cosine "
                                               "scores, their blend, the evidence level found for each "
                                               "runtime/target/format the query names and the lineage "
                                               "generation, with the boost each adds")] = False,
) -> SearchPage:
    given = {"source": source, "task": task, "framework": framework, "format": format, "license": license,
             "language": language, "publisher": publisher, "tag": tag, "runtime": runtime, "status": status,
             "target": target, "hardware": hardware}
    facet_list = [] if facets.strip().lower() == "none" else [f.strip() for f in facets.split(",") if f.strip()]
    unknown = [f for f in facet_list if f not in FACET_FIELDS]
    if unknown:
        raise HTTPException(400, f"unknown facet field(s) {unknown}; known: {list(FACET_FIELDS)}")
    return run_search(svc, q, nl=nl, filters={k: v for k, v in given.items() if v}, facets=facet_list, sort=sort,
                      min_status=min_status, limit=limit, offset=offset, cursor=cursor, explain=explain)
