"""`modelport verify`: numerically check compatibility cells of records whose artifacts are
reachable (MLflow registries to begin with), and store the results with the record."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

from modelport.pipeline import Pipeline
from modelport.schema.record import CompatibilityEntry, ModelRecord

log = logging.getLogger(__name__)


@dataclass
class VerifyReport:
    checked: int = 0
    verified: int = 0
    failed: int = 0
    skipped: list[str] = field(default_factory=list)
    results: dict[str, CompatibilityEntry] = field(default_factory=dict)


def candidates(pipeline: Pipeline, source: str | None) -> list[ModelRecord]:
    return [r for r in pipeline.catalog.iter_records(source=source)
            if r.source_kind == "mlflow" and r.source_facts.get("download_uri")]


def verify(pipeline: Pipeline, source: str | None = None, limit: int | None = None,
           progress: Callable[[ModelRecord], None] | None = None) -> VerifyReport:
    import mlflow.artifacts

    from modelport.schema.verify import verify_record

    report = VerifyReport()
    for rec in candidates(pipeline, source)[:limit]:
        if progress:
            progress(rec)
        report.checked += 1
        with tempfile.TemporaryDirectory() as tmp:
            try:
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=rec.source_facts["download_uri"], dst_path=tmp,
                    tracking_uri=rec.source_facts.get("tracking_uri"))
            except Exception as e:  # unreachable artifacts: nothing was checked, so nothing is claimed
                report.skipped.append(f"{rec.id}: cannot download artifacts: {e}")
                continue
            entry = verify_record(rec, local)
        report.results[rec.id] = entry
        if entry.status == "verified":
            report.verified += 1
        else:
            report.failed += 1
        # The catalog re-derives the record's matrix with this result when it is read, and puts the
        # record back in the projections' outbox.
        pipeline.catalog.set_verifications(rec.id, [entry])
    pipeline.project()
    return report
