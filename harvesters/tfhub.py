"""TF Hub source: crawls the TF Hub documentation tree (markdown, or its HTML rendering) with Scrapy
and maps each model version document to a ModelRecord.

Flow (one write path, as every source): spider → Scrapy item pipeline → JSON lines → `events()` →
SourceRecord (payload = the parsed document plus what only the whole crawl knows) → Pipeline.

What only the whole crawl knows, and why it is added here after the crawl rather than in the item
pipeline: a variant document (Lite/Tfjs/Coral) names its parent, but the parent may be crawled
before or after it, and a parent's record must list its variants' formats (`declared_formats`, so
its compatibility matrix gains TFLite/TF.js/Edge TPU targets). The source holds every item once the
crawl has finished, so it links variants to parents, collections to members and publisher documents
(the Agent registry) to records in one pass, then emits records. A parent's payload therefore changes
when a variant appears or disappears, and the pipeline updates it like any changed record.

Records: one per model version document (Module, Placeholder) and one per deployment (Lite, Tfjs,
Coral), local id = the tfhub.dev URL path (`google/spice/1`, `google/lite-model/spice/1`), which keeps
a Lite and a Module document with the same handle apart. Collection documents are not records: their
members get a `collection` link, the collection name as keyword and `source_facts["collections"]`.
Publisher documents are not records either: they form the Agent registry that names each record's
publisher (display name, icon in `source_facts["publisher"]`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pydantic import Field, field_validator
from rdflib import RDF

from modelport.harvesters.base import (
    Checkpoint,
    HarvestEvent,
    HarvestMode,
    ListingComplete,
    MalformedRecord,
    Skipped,
    SourceError,
    SourceRecord,
    new_provenance,
)
from modelport.harvesters.plugin import SourceContext, SourceOptions, SourcePlugin
from modelport.harvesters.tfhub_crawl import CrawlConfig, CrawlFailed, CrawlSummary, run_crawl
from modelport.harvesters.tfhub_parse import MODEL_TYPES, VARIANT_TYPES, ParsedDoc
from modelport.schema.kb import MP, get_kb, local_name
from modelport.schema.record import (
    Agent,
    BaseModelLink,
    CardSections,
    Link,
    ModelRecord,
    Provenance,
    source_terms,
)

HARVESTER_VERSION = "1.0.0"
TFHUB_BASE = "https://tfhub.dev/"
# Kaggle Models took over tfhub.dev (redirects since 2023-11). Its slugs are not derivable from a TF
# Hub handle in general, so this link is a pattern (`/models/<publisher>/<name>`), exact for
# single-segment names such as google/universal-sentence-encoder.
KAGGLE_MODEL_PATTERN = "https://www.kaggle.com/models/{publisher}/{name}"
LICENSE_DEFAULT = "Apache-2.0"
LICENSE_DEFAULT_NOTE = ("license: absent means Apache-2.0 (TF Hub documentation convention,"
                        " tensorflow/docs site/en/hub/writing_documentation.md)")
CARD_BODY_CAP = 20_000
_TFHUB_LINK_RE = re.compile(r"\((https?://tfhub\.dev/[^)\s]+)\)")
# Metadata copied from a parent to its deployments, which carry none of their own.
INHERITED_KEYS = ("task", "dataset", "network-architecture", "language", "license")


# -- KB look-ups (data, not code: ontology/kb/formats.ttl, libraries.ttl) --------------------------

@cache
def _literal_index(rdf_type: str, prop: str) -> dict[str, tuple[str, ...]]:
    kb = get_kb()
    out: dict[str, list[str]] = {}
    for s, o in kb.graph.subject_objects(MP[prop]):
        if (s, RDF.type, MP[rdf_type]) in kb.graph:
            out.setdefault(_norm_token(str(o)), []).append(local_name(s))
    return {k: tuple(sorted(set(v))) for k, v in out.items()}


def _norm_token(value: str) -> str:
    return re.sub(r"[\s_-]+", "", value).lower()


def format_for_tfhub(doc_type: str, fmt_value: str | None) -> str | None:
    """KB format of a document: its `format` metadata for Modules, its type for deployments."""
    if doc_type == "Module":
        hits = _literal_index("Format", "tfhubFormat").get(_norm_token(fmt_value or ""), ())
    else:
        hits = _literal_index("Format", "tfhubDocType").get(_norm_token(doc_type), ())
    return hits[0] if hits else None


def library_for_tfhub(doc_type: str) -> str | None:
    hits = _literal_index("Library", "tfhubDocType").get(_norm_token(doc_type), ())
    return hits[0] if hits else None


# -- the source ------------------------------------------------------------------------------------

# CrawlConfig fields the source sets itself; the rest may be given as `crawl_options`.
_HOST_CRAWL_KEYS = frozenset({"root", "incremental", "cache_dir", "items_path", "summary_path"})


class TFHubOptions(SourceOptions):
    """The `options` table of a TF Hub `[[sources]]` entry."""

    root: str = Field(min_length=1, max_length=2000)  # http(s):// listing or site, file:// or a directory
    # Bounds and politeness of the crawl (tfhub_crawl.CrawlConfig: max_pages, max_seconds, …).
    crawl_options: dict[str, Any] = Field(default_factory=dict)
    timeout: float | None = Field(default=None, gt=0)  # the crawl process's hard limit

    @field_validator("crawl_options")
    @classmethod
    def _crawl_fields(cls, v: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(v) - (set(CrawlConfig.model_fields) - _HOST_CRAWL_KEYS))
        if unknown:
            raise ValueError(f"not a crawl option: {', '.join(unknown)}")
        CrawlConfig.model_validate({**v, "root": "file:///", "items_path": "-", "summary_path": "-"})
        return v


class TFHubSource(SourcePlugin):
    """A TF Hub documentation tree at `root` (http(s):// listing or site, or file://)."""

    kind = "tfhub"
    harvester_version = HARVESTER_VERSION

    def __init__(self, root: str, *, name: str = "tfhub",
                 cache_dir: Path | str | None = None, crawl_options: dict[str, Any] | None = None,
                 timeout: float | None = None) -> None:
        root = root.strip()
        if "://" not in root:  # a plain directory path is the file:// form
            p = Path(root).expanduser()
            if not p.exists():
                raise SourceError(f"TF Hub root {root!r} is neither a URL nor an existing directory")
            root = p.resolve().as_uri()
        if urlparse(root).scheme not in ("http", "https", "file"):
            raise SourceError(f"TF Hub root must be an http(s):// or file:// URL, got {root!r}")
        self.root = root
        self.name = name
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.crawl_options = crawl_options or {}
        self.timeout = timeout
        self.last_summary: CrawlSummary | None = None

    Options = TFHubOptions

    @classmethod
    def create(cls, name: str, options: TFHubOptions, context: SourceContext) -> TFHubSource:
        source = cls(options.root, name=name, cache_dir=context.cache_dir("tfhub", name),
                     crawl_options=options.crawl_options, timeout=options.timeout)
        source.options = options
        return source

    # -- events ----------------------------------------------------------------------------------
    def crawl(self, incremental: bool) -> tuple[list[dict[str, Any]], CrawlSummary]:
        if incremental and self.cache_dir is None:
            raise SourceError("incremental TF Hub crawls need a cache directory (the data dir)")
        config = {**self.crawl_options, "root": self.root, "incremental": incremental,
                  "cache_dir": str(self.cache_dir) if self.cache_dir else None}
        CrawlConfig.model_validate({**config, "items_path": "-", "summary_path": "-"})  # fail early
        try:
            result = run_crawl(config, timeout=self.timeout)
        except CrawlFailed as exc:
            raise SourceError(str(exc)) from exc
        self.last_summary = result.summary
        if not result.summary.root_ok:
            reasons = "; ".join(f"{e['url']}: {e['reason']}" for e in result.summary.fetch_errors[:3])
            raise SourceError(f"cannot read TF Hub root {self.root}: {reasons or 'no response'}")
        return result.items, result.summary

    def events(self, mode: HarvestMode, checkpoint: dict[str, Any] | None) -> Iterator[HarvestEvent]:
        items, summary = self.crawl(incremental=(mode == "incremental"))
        docs: list[ParsedDoc] = []
        for item in items:
            if item["kind"] == "malformed":
                # The ref is the record id the document stands for when its title could be read,
                # so the pipeline keeps that record rather than tombstoning it for one bad edit.
                yield Skipped(ref=item.get("local_id") or item["url"],
                              reason=f"malformed TF Hub document {item['url']}: {item['reason']}")
            else:
                docs.append(ParsedDoc.model_validate(item["doc"]))
        if not docs and summary.complete:
            raise SourceError(f"no TF Hub documents found under {self.root}")
        payloads = link_documents(docs)
        for err in summary.fetch_errors:
            yield Skipped(ref=err["url"], reason=f"fetch failed: {err['reason']}")
        if summary.stopped:
            yield Skipped(ref=self.root, reason=f"{summary.stopped}: nothing tombstoned")
        seen: set[str] = set()
        for payload in payloads:
            local_id = payload["local_id"]
            if local_id in seen:  # two documents claim one handle: keep the first, report the other
                yield Skipped(ref=payload["doc"]["url"] or local_id,
                              reason=f"duplicate TF Hub handle {local_id} (also in another document)")
                continue
            seen.add(local_id)
            blob = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
            yield SourceRecord(local_id=local_id, payload=payload, url=payload["doc"]["url"],
                               etag=hashlib.sha256(blob).hexdigest()[:32])
        yield Checkpoint(state={"root": self.root, "documents": len(docs), "complete": summary.complete})
        # Unseen records may be tombstoned only when every page and document was fetched.
        if summary.complete:
            yield ListingComplete(listed=len(seen))

    # -- normalize ---------------------------------------------------------------------------------
    def normalize(self, item: SourceRecord) -> ModelRecord:
        try:
            return self._normalize(item)
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedRecord(f"TF Hub payload {item.local_id}: {exc}") from exc

    def _normalize(self, item: SourceRecord) -> ModelRecord:
        kb = get_kb()
        payload = item.payload
        doc = ParsedDoc.model_validate(payload["doc"])
        if doc.doc_type not in MODEL_TYPES:
            raise MalformedRecord(f"{doc.doc_type} documents are not model records")
        meta = _effective_metadata(doc, payload.get("parent"))
        rid = f"{self.name}:{item.local_id}"
        defaults: list[str] = []

        raw_license = _first(meta.get("license"))
        if raw_license is None:
            license_id: str | None = LICENSE_DEFAULT
            defaults.append(LICENSE_DEFAULT_NOTE)
        else:
            license_id = kb.license_id(raw_license)

        tasks: list[str] = []
        unknown_tasks: list[str] = []
        for t in _list(meta.get("task")):
            tid = kb.task_id(t)
            (tasks if tid else unknown_tasks).append(tid or t)

        declared: list[str] = []
        own_format = format_for_tfhub(doc.doc_type, doc.value("format"))
        if own_format:
            declared.append(own_format)
        declared += [f for f in payload.get("variant_formats", []) if f not in declared]

        lib = library_for_tfhub(doc.doc_type)
        archs = _list(meta.get("network-architecture"))
        publisher_info = payload.get("publisher_info") or {}
        publisher = Agent(name=publisher_info.get("display_name") or doc.publisher, kind="organization",
                          url=TFHUB_BASE + doc.publisher)

        kaggle_url = KAGGLE_MODEL_PATTERN.format(publisher=doc.publisher,
                                                 name=_kaggle_name(doc, payload.get("parent")))
        links = [Link(rel="tfhub", url=TFHUB_BASE + item.local_id), Link(rel="kaggle", url=kaggle_url)]
        if doc.url:
            links.append(Link(rel="source", url=doc.url))
        for key, rel in (("colab", "colab"), ("demo", "demo")):
            v = doc.value(key)
            if v and v.startswith(("http://", "https://")):
                links.append(Link(rel=rel, url=v))
        asset = doc.value("asset-path")
        if asset and asset.startswith(("http://", "https://")):
            links.append(Link(rel="download", url=asset))
        for coll in payload.get("collections", []):
            links.append(Link(rel="collection", url=TFHUB_BASE + coll["local_id"]))

        keywords = ["tfhub", doc.doc_type.lower(), *archs, *unknown_tasks]
        keywords += [c["name"] for c in payload.get("collections", [])]

        base_models: list[BaseModelLink] = []
        parent_handle = doc.value("parent-model")
        if doc.doc_type in VARIANT_TYPES and parent_handle:
            base_models.append(BaseModelLink(ref=f"{self.name}:{parent_handle}", relation="variant"))

        term_notes: list[str] = []  # task names too implausible to keep as source terms
        terms = source_terms("task", [("task", t) for t in unknown_tasks], term_notes.append)
        fine = doc.value("fine-tunable")
        facts: dict[str, Any] = {
            "doc_type": doc.doc_type,
            "handle": doc.handle,
            "publisher_id": doc.publisher,
            "asset_path": asset,
            "fine_tunable": (fine.lower() == "true") if fine else None,
            "tfhub_format": doc.value("format"),
            "interactive_visualizer": doc.value("interactive-visualizer"),
            "metadata": doc.metadata,
            "document_form": doc.form,
            "parse_warnings": doc.warnings,
            "term_notes": term_notes,
        }
        if publisher_info:
            facts["publisher"] = publisher_info
        if payload.get("variants"):
            facts["variants"] = payload["variants"]
        if payload.get("collections"):
            facts["collections"] = payload["collections"]
        if payload.get("parent"):
            pmeta = payload["parent"]["metadata"]
            facts["inherited_from_parent"] = sorted(k for k in INHERITED_KEYS
                                                    if k not in doc.metadata and k in pmeta)
        facts = {k: v for k, v in facts.items() if v not in (None, [], {})}

        name_part = doc.name or ""
        record = ModelRecord(
            id=rid,
            source=self.name,
            source_kind=self.kind,
            local_id=item.local_id,
            name=f"{doc.publisher}/{name_part}",
            description=doc.description or None,
            authors=[publisher],
            publisher=publisher,
            license=license_id,
            tasks=tasks,
            frameworks=[lib] if lib else [],
            declared_formats=declared,
            architecture=archs[0] if archs else None,
            base_models=base_models,
            training_datasets=[kb.dataset_id(d) for d in _list(meta.get("dataset"))],
            languages=_list(meta.get("language")),
            keywords=keywords,
            version=doc.version,
            version_group=f"{self.name}:{item.local_id.rsplit('/', 1)[0]}",
            links=links,
            card=CardSections(body=(doc.body[:CARD_BODY_CAP] or None)),
            access="public",
            source_terms=terms,
            source_facts=facts,
            provenance=Provenance(**new_provenance(self, doc.url), defaults_applied=defaults),
        )
        return record.with_hash()


def _first(v: Any) -> str | None:
    if isinstance(v, list):
        return v[0] if v else None
    return v


def _list(v: Any) -> list[str]:
    if v is None:
        return []
    return list(v) if isinstance(v, list) else [v]


def _kaggle_name(doc: ParsedDoc, parent: dict[str, Any] | None) -> str:
    # Deployments live under their parent model on Kaggle; the parent's name is the better guess.
    name = (parent or {}).get("name") or doc.name or ""
    return name.replace("/", "-")


def _effective_metadata(doc: ParsedDoc, parent: dict[str, Any] | None) -> dict[str, Any]:
    meta: dict[str, Any] = dict(doc.metadata)
    if parent:
        for key in INHERITED_KEYS:
            if key not in meta and key in parent["metadata"]:
                meta[key] = parent["metadata"][key]
    return meta


def _tfhub_path(url: str) -> str:
    return urlparse(url).path.strip("/")


def link_documents(docs: list[ParsedDoc]) -> list[dict[str, Any]]:
    """Whole-crawl linking: variants ↔ parents, collections → members, publisher docs → records.
    Returns one payload per model document, in crawl order."""
    # Crawl order varies from run to run (concurrent fetches); sorting keeps payloads, and so the
    # records' content hashes, identical for an unchanged tree.
    docs = sorted(docs, key=lambda d: (d.url or "", d.local_id))
    models = [d for d in docs if d.doc_type in MODEL_TYPES]
    publishers = {d.publisher: d for d in docs if d.doc_type == "Publisher"}
    parents = {d.handle: d for d in models if d.doc_type in ("Module", "Placeholder")}
    by_local = {d.local_id: d for d in models}

    variant_formats: dict[str, list[str]] = {}
    variants: dict[str, list[dict[str, str]]] = {}
    for d in models:
        if d.doc_type not in VARIANT_TYPES:
            continue
        parent = parents.get(d.value("parent-model") or "")
        if parent is None:
            continue
        fmt = format_for_tfhub(d.doc_type, None)
        if fmt and fmt not in variant_formats.setdefault(parent.local_id, []):
            variant_formats[parent.local_id].append(fmt)
        variants.setdefault(parent.local_id, []).append({"local_id": d.local_id, "doc_type": d.doc_type,
                                                         "format": fmt or ""})

    collections: dict[str, list[dict[str, Any]]] = {}
    for c in (d for d in docs if d.doc_type == "Collection"):
        info = {"local_id": c.local_id, "handle": c.handle, "name": (c.name or "").rsplit("/", 1)[-1],
                "description": c.description}
        for member in _collection_members(c, by_local):
            entries = collections.setdefault(member, [])
            if info not in entries:
                entries.append(info)

    out: list[dict[str, Any]] = []
    for d in models:
        payload: dict[str, Any] = {"local_id": d.local_id, "doc": d.model_dump(mode="json")}
        if d.local_id in variant_formats:
            order = [format_for_tfhub(t, None) for t in VARIANT_TYPES]
            payload["variant_formats"] = sorted(variant_formats[d.local_id],
                                                key=lambda f: order.index(f) if f in order else len(order))
            payload["variants"] = sorted(variants[d.local_id], key=lambda v: v["local_id"])
        if d.doc_type in VARIANT_TYPES:
            parent = parents.get(d.value("parent-model") or "")
            if parent is not None:
                payload["parent"] = {"local_id": parent.local_id, "name": parent.name,
                                     "metadata": parent.metadata}
        if d.local_id in collections:
            payload["collections"] = sorted(collections[d.local_id], key=lambda c: c["local_id"])
        pub = publishers.get(d.publisher)
        if pub is not None:
            payload["publisher_info"] = {"id": pub.publisher, "display_name": pub.description,
                                         "icon": pub.icon, "url": pub.url}
        out.append(payload)
    return out


def _collection_members(collection: ParsedDoc, by_local: dict[str, ParsedDoc]) -> list[str]:
    """Member local ids from the collection body's tfhub.dev links; a version-less link names every
    version of that model."""
    members: list[str] = []
    for url in _TFHUB_LINK_RE.findall(collection.body):
        path = _tfhub_path(url.split("?", 1)[0])
        hits = [path] if path in by_local else sorted(lid for lid in by_local if lid.rsplit("/", 1)[0] == path)
        members += [h for h in hits if h not in members]
    return members


# -- CLI -------------------------------------------------------------------------------------------

__all__ = ["TFHubSource", "link_documents", "format_for_tfhub", "library_for_tfhub"]
