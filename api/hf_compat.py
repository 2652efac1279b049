"""`GET /api/models` in the Hugging Face Hub's wire format, over the whole federated catalog, so that
`huggingface_hub.HfApi(endpoint=<ModelPort>).list_models(search=…, author=…, filter=…, sort=…, limit=…,
expand=…)` works unchanged. Paging follows the Hub: a `Link: <…>; rel="next"` header that the client
follows (huggingface_hub `utils/_pagination.py`); sort keys, filter grammar (`license:`, `dataset:`,
`language:`, bare tags) and `expand` property names are the Hub's (docs: huggingface.co/docs/hub/api,
`HfApi.list_models`). Ids are ModelPort record ids (`huggingface:google-bert/bert-base-uncased`,
`mlflow-prod:iris/2`), since records from several registries share this listing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from modelport.api.deps import services
from modelport.index.query_syntax import QuerySyntaxError, compile_query
from modelport.index.search import CursorError, FieldFilter, SearchQuery
from modelport.index.vocab import get_vocab
from modelport.schema.record import ModelRecord
from modelport.services import Services

router = APIRouter(tags=["huggingface-compatible"])

# Hub sort keys (after the client's renaming) → ours; every order is descending, as the Hub's default.
SORTS = {"downloads": "downloads", "likes": "likes", "lastModified": "modified", "last_modified": "modified"}
DEFAULT_PAGE, MAX_PAGE = 100, 200
# Hub filter prefixes → our filter fields (`dataset:` has no filter field; it matches training datasets
# through the record's tags, as on the Hub).
PREFIXED = {"license": "license", "language": "language", "library": "framework", "task": "task",
            "pipeline_tag": "task", "format": "format"}
DEFAULT_FIELDS = ("id", "modelId", "author", "downloads", "likes", "tags", "pipeline_tag", "library_name",
                  "private", "createdAt", "lastModified")
EXPANDABLE = ("author", "cardData", "createdAt", "downloads", "gated", "lastModified", "library_name", "likes",
              "model-index", "pipeline_tag", "private", "sha", "siblings", "tags")


def _field_of(value: str) -> tuple[str, str]:
    """Which of our filter fields a Hub filter value names: `prefix:value`, or a bare tag that the KB
    knows as a task, library or format; anything else is a tag, as on the Hub."""
    head, sep, rest = value.partition(":")
    if sep and head in PREFIXED:
        return PREFIXED[head], rest
    vocab = get_vocab()
    if vocab.kb is not None and vocab.kb.task_id(value):
        return "task", value
    if value.lower() in vocab.frameworks.values() or value.lower() in vocab.frameworks:
        return "framework", value
    if value.lower() in vocab.formats:
        return "format", value
    return "tag", value


def _tags(r: ModelRecord) -> list[str]:
    tags = [*r.frameworks, *r.formats, *r.tasks, *r.languages, *r.keywords]
    tags += [f"license:{r.license.lower()}"] if r.license else []
    tags += [f"dataset:{d}" for d in r.training_datasets]
    tags += [f"base_model:{b.ref}" for b in r.base_models]
    return list(dict.fromkeys(tags))


def _hub_time(t: datetime | None) -> str | None:
    """The Hub's timestamp form (UTC, milliseconds, `Z`), the only one its client parses."""
    if t is None:
        return None
    t = t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def hub_model(r: ModelRecord, fields: tuple[str, ...], page_url: str) -> dict[str, Any]:
    """A record as the Hub describes a model, with only `fields` (and always `id`)."""
    author = r.publisher.name if r.publisher else (r.authors[0].name if r.authors else
                                                   (r.local_id.split("/")[0] if "/" in r.local_id else None))
    value: dict[str, Any] = {
        "id": r.id, "modelId": r.id, "author": author, "downloads": r.popularity.downloads or 0,
        "likes": r.popularity.likes or 0, "tags": _tags(r), "pipeline_tag": r.tasks[0] if r.tasks else None,
        "library_name": r.frameworks[0] if r.frameworks else None, "private": r.access == "private",
        "gated": "auto" if r.access == "gated" else False,
        "createdAt": _hub_time(r.created), "lastModified": _hub_time(r.modified),
        "sha": r.source_facts.get("sha") if isinstance(r.source_facts.get("sha"), str) else None,
        "siblings": [{"rfilename": a.path, "size": a.size_bytes} for a in r.artifacts],
        "cardData": {"license": r.license, "language": r.languages, "datasets": r.training_datasets,
                     "pipeline_tag": r.tasks[0] if r.tasks else None, "tags": r.keywords,
                     "base_model": [b.ref for b in r.base_models]},
        "model-index": [{"name": r.name, "results": [
            {"task": {"type": e.task or (r.tasks[0] if r.tasks else None)},
             "dataset": {"name": e.dataset_name or e.dataset, "type": e.dataset, "split": e.split},
             "metrics": [{"type": e.metric, "name": e.metric_name, "value": e.value, "verified": bool(e.verified)}]}
            for e in r.evaluations]}] if r.evaluations else None,
    }
    out = {k: value[k] for k in ("id", *fields) if k in value}
    out["modelport"] = {"url": page_url, "source": r.source}  # where the whole record is
    return out


