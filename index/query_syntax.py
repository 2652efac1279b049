"""The search box language: free text with qualifiers, quoted phrases, OR and negation, read into
the same `SearchQuery` the API takes as parameters.

    task:image-classification runtime:onnxruntime@1.14 target:android
    metric:accuracy@imagenet>=0.9 latency@t4<50ms params<100M license:apache-2.0 -tag:gguf

Free text is lenient (an unknown `word:` prefix, a dangling OR or an unclosed quote stay text and
get a notice); a known qualifier with a value that cannot mean anything raises `QuerySyntaxError`
naming the token and its position, which the API turns into a 400. The reference is README.md,
section "Query syntax"; `SYNTAX_HELP` below is the short form shown in the OpenAPI docs.

Over the ~500-line guide on purpose: it is one grammar — the tokenizer, the qualifier table and the
reader of each qualifier's value share the token positions that every 400 points at, and splitting
them would pass that state between modules.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from modelport.errors import UserError
from modelport.index.search import (
    AnyOf,
    Constraint,
    FieldFilter,
    HardwareConstraint,
    Interpretation,
    InterpretedConstraint,
    LatencyConstraint,
    LineageConstraint,
    MemoryConstraint,
    MetricConstraint,
    ParamsConstraint,
    Preference,
    RuntimeConstraint,
    SearchQuery,
    SizeConstraint,
    TargetConstraint,
)
from modelport.index.vocab import STATUS_ORDER, get_vocab
from modelport.schema.versions import parse_version

SYNTAX_HELP = """\
Free text ranks results; qualifiers are hard constraints that all must hold.

* `task:image-classification` (a broader task such as `task:vision` includes its narrower tasks),
  `source:` `framework:` `format:` (a family such as `format:tensorflow` includes its formats)
  `license:` (`license:permissive` = any permissive licence) `language:` `publisher:` `tag:` `access:`;
  `task:a,b` = either.
* `runtime:onnxruntime` — any compatibility cell for the runtime; `runtime:onnxruntime@1.14` — its
  version range contains 1.14; `runtime:onnxruntime@1.14+` — contains 1.14 and every later version.
