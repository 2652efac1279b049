"""TF Hub documentation grammar and record mapping, on the fixture tree and on hand-written documents."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from modelport.harvesters.base import SourceRecord
from modelport.harvesters.tfhub import TFHubSource, link_documents
from modelport.harvesters.tfhub_parse import MalformedDocument, ParsedDoc, html_title, parse_html, parse_markdown

DOCS = Path(__file__).parent / "fixtures" / "tfhub" / "docs"


def _all_docs() -> tuple[list[ParsedDoc], list[tuple[Path, MalformedDocument]]]:
    good, bad = [], []
    for p in sorted(DOCS.rglob("*.md")):
        try:
            good.append(parse_markdown(p.read_text(encoding="utf-8"), p.as_uri()))
        except MalformedDocument as exc:
            bad.append((p, exc))
    return good, bad


def test_fixture_tree_covers_every_document_type_and_one_broken_document() -> None:
    good, bad = _all_docs()
    assert len(good) + len(bad) >= 40
    types = Counter(d.doc_type for d in good)
    assert set(types) == {"Module", "Placeholder", "Lite", "Tfjs", "Coral", "Collection", "Publisher"}
    assert [p.name for p, _ in bad] == ["1.md"] and "broken-model" in str(bad[0][0])
    assert "'format' given more than once" in str(bad[0][1])
    assert bad[0][1].local_id == "google/broken-model/1"


MODULE = """# Module google/imagenet/mobilenet_v2_100_224/classification/5
Imagenet (ILSVRC-2012-CLS) classification with MobileNet V2
(depth multiplier 1.00).

