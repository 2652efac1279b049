"""Facets: counted beside the main search on a small thread pool, as one Tantivy aggregation per worker
(terms per field; closed KB vocabularies as bitmask combinations, parameter counts as buckets), each
facet reported as timed out when it is not done within the query's time limit. The aggregation also
counts the matches (`counted`), so the page need not count them itself."""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

import tantivy

from modelport.index.embedded.schema import MASKED
from modelport.index.search import FACET_FIELDS, PARAM_BUCKETS, FacetCounts
from modelport.index.vocab import FACET_OVERFLOW_BIT, get_vocab

log = logging.getLogger(__name__)

_MASK_BUCKETS = 65_535  # distinct value combinations counted per bitmask facet before falling back
# Facets run beside the main search as one aggregation (the query is evaluated twice, on the two
# cores this is sized for: measured at 1M records, splitting facets further only added evaluations).
# Two workers, so two concurrent requests do not queue behind each other's facets.
_FACET_GROUPS = 1
_FACET_WORKERS = 2
_FACET_POOL = ThreadPoolExecutor(max_workers=_FACET_WORKERS, thread_name_prefix="facets")
# Every document has a row number, so counting its values counts the matches (without scores).
_TOTAL = "__total"
_TOTAL_SPEC = {"value_count": {"field": "row"}}


def count_matches(searcher: tantivy.Searcher, query: tantivy.Query) -> int:
    """How many records match, without scoring them (an aggregation, not a top-docs search)."""
    return int(searcher.aggregate(query, {_TOTAL: _TOTAL_SPEC})[_TOTAL]["value"] or 0)


def counted(futures: dict[str, Future[dict[str, Any]]]) -> int | None:
    """The match count the facet aggregation took, if it finished in time."""
    for fut in futures.values():
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            value = fut.result().get(_TOTAL)
            if value is not None:
                return int(value)
    return None


def submit_facets(searcher: tantivy.Searcher, query: tantivy.Query,
                  fields: list[str]) -> dict[str, Future[dict[str, Any]]]:
    """Facets run beside the main search, as one aggregation per worker: each aggregation
    evaluates the query once for all its facets (at 100k records, 9 facets of a query with three
    range constraints took 4 ms together and 27 ms one by one)."""
    wanted = [f for f in dict.fromkeys(fields) if f in FACET_FIELDS]
    groups = [wanted[i::_FACET_GROUPS] for i in range(_FACET_GROUPS)]
    out: dict[str, Future[dict[str, Any]]] = {}
    for group in groups:
        if group:
            fut = _FACET_POOL.submit(facet_group, searcher, query, group)
            out.update(dict.fromkeys(group, fut))
    return out


def _facet_spec(field: str) -> dict[str, Any]:
    return {"terms": {"field": field, "size": 50}}


def facet_group(searcher: tantivy.Searcher, query: tantivy.Query, fields: list[str]) -> dict[str, Any]:
    """One aggregation counting `fields` (and the matches, under `_TOTAL`) for `query`."""
    vocab = get_vocab()
    spec: dict[str, Any] = {}
    for f in fields:
        if f in MASKED and vocab.facet_bits(f):
            spec[f] = {"terms": {"field": f"fm_{f}", "size": _MASK_BUCKETS}}
        elif f == "params":
            spec[f] = {"terms": {"field": "fm_params", "size": len(PARAM_BUCKETS)}}
        else:
            spec[f] = _facet_spec(f)
    spec[_TOTAL] = _TOTAL_SPEC
    agg = searcher.aggregate(query, spec)
    out: dict[str, Any] = {_TOTAL: int(agg.get(_TOTAL, {}).get("value") or 0)}
    for f in fields:
        res = agg.get(f, {})
        buckets = res.get("buckets", [])
        if f in MASKED and vocab.facet_bits(f):
            counts = _unmask(vocab.facet_bits(f), buckets)
            if counts is None or res.get("sum_other_doc_count"):
                # A value outside the KB, or more combinations than buckets: count the keywords.
                plain = searcher.aggregate(query, {f: _facet_spec(f)})
                buckets = plain.get(f, {}).get("buckets", [])
            else:
                out[f] = counts
                continue
        if f == "params":
            got = {int(b["key"]): int(b["doc_count"]) for b in buckets}
            out[f] = {label: got.get(i, 0) for i, (label, _, _) in enumerate(PARAM_BUCKETS)}
            continue
        out[f] = {b["key"]: int(b["doc_count"]) for b in buckets}
    return out


def _unmask(bits: dict[str, int], buckets: list[dict[str, Any]]) -> dict[str, int] | None:
    """Per-value counts from counts per bitmask (each record counted once per value it has)."""
    per_bit = [0] * 64
    for b in buckets:
        mask, n = int(b["key"]), int(b["doc_count"])
        if mask >> FACET_OVERFLOW_BIT & 1:
            return None
        while mask:
            low = mask & -mask
            per_bit[low.bit_length() - 1] += n
            mask ^= low
    counts = {v: per_bit[i] for v, i in bits.items() if per_bit[i]}
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def collect_facets(futures: dict[str, Future[dict[str, Any]]], budget_s: float,
                   start: float) -> dict[str, FacetCounts]:
    """Each facet gets until `budget_s` after the search began; one that is not done by then is
    reported as timed out (and cancelled if it never started) while the results still come."""
    if not futures:
        return {}
    wait(set(futures.values()), timeout=max(0.0, start + budget_s - time.monotonic()))
    out: dict[str, FacetCounts] = {}
    for field, fut in futures.items():
        if fut.done() and not fut.cancelled():
            try:
                out[field] = FacetCounts(counts=fut.result()[field])
            except Exception as e:  # a facet failing must not fail the search
                log.warning("facet %s failed: %s", field, e)
                out[field] = FacetCounts(timed_out=True)
        else:
            fut.cancel()
            out[field] = FacetCounts(timed_out=True)
    return out
