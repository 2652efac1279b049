"""Embedded search backend: Tantivy (BM25 over name, description, card and tags; raw fast fields
for exact filters and facet aggregations; numeric fast fields for sorting)."""

from __future__ import annotations

import logging
import re
import shutil
import time
from pathlib import Path

import tantivy

from modelport.index.search import (
    FILTER_FIELDS,
    FacetCounts,
    Hit,
    SearchQuery,
    SearchResult,
    keyword_values,
    search_text,
)
from modelport.schema.record import ModelRecord

log = logging.getLogger(__name__)

_BOOSTS = {"name": 5.0, "tags": 3.0, "description": 1.5, "card": 1.0}
_NUMERIC = ("downloads", "likes", "modified", "params")
_QUERY_SYNTAX = re.compile(r'[+\-&|!(){}\[\]^~*?:\\/<>=]')


def _schema() -> tantivy.Schema:
    b = tantivy.SchemaBuilder()
    b.add_text_field("id", stored=True, tokenizer_name="raw", fast=True)
    b.add_text_field("id_lc", tokenizer_name="raw")
    b.add_text_field("name_lc", tokenizer_name="raw")
    for f in _BOOSTS:
        b.add_text_field(f, tokenizer_name="en_stem")
    for f in FILTER_FIELDS:
        b.add_text_field(f, tokenizer_name="raw", fast=True)
    for f in _NUMERIC:
        b.add_integer_field(f, fast=True, indexed=True)
    return b.build()


class TantivyBackend:
    name = "embedded"

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.schema = _schema()
        self.index = tantivy.Index(self.schema, path=str(self.path), reuse=True)
        self._writer: tantivy.IndexWriter | None = None

    # -- writes ------------------------------------------------------------------------------
    def _w(self) -> tantivy.IndexWriter:
        if self._writer is None:
            self._writer = self.index.writer(heap_size=128_000_000, num_threads=1)
        return self._writer

    def upsert(self, records: list[ModelRecord]) -> None:
        w = self._w()
        for r in records:
            w.delete_documents_by_term("id", r.id)
            w.add_document(self._doc(r))

    def _doc(self, r: ModelRecord) -> tantivy.Document:
        d = tantivy.Document()
        d.add_text("id", r.id)
        d.add_text("id_lc", r.id.lower())
        for key in {r.name.lower(), r.local_id.lower(), r.local_id.rsplit("/", 1)[-1].lower()}:
            d.add_text("name_lc", key)
        for field, text in search_text(r).items():
            if text:
                d.add_text(field, text)
        for field, values in keyword_values(r).items():
            for v in values:
                d.add_text(field, v)
        d.add_integer("downloads", r.popularity.downloads or 0)
        d.add_integer("likes", r.popularity.likes or 0)
        d.add_integer("modified", int(r.modified.timestamp()) if r.modified else 0)
        d.add_integer("params", r.parameter_count or 0)
        return d

    def delete(self, ids: list[str]) -> None:
        w = self._w()
        for rid in ids:
            w.delete_documents_by_term("id", rid)

    def commit(self) -> None:
        if self._writer is not None:
            self._writer.commit()
            self._writer.wait_merging_threads()
            self._writer = None
        self.index.reload()

    def clear(self) -> None:
        if self._writer is not None:
            self._writer.rollback()
            self._writer = None
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir(parents=True, exist_ok=True)
        self.index = tantivy.Index(self.schema, path=str(self.path), reuse=False)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.commit()
            self._writer = None

    def count(self) -> int:
        self.index.reload()
        return self.index.searcher().num_docs

    # -- reads -------------------------------------------------------------------------------
    def build_query(self, q: SearchQuery) -> tantivy.Query:
        clauses: list[tuple[tantivy.Occur, tantivy.Query]] = []
        text = q.text.strip()
        if text:
            clauses.append((tantivy.Occur.Must, self.text_query(text)))
        for field, values in q.filters.items():
            if values:
                clauses.append((tantivy.Occur.Must, tantivy.Query.term_set_query(self.schema, field, values)))
        for field, values in q.exclude.items():
            if values:
                clauses.append((tantivy.Occur.MustNot, tantivy.Query.term_set_query(self.schema, field, values)))
        if not clauses:
            return tantivy.Query.all_query()
        if all(o == tantivy.Occur.MustNot for o, _ in clauses):
            clauses.append((tantivy.Occur.Must, tantivy.Query.all_query()))
        return tantivy.Query.boolean_query(clauses)

    def text_query(self, text: str) -> tantivy.Query:
        """Any term may match (BM25 ranks documents with more of them higher); an exact id or name
        match is boosted far above everything else; quoted phrases are kept as phrases."""
        cleaned = _QUERY_SYNTAX.sub(" ", text)
        cleaned = cleaned.replace('"', " ") if cleaned.count('"') % 2 else cleaned
        parsed, _errors = self.index.parse_query_lenient(
            cleaned, list(_BOOSTS), field_boosts=_BOOSTS, conjunction_by_default=False)
        exact = text.strip().lower()
        return tantivy.Query.boolean_query([
            (tantivy.Occur.Should, parsed),
            (tantivy.Occur.Should, tantivy.Query.boost_query(
                tantivy.Query.term_set_query(self.schema, "name_lc", [exact]), 1000.0)),
            (tantivy.Occur.Should, tantivy.Query.boost_query(
                tantivy.Query.term_set_query(self.schema, "id_lc", [exact]), 2000.0)),
        ])

    def search(self, q: SearchQuery) -> SearchResult:
        start = time.monotonic()
        searcher = self.index.searcher()
        query = self.build_query(q)
        kwargs = {} if q.sort == "relevance" else {"order_by_field": q.sort, "order": tantivy.Order.Desc}
        res = searcher.search(query, limit=q.limit, offset=q.offset, count=True, **kwargs)
        hits = []
        for key, addr in res.hits:
            doc = searcher.doc(addr)
            hits.append(Hit(id=doc["id"][0], score=float(key) if q.sort == "relevance" else 0.0))
        facets = self.facets(searcher, query, q.facets, q.facet_timeout_s)
        return SearchResult(total=res.count or 0, hits=hits, facets=facets,
                            took_ms=(time.monotonic() - start) * 1000)

    def facets(self, searcher: tantivy.Searcher, query: tantivy.Query, fields: list[str],
               budget_s: float) -> dict[str, FacetCounts]:
        """Per-field term counts under the query, within a shared time budget: a facet that does
        not get its turn in time is reported as timed out and the results still come."""
        out: dict[str, FacetCounts] = {}
        deadline = time.monotonic() + budget_s
        for field in fields:
            if field not in FILTER_FIELDS:
                continue
            if time.monotonic() > deadline:
                out[field] = FacetCounts(timed_out=True)
                continue
            agg = searcher.aggregate(query, {field: {"terms": {"field": field, "size": 50}}})
            buckets = agg.get(field, {}).get("buckets", [])
            out[field] = FacetCounts(counts={b["key"]: int(b["doc_count"]) for b in buckets})
        return out
