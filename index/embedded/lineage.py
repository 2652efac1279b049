"""Lineage walks over the index (index/lineage.py `walk`): the records a lineage constraint selects, found
through the `lin_*` fields of the schema and memoised per index state."""

from __future__ import annotations

import re
import threading
from typing import Any

import tantivy

from modelport.index.embedded.meta import IndexMeta
from modelport.index.embedded.schema import SHOULD
from modelport.index.lineage import Lookups, Node, Tree, walk
from modelport.index.search import LineageConstraint


class LineageWalks:
    """Lineage lookups for `TantivyBackend`, which supplies the index, its schema and the state the
    memo is keyed on (document count, next row number, commits)."""

    index: tantivy.Index
    schema: tantivy.Schema
    meta: IndexMeta
    _commits: int
    _lineage_memo: dict[tuple[Any, ...], Tree]
    _lineage_lock: threading.Lock

    def lineage(self, c: LineageConstraint) -> Tree:
        """The descendants a lineage constraint selects (memoised per index state: one search builds
        its query several times)."""
        searcher = self.index.searcher()
        key = (c.base, tuple(c.relations), c.depth, searcher.num_docs, self.meta.next_row, self._commits)
        with self._lineage_lock:
            hit = self._lineage_memo.get(key)
        if hit is not None:
            return hit
        tree = walk(c.base, list(c.relations), c.depth, Lookups(
            exact=lambda k, n: self._nodes(searcher, self._any_term(["id_lc", "name_lc", "lin_node"], [k]), n),
            prefix=lambda k, n: self._nodes(searcher, tantivy.Query.regex_query(
                self.schema, "name_lc", re.escape(k) + "[-_.].*"), n),
            children=lambda keys, n: self._nodes(searcher, tantivy.Query.term_set_query(
                self.schema, "lin_base", keys), n)))
        with self._lineage_lock:
            if len(self._lineage_memo) > 256:
                self._lineage_memo.clear()
            self._lineage_memo[key] = tree
        return tree

    def _any_term(self, fields: list[str], values: list[str]) -> tantivy.Query:
        return tantivy.Query.boolean_query([(SHOULD, tantivy.Query.term_set_query(self.schema, f, values))
                                            for f in fields])

    @staticmethod
    def _nodes(searcher: tantivy.Searcher, query: tantivy.Query, limit: int) -> list[Node]:
        res = searcher.search(query, limit=max(limit, 1), count=False)
        out = []
        for _, addr in res.hits:
            d = searcher.doc(addr)
            links = tuple((rel, base) for rel, _, base in (x.partition("|") for x in d.get_all("lin_link")))
            out.append(Node(id=d["id"][0], keys=tuple(d.get_all("lin_node")), links=links))
        return sorted(out, key=lambda n: n.id)
