"""`modelport verify`: numerically check compatibility cells of records whose artifacts are
reachable (MLflow registries to begin with), and store the results with the record."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from modelport.pipeline import Pipeline
from modelport.schema.record import CompatibilityEntry, ModelRecord

log = logging.getLogger(__name__)


@dataclass
class VerifyReport:
    checked: int = 0  # models actually run (verified + failed); skipped ones are listed in `skipped`
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


def _client_uri(pipeline: Pipeline, rec: ModelRecord) -> str | None:
    """The tracking URI to download with: the configured one (it may carry credentials, which the
    record never does) when the record's source is configured, else the one the record names."""
    for c in pipeline.settings.sources:
        if c.name == rec.source and c.kind == "mlflow":
            return str(c.plain_options().get("tracking_uri") or "") or None
    return rec.source_facts.get("tracking_uri")


def trusted_sources(pipeline: Pipeline) -> set[str]:
    """Sources whose pickled models `verify` may load (in the sandbox): `trusted = true` in their
    `[[sources]]` table."""
    return {c.name for c in pipeline.settings.sources if c.trusted}


def verify(pipeline: Pipeline, source: str | None = None, limit: int | None = None,
           progress: Callable[[ModelRecord], None] | None = None,
           only: Collection[str] | None = None, trusted: Collection[str] | None = None) -> VerifyReport:
    """`only`: record ids to check (default: every reachable record of `source`). `trusted`: sources
    whose pickled models may be loaded, in the sandbox (default: those the configuration marks).
    ONNX and skops models (our allow-list) are verified from any source; a pickle from an untrusted
    source is skipped with the reason, never loaded."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    from modelport.harvesters.artifact_download import CannotCap, OverCap, download_tree
    from modelport.schema.verify import code_execution_needed, verify_record
    from modelport.verify_sandbox import SandboxUnavailable, verify_in_sandbox

    trusted = trusted_sources(pipeline) if trusted is None else set(trusted)
    cap = pipeline.settings.max_download_bytes
    report = VerifyReport()
    todo = [r for r in candidates(pipeline, source) if only is None or r.id in only]
    for rec in todo[:limit]:
        if progress:
            progress(rec)
        known = sum(a.size_bytes or 0 for a in rec.artifacts)
        if known > cap:
            report.skipped.append(f"{rec.id}: artifacts of {known} bytes exceed max_download_bytes ({cap})")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            # Capped: sizes the listing gives are checked first, unknown ones streamed and stopped at
            # the cap (harvesters/artifact_download.py); an aborted download leaves nothing behind.
            try:
                uri = _client_uri(pipeline, rec)
                repo = get_artifact_repository(rec.source_facts["download_uri"], tracking_uri=uri, registry_uri=uri)
                local = download_tree(repo, Path(tmp) / "model", cap)
            except (OverCap, CannotCap) as e:
                report.skipped.append(f"{rec.id}: not downloaded: {e} (max_download_bytes)")
                continue
            except Exception as e:  # unreachable artifacts: nothing was checked, so nothing is claimed
                report.skipped.append(f"{rec.id}: cannot download artifacts: {e}")
                continue
            why = code_execution_needed(local)
            if why is None:
                entry = verify_record(rec, local)
            elif rec.source not in trusted:
                report.skipped.append(f"{rec.id}: not loaded: {why}; source {rec.source!r} is not marked trusted")
                continue
            else:
                try:
                    entry = verify_in_sandbox(rec, local)
                except SandboxUnavailable as e:
                    report.skipped.append(f"{rec.id}: not loaded: {why}, and {e}")
                    continue
            entry = stamp(entry, rec)
        report.results[rec.id] = entry
        report.checked += 1  # only a model that was run counts; a skip is in `skipped` with its reason
        if entry.status == "verified":
            report.verified += 1
        else:
            report.failed += 1
        # The catalog re-derives the record's matrix with this result when it is read, and puts the
        # record back in the projections' outbox.
        pipeline.catalog.set_verifications(rec.id, [entry])
    pipeline.project()
    return report
