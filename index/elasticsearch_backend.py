"""Scale-out search backend: Elasticsearch through the official `elasticsearch` client, answering
every `SearchQuery` as the embedded Tantivy backend does (the same facts from `index/facts.py`, the
same text fields and boosts, the same constraint semantics, facets within a time limit, cursors).

How the facts are stored (one document per record, `_id` = record id, mapping `dynamic: strict`):
- keyword fields for the filter/facet fields and the compatibility tokens of facts.py (`tg:android=native`);
- runtime cells as `nested` objects {key, lo, hi}, so the lo and hi of one cell are matched together
  (Tantivy needs per-cell key ids for that; a nested document is Elasticsearch's own way);
- metrics as `nested` {key, code}: the order-preserving `float_code`, so comparisons round exactly
  as in the embedded backend; best latency / memory per hardware profile as `nested` {hw, ...}.
Hybrid (dense) ranking is not available here: text is ranked by BM25 alone and the hybrid layer
says so in a notice.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

from elastic_transport import Transport
from elasticsearch import ApiError, Elasticsearch, TransportError, helpers

from modelport.index.facts import (
    CODE_MAX,
    FACTS_VERSION,
    RecordFacts,
    any_runtime_token,
    float_code,
    hardware_token,
    metric_key,
    record_facts,
    release_token,
    runtime_key_prefix,
    runtime_token,
    statuses_from,
    target_token,
    version_code,
)
from modelport.index.search import (
    FACET_FIELDS,
    FILTER_FIELDS,
    PARAM_BUCKETS,
    QUERY_SYNTAX_CHARS,
    SORT_FIELDS,
    TEXT_BOOSTS,
    AnyOf,
    Constraint,
    CursorError,
    FacetCounts,
    FieldFilter,
    HardwareConstraint,
    Hit,
    LatencyConstraint,
    MemoryConstraint,
    MetricConstraint,
    ParamsConstraint,
    RuntimeConstraint,
    SearchBackendError,
    SearchQuery,
    SearchResult,
    SizeConstraint,
    StatusConstraint,
    TargetConstraint,
    decode_cursor,
    encode_cursor,
    rebuild_in_batches,
    search_text,
)
from modelport.index.vocab import get_vocab
from modelport.schema.kb import get_kb
from modelport.schema.record import ModelRecord

log = logging.getLogger(__name__)

INDEX_FORMAT = 1  # the mapping below; with FACTS_VERSION and the KB version it decides rebuilds
DEFAULT_INDEX = "modelport"
ANY_HARDWARE = "*"  # the `hw` of a best figure over every profile (facts.py: hardware None)
_FACET_SIZE = 50  # terms per open-vocabulary facet, as in the embedded backend
_IDS_PAGE = 10_000  # ids per request when listing every match
_KEYWORD_MAX = 4096  # longer keyword values are not indexed (Lucene refuses terms over 32 KiB)
_CHANGED = "the index changed while paging; results continue after the last one shown"
# A 9.x client asks for `compatible-with=9`, which Elasticsearch 8 refuses with a 400; every 8.x and
# 9.x server accepts `compatible-with=8` (9.x through REST API compatibility), so requests are pinned
# to 8 whichever client major is installed.
_WIRE_MAJOR = 8
_COMPAT = re.compile(r"compatible-with=\d+")

T = TypeVar("T")


class ElasticsearchBackendError(SearchBackendError):
    """A request to Elasticsearch failed (unreachable, refused, or answered with an error)."""


def redact_url(url: str) -> str:
    """The URL without user, password or query string, for messages and logs."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return "<unparseable URL>"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class _PinnedCompatTransport(Transport):
    """Sends every request with `compatible-with=8` (see `_WIRE_MAJOR`)."""

    def perform_request(self, method: str, target: str, **kwargs: Any) -> Any:  # type: ignore[override]
        headers = kwargs.get("headers")
        if isinstance(headers, Mapping):
            headers = headers.copy()
            for name in ("accept", "content-type"):
                value = headers.get(name)
                if value and "compatible-with=" in value:
                    headers[name] = _COMPAT.sub(f"compatible-with={_WIRE_MAJOR}", value)
            kwargs["headers"] = headers
        return super().perform_request(method, target, **kwargs)


