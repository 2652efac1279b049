"""Pipeline semantics with a scripted source: checkpoints, crash and resume, fail-safe tombstones,
malformed items, projections kept in step with the catalog."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rdflib import Variable

from modelport.harvesters.base import (
    Checkpoint,
    Gone,
    HarvestEvent,
    ListingComplete,
    MalformedRecord,
    Skipped,
    SourceRecord,
    new_provenance,
)
from modelport.index.search import SearchQuery
from modelport.pipeline import MAX_ERROR_SAMPLES, JobReport, Pipeline, RecordFailure
from modelport.schema.identity import record_id
from modelport.schema.record import Artifact, ModelRecord
from modelport.settings import Settings


class ScriptedSource:
    """A source whose listing is a list in memory (the registry), read in pages with checkpoints."""

    kind = "scripted"
    harvester_version = "test"

    def __init__(self, items: list[dict[str, Any]], name: str = "scripted", page: int = 3,
                 crash_after: int | None = None, complete: bool = True) -> None:
        self.name, self.items, self.page = name, items, page
        self.crash_after, self.complete = crash_after, complete

    def events(self, mode: str, checkpoint: dict[str, Any] | None) -> Iterator[HarvestEvent]:
        start = (checkpoint or {}).get("offset", 0) if mode == "incremental" else 0
        for i in range(start, len(self.items)):
            if self.crash_after is not None and i >= self.crash_after:
                raise ConnectionError("upstream went away")
            it = self.items[i]
            if it.get("gone"):
                yield Gone(local_id=it["id"], reason="disabled upstream")
                continue
            yield SourceRecord(local_id=it["id"], payload=it)
            if (i + 1) % self.page == 0:
                yield Checkpoint(state={"offset": i + 1})
        yield Checkpoint(state={"offset": len(self.items)})
        if self.complete:
            yield ListingComplete(listed=len(self.items))

    def normalize(self, item: SourceRecord) -> ModelRecord:
        p = item.payload
        if p.get("bad"):
            raise MalformedRecord("no name")
        return ModelRecord(id=record_id(self.name, item.local_id), source=self.name, source_kind=self.kind,
                           local_id=item.local_id, name=p["name"], description=p.get("desc"),
                           tasks=p.get("tasks", []), declared_formats=p.get("formats", []),
                           artifacts=[Artifact(path=a, format=f, sha256=h) for a, f, h in p.get("artifacts", [])],
                           provenance=new_provenance(self, None))


def items(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"id": f"org/m{i}", "name": f"model {i}", "desc": f"a model number {i}", **extra} for i in range(n)]


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:  # type: ignore[no-untyped-def]
    p = Pipeline(Settings(data_dir=tmp_path / "data", base_iri="http://t"))
    yield p
    p.close()


def live(p: Pipeline) -> set[str]:
    return {r.id for r in p.catalog.iter_records()}


def indexed(p: Pipeline) -> set[str]:
    return {h.id for h in p.search.search(SearchQuery(limit=200)).hits}


def graph_ids(p: Pipeline) -> set[str]:
    ans = p.graph.query("SELECT ?id WHERE { ?m a fair4ml:MLModel ; schema:identifier ?id }")
    return {str(row[Variable("id")]) for row in ans.result.bindings}


def test_crash_mid_run_resumes_without_loss_or_duplicates(pipeline: Pipeline) -> None:
    data = items(10)
    with pytest.raises(ConnectionError):
        pipeline.harvest(ScriptedSource(data, crash_after=7), mode="incremental")
    assert pipeline.catalog.get_checkpoint("scripted") == {"offset": 6}
    assert len(live(pipeline)) == 7  # everything read before the crash is kept
    assert pipeline.catalog.jobs()[0].status == "failed"
    report = pipeline.harvest(ScriptedSource(data), mode="incremental")
    assert report.counts["seen"] == 4  # resumed at the checkpoint
    assert live(pipeline) == indexed(pipeline) == graph_ids(pipeline) == {f"scripted:org/m{i}" for i in range(10)}


def test_unchanged_records_cause_no_projection_work(pipeline: Pipeline) -> None:
    pipeline.harvest(ScriptedSource(items(5)), mode="full")
    report = pipeline.harvest(ScriptedSource(items(5)), mode="full")
    assert report.counts["unchanged"] == 5 and report.counts["updated"] == 0
    changed = items(5)
    changed[2]["desc"] = "now with a better description"
    report = pipeline.harvest(ScriptedSource(changed), mode="full")
    assert report.counts["updated"] == 1 and report.counts["unchanged"] == 4
    hits = pipeline.search.search(SearchQuery(text="better description")).hits
    assert hits[0].id == "scripted:org/m2"


def test_full_listing_tombstones_vanished_records_only_when_complete(pipeline: Pipeline) -> None:
    pipeline.harvest(ScriptedSource(items(10)), mode="full")
    shorter = items(10)[:9]
    pipeline.harvest(ScriptedSource(shorter, complete=False), mode="full")  # truncated: no deletions
    assert len(live(pipeline)) == 10
    pipeline.harvest(ScriptedSource(items(10)[:9]), mode="full", limit=5)  # limited: no deletions
    assert len(live(pipeline)) == 10
    report = pipeline.harvest(ScriptedSource(shorter), mode="full")
    assert report.counts["tombstoned"] == 1
    assert "scripted:org/m9" not in live(pipeline) | indexed(pipeline) | graph_ids(pipeline)
    stored = pipeline.catalog.get_stored("scripted:org/m9")
    assert stored.deleted_at and stored.record.name == "model 9"  # history kept
    report = pipeline.harvest(ScriptedSource(items(10)), mode="full")  # it came back
    assert "scripted:org/m9" in indexed(pipeline) and report.counts["inserted"] == 1


def test_failsafe_refuses_mass_tombstoning(pipeline: Pipeline) -> None:
    pipeline.harvest(ScriptedSource(items(12)), mode="full")
    report = pipeline.harvest(ScriptedSource(items(12)[:6]), mode="full")
    assert report.counts["tombstoned"] == 0 and report.status == "partial"
    assert any("fail-safe" in e["reason"] for e in report.errors)
    assert len(live(pipeline)) == 12


def test_malformed_items_are_skipped_and_never_tombstoned(pipeline: Pipeline) -> None:
    data = items(6)
    pipeline.harvest(ScriptedSource(data), mode="full")
    data[3] = {"id": "org/m3", "bad": True}
    report = pipeline.harvest(ScriptedSource(data), mode="full")
    assert report.counts["skipped"] == 1 and report.status == "partial"
    assert report.errors[0]["ref"] == "scripted:org/m3" and "malformed" in report.errors[0]["reason"]
    assert report.error_groups == {"malformed": 1}
    assert pipeline.catalog.get("scripted:org/m3").name == "model 3"  # the good old version stays


def test_a_mapper_bug_raising_value_error_fails_the_job_naming_the_record(pipeline: Pipeline) -> None:
    """A ValueError from the mapper's own code is a bug, not a malformed record: were it counted as a
    skip, the same bug would quietly skip every record of the source."""
    class BuggyMapper(ScriptedSource):
        def normalize(self, item: SourceRecord) -> ModelRecord:
            if item.local_id == "org/m2":
                int(item.payload["name"])  # a mapper bug: "model 2" is no number
            return super().normalize(item)

    with pytest.raises(RecordFailure, match="scripted:org/m2"):
        pipeline.harvest(BuggyMapper(items(4)), mode="full")
    job = pipeline.catalog.jobs()[0]
    assert job.status == "failed" and "scripted:org/m2" in job.errors[-1]["reason"]
    assert "scripted:org/m2" not in live(pipeline)


def test_the_job_report_keeps_a_bounded_sample_and_counts_every_error_by_kind() -> None:
    report = JobReport(job_id=1, source="s", mode="full")
    for i in range(MAX_ERROR_SAMPLES + 500):
        report.error(f"s:m{i}", f"malformed: field {i} is not a string")
    report.error("s:x", "quarantined (store): refused")
    assert len(report.errors) == MAX_ERROR_SAMPLES and report.errors_total == MAX_ERROR_SAMPLES + 501
    assert report.errors[0] == {"ref": "s:m0", "reason": "malformed: field 0 is not a string"}
    assert report.error_groups == {"malformed": MAX_ERROR_SAMPLES + 500, "quarantined (store)": 1}
    for i in range(200):  # distinct kinds are bounded too
        report.error("s:y", f"kind {i}: x")
    assert len(report.error_groups) <= 51 and report.error_groups["other"] > 0


def test_gone_events_tombstone(pipeline: Pipeline) -> None:
    data = items(4)
    pipeline.harvest(ScriptedSource(data), mode="full")
    data[1]["gone"] = True
    report = pipeline.harvest(ScriptedSource(data, complete=False), mode="full")
    assert report.counts["tombstoned"] == 1 and "scripted:org/m1" not in indexed(pipeline)


def test_skipped_events_are_logged_in_the_job(pipeline: Pipeline) -> None:
    class WithSkip(ScriptedSource):
        def events(self, mode: str, checkpoint: dict[str, Any] | None) -> Iterator[HarvestEvent]:
            yield Skipped(ref="org/x", reason="malformed JSON at byte 12")
            yield from super().events(mode, checkpoint)

    pipeline.harvest(WithSkip(items(2)), mode="full")
    job = pipeline.catalog.jobs()[0]
    assert job.status == "partial" and job.errors == [{"ref": "org/x", "reason": "malformed JSON at byte 12"}]


def test_reindex_rebuilds_projections_from_the_catalog(pipeline: Pipeline) -> None:
    pipeline.harvest(ScriptedSource(items(8)), mode="full")
    pipeline.search.clear()
    pipeline.graph.clear()
    assert indexed(pipeline) == set()
    assert pipeline.reindex() == 8
    assert len(indexed(pipeline)) == len(graph_ids(pipeline)) == 8
    assert pipeline.graph.query("ASK { task:image-classification skos:broader task:computer-vision }").result.askAnswer


def test_catalog_stores_what_the_source_says_and_derives_the_matrix_on_read(pipeline: Pipeline) -> None:
    import json

    from modelport.schema.record import CompatibilityEntry, Evidence

    pipeline.harvest(ScriptedSource(items(2, formats=["onnx"])), mode="full")
    raw = pipeline.catalog._conn.execute("SELECT data FROM records WHERE id='scripted:org/m0'").fetchone()[0]
    assert json.loads(raw)["compatibility"] == []  # derived data is not stored twice …
    rec = pipeline.catalog.get("scripted:org/m0")
    ort = next(c for c in rec.compatibility if c.runtime == "onnxruntime" and c.target is None and c.hardware is None)
    assert ort.status == "declared"  # … but every read has it, under the current KB
    assert pipeline.graph.query('ASK { ?m schema:identifier "scripted:org/m0" ; '
                                'mp:profile/mp:compatibility ?c . '
                                '?c mp:runtime rt:onnxruntime ; mp:status "declared" }').result.askAnswer
    # A verification result changes the matrix, not what the source says: the record goes back to the
    # projections' outbox and comes out verified everywhere.
    assert pipeline.catalog.dirty_count() == 0
    pipeline.catalog.set_verifications("scripted:org/m0", [CompatibilityEntry(
        runtime="onnxruntime", format="onnx", status="verified", confidence="high",
        evidence=[Evidence(kind="verification", detail="ran on onnxruntime 1.19")],
        measurements={"max_abs_diff": 1e-6, "tolerance": {"atol": 1e-4}})])
    assert pipeline.catalog.dirty_count() == 1
    assert pipeline.project() == 1
    rec = pipeline.catalog.get("scripted:org/m0")
    assert any(c.runtime == "onnxruntime" and "verified" in c.statuses() for c in rec.compatibility)
    assert pipeline.graph.query('ASK { ?m schema:identifier "scripted:org/m0" ; mp:compatibility ?c . '
                                '?c mp:status "verified" ; prov:wasGeneratedBy ?run . '
                                '?run a mp:VerificationRun ; mp:maxAbsDiff ?d }').result.askAnswer
    # the other record shares the derived cells (through its profile) instead of repeating them
    cells = pipeline.graph.query('SELECT DISTINCT ?c WHERE { ?m mp:profile/mp:compatibility ?c ; '
                                 'schema:identifier ?id . FILTER(?id IN ("scripted:org/m0", "scripted:org/m1")) }'
                                 ).result.bindings
    m1 = pipeline.graph.query('SELECT ?c WHERE { ?m mp:profile/mp:compatibility ?c ; '
                              'schema:identifier "scripted:org/m1" }')
    assert {r[Variable("c")] for r in m1.result.bindings} <= {r[Variable("c")] for r in cells}
    assert all("/derived/cell/" in str(r[Variable("c")]) for r in m1.result.bindings)


def test_a_verification_holds_only_while_the_artifacts_it_checked_are_unchanged(pipeline: Pipeline) -> None:
    from modelport.index.search import RuntimeConstraint
    from modelport.schema.record import CompatibilityEntry, Evidence

    data = items(2, formats=["onnx"], artifacts=[["model.onnx", "onnx", "a" * 64]])
    pipeline.harvest(ScriptedSource(data), mode="full")
    pipeline.catalog.set_verifications("scripted:org/m0", [CompatibilityEntry(
        runtime="onnxruntime", format="onnx", status="verified", confidence="high",
        evidence=[Evidence(kind="verification", detail="ran on onnxruntime 1.19")])])
    pipeline.project()
    query = SearchQuery(constraints=[RuntimeConstraint(runtime="onnxruntime", min_status="verified")])

    def verified() -> bool:
        cells = pipeline.catalog.get("scripted:org/m0").compatibility
        return any(c.runtime == "onnxruntime" and "verified" in c.statuses() for c in cells)

    assert verified() and {h.id for h in pipeline.search.search(query).hits} == {"scripted:org/m0"}
    # Re-harvested with other metadata but the same files: the result still holds.
    data[0]["desc"] = "now with a longer description"
    assert pipeline.harvest(ScriptedSource(data), mode="full").counts["updated"] == 1
    assert verified() and {h.id for h in pipeline.search.search(query).hits} == {"scripted:org/m0"}
    # The file changed upstream (a Hub repo's new commit): what was checked is no longer there.
    data[0]["artifacts"] = [["model.onnx", "onnx", "b" * 64]]
    assert pipeline.harvest(ScriptedSource(data), mode="full").counts["updated"] == 1
    assert not verified() and pipeline.search.search(query).total == 0
    assert not pipeline.graph.query('ASK { ?m schema:identifier "scripted:org/m0" ; mp:compatibility ?c . '
                                    '?c mp:status "verified" }').result.askAnswer
    with pytest.raises(KeyError):
        pipeline.catalog.set_verifications("scripted:org/nope", [])


def test_a_verification_stored_while_a_batch_is_projected_is_projected_next_time(pipeline: Pipeline) -> None:
    # `modelport verify` beside a projection: the result lands after the batch was read and before
    # it is committed. It leaves the content hash as it was, so only the record's revision can tell
    # the outbox that this batch did not carry it.
    from modelport.index.search import RuntimeConstraint
    from modelport.schema.record import CompatibilityEntry, Evidence

    pipeline.harvest(ScriptedSource(items(2, formats=["onnx"], artifacts=[["model.onnx", "onnx", "c" * 64]])),
                     mode="full")
    verified = CompatibilityEntry(runtime="onnxruntime", format="onnx", status="verified", confidence="high",
                                  evidence=[Evidence(kind="verification", detail="ran on onnxruntime 1.19")])

    class VerifyBeside:
        name = "verify-beside"
        done = False

        def apply(self, live: list[ModelRecord], gone: list[str], fresh: frozenset[str] = frozenset()) -> None:
            if not self.done:
                self.done = True
                pipeline.catalog.set_verifications("scripted:org/m1", [verified])

        def commit(self) -> None: ...
        def clear(self) -> None: ...

    pipeline.projections.append(VerifyBeside())
    pipeline.catalog.mark_all_dirty("search")
    pipeline.project(graph=False)
    query = SearchQuery(constraints=[RuntimeConstraint(runtime="onnxruntime", min_status="verified")])
    assert pipeline.search.search(query).total == 0  # the batch was read before the result existed
    assert [rid for rid, _, _ in pipeline.catalog.dirty()] == ["scripted:org/m1"]  # … so it stays in the outbox
    assert pipeline.project(graph=False) == 1
    assert [h.id for h in pipeline.search.search(query).hits] == ["scripted:org/m1"]
    assert pipeline.catalog.dirty_count() == 0


def test_graph_catches_up_from_its_own_outbox_and_survives_a_failed_write(pipeline: Pipeline) -> None:
    report = pipeline.harvest(ScriptedSource(items(6)), mode="full", project_graph=False)
    assert report.status == "ok"
    # searchable at once; the graph is behind by exactly the harvested records
    assert len(indexed(pipeline)) == 6 and graph_ids(pipeline) == set()
    assert pipeline.catalog.dirty_count() == 0 and pipeline.catalog.dirty_count("graph") == 6
    # a write that fails leaves its records in the outbox …
    projection = pipeline.graph_projection
    real_write, calls = projection.write, []

    def failing_write(batch: Any) -> None:
        calls.append(batch)
        raise OSError("disk full")

    projection.write = failing_write  # type: ignore[method-assign]
    with pytest.raises(OSError):
        pipeline.project_graph(batch=4)
    assert calls and pipeline.catalog.dirty_count("graph") == 6
    # … and the next catch-up (here: the next harvest's) writes them all, once
    projection.write = real_write  # type: ignore[method-assign]
    changed = items(7)
    changed[0]["desc"] = "edited upstream"
    report = pipeline.harvest(ScriptedSource(changed), mode="full")
    assert report.counts["inserted"] == 1 and report.counts["updated"] == 1
    assert pipeline.catalog.dirty_count("graph") == 0
    assert graph_ids(pipeline) == {f"scripted:org/m{i}" for i in range(7)}
    desc = pipeline.graph.query('SELECT ?d WHERE { ?m schema:identifier "scripted:org/m0" ; schema:description ?d }')
    assert [str(r[Variable("d")]) for r in desc.result.bindings] == ["edited upstream"]  # replaced, not added


def test_catalog_from_before_the_graph_outbox_opens_and_keeps_its_state(tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    from modelport.index.catalog import Catalog

    path = tmp_path / "old.sqlite"
    con = sqlite3.connect(path)
    con.executescript("""CREATE TABLE records (id TEXT PRIMARY KEY, source TEXT NOT NULL, local_id TEXT NOT NULL,
        content_hash TEXT NOT NULL, data TEXT NOT NULL, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL,
        deleted_at TEXT, deleted_reason TEXT, dirty INTEGER NOT NULL DEFAULT 1);
        CREATE INDEX records_dirty ON records(dirty) WHERE dirty = 1;
        INSERT INTO records VALUES ('a:1', 'a', '1', 'h1', '{}', 't', 't', NULL, NULL, 0);
        INSERT INTO records VALUES ('a:2', 'a', '2', 'h2', '{}', 't', 't', NULL, NULL, 1);""")
    con.commit()
    con.close()
    cat = Catalog(path)
    # projected records stay projected in the graph too; pending ones are pending for both
    assert cat.dirty_count() == 1 and cat.dirty_count("graph") == 1
    assert [rid for rid, _, _ in cat.dirty(outbox="graph")] == ["a:2"]
    cat.close()


def test_elasticsearch_is_refused_without_a_url_and_accepted_with_one(monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from pydantic import ValidationError

    from modelport.index.backends import open_search_backend as make_search_backend
    from modelport.index.elasticsearch_backend import ElasticsearchBackend

    monkeypatch.setenv("MODELPORT_SEARCH_BACKEND", "elasticsearch")
    monkeypatch.delenv("MODELPORT_ELASTICSEARCH_URL", raising=False)
    with pytest.raises(ValidationError, match="needs MODELPORT_ELASTICSEARCH_URL"):
        Settings()
    # Nothing listens on port 9 here: settings and the backend object must not connect.
    monkeypatch.setenv("MODELPORT_ELASTICSEARCH_URL", "http://elastic:s3cret@127.0.0.1:9")
    monkeypatch.setenv("MODELPORT_ELASTICSEARCH_INDEX", "models")
    settings = Settings()
    assert settings.search_backend == "elasticsearch" and settings.elasticsearch_index == "models"
    assert "s3cret" not in repr(settings)  # settings get logged and printed in tracebacks
    backend = make_search_backend(settings)
    assert isinstance(backend, ElasticsearchBackend) and backend.index_name == "models"
    assert backend.url == "http://127.0.0.1:9"  # what messages show: no credentials
    backend.close()


def test_the_read_side_and_the_write_path_share_one_set_of_stores(tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from modelport.services import Services

    svc = Services(Settings(data_dir=tmp_path / "data", base_iri="http://t"))
    try:
        assert svc.pipeline.stores is svc.stores
        svc.pipeline.harvest(ScriptedSource(items(3)), mode="full")
        # What the write path stored and indexed is what the read side finds, through the same stores.
        assert svc.search_backend is svc.pipeline.search and svc.catalog is svc.pipeline.catalog
        assert svc.search(SearchQuery(text="model")).total == 3
    finally:
        svc.close()
