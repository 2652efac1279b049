"""The GGUF type a file name states ("Llama-3.2-1B-Instruct-Q4_K_M.gguf" → "Q4_K_M"), read with the
KB's GGUF labels and aliases (`ontology/kb/quantization.ttl`, class mp:GGUFType): the one place that
turns a file name into a quantisation label, for the harvesters and the compatibility derivation
alike. A type the KB does not list is not guessed: the name then states none (None), and the file
name itself stays in the record as the source gave it.

The rule:
- a label or alias counts only as a whole token: not preceded or followed by a letter or digit
  (`_`, `-`, `.` and `/` separate tokens, so "model_q8_0" states Q8_0, "IQ4_XS" does not state
  Q4_…); case does not matter, the answer is the KB's label ("fp16" → "F16");
- at one position the longest label wins ("Q4_K_M", not its prefix "Q4_K");
- of several tokens in one name the LAST wins: the type follows the model's own name, which may
  contain such tokens itself ("Llama-F16-Instruct-Q4_K_M.gguf" → "Q4_K_M");
- a file name that states none takes the last one its folders state (folder-per-quant layouts,
  "Q4_K_M/model-00001-of-00002.gguf").
"""

from __future__ import annotations

import re

from modelport.schema.kb import KnowledgeBase


def _matcher(spellings: tuple[tuple[str, str], ...]) -> tuple[re.Pattern[str], dict[str, str]]:
    """One pattern over every spelling (longest first, so alternation tries "Q4_K_M" before "Q4_K")
    and the map from a lower-cased spelling to its label."""
    label_of = {s.lower(): label for s, label in spellings}
    alternatives = "|".join(re.escape(s) for s in sorted(label_of, key=lambda s: (-len(s), s)))
    return re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])", re.IGNORECASE), label_of


def _spellings(kb: KnowledgeBase) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((s, q.label) for q in kb.compat.quant_types.values() if q.kind == "gguf"
                        for s in (q.label, *q.aliases)))


def _last(pattern: re.Pattern[str], label_of: dict[str, str], text: str) -> str | None:
    found = None
    for m in pattern.finditer(text):
        found = m.group(0)
    return label_of[found.lower()] if found is not None else None


# The matcher per KB instance (with the instance, so a reused id() is never mistaken for it): the
# mapping asks once per GGUF file, and listing and sorting the spellings each time cost ~20 µs a file.
_FOR_KB: dict[int, tuple[KnowledgeBase, re.Pattern[str], dict[str, str]]] = {}


def _matcher_for(kb: KnowledgeBase) -> tuple[re.Pattern[str], dict[str, str]]:
    hit = _FOR_KB.get(id(kb))
    if hit is None or hit[0] is not kb:
        if len(_FOR_KB) >= 8:
            _FOR_KB.clear()
        hit = (kb, *_matcher(_spellings(kb)))
        _FOR_KB[id(kb)] = hit
    return hit[1], hit[2]


def gguf_type_in_name(path: str, kb: KnowledgeBase) -> str | None:
    """The KB label of the GGUF type a file path states, or None (see the module's rule)."""
    pattern, label_of = _matcher_for(kb)
    folder, _, name = path.rpartition("/")
    stem = name[:-5] if name.lower().endswith(".gguf") else name
    found = _last(pattern, label_of, stem)
    if found is None and folder:
        found = _last(pattern, label_of, folder)
    return found


__all__ = ["gguf_type_in_name"]
