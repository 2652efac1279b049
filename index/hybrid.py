"""Hybrid ranking for the embedded backend: BM25 from Tantivy fused with dense similarity from the
vector index, every hard constraint applied before either ranks, an exact id/name match first.

Both lists only ever hold records that satisfy every constraint: BM25 runs the backend's full
query (text AND constraints), and dense similarity is computed over the rows the constraint
query matches (enumerated when there are few; for broad constraints the dense top list over
all rows is filtered through the constraint query instead). Fusion is a convex blend of
min-max normalised BM25 and cosine scores; `bench/relevance.py` compares it with BM25 alone,
vectors alone and reciprocal-rank fusion on the judged set (tests/fixtures/relevance).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

import numpy as np

from modelport.index.embeddings import Embedder, EmbeddingsUnavailable
from modelport.index.lineage import generation_weight
from modelport.index.search import (
    EVIDENCE_BOOST,
    LINEAGE_BOOST,
    Hit,
    SearchBackend,
    SearchQuery,
    SearchResult,
    decode_cursor,
    encode_cursor,
)
from modelport.index.vectors import VectorIndex, VectorProjection

log = logging.getLogger(__name__)

Mode = Literal["hybrid", "bm25", "vector"]
Fusion = Literal["rrf", "score"]

RRF_K = 60  # the usual constant: damps the head so one list cannot decide alone
SCORE_ALPHA = 0.7  # weight of the cosine in the blend; chosen on the judged set (bench/results)
# The blend leans on the words for a name-like query of one or two words ("MoveNet", "bert-base-uncased")
# and on meaning for a sentence ("tell how someone feels from their voice"), where BM25 mostly
# matches incidental words. Chosen on the judged set (bench/results/relevance-2026-12-02.md).
SHORT_QUERY_WORDS, SHORT_ALPHA = 2, 0.55
LONG_QUERY_WORDS, LONG_ALPHA = 6, 0.85


def alpha_for(text: str, alpha: float = SCORE_ALPHA) -> float:
    """The cosine's weight for this query text (see SHORT_ALPHA, LONG_ALPHA)."""
    n = len(text.split())
    if n <= SHORT_QUERY_WORDS:
        return min(alpha, SHORT_ALPHA)
    if n >= LONG_QUERY_WORDS:
        return max(alpha, LONG_ALPHA)
    return alpha
DEPTH = 100  # how deep each list is read for fusion (at least the end of the requested page)
DENSE_DEPTH = 50  # the dense list is cut shorter: BM25 candidates get their exact cosine anyway
# Dense search within constraints either lists the rows of every matching record (cheap for few
# matches) or ranks all rows and asks Tantivy which of the best ones match (cheap for broad
# constraints). Costs measured on the 2-core reference machine (bench/results/search-*.md):
LIST_ALWAYS = 5_000  # below this many matches, always list
LIST_US = 0.35  # µs to list one matching record's row from Tantivy
ASK_US = 10.0  # µs to ask Tantivy whether one ranked row matches (a term-set query over rows)
DenseStrategy = Literal["auto", "list", "ask"]
_QUERY_CACHE = 512
_CURSOR_TAG = "hybrid"


def _one_blas_thread() -> None:
    """Cap numpy's BLAS at one thread in a process that serves hybrid searches. The dense scans
    are memory-bound matrix-vector products that a second thread barely speeds up, and OpenBLAS
    keeps that thread spinning between calls, taking the core Tantivy's search and facets need: at
    1M records it cut p50 from 46 to 37 ms (bench/results). Needs threadpoolctl (else unchanged)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(1, user_api="blas")


class ConstraintSet(Protocol):
    """The records one query's hard constraints select, on one snapshot of the search index: what the
    dense side needs from a backend whose row numbers the vector index shares (the embedded one:
    index/embedded/matches.py `ConstraintMatches`)."""

    n_all: int  # records in the snapshot

    def count(self) -> int: ...

    def rows(self, limit: int) -> np.ndarray: ...

    def ids(self, limit: int) -> list[str]: ...

    def rows_among(self, rows: np.ndarray) -> np.ndarray: ...

    def ids_among(self, ids: list[str]) -> list[str]: ...

    def exact(self, text: str) -> list[str]: ...


class RowBackend(SearchBackend, Protocol):
    """A search backend that can hand the dense side the records a query's constraints select."""

    def constraint_matches(self, q: SearchQuery) -> ConstraintSet: ...