def _max_of(field: str) -> int:
    """A `SearchQuery` field's upper bound (`le`), read from the model."""
    return next(int(m.le) for m in SearchQuery.model_fields[field].metadata if getattr(m, "le", None) is not None)


# The deepest offset page a query may ask for; Elasticsearch refuses `from + size` beyond this.
_MAX_WINDOW = _max_of("offset") + _max_of("limit")


# ------------------------------------------------------------------------------------------------
# Index layout
# ------------------------------------------------------------------------------------------------
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
        "max_result_window": _MAX_WINDOW,
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
        **dict.fromkeys(TEXT_BOOSTS, _TEXT),
        **dict.fromkeys(FILTER_FIELDS, _KW),
        "rt": {"type": "nested", "properties": {"key": _KW, "lo": _LONG, "hi": _LONG}},
        "metric": {"type": "nested", "properties": {"key": _KW, "code": _LONG}},
        "lat": {"type": "nested", "properties": {"hw": _KW, "measured": {"type": "boolean"}, "ms": _DOUBLE}},
        "mem": {"type": "nested", "properties": {"hw": _KW, "bytes": _DOUBLE}},
        "params": _LONG, "size": _LONG,
        **dict.fromkeys(SORT_FIELDS, _LONG),
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
    }
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


# ------------------------------------------------------------------------------------------------
# Queries (pure: no server needed to build them)
# ------------------------------------------------------------------------------------------------
_NONE: dict[str, Any] = {"match_none": {}}
_LONG_MAX = (1 << 63) - 1
_RANGE_OPS = {">=": ("gte",), ">": ("gt",), "<=": ("lte",), "<": ("lt",), "=": ("gte", "lte")}


def _any_of(clauses: list[dict[str, Any]]) -> dict[str, Any]:
    if not clauses:
        return _NONE
    return clauses[0] if len(clauses) == 1 else {"bool": {"should": clauses, "minimum_should_match": 1}}


def _terms(field: str, values: list[str]) -> dict[str, Any]:
    return {"terms": {field: values}} if values else _NONE


def _nested(path: str, *clauses: dict[str, Any]) -> dict[str, Any]:
    return {"nested": {"path": path, "score_mode": "none", "query": {"bool": {"filter": list(clauses)}}}}


def _compare(field: str, op: str, value: float) -> dict[str, Any]:
    return {"range": {field: dict.fromkeys(_RANGE_OPS[op], value)}}


def int_bounds(op: str, value: float) -> tuple[int | None, int | None] | None:
    """Inclusive integer bounds equivalent to `n <op> value` for integers n (None: no n can match);
    computed here so a fractional bound never depends on how the server rounds it."""
    if op == ">=":
        return math.ceil(value), None
    if op == ">":
        return math.floor(value) + 1, None
    if op == "<=":
        return None, math.floor(value)
    if op == "<":
        return None, math.ceil(value) - 1
    return (int(value), int(value)) if value == int(value) else None


def _int_range(field: str, op: str, value: float) -> dict[str, Any]:
    bounds = int_bounds(op, value)
    if bounds is None:
        return _NONE
    lo, hi = bounds
    # A `long` field refuses bounds outside its range: past the top nothing can match (lo) or
    # everything does (hi). Bounds are never negative (the models require value >= 0).
    if lo is not None and lo > _LONG_MAX:
        return _NONE
    if hi is not None and hi >= _LONG_MAX:
        hi = None
    rng = {k: v for k, v in (("gte", lo), ("lte", hi)) if v is not None}
    return {"range": {field: rng}}


def _runtime(c: RuntimeConstraint) -> dict[str, Any]:
    statuses = statuses_from(c.min_status)
    if c.version is None:
        return _terms("compat", [runtime_token(c.runtime, st) for st in statuses])
    release = get_vocab().release(c.runtime, c.version)
    if release is not None:  # a version the KB knows: its tokens say the same as the ranges
        return _terms("compat", [release_token(c.runtime, release, st, c.and_newer) for st in statuses])
    code = version_code(c.version)
    assert code is not None  # validated by the model
    # One cell (nested object) of the runtime at an accepted status whose [lo, hi) contains the
    # version; with `and_newer` the cell must also be open at the top (hi == CODE_MAX).
    keys = _any_of([{"prefix": {"rt.key": runtime_key_prefix(c.runtime, st)}} for st in statuses])
    hi = {"gte": CODE_MAX} if c.and_newer else {"gt": code}
    return _nested("rt", keys, {"range": {"rt.lo": {"lte": code}}}, {"range": {"rt.hi": hi}})


