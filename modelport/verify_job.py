"""`modelport verify`: numerically check compatibility cells of records whose artifacts are
reachable (MLflow registries to begin with), and store the results with the record."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Collection
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


def stamp(entry: CompatibilityEntry, rec: ModelRecord) -> CompatibilityEntry:
    """What a verified point says beside the numbers (schema/record.py VerifiedPoint): where and
    when it ran, and on which artifacts."""
    import platform
    from datetime import UTC, datetime

    from modelport.schema.compat import artifact_signature

    entry.measurements.setdefault("platform", f"{platform.system()} {platform.machine()}, CPUExecutionProvider")
    entry.measurements.setdefault("verified_at", datetime.now(UTC).isoformat(timespec="seconds"))
    entry.measurements.setdefault("artifacts", artifact_signature(rec.artifacts))
    return entry


def verify(pipeline: Pipeline, source: str | None = None, limit: int | None = None,
           progress: Callable[[ModelRecord], None] | None = None,
           only: Collection[str] | None = None) -> VerifyReport:
    """`only`: record ids to check (default: every reachable record of `source`)."""
    import mlflow.artifacts

    from modelport.schema.verify import verify_record

    report = VerifyReport()
    todo = [r for r in candidates(pipeline, source) if only is None or r.id in only]
    for rec in todo[:limit]:
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
            entry = stamp(verify_record(rec, local), rec)
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
