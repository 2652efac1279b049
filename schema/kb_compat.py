"""The compatibility part of the knowledge base: runtime release tables, converters, deployment
targets, hardware profiles and quantization types, parsed from `ontology/kb/*.ttl`.

`load_kb` attaches a `CompatKB` as `KnowledgeBase.compat`; the derivation in `compat.py` reads
only these tables, so a new runtime release, converter or target is an edit of Turtle data.
Somewhat over 500 lines: it is one table per KB class plus the one loader that fills them, and
splitting the loader from its tables would only add an import hop.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from rdflib import RDF, RDFS, Graph, Literal, Namespace, URIRef
from rdflib.term import Node

from modelport.schema.versions import parse_version

MP = Namespace("https://w3id.org/modelport/ns#")
DCTERMS = Namespace("http://purl.org/dc/terms/")
GIB = 1 << 30

CONFIDENCE_RANK = {"low": 0, "medium": 1, "high": 2}


def _local(iri: Node | str) -> str:
    return str(iri).rsplit("/", 1)[-1]


def _py(v: Node | None) -> Any:
    if v is None:
        return None
    if isinstance(v, Literal):
        x = v.toPython()
        return float(x) if isinstance(x, Decimal) else x
    return str(v)


def _one(g: Graph, s: Node, p: URIRef) -> Any:
    return _py(g.value(s, p))


def _strs(g: Graph, s: Node, p: URIRef) -> tuple[str, ...]:
    return tuple(sorted(str(o) for o in g.objects(s, p)))


def _ids(g: Graph, s: Node, p: URIRef) -> tuple[str, ...]:
    return tuple(sorted(_local(o) for o in g.objects(s, p)))


def _source(g: Graph, s: Node) -> str | None:
    src = g.value(s, DCTERMS.source) or g.value(s, RDFS.seeAlso) or g.value(s, RDFS.comment)
    return str(src) if src is not None else None


def _float(v: Any) -> float | None:
    return float(v) if v is not None else None


def version_key(v: str) -> Any:
    """Sort key for runtime versions; non-PEP 440 strings sort first rather than crash."""
    pv = parse_version(v)
    return (1, pv) if pv is not None else (0, v)


@dataclass(frozen=True)
class RuntimeRelease:
    """One release of a runtime with its numeric capabilities (maxOpset, maxIrVersion, …)."""

    runtime: str
    version: str
    caps: dict[str, float]
    iri: str
    confidence: str = "high"
    source: str | None = None

    def accepts(self, axis: CapabilityAxis, value: float) -> bool:
        lo = self.caps.get(axis.min_cap) if axis.min_cap else None
        hi = self.caps.get(axis.max_cap) if axis.max_cap else None
        return (lo is None or value >= lo) and (hi is None or value <= hi)

    def knows(self, axis: CapabilityAxis) -> bool:
        return bool((axis.max_cap and axis.max_cap in self.caps) or (axis.min_cap and axis.min_cap in self.caps))


@dataclass(frozen=True)
class CapabilityAxis:
    """Artifact.details[detail_key] checked against release capabilities min_cap/max_cap."""

    id: str
    runtime: str
    format: str
    detail_key: str
    min_cap: str | None
    max_cap: str | None
    label: str


@dataclass(frozen=True)
class OpsetDefault:
    tool_version: str
    opset: int
    source: str | None


@dataclass(frozen=True)
class Converter:
    id: str
    label: str
    tool_package: str | None
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    confidence: str
    min_tool_version: str | None = None
    requires_libraries: tuple[str, ...] = ()
    requires_precision: str | None = None
    min_opset: int | None = None
    output_spec_version: int | None = None
    validates_outputs: bool = False
    withdrawn: bool = False
    comment: str | None = None
    source: str | None = None
    opset_defaults: tuple[OpsetDefault, ...] = ()
    kind: str = "export"  # "export" (a tool that writes the artifact) | "code-migration"
    layer_coverage: frozenset[str] = frozenset()  # code migration: the layer types it translates
    styles: tuple[str, ...] = ()  # code migration: "sequential", "subclassing"
    evaluation: str | None = None  # the published evaluation behind its confidence

    def covers(self, details: dict[str, Any]) -> tuple[bool, str | None]:
        """Whether a code node (details from schema/code_scan.py) is in this migration tool's
        coverage; (False, reason) when not."""
        if self.kind != "code-migration":
            return True, None
        layers = details.get("layer_types")
        if not layers:
            return False, "its layer types are not known (the code was not read)"
        missing = sorted(set(layers) - self.layer_coverage)
        if missing:
            return False, f"layer types outside {self.label}'s coverage: {', '.join(missing)}"
        style = details.get("style")
        if self.styles and style not in self.styles:
            return False, f"model style {style or 'unknown'} is not one {self.label} reads ({', '.join(self.styles)})"
        return True, None

    def default_opset(self, tool_version: str | None) -> OpsetDefault | None:
        """The opset this converter writes by default: for the given tool version when known,
        else for the newest tool release in the KB (what a user installing it today gets)."""
        rows = sorted(self.opset_defaults, key=lambda r: version_key(r.tool_version))
        if not rows:
            return None
        tv = parse_version(tool_version) if tool_version else None
        if tv is None:
            return rows[-1]
        chosen = None
        for r in rows:
            rv = parse_version(r.tool_version)
            if rv is not None and rv <= tv:
                chosen = r
        return chosen or rows[0]


@dataclass(frozen=True)
class Target:
    id: str
    label: str
    served_by: tuple[str, ...]
    includes: tuple[str, ...] = ()
    os_version_key: str | None = None
    comment: str | None = None
    os_name: str | None = None  # "iOS", "macOS": how ranges on the OS axis are displayed


@dataclass(frozen=True)
class HardwareProfile:
    id: str
    label: str
    kind: str
    targets: tuple[str, ...]
    memory_bytes: int | None
    bandwidth_gbs: float | None
    fp32_tflops: float | None
    fp16_tflops: float | None
    int8_tops: float | None
    usable_memory_fraction: float = 1.0
    flash_bytes: int | None = None
    approximate: bool = False
    source: str | None = None

    @property
    def usable_memory_bytes(self) -> int | None:
        if self.memory_bytes is None:
            return None
        return int(self.memory_bytes * self.usable_memory_fraction)

    def peak_tflops(self, precision: str | None) -> float | None:
        """Dense peak for a precision, falling back to the next wider unit the device has."""
        if precision in ("int8", "int4"):
            return self.int8_tops or self.fp16_tflops or self.fp32_tflops
        if precision in ("fp16", "bf16"):
            return self.fp16_tflops or self.fp32_tflops
        return self.fp32_tflops or self.fp16_tflops


@dataclass(frozen=True)
class QuantType:
    """A precision (fp16, int8) or a GGUF tensor / file type (Q4_K_M) with its bits per weight."""

    id: str
    label: str
    kind: str  # "precision" | "gguf"
    bits_per_weight: float | None
    base: str | None = None
    precision: str | None = None
    aliases: tuple[str, ...] = ()
    supported_by: tuple[str, ...] = ()
    unsupported_by: tuple[str, ...] = ()
    min_runtime_version: str | None = None
    introduced_by: str | None = None
    introduced_on: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class CoreMLSpec:
    spec_version: int
    min_os: dict[str, str]  # {"minIOS": "15", "minMacOS": "12"}
    source: str | None


@dataclass(frozen=True)
class FormatRequirement:
    id: str
    format: str
    runtime: str
    min_version: str | None
    detail_key: str | None = None
    detail_value: Any = None
    unsupported: bool = False
    comment: str | None = None
    source: str | None = None

    def applies(self, details: dict[str, Any]) -> bool:
        if self.detail_key is None:
            return True
        return self.detail_key in details and str(details[self.detail_key]) == str(self.detail_value)


@dataclass(frozen=True)
class ArchitectureSupport:
    id: str
    runtime: str
    model_type: str
    classes: tuple[str, ...]
    min_version: str | None  # None: the source lists the architecture without saying since when
    source: str | None


@dataclass(frozen=True)
class OpCoverage:
    """The operators a runtime implements for a format (TFLite Micro's op resolver): an artifact
    whose `detail_key` lists an operator outside `ops` does not run there."""

    runtime: str
    format: str
    detail_key: str
    ops: frozenset[str]
    source: str | None


@dataclass(frozen=True)
class CodeFramework:
    """How model source code of one framework reads (schema/code_scan.py): its import root, the
    namespaces its layer classes live in, the base classes of subclassed models and its
    Sequential container."""

    id: str  # KB library id: "pytorch", "tensorflow"
    import_root: str
    layer_namespaces: tuple[str, ...]
    module_bases: tuple[str, ...]
    sequential: tuple[str, ...]
    code_format: str  # the KB format of this framework's model code


@dataclass
class CompatKB:
    releases: dict[str, list[RuntimeRelease]] = field(default_factory=dict)
    axes: list[CapabilityAxis] = field(default_factory=list)
    converters: dict[str, Converter] = field(default_factory=dict)
    targets: dict[str, Target] = field(default_factory=dict)
    hardware: dict[str, HardwareProfile] = field(default_factory=dict)
    quant_types: dict[str, QuantType] = field(default_factory=dict)
    coreml_specs: dict[int, CoreMLSpec] = field(default_factory=dict)
    format_min_spec: dict[str, int] = field(default_factory=dict)
    requirements: list[FormatRequirement] = field(default_factory=list)
    architectures: list[ArchitectureSupport] = field(default_factory=list)
    version_tracks: dict[str, str] = field(default_factory=dict)  # runtime → runtime whose versions it shares
    version_axis: dict[str, str] = field(default_factory=dict)  # runtime → "os" | "build"
    runtime_requires: dict[str, tuple[str, ...]] = field(default_factory=dict)  # runtime → library ids
    # Serving runtimes that take models of a framework's major versions only (KServe's
    # supportedModelFormats): runtime → (min major, max major).
    framework_majors: dict[str, tuple[int, int]] = field(default_factory=dict)
    arch_gated: frozenset[str] = frozenset()  # runtimes that serve only the architectures listed for them
    op_coverage: list[OpCoverage] = field(default_factory=list)
    code_frameworks: dict[str, CodeFramework] = field(default_factory=dict)
    activation_overhead: float = 0.2
    fit_policy_source: str | None = None
    _quant_alias: dict[str, str] = field(default_factory=dict)

    # -- lookups ----------------------------------------------------------------------------------
    def releases_of(self, runtime: str) -> list[RuntimeRelease]:
        return self.releases.get(runtime, [])

    def axes_for(self, runtime: str, fmt: str) -> list[CapabilityAxis]:
        return [a for a in self.axes if a.runtime == runtime and a.format == fmt]

    def converters_from(self, fmt: str) -> list[Converter]:
        return [c for c in self.converters.values() if fmt in c.inputs and not c.withdrawn]

    def withdrawn_from(self, fmt: str) -> list[Converter]:
        return [c for c in self.converters.values() if fmt in c.inputs and c.withdrawn]

    def target_members(self, target: str) -> tuple[str, ...]:
        t = self.targets.get(target)
        return t.includes if t else ()

    def runtimes_for_target(self, target: str) -> tuple[str, ...]:
        t = self.targets.get(target)
        if t is None:
            return ()
        out = list(t.served_by)
        for m in t.includes:
            out += [r for r in self.runtimes_for_target(m) if r not in out]
        return tuple(out)

    def targets_for_runtime(self, runtime: str) -> list[str]:
        return [t.id for t in self.targets.values() if runtime in t.served_by]

    def hardware_for_target(self, target: str) -> list[HardwareProfile]:
        return [h for h in self.hardware.values() if target in h.targets]

    def quant_type(self, raw: str | None) -> QuantType | None:
        """Precision / GGUF type for a raw label ("Q4_K_M", "float16", "torch.bfloat16")."""
        if not raw:
            return None
        qid = self._quant_alias.get(raw.strip().lower())
        return self.quant_types.get(qid) if qid else None

    def bits_per_weight(self, raw: str | None) -> float | None:
        q = self.quant_type(raw)
        seen: set[str] = set()
        while q is not None and q.bits_per_weight is None and q.base and q.base not in seen:
            seen.add(q.base)
            q = self.quant_types.get(q.base)
        return q.bits_per_weight if q else None

    def architecture_support(self, runtime: str, names: Iterable[str]) -> ArchitectureSupport | None:
        keys = {n.strip().lower() for n in names if n}
        for a in self.architectures:
            if a.runtime == runtime and (a.model_type.lower() in keys or {c.lower() for c in a.classes} & keys):
                return a
        return None


def load_compat(g: Graph) -> CompatKB:
    """Read the compatibility tables out of the merged KB graph."""
    kb = CompatKB()
    for s in g.subjects(RDF.type, MP.RuntimeRelease):
        rt = g.value(s, MP.releaseOf)
        version = _one(g, s, MP.version)
        if rt is None or version is None:
            continue
        caps = {}
        for p, o in g.predicate_objects(s):
            name = str(p).rsplit("#", 1)[-1]
            if str(p).startswith(str(MP)) and isinstance(o, Literal) and isinstance(_py(o), int | float) \
                    and not isinstance(_py(o), bool):
                caps[name] = float(_py(o))
        kb.releases.setdefault(_local(rt), []).append(RuntimeRelease(
            runtime=_local(rt), version=str(version), caps=caps, iri=str(s),
            confidence=_one(g, s, MP.confidence) or "high", source=_source(g, s)))
    for rels in kb.releases.values():
        rels.sort(key=lambda r: version_key(r.version))

    for s in g.subjects(RDF.type, MP.CapabilityAxis):
        kb.axes.append(CapabilityAxis(
            id=_local(s), runtime=_local(g.value(s, MP.runtime)), format=_local(g.value(s, MP["format"])),
            detail_key=str(_one(g, s, MP.detailKey)), min_cap=_one(g, s, MP.minCapability),
            max_cap=_one(g, s, MP.maxCapability), label=_one(g, s, RDFS.label) or _local(s)))
    kb.axes.sort(key=lambda a: a.id)

    defaults: dict[str, list[OpsetDefault]] = {}
    for s in g.subjects(RDF.type, MP.OpsetDefault):
        conv = g.value(s, MP.converter)
        if conv is None:
            continue
        defaults.setdefault(_local(conv), []).append(OpsetDefault(
            tool_version=str(_one(g, s, MP.toolVersion)), opset=int(_one(g, s, MP.defaultOpset)),
            source=_source(g, s)))
    for s in g.subjects(RDF.type, MP.Converter):
        cid = _local(s)
        min_opset = _one(g, s, MP.minOpset)
        spec = _one(g, s, MP.outputSpecVersion)
        kb.converters[cid] = Converter(
            id=cid, label=_one(g, s, RDFS.label) or cid, tool_package=_one(g, s, MP.toolPackage),
            inputs=_ids(g, s, MP.input), outputs=_ids(g, s, MP.output),
            confidence=_one(g, s, MP.confidence) or "medium", min_tool_version=_one(g, s, MP.minToolVersion),
            requires_libraries=_ids(g, s, MP.requiresLibrary), requires_precision=_one(g, s, MP.requiresPrecision),
            min_opset=int(min_opset) if min_opset is not None else None,
            output_spec_version=int(spec) if spec is not None else None,
            validates_outputs=bool(_one(g, s, MP.validatesOutputs)), withdrawn=bool(_one(g, s, MP.withdrawn)),
            comment=_one(g, s, RDFS.comment), source=_source(g, s),
            opset_defaults=tuple(sorted(defaults.get(cid, []), key=lambda r: version_key(r.tool_version))),
            kind=_one(g, s, MP.converterKind) or "export",
            layer_coverage=frozenset(_strs(g, s, MP.coversLayer)), styles=_strs(g, s, MP.codeStyle),
            evaluation=_one(g, s, MP.evaluation))

    for s in g.subjects(RDF.type, MP.DeploymentTarget):
        tid = _local(s)
        kb.targets[tid] = Target(
            id=tid, label=_one(g, s, RDFS.label) or tid, served_by=_ids(g, s, MP.servedBy),
            includes=_ids(g, s, MP.includes), os_version_key=_one(g, s, MP.osVersionKey),
            comment=_one(g, s, RDFS.comment), os_name=_one(g, s, MP.osName))

    for s in g.subjects(RDF.type, MP.FitPolicy):
        kb.activation_overhead = float(_one(g, s, MP.activationOverhead) or kb.activation_overhead)
        kb.fit_policy_source = _source(g, s)
    for s in g.subjects(RDF.type, MP.HardwareProfile):
        hid = _local(s)
        mem = _one(g, s, MP.memoryBytes)
        gib = _one(g, s, MP.memoryGiB)
        kb.hardware[hid] = HardwareProfile(
            id=hid, label=_one(g, s, RDFS.label) or hid, kind=_one(g, s, MP.kind) or "other",
            targets=_ids(g, s, MP.target),
            memory_bytes=int(mem) if mem is not None else (int(float(gib) * GIB) if gib is not None else None),
            bandwidth_gbs=_float(_one(g, s, MP.memoryBandwidthGBs)), fp32_tflops=_float(_one(g, s, MP.fp32TFLOPS)),
            fp16_tflops=_float(_one(g, s, MP.fp16TFLOPS)), int8_tops=_float(_one(g, s, MP.int8TOPS)),
            usable_memory_fraction=float(_one(g, s, MP.usableMemoryFraction) or 1.0),
            flash_bytes=_one(g, s, MP.flashBytes), approximate=bool(_one(g, s, MP.approximate)),
            source=_source(g, s))

    for kind, cls in (("precision", MP.Precision), ("gguf", MP.GGUFType)):
        for s in g.subjects(RDF.type, cls):
            qid = _local(s)
            label = _one(g, s, RDFS.label) or qid
            introduced_on = _one(g, s, MP.introducedOn)
            q = QuantType(
                id=qid, label=label, kind=kind, bits_per_weight=_float(_one(g, s, MP.bitsPerWeight)),
                base=_local(g.value(s, MP.baseType)) if g.value(s, MP.baseType) is not None else None,
                precision=_local(g.value(s, MP.precision)) if g.value(s, MP.precision) is not None else None,
                aliases=_strs(g, s, MP.alias), supported_by=_ids(g, s, MP.supportedBy),
                unsupported_by=_ids(g, s, MP.unsupportedBy), min_runtime_version=_one(g, s, MP.minRuntimeVersion),
                introduced_by=_one(g, s, MP.introducedBy),
                introduced_on=str(introduced_on) if introduced_on is not None else None, source=_source(g, s))
            kb.quant_types[qid] = q
            for a in (label, *q.aliases):
                # A GGUF label wins over a generic precision alias ("F16" is the GGUF type, also fp16);
                # a GGUF alias (the file-name spelling "FP16") never displaces one ("fp16" stays fp16).
                if (kind == "gguf" and a == label) or a.lower() not in kb._quant_alias:
                    kb._quant_alias[a.lower()] = qid

    for s in g.subjects(RDF.type, MP.CoreMLSpec):
        sv = int(_one(g, s, MP.specVersion))
        min_os = {k: str(_one(g, s, MP[k])) for k in ("minIOS", "minMacOS", "minTvOS", "minWatchOS")
                  if g.value(s, MP[k]) is not None}
        kb.coreml_specs[sv] = CoreMLSpec(spec_version=sv, min_os=min_os, source=_source(g, s))
    for s, o in g.subject_objects(MP.minSpecVersion):
        kb.format_min_spec[_local(s)] = int(_py(o))

    for s in g.subjects(RDF.type, MP.FormatRequirement):
        kb.requirements.append(FormatRequirement(
            id=_local(s), format=_local(g.value(s, MP["format"])), runtime=_local(g.value(s, MP.runtime)),
            min_version=_one(g, s, MP.minVersion), detail_key=_one(g, s, MP.detailKey),
            detail_value=_one(g, s, MP.detailValue), unsupported=bool(_one(g, s, MP.unsupported)),
            comment=_one(g, s, RDFS.comment), source=_source(g, s)))
    kb.requirements.sort(key=lambda r: r.id)

    for s in g.subjects(RDF.type, MP.ArchitectureSupport):
        kb.architectures.append(ArchitectureSupport(
            id=_local(s), runtime=_local(g.value(s, MP.runtime)), model_type=str(_one(g, s, MP.modelType)),
            classes=_strs(g, s, MP.architectureClass),
            min_version=str(_one(g, s, MP.minVersion)) if g.value(s, MP.minVersion) is not None else None,
            source=_source(g, s)))
    kb.architectures.sort(key=lambda a: a.id)

    for s, o in g.subject_objects(MP.versionTracks):
        kb.version_tracks[_local(s)] = _local(o)
    for s, o in g.subject_objects(MP.versionAxis):
        kb.version_axis[_local(s)] = str(o)
    gated = set()
    for s in g.subjects(RDF.type, MP.Runtime):
        libs = _ids(g, s, MP.requiresLibrary)
        if libs:
            kb.runtime_requires[_local(s)] = libs
        majors = [int(_py(o)) for o in g.objects(s, MP.frameworkMajor)]
        if majors:
            kb.framework_majors[_local(s)] = (min(majors), max(majors))
        if _one(g, s, MP.requiresArchitecture):
            gated.add(_local(s))
    kb.arch_gated = frozenset(gated)
    for s in g.subjects(RDF.type, MP.OpCoverage):
        kb.op_coverage.append(OpCoverage(
            runtime=_local(g.value(s, MP.runtime)), format=_local(g.value(s, MP["format"])),
            detail_key=str(_one(g, s, MP.detailKey)), ops=frozenset(_strs(g, s, MP.supportsOp)),
            source=_source(g, s)))
    for s in g.subjects(RDF.type, MP.CodeFramework):
        fid = _local(g.value(s, MP.library))
        kb.code_frameworks[fid] = CodeFramework(
            id=fid, import_root=str(_one(g, s, MP.importRoot)), layer_namespaces=_strs(g, s, MP.layerNamespace),
            module_bases=_strs(g, s, MP.moduleBase), sequential=_strs(g, s, MP.sequentialClass),
            code_format=_local(g.value(s, MP.codeFormat)))
    return kb


__all__ = ["OpCoverage", "CodeFramework",
           "CompatKB", "RuntimeRelease", "CapabilityAxis", "Converter", "OpsetDefault", "Target",
           "HardwareProfile", "QuantType", "CoreMLSpec", "FormatRequirement", "ArchitectureSupport",
           "CONFIDENCE_RANK", "load_compat", "version_key"]