def _metric(c: MetricConstraint) -> dict[str, Any]:
    key = {"term": {"metric.key": metric_key(c.metric, c.dataset)}}
    if c.op is None or c.value is None:
        return _nested("metric", key)
    # The embedded backend's comparison on codes, bound for bound (values closer than the code's
    # precision compare as equal in both).
    code = float_code(c.value)
    lo, hi = {">=": (code, CODE_MAX), ">": (code + 1, CODE_MAX), "<=": (0, code), "<": (0, code - 1),
              "=": (code, code)}[c.op]
    if lo > hi:
        return _NONE
    return _nested("metric", key, {"range": {"metric.code": {"gte": lo, "lte": hi}}})


def constraint_query(c: Constraint) -> dict[str, Any]:
    """One constraint as a filter clause, ignoring its `negate` (the caller places it)."""
    vocab = get_vocab()
    if isinstance(c, FieldFilter):
        return _terms(c.field, vocab.expand(c.field, c.values))
    if isinstance(c, RuntimeConstraint):
        return _runtime(c)
    if isinstance(c, TargetConstraint):
        return _terms("compat", [target_token(t, st) for t in vocab.target_closure(c.target)
                                 for st in statuses_from(c.min_status)])
    if isinstance(c, HardwareConstraint):
        return _terms("compat", [hardware_token(c.hardware, st) for st in statuses_from(c.min_status)])
    if isinstance(c, StatusConstraint):
        return _terms("compat", [any_runtime_token(st) for st in statuses_from(c.min_status)])
    if isinstance(c, MetricConstraint):
        return _metric(c)
    if isinstance(c, LatencyConstraint):
        return _nested("lat", {"term": {"lat.hw": c.hardware or ANY_HARDWARE}},
                       {"term": {"lat.measured": c.measured_only}}, _compare("lat.ms", c.op, c.ms))
    if isinstance(c, MemoryConstraint):
        return _nested("mem", {"term": {"mem.hw": c.hardware or ANY_HARDWARE}}, _compare("mem.bytes", c.op, c.bytes))
    if isinstance(c, ParamsConstraint | SizeConstraint):
        return _int_range(c.kind, c.op, c.value)
    if isinstance(c, AnyOf):
        return {"bool": {"should": [_alternative(x) for x in c.of], "minimum_should_match": 1}}
    raise TypeError(f"unsupported constraint {c!r}")


def _alternative(c: Constraint) -> dict[str, Any]:
    inner = constraint_query(c)
    return {"bool": {"must_not": [inner]}} if c.negate else inner


def _in_text_fields(phrase: str, boosts: dict[str, float] | None = None) -> dict[str, Any]:
    """The words (a phrase when several) in any text field; with boosts, scores summed over the
    fields as Tantivy's multi-field parser does. A single word is a one-term phrase, and a word the
    analyzer splits ("1.14") is a phrase, as in Tantivy."""
    clauses = [{"match_phrase": {f: {"query": phrase, **({"boost": boosts[f]} if boosts else {})}}}
               for f in TEXT_BOOSTS]
    return {"bool": {"should": clauses, "minimum_should_match": 1}}


def _text_terms(text: str) -> list[tuple[str, str]]:
    """(occur, words) for each word or quoted phrase, reading AND / OR / NOT as Tantivy's query parser
    does: terms are alternatives, `a AND b` requires both, `NOT a` excludes; other syntax is dropped."""
    cleaned = QUERY_SYNTAX_CHARS.sub(" ", text)
    if cleaned.count('"') % 2:
        cleaned = cleaned.replace('"', " ")
    out: list[tuple[str, str]] = []
    negate = conjoin = False
    for i, part in enumerate(cleaned.split('"')):
        pieces = [(part.strip(), True)] if i % 2 else [(w, False) for w in part.split()]
        for words, quoted in pieces:
            if not words:
                continue
            if not quoted and words in ("AND", "OR", "NOT"):
                negate, conjoin = negate or words == "NOT", conjoin or words == "AND"
                continue
            occur = "must_not" if negate else "must" if conjoin else "should"
            if conjoin and out and out[-1][0] == "should":
                out[-1] = ("must", out[-1][1])
            out.append((occur, words))
            negate = conjoin = False
    return out


