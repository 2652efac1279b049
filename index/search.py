"""The search interface every backend implements (embedded Tantivy, Elasticsearch), and its
query/result models. The API and CLI only ever talk to this interface.

A `SearchQuery` is free text plus hard constraints that all must hold: keyword filters (ontology-
aware: a task includes its narrower tasks, a format family its formats, `mobile` its member
targets), runtime-at-version, target and hardware compatibility with a minimum evidence level,
metric / latency / memory comparisons and parameter-count / size bounds. A constraint may be
negated, and `AnyOf` groups alternatives. `query_syntax.py` writes the same model as text.

Over the ~500-line guide on purpose: this module is the contract between the API and the backends —
the query and result models, the ranking constants both backends must share, the cursor format and the
`SearchBackend` Protocol — and a backend author reads it as one page. The cursor code (~80 lines, its
own section) is the piece that could move out first if it grows.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, Union, get_args, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from modelport.errors import ServiceUnavailable, UserError
from modelport.index.facts import keyword_values as _keyword_values
from modelport.index.vocab import STATUS_ORDER, get_vocab
from modelport.schema.record import ModelRecord
from modelport.schema.versions import parse_version

log = logging.getLogger(__name__)

# Keyword fields a query may filter and facet on; every backend indexes each of them.
FILTER_FIELDS = ("source", "task", "framework", "format", "license", "language", "publisher", "tag",
                 "runtime", "status", "access", "target", "hardware", "relation")
# Facets: every filter field plus parameter-count buckets.
FACET_FIELDS = (*FILTER_FIELDS, "params")
# The facets a search shows unless it names others (the API's default and the web page's).
DEFAULT_FACETS: tuple[str, ...] = ("source", "task", "framework", "format", "license", "runtime", "target", "status",
                                   "params")
# Parameter-count facet buckets: (label, from inclusive, to exclusive).
PARAM_BUCKETS: tuple[tuple[str, float | None, float | None], ...] = (
    ("<10M", None, 1e7), ("10M-100M", 1e7, 1e8), ("100M-1B", 1e8, 1e9), ("1B-10B", 1e9, 1e10),
    (">=10B", 1e10, None))
SortKey = Literal["relevance", "downloads", "likes", "modified"]
# The popularity/recency sorts: every backend stores each as a sortable number.
SORT_FIELDS: tuple[str, ...] = tuple(k for k in get_args(SortKey) if k != "relevance")
Status = Literal["convertible", "declared", "native", "verified"]
Op = Literal["<", "<=", ">", ">=", "="]
FilterField = Literal["source", "task", "framework", "format", "license", "language", "publisher", "tag",
                      "runtime", "status", "access", "target", "hardware", "relation"]
Relation = Literal["finetune", "adapter", "quantized", "merge", "variant", "derived"]
PreferenceKind = Literal["format", "runtime", "target"]

# Evidence ranking (README "Ranking"): when a query names a runtime, target or format, each hit
# gets an evidence score in 0..1 (the level of its best cell for what was named, averaged over the
# names) and the hybrid fusion adds EVIDENCE_BOOST x that score to its 0..1 blend of BM25 and
# cosine. Verified and native (the record ships the artifact) count fully, declared (the source
# says so, no file) a little over half, convertible (a conversion path exists) a fifth. With 0.25, a
# native hit overtakes a convertible one whose text/meaning score is up to 0.2 higher: among
# comparably relevant hits the natively deployable ones come first, while a clearly better match
# still wins. Chosen on the judged set's deployment queries (bench/results/relevance-*.md).
EVIDENCE_WEIGHTS: dict[str, float] = {"verified": 1.0, "native": 1.0, "declared": 0.55, "convertible": 0.2}
EVIDENCE_BOOST = 0.25
# Lineage: a descendant at generation g adds LINEAGE_BOOST / g (direct fine-tunes before
# fine-tunes of fine-tunes, among comparably relevant hits).
LINEAGE_BOOST = 0.15
# Without text (nothing for BM25 or vectors to rank), the backends order by these boosts as
# constant scores, then by downloads; with text and no vectors, BM25 adds them scaled by this.
BM25_BOOST_SCALE = 10.0

# Free-text fields and their BM25 boosts, and the characters a backend's query parser would read as
# syntax (stripped from plain words): one definition, so every backend ranks the same fields alike.
TEXT_BOOSTS: dict[str, float] = {"name": 5.0, "tags": 3.0, "description": 1.5, "card": 1.0}
QUERY_SYNTAX_CHARS = re.compile(r'[+\-&|!(){}\[\]^~*?:\\/<>=]')
# How one query word's scores in those fields combine: its best field's score plus this fraction of
# the others' (the tie breaker of Lucene's DisjunctionMaxQuery; 0 is the best field alone, 1 the sum).
# A word found in a record's name, its tags and its description is one piece of evidence, not three:
# summed per-field BM25 scores count it once per field and so escape BM25's term-frequency
# saturation (Robertson, Zaragoza & Taylor, "Simple BM25 extension to multiple weighted fields",
# CIKM 2004). With the sum, a record repeating one query word across its fields outranked records
# matching more of the query's words ("weather forecasting model": a load forecaster with "forecast"
# in its name and description above a weather model). 0 is the default of Lucene's dis_max and of
# Elasticsearch's multi_match `best_fields`. Judged set (bench/results/relevance-2026-12-08.md):
# hybrid nDCG@10 0.918 -> 0.920, task queries 0.910 -> 0.913 (vectors alone: 0.911); tie breakers
# 0.1 / 0.3 / 0.5 measured 0.918, as the sum did: a small gain, taken for the reason, not tuned.
FIELD_TIE_BREAKER = 0.0
TextOccur = Literal["should", "must", "must_not"]
# English function words left out of a query's free words (not of quoted phrases, not of the exact
# name match): the 33 words of Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET, which is also
# Elasticsearch's `_english_` stop list, taken as it is. Both backends analyse text like Tantivy's
# `en_stem`, which keeps them; in a sentence-like query they then match the rare name tokens of ids
# such as "mt5-small-title-to-abstract" or "all-MiniLM-L6-v2-a-0", with a high IDF in the name field
# boosted 5x, and outrank records matching the query's content words ("chat assistant small enough
# to run offline on a laptop": "to" and "a" put a title-to-abstract summarizer first). Query-time
# stop-word removal (Manning, Raghavan & Schuetze, Introduction to Information Retrieval, 2.2.2). A
# query of nothing but such words keeps them ("to be or not to be").
STOP_WORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no", "not",
    "of", "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was",
    "will", "with"})
_OPERATORS = ("AND", "OR", "NOT")


def _is_stop(word: str) -> bool:
    return word not in _OPERATORS and word.lower().strip(".,") in STOP_WORDS


def content_words(words: list[str]) -> list[str]:
    """`words` without English stop words (STOP_WORDS), or all of them if nothing else is left."""
    return [w for w in words if not _is_stop(w)] or words


def exact_names(text: str) -> list[str]:
    """The lower-cased spellings an exact id or name match compares with the query text: the text
    itself and, for several words, the words joined by "-" and by "_". Hub names join words with
    hyphens (`whisper-large-v3`, `bert-base-uncased`) or underscores, while people type spaces
    ("whisper large v3"); without these the exact match never fired for a typed name."""
    exact = text.strip().strip('"').lower()
    words = exact.split()
    if not words:
        return []
    return list(dict.fromkeys([exact, "-".join(words), "_".join(words)] if len(words) > 1 else [exact]))


def text_terms(text: str) -> list[tuple[TextOccur, str]]:
    """(occur, words) for each word or quoted phrase of free text, as both backends read it: terms
    are alternatives, `a AND b` requires both, `NOT a` excludes; other syntax is dropped."""
    cleaned = QUERY_SYNTAX_CHARS.sub(" ", text)
    if cleaned.count('"') % 2:
        cleaned = cleaned.replace('"', " ")
    parts = cleaned.split('"')
    # Stop words go when they would be plain alternatives (not after NOT, not beside AND), unless
    # nothing else would be left to match: then the query keeps them all.
    plain = [w for part in parts[::2] for w in part.split() if w not in _OPERATORS]
    drop = any(phrase.strip() for phrase in parts[1::2]) or content_words(plain) != plain
    out: list[tuple[TextOccur, str]] = []
    negate = conjoin = False
    for i, part in enumerate(parts):
        if i % 2:
            pieces = [(part.strip(), True)]
        else:
            split = part.split()
            pieces = [(w, False) for j, w in enumerate(split)
                      if not (drop and _is_stop(w) and not {"AND", "NOT"} & {*split[max(j - 1, 0):j]}
                              and "AND" not in split[j + 1:j + 2])]
        for words, quoted in pieces:
            if not words:
                continue
            if not quoted and words in ("AND", "OR", "NOT"):
                negate, conjoin = negate or words == "NOT", conjoin or words == "AND"
                continue
            occur: TextOccur = "must_not" if negate else "must" if conjoin else "should"
            if conjoin and out and out[-1][0] == "should":
                out[-1] = ("must", out[-1][1])
            out.append((occur, words))
            negate = conjoin = False
    return out


def _fmt_num(x: float) -> str:
    return f"{x:g}"


def _quote(v: str) -> str:
    return f'"{v}"' if any(c in v for c in ' ,"():') else v


class _Constraint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    negate: bool = False

    def _neg(self, s: str) -> str:
        return f"-{s}" if self.negate else s


class FieldFilter(_Constraint):
    """The record has any of `values` in a keyword field (expanded through the ontology)."""

    kind: Literal["field"] = "field"
    field: FilterField
    values: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _normalise(self) -> FieldFilter:
        """Names as the index stores them: licence aliases → SPDX, task / framework / runtime
        names → KB ids. Values the KB does not know stay as written."""
        vocab = get_vocab()
        normalisers: dict[str, Callable[[str], str]] = {
            "license": lambda v: v if v.strip().lower() == "permissive" else vocab.license(v),
            "task": vocab.task,
            "framework": vocab.framework,
            "runtime": lambda v: vocab.runtime(v) or v,
            "target": lambda v: vocab.target(v) or v,
            "hardware": lambda v: vocab.hardware_profile(v) or v,
        }
        norm = normalisers.get(self.field)
        if norm is not None:
            self.values = list(dict.fromkeys(norm(v) for v in self.values))
        return self

    def to_syntax(self) -> str:
        return self._neg(f"{self.field}:{','.join(_quote(v) for v in self.values)}")


class RuntimeConstraint(_Constraint):
    """A runtime cell whose version range contains `version` (with `and_newer`: contains it and is
    open at the top), at `min_status` or better. No version: any cell of the runtime."""

    kind: Literal["runtime"] = "runtime"
    runtime: str
    version: str | None = None
    and_newer: bool = False
    min_status: Status | None = None

    @field_validator("runtime")
    @classmethod
    def _known(cls, v: str) -> str:
        rid = get_vocab().runtime(v)
        if rid is None:
            raise ValueError(f"unknown runtime {v!r}; known: {', '.join(sorted(set(get_vocab().runtimes.values())))}")
        return rid

    @field_validator("version")
    @classmethod
    def _version(cls, v: str | None) -> str | None:
        if v is not None and parse_version(v) is None:
            raise ValueError(f"not a version: {v!r}")
        return v

    def to_syntax(self) -> str:
        s = f"runtime:{self.runtime}" + (f"@{self.version}{'+' if self.and_newer else ''}" if self.version else "")
        return self._neg(s) + (f" (status>={self.min_status})" if self.min_status else "")


class TargetConstraint(_Constraint):
    """The record reaches a deployment target (an umbrella target such as `mobile`: any member)."""

    kind: Literal["target"] = "target"
    target: str
    min_status: Status | None = None

    @field_validator("target")
    @classmethod
    def _known(cls, v: str) -> str:
        tid = get_vocab().target(v)
        if tid is None:
            raise ValueError(f"unknown target {v!r}; known: {', '.join(sorted(set(get_vocab().targets.values())))}")
        return tid

    def to_syntax(self) -> str:
        return self._neg(f"target:{self.target}") + (f" (status>={self.min_status})" if self.min_status else "")


class HardwareConstraint(_Constraint):
    """The record fits a KB hardware profile (memory fit through a runtime of its targets)."""

    kind: Literal["hardware"] = "hardware"
    hardware: str
    min_status: Status | None = None

    @field_validator("hardware")
    @classmethod
    def _known(cls, v: str) -> str:
        hid = get_vocab().hardware_profile(v)
        if hid is None:
            raise ValueError(f"unknown hardware profile {v!r}; known: "
                             f"{', '.join(sorted(set(get_vocab().hardware.values())))}")
        return hid

    def to_syntax(self) -> str:
        return self._neg(f"hardware:{self.hardware}") + (f" (status>={self.min_status})" if self.min_status else "")


class LineageConstraint(_Constraint):
    """The record descends from `base` (a record id, local id, name or alias, across sources), within
    `depth` generations (None: any depth), through a link of one of `relations` (its own link into
    the tree; none: any relation). See index/lineage.py."""

    kind: Literal["lineage"] = "lineage"
    base: str = Field(min_length=1, max_length=300)
    relations: list[Relation] = Field(default_factory=list)
    depth: int | None = Field(default=None, ge=1, le=10)

    @field_validator("relations", mode="before")
    @classmethod
    def _relations(cls, v: Any) -> Any:
        if not isinstance(v, list):
            return v
        out = []
        for name in v:
            rid = get_vocab().relation(str(name)) if isinstance(name, str) else None
            if rid is None:
                known = ", ".join(sorted(set(get_vocab().relations.values())))
                raise ValueError(f"unknown lineage relation {name!r}; known: {known}")
            out.append(rid)
        return list(dict.fromkeys(out))

    def to_syntax(self) -> str:
        opts = [*self.relations, *([str(self.depth)] if self.depth else [])]
        return self._neg(f"base{'@' + ','.join(opts) if opts else ''}:{_quote(self.base)}")

    def label(self) -> str:
        what = " or ".join({"finetune": "fine-tunes", "adapter": "adapters", "quantized": "quantizations",
                            "merge": "merges", "variant": "variants", "derived": "derivatives"}[r]
                           for r in self.relations) or "descendants"
        depth = f", up to {self.depth} generation{'s' if self.depth > 1 else ''}" if self.depth else ""
        return f"{'not ' if self.negate else ''}{what} of {self.base}{depth}"


class Preference(BaseModel):
    """A ranking preference, never a filter: records with stronger evidence for this format, runtime
    or target rank higher (native/verified > declared > convertible)."""

    model_config = ConfigDict(extra="forbid")

    kind: PreferenceKind
    value: str

    @model_validator(mode="after")
    def _known(self) -> Preference:
        vocab = get_vocab()
        if self.kind == "runtime":
            rid = vocab.runtime(self.value)
            if rid is None:
                raise ValueError(f"unknown runtime {self.value!r}")
            self.value = rid
        elif self.kind == "target":
            tid = vocab.target(self.value)
            if tid is None:
                raise ValueError(f"unknown target {self.value!r}")
            self.value = tid
        else:
            ids = vocab.format_ids(self.value) or ([self.value] if self.value in get_kb_formats() else [])
            if not ids:
                raise ValueError(f"unknown format {self.value!r}")
            self.value = ids[0] if len(ids) == 1 else self.value.strip().lower()
        return self

    def evidence_tokens(self) -> dict[str, list[str]]:
        """The facts' tokens (index/facts.py) that put a record at each evidence level for this."""
        from modelport.index.facts import format_token, runtime_token, target_token

        vocab = get_vocab()
        if self.kind == "runtime":
            return {st: [runtime_token(self.value, st)] for st in STATUS_ORDER}
        if self.kind == "target":
            return {st: [target_token(t, st) for t in vocab.target_closure(self.value)] for st in STATUS_ORDER}
        ids = vocab.format_ids(self.value) or [self.value]
        return {st: [format_token(f, st) for f in ids] for st in STATUS_ORDER}

    def to_syntax(self) -> str:
        return f"prefer:{self.kind}={self.value}"

    def label(self) -> str:
        return f"prefer {self.value} ({self.kind}): native > declared > convertible"


