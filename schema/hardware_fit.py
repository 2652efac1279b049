"""Hardware fit: does a model's weight + working memory fit a KB hardware profile, and a roofline
latency estimate per profile. Estimates are labelled (`measured=False`, with their method);
latencies a source measured are never replaced by them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from modelport.schema.cells import Analysis, Cell, artifact_quantization, precision_label, via_evidence
from modelport.schema.kb import KnowledgeBase
from modelport.schema.kb_compat import HardwareProfile
from modelport.schema.record import (
    ESTIMATE_SOURCE,
    CompatibilityEntry,
    Evidence,
    LatencyMeasurement,
    ModelRecord,
    build,
)

DEFAULT_PRECISION = "fp32"  # what an unlabelled checkpoint is assumed to hold


@dataclass
class WeightOption:
    bytes: int
    precision: str | None
    basis: str  # how the number was obtained


@dataclass
class FitResult:
    hardware: str
    runtime: str | None
    status: str | None
    fits: bool | None  # None: nothing to size the model with
    weights_bytes: int | None = None
    working_bytes: int | None = None
    memory_bytes: int | None = None
    precision: str | None = None
    basis: str | None = None
    reason: str = ""
    cell: Cell | None = field(default=None, repr=False)


def _bpw(kb: KnowledgeBase, precision: str | None) -> float:
    return kb.compat.bits_per_weight(precision) or kb.compat.bits_per_weight(DEFAULT_PRECISION) or 32.0


def _artifact_groups(record: ModelRecord, kb: KnowledgeBase) -> dict[str, dict[str | None, int]]:
    """Sized artifacts by format, then by precision label (shards of one variant add up)."""
    groups: dict[str, dict[str | None, int]] = {}
    for a in record.artifacts:
        if a.format and a.size_bytes is not None:
            q = precision_label(artifact_quantization(a, kb), kb)
            by_q = groups.setdefault(a.format, {})
            by_q[q] = by_q.get(q, 0) + a.size_bytes
    return groups


def weight_options(record: ModelRecord, kb: KnowledgeBase, cell: Cell,
                   groups: dict[str, dict[str | None, int]] | None = None) -> list[WeightOption]:
    """Candidate weight sizes for loading `record` through `cell`, one per artifact variant
    (e.g. each GGUF quantization) when files of that format are present, else from the parameter
    count × bytes per weight of the precision."""
    if groups is None:
        groups = _artifact_groups(record, kb)
    opts: list[WeightOption] = []
    if cell.status in ("native", "verified", "declared") and cell.format:
        for q, size in groups.get(cell.format, {}).items():
            opts.append(WeightOption(size, q or cell.precision, f"size of the {cell.format} files"
                                     + (f" ({q})" if q else "")))
    if not opts and record.parameter_count:
        prec = cell.precision or DEFAULT_PRECISION
        bpw = _bpw(kb, prec)
        opts.append(WeightOption(int(record.parameter_count * bpw / 8), prec,
                                 f"{record.parameter_count:,} parameters × {bpw:g} bits ({prec})"))
    if not opts and groups:
        by_fmt = {fmt: sum(by_q.values()) for fmt, by_q in groups.items()}
        fmt, size = max(by_fmt.items(), key=lambda kv: kv[1])
        opts.append(WeightOption(size, cell.precision, f"size of the {fmt} files (source format)"))
    return opts


def _fit_one(h: HardwareProfile, opt: WeightOption, overhead: float) -> tuple[bool | None, int]:
    working = int(opt.bytes * (1 + overhead))
    if h.flash_bytes is not None:
        # Microcontrollers run weights from flash; only the activation arena must fit in SRAM.
        arena = working - opt.bytes
        mem = h.usable_memory_bytes
        return (opt.bytes <= h.flash_bytes and (mem is None or arena <= mem)), working
    mem = h.usable_memory_bytes
    if mem is None:
        return None, working
    return working <= mem, working


def hardware_plan(kb: KnowledgeBase, cells: dict[str, Cell]) -> list[tuple[HardwareProfile, list[Cell]]]:
    """Per hardware profile (by id), the runtime cells that could serve it, best first. Depends on the
    cells alone, so the derivation memoizes it with them."""
    out = []
    for h in sorted(kb.compat.hardware.values(), key=lambda h: h.id):
        served: list[str] = []
        for t in h.targets:
            served += [r for r in kb.compat.runtimes_for_target(t) if r not in served]
        cands = sorted((cells[r] for r in served if r in cells),
                       key=lambda c: (tuple(-k for k in c.key()), c.version_range is None, c.runtime))
        out.append((h, cands))
    return out


def fit_report(record: ModelRecord, kb: KnowledgeBase, cells: dict[str, Cell],
               plan: list[tuple[HardwareProfile, list[Cell]]] | None = None) -> list[FitResult]:
    """Fit of the record on every KB hardware profile, including the ones it does not fit, given its
    runtime cells (`compat.analyze(record, kb).runtimes`)."""
    out: list[FitResult] = []
    overhead = kb.compat.activation_overhead
    groups = _artifact_groups(record, kb)
    opts_of: dict[int, list[WeightOption]] = {}
    for h, cands in (plan if plan is not None else hardware_plan(kb, cells)):
        if not cands:
            out.append(FitResult(h.id, None, None, False,
                                 reason="no runtime of this hardware's targets loads the model"))
            continue
        best: FitResult | None = None
        for cell in cands:
            opts = opts_of.get(id(cell))
            if opts is None:
                opts = opts_of[id(cell)] = weight_options(record, kb, cell, groups)
            if not opts:
                continue
            # Prefer the widest variant that fits (best quality), else report the smallest.
            ranked = sorted(opts, key=lambda o: o.bytes, reverse=True)
            chosen: FitResult | None = None
            for o in ranked:
                fits, working = _fit_one(h, o, overhead)
                res = FitResult(h.id, cell.runtime, cell.status, fits, o.bytes, working,
                                h.usable_memory_bytes, o.precision, o.basis, cell=cell)
                if fits:
                    chosen = res
                    break
                chosen = res
            # Only the best-status runtime that can be sized decides: a weaker (e.g. convertible) cell
            # sized from the parameter count must not make a model "fit" that its real files do not.
            best = chosen
            break
        if best is None:
            out.append(FitResult(h.id, cands[0].runtime, cands[0].status, None,
                                 reason="no parameter count or artifact size to size the model with", cell=cands[0]))
            continue
        if best.fits is False:
            best.reason = (f"needs ~{_gib(best.working_bytes)} with {best.basis}; {h.label} has "
                           f"{_gib(best.memory_bytes)} usable")
        out.append(best)
    return out


@lru_cache(maxsize=8192)
def _gib(n: int | None) -> str:
    # Cached: a record formats the same few sizes once per hardware profile (~13 times).
    if n is None:
        return "?"
    if n < 1 << 20:
        return f"{n / 1024:.0f} KiB"
    return f"{n / (1 << 30):.2f} GiB"


def hardware_entries(record: ModelRecord, kb: KnowledgeBase, cells: dict[str, Cell],
                     plan: list[tuple[HardwareProfile, list[Cell]]] | None = None) -> list[CompatibilityEntry]:
    """Hardware cells: one per profile the model fits, carrying the runtime cell's status."""
    out = []
    heads: dict[tuple[int | None, str | None, int | None], str] = {}  # one sentence head per weight option
    for fr in fit_report(record, kb, cells, plan):
        if not fr.fits or fr.cell is None:
            continue
        h = kb.compat.hardware[fr.hardware]
        cell = fr.cell
        head = heads.get((fr.weights_bytes, fr.basis, fr.working_bytes))
        if head is None:
            head = heads[(fr.weights_bytes, fr.basis, fr.working_bytes)] = (
                f"weights ~{_gib(fr.weights_bytes)} ({fr.basis}); working memory ≈ weights × "
                f"{1 + kb.compat.activation_overhead:g} = {_gib(fr.working_bytes)} ≤ ")
        ev = [build(Evidence, kind="kb", detail=head + _memory_tail(h, fr.memory_bytes),
                    kb_fact=f"hardware/{h.id} memory", kb_version=kb.version), via_evidence(cell, kb)]
        out.append(cell.entry(
            hardware=h.id, target=h.targets[0] if h.targets else None, precision=fr.precision or cell.precision,
            evidence=ev, measurements={**cell.measurements, "weights_bytes": fr.weights_bytes,
                                       "working_bytes": fr.working_bytes, "memory_bytes": fr.memory_bytes,
                                       "fits": True, "basis": fr.basis}))
    return out


