"""Constraint search over the 360-record fixture corpus (tests/fixtures/search): every query's
result set must equal the answer computed here in plain Python over the records (precision and
recall 1.0); plus ontology expansion, cursor paging, facets under the query, hard-constraint id
sets and the rebuild of an index built by another version.

These are the backend contract tests: the `backend`, `own_backend` and `make_backend` fixtures run
each test against the embedded Tantivy backend and against Elasticsearch: the real single node the
suite starts (`elasticsearch_url`, tests/conftest.py), where each fixture works in its own freshly
named index and deletes it afterwards. Tests that reach into Tantivy's internals (its
searcher, its facet pool, its row numbers) run against Tantivy only (`tantivy_only`)."""

from __future__ import annotations

import contextlib
import gzip
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from modelport.index.embedded import META_FILE, TantivyBackend
from modelport.index.embedded.facets import _FACET_POOL
from modelport.index.query_syntax import compile_query
from modelport.index.search import FACET_FIELDS, CursorError, SearchQuery, ensure_current
from modelport.schema.kb import get_kb
from modelport.schema.record import ModelRecord, Popularity

if TYPE_CHECKING:
    from modelport.index.elasticsearch_backend import ElasticsearchBackend

    Backend = TantivyBackend | ElasticsearchBackend

CORPUS = Path(__file__).parent / "fixtures" / "search" / "corpus.jsonl.gz"
KB = get_kb()

# The oracle's own tables: what the documented semantics say, written out by hand.
LEVEL = {"convertible": 1, "declared": 2, "native": 3, "verified": 4}
PROPORTION = {"accuracy", "top-5-accuracy", "f1", "precision", "recall", "exact-match", "map", "miou", "auc"}
VISION = {"computer-vision", "image-classification", "object-detection", "image-segmentation", "depth-estimation",
          "image-feature-extraction", "image-to-image", "video-classification", "keypoint-detection",
          "zero-shot-image-classification", "mask-generation", "unconditional-image-generation"}
PERMISSIVE = {"Apache-2.0", "MIT", "BSD-3-Clause", "BSD-2-Clause", "CC-BY-4.0", "CC0-1.0"}
TENSORFLOW_FORMATS = {"tf-savedmodel", "tf1-hub-module", "keras-h5", "keras"}
MOBILE = {"mobile", "android", "ios"}


def load_corpus() -> list[ModelRecord]:
    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        return [ModelRecord.model_validate_json(line) for line in f]


RECORDS = load_corpus()


# ------------------------------------------------------------------------------------------------
# Backends under test
# ------------------------------------------------------------------------------------------------
BACKENDS = ["tantivy", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)]
# For tests that read Tantivy's internals: the `backend` fixture restricted to the embedded backend.
tantivy_only = pytest.mark.parametrize("backend", ["tantivy"], indirect=True)
# For tests of what only an Elasticsearch index has: `make_backend` restricted to Elasticsearch.
elasticsearch_only = pytest.mark.parametrize(
    "make_backend", [pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)], indirect=True)


def _new_backend(kind: str, path: Path, request: pytest.FixtureRequest) -> Backend:
    """An empty backend of this kind: a Tantivy index at `path`, or a freshly named index on the
    session's Elasticsearch node."""
    if kind == "tantivy":
        return TantivyBackend(path)
    from modelport.index.elasticsearch_backend import ElasticsearchBackend, unique_index_name

    return ElasticsearchBackend(request.getfixturevalue("elasticsearch_url"), index_name=unique_index_name(),
                                replicas=0)


def _dispose(b: Backend) -> None:
    if not isinstance(b, TantivyBackend):
        b.delete_index()
    b.close()


def _corpus_index(kind: str, path: Path, request: pytest.FixtureRequest) -> Iterator[Backend]:
    b = _new_backend(kind, path, request)
    try:
        b.upsert(RECORDS)
        b.commit()
    except BaseException:
        with contextlib.suppress(Exception):  # report the failure itself, not a failed clean-up after it
            _dispose(b)
        raise
    if not isinstance(b, TantivyBackend):
        # A server's first aggregations over a new index load its doc values; on a loaded machine that
        # can outlast the default 0.5 s facet time of the first test, so one runs here, untimed.
        b.search(SearchQuery(facets=list(FACET_FIELDS), facet_timeout_s=60, limit=1))
    yield b
    _dispose(b)


@pytest.fixture(scope="module")
def embedded_backend(tmp_path_factory: pytest.TempPathFactory,
                     request: pytest.FixtureRequest) -> Iterator[TantivyBackend]:
    yield from _corpus_index("tantivy", tmp_path_factory.mktemp("search-index"), request)


