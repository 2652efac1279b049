"""Source terms end to end: tasks and libraries the KB does not know, harvested through the real
clients (the Hub client against the fake Hub, the Scrapy engine over local TF Hub pages), are
filterable and faceted in search (API and web page), in the RDF (SPARQL), and counted in the job
report (`modelport jobs`, GET /harvests) so the KB can grow."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from modelport.api.app import create_app
from modelport.harvesters.huggingface import HuggingFaceSource
from modelport.harvesters.tfhub import TFHubSource
from modelport.index.query_syntax import compile_query
from modelport.pipeline import Pipeline
from modelport.settings import Settings

_HF = Path(__file__).parent / "fixtures" / "hf"
if str(_HF) not in sys.path:
    sys.path.insert(0, str(_HF))
from fake_hub import FakeHub, load_corpus  # noqa: E402

TERM_ASK = """ASK {{ ?m schema:identifier "{rid}" ;
    mp:profile/mp:sourceTerm [ a mp:SourceTerm ; mp:vocabulary "{vocabulary}" ; schema:termCode "{code}" ] }}"""


def hub_model(template: dict[str, Any], repo: str, *, library: str, pipeline_tag: str) -> dict[str, Any]:
    m = copy.deepcopy(template)
    m.update({"_id": f"{abs(hash(repo)):024x}"[:24], "id": repo, "modelId": repo, "author": repo.split("/")[0],
              "library_name": library, "pipeline_tag": pipeline_tag,
              "tags": [library, pipeline_tag, "license:mit", "region:us"],
              "cardData": {"license": "mit", "library_name": library, "pipeline_tag": pipeline_tag}})
    m.pop("transformersInfo", None)
    return m


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    bert = next(m for m in load_corpus()["models"] if m["id"] == "google-bert/bert-base-uncased")
    models = [
        bert,  # known library and task
        hub_model(bert, "acme/mesh-maker", library="fairseq", pipeline_tag="image-to-3d"),
        hub_model(bert, "acme/fs-speech", library="FairSeq", pipeline_tag="fill-mask"),
        hub_model(bert, "acme/separator", library="asteroid", pipeline_tag="audio-to-audio"),
    ]
    with FakeHub(models=models, quotas=None) as h:
        yield h


def test_hub_names_the_kb_does_not_know_are_searchable_faceted_in_rdf_and_reported(
        hub: FakeHub, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", base_iri="http://test", embeddings=False)
    p = Pipeline(settings)
    src = HuggingFaceSource("huggingface", endpoint=hub.url, page_size=8, retry_base_wait_s=0.01,
                            retry_max_wait_s=0.05, enrich_max_models=None, rate_limit_requests=100_000,
                            resolver_rate_limit_requests=100_000)
    report = p.harvest(src, mode="full")
    assert report.status == "ok", report.errors
    mesh = p.catalog.get("huggingface:acme/mesh-maker")
    assert mesh is not None and mesh.tasks == [] and mesh.frameworks == []
    assert {(t.vocabulary, t.value, t.source_key) for t in mesh.source_terms} == {
        ("task", "image-to-3d", "pipeline_tag"), ("library", "fairseq", "library_name")}
    fs = p.catalog.get("huggingface:acme/fs-speech")
    assert fs is not None and fs.tasks == ["fill-mask"]
    assert [(t.vocabulary, t.value) for t in fs.source_terms] == [("library", "FairSeq")]  # as the source said

    # Reported per harvest, by vocabulary, with the records naming each (case-folded, like the filters).
    unknown = report.unknown_terms.summary()
    assert unknown["library"]["top"] == {"fairseq": 2, "asteroid": 1}
    assert unknown["library"]["records"] == 3 and unknown["library"]["distinct"] == 2
    assert unknown["task"]["top"].get("image-to-3d") == 1
    assert "fill-mask" not in unknown["task"]["top"]
    p.close()

    with TestClient(create_app(settings)) as client:
        def ids(q: str) -> set[str]:
            res = client.get("/search", params={"q": q, "nl": "false", "facets": "none"})
            assert res.status_code == 200, res.text
            return {h["id"] for h in res.json()["hits"]}

        assert ids("task:image-to-3d") == {"huggingface:acme/mesh-maker"}
        assert ids("library:fairseq") == {"huggingface:acme/mesh-maker", "huggingface:acme/fs-speech"}
        assert ids("framework:asteroid") == {"huggingface:acme/separator"}
        assert ids("task:fill-mask -library:fairseq") == {"huggingface:google-bert/bert-base-uncased"}

        page = client.get("/search", params={"q": "", "facets": "task,framework"}).json()
        assert page["facets"]["framework"]["counts"]["fairseq"] == 2
        assert set(page["facets"]["framework"]["source_terms"]) == {"fairseq", "asteroid"}
        assert "transformers" not in page["facets"]["framework"]["source_terms"]
        assert "image-to-3d" in page["facets"]["task"]["source_terms"]
        assert "fill-mask" in page["facets"]["task"]["counts"] and "fill-mask" not in page["facets"]["task"][
            "source_terms"]
        hit = next(h for h in page["hits"] if h["id"] == "huggingface:acme/mesh-maker")
        assert {t["value"] for t in hit["source_terms"]} == {"image-to-3d", "fairseq"}

        html = client.get("/", params={"q": "library:fairseq"}).text
        assert 'data-value="fairseq"' in html and "source term" in html
        model = client.get("/models/huggingface:acme/mesh-maker", headers={"accept": "text/html"})
        assert model.status_code == 200 and "image-to-3d" in model.text and "source term" in model.text
        as_json = client.get("/models/huggingface:acme/mesh-maker", headers={"accept": "application/json"}).json()
        assert {t["value"] for t in as_json["source_terms"]} == {"image-to-3d", "fairseq"}

        def ask(rid: str, vocabulary: str, code: str) -> bool:
            res = client.get("/sparql", params={"query": TERM_ASK.format(rid=rid, vocabulary=vocabulary, code=code)})
            assert res.status_code == 200, res.text
            return bool(res.json()["boolean"])

        assert ask("huggingface:acme/mesh-maker", "task", "image-to-3d")
        assert ask("huggingface:acme/fs-speech", "library", "fairseq")
        assert not ask("huggingface:google-bert/bert-base-uncased", "library", "fairseq")

        (job,) = client.get("/harvests").json()
        assert job["id"] == report.job_id and job["unknown_terms"]["library"]["top"] == {"fairseq": 2, "asteroid": 1}

    r = subprocess.run([sys.executable, "-m", "modelport.cli", "jobs"], capture_output=True, text=True, timeout=120,
                       env={"MODELPORT_DATA_DIR": str(settings.data_dir), "PATH": "/usr/bin:/bin", "COLUMNS": "250"})
    assert r.returncode == 0, r.stderr
    assert "fairseq 2" in r.stdout and "asteroid" in r.stdout and "image-to-3d" in r.stdout


PUBLISHER = "# Publisher acme\nAcme\n\n## Acme\n\nAcme research models.\n"
MODULE = """# Module acme/{name}/1
{title}

