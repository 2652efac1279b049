"""Compatibility derivation: which runtimes, deployment targets and hardware a record runs on,
with version ranges, conversion paths, confidence and the evidence behind each cell.

Everything is read from the knowledge base (`ontology/kb/*.ttl` via `KnowledgeBase.compat`):
runtime release tables give version ranges from facts inside the artifact (ONNX opset / IR,
Core ML spec version, GGUF quantization type), library version policies turn producer versions and
pinned requirements into ranges, the converter graph gives `convertible` cells, and the
target/hardware relations give target and hardware cells.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from modelport.schema.cells import (
    STATUS_RANK,
    Analysis,
    Cell,
    artifact_quantization,
    precision_label,
    via_evidence,
)
from modelport.schema.hardware_fit import ESTIMATE_SOURCE, estimate_latencies, hardware_entries, hardware_plan
from modelport.schema.kb import KnowledgeBase, _norm_pkg
from modelport.schema.kb_compat import CONFIDENCE_RANK, CapabilityAxis, Converter
from modelport.schema.record import (
    Artifact,
    CompatibilityEntry,
    Evidence,
    LatencyMeasurement,
    ModelRecord,
    Requirement,
    VerifiedPoint,
)
from modelport.schema.versions import VersionRange, parse_version

MAX_HOPS = 3
# Kept from a previous run of `verify_record`: a fresh derivation must not forget them.
KEPT_STATUSES = ("verified", "failed-verification")


# ------------------------------------------------------------------------------------------------
# Facts from artifacts
# ------------------------------------------------------------------------------------------------
def inspect_onnx(path: str | Path) -> dict[str, Any]:
    """Facts an `.onnx` file declares about itself, for Artifact.details: the default-domain
    opset ("opset"), the ONNX-ML opset ("ml_opset"), the IR version, the producer and the
    operator types used. External weight files are not read."""
    import onnx  # optional dependency (extra "verify"); only the harvester / verify job need it

    model = onnx.load(str(path), load_external_data=False)
    opsets = {(imp.domain or "ai.onnx"): int(imp.version) for imp in model.opset_import}
    out: dict[str, Any] = {"ir_version": int(model.ir_version), "opsets": opsets}
    if "ai.onnx" in opsets:
        out["opset"] = opsets["ai.onnx"]
    if "ai.onnx.ml" in opsets:
        out["ml_opset"] = opsets["ai.onnx.ml"]
    if model.producer_name:
        out["producer_name"] = model.producer_name
    if model.producer_version:
        out["producer_version"] = model.producer_version
    out["op_types"] = sorted({n.op_type for n in model.graph.node})
    out["inputs"] = [i.name for i in model.graph.input]
    out["outputs"] = [o.name for o in model.graph.output]
    return out


def _ev(kind: str, detail: str, kb: KnowledgeBase, *, artifact: str | None = None,
        kb_fact: str | None = None) -> Evidence:
    return Evidence(kind=kind, detail=detail, artifact=artifact, kb_fact=kb_fact,  # type: ignore[arg-type]
                    kb_version=kb.version if kb_fact else None)


def _intersect(a: VersionRange | None, b: VersionRange | None) -> VersionRange | None:
    if a is None:
        return b
    if b is None:
        return a
    lo, lo_inc = a.min, a.min_inclusive
    if b.min is not None and (lo is None or parse_version(b.min) > parse_version(lo)):  # type: ignore[operator]
        lo, lo_inc = b.min, b.min_inclusive
    hi, hi_inc = a.max, a.max_inclusive
    if b.max is not None and (hi is None or parse_version(b.max) < parse_version(hi)):  # type: ignore[operator]
        hi, hi_inc = b.max, b.max_inclusive
    return VersionRange(min=lo, max=hi, min_inclusive=lo_inc, max_inclusive=hi_inc)


def _weaker(a: str | None, b: str | None) -> str | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if CONFIDENCE_RANK.get(a, 2) <= CONFIDENCE_RANK.get(b, 2) else b


# ------------------------------------------------------------------------------------------------
# Version ranges from KB facts
# ------------------------------------------------------------------------------------------------
@dataclass
class RangeResult:
    version_range: VersionRange | None = None
    evidence: list[Evidence] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    confidence: str | None = None
    os_min: dict[str, str] = field(default_factory=dict)

    def narrow(self, rng: VersionRange | None) -> None:
        self.version_range = _intersect(self.version_range, rng)


def axis_range(kb: KnowledgeBase, axis: CapabilityAxis, value: float) -> tuple[VersionRange | None, list[Any]]:
    """Releases of the axis' runtime that accept `value`: [first accepting, first later one that
    does not). Returns (None, []) when no release in the KB accepts it."""
    rels = [r for r in kb.compat.releases_of(axis.runtime) if r.knows(axis)]
    first = next((r for r in rels if r.accepts(axis, value)), None)
    if first is None:
        return None, []
    after = rels[rels.index(first) + 1:]
    stop = next((r for r in after if not r.accepts(axis, value)), None)
    return VersionRange(min=first.version, max=stop.version if stop else None), [first] + ([stop] if stop else [])


def _capability_ranges(kb: KnowledgeBase, runtime: str, fmt: str, details: dict[str, Any],
                       res: RangeResult, artifact: str | None) -> bool:
    """Apply every capability axis of (runtime, fmt) whose detail the artifact states."""
    used = False
    for axis in kb.compat.axes_for(runtime, fmt):
        raw = details.get(axis.detail_key)
        try:
            value = float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        rng, rels = axis_range(kb, axis, value)
        shown = int(value) if value.is_integer() else value
        label = kb.runtimes[runtime].label if runtime in kb.runtimes else runtime
        if rng is None:
            known = [r.version for r in kb.compat.releases_of(runtime) if r.knows(axis)]
            res.blocked.append(f"{axis.label} {shown} is accepted by no {label} release in the KB"
                               + (f" (newest known: {known[-1]})" if known else ""))
            continue
        used = True
        res.narrow(rng)
        first = rels[0]
        res.confidence = _weaker(res.confidence, first.confidence)
        detail = f"{axis.label} {shown} → {label} {rng}: first release accepting it is {first.version}"
        if len(rels) > 1:
            detail += f", release {rels[1].version} no longer does"
        if first.source:
            detail += f" (source: {first.source})"
        res.evidence.append(_ev("kb", detail, kb, artifact=artifact,
                                kb_fact=f"release/{first.iri.rsplit('/', 1)[-1]} {axis.max_cap or axis.min_cap}"))
    return used


def _format_requirements(kb: KnowledgeBase, runtime: str, fmt: str, details: dict[str, Any],
                         res: RangeResult, artifact: str | None) -> bool:
    used = False
    for req in kb.compat.requirements:
        if req.format != fmt or req.runtime != runtime or not req.applies(details):
            continue
        if req.unsupported:
            res.blocked.append(f"{req.detail_key}={req.detail_value} is not loadable by {runtime}"
                               + (f" ({req.source})" if req.source else ""))
            continue
        if req.min_version:
            used = True
            res.narrow(VersionRange(min=req.min_version))
            res.evidence.append(_ev("kb", f"{fmt} needs {runtime} ≥ {req.min_version}"
                                    + (f": {req.comment}" if req.comment else ""), kb, artifact=artifact,
                                    kb_fact=f"requirement/{req.id}"))
    return used


def _coreml_os(kb: KnowledgeBase, fmt: str, details: dict[str, Any], res: RangeResult,
               artifact: str | None) -> None:
    raw = details.get("coreml_spec_version", details.get("spec_version"))
    try:
        spec = int(raw) if raw is not None else kb.compat.format_min_spec.get(fmt)
    except (TypeError, ValueError):
        spec = kb.compat.format_min_spec.get(fmt)
    if spec is None:
        return
    known = kb.compat.coreml_specs.get(spec) or next(
        (kb.compat.coreml_specs[s] for s in sorted(kb.compat.coreml_specs, reverse=True) if s <= spec), None)
    if known is None:
        return
    res.os_min = dict(known.min_os)
    how = "stated in the model" if raw is not None else f"minimum for {fmt}"
    res.evidence.append(_ev("kb", f"Core ML specification version {spec} ({how}) needs "
                            + ", ".join(f"{k[3:]} ≥ {v}" for k, v in known.min_os.items()), kb,
                            artifact=artifact, kb_fact=f"coreml-spec/{known.spec_version}"))


def _gguf_support(kb: KnowledgeBase, runtime: str, quant: str | None, res: RangeResult,
                  artifact: str | None) -> None:
    if quant is None:
        res.evidence.append(_ev("kb", "GGUF quantization type not stated; llama.cpp range left open", kb,
                                artifact=artifact))
        return
    q = kb.compat.quant_type(quant)
    if q is None:
        res.confidence = _weaker(res.confidence, "medium")
        res.evidence.append(_ev("kb", f"GGUF type {quant} is not in the KB; range left open", kb, artifact=artifact))
        return
    chain, seen = [q], {q.id}
    while chain[-1].base and chain[-1].base not in seen and chain[-1].base in kb.compat.quant_types:
        seen.add(chain[-1].base)
        chain.append(kb.compat.quant_types[chain[-1].base])
    if any(runtime in c.unsupported_by for c in chain):
        res.blocked.append(f"GGUF type {q.label} is no longer loadable by {runtime}")
        return
    for c in chain:
        if c.min_runtime_version:
            res.narrow(VersionRange(min=c.min_runtime_version))
            res.evidence.append(_ev("kb", f"GGUF type {c.label} loads in {runtime} build ≥ {c.min_runtime_version}",
                                    kb, artifact=artifact, kb_fact=f"quant/{c.id} minRuntimeVersion"))
            return
        if c.introduced_by:
            res.confidence = _weaker(res.confidence, "medium")
            when = f" ({c.introduced_on})" if c.introduced_on else ""
            res.evidence.append(_ev("kb", f"GGUF type {c.label} was introduced by {c.introduced_by}{when}; "
                                    "its first build is not in the KB, so the range is left open", kb,
                                    artifact=artifact, kb_fact=f"quant/{c.id} introducedBy"))
            return
        if runtime in c.supported_by:
            res.evidence.append(_ev("kb", f"GGUF type {c.label} loads in every GGUF-capable {runtime} build",
                                    kb, artifact=artifact, kb_fact=f"quant/{c.id} supportedBy runtime/{runtime}"))
            return


def _producer_policy(kb: KnowledgeBase, runtime: str, details: dict[str, Any], res: RangeResult,
                     artifact: str | None) -> bool:
    """A producing-library version stated in the artifact (MLflow flavour keys such as
    "sklearn_version") under the runtime's KB version policy."""
    base = kb.compat.version_tracks.get(runtime, runtime)
    rt = kb.runtimes.get(base)
    if rt is None:
        return False
    for lib in kb.libraries.values():
        key = lib.flavor_version_key
        if lib.native_runtime != base or not key or key not in details:
            continue
        rng = VersionRange.with_policy(str(details[key]), rt.version_policy)
        if rng is None:
            continue
        res.narrow(rng)
        res.evidence.append(_ev("kb", f"produced with {lib.label} {details[key]}; {rt.label} policy "
                                f"'{rt.version_policy}' gives {rng}", kb, artifact=artifact,
                                kb_fact=f"runtime/{base} versionPolicy {rt.version_policy}"))
        return True
    return False


