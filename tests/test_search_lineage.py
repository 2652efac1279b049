"""Lineage search on model trees of realistic shape (tests/fixtures/relevance/make_lineage.py: the Llama 2
7B family alone has hundreds of descendants over five generations, with fine-tunes, adapters,
quantizations and merges, plus a Kaggle copy linking by Hugging Face URL): every `base:` query's
result set equals the descendants computed here from the records' own links, on every backend;
the natural-language phrases read the same; direct descendants rank before deeper ones; records
that ship a preferred format natively rank above convertible ones."""

from __future__ import annotations

import math
import sys
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelport.index.embedded import TantivyBackend
from modelport.index.query_syntax import compile_query
from modelport.index.search import SearchQuery
from modelport.schema.compat import enrich_record
from modelport.schema.kb import get_kb
from modelport.schema.record import ModelRecord

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "relevance"))
import corpus  # noqa: E402

RAW = corpus.raw_records()
RECORDS = [enrich_record(corpus.to_record(r), get_kb()) for r in RAW]
BY_ID = {r.id: r for r in RECORDS}
BACKENDS = ["tantivy", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)]
LLAMA = "huggingface:meta-llama/Llama-2-7b-hf"


# ------------------------------------------------------------------------------------------------
# The oracle: links resolved by hand (record ids; a Hugging Face URL names the Hub repo)
# ------------------------------------------------------------------------------------------------
def parent_id(ref: str) -> str:
    if ref.startswith("https://huggingface.co/"):
        return "huggingface:" + ref.removeprefix("https://huggingface.co/")
    return ref


CHILDREN: dict[str, list[tuple[str, str]]] = {}
for _r in RECORDS:
    for _b in _r.base_models:
        CHILDREN.setdefault(parent_id(_b.ref), []).append((_r.id, _b.relation))


def descendants(root: str, relations: set[str] | None = None, depth: int = 10) -> dict[str, int]:
    """Descendant → generation (shortest path); with relations, only those whose own link into the
    previous generation has one of them."""
    gen: dict[str, int] = {}
    qualifying: dict[str, int] = {}
    todo = deque([(root, 0)])
    seen = {root}
    while todo:
        node, g = todo.popleft()
        if g >= depth:
            continue
        for child, rel in CHILDREN.get(node, []):
            if relations is None or rel in relations:
                qualifying.setdefault(child, g + 1)
            if child not in seen:
                seen.add(child)
                gen[child] = g + 1
                todo.append((child, g + 1))
    return {c: g for c, g in qualifying.items() if gen.get(c) == g}


# ------------------------------------------------------------------------------------------------
# Backends
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if request.param == "tantivy":
        b: Any = TantivyBackend(tmp_path_factory.mktemp("lineage"))
    else:  # the real node the suite starts (tests/conftest.py)
        from modelport.index.elasticsearch_backend import ElasticsearchBackend, unique_index_name

        b = ElasticsearchBackend(request.getfixturevalue("elasticsearch_url"), index_name=unique_index_name(),
                                 replicas=0)
    b.upsert(RECORDS)
    b.commit()
    yield b
    if request.param != "tantivy":
        b.delete_index()
    b.close()


def all_ids(backend: Any, q: SearchQuery) -> list[str]:
    out, page = [], backend.search(q.model_copy(update={"limit": 200}))
    out += [h.id for h in page.hits]
    while page.next_cursor:
        page = backend.search(q.model_copy(update={"limit": 200, "cursor": page.next_cursor}))
        out += [h.id for h in page.hits]
    return out


def search(backend: Any, text: str) -> list[str]:
    return all_ids(backend, compile_query(text)[0])


# ------------------------------------------------------------------------------------------------
# Tests
# ------------------------------------------------------------------------------------------------
def test_fixture_trees_have_realistic_shape() -> None:
    tree = descendants(LLAMA)
    relations = {rel for kids in CHILDREN.values() for _, rel in kids}
    assert len(tree) >= 200 and max(tree.values()) >= 4, (len(tree), max(tree.values()))
    assert {"finetune", "adapter", "quantized", "merge", "variant"} <= relations
    assert sum(1 for r in RECORDS if len(r.base_models) == 2) >= 5  # merges have two parents


