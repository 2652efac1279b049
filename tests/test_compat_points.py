"""A verification adds a verified point to a cell and never narrows its range (issue 18, item 1), on
the demo's models: registered in the session's real MLflow server, harvested, and checked for real
on the installed ONNX Runtime by `modelport verify` (modelport/verify_job.py). A constraint at a
version answers with the status at that version — in the record, the search index, facets, the
explanation endpoint, the RDF and its SHACL shapes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import onnxruntime
import pytest
from compat_helpers import art, rec
from fastapi.testclient import TestClient
from pyshacl import validate
from rdflib import Graph

from modelport.index.facts import cell_pieces, range_codes, version_code
from modelport.index.search import RuntimeConstraint, SearchQuery
from modelport.pipeline import Pipeline
from modelport.schema.compat import artifact_signature, derive_compatibility
from modelport.schema.compat_explain import explain, matrix
from modelport.schema.kb import get_kb, ontology_dir
from modelport.schema.rdf import record_ntriples
from modelport.schema.record import CompatibilityEntry, Evidence, ModelRecord

if TYPE_CHECKING:
    from modelport.harvesters.mlflow_registry import MlflowSource
from modelport.schema.versions import VersionRange
from modelport.settings import Settings

ORT = onnxruntime.__version__  # the version every real check here ran on
CHECKED = ("mlflow:iris-onnx/1", "mlflow:iris-classifier/2", "mlflow:broken-model/1")


@pytest.fixture(scope="module")
def verified(mlflow_server: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """The demo registry harvested into a fresh data dir; three of its models checked for real."""
    from modelport.harvesters.mlflow_registry import MlflowSource
    from modelport.verify_job import verify

    settings = Settings(data_dir=tmp_path_factory.mktemp("points"), base_iri="http://modelport.test")
    p = Pipeline(settings)
    p.harvest(MlflowSource(mlflow_server.uri, name="mlflow", cache_dir=settings.data_dir / "cache"), mode="full")
    report = verify(p, source="mlflow", only=CHECKED)
    assert report.checked == 3 and report.verified == 2 and report.failed == 1, report
    yield p
    p.close()


def ort_cell(r: ModelRecord) -> CompatibilityEntry:
    return next(e for e in r.compatibility if e.runtime == "onnxruntime" and e.target is None and e.hardware is None)


def ids(p: Pipeline, version: str | None, min_status: str | None = None) -> set[str]:
    q = SearchQuery(constraints=[RuntimeConstraint(runtime="onnxruntime", version=version, min_status=min_status)],
                    limit=50)
    return {h.id for h in p.search.search(q).hits}


def test_the_cell_keeps_its_derived_status_and_range_with_the_point_inside(verified: Pipeline) -> None:
    r = verified.catalog.get("mlflow:iris-onnx/1")
    cell = ort_cell(r)
    # opset 17 → ONNX Runtime ≥ 1.12, as before any check
    assert cell.status == "native" and cell.version_range == VersionRange(min="1.12")
    [point] = cell.verifications
    assert point.status == "verified" and point.version == ORT
    assert point.platform and "CPUExecutionProvider" in point.platform and point.checked_at
    assert point.artifacts == artifact_signature(r.artifacts)
    clf = ort_cell(verified.catalog.get("mlflow:iris-classifier/2"))
    assert clf.status == "convertible" and clf.path == ["skl2onnx"]
    [p2] = clf.verifications
    assert p2.max_abs_diff is not None and p2.max_abs_diff <= p2.tolerance["atol"]
    assert {"atol", "rtol"} <= set(p2.tolerance)
    # the status at a version: the point decides at its version, the range elsewhere
    assert cell.status_at("1.16") == "native" and cell.status_at(ORT) == "verified"
    assert cell.status_at("1.11") is None
    # a re-harvest re-derives the matrix: the point stays inside, the range stays whole
    verified.harvest(_source(verified), mode="full")
    again = ort_cell(verified.catalog.get("mlflow:iris-onnx/1"))
    assert again.version_range == VersionRange(min="1.12") and [x.version for x in again.verifications] == [ORT]


def _source(p: Pipeline) -> MlflowSource:
    from modelport.harvesters.mlflow_registry import MlflowSource

    r = p.catalog.get("mlflow:iris-onnx/1")
    return MlflowSource(r.source_facts["tracking_uri"], name="mlflow", cache_dir=p.settings.data_dir / "cache")


def test_a_constraint_at_a_version_answers_with_the_status_at_that_version(verified: Pipeline) -> None:
    at_116 = ids(verified, "1.16")
    assert "mlflow:iris-onnx/1" in at_116  # native from 1.12 on: the check at 1.32 does not take 1.16 away
    assert "mlflow:iris-classifier/2" not in at_116  # its derived range (skl2onnx opset 22) starts at 1.21
    assert ids(verified, "1.16", "native") >= {"mlflow:iris-onnx/1"}
    assert ids(verified, "1.16", "verified") == set()  # nothing was checked at 1.16
    # at the checked version: verified, whether the version is a KB release ("1.32") or not ("1.32.0")
    for v in (ORT, ".".join(ORT.split(".")[:2])):
        assert ids(verified, v, "verified") == {"mlflow:iris-onnx/1", "mlflow:iris-classifier/2"}, v
    # a version between KB releases goes through the range codes, not the release tokens
    assert "mlflow:iris-onnx/1" in ids(verified, "1.16.3", "native")
    # no version: verified at some version
    assert ids(verified, None, "verified") == {"mlflow:iris-onnx/1", "mlflow:iris-classifier/2"}
    # the unchecked version of the classifier keeps its derived cell
    assert "mlflow:iris-classifier/1" in ids(verified, ORT, "convertible")
    assert "mlflow:iris-classifier/1" not in ids(verified, ORT, "verified")


def test_a_failed_verification_marks_its_version_not_the_range(verified: Pipeline) -> None:
    cell = ort_cell(verified.catalog.get("mlflow:broken-model/1"))
    assert cell.status == "convertible" and cell.version_range is not None  # derived range kept
    [point] = cell.verifications
    assert point.status == "failed-verification" and point.version == ORT and point.error
    assert cell.status_at(ORT) == "failed-verification" and cell.status_at("1.25") == "convertible"
    assert "mlflow:broken-model/1" not in ids(verified, ORT)
    assert "mlflow:broken-model/1" not in ids(verified, ".".join(ORT.split(".")[:2]))
    assert "mlflow:broken-model/1" in ids(verified, "1.25")  # other versions: still convertible
    assert "mlflow:broken-model/1" in ids(verified, None)


def test_facets_count_the_points(verified: Pipeline) -> None:
    res = verified.search.search(SearchQuery(facets=["status"], limit=50))
    counts = res.facets["status"].counts
    assert counts["verified"] == 2 and counts["failed-verification"] == 1
    assert counts["native"] >= 3  # iris-onnx keeps its native cell beside its verified point


def test_search_api_reads_versions_in_words_and_syntax(verified: Pipeline) -> None:
    from modelport.api.app import create_app

    with TestClient(create_app(verified.settings)) as http:
        def hits(q: str) -> set[str]:
            body = http.get("/search", params={"q": q, "limit": 50}).json()
            return {h["id"] for h in body["hits"]}

        assert "mlflow:iris-onnx/1" in hits("runtime:onnxruntime@1.16")
        assert "mlflow:iris-onnx/1" in hits("iris classifier runnable in onnxruntime 1.16")
        assert hits("runtime:onnxruntime@1.16 status:verified") == set()
        assert hits("runtime:onnxruntime@1.32 status:verified") == {"mlflow:iris-onnx/1", "mlflow:iris-classifier/2"}


def test_explanation_endpoint_answers_at_a_version(verified: Pipeline) -> None:
    from modelport.api.app import create_app

    with TestClient(create_app(verified.settings)) as http:
        url = "/models/mlflow:iris-onnx/1/compatibility/onnxruntime"
        plain = http.get(url).json()
        assert plain["status"] == "native" and set(plain["statuses"]) == {"native", "verified"}
        [point] = plain["cell"]["verifications"]
        assert point["version"] == ORT and point["text"].startswith(f"verified at {ORT}")
        assert f"verified at {ORT}" in plain["text"] and "≥ 1.12" in plain["text"]
        at = http.get(url, params={"version": "1.16"}).json()
        assert at["status"] == "native" and "inside ≥ 1.12" in at["text"] and ORT in at["text"]
        assert http.get(url, params={"version": ORT}).json()["status"] == "verified"
        assert http.get(url, params={"version": "1.11"}).json()["status"] is None
        broken = http.get("/models/mlflow:broken-model/1/compatibility/onnxruntime", params={"version": ORT}).json()
        assert broken["status"] == "failed-verification" and "failed verification" in broken["text"]
        assert http.get(url, params={"version": "not a version"}).status_code == 422
        m = http.get("/models/mlflow:iris-onnx/1/compatibility").json()
        assert m["runtimes"]["onnxruntime"]["status"] == "native"
        assert m["cells"]["onnxruntime"]["cloud-cpu"]["verified_at"] == [ORT]


def test_rdf_keeps_the_derived_cell_and_adds_the_point(verified: Pipeline) -> None:
    rows = verified.graph.query(f"""SELECT ?st ?min ?diff WHERE {{
        ?m schema:identifier "mlflow:iris-classifier/2" ; mp:compatibility ?p .
        ?p a mp:VerifiedPoint ; mp:status "verified" ; mp:atVersion "{ORT}" ; mp:pointIn ?c ;
           prov:wasGeneratedBy ?run .
        ?run mp:maxAbsDiff ?diff ; mp:atol ?tol ; mp:platform ?plat ; mp:artifactSignature ?sig ;
             prov:endedAtTime ?when .
        ?c mp:status ?st ; mp:runtime rt:onnxruntime ; mp:minVersion ?min .
        ?m mp:profile?/mp:compatibility ?c . FILTER(?diff <= ?tol) }}""").result
    [(st, lo, _)] = [tuple(str(v) for v in b.values()) for b in rows.bindings]
    assert st == "convertible" and lo == "1.21"
    # the failed check is a point at its version; the derived cell beside it keeps its status
    ask = verified.graph.query(f"""ASK {{ ?m schema:identifier "mlflow:broken-model/1" ; mp:compatibility ?p ;
        mp:profile?/mp:compatibility ?c .
        ?p a mp:VerifiedPoint ; mp:status "failed-verification" ; mp:atVersion "{ORT}" ; mp:pointIn ?c .
        ?c mp:status "convertible" }}""")
    assert ask.result.askAnswer


def test_shapes_accept_points_and_reject_a_point_outside_a_cell(verified: Pipeline) -> None:
    shapes = Graph().parse(ontology_dir() / "shapes.ttl", format="turtle")
    data = Graph()
    for rid in CHECKED:
        data.parse(data=record_ntriples(verified.catalog.get(rid), "http://modelport.test"), format="nt")
    conforms, _, report = validate(data, shacl_graph=shapes, inference="none")
    assert conforms, report[:3000]
    bad = Graph().parse(data="""
        @prefix mp: <https://w3id.org/modelport/ns#> . @prefix prov: <http://www.w3.org/ns/prov#> .
        <http://x/p> a mp:VerifiedPoint, mp:CompatibilityAssertion ; mp:status "native" ; mp:hops 0 ;
            mp:atVersion "1.32.0" ; mp:minVersion "1.12" ; mp:runtime <http://x/rt> ;
            prov:wasDerivedFrom <http://x/e> ; prov:wasGeneratedBy <http://x/run> .
        <http://x/run> a mp:VerificationRun .""", format="turtle")
    conforms, _, report = validate(bad, shacl_graph=shapes, inference="none")
    assert not conforms
    assert "pointIn" in report and "atVersion = minVersion" in report and "status" in report