@lru_cache(maxsize=1024)
def _memory_tail(h: HardwareProfile, memory_bytes: int | None) -> str:
    return f"{_gib(memory_bytes)} on {h.label}" + (" (class profile, approximate)" if h.approximate else "")


def _flops(record: ModelRecord) -> tuple[float | None, str]:
    for src in (record.source_facts, record.params):
        for key, scale in (("flops", 1.0), ("gflops", 1e9), ("gmacs", 2e9), ("macs", 2.0)):
            v = src.get(key) if isinstance(src, dict) else None
            try:
                if v is not None:
                    return float(v) * scale, f"{key} stated by the source"
            except (TypeError, ValueError):
                continue
    if record.parameter_count:
        return 2.0 * record.parameter_count, ("2 × parameters (one multiply-add per weight per token/sample; "
                                              "a lower bound for conv nets)")
    return None, ""


def _compute_precision(kb: KnowledgeBase, precision: str | None) -> str:
    q = kb.compat.quant_type(precision)
    if q is None:
        return DEFAULT_PRECISION
    if q.kind == "gguf":
        return "fp16"  # GGUF kernels dequantize to fp16/fp32 arithmetic; weight bytes stay quantized
    return q.id


def estimate_latencies(record: ModelRecord, kb: KnowledgeBase, analysis: Analysis) -> list[LatencyMeasurement]:
    """Roofline lower bound per hardware profile the model fits (`analysis`: compat.analyze's), batch 1:
    max(weight bytes / memory bandwidth, FLOPs / dense peak)."""
    flops, flops_basis = _flops(record)
    out = []
    for e in analysis.hardware:
        h = kb.compat.hardware.get(e.hardware or "")
        wb = e.measurements.get("weights_bytes")
        if h is None or not h.bandwidth_gbs or not wb:
            continue
        t_mem = wb / (h.bandwidth_gbs * 1e9)
        cp = _compute_precision(kb, e.precision)
        peak = h.peak_tflops(cp)
        t_comp = flops / (peak * 1e12) if flops and peak else 0.0
        ms = max(t_mem, t_comp) * 1e3
        bound = "memory" if t_mem >= t_comp else "compute"
        method = (f"roofline estimate ({bound}-bound): max(weight bytes {wb:,} / {h.bandwidth_gbs:g} GB/s, "
                  + (f"FLOPs {flops:.3g} [{flops_basis}] / {peak:g} T{'OPS' if cp == 'int8' else 'FLOPS'} {cp}"
                     if flops and peak else "compute term unknown")
                  + "); batch 1, datasheet peaks, no kernel overheads — a lower bound, not a measurement"
                  + (f"; class profile {h.id} is approximate" if h.approximate else ""))
        out.append(build(LatencyMeasurement, hardware=h.id, latency_ms=round(ms, 4), runtime=e.runtime,
                                      precision=e.precision, batch_size=1, measured=False, method=method,
                                      source=ESTIMATE_SOURCE))
    return out


def memory_summary(record: ModelRecord, kb: KnowledgeBase, cells: dict[str, Cell]) -> dict[str, Any]:
    """Per-profile fit, for explanations and the API (`cells`: the record's runtime cells)."""
    return {fr.hardware: {"fits": fr.fits, "runtime": fr.runtime, "weights_bytes": fr.weights_bytes,
                          "working_bytes": fr.working_bytes, "memory_bytes": fr.memory_bytes,
                          "precision": fr.precision, "basis": fr.basis, "reason": fr.reason}
            for fr in fit_report(record, kb, cells)}


__all__ = ["fit_report", "hardware_entries", "estimate_latencies", "memory_summary", "weight_options",
           "hardware_plan", "FitResult", "WeightOption", "ESTIMATE_SOURCE"]

