"""Hybrid ranking in the cluster: BM25 from Elasticsearch fused with Elasticsearch's own kNN over the
records' summary embeddings (`vec`, int8 HNSW), both within the same constraint filter, fused the
way the embedded backend's `HybridSearcher` fuses (its `_fuse`: score blend by default, RRF on request,
an exact id/name match first), so the two backends rank alike (bench/relevance.py --backend both).

The fusion runs here, not in the server: reciprocal-rank fusion in Elasticsearch is the `rrf`
retriever of the x-pack rank-rrf plugin (a licensed feature), which is not part of the open server
that the test suite assembles from Maven Central; and the default fusion here is the score blend,
which no server offers. Each request still does its ranking in the cluster: BM25 top-100, kNN
top-50 with the constraint filter, and the exact cosine of the BM25 candidates the kNN list missed
(a kNN restricted to their ids, which the server answers exactly for so few documents).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from modelport.index.elasticsearch.query import es_query
from modelport.index.embeddings import CachedEmbedder, Embedder, EmbeddingsUnavailable
from modelport.index.hybrid import DENSE_DEPTH, DEPTH, SCORE_ALPHA, FusedSearcher, Fusion, Mode
from modelport.index.search import SearchQuery, SearchResult

if TYPE_CHECKING:  # (the backend imports this module's helpers)
    from modelport.index.elasticsearch.backend import ElasticsearchBackend

log = logging.getLogger(__name__)

_CANDIDATES = 4  # HNSW candidates per wanted neighbour (num_candidates = k * this, at most 10,000)


def cosine_of(score: float) -> float:
    """Elasticsearch scores a cosine kNN hit as (1 + cos) / 2; the fusion wants the cosine."""
    return 2.0 * score - 1.0


class ElasticsearchHybrid(FusedSearcher["ElasticsearchBackend"]):
    """The hybrid ranking over the Elasticsearch backend: the same entry point and fusion as the
    embedded backend's `HybridSearcher`, the dense side in the cluster. `embedder` embeds query texts
    (and, on the backend, the records as they are indexed)."""

    def __init__(self, backend: ElasticsearchBackend, embedder: CachedEmbedder | None,
                 unavailable: str | None = None, fusion: Fusion = "score", score_alpha: float = SCORE_ALPHA,
                 dense_weight: float = 1.0) -> None:
        super().__init__(backend, unavailable, fusion, score_alpha, dense_weight)
        self.embedder = embedder

    def why_not(self) -> str | None:
        if self.embedder is None:
            return self.unavailable or "dense vectors are not available"
        if self.backend.vector_count() == 0 and self.backend.count() > 0:
            return ("no record has a vector yet (embeddings were off when they were indexed); results are "
                    "ranked by BM25 until `modelport reindex` embeds the catalog")
        return None

    def _query_model(self) -> Embedder:
        assert self.embedder is not None
        return self.embedder.embedder

    def search(self, q: SearchQuery, mode: Mode = "hybrid") -> SearchResult:
        start = time.monotonic()
        unranked = self._not_hybrid(q, mode)
        if unranked is not None:
            return unranked
        text = q.text.strip()
        first, want = self._page_bounds(q)
        try:
            qvec = self._embed_query(text)
        except EmbeddingsUnavailable as e:
            return self._fallback(q, str(e))
        constraints = es_query(q.model_copy(update={"text": "", "rank_boosts": False}), self.backend.lineage)
        if mode == "vector":
            return self._dense_page(q, self.backend.knn(qvec, constraints, want), first, want, start)
        bm_f = self._pool.submit(self.backend.search,
                                 q.model_copy(update={"limit": min(max(DEPTH, want), 10_000), "offset": 0,
                                                      "cursor": None, "rank_boosts": False, "explain": False}))
        dense_f = self._pool.submit(self.backend.knn, qvec, constraints, max(DENSE_DEPTH, want))
        exact_f = self._pool.submit(self.backend.exact_matches, text, constraints)
        bm, dense, exact = bm_f.result(), dense_f.result(), exact_f.result()
        bm_list = [(h.id, h.score) for h in bm.hits]
        if self.fusion == "score":
            # Every BM25 candidate gets its cosine, not only those in the kNN top list.
            known = dict(dense)
            missing = [rid for rid, _ in bm_list if rid not in known]
            if missing:
                known.update(self.backend.knn(qvec, constraints, len(missing), ids=missing))
            dense = sorted(known.items(), key=lambda kv: -kv[1])
        return self._fused_page(q, bm, dense, exact, first, want, start)


def knn_body(qvec: np.ndarray, constraints: dict[str, Any], k: int, ids: list[str] | None = None
             ) -> dict[str, Any]:
    """The `knn` section of a search: the k nearest records that satisfy the constraints (and, with
    `ids`, are among those records)."""
    filters = [constraints] if constraints != {"match_all": {}} else []
    if ids is not None:
        filters.append({"ids": {"values": ids}})
    body: dict[str, Any] = {"field": "vec", "query_vector": [float(x) for x in qvec], "k": k,
                            "num_candidates": min(10_000, max(k * _CANDIDATES, 100))}
    if filters:
        body["filter"] = filters
    return body


def open_embedder(settings: Any) -> tuple[CachedEmbedder | None, str | None]:
    """The embedder the Elasticsearch backend embeds records and queries with (the embedded backend's
    model and content-hash cache in the data dir), or (None, why not); the model loads on first use."""
    from modelport.index.embeddings import EmbeddingCache, load_embedder

    try:
        embedder = load_embedder(settings.embeddings)
    except EmbeddingsUnavailable as e:
        return None, str(e)
    return CachedEmbedder(embedder, EmbeddingCache(settings.index_dir / "embedding-cache.sqlite")), None