# -- the rule itself, on cells built here --------------------------------------------------------------
def _point(status: str, version: str | None, when: str = "2026-12-01T00:00:00+00:00") -> CompatibilityEntry:
    m = {"onnxruntime_version": version, "verified_at": when} if version else {"verified_at": when}
    return CompatibilityEntry(runtime="onnxruntime", format="onnx", status=status, measurements=m,  # type: ignore[arg-type]
                              evidence=[Evidence(kind="verification", detail=f"{status} at {version}")])


def test_failed_and_verified_points_cut_and_add_pieces() -> None:
    kb = get_kb()
    r = rec("cut", artifacts=[art("model.onnx", "onnx", 1000, opset=17, ir_version=8)])
    r.compatibility = [_point("failed-verification", "1.20.0"), _point("verified", "1.32.0")]
    cell = ort_cell(rec("cut2", artifacts=r.artifacts, compatibility=derive_compatibility(r, kb)))
    assert cell.status == "native" and len(cell.verifications) == 2
    pieces = cell_pieces(cell)
    lo, hi = range_codes(VersionRange(min="1.12"))
    c20, c32 = version_code("1.20.0"), version_code("1.32.0")
    assert ("native", lo, c20) in pieces and ("native", c20 + 1, hi) in pieces  # 1.20 cut out
    assert ("verified", c32, c32 + 1) in pieces
    assert cell.status_at("1.20") == "failed-verification" and cell.status_at("1.19") == "native"
    assert cell.status_at("1.21") == "native" and cell.status_at("1.32") == "verified"
    # a later check at a version replaces an earlier one there
    r.compatibility = [_point("verified", "1.20.0", "2026-11-01T00:00:00+00:00"),
                       _point("failed-verification", "1.20.0", "2026-12-01T00:00:00+00:00")]
    cell = ort_cell(rec("cut3", artifacts=r.artifacts, compatibility=derive_compatibility(r, kb)))
    assert cell.status_at("1.20.0") == "failed-verification"
    assert not any(p[0] == "verified" for p in cell_pieces(cell))