@pytest.fixture(scope="module")
def es_backend(tmp_path_factory: pytest.TempPathFactory,
               request: pytest.FixtureRequest) -> Iterator[ElasticsearchBackend]:
    yield from _corpus_index("elasticsearch", tmp_path_factory.mktemp("unused"), request)


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    """The corpus, indexed once per module in each backend."""
    return request.getfixturevalue({"tantivy": "embedded_backend", "elasticsearch": "es_backend"}[request.param])


@pytest.fixture(params=BACKENDS)
def own_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """An index of the corpus for one test alone: for tests that change it."""
    yield from _corpus_index(request.param, tmp_path / "idx", request)


@pytest.fixture(params=BACKENDS)
def make_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Backend]]:
    """Makes empty backends of one kind for a test; each is disposed of afterwards."""
    made: list[Backend] = []

    def make() -> Backend:
        made.append(_new_backend(request.param, tmp_path / f"idx{len(made)}", request))
        return made[-1]

    yield make
    for b in made:
        _dispose(b)


# ------------------------------------------------------------------------------------------------
# The oracle
# ------------------------------------------------------------------------------------------------
def cmp(op: str, a: float, b: float) -> bool:
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "=": a == b}[op]


def level_ok(status: str, minimum: str) -> bool:
    return LEVEL.get(status, 0) >= LEVEL[minimum]


def runs(rt: str, version: str | None = None, minimum: str = "convertible", newer: bool = False) -> Callable:
    def pred(r: ModelRecord) -> bool:
        for e in r.compatibility:
            if e.runtime != rt or e.target or e.hardware or not level_ok(e.status, minimum):
                continue
            rng = e.version_range
            if version is None:
                return True
            if rng is None or (rng.contains(version) and (not newer or rng.max is None)):
                return True
        return False
    return pred


def reaches(targets: set[str], minimum: str = "convertible") -> Callable:
    return lambda r: any(e.target in targets and e.hardware is None and level_ok(e.status, minimum)
                         for e in r.compatibility)


def fits(hw: str, minimum: str = "convertible") -> Callable:
    return lambda r: any(e.hardware == hw and level_ok(e.status, minimum) for e in r.compatibility)


def metric(m: str, ds: str | None, op: str | None = None, value: float | None = None) -> Callable:
    def pred(r: ModelRecord) -> bool:
        for e in r.evaluations:
            if KB.metric_id(e.metric) != m:
                continue
            if ds is not None and (e.dataset is None or KB.dataset_id(e.dataset) != ds):
                continue
            v = e.value / 100 if m in PROPORTION and e.value > 1 else e.value
            if op is None or cmp(op, v, value):  # type: ignore[arg-type]
                return True
        return False
    return pred


def latency(hw: str | None, op: str, ms: float, measured_only: bool = False) -> Callable:
    def pred(r: ModelRecord) -> bool:
        figs = [la.latency_ms for la in r.latencies if (hw is None or la.hardware.lower() == hw)
                and (la.measured or not measured_only)]
        return bool(figs) and cmp(op, min(figs), ms)
    return pred


def memory(hw: str | None, op: str, limit: float) -> Callable:
    def pred(r: ModelRecord) -> bool:
        figs = [e.measurements["working_bytes"] for e in r.compatibility
                if e.hardware and (hw is None or e.hardware == hw) and "working_bytes" in e.measurements
                and LEVEL.get(e.status, 0) > 0]
        return bool(figs) and cmp(op, min(figs), limit)
    return pred


def params(op: str, n: float) -> Callable:
    return lambda r: r.parameter_count is not None and cmp(op, r.parameter_count, n)


def size(op: str, n: float) -> Callable:
    return lambda r: r.size_bytes is not None and cmp(op, r.size_bytes, n)


def has(attr: Callable[[ModelRecord], list[str] | set[str]], values: set[str]) -> Callable:
    return lambda r: bool(set(attr(r)) & values)


def all_of(*preds: Callable) -> Callable:
    return lambda r: all(p(r) for p in preds)


def any_of(*preds: Callable) -> Callable:
    return lambda r: any(p(r) for p in preds)


def no(pred: Callable) -> Callable:
    return lambda r: not pred(r)


TASKS = lambda r: r.tasks  # noqa: E731
FORMATS = lambda r: r.formats  # noqa: E731
LICENSE = lambda r: [r.license] if r.license else []  # noqa: E731
TAGS = lambda r: r.keywords  # noqa: E731
F1_VALUE = next(e.value for r in RECORDS for e in r.evaluations if e.metric == "f1-score" and e.value <= 1)

