"""The embedded `SearchBackend`, `TantivyBackend`: opens the index directory (or empties it and flags it for
a rebuild when another layout, facts encoding or KB built it), keeps one writer open across commits while
writes keep coming, and answers searches: the query from query.py, the page from paging.py, the facets
from facets.py beside it."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import tantivy

from modelport.index.embedded.documents import document
from modelport.index.embedded.facets import collect_facets, count_matches, counted, facet_group, submit_facets
from modelport.index.embedded.matches import ConstraintMatches
from modelport.index.embedded.meta import META_FILE, IndexMeta
from modelport.index.embedded.paging import relevance_page, sorted_page
from modelport.index.embedded.query import QueryCompiler
from modelport.index.embedded.schema import as_int, build_schema, float_fields
from modelport.index.lineage import Tree
from modelport.index.search import (
    FacetCounts,
    SearchQuery,
    SearchResult,
    decode_cursor,
    encode_cursor,
    rebuild_in_batches,
)
from modelport.schema.record import ModelRecord

log = logging.getLogger(__name__)

# Big enough that a bulk commit interval (50k records) fills one segment: fewer segments to merge.
# Tantivy takes the memory as documents arrive, so a small batch does not hold it.
_WRITER_HEAP = 400_000_000
_WRITER_IDLE_S = 2.0  # an open writer with nothing to commit is given back after this long


class TantivyBackend(QueryCompiler):
    """The embedded `SearchBackend` over one index directory (query.py compiles its queries)."""

    name = "embedded"

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.schema = build_schema()
        self._float_fields = float_fields()
        self.meta = IndexMeta(self.path / META_FILE)
        self.needs_rebuild = False
        self._writer: tantivy.IndexWriter | None = None
        self._wlock = threading.RLock()
        self._dirty = False  # writes since the last commit
        self._idle_timer: threading.Timer | None = None
        self._pending_rows: dict[str, int] = {}
        self._commits = 0
        self._lineage_memo: dict[tuple[Any, ...], Tree] = {}
        self._lineage_lock = threading.Lock()
        has_index = tantivy.Index.exists(str(self.path))
        stale = has_index and (not self.meta.load() or self.meta.versions != IndexMeta.current_versions())
        if not stale and has_index:
            try:
                self.index = tantivy.Index(self.schema, path=str(self.path), reuse=True)
            except ValueError:
                stale = True
        if stale:
            # An index written by another layout, facts encoding or KB: its facts cannot be trusted.
            log.warning("search index at %s was built by another version; it is emptied and must be "
                        "rebuilt from the catalog", self.path)
            self.needs_rebuild = True
            self._wipe()
        elif not has_index:
            self._wipe()

    def _wipe(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir(parents=True, exist_ok=True)
        self.meta.reset()
        self.meta.save()
        self.index = tantivy.Index(self.schema, path=str(self.path), reuse=False)

    # -- writes ------------------------------------------------------------------------------
    def _w(self) -> tantivy.IndexWriter:
        """The writer, kept open from one commit to the next while writes keep coming (a bulk
        reindex commits every batch: reopening it and waiting for its merges each time cost ~50 us a
        record at 20k records and more at 1M, where merges of big segments then block the batch).
        It is given back `_WRITER_IDLE_S` after the last write, so another process can write."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self._writer is None:
            deadline = time.monotonic() + _WRITER_IDLE_S + 10.0
            while True:
                try:
                    self._writer = self.index.writer(heap_size=_WRITER_HEAP, num_threads=1)
                    break
                except ValueError:
                    # Another writer holds the index lock (an idle one is given back within seconds).
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            # Whatever was committed before the lock was ours: rows and keys continue from there.
            self.index.reload()
            self.meta.refresh()
        return self._writer

    def _release_idle(self) -> None:
        with self._wlock:
            if self._writer is not None and not self._dirty:
                self._writer.wait_merging_threads()
                self._writer = None
                self._pending_rows.clear()

    def upsert(self, records: list[ModelRecord]) -> None:
        with self._wlock:
            w = self._w()
            self._dirty = True
            rows, known = self._rows_for([r.id for r in records])
            added: set[str] = set()
            for r in records:
                # A record the index has never held needs no delete (a delete is applied to every
                # segment at commit).
                if r.id in known or r.id in added:
                    w.delete_documents_by_term("id", r.id)
                added.add(r.id)
                w.add_document(document(r, rows[r.id], self.schema, self.meta, self._float_fields))

    def _rows_for(self, ids: list[str]) -> tuple[dict[str, int], set[str]]:
        """A record keeps its row number for life (vector indexes and sort keys use it); new ids
        take the next free number. Also returns the ids the index (or this writer) already holds."""
        out = {i: self._pending_rows[i] for i in ids if i in self._pending_rows}
        todo = [i for i in ids if i not in out]
        if todo:
            searcher = self.index.searcher()
            if searcher.num_docs:
                res = searcher.search(tantivy.Query.term_set_query(self.schema, "id", todo), limit=len(todo),
                                      count=False)
                addrs = [a for _, a in res.hits]
                for addr, row in zip(addrs, searcher.fast_field_values("row", addrs), strict=True):
                    out[searcher.doc(addr)["id"][0]] = as_int(row)
        known = set(out)
        for i in ids:
            if i not in out:
                out[i] = self.meta.next_row
                self.meta.next_row += 1
        self._pending_rows.update(out)
        return out, known

    def delete(self, ids: list[str]) -> None:
        with self._wlock:
            w = self._w()
            self._dirty = True
            for rid in ids:
                w.delete_documents_by_term("id", rid)
                self._pending_rows.pop(rid, None)

    def commit(self) -> None:
        with self._wlock:
            if self._writer is not None and self._dirty:
                # Keys and row numbers first: a committed document never refers to an unsaved key.
                self.meta.save()
                self._writer.commit()
                self._dirty = False
                self._pending_rows.clear()
                self._commits += 1
            self.index.reload()
            if self._writer is not None:
                self._idle_timer = threading.Timer(_WRITER_IDLE_S, self._release_idle)
                self._idle_timer.daemon = True
                self._idle_timer.start()

    def clear(self) -> None:
        with self._wlock:
            self._cancel_idle()
            if self._writer is not None:
                self._writer.rollback()
                self._writer.wait_merging_threads()
                self._writer = None
            self._dirty = False
            self._pending_rows.clear()
            self._wipe()
            self.needs_rebuild = False

    def close(self) -> None:
        with self._wlock:
            self._cancel_idle()
            if self._writer is not None:
                if self._dirty:
                    self.meta.save()
                    self._writer.commit()
                self._writer.wait_merging_threads()
                self._writer = None
                self._dirty = False
                self._pending_rows.clear()

    def _cancel_idle(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def count(self) -> int:
        self.index.reload()
        return self.index.searcher().num_docs

    def rebuild_from(self, records: Iterable[ModelRecord], batch: int = 1000) -> int:
        """Empty the index and index `records` (the catalog's live records) again."""
        return rebuild_in_batches(self, records, batch)

    # -- hard-constraint sets (for vector search restriction) -----------------------------------
    def constraint_matches(self, q: SearchQuery) -> ConstraintMatches:
        """The records `q` selects, on the current searcher: what the hybrid ranking's dense side
        needs (index/hybrid.py), without it knowing Tantivy."""
        return ConstraintMatches(self.schema, self.index.searcher(), self.build_query(q))

    def row_space(self) -> str:
        """The numbering generation of the row numbers (a vector index sharing them checks it)."""
        return self.meta.generation

    def _constraints_only(self, q: SearchQuery) -> ConstraintMatches:
        return self.constraint_matches(q.model_copy(update={"text": "", "rank_boosts": False}))

    def count_matching(self, q: SearchQuery) -> int:
        return self._constraints_only(q).count()

    def matching_rows(self, q: SearchQuery) -> np.ndarray:
        """Row numbers of every record satisfying the hard constraints (free text ignored; negated
        words still exclude), sorted; read from the `row` fast field without loading documents."""
        m = self._constraints_only(q)
        return np.sort(np.asarray(m.rows(m.count()), dtype=np.uint64))

    def matching_ids(self, q: SearchQuery) -> list[str]:
        """Ids of every record satisfying the hard constraints, free text ignored."""
        m = self._constraints_only(q)
        return sorted(m.ids(m.count()))

    def rows_of(self, ids: list[str]) -> dict[str, int]:
        """Row number of each id present in the committed index or written by this backend's open
        writer (the vector projection applies a batch before the search index commits it)."""
        if not ids:
            return {}
        with self._wlock:
            out = {i: self._pending_rows[i] for i in ids if i in self._pending_rows}
        todo = [i for i in ids if i not in out]
        if not todo:
            return out
        searcher = self.index.searcher()
        res = searcher.search(tantivy.Query.term_set_query(self.schema, "id", todo), limit=len(todo), count=False)
        addrs = [a for _, a in res.hits]
        out.update({searcher.doc(a)["id"][0]: as_int(r)
                    for a, r in zip(addrs, searcher.fast_field_values("row", addrs), strict=True)})
        return out

    # -- search ------------------------------------------------------------------------------
    def search(self, q: SearchQuery) -> SearchResult:
        start = time.monotonic()
        self.meta.refresh()
        searcher = self.index.searcher()
        query = self.build_query(q)
        facet_futures = submit_facets(searcher, query, q.facets)
        # The facet aggregation counts the matches as it goes, without scoring them; the page's own
        # count would make Tantivy score every match a second time (~1.6 ms a query at 1M records).
        count = not facet_futures
        cursor = decode_cursor(q)
        notices: list[str] = []
        if q.sort == "relevance" and (q.text.strip() or (q.rank_boosts and q.has_boosts())):
            total, hits, after = relevance_page(searcher, query, q, cursor, notices, count)
        else:
            total, hits, after = sorted_page(searcher, self.schema, query, q, cursor, count)
        facets = collect_facets(facet_futures, q.facet_timeout_s, start)
        if total is None:
            total = counted(facet_futures)
            if total is None:  # the facets ran out of time (or failed): count on its own
                total = count_matches(searcher, query)
        if q.explain and hits:
            parts = self.boosts_of(q, [h.id for h in hits])
            hits = [h.model_copy(update={"explain": {"backend_score": h.score, "boosts_in_score": q.rank_boosts,
                                                     **parts.get(h.id, {})}}) for h in hits]
        position = (cursor["n"] if cursor else q.offset) + len(hits)
        next_cursor = encode_cursor(q, after, position) if hits and position < total and after else None
        return SearchResult(total=total, hits=hits, facets=facets, took_ms=(time.monotonic() - start) * 1000,
                            notices=notices, next_cursor=next_cursor)

    # -- facets ------------------------------------------------------------------------------
    def _facet(self, searcher: tantivy.Searcher, query: tantivy.Query, field: str) -> dict[str, int]:
        counts: dict[str, int] = facet_group(searcher, query, [field])[field]
        return counts

    # kept for callers of the earlier interface
    def facets(self, searcher: tantivy.Searcher, query: tantivy.Query, fields: list[str],
               budget_s: float) -> dict[str, FacetCounts]:
        start = time.monotonic()
        return collect_facets(submit_facets(searcher, query, fields), budget_s, start)
