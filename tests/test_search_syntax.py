"""The search query syntax: qualifiers, quoted phrases, OR and negation read into the query model;
malformed qualifiers raise a typed error naming the token and where it starts; free text is lenient."""

from __future__ import annotations

import pytest

from modelport.index.query_syntax import QuerySyntaxError, compile_query, parse
from modelport.index.search import (
    AnyOf,
    FieldFilter,
    LatencyConstraint,
    MemoryConstraint,
    MetricConstraint,
    ParamsConstraint,
    RuntimeConstraint,
    SearchQuery,
    SizeConstraint,
)


def syntax_of(q: str) -> list[str]:
    return [c.syntax for c in compile_query(q, nl=False)[1].constraints]


def test_the_issue_example() -> None:
    q, interp = compile_query("task:image-classification runtime:onnxruntime@1.14 target:android "
                              "metric:accuracy@imagenet>=0.9 latency@t4<50ms params<100M license:apache-2.0 "
                              "-tag:gguf", nl=False)
    assert [c.syntax for c in interp.constraints] == [
        "task:image-classification", "runtime:onnxruntime@1.14", "target:android", "metric:accuracy@imagenet-1k>=0.9",
        "latency@t4<50ms", "params<100M", "license:Apache-2.0", "-tag:gguf"]
    assert interp.text == "" and q.text == ""
    rt = next(c for c in q.constraints if isinstance(c, RuntimeConstraint))
    assert (rt.runtime, rt.version, rt.and_newer) == ("onnxruntime", "1.14", False)
    metric = next(c for c in q.constraints if isinstance(c, MetricConstraint))
    assert (metric.metric, metric.dataset, metric.op, metric.value) == ("accuracy", "imagenet-1k", ">=", 0.9)
    lat = next(c for c in q.constraints if isinstance(c, LatencyConstraint))
    assert (lat.hardware, lat.op, lat.ms) == ("t4", "<", 50.0)
    assert next(c for c in q.constraints if isinstance(c, ParamsConstraint)).value == 100e6
    tag = next(c for c in q.constraints if isinstance(c, FieldFilter) and c.field == "tag")
    assert tag.negate and tag.values == ["gguf"]


@pytest.mark.parametrize(("q", "want"), [
    ("runtime:ort@1.14+", ["runtime:onnxruntime@1.14+"]),
    ('runtime:"onnx runtime"@1.16', ["runtime:onnxruntime@1.16"]),
    ("rt:tensorrt@10.0 status:native", ["runtime:tensorrt@10.0", "status:native"]),
    ("status>=declared", ["status:declared"]),
    ("target:iphone hw:t4", ["target:ios", "hardware:t4"]),
    ("accuracy@ILSVRC-2012>=90%", ["metric:accuracy@imagenet-1k>=0.9"]),
    ("metric:top-1>=76.5", ["metric:accuracy>=0.765"]),
    ("metric:wer@librispeech<5", ["metric:wer@librispeech<5"]),
    ("metric:bleu", ["metric:bleu"]),
    ("latency:<0.2s", ["latency<200ms"]),
    ("measured-latency@a10g<=20ms", ["measured-latency@a10g<=20ms"]),
    ("memory@t4<8GB mem<4GiB", ["memory@t4<8GB", "memory<4GiB"]),
    ("params:10M..1B", ["params>=10M", "params<=1B"]),
    ("params>=7b", ["params>=7B"]),
    ("size<=2GB size:>100MB", ["size<=2GB", "size>100MB"]),
    ("task:vision,audio", ["task:computer-vision,audio"]),
    ('publisher:"Hugging Face"', ['publisher:"Hugging Face"']),
    ("license:permissive -license:mit", ["license:permissive", "-license:MIT"]),
    ("NOT format:gguf", ["-format:gguf"]),
    ("format:onnx OR runtime:tflite OR target:browser", ["format:onnx OR runtime:tflite OR target:browser"]),
    ("-task:text-generation OR tag:chat", ["-task:text-generation OR tag:chat"]),
    ("runtime:onnxruntime@1.14,openvino", ["runtime:onnxruntime@1.14 OR runtime:openvino"]),
    ("-runtime:tensorrt,openvino", ["-runtime:tensorrt -runtime:openvino"]),
    ("(format:onnx OR format:tflite) license:mit", ["format:onnx OR format:tflite", "license:MIT"]),
])
def test_qualifier_forms(q: str, want: list[str]) -> None:
    assert syntax_of(q) == want


def test_units_and_values() -> None:
    q, _ = compile_query("size<1.5GiB memory>=512MB latency@t4<250us params<=0.5B", nl=False)
    size, mem, lat, params = q.constraints
    assert isinstance(size, SizeConstraint) and size.value == 1.5 * 2 ** 30
    assert isinstance(mem, MemoryConstraint) and (mem.op, mem.bytes) == (">=", 512e6)
    assert isinstance(lat, LatencyConstraint) and lat.ms == pytest.approx(0.25)
    assert isinstance(params, ParamsConstraint) and (params.op, params.value) == ("<=", 5e8)


def test_text_phrases_negation_and_sort() -> None:
    q, interp = compile_query('"object detection" traffic -yolo -"license plate" sort:downloads', nl=False)
    assert q.text == 'traffic "object detection"'
    assert q.exclude_text == ["yolo", "license plate"] and q.sort == "downloads"
    assert interp.exclude_text == ["yolo", "license plate"]


