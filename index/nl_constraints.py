"""Natural-language constraints: phrases such as "compatible with ONNX Runtime 1.14+", "> 90 %
accuracy on ImageNet", "under 50 ms on a T4", "runs on iPhone / Android / in the browser",
"Apache licensed", "smaller than 100M parameters" or "fits in 4 GB" become constraints of the
query model; everything else stays free text for ranking.

The patterns are phrase shapes (a comparison word, a number, a unit, a preposition); the names
inside them (runtimes, targets, hardware, licences, metrics, datasets and their aliases) are
alternations built from the knowledge base (`index/vocab.py`), so a new alias is a KB edit.
The reader is deliberately conservative: a runtime or target name only becomes a constraint next
to a cue ("runs on", "compatible with", a version number), so "pytorch image classifier" stays text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Literal

from pydantic import ValidationError

from modelport.index.search import (
    AnyOf,
    Constraint,
    FieldFilter,
    HardwareConstraint,
    LatencyConstraint,
    LineageConstraint,
    MemoryConstraint,
    MetricConstraint,
    Op,
    ParamsConstraint,
    Preference,
    RuntimeConstraint,
    SizeConstraint,
    Status,
    TargetConstraint,
)
from modelport.index.vocab import Vocab, get_vocab

# Comparison phrases → operator. "better/worse than" depend on the metric's direction.
Relative = Literal["better", "worse"]
_CMP: dict[str, Op | Relative] = {
    ">": ">", ">=": ">=", "≥": ">=", "=>": ">=", "<": "<", "<=": "<=", "≤": "<=", "=<": "<=",
    "more than": ">", "greater than": ">", "higher than": ">", "larger than": ">", "bigger than": ">",
    "over": ">", "above": ">", "exceeding": ">", "at least": ">=", "no less than": ">=", "minimum": ">=",
    "min": ">=", "better than": "better", "worse than": "worse",
    "less than": "<", "lower than": "<", "fewer than": "<", "under": "<", "below": "<", "smaller than": "<",
    "faster than": "<", "at most": "<=", "no more than": "<=", "up to": "<=", "within": "<=", "max": "<=",
    "maximum": "<=", "sub": "<", "sub-": "<", "not more than": "<=", "not over": "<=",
}
_TRAILING_CMP: dict[str, Op] = {
                 "or more": ">=", "or higher": ">=", "or better": ">=", "or above": ">=", "or greater": ">=",
                 "or larger": ">=", "+": ">=", "or less": "<=", "or fewer": "<=", "or lower": "<=",
                 "or smaller": "<=", "or below": "<=", "or under": "<=", "max": "<=", "maximum": "<=",
                 "at most": "<=", "at least": ">=", "min": ">=", "minimum": ">="}
NUM = r"(?:\d+(?:\.\d+)?|\.\d+)"
_COUNT_UNITS = {"k": 1e3, "thousand": 1e3, "m": 1e6, "mn": 1e6, "million": 1e6, "millions": 1e6, "b": 1e9,
                "bn": 1e9, "billion": 1e9, "billions": 1e9, "t": 1e12, "trillion": 1e12}
_BYTE_UNITS = {"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "kib": 2.0 ** 10, "mib": 2.0 ** 20, "gib": 2.0 ** 30,
               "tib": 2.0 ** 40, "gigabytes": 1e9, "megabytes": 1e6, "terabytes": 1e12}
_TIME_UNITS = {"ms": 1.0, "msec": 1.0, "millisecond": 1.0, "milliseconds": 1.0, "s": 1000.0, "sec": 1000.0,
               "secs": 1000.0, "second": 1000.0, "seconds": 1000.0, "us": 1e-3, "µs": 1e-3, "microseconds": 1e-3}
_CONNECTORS = {"with", "and", "that", "which", "is", "are", "a", "an", "the", "or", "&", ",", ";", "-", "/", "in",
               "on", "for", "of", "to", "under", "runs", "run", "running", "has", "have", "having", "but", "also",
               "than", "at", "by", "using", "be", "it", "its", "their", "models", "model", "compatible", "works",
               "work", "should", "must", "can", "needs", "need"}
# Words that end a model's name when more words follow it ("fine-tunes of Llama 2 for chat").
_NAME_STOPS = ("for", "with", "in", "on", "that", "which", "and", "or", "to", "under", "over", "using", "from", "by",
               "at", "of", "trained", "tuned", "about", "than", "like", "the", "a", "an", "is", "are", "as", "into",
               "without", "below", "above", "less", "more", "fewer", "smaller", "larger", "runs", "running")
# Words that end up before "fine-tunes" / "derivatives" but never name a model.
_NOT_NAMES = {"all", "any", "some", "show", "list", "find", "me", "popular", "best", "top", "recent", "new", "latest",
              "good", "other", "more", "most", "which", "what", "where", "are", "there", "its", "his", "her"}
# Connectors kept when they stand alone: "models" alone is still what the user typed.
_KEEP_ALONE = {"models", "model"}


def _alt(names: list[str]) -> str:
    """Alternation of names, longest first, tolerant to spaces/hyphens inside a name."""
    parts = []
    for n in sorted(set(names), key=len, reverse=True):
        words = [re.escape(w) for w in re.split(r"[\s_\-]+", n) if w]
        if words:
            parts.append(r"[\s_\-]*".join(words))
    return "(?:" + "|".join(parts) + ")"


def _b(pattern: str) -> str:
    """Whole-word boundaries that also work for names ending in '.', '+' or digits."""
    return rf"(?<![A-Za-z0-9]){pattern}(?![A-Za-z0-9])"


def _cmp_alt() -> str:
    words = sorted(_CMP, key=len, reverse=True)
    return "(?:" + "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in words) + ")"


@dataclass
class NLResult:
    constraints: list[tuple[Constraint, str]] = field(default_factory=list)  # (constraint, phrase)
    text: str = ""
    notices: list[str] = field(default_factory=list)
    preferences: list[tuple[Preference, str]] = field(default_factory=list)  # (preference, word)
    # For a lineage constraint (by its index in `constraints`): longer readings of the model's name
    # ("stable diffusion xl base" where the name-shaped reading is "stable"), longest first, each
    # with the words it leaves to the text. The query compiler keeps the longest one the catalog
    # knows; without a catalog to ask, the constraint as built (and `lineage_rest`) stands.
    lineage_alternatives: dict[int, list[tuple[str, str]]] = field(default_factory=dict)  # by id(constraint)
    lineage_rest: dict[int, str] = field(default_factory=dict)


@dataclass
class _Pattern:
    name: str
    regex: re.Pattern[str]
    build: Callable[[re.Match[str], Vocab], list[Constraint]]


# Words that ask for a runtime at an evidence level ("runs natively on …").
_STATUS_WORDS: dict[str, Status] = {"natively": "native", "native": "native", "verified": "verified"}


def _norm_cmp(raw: str | None) -> Op | Relative | None:
    if raw is None:
        return None
    return _CMP.get(re.sub(r"\s+", " ", raw.strip().lower()))


def _direction(op: Op | Relative | None, metric: str, vocab: Vocab) -> Op:
    """The operator of a metric phrase; with no comparison word, "at least" for metrics where
    higher is better, "at most" for the others (a "5 % WER" model)."""
    hib = vocab.higher_is_better.get(metric, True)
    if op == "better":
        return ">" if hib else "<"
    if op == "worse":
        return "<" if hib else ">"
    return op or (">=" if hib else "<=")


def _num(text: str) -> float:
    return float(text.replace(",", ""))


# ------------------------------------------------------------------------------------------------
# Builders
# ------------------------------------------------------------------------------------------------
def _runtime_version(m: re.Match[str], v: Vocab) -> list[Constraint]:
    rid = v.runtime(m["rt"])
    if rid is None:
        return []
    and_newer = bool(m["plus"] or m["ge"])
    status = _STATUS_WORDS.get((m["st"] or "").lower())
    return [RuntimeConstraint(runtime=rid, version=m["ver"], and_newer=and_newer, min_status=status)]


def _metric(m: re.Match[str], v: Vocab) -> list[Constraint]:
    metric = v.metric(m["metric"])
    ds_raw = next((m[g] for g in ("ds", "ds0", "ds2") if g in m.re.groupindex and m[g]), None)
    op = _direction(_norm_cmp(m["cmp"]) if "cmp" in m.re.groupindex else None, metric, v)
    if "tail" in m.re.groupindex and m["tail"]:
        op = _TRAILING_CMP.get(re.sub(r"\s+", " ", m["tail"].strip().lower()), op)
    value = _num(m["num"])
    if m["pct"] and v.is_proportion(metric):
        value /= 100.0
    return [MetricConstraint(metric=metric, dataset=v.dataset(ds_raw) if ds_raw else None, op=op, value=value)]


def _latency(m: re.Match[str], v: Vocab) -> list[Constraint]:
    cmp = _norm_cmp(m["cmp"]) if m["cmp"] else "<="
    op = "<" if cmp == "better" else ">" if cmp == "worse" else cmp  # a better latency is a lower one
    if op is None:
        return []
    unit = m["unit"].lower()
    hw = v.hardware_profile(m["hw"]) if m["hw"] else None
    return [LatencyConstraint(hardware=hw, op=op, ms=_num(m["num"]) * _TIME_UNITS[unit],
                              measured_only=bool(m["measured"]))]


def _memory(m: re.Match[str], v: Vocab) -> list[Constraint]:
    op = _norm_cmp(m["cmp"]) if "cmp" in m.re.groupindex and m["cmp"] else "<="
    if op is None or op == "better" or op == "worse":
        return []
    unit = m["unit"].lower()
    hw = v.hardware_profile(m["hw"]) if "hw" in m.re.groupindex and m["hw"] else None
    return [MemoryConstraint(hardware=hw, op=op, bytes=_num(m["num"]) * _BYTE_UNITS[unit])]


def _params(m: re.Match[str], v: Vocab) -> list[Constraint]:
    op = _norm_cmp(m["cmp"]) if "cmp" in m.re.groupindex and m["cmp"] else None
    if "tail" in m.re.groupindex and m["tail"]:
        op = _TRAILING_CMP.get(re.sub(r"\s+", " ", m["tail"].strip().lower()))
    if op is None or op == "better" or op == "worse":
        return []
    return [ParamsConstraint(op=op, value=_num(m["num"]) * _COUNT_UNITS[m["unit"].lower()])]


def _params_between(m: re.Match[str], v: Vocab) -> list[Constraint]:
    lo = _num(m["lo"]) * _COUNT_UNITS[(m["lou"] or m["unit"]).lower()]
    hi = _num(m["hi"]) * _COUNT_UNITS[m["unit"].lower()]
    return [ParamsConstraint(op=">=", value=lo), ParamsConstraint(op="<=", value=hi)]


def _targets(m: re.Match[str], v: Vocab, alt: str) -> list[Constraint]:
    group = m["tgs"]
    names = [x.group(0) for x in re.finditer(_b(alt), group, re.I)]
    ids = list(dict.fromkeys(t for t in (v.target(n) for n in names) if t))
    if not ids:
        return []
    if len(ids) == 1:
        return [TargetConstraint(target=ids[0])]
    # "on Android and iOS" needs both; "iPhone / Android / in the browser", "or", "," any of them.
    if re.search(r"(?:\s+and\s+|&)", group, re.I) and not re.search(r"(?:\s+or\s+|/|,)", group, re.I):
        return [TargetConstraint(target=t) for t in ids]
    return [AnyOf(of=[TargetConstraint(target=t) for t in ids])]


def _hardware(m: re.Match[str], v: Vocab) -> list[Constraint]:
    hid = v.hardware_profile(m["hw"])
    return [HardwareConstraint(hardware=hid)] if hid else []


# ------------------------------------------------------------------------------------------------
# Patterns (built once per KB version; order = priority when phrases overlap)
# ------------------------------------------------------------------------------------------------
@cache
def _patterns(kb_version: str) -> list[_Pattern]:
    v = get_vocab()
    RT = _alt(v.names("runtimes"))
    TG = _alt(v.names("targets"))
    HW = _alt(v.names("hardware"))
    LIC = _alt([*v.names("licenses"), "permissive", "permissively"])
    MET = _alt(v.names("metrics"))
    DS = _alt(v.names("datasets"))
    CMP = _cmp_alt()
    TAIL = "(?:" + "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in sorted(_TRAILING_CMP, key=len,
                                                                                   reverse=True)) + ")"
    TIME = _alt(sorted(_TIME_UNITS, key=len, reverse=True))
    BYTES = "(?:" + "|".join(sorted(_BYTE_UNITS, key=len, reverse=True)) + ")"
    COUNT = "(?:" + "|".join(sorted(_COUNT_UNITS, key=len, reverse=True)) + ")"
    ART = r"(?:(?:an?|the|one|single|my|our|1)\s+)*"
    VERB = (r"(?:compatible|compat|works?|working|runs?|running|runnable|supported|deployable|loadable|usable|"
            r"executes?|served|serving|inference)")
    PREP = r"(?:with|on|in|by|under|using|through|via)"
    STATUS = r"(?:(?P<st>natively|native|verified)\s+)?"

    def P(name: str, pattern: str, build: Callable[[re.Match[str], Vocab], list[Constraint]]) -> _Pattern:
        return _Pattern(name, re.compile(pattern, re.I), build)

    NAME_WORD = r"[A-Za-z0-9][\w.\-/:]*[\w]|[A-Za-z0-9]"
    CONT = "(?:" + "|".join(sorted((re.escape(w) for w in v.name_words), key=len, reverse=True)) + \
        r"|v?\d[\w.\-]*|[A-Za-z]+\d[\w.\-]*)"
    NAME = rf'(?:"[^"]+"|(?:{NAME_WORD})(?:\s+{CONT}(?![\w.\-]))*)'
    STOP = "|".join(sorted(_NAME_STOPS, key=len, reverse=True))
    before = [p for p in v.lineage_phrases if p[1] == "before"]
    after = [p for p in v.lineage_phrases if p[1] == "after"]

    def phrases(items: list[tuple[str, str, str | None]]) -> str:
        return "(?:" + "|".join(rf"(?P<p{i}>{_phrase(t)})" for i, (t, _, _) in enumerate(items)) + ")"

    FMT = _alt(list(v.format_names))
    fmt_templates = "|".join(_phrase(t).replace(r"\{format\}", "{format}").replace("{format}",
                                                                                   _b(f"(?P<f{i}>{FMT})"))
                             for i, t in enumerate(v.format_templates))
    return [
        P("lineage-before",
          rf"(?<![\w\-]){phrases(before)}\s+(?:the\s+|a\s+)?(?P<x>{NAME})"
          rf"(?P<more>(?:\s+(?!(?:{STOP})(?![\w.\-]))(?:{NAME_WORD})){{0,4}})",
          lambda m, vv: _lineage(m, vv, before)),
        P("lineage-after",
          rf"(?<![\w\-/.])(?P<x>{NAME})\s+{phrases(after)}(?![\w\-])",
          lambda m, vv: _lineage(m, vv, after)),
        P("format-constraint", rf"(?<![\w\-])(?:{fmt_templates})(?![\w\-])", _format_constraint),
        P("runtime-version",
          rf"{STATUS}(?:(?:{VERB}\s+{PREP}|with|on|for|in|using|under)\s+(?:the\s+)?)?"
          rf"{_b(f'(?P<rt>{RT})')}\s*(?:v(?:ersion)?\.?\s*)?(?P<ge>>=|≥|=>)?\s*"
          rf"(?P<ver>\d+(?:\.\d+){{0,3}})(?![\d.]*\d)(?P<plus>\s*\+|\s+(?:or|and)\s+(?:newer|later|above|higher|up"
          rf"|greater))?",
          _runtime_version),
        P("metric-number-first",
          rf"(?:(?P<cmp>{CMP})\s*)?(?<![\w.\-])(?P<num>{NUM})(?:\s*(?P<pct>%|percent|pct))?(?P<tail>\s*\+|\s+or\s+"
          rf"(?:more|higher|better|above|greater))?\s*(?:top[\s-]*1\s+)?{_b(f'(?P<metric>{MET})')}"
          rf"(?:\s+(?:on|@|for|in)\s+(?:the\s+)?{_b(f'(?P<ds>{DS})')})?",
          _metric),
        P("metric-name-first",
          rf"(?:{_b(f'(?P<ds0>{DS})')}\s+)?{_b(f'(?P<metric>{MET})')}(?:\s+(?:on|@)\s+(?:the\s+)?"
          rf"{_b(f'(?P<ds>{DS})')})?\s*(?:(?:of|is|score|scores|score\s+of)\s+)?(?P<cmp>{CMP})\s*"
          rf"(?P<num>{NUM})(?:\s*(?P<pct>%|percent|pct))?(?:\s+(?:on|@)\s+(?:the\s+)?{_b(f'(?P<ds2>{DS})')})?",
          _metric),
        P("latency",
          rf"(?:(?P<measured>measured)\s+)?(?:(?:latency|inference(?:\s+time)?|response\s+time|runtime)\s+"
          rf"(?:of\s+|is\s+)?)?(?:in\s+)?(?P<cmp>{CMP})\s*(?P<num>{NUM})\s*(?P<unit>{TIME})(?![A-Za-z0-9])"
          rf"(?:\s+(?:latency|inference|per\s+(?:image|frame|sample|token|request)))?"
          rf"(?:\s+(?:on|with|using)\s+{ART}{_b(f'(?P<hw>{HW})')}(?:\s+gpus?)?)?",
          _latency),
        P("latency-number-first",
          rf"(?<![\w.])(?P<cmp>)(?P<num>{NUM})\s*(?P<unit>{TIME})(?![A-Za-z0-9])\s+(?:(?P<measured>measured)\s+)?"
          rf"(?:latency|inference)(?:\s+(?:on|with|using)\s+{ART}{_b(f'(?P<hw>{HW})')}(?:\s+gpus?)?)?",
          _latency),
        P("memory-fits",
          rf"(?:fits?|fitting|runs?)\s+(?:in(?:to)?|within|on)\s+(?:an?\s+)?(?P<num>{NUM})\s*"
          rf"(?P<unit>{BYTES})(?![A-Za-z0-9])(?:\s+(?:of\s+)?(?:ram|memory|vram|gpu\s+memory|gpu|device))?"
          rf"(?:\s+(?:on|of)\s+{ART}{_b(f'(?P<hw>{HW})')})?",
          _memory),
        P("memory-bound",
          rf"(?:(?:needs?|requires?|uses?|using|with)\s+)?(?P<cmp>{CMP})\s*(?P<num>{NUM})\s*"
          rf"(?P<unit>{BYTES})(?![A-Za-z0-9])\s+(?:of\s+)?(?:ram|memory|vram|gpu\s+memory)"
          rf"(?:\s+(?:on|of)\s+{ART}{_b(f'(?P<hw>{HW})')})?",
          _memory),
        P("params-between",
          rf"between\s+(?P<lo>{NUM})\s*(?P<lou>{COUNT})?\s+and\s+(?P<hi>{NUM})\s*(?P<unit>{COUNT})(?![A-Za-z0-9])"
          rf"(?:\s+(?:param(?:eter)?s?|weights))?",
          _params_between),
        P("params-bound",
          rf"(?:(?:with|having)\s+)?(?P<cmp>{CMP})\s*(?P<num>{NUM})\s*(?P<unit>{COUNT})(?![A-Za-z0-9])"
          rf"(?:\s+(?:param(?:eter)?s?|weights))?",
          _params),
        P("params-trailing",
          rf"(?<![\w.])(?P<num>{NUM})\s*(?P<unit>{COUNT})(?![A-Za-z0-9])\s+(?:param(?:eter)?s?|weights)\s+"
          rf"(?P<tail>{TAIL})",
          _params),
        P("size",
          rf"(?:(?:(?:file|model|disk|download|checkpoint|weights?)\s+)?size\s+(?:of\s+|is\s+)?(?P<cmp>{CMP})?\s*|"
          rf"(?P<cmp2>smaller\s+than|less\s+than|under|below|at\s+most|up\s+to|no\s+more\s+than)\s*)"
          rf"(?P<num>{NUM})\s*(?P<unit>{BYTES})(?![A-Za-z0-9])",
          lambda m, v: _size_any(m, v)),
        P("license",
          rf"(?:(?:an?|the)\s+)?{_b(f'(?P<lic>{LIC})')}[\s-]+licen[cs]ed|"
          rf"licen[cs]ed\s+(?:under\s+)?(?:the\s+|an?\s+)?{_b(f'(?P<lic2>{LIC})')}(?:\s+licen[cs]e)?|"
          rf"(?:(?:under|with)\s+)?(?:an?\s+|the\s+)?{_b(f'(?P<lic3>{LIC})')}\s+licen[cs]e|"
          rf"licen[cs]e\s*[:=]?\s*{_b(f'(?P<lic4>{LIC})')}",
          lambda m, v: _license_any(m, v)),
        P("hardware-fit",
          rf"(?:(?:fits?|runs?|running|runnable|deployable|works?|working|usable|served)\s+)?(?:on|in)\s+{ART}"
          rf"{_b(f'(?P<hw>{HW})')}(?:\s+gpus?)?",
          _hardware),
        P("target",
          rf"(?:(?:runs?|running|runnable|deploy(?:able|ed)?|works?|working|usable|available|compatible|"
          rf"optimi[sz]ed|suitable|ready|something|apps?)\s+)?(?:on|in|to|for|inside)\s+(?:an?\s+|the\s+|my\s+|"
          rf"our\s+)?(?P<tgs>{_b(TG)}(?:\s*(?:,|/|\bor\b|\band\b|&)\s*(?:(?:on|in)\s+)?(?:an?\s+|the\s+)?"
          rf"{_b(TG)})*)(?:\s+(?:devices?|apps?|phones?))?",
          lambda m, v: _targets(m, v, TG)),
        P("runtime",
          rf"{STATUS}(?:{VERB}\s+{PREP}\s+(?:the\s+)?{_b(f'(?P<rt>{RT})')}|"
          rf"{_b(f'(?P<rt2>{RT})')}[\s-]+(?:compatible|compatibility|ready|support(?:ed)?))",
          lambda m, v: _runtime_any(m, v)),
    ]


def _phrase(text: str) -> str:
    """A vocabulary phrase as a pattern: its words with any spacing or hyphenation between them."""
    words = [re.escape(w) for w in re.split(r"[\s\-]+", text) if w]
    return r"[\s\-]+".join(words)


def _lineage(m: re.Match[str], v: Vocab, items: list[tuple[str, str, str | None]]) -> list[Constraint]:
    name = m["x"].strip().strip('"').strip()
    key = re.sub(r"[\s_\-]+", " ", name.lower())
    # A format, relation or connecting word is not a model ("GGUF quants", "all fine-tunes").
    if not name or key in v.format_names or key in v.formats or v.relation(key) or key in _CONNECTORS \
            or key in _NOT_NAMES:
        return []
    relation = next(items[int(g[1:])][2] for g, val in m.groupdict().items() if g.startswith("p") and val)
    # (validated from a dict: the relation is a KB name the model's validator turns into its id)
    return [LineageConstraint.model_validate({"base": name, "relations": [relation] if relation else []})]


def _format_constraint(m: re.Match[str], v: Vocab) -> list[Constraint]:
    name = next(val for g, val in m.groupdict().items() if g.startswith("f") and val)
    return [FieldFilter(field="format", values=v.format_ids(name))]


def _size_any(m: re.Match[str], v: Vocab) -> list[Constraint]:
    raw = m["cmp"] or m["cmp2"]
    op = _norm_cmp(raw) if raw else "<="
    if op is None or op == "better" or op == "worse":
        return []
    return [SizeConstraint(op=op, value=_num(m["num"]) * _BYTE_UNITS[m["unit"].lower()])]


def _license_any(m: re.Match[str], v: Vocab) -> list[Constraint]:
    raw = next(m[g] for g in ("lic", "lic2", "lic3", "lic4") if m[g])
    if raw.strip().lower().startswith("permissive"):
        return [FieldFilter(field="license", values=["permissive"])]
    return [FieldFilter(field="license", values=[v.license(raw)])]


def _runtime_any(m: re.Match[str], v: Vocab) -> list[Constraint]:
    rid = v.runtime(m["rt"] or m["rt2"])
    if rid is None:
        return []
    status = _STATUS_WORDS.get((m["st"] or "").lower())
    return [RuntimeConstraint(runtime=rid, min_status=status)]


# ------------------------------------------------------------------------------------------------
# Entry point
# ------------------------------------------------------------------------------------------------
def extract(text: str) -> NLResult:
    """Constraints found in `text` (with the phrase each came from) and the text left over."""
    vocab = get_vocab()
    out = NLResult()
    taken: list[tuple[int, int]] = []
    for pat in _patterns(vocab.kb_version):
        for m in pat.regex.finditer(text):
            start, end = m.span()
            # Trim spaces the pattern swallowed at its edges so spans do not eat neighbours' space.
            while start < end and text[start].isspace():
                start += 1
            while end > start and text[end - 1].isspace():
                end -= 1
            if end <= start or any(start < e and s < end for s, e in taken):
                continue
            try:
                built = pat.build(m, vocab)
            except (ValidationError, ValueError, KeyError) as e:
                out.notices.append(f"{m.group(0).strip()!r} looked like a constraint but was not understood: {e}")
                continue
            if not built:
                continue
            taken.append((start, end))
            phrase = text[start:end]
            if "more" in m.re.groupindex and m["more"] and m["more"].strip() and len(built) == 1:
                base_words = m["x"].split()
                more = m["more"].split()
                idx = id(built[0])
                out.lineage_alternatives[idx] = [(" ".join(base_words + more[:k]), " ".join(more[k:]))
                                                 for k in range(len(more), -1, -1)]
                out.lineage_rest[idx] = " ".join(more)
            out.constraints.extend((c, phrase) for c in built)
    # Constraints in the order the user wrote them.
    order = {id(c): text.find(p) for c, p in out.constraints}
    out.constraints.sort(key=lambda cp: order[id(cp[0])])
    out.text = _leftover(text, sorted(taken))
    out.preferences = _format_preferences(out.text, vocab)
    return out


def _format_preferences(text: str, vocab: Vocab) -> list[tuple[Preference, str]]:
    """Deployment-format words left in the text ("a TFLite classifier") read as a preference: they
    stay in the text (they still match words) and rank records that ship the format higher."""
    out: list[tuple[Preference, str]] = []
    if not text:
        return out
    for m in re.finditer(_b(_alt(list(vocab.format_names))), text, re.I):
        pref = Preference(kind="format", value=m.group(0))
        if all(p.value != pref.value for p, _ in out):
            out.append((pref, m.group(0)))
    return out


def _leftover(text: str, spans: list[tuple[int, int]]) -> str:
    """The text outside the constraint phrases, each piece trimmed of the connecting words
    ("with", "and", commas) that only joined it to a phrase."""
    pieces, pos = [], 0
    for s, e in [*spans, (len(text), len(text))]:
        pieces.append((text[pos:s], pos > 0, s < len(text)))
        pos = e
    out = []
    for piece, after_span, before_span in pieces:
        words = re.findall(r"[^\s,;]+|[,;]", piece)
        if after_span:
            while words and words[0].lower().strip(".:") in _CONNECTORS and words[0].lower() not in _KEEP_ALONE:
                words.pop(0)
        if before_span:
            while words and words[-1].lower().strip(".:") in _CONNECTORS and \
                    not (words[-1].lower() in _KEEP_ALONE and len(words) == 1):
                words.pop()
        words = [w for w in words if w not in (",", ";")]
        if words:
            out.append(" ".join(words))
    return " ".join(out).strip()


__all__ = ["NLResult", "extract"]
