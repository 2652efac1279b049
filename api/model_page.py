"""The model page (`/models/{id}` for a client that prefers text/html): the record, its compatibility
matrix as a coloured table whose cells open their explanation, hardware fit, lineage and versions
from the graph, evaluations, card sections and the record's JSON-LD embedded for crawlers.

Every cell is rendered from the matrix's own dictionaries (`schema/compat_explain.matrix`): fields this
page does not know by name are still shown, so what the derivation adds to a cell appears here."""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import quote

import pyoxigraph as ox
from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup, escape

from modelport.api.web import templates
from modelport.index.catalog import StoredRecord
from modelport.schema.compat_explain import matrix
from modelport.schema.identity import record_iri
from modelport.schema.kb import get_kb
from modelport.schema.rdf import DERIVED_BASE, PREFIXES, record_rdf
from modelport.services import Services

log = logging.getLogger(__name__)

STATUS_ORDER = ("verified", "native", "declared", "convertible", "failed-verification")
# Lineage predicates (schema/rdf.py writes one per BaseModelLink relation), as people name them.
DERIVED = {f"{PREFIXES['fair4ml']}fineTunedFrom": "Fine-tunes", f"{PREFIXES['mp']}adapterOf": "Adapters",
           f"{PREFIXES['mp']}quantizedFrom": "Quantizations", f"{PREFIXES['mp']}mergedFrom": "Merges",
           f"{PREFIXES['mp']}variantOf": "Variants", f"{PREFIXES['mp']}derivedFrom": "Other derivatives"}
RELATION_LABEL = {"finetune": "fine-tuned from", "adapter": "adapter of", "quantized": "quantized from",
                  "merge": "merged from", "variant": "variant of", "derived": "derived from"}
LINEAGE_SHOWN = 25  # links listed per relation; the count says how many there are
VERSIONS_SHOWN = 50
CELL_KNOWN = {"status", "runtime", "format", "range", "version_range", "precision", "path", "hops", "confidence",
              "evidence", "measurements", "label"}  # every other field of a cell is shown as it comes
_URL = re.compile(r"https?://[^\s)<>\"']+")


def linkify(text: object) -> Markup:
    """Escape `text` and make the URLs in it links (evidence cites its KB sources inline)."""
    out, last = [], 0
    s = str(text)
    for m in _URL.finditer(s):
        out += [escape(s[last:m.start()]), Markup('<a href="{0}" rel="nofollow noopener">{0}</a>').format(m.group())]
        last = m.end()
    out.append(escape(s[last:]))
    return Markup("").join(out)


def human_bytes(n: float | None) -> str:
    """Binary units, as memory sizes are quoted (a 16 GiB card shows as 16.0 GiB)."""
    if n is None:
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def human_count(n: int | None) -> str:
    if n is None:
        return "—"
    for div, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= div:
            return f"{n / div:.3g}{unit}"
    return str(n)


def compact(value: Any) -> str:
    """A value of a field this page has no layout for, in one line."""
    if isinstance(value, str | int | float | bool) or value is None:
        return str(value)
    return json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)[:600]


templates.env.filters.update(linkify=linkify, human_bytes=human_bytes, human_count=human_count, compact=compact)


def page_jsonld(svc: Services, rec: Any) -> str:
    """The record's own description (schema.org + FAIR4ML) as JSON-LD, safe inside a <script> element."""
    base = svc.settings.base_iri
    # The record as its source describes it: the derived matrix is not the record's own description,
    # and leaving it out keeps the page light (`?format=jsonld` has it).
    rdf = record_rdf(rec.normalized(), base)
    iri = record_iri(base, rec.id)
    quads = ox.parse(rdf.ntriples(), format=ox.RdfFormat.N_TRIPLES)
    # its own nodes, plus the shared profile (tasks, licence, formats …), the source terms it names and
    # the publisher it links to
    keep = (iri, f"{DERIVED_BASE}profile/", f"{DERIVED_BASE}agent/", f"{DERIVED_BASE}term/")
    mine = [t for t in quads if isinstance(t.subject, ox.NamedNode) and t.subject.value.startswith(keep)]
    text = ox.serialize(mine, format=ox.RdfFormat.JSON_LD).decode()
    return text.replace("</", "<\\/")  # "</script>" inside a literal must not end the element


def _subjects(store: ox.Store, predicate: str, obj: str) -> list[ox.NamedNode]:
    """Subjects of `?s <predicate> <obj>` in any graph, in IRI order (an index lookup in the store;
    a SPARQL query would cost its parse and plan on every page)."""
    seen = {q.subject for q in store.quads_for_pattern(None, ox.NamedNode(predicate), ox.NamedNode(obj))
            if isinstance(q.subject, ox.NamedNode)}
    return sorted(seen, key=lambda n: n.value)


def _literal(store: ox.Store, subject: ox.NamedNode, predicate: str) -> str | None:
    for q in store.quads_for_pattern(subject, ox.NamedNode(predicate), None):
        return str(q.object.value)
    return None


