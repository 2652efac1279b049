"""The canonical, source-independent description of one deployable model (a `ModelRecord`)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator, model_validator

from modelport.schema.versions import VersionRange, parse_version

SCHEMA_VERSION = 1
# Latencies the derivation estimates (schema/hardware_fit.py) carry this source; the catalog does
# not store them, since they are re-derived from the record and the KB.
ESTIMATE_SOURCE = "modelport-roofline-estimate"

CompatStatus = Literal["native", "declared", "convertible", "verified", "failed-verification"]
_STATUS_RANK = {"verified": 4, "native": 3, "declared": 2, "convertible": 1, "failed-verification": 0}
Confidence = Literal["high", "medium", "low"]
LineageRelation = Literal["finetune", "adapter", "quantized", "merge", "variant", "derived"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False)


_M = TypeVar("_M", bound=BaseModel)
_DEFAULTS: dict[type, tuple[dict[str, Any], dict[str, Any]]] = {}


def build(cls: type[_M], **values: Any) -> _M:
    """An instance from values our own code made (never from input): what `model_construct` does,
    without its generic per-field work — the derivation makes ~40 of these per record."""
    spec = _DEFAULTS.get(cls)
    if spec is None:
        static = {n: f.default for n, f in cls.model_fields.items() if f.default_factory is None}
        factories = {n: f.default_factory for n, f in cls.model_fields.items() if f.default_factory is not None}
        spec = _DEFAULTS[cls] = (static, factories)
    data = {**spec[0], **values}
    for name, factory in spec[1].items():
        if name not in values:
            data[name] = factory()  # type: ignore[call-arg]
    obj = cls.__new__(cls)
    object.__setattr__(obj, "__dict__", data)
    object.__setattr__(obj, "__pydantic_fields_set__", set(values))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


class Agent(_Model):
    """A person or organisation that authored or published a model."""

    name: str
    kind: Literal["person", "organization"] = "organization"
    url: str | None = None


class Artifact(_Model):
    """One file (or directory) that makes up the model, with the format the KB recognised in it."""

    path: str
    format: str | None = None  # KB format id, e.g. "onnx", "safetensors", "gguf"
    size_bytes: int | None = Field(default=None, ge=0)
    sha256: str | None = None
    url: str | None = None
    quantization: str | None = None  # e.g. GGUF "Q4_K_M"
    details: dict[str, Any] = Field(default_factory=dict)  # e.g. {"opset": 17, "ir_version": 8}


class SourceCode(_Model):
    """A model source file the record carries (MLflow code artifacts / pyfunc code paths, Hub `*.py`
    modelling files): what code migration between frameworks starts from. Read with `ast` only
    (schema/code_scan.py), never executed; `layer_types` None means the file was not read."""

    path: str
    framework: str | None = None  # KB library id of the code ("pytorch", "tensorflow")
    layer_types: list[str] | None = None  # layer classes it builds, short names ("Linear", "Conv2d")
    style: Literal["sequential", "subclassing"] | None = None
    size_bytes: int | None = Field(default=None, ge=0)


class EvaluationResult(_Model):
    """A typed metric value: numbers stay numbers so that `accuracy >= 0.9` can be compared."""

    metric: str  # normalised metric id ("accuracy", "f1", …)
    value: float
    metric_name: str | None = None  # as the source wrote it
    dataset: str | None = None  # normalised dataset id
    dataset_name: str | None = None
    dataset_config: str | None = None
    split: str | None = None
    task: str | None = None
    verified: bool | None = None
    source: str | None = None  # URL or name of where the number came from
    provenance: str = "source"  # which part of the source payload: "model-index", "mlflow-run", …


class LatencyMeasurement(_Model):
    """A latency figure from a source (measured) or from our own estimate (labelled with its method)."""

    hardware: str
    latency_ms: float = Field(ge=0)
    runtime: str | None = None
    runtime_version: str | None = None
    precision: str | None = None
    batch_size: int | None = None
    measured: bool = True
    method: str | None = None  # for estimates: how it was computed
    source: str | None = None


class Requirement(_Model):
    """A pinned or ranged package requirement from an environment file."""

    name: str
    specifier: str = ""  # PEP 440 specifier, e.g. "==1.9.1"
    source_file: str | None = None


class Evidence(_Model):
    """Why a compatibility entry holds: the artifact, the declaration, the KB fact or the check behind it."""

    kind: Literal["artifact", "declaration", "kb", "converter", "verification", "requirement"]
    detail: str
    artifact: str | None = None
    kb_fact: str | None = None
    kb_version: str | None = None


class VerifiedPoint(_Model):
    """One numerical check of a cell at one runtime version (`modelport verify`). It sits inside the
    derived cell and never replaces it: the cell's status and range still say where the model runs,
    the point says what was measured at `version` (a failed one marks that version only)."""

    status: Literal["verified", "failed-verification"]
    version: str | None = None  # runtime version the check ran on; None when the run never got that far
    format: str | None = None
    path: list[str] = Field(default_factory=list)  # converter ids the check went through
    platform: str | None = None  # OS, CPU architecture and execution provider of the run
    max_abs_diff: float | None = None
    tolerance: dict[str, float] = Field(default_factory=dict)  # {"atol": …, "rtol": …}
    checked_at: str | None = None  # ISO 8601 time of the run
    artifacts: str | None = None  # artifact signature (paths and hashes) the check ran on
    error: str | None = None
    evidence: list[Evidence] = Field(default_factory=list)
    measurements: dict[str, Any] = Field(default_factory=dict)


class CompatibilityEntry(_Model):
    """One cell of the compatibility matrix."""

    runtime: str | None = None  # KB runtime id
    target: str | None = None  # KB deployment-target id
    hardware: str | None = None  # KB hardware-profile id
    format: str | None = None  # format the runtime consumes
    version_range: VersionRange | None = None
    precision: str | None = None
    status: CompatStatus
    path: list[str] = Field(default_factory=list)  # converter ids, in order, for `convertible`
    confidence: Confidence | None = None
    evidence: list[Evidence] = Field(default_factory=list)
    measurements: dict[str, Any] = Field(default_factory=dict)  # verification numbers
    verifications: list[VerifiedPoint] = Field(default_factory=list)  # checks at single versions

    @property
    def hops(self) -> int:
        return len(self.path)

    def point_at(self, version: str) -> VerifiedPoint | None:
        """The check run at `version` (PEP 440 equality: "1.32" is "1.32.0"); the latest one wins."""
        want = parse_version(version)
        if want is None:
            return None
        hits = [p for p in self.verifications if p.version and parse_version(p.version) == want]
        return max(hits, key=lambda p: p.checked_at or "") if hits else None

    def status_at(self, version: str | None) -> str | None:
        """The cell's status at one runtime version: a check at that version decides; otherwise the
        derived status where the range holds; None outside it. Without a version: the best status
        the cell has at some version (a verified point outranks the derived status)."""
        if version is None:
            return max(self.statuses(), key=lambda s: _STATUS_RANK.get(s, -1))
        point = self.point_at(version)
        if point is not None:
            return point.status
        if self.version_range is None or self.version_range.contains(version):
            return self.status
        return None

    def statuses(self) -> list[str]:
        """Every status the cell holds at some version: the derived one and its points' statuses."""
        return list(dict.fromkeys([self.status, *(p.status for p in self.verifications)]))


