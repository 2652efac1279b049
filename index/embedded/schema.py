"""The embedded backend's field layout: the Tantivy schema, the names of the per-hardware latency and
memory fields, the bucket encodings (parameter counts, downloads) and readers of search results.

How each constraint is answered (measured at 1M synthetic records on 2 cores, see DESIGN notes
in the module docstring of facts.py and README "Query syntax"):
- runtime at a version: per cell, u64 `key|lo` and `key|hi` terms in the inverted index; a range over
  one key's terms is a handful of distinct versions, ~2 ms for 70k matches (a fast-field scan of the
  same took ~50 ms).
- metric, latency, memory: u64 `key|value code` fast fields, range-scanned lazily, so inside an
  intersection with any selective clause they cost ~1 ms (alone ~35 ms); inverted-index ranges over
  these continuous values took > 100 ms because every distinct value is a term.
- targets, hardware fit, evidence levels: keyword tokens (`tg:android>=native`), a term lookup.
- parameter count and size: i64 fast fields.
A side table in SQLite would have needed the candidate ids intersected back into Tantivy (a term set
of up to 1M ids per query), which is what these encodings avoid.
"""

from __future__ import annotations

import functools
import math
import re

import tantivy

from modelport.index.search import FILTER_FIELDS, PARAM_BUCKETS, SORT_FIELDS, TEXT_BOOSTS
from modelport.schema.kb import get_kb

INDEX_FORMAT = 8  # the field layout below; with FACTS_VERSION and the KB version it decides rebuilds
# Multi-valued facet fields with a closed KB vocabulary, also indexed as one bitmask per record.
MASKED = ("runtime", "target", "hardware", "format", "status")
U64 = tantivy.FieldType.Unsigned
I64 = tantivy.FieldType.Integer
F64 = tantivy.FieldType.Float
MUST, SHOULD, MUST_NOT = tantivy.Occur.Must, tantivy.Occur.Should, tantivy.Occur.MustNot


@functools.cache
def _hw_suffix(hw: str | None) -> str:
    return "all" if hw is None else "hw_" + re.sub(r"[^A-Za-z0-9]", "_", hw)


def lat_field(hw: str | None, measured_only: bool) -> str:
    return f"{'latm' if measured_only else 'lat'}_{_hw_suffix(hw)}"


def mem_field(hw: str | None) -> str:
    return f"mem_{_hw_suffix(hw)}"


def param_bucket(n: int) -> int:
    return next(i for i, (_, lo, hi) in enumerate(PARAM_BUCKETS)
                if (lo is None or n >= lo) and (hi is None or n < hi))


def float_fields() -> set[str]:
    """Every latency and memory field: one per KB hardware profile, and one for any profile."""
    return {lat_field(hw, m) for hw in [None, *get_kb().compat.hardware] for m in (False, True)} \
        | {mem_field(hw) for hw in [None, *get_kb().compat.hardware]}


def build_schema() -> tantivy.Schema:
    b = tantivy.SchemaBuilder()
    b.add_text_field("id", stored=True, tokenizer_name="raw", fast=True)
    b.add_text_field("id_lc", tokenizer_name="raw")
    b.add_text_field("name_lc", tokenizer_name="raw")
    for f in TEXT_BOOSTS:
        b.add_text_field(f, tokenizer_name="en_stem")
    for f in FILTER_FIELDS:
        b.add_text_field(f, tokenizer_name="raw", fast=True)
    b.add_text_field("compat", tokenizer_name="raw", index_option="basic")
    # Lineage (index/lineage.py): keys the record's base links name, its "relation|key" links and the
    # keys it answers to as a base; the walk reads links and node keys of the records it reaches.
    b.add_text_field("lin_base", tokenizer_name="raw", index_option="basic")
    b.add_text_field("lin_link", tokenizer_name="raw", index_option="basic", stored=True)
    b.add_text_field("lin_node", tokenizer_name="raw", index_option="basic", stored=True)
    b.add_unsigned_field("row", indexed=True, fast=True)
    b.add_unsigned_field("rt_lo", indexed=True)
    b.add_unsigned_field("rt_hi", indexed=True)
    # Metric values have few distinct values per key: an inverted-index range over them is cheap and,
    # being exact about its size, leads intersections.
    b.add_unsigned_field("metric_v", indexed=True)
    # Latency and memory are continuous (every record its own figure): one single-valued f64 fast field
    # per KB hardware profile (and one for "any profile"), scanned lazily — a keyed multi-valued
    # column holding every profile's figures took ~35 ms per range at 1M records.
    for hw in [None, *sorted(get_kb().compat.hardware)]:
        for f in (lat_field(hw, False), lat_field(hw, True), mem_field(hw)):
            b.add_float_field(f, fast=True)
    for f in ("params", "size"):
        b.add_integer_field(f, fast=True, indexed=True)
    for f in SORT_FIELDS:
        b.add_integer_field(f, fast=True, indexed=True)
        b.add_unsigned_field(f"sk_{f}", fast=True)
    for f in MASKED:
        b.add_unsigned_field(f"fm_{f}", fast=True)
    # The parameter-count bucket as a small integer: a terms count over it took ~1 ms at 1M records
    # where a range aggregation over the counts took ~14 ms.
    b.add_unsigned_field("fm_params", fast=True)
    b.add_unsigned_field("dl_bucket", indexed=True)
    return b.build()


# Without text, matches with equal boosts are ordered by downloads to a quarter of a decade: a
# constant score per bucket (far below any boost step) does that inside one relevance-ordered search.
# Buckets are a term field (each record in one posting list), so the union costs one pass over the
# matches; a range query per bucket over the downloads column took a pass per bucket.
DOWNLOAD_BUCKETS = 44  # 4 per decade, up to 10^11
DOWNLOAD_STEP = 1e-5


def matched(res: tantivy.SearchResult) -> int:
    """The match count of a search run with `count=True` (0 without one)."""
    n = res.count  # type: ignore[attr-defined]  # tantivy 0.27's stub omits SearchResult.count; it exists
    return int(n or 0)


def as_int(value: int | float | bool | None) -> int:
    """An integer fast field's value (tantivy's stub gives every fast field one value type)."""
    assert value is not None  # the integer fields read here (`row`, sort keys) are set on every document
    return int(value)


def download_bucket(downloads: int) -> int:
    return min(DOWNLOAD_BUCKETS - 1, int(4 * math.log10(max(downloads, 0) + 1)))
