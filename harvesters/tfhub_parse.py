"""TF Hub documentation grammar (`tensorflow/tfhub.dev` `tools/validator.py`): one markdown file per
model version, collection or publisher, metadata in `<!-- key: value -->` lines. Also reads the HTML
rendering of such a document (tfhub.dev page form) by turning it back into the same line grammar.
"""

from __future__ import annotations

import logging
import re
from typing import Literal

from pydantic import BaseModel, Field

from modelport.errors import BadRecordError

DocType = Literal["Module", "Placeholder", "Lite", "Tfjs", "Coral", "Collection", "Publisher"]
MODEL_TYPES: tuple[str, ...] = ("Module", "Placeholder", "Lite", "Tfjs", "Coral")
VARIANT_TYPES: tuple[str, ...] = ("Lite", "Tfjs", "Coral")

log = logging.getLogger(__name__)
_PUBLISHER = r"(?P<publisher>[a-z\d-]+)"
_NAME = r"(?P<name>[\w.-]+(?:/[\w.-]+)*)"
# The validator matches these at the start of the first line (re.match), so trailing text is ignored.
MODEL_HANDLE_RE = re.compile(
    rf"# (?P<type>Module|Placeholder|Lite|Tfjs|Coral) {_PUBLISHER}/{_NAME}/(?P<version>\d+)")
COLLECTION_HANDLE_RE = re.compile(rf"# Collection {_PUBLISHER}/(?P<name>(?:\w|-|/|&|;|\.)+)/(?P<version>\d+)")
PUBLISHER_HANDLE_RE = re.compile(rf"# Publisher {_PUBLISHER}")
METADATA_LINE_RE = re.compile(r"^<!--(?P<key>(?:\w|\s|-)+):(?P<value>.+)-->$")
ICON_RE = re.compile(r"\[!\[Icon URL\]\]\((?P<url>[^)\s]+)\)")

REPEATABLE_KEYS = frozenset({"dataset", "language", "task", "network-architecture"})
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "Module": ("asset-path", "task", "fine-tunable", "format"),
    "Placeholder": ("task",),
    "Tfjs": ("asset-path", "parent-model"),
    "Lite": ("asset-path", "parent-model"),
    "Coral": ("asset-path", "parent-model"),
    "Collection": ("task",),
    "Publisher": (),
}
# Documents written before the `task` key was introduced call it `module-type` (same values).
LEGACY_KEYS = {"module-type": "task"}
BOOLEAN_KEYS = frozenset({"fine-tunable"})

# tfhub.dev gives each variant kind its own URL segment; using the URL path as the local id keeps a
# Lite and a Tfjs document with the same handle (it happens: `google/spice/1`) from colliding.
URL_SEGMENT = {"Lite": "lite-model", "Tfjs": "tfjs-model", "Coral": "coral-model", "Collection": "collection"}


class MalformedDocument(BadRecordError):
    """The document breaks the grammar; the message says why (the crawl reports it and goes on).
    `local_id` is set when the title line could be read, so the record the document used to
    produce is known (the pipeline then keeps it instead of tombstoning it)."""

    def __init__(self, reason: str, local_id: str | None = None) -> None:
        super().__init__(reason)
        self.local_id = local_id


def local_id_for(doc_type: str, publisher: str, name: str | None, version: str | None) -> str:
    """The record's local id: the tfhub.dev URL path of the document (`<pub>/lite-model/<name>/<v>` …)."""
    if doc_type == "Publisher":
        return publisher
    seg = URL_SEGMENT.get(doc_type)
    if seg is None:
        return f"{publisher}/{name}/{version}"
    if doc_type == "Collection":
        return f"{publisher}/{seg}/{name}"
    return f"{publisher}/{seg}/{name}/{version}"


class ParsedDoc(BaseModel):
    """One documentation file, as the grammar reads it. This is the SourceRecord payload."""

    doc_type: DocType
    handle: str  # "<publisher>/<name…>/<version>", or "<publisher>" for a Publisher document
    publisher: str
    name: str | None = None
    version: str | None = None
    description: str = ""
    metadata: dict[str, str | list[str]] = Field(default_factory=dict)
    body: str = ""
    icon: str | None = None
    url: str | None = None
    form: Literal["markdown", "html"] = "markdown"
    warnings: list[str] = Field(default_factory=list)  # accepted oddities (a key repeated with its value)

    @property
    def local_id(self) -> str:
        return local_id_for(self.doc_type, self.publisher, self.name, self.version)

    def values(self, key: str) -> list[str]:
        v = self.metadata.get(key)
        if v is None:
            return []
        return list(v) if isinstance(v, list) else [v]

    def value(self, key: str) -> str | None:
        v = self.metadata.get(key)
        if isinstance(v, list):
            return v[0] if v else None
        return v