class BaseModelLink(_Model):
    """Lineage: this record derives from `ref` (a record id when known, else the source's own name)."""

    ref: str
    relation: LineageRelation = "derived"


class Link(_Model):
    rel: str  # "homepage", "source", "paper", "colab", "kaggle", "tfhub", "run", "registry"
    url: str


class CardSections(_Model):
    """Free-text sections of a model card that users read before deploying."""

    intended_use: str | None = None
    limitations: str | None = None
    bias: str | None = None
    training_data: str | None = None
    body: str | None = None  # the whole card text, capped


class Popularity(_Model):
    downloads: int | None = Field(default=None, ge=0)
    likes: int | None = Field(default=None, ge=0)


class Provenance(_Model):
    source_url: str | None = None
    harvested_at: datetime
    harvester: str
    harvester_version: str
    content_hash: str = ""
    defaults_applied: list[str] = Field(default_factory=list)  # e.g. ["license: absent means Apache-2.0"]


# Source terms (what the source says in a vocabulary the KB has, but the KB does not know): a hostile
# source could send anything, so they are capped in length and number per record (see `source_terms`).
SOURCE_TERM_MAX_CHARS = 100
SOURCE_TERMS_MAX = 16
SourceVocabulary = Literal["task", "library"]


class SourceTerm(_Model):
    """A value the source states for one of our vocabularies (a task, a library) that the KB does not
    know, kept as the source said it (trimmed only) instead of being dropped: it is searched, faceted
    and in the RDF like a KB term, marked as the source's word (`key` is what filters match: the value
    case-folded, since the registries we read treat these names case-insensitively and so does the KB)."""

    vocabulary: SourceVocabulary
    value: str = Field(min_length=1, max_length=SOURCE_TERM_MAX_CHARS)
    source_key: str = Field(default="", max_length=64)  # where the source said it: "pipeline_tag", "library_name", …

    @property
    def key(self) -> str:
        return self.value.lower()


