"""Facets as one aggregation request: terms per facet field, parameter counts as range buckets."""

from __future__ import annotations

from typing import Any

from modelport.index.search import (
    FACET_FIELDS,
    PARAM_BUCKETS,
)
from modelport.index.vocab import get_vocab

_FACET_SIZE = 50  # terms per open-vocabulary facet, as in the embedded backend


def facet_aggs(fields: list[str]) -> dict[str, Any]:
    """Terms aggregations (parameter counts as range buckets) for the requested facet fields."""
    vocab = get_vocab()
    aggs: dict[str, Any] = {}
    for f in dict.fromkeys(fields):
        if f == "params":
            aggs[f] = {"range": {"field": "params", "ranges": [
                {"key": label, **({"from": lo} if lo is not None else {}), **({"to": hi} if hi is not None else {})}
                for label, lo, hi in PARAM_BUCKETS]}}
        elif f in FACET_FIELDS:
            # Closed vocabularies are counted whole, as the embedded backend's bitmask facets are.
            aggs[f] = {"terms": {"field": f, "size": max(_FACET_SIZE, len(vocab.facet_bits(f)))}}
    return aggs


def facet_counts(field: str, agg: dict[str, Any]) -> dict[str, int]:
    counts = {str(b["key"]): int(b["doc_count"]) for b in agg.get("buckets", [])}
    if field == "params":  # every bucket, in order, zeros included
        return {label: counts.get(label, 0) for label, _, _ in PARAM_BUCKETS}
    return counts

