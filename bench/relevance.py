"""Relevance on the judged set (tests/fixtures/relevance): nDCG@10 and recall@20 for BM25 only,
vectors only and hybrid (reciprocal-rank fusion, and a normalised-score blend for comparison).

    .venv/bin/python bench/relevance.py [--per-query] [--data-dir DIR]

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-query", action="store_true", help="print nDCG@10 per query and system")
    parser.add_argument("--data-dir", type=Path, help="keep the built index here (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or Path(tmp)
        t0 = time.monotonic()
        pipeline, searcher = build(data_dir)
        built = time.monotonic() - t0
        n_records = pipeline.catalog.count()
        t0 = time.monotonic()
        results = measure(searcher)
        took = time.monotonic() - t0
        judged = corpus.queries()
        print(f"judged set: {n_records} records, {len(judged)} queries "
              f"({sum(len(q.judgements) for q in judged)} graded pairs); build {built:.1f} s, queries {took:.1f} s\n")
        print(f"| {'system':<30} | nDCG@10 | recall@20 |")
        print(f"| {'-' * 30} | ------- | --------- |")
        for label, s in results.items():
            print(f"| {label:<30} | {s.ndcg10:7.3f} | {s.recall20:9.3f} |")
        if args.per_query:
            labels = list(results)
            print("\nnDCG@10 per query: " + " / ".join(labels))
            for q in judged:
                cells = " ".join(f"{results[label].per_query[q.id][0]:.2f}" for label in labels)
                print(f"  {q.id:<20} {cells}  {q.text}")
        pipeline.close()


if __name__ == "__main__":
    main()