def source_terms(vocabulary: SourceVocabulary, values: Iterable[tuple[str, object]],
                 note: Callable[[str], None] | None = None) -> list[SourceTerm]:
    """Source terms from (source key, raw value) pairs the KB did not resolve: trimmed, deduplicated by
    `key`, and bounded (a value that is empty, over `SOURCE_TERM_MAX_CHARS` or has control characters is
    dropped with a note, past `SOURCE_TERMS_MAX` the rest are dropped with a note)."""
    out: dict[str, SourceTerm] = {}
    for source_key, raw in values:
        if not isinstance(raw, str):
            continue
        value = raw.strip()
        if not value:
            continue
        if len(value) > SOURCE_TERM_MAX_CHARS or not value.isprintable():
            if note is not None:
                note(f"ignored {source_key} {value[:40]!r}: not a plausible {vocabulary} name")
            continue
        if len(out) >= SOURCE_TERMS_MAX:
            if note is not None:
                note(f"kept the first {SOURCE_TERMS_MAX} {vocabulary} names the KB does not know")
            break
        out.setdefault(value.lower(), SourceTerm(vocabulary=vocabulary, value=value, source_key=source_key[:64]))
    return list(out.values())


class Signature(_Model):
    inputs: list[dict[str, Any]] = Field(default_factory=list)
    outputs: list[dict[str, Any]] = Field(default_factory=list)


