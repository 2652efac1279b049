"""Embedded search backend: Tantivy (BM25 over name, description, card and tags; raw fast fields
for exact filters and facet aggregations; the facts of `index/facts.py` as exact range queries).

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
import json
import logging
import math
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, assert_never

import numpy as np
import tantivy

from modelport.index.facts import (
    CODE_BITS,
    CODE_MAX,
    FACTS_VERSION,
    KEY_MAX,
    any_runtime_token,
    composite,
    float_code,
    hardware_token,
    metric_key,
    record_facts,
    release_token,
    runtime_key_prefix,
    runtime_token,
    sort_key,
    statuses_from,
    target_token,
    version_code,
)
from modelport.index.lineage import Lookups, Node, Tree, generation_weight, walk
from modelport.index.search import (
    BM25_BOOST_SCALE,
    EVIDENCE_BOOST,
    EVIDENCE_WEIGHTS,
    FACET_FIELDS,
    FILTER_FIELDS,
    LINEAGE_BOOST,
    PARAM_BUCKETS,
    QUERY_SYNTAX_CHARS,
    SORT_FIELDS,
    TEXT_BOOSTS,
    AnyOf,
    Constraint,
    FacetCounts,
    FieldFilter,
    HardwareConstraint,
    Hit,
    LatencyConstraint,
    LineageConstraint,
    MemoryConstraint,
    MetricConstraint,
    ParamsConstraint,
    RuntimeConstraint,
    SearchQuery,
    SearchResult,
    SizeConstraint,
    StatusConstraint,
    TargetConstraint,
    decode_cursor,
    encode_cursor,
    ensure_current,
    rebuild_in_batches,
    search_text,
)
from modelport.index.vocab import FACET_OVERFLOW_BIT, get_vocab
from modelport.schema.kb import get_kb
from modelport.schema.record import ModelRecord

log = logging.getLogger(__name__)

INDEX_FORMAT = 8  # the field layout below; with FACTS_VERSION and the KB version it decides rebuilds
META_FILE = "modelport-index.json"
_BOOSTS = TEXT_BOOSTS
# Multi-valued facet fields with a closed KB vocabulary, also indexed as one bitmask per record.
_MASKED = ("runtime", "target", "hardware", "format", "status")
_QUERY_SYNTAX = QUERY_SYNTAX_CHARS
_PLAIN_WORD = re.compile(r"[\w.,]+")
_PARSER_KEYWORDS = frozenset({"AND", "OR", "NOT", "IN", "TO"})
_DISTRIBUTE_WORDS_MAX = 3  # more words repeat the constraints too often to pay (measured at 1M records)
_U64 = tantivy.FieldType.Unsigned
_I64 = tantivy.FieldType.Integer
_F64 = tantivy.FieldType.Float
_MUST, _SHOULD, _MUST_NOT = tantivy.Occur.Must, tantivy.Occur.Should, tantivy.Occur.MustNot
# Relevance pages are slices of a top-N list (N = position + page size); deeper, sort by a field.
_RELEVANCE_DEPTH_MAX = 100_000
_LAZY_TERMS = 4  # up to this many alternatives a filter is a union of term queries, above a term set
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
# Big enough that a bulk commit interval (50k records) fills one segment: fewer segments to merge.
# Tantivy takes the memory as documents arrive, so a small batch does not hold it.
_WRITER_HEAP = 400_000_000
_WRITER_IDLE_S = 2.0  # an open writer with nothing to commit is given back after this long


@functools.cache
def _hw_suffix(hw: str | None) -> str:
    return "all" if hw is None else "hw_" + re.sub(r"[^A-Za-z0-9]", "_", hw)


def _lat_field(hw: str | None, measured_only: bool) -> str:
    return f"{'latm' if measured_only else 'lat'}_{_hw_suffix(hw)}"


def _mem_field(hw: str | None) -> str:
    return f"mem_{_hw_suffix(hw)}"


def _param_bucket(n: int) -> int:
    return next(i for i, (_, lo, hi) in enumerate(PARAM_BUCKETS)
                if (lo is None or n >= lo) and (hi is None or n < hi))


def _schema() -> tantivy.Schema:
    b = tantivy.SchemaBuilder()
    b.add_text_field("id", stored=True, tokenizer_name="raw", fast=True)
    b.add_text_field("id_lc", tokenizer_name="raw")
    b.add_text_field("name_lc", tokenizer_name="raw")
    for f in _BOOSTS:
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
        for f in (_lat_field(hw, False), _lat_field(hw, True), _mem_field(hw)):
            b.add_float_field(f, fast=True)
    for f in ("params", "size"):
        b.add_integer_field(f, fast=True, indexed=True)
    for f in SORT_FIELDS:
        b.add_integer_field(f, fast=True, indexed=True)
        b.add_unsigned_field(f"sk_{f}", fast=True)
    for f in _MASKED:
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
_DOWNLOAD_BUCKETS = 44  # 4 per decade, up to 10^11
_DOWNLOAD_STEP = 1e-5


def _matched(res: tantivy.SearchResult) -> int:
    """The match count of a search run with `count=True` (0 without one)."""
    n = res.count  # type: ignore[attr-defined]  # tantivy 0.27's stub omits SearchResult.count; it exists
    return int(n or 0)


def _int(value: int | float | bool | None) -> int:
    """An integer fast field's value (tantivy's stub gives every fast field one value type)."""
    assert value is not None  # the integer fields read here (`row`, sort keys) are set on every document
    return int(value)


def _download_bucket(downloads: int) -> int:
    return min(_DOWNLOAD_BUCKETS - 1, int(4 * math.log10(max(downloads, 0) + 1)))


class _Meta:
    """The index's own bookkeeping, in a JSON file beside the Tantivy files: layout / facts / KB
    versions (a mismatch means rebuild), the next row number, and the ids of fact keys. Keys are
    append-only within a generation (a new one starts whenever the index is emptied), so a reader
    holding an older table of the same generation only lacks keys that newer documents introduced."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.versions: dict[str, Any] = {}
        self.generation = ""
        self.next_row = 0
        self.keys: dict[str, int] = {}
        self._mtime = 0.0
        self._lock = threading.Lock()

    @staticmethod
    def current_versions() -> dict[str, Any]:
        return {"format": INDEX_FORMAT, "facts": FACTS_VERSION, "kb": get_kb().version}

    def _read(self) -> tuple[dict[str, Any], float] | None:
        try:
            st = self.path.stat()
            return json.loads(self.path.read_text()), st.st_mtime
        except (OSError, ValueError):
            return None

    def load(self) -> bool:
        got = self._read()
        if got is None:
            return False
        data, self._mtime = got
        self.versions = data.get("versions", {})
        self.generation = str(data.get("generation", ""))
        self.next_row = int(data.get("next_row", 0))
        self.keys = {str(k): int(v) for k, v in data.get("keys", {}).items()}
        return True

    def reset(self) -> None:
        self.versions, self.next_row, self.keys = self.current_versions(), 0, {}
        self.generation = uuid.uuid4().hex

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        with self._lock:
            tmp.write_text(json.dumps({"versions": self.versions, "generation": self.generation,
                                       "next_row": self.next_row, "keys": self.keys}))
            os.replace(tmp, self.path)
            self._mtime = self.path.stat().st_mtime

    def key_id(self, key: str, create: bool = False) -> int | None:
        kid = self.keys.get(key)
        if kid is None and not create:
            self.refresh()
            kid = self.keys.get(key)
        if kid is None and create:
            with self._lock:
                kid = self.keys.setdefault(key, len(self.keys) + 1)
            if kid > KEY_MAX:
                raise RuntimeError("search index fact-key table is full; run `modelport reindex`")
        return kid

    def key_ids_with_prefix(self, prefix: str) -> list[int]:
        return [v for k, v in self.keys.items() if k.startswith(prefix)]

    def refresh(self) -> None:
        """Pick up keys another process (a harvest) added: merged within one generation, replaced
        when the index was emptied and renumbered meanwhile."""
        try:
            if self.path.stat().st_mtime == self._mtime:
                return
        except OSError:
            return
        got = self._read()
        if got is None:
            return
        data, mtime = got
        with self._lock:
            if str(data.get("generation", "")) != self.generation:
                self.generation = str(data.get("generation", ""))
                self.versions = data.get("versions", {})
                self.keys = {str(k): int(v) for k, v in data.get("keys", {}).items()}
                self.next_row = int(data.get("next_row", 0))
            else:
                for k, v in data.get("keys", {}).items():
                    self.keys.setdefault(str(k), int(v))
                self.next_row = max(self.next_row, int(data.get("next_row", 0)))
            self._mtime = mtime