class HybridSearch(Protocol):
    """What the read side (modelport/services.py) asks of a hybrid searcher, whichever backend."""

    def search(self, q: SearchQuery, mode: Mode = "hybrid") -> SearchResult: ...

    def why_not(self) -> str | None: ...

    def warm(self) -> None: ...


@dataclass
class _Plan:
    matches: ConstraintSet
    n_match: int
    n_all: int
    rows: np.ndarray | None  # listed candidate rows, or None: rank all and ask


B = TypeVar("B", bound=SearchBackend)


class FusedSearcher(Generic[B]):
    """What both hybrid searchers share (this module's `HybridSearcher`, the Elasticsearch one): the
    fusion of a BM25 list with a dense list, the evidence and lineage boosts, the memoised query
    embedding and the BM25 fallback with its notice. Each says where its dense list comes from."""

    def __init__(self, backend: B, unavailable: str | None = None, fusion: Fusion = "score",
                 score_alpha: float = SCORE_ALPHA, dense_weight: float = 1.0) -> None:
        self.backend = backend
        self.unavailable = unavailable
        self.fusion: Fusion = fusion
        self.score_alpha = score_alpha
        self.dense_weight = dense_weight
        self._qcache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._qlock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="hybrid")
        self._noticed: set[str] = set()

    def why_not(self) -> str | None:
        """Why a text query is ranked by BM25 alone right now (None when hybrid is available)."""
        raise NotImplementedError

    def search(self, q: SearchQuery, mode: Mode = "hybrid") -> SearchResult:
        raise NotImplementedError

    def _query_model(self) -> Embedder:
        """The embedder that turns a query into a vector."""
        raise NotImplementedError

    def warm(self) -> None:
        """Load the embedding model now (a few seconds) rather than on the first text query;
        `modelport serve` can call this in a background thread at start-up."""
        if self.why_not() is None:
            try:
                self._embed_query("warm-up")
            except EmbeddingsUnavailable as e:
                log.warning("embedding model not loaded: %s", e)

    def _boosted(self, q: SearchQuery, fused: list[tuple[str, float]], bm25: list[tuple[str, float]],
                 dense: list[tuple[str, float]], exact: list[str], depth: int
                 ) -> tuple[list[tuple[str, float]], dict[str, dict[str, Any]]]:
        """The fused list with each candidate's evidence and lineage boosts added (search.py:
        EVIDENCE_BOOST, LINEAGE_BOOST), and the parts of every score for `explain`."""
        head = fused[:depth]
        boosts = self.backend.boosts_of(q, [rid for rid, _ in head])
        bm_raw, dense_raw = dict(bm25), dict(dense)
        blend = dict(head)
        chosen = set(exact)
        out: list[tuple[str, float]] = []
        parts: dict[str, dict[str, Any]] = {}
        for rid, score in head:
            b = boosts.get(rid, {})
            ev = EVIDENCE_BOOST * float(b.get("evidence_score", 0.0))
            lin = LINEAGE_BOOST * generation_weight(int(b["generation"])) if "generation" in b else 0.0
            total = score + (0.0 if rid in chosen else ev + lin)
            out.append((rid, total))
            parts[rid] = {"bm25": bm_raw.get(rid), "cosine": dense_raw.get(rid),
                          "fusion": self.fusion, "blend": round(blend[rid], 6), "exact_match": rid in chosen,
                          "evidence": b.get("evidence", {}), "evidence_boost": round(ev, 6),
                          "generation": b.get("generation"), "lineage_boost": round(lin, 6), "score": round(total, 6)}
        out.sort(key=lambda kv: (kv[0] not in chosen, -kv[1], kv[0]))
        return out + fused[depth:], parts

    def _fallback(self, q: SearchQuery, reason: str) -> SearchResult:
        if reason not in self._noticed:
            log.warning("search without dense vectors: %s", reason)
            self._noticed.add(reason)
        res = self.backend.search(q)
        if reason not in res.notices:
            res.notices.append(reason)
        return res

    def _embed_query(self, text: str) -> np.ndarray:
        """Query vectors are memoised: paging through one query must not run the model again."""
        with self._qlock:
            vec = self._qcache.get(text)
            if vec is not None:
                self._qcache.move_to_end(text)
                return vec
        vec = self._query_model().embed_query(text)
        with self._qlock:
            self._qcache[text] = vec
            if len(self._qcache) > _QUERY_CACHE:
                self._qcache.popitem(last=False)
        return vec

    # -- pages ------------------------------------------------------------------------------------------
    def _not_hybrid(self, q: SearchQuery, mode: Mode) -> SearchResult | None:
        """The answer of a query the hybrid does not rank (no text, another sort, BM25 asked for, or
        dense vectors unavailable: then BM25 with a notice saying why); None for one it ranks."""
        if not q.text.strip() or q.sort != "relevance" or mode == "bm25":
            return self.backend.search(q)
        reason = self.why_not()
        return self._fallback(q, reason) if reason else None

    @staticmethod
    def _page_bounds(q: SearchQuery) -> tuple[int, int]:
        """The requested page's first position and the position after its end."""
        cursor = decode_cursor(q)
        if cursor is not None and cursor["a"] != [_CURSOR_TAG]:
            # A BM25 cursor from a time vectors were unavailable: page on by position.
            cursor = {"n": int(cursor.get("n", 0))}
        first = int(cursor["n"]) if cursor else q.offset
        return first, first + q.limit

    def _dense_page(self, q: SearchQuery, dense: list[tuple[str, float]], first: int, want: int,
                    start: float) -> SearchResult:
        """A page of dense similarity alone (`mode="vector"`), with the constraint query's facets."""
        res = self.backend.search(q.model_copy(update={"text": "", "limit": 1, "offset": 0, "cursor": None}))
        hits = [Hit(id=rid, score=s) for rid, s in dense[first:want]]
        return SearchResult(total=len(dense), hits=hits, facets=res.facets,
                            took_ms=(time.monotonic() - start) * 1000, notices=res.notices)

    def _fused_page(self, q: SearchQuery, bm: SearchResult, dense: list[tuple[str, float]], exact: list[str],
                    first: int, want: int, start: float) -> SearchResult:
        """The page of the fused ranking: BM25's hits (`bm`, with its facets and notices) fused with the
        dense list, exact id/name matches first, evidence and lineage boosts added."""
        bm_list = [(h.id, h.score) for h in bm.hits]
        fused = self._fuse(bm_list, dense, exact, alpha_for(q.text.strip(), self.score_alpha))
        parts: dict[str, dict[str, Any]] = {}
        if q.has_boosts() or q.explain:
            fused, parts = self._boosted(q, fused, bm_list, dense, exact, max(DEPTH, want))
        hits = [Hit(id=rid, score=s, explain=parts.get(rid) if q.explain else None) for rid, s in fused[first:want]]
        # BM25's total counts the lexical matches; records found only by meaning add to it.
        total = max(bm.total, len(fused))
        position = first + len(hits)
        next_cursor = encode_cursor(q, [_CURSOR_TAG], position) if hits and position < total else None
        return SearchResult(total=total, hits=hits, facets=bm.facets, took_ms=(time.monotonic() - start) * 1000,
                            notices=bm.notices, next_cursor=next_cursor)

    # -- fusion ---------------------------------------------------------------------------------------
    def _fuse(self, bm25: list[tuple[str, float]], dense: list[tuple[str, float]],
              exact: list[str], alpha: float | None = None) -> list[tuple[str, float]]:
        if exact:
            # Exact matches go first anyway; left in, their huge name boost would flatten every
            # other BM25 score in the normalisation.
            chosen = set(exact)
            bm25 = [(rid, s) for rid, s in bm25 if rid not in chosen]
            dense = [(rid, s) for rid, s in dense if rid not in chosen]
        scores = (rrf(bm25, dense, self.dense_weight) if self.fusion == "rrf"
                  else score_fusion(bm25, dense, self.score_alpha if alpha is None else alpha))
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
        if exact:
            # An exact id/name match is what the user meant: it goes first whatever the fusion says.
            top = max((s for _, s in ranked), default=0.0) + 1.0
            ranked = [(rid, top + len(exact) - i) for i, rid in enumerate(exact)] + ranked
        return ranked


