"""Lineage search: which records descend from a base model, at what generation, through which
relation. The same walk serves every backend; a backend only answers three lookups (records named
like the base, records whose name starts like it, records linking to a set of keys).

Keys are how links meet records across sources. A record is known by its id, its source-local id
and its aliases (`node_keys`); a link names its base by the source's reference, which may be a
record id (`huggingface:org/name`), a URL (Kaggle's `https://huggingface.co/org/name`) or a bare
name, so a link is indexed under the reference, its source-local part and its last path segment
(`ref_keys`). Keys are lower-case with runs of spaces folded to '-' ("Llama 2 7B" = "llama-2-7b").

The walk goes breadth first from the roots and stops at `depth` generations or `MAX_NODES`
records; a descendant's generation is the shortest path to it. With relations given, a descendant
qualifies when the link that reached it (its own link into the previous generation) has one of
them; the walk itself follows every relation ("quantized versions of X" includes GGUFs of X's
fine-tunes, at their generation).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

MAX_DEPTH = 10  # "any depth": real Hub trees are 2-5 generations deep
MAX_NODES = 50_000  # a walk stops (and says so) past this many descendants
MAX_ROOTS = 50  # a name prefix matching more records than this is too vague to be a base
MAX_PREFIX = 2_000  # records read for a name prefix (the shortest MAX_ROOTS of them are candidates)


def norm_key(text: str) -> str:
    return re.sub(r"\s+", "-", text.strip().strip('"').lower())


def local_part(ref: str) -> str:
    """`huggingface:org/name` → `org/name`; `https://huggingface.co/org/name/tree/main` → `org/name`."""
    ref = ref.strip()
    if "://" in ref:
        path = ref.split("://", 1)[1].split("/", 1)[1] if "/" in ref.split("://", 1)[1] else ""
        parts = [p for p in path.split("/") if p]
        if "tree" in parts:
            parts = parts[:parts.index("tree")]
        if parts and parts[0] in ("models", "api"):
            parts = parts[1:]
        return "/".join(parts[:2]) if len(parts) >= 2 else "/".join(parts)
    head, sep, rest = ref.partition(":")
    return rest if sep and "/" not in head and rest else ref


def ref_keys(ref: str) -> list[str]:
    """The keys a link to `ref` is indexed under: the reference, its local part, its last segment."""
    local = local_part(ref)
    return list(dict.fromkeys(k for k in (norm_key(ref), norm_key(local), norm_key(local.rsplit("/", 1)[-1])) if k))


def node_keys(record_id: str, local_id: str, aliases: Iterable[str] = ()) -> list[str]:
    """The keys a record answers to as a base: its id, its local id, its aliases (and theirs)."""
    out = [norm_key(record_id), norm_key(local_id)]
    for a in aliases:
        out += [norm_key(a), norm_key(local_part(a))]
    return list(dict.fromkeys(k for k in out if k))


def link_token(relation: str, key: str) -> str:
    return f"{relation}|{key}"


@dataclass(frozen=True)
class Node:
    """A record as the walk sees it: its id, the keys it answers to, its links (relation, key)."""

    id: str
    keys: tuple[str, ...]
    links: tuple[tuple[str, str], ...] = ()


@dataclass
class Tree:
    """The result of a walk: qualifying descendants with their generation (1 = direct)."""

    roots: list[str] = field(default_factory=list)  # records the base name resolved to
    generation: dict[str, int] = field(default_factory=dict)  # qualifying descendant → generation
    reached: int = 0  # descendants reached, qualifying or not
    truncated: bool = False


class Lookups:
    """What a backend answers for the walk (each returns at most `limit` nodes)."""

    exact: Callable[[str, int], list[Node]]  # records whose id / name / alias is this key
    prefix: Callable[[str, int], list[Node]]  # records whose name starts with this key
    children: Callable[[list[str], int], list[Node]]  # records with a link to any of these keys

    def __init__(self, exact: Callable[[str, int], list[Node]], prefix: Callable[[str, int], list[Node]],
                 children: Callable[[list[str], int], list[Node]]) -> None:
        self.exact, self.prefix, self.children = exact, prefix, children


def walk(base: str, relations: list[str] | None, depth: int | None, look: Lookups,
         max_nodes: int = MAX_NODES) -> Tree:
    """Descendants of the top-most records `base` names (by id, local id, name or alias, or as the
    start of a name) and of links that name `base` itself."""
    x = norm_key(base)
    exact = look.exact(x, MAX_ROOTS + 1)
    # Names are also matched as a prefix ("llama-2-7b" → "llama-2-7b-hf"): a record named exactly
    # like the base may be a copy of it elsewhere (Kaggle's "llama-2-7b-chat"); the top-most record
    # of all of them is the base.
    # The shortest names first: with more matches than MAX_ROOTS, the base is among the shortest.
    prefixed = sorted(look.prefix(x, MAX_PREFIX), key=lambda n: (min((len(k) for k in n.keys), default=0), n.id))
    truncated = not exact and len(prefixed) > MAX_ROOTS
    roots = list({n.id: n for n in [*exact, *prefixed]}.values())[:MAX_ROOTS]
    start = [x, norm_key(local_part(base))]
    tree = _walk_from(roots, start, relations, depth, look, max_nodes)
    if set(tree.roots) != {n.id for n in roots}:
        # Name-prefix matches that descend from another match ("llama-2-7b-chat-hf" from
        # "llama-2-7b-hf") are descendants, not bases: walk again from the top-most ones only.
        top = [n for n in roots if n.id in set(tree.roots)]
        tree = _walk_from(top, start, relations, depth, look, max_nodes)
    tree.truncated = tree.truncated or truncated
    return tree


def _walk_from(roots: list[Node], start: list[str], relations: list[str] | None, depth: int | None,
               look: Lookups, max_nodes: int) -> Tree:
    tree = Tree()
    root_ids = {n.id for n in roots}
    frontier_keys = list(dict.fromkeys([*start, *(k for n in roots for k in n.keys)]))
    seen = set(root_ids)
    wanted = set(relations or ())
    max_depth = min(depth or MAX_DEPTH, MAX_DEPTH)
    gen = 0
    while frontier_keys and gen < max_depth and not tree.truncated:
        gen += 1
        keyset = set(frontier_keys)
        next_keys: list[str] = []
        for n in look.children(frontier_keys, max_nodes + 1):
            if n.id in root_ids:
                root_ids.discard(n.id)  # a root reached from another root is not a base
            elif n.id in seen:
                continue
            seen.add(n.id)
            tree.reached += 1
            if not wanted or any(rel in wanted and key in keyset for rel, key in n.links):
                tree.generation.setdefault(n.id, gen)
            next_keys += n.keys
            if tree.reached >= max_nodes:
                tree.truncated = True
                break
        frontier_keys = list(dict.fromkeys(next_keys))
    tree.roots = sorted(root_ids)
    for r in root_ids:
        tree.generation.pop(r, None)
    return tree


def generation_weight(gen: int) -> float:
    """A descendant's ranking weight: direct ones count most (1, 1/2, 1/3, …)."""
    return 1.0 / gen if gen > 0 else 0.0


__all__ = ["MAX_DEPTH", "MAX_NODES", "Node", "Tree", "Lookups", "walk", "norm_key", "local_part", "ref_keys",
           "node_keys", "link_token", "generation_weight"]