CASES: list[tuple[str, Callable]] = [
    ("task:image-classification", has(TASKS, {"image-classification"})),
    ("task:vision", has(TASKS, VISION)),
    ('task:"computer vision"', has(TASKS, VISION)),
    ("task:image-classification,object-detection", has(TASKS, {"image-classification", "object-detection"})),
    ("-task:text-generation", no(has(TASKS, {"text-generation"}))),
    ("format:onnx", has(FORMATS, {"onnx"})),
    ("format:tensorflow", has(FORMATS, TENSORFLOW_FORMATS)),
    ("license:apache-2.0", has(LICENSE, {"Apache-2.0"})),
    ("license:permissive", has(LICENSE, PERMISSIVE)),
    ("source:kaggle language:de", all_of(lambda r: r.source == "kaggle", lambda r: "de" in r.languages)),
    ('publisher:"Vision Lab" access:gated', all_of(lambda r: r.publisher and r.publisher.name == "Vision Lab",
                                                   lambda r: r.access == "gated")),
    ("-tag:gguf", no(has(TAGS, {"gguf"}))),
    ("runtime:onnxruntime", runs("onnxruntime")),
    ("runtime:onnxruntime@1.14", runs("onnxruntime", "1.14")),
    ("runtime:onnxruntime@1.14 status:native", runs("onnxruntime", "1.14", "native")),
    ("runtime:onnxruntime@1.14+", runs("onnxruntime", "1.14", newer=True)),
    ("runtime:ort@1.20", runs("onnxruntime", "1.20")),
    ("runtime:onnxruntime@1.19.2", runs("onnxruntime", "1.19.2")),
    ("runtime:onnxruntime@0.5", runs("onnxruntime", "0.5")),
    ("runtime:onnxruntime@2.0", runs("onnxruntime", "2.0")),
    ("runtime:onnxruntime@1.16 status:verified", runs("onnxruntime", "1.16", "verified")),
    ("runtime:tensorrt@10.0", runs("tensorrt", "10.0")),
    ("runtime:tensorrt@9.2 status:declared", runs("tensorrt", "9.2", "declared")),
    ("runtime:trt@8.4", runs("tensorrt", "8.4")),
    ("runtime:onnxruntime@1.17,openvino", any_of(runs("onnxruntime", "1.17"), runs("openvino"))),
    ("-runtime:tensorrt", no(runs("tensorrt"))),
    ("target:android", reaches({"android"})),
    ("target:mobile", reaches(MOBILE)),
    ("target:iphone status:native", reaches({"ios"}, "native")),
    ("target:browser OR target:edge-tpu", reaches({"browser", "edge-tpu"})),
    ("hardware:t4", fits("t4")),
    ("hardware:phone-npu-flagship status:native", fits("phone-npu-flagship", "native")),
    ("status:verified", lambda r: any(e.runtime and not e.target and not e.hardware and e.status == "verified"
                                      for e in r.compatibility)),
    ("metric:accuracy@imagenet>=0.9", metric("accuracy", "imagenet-1k", ">=", 0.9)),
    ("metric:top-1@ILSVRC-2012>80%", metric("accuracy", "imagenet-1k", ">", 0.8)),
    ("accuracy>=0.9", metric("accuracy", None, ">=", 0.9)),
    ("metric:map@coco<0.7", metric("map", "coco", "<", 0.7)),
    ("metric:wer<=0.1", metric("wer", None, "<=", 0.1)),
    ("metric:accuracy@imagenet", metric("accuracy", "imagenet-1k")),
    (f"metric:f1={F1_VALUE}", metric("f1", None, "=", F1_VALUE)),
    (f"metric:f1>{F1_VALUE}", metric("f1", None, ">", F1_VALUE)),
    ("latency@t4<50ms", latency("t4", "<", 50)),
    ("latency<1ms", latency(None, "<", 1)),
    ("latency@a10g>=0.01s", latency("a10g", ">=", 10)),
    ("measured-latency@t4<100ms", latency("t4", "<", 100, measured_only=True)),
    ("memory<4GB", memory(None, "<", 4e9)),
    ("memory@t4<=1GiB", memory("t4", "<=", 2 ** 30)),
    ("params<100M", params("<", 1e8)),
    ("params:10M..1B", all_of(params(">=", 1e7), params("<=", 1e9))),
    ("params>=1B -format:gguf", all_of(params(">=", 1e9), no(has(FORMATS, {"gguf"})))),
    ("size<=500MB", size("<=", 5e8)),
    ("size>10GB", size(">", 1e10)),
    ("format:onnx OR tag:edge", any_of(has(FORMATS, {"onnx"}), has(TAGS, {"edge"}))),
    ("NOT license:MIT -source:huggingface", all_of(no(has(LICENSE, {"MIT"})), lambda r: r.source != "huggingface")),
    ("task:image-classification runtime:onnxruntime@1.14 target:android metric:accuracy@imagenet>=0.8 "
     "latency@t4<50ms license:permissive -tag:gguf",
     all_of(has(TASKS, {"image-classification"}), runs("onnxruntime", "1.14"), reaches({"android"}),
            metric("accuracy", "imagenet-1k", ">=", 0.8), latency("t4", "<", 50), has(LICENSE, PERMISSIVE),
            no(has(TAGS, {"gguf"})))),
    ("task:vision runtime:openvino params<1B target:cloud-cpu",
     all_of(has(TASKS, VISION), runs("openvino"), params("<", 1e9), reaches({"cloud-cpu"}))),
]


