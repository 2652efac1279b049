"""Hugging Face payload → ModelRecord: what a user searching the catalog relies on (tasks, formats,
quantizations, lineage, typed evaluations, card sections), and that odd payloads never crash."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import ModelInfo

from modelport.harvesters.base import MalformedRecord, SourceRecord
from modelport.harvesters.hf_card import extract_sections, first_paragraph, parse_card, split_front_matter
from modelport.harvesters.hf_mapping import README_KEY, hub_time, info_to_payload, number
from modelport.harvesters.huggingface import HuggingFaceSource
from modelport.schema.compat import derive_compatibility
from modelport.schema.gguf_names import gguf_type_in_name
from modelport.schema.kb import get_kb, load_kb, ontology_dir
from modelport.schema.record import BaseModelLink, ModelRecord

_HF = Path(__file__).parent / "fixtures" / "hf"
if str(_HF) not in sys.path:
    sys.path.insert(0, str(_HF))
import make_corpus  # noqa: E402

CORPUS = json.loads((_HF / "corpus.json").read_text(encoding="utf-8"))
PAYLOADS: dict[str, dict[str, Any]] = {m["id"]: m for m in CORPUS["models"]}
WEB = "https://hub.example"


@pytest.fixture(scope="module")
def source() -> HuggingFaceSource:
    return HuggingFaceSource("huggingface", endpoint=WEB)


def rec(source: HuggingFaceSource, repo_id: str, with_card: bool = False) -> ModelRecord:
    payload = dict(PAYLOADS[repo_id])
    if with_card:
        payload[README_KEY] = {"text": CORPUS["readmes"][repo_id], "truncated": False}
    return source.normalize(SourceRecord(local_id=repo_id, payload=payload))


def by_path(r: ModelRecord) -> dict[str, Any]:
    return {a.path: a for a in r.artifacts}


def evals(r: ModelRecord) -> dict[tuple[str, str | None, str | None, str | None], Any]:
    return {(e.metric, e.dataset, e.dataset_config, e.split): e for e in r.evaluations}


def test_corpus_is_generated_and_varied() -> None:
    assert make_corpus.dumps(make_corpus.build_corpus()) == (_HF / "corpus.json").read_text(encoding="utf-8"), \
        "corpus.json is stale: run python tests/fixtures/hf/make_corpus.py"
    assert len(PAYLOADS) >= 60
    libraries = {p.get("library_name") for p in PAYLOADS.values()}
    assert {"transformers", "diffusers", "timm", "sentence-transformers", "gguf", "keras", "sklearn", "peft",
            "transformers.js"} <= libraries
    for p in PAYLOADS.values():
        ModelInfo(**p)  # every fixture is a payload the real client accepts


def test_every_fixture_maps_without_crashing(source: HuggingFaceSource) -> None:
    for repo_id in PAYLOADS:
        r = rec(source, repo_id, with_card=repo_id in CORPUS["readmes"])
        assert r.id == f"huggingface:{repo_id}" and r.local_id == repo_id
        assert r.links[0].rel == "homepage" and r.links[0].url == f"{WEB}/{repo_id}"
        ModelRecord.model_validate_json(r.model_dump_json())  # stores and loads back


def test_transformers_classic(source: HuggingFaceSource) -> None:
    r = rec(source, "google-bert/bert-base-uncased")
    assert r.tasks == ["fill-mask"]
    assert r.license == "Apache-2.0"
    assert r.frameworks[0] == "transformers"
    assert {"pytorch", "tensorflow", "jax", "onnx", "coreml"} <= set(r.frameworks)
    assert r.formats == ["coreml-mlprogram", "flax-msgpack", "onnx", "safetensors", "pytorch-pickle", "keras-h5"]
    files = by_path(r)
    # the .mlpackage directory is one artifact with the sizes of its files, not three artifacts
    pkg = files["coreml/fill-mask/float32_model.mlpackage"]
    assert pkg.format == "coreml-mlprogram" and pkg.size_bytes == 165_000 + 531_000_000 + 617
    st = files["model.safetensors"]
    assert st.size_bytes == 440_449_768 and st.sha256 == PAYLOADS[r.local_id]["siblings"][9]["lfs"]["sha256"]
    assert st.url == f"{WEB}/{r.local_id}/resolve/{r.version}/model.safetensors"
    assert "vocab.txt" not in files and "config.json" not in files
    assert r.parameter_count == 110_106_428 and r.dtypes == ["float32"]
    assert r.architecture == "BertForMaskedLM"
    assert r.source_facts["model_type"] == "bert" and r.source_facts["auto_model"] == "AutoModelForMaskedLM"
    assert r.languages == ["en"]
    assert r.training_datasets == ["bookcorpus", "wikipedia"]
    assert {(lk.rel, lk.url) for lk in r.links} >= {("paper", "https://arxiv.org/abs/1810.04805")}
    assert r.popularity.downloads == 60_478_923 and r.popularity.likes == 2498
    assert r.publisher is not None and r.publisher.name == "google-bert"
    assert r.version == PAYLOADS[r.local_id]["sha"] and r.access == "public"
    assert hub_time(r.created) == PAYLOADS[r.local_id]["createdAt"]
    assert hub_time(r.modified) == PAYLOADS[r.local_id]["lastModified"]
    assert "region:us" not in r.keywords and "exbert" in r.keywords


def test_model_index_becomes_typed_evaluations(source: HuggingFaceSource) -> None:
    r = rec(source, "distilbert/distilbert-base-uncased-finetuned-sst-2-english")
    ev = evals(r)
    acc = ev[("accuracy", "glue", "sst2", "validation")]
    assert acc.value == pytest.approx(0.9105504587155964) and acc.verified is True
    assert acc.task == "text-classification" and acc.provenance == "model-index"
    assert ev[("accuracy", "sst2", "default", "train")].value == pytest.approx(0.98855, rel=1e-4)
    assert {("f1", "glue"), ("precision", "glue"), ("recall", "glue")} <= {(m, d) for m, d, _, _ in ev}
    assert ("doi", "https://doi.org/10.57967/hf/0181") in {(lk.rel, lk.url) for lk in r.links}

    z = rec(source, "HuggingFaceH4/zephyr-7b-beta")
    datasets = {e.dataset for e in z.evaluations}
    assert {"ai2_arc", "hellaswag", "mmlu", "truthful_qa", "winogrande"} <= datasets  # cais/mmlu → KB id
    assert all(e.source and "open_llm_leaderboard" in e.source for e in z.evaluations)
    assert "gsm8k" not in datasets  # value "n/a" is not a number …
    assert any("gsm8k" in n and "not a number" in n for n in z.source_facts["mapping_notes"])  # … and says so

    w = rec(source, "openai/whisper-tiny")
    wer = {(e.dataset, e.dataset_config): e.value for e in w.evaluations if e.metric == "wer"}
    assert wer[("librispeech", "clean")] == pytest.approx(7.54) and ("common-voice", "hi") in wer
    assert {"en", "zh", "haw"} <= set(w.languages) and len(w.languages) == 33

    q = rec(source, "deepset/roberta-base-squad2")
    ev = evals(q)
    assert ev[("exact-match", "squad-v2", "squad_v2", "validation")].verified is True
    assert ev[("f1", "squad", "plain_text", "validation")].value == pytest.approx(91.841)


def test_eval_results_format(source: HuggingFaceSource) -> None:
    r = rec(source, "Qwen/Qwen3-0.6B")
    got = {e.dataset: e for e in r.evaluations}
    assert got["idavidrein/gpqa"].value == pytest.approx(0.412) and got["idavidrein/gpqa"].provenance == "evalResults"
    assert got["idavidrein/gpqa"].dataset_config == "gpqa_diamond" and got["idavidrein/gpqa"].verified is False
    assert got["cais/hle"].verified is True


@pytest.mark.parametrize(("name", "quant"), [
    ("Llama-3.2-1B-Instruct-Q4_K_M.gguf", "Q4_K_M"), ("model-IQ2_XS.gguf", "IQ2_XS"), ("x.F16.gguf", "F16"),
    ("qwen2.5-0.5b-instruct-fp16.gguf", "F16"), ("m-fp32.gguf", "F32"),  # KB aliases of F16 / F32
    ("phi-q4_0_4_4.gguf", "Q4_0_4_4"), ("phi-3-mini-Q4_0_8_8.gguf", "Q4_0_8_8"), ("model_q8_0.gguf", "Q8_0"),
    ("BF16/Qwen2.5-Coder-32B-Instruct-BF16-00001-of-00002.gguf", "BF16"), ("Q5_K_M/m-00001-of-00002.gguf", "Q5_K_M"),
    ("DeepSeek-R1/UD-IQ1_S/DeepSeek-R1-UD-00001-of-00003.gguf", "IQ1_S"),  # the folder states it
    ("gpt-oss-20b-mxfp4.gguf", "MXFP4"), ("gpt-oss-120b-MXFP4_MOE-00001-of-00002.gguf", "MXFP4_MOE"),
    ("x-TQ1_0.gguf", "TQ1_0"), ("x-IQ2_XXS.gguf", "IQ2_XXS"), ("Meta-Llama-3-8B-Instruct.IQ3_XXS.gguf", "IQ3_XXS"),
    ("Llama-F16-Instruct-Q4_K_M.gguf", "Q4_K_M"),  # the last token wins: the model's own name comes first
    ("x.q4_k_m.gguf", "Q4_K_M"), ("Q8_0/x-Q2_K.gguf", "Q2_K"),  # the file name's own token before its folder's
    ("Llama-3.2-3B-Instruct-Q6_K_L.gguf", "Q6_K"),  # a mix the KB does not list: its base type, a whole token
    ("mistral-7b.gguf", None), ("ggml-model-IQ4_KS.gguf", None), ("m-FP8.gguf", None),  # no KB type named
    ("IQ4_XS-fixed/notes.gguf", "IQ4_XS"), ("XIQ4_XS.gguf", None)])
def test_gguf_type_from_file_name(name: str, quant: str | None) -> None:
    """One rule, read with the KB's GGUF labels and aliases (schema/gguf_names.py)."""
    assert gguf_type_in_name(name, get_kb()) == quant


