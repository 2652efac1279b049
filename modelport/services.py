"""The read side, opened once per process: catalog, search backend and graph, plus the search
call the API, the web page and the CLI share (query → hits hydrated from the catalog)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from modelport.index.backends import open_hybrid
from modelport.index.catalog import Catalog
from modelport.index.hybrid import HybridSearch
from modelport.index.search import SearchBackend, SearchQuery, SearchResult, ensure_current
from modelport.pipeline import Pipeline
from modelport.schema.record import ModelRecord, SourceTerm
from modelport.settings import Settings
from modelport.stores import Stores


class RecordSummary(BaseModel):
    """What a search hit shows: enough to choose, with the link to the whole record."""

    id: str
    iri: str
    name: str
    version: str | None
    source: str
    description: str | None
    tasks: list[str]
    frameworks: list[str]
    formats: list[str]
    license: str | None
    aliases: list[str]
    parameter_count: int | None
    downloads: int | None
    likes: int | None
    runtimes: dict[str, str]  # runtime → "status range"
    score: float
    url: str
    explain: dict[str, Any] | None = None  # with `explain=true`: why the hit ranks where it does
    # Tasks and libraries the source names that the KB does not know (as the source wrote them).
    source_terms: list[SourceTerm] = []

    @classmethod
    def of(cls, r: ModelRecord, score: float) -> RecordSummary:
        desc = r.description
        if desc and len(desc) > 300:
            desc = desc[:297] + "…"
        runtimes = {c.runtime: f"{c.status} {c.version_range}" if c.version_range else c.status
                    for c in r.compatibility if c.runtime and c.target is None and c.hardware is None}
        return cls(id=r.id, iri=r.iri, name=r.name, version=r.version, source=r.source, description=desc,
                   tasks=r.tasks, frameworks=r.frameworks, formats=r.formats, license=r.license, aliases=r.aliases,
                   parameter_count=r.parameter_count, downloads=r.popularity.downloads, likes=r.popularity.likes,
                   runtimes=runtimes, score=score, url=f"/models/{r.id}", source_terms=r.source_terms)


class SearchResponse(BaseModel):
    total: int
    hits: list[RecordSummary]
    facets: dict[str, Any]
    took_ms: float
    query: dict[str, Any]
    notices: list[str] = []
    next_cursor: str | None = None


class Services:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        # One set of stores for the read side and the write path (harvests, verify, reindex).
        self.stores = Stores(self.settings)
        self.pipeline = Pipeline(self.settings, self.stores)
        self._hybrid: HybridSearch | None = None

    @property
    def catalog(self) -> Catalog:
        return self.stores.catalog

    @property
    def search_backend(self) -> SearchBackend:
        return self.stores.search

    @property
    def graph(self) -> Any:
        return self.stores.graph

    @property
    def hybrid(self) -> HybridSearch:
        """BM25 fused with dense vectors (index/hybrid.py); falls back to BM25 with a notice."""
        if self._hybrid is None:
            self._hybrid = open_hybrid(self.search_backend, self.stores.vectors, self.stores.vectors_unavailable)
        return self._hybrid

    def search(self, query: SearchQuery) -> SearchResponse:
        ensure_current(self.search_backend, self.pipeline.reindex)  # an index of an older layout was emptied
        res: SearchResult = self.hybrid.search(query)
        # A hit shows runtime cells only: skip the hardware fit (it ran after the search, so it was latency).
        records = self.catalog.get_many([h.id for h in res.hits], matrix="runtimes")
        hits = [RecordSummary.of(records[h.id], h.score).model_copy(update={"explain": h.explain})
                for h in res.hits if h.id in records]
        return SearchResponse(total=res.total, hits=hits, facets={k: v.model_dump() for k, v in res.facets.items()},
                              took_ms=res.took_ms, query=query.model_dump(), notices=res.notices,
                              next_cursor=res.next_cursor)

    def close(self) -> None:
        self.pipeline.close()
