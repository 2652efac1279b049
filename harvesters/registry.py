"""Source kinds → their `SourcePlugin` class: the built-in ones, and any a distribution declares in
the entry-point group `modelport.sources` (`kind = "package.module:Class"`), so a third party adds a
registry without editing ModelPort. Built-in kinds win over an entry point of the same name.

Nothing here knows the settings: the host passes a kind, a source name, the options as plain values
and a `SourceContext` (modelport/sources.py does it for `[[sources]]` entries).
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pydantic import ValidationError

from modelport.errors import UserError
from modelport.harvesters.base import Source, SourceError
from modelport.harvesters.plugin import SourceContext, SourceOptions, SourcePlugin

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "modelport.sources"
# Imported only when used: each needs its own extra (mlflow, huggingface, tfhub, kaggle).
BUILTIN: dict[str, tuple[str, str]] = {
    "mlflow": ("modelport.harvesters.mlflow_registry:MlflowSource", "mlflow"),
    "huggingface": ("modelport.harvesters.huggingface:HuggingFaceSource", "huggingface"),
    "tfhub": ("modelport.harvesters.tfhub:TFHubSource", "tfhub"),
    "kaggle": ("modelport.harvesters.kaggle:KaggleSource", "kaggle"),
}


class UnknownSourceKind(UserError, ValueError):
    """No built-in kind and no installed plug-in has this name, or its plug-in cannot be loaded."""


class SourceOptionsError(UserError, ValueError):
    """A source's options do not fit its kind's `Options`; the message names the source and fields."""

    def __init__(self, source: str, kind: str, error: ValidationError) -> None:
        self.source, self.kind = source, kind
        self.fields = [".".join(str(p) for p in e["loc"]) for e in error.errors()]
        problems = "; ".join(f"options.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
        super().__init__(f"source {source!r} ({kind}): {problems}")


def _plugin_entry_points() -> dict[str, EntryPoint]:
    # Read at each call (not cached): a distribution installed, or put on sys.path, while the
    # process runs is seen; the scan is a few milliseconds and happens per configured source.
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def kinds() -> list[str]:
    """Every kind that can be configured: the built-in ones and the installed plug-ins'."""
    return sorted(set(BUILTIN) | set(_plugin_entry_points()))


def load(kind: str) -> type[SourcePlugin]:
    """The plug-in class of `kind`; UnknownSourceKind says what is missing (a kind, an extra)."""
    obj: Any
    if kind in BUILTIN:
        target, extra = BUILTIN[kind]
        module, _, attr = target.partition(":")
        try:
            obj = getattr(importlib.import_module(module), attr)
        except ImportError as e:
            raise UnknownSourceKind(f"source kind {kind!r} needs its extra: pip install 'modelport[{extra}]' "
                                    f"({e})") from e
    else:
        ep = _plugin_entry_points().get(kind)
        if ep is None:
            raise UnknownSourceKind(f"unknown source kind {kind!r} (known: {', '.join(kinds())})")
        try:
            obj = ep.load()
        except Exception as e:  # a broken plug-in is a configuration error, not a crash
            raise UnknownSourceKind(f"source plug-in {kind!r} ({ep.value}) cannot be loaded: "
                                    f"{type(e).__name__}: {e}") from e
    if not (isinstance(obj, type) and issubclass(obj, SourcePlugin)):
        raise UnknownSourceKind(f"source kind {kind!r}: {obj!r} is not a modelport SourcePlugin subclass")
    return obj


def validate_options(kind: str, name: str, options: dict[str, Any]) -> SourceOptions:
    """`options` checked against the kind's `Options` (SourceOptionsError names source and fields)."""
    cls = load(kind)
    try:
        return cls.Options.model_validate(options)
    except ValidationError as e:
        raise SourceOptionsError(name, kind, e) from None


def build(kind: str, name: str, options: dict[str, Any], context: SourceContext) -> Source:
    """The one way a source is made: validate its options, then `create`. A source that cannot work
    with valid options (unreachable, refused credentials) raises SourceError from `create`."""
    cls = load(kind)
    opts = validate_options(kind, name, options)
    try:
        source = cls.create(name, opts, context)
    except (TypeError, ValueError) as e:  # e.g. a value the options allowed but the client refused
        raise SourceError(f"source {name!r} ({kind}): bad options: {e}") from e
    if not isinstance(source, Source):
        raise SourceError(f"source kind {kind!r}: create() returned {type(source).__name__}, not a Source")
    return source


__all__ = ["BUILTIN", "ENTRY_POINT_GROUP", "SourceOptionsError", "UnknownSourceKind", "build", "kinds", "load",
           "validate_options"]
