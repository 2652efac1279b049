"""GET /search and the web page over real HTTP, on a catalog holding the search fixture corpus:
query syntax and natural language in `q`, the interpretation echoed, 400s that point at the bad
token, cursor paging, facets under the query, and the old filter parameters."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import LiveServer

from modelport.schema.record import ModelRecord
from modelport.settings import Settings

CORPUS = Path(__file__).parent / "fixtures" / "search" / "corpus.jsonl.gz"


@pytest.fixture(scope="module")
def records() -> list[ModelRecord]:
    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        return [ModelRecord.model_validate_json(line) for line in f]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, records: list[ModelRecord]) -> Iterator[LiveServer]:
    from modelport.api.app import create_app
    from modelport.pipeline import Pipeline

    # Dense vectors are part B's and are tested there; here ranking is BM25 so answers are exact.
    settings = Settings(data_dir=tmp_path_factory.mktemp("search-api"), base_iri="http://search.test",
                        embeddings=False)
    p = Pipeline(settings)
    with p.catalog.transaction():
        p.catalog.upsert_many(records)
    p.search.upsert(records)
    p.search.commit()
    # The fixture's records are indexed exactly as written (the assertions below read them), so both
    # outboxes are cleared: left full, the server's drain at start re-derived every record under the
    # current KB and replaced it in the index at a moment of its own, racing the requests.
    revisions = p.catalog.revisions([r.id for r in records])
    p.catalog.mark_clean(revisions, "search")
    p.catalog.mark_clean(revisions, "graph")
    assert p.catalog.dirty_count("search") == p.catalog.dirty_count("graph") == 0
    p.close()
    with LiveServer(create_app(settings)) as live:
        yield live


def get(server: LiveServer, **params: object) -> httpx.Response:
    return httpx.get(f"{server.url}/search", params=params, timeout=30)


def test_headline_query_typed_as_a_person_types_it(server: LiveServer, records: list[ModelRecord]) -> None:
    q = ("image classification models compatible with ONNX Runtime 1.14, over 80 % accuracy on ImageNet, "
         "under 50 ms on a T4, Apache licensed")
    r = get(server, q=q, limit=50)
    assert r.status_code == 200
    body = r.json()
    interp = body["interpretation"]
    assert interp["nl"] and interp["text"] == "image classification"
    assert [c["syntax"] for c in interp["constraints"]] == [
        "runtime:onnxruntime@1.14", "metric:accuracy@imagenet-1k>0.8", "latency@t4<50ms", "license:Apache-2.0"]
    assert all(c["via"] == "nl" and c["source"] in q for c in interp["constraints"])
    # the same constraints as syntax give the same records
    same = get(server, q="image classification runtime:onnxruntime@1.14 metric:accuracy@imagenet>0.8 "
                         "latency@t4<50ms license:apache-2.0", limit=50).json()
    assert body["total"] == same["total"] > 0
    assert [h["id"] for h in body["hits"]] == [h["id"] for h in same["hits"]]
    for h in body["hits"]:
        assert h["license"] == "Apache-2.0" and "onnxruntime" in h["runtimes"]


def test_nl_flag_turns_extraction_off(server: LiveServer) -> None:
    body = get(server, q="detects objects under 50 ms on a T4", nl=False).json()
    assert body["interpretation"]["constraints"] == [] and not body["interpretation"]["nl"]
    assert body["interpretation"]["text"] == "detects objects under 50 ms on a T4"
    on = get(server, q="detects objects under 50 ms on a T4").json()
    assert [c["syntax"] for c in on["interpretation"]["constraints"]] == ["latency@t4<50ms"]
    assert on["total"] < body["total"]


@pytest.mark.parametrize(("q", "token", "position"), [
    ("vision params<abc", "params<abc", 7),
    ("metric:accuracy@imagenet>>0.9", "metric:accuracy@imagenet>>0.9", 0),
    ("runtime:onnxruntime@1.x target:android", "runtime:onnxruntime@1.x", 0),
    ("fast -target:mars", "-target:mars", 5),
])
def test_malformed_qualifier_is_a_400_pointing_at_the_token(server: LiveServer, q: str, token: str,
                                                            position: int) -> None:
    r = get(server, q=q)
    assert r.status_code == 400
    detail = r.json()["detail"]
    assert detail["error"] == "query_syntax" and detail["token"] == token and detail["position"] == position
    assert detail["message"] and q[position:position + len(token)] == token


def test_hostile_text_is_still_a_search(server: LiveServer) -> None:
    r = get(server, q='AND OR "( [ -name:* ^~ \\')
    assert r.status_code == 200 and "total" in r.json() and r.json()["interpretation"]["notices"]


@pytest.mark.parametrize("text", [("the of and " * 200)[:2000],  # only stop words: they are the words then
                                  "w " * 1000,  # 1000 words: exact names joined into ~2000-character terms
                                  "-".join(["a"] * 1000)])
def test_longest_texts_are_a_search_in_bounded_time(server: LiveServer, text: str) -> None:
    """Stop words and the exact-name spellings (index/search.py) on the longest text the API takes."""
    t = time.monotonic()
    r = get(server, q=text)
    assert r.status_code == 200 and "total" in r.json(), r.text[:300]
    assert time.monotonic() - t < 10
    assert get(server, q=text + "x" * 10).status_code == 422  # over the limit: refused, not searched


def test_cursor_paging_over_http(server: LiveServer, records: list[ModelRecord]) -> None:
    want = {r.id for r in records if "onnx" in r.formats}
    seen: list[str] = []
    params: dict[str, object] = {"q": "format:onnx", "sort": "downloads", "limit": 13, "facets": "none"}
    for _ in range(100):
        body = get(server, **params).json()
        seen += [h["id"] for h in body["hits"]]
        if not body["next_cursor"]:
            break
        params["cursor"] = body["next_cursor"]
    assert len(seen) == len(set(seen)) and set(seen) == want
    stale = get(server, q="format:gguf", sort="downloads", cursor=params["cursor"])
    assert stale.status_code == 400 and stale.json()["detail"]["error"] == "cursor"


def test_facets_under_the_query_and_old_parameters(server: LiveServer, records: list[ModelRecord]) -> None:
    body = get(server, q="target:mobile", format="onnx", facets="task,params,target,status").json()
    matched = [r for r in records if "onnx" in r.formats and any(
        e.target in ("mobile", "android", "ios") and not e.hardware and e.status != "failed-verification"
        for e in r.compatibility)]
    assert body["total"] == len(matched) > 0
    tasks: dict[str, int] = {}
    for r in matched:
        for t in r.tasks:
            tasks[t] = tasks.get(t, 0) + 1
    assert body["facets"]["task"]["counts"] == tasks
    assert sum(body["facets"]["params"]["counts"].values()) == sum(1 for r in matched if r.parameter_count)
    assert set(body["facets"]) == {"task", "params", "target", "status"}
    assert get(server, facets="bogus").status_code == 400
    legacy = get(server, task="vision", license="apache").json()
    assert legacy["total"] == sum(1 for r in records if r.license == "Apache-2.0" and set(r.tasks) & {
        "image-classification", "object-detection", "image-segmentation", "depth-estimation"})
    assert get(server, min_status="native", runtime="tensorrt").status_code == 200
    assert get(server, min_status="failed").status_code == 422


def test_openapi_documents_the_syntax(server: LiveServer) -> None:
    spec = httpx.get(f"{server.url}/openapi.json").json()
    doc = spec["paths"]["/search"]["get"]["description"]
    for piece in ("runtime:onnxruntime@1.14", "metric:accuracy@imagenet>=0.9", "latency@t4<50ms", "-tag:gguf",
                  "OR", "nl=false", "next_cursor", "position"):
        assert piece in doc
    assert {p["name"] for p in spec["paths"]["/search"]["get"]["parameters"]} >= {"q", "nl", "cursor", "min_status"}


def test_web_page_passes_q_through(server: LiveServer) -> None:
    page = httpx.get(f"{server.url}/", params={"q": "object detection runs on Android license:mit"}).text
    assert "Read as:" in page and "target:android" in page and "license:MIT" in page
    bad = httpx.get(f"{server.url}/", params={"q": "detector params<abc"})
    assert bad.status_code == 200 and "not a number" in bad.text and "<mark>params&lt;abc</mark>" in bad.text


def test_explain_says_why_each_hit_ranks_where_it_does(server: LiveServer, records: list[ModelRecord]) -> None:
    """`explain=true`: every hit carries the parts of its score; for a query that names a target,
    the evidence level found for it, and hits at a better level never rank below worse ones with the
    same text score (here: no text, so the evidence alone orders them, then downloads)."""
    body = get(server, q="target:android", explain="true", limit=50, facets="none").json()
    hits = body["hits"]
    assert hits and all(h["explain"] is not None for h in hits)
    levels = [h["explain"]["evidence"].get("target:android") for h in hits]
    rank = {"verified": 3, "native": 3, "declared": 2, "convertible": 1}
    assert all(lv in rank for lv in levels)
    assert [rank[lv] for lv in levels] == sorted((rank[lv] for lv in levels), reverse=True)
    weight = {3: 1.0, 2: 0.55, 1: 0.2}
    assert all(h["explain"]["evidence_score"] == weight[rank[lv]] for h, lv in zip(hits, levels, strict=True))
    # the level reported is the best one the record has, as min_status filters see it (every match)
    best: dict[str, int] = {}
    for level in ("convertible", "declared", "native"):
        offset, total = 0, 1
        while offset < total:
            page = get(server, q="target:android", min_status=level, limit=100, offset=offset, facets="none").json()
            total, offset = page["total"], offset + 100
            best.update((h["id"], rank[level]) for h in page["hits"])
    assert all(rank[lv] == best[h["id"]] for h, lv in zip(hits, levels, strict=True))
    # and so at weaker levels, which a downloads order brings up among the first hits
    mixed = get(server, q="target:android", explain="true", sort="downloads", limit=50, facets="none").json()["hits"]
    got = {h["id"]: rank[h["explain"]["evidence"]["target:android"]] for h in mixed}
    assert set(got.values()) != {3} and got == {i: best[i] for i in got}
    plain = get(server, q="target:android", limit=5, facets="none").json()
    assert all(h["explain"] is None for h in plain["hits"])
    interp = body["interpretation"]["constraints"][0]
    assert interp["kind"] == "target" and interp["remove"] == ""


def test_openapi_documents_lineage_and_explain(server: LiveServer) -> None:
    spec = httpx.get(f"{server.url}/openapi.json").json()
    get_op = spec["paths"]["/search"]["get"]
    assert "base@finetune:" in get_op["description"] and "prefer:format=tflite" in get_op["description"]
    assert "explain" in {p["name"] for p in get_op["parameters"]}