class ConstraintMatches:
    """The records one query selects, on one searcher (a snapshot): how many, their row numbers or
    ids, which of some given rows or ids are among them, and which have an exact id or name. The
    hybrid ranking restricts its dense search with it (index/hybrid.py `ConstraintSet`)."""

    def __init__(self, backend: TantivyBackend, q: SearchQuery) -> None:
        self._schema = backend.schema
        self._searcher = backend.index.searcher()
        self._query = backend.build_query(q)
        self.n_all = self._searcher.num_docs

    def count(self) -> int:
        return _matched(self._searcher.search(self._query, limit=1, count=True))

    def _addrs(self, query: tantivy.Query, limit: int) -> list[tantivy.DocAddress]:
        return [a for _, a in self._searcher.search(query, limit=max(limit, 1), count=False).hits]

    def _ids(self, addrs: list[tantivy.DocAddress]) -> list[str]:
        return [self._searcher.doc(a)["id"][0] for a in addrs]

    def _rows(self, addrs: list[tantivy.DocAddress]) -> np.ndarray:
        # Read from the `row` fast field: no document is loaded.
        return np.asarray(self._searcher.fast_field_values("row", addrs), dtype=np.int64)

    def rows(self, limit: int) -> np.ndarray:
        """Row numbers of (up to `limit` of) the matching records."""
        return self._rows(self._addrs(self._query, limit))

    def ids(self, limit: int) -> list[str]:
        return self._ids(self._addrs(self._query, limit))

    def _within(self, member: tantivy.Query) -> tantivy.Query:
        return tantivy.Query.boolean_query([(_MUST, self._query), (_MUST, member)])

    def rows_among(self, rows: np.ndarray) -> np.ndarray:
        """Which of `rows` belong to matching records."""
        member = tantivy.Query.term_set_query(self._schema, "row", [int(r) for r in rows])
        return self._rows(self._addrs(self._within(member), len(rows)))

    def ids_among(self, ids: list[str]) -> list[str]:
        member = tantivy.Query.term_set_query(self._schema, "id", ids)
        return self._ids(self._addrs(self._within(member), len(ids)))

    def exact(self, text: str) -> list[str]:
        """Matching records whose lower-cased id or name is `text`, sorted."""
        clauses = []
        for field in ("id_lc", "name_lc"):
            try:
                clauses.append((_SHOULD, tantivy.Query.term_set_query(self._schema, field, [text])))
            except ValueError:  # an index of a layout without the field
                continue
        if not clauses:
            return []
        res = self._searcher.search(self._within(tantivy.Query.boolean_query(clauses)), limit=10, count=False)
        return sorted(self._ids([a for _, a in res.hits]))


