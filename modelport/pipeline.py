"""The one write path: source events → normalize → enrich → catalog (the truth) → projections.

Records and checkpoints are committed together, so a crash or Ctrl-C resumes from the last
committed checkpoint with nothing lost or duplicated. Projections (search index, RDF graph, and
whatever else registers) are fed from the catalog's outbox, so they can always catch up or be
rebuilt by `reindex`.

The job report and failure kinds (job_report.py), the projections (projections.py), the graph writer
that follows a harvest (graph_feeder.py) and the collector tuning (gc_tuning.py) are modules of their
own. Over ~500 lines because the `Pipeline` class is kept whole: harvest, quarantine, isolation of bad
records and the projection drains share its pending-commit state and its catalog transactions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from modelport.enrichment import enrich_records, with_enrichment
from modelport.errors import describe
from modelport.gc_tuning import collector_tuned_for_throughput
from modelport.graph_feeder import GraphFeeder
from modelport.harvesters.base import (
    Checkpoint,
    Enrichable,
    Gone,
    HarvestMode,
    ListingComplete,
    Skipped,
    Source,
    SourceRecord,
)
from modelport.harvesters.bounded import bounded
from modelport.index.catalog import CatalogIOError, Outbox
from modelport.index.search import SearchBackend, ensure_current
from modelport.job_report import (
    BAD_RECORD,
    MAX_ERROR_GROUPS,
    MAX_ERROR_SAMPLES,
    JobReport,
    RecordFailure,
    error_group,
    is_bad_record,
)
from modelport.projections import GraphBatch, GraphProjection, Projection, SearchProjection, merge_batches
from modelport.schema.identity import record_id, record_iri
from modelport.schema.record import ModelRecord
from modelport.schema.redact import redact_text, redact_url, scrub
from modelport.settings import Settings
from modelport.stores import Stores

if TYPE_CHECKING:
    from modelport.index.vectors import VectorProjection

# The job report, the failure kinds and the projections lived in this module, and are imported from
# it (the CLI, the scheduler, enrichment, tests, bench): re-exported.
__all__ = ["BAD_RECORD", "MAX_ERROR_GROUPS", "MAX_ERROR_SAMPLES", "GraphBatch", "GraphProjection", "JobReport",
           "Pipeline", "Projection", "RecordFailure", "SearchProjection", "error_group", "is_bad_record",
           "scrub_record"]

log = logging.getLogger("modelport.pipeline")


class Pipeline:
    """The write path over the data directory's stores (modelport/stores.py): pass the `Stores` the
    read side uses, or it opens its own."""

    def __init__(self, settings: Settings | None = None, stores: Stores | None = None) -> None:
        self.stores = stores if stores is not None else Stores(settings)
        self.settings = self.stores.settings
        self.catalog = self.stores.catalog
        self.kb = self.stores.kb
        self._projections: list[Projection] | None = None
        self._graph_projection: GraphProjection | None = None
        # Applied to the search projections but not committed yet: (id, hash) to mark clean, and ids gone.
        self._pending: list[tuple[str, int]] = []  # (id, revision) projected, not yet committed
        self._last_commit = time.monotonic()
        self.extra_projections: list[Projection] = []
        self._feeder: GraphFeeder | None = None  # the graph writer of the running harvest
        self._report: JobReport | None = None  # the running harvest's, to count quarantined records in

    # -- stores (owned by `Stores`, opened on first use) ----------------------------------------
    @property
    def search(self) -> SearchBackend:
        return self.stores.search

    @property
    def graph(self) -> Any:
        return self.stores.graph

    @property
    def vectors(self) -> VectorProjection | None:
        """The dense-vector projection, or None (`vectors_unavailable` says why): see Stores.vectors."""
        return self.stores.vectors

    @property
    def vectors_unavailable(self) -> str | None:
        return self.stores.vectors_unavailable

    @property
    def projections(self) -> list[Projection]:
        """The projections fed with each harvested batch, from the `search` outbox."""
        if self._projections is None:
            # Vectors come after search: they read the row numbers the search projection assigned.
            vectors = [self.vectors] if self.vectors is not None else []
            self._projections = [SearchProjection(self.search), *vectors, *self.extra_projections]
        return self._projections

    @property
    def graph_projection(self) -> GraphProjection:
        """The RDF graph, fed from the `graph` outbox once a harvest's records are searchable."""
        if self._graph_projection is None:
            self._graph_projection = GraphProjection(self.graph, self.settings.base_iri)
        return self._graph_projection

    def graph_lag_s(self) -> float:
        """How long the oldest record this process stored but has not yet written to the graph has
        waited, in seconds (0 when the graph has every record a running harvest stored)."""
        feeder = self._feeder
        return feeder.lag_s() if feeder is not None else 0.0

    def close(self) -> None:
        self._projections = self._graph_projection = None
        self.stores.close()

    # -- normalize + enrich --------------------------------------------------------------------
    def prepare(self, source: Source, item: SourceRecord) -> tuple[ModelRecord, str]:
        """The enriched record for the projections, and the normalized record's JSON for the catalog
        (which stores what the source says and derives the rest when read)."""
        record = scrub_record(source.normalize(item))
        # The one place a record gets its IRI: sources never see the deployment's base IRI.
        record.iri = record_iri(self.settings.base_iri, record.id)
        record.compatibility = []
        stored = record.with_hash().stored_json()
        # Derived as on every catalog read (stored verification results included), so a harvested
        # record and a read one look the same.
        return self.catalog.hydrate([record])[0], stored

    # -- harvest -------------------------------------------------------------------------------
    def harvest(self, source: Source, mode: HarvestMode = "incremental", limit: int | None = None,
                batch_size: int = 500, progress: Callable[[JobReport], None] | None = None,
                project_graph: bool = True, enrich: bool = True) -> JobReport:
        """Run one harvest: records are stored and searchable batch by batch; then, for a source
        with an enrichment stage (and unless `enrich` is false), the records that need it are
        enriched within the source's plan; then (unless `project_graph` is false, e.g. to measure
        the phases apart) the RDF graph catches up."""
        # An index emptied on open (its layout or the KB changed) is rebuilt before new records go in;
        # otherwise only the records this run changes would come back.
        ensure_current(self.search, self.reindex)
        with collector_tuned_for_throughput():
            return self._harvest(source, mode, limit, batch_size, progress, project_graph, enrich)

    def _harvest(self, source: Source, mode: HarvestMode, limit: int | None, batch_size: int,
                 progress: Callable[[JobReport], None] | None, project_graph: bool, enrich: bool = True
                 ) -> JobReport:
        job_id = self.catalog.start_job(source.name, source.kind, mode, {"limit": limit})
        report = JobReport(job_id=job_id, source=source.name, mode=mode)
        seen: set[str] = set()
        batch: list[ModelRecord] = []
        stored: dict[str, str] = {}
        listing_complete = False
        listed: int | None = None
        truncated = False
        gone_ids: dict[str, str] = {}  # id -> reason, from Gone events
        self._report = report
        # The graph follows the harvest batch by batch (written on a thread of its own), so it lags by
        # about a batch instead of by the whole harvest.
        feeder = self._feeder = GraphFeeder(self.catalog, self.graph_projection) if project_graph else None

        def flush(checkpoint: dict[str, Any] | None = None) -> None:
            try:
                with self.catalog.transaction() as cat:
                    res = cat.upsert_many(batch, stored=stored)
                    if checkpoint is not None:
                        cat.set_checkpoint(source.name, checkpoint)
            except Exception as e:
                if not is_bad_record(e):
                    raise
                # Some record the store refuses: set it aside, store the rest with the checkpoint.
                self._drop_unstorable(batch, stored, e)
                with self.catalog.transaction() as cat:
                    res = cat.upsert_many(batch, stored=stored)
                    if checkpoint is not None:
                        cat.set_checkpoint(source.name, checkpoint)
            report.counts["inserted"] += len(res.inserted) + len(res.revived)
            report.counts["updated"] += len(res.updated)
            report.counts["unchanged"] += len(res.unchanged)
            # The records are in hand: project them without reading them back; the outbox only
            # has to catch what a crash left behind.
            live = [r for r in {r.id: r for r in batch}.values() if r.id in res.revs]
            self._project_records(live, [], list(res.revs.items()), fresh=set(res.inserted), commit=False)
            if feeder is not None:
                feeder.feed(live, list(res.revs.items()), set(res.inserted))
            batch.clear()
            stored.clear()
            if progress:
                progress(report)

        # What a crashed run left in the outbox goes first; from here on this run projects its own
        # batches and commits them every `search_commit_interval_s`.
        self.project(graph=False)
        # Records enriched before: a listing of the same revision gets their extras back.
        enrichable = isinstance(source, Enrichable)
        enriched = self.catalog.enriched_ids(source.name) if enrichable else set()
        events = source.events(mode, self.catalog.get_checkpoint(source.name))
        try:
            for ev in events:
                if isinstance(ev, SourceRecord):
                    if limit is not None and report.counts["seen"] >= limit:
                        truncated = True
                        break
                    report.counts["seen"] += 1
                    rid = record_id(source.name, ev.local_id)
                    seen.add(rid)
                    gone_ids.pop(rid, None)
                    if rid in enriched and ev.enrichment is None:
                        ev = with_enrichment(self.catalog, source, rid, ev)
                    try:
                        record, text = self.prepare(source, ev)
                        stored[record.id] = text
                        batch.append(record)
                        report.unknown_terms.add(record)
                    except BAD_RECORD as e:
                        # A payload that does not fit the schema is one bad record, not a failed
                        # harvest; a mapper bug (e.g. a bare ValueError) fails the job below.
                        report.counts["skipped"] += 1
                        report.error(rid, f"malformed: {describe(e, 500)}")
                        log.warning("skipped %s: %s", rid, describe(e, 500))
                    except Exception as e:  # our bug, shown with the record that triggered it
                        raise RecordFailure("normalizing", rid, e) from e
                    if len(batch) >= batch_size:
                        flush()
                elif isinstance(ev, Checkpoint):
                    flush(ev.state)
                elif isinstance(ev, Skipped):
                    report.counts["skipped"] += 1
                    report.error(ev.ref, ev.reason)
                    seen.add(record_id(source.name, ev.ref))  # still upstream: never tombstone it
                    log.warning("skipped %s: %s", ev.ref, ev.reason)
                elif isinstance(ev, Gone):
                    # Held until the end: "gone" answers count against the same fail-safe ratio as
                    # records missing from a complete listing (a proxy answering 404 for everything
                    # must not delete everything).
                    rid = record_id(source.name, ev.local_id)
                    if rid not in seen:
                        gone_ids[rid] = ev.reason
                elif isinstance(ev, ListingComplete):
                    listing_complete, listed = True, ev.listed
            flush()
            self._commit_pending()
            if feeder is not None:
                feeder.close()
            self._tombstone_carefully(source.name, seen, listed, report, gone_ids,
                                      listing=listing_complete and not truncated)
            plan = source.enrichment_plan() if enrich and isinstance(source, Enrichable) else None
            if plan is not None:
                if project_graph:  # the listing's records reach SPARQL before enrichment starts
                    self.project_graph()
                enrich_records(self, source, plan, report, progress, seen)
            if project_graph:  # the job is done when its records are in the graph too
                self.project_graph()
            report.status = "partial" if report.errors else "ok"
        except KeyboardInterrupt:
            flush()
            self._commit_pending()
            report.status = "interrupted"
            report.error(source.name, "interrupted; the next run resumes from the last checkpoint")
            raise
        except Exception as e:
            # Keep every record read so far: the next run resumes from the last checkpoint (and what
            # the projections did not commit stays in the outbox for the next run).
            try:
                flush()
                self._commit_pending()
            except Exception as again:  # noqa: BLE001 — the first error is the one to report
                log.error("could not store the last batch of %s: %s", source.name, again)
            report.status = "failed"
            report.error(source.name, describe(e, 500))
            log.error("harvest of %s failed: %s", source.name, e)
            raise
        finally:
            if feeder is not None:
                feeder.close()  # never leave a write running behind a closed store
            self._feeder = None
            self._report = None
            close = getattr(events, "close", None)
            if close:
                close()
            try:
                self.catalog.finish_job(job_id, report.status, report.counts, report.errors,
                                        report.unknown_terms.summary())
            except Exception as again:  # noqa: BLE001 — e.g. the disk is full: the job's own error goes on
                log.error("could not record the end of job %s: %s", job_id, again)
        return report

    def _tombstone_carefully(self, source: str, seen: set[str], listed: int | None, report: JobReport,
                             gone: dict[str, str], listing: bool) -> None:
        """Tombstone what the source said is gone and (after a complete listing) what it no longer
        lists, unless together they exceed the fail-safe share of the source's live records."""
        live = self.catalog.live_ids(source)
        missing = (live - seen) if listing else set()
        said_gone = {rid: why for rid, why in gone.items() if rid in live and rid not in seen}
        if not missing and not said_gone:
            return
        if listing and missing and (not seen or listed == 0):
            report.error(source, f"listing was empty; refusing to tombstone {len(missing)} records")
            missing = set()
        total = len(missing | said_gone.keys())
        ratio = total / max(len(live), 1)
        if ratio > self.settings.tombstone_failsafe_ratio:
            report.error(source, f"fail-safe: {len(missing)} records missing from the listing and "
                                 f"{len(said_gone)} answered as gone, {total} of {len(live)} live records "
                                 f"({ratio:.0%} > {self.settings.tombstone_failsafe_ratio:.0%}); nothing tombstoned")
            return
        done = [*self.catalog.tombstone(sorted(missing - said_gone.keys()), "not in the source's complete listing")]
        for rid, why in sorted(said_gone.items()):
            done += self.catalog.tombstone([rid], why)
        report.counts["tombstoned"] += len(done)
        if done:
            self.project(graph=False)  # the graph catches up at the end of the harvest

    # -- quarantine ------------------------------------------------------------------------------
    def _quarantine(self, rid: str, stage: str, error: BaseException, rev: int | None = None,
                    outbox: Outbox | None = None) -> None:
        reason = describe(error, 500)
        report = self._report
        self.catalog.quarantine(rid, stage, reason, rev=rev, job_id=report.job_id if report else None,
                                outbox=outbox)
        if report is not None:
            report.counts["quarantined"] += 1
            report.error(rid, f"quarantined ({stage}): {reason}", stage=stage)
        log.warning("quarantined %s (%s): %s", rid, stage, reason)

    def _drop_unstorable(self, batch: list[ModelRecord], stored: dict[str, str], first: BaseException) -> None:
        """Find the records the catalog refuses (each tried alone in a transaction rolled back) and take
        them out of the batch."""
        bad: list[ModelRecord] = []
        for r in batch:
            try:
                with self.catalog.transaction() as cat:
                    cat.upsert_many([r], stored={r.id: stored[r.id]} if r.id in stored else None)
                    raise _Probe
            except _Probe:
                continue
            except Exception as e:
                if not is_bad_record(e):
                    raise RecordFailure("storing", r.id, e) from e
                bad.append(r)
                self._quarantine(r.id, "store", e)
        if not bad:
            raise first
        ids = {r.id for r in bad}
        batch[:] = [r for r in batch if r.id not in ids]
        for rid in ids:
            stored.pop(rid, None)

    def _apply_isolating(self, stage: str, apply: Callable[[list[ModelRecord], list[str]], None],
                         live: list[ModelRecord], gone: list[str], revs: dict[str, int],
                         outbox: Outbox) -> set[str]:
        """Apply a batch; if it fails because of some record's content, bisect it to find the records
        that fail alone, quarantine them (reason recorded, outbox flag cleared) and apply the rest.
        Returns the quarantined ids. Projections are idempotent per record, so a retried half does no
        harm."""
        try:
            apply(live, gone)
            return set()
        except Exception as e:
            if _environmental(e):  # the disk, the network: no record to blame
                raise
            first = e  # the record's content, or a bug some record triggers: find which record
        if gone:
            apply([], gone)  # removals carry no content: a failure there is not a record's fault
        bad: set[str] = set()

        def attempt(part: list[ModelRecord], error: BaseException | None) -> None:
            if error is None:
                try:
                    apply(part, [])
                    return
                except Exception as e:
                    if _environmental(e):
                        raise
                    error = e
            if len(part) == 1:
                if not is_bad_record(error):
                    raise RecordFailure(stage, part[0].id, error) from error
                bad.add(part[0].id)
                self._quarantine(part[0].id, stage, error, rev=revs.get(part[0].id), outbox=outbox)
                return
            mid = len(part) // 2
            attempt(part[:mid], None)
            attempt(part[mid:], None)

        if not live:
            raise first
        attempt(live, first)
        return bad

    # -- projections -----------------------------------------------------------------------------
    def project(self, batch: int = 1000, graph: bool = True) -> int:
        """Bring the projections up to date with the catalog (the graph too unless `graph` is false);
        returns how many records moved."""
        moved = self._project_search(batch)
        if graph:
            moved.update(self.project_graph())
        return len(moved)

    def _project_search(self, batch: int) -> set[str]:
        moved: set[str] = set()
        for items, live, gone in self._outbox("search", batch):
            # commits every search_commit_interval_s
            self._project_records(live, gone, [(rid, rev) for rid, _, rev in items], commit=False)
            moved.update(rid for rid, _, _ in items)
        self._commit_pending()
        return moved

    def project_graph(self, batch: int = 1000) -> set[str]:
        """Drain the graph's outbox. Serializing a batch (Python) runs while the previous one is
        written (Oxigraph, without the GIL), so the phase takes about as long as the store needs.
        Larger batches need ~15 % less CPU per record (fewer RocksDB ingests) but Oxigraph's bulk
        loader holds each one in memory: at 4,000 records the 100k benchmark peaked at 3.5 GB RSS
        against 1.4 GB at 1,000, so 1,000 it is."""
        with collector_tuned_for_throughput():
            return self._project_graph(batch)

    def _project_graph(self, batch: int) -> set[str]:
        from concurrent.futures import ThreadPoolExecutor

        moved: set[str] = set()
        pending: tuple[Future[None], list[tuple[str, int]], list[ModelRecord], list[str]] | None = None
        total, started = self.catalog.dirty_count("graph"), time.monotonic()
        projection = self.graph_projection

        def finish() -> None:
            nonlocal pending
            if pending is not None:
                future, revs, live, gone = pending
                pending = None
                try:
                    future.result()  # a failed write leaves its records dirty: the next drain retries
                except Exception as e:
                    if _environmental(e):
                        raise
                    # Some record's triples are refused: write the batch again, isolating them.
                    self._apply_isolating("graph", lambda lv, gn: projection.write(projection.serialize(lv, gn)),
                                          live, gone, dict(revs), "graph")
                self.catalog.mark_clean(revs, outbox="graph")

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="graph-writer") as pool:
            try:
                for items, live, gone in self._outbox("graph", batch):
                    revs = [(rid, rev) for rid, _, rev in items]
                    parts: list[GraphBatch] = []

                    def serialize(lv: list[ModelRecord], gn: list[str], parts: list[GraphBatch] = parts) -> None:
                        parts.append(projection.serialize(lv, gn))

                    bad = self._apply_isolating("graph", serialize, live, gone, dict(revs), "graph")
                    live = [r for r in live if r.id not in bad]
                    work = merge_batches(parts)
                    finish()
                    pending = (pool.submit(projection.write, work), revs, live, gone)
                    moved.update(rid for rid, _, _ in items)
                    if total >= 10 * batch:
                        log.info("graph: %d of %d records (%.0f/s)", len(moved), total,
                                 len(moved) / max(time.monotonic() - started, 1e-9))
                finish()
            finally:
                if pending is not None:
                    pending[0].exception()  # wait: never leave a write running behind a closed store
        projection.commit()
        return moved

    def _outbox(self, outbox: Outbox, batch: int
                ) -> Iterator[tuple[list[tuple[str, str | None, int]], list[ModelRecord], list[str]]]:
        """Batches of an outbox: the rows, their live records derived as on any read, the ids gone.
        Paged by id, since a batch stays flagged until its projection has committed it."""
        after: str | None = None
        while items := self.catalog.dirty(limit=batch, outbox=outbox, after=after):
            after = items[-1][0]
            live = self.catalog.hydrate(
                [ModelRecord.model_validate_json(data) for _, data, _ in items if data is not None])
            yield items, live, [rid for rid, data, _ in items if data is None]

    def _project_records(self, live: list[ModelRecord], gone: list[str], revisions: list[tuple[str, int]],
                         fresh: set[str] | frozenset[str] = frozenset(), commit: bool = True) -> None:
        """Apply a batch to the search projections; `revisions` are the catalog revisions (id, rev)
        it holds, whose outbox flags are cleared at the commit. The commit can wait: a harvest
        commits every `search_commit_interval_s` seconds, like a search engine's refresh interval,
        instead of after every batch (a commit costs ~30 ms)."""
        if live or gone:
            revs = dict(revisions)
            for p in self.projections:
                def apply(lv: list[ModelRecord], gn: list[str], p: Projection = p,
                          whole: list[ModelRecord] = live) -> None:
                    # A retried part may be half applied already: no id is "fresh" then.
                    p.apply(lv, gn, fresh if lv is whole else frozenset())

                bad = self._apply_isolating(p.name, apply, live, gone, revs, "search")
                if bad:  # later projections (vectors read the search rows) skip them too
                    live = [r for r in live if r.id not in bad]
            self._pending += revisions
        if commit or time.monotonic() - self._last_commit >= self.settings.search_commit_interval_s:
            self._commit_pending()

    def _commit_pending(self) -> None:
        if self._pending:
            for p in self.projections:
                p.commit()
            self.catalog.mark_clean(self._pending)
            self._pending = []
        self._last_commit = time.monotonic()

    def reindex(self, batch: int = 1000) -> int:
        """Rebuild every projection from the catalog. A search server's index is rebuilt beside the one
        it serves and switched to atomically at the end, so its searches never see a half-built index;
        if the rebuild fails, the old index keeps serving and the records stay in the outbox."""
        staged = [p for p in self.projections if isinstance(p, SearchProjection) and p.stages_rebuild]
        begun: list[SearchProjection] = []
        try:
            for p in staged:
                p.begin_rebuild()
                begun.append(p)
            for q in [*self.projections, self.graph_projection]:
                if q not in staged:
                    q.clear()
            self.catalog.clear_quarantine()  # every quarantined record gets another try
            self.catalog.mark_all_dirty()
            self.catalog.set_meta("reindexed_at", datetime.now(UTC).isoformat())
            # The search outbox first, up to the switch; its flags are cleared as batches reach the
            # new index, so a failure restores them (below) for the old index to catch up from.
            moved = self._project_search(batch)
            for p in staged:
                p.finish_rebuild()
        except BaseException:
            for p in begun:
                p.abort_rebuild()
            if begun:
                self.catalog.mark_all_dirty("search")
            raise
        return len(moved | self.project_graph())


def scrub_record(record: ModelRecord) -> ModelRecord:
    """Strip credentials from every URL a source put into the record (userinfo, token-like query
    parameters) before it is stored, indexed, put in the graph or served; in place."""
    for link in record.links:
        link.url = redact_url(link.url)
    for art in record.artifacts:
        if art.url:
            art.url = redact_url(art.url)
    if record.publisher and record.publisher.url:
        record.publisher.url = redact_url(record.publisher.url)
    for ev in record.evaluations:
        if ev.source:
            ev.source = redact_text(ev.source)
    if record.provenance.source_url:
        record.provenance.source_url = redact_url(record.provenance.source_url)
    if record.source_facts:  # stored verbatim otherwise: capped in size and depth too
        record.source_facts = scrub(bounded(record.source_facts))
    if record.params:
        record.params = {k: redact_text(v) for k, v in record.params.items()}
    return record


def _environmental(e: BaseException) -> bool:
    """Failures of the machine or the network, which no record causes."""
    return isinstance(e, OSError | CatalogIOError | MemoryError) and not isinstance(e, UnicodeError)


class _Probe(Exception):
    """Rolls back a transaction that only tried whether a record can be stored."""
