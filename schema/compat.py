"""Compatibility derivation: which runtimes, deployment targets and hardware a record runs on,
with version ranges, conversion paths, confidence and the evidence behind each cell.

Everything is read from the knowledge base (`ontology/kb/*.ttl` via `KnowledgeBase.compat`):
runtime release tables give version ranges from facts inside the artifact (ONNX opset / IR,
Core ML spec version, GGUF quantization type), library version policies turn producer versions and
pinned requirements into ranges, the converter graph gives `convertible` cells, and the
target/hardware relations give target and hardware cells.

This module holds the entry points (`analyze`, `derive_compatibility`, `enrich_record`), the memo of
derivations by record signature, verification results as points in their cells, and target cells.
The parts are modules of their own: version ranges from KB facts (runtime_ranges.py), the runtime
cells (cell_derivation.py), the ONNX file facts (onnx_facts.py); `inspect_onnx`, `artifact_range` and
`axis_range` are re-exported here, where callers import them from.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from modelport.schema.cell_derivation import _derive_cells
from modelport.schema.cells import STATUS_RANK, Analysis, Cell, via_evidence
from modelport.schema.hardware_fit import ESTIMATE_SOURCE, estimate_latencies, hardware_entries, hardware_plan
from modelport.schema.kb import KnowledgeBase
from modelport.schema.onnx_facts import inspect_onnx
from modelport.schema.record import (
    Artifact,
    CompatibilityEntry,
    LatencyMeasurement,
    ModelRecord,
    VerifiedPoint,
)
from modelport.schema.runtime_ranges import _ev, _weaker, artifact_range, axis_range
from modelport.schema.versions import VersionRange, parse_version

MAX_HOPS = 3
# Kept from a previous run of `verify_record`: a fresh derivation must not forget them.
KEPT_STATUSES = ("verified", "failed-verification")


@dataclass
class _Core:
    """The part of a derivation that depends only on what `_signature` reads; shared by every record
    with the same signature and never mutated after it is built."""

    cells: dict[str, Cell]
    blocked: dict[str, list[str]]
    targets: list[CompatibilityEntry]
    runtime_entries: list[CompatibilityEntry]
    hardware_plan: list[Any]


_CORE_CACHE: dict[tuple[Any, ...], _Core] = {}
_CORE_CACHE_MAX = 20_000


def _signature(record: ModelRecord, kb: KnowledgeBase, max_hops: int) -> tuple[Any, ...] | None:
    """Every record field the runtime/target derivation reads. Sizes, counts and texts are not in it:
    most models of one library ship the same file names and formats, so at Hub scale a few thousand
    signatures cover millions of records. None when the record carries verification results (rare,
    and they override cells)."""
    if any(e.status in KEPT_STATUSES or e.verifications for e in record.compatibility):
        return None
    arts = tuple((a.path, a.format, a.quantization,
                  tuple(sorted((k, repr(v)) for k, v in a.details.items())) if a.details else ())
                 for a in record.artifacts if a.format)
    code = tuple((c.path, c.framework, tuple(c.layer_types or ()), c.layer_types is None, c.style)
                 for c in record.source_code)
    return (id(kb), kb.version, max_hops, arts, code, tuple(record.declared_formats), tuple(record.frameworks),
            tuple((r.name, r.specifier, r.source_file) for r in record.requirements if r.specifier),
            tuple(record.dtypes), record.architecture, str(record.source_facts.get("model_type") or ""))


def analyze(record: ModelRecord, kb: KnowledgeBase, *, max_hops: int = MAX_HOPS) -> Analysis:
    """Full derivation with the reasons for what is not offered; `derive_compatibility` returns its entries.
    The runtime and target cells are memoized on the record's signature (the derivation is pure in
    it); hardware fit reads sizes and parameter counts and is computed for every record."""
    sig = _signature(record, kb, max_hops)
    core = _CORE_CACHE.get(sig) if sig is not None else None
    if core is None:
        cells, blocked = _derive_cells(record, kb, max_hops)
        core = _Core(cells, blocked, _target_entries(cells, kb), [], hardware_plan(kb, cells))
        rt = sorted(cells.values(), key=lambda c: (-STATUS_RANK[c.status], c.runtime))
        core.runtime_entries = [c.entry() for c in rt]
        if sig is not None:
            if len(_CORE_CACHE) >= _CORE_CACHE_MAX:
                _CORE_CACHE.clear()
            _CORE_CACHE[sig] = core
    if sig is not None:
        return Analysis(runtimes=dict(core.cells), targets=list(core.targets),
                        hardware=hardware_entries(record, kb, core.cells, core.hardware_plan), kept=[],
                        blocked={k: list(v) for k, v in core.blocked.items()}, kb_version=kb.version,
                        _runtime_entries=core.runtime_entries)
    # Verification results from an earlier `modelport verify` are points inside the runtime cell they
    # checked: the cell keeps its derived status and range (a check on 1.32 says nothing against 1.16),
    # and a failed check marks its version only. Targets and hardware keep deriving from the derived
    # cells: a check on this machine's CPU build says nothing about a T4 or a phone.
    cells = dict(core.cells)
    kept: list[CompatibilityEntry] = []
    points: dict[str, list[VerifiedPoint]] = {}
    alone: dict[str, CompatibilityEntry] = {}
    for e in record.compatibility:
        is_rt = bool(e.runtime) and e.target is None and e.hardware is None
        if e.verifications and is_rt:  # a matrix derived before: its points survive a re-derivation
            points.setdefault(e.runtime, []).extend(e.verifications)  # type: ignore[arg-type]
            alone.setdefault(e.runtime, e)  # type: ignore[arg-type]
            continue
        if e.status not in KEPT_STATUSES:
            continue
        if not is_rt:
            kept.append(e)
            continue
        points.setdefault(e.runtime, []).append(verified_point(e))  # type: ignore[arg-type]
        alone.setdefault(e.runtime, e)  # type: ignore[arg-type]
    for rid, pts in points.items():
        pts = list({p.model_dump_json(): p for p in pts}.values())
        base = cells.get(rid)
        if base is None:  # nothing derived to sit in: the check alone makes the cell, at its version
            e = alone[rid]
            status = e.status if e.status in KEPT_STATUSES else pts[-1].status
            rng = e.version_range if e.status in KEPT_STATUSES else None
            if rng is None and pts[-1].version:
                rng = VersionRange(min=pts[-1].version, max=pts[-1].version, max_inclusive=True)
            cells[rid] = Cell(runtime=rid, status=status, format=e.format, version_range=rng,
                              precision=e.precision, path=list(e.path), confidence=e.confidence,
                              evidence=list(e.evidence), points=pts)
        else:  # core cells are shared between records: copy, never mutate
            cells[rid] = replace(base, points=pts, evidence=list(base.evidence), measurements=dict(base.measurements))
    return Analysis(runtimes=cells, targets=list(core.targets),
                    hardware=hardware_entries(record, kb, core.cells, core.hardware_plan),
                    kept=kept, blocked={k: list(v) for k, v in core.blocked.items()}, kb_version=kb.version)


def verified_point(e: CompatibilityEntry) -> VerifiedPoint:
    """A stored verification result (a `verified` / `failed-verification` entry written by
    schema/verify.py, with what verify_job adds) as a point inside its runtime cell."""
    m = e.measurements
    version = m.get("onnxruntime_version") if e.runtime == "onnxruntime" else m.get("runtime_version")
    if not version and e.version_range and e.version_range.min and e.version_range.min == e.version_range.max:
        version = e.version_range.min
    tol = m.get("tolerance") if isinstance(m.get("tolerance"), dict) else {}
    diff = m.get("max_abs_diff")
    return VerifiedPoint(
        status=e.status,  # type: ignore[arg-type]
        version=str(version) if version and parse_version(str(version)) else None,
        format=e.format, path=list(e.path), platform=m.get("platform"),
        max_abs_diff=float(diff) if isinstance(diff, int | float) else None,
        tolerance={k: float(v) for k, v in tol.items() if isinstance(v, int | float)},
        checked_at=m.get("verified_at"), artifacts=m.get("artifacts"), error=m.get("error"),
        evidence=list(e.evidence), measurements=dict(m))


def runtime_cells(record: ModelRecord, kb: KnowledgeBase) -> list[CompatibilityEntry]:
    """The runtime cells alone (what a search hit shows), without the hardware fit: from the memoized
    derivation when the record's signature has been seen, which makes it a dictionary lookup."""
    sig = _signature(record, kb, MAX_HOPS)
    core = _CORE_CACHE.get(sig) if sig is not None else None
    if core is not None:
        return list(core.runtime_entries)
    return [e for e in analyze(record, kb).entries if e.runtime and e.target is None and e.hardware is None]


