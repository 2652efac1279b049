"""The one shape every source has, built in or third-party (DataHub's ingestion sources are the model:
a config class per source and one `create(config, ctx)`).

A source kind is a `SourcePlugin` subclass with

- `kind`: the name used in `[[sources]]` tables and on the command line;
- `Options`: a pydantic model of its `options` table (`extra="forbid"`, bounded fields, credentials
  as `SecretStr`), checked when the settings load so a typo stops the program before any run;
- `create(name, options, context)`: the one constructor the registry, the CLI and the scheduler call.
  By default it is `cls(name, options, context)`; built-in sources whose `__init__` predates this
  shape override it to adapt.

The host (CLI, scheduler) passes a `SourceContext` instead of its settings, so harvesters never import
the settings or the CLI (data flows one way: see tests/test_imports.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from modelport.harvesters.base import HarvestEvent, HarvestMode, SourceRecord
from modelport.schema.record import ModelRecord


class SourceOptions(BaseModel):
    """Base of every source's `Options`: unknown keys are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class SourceContext:
    """What the host gives every source: the data dir's cache folder (a source keeps its own files
    under it, named after its kind and source name). Record IRIs are not a source's business: the
    pipeline gives every record its IRI under the deployment's `base_iri`."""

    cache_root: Path | None = None

    def cache_dir(self, kind: str, name: str) -> Path | None:
        return self.cache_root / kind / name if self.cache_root is not None else None


class SourcePlugin(ABC):
    """Base class of a source kind. Subclasses implement `events` and `normalize` (the `Source`
    protocol in harvesters/base.py) and declare `kind` and `Options`."""

    kind: ClassVar[str]
    Options: ClassVar[type[SourceOptions]] = SourceOptions
    harvester_version: ClassVar[str] = "0"

    def __init__(self, name: str, options: SourceOptions, context: SourceContext) -> None:
        self.name = name
        self.options = options
        self.context = context

    @classmethod
    def create(cls, name: str, options: Any, context: SourceContext) -> SourcePlugin:
        """Build a configured source from validated options (an instance of `cls.Options`)."""
        return cls(name, options, context)

    @abstractmethod
    def events(self, mode: HarvestMode, checkpoint: dict[str, Any] | None) -> Iterator[HarvestEvent]: ...

    @abstractmethod
    def normalize(self, item: SourceRecord) -> ModelRecord: ...


__all__ = ["SourceOptions", "SourceContext", "SourcePlugin"]