def test_gguf_types_are_knowledge_not_code(tmp_path: Path) -> None:
    """Take MXFP4 out of the KB and no file name states it any more: the labels are data."""
    for ttl in (ontology_dir() / "kb").glob("*.ttl"):
        text = ttl.read_text(encoding="utf-8")
        if ttl.name == "quantization.ttl":
            text = "\n".join(line for line in text.splitlines() if "MXFP4" not in line and "15091" not in line)
        (tmp_path / ttl.name).write_text(text, encoding="utf-8")
    kb = load_kb(tmp_path)
    assert gguf_type_in_name("gpt-oss-20b-mxfp4.gguf", kb) is None
    assert gguf_type_in_name("gpt-oss-20b-Q4_K_M.gguf", kb) == "Q4_K_M"


def test_unknown_gguf_type_is_none_and_the_name_is_kept(source: HuggingFaceSource) -> None:
    """A type the KB does not list (ik_llama.cpp's IQ4_KS) is not guessed: no quantization, the file
    name as the Hub gave it, and the llama.cpp cell says the type was not stated."""
    payload = {"id": "someone/odd-GGUF", "library_name": "gguf", "tags": ["gguf"],
               "siblings": [{"rfilename": "odd-7B-IQ4_KS.gguf", "size": 4_000_000_000},
                            {"rfilename": "odd-7B-Q4_K_M.gguf", "size": 4_400_000_000}]}
    r = source.normalize(SourceRecord(local_id=payload["id"], payload=payload))
    arts = by_path(r)
    assert arts["odd-7B-IQ4_KS.gguf"].quantization is None and arts["odd-7B-IQ4_KS.gguf"].format == "gguf"
    assert arts["odd-7B-Q4_K_M.gguf"].quantization == "Q4_K_M"
    only_odd = r.model_copy(update={"artifacts": [arts["odd-7B-IQ4_KS.gguf"]]})
    cell = next(e for e in derive_compatibility(only_odd, get_kb()) if e.runtime == "llama-cpp" and not e.target
                and not e.hardware)
    assert any("GGUF quantization type not stated" in ev.detail for ev in cell.evidence), cell.evidence