def artifact_range(kb: KnowledgeBase, runtime: str, fmt: str, details: dict[str, Any], *,
                   quant: str | None = None, artifact: str | None = None) -> RangeResult:
    """Range of `runtime` versions that load an artifact of `fmt` with these details. A runtime that
    tracks another's versions (TF Serving, Triton's framework backends, KServe's servers) is ranged
    on that runtime's axes: what a Triton ONNX Runtime backend loads is what its ONNX Runtime loads."""
    res = RangeResult()
    _op_coverage(kb, runtime, fmt, details, res, artifact)
    runtime = kb.compat.version_tracks.get(runtime, runtime)
    cap = _capability_ranges(kb, runtime, fmt, details, res, artifact)
    cap = _format_requirements(kb, runtime, fmt, details, res, artifact) or cap
    if kb.compat.version_axis.get(runtime) == "os":
        _coreml_os(kb, fmt, details, res, artifact)
    if fmt == "gguf":
        _gguf_support(kb, runtime, quant, res, artifact)
    if not cap:
        _producer_policy(kb, runtime, details, res, artifact)
    return res


def _op_coverage(kb: KnowledgeBase, runtime: str, fmt: str, details: dict[str, Any], res: RangeResult,
                 artifact: str | None) -> None:
    """A runtime that implements a subset of a format's operators (TFLite Micro): every operator the
    artifact uses must be in it; when the artifact's operators are not known, the cell stands on
    the format alone, at low confidence."""
    for cov in kb.compat.op_coverage:
        if cov.runtime != runtime or cov.format != fmt:
            continue
        ops = details.get(cov.detail_key)
        label = _label(kb, runtime)
        if not isinstance(ops, list | tuple) or not ops:
            res.confidence = _weaker(res.confidence, "low")
            res.evidence.append(_ev("kb", f"{label} implements only some {fmt} operators and this artifact's "
                                    "operators are not known", kb, artifact=artifact,
                                    kb_fact=f"op-coverage/{runtime}/{fmt}"))
            continue
        missing = sorted({str(o) for o in ops} - cov.ops)
        if missing:
            res.blocked.append(f"{label} does not implement {', '.join(missing[:12])}"
                               + (f" and {len(missing) - 12} more" if len(missing) > 12 else "")
                               + (f" (source: {cov.source})" if cov.source else ""))
        else:
            res.evidence.append(_ev("kb", f"every operator of the artifact ({len(set(ops))}) is in {label}'s "
                                    "op coverage", kb, artifact=artifact, kb_fact=f"op-coverage/{runtime}/{fmt}"))


