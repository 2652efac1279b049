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
    text_terms,
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


def test_free_words_leave_out_english_stop_words() -> None:
    # Lucene's English stop words are not matched as free words (search.py: STOP_WORDS): in a sentence
    # they would only match ids such as "title-to-abstract".
    assert text_terms("chat assistant small enough to run offline on a laptop") == [
        ("should", w) for w in ("chat", "assistant", "small", "enough", "run", "offline", "laptop")]
    # ... but a quoted phrase keeps them, operators keep their operands, and a query of nothing
    # else keeps them all
    assert text_terms('"the who" of the') == [("should", "the who")]
    assert text_terms("cat NOT the") == [("should", "cat"), ("must_not", "the")]
    assert text_terms("a AND dog of") == [("must", "a"), ("must", "dog")]
    assert text_terms("to be or not to be") == [("should", w) for w in ["to", "be", "or", "not", "to", "be"]]


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


@pytest.mark.parametrize(("q", "want"), [
    ("base:meta-llama/Llama-2-7b-hf", "base:meta-llama/Llama-2-7b-hf"),
    ("base:huggingface:meta-llama/Llama-2-7b-hf", 'base:"huggingface:meta-llama/Llama-2-7b-hf"'),
    ('base:"Llama 2 7B"', 'base:"Llama 2 7B"'),
    ("base@finetune:bert-base-uncased", "base@finetune:bert-base-uncased"),
    ("base@fine-tunes,quants,2:X", "base@finetune,quantized,2:X"),
    ("base@LoRA:sdxl", "base@adapter:sdxl"),
    ("base_model@1:X", "base@1:X"),
    ("-base:X", "-base:X"),
    ("relation:merge", "relation:merge"),
])
def test_lineage_qualifier(q: str, want: str) -> None:
    assert syntax_of(q) == [want]
    again, _ = compile_query(want, nl=False)
    assert again.constraints[0].model_dump() == compile_query(q, nl=False)[0].constraints[0].model_dump()


def test_prefer_qualifier_ranks_without_filtering() -> None:
    q, interp = compile_query("pose prefer:format=TF.js prefer:target=phones", nl=False)
    assert [(p.kind, p.value) for p in q.prefer] == [("format", "tfjs"), ("target", "mobile")]
    assert not q.constraints and q.text == "pose"
    assert [c.kind for c in interp.constraints] == ["preference", "preference"]
    assert q.to_syntax() == "pose prefer:format=tfjs prefer:target=mobile"
    # Constraints that name a runtime, target or format are preferences too (evidence ranking).
    q, _ = compile_query("runtime:onnxruntime target:android format:gguf -target:ios", nl=False)
    assert [(p.kind, p.value) for p in q.evidence_preferences()] == [
        ("runtime", "onnxruntime"), ("target", "android"), ("format", "gguf")]


@pytest.mark.parametrize(("q", "token", "message"), [
    ("base:", "base:", "empty model name"),
    ("base@sibling:X", "base@sibling:X", "unknown relation"),
    ("base@11:X", "base@11:X", "out of range"),
    ("base<X", "base<X", "expected base:model"),
    ("prefer:tflite", "prefer:tflite", "expected prefer:format=name"),
    ("prefer:format=nosuchformat", "prefer:format=nosuchformat", "unknown format"),
    ("-prefer:format=onnx", "-prefer:format=onnx", "cannot be negated"),
])
def test_malformed_lineage_and_preferences(q: str, token: str, message: str) -> None:
    with pytest.raises(QuerySyntaxError) as e:
        compile_query(q)
    assert e.value.token == token and message in e.value.message, e.value.message


def test_read_as_entries_say_what_removes_them() -> None:
    """Every part of the reading has a kind, a label and the query without it (the web page's
    removable chips), whichever reader found it."""
    q = "fine-tunes of Llama-2-7b-hf for chat license:mit prefer:format=gguf"
    _, interp = compile_query(q)
    by_kind = {c.kind: c for c in interp.constraints}
    assert set(by_kind) == {"lineage", "field", "preference"}
    assert by_kind["lineage"].label == "fine-tunes of Llama-2-7b-hf"
    assert by_kind["lineage"].remove == "for chat license:mit prefer:format=gguf"
    assert by_kind["field"].remove == "fine-tunes of Llama-2-7b-hf for chat prefer:format=gguf"
    assert by_kind["preference"].remove == "fine-tunes of Llama-2-7b-hf for chat license:mit"
    for c in interp.constraints:
        again, _ = compile_query(c.remove or "")
        assert c.syntax not in again.to_syntax()


def test_exact_names_spell_a_typed_name_as_the_hub_does() -> None:
    from modelport.index.search import exact_names

    assert exact_names('  "Whisper Large V3" ') == ["whisper large v3", "whisper-large-v3", "whisper_large_v3"]
    assert exact_names("bert-base-uncased") == ["bert-base-uncased"]
    assert exact_names("   ") == []
