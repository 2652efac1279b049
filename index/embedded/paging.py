"""Result pages: field sorts page by keyset over a unique per-record sort key; relevance pages are slices
of the top-N list, with a cursor that carries on after the last record shown when the index changed."""

from __future__ import annotations

from typing import Any

import tantivy

from modelport.index.embedded.facets import count_matches
from modelport.index.embedded.schema import MUST, U64, as_int, matched
from modelport.index.search import Hit, SearchQuery

# Relevance pages are slices of a top-N list (N = position + page size); deeper, sort by a field.
_RELEVANCE_DEPTH_MAX = 100_000


def sorted_page(searcher: tantivy.Searcher, schema: tantivy.Schema, query: tantivy.Query, q: SearchQuery,
                cursor: dict[str, Any] | None, count: bool = True) -> tuple[int | None, list[Hit], list[Any]]:
    """Field sorts (and relevance without text, which ranks by downloads): keyset paging on a
    unique per-record sort key, so a deep page costs what the first one does."""
    field = "sk_" + (q.sort if q.sort != "relevance" else "downloads")
    page_query, offset = query, q.offset
    if cursor is not None:
        last = int(cursor["a"][0])
        if last == 0:
            return count_matches(searcher, query) if count else None, [], []
        page_query = tantivy.Query.boolean_query([
            (MUST, query), (MUST, tantivy.Query.range_query(schema, field, U64, None, last - 1))])
        offset = 0
    res = searcher.search(page_query, limit=q.limit, offset=offset, count=count and cursor is None,
                          order_by_field=field, order=tantivy.Order.Desc)
    total = None if not count else matched(res) if cursor is None else count_matches(searcher, query)
    hits, after = [], []
    for key, addr in res.hits:
        hits.append(Hit(id=searcher.doc(addr)["id"][0], score=0.0))
        after = [int(key)]
    return total, hits, after


def relevance_page(searcher: tantivy.Searcher, query: tantivy.Query, q: SearchQuery,
                   cursor: dict[str, Any] | None, notices: list[str], count: bool = True
                   ) -> tuple[int | None, list[Hit], list[Any]]:
    """BM25 order, ties in Tantivy's own deterministic order (segment, document). A page is a
    slice of the top (position + limit) list; the cursor also carries the (score, row) of the
    last record shown, and when the record at that position is another one (the index changed
    between pages) the page continues right after that record instead, so nothing already shown
    comes again."""
    skip = cursor["n"] if cursor else q.offset
    if skip >= _RELEVANCE_DEPTH_MAX:
        notices.append(f"relevance paging stops at {_RELEVANCE_DEPTH_MAX} results; sort by a field to page further")
        return count_matches(searcher, query) if count else None, [], []
    res = searcher.search(query, limit=skip + q.limit, count=count)
    total = matched(res) if count else None
    hits = res.hits
    page = hits[skip:]
    if cursor and skip:
        s0, r0 = float(cursor["a"][0]), int(cursor["a"][1])
        anchor = hits[skip - 1] if len(hits) >= skip else None
        if anchor is None or float(anchor[0]) != s0 or _row(searcher, anchor[1]) != r0:
            # Look for the last record shown in a wider window (records may have come in above it).
            hits = searcher.search(query, limit=min(2 * (skip + q.limit) + 100, _RELEVANCE_DEPTH_MAX),
                                   count=False).hits
            rows = searcher.fast_field_values("row", [a for _, a in hits])
            at = next((i for i, r in enumerate(rows) if r == r0), None)
            if at is not None:
                page = hits[at + 1:at + 1 + q.limit]
            else:  # the last record shown moved down or went away: continue below its score
                page = [h for h, r in zip(hits, rows, strict=True)
                        if (-float(h[0]), as_int(r)) > (-s0, r0)][: q.limit]
            notices.append("the index changed while paging; results continue after the last one shown")
    page = page[: q.limit]
    out = [Hit(id=searcher.doc(a)["id"][0], score=float(sc)) for sc, a in page]
    after = [float(page[-1][0]), _row(searcher, page[-1][1])] if page else []
    return total, out, after


def _row(searcher: tantivy.Searcher, addr: Any) -> int:
    return as_int(searcher.fast_field_values("row", [addr])[0])