def _pin_for(kb: KnowledgeBase, runtime: str, pins: dict[str, Requirement]) -> Requirement | None:
    base = kb.compat.version_tracks.get(runtime, runtime)
    rt = kb.runtimes.get(base)
    if rt is None or not rt.python_package:
        return None
    return pins.get(_norm_pkg(rt.python_package))


def pin_range(kb: KnowledgeBase, runtime: str, pin: Requirement) -> VersionRange | None:
    base = kb.compat.version_tracks.get(runtime, runtime)
    rt = kb.runtimes[base]
    spec = pin.specifier.strip()
    exact = spec.startswith("==") and "*" not in spec and "," not in spec
    return VersionRange.with_policy(spec[2:], rt.version_policy) if exact else VersionRange.from_specifier(spec)


# ------------------------------------------------------------------------------------------------
# The derivation
# ------------------------------------------------------------------------------------------------
def _record_precision(record: ModelRecord, kb: KnowledgeBase) -> str | None:
    for d in record.dtypes:
        p = precision_label(d, kb)
        if p:
            return p
    return None


def _add(cells: dict[str, Cell], cell: Cell) -> None:
    cur = cells.get(cell.runtime)
    if cur is None:
        cells[cell.runtime] = cell
    elif cell.key() > cur.key():
        cell.evidence = cell.evidence + [e for e in cur.evidence if e not in cell.evidence]
        cells[cell.runtime] = cell
    else:
        cur.evidence += [e for e in cell.evidence if e not in cur.evidence]
        # Two artifacts of one format (e.g. several GGUF files): the runtime loads the most
        # permissive one, so keep the wider lower bound.
        if cell.status == cur.status and cell.format == cur.format and cur.version_range and \
                cell.version_range is None:
            cur.version_range = None


