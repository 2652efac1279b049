"""Bounded parsing of what sources send: YAML whose anchors/aliases would expand past a budget is
refused (a 413-byte MLmodel once became 53.8 MB of JSON), nesting is capped, and JSON too deep for
the parser is a clear refusal instead of a RecursionError deep inside a harvest."""

from __future__ import annotations

import json
from typing import Any

import yaml

from modelport.errors import BadRecordError

# Budgets for one document: ample for real MLmodel files, cards and TF Hub metadata (hundreds of nodes).
MAX_YAML_NODES = 50_000
MAX_DEPTH = 64


# libyaml (C) when built in: ~100x faster than the pure-Python parser on large or crafted text, and
# it refuses flow nesting past 1,000 levels itself; both keep aliases as shared nodes.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class UnsafeInput(BadRecordError):
    """A document refused because reading it would cost far more than its size suggests."""


def load_yaml(text: str, *, max_nodes: int = MAX_YAML_NODES, max_depth: int = MAX_DEPTH) -> Any:
    """`yaml.safe_load`, but the node graph is measured first as it would be once aliases are
    expanded (each alias counts its target's whole size); past `max_nodes` or `max_depth`, or a
    recursive alias, it raises UnsafeInput. Composing is linear in the text; measuring is linear in
    the number of distinct nodes (sizes are memoized)."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _measure(node, max_nodes, max_depth)
        return loader.construct_document(node)
    except RecursionError:  # the composer recurses per nesting level
        raise UnsafeInput("YAML nested too deeply") from None
    finally:
        loader.dispose()


def _measure(root: yaml.Node, max_nodes: int, max_depth: int) -> int:
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if depth > max_depth:
            raise UnsafeInput(f"YAML nested deeper than {max_depth} levels")
        if key in active:
            raise UnsafeInput("YAML alias refers to itself (a recursive structure)")
        total = 1
        if isinstance(node, yaml.SequenceNode | yaml.MappingNode):
            active.add(key)
            children = node.value if isinstance(node, yaml.SequenceNode) else [x for kv in node.value for x in kv]
            for child in children:
                total += size(child, depth + 1)
                if total > max_nodes:
                    raise UnsafeInput(f"YAML expands past {max_nodes} nodes (anchors and aliases); refused")
            active.discard(key)
        sizes[key] = total
        return total

    return size(root, 0)


def load_json(text: str | bytes) -> Any:
    """`json.loads`, with nesting too deep for the parser refused as UnsafeInput."""
    try:
        return json.loads(text)
    except RecursionError:
        raise UnsafeInput("JSON nested too deeply") from None


def bounded(value: Any, *, max_depth: int = 32, max_items: int = 5_000, max_chars: int = 100_000,
            _depth: int = 0) -> Any:
    """A copy of JSON-like `value` cut to size: strings to `max_chars`, lists and mappings to
    `max_items` entries, nesting below `max_depth` dropped (None)."""
    if isinstance(value, str):
        return value if len(value) <= max_chars else value[:max_chars] + "…"
    if _depth >= max_depth:
        return None
    if isinstance(value, dict):
        return {str(k)[:1000]: bounded(v, max_depth=max_depth, max_items=max_items, max_chars=max_chars,
                                       _depth=_depth + 1) for k, v in list(value.items())[:max_items]}
    if isinstance(value, list | tuple):
        return [bounded(v, max_depth=max_depth, max_items=max_items, max_chars=max_chars, _depth=_depth + 1)
                for v in value[:max_items]]
    return value
