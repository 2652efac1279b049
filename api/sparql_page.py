"""The SPARQL page: what a browser gets from GET /sparql without a query (or with `format=html`): an
editor with example queries, the answer as a table, downloads in every result format and the limits
every query runs under. Queries run exactly as the protocol endpoint runs them."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from rdflib import URIRef

from modelport.api.web import templates
from modelport.index.graph import SparqlError
from modelport.index.sparql_pool import QueryLimitError
from modelport.schema.rdf import PREFIXES
from modelport.services import Services

SHOWN_ROWS = 500  # rows rendered in the page (weight stays small); downloads carry every row up to the cap
SHOWN_GRAPH_CHARS = 60_000
EXAMPLES: tuple[tuple[str, str], ...] = (
    ("ONNX Runtime ranges of natively supported models (README)",
     "SELECT ?id ?range WHERE {\n  ?m schema:identifier ?id ; mp:profile/mp:compatibility ?c .\n"
     "  ?c mp:runtime rt:onnxruntime ; mp:status \"native\" ; mp:versionRange ?range .\n} LIMIT 50"),
    ("Image classifiers with their ImageNet accuracy",
     "SELECT ?id ?value WHERE {\n  ?m schema:identifier ?id ; mp:profile/fair4ml:mlTask task:image-classification ;\n"
     "     fair4ml:hasEvaluation ?e .\n  ?e mp:metric met:accuracy ; schema:value ?value .\n}"
     " ORDER BY DESC(?value) LIMIT 50"),
    ("Models per task",
     "SELECT ?task (COUNT(?m) AS ?models) WHERE {\n  ?m a fair4ml:MLModel ; mp:profile/fair4ml:mlTask ?task .\n}"
     " GROUP BY ?task ORDER BY DESC(?models)"),
    ("Fine-tunes and the models they come from",
     "SELECT ?id ?base WHERE {\n  ?m schema:identifier ?id ; fair4ml:fineTunedFrom ?b .\n"
     "  OPTIONAL { ?b schema:identifier ?base }\n} LIMIT 50"),
    ("Runtimes that serve Android (knowledge base)",
     "SELECT ?runtime ?label WHERE {\n  tgt:android mp:servedBy ?runtime .\n"
     "  OPTIONAL { ?runtime rdfs:label ?label }\n}"),
)
SELECT_FORMATS = ("json", "xml", "csv", "tsv")
GRAPH_FORMATS = ("turtle", "json-ld", "nt")


def _cell(term: Any) -> dict[str, str]:
    if term is None:
        return {"text": ""}
    if isinstance(term, URIRef):
        text = str(term)
        for prefix, ns in PREFIXES.items():
            if text.startswith(ns):
                return {"text": f"{prefix}:{text[len(ns):]}", "href": text}
        return {"text": text, "href": text}
    return {"text": str(term)}


def render(request: Request, svc: Services, query: str) -> HTMLResponse:
    timeout_s, max_rows = svc.settings.query_timeout_s, svc.settings.max_results * 10
    ctx: dict[str, Any] = {"query": query or EXAMPLES[0][1], "ran": bool(query.strip()), "examples": EXAMPLES,
                           "timeout_s": timeout_s, "max_rows": max_rows, "shown_rows": SHOWN_ROWS,
                           "prefixes": PREFIXES, "error": None, "q": ""}
    status = 200
    if query.strip():
        try:
            # In a killable worker process, like every query the endpoint runs (index/sparql_pool.py).
            ans = request.app.state.sparql_pool.answer(query, timeout_s, max_rows)
        except SparqlError as e:
            ctx["error"], status = f"SPARQL: {e}", 400
        except QueryLimitError as e:
            ctx["error"], status = f"{e} — narrow the query or add a LIMIT", 503
        else:
            ctx.update(kind=ans.kind, truncated=ans.truncated, took_ms=ans.elapsed_ms)
            formats = GRAPH_FORMATS if ans.kind in ("CONSTRUCT", "DESCRIBE") else (
                SELECT_FORMATS if ans.kind == "SELECT" else ("json", "xml"))
            ctx["downloads"] = [(f, "/sparql?" + urlencode({"query": query, "format": f})) for f in formats]
            if ans.kind == "SELECT":
                cols = [str(v) for v in ans.result.vars or []]
                rows = ans.result.bindings
                ctx.update(cols=cols, total=len(rows),
                           rows=[[_cell(r.get(v)) for v in ans.result.vars or []] for r in rows[:SHOWN_ROWS]])
            elif ans.kind == "ASK":
                ctx["answer"] = bool(ans.result.askAnswer)
            else:
                text = ans.result.graph.serialize(format="turtle")
                ctx.update(graph_text=text[:SHOWN_GRAPH_CHARS], graph_cut=len(text) > SHOWN_GRAPH_CHARS,
                           total=len(ans.result.graph))
    return templates.TemplateResponse(request, "sparql.html", ctx, status_code=status)