def get_kb_formats() -> set[str]:
    from modelport.schema.kb import get_kb

    return set(get_kb().formats)


class StatusConstraint(_Constraint):
    """Some runtime cell of the record has at least this evidence level."""

    kind: Literal["status"] = "status"
    min_status: Status

    def to_syntax(self) -> str:
        return self._neg(f"status:{self.min_status}")


def _compare_syntax(op: str, value: str) -> str:
    return f"{op}{value}"


class MetricConstraint(_Constraint):
    """A reported evaluation of `metric` (on `dataset`, or on any dataset) compares to `value`;
    without `op` the record only has to report the metric. Names are normalised by the KB; for
    proportion metrics (accuracy, F1, mAP …) a value above 1 is a percentage."""

    kind: Literal["metric"] = "metric"
    metric: str
    dataset: str | None = None
    op: Op | None = None
    value: float | None = None

    @model_validator(mode="after")
    def _normalise(self) -> MetricConstraint:
        vocab = get_vocab()
        self.metric = vocab.metric(self.metric)
        if self.dataset is not None:
            self.dataset = vocab.dataset(self.dataset)
        if (self.op is None) != (self.value is None):
            raise ValueError("a metric constraint needs both a comparison and a value, or neither")
        if self.value is not None:
            self.value = vocab.normalise_metric_value(self.metric, self.value)
        return self

    def to_syntax(self) -> str:
        s = f"metric:{self.metric}" + (f"@{self.dataset}" if self.dataset else "")
        if self.op is not None and self.value is not None:
            s += _compare_syntax(self.op, _fmt_num(self.value))
        return self._neg(s)


