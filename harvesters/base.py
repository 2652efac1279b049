"""The contract between a source and the pipeline: a source yields harvest events, the pipeline
normalizes, stores and projects them (DataHub-style source → work units → sink)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from modelport.schema.record import ModelRecord

HarvestMode = Literal["full", "incremental"]


class SourceRecord(BaseModel):
    """One raw item as the registry gave it; `normalize` turns it into a ModelRecord."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    local_id: str
    payload: dict[str, Any]
    etag: str | None = None  # the source's own change marker (sha, version timestamp, ETag)
    url: str | None = None


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


class MalformedRecord(ValueError):
    """Raised by `normalize` for a payload that cannot become a record; the pipeline skips it."""


@runtime_checkable
class Source(Protocol):
    """A configured source. `name` is unique per catalog ("huggingface", "mlflow-prod", …)."""

    name: str
    kind: str  # harvester kind: "mlflow", "huggingface", "tfhub", "kaggle"
    harvester_version: str

    def events(self, mode: HarvestMode, checkpoint: dict[str, Any] | None) -> Iterator[HarvestEvent]: ...

    def normalize(self, item: SourceRecord) -> ModelRecord: ...


class SourceError(RuntimeError):
    """The source as a whole is unusable (unreachable server, bad URI, auth refused)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_provenance(source: Source, url: str | None, **extra: Any) -> dict[str, Any]:
    return {"source_url": url, "harvested_at": utcnow(), "harvester": source.kind,
            "harvester_version": source.harvester_version, **extra}


__all__ = ["SourceRecord", "Checkpoint", "ListingComplete", "Gone", "Skipped", "HarvestEvent", "HarvestMode",
           "MalformedRecord", "Source", "SourceError", "utcnow", "new_provenance", "Field"]
