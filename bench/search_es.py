"""`bench/search.py --backend elasticsearch`: the same synthetic corpus and queries against the
Elasticsearch backend on a local single node (tools/es-node, 1 GiB heap, started here and stopped at
the end, or `--elasticsearch-url`).

Build: records into the catalog (context), then `ElasticsearchBackend.upsert` per batch (documents with
every constraint fact and the synthetic summary vector, bulk requests of 500), one refresh at the end;
the rate is records over the backend's time. Serve: `Services` over the data directory, as `modelport
serve` opens it on this backend, running the hybrid queries with the 9 default facets (real MiniLM
query embeddings, kNN and BM25 in the cluster, fusion in the backend, hydration from the catalog). The
node's heap (used / max) is read from its node stats after the queries.
"""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path
from typing import Any

import numpy as np


def build_es(size: int, data_dir: Path, url: str, index: str, batch: int, log: Any) -> dict[str, Any]:
    from search import Generator, SyntheticEmbedder, rss_mb

    from modelport.index.catalog import Catalog
    from modelport.index.elasticsearch import ElasticsearchBackend
    from modelport.index.embeddings import CachedEmbedder, EmbeddingCache
    from modelport.settings import Settings

    settings = Settings(data_dir=data_dir, base_iri="http://bench")
    settings.ensure_dirs()
    catalog = Catalog(settings.catalog_path)
    backend = ElasticsearchBackend(url, index_name=index, replicas=0, write_timeout_s=300)
    cache = EmbeddingCache(settings.index_dir / "embedding-cache.sqlite")
    backend.embedder = CachedEmbedder(SyntheticEmbedder(), cache)
    gen = Generator()
    t_cat = t_es = 0.0
    loads: list[float] = []
    for start in range(0, size, batch):
        records = [r.with_hash() for r in gen.batch(start, min(batch, size - start))]
        t = time.perf_counter()
        with catalog.transaction() as cat:
            written = cat.upsert_many(records).revs
        catalog.mark_clean(list(written.items()))
        t_cat += time.perf_counter() - t
        t = time.perf_counter()
        backend.upsert(records)
        t_es += time.perf_counter() - t
        done = start + len(records)
        if done % (batch * 20) == 0 or done == size:
            loads.append(os.getloadavg()[0])
            log(f"  {done:>9,} records: catalog {t_cat:.0f} s, elasticsearch {t_es:.0f} s, RSS {rss_mb()[0]:.0f} MB")
    t = time.perf_counter()
    backend.commit()
    t_es += time.perf_counter() - t
    stats = backend._client.indices.stats(index=index, metric="store,docs").body["_all"]["primaries"]
    out = {"records": size, "es_build_s": t_es, "es_build_rps": size / t_es, "catalog_s": t_cat,
           "es_docs": backend.count(), "es_vectors": backend.vector_count(),
           "es_store_mb": stats["store"]["size_in_bytes"] / 1e6,
           "load_build_es": float(np.mean(loads)) if loads else os.getloadavg()[0]}
    backend.close()
    catalog.close()
    return out


