"""Record → search facts: the one place that decides what a record contributes to a search index,
so the embedded backend and Elasticsearch index the same facts and answer constraints alike.

Facts are plain data (`RecordFacts`); the order-preserving integer codes below are how the embedded
backend turns version ranges and metric values into exact range queries: a fact keyed by (runtime,
status, cell) or (metric, dataset) becomes one u64 `key_id << 44 | code`, so a range over one key
never sees another key's values. Latency and memory are one best figure per KB hardware profile.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any

from modelport.index.lineage import link_token, node_keys, ref_keys
from modelport.index.vocab import STATUS_ORDER, Vocab, status_rank
from modelport.schema.record import CompatibilityEntry, ModelRecord, SourceVocabulary
from modelport.schema.versions import VersionRange, parse_version

FACTS_VERSION = 5  # bump when the encoding below changes: the embedded index then rebuilds itself

CODE_BITS = 44
CODE_MAX = (1 << CODE_BITS) - 1
KEY_MAX = (1 << (64 - CODE_BITS)) - 1
ROW_BITS = 28  # sort keys: value << ROW_BITS | (ROW_MASK - row), so ties break by row, ascending
ROW_MASK = (1 << ROW_BITS) - 1
SORT_VALUE_MAX = (1 << (64 - ROW_BITS)) - 1


# ------------------------------------------------------------------------------------------------
# Order-preserving codes
# ------------------------------------------------------------------------------------------------
def float_code(x: float) -> int:
    """44-bit code whose order is the order of the floats: the IEEE-754 bits with the sign folded
    (negatives reversed), truncated to sign + exponent + 32 mantissa bits (≈ 10 significant digits:
    values closer than that compare as equal)."""
    # + 0.0 turns -0.0 into 0.0, which must compare equal to it.
    u: int = struct.unpack(">Q", struct.pack(">d", float(x) + 0.0))[0]
    u = (~u & 0xFFFF_FFFF_FFFF_FFFF) if u >> 63 else u | (1 << 63)
    return u >> (64 - CODE_BITS)


def version_code(text: str) -> int | None:
    """44-bit code ordered like PEP 440 versions: major (14 bits), minor (12), micro (12) and a
    6-bit phase (dev < a < b < rc < final < post). Components beyond micro and pre-release numbers
    past 7 are ignored; components too large for their bits are clamped."""
    v = parse_version(text)
    if v is None:
        return None
    rel = (list(v.release) + [0, 0, 0])[:3]
    major, minor, micro = min(rel[0], (1 << 14) - 1), min(rel[1], 4095), min(rel[2], 4095)
    if v.pre is not None:
        phase = {"a": 8, "b": 16, "rc": 24}[v.pre[0]] + min(v.pre[1], 7)
    elif v.dev is not None:
        phase = 1 + min(v.dev, 6)
    elif v.post is not None:
        phase = 33 + min(v.post, 30)
    else:
        phase = 32
    return (major << 30) | (minor << 18) | (micro << 6) | phase


def range_codes(rng: VersionRange | None) -> tuple[int, int]:
    """(lo, hi) with lo inclusive and hi exclusive, so `rng.contains(v)` ⇔ lo ≤ code(v) < hi.
    An unknown range (None) and open ends cover every version; an open top is hi = CODE_MAX."""
    if rng is None:
        return 0, CODE_MAX
    lo, hi = 0, CODE_MAX
    if rng.min is not None:
        c = version_code(rng.min)
        if c is not None:
            lo = c if rng.min_inclusive else c + 1
    if rng.max is not None:
        c = version_code(rng.max)
        if c is not None:
            hi = min(c + 1 if rng.max_inclusive else c, CODE_MAX - 1)
    return lo, hi


def composite(key_id: int, code: int) -> int:
    return (key_id << CODE_BITS) | code


def sort_key(value: float | int | None, row: int) -> int:
    """A unique u64 per record ordering by value (descending sorts read it high to low) and then by
    row ascending, so keyset cursors over it never skip or repeat a record."""
    v = max(0, min(int(value or 0), SORT_VALUE_MAX))
    return (v << ROW_BITS) | (ROW_MASK - (row & ROW_MASK))


def sort_key_row(key: int) -> int:
    return ROW_MASK - (key & ROW_MASK)


# ------------------------------------------------------------------------------------------------
# Keys of keyed numeric facts
# ------------------------------------------------------------------------------------------------
# Compatibility facts are keyed by a cell's exact status; a query for "at least L" asks for every
# status at or above L (`statuses_from`). That indexes one fact per cell instead of one per level.
def statuses_from(level: str | None) -> list[str]:
    """The statuses that satisfy a minimum evidence level (all of them for None)."""
    r = status_rank(level) if level else 0
    return list(STATUS_ORDER[max(r, 0):])


def runtime_key(runtime: str, status: str, ordinal: int) -> str:
    return f"rt|{runtime}|{status}|{ordinal}"


def runtime_key_prefix(runtime: str, status: str) -> str:
    return f"rt|{runtime}|{status}|"


def metric_key(metric: str, dataset: str | None) -> str:
    return f"m|{metric}|{dataset or '*'}"


def runtime_token(runtime: str, status: str) -> str:
    return f"rt:{runtime}={status}"


def release_token(runtime: str, release: str, status: str, and_newer: bool = False) -> str:
    """A runtime cell whose range contains a KB release (with `and_newer`: and is open at the top).
    The same fact as the cell's (lo, hi) codes, as one term, for the versions the KB knows: a term
    is read lazily inside an intersection, a range over the codes is materialised first."""
    return f"rt:{runtime}@{release}{'+' if and_newer else ''}={status}"


def target_token(target: str, status: str) -> str:
    return f"tg:{target}={status}"


def hardware_token(hardware: str, status: str) -> str:
    return f"hw:{hardware}={status}"


def any_runtime_token(status: str) -> str:
    return f"any={status}"


def format_token(fmt: str, status: str) -> str:
    """The record has `fmt` at this evidence level: an artifact in it (native), the source saying so
    (declared), a runtime cell consuming it at that status (a conversion path: convertible; a check:
    verified)."""
    return f"fmt:{fmt}={status}"


# ------------------------------------------------------------------------------------------------
# Record → facts
# ------------------------------------------------------------------------------------------------
@dataclass
class RecordFacts:
    keywords: dict[str, list[str]]  # filter/facet field → values
    tokens: list[str]  # compatibility tokens: rt:/tg:/hw:<id>=<status>, any=<status>
    runtime_ranges: list[tuple[str, int, int]]  # (runtime key, lo code, hi code)
    metrics: list[tuple[str, float]] = field(default_factory=list)  # (metric key, value)
    # Best (lowest) figures: (hardware or None for "any profile", measured only?, ms) and
    # (hardware or None for "smallest over the profiles it fits", working bytes).
    latencies: list[tuple[str | None, bool, float]] = field(default_factory=list)
    memory: list[tuple[str | None, float]] = field(default_factory=list)
    params: int | None = None
    size: int | None = None
    downloads: int = 0
    likes: int = 0
    modified: int = 0  # epoch seconds
    # Lineage (index/lineage.py): the keys the record's base links name, its links as
    # "relation|key", and the keys it answers to as a base itself.
    lineage_bases: list[str] = field(default_factory=list)
    lineage_links: list[str] = field(default_factory=list)
    lineage_nodes: list[str] = field(default_factory=list)


_LEVELS = {s: tuple(STATUS_ORDER[: i + 1]) for i, s in enumerate(STATUS_ORDER)}


def levels_of(status: str) -> tuple[str, ...]:
    """The evidence levels a cell of this status satisfies (none for failed-verification)."""
    return _LEVELS.get(status, ())


def is_runtime_cell(e: CompatibilityEntry) -> bool:
    return bool(e.runtime) and e.target is None and e.hardware is None


def keyword_values(record: ModelRecord) -> dict[str, list[str]]:
    """The filter-field values of a record (see `search.FILTER_FIELDS`)."""
    runtimes, statuses, targets, hardware = set(), set(), set(), set()
    for c in record.compatibility:
        statuses.update(c.statuses())
        if c.runtime:
            runtimes.add(c.runtime)
        if c.status in _LEVELS:
            if c.hardware:
                hardware.add(c.hardware)
            elif c.target:
                targets.add(c.target)
    # A task or library the source names and the KB does not know is filtered and faceted in the same
    # field as the KB's ids, by its case-folded name: that is how a query names a value the KB does
    # not know (`FieldFilter`), and a facet marks such values as the source's (`mark_source_terms`).
    return {
        "source": [record.source],
        "task": _with_terms(record.tasks, record, "task"),
        "framework": _with_terms(record.frameworks, record, "library"),
        "format": record.formats,
        "license": [record.license] if record.license else [],
        "language": record.languages,
        "publisher": [record.publisher.name] if record.publisher else [],
        "tag": record.keywords,
        "runtime": sorted(runtimes),
        "status": sorted(statuses),
        "access": [record.access],
        "target": sorted(targets),
        "hardware": sorted(hardware),
        "relation": sorted({b.relation for b in record.base_models}),
    }


def _with_terms(ids: list[str], record: ModelRecord, vocabulary: SourceVocabulary) -> list[str]:
    terms = record.source_terms_of(vocabulary)
    return list(dict.fromkeys([*ids, *(t.key for t in terms)])) if terms else ids


def lineage_facts(record: ModelRecord) -> tuple[list[str], list[str], list[str]]:
    """(base keys, "relation|key" links, node keys) of a record; see index/lineage.py."""
    bases: list[str] = []
    links: list[str] = []
    for b in record.base_models:
        for k in ref_keys(b.ref):
            bases.append(k)
            links.append(link_token(b.relation, k))
    nodes = node_keys(record.id, record.local_id, record.aliases if record.source_kind != "mlflow" else ())
    return list(dict.fromkeys(bases)), list(dict.fromkeys(links)), nodes


def format_evidence(record: ModelRecord) -> set[str]:
    """`format_token`s: artifact formats are native, formats the source declares are declared, and a
    runtime cell lends its status to the format it consumes (so a verification shows here too)."""
    out = {format_token(a.format, "native") for a in record.artifacts if a.format}
    out |= {format_token(f, "declared") for f in record.declared_formats}
    for e in record.compatibility:
        if e.format and e.status in _LEVELS and is_runtime_cell(e):
            out.add(format_token(e.format, e.status))
    return out


def _best(pairs: list[tuple[Any, float]]) -> dict[Any, float]:
    best: dict[Any, float] = {}
    for k, v in pairs:
        if not math.isnan(v) and (k not in best or v < best[k]):
            best[k] = v
    return best


_RELEASE_CODES: dict[tuple[str, str], list[tuple[str, int]]] = {}


def _release_codes(vocab: Vocab, runtime: str) -> list[tuple[str, int]]:
    key = (vocab.kb_version, runtime)
    got = _RELEASE_CODES.get(key)
    if got is None:
        got = _RELEASE_CODES[key] = [(r, c) for r in vocab.releases.get(runtime, ())
                                     if (c := version_code(r)) is not None]
    return got


# What one compatibility cell contributes, by the cell's (kind, id, status, range): the same cells
# recur in record after record (enrichment derives them from a few KB tables), and working them
# out (two PEP 440 parses and a scan of the KB releases per runtime cell) was most of the cost of
# a record's facts. Bounded: cleared when it outgrows `_CELL_MEMO_MAX`.
_CellFacts = tuple[tuple[str, ...], int, int]  # (tokens, lo code, hi code); codes unused off runtime cells
_CELL_MEMO: dict[tuple[Any, ...], _CellFacts] = {}
_CELL_MEMO_MAX = 200_000


def _range_key(rng: VersionRange | None) -> tuple[Any, ...] | None:
    return None if rng is None else (rng.min, rng.max, rng.min_inclusive, rng.max_inclusive)


def _runtime_cell(vocab: Vocab, runtime: str, st: str, rng: VersionRange | None) -> _CellFacts:
    lo, hi = range_codes(rng)
    return _runtime_piece(vocab, runtime, st, lo, hi)


def _runtime_piece(vocab: Vocab, runtime: str, st: str, lo: int, hi: int) -> _CellFacts:
    tokens = [runtime_token(runtime, st), any_runtime_token(st)]
    for rel, code in _release_codes(vocab, runtime):
        if lo <= code < hi:
            tokens.append(release_token(runtime, rel, st))
            if hi == CODE_MAX:
                tokens.append(release_token(runtime, rel, st, and_newer=True))
    return tuple(tokens), lo, hi


def cell_pieces(e: CompatibilityEntry) -> list[tuple[str, int, int] | tuple[str, None, None]]:
    """A runtime cell with verified points as (status, lo, hi) pieces, so that a constraint at a
    version answers with the status at that version (`CompatibilityEntry.status_at`): the derived
    range with every failed version cut out, plus one single-version piece per verified version.
    A point without a version (the run failed before it learnt one) is (status, None, None): it
    counts for "at some version", never at a particular one."""
    lo, hi = range_codes(e.version_range)
    failed = sorted({c for p in e.verifications if p.status == "failed-verification" and p.version
                     and (c := version_code(p.version)) is not None})
    verified = {c for p in e.verifications if p.status == "verified" and p.version
                and (c := version_code(p.version)) is not None}
    out: list[tuple[str, int, int] | tuple[str, None, None]] = []
    if e.status in _LEVELS:
        start = lo
        for c in failed:
            if start <= c < hi:
                if start < c:
                    out.append((e.status, start, c))
                start = c + 1
        if start < hi:
            out.append((e.status, start, hi))
    # The latest check at a version decides it (CompatibilityEntry.point_at): a version that failed
    # after it verified stays cut out.
    for c in sorted(verified):
        latest = max((p for p in e.verifications if p.version and version_code(p.version) == c),
                     key=lambda p: p.checked_at or "")
        if latest.status == "verified":
            out.append(("verified", c, c + 1))
    if any(p.status == "verified" and not p.version for p in e.verifications):
        out.append(("verified", None, None))
    return out


def record_facts(record: ModelRecord, vocab: Vocab) -> RecordFacts:
    tokens: set[str] = set()
    ranges: list[tuple[str, int, int]] = []
    ordinals: dict[tuple[str, str], int] = {}
    mem: list[tuple[str | None, float]] = []
    memo = _CELL_MEMO
    kb_version = vocab.kb_version
    for e in record.compatibility:
        st = e.status
        if st not in _LEVELS and not e.verifications:
            continue
        if e.hardware:
            tokens.add(hardware_token(e.hardware, st))
            wb = e.measurements.get("working_bytes")
            if isinstance(wb, int | float):
                mem.append((e.hardware, float(wb)))
                mem.append((None, float(wb)))
        elif e.target:
            tokens.add(target_token(e.target, st))
        elif e.runtime and e.verifications:  # rare (verified records): no memo
            for pst, plo, phi in cell_pieces(e):
                if plo is None or phi is None:
                    tokens.update((runtime_token(e.runtime, pst), any_runtime_token(pst)))
                    continue
                piece = _runtime_piece(vocab, e.runtime, pst, plo, phi)
                n = ordinals.get((e.runtime, pst), 0)
                ordinals[(e.runtime, pst)] = n + 1
                tokens.update(piece[0])
                ranges.append((runtime_key(e.runtime, pst, n), plo, phi))
        elif e.runtime:
            key = (kb_version, e.runtime, st, _range_key(e.version_range))
            cell = memo.get(key)
            if cell is None:
                if len(memo) >= _CELL_MEMO_MAX:
                    memo.clear()
                cell = memo[key] = _runtime_cell(vocab, e.runtime, st, e.version_range)
            # Each runtime cell gets its own ordinal so lo and hi of one cell are matched together.
            n = ordinals.get((e.runtime, st), 0)
            ordinals[(e.runtime, st)] = n + 1
            tokens.update(cell[0])
            ranges.append((runtime_key(e.runtime, st, n), cell[1], cell[2]))

    metrics: set[tuple[str, float]] = set()
    for ev in record.evaluations:
        if ev.value is None or math.isnan(ev.value):
            continue
        m = vocab.metric(ev.metric)
        value = vocab.normalise_metric_value(m, float(ev.value))
        metrics.add((metric_key(m, None), value))
        if ev.dataset:
            metrics.add((metric_key(m, vocab.dataset(ev.dataset)), value))

    lat: list[tuple[tuple[str | None, bool], float]] = []
    for la in record.latencies:
        hw = vocab.hardware_profile(la.hardware) or la.hardware.strip().lower()
        for measured_only in ((False, True) if la.measured else (False,)):
            lat.append(((hw, measured_only), la.latency_ms))
            lat.append(((None, measured_only), la.latency_ms))

    tokens |= format_evidence(record)
    bases, links, nodes = lineage_facts(record)
    return RecordFacts(
        lineage_bases=bases, lineage_links=links, lineage_nodes=nodes,
        keywords=keyword_values(record), tokens=sorted(tokens), runtime_ranges=ranges, metrics=sorted(metrics),
        latencies=[(hw, m, v) for (hw, m), v in _best(lat).items()], memory=list(_best(mem).items()),
        params=record.parameter_count, size=record.size_bytes,
        downloads=record.popularity.downloads or 0, likes=record.popularity.likes or 0,
        modified=int(record.modified.timestamp()) if record.modified else 0)


__all__ = ["FACTS_VERSION", "RecordFacts", "record_facts", "cell_pieces",
           "keyword_values", "float_code", "version_code",
           "range_codes", "composite", "sort_key", "sort_key_row", "levels_of", "statuses_from", "runtime_key",
           "runtime_key_prefix", "metric_key", "runtime_token", "target_token",
           "hardware_token", "any_runtime_token", "format_token", "format_evidence", "lineage_facts",
           "release_token", "CODE_MAX", "KEY_MAX"]