def _resolve_hw(v: str | None) -> str | None:
    if v is None:
        return None
    hid = get_vocab().hardware_profile(v)
    if hid is None:
        known = ", ".join(sorted(set(get_vocab().hardware.values())))
        raise ValueError(f"unknown hardware profile {v!r}; known: {known}")
    return hid


class LatencyConstraint(_Constraint):
    """The best (lowest) latency figure on `hardware` (or on any profile) compares to `ms`;
    estimates count unless `measured_only`."""

    kind: Literal["latency"] = "latency"
    hardware: str | None = None
    op: Op
    ms: float = Field(ge=0)
    measured_only: bool = False

    @field_validator("hardware")
    @classmethod
    def _known(cls, v: str | None) -> str | None:
        return _resolve_hw(v)

    def to_syntax(self) -> str:
        name = "measured-latency" if self.measured_only else "latency"
        return self._neg(f"{name}{'@' + self.hardware if self.hardware else ''}{self.op}{_fmt_num(self.ms)}ms")


class MemoryConstraint(_Constraint):
    """The working memory the record needs on `hardware` (or its smallest on any profile it fits)
    compares to `bytes`."""

    kind: Literal["memory"] = "memory"
    hardware: str | None = None
    op: Op
    bytes: float = Field(ge=0)

    @field_validator("hardware")
    @classmethod
    def _known(cls, v: str | None) -> str | None:
        return _resolve_hw(v)

    def to_syntax(self) -> str:
        return self._neg(f"memory{'@' + self.hardware if self.hardware else ''}{self.op}{_fmt_bytes(self.bytes)}")