def test_kb_gguf_types_reach_the_llama_cpp_cell(source: HuggingFaceSource) -> None:
    """What the KB says about a type named in a file name is what the cell says: MXFP4 loads from
    its introducing PR on (range left open), the removed aarch64 Q4_0_4_4 no longer loads natively."""
    def llama_cell(file: str) -> Any:
        p = {"id": "x/y-GGUF", "library_name": "gguf", "tags": ["gguf"],
             "siblings": [{"rfilename": file, "size": 10**9}]}
        r = source.normalize(SourceRecord(local_id=p["id"], payload=p))
        return next(e for e in derive_compatibility(r, get_kb()) if e.runtime == "llama-cpp" and not e.target
                    and not e.hardware)

    mx = llama_cell("gpt-oss-20b-mxfp4.gguf")
    assert mx.status == "native" and mx.precision == "MXFP4" and mx.version_range is None
    assert any("pull/15091" in ev.detail for ev in mx.evidence)
    assert llama_cell("phi-3-mini-Q4_0_4_4.gguf").status != "native"


def test_gguf_repos(source: HuggingFaceSource) -> None:
    r = rec(source, "bartowski/Llama-3.2-1B-Instruct-GGUF")
    assert r.formats == ["gguf"] and "Llama-3.2-1B-Instruct.imatrix" not in by_path(r)
    assert {a.quantization for a in r.artifacts} == {
        "Q2_K", "Q3_K_L", "Q3_K_M", "Q4_0", "Q4_0_4_4", "Q4_K_M", "Q4_K_S", "IQ2_XS", "IQ3_M", "IQ4_XS", "Q5_K_M",
        "Q5_K_S", "Q6_K", "Q8_0", "F16"}
    assert r.base_models == [BaseModelLink(ref="huggingface:meta-llama/Llama-3.2-1B-Instruct", relation="quantized")]
    assert r.parameter_count == 1_235_814_432  # from the GGUF header, no safetensors here
    assert r.source_facts["context_length"] == 131072 and r.architecture == "llama"
    assert "llama-cpp" in r.frameworks and r.license == "LicenseRef-Llama3"

    u = rec(source, "unsloth/Qwen2.5-Coder-32B-Instruct-GGUF")
    assert sorted({a.quantization for a in u.artifacts}) == ["BF16", "IQ2_XXS", "Q4_K_M", "TQ1_0"]
    assert u.size_bytes == 49_000_000_000 + 16_500_000_000 + 19_851_336_256 + 9_000_000_000 + 7_000_000_000