def lineage(svc: Services, rec: Any) -> dict[str, Any]:
    """Records derived from this one, by relation (counts and the first links), and the other versions
    of its model — from the graph, which may lag the catalog by one harvest."""
    iri = record_iri(svc.settings.base_iri, rec.id)
    out: dict[str, Any] = {"derived": [], "versions": [], "versions_total": 0, "error": None}
    ident, name, version = (f"{PREFIXES['schema']}{x}" for x in ("identifier", "name", "version"))
    try:
        store: ox.Store = svc.graph.store
        for pred, label in DERIVED.items():
            subjects = _subjects(store, pred, iri)
            if subjects:
                items = [{"id": _literal(store, s, ident) or s.value, "name": _literal(store, s, name)}
                         for s in subjects[:LINEAGE_SHOWN]]
                out["derived"].append({"label": label, "count": len(subjects), "items": items,
                                       "sparql": _sparql_link(f"SELECT ?model ?id WHERE {{ ?model <{pred}> <{iri}> ; "
                                                              f"schema:identifier ?id }} ORDER BY ?id")})
        if rec.version_group:
            group = record_iri(svc.settings.base_iri, rec.version_group)
            members = [s for s in _subjects(store, f"{PREFIXES['schema']}isPartOf", group) if s.value != iri]
            rows = [{"id": _literal(store, s, ident) or s.value, "version": _literal(store, s, version)}
                    for s in members[:VERSIONS_SHOWN]]
            out["versions"] = sorted(rows, key=lambda r: r["id"], reverse=True)
            out["versions_total"] = len(members)
    except Exception as e:  # noqa: BLE001 — the page still shows the record when the graph cannot answer
        log.warning("lineage of %s: %s", rec.id, e)
        out["error"] = str(e)
    return out


def _sparql_link(query: str) -> str:
    return "/sparql?format=html&query=" + quote(query, safe="")


def base_links(svc: Services, rec: Any) -> list[dict[str, Any]]:
    """The models this one derives from: a link when the catalog holds the base, else its name."""
    refs = [b.ref for b in rec.base_models]
    known = set(svc.catalog.get_many(refs, matrix="runtimes")) if refs else set()
    return [{"ref": b.ref, "relation": RELATION_LABEL.get(b.relation, b.relation), "known": b.ref in known,
             "url": b.ref if b.ref.startswith(("http://", "https://")) else None} for b in rec.base_models]


def hardware_rows(rec: Any, m: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per KB hardware profile the record was sized for: fit, memory and the best latency,
    measured when a source measured it, else the roofline estimate (labelled as such)."""
    kb = get_kb()
    rows = []
    for hid, fit in m["hardware_fit"].items():
        lats = [lat for lat in rec.latencies if lat.hardware == hid]
        measured = [lat for lat in lats if lat.measured]
        best = min(measured or lats, key=lambda lat: lat.latency_ms, default=None)
        hw = kb.compat.hardware.get(hid)
        rows.append({"id": hid, "label": hw.label if hw else hid, "fit": fit, "cell": m["hardware"].get(hid),
                     "latency": best, "estimate": best is not None and not best.measured})
    return sorted(rows, key=lambda r: (r["fit"].get("fits") is not True, r["label"]))


def matrix_view(m: dict[str, Any]) -> dict[str, Any]:
    kb = get_kb()
    cols = [t for t in sorted(kb.compat.targets) if any((row or {}).get(t) for row in m["cells"].values())]
    rows = sorted(m["runtimes"].items(), key=lambda kv: (STATUS_ORDER.index(kv[1]["status"])
                                                         if kv[1]["status"] in STATUS_ORDER else 9, kv[1]["label"]))
    return {"cols": [(t, kb.compat.targets[t].label) for t in cols], "rows": rows}


def render_missing(request: Request, model_id: str, error: HTTPException) -> HTMLResponse:
    """404 (no such record) or 410 (removed upstream) as a page, with a search for the name."""
    words = model_id.split(":", 1)[-1].replace("/", " ").replace("-", " ").replace("_", " ")[:200]
    return templates.TemplateResponse(request, "missing.html", {
        "message": error.detail, "status": error.status_code, "words": words, "q": ""},
        status_code=error.status_code, headers={"Vary": "Accept"})


def render(request: Request, svc: Services, stored: StoredRecord) -> HTMLResponse:
    rec = stored.record
    m = matrix(rec)
    source_url = rec.provenance.source_url or next(
        (lk.url for lk in rec.links if lk.rel in ("source", "registry", "homepage")), None)
    return templates.TemplateResponse(request, "model.html", {
        "rec": rec, "stored": stored, "m": m, "mv": matrix_view(m), "hw": hardware_rows(rec, m),
        "source_url": source_url, "bases": base_links(svc, rec), "lineage": lineage(svc, rec),
        "jsonld": page_jsonld(svc, rec), "statuses": STATUS_ORDER, "cell_known": CELL_KNOWN,
        "record_path": "/models/" + quote(rec.id, safe="/:@"), "q": "",
    }, headers={"Vary": "Accept"})  # the same URL answers JSON, JSON-LD and Turtle too
