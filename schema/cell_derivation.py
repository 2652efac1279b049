"""The runtime cells of a record: native (an artifact in a format the runtime loads), declared (the
source states a format or framework), inherited by runtimes that track another's releases, and
convertible (breadth-first over the KB's converter graph), each ranged by runtime_ranges.py; and the
reasons runtimes were ruled out. schema/compat.py memoizes it and builds targets and hardware on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelport.schema.cells import STATUS_RANK, Cell, artifact_quantization, precision_label
from modelport.schema.kb import KnowledgeBase, _norm_pkg
from modelport.schema.kb_compat import CONFIDENCE_RANK, Converter
from modelport.schema.record import Evidence, ModelRecord, Requirement
from modelport.schema.runtime_ranges import (
    RangeResult,
    _capability_ranges,
    _ev,
    _intersect,
    _label,
    _pin_for,
    _weaker,
    artifact_range,
    pin_range,
)
from modelport.schema.versions import VersionRange, parse_version


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
