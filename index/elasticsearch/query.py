"""The query compiler: a `SearchQuery`'s hard constraints as filter clauses and its free text as BM25
with the embedded backend's fields and boosts (pure: no server needed to build them; a lineage
constraint takes the backend's walk as a function), plus the evidence and lineage boosts."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, assert_never

from modelport.index.elasticsearch.mapping import ANY_HARDWARE
from modelport.index.facts import (
    CODE_MAX,
    any_runtime_token,
    float_code,
    hardware_token,
    metric_key,
    release_token,
    runtime_key_prefix,
    runtime_token,
    statuses_from,
    target_token,
    version_code,
)
from modelport.index.lineage import Tree, generation_weight
from modelport.index.search import (
    BM25_BOOST_SCALE,
    EVIDENCE_BOOST,
    EVIDENCE_WEIGHTS,
    FIELD_TIE_BREAKER,
    LINEAGE_BOOST,
    QUERY_SYNTAX_CHARS,
    TEXT_BOOSTS,
    AnyOf,
    Constraint,
    FieldFilter,
    HardwareConstraint,
    LatencyConstraint,
    LineageConstraint,
    MemoryConstraint,
    MetricConstraint,
    ParamsConstraint,
    RuntimeConstraint,
    SearchQuery,
    SizeConstraint,
    StatusConstraint,
    TargetConstraint,
    exact_names,
    text_terms,
)
from modelport.index.vocab import get_vocab

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


LineageIds = Callable[[LineageConstraint], Tree]


def constraint_query(c: Constraint, lineage: LineageIds | None = None) -> dict[str, Any]:
    """One constraint as a filter clause, ignoring its `negate` (the caller places it). A lineage
    constraint needs the walk's result (`lineage`, which asks the server), as an ids filter."""
    vocab = get_vocab()
    # Exhaustive: a new constraint type fails type checking here (assert_never) until compiled.
    match c:
        case LineageConstraint():
            if lineage is None:
                raise TypeError("a lineage constraint needs the backend's walk (ElasticsearchBackend.lineage)")
            ids = sorted(lineage(c).generation)
            return {"ids": {"values": ids}} if ids else _NONE
        case FieldFilter():
            return _terms(c.field, vocab.expand(c.field, c.values))
        case RuntimeConstraint():
            return _runtime(c)
        case TargetConstraint():
            return _terms("compat", [target_token(t, st) for t in vocab.target_closure(c.target)
                                     for st in statuses_from(c.min_status)])
        case HardwareConstraint():
            return _terms("compat", [hardware_token(c.hardware, st) for st in statuses_from(c.min_status)])
        case StatusConstraint():
            return _terms("compat", [any_runtime_token(st) for st in statuses_from(c.min_status)])
        case MetricConstraint():
            return _metric(c)
        case LatencyConstraint():
            return _nested("lat", {"term": {"lat.hw": c.hardware or ANY_HARDWARE}},
                           {"term": {"lat.measured": c.measured_only}}, _compare("lat.ms", c.op, c.ms))
        case MemoryConstraint():
            return _nested("mem", {"term": {"mem.hw": c.hardware or ANY_HARDWARE}},
                           _compare("mem.bytes", c.op, c.bytes))
        case ParamsConstraint() | SizeConstraint():
            return _int_range(c.kind, c.op, c.value)
        case AnyOf():
            return {"bool": {"should": [_alternative(x, lineage) for x in c.of], "minimum_should_match": 1}}
        case _:
            assert_never(c)


def _alternative(c: Constraint, lineage: LineageIds | None = None) -> dict[str, Any]:
    inner = constraint_query(c, lineage)
    return {"bool": {"must_not": [inner]}} if c.negate else inner


def _in_text_fields(phrase: str, boosts: dict[str, float] | None = None) -> dict[str, Any]:
    """The words (a phrase when several) in any text field; with boosts, scored by the best field
    (plus FIELD_TIE_BREAKER times the others), as the embedded backend does. A single word is a
    one-term phrase, and a word the analyzer splits ("1.14") is a phrase, as in Tantivy."""
    clauses = [{"match_phrase": {f: {"query": phrase, **({"boost": boosts[f]} if boosts else {})}}}
               for f in TEXT_BOOSTS]
    if boosts:
        return {"dis_max": {"queries": clauses, "tie_breaker": FIELD_TIE_BREAKER}}
    return {"bool": {"should": clauses, "minimum_should_match": 1}}


