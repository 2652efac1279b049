"""One bad record never blocks the rest: records whose content a store or projection refuses are
isolated (bisected out of their batch), recorded with the reason and retried when they change or on
reindex; a failure that is not the record's content fails the job naming the record; "gone" answers
obey the fail-safe ratio; a full disk is reported as such with nothing committed lost."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from rdflib import Variable

from modelport.errors import BadRecordError
from modelport.harvesters.base import SourceRecord, new_provenance
from modelport.index.catalog import CatalogIOError
from modelport.pipeline import Pipeline, RecordFailure
from modelport.schema.identity import record_id
from modelport.schema.record import Link, ModelRecord
from modelport.settings import Settings
from tests.test_pipeline import ScriptedSource, graph_ids, indexed, items, live


class LinkedSource(ScriptedSource):
    """Records carrying the links the source gave, whatever they are."""

    def normalize(self, item: SourceRecord) -> ModelRecord:
        p = item.payload
        return ModelRecord(id=record_id(self.name, item.local_id), source=self.name, source_kind=self.kind,
                           local_id=item.local_id, name=p["name"], description=p.get("desc"),
                           links=[Link(rel=rel, url=url) for rel, url in p.get("links", [])],
                           provenance=new_provenance(self, p.get("url")))


class Refusing:
    """A projection registered through the extension point that refuses some content: a
    BadRecordError (the record's fault, modelport/errors.py) for "poison", a TypeError (our bug) for
    "crash". A plain ValueError would be a bug too."""

    name = "audit"

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}

    def apply(self, live: list[ModelRecord], gone: list[str], fresh: Any = frozenset()) -> None:
        for r in live:
            if "poison" in (r.description or ""):
                raise BadRecordError(f"cannot take {r.id}: poisoned description")
            if "crash" in (r.description or ""):
                raise TypeError("unsupported operand type(s)")
        for r in live:
            self.seen[r.id] = r.description or ""
        for g in gone:
            self.seen.pop(g, None)

    def commit(self) -> None:
        pass

    def clear(self) -> None:
        self.seen.clear()


@pytest.fixture
def pipeline(tmp_path: Path) -> Any:  # type: ignore[no-untyped-def]
    p = Pipeline(Settings(data_dir=tmp_path / "data", base_iri="http://t"))
    yield p
    p.close()


def test_a_relative_or_unsafe_link_is_a_literal_and_blocks_nothing(pipeline: Pipeline) -> None:
    data = items(6)
    data[2]["links"] = [("run", "runs/0a1b2c"), ("homepage", "javascript:alert(1)")]
    data[3]["links"] = [("homepage", "http://[broken-host/x")]
    data[3]["url"] = "not a url at all"
    data[4]["links"] = [("paper", "https://arxiv.org/abs/1234.5678")]
    report = pipeline.harvest(LinkedSource(data), mode="full")
    assert report.status == "ok", report.errors
    assert graph_ids(pipeline) == {f"scripted:org/m{i}" for i in range(6)}
    ans = pipeline.graph.query('SELECT ?o WHERE { ?m schema:identifier "scripted:org/m2" ; rdfs:seeAlso ?o }')
    (value,) = [row[Variable("o")] for row in ans.result.bindings]
    assert str(value) == "runs/0a1b2c" and value.__class__.__name__ == "Literal"
    ans = pipeline.graph.query('SELECT ?o WHERE { ?m schema:identifier "scripted:org/m4" ; schema:citation ?o }')
    assert [row[Variable("o")].__class__.__name__ for row in ans.result.bindings] == ["URIRef"]
    js = pipeline.graph.query('ASK { ?m schema:url <javascript:alert(1)> }')
    assert js.result.askAnswer is False


def test_a_record_a_projection_refuses_is_quarantined_and_the_rest_projected(pipeline: Pipeline) -> None:
    audit = Refusing()
    pipeline.extra_projections.append(audit)
    data = items(9)
    data[5]["desc"] = "poison pill"
    report = pipeline.harvest(ScriptedSource(data), mode="full", batch_size=4)
    assert report.status == "partial" and report.counts["quarantined"] == 1
    assert any(e["ref"] == "scripted:org/m5" and e.get("stage") == "audit" and "poisoned" in e["reason"]
               for e in report.errors)
    assert set(audit.seen) == {f"scripted:org/m{i}" for i in range(9)} - {"scripted:org/m5"}
    # every projection but the refusing one has it; the outbox is drained
    assert indexed(pipeline) == graph_ids(pipeline) == live(pipeline)
    assert pipeline.catalog.dirty_count() == pipeline.catalog.dirty_count("graph") == 0
    (q,) = pipeline.catalog.quarantined()
    assert (q.record_id, q.stage, q.job_id) == ("scripted:org/m5", "audit", report.job_id)
    job = pipeline.catalog.get_job(report.job_id)
    assert job.counts["quarantined"] == 1
    # unchanged upstream: stays aside; changed upstream: tried again and projected
    again = pipeline.harvest(ScriptedSource(data), mode="full")
    assert again.counts["quarantined"] == 0 and len(pipeline.catalog.quarantined()) == 1
    data[5]["desc"] = "a clean description now"
    fixed = pipeline.harvest(ScriptedSource(data), mode="full")
    assert fixed.status == "ok" and pipeline.catalog.quarantined() == []
    assert audit.seen["scripted:org/m5"] == "a clean description now"


def test_reindex_retries_quarantined_records(pipeline: Pipeline) -> None:
    audit = Refusing()
    pipeline.extra_projections.append(audit)
    data = items(4)
    data[1]["desc"] = "poison"
    pipeline.harvest(ScriptedSource(data), mode="full")
    assert len(pipeline.catalog.quarantined()) == 1
    pipeline.reindex()  # still refused: quarantined again, everything else rebuilt
    assert [q.record_id for q in pipeline.catalog.quarantined()] == ["scripted:org/m1"]
    assert len(audit.seen) == 3 and len(indexed(pipeline)) == 4


def test_a_bug_fails_the_job_loudly_naming_the_record(pipeline: Pipeline) -> None:
    pipeline.extra_projections.append(Refusing())
    data = items(5)
    data[3]["desc"] = "crash"
    with pytest.raises(RecordFailure, match="scripted:org/m3"):
        pipeline.harvest(ScriptedSource(data), mode="full")
    job = pipeline.catalog.jobs()[0]
    assert job.status == "failed" and "scripted:org/m3" in job.errors[-1]["reason"]
    assert pipeline.catalog.quarantined() == []  # a bug is not set aside quietly
    assert len(live(pipeline)) == 5  # what was stored stays


def test_graph_write_refused_for_one_record_isolates_it(pipeline: Pipeline) -> None:
    """The store refusing one record's triples (as Oxigraph did for a relative run_link) costs that
    record, not its batch: the write is retried in halves."""
    projection = pipeline.graph_projection
    real_write = projection.write

    def store_refusing_m2(batch: Any) -> None:
        if any("org/m2" in iri for iri, _ in [*batch.new, *batch.changed]):
            raise SyntaxError("Invalid IRI: no scheme found in an absolute IRI")
        real_write(batch)

    projection.write = store_refusing_m2  # type: ignore[method-assign]
    report = pipeline.harvest(ScriptedSource(items(7)), mode="full")
    assert report.status == "partial" and report.counts["quarantined"] == 1
    assert graph_ids(pipeline) == {f"scripted:org/m{i}" for i in range(7)} - {"scripted:org/m2"}
    assert indexed(pipeline) == live(pipeline)
    assert pipeline.catalog.dirty_count("graph") == 0
    assert [(q.record_id, q.stage) for q in pipeline.catalog.quarantined()] == [("scripted:org/m2", "graph")]
    # the next harvest of another source is not held back by it
    other = pipeline.harvest(ScriptedSource(items(2), name="other"), mode="full")
    assert other.status == "ok" and {"other:org/m0", "other:org/m1"} <= graph_ids(pipeline)


def test_gone_answers_count_against_the_failsafe_ratio(pipeline: Pipeline) -> None:
    pipeline.harvest(ScriptedSource(items(12)), mode="full")
    everything_gone = [{**it, "gone": True} for it in items(12)]
    report = pipeline.harvest(ScriptedSource(everything_gone, complete=False), mode="full")
    assert report.counts["tombstoned"] == 0 and any("fail-safe" in e["reason"] for e in report.errors)
    assert len(live(pipeline)) == 12
    # gone answers and listing losses add up: 2 gone + 2 missing of 12 is 33 % > 25 %
    data = items(12)[:10]
    data[0]["gone"] = data[1]["gone"] = True
    report = pipeline.harvest(ScriptedSource(data), mode="full")
    assert report.counts["tombstoned"] == 0 and len(live(pipeline)) == 12
    # within the ratio both kinds go, each with its reason
    data = items(12)[:11]
    data[0]["gone"] = True
    report = pipeline.harvest(ScriptedSource(data), mode="full")
    assert report.counts["tombstoned"] == 2
    assert pipeline.catalog.get_stored("scripted:org/m0").deleted_reason == "disabled upstream"
    assert "listing" in pipeline.catalog.get_stored("scripted:org/m11").deleted_reason


def test_a_full_disk_is_reported_as_such_and_loses_nothing_committed(tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = Pipeline(Settings(data_dir=tmp_path / "data", base_iri="http://t"))
    try:
        p.harvest(ScriptedSource(items(5)), mode="full")
        conn = p.catalog._conn
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + 2}")  # the disk fills up
        big = [{**it, "desc": "x" * 50_000} for it in items(40)]
        with pytest.raises(CatalogIOError, match="disk is full"):
            p.harvest(ScriptedSource(big, page=40), mode="full")
        assert {r.id for r in p.catalog.iter_records()} == {f"scripted:org/m{i}" for i in range(5)}
        assert all(r.description.startswith("a model") for r in p.catalog.iter_records())
    finally:
        p.close()
    # nothing half-written: the catalog opens and reads as before
    conn = sqlite3.connect(tmp_path / "data" / "catalog.sqlite")
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("SELECT count(*) FROM records").fetchone() == (5,)


def test_jobs_and_get_harvests_show_quarantined_records(tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    from fastapi.testclient import TestClient

    from modelport.api.app import create_app

    settings = Settings(data_dir=tmp_path / "data", base_iri="http://t")
    p = Pipeline(settings)
    p.extra_projections.append(Refusing())
    data = items(3)
    data[1]["desc"] = "poison"
    report = p.harvest(ScriptedSource(data), mode="full")
    p.close()
    r = subprocess.run([sys.executable, "-m", "modelport.cli", "jobs"], capture_output=True, text=True,
                       env={"MODELPORT_DATA_DIR": str(settings.data_dir), "PATH": "/usr/bin:/bin",
                            "COLUMNS": "250"}, timeout=120)
    assert r.returncode == 0 and "quarantined records" in r.stdout and "scripted:org/m1" in r.stdout
    assert '"quarantined": 1' in r.stdout
    with TestClient(create_app(settings)) as client:
        (job,) = client.get("/harvests").json()
    assert job["id"] == report.job_id and job["counts"]["quarantined"] == 1
    assert [(q["record_id"], q["stage"]) for q in job["quarantined"]] == [("scripted:org/m1", "audit")]