def serve_es(data_dir: Path, url: str, index: str, n_queries: int, node: Any) -> dict[str, Any]:
    from search import make_queries, rss_mb

    from modelport.services import Services
    from modelport.settings import Settings

    svc = Services(Settings(data_dir=data_dir, base_iri="http://bench", search_backend="elasticsearch",
                            elasticsearch_url=url, elasticsearch_index=index))
    queries = make_queries(n_queries + 10)
    t = time.perf_counter()
    for q in queries[:10]:  # warm-up: model load, the node's first aggregations
        svc.search(q)
    warm_s = time.perf_counter() - t
    lat, totals, notices, loads = [], [], set(), []
    facets_out = 0
    for i, q in enumerate(queries[10:]):
        t = time.perf_counter()
        res = svc.search(q)
        lat.append((time.perf_counter() - t) * 1000)
        totals.append(res.total)
        notices.update(res.notices)
        facets_out += any(f.get("timed_out") for f in res.facets.values())
        if i % 20 == 0:
            loads.append(os.getloadavg()[0])
    backend = svc.search_backend
    bm25_ms = []
    for q in queries[10:60]:
        t = time.perf_counter()
        backend.search(q.model_copy(update={"limit": 100}))
        bm25_ms.append((time.perf_counter() - t) * 1000)
    gc.collect()
    heap = node.heap() if node is not None else {}
    svc.close()

    def pct(xs: list[float], p: float) -> float:
        return float(np.percentile(np.asarray(xs), p))

    return {"es_queries": len(lat), "es_p50_ms": pct(lat, 50), "es_p95_ms": pct(lat, 95), "es_max_ms": max(lat),
            "es_warmup_s": warm_s, "es_bm25_facets_p50": pct(bm25_ms, 50), "es_bm25_facets_p95": pct(bm25_ms, 95),
            "es_facets_timed_out": facets_out, "es_median_total": float(np.median(totals)),
            "es_heap_used_mb": heap.get("used", 0) / 2**20, "es_heap_max_mb": heap.get("max", 0) / 2**20,
            "es_client_rss_mb": rss_mb()[0], "load_serve_es": float(np.mean(loads)) if loads else os.getloadavg()[0],
            "es_notices": sorted(notices)}


def run_es(size: int, work: Path, n_queries: int, batch: int, url: str | None, log: Any) -> dict[str, Any]:
    """Build and serve one size on Elasticsearch (a node started here unless `url`)."""
    from modelport.index.elasticsearch import ElasticsearchBackend, unique_index_name
    from modelport.index.elasticsearch.node import start_node

    node = None
    if url is None:
        t = time.perf_counter()
        node = start_node(work / f"es-node-{size}")
        log(f"  node started in {time.perf_counter() - t:.0f} s at {node.url}")
        url = node.url
    index = unique_index_name("modelport-bench")
    try:
        built = build_es(size, work / f"es-n{size}", url, index, batch, log)
        log(f"  elasticsearch build {built['es_build_rps']:,.0f} records/s; serving {n_queries} queries")
        return {**built, **serve_es(work / f"es-n{size}", url, index, n_queries, node)}
    finally:
        b = ElasticsearchBackend(url, index_name=index)
        b.delete_index()
        b.close()
        if node is not None:
            node.stop()


def side_by_side(rows: list[dict[str, Any]]) -> str:
    """The embedded and Elasticsearch figures of the same run, one row per size and backend."""
    lines = ["| records | backend | build (search index + vectors) | query p50 | query p95 | BM25+facets p50 / p95 | "
             "memory | load avg build / serve |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    nan = float("nan")
    for r in rows:
        if "p50_ms" in r:
            lines.append(
                f"| {r['records']:,} | embedded (Tantivy + vector index) | {r['build_rps']:,.0f} rec/s | "
                f"{r['p50_ms']:.1f} ms | {r['p95_ms']:.1f} ms | "
                f"{r['bm25_facets_p50']:.1f} / {r['bm25_facets_p95']:.1f} ms | "
                f"serving RSS {r['rss_mb'] / 1024:.2f} GB | {r.get('load_build', nan):.1f} / "
                f"{r.get('load_serve', nan):.1f} |")
        if "es_p50_ms" in r:
            lines.append(
                f"| {r['records']:,} | Elasticsearch 8.19 (1 node, 1 GiB heap) | {r['es_build_rps']:,.0f} rec/s | "
                f"{r['es_p50_ms']:.1f} ms | {r['es_p95_ms']:.1f} ms | "
                f"{r['es_bm25_facets_p50']:.1f} / {r['es_bm25_facets_p95']:.1f} ms | node heap "
                f"{r['es_heap_used_mb']:.0f} of {r['es_heap_max_mb']:.0f} MB; client RSS "
                f"{r['es_client_rss_mb'] / 1024:.2f} GB | {r.get('load_build_es', nan):.1f} / "
                f"{r.get('load_serve_es', nan):.1f} |")
    return "\n".join(lines)