class ParamsConstraint(_Constraint):
    """The parameter count compares to `value` (records without a count never match)."""

    kind: Literal["params"] = "params"
    op: Op
    value: float = Field(ge=0)

    def to_syntax(self) -> str:
        return self._neg(f"params{self.op}{_fmt_count(self.value)}")


class SizeConstraint(_Constraint):
    """The total artifact size in bytes compares to `value` (unknown sizes never match)."""

    kind: Literal["size"] = "size"
    op: Op
    value: float = Field(ge=0)

    def to_syntax(self) -> str:
        return self._neg(f"size{self.op}{_fmt_bytes(self.value)}")


class AnyOf(_Constraint):
    """At least one of the alternatives holds."""

    kind: Literal["any"] = "any"
    of: list[Constraint] = Field(min_length=1)

    def to_syntax(self) -> str:
        # OR binds tighter than the implicit AND, so no parentheses; NOT (a OR b) is -a -b.
        if self.negate:
            return " ".join(c.model_copy(update={"negate": not c.negate}).to_syntax() for c in self.of)
        return " OR ".join(c.to_syntax() for c in self.of)


Constraint = Annotated[
    Union[FieldFilter, RuntimeConstraint, TargetConstraint, HardwareConstraint, StatusConstraint,  # noqa: UP007
          MetricConstraint, LatencyConstraint, MemoryConstraint, ParamsConstraint, SizeConstraint, LineageConstraint,
          AnyOf],
    Field(discriminator="kind")]