@router.get("/api/models", summary="List models (Hugging Face Hub API)")
def list_models(
    request: Request, svc: Annotated[Services, Depends(services)],
    search: Annotated[str, Query(max_length=500, description="Words matched against names and ids")] = "",
    author: Annotated[str | None, Query(max_length=200, description="Publisher or organisation")] = None,
    filter: Annotated[list[str] | None, Query(description="Hub filters, all must hold: a tag, library, task, "
                                                          "`license:…`, `language:…`, `dataset:…`")] = None,
    sort: Annotated[str | None, Query(description=f"one of {sorted(SORTS)}")] = None,
    direction: Annotated[int | None, Query(description="-1 (descending; the only order offered)")] = None,
    limit: Annotated[int | None, Query(ge=1, description=f"page size, at most {MAX_PAGE}")] = None,
    expand: Annotated[list[str] | None, Query(description=f"properties to return: {list(EXPANDABLE)}")] = None,
    cursor: Annotated[str | None, Query(description="from the `Link: rel=next` header")] = None,
) -> JSONResponse:
    if sort is not None and sort not in SORTS:
        raise HTTPException(400, f"sort {sort!r} is not offered; choose one of {sorted(SORTS)}")
    # The Hub sorts descending only: `direction` became "useless after a server-side change" and
    # huggingface_hub removed it (huggingface/huggingface_hub#3882, 2026-03). Old clients still send -1;
    # an ascending request gets a clear 400 rather than a silently descending page.
    if direction not in (None, -1):
        raise HTTPException(400, "only descending order (direction=-1) is offered, as on the Hub")
    expand_list = [e for x in (expand or []) for e in x.split(",") if e]
    unknown = [e for e in expand_list if e not in EXPANDABLE]
    if unknown:
        raise HTTPException(400, f"cannot expand {unknown}; expandable: {list(EXPANDABLE)}")
    fields = tuple(expand_list) if expand_list else DEFAULT_FIELDS
    constraints = [FieldFilter(field=f, values=[v]) for f, v in map(_field_of, filter or []) if v]  # type: ignore[arg-type]
    if author:
        constraints.append(FieldFilter(field="publisher", values=[author]))  # type: ignore[arg-type]
    page = min(limit or DEFAULT_PAGE, MAX_PAGE)
    try:
        base = SearchQuery(constraints=constraints, sort=SORTS.get(sort or "", "relevance"), limit=page,  # type: ignore[arg-type]
                           cursor=cursor)
        query, _ = compile_query(search, nl=False, base=base)
        res = svc.search(query)
    except QuerySyntaxError as e:
        raise HTTPException(400, e.to_dict()) from None
    except CursorError as e:
        raise HTTPException(400, f"cursor: {e}") from None
    except ValidationError as e:
        raise HTTPException(400, "; ".join(err["msg"] for err in e.errors())) from None
    records = svc.catalog.get_many([h.id for h in res.hits], matrix="runtimes")
    root = str(request.base_url).rstrip("/")
    body = [hub_model(records[h.id], fields, f"{root}/models/{quote(h.id, safe='/:@')}")
            for h in res.hits if h.id in records]
    headers = {"X-Total-Count": str(res.total)}
    if res.next_cursor and res.hits:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
        headers["Link"] = f'<{root}/api/models?{urlencode([*params, ("cursor", res.next_cursor)])}>; rel="next"'
    return JSONResponse(body, headers=headers)
