"""The compatibility derivation's working cells and the helpers both the derivation (compat.py) and
the hardware fit (hardware_fit.py) use: precision labels, a runtime cell, the analysis, the evidence a
target or hardware cell rests on. A module below both, so neither imports the other (compat builds
hardware cells with hardware_fit; hardware_fit reads cells)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from modelport.schema.gguf_names import gguf_type_in_name
from modelport.schema.kb import KnowledgeBase
from modelport.schema.kb_compat import CONFIDENCE_RANK
from modelport.schema.record import Artifact, CompatibilityEntry, Evidence, VerifiedPoint, build
from modelport.schema.versions import VersionRange

STATUS_RANK = {"verified": 4, "native": 3, "declared": 2, "convertible": 1, "failed-verification": 0}


def artifact_quantization(art: Artifact, kb: KnowledgeBase) -> str | None:
    q = art.quantization or art.details.get("quantization")
    if not q and art.format == "gguf":
        q = gguf_type_in_name(art.path, kb)
    return str(q) if q else None


def precision_label(raw: str | None, kb: KnowledgeBase) -> str | None:
    """Normalised precision: GGUF labels stay as written ("Q4_K_M"), dtypes map to fp16/bf16/…"""
    if not raw:
        return None
    q = kb.compat.quant_type(raw)
    if q is None:
        return raw
    return q.label if q.kind == "gguf" else q.id


# ------------------------------------------------------------------------------------------------
# Working cells
# ------------------------------------------------------------------------------------------------
@dataclass
class Cell:
    runtime: str
    status: str
    format: str | None = None
    version_range: VersionRange | None = None
    range_kind: str | None = None  # "capability" (a fact inside the artifact) | "policy" | "pin"
    precision: str | None = None
    path: list[str] = field(default_factory=list)
    confidence: str | None = None
    evidence: list[Evidence] = field(default_factory=list)
    os_min: dict[str, str] = field(default_factory=dict)  # Core ML: {"minIOS": "15", …}
    measurements: dict[str, Any] = field(default_factory=dict)
    points: list[VerifiedPoint] = field(default_factory=list)  # `modelport verify` checks inside the cell

    def key(self) -> tuple[int, int, int]:
        return (STATUS_RANK[self.status], -len(self.path), CONFIDENCE_RANK.get(self.confidence or "high", 2))

    def entry(self, **extra: Any) -> CompatibilityEntry:
        data: dict[str, Any] = dict(
            runtime=self.runtime, format=self.format, version_range=self.version_range,
            precision=self.precision, status=self.status, path=list(self.path), confidence=self.confidence,
            evidence=list(self.evidence), measurements=dict(self.measurements))
        if self.points:
            data["verifications"] = list(self.points)
        data.update(extra)
        # Built from typed working cells, never from input: no validation needed (this runs ~25
        # times per record).
        return build(CompatibilityEntry, **data)


@dataclass
class Analysis:
    """Everything the derivation found, including what it ruled out (for explanations)."""

    runtimes: dict[str, Cell]
    targets: list[CompatibilityEntry]
    hardware: list[CompatibilityEntry]
    kept: list[CompatibilityEntry]
    blocked: dict[str, list[str]]  # runtime → reasons it is NOT offered although a format matched
    kb_version: str
    _runtime_entries: list[CompatibilityEntry] | None = None  # shared, from the memoized core

    @property
    def entries(self) -> list[CompatibilityEntry]:
        if self._runtime_entries is not None:
            rt_entries = list(self._runtime_entries)
        else:
            rt = sorted(self.runtimes.values(), key=lambda c: (-STATUS_RANK[c.status], c.runtime))
            rt_entries = [c.entry() for c in rt]
        return rt_entries + self.targets + self.hardware + self.kept


def via_evidence(cell: Cell, kb: KnowledgeBase) -> Evidence:
    """A target or hardware cell points at the runtime cell it rests on instead of copying that cell's
    evidence: the record stays small (and its graph too) and the evidence is said once."""
    return _via(cell.runtime, cell.status, kb.version)


@lru_cache(maxsize=4096)
def _via(runtime: str, status: str, kb_version: str) -> Evidence:
    # One shared, never-mutated object per (runtime, status): ~25 hardware/target cells per record use it.
    return build(Evidence, kind="kb", detail=f"rests on the {runtime} cell ({status})",
                 kb_fact=f"cell/runtime/{runtime}", kb_version=kb_version)


__all__ = ["STATUS_RANK", "Cell", "Analysis", "artifact_quantization", "precision_label",
           "via_evidence"]