AnyOf.model_rebuild()

COMPAT_KINDS = ("runtime", "target", "hardware")
# Filter fields whose values the evidence ranking also prefers (a filter on them names what to rank by).
_PREFERRED_FIELDS: dict[str, PreferenceKind] = {"format": "format", "runtime": "runtime", "target": "target"}


def _fmt_count(x: float) -> str:
    for unit, f in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if x >= f and (x / f) == round(x / f, 3):
            return f"{x / f:g}{unit}"
    return _fmt_num(x)


def _fmt_bytes(x: float) -> str:
    for unit, f in (("TiB", 2.0 ** 40), ("GiB", 2.0 ** 30), ("MiB", 2.0 ** 20), ("TB", 1e12), ("GB", 1e9),
                    ("MB", 1e6), ("KB", 1e3)):
        if x >= f and (x / f) == round(x / f, 3):
            return f"{x / f:g}{unit}"
    return f"{_fmt_num(x)}B"


class SearchQuery(BaseModel):
    text: str = Field(default="", max_length=2000)  # free text: words and "quoted phrases"
    exclude_text: list[str] = Field(default_factory=list)  # words / phrases no result may contain
    filters: dict[str, list[str]] = Field(default_factory=dict)  # field → any of these values
    exclude: dict[str, list[str]] = Field(default_factory=dict)  # field → none of these values
    constraints: list[Constraint] = Field(default_factory=list)  # all must hold
    min_status: Status | None = None  # default evidence level of runtime / target / hardware constraints
    facets: list[str] = Field(default_factory=list)
    sort: SortKey = "relevance"
    limit: int = Field(default=20, ge=1, le=200)
    offset: int = Field(default=0, ge=0, le=10_000)
    cursor: str | None = None  # from a previous page's `next_cursor`; replaces offset
    facet_timeout_s: float = Field(default=0.5, gt=0)
    prefer: list[Preference] = Field(default_factory=list, max_length=20)  # ranking only, never filters
    rank_boosts: bool = True  # evidence and lineage boosts in the backend's own ranking (the hybrid adds its own)
    explain: bool = False  # each hit says why it ranks where it does

    @field_validator("filters", "exclude")
    @classmethod
    def _fields(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = [k for k in v if k not in FILTER_FIELDS]
        if unknown:
            raise ValueError(f"unknown filter field(s) {unknown}; known: {list(FILTER_FIELDS)}")
        return v

    def hard_constraints(self) -> list[Constraint]:
        """Filters, exclusions and constraints as one list (all must hold), with `min_status`
        pushed into the compatibility constraints that do not set their own level."""
        # (model_validate: the keys are field names checked by `_fields`, typed as plain strings)
        out: list[Constraint] = [FieldFilter.model_validate({"field": k, "values": v})
                                 for k, v in self.filters.items() if v]
        out += [FieldFilter.model_validate({"field": k, "values": v, "negate": True})
                for k, v in self.exclude.items() if v]
        out += [_with_status(c, self.min_status) for c in self.constraints]
        if self.min_status and not any(_has_compat(c) for c in self.constraints):
            out.append(StatusConstraint(min_status=self.min_status))
        return out

    def evidence_preferences(self) -> list[Preference]:
        """What the evidence ranking prefers: the explicit preferences plus every runtime, target or
        format the constraints name (positively), once each."""
        out = list(self.prefer)

        def visit(c: Constraint) -> None:
            if c.negate:
                return
            if isinstance(c, AnyOf):
                for x in c.of:
                    visit(x)
            elif isinstance(c, RuntimeConstraint):
                out.append(Preference(kind="runtime", value=c.runtime))
            elif isinstance(c, TargetConstraint):
                out.append(Preference(kind="target", value=c.target))
            elif isinstance(c, FieldFilter) and c.field in _PREFERRED_FIELDS:
                for v in c.values:
                    try:
                        out.append(Preference(kind=_PREFERRED_FIELDS[c.field], value=v))
                    except ValueError:
                        continue
        for c in self.hard_constraints():
            visit(c)
        return list({(p.kind, p.value): p for p in out}.values())

    def lineage_constraints(self) -> list[LineageConstraint]:
        return [c for c in self.hard_constraints() if isinstance(c, LineageConstraint) and not c.negate]

    def has_boosts(self) -> bool:
        return bool(self.evidence_preferences() or self.lineage_constraints())

    def fingerprint(self) -> str:
        """Identifies the result list a cursor pages through (everything but the page and facets)."""
        data = self.model_dump(mode="json", exclude={"limit", "offset", "cursor", "facets", "facet_timeout_s",
                                                     "explain"})
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def to_syntax(self) -> str:
        parts = [c.to_syntax() for c in self.hard_constraints()]
        parts += [p.to_syntax() for p in self.prefer]
        parts += [f'-"{t}"' if " " in t else f"-{t}" for t in self.exclude_text]
        if self.sort != "relevance":
            parts.append(f"sort:{self.sort}")
        return " ".join([self.text.strip(), *parts]).strip()


def evidence_of(q: SearchQuery, tokens: set[str]) -> dict[str, Any]:
    """A record's evidence for the query's preferences from its compatibility tokens (index/facts.py):
    the best level found per name, and their weighted mean (what EVIDENCE_BOOST multiplies)."""
    prefs = q.evidence_preferences()
    found: dict[str, str] = {}
    for p in prefs:
        by_level = p.evidence_tokens()
        for level in sorted(EVIDENCE_WEIGHTS, key=lambda lv: -EVIDENCE_WEIGHTS[lv]):
            if tokens & set(by_level[level]):
                found[f"{p.kind}:{p.value}"] = level
                break
    score = sum(EVIDENCE_WEIGHTS[lv] for lv in found.values()) / len(prefs) if prefs else 0.0
    return {"evidence": found, "evidence_score": score}


def _has_compat(c: Constraint) -> bool:
    if isinstance(c, AnyOf):
        return any(_has_compat(x) for x in c.of)
    return c.kind in (*COMPAT_KINDS, "status")


def _with_status(c: Constraint, level: Status | None) -> Constraint:
    if level is None:
        return c
    if isinstance(c, AnyOf):
        return c.model_copy(update={"of": [_with_status(x, level) for x in c.of]})
    if isinstance(c, RuntimeConstraint | TargetConstraint | HardwareConstraint) and c.min_status is None:
        return c.model_copy(update={"min_status": level})
    return c


def rebuild_in_batches(backend: SearchBackend, records: Iterable[ModelRecord], batch: int = 1000) -> int:
    """A backend's `rebuild_from`: empty it, index `records` (the catalog's live records) in batches,
    commit; returns how many."""
    backend.clear()
    n, buf = 0, []
    for r in records:
        buf.append(r)
        if len(buf) >= batch:
            backend.upsert(buf)
            n, buf = n + len(buf), []
    if buf:
        backend.upsert(buf)
        n += len(buf)
    backend.commit()
    return n


# ------------------------------------------------------------------------------------------------
# Cursors: opaque to clients, bound to the query they came from.
# ------------------------------------------------------------------------------------------------
class CursorError(UserError, ValueError):
    """A cursor that is malformed or belongs to another query."""


class SearchBackendError(ServiceUnavailable):
    """The search backend cannot answer (a remote server unreachable or refusing): the API says 503
    and the CLI prints the message, instead of a traceback."""


# Cursors are signed (HMAC-SHA256) so a client can only hand back what the server made: the state in
# them (keyset positions, counts) reaches the backends' range queries. The key is per data directory
# (`cursor_key_for`, set by the API at start-up); until one is set, a random per-process key.
_cursor_key: bytes = secrets.token_bytes(32)
_MAX_CURSOR = 4096
_MAX_POSITION = 10_000_000


def set_cursor_key(key: bytes) -> None:
    global _cursor_key
    _cursor_key = key


def cursor_key_for(data_dir: Path) -> bytes:
    """The data directory's cursor key (`cursor.key`, 32 random bytes, made on first use, owner-only)."""
    path = data_dir / "cursor.key"
    try:
        key = path.read_bytes()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


def _sign(payload: str) -> str:
    mac = hmac.new(_cursor_key, payload.encode(), hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(mac).decode()


def encode_cursor(query: SearchQuery, after: list[Any], position: int) -> str:
    blob = json.dumps({"v": 1, "h": query.fingerprint(), "s": query.sort, "a": after, "n": position},
                      separators=(",", ":"))
    payload = base64.urlsafe_b64encode(blob.encode()).decode().rstrip("=")
    return f"{payload}.{_sign(payload)}"


def _scalar(x: Any) -> bool:
    if isinstance(x, bool):
        return False
    if isinstance(x, float):
        return math.isfinite(x)
    return isinstance(x, int | str)


def decode_cursor(query: SearchQuery) -> dict[str, Any] | None:
    """The cursor's state ({"a": keyset position, "n": results before it}), or None without one.
    Refused (CursorError) unless signed with this data directory's key and well-typed."""
    if not query.cursor:
        return None
    malformed = "malformed cursor; pass `next_cursor` from a previous page unchanged"
    payload, dot, mac = query.cursor.partition(".")
    if not dot or len(query.cursor) > _MAX_CURSOR or not hmac.compare_digest(mac.encode(), _sign(payload).encode()):
        raise CursorError(malformed)
    try:
        data = json.loads(base64.urlsafe_b64decode((payload + "=" * (-len(payload) % 4)).encode()))
    except ValueError as e:
        raise CursorError(malformed) from e
    ok = (isinstance(data, dict) and data.get("v") == 1 and isinstance(data.get("h"), str)
          and isinstance(data.get("a"), list) and len(data["a"]) <= 4 and all(_scalar(x) for x in data["a"])
          and isinstance(data.get("n"), int) and not isinstance(data["n"], bool) and 0 <= data["n"] <= _MAX_POSITION)
    if not ok or not isinstance(data, dict):  # (the second test only tells the type checker)
        raise CursorError(malformed)
    if data.get("h") != query.fingerprint():
        raise CursorError("this cursor belongs to another query (text, constraints or sort changed)")
    return data


# ------------------------------------------------------------------------------------------------
# Results
# ------------------------------------------------------------------------------------------------
class Hit(BaseModel):
    id: str
    score: float
    explain: dict[str, Any] | None = None  # with `explain=true`: the parts of the score


class FacetCounts(BaseModel):
    counts: dict[str, int] = Field(default_factory=dict)
    timed_out: bool = False
    # Values of `counts` the KB does not know: tasks and libraries as a source named them (SourceTerm).
    source_terms: list[str] = Field(default_factory=list)


class SearchResult(BaseModel):
    total: int
    hits: list[Hit]
    facets: dict[str, FacetCounts] = Field(default_factory=dict)
    took_ms: float = 0.0
    notices: list[str] = Field(default_factory=list)
    next_cursor: str | None = None

    @model_validator(mode="after")
    def _mark_source_terms(self) -> SearchResult:
        """Every backend's facets say which values are a source's words, not KB terms (the KB decides,
        on read, so a term the KB learns later stops being marked)."""
        vocab = get_vocab()
        for name in ("task", "framework"):
            fc = self.facets.get(name)
            if fc is not None and fc.counts:
                fc.source_terms = [v for v in fc.counts if not vocab.knows(name, v)]
        return self


class InterpretedConstraint(BaseModel):
    """One constraint the query was read as: its canonical syntax, the words it came from and
    whether the syntax or the natural-language reader found it."""

    syntax: str
    source: str
    via: Literal["syntax", "nl", "param"]
    kind: str = "constraint"  # the constraint's kind ("field", "runtime", "lineage", …) or "preference"
    label: str = ""  # how a person would say it ("fine-tunes of Llama-2-7b")
    remove: str | None = None  # the query text without this part: what a "remove" chip links to


class Interpretation(BaseModel):
    """How `q` was read: the constraints taken from it and the free text left for ranking."""

    q: str
    nl: bool
    text: str
    exclude_text: list[str] = Field(default_factory=list)
    constraints: list[InterpretedConstraint] = Field(default_factory=list)
    notices: list[str] = Field(default_factory=list)


class SearchBackend(Protocol):
    """What every search backend does (the embedded Tantivy one, Elasticsearch); the pipeline, the
    read side, the hybrid ranking, the API and the CLI use a backend only through this. A new backend
    implements all of it (CONTRIBUTING.md) and the type checker in `make test` holds it to that."""

    name: str  # "embedded", "elasticsearch": what `search_backend` in the settings names
    # True when the backend was emptied on open (built by another layout, facts encoding or KB):
    # `ensure_current` then rebuilds every projection from the catalog.
    needs_rebuild: bool

    # -- writes (the search projection; committed per batch) --
    def upsert(self, records: list[ModelRecord]) -> None: ...

    def delete(self, ids: list[str]) -> None: ...

    def commit(self) -> None: ...

    def clear(self) -> None: ...

    def rebuild_from(self, records: Iterable[ModelRecord], batch: int = 1000) -> int:
        """Empty the index and index `records` (the catalog's live records) again; returns how many."""
        ...

    def close(self) -> None: ...

    # -- reads --
    def count(self) -> int: ...

    def search(self, query: SearchQuery) -> SearchResult: ...

    def count_matching(self, q: SearchQuery) -> int:
        """How many records satisfy the hard constraints (free text ignored)."""
        ...

    def matching_ids(self, q: SearchQuery) -> list[str]:
        """The ids of every record satisfying the hard constraints (free text ignored), sorted."""
        ...

    def boosts_of(self, q: SearchQuery, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Each record's evidence (`evidence`: preference → level, `evidence_score` 0..1) and lineage
        `generation` for `q`: what the hybrid fusion adds and `explain` shows."""
        ...


@runtime_checkable
class StagedRebuild(Protocol):
    """A backend that rebuilds into a new index searches see only once it is complete (a search
    server, whose readers are other processes: index/elasticsearch/lifecycle.py); `modelport reindex`
    rebuilds it that way. The embedded index is emptied and refilled instead."""

    def begin_rebuild(self) -> None: ...

    def finish_rebuild(self) -> None: ...

    def abort_rebuild(self) -> None: ...


_REBUILD_LOCK = threading.Lock()


def _still_needs_rebuild(backend: SearchBackend) -> bool:
    # (a call, so a type checker does not carry the test above past the lock: another thread may clear it)
    return backend.needs_rebuild


def ensure_current(backend: SearchBackend, reindex: Callable[[], object]) -> bool:
    """Run `reindex` (the pipeline's rebuild of every projection from the catalog) when the search
    backend was emptied on open because its layout, facts encoding or KB changed (`needs_rebuild`);
    returns whether it ran. Concurrent callers wait for the one rebuild."""
    if not backend.needs_rebuild:
        return False
    with _REBUILD_LOCK:
        if not _still_needs_rebuild(backend):  # another caller rebuilt it while this one waited
            return False
        log.warning("the search index was built by another version; rebuilding every projection from the catalog")
        reindex()
        backend.needs_rebuild = False
        return True


def keyword_values(record: ModelRecord) -> dict[str, list[str]]:
    """The filter-field values of a record, shared by every backend so they index the same facts."""
    return _keyword_values(record)


def search_text(record: ModelRecord) -> dict[str, str]:
    """Text fields: name (with the id's words), description, card body and tags."""
    card = record.card
    card_text = "\n".join(x for x in (card.intended_use, card.limitations, card.training_data, card.body) if x)
    return {
        "name": f"{record.name} {record.local_id.replace('/', ' ').replace('-', ' ').replace('_', ' ')}",
        "description": record.description or "",
        "card": card_text[:20_000],
        "tags": " ".join([*record.keywords, *record.tasks, *record.frameworks, *record.formats,
                          record.architecture or ""]),
    }


__all__ = ["FILTER_FIELDS", "StagedRebuild", "FACET_FIELDS", "PARAM_BUCKETS", "STATUS_ORDER", "SortKey", "Status", "Op",
           "SearchQuery", "Constraint", "FieldFilter", "RuntimeConstraint", "TargetConstraint",
           "HardwareConstraint", "StatusConstraint", "MetricConstraint", "LatencyConstraint", "MemoryConstraint",
           "ParamsConstraint", "SizeConstraint", "LineageConstraint", "Preference", "AnyOf", "EVIDENCE_WEIGHTS",
           "EVIDENCE_BOOST", "LINEAGE_BOOST", "BM25_BOOST_SCALE", "FIELD_TIE_BREAKER", "STOP_WORDS", "content_words",
           "text_terms", "TextOccur",
           "Hit", "FacetCounts", "SearchResult", "Interpretation",
           "InterpretedConstraint", "SearchBackend", "keyword_values", "search_text", "encode_cursor", "evidence_of",
           "decode_cursor", "exact_names", "CursorError", "set_cursor_key", "cursor_key_for", "ensure_current"]
