"""Explanations of a record's compatibility matrix for people and the API:
`matrix(record)` (runtimes × targets with status, range and evidence per cell, plus hardware fit)
and `explain(record, subject)` (why a runtime / target / hardware cell holds, or why it is not offered).
"""

from __future__ import annotations

from typing import Any

from modelport.schema.compat import Analysis, analyze
from modelport.schema.hardware_fit import memory_summary
from modelport.schema.kb import KnowledgeBase, get_kb
from modelport.schema.record import CompatibilityEntry, ModelRecord, VerifiedPoint
from modelport.schema.versions import VersionRange, parse_version


def _kb(kb: KnowledgeBase | None) -> KnowledgeBase:
    return kb if kb is not None else get_kb()


def format_range(kb: KnowledgeBase, runtime: str | None, rng: VersionRange | None, *,
                 os_name: str | None = None) -> str:
    """'≥ 1.12', '≥ 1.12, < 2.0', 'build ≥ b1884', 'iOS ≥ 15', or 'any version'."""
    if rng is None or (rng.min is None and rng.max is None):
        return "any version"
    axis = kb.compat.version_axis.get(runtime or "")
    tracked = kb.compat.version_tracks.get(runtime or "")
    # A serving runtime's range is in the versions of the framework it embeds ("scikit-learn ≥ 1.2").
    on = f"{kb.runtimes[tracked].label} " if tracked in kb.runtimes and not os_name else ""
    prefix = f"{os_name} " if os_name else ("build " if axis == "build" else on)
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
        "verifications": [_point_json(p) for p in e.verifications],
    }


def _point_json(p: VerifiedPoint) -> dict[str, Any]:
    return p.model_dump(exclude={"measurements"}, exclude_none=True) | {"text": point_text(p)}


def point_text(p: VerifiedPoint) -> str:
    """'verified at 1.32.0 (Linux x86_64, CPUExecutionProvider): max |Δ| 3e-07 within atol 0.0001 +
    rtol 0.001, 2026-12-02'."""
    head = "verified" if p.status == "verified" else "failed verification"
    head += f" at {p.version or 'an unknown version'}"
    bits = [p.platform] if p.platform else []
    if p.max_abs_diff is not None:
        tol = " + ".join(f"{k} {v:g}" for k, v in sorted(p.tolerance.items()))
        bits.append(f"max |Δ| {p.max_abs_diff:.3g}" + (f" ({'within' if p.status == 'verified' else 'against'} {tol})"
                                                      if tol else ""))
    if p.error:
        bits.append(p.error)
    if p.checked_at:
        bits.append(p.checked_at[:10])
    return head + (f": {'; '.join(bits)}" if bits else "")


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
                        "path": list(e.path), "confidence": e.confidence,
                        "verified_at": [p.version for p in e.verifications if p.status == "verified" and p.version]}
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
        "hardware_fit": memory_summary(record, kb, analysis.runtimes),
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
    """The chain, then the checks inside the cell ('…; verified at 1.32.0: max |Δ| …')."""
    text = _chain(kb, e, rng_text=rng_text)
    return "; ".join([text, *(point_text(p) for p in e.verifications)])


def _chain(kb: KnowledgeBase, e: CompatibilityEntry, *, rng_text: str | None = None) -> str:
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


def _at_version(kb: KnowledgeBase, e: CompatibilityEntry, version: str) -> dict[str, Any]:
    """Status, and why, of a runtime cell at one version: a check at that version decides, else
    the derived range."""
    label = f"{_runtime_label(kb, e.runtime)} {version}"
    point = e.point_at(version)
    status = e.status_at(version)
    if point is not None:
        why = point_text(point) + f"; derived: {e.status} {format_range(kb, e.runtime, e.version_range)}"
    elif status is not None:
        why = f"{e.status}: {version} is inside {format_range(kb, e.runtime, e.version_range)}"
        others = [p.version for p in e.verifications if p.version]
        if others:
            why += f" (checked at {', '.join(others)} only)"
    else:
        why = f"not offered at {version}: outside {format_range(kb, e.runtime, e.version_range)}"
    return {"version": version, "status": status, "text": f"{label}: {why}"}


def _why_not(kb: KnowledgeBase, record: ModelRecord, analysis: Analysis, rid: str) -> list[str]:
    reasons = list(analysis.blocked.get(rid, []))
    rt = kb.runtimes.get(rid)
    if rt is None:
        return reasons or [f"{rid} is not a runtime in the KB"]
    if rt.deprecated:
        nxt = kb.runtimes.get(rt.succeeded_by or "")
        return reasons + [f"{rt.label} is deprecated" + (f"; its successor is {nxt.label}" if nxt else "")
                          + (f" ({rt.source})" if rt.source else "")]
    have = list(dict.fromkeys(record.formats))
    for fmt in have:
        for conv in kb.compat.withdrawn_from(fmt):
            if set(conv.outputs) & set(rt.consumes):
                reasons.append(f"{conv.label}: {conv.comment or 'withdrawn'}"
                               + (f" (source: {conv.source})" if conv.source else ""))
    if not have:
        reasons.append("the record names no model format, so no runtime can be derived")
    elif set(have) & set(rt.consumes) and reasons:
        pass  # a format it loads is here: the reasons above are why the cell was ruled out
    else:
        reasons.append(f"no converter path of ≤ {3} hops leads from "
                       f"{', '.join(have)} to a format {rt.label} loads ({', '.join(rt.consumes)})")
    return reasons


def explain(record: ModelRecord, subject: str, kb: KnowledgeBase | None = None, *,
            version: str | None = None) -> dict[str, Any]:
    """Why `subject` (a runtime, target or hardware id, or 'runtime@target') is or is not offered;
    with `version`, the status of a runtime at that version (`CompatibilityEntry.status_at`)."""
    kb = _kb(kb)
    if version is not None and parse_version(version) is None:
        return {"subject": subject, "kind": "invalid", "status": None, "text": f"{version!r} is not a version"}
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
        out = {"subject": subject, "kind": "runtime", "status": e.status, "statuses": e.statuses(),
               "text": _chain_text(kb, e), "cell": _cell_json(kb, e)}
        if version is not None:
            out.update(_at_version(kb, e, version))
        return out
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
        fit = memory_summary(record, kb, analysis.runtimes).get(subject, {})
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
