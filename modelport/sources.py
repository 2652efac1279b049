"""Configured sources (`[[sources]]` in the TOML settings) → Source objects, the one path every
`harvest <kind>` command, `harvest configured` and the scheduler take: a configured entry's options,
overridden by what the command line gives, validated by the kind's `Options`, built by its `create`
(harvesters/registry.py). This module, not the harvesters, knows the settings."""

from __future__ import annotations

from typing import Any

from modelport.harvesters.base import Source, SourceError
from modelport.harvesters.plugin import SourceContext
from modelport.harvesters.registry import build
from modelport.settings import Settings, SourceConfig


def source_context(settings: Settings) -> SourceContext:
    return SourceContext(cache_root=settings.data_dir / "cache")


def configured(settings: Settings, name: str) -> SourceConfig | None:
    return next((c for c in settings.sources if c.name == name), None)


def resolve_options(settings: Settings, kind: str, name: str, overrides: dict[str, Any] | None = None
                    ) -> dict[str, Any]:
    """The configured entry `name`'s options (if any) with the given non-None overrides on top. A
    configured entry of another kind is a SourceError: the name is the catalog's key for one registry."""
    options: dict[str, Any] = {}
    config = configured(settings, name)
    if config is not None:
        if config.kind != kind:
            raise SourceError(f"source {name!r} is configured as kind {config.kind!r}, not {kind}")
        options.update(config.plain_options())
    options.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return options


def build_named(settings: Settings, kind: str, name: str, overrides: dict[str, Any] | None = None) -> Source:
    """Build source `name` of `kind` from its configuration and the overrides (registry.build raises
    SourceOptionsError for options that do not fit, SourceError for a source that cannot work)."""
    return build(kind, name, resolve_options(settings, kind, name, overrides), source_context(settings))


def build_source(config: SourceConfig, settings: Settings) -> Source:
    """A configured source as it stands (the scheduler's and `harvest configured`'s way)."""
    return build_named(settings, config.kind, config.name)


__all__ = ["build_named", "build_source", "configured", "resolve_options", "source_context"]