def test_export_formats(source: HuggingFaceSource) -> None:
    onnx = rec(source, "onnx-community/Qwen2.5-0.5B-Instruct")
    assert set(onnx.formats) == {"onnx"} and len(onnx.artifacts) == 7  # the .onnx_data file rides along
    assert "transformers-js" in onnx.frameworks

    tfl = rec(source, "qualcomm/MobileNet-v2")
    assert set(tfl.formats) == {"tflite", "onnx"} and tfl.license == "LicenseRef-qualcomm-ai-hub-proprietary"
    assert tfl.source_facts["license_link"].startswith("https://")
    edge = by_path(rec(source, "google/mobilenet_v2_1.0_224_quant_edgetpu"))
    assert edge["mobilenet_v2_1.0_224_quant_edgetpu.tflite"].format == "edgetpu-tflite"
    assert edge["mobilenet_v2_1.0_224_quant.tflite"].format == "tflite"

    cml = rec(source, "apple/coreml-stable-diffusion-v1-5")
    pkgs = {a.path: a.size_bytes for a in cml.artifacts if a.format == "coreml-mlprogram"}
    assert pkgs == {"original/packages/TextEncoder.mlpackage": 250_000 + 246_000_000 + 617,
                    "original/packages/Unet.mlpackage": 1_720_000_000 + 1_200_000}
    assert by_path(rec(source, "apple/mobilevit-small"))["MobileViT_small.mlmodel"].format == "coreml-neuralnetwork"

    ov = rec(source, "OpenVINO/Phi-3-mini-4k-instruct-int4-ov")
    assert by_path(ov)["openvino_model.xml"].format == "openvino-ir"
    assert ov.base_models[0].relation == "quantized"

    assert rec(source, "keras-io/ocr-for-captcha").formats == ["tf-savedmodel"]
    kg = rec(source, "keras/gemma_2b_en")
    assert kg.formats == ["keras-h5"] and kg.frameworks == ["keras"] and kg.access == "gated"
    assert rec(source, "keras-io/timeseries-anomaly-detection").formats == ["keras"]
    assert rec(source, "tensorflowjs/mobilenet-v3-tfjs").formats == ["tfjs"]
    assert rec(source, "executorch-community/SmolLM2-135M-ET").formats == ["executorch"]


