"""The query compiler (`QueryCompiler`, a part of `TantivyBackend`): a `SearchQuery`'s hard constraints as
Tantivy queries (exhaustively, one case per constraint type), its free text as BM25 over the text fields
with exact id / name boosts, and the evidence and lineage boosts as clauses that only add to the score;
`boosts_of` reads back which of those boosts a record earned."""

from __future__ import annotations

import re
from typing import Any, assert_never

import tantivy

from modelport.index.embedded.lineage import LineageWalks
from modelport.index.embedded.schema import (
    DOWNLOAD_BUCKETS,
    DOWNLOAD_STEP,
    F64,
    I64,
    MUST,
    MUST_NOT,
    SHOULD,
    U64,
    lat_field,
    mem_field,
)
from modelport.index.facts import (
    CODE_MAX,
    any_runtime_token,
    composite,
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
from modelport.index.lineage import generation_weight
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
    content_words,
    exact_names,
    text_terms,
)
from modelport.index.vocab import get_vocab

_BOOSTS = TEXT_BOOSTS
_QUERY_SYNTAX = QUERY_SYNTAX_CHARS
_PLAIN_WORD = re.compile(r"[\w.,]+")
_PARSER_KEYWORDS = frozenset({"AND", "OR", "NOT", "IN", "TO"})
_DISTRIBUTE_WORDS_MAX = 3  # more words repeat the constraints too often to pay (measured at 1M records)
_OCCURS = {"should": SHOULD, "must": MUST, "must_not": MUST_NOT}
_LAZY_TERMS = 4  # up to this many alternatives a filter is a union of term queries, above a term set