def test_a_check_without_a_derived_cell_makes_one_at_its_version(tmp_path: Path) -> None:
    kb = get_kb()
    r = rec("alone", compatibility=[_point("verified", "1.32.0")])
    cell = ort_cell(rec("alone2", compatibility=derive_compatibility(r, kb)))
    assert cell.status == "verified" and cell.version_range == VersionRange(min="1.32.0", max="1.32.0",
                                                                          max_inclusive=True)
    assert cell.status_at("1.32") == "verified" and cell.status_at("1.16") is None
    m = matrix(rec("alone3", compatibility=[cell]), kb)
    assert m["runtimes"]["onnxruntime"]["verifications"][0]["version"] == "1.32.0"
    assert explain(rec("alone4", compatibility=[cell]), "onnxruntime", kb, version="1.32")["status"] == "verified"


# -- both search backends answer per version -------------------------------------------------------------
def _indexed_pair() -> list[ModelRecord]:
    kb = get_kb()
    out = []
    for rid, checks in (("checked", [_point("failed-verification", "1.20.0"), _point("verified", "1.32.0")]),
                        ("plain", [])):
        r = rec(rid, artifacts=[art("model.onnx", "onnx", 1000, opset=17, ir_version=8)], compatibility=checks)
        r.compatibility = derive_compatibility(r, kb)
        out.append(r)
    return out