def _target_entries(cells: dict[str, Cell], kb: KnowledgeBase) -> list[CompatibilityEntry]:
    out: dict[str, CompatibilityEntry] = {}
    for t in sorted(kb.compat.targets.values(), key=lambda t: t.id):
        if t.includes:
            continue
        cands = [cells[r] for r in t.served_by if r in cells]
        if not cands:
            continue
        # Ties go to the cell with a version range, then alphabetically, so the choice is stable.
        best = min(cands, key=lambda c: (tuple(-k for k in c.key()), c.version_range is None, c.runtime))
        rng = best.version_range
        ev = [_ev("kb", f"{t.label} is served by {kb.runtimes[best.runtime].label}", kb,
                  kb_fact=f"target/{t.id} servedBy runtime/{best.runtime}"), via_evidence(best, kb)]
        if t.os_version_key and best.os_min.get(t.os_version_key):
            rng = VersionRange(min=best.os_min[t.os_version_key])
            ev.append(_ev("kb", f"{t.label} version range is the OS version ({t.os_version_key})", kb,
                          kb_fact=f"target/{t.id} osVersionKey {t.os_version_key}"))
        alts = [f"{c.runtime}:{c.status}" for c in sorted(
            cands, key=lambda c: (tuple(-k for k in c.key()), c.version_range is None, c.runtime))]
        out[t.id] = best.entry(target=t.id, version_range=rng, evidence=ev,
                               measurements={**best.measurements, "alternatives": alts})
    # Umbrella targets ("mobile") need every member; their status is the weakest member's.
    for t in sorted(kb.compat.targets.values(), key=lambda t: t.id):
        if not t.includes:
            continue
        members = [out.get(m) for m in t.includes]
        if not members or any(m is None for m in members):
            continue
        ms = [m for m in members if m is not None]
        worst = min(ms, key=lambda m: (STATUS_RANK[m.status], -len(m.path)))
        same_rt = len({m.runtime for m in ms}) == 1
        ev = [_ev("kb", f"{t.label} includes " + ", ".join(m.target or "" for m in ms) + "; "
                  + "; ".join(f"{m.target}: {m.runtime} {m.status}" for m in ms), kb,
                  kb_fact=f"target/{t.id} includes")]
        conf = None
        for m in ms:
            conf = _weaker(conf, m.confidence)
        out[t.id] = CompatibilityEntry(
            target=t.id, runtime=worst.runtime if same_rt else None, format=worst.format if same_rt else None,
            version_range=worst.version_range if same_rt else None, precision=worst.precision,
            status=worst.status, path=list(worst.path), confidence=conf, evidence=ev,
            measurements={"members": {m.target: f"{m.runtime}:{m.status}" for m in ms}})
    return [out[k] for k in sorted(out)]


