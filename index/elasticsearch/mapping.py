"""How records are stored in Elasticsearch: the index settings (analysis as Tantivy's `en_stem`), the
strict mapping of the facts of `index/facts.py`, and a record's document."""

from __future__ import annotations

import math
from typing import Any

from modelport.index.embeddings import DIM
from modelport.index.facts import (
    FACTS_VERSION,
    RecordFacts,
    float_code,
    record_facts,
)
from modelport.index.search import (
    FILTER_FIELDS,
    SORT_FIELDS,
    TEXT_BOOSTS,
    SearchQuery,
    search_text,
)
from modelport.index.vocab import get_vocab
from modelport.schema.kb import get_kb
from modelport.schema.record import ModelRecord

INDEX_FORMAT = 3  # the mapping below; with FACTS_VERSION and the KB version it decides rebuilds
ANY_HARDWARE = "*"  # the `hw` of a best figure over every profile (facts.py: hardware None)
_KEYWORD_MAX = 4096  # longer keyword values are not indexed (Lucene refuses terms over 32 KiB)


def _max_of(field: str) -> int:
    """A `SearchQuery` field's upper bound (`le`), read from the model."""
    return next(int(m.le) for m in SearchQuery.model_fields[field].metadata if getattr(m, "le", None) is not None)


# The deepest offset page a query may ask for; Elasticsearch refuses `from + size` beyond this.
MAX_WINDOW = _max_of("offset") + _max_of("limit")


def current_versions() -> dict[str, Any]:
    return {"format": INDEX_FORMAT, "facts": FACTS_VERSION, "kb": get_kb().version}


_KW: dict[str, Any] = {"type": "keyword", "ignore_above": _KEYWORD_MAX}
_LONG: dict[str, Any] = {"type": "long"}
_DOUBLE: dict[str, Any] = {"type": "double"}
_TEXT: dict[str, Any] = {"type": "text", "analyzer": "mp_text"}


def index_settings(shards: int = 1, replicas: int | None = None) -> dict[str, Any]:
    """Index settings; the text analyzer reproduces Tantivy's `en_stem` (split on anything that is not
    a letter or digit, drop tokens of 40+ characters, lower-case, Snowball English stemmer), so a word
    or a phrase matches the same records in both backends."""
    out: dict[str, Any] = {
        "number_of_shards": shards,
        "max_result_window": MAX_WINDOW,
        # Writes become searchable when the backend commits (an explicit refresh, as Tantivy's commit);
        # periodic refreshes would only cut more small segments (each with its own HNSW graph) to merge.
        "refresh_interval": "-1",
        "analysis": {
            "tokenizer": {"mp_words": {"type": "pattern", "pattern": r"[^\p{L}\p{N}]+"}},
            "filter": {"mp_long": {"type": "length", "max": 39},
                       "mp_stem": {"type": "stemmer", "language": "porter2"}},
            "analyzer": {"mp_text": {"type": "custom", "tokenizer": "mp_words",
                                     "filter": ["mp_long", "lowercase", "mp_stem"]}},
        },
    }
    if replicas is not None:
        out["number_of_replicas"] = replicas
    return out


def index_mappings() -> dict[str, Any]:
    """The mapping, `dynamic: strict` so a field `es_document` emits without a mapping is an error
    at once rather than a field guessed by Elasticsearch; `_meta` records what built the index."""
    props: dict[str, Any] = {
        "id": _KW, "id_lc": _KW, "name_lc": _KW, "compat": _KW,
        "lin_base": _KW, "lin_link": _KW, "lin_node": _KW,  # lineage (index/lineage.py)
        **dict.fromkeys(TEXT_BOOSTS, _TEXT),
        # Facet fields build their global ordinals at refresh rather than on the first aggregation
        # after it, so facets right after a commit stay within their time limit.
        **dict.fromkeys(FILTER_FIELDS, {**_KW, "eager_global_ordinals": True}),
        "rt": {"type": "nested", "properties": {"key": _KW, "lo": _LONG, "hi": _LONG}},
        "metric": {"type": "nested", "properties": {"key": _KW, "code": _LONG}},
        "lat": {"type": "nested", "properties": {"hw": _KW, "measured": {"type": "boolean"}, "ms": _DOUBLE}},
        "mem": {"type": "nested", "properties": {"hw": _KW, "bytes": _DOUBLE}},
        "params": _LONG, "size": _LONG,
        **dict.fromkeys(SORT_FIELDS, _LONG),
        # The record's summary embedding (absent when embeddings are off): kNN within the same filters
        # as the constraint query, HNSW over int8-quantized vectors (float vectors kept for rescoring).
        "vec": {"type": "dense_vector", "dims": DIM, "index": True, "similarity": "cosine",
                "index_options": {"type": "int8_hnsw"}},
    }
    return {"dynamic": "strict", "_meta": {"modelport": current_versions()}, "properties": props}


def es_document(record: ModelRecord) -> dict[str, Any]:
    """A record's document: its search text and the facts of `index/facts.py`, nothing re-derived."""
    facts: RecordFacts = record_facts(record, get_vocab())
    doc: dict[str, Any] = {
        "id": record.id, "id_lc": record.id.lower(),
        "name_lc": sorted({record.name.lower(), record.local_id.lower(),
                           record.local_id.rsplit("/", 1)[-1].lower()}),
        "compat": facts.tokens,
        "lin_node": facts.lineage_nodes,
    }
    if facts.lineage_bases:
        doc["lin_base"] = facts.lineage_bases
        doc["lin_link"] = facts.lineage_links
    doc.update({f: text for f, text in search_text(record).items() if text})
    doc.update({f: values for f, values in facts.keywords.items() if values})
    if facts.runtime_ranges:
        doc["rt"] = [{"key": k, "lo": lo, "hi": hi} for k, lo, hi in facts.runtime_ranges]
    if facts.metrics:
        doc["metric"] = [{"key": k, "code": float_code(v)} for k, v in facts.metrics]
    # JSON has no infinities; a figure that is not finite says nothing a comparison could use.
    lat = [{"hw": hw or ANY_HARDWARE, "measured": m, "ms": ms} for hw, m, ms in facts.latencies if math.isfinite(ms)]
    mem = [{"hw": hw or ANY_HARDWARE, "bytes": b} for hw, b in facts.memory if math.isfinite(b)]
    if lat:
        doc["lat"] = lat
    if mem:
        doc["mem"] = mem
    if facts.params is not None:
        doc["params"] = facts.params
    if facts.size is not None:
        doc["size"] = facts.size
    for f in SORT_FIELDS:
        doc[f] = getattr(facts, f)
    return doc


