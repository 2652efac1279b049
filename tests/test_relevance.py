"""Relevance on the judged set (tests/fixtures/relevance: ~690 records, 104 graded queries over seven intents) with the
real all-MiniLM-L6-v2 model: hybrid ranking beats BM25 alone and vectors alone; exact names rank
first; hard constraints hold for every hit, including hits found only by meaning."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelport.index.hybrid import HybridSearcher
from modelport.index.query_syntax import compile_query
from modelport.index.search import SearchQuery
from modelport.pipeline import Pipeline
from modelport.services import Services
from modelport.settings import Settings

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "relevance"))
import corpus  # noqa: E402

pytest.importorskip("sentence_transformers", reason="the embeddings extra is required")


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("relevance"), base_iri="http://relevance.test")
    pipeline = Pipeline(settings)
    for source in corpus.sources():
        assert pipeline.harvest(source, mode="full").status == "ok"
    pipeline.close()
    svc = Services(settings)
    yield svc
    svc.close()


def ranking(searcher: HybridSearcher, mode: str):  # noqa: ANN201
    """Queries read as the API reads them (syntax + natural language, lineage names checked)."""
    probe = searcher.backend.lineage

    def run(text: str) -> list[str]:
        q, _ = compile_query(text, base=SearchQuery(limit=20), lineage_probe=lambda c: bool(probe(c).generation))
        return [h.id for h in searcher.search(q, mode=mode).hits]  # type: ignore[arg-type]
    return run


def test_hybrid_beats_bm25_and_vectors(services: Services) -> None:
    judged = corpus.queries()
    assert len(judged) >= 100 and services.catalog.count() >= 650
    assert {q.intent for q in judged} == set(corpus.INTENTS)
    scores = {mode: corpus.evaluate(ranking(services.hybrid, mode), judged) for mode in ("bm25", "vector", "hybrid")}
    table = " | ".join(f"{m}: nDCG@10 {s.ndcg10:.3f} recall@20 {s.recall20:.3f}" for m, s in scores.items())
    per = {m: s.by_intent(judged) for m, s in scores.items()}
    print(table, per)
    hybrid = scores["hybrid"]
    for other in ("bm25", "vector"):
        assert hybrid.ndcg10 > scores[other].ndcg10, table
        assert hybrid.recall20 >= scores[other].recall20, table
    for intent, (ndcg, _, _) in per["hybrid"].items():
        assert ndcg >= 0.80, (intent, per)
        # Per class the hybrid is at least as good as either alone (issue 19, item 3). The margins are
        # small (bench/results/relevance-2026-12-08.md: task 0.913 against vectors' 0.911, lineage
        # 0.950 against 0.949, dataset equal), so a ranking change that costs a class shows here.
        assert ndcg >= max(per["bm25"][intent][0], per["vector"][intent][0]), (intent, per)
    # The query the issue names: the three records built for it lead.
    top = ranking(services.hybrid, "hybrid")("real-time traffic prediction from camera input at urban intersections")
    best = {"huggingface:urbanmobility/junction-flow-forecaster", "huggingface:citysense/cctv-vehicle-counter-yolov8",
            "kaggle:transportlab/traffic-density-estimation-cnn/tensorflow2/default/1"}
    assert top[0] in best and len(best & set(top[:3])) >= 2 and best <= set(top[:10]), top[:10]


def test_exact_id_or_name_ranks_first(services: Services) -> None:
    for text, rid in [("bert-base-uncased", "huggingface:google-bert/bert-base-uncased"),
                      ("BERT-BASE-UNCASED", "huggingface:google-bert/bert-base-uncased"),
                      ("TinyLlama/TinyLlama-1.1B-Chat-v1.0", "huggingface:TinyLlama/TinyLlama-1.1B-Chat-v1.0"),
                      ("mlflow-prod:card-fraud-xgb/31", "mlflow-prod:card-fraud-xgb/31"),
                      # typed with spaces: Hub names join their words with "-" (exact_names)
                      ("whisper large v3", "huggingface:openai/whisper-large-v3"),
                      ("Bert Base Uncased", "huggingface:google-bert/bert-base-uncased")]:
        res = services.search(SearchQuery(text=text))
        assert res.hits[0].id == rid, (text, [h.id for h in res.hits[:3]])
        assert not res.notices


def test_meaning_beats_word_overlap(services: Services) -> None:
    """Where the words mislead BM25 (news classifiers share "news"; a question generator shares
    "question"), the fused ranking follows the meaning."""
    cases = [("short summary of a news story",
              {"huggingface:google/pegasus-xsum", "huggingface:facebook/bart-large-cnn"}, 2),
             ("find the answer to a question in a paragraph", {"huggingface:deepset/roberta-base-squad2"}, 1)]
    for text, want, n in cases:
        bm25 = [h.id for h in services.hybrid.search(SearchQuery(text=text, limit=n), mode="bm25").hits]
        hybrid = [h.id for h in services.search(SearchQuery(text=text, limit=n)).hits]
        assert set(bm25) != want and set(hybrid) == want, (text, bm25, hybrid)


@pytest.mark.parametrize("strategy", ["list", "ask"])  # listed candidate rows / filtered dense ranking
def test_constraints_hold_before_ranking(services: Services, strategy: str) -> None:
    hybrid = HybridSearcher(services.search_backend, services.pipeline.vectors, dense_strategy=strategy)  # type: ignore[arg-type]
    text = "real-time traffic prediction from camera input at urban intersections"
    q = SearchQuery(text=text, filters={"license": ["mit"]}, limit=50)
    ids = [h.id for h in hybrid.search(q).hits]
    records = services.catalog.get_many(ids)
    assert ids and all(records[i].license == "MIT" for i in ids)
    # Found by meaning (the forecaster shares few words with the query), and still within the filter.
    assert ids[0] == "huggingface:sensorflow/metr-la-dcrnn"
    assert "huggingface:urbanmobility/junction-flow-forecaster" not in ids  # apache-2.0
    dense_only = [h.id for h in hybrid.search(q, mode="vector").hits]
    assert dense_only and all(records.get(i) or services.catalog.get(i) for i in dense_only)
    assert all((services.catalog.get(i) or records[i]).license == "MIT" for i in dense_only)
    # Excluding a source removes it from both lists.
    q2 = SearchQuery(text=text, exclude={"source": ["huggingface"]}, limit=50)
    assert all(not h.id.startswith("huggingface:") for h in hybrid.search(q2).hits)
    assert hybrid.search(q2).hits[0].id == "kaggle:transportlab/traffic-density-estimation-cnn/tensorflow2/default/1"


def test_paging_is_stable(services: Services) -> None:
    text = "summarize long legal contracts"
    whole = [h.id for h in services.hybrid.search(SearchQuery(text=text, limit=30)).hits]
    first = services.hybrid.search(SearchQuery(text=text, limit=10))
    second = services.hybrid.search(SearchQuery(text=text, limit=10, cursor=first.next_cursor))
    third = services.hybrid.search(SearchQuery(text=text, limit=10, offset=20))
    assert [h.id for h in first.hits + second.hits + third.hits] == whole


def test_deployment_and_lineage_intents(services: Services) -> None:
    """The issue's failing intents: records that ship the asked format lead; lineage phrases list the
    descendants, nearest first."""
    run = ranking(services.hybrid, "hybrid")
    records = services.catalog.get_many(run("a TFLite image classifier for phones")[:3])
    assert all("tflite" in r.formats and "image-classification" in r.tasks for r in records.values()), records.keys()
    records = services.catalog.get_many(run("pose detection in the browser with TF.js")[:3])
    assert all("tfjs" in r.formats for r in records.values()), records.keys()
    top = services.catalog.get_many(run("fine-tunes of Llama-2-7b-hf")[:10])
    assert len(top) == 10 and all(
        any(b.ref == "huggingface:meta-llama/Llama-2-7b-hf" and b.relation == "finetune" for b in r.base_models)
        for r in top.values())
