"""The one place that names the search backends: it opens the configured backend and the hybrid
searcher that goes with it. Everything else (the pipeline, the read side, the API, the CLI) holds a
`SearchBackend` (index/search.py) and a `HybridSearch` (index/hybrid.py) and never imports a
particular backend (tests/test_imports.py keeps it so). A new backend is added here
(CONTRIBUTING.md, "Add a search backend")."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelport.index.hybrid import HybridSearch, HybridSearcher
from modelport.index.search import SearchBackend

if TYPE_CHECKING:
    from modelport.index.vectors import VectorProjection
    from modelport.settings import Settings


def open_search_backend(settings: Settings) -> SearchBackend:
    """The configured search backend (an Elasticsearch server is first contacted when first used)."""
    if settings.search_backend == "elasticsearch":
        from modelport.index.elasticsearch import ElasticsearchBackend
        from modelport.index.elasticsearch.hybrid import open_embedder

        assert settings.elasticsearch_url  # the settings refuse the backend without one
        key = settings.elasticsearch_api_key
        backend = ElasticsearchBackend(settings.elasticsearch_url, index_name=settings.elasticsearch_index,
                                       api_key=key.get_secret_value() if key else None,
                                       request_timeout_s=settings.query_timeout_s)
        # Its documents carry the summary embeddings, so hybrid search runs in the cluster.
        backend.embedder, backend.embedder_unavailable = open_embedder(settings)
        return backend
    from modelport.index.embedded import TantivyBackend

    return TantivyBackend(settings.index_dir / "tantivy")


def open_hybrid(backend: SearchBackend, vectors: VectorProjection | None,
                vectors_unavailable: str | None) -> HybridSearch:
    """BM25 fused with dense vectors for `backend`: the embedded backend with the vector projection
    (`vectors`, or why there is none), Elasticsearch with kNN in the cluster (same fusion)."""
    from modelport.index.embedded import TantivyBackend

    if isinstance(backend, TantivyBackend):
        return HybridSearcher(backend, vectors, vectors_unavailable)
    if backend.name == "elasticsearch":
        from modelport.index.elasticsearch import ElasticsearchBackend
        from modelport.index.elasticsearch.hybrid import ElasticsearchHybrid

        assert isinstance(backend, ElasticsearchBackend)
        return ElasticsearchHybrid(backend, backend.embedder, backend.embedder_unavailable)
    raise TypeError(f"no hybrid searcher for the search backend {backend.name!r}")


__all__ = ["open_search_backend", "open_hybrid"]