def _first_line(lines: list[str]) -> tuple[str, re.Match[str]]:
    if not lines or not lines[0].strip():
        raise MalformedDocument("first line must be '# <Type> <handle>', the document starts with a blank line")
    first = lines[0].replace("&zwnj;", "")
    for pattern in (MODEL_HANDLE_RE, COLLECTION_HANDLE_RE, PUBLISHER_HANDLE_RE):
        m = pattern.match(first)
        if m:
            kind = m.groupdict().get("type") or first[2:].split(" ", 1)[0]
            return kind, m
    raise MalformedDocument(
        f"first line {first[:120]!r} matches none of"
        " '# Module|Placeholder|Lite|Tfjs|Coral <publisher>/<name>/<version>',"
        " '# Collection <publisher>/<name>/<version>', '# Publisher <publisher>'"
    )


def parse_markdown(text: str, url: str | None = None, *,
                   form: Literal["markdown", "html"] = "markdown") -> ParsedDoc:
    """Parse one documentation file; raise MalformedDocument with the reason when it breaks the grammar."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    lines = [ln.rstrip() for ln in text.split("\n")]  # trailing spaces are noise (`fine-tunable: false  `)
    doc_type, m = _first_line(lines)
    groups = m.groupdict()
    publisher = groups["publisher"]
    name = groups.get("name")
    version = groups.get("version")
    try:
        return _parse_rest(lines, doc_type, publisher, name, version, url, form)
    except MalformedDocument as exc:
        raise MalformedDocument(str(exc), local_id_for(doc_type, publisher, name, version)) from None


def _parse_rest(lines: list[str], doc_type: str, publisher: str, name: str | None, version: str | None,
                url: str | None, form: Literal["markdown", "html"]) -> ParsedDoc:
    handle = publisher if doc_type == "Publisher" else f"{publisher}/{name}/{version}"

    # The header runs from the title to the first markdown heading; metadata lives only there
    # (as in the validator), so a `<!-- a: b -->` inside the card body is text, not metadata.
    header_end = next((i for i in range(1, len(lines)) if lines[i].startswith("#")), len(lines))

    metadata: dict[str, list[str]] = {}
    warnings: list[str] = []
    description: list[str] = []
    body: list[str] = []
    # Description: the first paragraph after the title, ended (as in the validator) by a blank line,
    # a comment or a badge/icon line; the metadata lines follow it.
    desc_state = "before"  # before → in → done
    in_comment = False
    for i, line in enumerate(lines[1:], start=1):
        stripped = line.strip()
        if in_comment:  # multi-line comments are never metadata
            in_comment = "-->" not in stripped
            continue
        if stripped.startswith("<!--") and "-->" not in stripped:
            in_comment = True
            desc_state = "done" if desc_state == "in" else desc_state
            continue
        if i < header_end:
            mm = METADATA_LINE_RE.match(stripped)
            if mm:
                key = mm.group("key").strip()
                value = mm.group("value").strip()
                if key not in REPEATABLE_KEYS and key in metadata and value in metadata[key]:
                    # Published documents do this (mobilenet_v1_0.25_128_quantized/1/metadata/1 gives
                    # `interactive-visualizer` twice): the same value again says nothing new.
                    warnings.append(f"metadata key {key!r} given twice with the same value {value!r}")
                    log.warning("%s: %s", handle, warnings[-1])
                    continue
                if key not in REPEATABLE_KEYS and key in metadata:
                    raise MalformedDocument(
                        f"metadata key {key!r} given more than once ({metadata[key][0]!r}, {value!r});"
                        f" only {', '.join(sorted(REPEATABLE_KEYS))} may repeat")
                if not value:
                    raise MalformedDocument(f"metadata key {key!r} has an empty value")
                metadata.setdefault(key, [])
                if value not in metadata[key]:
                    metadata[key].append(value)
                desc_state = "done"
                continue
            if stripped.startswith("<!--"):
                desc_state = "done" if desc_state == "in" else desc_state
                continue  # a non-metadata comment (TODOs, commented-out links): ignored
            if desc_state != "done":
                if stripped and not stripped.startswith("[!["):
                    description.append(stripped)
                    desc_state = "in"
                    continue
                if desc_state == "in" or stripped:
                    desc_state = "done"
                if not stripped:
                    continue
        body.append(_strip_comments(line))

    for key in list(metadata):
        if key in LEGACY_KEYS and LEGACY_KEYS[key] not in metadata:
            metadata[LEGACY_KEYS[key]] = metadata.pop(key)

    if not description:
        raise MalformedDocument("the line after the title must hold a short description, it is empty")
    missing = [k for k in REQUIRED_KEYS[doc_type] if k not in metadata]
    if missing:
        raise MalformedDocument(f"{doc_type} document lacks required metadata: {', '.join(missing)}")
    for key in BOOLEAN_KEYS & metadata.keys():
        if metadata[key][0].lower() not in ("true", "false"):
            raise MalformedDocument(f"metadata {key!r} must be true or false, not {metadata[key][0]!r}")

    icon = None
    body_text = "\n".join(body).strip()
    im = ICON_RE.search(body_text)
    if im:
        icon = im.group("url")
    meta_out: dict[str, str | list[str]] = {
        k: (v if k in REPEATABLE_KEYS else v[0]) for k, v in metadata.items()
    }
    return ParsedDoc(doc_type=doc_type, handle=handle, publisher=publisher, name=name, version=version,  # type: ignore[arg-type]
                     description=" ".join(description), metadata=meta_out, body=_squeeze_blank(body_text),
                     icon=icon, url=url, form=form, warnings=warnings)


_INLINE_COMMENT_RE = re.compile(r"<!--.*?-->")


def _strip_comments(line: str) -> str:
    return _INLINE_COMMENT_RE.sub("", line) if "<!--" in line else line


def _squeeze_blank(text: str) -> str:
    return re.sub(r"\n{3,}", "\n\n", text)


# -- HTML page form ------------------------------------------------------------------------------

TITLE_TEXT_RE = re.compile(r"^(Module|Placeholder|Lite|Tfjs|Coral|Collection|Publisher) \S+")


def html_title(html: str) -> str | None:
    """The text of the page's first <h1> when it reads like a documentation title, else None."""
    import lxml.html

    try:
        tree = lxml.html.fromstring(html)
    except Exception:  # noqa: BLE001 - lxml raises several types for junk input
        return None
    h1 = tree.xpath("//h1")
    if not h1:
        return None
    title = " ".join(h1[0].text_content().split())
    return title if TITLE_TEXT_RE.match(title) else None