def test_scikit_learn(source: HuggingFaceSource) -> None:
    r = rec(source, "skops-user/iris-logistic-regression")
    assert r.formats == ["skops"] and r.frameworks == ["scikit-learn"] and r.tasks == ["tabular-classification"]
    acc = next(e for e in r.evaluations if e.metric == "accuracy")
    assert acc.dataset == "iris" and acc.value == pytest.approx(0.9666)
    assert {e.metric for e in r.evaluations} == {"accuracy", "f1"}
    assert rec(source, "julien-c/wine-quality").formats == ["sklearn-pickle"]
    reg = rec(source, "scikit-learn/tabular-playground")
    assert reg.tasks == ["tabular-regression"] and {e.metric for e in reg.evaluations} == {"r2", "rmse"}


def test_lineage_adapters_merges_finetunes(source: HuggingFaceSource) -> None:
    lora = rec(source, "ybelkada/opt-350m-lora")
    assert lora.base_models == [BaseModelLink(ref="huggingface:facebook/opt-350m", relation="adapter")]
    assert lora.frameworks == ["peft"] and lora.formats == ["safetensors"]
    # no base_model tag at all: the card's base_model + base_model_relation say it
    alpaca = rec(source, "tloen/alpaca-lora-7b")
    assert alpaca.base_models == [BaseModelLink(ref="huggingface:decapoda-research/llama-7b-hf", relation="adapter")]
    merge = rec(source, "mlabonne/NeuralBeagle14-7B")
    assert {(b.ref, b.relation) for b in merge.base_models} == {
        ("huggingface:fblgit/UNA-TheBeagle-7b-v1", "merge"),
        ("huggingface:argilla/distilabeled-Marcoro14-7B-slerp", "merge")}
    ft = rec(source, "Qwen/Qwen2.5-7B-Instruct")
    assert ft.base_models == [BaseModelLink(ref="huggingface:Qwen/Qwen2.5-7B", relation="finetune")]
    assert ft.parameter_count == 7_615_616_512 and ft.dtypes == ["bfloat16"]
    assert len(ft.artifacts) == 4 and ft.size_bytes == 3_945_441_440 + 3_864_726_424 + 3_864_726_456 + 3_556_377_672
    gptq = rec(source, "TheBloke/Llama-2-7B-Chat-GPTQ")
    assert set(gptq.dtypes) == {"int32", "float16"} and gptq.base_models[0].relation == "quantized"
    sd_lora = rec(source, "nerijs/pixel-art-xl")
    assert sd_lora.base_models[0].relation == "adapter" and sd_lora.frameworks == ["diffusers"]


def test_access_and_licences(source: HuggingFaceSource) -> None:
    llama = rec(source, "meta-llama/Llama-3.2-1B")
    assert llama.access == "gated" and llama.source_facts["gated"] == "manual"
    assert rec(source, "google/gemma-2-2b").source_facts["gated"] == "auto"
    assert rec(source, "acme-corp/internal-classifier").access == "private"
    assert rec(source, "stabilityai/stable-diffusion-xl-base-1.0").license == "LicenseRef-OpenRAIL"
    assert rec(source, "stabilityai/sd-turbo").license == "LicenseRef-sai-nc-community"
    assert rec(source, "mlabonne/NeuralBeagle14-7B").license == "CC-BY-NC-4.0"


