"""Version ranges from KB facts: which releases of a runtime load an artifact of a format, given the
facts inside it (ONNX opset / IR, Core ML spec version, GGUF quantization type, operators used), the
producing library's version policy, or a pinned requirement; with the evidence for each bound and the
reasons a runtime is ruled out. Also the small evidence and confidence helpers the derivation shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelport.schema.kb import KnowledgeBase, _norm_pkg
from modelport.schema.kb_compat import CONFIDENCE_RANK, CapabilityAxis
from modelport.schema.record import Evidence, Requirement
from modelport.schema.versions import VersionRange, parse_version


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


def _label(kb: KnowledgeBase, runtime: str) -> str:
    return kb.runtimes[runtime].label if runtime in kb.runtimes else runtime


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