<!-- asset-path: internal -->
<!-- dataset: imagenet-ilsvrc-2012-cls -->
<!-- fine-tunable: false  -->
<!-- format: saved_model_2 -->   
<!--- TODO(b/171934083): Link to an example Colab. --->
<!-- (https://tfhub.dev/google/x/1) -->
<!-- task: image-classification -->
<!-- network-architecture: mobilenet-v2 -->
<!-- network-architecture: cnn -->
<!-- network-architecture: cnn -->
<!--
license: mit
-->

## TF2 SavedModel
Body text. <!-- license: gpl-3.0 -->
<!-- format: hub -->
"""  # noqa: W291 - the trailing spaces after `-->` are part of the test


def test_grammar_metadata_description_and_body() -> None:
    doc = parse_markdown(MODULE)
    assert doc.doc_type == "Module"
    assert (doc.publisher, doc.name, doc.version) == ("google", "imagenet/mobilenet_v2_100_224/classification", "5")
    assert doc.description == "Imagenet (ILSVRC-2012-CLS) classification with MobileNet V2 (depth multiplier 1.00)."
    # trailing spaces stripped, repeatable keys collected (deduplicated), other keys single strings
    assert doc.metadata == {"asset-path": "internal", "dataset": ["imagenet-ilsvrc-2012-cls"],
                            "fine-tunable": "false", "format": "saved_model_2", "task": ["image-classification"],
                            "network-architecture": ["mobilenet-v2", "cnn"]}
    # comments (one-line, multi-line, in the body) are never metadata and never card text
    assert "license" not in doc.metadata
    assert doc.body.startswith("## TF2 SavedModel") and "Body text." in doc.body and "<!--" not in doc.body


@pytest.mark.parametrize(("doc_type", "present", "missing"), [
    ("Module", ["asset-path: x", "task: t", "fine-tunable: true"], "format"),
    ("Module", ["asset-path: x", "format: hub", "fine-tunable: true"], "task"),
    ("Placeholder", ["license: mit"], "task"),
    ("Lite", ["asset-path: x"], "parent-model"),
    ("Tfjs", ["parent-model: a/b/1"], "asset-path"),
    ("Coral", ["asset-path: x"], "parent-model"),
])
def test_required_keys_per_type(doc_type: str, present: list[str], missing: str) -> None:
    text = f"# {doc_type} pub/model/1\nA model.\n\n" + "\n".join(f"<!-- {m} -->" for m in present) + "\n"
    with pytest.raises(MalformedDocument, match=missing) as err:
        parse_markdown(text)
    assert err.value.local_id is not None


def test_collection_requires_task_and_publisher_requires_nothing() -> None:
    with pytest.raises(MalformedDocument, match="task"):
        parse_markdown("# Collection google/c/1\nA collection.\n\n<!-- language: en -->\n")
    pub = parse_markdown("# Publisher google\nGoogle\n\n[![Icon URL]](https://x/icon.png)\n\n## Google\nText.\n")
    assert (pub.doc_type, pub.description, pub.icon, pub.local_id) == ("Publisher", "Google",
                                                                       "https://x/icon.png", "google")


@pytest.mark.parametrize("text,reason", [
    ("# Model google/x/1\nDesc.\n", "first line"),
    ("\n# Module google/x/1\nDesc.\n", "blank line"),
    ("# Module Google/x/1\nDesc.\n", "first line"),  # publisher ids are lower case
    ("# Module google/x\nDesc.\n", "first line"),  # no version
    ("# Module google/x/1\n\n<!-- task: t -->\n", "description"),
    ("# Lite g/x/1\nD.\n\n<!-- asset-path: a -->\n<!-- parent-model: g/y/1 -->\n<!-- parent-model: g/z/1 -->\n",
     "'parent-model' given more than once"),
    ("# Placeholder g/x/1\nD.\n\n<!-- task: t -->\n<!-- license: mit -->\n<!-- license: apache-2.0 -->\n",
     "'license' given more than once"),
    ("# Placeholder g/x/1\nD.\n\n<!-- task: t -->\n<!-- fine-tunable: yes -->\n", "true or false"),
])
def test_malformed_documents(text: str, reason: str) -> None:
    with pytest.raises(MalformedDocument, match=reason):
        parse_markdown(text)


def test_a_key_repeated_with_the_same_value_is_accepted_with_a_warning() -> None:
    """As in the published tensorflow/mobilenet_v1_0.25_128_quantized/1/metadata/1 document."""
    text = ("# Module tensorflow/mobilenet_v1_0.25_128_quantized/1/metadata/1\nMobileNet V1 metadata.\n\n"
            "<!-- asset-path: legacy -->\n<!-- task: image-classification -->\n<!-- fine-tunable: false -->\n"
            "<!-- format: hub -->\n<!-- interactive-visualizer: vision -->\n<!-- interactive-visualizer: vision -->\n")
    doc = parse_markdown(text)
    assert doc.value("interactive-visualizer") == "vision"
    assert doc.warnings == ["metadata key 'interactive-visualizer' given twice with the same value 'vision'"]
    record = TFHubSource("file:///nonexistent", name="tfhub").normalize(
        SourceRecord(local_id=doc.local_id, payload={"doc": doc.model_dump()}))
    assert record.source_facts["parse_warnings"] == doc.warnings
    with pytest.raises(MalformedDocument, match="'interactive-visualizer' given more than once"):
        parse_markdown(text.replace("visualizer: vision -->\n<!-- interactive-visualizer: vision",
                                    "visualizer: vision -->\n<!-- interactive-visualizer: text"))


def test_legacy_module_type_key_and_zwnj_title() -> None:
    doc = parse_markdown("# Module google/&zwnj;x/1\nD.\n\n<!-- asset-path: legacy -->\n<!-- module-type: "
                         "text-embedding -->\n<!-- fine-tunable: true -->\n<!-- format: hub -->\n")
    assert doc.handle == "google/x/1" and doc.values("task") == ["text-embedding"]


def test_variant_ids_follow_tfhub_urls_so_equal_handles_do_not_collide() -> None:
    good, _ = _all_docs()
    by_handle: dict[str, list[str]] = {}
    for d in good:
        by_handle.setdefault(d.handle, []).append(d.local_id)
    assert sorted(by_handle["google/spice/1"]) == ["google/lite-model/spice/1", "google/spice/1"]
    assert sorted(by_handle["tensorflow/mobilenet_v2_1.0_224_quantized/1/default/1"]) == [
        "tensorflow/coral-model/mobilenet_v2_1.0_224_quantized/1/default/1",
        "tensorflow/lite-model/mobilenet_v2_1.0_224_quantized/1/default/1"]
    ids = [d.local_id for d in good]
    assert len(ids) == len(set(ids))


def _render_html(md: str) -> str:
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": True}).enable("table").render(md)
    return f"<!doctype html><html><head><title>TF Hub</title></head><body><nav><a href='/'>home</a></nav>" \
           f"<article>{body}</article></body></html>"


def test_html_page_form_reads_like_the_markdown() -> None:
    good, _ = _all_docs()
    for d in good:
        path = Path(d.url.removeprefix("file://"))  # type: ignore[union-attr]
        html = _render_html(path.read_text(encoding="utf-8"))
        assert html_title(html) is not None
        h = parse_html(html)
        assert (h.doc_type, h.handle, h.local_id, h.metadata, h.description, h.icon) == (
            d.doc_type, d.handle, d.local_id, d.metadata, d.description, d.icon), d.handle
        assert h.form == "html"
    # member links of a collection survive the round trip (they are how membership is found)
    coll = parse_html(_render_html((DOCS / "google/collections/movenet/1.md").read_text()))
    assert "https://tfhub.dev/google/lite-model/movenet/singlepose/lightning/tflite/float16/4" in coll.body
    assert html_title("<html><body><h1>Welcome</h1></body></html>") is None


# -- mapping --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def records() -> dict[str, object]:
    good, _ = _all_docs()
    src = TFHubSource(DOCS.as_uri(), name="tfhub")
    out = {}
    for payload in link_documents(good):
        item = SourceRecord(local_id=payload["local_id"], payload=payload, url=payload["doc"]["url"])
        out[payload["local_id"]] = src.normalize(item)
    return out


def test_module_mapping(records: dict) -> None:
    r = records["google/imagenet/mobilenet_v2_100_224/classification/5"]
    assert r.id == "tfhub:google/imagenet/mobilenet_v2_100_224/classification/5"
    assert r.iri == ""  # a source mints no IRI: the pipeline does, under the deployment's base_iri
    assert r.tasks == ["image-classification"] and r.training_datasets == ["imagenet-1k"]
    assert r.architecture == "mobilenet-v2" and "mobilenet-v2" in r.keywords
    assert r.frameworks == ["tensorflow"] and r.version == "5"
    assert r.version_group == "tfhub:google/imagenet/mobilenet_v2_100_224/classification"
    # the module's own format, then the formats of its Lite and TF.js deployments
    assert r.declared_formats == ["tf-savedmodel", "tflite", "tfjs"]
    assert r.license == "Apache-2.0" and r.provenance.defaults_applied and "Apache-2.0" in \
        r.provenance.defaults_applied[0]
    assert r.source_facts["fine_tunable"] is True
    assert r.publisher is not None and r.publisher.name == "Google" and r.publisher.kind == "organization"
    rels = {link.rel: link.url for link in r.links}
    assert rels["tfhub"] == "https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/classification/5"
    assert rels["kaggle"].startswith("https://www.kaggle.com/models/google/")
    assert rels["colab"].startswith("https://colab.research.google.com/")
    assert r.card.body and r.card.body.startswith("## TF2 SavedModel")
    assert {v["local_id"] for v in r.source_facts["variants"]} == {
        "google/lite-model/imagenet/mobilenet_v2_100_224/classification/5/metadata/1",
        "google/tfjs-model/imagenet/mobilenet_v2_100_224/classification/5/default/1"}


def test_formats_licenses_tasks_from_the_kb(records: dict) -> None:
    assert records["google/universal-sentence-encoder/2"].declared_formats == ["tf1-hub-module"]
    assert records["google/universal-sentence-encoder/4"].declared_formats == ["tf-savedmodel"]
    assert records["google/universal-sentence-encoder/4"].tasks == ["sentence-similarity"]
    assert records["google/universal-sentence-encoder/4"].languages == ["en"]
    assert records["google/universal-sentence-encoder/4"].source_facts["fine_tunable"] is False
    assert records["sayakpaul/convnext_tiny_1k_224/1"].license == "MIT"
    assert records["sayakpaul/convnext_tiny_1k_224/1"].provenance.defaults_applied == []
    assert records["google/selfie-segmentation/1"].license == "LicenseRef-custom"
    assert records["google/bert_en_uncased_preprocess/3"].tasks == ["natural-language-processing"]
    assert records["google/yamnet/1"].tasks == ["audio-classification"]
    assert records["google/efficientnet/b0/classification/1"].tasks == ["image-classification"]
    assert len(records["google/universal-sentence-encoder-multilingual/3"].languages) == 16
    assert records["google/bert_en_uncased_L-12_H-768_A-12/4"].training_datasets == ["wikipedia", "bookscorpus"]


def test_deployments_link_to_their_parent_and_inherit_its_metadata(records: dict) -> None:
    lite = records["google/lite-model/imagenet/mobilenet_v2_100_224/classification/5/metadata/1"]
    assert lite.declared_formats == ["tflite"] and lite.frameworks == ["tensorflow"]
    assert [(b.ref, b.relation) for b in lite.base_models] == [
        ("tfhub:google/imagenet/mobilenet_v2_100_224/classification/5", "variant")]
    assert lite.tasks == ["image-classification"] and "task" in lite.source_facts["inherited_from_parent"]
    tfjs = records["google/tfjs-model/movenet/singlepose/lightning/4/default/1"]
    assert tfjs.declared_formats == ["tfjs"] and tfjs.frameworks == ["tfjs"]
    assert tfjs.license == "Apache-2.0" and tfjs.provenance.defaults_applied == []  # the parent's explicit one
    coral = records["tensorflow/coral-model/mobilenet_v2_1.0_224_quantized/1/default/1"]
    assert coral.declared_formats == ["edgetpu-tflite"]
    # a Placeholder has no model of its own: its formats are its deployments'
    assert records["tensorflow/mobilenet_v2_1.0_224_quantized/1"].declared_formats == ["tflite", "edgetpu-tflite"]
    assert records["google/selfie-segmentation/1"].declared_formats == ["tflite", "tfjs"]
    # the Lite document titled google/spice/1 belongs to google/spice/2, not to the module google/spice/1
    assert records["google/spice/2"].declared_formats == ["tf-savedmodel", "tflite", "tfjs"]
    assert records["google/spice/1"].declared_formats == ["tf1-hub-module"]


def test_collections_link_their_members(records: dict) -> None:
    for lid in ("google/universal-sentence-encoder/2", "google/universal-sentence-encoder/4",
                "google/universal-sentence-encoder-large/5"):
        r = records[lid]
        assert "universal-sentence-encoder" in r.keywords
        assert {"rel": "collection", "url": "https://tfhub.dev/google/collection/universal-sentence-encoder"} in [
            link.model_dump() for link in r.links]
    for lid in ("google/movenet/singlepose/lightning/4",
                "google/lite-model/movenet/singlepose/lightning/tflite/float16/4",
                "google/tfjs-model/movenet/singlepose/lightning/4/default/1"):
        assert [c["handle"] for c in records[lid].source_facts["collections"]] == ["google/movenet/1"]
    assert "collections" not in records["google/spice/2"].source_facts
    # collections and publishers are registries, not model records
    assert not any("/collection/" in k for k in records) and "google" not in records
