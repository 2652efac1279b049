"""Natural-language constraints: phrasings people type become constraints of the query model (shown
here in canonical syntax), the rest stays free text; and an NL query finds exactly what its
syntax equivalent finds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modelport.index.embedded import TantivyBackend
from modelport.index.nl_constraints import extract
from modelport.index.query_syntax import compile_query
from modelport.index.search import AnyOf, RuntimeConstraint, TargetConstraint

# (what a person types, the constraints it must become, the free text left over)
PHRASINGS: list[tuple[str, list[str], str]] = [
    ('image classification models compatible with ONNX Runtime 1.14, over 90 % accuracy on ImageNet, '
     'under 50 ms on a T4, Apache licensed',
     ['runtime:onnxruntime@1.14', 'metric:accuracy@imagenet-1k>0.9', 'latency@t4<50ms', 'license:Apache-2.0'],
     'image classification'),
    ('real-time traffic prediction from camera input at urban intersections',
     [], 'real-time traffic prediction from camera input at urban intersections'),
    ('compatible with ONNX Runtime 1.14+',
     ['runtime:onnxruntime@1.14+'], ''),
    ('runs on ONNX Runtime 1.12 or newer',
     ['runtime:onnxruntime@1.12+'], ''),
    ('compatible with onnxruntime v1.17',
     ['runtime:onnxruntime@1.17'], ''),
    ('works with ORT 1.16',
     ['runtime:onnxruntime@1.16'], ''),
    ('onnx runtime >= 1.16',
     ['runtime:onnxruntime@1.16+'], ''),
    ('works with TensorRT 8.6',
     ['runtime:tensorrt@8.6'], ''),
    ('deployable with TensorFlow Lite',
     ['runtime:tflite'], ''),
    ('TFLite compatible',
     ['runtime:tflite'], ''),
    ('natively supported by onnxruntime',
     ['runtime:onnxruntime (status>=native)'], ''),
    ('verified on onnxruntime 1.16',
     ['runtime:onnxruntime@1.16 (status>=verified)'], ''),
    ('> 90 % accuracy on ImageNet',
     ['metric:accuracy@imagenet-1k>0.9'], ''),
    ('at least 95% accuracy on CIFAR-10',
     ['metric:accuracy@cifar-10>=0.95'], ''),
    ('accuracy above 0.85',
     ['metric:accuracy>0.85'], ''),
    ('top-1 accuracy of at least 80%',
     ['metric:accuracy>=0.8'], ''),
    ('F1 score over 0.9 on SST-2',
     ['metric:f1@sst2>0.9'], ''),
    ('mAP above 0.5 on COCO',
     ['metric:map@coco>0.5'], ''),
    ('exact match above 80 on SQuAD',
     ['metric:exact-match@squad>0.8'], ''),
    ('speech recognition with WER below 5% on LibriSpeech',
     ['metric:wer@librispeech<5'], 'speech recognition'),
    ('better than 5% WER',
     ['metric:wer<5'], ''),
    ('under 50 ms on a T4',
     ['latency@t4<50ms'], ''),
    ('latency < 20ms on A10G',
     ['latency@a10g<20ms'], ''),
    ('50 ms latency on T4',
     ['latency@t4<=50ms'], ''),
    ('faster than 10 ms on an H100',
     ['latency@h100-sxm<10ms'], ''),
    ('under 100ms latency',
     ['latency<100ms'], ''),
    ('measured latency under 30 ms on a T4',
     ['measured-latency@t4<30ms'], ''),
    ('runs on iPhone / Android / in the browser',
     ['target:ios OR target:android OR target:browser'], ''),
    ('runs on an iPhone',
     ['target:ios'], ''),
    ('object detector that runs in the browser',
     ['target:browser'], 'object detector'),
    ('for Android devices',
     ['target:android'], ''),
    ('deploy to mobile',
     ['target:mobile'], ''),
    ('runs on Android or iOS',
     ['target:android OR target:ios'], ''),
    ('image classification for ios and android',
     ['target:ios', 'target:android'], 'image classification'),
    ('runs on Jetson',
     ['target:nvidia-jetson'], ''),
    ('Apache licensed',
     ['license:Apache-2.0'], ''),
    ('MIT licensed',
     ['license:MIT'], ''),
    ('licensed under Apache 2.0',
     ['license:Apache-2.0'], ''),
    ('under the BSD license',
     ['license:BSD-3-Clause'], ''),
    ('with a permissive license',
     ['license:permissive'], ''),
    ('license: cc-by-4.0',
     ['license:CC-BY-4.0'], ''),
    ('sentiment model, MIT license, less than 200 million parameters',
     ['license:MIT', 'params<200M'], 'sentiment'),
    ('smaller than 100M parameters',
     ['params<100M'], ''),
    ('fewer than 1 billion parameters',
     ['params<1B'], ''),
    ('more than 7B parameters',
     ['params>7B'], ''),
    ('at most 3B params',
     ['params<=3B'], ''),
    ('100M parameters or fewer',
     ['params<=100M'], ''),
    ('between 10M and 100M parameters',
     ['params>=10M', 'params<=100M'], ''),
    ('fits in 4 GB',
     ['memory<=4GB'], ''),
    ('fits in 16GB of VRAM',
     ['memory<=16GB'], ''),
    ('needs less than 8 GB memory',
     ['memory<8GB'], ''),
    ('llm for llama.cpp under 8GB of RAM',
     ['memory<8GB'], 'llm for llama.cpp'),
    ('fits in 2GiB',
     ['memory<=2GiB'], ''),
    ('model size under 500 MB',
     ['size<500MB'], ''),
    ('fits on a T4',
     ['hardware:t4'], ''),
    ('runs on a Jetson Orin Nano',
     ['hardware:jetson-orin-nano-8gb'], ''),
    ('pytorch image classifier',
     [], 'pytorch image classifier'),
    ('translation model for german',
     [], 'translation model for german'),
]


def test_there_are_enough_phrasings() -> None:
    assert len(PHRASINGS) >= 40
    assert sum(1 for _, cs, _ in PHRASINGS if cs) >= 40


@pytest.mark.parametrize(("phrase", "constraints", "text"), PHRASINGS, ids=[p[0][:60] for p in PHRASINGS])
def test_phrasing_becomes_constraints(phrase: str, constraints: list[str], text: str) -> None:
    found = extract(phrase)
    assert [c.to_syntax() for c, _ in found.constraints] == constraints
    assert found.text == text
    for _, source in found.constraints:
        assert source and source in phrase  # the interpretation quotes the user's own words


def test_names_come_from_the_knowledge_base() -> None:
    # Aliases in ontology/kb/search-vocabulary.ttl: "ort", "iphone", "t4", "tesla t4", "litert".
    (c, _), = extract("works with ORT 1.15").constraints
    assert isinstance(c, RuntimeConstraint) and c.runtime == "onnxruntime" and c.version == "1.15"
    (c, _), = extract("runs on an iPad").constraints
    assert isinstance(c, TargetConstraint) and c.target == "ios"
    assert [x.to_syntax() for x, _ in extract("under 5 ms on a Tesla T4").constraints] == ["latency@t4<5ms"]
    assert [x.to_syntax() for x, _ in extract("deployable with LiteRT").constraints] == ["runtime:tflite"]


def test_the_headline_query_is_read_in_full() -> None:
    q, interp = compile_query("image classification models compatible with ONNX Runtime 1.14, over 90 % accuracy "
                              "on ImageNet, under 50 ms on a T4, Apache licensed")
    assert interp.nl and interp.text == "image classification" and q.text == "image classification"
    assert [c.via for c in interp.constraints] == ["nl"] * 4
    assert {c.kind for c in q.constraints} == {"runtime", "metric", "latency", "field"}


def test_nl_off_keeps_everything_as_text() -> None:
    q, interp = compile_query("object detector that runs in the browser under 50 ms on a T4", nl=False)
    assert not q.constraints and not interp.constraints and not interp.nl
    assert q.text == "object detector that runs in the browser under 50 ms on a T4"


def test_syntax_and_nl_mix_and_quoted_phrases_stay_literal() -> None:
    q, interp = compile_query('"runs on android" detector license:mit under 20 ms on a T4')
    assert [(c.syntax, c.via) for c in interp.constraints] == [("license:MIT", "syntax"), ("latency@t4<20ms", "nl")]
    assert q.text == 'detector "runs on android"'


def test_alternatives_stay_alternatives() -> None:
    (c, phrase), = extract("runs on iPhone / Android / in the browser").constraints
    assert isinstance(c, AnyOf) and [x.target for x in c.of] == ["ios", "android", "browser"]
    assert phrase == "runs on iPhone / Android / in the browser"


@pytest.fixture(scope="module")
def corpus_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TantivyBackend]:
    import gzip
    from pathlib import Path

    from modelport.schema.record import ModelRecord

    path = Path(__file__).parent / "fixtures" / "search" / "corpus.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        records = [ModelRecord.model_validate_json(line) for line in f]
    b = TantivyBackend(tmp_path_factory.mktemp("nl-index"))
    b.upsert(records)
    b.commit()
    yield b
    b.close()


@pytest.mark.parametrize(("phrase", "syntax"), [
    ("compatible with ONNX Runtime 1.14+", "runtime:onnxruntime@1.14+"),
    ("over 90 % accuracy on ImageNet", "metric:accuracy@imagenet>0.9"),
    ("under 50 ms on a T4", "latency@t4<50ms"),
    ("runs on iPhone / Android / in the browser", "target:ios OR target:android OR target:browser"),
    ("Apache licensed", "license:apache-2.0"),
    ("smaller than 100M parameters", "params<100M"),
    ("fits in 4 GB", "memory<=4GB"),
    ("with a permissive license, between 10M and 1B parameters, runs on Android",
     "license:permissive params>=10M params<=1B target:android"),
])
def test_nl_query_finds_what_its_syntax_finds(corpus_backend: TantivyBackend, phrase: str, syntax: str) -> None:
    by_nl, interp = compile_query(phrase)
    by_syntax, _ = compile_query(syntax, nl=False)
    assert not interp.text
    got = corpus_backend.matching_ids(by_nl)
    assert got and got == corpus_backend.matching_ids(by_syntax)


# Lineage and deployment-format phrasings (the phrases are search-vocabulary.ttl data).
LINEAGE_PHRASINGS: list[tuple[str, list[str], list[str], str]] = [
    ("fine-tunes of Llama 2 7B for chat", ['base@finetune:"Llama 2 7B"'], [], "chat"),
    ("quantized versions of mistralai/Mistral-7B-v0.1", ["base@quantized:mistralai/Mistral-7B-v0.1"], [], ""),
    ("quantizations of Mistral 7B Instruct", ['base@quantized:"Mistral 7B Instruct"'], [], ""),
    ("adapters for stable-diffusion-xl-base-1.0", ["base@adapter:stable-diffusion-xl-base-1.0"], [], ""),
    ("LoRAs for sdxl-base", ["base@adapter:sdxl-base"], [], ""),
    ("models based on bert-base-uncased", ["base:bert-base-uncased"], [], ""),
    ("Mistral-7B-v0.1 derivatives", ["base:Mistral-7B-v0.1"], [], ""),
    ("show me all whisper fine-tunes", ["base@finetune:whisper"], [], "show me all"),
    ("Whisper large v3 fine-tunes", ['base@finetune:"Whisper large v3"'], [], ""),
    ("Mistral 7B merges", ['base@merge:"Mistral 7B"'], [], ""),
    ("GGUF quants of zephyr", ["base@quantized:zephyr"], ["prefer:format=gguf"], "GGUF"),
    ("a TFLite classifier for phones", ["target:mobile"], ["prefer:format=tflite"], "a TFLite classifier"),
    ("pose detection in the browser with TF.js", ["target:browser"], ["prefer:format=tfjs"], "pose detection TF.js"),
    ("text embedding model in ONNX format", ["format:onnx"], [], "text embedding"),
    ("llama GGUF files", ["format:gguf"], [], "llama"),
    ("Core ML image classifier", [], ["prefer:format=core ml"], "Core ML image classifier"),
    ("all fine-tunes", [], [], "all fine-tunes"),  # no model named: stays text
]


@pytest.mark.parametrize(("phrase", "constraints", "prefs", "text"), LINEAGE_PHRASINGS,
                         ids=[p[0] for p in LINEAGE_PHRASINGS])
def test_lineage_and_format_phrasings(phrase: str, constraints: list[str], prefs: list[str], text: str) -> None:
    q, interp = compile_query(phrase)
    assert [c.to_syntax() for c in q.constraints] == constraints
    assert [p.to_syntax() for p in q.prefer] == prefs
    assert q.text == text
    assert all(c.source in phrase for c in interp.constraints)


def test_a_longer_name_the_catalog_knows_wins() -> None:
    """"LoRAs for stable diffusion xl base": the name-shaped reading is "stable"; asked, the catalog
    knows "stable diffusion xl base" (a name prefix of stable-diffusion-xl-base-1.0), so that is the
    base; without a catalog the extra words stay text."""
    known = {"stable diffusion xl base"}
    q, _ = compile_query("LoRAs for stable diffusion xl base", lineage_probe=lambda c: c.base.lower() in known)
    assert q.to_syntax() == 'base@adapter:"stable diffusion xl base"'
    q, _ = compile_query("LoRAs for stable diffusion xl base")
    assert q.to_syntax() == "diffusion xl base base@adapter:stable"
    q, interp = compile_query("LoRAs for stable diffusion xl base", lineage_probe=lambda c: False)
    assert not q.constraints and "LoRAs for stable diffusion xl base" in q.text
    assert any("read as text" in n for n in interp.notices)