* `target:android` (`target:mobile` = Android or iOS), `hardware:t4` (fits the profile's memory).
* `status:native` — minimum evidence for the runtime/target/hardware qualifiers of the query
  (convertible < declared < native < verified).
* `metric:accuracy@imagenet>=0.9` (`accuracy@imagenet>=90%` too; without a comparison: the metric
  is reported), `latency@t4<50ms`, `measured-latency@t4<50ms`, `memory<4GB`, `memory@t4<8GB`,
  `params<100M`, `params:10M..1B`, `size<=2GB`.
* `base:meta-llama/Llama-2-7b` — descendants of a model (by id, name or alias, any source, any
  depth); `base@finetune:X`, `base@quantized,adapter:X` — whose own link has that relation;
  `base@1:X` — direct children only (`base@finetune,2:X`); `relation:merge` — records with such a link.
* `prefer:format=tflite` (also `runtime=`, `target=`) — rank records that ship it natively above
  declared and convertible ones, without filtering; a runtime/target/format constraint does this too.
* `"exact phrase"`, `A OR B` (either), `-tag:gguf` / `NOT tag:gguf` / `-word` (must not),
  `sort:downloads|likes|modified|relevance`.
"""

FIELD_QUALIFIERS = {
    "task": "task", "tasks": "task", "source": "source", "framework": "framework", "library": "framework",
    "lib": "framework", "format": "format", "fmt": "format", "license": "license", "licence": "license",
    "lic": "license", "language": "language", "lang": "language", "publisher": "publisher", "author": "publisher",
    "org": "publisher", "tag": "tag", "tags": "tag", "access": "access", "relation": "relation", "rel": "relation",
}
OTHER_QUALIFIERS = {
    "runtime": "runtime", "rt": "runtime", "target": "target", "deploy": "target", "hardware": "hardware",
    "hw": "hardware", "status": "status", "evidence": "status", "metric": "metric", "latency": "latency",
    "lat": "latency", "measured-latency": "measured-latency", "memory": "memory", "mem": "memory",
    "ram": "memory", "vram": "memory", "params": "params", "parameters": "params", "param": "params",
    "size": "size", "sort": "sort", "base": "base", "base_model": "base", "base-model": "base", "lineage": "base",
    "prefer": "prefer",
}
QUALIFIERS = {**FIELD_QUALIFIERS, **OTHER_QUALIFIERS}

_QUALIFIER = re.compile(r"^(?P<name>[A-Za-z][A-Za-z0-9_-]*)(?:@(?P<at>[^\s:<>=!]+))?"
                        r"(?P<sep>:|<=|>=|==|!=|<|>|=)(?P<value>.*)$", re.S)
_OPS = ("<=", ">=", "==", "!=", "<", ">", "=")
_NUMBER = re.compile(r"^(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)\s*(?P<unit>[A-Za-zµ%]*)$", re.I)
COUNT_UNITS = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}
BYTE_UNITS = {"": 1.0, "b": 1.0, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "kib": 2.0 ** 10,
              "mib": 2.0 ** 20, "gib": 2.0 ** 30, "tib": 2.0 ** 40, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
TIME_UNITS = {"": 1.0, "ms": 1.0, "msec": 1.0, "s": 1000.0, "sec": 1000.0, "us": 1e-3, "µs": 1e-3}
SORTS = ("relevance", "downloads", "likes", "modified")


class QuerySyntaxError(UserError, ValueError):
    """A qualifier that cannot be read: the offending token, where it starts in the query (0-based
    character offset) and what would have been accepted."""

    def __init__(self, message: str, token: str, position: int, hint: str | None = None) -> None:
        super().__init__(f"{message} (at {position}: {token!r})")
        self.message, self.token, self.position, self.hint = message, token, position, hint

    def to_dict(self) -> dict[str, Any]:
        return {"error": "query_syntax", "message": self.message, "token": self.token, "position": self.position,
                "hint": self.hint}


@dataclass
class _Token:
    text: str
    pos: int
    quoted: bool = False  # a standalone "phrase"
    negate: bool = False
    op: str | None = None  # "OR"
    raw: str = ""  # the exact characters of the query this token spans (with its '-')


@dataclass
class _Item:
    """One term after classification: constraints, or text (words / a phrase)."""

    token: _Token
    constraints: list[Constraint] = field(default_factory=list)
    text: str | None = None
    sort: str | None = None
    status: str | None = None
    prefer: list[Preference] = field(default_factory=list)


@dataclass
class Parsed:
    constraints: list[Constraint] = field(default_factory=list)
    constraint_sources: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)  # unquoted free text, in order
    phrases: list[str] = field(default_factory=list)  # quoted phrases
    exclude_text: list[str] = field(default_factory=list)
    sort: str | None = None
    min_status: str | None = None
    notices: list[str] = field(default_factory=list)
    prefer: list[Preference] = field(default_factory=list)
    prefer_sources: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------
# Tokenizer
# ------------------------------------------------------------------------------------------------
def _tokenize(q: str, notices: list[str]) -> list[_Token]:
    out: list[_Token] = []
    i, n = 0, len(q)
    negate_next: int | None = None
    while i < n:
        c = q[i]
        if c.isspace():
            i += 1
            continue
        if c == "-" and i + 1 < n and not q[i + 1].isspace() and negate_next is None:
            negate_next = i
            i += 1
            continue
        start = negate_next if negate_next is not None else i
        if c == '"':
            end = q.find('"', i + 1)
            if end < 0:
                notices.append(f"unclosed quote at {i}: the rest of the query is read as one phrase")
                end = n
            text = q[i + 1:end].strip()
            if text:
                out.append(_Token(text, start, quoted=True, negate=negate_next is not None, raw=q[start:end + 1]))
            negate_next = None
            i = end + 1
            continue
        j, in_quote = i, False
        while j < n and (in_quote or not q[j].isspace()):
            if q[j] == '"':
                in_quote = not in_quote
            j += 1
        word, w_start, w_end = q[i:j], i, j
        # Parentheses only group (OR binds tighter than AND already): "(a OR b)" reads as "a OR b".
        if not in_quote and (word.startswith("(") or word.endswith(")")):
            stripped = word.strip("()")
            if not stripped:
                negate_next = None
                i = j
                continue
            if _QUALIFIER.match(stripped) or stripped in ("OR", "AND", "NOT"):
                w_start = i + (len(word) - len(word.lstrip("(")))
                w_end = w_start + len(stripped)
                word = stripped
        if in_quote:
            notices.append(f"unclosed quote in {word!r} at {i}")
        if negate_next is None and word in ("OR", "AND", "NOT"):
            out.append(_Token(word, w_start, op=word, raw=word))
        else:
            tok_start = start if negate_next is not None else w_start
            out.append(_Token(word, tok_start, negate=negate_next is not None, raw=q[tok_start:w_end]))
        negate_next = None
        i = j
    return out


# ------------------------------------------------------------------------------------------------
# Values
# ------------------------------------------------------------------------------------------------
def _unquote(v: str) -> str:
    v = v.strip()
    return v[1:-1] if len(v) >= 2 and v[0] == v[-1] == '"' else v.replace('"', "")


def _split_values(v: str) -> list[str]:
    parts, cur, in_q = [], "", False
    for ch in v:
        if ch == '"':
            in_q = not in_q
        elif ch == "," and not in_q:
            parts.append(cur)
            cur = ""
            continue
        cur += ch
    parts.append(cur)
    return [_unquote(p) for p in parts if _unquote(p)]


def _number(text: str, units: dict[str, float], what: str, tok: _Token) -> float:
    m = _NUMBER.match(text.strip().replace("_", ""))
    if not m:
        raise QuerySyntaxError(f"{what}: {text!r} is not a number", tok.raw, tok.pos,
                               hint=f"e.g. {_EXAMPLES[what]}")
    unit = m["unit"].lower()
    if unit not in units:
        raise QuerySyntaxError(f"{what}: unknown unit {m['unit']!r}", tok.raw, tok.pos,
                               hint=f"units: {', '.join(u for u in units if u) or 'none'}; e.g. {_EXAMPLES[what]}")
    value = float(m["num"]) * units[unit]
    if not math.isfinite(value) or abs(value) > MAX_NUMBER:
        # Beyond this no model size, metric or latency makes sense, and the backends' integer and
        # float fields would overflow (params<1e999 was a 500).
        raise QuerySyntaxError(f"{what}: {text!r} is out of range (at most {MAX_NUMBER:.0e})", tok.raw, tok.pos,
                               hint=f"e.g. {_EXAMPLES[what]}")
    return value


# The largest number a qualifier accepts, after units (1e18 parameters/bytes/ms: far beyond any model).
MAX_NUMBER = 1e18

_EXAMPLES = {"params": "params<100M", "size": "size<=2GB", "memory": "memory<4GB", "latency": "latency@t4<50ms",
             "metric": "metric:accuracy@imagenet>=0.9"}


def _op(sep: str, value: str, tok: _Token, what: str) -> tuple[str, str]:
    """The comparison of `name<v`, `name:<v` and `name:v` forms."""
    if sep == ":":
        for op in _OPS:
            if value.startswith(op):
                sep, value = op, value[len(op):]
                break
        else:
            return "=", value
    if sep == "!=":
        raise QuerySyntaxError(f"{what}: '!=' is not supported", tok.raw, tok.pos,
                               hint=f"negate instead: -{what}=value")
    if value[:1] in "<>=!" and value:
        raise QuerySyntaxError(f"{what}: malformed comparison", tok.raw, tok.pos, hint=f"e.g. {_EXAMPLES[what]}")
    return ("=" if sep == "==" else sep), value


def _known(kind: str, name: str, tok: _Token) -> str:
    vocab = get_vocab()
    table = {"runtime": vocab.runtimes, "target": vocab.targets, "hardware": vocab.hardware}[kind]
    hit = {"runtime": vocab.runtime, "target": vocab.target, "hardware": vocab.hardware_profile}[kind](name)
    if hit is None:
        ids = sorted(set(table.values()))
        close = difflib.get_close_matches(name.lower(), list(table), n=1)
        hint = (f"did you mean {table[close[0]]!r}? " if close else "") + f"known: {', '.join(ids)}"
        raise QuerySyntaxError(f"unknown {kind} {name!r}", tok.raw, tok.pos, hint=hint)
    return hit


_C = TypeVar("_C", bound=BaseModel)


def _build(cls: type[_C], tok: _Token, **kw: Any) -> _C:
    try:
        return cls(**kw)
    except ValidationError as e:
        msg = "; ".join(err["msg"].removeprefix("Value error, ") for err in e.errors())
        raise QuerySyntaxError(msg, tok.raw, tok.pos) from None


# ------------------------------------------------------------------------------------------------
# Qualifiers
# ------------------------------------------------------------------------------------------------
def _qualifier(tok: _Token, m: re.Match[str], notices: list[str]) -> _Item | None:
    raw_name, at, sep, value = m["name"], m["at"], m["sep"], m["value"]
    name = QUALIFIERS.get(raw_name.lower())
    vocab = get_vocab()
    if name is None:
        # `accuracy@imagenet>=0.9`: a metric name used as the qualifier.
        if sep != ":" and vocab.is_metric(raw_name):
            return _metric(tok, raw_name, at, sep, value)
        close = difflib.get_close_matches(raw_name.lower(), list(QUALIFIERS), n=1, cutoff=0.75)
        notices.append(f"{raw_name + sep!r} is not a qualifier; {tok.text!r} is read as text"
                       + (f" (did you mean {close[0]}:?)" if close else ""))
        return None
    neg = tok.negate
    if raw_name.lower() in FIELD_QUALIFIERS:
        if at or sep not in (":", "="):
            raise QuerySyntaxError(f"{raw_name}: expected {raw_name}:value", tok.raw, tok.pos,
                                   hint=f"e.g. {raw_name}:value or {raw_name}:a,b")
        values = _split_values(value)
        if not values:
            raise QuerySyntaxError(f"{raw_name}: empty value", tok.raw, tok.pos, hint=f"e.g. {raw_name}:value")
        return _Item(tok, constraints=[_build(FieldFilter, tok, field=name, values=values, negate=neg)])
    if name == "sort":
        v = value.strip().lower()
        if sep != ":" or v not in SORTS:
            raise QuerySyntaxError(f"sort: unknown order {value!r}", tok.raw, tok.pos,
                                   hint=f"one of {', '.join(SORTS)}")
        return _Item(tok, sort=v)
    if name == "status":
        v = value.strip().lower()
        if sep in (">", "<", "<=") or (sep == ":" and v[:1] in "<>"):
            raise QuerySyntaxError("status: only a minimum level can be asked for", tok.raw, tok.pos,
                                   hint="status:native or status>=native")
        v = v.lstrip(">=")
        if v not in STATUS_ORDER:
            raise QuerySyntaxError(f"status: unknown evidence level {value!r}", tok.raw, tok.pos,
                                   hint=f"one of {' < '.join(STATUS_ORDER)}")
        if neg:
            raise QuerySyntaxError("status: a minimum level cannot be negated", tok.raw, tok.pos)
        return _Item(tok, status=v)
    if name in ("runtime", "target", "hardware"):
        if at or sep != ":":
            raise QuerySyntaxError(f"{raw_name}: expected {raw_name}:name", tok.raw, tok.pos,
                                   hint="e.g. runtime:onnxruntime@1.14, target:android, hardware:t4")
        alts = _split_values(value)
        if not alts:
            raise QuerySyntaxError(f"{raw_name}: empty value", tok.raw, tok.pos,
                                   hint="e.g. runtime:onnxruntime@1.14, target:android, hardware:t4")
        built = [_compat(name, a, tok) for a in alts]
        if len(built) == 1:
            return _Item(tok, constraints=[built[0].model_copy(update={"negate": neg})])
        return _Item(tok, constraints=[AnyOf(of=built, negate=neg)])
    if name == "base":
        return _lineage(tok, raw_name, at, sep, value)
    if name == "prefer":
        return _prefer(tok, raw_name, at, sep, value)
    if name == "metric":
        if sep != ":":
            raise QuerySyntaxError("metric: expected metric:name@dataset>=value", tok.raw, tok.pos,
                                   hint=_EXAMPLES["metric"])
        mm = re.match(r"^(?P<m>[^@<>=!]*)(?:@(?P<d>[^<>=!]*))?(?P<rest>.*)$", value, re.S)
        assert mm is not None
        rest = mm["rest"]
        op_sep = next((op for op in _OPS if rest.startswith(op)), None)
        if rest and op_sep is None:
            raise QuerySyntaxError("metric: malformed comparison", tok.raw, tok.pos, hint=_EXAMPLES["metric"])
        return _metric(tok, mm["m"], mm["d"], op_sep or "", rest[len(op_sep or ""):])
    if name in ("latency", "measured-latency", "memory", "params", "size"):
        return _quantity(tok, name, at, sep, value)
    raise AssertionError(name)


def _lineage(tok: _Token, raw_name: str, at: str | None, sep: str, value: str) -> _Item:
    hint = "e.g. base:meta-llama/Llama-2-7b, base@finetune:bert-base-uncased, base@quantized,1:X"
    if sep != ":":
        raise QuerySyntaxError(f"{raw_name}: expected {raw_name}:model", tok.raw, tok.pos, hint=hint)
    base = _unquote(value)
    if not base:
        raise QuerySyntaxError(f"{raw_name}: empty model name", tok.raw, tok.pos, hint=hint)
    relations: list[str] = []
    depth: int | None = None
    for opt in (at or "").split(","):
        opt = opt.strip()
        if not opt:
            continue
        if opt.isdigit():
            depth = int(opt)
            if not 1 <= depth <= 10:
                raise QuerySyntaxError(f"{raw_name}: depth {opt} is out of range 1..10", tok.raw, tok.pos, hint=hint)
            continue
        rel = get_vocab().relation(opt)
        if rel is None:
            known = ", ".join(sorted(set(get_vocab().relations.values())))
            raise QuerySyntaxError(f"{raw_name}: unknown relation {opt!r}", tok.raw, tok.pos,
                                   hint=f"relations: {known}; a number is the depth")
        relations.append(rel)
    c = _build(LineageConstraint, tok, base=base, relations=relations, depth=depth, negate=tok.negate)
    return _Item(tok, constraints=[c])


def _prefer(tok: _Token, raw_name: str, at: str | None, sep: str, value: str) -> _Item:
    hint = "e.g. prefer:format=tflite, prefer:runtime=onnxruntime, prefer:target=browser"
    kind, eq, name = value.partition("=")
    if at or sep != ":" or not eq or kind.strip().lower() not in ("format", "runtime", "target") or not name.strip():
        raise QuerySyntaxError(f"{raw_name}: expected prefer:format=name", tok.raw, tok.pos, hint=hint)
    if tok.negate:
        raise QuerySyntaxError(f"{raw_name}: a preference cannot be negated", tok.raw, tok.pos, hint=hint)
    try:
        pref = Preference.model_validate({"kind": kind.strip().lower(), "value": _unquote(name)})
    except ValidationError as e:
        msg = "; ".join(err["msg"].removeprefix("Value error, ") for err in e.errors())
        raise QuerySyntaxError(msg, tok.raw, tok.pos, hint=hint) from None
    return _Item(tok, prefer=[pref])


def _compat(kind: str, value: str, tok: _Token) -> Constraint:
    if kind == "runtime":
        name, _, version = value.partition("@")
        rid = _known("runtime", _unquote(name), tok)
        and_newer = version.endswith("+")
        version = version.rstrip("+").strip()
        if "@" in value and not version:
            raise QuerySyntaxError("runtime: missing version after '@'", tok.raw, tok.pos,
                                   hint="e.g. runtime:onnxruntime@1.14 or runtime:onnxruntime@1.14+")
        if version and parse_version(version) is None:
            raise QuerySyntaxError(f"runtime: {version!r} is not a version", tok.raw, tok.pos,
                                   hint="e.g. runtime:onnxruntime@1.14 (PEP 440 versions)")
        return _build(RuntimeConstraint, tok, runtime=rid, version=version or None, and_newer=and_newer)
    if kind == "target":
        return _build(TargetConstraint, tok, target=_known("target", value, tok))
    return _build(HardwareConstraint, tok, hardware=_known("hardware", value, tok))


def _metric(tok: _Token, metric: str | None, dataset: str | None, sep: str, value: str) -> _Item:
    metric = (metric or "").strip()
    if not metric:
        raise QuerySyntaxError("metric: missing metric name", tok.raw, tok.pos, hint=_EXAMPLES["metric"])
    if dataset is not None and not dataset.strip():
        raise QuerySyntaxError("metric: missing dataset after '@'", tok.raw, tok.pos, hint=_EXAMPLES["metric"])
    op: str | None = None
    number: float | None = None
    if sep:
        op, value = _op(sep, value, tok, "metric")
        if not value.strip():
            raise QuerySyntaxError("metric: missing value after the comparison", tok.raw, tok.pos,
                                   hint=_EXAMPLES["metric"])
        # "%" only says the number is a percentage; proportion metrics read numbers above 1 that way.
        number = _number(value.strip().rstrip("%"), {"": 1.0}, "metric", tok)
    c = _build(MetricConstraint, tok, metric=_unquote(metric), dataset=_unquote(dataset) if dataset else None,
               op=op, value=number, negate=tok.negate)
    return _Item(tok, constraints=[c])


def _quantity(tok: _Token, name: str, at: str | None, sep: str, value: str) -> _Item:
    what = "latency" if name == "measured-latency" else name
    if at is not None and name in ("params", "size"):
        raise QuerySyntaxError(f"{name}: takes no '@'", tok.raw, tok.pos, hint=_EXAMPLES[what])
    hw = _known("hardware", _unquote(at), tok) if at else None
    units = {"params": COUNT_UNITS, "size": BYTE_UNITS, "memory": BYTE_UNITS, "latency": TIME_UNITS}[what]
    if sep == ":" and ".." in value:
        lo_s, _, hi_s = value.partition("..")
        bounds = [(">=", lo_s), ("<=", hi_s)]
        bounds = [(o, v) for o, v in bounds if v.strip()]
        if not bounds:
            raise QuerySyntaxError(f"{name}: empty range", tok.raw, tok.pos, hint=f"e.g. {name}:10M..1B")
        if tok.negate:
            raise QuerySyntaxError(f"{name}: a range cannot be negated", tok.raw, tok.pos,
                                   hint=f"use -{name}<low and -{name}>high")
    else:
        op, v = _op(sep, value, tok, what)
        if sep == ":" and op == "=" and what in ("latency", "memory"):
            raise QuerySyntaxError(f"{name}: needs a comparison", tok.raw, tok.pos, hint=_EXAMPLES[what])
        if not v.strip():
            raise QuerySyntaxError(f"{name}: missing value", tok.raw, tok.pos, hint=_EXAMPLES[what])
        bounds = [(op, v)]
    out: list[Constraint] = []
    for op, v in bounds:
        num = _number(v, units, what, tok)
        if what == "params":
            out.append(_build(ParamsConstraint, tok, op=op, value=num, negate=tok.negate))
        elif what == "size":
            out.append(_build(SizeConstraint, tok, op=op, value=num, negate=tok.negate))
        elif what == "memory":
            out.append(_build(MemoryConstraint, tok, hardware=hw, op=op, bytes=num, negate=tok.negate))
        else:
            out.append(_build(LatencyConstraint, tok, hardware=hw, op=op, ms=num,
                              measured_only=name == "measured-latency", negate=tok.negate))
    return _Item(tok, constraints=out)


# ------------------------------------------------------------------------------------------------
# Parser
# ------------------------------------------------------------------------------------------------
def _classify(tok: _Token, notices: list[str]) -> _Item:
    if tok.quoted:
        return _Item(tok, text=tok.text)
    m = _QUALIFIER.match(tok.text)
    if m:
        item = _qualifier(tok, m, notices)
        if item is not None:
            return item
    return _Item(tok, text=tok.text)


def parse(q: str) -> Parsed:
    """Read the query text; raises `QuerySyntaxError` for a malformed qualifier."""
    out = Parsed()
    tokens = _tokenize(q, out.notices)
    # Group terms joined by OR; NOT negates the next term; AND is the default and is dropped.
    groups: list[list[_Item]] = []
    join_next = negate_next = False
    for i, tok in enumerate(tokens):
        if tok.op == "OR":
            if not groups or i == len(tokens) - 1 or tokens[i + 1].op == "OR":
                out.notices.append(f"'OR' at {tok.pos} has nothing on one side and is ignored")
                continue
            join_next = True
            continue
        if tok.op == "AND":
            continue
        if tok.op == "NOT":
            negate_next = True
            continue
        if negate_next:
            tok.negate, negate_next = True, False
        item = _classify(tok, out.notices)
        if join_next and groups:
            groups[-1].append(item)
        else:
            groups.append([item])
        join_next = False
    for group in groups:
        if len(group) == 1:
            _take(out, group[0])
            continue
        texts = [it for it in group if it.text is not None]
        if texts and len(texts) != len(group):
            tok = next(it.token for it in group if it.text is None)
            raise QuerySyntaxError("OR cannot join free text with a qualifier", tok.raw, tok.pos,
                                   hint="put the qualifier outside the OR, or OR qualifiers with each other")
        if texts:  # text OR text: any word may match anyway
            for it in group:
                _take(out, it)
            continue
        alts: list[Constraint] = []
        for it in group:
            if it.sort or it.status or it.prefer or len(it.constraints) != 1:
                raise QuerySyntaxError("this qualifier cannot be part of an OR", it.token.raw, it.token.pos)
            alts.append(it.constraints[0])
        out.constraints.append(AnyOf(of=alts))
        out.constraint_sources.append(" OR ".join(_source(it.token) for it in group))
    return out


def _take(out: Parsed, it: _Item) -> None:
    if it.text is not None:
        if it.token.negate:
            out.exclude_text.append(it.text)
        elif it.token.quoted:
            out.phrases.append(it.text)
        else:
            out.words.append(it.text)
        return
    for p in it.prefer:
        out.prefer.append(p)
        out.prefer_sources.append(it.token.raw)
    if it.sort:
        out.sort = it.sort
    if it.status:
        out.min_status = it.status
    for c in it.constraints:
        out.constraints.append(c)
        out.constraint_sources.append(_source(it.token))


def _source(tok: _Token) -> str:
    """The words of the query a constraint came from (NOT-negated terms get their NOT back)."""
    return f"NOT {tok.raw}" if tok.negate and not tok.raw.startswith("-") else tok.raw


# ------------------------------------------------------------------------------------------------
# q (+ natural language) → SearchQuery
# ------------------------------------------------------------------------------------------------
def compile_query(q: str, *, nl: bool = True, base: SearchQuery | None = None,
                  lineage_probe: Callable[[LineageConstraint], bool] | None = None
                  ) -> tuple[SearchQuery, Interpretation]:
    """`q` read with the syntax and, when `nl`, the natural-language constraint reader, merged
    into `base` (the API's other parameters). Raises `QuerySyntaxError`.

    `lineage_probe` (the backend's "does this base have descendants?") lets a lineage phrase the
    natural-language reader found that names nothing in the catalog ("classifier based on ResNet
    ideas") stay free text with a notice instead of emptying the results; `base:` is always kept."""
    from modelport.index.nl_constraints import extract

    base = base or SearchQuery()
    parsed = parse(q)
    interp: list[InterpretedConstraint] = [
        _interpreted(c, s, "syntax", q) for c, s in zip(parsed.constraints, parsed.constraint_sources, strict=True)]
    constraints = list(parsed.constraints)
    prefer = list(parsed.prefer)
    interp += [_interpreted(p, s, "syntax", q) for p, s in zip(parsed.prefer, parsed.prefer_sources, strict=True)]
    notices = list(parsed.notices)
    text = " ".join(parsed.words)
    if nl and text:
        found = extract(text)
        kept_back: list[str] = []
        for c, phrase in found.constraints:
            if isinstance(c, LineageConstraint):
                alternatives = found.lineage_alternatives.get(id(c), [])
                if lineage_probe is None:
                    if found.lineage_rest.get(id(c)):
                        kept_back.append(found.lineage_rest[id(c)])
                else:
                    # The longest reading of the name that the catalog knows ("stable diffusion xl base").
                    for base_name, rest in alternatives or [(c.base, "")]:
                        candidate = c.model_copy(update={"base": base_name})
                        if lineage_probe(candidate):
                            c = candidate
                            kept_back += [rest] if rest else []
                            break
                    else:
                        notices.append(f"no model in the catalog descends from {c.base!r}; {phrase!r} is read as text")
                        kept_back.append(phrase)
                        continue
            constraints.append(c)
            interp.append(_interpreted(c, phrase, "nl", q))
        text = " ".join([found.text, *kept_back]).strip() if kept_back else found.text
        notices += found.notices
        for p, word in found.preferences:
            if all((p.kind, p.value) != (x.kind, x.value) for x in prefer):
                prefer.append(p)
                interp.append(_interpreted(p, word, "nl", q))
    full_text = " ".join([text, *(f'"{p}"' for p in parsed.phrases)]).strip()
    if parsed.min_status:
        src = f"status:{parsed.min_status}"
        interp.append(InterpretedConstraint(syntax=src, source=src, via="syntax", kind="status",
                                            label=f"evidence at least {parsed.min_status}", remove=_without(q, src)))
    query = base.model_copy(update={
        "text": " ".join(x for x in (base.text.strip(), full_text) if x),
        "exclude_text": [*base.exclude_text, *parsed.exclude_text],
        "constraints": [*base.constraints, *constraints],
        "prefer": [*base.prefer, *prefer],
        "min_status": parsed.min_status or base.min_status,
        "sort": parsed.sort or base.sort,
    })
    # model_copy does not validate: re-validate so the merged query obeys the model's limits.
    query = SearchQuery.model_validate(query.model_dump())
    interpretation = Interpretation(q=q, nl=nl, text=full_text, exclude_text=parsed.exclude_text,
                                    constraints=interp, notices=notices)
    return query, interpretation


def _interpreted(c: Constraint | Preference, source: str, via: Literal["syntax", "nl"], q: str
                 ) -> InterpretedConstraint:
    """One part of the reading, reported alike for every kind (what the web page's removable chips
    need): its syntax, the words it came from, a label, and `q` without those words."""
    label = c.label() if hasattr(c, "label") else c.to_syntax()
    kind = "preference" if isinstance(c, Preference) else c.kind
    return InterpretedConstraint(syntax=c.to_syntax(), source=source, via=via, kind=kind,
                                 label=label, remove=_without(q, source))


def _without(q: str, source: str) -> str:
    """`q` with the words of `source` taken out once (spacing between words may differ)."""
    if source and source in q:
        out = q.replace(source, " ", 1)
    else:
        words = [re.escape(w) for w in source.split()]
        m = re.search(r"\s+".join(words), q) if words else None
        out = q[:m.start()] + " " + q[m.end():] if m else q
    return re.sub(r"\s+", " ", out).strip()


__all__ = ["QuerySyntaxError", "Parsed", "parse", "compile_query", "SYNTAX_HELP", "QUALIFIERS"]