def text_query(text: str) -> dict[str, Any]:
    """BM25 over the text fields with the embedded backend's boosts; an exact id or name match is
    boosted far above everything else (it also matches on its own)."""
    occurs: dict[str, list[dict[str, Any]]] = {"should": [], "must": [], "must_not": []}
    for occur, words in _text_terms(text):
        occurs[occur].append(_in_text_fields(words, TEXT_BOOSTS))
    # Only exclusions: the parsed part matches nothing (as in Tantivy), not everything else.
    parsed: dict[str, Any] = {"bool": {k: v for k, v in occurs.items() if v}} if occurs["should"] or \
        occurs["must"] else _NONE
    exact = text.strip().strip('"').lower()
    return {"bool": {"should": [parsed, {"term": {"name_lc": {"value": exact, "boost": 1000.0}}},
                                {"term": {"id_lc": {"value": exact, "boost": 2000.0}}}],
                     "minimum_should_match": 1}}


def excluded_text(words: str) -> dict[str, Any] | None:
    """Records whose text contains the word (or, for several words, the phrase)."""
    cleaned = QUERY_SYNTAX_CHARS.sub(" ", words).replace('"', " ").strip()
    return _in_text_fields(" ".join(cleaned.split())) if cleaned else None


def es_query(q: SearchQuery) -> dict[str, Any]:
    """Every hard constraint (filter context: they score nothing) and the free text, as one query."""
    filters: list[dict[str, Any]] = []
    must_not: list[dict[str, Any]] = []
    for t in q.exclude_text:
        clause = excluded_text(t)
        if clause is not None:
            must_not.append(clause)
    for c in q.hard_constraints():
        (must_not if c.negate else filters).append(constraint_query(c))
    text = q.text.strip()
    body = {k: v for k, v in (("must", [text_query(text)] if text else []), ("filter", filters),
                              ("must_not", must_not)) if v}
    return {"bool": body} if body else {"match_all": {}}


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


def _facet_counts(field: str, agg: dict[str, Any]) -> dict[str, int]:
    counts = {str(b["key"]): int(b["doc_count"]) for b in agg.get("buckets", [])}
    if field == "params":  # every bucket, in order, zeros included
        return {label: counts.get(label, 0) for label, _, _ in PARAM_BUCKETS}
    return counts


def _ms(seconds: float) -> str:
    return f"{max(1, int(seconds * 1000))}ms"