def test_unknown_libraries_are_kept_as_facts(source: HuggingFaceSource) -> None:
    sb3 = rec(source, "sb3/ppo-CartPole-v1")
    assert sb3.frameworks == [] and sb3.source_facts["library_name"] == "stable-baselines3"
    assert sb3.tasks == ["reinforcement-learning"] and sb3.evaluations == []  # "500.00 +/- 0.00" is no number
    assert any("not a number" in n for n in sb3.source_facts["mapping_notes"])


def test_absurd_values_are_dropped_with_reasons(source: HuggingFaceSource, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="modelport.harvesters.huggingface"):
        r = rec(source, "weird/absurd-sizes")
    files = by_path(r)
    assert files["model.safetensors"].size_bytes is None and files["model-huge.safetensors"].size_bytes is None
    assert files["ok.safetensors"].size_bytes == 1234
    assert r.parameter_count is None and "context_length" not in r.source_facts
    assert r.popularity.downloads is None and r.popularity.likes is None
    notes = r.source_facts["mapping_notes"]
    assert any("-5" in n and "model.safetensors" in n for n in notes)
    assert any("safetensors parameter count" in n for n in notes)
    assert any("dropped downloads -3" in m for m in caplog.messages)


def test_garbage_and_odd_payloads(source: HuggingFaceSource) -> None:
    g = rec(source, "weird/garbage-model-index")
    assert [(e.metric, e.value) for e in g.evaluations] == [("accuracy", 91.5)]  # "91.5%" is a number
    assert g.license == "LicenseRef-Unknown-Custom"
    assert any("'high' is not a number" in n for n in g.source_facts["mapping_notes"])
    lst = rec(source, "weird/carddata-list")
    assert any("ignored cardData" in n for n in lst.source_facts["mapping_notes"])
    empty = rec(source, "weird/no-files-listed")
    assert empty.artifacts == [] and empty.license == "MIT" and empty.tasks == []

    u = rec(source, "unicode-lab/multilingual-emoji-model", with_card=True)
    assert {"zh", "ar", "he", "ja", "zh-Hant", "yue"} <= set(u.languages)
    assert {"🤗", "émotion", "情感分析"} <= set(u.keywords)
    onnx = next(a for a in u.artifacts if a.format == "onnx")
    assert onnx.path == "モデル/model.onnx" and "%E3%83%A2" in (onnx.url or "")
    assert u.description and "多语言情感分类模型" in u.description and "😀" in u.description
    assert u.card.bias and "Sarcasm" in u.card.bias

    for bad in ({"modelId": ""}, {"tags": ["x"]}, {"id": 5}):
        with pytest.raises(MalformedRecord):
            source.normalize(SourceRecord(local_id="x", payload=bad))
    # wrong types everywhere: still a record, never an exception
    odd = {"id": "o/dd", "tags": "not-a-list", "siblings": [None, {"size": 1}, {"rfilename": 7}],
           "safetensors": {"parameters": "x", "total": "many"}, "gguf": [], "config": "x", "cardData": {"license": 5,
           "language": {"en": True}, "base_model": 3, "model-index": {"results": "x"}}, "downloads": "12",
           "likes": 1.5, "createdAt": "yesterday", "lastModified": "2024-13-45T00:00:00Z", "private": "yes",
           "model-index": [{"results": [{"metrics": [{"type": "acc", "value": float("inf")}]}]}]}
    r = source.normalize(SourceRecord(local_id="o/dd", payload=odd))
    assert r.artifacts == [] and r.evaluations == [] and r.created is None and r.popularity.downloads == 12


