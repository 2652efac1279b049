"""The search interface every backend implements (embedded Tantivy, Elasticsearch), and its
query/result models. The API and CLI only ever talk to this interface."""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel, Field

from modelport.schema.record import ModelRecord

# Keyword fields a query may filter and facet on; every backend indexes each of them.
FILTER_FIELDS = ("source", "task", "framework", "format", "license", "language", "publisher", "tag",
                 "runtime", "status", "access")
SortKey = Literal["relevance", "downloads", "likes", "modified"]


class SearchQuery(BaseModel):
    text: str = Field(default="", max_length=2000)
    filters: dict[str, list[str]] = Field(default_factory=dict)  # field → any of these values
    exclude: dict[str, list[str]] = Field(default_factory=dict)  # field → none of these values
    facets: list[str] = Field(default_factory=list)
    sort: SortKey = "relevance"
    limit: int = Field(default=20, ge=1, le=200)
    offset: int = Field(default=0, ge=0, le=10_000)
    facet_timeout_s: float = Field(default=0.5, gt=0)


class Hit(BaseModel):
    id: str
    score: float


class FacetCounts(BaseModel):
    counts: dict[str, int] = Field(default_factory=dict)
    timed_out: bool = False


class SearchResult(BaseModel):
    total: int
    hits: list[Hit]
    facets: dict[str, FacetCounts] = Field(default_factory=dict)
    took_ms: float = 0.0
    notices: list[str] = Field(default_factory=list)


class SearchBackend(Protocol):
    name: str

    def upsert(self, records: list[ModelRecord]) -> None: ...

    def delete(self, ids: list[str]) -> None: ...

    def commit(self) -> None: ...

    def search(self, query: SearchQuery) -> SearchResult: ...

    def count(self) -> int: ...

    def clear(self) -> None: ...

    def close(self) -> None: ...


def keyword_values(record: ModelRecord) -> dict[str, list[str]]:
    """The filter-field values of a record, shared by every backend so they index the same facts."""
    return {
        "source": [record.source],
        "task": record.tasks,
        "framework": record.frameworks,
        "format": record.formats,
        "license": [record.license] if record.license else [],
        "language": record.languages,
        "publisher": [record.publisher.name] if record.publisher else [],
        "tag": record.keywords,
        "runtime": sorted({c.runtime for c in record.compatibility if c.runtime}),
        "status": sorted({c.status for c in record.compatibility}),
        "access": [record.access],
    }


def search_text(record: ModelRecord) -> dict[str, str]:
    """Text fields: name (with the id's words), description, card body and tags."""
    card = record.card
    card_text = "\n".join(x for x in (card.intended_use, card.limitations, card.training_data, card.body) if x)
    return {
        "name": f"{record.name} {record.local_id.replace('/', ' ').replace('-', ' ').replace('_', ' ')}",
        "description": record.description or "",
        "card": card_text[:20_000],
        "tags": " ".join([*record.keywords, *record.tasks, *record.frameworks, *record.formats,
                          record.architecture or ""]),
    }