def expected(pred: Callable) -> set[str]:
    return {r.id for r in RECORDS if pred(r)}


def all_pages(backend: Backend, q: SearchQuery) -> list[str]:
    """Every hit of a query, collected by following next_cursor."""
    out, cursor = [], None
    for _ in range(1000):
        res = backend.search(q.model_copy(update={"cursor": cursor}))
        out += [h.id for h in res.hits]
        cursor = res.next_cursor
        if cursor is None:
            return out
    raise AssertionError("paging did not end")


def test_corpus_is_large_and_varied() -> None:
    assert len(RECORDS) >= 300
    assert len({r.source for r in RECORDS}) >= 4 and len({t for r in RECORDS for t in r.tasks}) >= 10
    assert len({f for r in RECORDS for f in r.formats}) >= 8
    assert sum(1 for r in RECORDS for e in r.compatibility if e.version_range and e.version_range.max) >= 20
    assert len(CASES) >= 40


@pytest.mark.parametrize(("q", "pred"), CASES, ids=[c[0] for c in CASES])
def test_constraint_query_equals_the_computed_answer(backend: Backend, q: str, pred: Callable) -> None:
    query, interp = compile_query(q, nl=False)
    assert not interp.text, f"{q!r} left free text {interp.text!r}"
    want = expected(pred)
    got = all_pages(backend, query.model_copy(update={"limit": 37}))
    assert len(got) == len(set(got)), "a record was returned twice"
    assert set(got) == want, f"missing {sorted(want - set(got))[:5]}, extra {sorted(set(got) - want)[:5]}"
    assert backend.search(query).total == len(want)
    assert backend.matching_ids(query) == sorted(want)


@pytest.mark.parametrize("runtime", ["onnxruntime", "tensorrt"])
def test_every_kb_release_and_versions_between_them(backend: Backend, runtime: str) -> None:
    # KB releases are answered from per-release terms, other versions from the (lo, hi) codes:
    # both must give the range semantics, at every evidence level, with and without "+".
    versions = [r.version for r in KB.compat.releases_of(runtime)]
    versions += [v + ".3" for v in versions[::3]] + ["0.0.1", "99.0"]
    for v in versions:
        for status in ("convertible", "native"):
            for newer in (False, True):
                q = f"runtime:{runtime}@{v}{'+' if newer else ''} status:{status}"
                got = set(backend.matching_ids(compile_query(q, nl=False)[0]))
                assert got == expected(runs(runtime, v, status, newer)), q


def test_answers_are_neither_empty_nor_everything() -> None:
    sizes = [len(expected(p)) for _, p in CASES]
    assert sum(1 for s in sizes if 0 < s < len(RECORDS)) >= 38


def test_legacy_filter_parameters_are_ontology_aware(backend: Backend) -> None:
    res = backend.matching_ids(SearchQuery(filters={"task": ["vision"], "license": ["apache"]},
                                           exclude={"format": ["onnx"]}))
    assert set(res) == expected(all_of(has(TASKS, VISION), has(LICENSE, {"Apache-2.0"}),
                                       no(has(FORMATS, {"onnx"}))))


def test_vision_includes_its_narrower_tasks_and_mobile_its_members(backend: Backend) -> None:
    vision = set(backend.matching_ids(compile_query("task:vision", nl=False)[0]))
    for task in ("image-classification", "object-detection", "image-segmentation"):
        assert expected(has(TASKS, {task})) <= vision and expected(has(TASKS, {task}))
    mobile = set(backend.matching_ids(compile_query("target:mobile", nl=False)[0]))
    android = set(backend.matching_ids(compile_query("target:android", nl=False)[0]))
    ios = set(backend.matching_ids(compile_query("target:ios", nl=False)[0]))
    assert mobile == android | ios and android and ios - android


