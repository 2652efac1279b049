"""Embedded search backend: Tantivy (BM25 over name, description, card and tags; raw fast fields
for exact filters and facet aggregations; the facts of `index/facts.py` as exact range queries).

Modules: `schema` (the field layout, and why each fact is encoded as it is), `meta` (the bookkeeping
file beside the index: versions, row numbers, fact-key ids), `documents` (a record as a document),
`query` (the query compiler and the ranking boosts), `lineage` (lineage walks over the index),
`matches` (the records a query selects, for the hybrid ranking), `facets` (facet aggregation within a
time limit), `paging` (result pages and cursors), `backend` (`TantivyBackend`, the `SearchBackend`).
"""

from modelport.index.embedded.backend import TantivyBackend
from modelport.index.embedded.matches import ConstraintMatches
from modelport.index.embedded.meta import META_FILE, IndexMeta
from modelport.index.embedded.schema import INDEX_FORMAT
from modelport.index.search import ensure_current  # named here for callers of the old module's path

__all__ = ["TantivyBackend", "ConstraintMatches", "IndexMeta", "ensure_current", "INDEX_FORMAT", "META_FILE"]