def derive_compatibility(record: ModelRecord, kb: KnowledgeBase) -> list[CompatibilityEntry]:
    """The compatibility matrix of a record: runtime cells (target and hardware unset), then
    target cells, then hardware-fit cells, then kept verification results."""
    return analyze(record, kb).entries


def artifact_signature(artifacts: Iterable[Artifact]) -> str:
    """What a verification checked: the artifacts' paths and content hashes. A result stored under
    one signature holds for a record only while its artifacts still have it (Hub repos change
    their files; MLflow versions do not)."""
    return json.dumps(sorted({(a.path, a.sha256 or "") for a in artifacts}))


def enrich_record(record: ModelRecord, kb: KnowledgeBase) -> ModelRecord:
    """What the pipeline runs after normalize: the compatibility matrix plus roofline latency
    estimates (measured latencies from the source are kept untouched)."""
    analysis = analyze(record, kb)
    record.compatibility = analysis.entries
    measured: list[LatencyMeasurement] = [
        lat for lat in record.latencies if lat.measured or lat.source != ESTIMATE_SOURCE]
    record.latencies = measured + estimate_latencies(record, kb, analysis)
    return record


def runtime_entries(entries: Iterable[CompatibilityEntry]) -> dict[str, CompatibilityEntry]:
    return {e.runtime: e for e in entries if e.runtime and e.target is None and e.hardware is None}


__all__ = ["verified_point",
           "derive_compatibility", "analyze", "Analysis", "Cell", "inspect_onnx",
           "artifact_range", "axis_range", "enrich_record", "artifact_signature", "runtime_entries", "runtime_cells",
           "MAX_HOPS", "STATUS_RANK"]
