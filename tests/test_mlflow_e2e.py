"""End to end through a real MLflow server: harvest, catalog, index, graph, HTTP API, SPARQL."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import httpx
import pytest
import rdflib
import sklearn
from rdflib import Variable
from rdflib.compare import isomorphic
from SPARQLWrapper import CSV, JSON, TSV, TURTLE, XML, SPARQLWrapper

from modelport.harvesters.mlflow_registry import MlflowSource
from modelport.pipeline import Pipeline
from modelport.schema.versions import release_prefix
from modelport.settings import Settings

MODELS = {"mlflow:iris-classifier/1", "mlflow:iris-classifier/2", "mlflow:iris-onnx/1", "mlflow:text-normalizer/1",
          "mlflow:tiny-mlp/1", "mlflow:broken-model/1"}


def test_harvest_takes_every_version_and_skips_prompts(harvested: Settings) -> None:
    report = harvested.__dict__["first_report"]
    assert report.status == "ok", report.errors
    assert report.counts["seen"] == len(MODELS)
    pipeline = Pipeline(harvested)
    ids = {r.id for r in pipeline.catalog.iter_records()}
    pipeline.close()
    assert ids == MODELS  # the registered prompt is not a model


def test_broken_mlmodel_is_recorded_with_what_is_known(harvested: Settings) -> None:
    p = Pipeline(harvested)
    rec = p.catalog.get("mlflow:broken-model/1")
    p.close()
    assert rec is not None
    assert rec.description == "A version with a corrupt MLmodel file."
    assert any("MLmodel is not valid YAML" in e for e in rec.source_facts["errors"])
    assert [a.path for a in rec.artifacts] == ["MLmodel", "model.pkl"]


def test_record_facts_from_mlmodel_and_env_files(harvested: Settings) -> None:
    p = Pipeline(harvested)
    v1, v2 = p.catalog.get("mlflow:iris-classifier/1"), p.catalog.get("mlflow:iris-classifier/2")
    onnx_rec, torch_rec = p.catalog.get("mlflow:iris-onnx/1"), p.catalog.get("mlflow:tiny-mlp/1")
    p.close()
    assert v2.aliases == ["champion"] and v1.aliases == ["previous"]
    assert v2.version_group == v1.version_group == "mlflow:iris-classifier"
    assert "validation_status:approved" in v2.keywords and "validation_status:approved" not in v1.keywords
    assert v2.tasks == ["tabular-classification"] and v2.license == "Apache-2.0"
    assert set(v2.frameworks) == {"scikit-learn", "mlflow-pyfunc"} and "skops" in v2.formats
    # torch pinned in the environment beside it is no claim that the model runs on PyTorch
    assert not any(c.runtime == "pytorch" and c.status == "declared" for c in v2.compatibility)
    assert any(r.name == "scikit-learn" and r.specifier == f"=={sklearn.__version__}" for r in v2.requirements)
    cell = next(c for c in v2.compatibility if c.runtime == "scikit-learn")
    assert cell.status == "native"
    # pickled scikit-learn models load in the same minor release only (KB policy "same-minor")
    assert cell.version_range.contains(sklearn.__version__)
    assert not cell.version_range.contains(f"{int(release_prefix(sklearn.__version__, 1)) + 1}.0")
    acc = next(e for e in v2.evaluations if e.metric == "accuracy")
    assert acc.split == "train" and 0.9 < acc.value <= 1.0
    assert v2.params["C"] == "1.0"
    assert v2.signature is not None and len(v2.signature.inputs) == 4
    onnx_art = next(a for a in onnx_rec.artifacts if a.format == "onnx")
    assert onnx_art.details["opset"] == 17 and onnx_art.size_bytes > 0
    assert "onnxruntime" in {c.runtime for c in onnx_rec.compatibility}
    assert "pytorch" in torch_rec.frameworks and "torch-export" in torch_rec.formats


def test_second_harvest_changes_nothing(harvested: Settings, mlflow_server: object) -> None:
    p = Pipeline(harvested)
    report = p.harvest(MlflowSource(mlflow_server.uri, name="mlflow", cache_dir=harvested.data_dir / "cache"),
                       mode="full")
    try:
        assert report.counts["unchanged"] == len(MODELS)
        assert report.counts["inserted"] == report.counts["updated"] == report.counts["tombstoned"] == 0
        assert p.catalog.dirty_count() == 0
    finally:
        p.close()


def test_search_over_http(api: object) -> None:
    r = httpx.get(f"{api.url}/search", params={"q": "iris"}).json()
    assert {h["id"] for h in r["hits"]} >= {"mlflow:iris-classifier/1", "mlflow:iris-classifier/2",
                                            "mlflow:iris-onnx/1"}
    r = httpx.get(f"{api.url}/search", params={"format": "onnx"}).json()
    assert [h["id"] for h in r["hits"]] == ["mlflow:iris-onnx/1"]
    r = httpx.get(f"{api.url}/search", params={"framework": "scikit-learn", "facets": "source,task,format"}).json()
    assert r["total"] == 2
    assert r["facets"]["task"]["counts"] == {"tabular-classification": 2}
    champion = next(h for h in r["hits"] if h["id"] == "mlflow:iris-classifier/2")
    assert champion["aliases"] == ["champion"]
    assert champion["runtimes"]["scikit-learn"].startswith("native >=")
    r = httpx.get(f"{api.url}/search", params={"q": "iris-onnx"}).json()
    assert r["hits"][0]["id"] == "mlflow:iris-onnx/1"  # exact name ranks first
    r = httpx.get(f"{api.url}/search", params={"license": "MIT", "task": "tabular-classification"}).json()
    assert [h["id"] for h in r["hits"]] == ["mlflow:iris-onnx/1"]
    assert httpx.get(f"{api.url}/search", params={"facets": "bogus"}).status_code == 400
    hostile = httpx.get(f"{api.url}/search", params={"q": 'AND OR "( [ -name:* ^~ \\'}).json()
    assert "total" in hostile


def test_model_record_content_negotiation(api: object) -> None:
    url = f"{api.url}/models/mlflow:iris-classifier/2"
    js = httpx.get(url).json()
    assert js["id"] == "mlflow:iris-classifier/2" and js["aliases"] == ["champion"]
    ld = httpx.get(url, headers={"Accept": "application/ld+json"})
    assert ld.headers["content-type"].startswith("application/ld+json")
    g = rdflib.Graph().parse(data=ld.text, format="json-ld")
    subject = rdflib.URIRef("http://modelport.test/model/mlflow/iris-classifier/2")
    assert (subject, rdflib.URIRef("http://schema.org/name"), rdflib.Literal("iris-classifier")) in g
    ttl = httpx.get(url, headers={"Accept": "text/turtle"})
    g2 = rdflib.Graph().parse(data=ttl.text, format="turtle")
    assert isomorphic(g, g2)
    # the IRI dereferences to the record
    r = httpx.get(f"{api.url}/model/mlflow/iris-classifier/2", headers={"Accept": "text/turtle"},
                  follow_redirects=True)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/turtle")
    assert httpx.get(f"{api.url}/models/mlflow:nope/1").status_code == 404
    assert httpx.get(url, headers={"Accept": "image/png"}).status_code == 406


@pytest.mark.parametrize("fmt", [JSON, XML, CSV, TSV])
def test_sparql_select_with_sparqlwrapper(api: object, fmt: str) -> None:
    sw = SPARQLWrapper(f"{api.url}/sparql")
    sw.setQuery("""SELECT ?id ?alias WHERE { ?m a fair4ml:MLModel ; schema:identifier ?id ; mp:alias ?alias }
                   ORDER BY ?id""")
    sw.setReturnFormat(fmt)
    res = sw.query().convert()
    if fmt == JSON:
        rows = [(b["id"]["value"], b["alias"]["value"]) for b in res["results"]["bindings"]]
    elif fmt == XML:
        rows = []
        for result in res.getElementsByTagName("result"):
            vals = {b.getAttribute("name"): b.getElementsByTagName("literal")[0].firstChild.data
                    for b in result.getElementsByTagName("binding")}
            rows.append((vals["id"], vals["alias"]))
    else:
        text = res.decode() if isinstance(res, bytes) else res
        reader = csv.reader(io.StringIO(text), delimiter="," if fmt == CSV else "\t")
        rows = [tuple(x.strip('"') for x in row) for row in list(reader)[1:]]
    assert rows == [("mlflow:iris-classifier/1", "previous"), ("mlflow:iris-classifier/2", "champion")]


def test_sparql_protocol_forms_and_errors(api: object) -> None:
    q = "ASK { ?m mp:format fmt:onnx }"
    assert httpx.get(f"{api.url}/sparql", params={"query": q}).json()["boolean"] is True
    form = httpx.post(f"{api.url}/sparql", data={"query": q}, headers={"Accept": "application/sparql-results+json"})
    assert form.json()["boolean"] is True
    direct = httpx.post(f"{api.url}/sparql", content=q, headers={"Content-Type": "application/sparql-query"})
    assert direct.json()["boolean"] is True
    sw = SPARQLWrapper(f"{api.url}/sparql")
    sw.setQuery("CONSTRUCT { ?m schema:name ?n } WHERE { ?m mp:profile/mp:library lib:pytorch ; schema:name ?n }")
    sw.setReturnFormat(TURTLE)
    g = rdflib.Graph().parse(data=sw.query().convert(), format="turtle")
    assert {str(o) for o in g.objects()} == {"tiny-mlp"}
    bad = httpx.get(f"{api.url}/sparql", params={"query": "SELECT ?x WHERE { ?x"})
    assert bad.status_code == 400 and "SPARQL" in bad.json()["detail"]
    upd = httpx.post(f"{api.url}/sparql", content="INSERT DATA { <a:b> <a:c> <a:d> }",
                     headers={"Content-Type": "application/sparql-update"})
    assert upd.status_code == 403
    upd2 = httpx.post(f"{api.url}/sparql", data={"update": "CLEAR ALL"})
    assert upd2.status_code == 403
    still = httpx.get(f"{api.url}/sparql", params={"query": "SELECT (COUNT(*) AS ?n) WHERE { ?m a fair4ml:MLModel }"})
    assert int(still.json()["results"]["bindings"][0]["n"]["value"]) == len(MODELS)


def test_web_page_and_health(api: object) -> None:
    page = httpx.get(f"{api.url}/", params={"q": "iris"})
    assert page.status_code == 200 and "iris-classifier" in page.text
    health = httpx.get(f"{api.url}/health").json()
    assert health["records"] == len(MODELS) and health["pending_projection"] == 0
    jobs = httpx.get(f"{api.url}/harvests").json()
    assert jobs[0]["status"] == "ok" and jobs[0]["counts"]["seen"] == len(MODELS)
    assert json.loads(httpx.get(f"{api.url}/openapi.json").text)["paths"]["/search"]


def test_deleted_version_is_tombstoned_after_a_full_listing(mlflow_server: object, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient
    from mlflow import MlflowClient

    from modelport.api.app import create_app

    client = MlflowClient(tracking_uri=mlflow_server.uri, registry_uri=mlflow_server.uri)
    import mlflow
    from sklearn.dummy import DummyClassifier

    mlflow.set_tracking_uri(mlflow_server.uri)
    with mlflow.start_run(run_name="doomed"):
        mlflow.sklearn.log_model(DummyClassifier().fit([[0], [1]], [0, 1]), name="model",
                                 registered_model_name="doomed-model")
    settings = Settings(data_dir=tmp_path / "d", base_iri="http://modelport.test")
    source = MlflowSource(mlflow_server.uri, name="mlflow", cache_dir=settings.data_dir / "cache")
    try:
        p = Pipeline(settings)
        assert p.harvest(source, mode="full").counts["inserted"] == len(MODELS) + 1
    finally:
        client.delete_registered_model("doomed-model")
    report = p.harvest(source, mode="full")
    assert report.counts["tombstoned"] == 1 and report.counts["unchanged"] == len(MODELS)
    p.close()
    with TestClient(create_app(settings)) as http:
        gone = http.get("/models/mlflow:doomed-model/1")
        assert gone.status_code == 410 and "removed upstream" in gone.json()["detail"]
        hits = http.get("/search", params={"q": "doomed-model", "limit": 50}).json()["hits"]
        assert "mlflow:doomed-model/1" not in {h["id"] for h in hits}
        ask = http.get("/sparql", params={"query": 'ASK { ?m schema:identifier "mlflow:doomed-model/1" }'})
        assert ask.json()["boolean"] is False


def test_verify_job_checks_reachable_models_for_real(mlflow_server: object, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from modelport.verify_job import verify

    settings = Settings(data_dir=tmp_path / "v", base_iri="http://modelport.test")
    p = Pipeline(settings)
    source = MlflowSource(mlflow_server.uri, name="mlflow", cache_dir=settings.data_dir / "cache")
    p.harvest(source, mode="full")
    # not marked trusted: ONNX and skops (our allow-list) are verified, a pickled PyTorch model is not loaded
    untrusted = verify(p, source="mlflow")
    assert untrusted.results["mlflow:iris-onnx/1"].status == "verified"
    assert "mlflow:tiny-mlp/1" not in untrusted.results
    assert any(s.startswith("mlflow:tiny-mlp/1") and "not marked trusted" in s for s in untrusted.skipped)
    assert untrusted.checked == len(untrusted.results) == untrusted.verified + untrusted.failed < len(MODELS)
    report = verify(p, source="mlflow", trusted={"mlflow"})  # pickles load, in the sandbox
    assert report.checked == len(MODELS)
    for rid in ("mlflow:iris-classifier/2", "mlflow:iris-onnx/1", "mlflow:tiny-mlp/1"):
        cell = report.results[rid]
        assert cell.status == "verified", cell.measurements
        assert cell.runtime == "onnxruntime"
        if rid != "mlflow:iris-onnx/1":  # converted models were compared against their own framework
            assert cell.measurements["max_abs_diff"] <= cell.measurements["tolerance"]["atol"]
    assert report.results["mlflow:broken-model/1"].status == "failed-verification"
    # the verified cell is part of the record, survives a re-harvest, and is in the graph
    p.harvest(source, mode="full")
    rec = p.catalog.get("mlflow:tiny-mlp/1")
    assert any(c.status_at(None) == "verified" for c in rec.compatibility)
    ask = p.graph.query('ASK { ?m schema:identifier "mlflow:tiny-mlp/1" ; mp:compatibility ?c . '
                        '?c mp:status "verified" ; mp:runtime rt:onnxruntime }')
    assert ask.result.askAnswer
    # the verification numbers and the derivation chain are queryable
    rows = p.graph.query("""SELECT ?id ?diff ?tol WHERE {
        ?m schema:identifier ?id ; mp:compatibility ?c . ?c mp:status "verified" ; prov:wasGeneratedBy ?run .
        ?run a mp:VerificationRun ; mp:maxAbsDiff ?diff ; mp:atol ?tol . FILTER(?diff <= ?tol) }""").result
    assert {"mlflow:iris-classifier/2", "mlflow:tiny-mlp/1"} <= {str(r[Variable("id")]) for r in rows.bindings}
    rec = p.catalog.get("mlflow:iris-classifier/1")
    t4 = next(c for c in rec.compatibility if c.hardware == "t4")
    assert t4.status == "convertible"  # verified on this CPU is not verified on a T4
    # the target cell rests on the derived runtime cell (the check is a point beside it), whose steps it shares
    ask = p.graph.query("""ASK { ?m schema:identifier "mlflow:iris-classifier/1" ; mp:profile/mp:compatibility ?c .
        ?c mp:target tgt:cloud-nvidia-gpu ; mp:status "convertible" ; prov:wasDerivedFrom ?rc ; prov:wasGeneratedBy ?a .
        ?rc mp:runtime rt:onnxruntime ; mp:conversionStep ?s .
        ?s mp:stepIndex 0 ; mp:converter conv:skl2onnx . ?a a mp:Derivation ; mp:kbVersion ?v }""")
    assert ask.result.askAnswer
    p.close()


def test_compatibility_matrix_over_http(api: object) -> None:
    m = httpx.get(f"{api.url}/models/mlflow:iris-onnx/1/compatibility").json()
    assert "onnxruntime" in json.dumps(m)
    cell = httpx.get(f"{api.url}/models/mlflow:iris-onnx/1/compatibility/onnxruntime").json()
    assert cell["status"] == "native" and "1.12" in cell["text"]  # opset 17 → ONNX Runtime ≥ 1.12
    assert httpx.get(f"{api.url}/models/mlflow:iris-onnx/1/compatibility/warp-drive").status_code == 404


def test_paging_is_followed_to_the_end(mlflow_server: object, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=tmp_path / "p", base_iri="http://modelport.test")
    p = Pipeline(settings)
    # one registered model per page: every page token must be followed
    src = MlflowSource(mlflow_server.uri, name="paged", page_size=1, cache_dir=settings.data_dir / "cache")
    report = p.harvest(src, mode="full")
    assert report.counts["seen"] == len(MODELS)
    assert {r.local_id for r in p.catalog.iter_records()} == {m.split(":", 1)[1] for m in MODELS}
    p.close()


def test_several_registries_from_a_config_file(mlflow_server: object, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys

    config = tmp_path / "modelport.toml"
    config.write_text(f'''
base_iri = "http://modelport.test"
[[sources]]
name = "registry-a"
kind = "mlflow"
options = {{ tracking_uri = "{mlflow_server.uri}" }}
[[sources]]
name = "registry-b"
kind = "mlflow"
options = {{ tracking_uri = "{mlflow_server.uri}", page_size = 2 }}
''')
    env = {**os.environ, "MODELPORT_CONFIG": str(config), "MODELPORT_DATA_DIR": str(tmp_path / "data")}
    r = subprocess.run([sys.executable, "-m", "modelport.cli", "harvest", "configured"], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    p = Pipeline(Settings(data_dir=tmp_path / "data"))
    assert p.catalog.sources() == {"registry-a": len(MODELS), "registry-b": len(MODELS)}
    p.close()
    config.write_text(config.read_text() + '[[sources]]\nname = "bad"\nkind = "mlflow"\noptions = {}\n')
    r = subprocess.run([sys.executable, "-m", "modelport.cli", "harvest", "configured", "--name", "bad"], env=env,
                       capture_output=True, text=True, timeout=300)
    # Checked when the settings load (tests/test_plugins.py): exit 2 naming the source and the field.
    err = " ".join(r.stderr.split())
    assert r.returncode == 2 and "'bad'" in err and "options.tracking_uri: Field required" in err


def test_harvest_on_demand_and_on_schedule_through_the_api(mlflow_server: object, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import time

    from fastapi.testclient import TestClient

    from modelport.api.app import create_app
    from modelport.settings import SourceConfig

    settings = Settings(data_dir=tmp_path / "s", base_iri="http://modelport.test", admin_token="s3cret", sources=[
        SourceConfig(name="team-registry", kind="mlflow", options={"tracking_uri": mlflow_server.uri},
                     schedule="0 3 * * *")])
    with TestClient(create_app(settings)) as http:
        sources = http.get("/harvests/sources").json()
        assert sources[0]["source"] == "team-registry" and sources[0]["next_run"].startswith("20")
        admin = {"Authorization": "Bearer s3cret"}
        assert http.post("/harvests", json={"source": "team-registry"}).status_code == 401
        assert http.post("/harvests", json={"source": "nope"}, headers=admin).status_code == 404
        started = http.post("/harvests", json={"source": "team-registry", "mode": "full"}, headers=admin)
        assert started.status_code == 202
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            jobs = http.get("/harvests").json()
            if jobs and jobs[0]["status"] != "running":
                break
            time.sleep(0.5)
        assert jobs[0]["status"] == "ok" and jobs[0]["counts"]["seen"] == len(MODELS)
        assert http.get("/search", params={"q": "iris"}).json()["total"] >= 3
        assert http.get("/harvests/sources").json()[0]["last"]["status"] == "ok"
