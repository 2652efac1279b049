"""Explanations of a record's compatibility matrix for people and the API:
`matrix(record)` (runtimes × targets with status, range and evidence per cell, plus hardware fit)
and `explain(record, subject)` (why a runtime / target / hardware cell holds, or why it is not offered).
"""

from __future__ import annotations

from typing import Any

from modelport.schema.compat import Analysis, analyze
from modelport.schema.hardware_fit import memory_summary
from modelport.schema.kb import KnowledgeBase, get_kb
from modelport.schema.record import CompatibilityEntry, ModelRecord
from modelport.schema.versions import VersionRange


def _kb(kb: KnowledgeBase | None) -> KnowledgeBase:
    return kb if kb is not None else get_kb()


def format_range(kb: KnowledgeBase, runtime: str | None, rng: VersionRange | None, *,
                 os_name: str | None = None) -> str:
    """'≥ 1.12', '≥ 1.12, < 2.0', 'build ≥ b1884', 'iOS ≥ 15', or 'any version'."""
    if rng is None or (rng.min is None and rng.max is None):
        return "any version"
    axis = kb.compat.version_axis.get(runtime or "")
    prefix = f"{os_name} " if os_name else ("build " if axis == "build" else "")
    tag = "b" if axis == "build" and not os_name else ""
    parts = []
    if rng.min is not None:
        parts.append(f"{'≥' if rng.min_inclusive else '>'} {tag}{rng.min}")
    if rng.max is not None:
        if rng.min == rng.max and rng.max_inclusive:
            return f"{prefix}= {tag}{rng.min}"
        parts.append(f"{'≤' if rng.max_inclusive else '<'} {tag}{rng.max}")
    return prefix + ", ".join(parts)


def _entries(record: ModelRecord, kb: KnowledgeBase) -> tuple[list[CompatibilityEntry], Analysis]:
    """The stored matrix when the record carries one (what search filtered on), else a fresh one;
    the analysis is always fresh because only it knows what was ruled out."""
    analysis = analyze(record, kb)
    return (record.compatibility or analysis.entries), analysis


def _cell_json(kb: KnowledgeBase, e: CompatibilityEntry, *, rng: str | None = None) -> dict[str, Any]:
    return {
        "status": e.status,
        "runtime": e.runtime,
        "format": e.format,
        "range": rng if rng is not None else format_range(kb, e.runtime, e.version_range),
        "version_range": e.version_range.to_specifier() if e.version_range else None,
        "precision": e.precision,
        "path": list(e.path),
        "hops": e.hops,
        "confidence": e.confidence,
        "evidence": [ev.model_dump(exclude_none=True) for ev in e.evidence],
        "measurements": e.measurements,
    }


def matrix(record: ModelRecord, kb: KnowledgeBase | None = None) -> dict[str, Any]:
    """Runtimes × targets. Each cell is the runtime entry's status/range where the KB says the
    runtime serves the target, `None` where it does not; target and hardware summaries beside it."""
    kb = _kb(kb)
    entries, analysis = _entries(record, kb)
    rt_entries = {e.runtime: e for e in entries if e.runtime and e.target is None and e.hardware is None}
    tgt_entries = {e.target: e for e in entries if e.target and e.hardware is None}
    hw_entries = {e.hardware: e for e in entries if e.hardware}
    targets = sorted(kb.compat.targets)
    cells: dict[str, dict[str, Any]] = {}
    for rid, e in sorted(rt_entries.items()):
        row: dict[str, Any] = {}
        for tid in targets:
            t = kb.compat.targets[tid]
            if t.includes or rid not in t.served_by:
                row[tid] = None
                continue
            min_os = (e.measurements.get("min_os") or {}).get(t.os_version_key or "")
            os_name = (t.os_name or t.os_version_key) if t.os_version_key and min_os else None
            rng = format_range(kb, rid, VersionRange(min=min_os), os_name=os_name) if min_os else None
            row[tid] = {"status": e.status, "range": rng or format_range(kb, rid, e.version_range),
                        "path": list(e.path), "confidence": e.confidence}
        cells[rid] = row
    return {
        "record": record.id,
        "kb_version": kb.version,
        "runtimes": {rid: _cell_json(kb, e) | {"label": kb.runtimes[rid].label if rid in kb.runtimes else rid}
                     for rid, e in sorted(rt_entries.items())},
        "targets": {tid: _cell_json(kb, e, rng=_target_range(kb, e)) | {"label": kb.compat.targets[tid].label}
                    for tid, e in sorted(tgt_entries.items()) if tid in kb.compat.targets},
        "cells": cells,
        "hardware": {hid: _cell_json(kb, e) | {"label": kb.compat.hardware[hid].label}
                     for hid, e in sorted(hw_entries.items()) if hid in kb.compat.hardware},
        "hardware_fit": memory_summary(record, kb),
        "latency_estimates": [lat.model_dump() for lat in record.latencies if not lat.measured],
        "not_offered": {rid: reasons for rid, reasons in sorted(analysis.blocked.items()) if rid not in rt_entries},
    }


def _target_range(kb: KnowledgeBase, e: CompatibilityEntry) -> str:
    t = kb.compat.targets.get(e.target or "")
    if t and t.os_version_key and e.runtime and kb.compat.version_axis.get(e.runtime) == "os":
        return format_range(kb, e.runtime, e.version_range, os_name=t.os_name or t.os_version_key)
    return format_range(kb, e.runtime, e.version_range)


