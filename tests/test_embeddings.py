"""Embeddings: what gets embedded, the content-hash cache (unchanged records are never embedded
again, not even by `reindex` or another process), and search without the embedding extra
(switched off, or not importable): BM25 results with a notice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelport.index.embeddings import SUMMARY_CHARS, summary_text
from modelport.index.search import SearchQuery
from modelport.pipeline import Pipeline
from modelport.schema.kb import get_kb
from modelport.schema.record import ModelRecord
from modelport.services import Services
from modelport.settings import Settings

FIXTURES = Path(__file__).parent / "fixtures" / "relevance"
sys.path.insert(0, str(FIXTURES))
import corpus  # noqa: E402

pytest.importorskip("sentence_transformers", reason="the embeddings extra is required")
BRAIN = {"huggingface:neuroimg/brats-unet3d-glioma", "huggingface:radiology-ai/brain-mri-tumor-classifier"}


def subset(n: int = 40) -> list[dict]:
    return corpus.raw_records()[:n]


def harvest(settings: Settings, items: list[dict]) -> Pipeline:
    pipeline = Pipeline(settings)
    for source in corpus.sources(items):
        report = pipeline.harvest(source, mode="full")
        assert report.status == "ok", report.errors
    return pipeline


def test_summary_text_is_short_and_carries_the_essentials() -> None:
    rec = ModelRecord(
        id="huggingface:acme/road-net", source="huggingface", source_kind="huggingface", local_id="acme/road-net",
        name="road-net", tasks=["object-detection"], keywords=["traffic", "license:mit", "cctv"],
        card={"body": "---\nlicense: mit\n---\n# Road net\n\nDetects **cars** at [junctions](http://x). "
                      + "More. " * 300},
        provenance={"harvested_at": datetime(2026, 1, 1, tzinfo=UTC), "harvester": "t", "harvester_version": "0"})
    text = summary_text(rec)
    assert text.startswith("road-net by acme")
    assert "object detection" in text and "traffic, cctv" in text and "license:mit" not in text
    assert "Detects cars at junctions." in text and "**" not in text and "http" not in text
    # The record's own text is short; the KB's definition of its task follows it (tests/test_kb_tasks.py).
    definition = get_kb().tasks["object-detection"].definition or ""
    assert text.endswith(definition) and len(text) < SUMMARY_CHARS + 120 + len(definition)


QUERIES = ["bert", "image classification models compatible with ONNX Runtime 1.14, Apache licensed",
           "real-time traffic prediction from camera input at urban intersections",
           "Wörter und Sätze: ñandú 日本語の音声認識 🚗", "long " + "query about speech models " * 60]


def test_query_vectors_are_the_models_vectors_whichever_path_computes_them() -> None:
    """A query is embedded through the fast path the machine chose (index/query_encoder.py); each
    vector must be the one the model's own batch `encode` gives (documents are embedded that way),
    long queries truncated the same way."""
    from modelport.index.embeddings import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    batch = embedder.embed(QUERIES)
    for text, want in zip(QUERIES, batch, strict=True):
        got = embedder.embed_query(text)
        assert got.dtype == np.float32 and got.shape == want.shape
        assert float(np.linalg.norm(got)) == pytest.approx(1.0, abs=1e-4)
        assert float(got @ want) >= 0.999, (text[:40], SentenceTransformerEmbedder._query_encoder.path)
    # Each fast variant on its own, whichever one this machine picked.
    import torch

    encoder = SentenceTransformerEmbedder._query_encoder
    variants = {str(dtype): encoder._traced(dtype) for dtype in (torch.bfloat16, torch.float32)}
    variants["onnxruntime"] = encoder._onnxruntime()  # the embeddings extra installs onnxruntime
    for name, fast in variants.items():
        for text, want in zip(QUERIES, batch, strict=True):
            assert float(fast(text) @ want) >= 0.999, (name, text[:40])


def test_a_model_the_fast_path_does_not_know_is_embedded_by_encode() -> None:
    from modelport.index.embeddings import SentenceTransformerEmbedder
    from modelport.index.query_encoder import QueryEncoder

    model = SentenceTransformerEmbedder()._load()

    class CLSPooled:  # same interface, another pooling: the fast path would be wrong for it
        def __iter__(self):  # type: ignore[no-untyped-def]
            return iter([model[0], type("Pooling", (), {"pooling_mode": "cls"})(), model[2]])

        def encode(self, *args: Any, **kwargs: Any) -> Any:
            return model.encode(*args, **kwargs)

    encoder = QueryEncoder(CLSPooled())
    assert encoder.path == "encode"
    assert np.array_equal(encoder("bert"), model.encode(["bert"], normalize_embeddings=True)[0])


def test_unchanged_records_are_never_embedded_again(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d", base_iri="http://t")
    items = subset()
    pipeline = harvest(settings, items)
    proj = pipeline.vectors
    assert proj is not None and len(proj.index) == len(items)
    assert proj.embedder.embedded == len(items)

    harvest_again = [dict(r) for r in items]
    harvest_again[0]["tags"] = [*harvest_again[0]["tags"], "extra-tag"]  # in the summary: re-embedded
    harvest_again[1]["license"] = "unlicense"  # record changed, summary did not: vector stands
    for source in corpus.sources(harvest_again):
        pipeline.harvest(source, mode="full")
    assert proj.embedder.embedded == len(items) + 1

    # reindex empties the vector index; every vector comes back from the cache.
    pipeline.reindex()
    assert len(proj.index) == len(items) and proj.embedder.embedded == len(items) + 1
    first = corpus.to_record(harvest_again[0])
    vec = proj.index.vector(first.id)
    assert vec is not None and float(np.linalg.norm(vec)) == pytest.approx(1.0, abs=1e-4)
    pipeline.close()

    # Another process on the same data directory: the cache is on disk.
    other = Pipeline(settings)
    other.reindex()
    assert other.vectors is not None and other.vectors.embedder.embedded == 0
    assert len(other.vectors.index) == len(items)
    other.close()


def test_switched_off_by_setting_gives_bm25_with_a_notice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELPORT_EMBEDDINGS", "false")
    settings = Settings(data_dir=tmp_path / "d", base_iri="http://t")
    assert settings.embeddings is False
    pipeline = harvest(settings, subset())
    assert pipeline.vectors is None and "MODELPORT_EMBEDDINGS" in (pipeline.vectors_unavailable or "")
    assert not (settings.index_dir / "vectors").exists()  # nothing was embedded
    pipeline.close()
    svc = Services(settings)
    res = svc.search(SearchQuery(text="brain tumour segmentation in MRI"))
    assert {h.id for h in res.hits[:2]} == BRAIN
    assert any("BM25" in n and "MODELPORT_EMBEDDINGS" in n for n in res.notices)
    # Without free text there is nothing to rank semantically: no notice.
    assert not svc.search(SearchQuery(filters={"task": ["image-segmentation"]})).notices
    svc.close()

    # Switched on later: search says the catalog has no vectors until a reindex embeds it.
    monkeypatch.setenv("MODELPORT_EMBEDDINGS", "true")
    on = Settings(data_dir=tmp_path / "d", base_iri="http://t")
    svc = Services(on)
    res = svc.search(SearchQuery(text="brain tumour segmentation in MRI"))
    assert {h.id for h in res.hits[:2]} == BRAIN and any("reindex" in n for n in res.notices)
    svc.pipeline.reindex()
    res = svc.search(SearchQuery(text="brain tumour segmentation in MRI"))
    assert {h.id for h in res.hits[:2]} == BRAIN and not res.notices
    svc.close()


def test_missing_extra_gives_bm25_with_a_notice(tmp_path: Path) -> None:
    """A clean interpreter where sentence-transformers cannot be imported (as if the extra were not
    installed): harvesting works without vectors, search answers by BM25 and says why, and the
    embedder's own import is guarded too."""
    script = textwrap.dedent(f"""
        import json, sys
        sys.modules["sentence_transformers"] = None  # import fails as if not installed
        sys.path.insert(0, {str(FIXTURES)!r})
        import corpus
        from modelport.index.embeddings import EmbeddingsUnavailable, SentenceTransformerEmbedder
        from modelport.index.search import SearchQuery
        from modelport.pipeline import Pipeline
        from modelport.services import Services
        from modelport.settings import Settings
        settings = Settings(data_dir={str(tmp_path / "d")!r}, base_iri="http://t")
        p = Pipeline(settings)
        for s in corpus.sources(corpus.raw_records()[:40]):
            assert p.harvest(s, mode="full").status == "ok"
        out = {{"vectors": p.vectors is not None, "why": p.vectors_unavailable}}
        p.close()
        svc = Services(settings)
        res = svc.search(SearchQuery(text="brain tumour segmentation in MRI"))
        out["hits"] = [h.id for h in res.hits]
        out["notices"] = res.notices
        try:
            SentenceTransformerEmbedder().embed(["x"])
            out["guarded"] = False
        except EmbeddingsUnavailable as e:
            out["guarded"] = str(e)
        print(json.dumps(out))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPORT_")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["vectors"] is False and "not installed" in out["why"]
    assert set(out["hits"][:2]) == BRAIN
    assert any("not installed" in n and "BM25" in n for n in out["notices"])
    assert out["guarded"] and "cannot be imported" in out["guarded"]


@pytest.mark.parametrize("warm", [True, False])
def test_the_served_app_warms_the_query_path_at_start_only_when_asked(tmp_path: Path, warm: bool,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from fastapi.testclient import TestClient

    from modelport.api.app import create_app
    from modelport.index.hybrid import HybridSearcher

    warmed = threading.Event()
    monkeypatch.setattr(HybridSearcher, "warm", lambda self: warmed.set())
    settings = Settings(data_dir=tmp_path / "d", base_iri="http://t")
    with TestClient(create_app(settings, warm_search=warm)) as client:
        assert client.get("/health").status_code == 200
        # Generous: the warm-up thread first opens the vector index (the embedding model, seconds on a
        # busy 2-core CI machine); what is asserted is that it runs when asked and only then.
        assert warmed.wait(60 if warm else 0.5) is warm


def test_loading_the_model_leaves_the_process_online(tmp_path: Path) -> None:
    """A `serve` process loads the model on its first search and later runs scheduled Hugging Face
    harvests in the same process: loading the model must not switch huggingface_hub offline."""
    script = textwrap.dedent("""
        import json, os
        from modelport.index.embeddings import SentenceTransformerEmbedder
        vec = SentenceTransformerEmbedder().embed(["a model card"])
        import huggingface_hub.constants as c
        print(json.dumps({"dim": int(vec.shape[1]), "offline": bool(c.HF_HUB_OFFLINE),
                          "env": {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}}))
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=300, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"dim": 384, "offline": False, "env": {"HF_HUB_OFFLINE": None, "TRANSFORMERS_OFFLINE": None}}