def test_status_is_the_default_level_of_compatibility_constraints() -> None:
    q, _ = compile_query("runtime:onnxruntime@1.14 target:android status:native", nl=False)
    assert q.min_status == "native"
    levels = {c.kind: c.min_status for c in q.hard_constraints() if c.kind in ("runtime", "target")}
    assert levels == {"runtime": "native", "target": "native"}
    alone = compile_query("status:verified", nl=False)[0].hard_constraints()
    assert [c.kind for c in alone] == ["status"]


def test_or_of_alternatives_builds_any_of() -> None:
    q, _ = compile_query("task:image-classification OR task:object-detection license:mit", nl=False)
    any_of, lic = q.constraints
    assert isinstance(any_of, AnyOf) and [c.values for c in any_of.of] == [["image-classification"],
                                                                             ["object-detection"]]
    assert isinstance(lic, FieldFilter) and lic.values == ["MIT"]


@pytest.mark.parametrize(("q", "token", "position", "message"), [
    ("params<abc", "params<abc", 0, "not a number"),
    ("bert params<abc", "params<abc", 5, "not a number"),
    ("metric:accuracy@imagenet>>0.9", "metric:accuracy@imagenet>>0.9", 0, "malformed comparison"),
    ("metric:>=0.9", "metric:>=0.9", 0, "missing metric name"),
    ("metric:accuracy@>=0.9", "metric:accuracy@>=0.9", 0, "missing dataset"),
    ("metric:accuracy>=", "metric:accuracy>=", 0, "missing value"),
    ("latency@t4<50parsecs", "latency@t4<50parsecs", 0, "unknown unit"),
    ("latency@t4:50ms", "latency@t4:50ms", 0, "needs a comparison"),
    ("latency@t5<50ms", "latency@t5<50ms", 0, "unknown hardware"),
    ("  runtime:onnxruntime@abc", "runtime:onnxruntime@abc", 2, "not a version"),
    ("runtime:onnxruntime@", "runtime:onnxruntime@", 0, "missing version"),
    ("runtime:cuda-magic", "runtime:cuda-magic", 0, "unknown runtime"),
    ("x -target:mars", "-target:mars", 2, "unknown target"),
    ("hardware:t5", "hardware:t5", 0, "unknown hardware"),
    ("status:bogus", "status:bogus", 0, "unknown evidence level"),
    ("status:failed-verification", "status:failed-verification", 0, "unknown evidence level"),
    ("status<native", "status<native", 0, "minimum level"),
    ("sort:popular", "sort:popular", 0, "unknown order"),
    ("task:", "task:", 0, "empty value"),
    ("license:,", "license:,", 0, "empty value"),
    ("params!=5M", "params!=5M", 0, "not supported"),
    ("params:..", "params:..", 0, "empty range"),
    ("size<12parsecs", "size<12parsecs", 0, "unknown unit"),
    ("task:vision OR bert", "task:vision", 0, "OR cannot join free text"),
    ("params@t4<5M", "params@t4<5M", 0, "takes no '@'"),
])
def test_malformed_qualifiers_name_the_token_and_position(q: str, token: str, position: int, message: str) -> None:
    with pytest.raises(QuerySyntaxError) as e:
        compile_query(q)
    err = e.value
    assert err.token == token and err.position == position and message in err.message
    assert q[err.position:err.position + len(err.token)] == err.token
    body = err.to_dict()
    assert body["error"] == "query_syntax" and body["token"] == token and body["position"] == position


def test_unknown_prefixes_and_broken_quotes_stay_text() -> None:
    q, interp = compile_query('bert:base 16:9 http://example.com runtme:onnxruntime', nl=False)
    assert q.text == "bert:base 16:9 http://example.com runtme:onnxruntime" and not q.constraints
    assert any("did you mean runtime:" in n for n in interp.notices)
    q, interp = compile_query('AND OR "( [ -name:* ^~ \\', nl=False)
    assert q.text == '"( [ -name:* ^~ \\"' and any("unclosed quote" in n for n in interp.notices)
    q, interp = compile_query("cats OR", nl=False)
    assert q.text == "cats" and any("'OR'" in n for n in interp.notices)


def test_canonical_syntax_reads_back_to_the_same_query() -> None:
    q, _ = compile_query("task:vision runtime:ort@1.14+ target:mobile metric:top-1@imagenet>=80% "
                         "measured-latency@t4<=20ms memory<4GiB params:1M..1B size<2GB -tag:gguf "
                         "format:onnx OR format:tflite status:declared", nl=False)
    again, _ = compile_query(q.to_syntax(), nl=False)
    dump = lambda x: [c.model_dump() for c in x.hard_constraints()]  # noqa: E731
    assert dump(again) == dump(q)


def test_parse_is_independent_of_api_parameters() -> None:
    parsed = parse("task:a OR task:b words")
    assert parsed.words == ["words"] and len(parsed.constraints) == 1
    base = SearchQuery(filters={"source": ["kaggle"]}, limit=7, sort="likes")
    q, _ = compile_query("license:mit", base=base)
    assert q.filters == {"source": ["kaggle"]} and q.limit == 7 and q.sort == "likes"
    assert [c.to_syntax() for c in q.constraints] == ["license:MIT"]
