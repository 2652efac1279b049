"""Configured sources (`[[sources]]` in the TOML settings) → Source objects. The CLI's
`harvest configured` and any scheduler build sources here, never by hand."""

from __future__ import annotations

from typing import Any

from modelport.harvesters.base import Source, SourceError
from modelport.settings import Settings, SourceConfig


def build_source(config: SourceConfig, settings: Settings) -> Source:
    """One place that knows each kind's constructor; options come verbatim from the config."""
    opts: dict[str, Any] = config.plain_options()
    cache = settings.data_dir / "cache"
    try:
        if config.kind == "mlflow":
            from modelport.harvesters.mlflow_registry import MlflowSource

            if "tracking_uri" not in opts:
                raise SourceError(f"source {config.name!r}: mlflow needs options.tracking_uri")
            return MlflowSource(name=config.name, cache_dir=cache, **opts)
        if config.kind == "huggingface":
            from modelport.harvesters.huggingface import HuggingFaceOptions, HuggingFaceSource

            opts.setdefault("base_iri", settings.base_iri)
            opts.setdefault("cache_dir", cache / "huggingface" / config.name)
            return HuggingFaceSource(name=config.name, options=HuggingFaceOptions(**opts))
        if config.kind == "tfhub":
            from modelport.harvesters.tfhub import TFHubSource

            if "root" not in opts:
                raise SourceError(f"source {config.name!r}: tfhub needs options.root")
            return TFHubSource(opts.pop("root"), name=config.name, base_iri=settings.base_iri,
                               cache_dir=cache / "tfhub" / config.name, **opts)
        from modelport.harvesters.kaggle import KaggleSource

        return KaggleSource(name=config.name, base_iri=settings.base_iri, **opts)
    except (TypeError, ValueError) as e:  # an option the harvester does not take, or a bad value
        raise SourceError(f"source {config.name!r} ({config.kind}): bad options: {e}") from e