def _runtime_label(kb: KnowledgeBase, rid: str | None) -> str:
    return kb.runtimes[rid].label if rid and rid in kb.runtimes else (rid or "?")


def _chain_text(kb: KnowledgeBase, e: CompatibilityEntry, *, rng_text: str | None = None) -> str:
    """'PyTorch pickle → torch.onnx.export (opset 20, confidence medium) → ONNX Runtime ≥ 1.17'."""
    rng_text = rng_text or format_range(kb, e.runtime, e.version_range)
    tail = f"{_runtime_label(kb, e.runtime)} {rng_text}".strip()
    if e.status == "convertible" and e.measurements.get("hops"):
        hops = e.measurements["hops"]
        first = hops[0]["from"]
        parts = [kb.formats[first].label if first in kb.formats else first]
        for h in hops:
            bits = [f"opset {h['opset']}"] if "opset" in h else []
            bits.append(f"confidence {h['confidence']}")
            parts.append(f"{h['label']} ({', '.join(bits)})")
        return " → ".join(parts + [tail]) + f" [path confidence {e.confidence}]"
    fmt = kb.formats[e.format].label if e.format in kb.formats else (e.format or "model")
    return f"{fmt} → {tail} ({e.status})"


def _why_not(kb: KnowledgeBase, record: ModelRecord, analysis: Analysis, rid: str) -> list[str]:
    reasons = list(analysis.blocked.get(rid, []))
    rt = kb.runtimes.get(rid)
    if rt is None:
        return reasons or [f"{rid} is not a runtime in the KB"]
    have = list(dict.fromkeys(record.formats))
    for fmt in have:
        for conv in kb.compat.withdrawn_from(fmt):
            if set(conv.outputs) & set(rt.consumes):
                reasons.append(f"{conv.label}: {conv.comment or 'withdrawn'}"
                               + (f" (source: {conv.source})" if conv.source else ""))
    if not have:
        reasons.append("the record names no model format, so no runtime can be derived")
    else:
        reasons.append(f"no converter path of ≤ {3} hops leads from "
                       f"{', '.join(have)} to a format {rt.label} loads ({', '.join(rt.consumes)})")
    return reasons


def explain(record: ModelRecord, subject: str, kb: KnowledgeBase | None = None) -> dict[str, Any]:
    """Why `subject` (a runtime, target or hardware id, or 'runtime@target') is or is not offered."""
    kb = _kb(kb)
    entries, analysis = _entries(record, kb)
    runtime, _, target = subject.partition("@")
    if target:
        if runtime not in kb.runtimes or target not in kb.compat.targets:
            return {"subject": subject, "kind": "unknown", "status": None,
                    "text": f"unknown runtime or target in {subject!r}"}
        if runtime not in kb.compat.runtimes_for_target(target):
            return {"subject": subject, "kind": "cell", "status": None,
                    "text": f"{_runtime_label(kb, runtime)} does not serve {kb.compat.targets[target].label} (KB)"}
        subject = runtime
    rt_e = {e.runtime: e for e in entries if e.runtime and e.target is None and e.hardware is None}
    if subject in kb.runtimes:
        e = rt_e.get(subject)
        if e is None:
            reasons = _why_not(kb, record, analysis, subject)
            return {"subject": subject, "kind": "runtime", "status": None,
                    "text": f"{_runtime_label(kb, subject)}: not offered — " + "; ".join(reasons),
                    "reasons": reasons}
        return {"subject": subject, "kind": "runtime", "status": e.status, "text": _chain_text(kb, e),
                "cell": _cell_json(kb, e)}
    if subject in kb.compat.targets:
        t = kb.compat.targets[subject]
        e = next((x for x in entries if x.target == subject and x.hardware is None), None)
        if e is None:
            served = kb.compat.runtimes_for_target(subject)
            reasons = [f"{t.label} is served by {', '.join(served) or 'no runtime'}; none of them is reachable"]
            for rid in served:
                reasons += [f"{rid}: {r}" for r in analysis.blocked.get(rid, [])]
            return {"subject": subject, "kind": "target", "status": None,
                    "text": f"{t.label}: not offered — " + "; ".join(reasons), "reasons": reasons}
        if t.includes:
            members = e.measurements.get("members", {})
            text = f"{t.label}: {e.status} (" + ", ".join(f"{k} via {v}" for k, v in members.items()) + ")"
        else:
            text = f"{t.label}: " + _chain_text(kb, e, rng_text=_target_range(kb, e))
        return {"subject": subject, "kind": "target", "status": e.status, "text": text,
                "cell": _cell_json(kb, e, rng=_target_range(kb, e))}
    if subject in kb.compat.hardware:
        h = kb.compat.hardware[subject]
        fit = memory_summary(record, kb).get(subject, {})
        e = next((x for x in entries if x.hardware == subject), None)
        lats = [lat.model_dump() for lat in record.latencies if lat.hardware == subject]
        if e is None:
            return {"subject": subject, "kind": "hardware", "status": None, "fit": fit, "latencies": lats,
                    "text": f"{h.label}: not offered — {fit.get('reason') or 'does not fit'}"}
        return {"subject": subject, "kind": "hardware", "status": e.status, "fit": fit, "latencies": lats,
                "text": f"{h.label}: fits ({fit.get('basis')}); " + _chain_text(kb, e), "cell": _cell_json(kb, e)}
    return {"subject": subject, "kind": "unknown", "status": None,
            "text": f"{subject!r} is neither a runtime, a target nor a hardware profile in the KB"}


__all__ = ["matrix", "explain", "format_range"]