@pytest.mark.parametrize(("query", "root", "relations", "depth"), [
    ("base:huggingface:meta-llama/Llama-2-7b-hf", LLAMA, None, 10),
    ("base:meta-llama/Llama-2-7b-hf", LLAMA, None, 10),  # the local id
    ("base:Llama-2-7b-hf", LLAMA, None, 10),  # the name
    ("base:LLAMA-2-7B-HF", LLAMA, None, 10),
    ("base@1:meta-llama/Llama-2-7b-hf", LLAMA, None, 1),
    ("base@2:meta-llama/Llama-2-7b-hf", LLAMA, None, 2),
    ("base@finetune:meta-llama/Llama-2-7b-hf", LLAMA, {"finetune"}, 10),
    ("base@quantized:meta-llama/Llama-2-7b-hf", LLAMA, {"quantized"}, 10),
    ("base@adapter,1:meta-llama/Llama-2-7b-chat-hf", "huggingface:meta-llama/Llama-2-7b-chat-hf", {"adapter"}, 1),
    ("base@merge:Llama-2-7b-hf", LLAMA, {"merge"}, 10),
    ("base:mistralai/Mistral-7B-v0.1", "huggingface:mistralai/Mistral-7B-v0.1", None, 10),
    ("base@variant:google/movenet/singlepose/thunder/4", "tfhub:google/movenet/singlepose/thunder/4", {"variant"}, 10),
    ("base:stable-diffusion-xl-base-1.0", "huggingface:stabilityai/stable-diffusion-xl-base-1.0", None, 10),
])
def test_base_selects_exactly_the_descendants(backend: Any, query: str, root: str, relations: set[str] | None,
                                              depth: int) -> None:
    want = descendants(root, relations, depth)
    got = search(backend, query)
    assert want and len(got) == len(set(got))
    assert set(got) == set(want), (query, sorted(set(want) - set(got))[:5], sorted(set(got) - set(want))[:5])


def test_cross_source_link_by_url(backend: Any) -> None:
    """Kaggle's copy names its base by Hugging Face URL: it is a grandchild of Llama 2 7B."""
    kaggle = "kaggle:metaresearch/llama-2/pyTorch/7b-chat/1"
    assert descendants(LLAMA)[kaggle] == 2
    assert kaggle in search(backend, "base@2:meta-llama/Llama-2-7b-hf")
    assert kaggle not in search(backend, "base@1:meta-llama/Llama-2-7b-hf")


def test_natural_language_phrases_read_as_the_qualifier(backend: Any) -> None:
    cases = {
        "quantized versions of meta-llama/Llama-2-7b-hf": "base@quantized:meta-llama/Llama-2-7b-hf",
        "fine-tunes of Llama-2-7b-chat-hf": "base@finetune:Llama-2-7b-chat-hf",
        "adapters for stable-diffusion-xl-base-1.0": "base@adapter:stable-diffusion-xl-base-1.0",
        "Mistral-7B-v0.1 derivatives": "base:Mistral-7B-v0.1",
        "models based on sentence-transformers/all-MiniLM-L6-v2": "base:sentence-transformers/all-MiniLM-L6-v2",
    }
    for phrase, syntax in cases.items():
        q, interp = compile_query(phrase)
        assert q.to_syntax() == syntax and interp.constraints[0].kind == "lineage", (phrase, q.to_syntax())
        assert interp.constraints[0].remove == "" or interp.constraints[0].remove not in phrase
        assert set(all_ids(backend, q)) == set(search(backend, syntax)) != set()


def test_a_name_prefix_finds_the_top_most_model(backend: Any) -> None:
    """"Llama-2-7b" names no record exactly: the records whose name starts with it are the base and
    its chat fine-tune; the chat model descends from the base, so the walk starts at the base alone."""
    got = set(search(backend, "base:Llama-2-7b"))
    assert got == set(descendants(LLAMA))
    assert "huggingface:meta-llama/Llama-2-7b-chat-hf" in got


def test_direct_descendants_rank_first_then_downloads(backend: Any) -> None:
    hits = search(backend, "base:meta-llama/Llama-2-7b-chat-hf")
    gens = descendants("huggingface:meta-llama/Llama-2-7b-chat-hf")
    order = [gens[h] for h in hits]
    assert order == sorted(order), order[:30]
    first = [h for h in hits if gens[h] == 1]
    # By downloads to a quarter of a decade (README "Ranking"): 10,847 and 18,321 may come either way.
    buckets = [int(4 * math.log10((BY_ID[h].popularity.downloads or 0) + 1)) for h in first]
    assert buckets == sorted(buckets, reverse=True) and buckets[0] > buckets[-1]


def test_relation_facet_and_filter(backend: Any) -> None:
    q = compile_query("base:meta-llama/Llama-2-7b-hf")[0].model_copy(update={"facets": ["relation"],
                                                                          "facet_timeout_s": 60.0})
    facet = backend.search(q).facets["relation"]
    assert not facet.timed_out
    counts = facet.counts
    tree = descendants(LLAMA)
    want: dict[str, int] = {}
    for rid in tree:
        for rel in {b.relation for b in BY_ID[rid].base_models}:
            want[rel] = want.get(rel, 0) + 1
    assert counts == want
    merges = search(backend, "relation:merge")
    assert set(merges) == {r.id for r in RECORDS if any(b.relation == "merge" for b in r.base_models)}