class ModelRecord(_Model):
    """One deployable thing: a Hub repo at a revision, a TF Hub model version, an MLflow model version."""

    id: str  # "<source>:<local_id>"
    iri: str = ""  # given by the pipeline (Pipeline.prepare) from the configured base IRI, never by a source
    source: str  # configured source name ("huggingface", "mlflow-prod", …)
    source_kind: str  # harvester kind ("huggingface", "mlflow", "tfhub", "kaggle")
    local_id: str
    name: str
    description: str | None = None
    authors: list[Agent] = Field(default_factory=list)
    publisher: Agent | None = None
    license: str | None = None  # SPDX id where known, else "LicenseRef-<raw>"
    tasks: list[str] = Field(default_factory=list)
    frameworks: list[str] = Field(default_factory=list)  # library ids: "scikit-learn", "pytorch", …
    artifacts: list[Artifact] = Field(default_factory=list)
    declared_formats: list[str] = Field(default_factory=list)  # formats the source states without a file
    parameter_count: int | None = Field(default=None, ge=0)
    dtypes: list[str] = Field(default_factory=list)
    architecture: str | None = None
    base_models: list[BaseModelLink] = Field(default_factory=list)
    training_datasets: list[str] = Field(default_factory=list)
    evaluations: list[EvaluationResult] = Field(default_factory=list)
    latencies: list[LatencyMeasurement] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)
    # Tasks and libraries the source names that the KB does not know (`tasks`/`frameworks` hold KB ids only).
    source_terms: list[SourceTerm] = Field(default_factory=list, max_length=2 * SOURCE_TERMS_MAX)
    version: str | None = None
    version_group: str | None = None  # record-id-like key shared by all versions of one model
    aliases: list[str] = Field(default_factory=list)
    created: datetime | None = None
    modified: datetime | None = None
    popularity: Popularity = Field(default_factory=Popularity)
    links: list[Link] = Field(default_factory=list)
    card: CardSections = Field(default_factory=CardSections)
    requirements: list[Requirement] = Field(default_factory=list)
    signature: Signature | None = None
    source_code: list[SourceCode] = Field(default_factory=list)
    params: dict[str, str] = Field(default_factory=dict)  # training/run parameters
    access: Literal["public", "gated", "private"] = "public"
    compatibility: list[CompatibilityEntry] = Field(default_factory=list)
    source_facts: dict[str, Any] = Field(default_factory=dict)  # source-specific facts kept verbatim
    provenance: Provenance

    @model_validator(mode="before")
    @classmethod
    def _drop_computed(cls, data: Any) -> Any:
        # `formats` and `size_bytes` are serialized for readers but derived, never stored input.
        if isinstance(data, dict) and ("formats" in data or "size_bytes" in data):
            data = {k: v for k, v in data.items() if k not in ("formats", "size_bytes")}
        return data

    @field_validator("tasks", "frameworks", "keywords", "languages", "training_datasets", "dtypes", "aliases")
    @classmethod
    def _dedupe(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(x for x in v if x))

    def source_terms_of(self, vocabulary: SourceVocabulary) -> list[SourceTerm]:
        return [t for t in self.source_terms if t.vocabulary == vocabulary]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def formats(self) -> list[str]:
        """Every format the record is available in: artifact formats first, then declared ones."""
        seen = [a.format for a in self.artifacts if a.format] + self.declared_formats
        return list(dict.fromkeys(seen))

    @computed_field  # type: ignore[prop-decorator]
    @property
    def size_bytes(self) -> int | None:
        sizes = [a.size_bytes for a in self.artifacts if a.size_bytes is not None]
        return sum(sizes) if sizes else None

    def normalized(self) -> ModelRecord:
        """The record as its source describes it: without the compatibility matrix and the latency
        estimates, which are derived from it and the KB (schema/compat.py) whenever it is read, and
        without verification results, which the catalog keeps in a table of their own."""
        if not self.compatibility and not any(lat.source == ESTIMATE_SOURCE for lat in self.latencies):
            return self
        return self.model_copy(update={
            "compatibility": [], "latencies": [lat for lat in self.latencies if lat.source != ESTIMATE_SOURCE]})

    def compute_hash(self) -> str:
        """Hash of what the source says, except harvest bookkeeping, so re-harvests of an unchanged
        model produce the same hash and cause no projection work (a KB change re-derives every record
        through `reindex` instead). Pydantic writes fields in declaration order and dicts in
        insertion order, so equal records give equal bytes."""
        exclude: dict[str, Any] = {"provenance": {"harvested_at", "content_hash"}}
        # Records from before a field was added hash as they did while it is empty.
        for name in ("source_code", "source_terms"):
            if not getattr(self, name):
                exclude[name] = True
        blob = self.normalized().model_dump_json(exclude=exclude)
        return hashlib.sha256(blob.encode()).hexdigest()

    def with_hash(self) -> ModelRecord:
        self.provenance.content_hash = self.compute_hash()
        return self

    def stored_json(self) -> str:
        """What the catalog stores: the normalized record (see `normalized`)."""
        return self.normalized().model_dump_json()