def test_client_roundtrip_keeps_the_mapping(source: HuggingFaceSource) -> None:
    """A list item and a model_info answer arrive as `ModelInfo`; re-serialised they map exactly like the
    raw wire JSON (except cards whose invalid model-index the client itself discards)."""
    lossy = {"weird/garbage-model-index"}
    for repo_id, p in PAYLOADS.items():
        a = source.normalize(SourceRecord(local_id=repo_id, payload=p))
        b = source.normalize(SourceRecord(local_id=repo_id, payload=info_to_payload(ModelInfo(**p))))
        if repo_id not in lossy:
            assert a.compute_hash() == b.compute_hash(), repo_id


def test_card_sections_and_description(source: HuggingFaceSource) -> None:
    bert = rec(source, "google-bert/bert-base-uncased", with_card=True)
    assert bert.description and bert.description.startswith("Pretrained model on English language")
    assert "(https://" not in bert.description  # links reduced to their text
    assert bert.card.intended_use and "fine-tuned on a downstream task" in bert.card.intended_use
    assert bert.card.limitations and bert.card.limitations.startswith("Even if the training data")
    assert bert.card.training_data and "BookCorpus" in bert.card.training_data
    assert bert.card.body and bert.card.body.startswith("# BERT base model")

    tpl = rec(source, "distilbert/distilbert-base-uncased-finetuned-sst-2-english", with_card=True)
    assert tpl.description and tpl.description.startswith("This model is a fine-tune checkpoint")
    assert tpl.card.intended_use and "can be used directly" in tpl.card.intended_use
    assert "More Information Needed" not in tpl.card.intended_use
    assert tpl.card.limitations and "make decisions about people" in tpl.card.limitations  # out-of-scope use
    assert tpl.card.bias and "Users should evaluate" in tpl.card.bias
    assert tpl.card.training_data == "Trained on a filtered crawl of public web pages."

    trainer = rec(source, "HuggingFaceH4/zephyr-7b-beta", with_card=True)
    # the Trainer's "More information needed" placeholders are no content
    assert trainer.card.intended_use is None and trainer.card.training_data is None

    broken = rec(source, "weird/broken-card-yaml", with_card=True)
    assert broken.description == "The YAML above does not parse, yet this paragraph is still the description."
    assert broken.card.limitations == "Everything about this card is a little broken."
    assert any("not valid YAML" in n for n in broken.source_facts["mapping_notes"])


def test_card_parser_edge_cases() -> None:
    assert split_front_matter("---\nlicense: mit\n---\nbody") == ("license: mit\n", "body")
    assert split_front_matter("---\nnever closed\n")[0] is None
    assert split_front_matter("\ufeff---\na: 1\n---\nx")[0] == "a: 1\n"
    assert parse_card("---\n- a list\n---\nHello.").front_matter is None
    assert parse_card("---\n: : :\n  - [\n---\n").notes
    noisy = "# T\n\n<img src='x'>\n\n| a | b |\n\n```\ncode\n```\n\nReal text here."
    assert first_paragraph(noisy) == "Real text here."
    assert first_paragraph("[More Information Needed]") is None
    assert first_paragraph("x " * 2000).endswith("…")
    secs = extract_sections("## Limitations and Bias\n\nBiased.\n\n## Uses\n\n### Direct Use\n\nClassify.\n")
    assert secs == {"limitations": "Biased.", "bias": "Biased.", "intended_use": "Classify."}
    assert parse_card("").body is None


def test_number_parsing() -> None:
    assert number("91.5%") == 91.5 and number(" 3 ") == 3.0 and number(7) == 7.0
    assert number(True) is None and number("n/a") is None and number(float("nan")) is None and number(None) is None


def test_declared_formats_only_without_a_file_list(source: HuggingFaceSource) -> None:
    p = {k: v for k, v in PAYLOADS["google-bert/bert-base-uncased"].items() if k != "siblings"}
    r = source.normalize(SourceRecord(local_id=p["id"], payload=p))
    assert r.artifacts == [] and {"onnx", "safetensors", "pytorch-pickle", "coreml-neuralnetwork"} <= set(r.formats)
    with_files = rec(source, "qualcomm/MobileNet-v2")  # library pytorch, but the files are TFLite and ONNX
    assert with_files.declared_formats == [] and "pytorch-pickle" not in with_files.formats
