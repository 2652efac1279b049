"""Source terms: a task or library a source names that the KB does not know is kept on the record as
the source said it (`ModelRecord.source_terms`), and is filterable and faceted on every search
backend like a KB term, marked in the facet payload as the source's word.

The backend tests run against the embedded Tantivy index and the real Elasticsearch node the suite
starts (tests/conftest.py); the harvest paths through the real clients are in
tests/test_source_terms_harvest.py."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from modelport.index.embedded import TantivyBackend
from modelport.index.query_syntax import compile_query
from modelport.index.search import SearchQuery
from modelport.schema.record import (
    SOURCE_TERM_MAX_CHARS,
    SOURCE_TERMS_MAX,
    ModelRecord,
    Provenance,
    SourceTerm,
    source_terms,
)

if TYPE_CHECKING:
    from modelport.index.elasticsearch_backend import ElasticsearchBackend

    Backend = TantivyBackend | ElasticsearchBackend

BACKENDS = ["tantivy", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)]


def record(rid: str, *, tasks: list[str] = (), frameworks: list[str] = (),  # type: ignore[assignment]
           terms: list[SourceTerm] = ()) -> ModelRecord:  # type: ignore[assignment]
    return ModelRecord(id=f"test:{rid}", source="test", source_kind="test", local_id=rid, name=rid,
                       tasks=list(tasks), frameworks=list(frameworks), source_terms=list(terms),
                       provenance=Provenance(harvested_at=datetime.now(UTC), harvester="test",
                                             harvester_version="1"))


def term(vocabulary: str, value: str) -> SourceTerm:
    return SourceTerm(vocabulary=vocabulary, value=value, source_key="test")  # type: ignore[arg-type]


RECORDS = [
    record("a", tasks=["image-classification"], frameworks=["pytorch"]),
    record("b", tasks=["image-classification"], terms=[term("library", "fairseq")]),
    record("c", terms=[term("task", "image-to-3d"), term("library", "FairSeq")]),
    record("d", frameworks=["pytorch"], terms=[term("task", "Video-Feature-Extraction")]),
]


@pytest.fixture(params=BACKENDS)
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "tantivy":
        b: Backend = TantivyBackend(tmp_path / "idx")
    else:
        from modelport.index.elasticsearch_backend import ElasticsearchBackend, unique_index_name

        b = ElasticsearchBackend(request.getfixturevalue("elasticsearch_url"), index_name=unique_index_name(),
                                 replicas=0)
    b.upsert(RECORDS)
    b.commit()
    yield b
    if not isinstance(b, TantivyBackend):
        b.delete_index()
    b.close()


def ids(b: Backend, q: str) -> set[str]:
    query, _ = compile_query(q, nl=False)
    return {h.id for h in b.search(query.model_copy(update={"limit": 50})).hits}


def test_source_terms_filter_like_kb_terms(index: Backend) -> None:
    assert ids(index, "task:image-to-3d") == {"test:c"}
    assert ids(index, "library:fairseq") == {"test:b", "test:c"}  # "FairSeq" folds to the same name
    assert ids(index, "framework:FAIRSEQ") == {"test:b", "test:c"}
    assert ids(index, "task:video-feature-extraction") == {"test:d"}
    assert ids(index, "task:image-to-3d,image-classification") == {"test:a", "test:b", "test:c"}
    assert ids(index, "framework:pytorch -library:fairseq") == {"test:a", "test:d"}
    # A KB term still finds only records that carry it.
    assert ids(index, "framework:pytorch") == {"test:a", "test:d"}


def test_facets_count_source_terms_and_mark_them(index: Backend) -> None:
    res = index.search(SearchQuery(facets=["task", "framework", "source"], limit=1))
    assert res.facets["task"].counts == {"image-classification": 2, "image-to-3d": 1, "video-feature-extraction": 1}
    assert sorted(res.facets["task"].source_terms) == ["image-to-3d", "video-feature-extraction"]
    assert res.facets["framework"].counts == {"pytorch": 2, "fairseq": 2}
    assert res.facets["framework"].source_terms == ["fairseq"]
    assert res.facets["source"].source_terms == []  # only tasks and libraries have source terms
    under, _ = compile_query("library:fairseq", nl=False)
    res = index.search(under.model_copy(update={"facets": ["task"]}))
    assert res.facets["task"].counts == {"image-classification": 1, "image-to-3d": 1}
    assert res.facets["task"].source_terms == ["image-to-3d"]


def test_source_terms_are_bounded_and_trimmed() -> None:
    notes: list[str] = []
    said: list[tuple[str, object]] = [("library_name", "  fairseq "), ("library_name", "FAIRSEQ"),
                                      ("library_name", "x" * (SOURCE_TERM_MAX_CHARS + 1)),
                                      ("library_name", "bad\x00name"), ("library_name", ""), ("library_name", 42)]
    said += [("library_name", f"lib-{i}") for i in range(SOURCE_TERMS_MAX + 5)]
    got = source_terms("library", said, notes.append)
    assert got[0].value == "fairseq" and got[0].key == "fairseq"
    assert len(got) == SOURCE_TERMS_MAX and len({t.key for t in got}) == SOURCE_TERMS_MAX
    assert any("not a plausible library name" in n for n in notes)
    assert any(f"kept the first {SOURCE_TERMS_MAX}" in n for n in notes)


def test_a_record_without_source_terms_hashes_as_before() -> None:
    # Adding the field must not make every stored record look changed on the next harvest: the hash is
    # what it was before the field existed (the JSON of the other fields) while the field is empty.
    r = record("a", tasks=["image-classification"])
    before = r.normalized().model_dump_json(exclude={"provenance": {"harvested_at", "content_hash"},
                                                     "source_code": True, "source_terms": True})
    assert r.compute_hash() == hashlib.sha256(before.encode()).hexdigest()
    with_term = r.model_copy(update={"source_terms": [term("task", "image-to-3d")]})
    assert with_term.compute_hash() != r.compute_hash()


def test_the_shapes_check_source_term_nodes() -> None:
    from pyshacl import validate
    from rdflib import Graph

    from modelport.schema.kb import ontology_dir
    from modelport.schema.rdf import record_ntriples

    shapes = Graph().parse(ontology_dir() / "shapes.ttl", format="turtle")
    r = record("c", terms=[term("task", "image-to-3d"), term("library", "FairSeq")]).with_hash()
    r.iri = "http://t/model/test/c"
    good = record_ntriples(r, "http://t")
    assert '"FairSeq"' in good and '"fairseq"' in good  # the name as written and the code filters match
    assert validate(Graph().parse(data=good, format="nt"), shacl_graph=shapes, inference="none")[0]
    bad = good.replace('"library"', '"licence"')
    assert not validate(Graph().parse(data=bad, format="nt"), shacl_graph=shapes, inference="none")[0]