def test_unknown_base_matches_nothing_and_nl_keeps_the_words(backend: Any) -> None:
    assert search(backend, "base:no-such-model-anywhere") == []
    probe = backend.lineage
    q, interp = compile_query("an image classifier based on ResNetish ideas",
                              lineage_probe=lambda c: bool(probe(c).generation))
    assert not q.constraints and "based on ResNetish" in q.text
    assert any("ResNetish" in n for n in interp.notices)


def test_preferred_format_ranks_native_first(backend: Any) -> None:
    """"Llama 2 chat GGUF": GGUF is a preference; the repos that ship .gguf files come before the
    ones merely convertible to it, whatever BM25 says about the rest."""
    q, interp = compile_query("llama 2 7b chat gguf")
    assert [p.value for p in q.prefer] == ["gguf"] and interp.constraints[-1].kind == "preference"
    hits = backend.search(q.model_copy(update={"limit": 10, "explain": True})).hits
    native = [h.id for h in hits if any(a.format == "gguf" for a in BY_ID[h.id].artifacts)]
    assert len(native) >= 5 and [h.id for h in hits[:len(native)]] == native
    assert hits[0].explain and hits[0].explain["evidence"] == {"format:gguf": "native"}


def _score_groups(backend: Any, q: SearchQuery) -> list[tuple[float, frozenset[str]]]:
    """The whole ranking as (score, the records at that score), best first. Among equal scores each
    engine has its own order: with text, Tantivy's by segment and document, Elasticsearch's by id;
    without text, both by downloads, Tantivy in quarter-decade buckets added to the score (at most
    4.3e-4, embedded/schema.py DOWNLOAD_STEP), Elasticsearch exactly as a second sort key. So scores
    within 1e-3 of the one before count as equal (the boosts differ by 5e-3 and more)."""
    hits = backend.search(q.model_copy(update={"limit": 1000})).hits
    out: list[tuple[float, frozenset[str]]] = []
    last = math.inf
    for h in hits:
        close, last = abs(last - h.score) < 1e-3, h.score
        if close:
            out[-1] = (out[-1][0], out[-1][1] | {h.id})
        else:
            out.append((h.score, frozenset({h.id})))
    return out


@pytest.mark.elasticsearch
def test_evidence_and_lineage_boosts_rank_alike_on_both_backends(tmp_path: Path, elasticsearch_url: str) -> None:
    """The boosts (search.py: EVIDENCE_BOOST, LINEAGE_BOOST, BM25_BOOST_SCALE) are the same clauses on
    both backends: with and without text, every record gets the same score and so the same place,
    up to the order among equal scores."""
    from modelport.index.elasticsearch_backend import ElasticsearchBackend, unique_index_name

    tantivy = TantivyBackend(tmp_path / "t")
    es = ElasticsearchBackend(elasticsearch_url, index_name=unique_index_name(), replicas=0)
    try:
        for b in (tantivy, es):
            b.upsert(RECORDS)
            b.commit()
        for text in ("llama 2 7b chat gguf", "a TFLite classifier for phones", "pose detection in the browser with "
                     "TF.js", f"base:{LLAMA}", "runtime:onnxruntime", "prefer:format=gguf target:mobile",
                     f"chat base:{LLAMA} prefer:format=gguf"):
            q, _ = compile_query(text)
            assert q.has_boosts(), text
            a, b = _score_groups(tantivy, q), _score_groups(es, q)
            assert len(a) > 1, text  # the boosts separate records
            assert [ids for _, ids in a] == [ids for _, ids in b], text
            assert [s for s, _ in a] == pytest.approx([s for s, _ in b], abs=1e-3), text
    finally:
        es.delete_index()
        es.close()
        tantivy.close()


def test_format_phrased_as_a_requirement_constrains(backend: Any) -> None:
    q, _ = compile_query("sentence embeddings in ONNX format")
    assert q.to_syntax() == "sentence embeddings format:onnx"
    ids = all_ids(backend, q)
    assert ids and all("onnx" in BY_ID[i].formats for i in ids)


def test_lineage_on_records_without_links_or_aliases() -> None:
    r: ModelRecord = BY_ID[LLAMA]
    from modelport.index.facts import lineage_facts

    bases, links, nodes = lineage_facts(r)
    assert bases == [] and links == []
    assert nodes == ["huggingface:meta-llama/llama-2-7b-hf", "meta-llama/llama-2-7b-hf"]