@pytest.fixture(params=["tantivy", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)])
def pair_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    if request.param == "tantivy":
        from modelport.index.embedded import TantivyBackend

        b: object = TantivyBackend(tmp_path / "idx")
    else:
        from modelport.index.elasticsearch_backend import ElasticsearchBackend, unique_index_name

        b = ElasticsearchBackend(request.getfixturevalue("elasticsearch_url"), index_name=unique_index_name(),
                                 replicas=0)
    b.upsert(_indexed_pair())  # type: ignore[attr-defined]
    b.commit()  # type: ignore[attr-defined]
    yield b
    if request.param != "tantivy":
        b.delete_index()  # type: ignore[attr-defined]
    b.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize(("version", "and_newer", "min_status", "expected"), [
    ("1.16", False, None, {"checked", "plain"}),  # a KB release: release tokens
    ("1.16.3", False, None, {"checked", "plain"}),  # between releases: the range codes
    ("1.20", False, None, {"plain"}),  # failed there: that version only is cut out …
    ("1.20.0", False, "native", {"plain"}),
    ("1.20.1", False, "native", {"checked", "plain"}),  # … the next patch release is inside the range again
    ("1.21", False, "native", {"checked", "plain"}),
    ("1.32", False, "verified", {"checked"}),
    ("1.32.0", False, "native", {"checked", "plain"}),  # verified satisfies "at least native"
    ("1.16", True, None, {"plain"}),  # "1.16 and every later one": not where 1.20 failed
    ("1.21", True, None, {"checked", "plain"}),
    (None, False, "verified", {"checked"}),
])
def test_both_backends_answer_with_the_status_at_the_version(
        pair_backend: object, version: str | None, and_newer: bool, min_status: str | None,
        expected: set[str]) -> None:
    q = SearchQuery(constraints=[RuntimeConstraint(runtime="onnxruntime", version=version, and_newer=and_newer,
                                                   min_status=min_status)], limit=10)
    got = {h.id.split(":", 1)[1] for h in pair_backend.search(q).hits}  # type: ignore[attr-defined]
    assert got == expected