def test_percent_metric_values_compare_as_proportions(backend: Backend) -> None:
    # Records report accuracy both as 0.91 and as 91.0; both forms meet >= 0.9 alike.
    hits = set(backend.matching_ids(compile_query("metric:accuracy>=0.9", nl=False)[0]))
    as_percent = {r.id for r in RECORDS for e in r.evaluations
                  if KB.metric_id(e.metric) == "accuracy" and e.value > 1 and e.value >= 90}
    as_fraction = {r.id for r in RECORDS for e in r.evaluations
                   if KB.metric_id(e.metric) == "accuracy" and e.value <= 1 and e.value >= 0.9}
    assert as_percent and as_fraction and (as_percent | as_fraction) == hits


@tantivy_only
def test_matching_rows_are_the_rows_of_the_matching_ids(backend: TantivyBackend) -> None:
    q = compile_query("target:android params<1B", nl=False)[0]
    ids = backend.matching_ids(q)
    rows = backend.rows_of(ids)
    assert sorted(rows.values()) == [int(x) for x in backend.matching_rows(q)]
    # free text does not narrow the hard-constraint set
    assert backend.matching_ids(q.model_copy(update={"text": "segmentation"})) == ids


def test_text_and_constraints_together(backend: Backend) -> None:
    q, interp = compile_query("classifies images runtime:onnxruntime@1.14", nl=False)
    assert interp.text == "classifies images"
    res = backend.search(q.model_copy(update={"limit": 200}))
    allowed = expected(runs("onnxruntime", "1.14"))
    assert res.hits and {h.id for h in res.hits} <= allowed
    top = RECORDS[[r.id for r in RECORDS].index(res.hits[0].id)]
    assert "image-classification" in top.tasks


@tantivy_only
@pytest.mark.parametrize("text", ["classifies images", "bert", "image segmentation model", "resnet", "pytorch onnx",
                                  "vision transformer imagenet1k", "bert-base uncased", '"image classification"'])
@pytest.mark.parametrize("constraints", ["runtime:onnxruntime@1.14", "license:permissive task:vision",
                                         "params<1e9 -segments", "target:mobile format:onnx"])
