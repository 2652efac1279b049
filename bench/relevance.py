"""Relevance on the judged set (tests/fixtures/relevance): nDCG@10 and recall@20 for BM25 only,
vectors only and hybrid (the normalised-score blend, and reciprocal-rank fusion for comparison),
overall and per intent class (task, architecture, dataset, language, deployment, lineage,
numeric), with the hybrid's query latency. Queries are read as the API reads them (query syntax and
natural-language constraints, `compile_query`), so each system ranks within the same constraints.

    .venv/bin/python bench/relevance.py [--per-query] [--pool] [--data-dir DIR] [--backend embedded|elasticsearch|both]

`--pool` lists, per query, the unjudged records in any system's top 10 (for pooled judging).

Harvests the fixture records through the real pipeline (Tantivy + the vector projection with
the real all-MiniLM-L6-v2 model) into a temporary data directory and queries the hybrid searcher.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "relevance"))

import corpus  # noqa: E402

from modelport.index.hybrid import SCORE_ALPHA, HybridSearcher  # noqa: E402
from modelport.index.query_syntax import compile_query  # noqa: E402
from modelport.index.search import SearchQuery  # noqa: E402
from modelport.pipeline import Pipeline  # noqa: E402
from modelport.settings import Settings  # noqa: E402


def build(data_dir: Path) -> tuple[Pipeline, HybridSearcher]:
    """Harvest the fixture corpus into `data_dir`; returns the pipeline and a searcher over it."""
    settings = Settings(data_dir=data_dir, base_iri="http://relevance.test")
    pipeline = Pipeline(settings)
    projection = pipeline.vectors
    if projection is None:
        raise SystemExit(f"relevance needs the embedding model: {pipeline.vectors_unavailable}")
    for source in corpus.sources():
        pipeline.harvest(source, mode="full")
    return pipeline, HybridSearcher(pipeline.search, projection)


def ranker(searcher: HybridSearcher, mode: str, **settings: Any) -> Any:
    probe = getattr(searcher.backend, "lineage", None)

    def run(text: str) -> list[str]:
        for key, value in settings.items():
            setattr(searcher, key, value)
        q, _ = compile_query(text, base=SearchQuery(limit=20),
                             lineage_probe=(lambda c: bool(probe(c).generation)) if probe else None)
        res = searcher.search(q, mode=mode)  # type: ignore[arg-type]
        return [h.id for h in res.hits]
    return run


SYSTEMS: list[tuple[str, str, dict[str, Any]]] = [
    ("BM25 only", "bm25", {}),
    ("vectors only", "vector", {}),
    ("hybrid (score blend, default)", "hybrid", {"fusion": "score", "score_alpha": SCORE_ALPHA}),
    ("hybrid (RRF)", "hybrid", {"fusion": "rrf", "dense_weight": 1.0}),
]


def measure(searcher: HybridSearcher, systems: list[tuple[str, str, dict[str, Any]]] = SYSTEMS
            ) -> dict[str, corpus.Scores]:
    judged = corpus.queries()
    out = {}
    for label, mode, settings in systems:
        out[label] = corpus.evaluate(ranker(searcher, mode, **settings), judged)
    searcher.fusion, searcher.score_alpha, searcher.dense_weight = "score", SCORE_ALPHA, 1.0
    return out


def latency(searcher: HybridSearcher, judged: list[corpus.JudgedQuery], rounds: int = 3) -> tuple[float, float]:
    """p50 / p95 in ms of the hybrid searcher over every judged query (parse + search), after one
    warm-up pass (the query embeddings are then cached; the first pass pays the model)."""
    run = ranker(searcher, "hybrid")
    for q in judged:
        run(q.text)
    searcher._qcache.clear()  # noqa: SLF001 - measure with the model, not the cache
    times = []
    for _ in range(rounds):
        for q in judged:
            t0 = time.perf_counter()
            run(q.text)
            times.append((time.perf_counter() - t0) * 1000)
        searcher._qcache.clear()  # noqa: SLF001
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.95)]


def build_elasticsearch(data_dir: Path, url: str) -> tuple[Pipeline, Any]:
    """The same harvest with the Elasticsearch backend (vectors in its documents, kNN in the cluster)."""
    from modelport.index.elasticsearch import unique_index_name
    from modelport.index.elasticsearch.hybrid import ElasticsearchHybrid

    settings = Settings(data_dir=data_dir, base_iri="http://relevance.test", search_backend="elasticsearch",
                        elasticsearch_url=url, elasticsearch_index=unique_index_name("modelport-relevance"))
    pipeline = Pipeline(settings)
    backend = pipeline.search
    if backend.embedder is None:
        raise SystemExit(f"relevance needs the embedding model: {backend.embedder_unavailable}")
    for source in corpus.sources():
        pipeline.harvest(source, mode="full")
    return pipeline, ElasticsearchHybrid(backend, backend.embedder)


def run(label: str, data_dir: Path, args: argparse.Namespace, es_url: str | None = None) -> dict[str, corpus.Scores]:
    t0 = time.monotonic()
    pipeline, searcher = build_elasticsearch(data_dir, es_url) if es_url else build(data_dir)
    built = time.monotonic() - t0
    n_records = pipeline.catalog.count()
    t0 = time.monotonic()
    results = measure(searcher)
    took = time.monotonic() - t0
    judged = corpus.queries()
    print(f"\n{label}: judged set: {n_records} records, {len(judged)} queries "
          f"({sum(len(q.judgements) for q in judged)} graded pairs); build {built:.1f} s, queries {took:.1f} s\n")
    print(f"| {'system':<30} | nDCG@10 | recall@20 |")
    print(f"| {'-' * 30} | ------- | --------- |")
    for name, sc in results.items():
        print(f"| {name:<30} | {sc.ndcg10:7.3f} | {sc.recall20:9.3f} |")
    labels = list(results)
    print("\nnDCG@10 / recall@20 per intent class")
    print("| intent (queries) | " + " | ".join(labels) + " |")
    print("| --- | " + " | ".join("---" for _ in labels) + " |")
    per = {name: sc.by_intent(judged) for name, sc in results.items()}
    for intent in corpus.INTENTS:
        if intent not in per[labels[0]]:
            continue
        n = per[labels[0]][intent][2]
        cells = " | ".join(f"{per[name][intent][0]:.3f} / {per[name][intent][1]:.3f}" for name in labels)
        print(f"| {intent} ({n}) | {cells} |")
    if hasattr(searcher, "_qcache"):
        p50, p95 = latency(searcher, judged)
        print(f"\nhybrid query latency (parse + search, query embedded each time): p50 {p50:.1f} ms, "
              f"p95 {p95:.1f} ms")
    if args.per_query:
        print("\nnDCG@10 per query: " + " / ".join(labels))
        for q in judged:
            cells = " ".join(f"{results[name].per_query[q.id][0]:.2f}" for name in labels)
            print(f"  {q.id:<32} {cells}  {q.text}")
    if args.pool:
        pool(searcher, judged)
    if es_url:
        pipeline.search.delete_index()
    pipeline.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-query", action="store_true", help="print nDCG@10 per query and system")
    parser.add_argument("--pool", action="store_true", help="list unjudged records in any system's top 10")
    parser.add_argument("--data-dir", type=Path, help="keep the built index here (default: a temp dir)")
    parser.add_argument("--backend", choices=["embedded", "elasticsearch", "both"], default="embedded",
                        help="search backend(s) to measure; elasticsearch starts a local node (tools/es-node) "
                             "unless --elasticsearch-url names one")
    parser.add_argument("--elasticsearch-url", help="an existing Elasticsearch to measure against")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data_dir or Path(tmp)
        results: dict[str, dict[str, corpus.Scores]] = {}
        if args.backend in ("embedded", "both"):
            results["embedded"] = run("embedded (Tantivy + vector index)", root / "embedded", args)
        if args.backend in ("elasticsearch", "both"):
            node = None
            url = args.elasticsearch_url
            if not url:
                from modelport.index.elasticsearch.node import start_node

                node = start_node(Path(tmp) / "es-node")
                url = node.url
            try:
                results["elasticsearch"] = run(f"elasticsearch ({url})", root / "elasticsearch", args,
                                               es_url=url)
            finally:
                if node is not None:
                    node.stop()
        if len(results) == 2:
            print("\nhybrid nDCG@10, embedded vs elasticsearch:")
            for name in results["embedded"]:
                a, b = results["embedded"][name].ndcg10, results["elasticsearch"][name].ndcg10
                print(f"  {name:<30} {a:.3f} vs {b:.3f}  (difference {abs(a - b):.3f})")


def pool(searcher: HybridSearcher, judged: list[corpus.JudgedQuery]) -> None:
    raw = {r["id"]: r for r in corpus.raw_records()}
    for q in judged:
        seen: list[str] = []
        for _, mode, settings in SYSTEMS:
            for rid in ranker(searcher, mode, **settings)(q.text)[:10]:
                if rid not in q.judgements and rid not in seen:
                    seen.append(rid)
        searcher.fusion, searcher.score_alpha, searcher.dense_weight = "score", SCORE_ALPHA, 1.0
        if seen:
            print(f"\n## {q.id}: {q.text}")
            for rid in seen:
                print(f"  {rid}: {raw[rid]['desc'][:150]}")


if __name__ == "__main__":
    main()
