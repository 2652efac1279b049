"""Scale-out search backend: Elasticsearch through the official `elasticsearch` client, answering
every `SearchQuery` as the embedded Tantivy backend does (the same facts from `index/facts.py`, the
same text fields and boosts, the same constraint semantics, facets within a time limit, cursors).

How the facts are stored (one document per record, `_id` = record id, mapping `dynamic: strict`):
- keyword fields for the filter/facet fields and the compatibility tokens of facts.py (`tg:android=native`);
- runtime cells as `nested` objects {key, lo, hi}, so the lo and hi of one cell are matched together
  (Tantivy needs per-cell key ids for that; a nested document is Elasticsearch's own way);
- metrics as `nested` {key, code}: the order-preserving `float_code`, so comparisons round exactly
  as in the embedded backend; best latency / memory per hardware profile as `nested` {hw, ...}.

Modules: `client` (transport, errors), `mapping` (settings, mapping, documents), `query` (the query
compiler), `facets`, `backend` (the `SearchBackend`), `lifecycle` (index creation, the staged
rebuild beside the serving index and the atomic alias switch), `hybrid` (dense + BM25 on the node),
`node` (a single node for tests and benchmarks).
"""

from modelport.index.elasticsearch.backend import DEFAULT_INDEX, ElasticsearchBackend, unique_index_name
from modelport.index.elasticsearch.client import ElasticsearchBackendError, redact_url
from modelport.index.elasticsearch.facets import facet_aggs
from modelport.index.elasticsearch.mapping import (
    INDEX_FORMAT,
    current_versions,
    es_document,
    index_mappings,
    index_settings,
)
from modelport.index.elasticsearch.query import constraint_query, es_query, int_bounds, text_query

__all__ = ["ElasticsearchBackend", "ElasticsearchBackendError", "es_document", "es_query", "constraint_query",
           "text_query", "facet_aggs", "index_mappings", "index_settings", "int_bounds", "redact_url",
           "unique_index_name", "current_versions", "INDEX_FORMAT", "DEFAULT_INDEX"]