# ------------------------------------------------------------------------------------------------
# The backend
# ------------------------------------------------------------------------------------------------
class ElasticsearchBackend:
    """The `SearchBackend` over one Elasticsearch index. Nothing connects until first use; the index
    is created then (or emptied and flagged `needs_rebuild` when another encoding built it)."""

    name = "elasticsearch"

    def __init__(self, url: str, index_name: str = DEFAULT_INDEX, *, api_key: str | None = None,
                 request_timeout_s: float = 10.0, write_timeout_s: float = 60.0, shards: int = 1,
                 replicas: int | None = None, bulk_chunk: int = 500) -> None:
        self.url = redact_url(url)  # never the credentials
        self.index_name = index_name
        self.request_timeout_s = request_timeout_s
        self.write_timeout_s = write_timeout_s
        self.shards, self.replicas, self.bulk_chunk = shards, replicas, bulk_chunk
        try:
            self._client = Elasticsearch(url, api_key=api_key, request_timeout=request_timeout_s, max_retries=2,
                                         retry_on_timeout=False, transport_class=_PinnedCompatTransport)
        except ValueError as e:
            raise ElasticsearchBackendError(f"Elasticsearch URL {self.url!r} is not usable: {e}") from None
        self._lock = threading.Lock()
        self._opened = False
        self._needs_rebuild = False
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="es-facets")
        self._closed = False

    # -- errors ------------------------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one client call; its failure becomes an `ElasticsearchBackendError` naming the server,
        the index and what was being done."""
        try:
            return fn()
        except helpers.BulkIndexError as e:
            first = e.errors[0] if e.errors else {}
            item = next(iter(first.values()), {}) if first else {}
            err = item.get("error", {}) if isinstance(item, dict) else {}
            detail = f"{len(e.errors)} record(s) refused; first: {item.get('_id')}: " \
                     f"{err.get('type', '')}: {err.get('reason', err)}"
            raise self._error(what, detail) from None
        except ApiError as e:
            raise self._error(what, f"HTTP {e.meta.status}: {_reason(e)}") from None
        except TransportError as e:
            raise self._error(what, f"{type(e).__name__}: {e.message}") from None

    def _error(self, what: str, detail: str) -> ElasticsearchBackendError:
        return ElasticsearchBackendError(f"Elasticsearch at {self.url} (index {self.index_name!r}): {what} failed: "
                                         f"{detail}")

    # -- the index -----------------------------------------------------------------------------------
    @property
    def needs_rebuild(self) -> bool:
        """True when the index was emptied on open because another mapping, facts encoding or KB
        built it; `tantivy_backend.ensure_current` then rebuilds it from the catalog."""
        self._open()
        return self._needs_rebuild

    @needs_rebuild.setter
    def needs_rebuild(self, value: bool) -> None:
        self._needs_rebuild = value

    def _open(self) -> None:
        if self._opened:
            return
        with self._lock:
            if self._opened:
                return
            if self._call("checking the index", lambda: bool(self._client.indices.exists(index=self.index_name))):
                built_by = self._stored_versions()
                if built_by != current_versions():
                    log.warning("search index %r at %s was built by another version (%s); it is emptied and must "
                                "be rebuilt from the catalog", self.index_name, self.url, built_by)
                    self._delete_index()
                    self._create()
                    self._needs_rebuild = True
            else:
                self._create()
            self._opened = True

    def _stored_versions(self) -> dict[str, Any]:
        resp = self._call("reading the mapping", lambda: self._client.indices.get_mapping(index=self.index_name))
        mappings = next(iter(resp.body.values()), {}).get("mappings", {})
        built_by = mappings.get("_meta", {}).get("modelport")
        if not isinstance(built_by, dict):
            # Not an index this backend made: never delete someone else's data.
            raise self._error("opening the index", "it exists but was not created by ModelPort; set "
                              "MODELPORT_ELASTICSEARCH_INDEX to another name or delete it")
        return built_by

    def _create(self) -> None:
        try:
            self._client.indices.create(index=self.index_name, settings=index_settings(self.shards, self.replicas),
                                        mappings=index_mappings())
        except ApiError as e:
            # Another process created it meanwhile: its mapping is the same.
            if _error_type(e) != "resource_already_exists_exception":
                raise self._error("creating the index", f"HTTP {e.meta.status}: {_reason(e)}") from None
        except TransportError as e:
            raise self._error("creating the index", f"{type(e).__name__}: {e.message}") from None

    def _delete_index(self) -> None:
        self._call("deleting the index", lambda: self._client.options(ignore_status=404).indices.delete(
            index=self.index_name))

    def delete_index(self) -> None:
        """Remove the index altogether (tests, operators); the next use creates it again."""
        with self._lock:
            self._delete_index()
            self._opened = False

    # -- writes --------------------------------------------------------------------------------------
    def _bulk(self, what: str, actions: Iterable[dict[str, Any]], ignore_status: tuple[int, ...] = ()) -> None:
        client = self._client.options(request_timeout=self.write_timeout_s)
        self._call(what, lambda: helpers.bulk(client, actions, chunk_size=self.bulk_chunk,
                                              ignore_status=ignore_status))

    def upsert(self, records: list[ModelRecord]) -> None:
        if not records:
            return
        self._open()
        self._bulk(f"indexing {len(records)} record(s)",
                   ({"_op_type": "index", "_index": self.index_name, "_id": r.id, "_source": es_document(r)}
                    for r in records))

    def delete(self, ids: list[str]) -> None:
        if not ids:
            return
        self._open()
        # A record the index never held is already gone (404 is not an error here).
        self._bulk(f"deleting {len(ids)} record(s)",
                   ({"_op_type": "delete", "_index": self.index_name, "_id": i} for i in ids), ignore_status=(404,))

    def commit(self) -> None:
        """Make every write so far searchable (an index refresh)."""
        self._open()
        self._call("refreshing the index", lambda: self._client.indices.refresh(index=self.index_name))

    def clear(self) -> None:
        with self._lock:
            self._delete_index()
            self._create()
            self._opened = True
            self._needs_rebuild = False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    def count(self) -> int:
        self._open()
        resp = self._call("counting records", lambda: self._client.count(index=self.index_name))
        return int(resp["count"])

    def rebuild_from(self, records: Iterable[ModelRecord], batch: int = 1000) -> int:
        """Empty the index and index `records` (the catalog's live records) again."""
        return rebuild_in_batches(self, records, batch)

    # -- hard-constraint sets ------------------------------------------------------------------------
    def count_matching(self, q: SearchQuery) -> int:
        self._open()
        query = es_query(q.model_copy(update={"text": ""}))
        resp = self._call("counting matches", lambda: self._client.count(index=self.index_name, query=query))
        return int(resp["count"])

    def matching_ids(self, q: SearchQuery) -> list[str]:
        """Ids of every record satisfying the hard constraints, free text ignored, sorted."""
        return list(self._iter_ids(es_query(q.model_copy(update={"text": ""}))))

    def _iter_ids(self, query: dict[str, Any]) -> Iterator[str]:
        self._open()
        after: list[Any] | None = None
        while True:
            resp = self._search("listing matching ids", query=query, sort=[{"id": "asc"}], size=_IDS_PAGE,
                                search_after=after, track_total_hits=False)
            hits = resp["hits"]["hits"]
            for h in hits:
                yield h["_id"]
            if len(hits) < _IDS_PAGE:
                return
            after = hits[-1]["sort"]

    # -- search --------------------------------------------------------------------------------------
    def _search(self, what: str, timeout_s: float | None = None, **body: Any) -> dict[str, Any]:
        """One search request with a client-side time limit and the same limit for the shards."""
        budget = timeout_s if timeout_s is not None else self.request_timeout_s
        body = {k: v for k, v in body.items() if v is not None}
        client = self._client.options(request_timeout=budget)
        resp = self._call(what, lambda: client.search(index=self.index_name, source=False, timeout=_ms(budget),
                                                      **body))
        return resp.body

    def search(self, q: SearchQuery) -> SearchResult:
        start = time.monotonic()
        cursor = decode_cursor(q)  # a bad cursor is the caller's error, found before any request
        if cursor is not None and len(cursor["a"]) != 2:
            raise CursorError("this cursor comes from another search backend; start from the first page")
        self._open()
        query = es_query(q)
        facets_future = self._submit_facets(query, q.facets, start + q.facet_timeout_s)
        notices: list[str] = []
        if q.sort == "relevance" and q.text.strip():
            resp = self._relevance_page(query, q, cursor, notices)
        else:
            field = q.sort if q.sort != "relevance" else "downloads"  # no text: most downloaded first
            resp = self._search("searching", query=query, sort=[{field: "desc"}, {"id": "asc"}], size=q.limit,
                                from_=None if cursor else q.offset, search_after=cursor["a"] if cursor else None,
                                track_total_hits=True)
        if resp.get("timed_out"):
            notices.append("the search ran out of time on some shards; results may be incomplete")
        found = resp["hits"]["hits"]
        total = int(resp["hits"]["total"]["value"])
        scored = q.sort == "relevance" and bool(q.text.strip())
        hits = [Hit(id=h["_id"], score=float(h["_score"] or 0.0) if scored else 0.0) for h in found]
        after = list(found[-1]["sort"]) if found else []
        facets = self._collect_facets(facets_future, q.facets, start + q.facet_timeout_s)
        position = (cursor["n"] if cursor else q.offset) + len(hits)
        next_cursor = encode_cursor(q, after, position) if hits and position < total and after else None
        return SearchResult(total=total, hits=hits, facets=facets, took_ms=(time.monotonic() - start) * 1000,
                            notices=notices, next_cursor=next_cursor)

    def _relevance_page(self, query: dict[str, Any], q: SearchQuery, cursor: dict[str, Any] | None,
                        notices: list[str]) -> dict[str, Any]:
        """BM25 order, ties by id. Offset pages are `from`/`size`; a cursor carries the (score, id) of
        the last record shown and the page continues right after that record's current place, so a
        change to the index between pages (which moves every score) repeats nothing already shown."""
        sort = [{"_score": "desc"}, {"id": "asc"}]
        if cursor is None:
            return self._search("searching", query=query, sort=sort, size=q.limit, from_=q.offset,
                                track_scores=True, track_total_hits=True)
        score, last_id = float(cursor["a"][0]), str(cursor["a"][1])
        now = self._score_of(query, last_id)
        if now != score:
            notices.append(_CHANGED)
        # The last record shown no longer matches: continue below the score it had.
        after = [now if now is not None else score, last_id]
        return self._search("searching", query=query, sort=sort, size=q.limit, search_after=after,
                            track_scores=True, track_total_hits=True)

    def _score_of(self, query: dict[str, Any], rid: str) -> float | None:
        """A record's current score under the query (None when it no longer matches)."""
        resp = self._search("locating the last record shown",
                            query={"bool": {"must": [query], "filter": [{"ids": {"values": [rid]}}]}},
                            size=1, track_total_hits=False)
        hits = resp["hits"]["hits"]
        return float(hits[0]["_score"]) if hits else None

    # -- facets --------------------------------------------------------------------------------------
    def _submit_facets(self, query: dict[str, Any], fields: list[str], deadline: float
                       ) -> Future[dict[str, dict[str, int]]] | None:
        """Facets run beside the page, as one aggregation request limited to what is left of the
        facet time (on the client and on the shards), so a slow facet never holds the hits back."""
        aggs = facet_aggs(fields)
        if not aggs:
            return None
        return self._pool.submit(self._facet_request, query, aggs, deadline)

    def _facet_request(self, query: dict[str, Any], aggs: dict[str, Any], deadline: float) -> dict[str, dict[str, int]]:
        budget = deadline - time.monotonic()
        if budget <= 0:  # waited for a worker past the deadline: no request can come back in time
            raise TimeoutError("no time left for facets")
        try:
            resp = self._search("counting facets", timeout_s=budget, query=query, aggs=aggs, size=0,
                                track_total_hits=False)
        except ElasticsearchBackendError as e:
            if time.monotonic() >= deadline:  # the client gave up at the deadline: out of time, not broken
                raise TimeoutError(str(e)) from None
            raise
        if resp.get("timed_out"):
            # Partial counts would look exact: report the facets as out of time instead.
            raise TimeoutError("facet aggregation timed out on the shards")
        return {f: _facet_counts(f, agg) for f, agg in resp.get("aggregations", {}).items()}

    @staticmethod
    def _collect_facets(future: Future[dict[str, dict[str, int]]] | None, fields: list[str],
                        deadline: float) -> dict[str, FacetCounts]:
        if future is None:
            return {}
        wanted = [f for f in dict.fromkeys(fields) if f in FACET_FIELDS]
        wait([future], timeout=max(0.0, deadline - time.monotonic()))
        if future.done() and not future.cancelled():
            try:
                counts = future.result()
                return {f: FacetCounts(counts=counts.get(f, {})) for f in wanted}
            except TimeoutError:
                pass
            except Exception as e:  # a facet failing must not fail the search
                log.warning("facets failed: %s", e)
        else:
            future.cancel()
        return {f: FacetCounts(timed_out=True) for f in wanted}


def _error_type(e: ApiError) -> str:
    body = e.body if isinstance(e.body, dict) else {}
    err = body.get("error")
    return str(err.get("type", "")) if isinstance(err, dict) else ""


def _reason(e: ApiError) -> str:
    """The server's own explanation (root cause first), else the error's type."""
    body = e.body if isinstance(e.body, dict) else {}
    err = body.get("error")
    if isinstance(err, dict):
        root = (err.get("root_cause") or [{}])[0]
        reason = root.get("reason") or err.get("reason")
        kind = root.get("type") or err.get("type")
        return f"{kind}: {reason}" if reason else str(kind)
    return str(err or e.message)


def unique_index_name(prefix: str = "modelport-test") -> str:
    """A fresh index name (lower-case, as Elasticsearch requires)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


__all__ = ["ElasticsearchBackend", "ElasticsearchBackendError", "es_document", "es_query", "constraint_query",
           "text_query", "facet_aggs", "index_mappings", "index_settings", "int_bounds", "redact_url",
           "unique_index_name", "INDEX_FORMAT", "DEFAULT_INDEX"]
