"""The catalog the web tests serve: the search fixture corpus plus a small family of records with
lineage (a base, fine-tunes, an adapter, a quantization), versions, evaluations and a model card,
stored, indexed and projected into the graph the way a harvest does."""

from __future__ import annotations

import gzip
from pathlib import Path

from modelport.pipeline import Pipeline
from modelport.schema.identity import record_iri
from modelport.schema.record import (
    BaseModelLink,
    CardSections,
    CompatibilityEntry,
    EvaluationResult,
    Evidence,
    ModelRecord,
)
from modelport.schema.versions import VersionRange
from modelport.settings import Settings

CORPUS = Path(__file__).parent / "fixtures" / "search" / "corpus.jsonl.gz"
BASE_ID = "huggingface:acme/vit-base"
FINETUNES = [f"huggingface:acme/vit-ft-{i}" for i in range(1, 4)]
ADAPTER = "huggingface:acme/vit-lora"
QUANT = "huggingface:acme/vit-base-gguf"
VERSIONS = [f"mlflow-prod:churn-model/{v}" for v in (1, 2, 3)]


# What `modelport verify` stores for a model it ran in ONNX Runtime 1.20.1 (schema/verify.py, verify_job.stamp).
VERIFIED = CompatibilityEntry(
    runtime="onnxruntime", format="onnx", status="verified", confidence="high", precision="fp32",
    version_range=VersionRange(min="1.20.1", max="1.20.1", max_inclusive=True),
    evidence=[Evidence(kind="verification", detail="ran on 8 random inputs in ONNX Runtime", artifact="model.onnx")],
    measurements={"onnxruntime_version": "1.20.1", "max_abs_diff": 3e-7, "tolerance": {"atol": 1e-4, "rtol": 1e-3},
                  "platform": "Linux x86_64, CPUExecutionProvider", "verified_at": "2026-12-01T10:00:00+00:00"})


def corpus() -> list[ModelRecord]:
    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        return [ModelRecord.model_validate_json(line) for line in f]


def family(records: list[ModelRecord]) -> list[ModelRecord]:
    onnx = next(r for r in records if r.id == "huggingface:image-onnx-016")
    gguf = next(r for r in records if any(a.format == "gguf" for a in r.artifacts))
    mlflow = next(r for r in records if r.source == "mlflow-prod")

    def hf(rid: str, like: ModelRecord, **kw: object) -> ModelRecord:
        local = rid.split(":", 1)[1]
        return like.model_copy(deep=True, update={
            "id": rid, "iri": "", "local_id": local, "name": local.split("/")[-1], "compatibility": [],
            "latencies": [], **kw})

    base = hf(BASE_ID, onnx, description="A vision transformer <b>base</b> model </script> for image segmentation.",
              languages=["en"], training_datasets=["ade20k"],
              evaluations=[EvaluationResult(metric="miou", value=0.9302, metric_name="mIoU", dataset="ade20k",
                                            dataset_name="ADE20K", split="validation", provenance="model-index",
                                            source="https://example.org/paper")],
              card=CardSections(intended_use="Segmenting street scenes.", limitations="Not for medical images."))
    base.provenance.source_url = "https://huggingface.co/acme/vit-base"
    fts = [hf(rid, onnx, base_models=[BaseModelLink(ref=BASE_ID, relation="finetune")]) for rid in FINETUNES]
    adapter = hf(ADAPTER, onnx, base_models=[BaseModelLink(ref=BASE_ID, relation="adapter")])
    quant = hf(QUANT, gguf, base_models=[BaseModelLink(ref=BASE_ID, relation="quantized")])
    versions = [mlflow.model_copy(deep=True, update={
        "id": rid, "iri": "", "local_id": rid.split(":", 1)[1], "name": "churn-model", "version": rid[-1],
        "version_group": "mlflow-prod:churn-model", "compatibility": [], "latencies": []}) for rid in VERSIONS]
    return [base, *fts, adapter, quant, *versions]


def build(data_dir: Path, base_iri: str = "http://web.test") -> Settings:
    settings = Settings(data_dir=data_dir, base_iri=base_iri, embeddings=False)
    records = corpus()
    records += family(records)
    for r in records:  # what a harvest does: IRIs under the configured base
        r.iri = record_iri(base_iri, r.id)
    p = Pipeline(settings)
    with p.catalog.transaction():
        p.catalog.upsert_many(records)
    p.catalog.set_verifications(BASE_ID, [VERIFIED])
    p.project()
    p.close()
    return settings


CHROMIUM = "/usr/bin/chromium"
# No background traffic, no GPU, no sandbox (containers), no first-run or sync machinery.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
