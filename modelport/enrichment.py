"""The enrichment stage of a harvest, for sources whose listing gives most of a record and per-record
calls the rest (`Enrichable` in harvesters/base.py: the Hugging Face Hub's `model_info` and cards).

The pipeline stores and indexes the listing's records first; then this stage asks the catalog which
records need enrichment (never enriched, or enriched at another revision), in the source's priority
order, hands them to the source within its plan (how many, how long) and stores what comes back in
batches, each committed with its enrichment rows — so a crash resumes with the records not yet done,
and later listings of the same revision get the extras back (`with_enrichment`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from modelport.errors import describe
from modelport.harvesters.base import EnrichmentPlan, EnrichTarget, Gone, Skipped, SourceRecord
from modelport.index.catalog import Catalog
from modelport.job_report import BAD_RECORD, JobReport, RecordFailure, is_bad_record
from modelport.schema.identity import record_id
from modelport.schema.record import ModelRecord

if TYPE_CHECKING:
    from modelport.pipeline import Pipeline

log = logging.getLogger("modelport.enrichment")

ENRICH_BATCH = 50  # records per commit: what a crash can cost in repeated requests


def with_enrichment(catalog: Catalog, source: Any, rid: str, item: SourceRecord) -> SourceRecord:
    """A listing record with the extras stored for the same revision merged back in (else as it is)."""
    stored = catalog.get_enrichment(rid)
    if stored is not None and stored[0] == item.etag:
        merged: SourceRecord = source.merge_enrichment(item, stored[1])
        return merged
    return item


def enrich_records(pipeline: Pipeline, source: Any, plan: EnrichmentPlan, report: JobReport,
                   progress: Callable[[JobReport], None] | None, listed: set[str] | None = None) -> None:
    """Run the stage for one source within `plan`, counting into `report`. "Gone" answers (a 404 from
    `model_info`) go through the pipeline's fail-safe with listing deletions; a record this run just
    listed is not taken for gone on one such answer, and one held back is asked again later."""
    catalog = pipeline.catalog
    targets = catalog.enrichment_queue(source.name, plan.priority, plan.max_models)
    for k in ("enriched", "enrich_failed", "enrich_gone"):
        report.counts.setdefault(k, 0)
    if not targets:
        return
    deadline = time.monotonic() + plan.time_limit_s if plan.time_limit_s else None
    batch: list[ModelRecord] = []
    stored: dict[str, str] = {}
    rows: list[tuple[str, str, str | None, dict[str, Any]]] = []
    gone: dict[str, str] = {}
    asked = 0

    def failed(rid: str, ref: str, reason: str) -> None:
        catalog.enrichment_failed(rid, source.name, reason)
        report.counts["enrich_failed"] += 1
        report.error(ref, f"enrichment: {reason}")

    def commit() -> Any:
        with catalog.transaction() as cat:
            res = cat.upsert_many(batch, stored=stored)
            cat.set_enrichments([r for r in rows if r[0] in stored])
        return res

    def flush() -> None:
        if not batch:
            return
        try:
            res = commit()
        except Exception as e:
            if not is_bad_record(e):
                raise
            # A record the catalog refuses is quarantined (as in the listing); the rest are stored.
            pipeline._drop_unstorable(batch, stored, e)
            res = commit()
        report.counts["enriched"] += len(stored)
        pipeline._project_records([r for r in {r.id: r for r in batch}.values() if r.id in res.revs], [],
                                  list(res.revs.items()), fresh=set(res.inserted), commit=False)
        batch.clear()
        stored.clear()
        rows.clear()
        if progress:
            progress(report)

    events = source.enrich([EnrichTarget(local_id=local, etag=etag) for _, local, etag in targets])
    try:
        for ev in events:
            if isinstance(ev, SourceRecord):
                asked += 1
                rid = record_id(source.name, ev.local_id)
                try:
                    record, text = pipeline.prepare(source, ev)
                except BAD_RECORD as e:
                    failed(rid, rid, f"malformed: {describe(e)}")
                    continue
                except Exception as e:  # our bug, shown with the record that triggered it
                    raise RecordFailure("normalizing", rid, e) from e
                stored[record.id] = text
                batch.append(record)
                rows.append((rid, source.name, ev.etag, ev.enrichment or {}))
                if len(batch) >= ENRICH_BATCH:
                    flush()
            elif isinstance(ev, Skipped):
                asked += 1
                failed(record_id(source.name, ev.ref), ev.ref, ev.reason)
                if progress:
                    progress(report)
            elif isinstance(ev, Gone):
                asked += 1
                gone[record_id(source.name, ev.local_id)] = ev.reason
            if deadline is not None and time.monotonic() >= deadline:
                log.info("%s: enrichment stopped at its time limit after %d models", source.name, asked)
                break
    finally:
        close = getattr(events, "close", None)
        if close:
            close()
        flush()
        pipeline._commit_pending()
    if gone:
        before = report.counts["tombstoned"]
        pipeline._tombstone_carefully(source.name, listed or set(), None, report, gone, listing=False)
        report.counts["enrich_gone"] += report.counts["tombstoned"] - before
        for rid in gone.keys() & catalog.live_ids(source.name):  # held back: asked again, after the others
            catalog.enrichment_failed(rid, source.name, f"answered as gone ({gone[rid]}); not tombstoned")


__all__ = ["enrich_records", "with_enrichment", "ENRICH_BATCH"]
