"""Relevance on the judged set (tests/fixtures/relevance): nDCG@10 and recall@20 for BM25 only,
vectors only and hybrid (reciprocal-rank fusion, and a normalised-score blend for comparison).

    .venv/bin/python bench/relevance.py [--per-query] [--data-dir DIR] [--backend embedded|elasticsearch|both]

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
    def run(text: str) -> list[str]:
        for key, value in settings.items():
            setattr(searcher, key, value)
        res = searcher.search(SearchQuery(text=text, limit=20), mode=mode)  # type: ignore[arg-type]
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


def run(label: str, data_dir: Path, per_query: bool, es_url: str | None = None) -> dict[str, corpus.Scores]:
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
    if per_query:
        labels = list(results)
        print("\nnDCG@10 per query: " + " / ".join(labels))
        for q in judged:
            cells = " ".join(f"{results[name].per_query[q.id][0]:.2f}" for name in labels)
            print(f"  {q.id:<20} {cells}  {q.text}")
    if es_url:
        pipeline.search.delete_index()
    pipeline.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-query", action="store_true", help="print nDCG@10 per query and system")
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
            results["embedded"] = run("embedded (Tantivy + vector index)", root / "embedded", args.per_query)
        if args.backend in ("elasticsearch", "both"):
            node = None
            url = args.elasticsearch_url
            if not url:
                from modelport.index.elasticsearch.node import start_node

                node = start_node(Path(tmp) / "es-node")
                url = node.url
            try:
                results["elasticsearch"] = run(f"elasticsearch ({url})", root / "elasticsearch", args.per_query,
                                               es_url=url)
            finally:
                if node is not None:
                    node.stop()
        if len(results) == 2:
            print("\nhybrid nDCG@10, embedded vs elasticsearch:")
            for name in results["embedded"]:
                a, b = results["embedded"][name].ndcg10, results["elasticsearch"][name].ndcg10
                print(f"  {name:<30} {a:.3f} vs {b:.3f}  (difference {abs(a - b):.3f})")


if __name__ == "__main__":
    main()