<!-- asset-path: legacy -->
{tasks}
<!-- fine-tunable: false -->
<!-- format: saved_model_2 -->

## Overview

{title}
"""


def test_tfhub_tasks_the_kb_does_not_know_are_searchable_in_rdf_and_reported(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "acme" / "models" / "clip-embedder").mkdir(parents=True)
    (docs / "acme" / "models" / "plain-classifier").mkdir(parents=True)
    (docs / "acme" / "acme.md").write_text(PUBLISHER)
    (docs / "acme" / "models" / "clip-embedder" / "1.md").write_text(MODULE.format(
        name="clip-embedder", title="Video clip embeddings.",
        tasks="<!-- task: video-feature-extraction -->\n<!-- task: image-classification -->"))
    (docs / "acme" / "models" / "plain-classifier" / "1.md").write_text(MODULE.format(
        name="plain-classifier", title="An image classifier.", tasks="<!-- task: image-classification -->"))
    settings = Settings(data_dir=tmp_path / "data", base_iri="http://test", embeddings=False)
    p = Pipeline(settings)
    src = TFHubSource(docs.as_uri(), name="tfhub",
                      crawl_options={"autothrottle_start_delay": 0.0, "retry_times": 1, "download_timeout": 10},
                      cache_dir=settings.data_dir / "cache" / "tfhub")
    report = p.harvest(src, mode="full")
    assert report.counts["inserted"] == 2, report.errors
    clip = p.catalog.get("tfhub:acme/clip-embedder/1")
    assert clip is not None and clip.tasks == ["image-classification"]
    assert [(t.vocabulary, t.value, t.source_key) for t in clip.source_terms] == [
        ("task", "video-feature-extraction", "task")]
    assert report.unknown_terms.summary() == {
        "task": {"records": 1, "distinct": 1, "top": {"video-feature-extraction": 1}}}

    q, _ = compile_query("task:video-feature-extraction", nl=False)
    assert {h.id for h in p.search.search(q).hits} == {"tfhub:acme/clip-embedder/1"}
    q, _ = compile_query("task:image-classification", nl=False)
    res = p.search.search(q.model_copy(update={"facets": ["task"]}))
    assert res.total == 2 and res.facets["task"].counts == {"image-classification": 2, "video-feature-extraction": 1}
    assert res.facets["task"].source_terms == ["video-feature-extraction"]

    assert p.graph.query(TERM_ASK.format(rid="tfhub:acme/clip-embedder/1", vocabulary="task",
                                         code="video-feature-extraction")).result.askAnswer
    assert not p.graph.query(TERM_ASK.format(rid="tfhub:acme/plain-classifier/1", vocabulary="task",
                                             code="video-feature-extraction")).result.askAnswer
    assert p.catalog.jobs("tfhub")[0].unknown_terms["task"]["top"] == {"video-feature-extraction": 1}
    p.close()
