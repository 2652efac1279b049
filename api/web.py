"""The search page: a search box (the query syntax and plain-language constraints both work), facets,
the "read as" line as chips that each remove their constraint, sort and evidence controls, and result
cards. Server-rendered; every state is a URL; `static/app.js` only adds keyboard shortcuts."""

from __future__ import annotations

import hashlib
import re
from functools import cache
from pathlib import Path
from typing import Annotated, Any, get_args
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from modelport.api.deps import services
from modelport.api.search_routes import run_search
from modelport.index.search import DEFAULT_FACETS, FILTER_FIELDS, SortKey, Status
from modelport.services import Services

router = APIRouter(include_in_schema=False)
STATIC = Path(__file__).parent / "static"
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
FACETS = list(DEFAULT_FACETS)
SORTS: tuple[str, ...] = get_args(SortKey)
STATUSES: tuple[str, ...] = get_args(Status)
PAGE_SIZE = 30
# Shown when the catalog or a search comes back empty: queries that exercise each kind of constraint.
EXAMPLES = ("image classification runs on Android", "task:text-classification license:permissive",
            "runtime:onnxruntime@1.14+ status:native", "under 50 ms on a T4", "params<100M sort:downloads")


@cache
def asset_version() -> str:
    """A content hash of the static files, so browsers may cache them for long and still see changes."""
    h = hashlib.sha256()
    for f in sorted(STATIC.iterdir()):
        h.update(f.read_bytes())
    return h.hexdigest()[:10]


templates.env.globals["asset_version"] = asset_version()


@router.get("/static/{name}")
def static(name: str) -> Response:
    """The page assets (a fixed set of files: the name must be one of them)."""
    files = {f.name: f for f in STATIC.iterdir() if f.is_file()}
    if name not in files:
        raise HTTPException(404, f"no static file {name!r}")
    return FileResponse(files[name], headers={"Cache-Control": "public, max-age=86400"})


def _url(params: list[tuple[str, str]]) -> str:
    return "/?" + urlencode(params) if params else "/"


def without_phrase(q: str, phrase: str) -> str | None:
    """`q` with the words a constraint came from cut out (None when they are not in `q` verbatim),
    tidied so that no dangling comma or double space is left."""
    i = q.find(phrase)
    if i < 0 or not phrase:
        return None
    out = q[:i] + " " + q[i + len(phrase):]
    out = re.sub(r",(\s*,)+", ",", out)
    out = re.sub(r"\s+,", ",", out)
    return re.sub(r"\s{2,}", " ", out).strip(" ,")


def reading_chips(params: list[tuple[str, str]], q: str, interp: Any) -> list[dict[str, str]]:
    """One chip per constraint the query was read as, whatever kind it is (the parser reports its
    canonical syntax and the words it came from), plus one per filter parameter; each links to the
    same search without it."""
    rest = [(k, v) for k, v in params if k not in ("q", "cursor")]
    chips: list[dict[str, str]] = []
    cons = list(interp.constraints) if interp else []
    for i, c in enumerate(cons):
        # The parser may say itself what the query is without this part (`remove`); else cut its words out.
        q2 = getattr(c, "remove", None)
        if q2 is None:
            q2 = without_phrase(q, c.source)
        if q2 is None:  # not verbatim in q: rebuild q from everything else the parser reported
            others = [x.syntax for j, x in enumerate(cons) if j != i]
            q2 = " ".join([interp.text, *others, *(f"-{t}" for t in interp.exclude_text)]).strip()
        said = getattr(c, "label", "") or ""
        chips.append({"label": c.syntax, "kind": f"{c.via} {getattr(c, 'kind', '')}".strip(),
                      "title": f"{said + ' — ' if said else ''}read from “{c.source}” — click to remove",
                      "href": _url(([("q", q2)] if q2 else []) + rest)})
    for k, v in rest:
        if k in FILTER_FIELDS or k == "min_status":
            label = f"{k}:{v}" if k != "min_status" else f"status ≥ {v}"
            chips.append({"label": label, "title": "a filter of this page — remove", "kind": "param",
                          "href": _url([p for p in params if p != (k, v) and p[0] != "cursor"])})
    return chips


@router.get("/", response_class=HTMLResponse)
def home(request: Request, svc: Annotated[Services, Depends(services)], q: str = "", nl: bool = True,
         cursor: str | None = None, sort: str | None = None, min_status: str | None = None) -> HTMLResponse:
    params = [(k, v) for k, v in request.query_params.multi_items() if v != "" or k == "q"]
    filters = {f: request.query_params.getlist(f) for f in FILTER_FIELDS if request.query_params.getlist(f)}
    error: dict[str, Any] | None = None
    res = None
    q = q[:2000]
    try:
        if sort and sort not in SORTS:
            raise HTTPException(400, {"error": "sort", "message": f"unknown sort {sort!r}; choose one of {SORTS}"})
        if min_status and min_status not in STATUSES:
            raise HTTPException(400, {"error": "min_status", "message": f"unknown evidence level {min_status!r}; "
                                                                         f"choose one of {STATUSES}"})
        res = run_search(svc, q, nl=nl, filters=filters, facets=FACETS, limit=PAGE_SIZE, cursor=cursor,
                         sort=sort or None, min_status=min_status or None)  # type: ignore[arg-type]
    except HTTPException as e:
        error = e.detail if isinstance(e.detail, dict) else {"message": str(e.detail)}

    def toggle(field: str, value: str) -> str:
        ps = [p for p in params if p[0] != "cursor"]
        return _url([p for p in ps if p != (field, value)] if (field, value) in ps else [*ps, (field, value)])

    def page(next_cursor: str) -> str:
        return _url([*(p for p in params if p[0] != "cursor"), ("cursor", next_cursor)])

    interp = res.interpretation if res else None
    effective_sort = sort or (res.query.get("sort") if res else None) or "relevance"
    hidden = [(k, v) for k, v in params if k not in ("q", "cursor", "sort", "min_status")]
    return templates.TemplateResponse(request, "index.html", {
        "q": q, "nl": nl, "res": res, "error": error, "filters": filters, "toggle": toggle, "page": page,
        "chips": reading_chips(params, q, interp), "interp": interp, "records": svc.catalog.count(),
        "sorts": SORTS, "statuses": STATUSES, "sort": effective_sort, "min_status": min_status or "",
        "hidden": hidden, "first_page": _url([p for p in params if p[0] != "cursor"]) if cursor else None,
        "examples": EXAMPLES, "search_hidden": [(k, v) for k, v in params if k in FILTER_FIELDS or k == "nl"],
    })