class TantivyBackend:
    name = "embedded"

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.schema = _schema()
        self._float_fields = {_lat_field(hw, m) for hw in [None, *get_kb().compat.hardware] for m in (False, True)} \
            | {_mem_field(hw) for hw in [None, *get_kb().compat.hardware]}
        self.meta = _Meta(self.path / META_FILE)
        self.needs_rebuild = False
        self._writer: tantivy.IndexWriter | None = None
        self._wlock = threading.RLock()
        self._dirty = False  # writes since the last commit
        self._idle_timer: threading.Timer | None = None
        self._pending_rows: dict[str, int] = {}
        self._commits = 0
        self._lineage_memo: dict[tuple[Any, ...], Tree] = {}
        self._lineage_lock = threading.Lock()
        has_index = tantivy.Index.exists(str(self.path))
        stale = has_index and (not self.meta.load() or self.meta.versions != _Meta.current_versions())
        if not stale and has_index:
            try:
                self.index = tantivy.Index(self.schema, path=str(self.path), reuse=True)
            except ValueError:
                stale = True
        if stale:
            # An index written by another layout, facts encoding or KB: its facts cannot be trusted.
            log.warning("search index at %s was built by another version; it is emptied and must be "
                        "rebuilt from the catalog", self.path)
            self.needs_rebuild = True
            self._wipe()
        elif not has_index:
            self._wipe()

    def _wipe(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir(parents=True, exist_ok=True)
        self.meta.reset()
        self.meta.save()
        self.index = tantivy.Index(self.schema, path=str(self.path), reuse=False)

    # -- writes ------------------------------------------------------------------------------
    def _w(self) -> tantivy.IndexWriter:
        """The writer, kept open from one commit to the next while writes keep coming (a bulk
        reindex commits every batch: reopening it and waiting for its merges each time cost ~50 us a
        record at 20k records and more at 1M, where merges of big segments then block the batch).
        It is given back `_WRITER_IDLE_S` after the last write, so another process can write."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self._writer is None:
            deadline = time.monotonic() + _WRITER_IDLE_S + 10.0
            while True:
                try:
                    self._writer = self.index.writer(heap_size=_WRITER_HEAP, num_threads=1)
                    break
                except ValueError:
                    # Another writer holds the index lock (an idle one is given back within seconds).
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            # Whatever was committed before the lock was ours: rows and keys continue from there.
            self.index.reload()
            self.meta.refresh()
        return self._writer

    def _release_idle(self) -> None:
        with self._wlock:
            if self._writer is not None and not self._dirty:
                self._writer.wait_merging_threads()
                self._writer = None
                self._pending_rows.clear()

    def upsert(self, records: list[ModelRecord]) -> None:
        with self._wlock:
            w = self._w()
            self._dirty = True
            rows, known = self._rows_for([r.id for r in records])
            added: set[str] = set()
            for r in records:
                # A record the index has never held needs no delete (a delete is applied to every
                # segment at commit).
                if r.id in known or r.id in added:
                    w.delete_documents_by_term("id", r.id)
                added.add(r.id)
                w.add_document(self._doc(r, rows[r.id]))

    def _rows_for(self, ids: list[str]) -> tuple[dict[str, int], set[str]]:
        """A record keeps its row number for life (vector indexes and sort keys use it); new ids
        take the next free number. Also returns the ids the index (or this writer) already holds."""
        out = {i: self._pending_rows[i] for i in ids if i in self._pending_rows}
        todo = [i for i in ids if i not in out]
        if todo:
            searcher = self.index.searcher()
            if searcher.num_docs:
                res = searcher.search(tantivy.Query.term_set_query(self.schema, "id", todo), limit=len(todo),
                                      count=False)
                addrs = [a for _, a in res.hits]
                for addr, row in zip(addrs, searcher.fast_field_values("row", addrs), strict=True):
                    out[searcher.doc(addr)["id"][0]] = _int(row)
        known = set(out)
        for i in ids:
            if i not in out:
                out[i] = self.meta.next_row
                self.meta.next_row += 1
        self._pending_rows.update(out)
        return out, known

    def _doc(self, r: ModelRecord, row: int) -> tantivy.Document:
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
            if field in _MASKED:
                bits = vocab.facet_bits(field)
                fields[f"fm_{field}"] = [sum({1 << bits.get(v, FACET_OVERFLOW_BIT) for v in values})]
        keys = self.meta.keys

        def key(k: str) -> int:
            kid = keys.get(k)
            return kid if kid is not None else self.meta.key_id(k, create=True) or 0

        if facts.runtime_ranges:
            kids = [key(k) << CODE_BITS for k, _, _ in facts.runtime_ranges]
            fields["rt_lo"] = [kid | lo for kid, (_, lo, _) in zip(kids, facts.runtime_ranges, strict=True)]
            fields["rt_hi"] = [kid | hi for kid, (_, _, hi) in zip(kids, facts.runtime_ranges, strict=True)]
        if facts.metrics:
            fields["metric_v"] = [composite(key(k), float_code(v)) for k, v in facts.metrics]
        # Figures on hardware outside the KB count for "any profile" only (no query can name it).
        floats = self._float_fields
        for hw, measured_only, ms in facts.latencies:
            name = _lat_field(hw, measured_only)
            if name in floats:
                fields[name] = [ms]
        for hw, wb in facts.memory:
            name = _mem_field(hw)
            if name in floats:
                fields[name] = [wb]
        if facts.params is not None:
            fields["params"] = [facts.params]
            fields["fm_params"] = [_param_bucket(facts.params)]
        if facts.size is not None:
            fields["size"] = [facts.size]
        fields["dl_bucket"] = [_download_bucket(facts.downloads)]
        for f in SORT_FIELDS:
            value = getattr(facts, f)
            fields[f] = [value]
            fields[f"sk_{f}"] = [sort_key(value, row)]
        # One call with every value is about twice as fast as one add_* call per value.
        return tantivy.Document.from_dict(fields, self.schema)

    def delete(self, ids: list[str]) -> None:
        with self._wlock:
            w = self._w()
            self._dirty = True
            for rid in ids:
                w.delete_documents_by_term("id", rid)
                self._pending_rows.pop(rid, None)

    def commit(self) -> None:
        with self._wlock:
            if self._writer is not None and self._dirty:
                # Keys and row numbers first: a committed document never refers to an unsaved key.
                self.meta.save()
                self._writer.commit()
                self._dirty = False
                self._pending_rows.clear()
                self._commits += 1
            self.index.reload()
            if self._writer is not None:
                self._idle_timer = threading.Timer(_WRITER_IDLE_S, self._release_idle)
                self._idle_timer.daemon = True
                self._idle_timer.start()

    def clear(self) -> None:
        with self._wlock:
            self._cancel_idle()
            if self._writer is not None:
                self._writer.rollback()
                self._writer.wait_merging_threads()
                self._writer = None
            self._dirty = False
            self._pending_rows.clear()
            self._wipe()
            self.needs_rebuild = False

    def close(self) -> None:
        with self._wlock:
            self._cancel_idle()
            if self._writer is not None:
                if self._dirty:
                    self.meta.save()
                    self._writer.commit()
                self._writer.wait_merging_threads()
                self._writer = None
                self._dirty = False
                self._pending_rows.clear()

    def _cancel_idle(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def count(self) -> int:
        self.index.reload()
        return self.index.searcher().num_docs

    def rebuild_from(self, records: Iterable[ModelRecord], batch: int = 1000) -> int:
        """Empty the index and index `records` (the catalog's live records) again."""
        return rebuild_in_batches(self, records, batch)

    # -- queries -----------------------------------------------------------------------------
    def build_query(self, q: SearchQuery) -> tantivy.Query:
        """Every hard constraint (and the free text, when there is any) as one Tantivy query, plus
        the evidence and lineage boosts when the query asks for them (`boost_clauses`)."""
        query = self._match_query(q)
        if not (q.rank_boosts and q.sort == "relevance" and q.has_boosts()):
            return query
        if q.text.strip():
            return tantivy.Query.boolean_query([(_MUST, query), *self.boost_clauses(q, BM25_BOOST_SCALE)])
        downloads = [(_SHOULD, tantivy.Query.const_score_query(
            tantivy.Query.term_query(self.schema, "dl_bucket", b), b * _DOWNLOAD_STEP))
            for b in range(1, _DOWNLOAD_BUCKETS)]
        return tantivy.Query.boolean_query([(_MUST, query), *self.boost_clauses(q, 1.0), *downloads])

    def _match_query(self, q: SearchQuery) -> tantivy.Query:
        clauses: list[tuple[tantivy.Occur, tantivy.Query]] = []
        for t in q.exclude_text:
            if t.strip():
                clauses.append((_MUST_NOT, self._text_any(t)))
        for c in q.hard_constraints():
            cq = self.constraint_query(c)
            clauses.append((_MUST_NOT if c.negate else _MUST, cq))
        text = q.text.strip()
        if text:
            parts = self._text_parts(text) if any(o == _MUST for o, _ in clauses) else None
            if parts is not None:
                # (w1 OR w2 OR ...) AND c as (w1 AND c) OR (w2 AND c) OR ...: the same documents and
                # the same scores (c scores 0), but each word is sought in the documents c matches
                # instead of a union of common words being scored over the whole index first (at 1M
                # records 12.6 -> 8.3 ms p50 for BM25 top-100 with 1-3 constraints).
                cq = tantivy.Query.boolean_query(clauses)
                return tantivy.Query.boolean_query(
                    [(_SHOULD, tantivy.Query.boolean_query([(_MUST, part), (_MUST, cq)])) for part in parts])
            clauses.insert(0, (_MUST, self.text_query(text)))
        if not clauses:
            return tantivy.Query.all_query()
        if all(o == _MUST_NOT for o, _ in clauses):
            clauses.append((_MUST, tantivy.Query.all_query()))
        return tantivy.Query.boolean_query(clauses)

    def constraint_query(self, c: Constraint) -> tantivy.Query:
        """One constraint, ignoring its `negate` (the caller places it as MustNot). Constraints
        score nothing, so they never reorder what the text ranks."""
        return tantivy.Query.const_score_query(self._constraint(c), 0.0)

    def _constraint(self, c: Constraint) -> tantivy.Query:
        vocab = get_vocab()
        # Exhaustive: a new constraint type fails type checking here (assert_never) until compiled.
        match c:
            case FieldFilter():
                return self._tokens(vocab.expand(c.field, c.values), c.field)
            case RuntimeConstraint():
                return self._runtime(c)
            case TargetConstraint():
                return self._tokens([target_token(t, st) for t in vocab.target_closure(c.target)
                                     for st in statuses_from(c.min_status)])
            case HardwareConstraint():
                return self._tokens([hardware_token(c.hardware, st) for st in statuses_from(c.min_status)])
            case StatusConstraint():
                return self._tokens([any_runtime_token(st) for st in statuses_from(c.min_status)])
            case MetricConstraint():
                return self._keyed("metric_v", metric_key(c.metric, c.dataset), c.op, c.value)
            case LatencyConstraint():
                return self._float_range(_lat_field(c.hardware, c.measured_only), c.op, c.ms)
            case MemoryConstraint():
                return self._float_range(_mem_field(c.hardware), c.op, c.bytes)
            case ParamsConstraint() | SizeConstraint():
                return self._int_range(c.kind, c.op, c.value)
            case LineageConstraint():
                ids = sorted(self.lineage(c).generation)
                return tantivy.Query.term_set_query(self.schema, "id", ids) if ids else tantivy.Query.empty_query()
            case AnyOf():
                subs = [(_SHOULD, self._alternative(x)) for x in c.of]
                return tantivy.Query.boolean_query(subs)
            case _:
                assert_never(c)

    # -- lineage -------------------------------------------------------------------------------
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
        return tantivy.Query.boolean_query([(_SHOULD, tantivy.Query.term_set_query(self.schema, f, values))
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

    # -- ranking boosts (evidence, lineage generation) -----------------------------------------
    def boost_clauses(self, q: SearchQuery, scale: float) -> list[tuple[tantivy.Occur, tantivy.Query]]:
        """Should clauses adding each record's evidence and lineage boosts (search.EVIDENCE_BOOST,
        LINEAGE_BOOST) times `scale` to its score; they never decide whether it matches."""
        out: list[tuple[tantivy.Occur, tantivy.Query]] = []
        prefs = q.evidence_preferences()
        for p in prefs:
            tokens = p.evidence_tokens()
            for level, weight in EVIDENCE_WEIGHTS.items():
                w = scale * EVIDENCE_BOOST * weight / len(prefs)
                # Only the best level of a record counts: each level's clause excludes the better ones.
                better = [t for lv, wt in EVIDENCE_WEIGHTS.items() if wt > weight for t in tokens[lv]]
                inner = [(_MUST, self._tokens(tokens[level]))]
                if better:
                    inner.append((_MUST_NOT, self._tokens(better)))
                out.append((_SHOULD, tantivy.Query.const_score_query(tantivy.Query.boolean_query(inner), w)))
        for c in q.lineage_constraints():
            by_gen: dict[int, list[str]] = {}
            for rid, g in self.lineage(c).generation.items():
                by_gen.setdefault(g, []).append(rid)
            for g, ids in by_gen.items():
                boost = scale * LINEAGE_BOOST * generation_weight(g)
                out.append((_SHOULD, tantivy.Query.const_score_query(
                    tantivy.Query.term_set_query(self.schema, "id", sorted(ids)), boost)))
        return out

    def boosts_of(self, q: SearchQuery, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Each record's evidence score (0..1, per preference: the level found) and lineage generation,
        for the hybrid fusion and `explain`."""
        out: dict[str, dict[str, Any]] = {i: {} for i in ids}
        if not ids:
            return out
        searcher = self.index.searcher()
        # Scored 0: a term-set query scores 1, which would shift every sum of 2^i up one level.
        among = tantivy.Query.const_score_query(tantivy.Query.term_set_query(self.schema, "id", ids), 0.0)
        prefs = q.evidence_preferences()
        order = sorted(EVIDENCE_WEIGHTS, key=lambda lv: EVIDENCE_WEIGHTS[lv])  # weakest first
        for p in prefs:
            # One search per preference: level i scores 2^i, so a record's score names all its levels
            # and the best one is the highest bit.
            tokens = p.evidence_tokens()
            levels_q = [(_SHOULD, tantivy.Query.const_score_query(self._tokens(tokens[lv]), float(1 << i)))
                        for i, lv in enumerate(order)]
            query = tantivy.Query.boolean_query([(_MUST, among), (_MUST, tantivy.Query.boolean_query(levels_q))])
            for score, addr in searcher.search(query, limit=len(ids), count=False).hits:
                best = order[int(round(score)).bit_length() - 1]
                out[searcher.doc(addr)["id"][0]].setdefault("evidence", {})[f"{p.kind}:{p.value}"] = best
        for c in q.lineage_constraints():
            tree = self.lineage(c)
            for i in ids:
                if i in tree.generation:
                    out[i]["generation"] = min(out[i].get("generation", 99), tree.generation[i])
        for info in out.values():
            levels = info.get("evidence", {})
            score = sum(EVIDENCE_WEIGHTS[lv] for lv in levels.values())
            info["evidence_score"] = score / len(prefs) if prefs else 0.0
        return out

    def _alternative(self, c: Constraint) -> tantivy.Query:
        inner = self._constraint(c)
        if not c.negate:
            return inner
        return tantivy.Query.boolean_query([(_MUST, tantivy.Query.all_query()), (_MUST_NOT, inner)])

    def _tokens(self, tokens: list[str], field: str = "compat") -> tantivy.Query:
        """Any of the terms. A few terms as a lazy union of term queries (cheap to skip through inside
        an intersection); many as a term set (one bitset)."""
        if len(tokens) <= _LAZY_TERMS:
            return tantivy.Query.boolean_query([(_SHOULD, tantivy.Query.term_query(self.schema, field, t))
                                                for t in tokens])
        return tantivy.Query.term_set_query(self.schema, field, tokens)

    def _runtime(self, c: RuntimeConstraint) -> tantivy.Query:
        statuses = statuses_from(c.min_status)
        if c.version is None:
            return self._tokens([runtime_token(c.runtime, st) for st in statuses])
        release = get_vocab().release(c.runtime, c.version)
        if release is not None:  # a version the KB knows: its tokens say the same as the ranges
            return self._tokens([release_token(c.runtime, release, st, c.and_newer) for st in statuses])
        code = version_code(c.version)
        assert code is not None  # validated by the model
        alternatives = []
        kids = [k for st in statuses for k in self.meta.key_ids_with_prefix(runtime_key_prefix(c.runtime, st))]
        for kid in kids:
            lo = tantivy.Query.range_query(self.schema, "rt_lo", _U64, composite(kid, 0), composite(kid, code),
                                           use_inverted_index=True)
            hi_from = CODE_MAX if c.and_newer else code + 1
            hi = tantivy.Query.range_query(self.schema, "rt_hi", _U64, composite(kid, hi_from),
                                           composite(kid, CODE_MAX), use_inverted_index=True)
            alternatives.append((_SHOULD, tantivy.Query.boolean_query([(_MUST, lo), (_MUST, hi)])))
        if not alternatives:
            return tantivy.Query.empty_query()
        return tantivy.Query.boolean_query(alternatives)

    def _keyed(self, field: str, key: str, op: str | None, value: float | None) -> tantivy.Query:
        kid = self.meta.key_id(key)
        if kid is None:
            return tantivy.Query.empty_query()
        if op is None or value is None:
            lo, hi = 0, CODE_MAX
        else:
            code = float_code(value)
            bounds = {">=": (code, CODE_MAX), ">": (code + 1, CODE_MAX), "<=": (0, code), "<": (0, code - 1),
                      "=": (code, code)}[op]
            lo, hi = bounds
            if lo > hi:
                return tantivy.Query.empty_query()
        return tantivy.Query.range_query(self.schema, field, _U64, composite(kid, lo), composite(kid, hi),
                                         use_inverted_index=field == "metric_v")

    def _float_range(self, field: str, op: str, value: float) -> tantivy.Query:
        if field not in self._float_fields:
            return tantivy.Query.empty_query()
        lo, hi, inc_lo, inc_hi = {">=": (value, None, True, True), ">": (value, None, False, True),
                                  "<=": (None, value, True, True), "<": (None, value, True, False),
                                  "=": (value, value, True, True)}[op]
        return tantivy.Query.range_query(self.schema, field, _F64, lo, hi, inc_lo, inc_hi)

    def _int_range(self, field: str, op: str, value: float) -> tantivy.Query:
        # Integer fields: round the bound the way that keeps the comparison exact.
        import math

        lo: int | None
        hi: int | None
        if op == ">=":
            lo, hi = math.ceil(value), None
        elif op == ">":
            lo, hi = math.floor(value) + 1, None
        elif op == "<=":
            lo, hi = None, math.floor(value)
        elif op == "<":
            lo, hi = None, math.ceil(value) - 1
        else:
            if value != int(value):
                return tantivy.Query.empty_query()
            lo = hi = int(value)
        return tantivy.Query.range_query(self.schema, field, _I64, lo, hi)

    def text_query(self, text: str) -> tantivy.Query:
        """Any term may match (BM25 ranks documents with more of them higher); an exact id or name
        match is boosted far above everything else; quoted phrases are kept as phrases."""
        cleaned = _QUERY_SYNTAX.sub(" ", text)
        cleaned = cleaned.replace('"', " ") if cleaned.count('"') % 2 else cleaned
        parsed, _errors = self.index.parse_query_lenient(
            cleaned, list(_BOOSTS), field_boosts=_BOOSTS, conjunction_by_default=False)
        exact = text.strip().strip('"').lower()
        return tantivy.Query.boolean_query([
            (_SHOULD, parsed),
            (_SHOULD, tantivy.Query.boost_query(
                tantivy.Query.term_set_query(self.schema, "name_lc", [exact]), 1000.0)),
            (_SHOULD, tantivy.Query.boost_query(
                tantivy.Query.term_set_query(self.schema, "id_lc", [exact]), 2000.0)),
        ])

    def _text_parts(self, text: str) -> list[tantivy.Query] | None:
        """`text_query` as its alternatives (each word, the exact name, the exact id), whose sum of
        scores is the whole query's score; None when the text is more than a few plain words
        (phrases, operators), which the parser reads as a whole."""
        words = _QUERY_SYNTAX.sub(" ", text).split()
        if not words or len(words) > _DISTRIBUTE_WORDS_MAX or not all(_PLAIN_WORD.fullmatch(w) for w in words) \
                or any(w in _PARSER_KEYWORDS for w in words):
            return None
        parts = [self.index.parse_query_lenient(w, list(_BOOSTS), field_boosts=_BOOSTS,
                                                conjunction_by_default=False)[0] for w in words]
        exact = text.strip().strip('"').lower()
        return [*parts,
                tantivy.Query.boost_query(tantivy.Query.term_set_query(self.schema, "name_lc", [exact]), 1000.0),
                tantivy.Query.boost_query(tantivy.Query.term_set_query(self.schema, "id_lc", [exact]), 2000.0)]

    def _text_any(self, words: str) -> tantivy.Query:
        """Documents whose text contains the word (or, for several words, the phrase)."""
        cleaned = _QUERY_SYNTAX.sub(" ", words).replace('"', " ").strip()
        phrase = f'"{cleaned}"' if " " in cleaned else cleaned
        parsed, _errors = self.index.parse_query_lenient(phrase, list(_BOOSTS), conjunction_by_default=True)
        return parsed

    # -- hard-constraint sets (for vector search restriction) -----------------------------------
    def constraint_matches(self, q: SearchQuery) -> ConstraintMatches:
        """The records `q` selects, on the current searcher: what the hybrid ranking's dense side
        needs (index/hybrid.py), without it knowing Tantivy."""
        return ConstraintMatches(self, q)

    def row_space(self) -> str:
        """The numbering generation of the row numbers (a vector index sharing them checks it)."""
        return self.meta.generation

    def count_matching(self, q: SearchQuery) -> int:
        searcher = self.index.searcher()
        return _matched(searcher.search(self.build_query(q.model_copy(update={"text": ""})), limit=1, count=True))

    def matching_rows(self, q: SearchQuery) -> np.ndarray:
        """Row numbers of every record satisfying the hard constraints (free text ignored; negated
        words still exclude), sorted; read from the `row` fast field without loading documents."""
        searcher = self.index.searcher()
        query = self.build_query(q.model_copy(update={"text": ""}))
        n = _matched(searcher.search(query, limit=1, count=True))
        if n == 0:
            return np.zeros(0, dtype=np.uint64)
        res = searcher.search(query, limit=n, count=False)
        rows = searcher.fast_field_values("row", [a for _, a in res.hits])
        return np.sort(np.asarray(rows, dtype=np.uint64))

    def matching_ids(self, q: SearchQuery) -> list[str]:
        """Ids of every record satisfying the hard constraints, free text ignored."""
        searcher = self.index.searcher()
        query = self.build_query(q.model_copy(update={"text": ""}))
        n = _matched(searcher.search(query, limit=1, count=True))
        if n == 0:
            return []
        res = searcher.search(query, limit=n, count=False)
        return sorted(searcher.doc(a)["id"][0] for _, a in res.hits)

    def rows_of(self, ids: list[str]) -> dict[str, int]:
        """Row number of each id present in the committed index or written by this backend's open
        writer (the vector projection applies a batch before the search index commits it)."""
        if not ids:
            return {}
        with self._wlock:
            out = {i: self._pending_rows[i] for i in ids if i in self._pending_rows}
        todo = [i for i in ids if i not in out]
        if not todo:
            return out
        searcher = self.index.searcher()
        res = searcher.search(tantivy.Query.term_set_query(self.schema, "id", todo), limit=len(todo), count=False)
        addrs = [a for _, a in res.hits]
        out.update({searcher.doc(a)["id"][0]: _int(r)
                    for a, r in zip(addrs, searcher.fast_field_values("row", addrs), strict=True)})
        return out

    # -- search ------------------------------------------------------------------------------
    def search(self, q: SearchQuery) -> SearchResult:
        start = time.monotonic()
        self.meta.refresh()
        searcher = self.index.searcher()
        query = self.build_query(q)
        facet_futures = self._submit_facets(searcher, query, q.facets)
        # The facet aggregation counts the matches as it goes, without scoring them; the page's own
        # count would make Tantivy score every match a second time (~1.6 ms a query at 1M records).
        count = not facet_futures
        cursor = decode_cursor(q)
        notices: list[str] = []
        if q.sort == "relevance" and (q.text.strip() or (q.rank_boosts and q.has_boosts())):
            total, hits, after = self._relevance_page(searcher, query, q, cursor, notices, count)
        else:
            total, hits, after = self._sorted_page(searcher, query, q, cursor, count)
        facets = self._collect_facets(facet_futures, q.facet_timeout_s, start)
        if total is None:
            total = self._counted(facet_futures)
            if total is None:  # the facets ran out of time (or failed): count on its own
                total = self._count(searcher, query)
        if q.explain and hits:
            parts = self.boosts_of(q, [h.id for h in hits])
            hits = [h.model_copy(update={"explain": {"backend_score": h.score, "boosts_in_score": q.rank_boosts,
                                                     **parts.get(h.id, {})}}) for h in hits]
        position = (cursor["n"] if cursor else q.offset) + len(hits)
        next_cursor = encode_cursor(q, after, position) if hits and position < total and after else None
        return SearchResult(total=total, hits=hits, facets=facets, took_ms=(time.monotonic() - start) * 1000,
                            notices=notices, next_cursor=next_cursor)

    def _sorted_page(self, searcher: tantivy.Searcher, query: tantivy.Query, q: SearchQuery,
                     cursor: dict[str, Any] | None, count: bool = True) -> tuple[int | None, list[Hit], list[Any]]:
        """Field sorts (and relevance without text, which ranks by downloads): keyset paging on a
        unique per-record sort key, so a deep page costs what the first one does."""
        field = "sk_" + (q.sort if q.sort != "relevance" else "downloads")
        page_query, offset = query, q.offset
        if cursor is not None:
            last = int(cursor["a"][0])
            if last == 0:
                return self._count(searcher, query) if count else None, [], []
            page_query = tantivy.Query.boolean_query([
                (_MUST, query), (_MUST, tantivy.Query.range_query(self.schema, field, _U64, None, last - 1))])
            offset = 0
        res = searcher.search(page_query, limit=q.limit, offset=offset, count=count and cursor is None,
                              order_by_field=field, order=tantivy.Order.Desc)
        total = None if not count else _matched(res) if cursor is None else self._count(searcher, query)
        hits, after = [], []
        for key, addr in res.hits:
            hits.append(Hit(id=searcher.doc(addr)["id"][0], score=0.0))
            after = [int(key)]
        return total, hits, after

    def _relevance_page(self, searcher: tantivy.Searcher, query: tantivy.Query, q: SearchQuery,
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
            return self._count(searcher, query) if count else None, [], []
        res = searcher.search(query, limit=skip + q.limit, count=count)
        total = _matched(res) if count else None
        hits = res.hits
        page = hits[skip:]
        if cursor and skip:
            s0, r0 = float(cursor["a"][0]), int(cursor["a"][1])
            anchor = hits[skip - 1] if len(hits) >= skip else None
            if anchor is None or float(anchor[0]) != s0 or self._row(searcher, anchor[1]) != r0:
                # Look for the last record shown in a wider window (records may have come in above it).
                hits = searcher.search(query, limit=min(2 * (skip + q.limit) + 100, _RELEVANCE_DEPTH_MAX),
                                       count=False).hits
                rows = searcher.fast_field_values("row", [a for _, a in hits])
                at = next((i for i, r in enumerate(rows) if r == r0), None)
                if at is not None:
                    page = hits[at + 1:at + 1 + q.limit]
                else:  # the last record shown moved down or went away: continue below its score
                    page = [h for h, r in zip(hits, rows, strict=True)
                            if (-float(h[0]), _int(r)) > (-s0, r0)][: q.limit]
                notices.append("the index changed while paging; results continue after the last one shown")
        page = page[: q.limit]
        out = [Hit(id=searcher.doc(a)["id"][0], score=float(sc)) for sc, a in page]
        after = [float(page[-1][0]), self._row(searcher, page[-1][1])] if page else []
        return total, out, after

    @staticmethod
    def _row(searcher: tantivy.Searcher, addr: Any) -> int:
        return _int(searcher.fast_field_values("row", [addr])[0])

    @staticmethod
    def _count(searcher: tantivy.Searcher, query: tantivy.Query) -> int:
        """How many records match, without scoring them (an aggregation, not a top-docs search)."""
        return int(searcher.aggregate(query, {_TOTAL: _TOTAL_SPEC})[_TOTAL]["value"] or 0)

    @staticmethod
    def _counted(futures: dict[str, Future[dict[str, Any]]]) -> int | None:
        """The match count the facet aggregation took, if it finished in time."""
        for fut in futures.values():
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                value = fut.result().get(_TOTAL)
                if value is not None:
                    return int(value)
        return None

    # -- facets ------------------------------------------------------------------------------
    def _submit_facets(self, searcher: tantivy.Searcher, query: tantivy.Query,
                       fields: list[str]) -> dict[str, Future[dict[str, Any]]]:
        """Facets run beside the main search, as one aggregation per worker: each aggregation
        evaluates the query once for all its facets (at 100k records, 9 facets of a query with three
        range constraints took 4 ms together and 27 ms one by one)."""
        wanted = [f for f in dict.fromkeys(fields) if f in FACET_FIELDS]
        groups = [wanted[i::_FACET_GROUPS] for i in range(_FACET_GROUPS)]
        out: dict[str, Future[dict[str, Any]]] = {}
        for group in groups:
            if group:
                fut = _FACET_POOL.submit(self._facet_group, searcher, query, group)
                out.update(dict.fromkeys(group, fut))
        return out

    @staticmethod
    def _facet_spec(field: str) -> dict[str, Any]:
        return {"terms": {"field": field, "size": 50}}

    @classmethod
    def _facet_group(cls, searcher: tantivy.Searcher, query: tantivy.Query,
                     fields: list[str]) -> dict[str, Any]:
        vocab = get_vocab()
        spec: dict[str, Any] = {}
        for f in fields:
            if f in _MASKED and vocab.facet_bits(f):
                spec[f] = {"terms": {"field": f"fm_{f}", "size": _MASK_BUCKETS}}
            elif f == "params":
                spec[f] = {"terms": {"field": "fm_params", "size": len(PARAM_BUCKETS)}}
            else:
                spec[f] = cls._facet_spec(f)
        spec[_TOTAL] = _TOTAL_SPEC
        agg = searcher.aggregate(query, spec)
        out: dict[str, Any] = {_TOTAL: int(agg.get(_TOTAL, {}).get("value") or 0)}
        for f in fields:
            res = agg.get(f, {})
            buckets = res.get("buckets", [])
            if f in _MASKED and vocab.facet_bits(f):
                counts = cls._unmask(vocab.facet_bits(f), buckets)
                if counts is None or res.get("sum_other_doc_count"):
                    # A value outside the KB, or more combinations than buckets: count the keywords.
                    plain = searcher.aggregate(query, {f: cls._facet_spec(f)})
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

    @staticmethod
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

    def _facet(self, searcher: tantivy.Searcher, query: tantivy.Query, field: str) -> dict[str, int]:
        counts: dict[str, int] = self._facet_group(searcher, query, [field])[field]
        return counts

    @staticmethod
    def _collect_facets(futures: dict[str, Future[dict[str, Any]]], budget_s: float,
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

    # kept for callers of the earlier interface
    def facets(self, searcher: tantivy.Searcher, query: tantivy.Query, fields: list[str],
               budget_s: float) -> dict[str, FacetCounts]:
        start = time.monotonic()
        return self._collect_facets(self._submit_facets(searcher, query, fields), budget_s, start)


__all__ = ["TantivyBackend", "ensure_current", "INDEX_FORMAT"]