def test_text_distributed_over_constraints_ranks_and_counts_alike(
        backend: TantivyBackend, text: str, constraints: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """(w1 OR w2) AND c is run as (w1 AND c) OR (w2 AND c) for a few plain words: same hits, same
    scores, same total and facets as the query read as a whole."""
    import modelport.index.embedded.query as tb

    q, _ = compile_query(f"{text} {constraints}", nl=False)
    q = q.model_copy(update={"limit": 300, "facets": ["task", "runtime", "license", "params"]})
    got = backend.search(q)
    monkeypatch.setattr(tb, "_DISTRIBUTE_WORDS_MAX", 0)
    want = backend.search(q)
    assert got.total == want.total
    assert [(h.id, h.score) for h in got.hits] == [(h.id, h.score) for h in want.hits]
    assert {k: v.counts for k, v in got.facets.items()} == {k: v.counts for k, v in want.facets.items()}


def test_negated_words_exclude(backend: Backend) -> None:
    q, interp = compile_query("images -segments", nl=False)
    assert interp.exclude_text == ["segments"]
    ids = {h.id for h in backend.search(q.model_copy(update={"limit": 200})).hits}
    with_images = {h.id for h in backend.search(SearchQuery(text="images", limit=200)).hits}
    segments = {r.id for r in RECORDS if "segments" in (r.description or "")}
    assert ids and segments & with_images and ids == with_images - segments


# ------------------------------------------------------------------------------------------------
# Cursors
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sort", ["downloads", "likes", "modified", "relevance"])
def test_cursor_pages_cover_everything_once_in_order(backend: Backend, sort: str) -> None:
    q = SearchQuery(text="models" if sort == "relevance" else "", sort=sort, limit=9,
                    filters={"source": ["huggingface", "kaggle"]})
    got = all_pages(backend, q)
    want = expected(lambda r: r.source in ("huggingface", "kaggle"))
    if sort == "relevance":
        want = {h.id for h in backend.search(q.model_copy(update={"limit": 200})).hits}
        assert backend.search(q).total == len(want)
    assert len(got) == len(set(got)) and set(got) == want
    if sort != "relevance":
        by_id = {r.id: r for r in RECORDS}
        key = {"downloads": lambda r: r.popularity.downloads or 0, "likes": lambda r: r.popularity.likes or 0,
               "modified": lambda r: r.modified.timestamp()}[sort]
        values = [key(by_id[i]) for i in got]
        assert values == sorted(values, reverse=True)


def test_relevance_cursor_pages_equal_offset_pages(backend: Backend) -> None:
    q = SearchQuery(text="classifies images detects objects", limit=11)
    by_cursor = all_pages(backend, q)
    by_offset: list[str] = []
    for off in range(0, 400, 11):
        page = backend.search(q.model_copy(update={"offset": off})).hits
        by_offset += [h.id for h in page]
        if not page:
            break
    assert by_cursor == by_offset and len(by_cursor) == backend.search(q).total


def test_cursor_survives_inserts_between_pages(own_backend: Backend) -> None:
    b = own_backend
    q = SearchQuery(sort="downloads", limit=25)
    first = b.search(q)
    # A new very popular record and an update of one already shown land between the pages.
    fresh = RECORDS[0].model_copy(update={"id": "huggingface:newcomer", "local_id": "newcomer", "name": "newcomer",
                                          "popularity": Popularity(downloads=10**9)})
    b.upsert([fresh])
    b.commit()
    seen = [h.id for h in first.hits]
    cursor = first.next_cursor
    while cursor:
        res = b.search(q.model_copy(update={"cursor": cursor}))
        seen += [h.id for h in res.hits]
        cursor = res.next_cursor
    assert len(seen) == len(set(seen)) == len(RECORDS)  # nothing repeated, nothing of the old list skipped


def test_relevance_cursor_continues_after_the_last_record_when_the_index_changes(own_backend: Backend) -> None:
    b = own_backend
    q = SearchQuery(text="forecasts traffic volume", limit=5)
    first = b.search(q)
    full = [h.id for h in b.search(q.model_copy(update={"limit": 200})).hits]
    assert first.total > 10 and [h.id for h in first.hits] == full[:5]
    # A record that outranks everything arrives between the pages.
    top = RECORDS[0].model_copy(update={"id": "kaggle:forecaster", "local_id": "forecaster", "name": "forecaster",
                                        "description": "forecasts traffic volume " * 5})
    b.upsert([top])
    b.commit()
    second = b.search(q.model_copy(update={"cursor": first.next_cursor}))
    assert any("index changed" in n for n in second.notices)
    assert [h.id for h in second.hits] == full[5:10]  # right after the last record shown, no repeats


def test_stop_words_alone_match_nothing(make_backend: Callable[[], Backend]) -> None:
    """A sentence's function words ("to", "a", "on") are not matched (search.py: STOP_WORDS), in both
    backends: an id made of them ("title-to-abstract") is no hit for a question about chat assistants."""
    b = make_backend()
    summarizer = RECORDS[0].model_copy(update={
        "id": "huggingface:lab/mt5-small-title-to-abstract", "local_id": "lab/mt5-small-title-to-abstract",
        "name": "mt5-small-title-to-abstract", "description": "Drafts a paper abstract from its title.",
        "keywords": [], "tasks": ["summarization"]})
    chat = RECORDS[0].model_copy(update={
        "id": "huggingface:lab/tiny-chat", "local_id": "lab/tiny-chat", "name": "tiny-chat",
        "description": "Chat assistant that runs offline.", "keywords": [], "tasks": ["text-generation"]})
    b.upsert([summarizer, chat])
    b.commit()
    hits = b.search(SearchQuery(text="chat assistant to run on a laptop", limit=10)).hits
    assert [h.id for h in hits] == [chat.id]
    # a query of nothing but stop words still matches them
    assert [h.id for h in b.search(SearchQuery(text="to", limit=10)).hits] == [summarizer.id]


def test_cursor_of_another_query_is_refused(backend: Backend) -> None:
    page = backend.search(SearchQuery(sort="downloads", limit=5))
    assert page.next_cursor
    with pytest.raises(CursorError):
        backend.search(SearchQuery(sort="likes", limit=5, cursor=page.next_cursor))
    with pytest.raises(CursorError):
        backend.search(SearchQuery(sort="downloads", limit=5, cursor="not-a-cursor"))
    # the page size may change between pages
    assert backend.search(SearchQuery(sort="downloads", limit=50, cursor=page.next_cursor)).hits


# ------------------------------------------------------------------------------------------------
# Facets
# ------------------------------------------------------------------------------------------------
def test_facets_count_under_the_query(backend: Backend) -> None:
    q, _ = compile_query("runtime:onnxruntime@1.14 -tag:gguf", nl=False)
    q = q.model_copy(update={"facets": ["task", "license", "format", "source", "runtime", "target", "status",
                                        "params", "framework"]})
    res = backend.search(q)
    matched = [r for r in RECORDS if r.id in expected(all_of(runs("onnxruntime", "1.14"), no(has(TAGS, {"gguf"}))))]
    assert res.total == len(matched)
    assert res.facets["task"].counts == dict(Counter(t for r in matched for t in r.tasks))
    assert res.facets["license"].counts == dict(Counter(r.license for r in matched if r.license))
    assert res.facets["source"].counts == dict(Counter(r.source for r in matched))
    assert res.facets["target"].counts == dict(Counter(
        t for r in matched for t in {e.target for e in r.compatibility if e.target and not e.hardware
                                     and e.status in LEVEL}))
    assert res.facets["status"].counts == dict(Counter(s for r in matched for s in {e.status for e in r.compatibility}))
    assert res.facets["runtime"].counts == dict(Counter(
        x for r in matched for x in {e.runtime for e in r.compatibility if e.runtime}))
    assert res.facets["format"].counts == dict(Counter(f for r in matched for f in r.formats))
    assert res.facets["framework"].counts == dict(Counter(f for r in matched for f in r.frameworks))
    buckets = Counter()
    for r in matched:
        if r.parameter_count is None:
            continue
        n = r.parameter_count
        buckets["<10M" if n < 1e7 else "10M-100M" if n < 1e8 else "100M-1B" if n < 1e9 else "1B-10B" if n < 1e10
                else ">=10B"] += 1
    assert {k: v for k, v in res.facets["params"].counts.items() if v} == dict(buckets)
    assert not any(f.timed_out for f in res.facets.values())


@tantivy_only
def test_a_facet_out_of_time_is_reported_and_results_still_come(backend: TantivyBackend) -> None:
    # Occupy both facet workers, as a heavy concurrent query would: facets cannot start in time.
    release = threading.Event()
    blockers = [_FACET_POOL.submit(release.wait, 5) for _ in range(2)]
    try:
        res = backend.search(SearchQuery(filters={"task": ["image-classification"]}, facets=["task", "license"],
                                         facet_timeout_s=0.05, limit=5))
    finally:
        release.set()
        for b in blockers:
            b.result()
    assert res.hits and res.total == len(expected(has(TASKS, {"image-classification"})))
    assert res.facets["task"].timed_out and res.facets["license"].timed_out
    again = backend.search(SearchQuery(filters={"task": ["image-classification"]}, facets=["task"]))
    assert not again.facets["task"].timed_out and again.facets["task"].counts["image-classification"] == again.total


@tantivy_only
def test_one_slow_request_does_not_hold_back_the_facets_of_another(backend: TantivyBackend) -> None:
    # A concurrent request whose facets are still running (one worker busy) must not make this
    # request's facets wait for it.
    release = threading.Event()
    blocker = _FACET_POOL.submit(release.wait, 5)
    try:
        res = backend.search(SearchQuery(filters={"task": ["image-classification"]}, facets=["task", "license"],
                                         facet_timeout_s=2.0, limit=5))
    finally:
        release.set()
        blocker.result()
    assert not res.facets["task"].timed_out and not res.facets["license"].timed_out
    assert res.facets["task"].counts["image-classification"] == res.total


@tantivy_only
@pytest.mark.parametrize("sort", ["relevance", "downloads"])
@pytest.mark.parametrize("text", ["", "images", "classifies images detects objects", "models"])
def test_the_total_is_the_count_of_matches_whether_facets_count_it_or_not(backend: TantivyBackend, sort: str,
                                                                        text: str) -> None:
    # With facets, the total comes from the facet aggregation (the page itself skips counting);
    # without, from the page's own count. Both must be the number of records the query matches.
    q = SearchQuery(text=text, filters={"task": ["image-classification", "object-detection"]}, sort=sort, limit=3)
    counted = backend.index.searcher().search(backend.build_query(q), 1, count=True).count
    with_facets = backend.search(q.model_copy(update={"facets": ["task", "license", "runtime"]}))
    without = backend.search(q)
    assert counted and with_facets.total == without.total == counted
    assert [h.id for h in with_facets.hits] == [h.id for h in without.hits]
    assert sum(with_facets.facets["task"].counts.values()) >= counted


def test_facet_values_outside_the_kb_are_still_counted(make_backend: Callable[[], Backend]) -> None:
    # Runtime/target/format facets count a per-record bitmask of KB values; a value the KB does not
    # know must make them fall back to counting the keywords, not vanish.
    from modelport.schema.record import CompatibilityEntry

    odd = RECORDS[0].model_copy(update={"id": "test:odd", "compatibility": [
        *RECORDS[0].compatibility, CompatibilityEntry(runtime="homegrown-rt", status="declared")]})
    b = make_backend()
    b.upsert([odd, *RECORDS[1:20]])
    b.commit()
    res = b.search(SearchQuery(facets=["runtime", "status"], limit=1))
    assert res.facets["runtime"].counts["homegrown-rt"] == 1
    assert res.facets["runtime"].counts == dict(Counter(
        x for r in [odd, *RECORDS[1:20]] for x in {e.runtime for e in r.compatibility if e.runtime}))


# ------------------------------------------------------------------------------------------------
# Rows and rebuilds
# ------------------------------------------------------------------------------------------------
def assert_emptied_then_rebuilt(b2: Backend) -> None:
    """A backend opened over an index of another version: empty, rebuilt once from the catalog's records."""
    assert b2.needs_rebuild and b2.count() == 0
    assert ensure_current(b2, lambda: b2.rebuild_from(RECORDS[:40]))
    assert not b2.needs_rebuild and b2.count() == 40
    assert not ensure_current(b2, lambda: pytest.fail("rebuilt twice"))
    q = compile_query("runtime:onnxruntime@1.14", nl=False)[0]
    assert set(b2.matching_ids(q)) == {r.id for r in RECORDS[:40] if runs("onnxruntime", "1.14")(r)}


def test_rows_are_kept_across_updates_and_reopen(tmp_path: Path) -> None:
    b = TantivyBackend(tmp_path / "idx")
    b.upsert(RECORDS[:50])
    b.commit()
    before = b.rows_of([r.id for r in RECORDS[:50]])
    assert sorted(before.values()) == list(range(50))
    b.upsert([RECORDS[3].model_copy(update={"description": "changed"}), *RECORDS[50:60]])
    b.commit()
    b.close()
    b2 = TantivyBackend(tmp_path / "idx")
    after = b2.rows_of([r.id for r in RECORDS[:60]])
    assert {k: after[k] for k in before} == before and sorted(after.values()) == list(range(60))
    assert not b2.needs_rebuild and b2.count() == 60


def test_index_of_another_version_is_emptied_and_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "idx"
    b = TantivyBackend(path)
    b.upsert(RECORDS[:40])
    b.commit()
    b.close()
    meta = json.loads((path / META_FILE).read_text())
    meta["versions"]["kb"] = "an-older-kb"
    (path / META_FILE).write_text(json.dumps(meta))
    b2 = TantivyBackend(path)
    assert_emptied_then_rebuilt(b2)


# ------------------------------------------------------------------------------------------------
# Elasticsearch only: what the Tantivy tests above check through Tantivy's internals
# ------------------------------------------------------------------------------------------------
@pytest.mark.elasticsearch
def test_a_facet_out_of_time_is_reported_and_results_still_come_from_elasticsearch(
        es_backend: ElasticsearchBackend) -> None:
    # No aggregation request comes back from a server within a microsecond.
    q = SearchQuery(filters={"task": ["image-classification"]}, facets=["task", "license"], limit=5)
    res = es_backend.search(q.model_copy(update={"facet_timeout_s": 1e-6}))
    assert res.hits and res.total == len(expected(has(TASKS, {"image-classification"})))
    assert res.facets["task"].timed_out and res.facets["license"].timed_out
    again = es_backend.search(q.model_copy(update={"facets": ["task"]}))
    assert not again.facets["task"].timed_out and again.facets["task"].counts["image-classification"] == again.total


@elasticsearch_only
def test_elasticsearch_index_of_another_version_is_emptied_and_rebuilt(make_backend: Callable[[], Backend],
                                                                       elasticsearch_url: str) -> None:
    from modelport.index.elasticsearch_backend import ElasticsearchBackend, current_versions

    b = make_backend()
    assert isinstance(b, ElasticsearchBackend)
    b.upsert(RECORDS[:40])
    b.commit()
    b._client.indices.put_mapping(index=b.index_name, meta={"modelport": {**current_versions(), "kb": "an-older-kb"}})
    b2 = ElasticsearchBackend(elasticsearch_url, index_name=b.index_name, replicas=0)
    try:
        assert_emptied_then_rebuilt(b2)
    finally:
        b2.close()


@elasticsearch_only
def test_an_index_modelport_did_not_create_is_refused_and_kept(make_backend: Callable[[], Backend],
                                                                elasticsearch_url: str) -> None:
    from modelport.index.elasticsearch_backend import ElasticsearchBackend, ElasticsearchBackendError

    b = make_backend()
    assert isinstance(b, ElasticsearchBackend)
    b._client.indices.create(index=b.index_name, mappings={"properties": {"title": {"type": "text"}}})
    other = ElasticsearchBackend(elasticsearch_url, index_name=b.index_name)
    try:
        with pytest.raises(ElasticsearchBackendError, match="not created by ModelPort"):
            other.count()
        assert b._client.indices.exists(index=b.index_name)
    finally:
        other.close()
