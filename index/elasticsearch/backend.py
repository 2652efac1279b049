"""The Elasticsearch `SearchBackend`: index lifecycle, bulk writes, searches with cursors, facets within
their time limit.

Just over ~500 lines: the `SearchBackend` methods over one client and index alias; the mapping,
queries, facets, lifecycle and hybrid search are already modules of this package.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

from elasticsearch import ApiError, Elasticsearch, TransportError, helpers

from modelport.index.elasticsearch.client import (
    ElasticsearchBackendError,
    PinnedCompatTransport,
    reason,
    redact_url,
)
from modelport.index.elasticsearch.facets import facet_aggs, facet_counts
from modelport.index.elasticsearch.hybrid import cosine_of, knn_body
from modelport.index.elasticsearch.lifecycle import IndexLifecycle
from modelport.index.elasticsearch.mapping import es_document
from modelport.index.elasticsearch.query import es_query
from modelport.index.embeddings import CachedEmbedder, EmbeddingsUnavailable
from modelport.index.lineage import Lookups, Node, Tree, walk
from modelport.index.search import (
    FACET_FIELDS,
    CursorError,
    FacetCounts,
    Hit,
    LineageConstraint,
    SearchQuery,
    SearchResult,
    decode_cursor,
    encode_cursor,
    evidence_of,
    exact_names,
)
from modelport.schema.record import ModelRecord

log = logging.getLogger(__name__)

DEFAULT_INDEX = "modelport"
_IDS_PAGE = 10_000  # ids per request when listing every match
_NAMED_BY = ("id_lc", "name_lc", "lin_node")  # fields a base model's name is looked up in
_LINEAGE_MEMO_S = 2.0  # a walk's result is reused this long (one search builds its query several times)
_CHANGED = "the index changed while paging; results continue after the last one shown"

T = TypeVar("T")


def _ms(seconds: float) -> str:
    return f"{max(1, int(seconds * 1000))}ms"


class ElasticsearchBackend(IndexLifecycle):
    """The `SearchBackend` over one Elasticsearch alias and the index behind it (lifecycle.py).
    Nothing connects until first use; the index is created then (or replaced by an empty one and
    flagged `needs_rebuild` when another encoding built it)."""

    name = "elasticsearch"

    def __init__(self, url: str, index_name: str = DEFAULT_INDEX, *, api_key: str | None = None,
                 request_timeout_s: float = 10.0, write_timeout_s: float = 60.0, shards: int = 1,
                 replicas: int | None = None, bulk_chunk: int = 500, bulk_retries: int = 8,
                 bulk_backoff_s: float = 0.5) -> None:
        self.url = redact_url(url)  # never the credentials
        self.index_name = index_name
        self.request_timeout_s = request_timeout_s
        self.write_timeout_s = write_timeout_s
        self.shards, self.replicas, self.bulk_chunk = shards, replicas, bulk_chunk
        self.bulk_retries, self.bulk_backoff_s = bulk_retries, bulk_backoff_s
        # Set by the wiring when embeddings are on: documents then carry `vec` for kNN (hybrid.py).
        self.embedder: CachedEmbedder | None = None
        self.embedder_unavailable: str | None = "embeddings are not configured for this backend"
        self.embed_failed: str | None = None
        try:
            self._client = Elasticsearch(url, api_key=api_key, request_timeout=request_timeout_s, max_retries=2,
                                         retry_on_timeout=False, transport_class=PinnedCompatTransport)
        except ValueError as e:
            raise ElasticsearchBackendError(f"Elasticsearch URL {self.url!r} is not usable: {e}") from None
        self._lock = threading.Lock()
        self._lineage_lock = threading.Lock()
        self._lineage_memo: dict[tuple[Any, ...], tuple[float, Tree]] = {}
        self._opened = False
        self._needs_rebuild = False
        # The index a rebuild is writing (begin_rebuild .. finish_rebuild): writes go there while
        # searches keep reading the alias.
        self._staging: str | None = None
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="es-facets")
        self._closed = False

    # -- errors ------------------------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one client call; its failure becomes an `ElasticsearchBackendError` naming the server,
        the index and what was being done."""
        try:
            return fn()
        except helpers.BulkIndexError as e:
            first = e.errors[0] if e.errors else {}
            item: Any = next(iter(first.values()), {}) if first else {}  # the server's JSON
            err = item.get("error", {}) if isinstance(item, dict) else {}
            detail = f"{len(e.errors)} record(s) refused; first: {item.get('_id')}: " \
                     f"{err.get('type', '')}: {err.get('reason', err)}"
            raise self._error(what, detail) from None
        except ApiError as e:
            raise self._error(what, f"HTTP {e.meta.status}: {reason(e)}") from None
        except TransportError as e:
            raise self._error(what, f"{type(e).__name__}: {e.message}") from None

    def _error(self, what: str, detail: str) -> ElasticsearchBackendError:
        return ElasticsearchBackendError(f"Elasticsearch at {self.url} (index {self.index_name!r}): {what} failed: "
                                         f"{detail}")

    # -- the index -----------------------------------------------------------------------------------
    @property
    def needs_rebuild(self) -> bool:
        """True when the index was emptied on open because another mapping, facts encoding or KB
        built it; `search.ensure_current` then rebuilds it from the catalog."""
        self._open()
        return self._needs_rebuild

    @needs_rebuild.setter
    def needs_rebuild(self, value: bool) -> None:
        self._needs_rebuild = value

    def _open(self) -> None:
        if self._opened:
            return
        with self._lock:
            if not self._opened:
                self._open_index()
                self._opened = True

    def delete_index(self) -> None:
        """Remove the index and its alias altogether (tests, operators); the next use creates them again."""
        with self._lock:
            self._delete_all()
            self._opened = False

    # -- writes --------------------------------------------------------------------------------------
    def _bulk(self, what: str, actions: Iterable[dict[str, Any]], ignore_status: tuple[int, ...] = ()) -> None:
        """Bulk requests of `bulk_chunk` actions. A request or item refused with 429 (the node's write
        queue or a circuit breaker full) is sent again after a growing pause (`bulk_backoff_s`, doubled
        each time up to 30 s, `bulk_retries` times); any other refusal is an error naming the record."""
        client = self._client.options(request_timeout=self.write_timeout_s)
        self._call(what, lambda: helpers.bulk(client, actions, chunk_size=self.bulk_chunk, ignore_status=ignore_status,
                                              max_retries=self.bulk_retries, initial_backoff=self.bulk_backoff_s,
                                              max_backoff=30.0))

    def _target(self) -> str:
        """Where writes go: the index a rebuild is filling, else the alias."""
        return self._staging or self.index_name

    def upsert(self, records: list[ModelRecord]) -> None:
        if not records:
            return
        self._open()
        self._index_into(self._target(), records)

    def delete(self, ids: list[str]) -> None:
        if not ids:
            return
        self._open()
        target = self._target()
        # A record the index never held is already gone (404 is not an error here).
        self._bulk(f"deleting {len(ids)} record(s)",
                   ({"_op_type": "delete", "_index": target, "_id": i} for i in ids), ignore_status=(404,))

    def commit(self) -> None:
        """Make every write so far searchable (an index refresh; during a rebuild, of the new index,
        which searches do not read until `finish_rebuild`)."""
        self._open()
        target = self._target()
        self._call("refreshing the index", lambda: self._client.indices.refresh(index=target))

    def clear(self) -> None:
        """Empty at once: the alias moves to a new empty index (one atomic switch)."""
        self._open()
        with self._lock:
            self._switch_to(self._create(), self._concrete())
            self._needs_rebuild = False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    def count(self) -> int:
        self._open()
        resp = self._call("counting records", lambda: self._client.count(index=self.index_name))
        return int(resp["count"])

    def rebuild_from(self, records: Iterable[ModelRecord], batch: int = 1000) -> int:
        """Index `records` (the catalog's live records) into a new index while searches keep reading
        the current one, then switch the alias to it and drop the old one atomically."""
        self.begin_rebuild()
        n = 0
        try:
            buf: list[ModelRecord] = []
            for r in records:
                buf.append(r)
                if len(buf) >= batch:
                    self.upsert(buf)
                    n, buf = n + len(buf), []
            self.upsert(buf)
            n += len(buf)
        except BaseException:
            self.abort_rebuild()  # the old index still serves; nothing half-built is left behind
            raise
        self.finish_rebuild()
        return n

    def _index_into(self, index: str, records: list[ModelRecord]) -> int:
        if records:
            docs = [es_document(r) for r in records]
            for doc, vec in zip(docs, self._vectors(records), strict=True):
                if vec is not None:
                    doc["vec"] = vec
            self._bulk(f"indexing {len(records)} record(s)",
                       ({"_op_type": "index", "_index": index, "_id": r.id, "_source": d}
                        for r, d in zip(records, docs, strict=True)))
        return len(records)

    def _vectors(self, records: list[ModelRecord]) -> list[list[float] | None]:
        """The records' summary embeddings (through the content-hash cache), or none when embeddings
        are off or failed: those records are still found by BM25 until a reindex embeds them."""
        if self.embedder is None:
            return [None] * len(records)
        try:
            vecs, _ = self.embedder.embed_records(records)
        except EmbeddingsUnavailable as e:
            if self.embed_failed is None:
                log.error("embedding failed, %d records indexed without vectors: %s", len(records), e)
            self.embed_failed = str(e)
            return [None] * len(records)
        return [[float(x) for x in v] for v in vecs]

    def health(self) -> dict[str, Any]:
        """For /health: the cluster's health and the index's document count (never raises: a cluster
        that does not answer is reported as such)."""
        out: dict[str, Any] = {"backend": self.name, "url": self.url, "index": self.index_name}
        try:
            client = self._client.options(request_timeout=min(5.0, self.request_timeout_s))
            health = client.cluster.health().body
            out.update(cluster=health.get("cluster_name"), cluster_status=health.get("status"),
                       nodes=health.get("number_of_nodes"))
            self._open()
            out["documents"] = int(client.count(index=self.index_name)["count"])
            out["status"] = "ok" if health.get("status") in ("green", "yellow") else "degraded"
        except (ApiError, TransportError, ElasticsearchBackendError) as e:
            out["status"] = "unavailable"
            out["error"] = str(e) if isinstance(e, ElasticsearchBackendError) else \
                f"Elasticsearch at {self.url} did not answer: {type(e).__name__}"
        return out

    # -- the dense side of hybrid search (hybrid.py) ---------------------------------------------------
    def vector_count(self) -> int:
        self._open()
        resp = self._call("counting vectors", lambda: self._client.count(
            index=self.index_name, query={"exists": {"field": "vec"}}))
        return int(resp["count"])

    def knn(self, qvec: Any, constraints: dict[str, Any], k: int, ids: list[str] | None = None
            ) -> list[tuple[str, float]]:
        """(id, cosine) of the k records nearest to `qvec` among those matching `constraints`."""
        self._open()
        resp = self._search("nearest neighbours", knn=knn_body(qvec, constraints, k, ids), size=k,
                            track_total_hits=False)
        return [(h["_id"], cosine_of(float(h["_score"]))) for h in resp["hits"]["hits"]]

    def exact_matches(self, text: str, constraints: dict[str, Any]) -> list[str]:
        """Records whose id or name is exactly `text` (case-insensitive, in any of its `exact_names`
        spellings), within the constraints."""
        names = exact_names(text)
        if not names:
            return []
        query = {"bool": {"filter": [constraints, {"bool": {"should": [{"terms": {"id_lc": names}},
                                                                      {"terms": {"name_lc": names}}],
                                                           "minimum_should_match": 1}}]}}
        resp = self._search("exact name matches", query=query, size=10, track_total_hits=False)
        return sorted(h["_id"] for h in resp["hits"]["hits"])

    # -- hard-constraint sets ------------------------------------------------------------------------
    def count_matching(self, q: SearchQuery) -> int:
        self._open()
        query = es_query(q.model_copy(update={"text": ""}), self.lineage)
        resp = self._call("counting matches", lambda: self._client.count(index=self.index_name, query=query))
        return int(resp["count"])

    def matching_ids(self, q: SearchQuery) -> list[str]:
        """Ids of every record satisfying the hard constraints, free text ignored, sorted."""
        return list(self._iter_ids(es_query(q.model_copy(update={"text": ""}), self.lineage)))

    def _iter_ids(self, query: dict[str, Any]) -> Iterator[str]:
        self._open()
        after: list[Any] | None = None
        while True:
            resp = self._search("listing matching ids", query=query, sort=[{"id": "asc"}], size=_IDS_PAGE,
                                search_after=after, track_total_hits=False)
            hits = resp["hits"]["hits"]
            for h in hits:
                yield h["_id"]
            if len(hits) < _IDS_PAGE:
                return
            after = hits[-1]["sort"]

    # -- search --------------------------------------------------------------------------------------
    def _search(self, what: str, timeout_s: float | None = None, **body: Any) -> dict[str, Any]:
        """One search request with a client-side time limit and the same limit for the shards."""
        budget = timeout_s if timeout_s is not None else self.request_timeout_s
        body = {k: v for k, v in body.items() if v is not None}
        client = self._client.options(request_timeout=budget)
        resp = self._call(what, lambda: client.search(index=self.index_name, source=False, timeout=_ms(budget),
                                                      **body))
        answer: dict[str, Any] = resp.body
        return answer

    def search(self, q: SearchQuery) -> SearchResult:
        start = time.monotonic()
        cursor = decode_cursor(q)  # a bad cursor is the caller's error, found before any request
        # No text but evidence / lineage boosts: ordered by the boosts, then downloads.
        boosted = q.sort == "relevance" and not q.text.strip() and q.rank_boosts and q.has_boosts()
        if cursor is not None and len(cursor["a"]) != (3 if boosted else 2):
            raise CursorError("this cursor comes from another search backend; start from the first page")
        self._open()
        query = es_query(q, self.lineage)
        facets_future = self._submit_facets(query, q.facets, start + q.facet_timeout_s)
        notices: list[str] = []
        if q.sort == "relevance" and q.text.strip():
            resp = self._relevance_page(query, q, cursor, notices)
        elif boosted:
            by_boost = [{"_score": "desc"}, {"downloads": "desc"}, {"id": "asc"}]
            resp = self._search("searching", query=query, sort=by_boost, size=q.limit,
                                from_=None if cursor else q.offset, search_after=cursor["a"] if cursor else None,
                                track_scores=True, track_total_hits=True)
        else:
            field = q.sort if q.sort != "relevance" else "downloads"  # no text: most downloaded first
            resp = self._search("searching", query=query, sort=[{field: "desc"}, {"id": "asc"}], size=q.limit,
                                from_=None if cursor else q.offset, search_after=cursor["a"] if cursor else None,
                                track_total_hits=True)
        if resp.get("timed_out"):
            notices.append("the search ran out of time on some shards; results may be incomplete")
        found = resp["hits"]["hits"]
        total = int(resp["hits"]["total"]["value"])
        scored = q.sort == "relevance" and (bool(q.text.strip()) or boosted)
        hits = [Hit(id=h["_id"], score=float(h["_score"] or 0.0) if scored else 0.0) for h in found]
        after = list(found[-1]["sort"]) if found else []
        if q.explain and hits:
            hits = self._explained(q, hits)
        facets = self._collect_facets(facets_future, q.facets, start + q.facet_timeout_s)
        position = (cursor["n"] if cursor else q.offset) + len(hits)
        next_cursor = encode_cursor(q, after, position) if hits and position < total and after else None
        return SearchResult(total=total, hits=hits, facets=facets, took_ms=(time.monotonic() - start) * 1000,
                            notices=notices, next_cursor=next_cursor)

    def boosts_of(self, q: SearchQuery, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Each record's evidence for the query's preferences (from its compatibility tokens, one
        request) and its lineage generation: what the hybrid fusion adds and `explain` shows."""
        if not ids:
            return {}
        tokens: dict[str, set[str]] = {}
        if q.evidence_preferences():
            resp = self._search("reading evidence", query={"ids": {"values": ids}}, size=len(ids),
                                docvalue_fields=["compat"], track_total_hits=False)
            tokens = {h["_id"]: set(h.get("fields", {}).get("compat", [])) for h in resp["hits"]["hits"]}
        trees = [self.lineage(c) for c in q.lineage_constraints()]
        out: dict[str, dict[str, Any]] = {}
        for rid in ids:
            parts: dict[str, Any] = evidence_of(q, tokens.get(rid, set()))
            gens = [t.generation[rid] for t in trees if rid in t.generation]
            if gens:
                parts["generation"] = min(gens)
            out[rid] = parts
        return out

    def _explained(self, q: SearchQuery, hits: list[Hit]) -> list[Hit]:
        """`explain`: each hit's score with the evidence and lineage generation behind it."""
        parts = self.boosts_of(q, [h.id for h in hits])
        return [h.model_copy(update={"explain": {"backend_score": h.score, "boosts_in_score": q.rank_boosts,
                                                 **parts.get(h.id, {})}}) for h in hits]

    # -- lineage -------------------------------------------------------------------------------------
    def lineage(self, c: LineageConstraint) -> Tree:
        """The descendants a lineage constraint selects (index/lineage.py), walked with one request
        per generation; memoised briefly, since one search builds its query more than once."""
        key = (c.base, tuple(c.relations), c.depth)
        now = time.monotonic()
        with self._lineage_lock:
            hit = self._lineage_memo.get(key)
            if hit is not None and now - hit[0] < _LINEAGE_MEMO_S:
                return hit[1]
        tree = walk(c.base, list(c.relations), c.depth, Lookups(
            exact=lambda k, n: self._nodes({"bool": {"should": [{"term": {f: k}} for f in _NAMED_BY],
                                                      "minimum_should_match": 1}}, n),
            prefix=lambda k, n: self._nodes({"prefix": {"name_lc": {"value": k}}}, n, prefix_of=k),
            children=lambda keys, n: self._nodes({"terms": {"lin_base": keys}}, n)))
        with self._lineage_lock:
            if len(self._lineage_memo) > 256:
                self._lineage_memo.clear()
            self._lineage_memo[key] = (now, tree)
        return tree

    def _nodes(self, query: dict[str, Any], limit: int, prefix_of: str | None = None) -> list[Node]:
        """Records matching `query` as the walk sees them (with `prefix_of`: only names that go on
        after the prefix with '-', '_' or '.', as the embedded backend's name-prefix lookup)."""
        self._open()
        out: list[Node] = []
        after: list[Any] | None = None
        while len(out) < limit:
            size = min(_IDS_PAGE, limit - len(out))
            resp = self._search("walking a model tree", query=query, sort=[{"id": "asc"}], size=size,
                                search_after=after, docvalue_fields=["lin_node", "lin_link", "name_lc"],
                                track_total_hits=False)
            hits = resp["hits"]["hits"]
            for h in hits:
                f = h.get("fields", {})
                if prefix_of is not None and not any(
                        n.startswith(prefix_of) and n[len(prefix_of):len(prefix_of) + 1] in ("-", "_", ".")
                        for n in f.get("name_lc", [])):
                    continue
                links = tuple((rel, key) for rel, _, key in (x.partition("|") for x in f.get("lin_link", [])))
                out.append(Node(id=h["_id"], keys=tuple(f.get("lin_node", [])), links=links))
            if len(hits) < size:
                break
            after = hits[-1]["sort"]
        return out

    def _relevance_page(self, query: dict[str, Any], q: SearchQuery, cursor: dict[str, Any] | None,
                        notices: list[str]) -> dict[str, Any]:
        """BM25 order, ties by id. Offset pages are `from`/`size`; a cursor carries the (score, id) of
        the last record shown and the page continues right after that record's current place, so a
        change to the index between pages (which moves every score) repeats nothing already shown."""
        sort = [{"_score": "desc"}, {"id": "asc"}]
        if cursor is None:
            return self._search("searching", query=query, sort=sort, size=q.limit, from_=q.offset,
                                track_scores=True, track_total_hits=True)
        score, last_id = float(cursor["a"][0]), str(cursor["a"][1])
        now = self._score_of(query, last_id)
        if now != score:
            notices.append(_CHANGED)
        # The last record shown no longer matches: continue below the score it had.
        after = [now if now is not None else score, last_id]
        return self._search("searching", query=query, sort=sort, size=q.limit, search_after=after,
                            track_scores=True, track_total_hits=True)

    def _score_of(self, query: dict[str, Any], rid: str) -> float | None:
        """A record's current score under the query (None when it no longer matches)."""
        resp = self._search("locating the last record shown",
                            query={"bool": {"must": [query], "filter": [{"ids": {"values": [rid]}}]}},
                            size=1, track_total_hits=False)
        hits = resp["hits"]["hits"]
        return float(hits[0]["_score"]) if hits else None

    # -- facets --------------------------------------------------------------------------------------
    def _submit_facets(self, query: dict[str, Any], fields: list[str], deadline: float
                       ) -> Future[dict[str, dict[str, int]]] | None:
        """Facets run beside the page, as one aggregation request limited to what is left of the
        facet time (on the client and on the shards), so a slow facet never holds the hits back."""
        aggs = facet_aggs(fields)
        if not aggs:
            return None
        return self._pool.submit(self._facet_request, query, aggs, deadline)

    def _facet_request(self, query: dict[str, Any], aggs: dict[str, Any], deadline: float) -> dict[str, dict[str, int]]:
        budget = deadline - time.monotonic()
        if budget <= 0:  # waited for a worker past the deadline: no request can come back in time
            raise TimeoutError("no time left for facets")
        try:
            resp = self._search("counting facets", timeout_s=budget, query=query, aggs=aggs, size=0,
                                track_total_hits=False)
        except ElasticsearchBackendError as e:
            if time.monotonic() >= deadline:  # the client gave up at the deadline: out of time, not broken
                raise TimeoutError(str(e)) from None
            raise
        if resp.get("timed_out"):
            # Partial counts would look exact: report the facets as out of time instead.
            raise TimeoutError("facet aggregation timed out on the shards")
        return {f: facet_counts(f, agg) for f, agg in resp.get("aggregations", {}).items()}

    @staticmethod
    def _collect_facets(future: Future[dict[str, dict[str, int]]] | None, fields: list[str],
                        deadline: float) -> dict[str, FacetCounts]:
        if future is None:
            return {}
        wanted = [f for f in dict.fromkeys(fields) if f in FACET_FIELDS]
        wait([future], timeout=max(0.0, deadline - time.monotonic()))
        if future.done() and not future.cancelled():
            try:
                counts = future.result()
                return {f: FacetCounts(counts=counts.get(f, {})) for f in wanted}
            except TimeoutError:
                pass
            except Exception as e:  # a facet failing must not fail the search
                log.warning("facets failed: %s", e)
        else:
            future.cancel()
        return {f: FacetCounts(timed_out=True) for f in wanted}


def unique_index_name(prefix: str = "modelport-test") -> str:
    """A fresh index name (lower-case, as Elasticsearch requires)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
