"""A `ModelRecord` as the embedded backend's Tantivy document: the text fields, keyword fields and facet
bitmasks, the facts of index/facts.py in the encodings of schema.py, sort keys and the row number."""

from __future__ import annotations

from typing import Any

import tantivy

from modelport.index.embedded.meta import IndexMeta
from modelport.index.embedded.schema import MASKED, download_bucket, lat_field, mem_field, param_bucket
from modelport.index.facts import CODE_BITS, composite, float_code, record_facts, sort_key
from modelport.index.search import SORT_FIELDS, search_text
from modelport.index.vocab import FACET_OVERFLOW_BIT, get_vocab
from modelport.schema.record import ModelRecord


def document(r: ModelRecord, row: int, schema: tantivy.Schema, meta: IndexMeta,
             float_fields: set[str]) -> tantivy.Document:
    """The document of `r` at row number `row`; fact keys new to `meta` get their ids here, and
    latency / memory figures are kept only for the fields in `float_fields` (the schema's)."""
    facts = record_facts(r, get_vocab())
    fields: dict[str, Any] = {
        "id": [r.id], "id_lc": [r.id.lower()],
        "name_lc": list({r.name.lower(), r.local_id.lower(), r.local_id.rsplit("/", 1)[-1].lower()}),
        "compat": facts.tokens, "row": [row],
    }
    if facts.lineage_bases:
        fields["lin_base"] = facts.lineage_bases
        fields["lin_link"] = facts.lineage_links
    fields["lin_node"] = facts.lineage_nodes
    for field, text in search_text(r).items():
        if text:
            fields[field] = [text]
    vocab = get_vocab()
    for field, values in facts.keywords.items():
        if values:
            fields[field] = values
        if field in MASKED:
            bits = vocab.facet_bits(field)
            fields[f"fm_{field}"] = [sum({1 << bits.get(v, FACET_OVERFLOW_BIT) for v in values})]
    keys = meta.keys

    def key(k: str) -> int:
        kid = keys.get(k)
        return kid if kid is not None else meta.key_id(k, create=True) or 0

    if facts.runtime_ranges:
        kids = [key(k) << CODE_BITS for k, _, _ in facts.runtime_ranges]
        fields["rt_lo"] = [kid | lo for kid, (_, lo, _) in zip(kids, facts.runtime_ranges, strict=True)]
        fields["rt_hi"] = [kid | hi for kid, (_, _, hi) in zip(kids, facts.runtime_ranges, strict=True)]
    if facts.metrics:
        fields["metric_v"] = [composite(key(k), float_code(v)) for k, v in facts.metrics]
    # Figures on hardware outside the KB count for "any profile" only (no query can name it).
    for hw, measured_only, ms in facts.latencies:
        name = lat_field(hw, measured_only)
        if name in float_fields:
            fields[name] = [ms]
    for hw, wb in facts.memory:
        name = mem_field(hw)
        if name in float_fields:
            fields[name] = [wb]
    if facts.params is not None:
        fields["params"] = [facts.params]
        fields["fm_params"] = [param_bucket(facts.params)]
    if facts.size is not None:
        fields["size"] = [facts.size]
    fields["dl_bucket"] = [download_bucket(facts.downloads)]
    for f in SORT_FIELDS:
        value = getattr(facts, f)
        fields[f] = [value]
        fields[f"sk_{f}"] = [sort_key(value, row)]
    # One call with every value is about twice as fast as one add_* call per value.
    return tantivy.Document.from_dict(fields, schema)