def _label(kb: KnowledgeBase, runtime: str) -> str:
    return kb.runtimes[runtime].label if runtime in kb.runtimes else runtime


def _framework_major_ok(kb: KnowledgeBase, cell: Cell, blocked: dict[str, list[str]]) -> bool:
    """Serving runtimes that take models of some major versions of their framework only (KServe's
    supportedModelFormats): the range is narrowed to them, or the cell is ruled out when it is
    outside them. The range is on the framework's version axis (mp:versionTracks)."""
    majors = kb.compat.framework_majors.get(cell.runtime)
    if majors is None:
        return True
    base = kb.compat.version_tracks.get(cell.runtime, cell.runtime)
    span = VersionRange(min=str(majors[0]), max=str(majors[1] + 1))
    got = _intersect(cell.version_range, span)
    lo = parse_version(got.min) if got and got.min else None
    hi = parse_version(got.max) if got and got.max else None
    if lo is not None and hi is not None and lo >= hi:
        blocked.setdefault(cell.runtime, []).append(
            f"{_label(kb, cell.runtime)} takes {_label(kb, base)} {majors[0]}"
            + (f"–{majors[1]}" if majors[1] != majors[0] else "") + f".x models; this one is {cell.version_range}")
        return False
    cell.version_range = got
    cell.evidence.append(_ev("kb", f"{_label(kb, cell.runtime)} takes {_label(kb, base)} models of major "
                             f"version {majors[0]}" + (f" to {majors[1]}" if majors[1] != majors[0] else ""),
                             kb, kb_fact=f"runtime/{cell.runtime} frameworkMajor"))
    return True