class HybridSearcher(FusedSearcher[RowBackend]):
    """Answers `SearchQuery`s over the embedded backend plus (when present) the vector projection."""

    def __init__(self, backend: RowBackend, vectors: VectorProjection | None, unavailable: str | None = None,
                 fusion: Fusion = "score", score_alpha: float = SCORE_ALPHA, dense_weight: float = 1.0,
                 dense_strategy: DenseStrategy = "auto") -> None:
        super().__init__(backend, unavailable, fusion, score_alpha, dense_weight)
        self.dense_strategy: DenseStrategy = dense_strategy
        self.vectors = vectors
        if vectors is not None:
            _one_blas_thread()

    def why_not(self) -> str | None:
        if self.vectors is None:
            return self.unavailable or "dense vectors are not available"
        if not self.vectors.in_step():
            return ("the vector index is out of step with the search index (it was rebuilt on its own); "
                    "results are ranked by BM25 until `modelport reindex`")
        if len(self.vectors.index) == 0 and self.backend.count() > 0:
            return ("no record has a vector yet (embeddings were off when they were indexed); results are "
                    "ranked by BM25 until `modelport reindex` embeds the catalog")
        return None

    # -- entry point ------------------------------------------------------------------------------
    def search(self, q: SearchQuery, mode: Mode = "hybrid") -> SearchResult:
        start = time.monotonic()
        unranked = self._not_hybrid(q, mode)
        if unranked is not None:
            return unranked
        assert self.vectors is not None
        text = q.text.strip()
        first, want = self._page_bounds(q)
        depth = max(DEPTH, want)
        if mode == "vector":
            return self._vector_only(q, first, want, start)
        # BM25 + facets, the constraint side of the dense search and the exact-name lookup run
        # beside the query embedding: Tantivy, torch and numpy all release the GIL.
        bm_f = self._pool.submit(self.backend.search,
                                 q.model_copy(update={"limit": min(depth, 10_000), "offset": 0, "cursor": None,
                                                      "rank_boosts": False, "explain": False}))
        self.vectors.index.refresh()
        k = max(DENSE_DEPTH, want)
        plan_f = self._pool.submit(self._dense_plan, q, k)
        exact_f = self._pool.submit(self._exact, q)
        try:
            qvec = self._embed_query(text)
        except EmbeddingsUnavailable as e:
            for f in (bm_f, plan_f, exact_f):
                f.cancel()
            return self._fallback(q, str(e))
        dense = self._dense_rank(plan_f.result(), qvec, k)
        exact = exact_f.result()
        bm = bm_f.result()
        bm_list = [(h.id, h.score) for h in bm.hits]
        if self.fusion == "score":
            # Every candidate gets its exact cosine, not only those in the dense top list.
            known = dict(dense)
            missing = [rid for rid, _ in bm_list if rid not in known]
            known.update(self.vectors.index.similarities(qvec, missing))
            dense = sorted(known.items(), key=lambda kv: -kv[1])
        return self._fused_page(q, bm, dense, exact, first, want, start)

    def _vector_only(self, q: SearchQuery, first: int, want: int, start: float) -> SearchResult:
        """Dense similarity alone within the constraints (for comparisons: bench/relevance.py)."""
        qvec = self._embed_query(q.text.strip())
        return self._dense_page(q, self._dense(q, qvec, want), first, want, start)

    def _query_model(self) -> Embedder:
        """The vector index's embedder."""
        assert self.vectors is not None
        return self.vectors.embedder.embedder

    # -- dense side, within the constraints ----------------------------------------------------------
    def _constraints(self, q: SearchQuery) -> ConstraintSet:
        """The records the hard constraints select (the text only ranks)."""
        return self.backend.constraint_matches(q.model_copy(update={"text": "", "rank_boosts": False}))

    def _dense(self, q: SearchQuery, qvec: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The k records most similar to the query among those satisfying every constraint."""
        return self._dense_rank(self._dense_plan(q, k), qvec, k)

    def _dense_plan(self, q: SearchQuery, k: int) -> _Plan:
        """The constraint side of the dense search, which needs no query vector (so it runs while
        the model embeds the query): how many records match, and their rows when listing them is
        cheaper than asking about the best-ranked rows."""
        assert self.vectors is not None
        matches = self._constraints(q)
        n_all = matches.n_all
        n_match = matches.count()
        if n_match == 0 or n_match >= n_all:  # nothing, or no constraint excludes anything
            return _Plan(matches, n_match, n_all, None)
        if self._list_first(self.vectors.index, n_match, n_all, k):
            return _Plan(matches, n_match, n_all, self._matching_rows(matches, n_match))
        return _Plan(matches, n_match, n_all, None)

    def _dense_rank(self, plan: _Plan, qvec: np.ndarray, k: int) -> list[tuple[str, float]]:
        assert self.vectors is not None
        index = self.vectors.index
        if plan.n_match == 0:
            return []
        if plan.n_match >= plan.n_all:
            return index.search(qvec, k)
        if plan.rows is not None:
            return index.search(qvec, k, plan.rows)
        # Broad constraints: rank all rows and ask the constraint query about the best of them.
        rows, scores = index.search_filtered(qvec, k, lambda r: self._satisfying(plan.matches, r),
                                             plan.n_match / plan.n_all)
        return list(zip(index.ids_of(rows), scores.tolist(), strict=True))

    def _list_first(self, index: VectorIndex, n_match: int, n_all: int, k: int) -> bool:
        if self.dense_strategy != "auto":
            return self.dense_strategy == "list"
        if n_match <= LIST_ALWAYS:
            return True
        scan_us, gather_us = index.cost_per_row_us()
        listing = n_match * (LIST_US + gather_us)
        asking = n_all * scan_us + (2 * k * n_all / n_match + 64) * ASK_US
        return listing <= asking

    def _matching_rows(self, matches: ConstraintSet, n: int) -> np.ndarray:
        """Vector rows of the records the constraint query matches."""
        assert self.vectors is not None
        if self.vectors.rows_from is not None:  # shared row numbers: read them, no documents loaded
            return matches.rows(n)
        return self.vectors.index.rows_of(matches.ids(n))

    def _satisfying(self, matches: ConstraintSet, rows: np.ndarray) -> np.ndarray:
        """Which of the given vector rows belong to records the constraint query matches."""
        assert self.vectors is not None
        if len(rows) == 0:
            return rows
        if self.vectors.rows_from is not None:
            return matches.rows_among(rows)
        return self.vectors.index.rows_of(matches.ids_among(self.vectors.index.ids_of(rows)))

    def _exact(self, q: SearchQuery) -> list[str]:
        """Records whose id or name is exactly the query text (case-insensitive, in any of its
        `exact_names` spellings), within the constraints."""
        return self._constraints(q).exact(q.text)


def rrf(bm25: list[tuple[str, float]], dense: list[tuple[str, float]], dense_weight: float = 1.0,
        k: int = RRF_K) -> dict[str, float]:
    """Reciprocal-rank fusion: each list adds weight / (k + rank)."""
    out: dict[str, float] = {}
    for rank, (rid, _) in enumerate(bm25, 1):
        out[rid] = out.get(rid, 0.0) + 1.0 / (k + rank)
    for rank, (rid, _) in enumerate(dense, 1):
        out[rid] = out.get(rid, 0.0) + dense_weight / (k + rank)
    return out


def score_fusion(bm25: list[tuple[str, float]], dense: list[tuple[str, float]],
                 alpha: float = SCORE_ALPHA) -> dict[str, float]:
    """Convex blend of BM25 divided by its best score and min-max normalised cosines; a record
    missing from a list gets 0 from it. BM25 is not min-max normalised: its long tail of one-word
    matches then keeps its small share instead of being stretched over 0..1 (on the judged set,
    0.906 against 0.901 nDCG@10, and name queries such as "MoveNet" 0.50 → 1.00)."""
    def minmax(items: list[tuple[str, float]]) -> dict[str, float]:
        if not items:
            return {}
        vals = [s for _, s in items]
        lo, hi = min(vals), max(vals)
        span = hi - lo or 1.0
        return {rid: (s - lo) / span for rid, s in items}

    top = max((s for _, s in bm25), default=0.0) or 1.0
    b, d = {rid: s / top for rid, s in bm25}, minmax(dense)
    return {rid: (1 - alpha) * b.get(rid, 0.0) + alpha * d.get(rid, 0.0) for rid in {*b, *d}}