def html_to_markdown_lines(html: str) -> str:
    """Rebuild the document's line grammar from its HTML rendering: the <h1> becomes the title line,
    HTML comments (a markdown renderer passes them through) stay comment lines, headings become
    `#` lines and every other block its text, so `parse_markdown` applies unchanged."""
    import lxml.html
    from lxml import etree

    tree = lxml.html.fromstring(html)
    h1 = tree.xpath("//h1")
    if not h1:
        raise MalformedDocument("HTML page has no <h1> title")
    container = h1[0].getparent()
    out: list[str] = []
    started = False
    for node in container.iterchildren():
        if node is h1[0]:
            started = True
            out.append("# " + " ".join(node.text_content().split()))
            _tail(node, out)
            continue
        if not started:
            continue
        if isinstance(node, etree._Comment):  # noqa: SLF001 - lxml's public comment type
            text = node.text or ""
            out.append(f"<!--{text}-->" if "\n" not in text else "<!--\n" + text + "\n-->")
        elif isinstance(node.tag, str):
            tag = node.tag.lower()
            if re.fullmatch(r"h[1-6]", tag):
                out += ["", "#" * int(tag[1]) + " " + " ".join(node.text_content().split())]
            elif tag == "pre":
                out += ["", "```", node.text_content().rstrip("\n"), "```"]
            elif tag in ("ul", "ol"):
                out.append("")
                out += ["- " + _inline_text(li) for li in node.iterchildren("li")]
            elif tag == "table":
                out.append("")
                for tr in node.iter("tr"):
                    cells = [_cell_text(td) for td in tr.iterchildren() if isinstance(td.tag, str)]
                    out.append("| " + " | ".join(cells) + " |")
            else:
                text = _inline_text(node)
                if text:
                    out += ["", text] if out and out[-1] and not out[-1].startswith("#") else [text]
        _tail(node, out)
    return "\n".join(out) + "\n"


def _tail(node: object, out: list[str]) -> None:
    tail = getattr(node, "tail", None)
    if tail and tail.strip():
        out.append(tail.strip())


def _inline_text(node: object) -> str:
    """Block text with links kept as markdown links, so collection member links survive."""
    parts: list[str] = []

    def walk(el: object) -> None:
        tag = getattr(el, "tag", None)
        if isinstance(tag, str) and tag.lower() == "a" and el.get("href"):  # type: ignore[attr-defined]
            parts.append(f"[{' '.join(el.text_content().split())}]({el.get('href')})")  # type: ignore[attr-defined]
        elif isinstance(tag, str):
            if el.text:  # type: ignore[attr-defined]
                parts.append(el.text)  # type: ignore[attr-defined]
            for child in el:  # type: ignore[attr-defined]
                walk(child)
                if child.tail:
                    parts.append(child.tail)

    walk(node)
    return " ".join("".join(parts).split())


def _cell_text(node: object) -> str:
    return _inline_text(node)


def parse_html(html: str, url: str | None = None) -> ParsedDoc:
    return parse_markdown(html_to_markdown_lines(html), url, form="html")


__all__ = ["ParsedDoc", "MalformedDocument", "parse_markdown", "parse_html", "html_title", "MODEL_TYPES",
           "VARIANT_TYPES", "REPEATABLE_KEYS", "REQUIRED_KEYS", "URL_SEGMENT", "local_id_for"]