class QueryCompiler(LineageWalks):
    """The query side of `TantivyBackend` (which supplies the index, its schema, the fact-key table
    and the float fields of its schema)."""

    _float_fields: set[str]

    def build_query(self, q: SearchQuery) -> tantivy.Query:
        """Every hard constraint (and the free text, when there is any) as one Tantivy query, plus
        the evidence and lineage boosts when the query asks for them (`boost_clauses`)."""
        query = self._match_query(q)
        if not (q.rank_boosts and q.sort == "relevance" and q.has_boosts()):
            return query
        if q.text.strip():
            return tantivy.Query.boolean_query([(MUST, query), *self.boost_clauses(q, BM25_BOOST_SCALE)])
        downloads = [(SHOULD, tantivy.Query.const_score_query(
            tantivy.Query.term_query(self.schema, "dl_bucket", b), b * DOWNLOAD_STEP))
            for b in range(1, DOWNLOAD_BUCKETS)]
        return tantivy.Query.boolean_query([(MUST, query), *self.boost_clauses(q, 1.0), *downloads])

    def _match_query(self, q: SearchQuery) -> tantivy.Query:
        clauses: list[tuple[tantivy.Occur, tantivy.Query]] = []
        for t in q.exclude_text:
            if t.strip():
                clauses.append((MUST_NOT, self._text_any(t)))
        for c in q.hard_constraints():
            cq = self.constraint_query(c)
            clauses.append((MUST_NOT if c.negate else MUST, cq))
        text = q.text.strip()
        if text:
            parts = self._text_parts(text) if any(o == MUST for o, _ in clauses) else None
            if parts is not None:
                # (w1 OR w2 OR ...) AND c as (w1 AND c) OR (w2 AND c) OR ...: the same documents and
                # the same scores (c scores 0), but each word is sought in the documents c matches
                # instead of a union of common words being scored over the whole index first (at 1M
                # records 12.6 -> 8.3 ms p50 for BM25 top-100 with 1-3 constraints).
                cq = tantivy.Query.boolean_query(clauses)
                return tantivy.Query.boolean_query(
                    [(SHOULD, tantivy.Query.boolean_query([(MUST, part), (MUST, cq)])) for part in parts])
            clauses.insert(0, (MUST, self.text_query(text)))
        if not clauses:
            return tantivy.Query.all_query()
        if all(o == MUST_NOT for o, _ in clauses):
            clauses.append((MUST, tantivy.Query.all_query()))
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
                return self._float_range(lat_field(c.hardware, c.measured_only), c.op, c.ms)
            case MemoryConstraint():
                return self._float_range(mem_field(c.hardware), c.op, c.bytes)
            case ParamsConstraint() | SizeConstraint():
                return self._int_range(c.kind, c.op, c.value)
            case LineageConstraint():
                ids = sorted(self.lineage(c).generation)
                return tantivy.Query.term_set_query(self.schema, "id", ids) if ids else tantivy.Query.empty_query()
            case AnyOf():
                subs = [(SHOULD, self._alternative(x)) for x in c.of]
                return tantivy.Query.boolean_query(subs)
            case _:
                assert_never(c)

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
                inner = [(MUST, self._tokens(tokens[level]))]
                if better:
                    inner.append((MUST_NOT, self._tokens(better)))
                out.append((SHOULD, tantivy.Query.const_score_query(tantivy.Query.boolean_query(inner), w)))
        for c in q.lineage_constraints():
            by_gen: dict[int, list[str]] = {}
            for rid, g in self.lineage(c).generation.items():
                by_gen.setdefault(g, []).append(rid)
            for g, ids in by_gen.items():
                boost = scale * LINEAGE_BOOST * generation_weight(g)
                out.append((SHOULD, tantivy.Query.const_score_query(
                    tantivy.Query.term_set_query(self.schema, "id", sorted(ids)), boost)))
        return out

    def boosts_of(self, q: SearchQuery, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Each record's evidence score (0..1, per preference: the level found) and lineage generation,
        for the hybrid fusion and `explain`."""
        out: dict[str, dict[str, Any]] = {i: {} for i in ids}
        if not ids:
            return out
        searcher = self.index.searcher()
        # Scored 0: a term query scores, which would shift every sum of 2^i up one level. Term
        # queries, not a term set: a term set fills a bitset over the whole index first (~2 ms at
        # 1M records, for ~100 ids), a union of term queries only seeks each id (~1 ms).
        among = tantivy.Query.const_score_query(tantivy.Query.boolean_query(
            [(SHOULD, tantivy.Query.term_query(self.schema, "id", i)) for i in ids]), 0.0)
        prefs = q.evidence_preferences()
        order = sorted(EVIDENCE_WEIGHTS, key=lambda lv: EVIDENCE_WEIGHTS[lv])  # weakest first
        for p in prefs:
            # One search per preference: level i scores 2^i, so a record's score names all its levels
            # and the best one is the highest bit.
            tokens = p.evidence_tokens()
            levels_q = [(SHOULD, tantivy.Query.const_score_query(self._tokens(tokens[lv]), float(1 << i)))
                        for i, lv in enumerate(order)]
            query = tantivy.Query.boolean_query([(MUST, among), (MUST, tantivy.Query.boolean_query(levels_q))])
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
        return tantivy.Query.boolean_query([(MUST, tantivy.Query.all_query()), (MUST_NOT, inner)])

    def _tokens(self, tokens: list[str], field: str = "compat") -> tantivy.Query:
        """Any of the terms. A few terms as a lazy union of term queries (cheap to skip through inside
        an intersection); many as a term set (one bitset)."""
        if len(tokens) <= _LAZY_TERMS:
            return tantivy.Query.boolean_query([(SHOULD, tantivy.Query.term_query(self.schema, field, t))
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
            lo = tantivy.Query.range_query(self.schema, "rt_lo", U64, composite(kid, 0), composite(kid, code),
                                           use_inverted_index=True)
            hi_from = CODE_MAX if c.and_newer else code + 1
            hi = tantivy.Query.range_query(self.schema, "rt_hi", U64, composite(kid, hi_from),
                                           composite(kid, CODE_MAX), use_inverted_index=True)
            alternatives.append((SHOULD, tantivy.Query.boolean_query([(MUST, lo), (MUST, hi)])))
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
        return tantivy.Query.range_query(self.schema, field, U64, composite(kid, lo), composite(kid, hi),
                                         use_inverted_index=field == "metric_v")

    def _float_range(self, field: str, op: str, value: float) -> tantivy.Query:
        if field not in self._float_fields:
            return tantivy.Query.empty_query()
        lo, hi, inc_lo, inc_hi = {">=": (value, None, True, True), ">": (value, None, False, True),
                                  "<=": (None, value, True, True), "<": (None, value, True, False),
                                  "=": (value, value, True, True)}[op]
        return tantivy.Query.range_query(self.schema, field, F64, lo, hi, inc_lo, inc_hi)

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
        return tantivy.Query.range_query(self.schema, field, I64, lo, hi)

    def text_query(self, text: str) -> tantivy.Query:
        """Any term may match (BM25 ranks documents with more of them higher), each scored by its
        best text field (FIELD_TIE_BREAKER); `a AND b` requires both, `NOT a` excludes, quoted
        phrases are kept as phrases (`text_terms`, as the Elasticsearch backend reads them); an
        exact id or name match is boosted far above everything else."""
        terms = [(_OCCURS[occur], self._in_text_fields(words)) for occur, words in text_terms(text)]
        # Only exclusions: the words match nothing (not everything else).
        words = tantivy.Query.boolean_query(terms) if any(o != MUST_NOT for o, _ in terms) \
            else tantivy.Query.empty_query()
        return tantivy.Query.boolean_query([(SHOULD, words), *[(SHOULD, q) for q in self._exact_name(text)]])

    def _text_parts(self, text: str) -> list[tantivy.Query] | None:
        """`text_query` as its alternatives (each word, the exact name, the exact id), whose sum of
        scores is the whole query's score; None when the text is more than a few plain words
        (phrases, operators), which are read as a whole."""
        words = _QUERY_SYNTAX.sub(" ", text).split()
        if not words or not all(_PLAIN_WORD.fullmatch(w) for w in words) or any(w in _PARSER_KEYWORDS for w in words):
            return None
        words = content_words(words)  # the words `text_terms` keeps of plain words
        if len(words) > _DISTRIBUTE_WORDS_MAX:
            return None
        return [*(self._in_text_fields(w) for w in words), *self._exact_name(text)]

    def _in_text_fields(self, words: str) -> tantivy.Query:
        """A word (or phrase) in any text field, scored by its best field plus FIELD_TIE_BREAKER
        times the others (search.py says why not their sum). Quoted, so that a word the analyzer
        splits ("1.14") is a phrase and no word is read as query syntax."""
        per_field = [tantivy.Query.boost_query(self.index.parse_query_lenient(f'"{words}"', [field])[0], boost)
                     for field, boost in _BOOSTS.items()]
        return tantivy.Query.disjunction_max_query(per_field, tie_breaker=FIELD_TIE_BREAKER)

    def _exact_name(self, text: str) -> list[tantivy.Query]:
        """The record whose id or name is exactly the text, boosted far above any BM25 score."""
        # Constant scores of 1000 / 2000: as a one-term set scored (1 × boost), but a term query
        # seeks its term where a term set fills a bitset over the whole index (~0.25 ms at 1M
        # records, paid in the BM25 search and again in the facets).
        # One alternative for all spellings and both fields (a record matching its name and its id
        # scores 3000, as before): in the per-word form each alternative carries its own copy of the
        # constraints, built and evaluated again in the BM25 search and in the facets.
        names = exact_names(text)
        if not names:
            return []
        return [tantivy.Query.boolean_query(
            [(SHOULD, tantivy.Query.const_score_query(tantivy.Query.term_query(self.schema, field, name), boost))
             for name in names for field, boost in (("name_lc", 1000.0), ("id_lc", 2000.0))])]

    def _text_any(self, words: str) -> tantivy.Query:
        """Documents whose text contains the word (or, for several words, the phrase)."""
        cleaned = _QUERY_SYNTAX.sub(" ", words).replace('"', " ").strip()
        phrase = f'"{cleaned}"' if " " in cleaned else cleaned
        parsed, _errors = self.index.parse_query_lenient(phrase, list(_BOOSTS), conjunction_by_default=True)
        return parsed
