"""Model-card (README.md) parsing for Hugging Face repos: YAML front matter, the first paragraph as a
description, and the sections users read before deploying (intended use, limitations, bias, data)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from modelport.harvesters.bounded import load_yaml

log = logging.getLogger(__name__)

# Cards are capped twice: what we read from the download (a few cards are megabytes of tables) and
# what we keep as the card body in the record (the index and the graph do not need more).
README_MAX_BYTES = 200_000
BODY_MAX_CHARS = 32_000
SECTION_MAX_CHARS = 6_000
DESCRIPTION_MAX_CHARS = 1_000

# Every pattern below runs on remote text: each is linear (no nested or overlapping quantifiers)
# or runs only on lines cut to MAX_LINE_CHARS. Headings are parsed by hand (`_heading`): the old
# pattern `^(#{1,6})\s+(.*?)\s*#*\s*$` was cubic on a long line of spaces and '#' (1.5 KB: 5.5 s).
MAX_LINE_CHARS = 2_000
MAX_HEADINGS = 2_000
_SETEXT = re.compile(r"^(=+|-+)\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_HTML_TAG = re.compile(r"<[^>]+>")
# Text the card templates leave behind when the author filled nothing in.
_PLACEHOLDER = re.compile(r"^\W*(more information needed|\[more information needed\]|needs more information|"
                          r"todo|tbd|n/?a|coming soon)\W*$", re.IGNORECASE)

# Heading names → CardSections fields. One heading may feed several fields ("Intended uses &
# limitations", "Bias, Risks, and Limitations"); order matters only within one heading.
_SECTION_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("limitations", re.compile(r"out[- ]of[- ]scope|limitation|caveat|known issues|shortcoming", re.I)),
    ("intended_use", re.compile(r"intended|\b(direct|downstream|primary|recommended)\s+uses?\b|^uses?$|"
                                r"^use cases?$|^usage( and limitations)?$", re.I)),
    ("bias", re.compile(r"\bbias|\brisks?\b|ethic|fairness|safety", re.I)),
    ("training_data", re.compile(r"training\s+(and\s+evaluation\s+)?(data|dataset|corpus)|pre-?training data|"
                                 r"^data(sets?)?$|^dataset(s)? used", re.I)),
)


@dataclass
class ParsedCard:
    front_matter: dict[str, Any] | None = None
    description: str | None = None
    sections: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    truncated: bool = False
    notes: list[str] = field(default_factory=list)  # why something was dropped, for the record


def split_front_matter(text: str) -> tuple[str | None, str]:
    """(YAML text or None, markdown) — front matter is a block between `---` lines at the very top."""
    text = text.lstrip("\ufeff")
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        return None, text
    for i in range(1, len(lines)):
        if lines[i].strip() in ("---", "..."):
            return "".join(lines[1:i]), "".join(lines[i + 1:])
    # An opening fence that never closes: treat everything as markdown rather than guess.
    return None, text


def parse_card(text: str, *, truncated: bool = False) -> ParsedCard:
    """Parse one README. Never raises on content: broken YAML or odd markdown only add notes."""
    card = ParsedCard(truncated=truncated)
    if truncated:
        card.notes.append(f"card: README longer than {README_MAX_BYTES} bytes, read the first part only")
    yaml_text, body = split_front_matter(text.replace("\r\n", "\n").replace("\r", "\n"))
    if yaml_text is not None:
        try:
            data = load_yaml(yaml_text)  # aliases that expand past a budget are refused (UnsafeInput)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 2}" if mark is not None else ""
            card.notes.append(f"card: front matter is not valid YAML{where}; ignored")
            log.info("model card front matter is not valid YAML%s", where)
            data = None
        except Exception as exc:  # a YAML bomb or a constructor quirk: still only a note
            card.notes.append(f"card: front matter unreadable ({type(exc).__name__}); ignored")
            data = None
        if data is not None and not isinstance(data, dict):
            card.notes.append("card: front matter is not a mapping; ignored")
            data = None
        card.front_matter = data
    body = _strip_comments(body).strip()
    if not body:
        return card
    card.body = body[:BODY_MAX_CHARS]
    card.description = first_paragraph(body)
    card.sections = extract_sections(body)
    return card


def _strip_comments(text: str) -> str:
    """Text without HTML comments, by a linear scan (a regex `<!--.*?-->` rescans to the end for
    every unclosed opener: quadratic)."""
    out, pos = [], 0
    while (start := text.find("<!--", pos)) >= 0:
        out.append(text[pos:start])
        end = text.find("-->", start + 4)
        if end < 0:
            return "".join(out)  # an unclosed comment runs to the end, as in HTML
        pos = end + 3
    out.append(text[pos:])
    return "".join(out)


def _heading(line: str) -> tuple[int, str] | None:
    """(level, title) of an ATX heading line (`## Title ##`), in linear time; long lines are not headings."""
    if not line.startswith("#") or len(line) > MAX_LINE_CHARS:
        return None
    level = len(line) - len(line.lstrip("#"))
    rest = line[level:]
    if level > 6 or not rest[:1].isspace():
        return None if rest or level > 6 else (level, "")
    title = rest.strip()
    closed = title.rstrip("#")
    if closed != title and (not closed or closed[-1].isspace()):  # a closing run of '#' after a space
        title = closed.rstrip()
    return level, title


def _clean_inline(text: str) -> str:
    text = _LINK.sub(lambda m: m.group(1), text)
    text = _HTML_TAG.sub("", text)
    text = re.sub(r"\*\*|__|`", "", text)
    return re.sub(r"\s+", " ", text).strip()


def _is_noise_line(line: str) -> bool:
    s = line.strip()
    return (not s or s.startswith(("|", "<", "![", "[![", ">", "---", "***", "- [", "* [")) or
            bool(_SETEXT.match(s)))


def first_paragraph(body: str) -> str | None:
    """The first run of prose lines: no headings, badges, tables, code, HTML or placeholders."""
    para: list[str] = []
    in_code = False
    for line in body.split("\n"):
        if _FENCE.match(line):
            in_code = not in_code
            if para:
                break
            continue
        if in_code:
            continue
        if _heading(line) or _is_noise_line(line):
            if para:
                break
            continue
        para.append(line.strip()[:MAX_LINE_CHARS])
        if sum(map(len, para)) > 4 * DESCRIPTION_MAX_CHARS:  # enough for the description
            break
    text = _clean_inline(" ".join(para)) if para else ""
    if not text or _PLACEHOLDER.match(text) or not re.search(r"\w", text):
        return None
    if len(text) > DESCRIPTION_MAX_CHARS:
        text = text[:DESCRIPTION_MAX_CHARS].rsplit(" ", 1)[0] + "…"
    return text


def _headings(lines: list[str]) -> list[tuple[int, int, str]]:
    """(line index, level, title) for ATX headings outside code fences."""
    out: list[tuple[int, int, str]] = []
    in_code = False
    for i, line in enumerate(lines):
        if _FENCE.match(line):
            in_code = not in_code
            continue
        if in_code:
            continue
        h = _heading(line)
        if h:
            out.append((i, h[0], _clean_inline(h[1]).strip(" :")))
            if len(out) >= MAX_HEADINGS:
                break
    return out


def section_fields(title: str) -> list[str]:
    return [name for name, rx in _SECTION_RULES if rx.search(title)]


def extract_sections(body: str) -> dict[str, str]:
    """Map card sections to CardSections fields by heading name. A section runs to the next heading
    of the same or a higher level, so its sub-sections ("### Recommendations") come with it; when a
    section and one of its sub-sections both match a field ("Intended uses & limitations" ⊃
    "Limitations and bias"), the sub-section is the more precise answer and wins."""
    lines = body.split("\n")
    heads = _headings(lines)
    cands: dict[str, list[tuple[int, int, str]]] = {}
    for n, (idx, level, title) in enumerate(heads):
        names = section_fields(title)
        if not names:
            continue
        end = len(lines)
        for idx2, level2, _ in heads[n + 1:]:
            if level2 <= level:
                end = idx2
                break
        # Template placeholders ("[More Information Needed]") are not content; a section that is
        # only placeholders and sub-headings is as good as absent.
        kept = [ln for ln in lines[idx + 1:end] if not _PLACEHOLDER.match(ln.strip()[:MAX_LINE_CHARS])]
        if not any(ln.strip() and not _heading(ln) for ln in kept):
            continue
        text = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()
        for name in names:
            cands.setdefault(name, []).append((idx, end, text))
    out: dict[str, str] = {}
    for name, secs in cands.items():
        # Sections nest or are disjoint (they end at a heading of their level or higher), so in start
        # order a section holds another exactly when the next one starts inside it: linear, not k².
        secs.sort()
        inner = [sec for i, sec in enumerate(secs) if i + 1 == len(secs) or secs[i + 1][0] >= sec[1]]
        text = "\n\n".join(t for _, _, t in inner).strip()
        if len(text) > SECTION_MAX_CHARS:
            text = text[:SECTION_MAX_CHARS].rsplit(" ", 1)[0] + "…"
        out[name] = text
    return out


__all__ = ["ParsedCard", "parse_card", "split_front_matter", "first_paragraph", "extract_sections",
           "section_fields", "README_MAX_BYTES"]
