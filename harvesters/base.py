"""The contract between a source and the pipeline: a source yields harvest events, the pipeline
normalizes, stores and projects them (DataHub-style source → work units → sink)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from modelport.errors import BadRecordError
from modelport.errors import SourceError as SourceError  # (re-exported: sources raise it from here)
from modelport.schema.record import ModelRecord

HarvestMode = Literal["full", "incremental"]


class SourceRecord(BaseModel):
    """One raw item as the registry gave it; `normalize` turns it into a ModelRecord."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    local_id: str
    payload: dict[str, Any]
    etag: str | None = None  # the source's own change marker (sha, version timestamp, ETag)
    url: str | None = None
    # Set by an enrichment stage (see `Enrichable`): what the per-record calls added to the listing's
    # data, stored by the pipeline with `etag` and merged into later listings of the same revision.
    enrichment: dict[str, Any] | None = None


class Checkpoint(BaseModel):
    """Resume point. The pipeline commits it in the same transaction as every record yielded
    before it, so a crash resumes from here with nothing lost or duplicated."""

    state: dict[str, Any]


class ListingComplete(BaseModel):
    """The source has listed everything it holds: records of this source not seen in this run
    may be tombstoned (subject to the pipeline's fail-safe ratio)."""

    listed: int | None = None


class Gone(BaseModel):
    """The source says this record no longer exists (deleted, disabled)."""

    local_id: str
    reason: str


class Skipped(BaseModel):
    """An item that could not be read; logged with its reason, the harvest goes on."""

    ref: str
    reason: str


HarvestEvent = SourceRecord | Checkpoint | ListingComplete | Gone | Skipped


class MalformedRecord(BadRecordError):
    """Raised by `normalize` for a payload that cannot become a record; the pipeline skips it."""


@runtime_checkable
class Source(Protocol):
    """A configured source. `name` is unique per catalog ("huggingface", "mlflow-prod", …)."""

    # Read-only members: a source may set them per instance or per class.
    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...  # harvester kind: "mlflow", "huggingface", "tfhub", "kaggle"

    @property
    def harvester_version(self) -> str: ...

    def events(self, mode: HarvestMode, checkpoint: dict[str, Any] | None) -> Iterator[HarvestEvent]: ...

    def normalize(self, item: SourceRecord) -> ModelRecord: ...


class EnrichTarget(BaseModel):
    """A stored record an enrichment stage should fetch in full: its id and the revision listed."""

    local_id: str
    etag: str | None = None


class EnrichmentPlan(BaseModel):
    """How much of the enrichment stage one run does: at most `max_models` records (None: all that
    need it) within `time_limit_s`, taken in `priority` order (catalog sort keys, interleaved)."""

    max_models: int | None = Field(default=None, ge=0)
    time_limit_s: float | None = Field(default=None, gt=0)
    priority: list[str] = Field(default_factory=lambda: ["downloads", "modified"])


@runtime_checkable
class Enrichable(Protocol):
    """A source whose listing gives most of a record and per-record calls the rest (the Hub: one
    listing request per 1,000 models, one `model_info` per model). The pipeline stores the listing's
    records at once, then asks `enrich` for the records the catalog says need it (new or changed
    `etag`), in priority order, within the plan; `merge_enrichment` puts the stored extras back into
    a later listing record of the same revision, so listings never undo enrichment."""

    def enrichment_plan(self) -> EnrichmentPlan | None: ...

    def enrich(self, targets: list[EnrichTarget]) -> Iterator[HarvestEvent]: ...

    def merge_enrichment(self, item: SourceRecord, extras: dict[str, Any]) -> SourceRecord: ...


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_provenance(source: Source, url: str | None, **extra: Any) -> dict[str, Any]:
    return {"source_url": url, "harvested_at": utcnow(), "harvester": source.kind,
            "harvester_version": source.harvester_version, **extra}


__all__ = ["EnrichTarget", "EnrichmentPlan", "Enrichable",
           "SourceRecord", "Checkpoint", "ListingComplete", "Gone", "Skipped", "HarvestEvent", "HarvestMode",
           "MalformedRecord", "Source", "SourceError", "utcnow", "new_provenance", "Field"]