def text_query(text: str) -> dict[str, Any]:
    """BM25 over the text fields with the embedded backend's boosts; an exact id or name match is
    boosted far above everything else (it also matches on its own)."""
    occurs: dict[str, list[dict[str, Any]]] = {"should": [], "must": [], "must_not": []}
    for occur, words in text_terms(text):
        occurs[occur].append(_in_text_fields(words, TEXT_BOOSTS))
    # Only exclusions: the parsed part matches nothing (as in Tantivy), not everything else.
    parsed: dict[str, Any] = {"bool": {k: v for k, v in occurs.items() if v}} if occurs["should"] or \
        occurs["must"] else _NONE
    names = [{"term": {field: {"value": name, "boost": boost}}}
             for name in exact_names(text) for field, boost in (("name_lc", 1000.0), ("id_lc", 2000.0))]
    return {"bool": {"should": [parsed, *names], "minimum_should_match": 1}}


def excluded_text(words: str) -> dict[str, Any] | None:
    """Records whose text contains the word (or, for several words, the phrase)."""
    cleaned = QUERY_SYNTAX_CHARS.sub(" ", words).replace('"', " ").strip()
    return _in_text_fields(" ".join(cleaned.split())) if cleaned else None


def boost_clauses(q: SearchQuery, scale: float, lineage: LineageIds | None = None) -> list[dict[str, Any]]:
    """Should clauses adding the evidence and lineage boosts (search.py) times `scale`, as the
    embedded backend's `boost_clauses` does: only a record's best evidence level counts."""
    out: list[dict[str, Any]] = []
    prefs = q.evidence_preferences()
    for p in prefs:
        tokens = p.evidence_tokens()
        for level, weight in EVIDENCE_WEIGHTS.items():
            better = [t for lv, wt in EVIDENCE_WEIGHTS.items() if wt > weight for t in tokens[lv]]
            inner: dict[str, Any] = {"bool": {"filter": [_terms("compat", tokens[level])],
                                              **({"must_not": [_terms("compat", better)]} if better else {})}}
            out.append({"constant_score": {"filter": inner, "boost": scale * EVIDENCE_BOOST * weight / len(prefs)}})
    if lineage is not None:
        for c in q.lineage_constraints():
            by_gen: dict[int, list[str]] = {}
            for rid, g in lineage(c).generation.items():
                by_gen.setdefault(g, []).append(rid)
            out += [{"constant_score": {"filter": {"ids": {"values": sorted(ids)}},
                                        "boost": scale * LINEAGE_BOOST * generation_weight(g)}}
                    for g, ids in sorted(by_gen.items())]
    return out


def es_query(q: SearchQuery, lineage: LineageIds | None = None) -> dict[str, Any]:
    """Every hard constraint (filter context: they score nothing) and the free text, as one query;
    with `q.rank_boosts`, the evidence and lineage boosts as should clauses."""
    filters: list[dict[str, Any]] = []
    must_not: list[dict[str, Any]] = []
    for t in q.exclude_text:
        clause = excluded_text(t)
        if clause is not None:
            must_not.append(clause)
    for c in q.hard_constraints():
        (must_not if c.negate else filters).append(constraint_query(c, lineage))
    text = q.text.strip()
    should = boost_clauses(q, BM25_BOOST_SCALE if text else 1.0, lineage) \
        if q.rank_boosts and q.sort == "relevance" and q.has_boosts() else []
    must = [text_query(text)] if text else [{"match_all": {}}] if should and not filters else []
    # (Should clauses alone would have to match one; the boosts must never filter.)
    body = {k: v for k, v in (("must", must), ("filter", filters), ("must_not", must_not), ("should", should)) if v}
    return {"bool": body} if body else {"match_all": {}}

