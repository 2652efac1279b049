"""`ConstraintMatches`: the records one query selects on one searcher, as the hybrid ranking's dense side
needs them (index/hybrid.py `ConstraintSet`)."""

from __future__ import annotations

import numpy as np
import tantivy

from modelport.index.embedded.schema import MUST, SHOULD, matched
from modelport.index.search import exact_names


class ConstraintMatches:
    """The records one query selects, on one searcher (a snapshot): how many, their row numbers or
    ids, which of some given rows or ids are among them, and which have an exact id or name. The
    hybrid ranking restricts its dense search with it (index/hybrid.py `ConstraintSet`)."""

    # The count's pass also collects up to this many matches: when that is all of them (most
    # constrained queries), `rows` answers from it instead of evaluating the query a second time
    # (index/hybrid.py lists every match below its LIST_ALWAYS, which is the same figure).
    PREFETCH = 5_000

    def __init__(self, schema: tantivy.Schema, searcher: tantivy.Searcher, query: tantivy.Query) -> None:
        self._schema = schema
        self._searcher = searcher
        self._query = query
        self.n_all = self._searcher.num_docs
        self._all: list[tantivy.DocAddress] | None = None  # every match, when the count saw them all

    def _search(self, query: tantivy.Query, limit: int, count: bool = False) -> tantivy.SearchResult:
        # Ordered by the `row` fast field, not by score: Tantivy then builds the query without
        # scoring, and nothing here needs a score. At 1M records a constraint query counted and
        # listed this way took ~4 ms, scored ~10-12 ms (the scored top-k and its BM25 weights).
        return self._searcher.search(query, limit=max(limit, 1), count=count, order_by_field="row")

    def count(self) -> int:
        res = self._search(self._query, self.PREFETCH, count=True)
        n = matched(res)
        if n <= self.PREFETCH:
            self._all = [a for _, a in res.hits]
        return n

    def _addrs(self, query: tantivy.Query, limit: int) -> list[tantivy.DocAddress]:
        if query is self._query and self._all is not None:
            return self._all[:limit]
        return [a for _, a in self._search(query, limit).hits]

    def _ids(self, addrs: list[tantivy.DocAddress]) -> list[str]:
        return [self._searcher.doc(a)["id"][0] for a in addrs]

    def _rows(self, addrs: list[tantivy.DocAddress]) -> np.ndarray:
        # Read from the `row` fast field: no document is loaded.
        return np.asarray(self._searcher.fast_field_values("row", addrs), dtype=np.int64)

    def rows(self, limit: int) -> np.ndarray:
        """Row numbers of (up to `limit` of) the matching records."""
        return self._rows(self._addrs(self._query, limit))

    def ids(self, limit: int) -> list[str]:
        return self._ids(self._addrs(self._query, limit))

    def _within(self, member: tantivy.Query) -> tantivy.Query:
        return tantivy.Query.boolean_query([(MUST, self._query), (MUST, member)])

    def rows_among(self, rows: np.ndarray) -> np.ndarray:
        """Which of `rows` belong to matching records."""
        member = tantivy.Query.term_set_query(self._schema, "row", [int(r) for r in rows])
        return self._rows(self._addrs(self._within(member), len(rows)))

    def ids_among(self, ids: list[str]) -> list[str]:
        member = tantivy.Query.term_set_query(self._schema, "id", ids)
        return self._ids(self._addrs(self._within(member), len(ids)))

    def exact(self, text: str) -> list[str]:
        """Matching records whose lower-cased id or name is the query text (in any of its
        `exact_names` spellings), sorted."""
        clauses = []
        for field in ("id_lc", "name_lc"):
            for name in exact_names(text):
                try:
                    # A term query seeks its term in the dictionary; a term set would fill a bitset
                    # over every document of the index first (~0.25 ms at 1M records).
                    clauses.append((SHOULD, tantivy.Query.term_query(self._schema, field, name)))
                except ValueError:  # an index of a layout without the field
                    break
        if not clauses:
            return []
        res = self._search(self._within(tantivy.Query.boolean_query(clauses)), 10)
        return sorted(self._ids([a for _, a in res.hits]))
