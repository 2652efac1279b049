"""The graph follows a running harvest batch by batch (not at its end), /health says how far behind
it is, and a store of an older shape is rebuilt from the catalog when opened."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyoxigraph as ox
import pytest
from fastapi.testclient import TestClient
from test_pipeline import ScriptedSource, graph_ids, items

from modelport.pipeline import JobReport, Pipeline
from modelport.settings import Settings


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:  # type: ignore[no-untyped-def]
    p = Pipeline(Settings(data_dir=tmp_path / "data", base_iri="http://t", embeddings=False))
    yield p
    p.close()


def test_the_graph_follows_the_harvest_batch_by_batch(pipeline: Pipeline) -> None:
    seen: list[tuple[int, int, float]] = []  # (records stored, records in the graph, lag) at each batch

    def progress(report: JobReport) -> None:
        stored = report.counts["inserted"]
        seen.append((stored, len(graph_ids(pipeline)), pipeline.graph_lag_s()))

    report = pipeline.harvest(ScriptedSource(items(12), page=3), mode="full", batch_size=100, progress=progress)
    assert report.status == "ok"
    stored = [s for s, _, _ in seen]
    assert stored[-1] == 12 and len(seen) >= 4
    for s, in_graph, lag in seen:
        # the batch before the one just stored is written by the time the next is handed over
        assert in_graph >= s - 3 - 3, seen
        assert 0.0 <= lag < 10.0
    assert any(0 < in_graph < 12 for _, in_graph, _ in seen)  # written during the harvest, not only after
    assert graph_ids(pipeline) == {f"scripted:org/m{i}" for i in range(12)}
    assert pipeline.catalog.dirty_count("graph") == 0 and pipeline.graph_lag_s() == 0.0


def test_a_record_changed_upstream_replaces_only_itself_in_the_graph(pipeline: Pipeline) -> None:
    """An update is a replace in the graph: it must leave every other record there. (A delete that
    matched every triple of the default graph once emptied it of all the records not in the batch.)"""
    registry = items(9)
    pipeline.harvest(ScriptedSource(registry), mode="full")
    registry[4] = {**registry[4], "desc": "a model number 4, now with a better card"}
    report = pipeline.harvest(ScriptedSource(registry), mode="full")
    assert report.counts["updated"] == 1 and report.counts["unchanged"] == 8
    assert graph_ids(pipeline) == {f"scripted:org/m{i}" for i in range(9)}
    answer = pipeline.graph.query('ASK { ?m schema:identifier "scripted:org/m4" ; '
                                  'schema:description "a model number 4, now with a better card" }')
    assert answer.result.askAnswer


def test_health_shows_the_graph_lag(tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from modelport.api.app import create_app

    with TestClient(create_app(Settings(data_dir=tmp_path / "d", base_iri="http://t", embeddings=False))) as c:
        body = c.get("/health").json()
    assert body["graph_lag_s"] == 0.0 and body["pending_graph"] == 0


def test_a_store_of_an_older_shape_is_rebuilt_from_the_catalog(tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=tmp_path / "data", base_iri="http://t", embeddings=False)
    p = Pipeline(settings)
    p.harvest(ScriptedSource(items(4)), mode="full")
    p.close()
    # what the shape of 2026-12-02 left: one named graph per record, no layout marker
    store = ox.Store(str(settings.graph_dir / "oxigraph"))
    store.remove_graph(ox.NamedNode("https://w3id.org/modelport/graph-meta"))
    store.update("DELETE WHERE { ?s ?p ?o }")  # the records' default-graph triples
    old = ox.NamedNode("http://t/model/scripted/org/m0")
    store.add(ox.Quad(old, ox.NamedNode("http://schema.org/identifier"), ox.Literal("scripted:org/m0"), old))
    store.flush()
    del store
    p = Pipeline(settings)
    try:
        assert p.catalog.dirty_count("graph") == 0
        assert p.graph.layout_current() and p.catalog.dirty_count("graph") == 4  # emptied, all to re-project
        p.project()
        assert graph_ids(p) == {f"scripted:org/m{i}" for i in range(4)}
        assert not p.graph.has_graph("http://t/model/scripted/org/m0")
    finally:
        p.close()