def _library_ok(conv: Converter, frameworks: set[str]) -> bool:
    return not conv.requires_libraries or bool(set(conv.requires_libraries) & frameworks)


def _tool_version(conv: Converter, pins: dict[str, Requirement]) -> str | None:
    if not conv.tool_package:
        return None
    pin = pins.get(_norm_pkg(conv.tool_package))
    if pin and pin.specifier.startswith("==") and "*" not in pin.specifier:
        return pin.specifier[2:]
    return None


@dataclass
class _Node:
    fmt: str
    path: list[str]
    confidence: str | None
    details: dict[str, Any]
    prev: tuple[str, dict[str, Any]] | None  # the format (and its details) the last converter read
    origin: str | None  # artifact path or "declared"
    evidence: list[Evidence]
    hops: list[dict[str, Any]] = field(default_factory=list)


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


def _derive_cells(record: ModelRecord, kb: KnowledgeBase,
                  max_hops: int) -> tuple[dict[str, Cell], dict[str, list[str]]]:
    """Runtime cells (native, declared, convertible) and the reasons runtimes were ruled out."""
    cells: dict[str, Cell] = {}
    blocked: dict[str, list[str]] = {}
    pins = {_norm_pkg(r.name): r for r in record.requirements if r.specifier}
    frameworks = set(record.frameworks)
    rec_precision = _record_precision(record, kb)
    arch_names = [record.architecture or "", str(record.source_facts.get("model_type") or "")]

    def finish(cell: Cell, res: RangeResult) -> Cell | None:
        libs = kb.compat.runtime_requires.get(cell.runtime)
        if libs and frameworks and not (frameworks & set(libs)):
            blocked.setdefault(cell.runtime, []).append(
                f"{cell.runtime} loads only models of {', '.join(libs)}; this one is {', '.join(sorted(frameworks))}")
            return None
        if res.blocked:
            blocked.setdefault(cell.runtime, []).extend(res.blocked)
            if cell.status != "declared":
                return None
        cell.version_range = res.version_range
        cell.range_kind = "capability" if res.version_range is not None else None
        cell.evidence += res.evidence
        cell.confidence = _weaker(cell.confidence, res.confidence)
        cell.os_min = res.os_min
        if res.os_min:
            cell.measurements["min_os"] = dict(res.os_min)
        # A pinned requirement bounds the range only where no fact inside the artifact does: a
        # producer pinned onnxruntime 1.17 does not stop an opset-17 file running on 1.12.
        pin = _pin_for(kb, cell.runtime, pins)
        if pin is not None and cell.status != "convertible":
            base = kb.compat.version_tracks.get(cell.runtime, cell.runtime)
            policy = kb.runtimes[base].version_policy
            ev = _ev("requirement", f"{pin.name}{pin.specifier} in {pin.source_file or 'requirements'} "
                     f"(policy {policy})", kb, kb_fact=f"runtime/{base} versionPolicy {policy}")
            cell.evidence.append(ev)
            if cell.version_range is None:
                cell.version_range = pin_range(kb, cell.runtime, pin)
                cell.range_kind = "pin"
        arch = kb.compat.architecture_support(cell.runtime, arch_names)
        if arch is None and cell.runtime in kb.compat.arch_gated:
            blocked.setdefault(cell.runtime, []).append(
                f"{_label(kb, cell.runtime)} serves only the architectures the KB lists for it; this model's "
                + (f"is {', '.join(n for n in arch_names if n)}" if any(arch_names) else "is not stated"))
            return None
        if arch is not None and arch.min_version:
            cell.version_range = _intersect(cell.version_range, VersionRange(min=arch.min_version))
            cell.evidence.append(_ev("kb", f"architecture {arch.model_type} needs {cell.runtime} ≥ {arch.min_version}",
                                     kb, kb_fact=f"architecture/{arch.id}"))
        elif arch is not None:
            cell.confidence = _weaker(cell.confidence, "medium")
            cell.evidence.append(_ev("kb", f"architecture {arch.model_type} is listed for {cell.runtime} "
                                     "(since which release is not in the KB)", kb, kb_fact=f"architecture/{arch.id}"))
        if not _framework_major_ok(kb, cell, blocked):
            return None
        return cell

    # -- native: an artifact in a format the runtime loads -----------------------------------------
    start: list[_Node] = []
    for art in record.artifacts:
        if not art.format or art.format not in kb.formats:
            continue
        quant = artifact_quantization(art, kb)
        precision = precision_label(quant, kb) or precision_label(art.details.get("precision"), kb) or rec_precision
        label = kb.formats[art.format].label
        start.append(_Node(art.format, [], None, dict(art.details), None, art.path, [
            _ev("artifact", f"{art.path} is {label}", kb, artifact=art.path)]))
        for rt in kb.runtimes_for_format(art.format):
            cell = Cell(runtime=rt.id, status="native", format=art.format, precision=precision, confidence="high",
                        evidence=[_ev("artifact", f"{art.path} is {label}", kb, artifact=art.path,
                                      kb_fact=f"runtime/{rt.id} consumes format/{art.format}")])
            res = artifact_range(kb, rt.id, art.format, art.details, quant=quant, artifact=art.path)
            done = finish(cell, res)
            if done is not None:
                _add(cells, done)

    # -- model source code: where code migration between frameworks starts (never from weights) -----
    for code in record.source_code:
        cf = kb.compat.code_frameworks.get(code.framework or "")
        if cf is None or cf.code_format not in kb.formats:
            continue
        what = f"{code.path} is {kb.formats[cf.code_format].label}" + (
            f" ({code.style}; layers {', '.join(code.layer_types)})" if code.layer_types else " (not read)")
        start.append(_Node(cf.code_format, [], None, {"layer_types": code.layer_types, "style": code.style},
                           None, code.path, [_ev("artifact", what, kb, artifact=code.path)]))

    # -- declared: the source states a format, a framework or a pinned runtime ----------------------
    for fmt in record.declared_formats:
        if fmt not in kb.formats:
            continue
        start.append(_Node(fmt, [], None, {}, None, "declared", [
            _ev("declaration", f"the source declares format {fmt}", kb)]))
        for rt in kb.runtimes_for_format(fmt):
            cell = Cell(runtime=rt.id, status="declared", format=fmt, precision=rec_precision, confidence="medium",
                        evidence=[_ev("declaration", f"the source declares format {fmt}", kb,
                                      kb_fact=f"runtime/{rt.id} consumes format/{fmt}")])
            done = finish(cell, artifact_range(kb, rt.id, fmt, {}))
            if done is not None:
                _add(cells, done)
    for lib_id in record.frameworks:
        lib = kb.libraries.get(lib_id)
        if lib is None or not lib.native_runtime or lib.native_runtime not in kb.runtimes:
            continue
        cell = Cell(runtime=lib.native_runtime, status="declared", precision=rec_precision, confidence="medium",
                    evidence=[_ev("declaration", f"built with {lib.label}", kb,
                                  kb_fact=f"library/{lib.id} nativeRuntime runtime/{lib.native_runtime}")])
        done = finish(cell, RangeResult())
        if done is not None:
            _add(cells, done)
    # A pinned package alone is not a claim that the model runs on that runtime (MLflow pins whatever
    # the logging process imported, torch beside a scikit-learn model included): pins only bound
    # the ranges of cells established above.
    # Runtimes that follow another's release numbers (TF Serving ↔ TensorFlow) inherit its cells.
    for rid, base in kb.compat.version_tracks.items():
        src = cells.get(base)
        rt = kb.runtimes.get(rid)
        if src is None or rt is None or rid in cells or rid in blocked or rt.deprecated:
            continue
        if src.format and src.format not in rt.consumes:
            continue
        if src.format is None:
            continue
        clone = Cell(runtime=rid, status=src.status, format=src.format, version_range=src.version_range,
                     range_kind=src.range_kind, precision=src.precision, path=list(src.path),
                     confidence=src.confidence, evidence=list(src.evidence) + [_ev(
                         "kb", f"{rt.label} releases follow {kb.runtimes[base].label} release numbers", kb,
                         kb_fact=f"runtime/{rid} versionTracks runtime/{base}")])
        if _framework_major_ok(kb, clone, blocked):
            cells[rid] = clone

    # -- convertible: breadth-first over the converter graph ----------------------------------------
    have = {n.fmt for n in start}
    best_path: dict[str, _Node] = {}
    frontier = start
    for _hop in range(max_hops):
        nxt: list[_Node] = []
        for node in frontier:
            for conv in kb.compat.converters_from(node.fmt):
                if not _library_ok(conv, frameworks):
                    continue
                ok, why = conv.covers(node.details)
                if not ok:  # code migration outside the tool's coverage: say so where it would lead
                    for out in conv.outputs:
                        for rt in kb.runtimes_for_format(out):
                            blocked.setdefault(rt.id, []).append(f"{conv.label} is not offered: {why}")
                    continue
                if conv.id in node.path:
                    continue
                for out in conv.outputs:
                    if out == node.fmt:
                        continue
                    details: dict[str, Any] = {}
                    ev = list(node.evidence)
                    note = f"{conv.label} ({conv.confidence} confidence)"
                    tool_v = _tool_version(conv, pins)
                    dflt = conv.default_opset(tool_v) if out == "onnx" else None
                    if dflt is not None:
                        details["opset"] = dflt.opset
                        note += (f", writes opset {dflt.opset} by default in {conv.tool_package} "
                                 f"{tool_v or dflt.tool_version}")
                        if conv.min_opset is not None:
                            note += f" (selectable down to {conv.min_opset})"
                    if conv.output_spec_version is not None:
                        details["coreml_spec_version"] = conv.output_spec_version
                    if conv.min_tool_version:
                        note += f", needs {conv.tool_package} ≥ {conv.min_tool_version}"
                    if conv.requires_precision:
                        note += f", input must be {conv.requires_precision}-quantized"
                    if conv.validates_outputs:
                        note += ", validates outputs against the original"
                    if conv.kind == "code-migration":
                        note += (f"; migrates the network's code ({node.details.get('style')}), not its trained "
                                 "weights")
                    if conv.evaluation:
                        note += f"; evaluation: {conv.evaluation}"
                    ev.append(_ev("converter", f"{node.fmt} → {out} via {note}", kb,
                                  kb_fact=f"converter/{conv.id}"))
                    hop = {"converter": conv.id, "label": conv.label, "from": node.fmt, "to": out,
                           "confidence": conv.confidence}
                    if dflt is not None:
                        hop["opset"] = dflt.opset
                    cand = _Node(out, node.path + [conv.id], _weaker(node.confidence, conv.confidence),
                                 details, (node.fmt, node.details), node.origin, ev, node.hops + [hop])
                    if out in have:
                        continue
                    cur = best_path.get(out)
                    if cur is None or (len(cand.path), -CONFIDENCE_RANK[cand.confidence or "low"]) < \
                            (len(cur.path), -CONFIDENCE_RANK[cur.confidence or "low"]):
                        best_path[out] = cand
                        nxt.append(cand)
        frontier = nxt
    for fmt, node in sorted(best_path.items()):
        for rt in kb.runtimes_for_format(fmt):
            if rt.id in cells and STATUS_RANK[cells[rt.id].status] >= STATUS_RANK["declared"]:
                continue
            cell = Cell(runtime=rt.id, status="convertible", format=fmt, path=list(node.path),
                        confidence=node.confidence, precision=rec_precision,
                        measurements={"hops": node.hops, "source": node.origin},
                        evidence=list(node.evidence) + [_ev("kb", f"{rt.label} loads {kb.formats[fmt].label}", kb,
                                                            kb_fact=f"runtime/{rt.id} consumes format/{fmt}")])
            res = artifact_range(kb, rt.id, fmt, node.details)
            if node.prev is not None:  # e.g. TensorRT's opset range applies to the ONNX it is built from
                prev_fmt, prev_details = node.prev
                if prev_fmt != fmt and kb.compat.axes_for(rt.id, prev_fmt):
                    _capability_ranges(kb, rt.id, prev_fmt, prev_details, res, None)
            done = finish(cell, res)
            if done is not None:
                _add(cells, done)

    return cells, blocked


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
