"""Running one read-only SPARQL query on an Oxigraph store and writing its answer in a result format.
Used inside the query worker processes (index/sparql_worker.py) and by `modelport sparql`; it imports
only the engine and rdflib, so a worker starts fast."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import pyoxigraph as ox
from oxrdflib._converter import from_ox
from rdflib import XSD, Graph, Variable
from rdflib import Literal as RdfLiteral
from rdflib.query import Result
from rdflib.term import Identifier

from modelport.errors import UserError
from modelport.index.sparql_text import inspect

QueryKind = Literal["SELECT", "ASK", "CONSTRUCT", "DESCRIBE"]
_FORMS: dict[str, QueryKind] = {"SELECT": "SELECT", "ASK": "ASK", "CONSTRUCT": "CONSTRUCT", "DESCRIBE": "DESCRIBE"}

# Result formats: key → media type. SELECT offers all four, ASK json and xml, graphs the RDF ones.
RESULT_MEDIA = {"json": "application/sparql-results+json", "xml": "application/sparql-results+xml",
                "csv": "text/csv", "tsv": "text/tab-separated-values"}
GRAPH_MEDIA = {"turtle": "text/turtle", "json-ld": "application/ld+json", "nt": "application/n-triples"}

FEDERATION_OFF = ("SERVICE (federated query) is not accepted: federation is off on this endpoint, which "
                  "never makes requests to other servers")


class SparqlError(UserError, ValueError):
    """A query the engine refused (syntax error, update, federation, unsupported form)."""


class SparqlTimeout(UserError, TimeoutError):
    """A query that ran past its time limit (the client may ask a smaller one)."""


@dataclass
class SparqlAnswer:
    kind: QueryKind
    result: Result  # rdflib result: serialize(format="json"|"xml"|"csv"|"tsv") or .graph for CONSTRUCT
    truncated: bool
    elapsed_ms: float


def check(text: str) -> QueryKind:
    """The query's form, or SparqlError for what this endpoint refuses before running anything
    (linear in the text: index/sparql_text.py)."""
    shape = inspect(text)
    if shape.is_update:
        raise SparqlError("SPARQL Update is not accepted on this endpoint (read-only)")
    if shape.service:
        raise SparqlError(FEDERATION_OFF)
    if shape.form is None:
        raise SparqlError("not a SPARQL query: expected SELECT, ASK, CONSTRUCT or DESCRIBE")
    kind = _FORMS.get(shape.form)
    if kind is None:  # (an update keyword was refused above)
        raise SparqlError("not a SPARQL query: expected SELECT, ASK, CONSTRUCT or DESCRIBE")
    return kind


def execute(store: ox.Store, text: str, prefixes: dict[str, str], timeout_s: float = 10.0,
            max_rows: int = 10_000) -> SparqlAnswer:
    """Run a read-only query over the union of all graphs. Streams solutions so the row cap and the
    deadline stop the work early where the engine streams; what it cannot stop by itself (aggregates,
    ORDER BY, string functions) is stopped by killing the worker process it runs in."""
    form = check(text)
    start = time.monotonic()
    deadline = start + timeout_s
    try:
        res = store.query(text, use_default_graph_as_union=True, prefixes=prefixes)
    except SyntaxError as e:
        raise SparqlError(str(e)) from e
    truncated = False
    if isinstance(res, ox.QueryBoolean):
        out = Result("ASK")
        out.askAnswer = bool(res)
        kind: QueryKind = "ASK"
    elif isinstance(res, ox.QuerySolutions):
        out = Result("SELECT")
        out.vars = [Variable(v.value) for v in res.variables]
        rows: list[dict[Variable, Identifier]] = []
        for i, sol in enumerate(res):
            if i >= max_rows:
                truncated = True
                break
            if i % 256 == 0 and time.monotonic() > deadline:
                raise SparqlTimeout(f"query ran past its {timeout_s:g} s limit")
            rows.append({v: _bound(val) for v, val in zip(out.vars, sol, strict=True) if val is not None})
        out.bindings = list(rows)
        kind = "SELECT"
    else:
        out = Result("CONSTRUCT")
        g = Graph()
        for prefix, ns in prefixes.items():
            g.bind(prefix, ns)
        for i, t in enumerate(res):
            if i >= max_rows:
                truncated = True
                break
            if i % 256 == 0 and time.monotonic() > deadline:
                raise SparqlTimeout(f"query ran past its {timeout_s:g} s limit")
            triple = from_ox(t)
            assert isinstance(triple, tuple)  # a CONSTRUCT/DESCRIBE answer yields triples only
            g.add(triple)
        out.graph = g
        kind = "DESCRIBE" if form == "DESCRIBE" else "CONSTRUCT"
    if time.monotonic() > deadline:
        raise SparqlTimeout(f"query ran past its {timeout_s:g} s limit")
    return SparqlAnswer(kind, out, truncated, (time.monotonic() - start) * 1000)


def _bound(val: ox.NamedNode | ox.BlankNode | ox.Literal | ox.Triple) -> Identifier:
    """A solution's value as an rdflib term; a quoted triple (RDF-star) has no place in rdflib's
    results, so such a query is refused rather than failing in the serializer."""
    term = from_ox(val)
    if not isinstance(term, Identifier):
        raise SparqlError("results that bind quoted triples (RDF-star) are not supported by this endpoint")
    return term


def serialize(ans: SparqlAnswer, key: str) -> bytes:
    """The answer in format `key` (a RESULT_MEDIA key for SELECT/ASK, a GRAPH_MEDIA key otherwise)."""
    if ans.kind in ("SELECT", "ASK"):
        data = _tsv(ans.result) if key == "tsv" else ans.result.serialize(format=key)
    else:
        graph = ans.result.graph
        assert graph is not None  # execute() sets it for CONSTRUCT and DESCRIBE
        data = graph.serialize(format=key)
    assert data is not None  # rdflib returns None only when given a destination to write to
    return data if isinstance(data, bytes) else data.encode()


def _tsv(result: Result) -> str:
    """SPARQL 1.1 TSV results (rdflib ships a TSV parser but no serializer): `?var` headers and
    terms in Turtle syntax, tabs and newlines inside literals escaped."""
    lines = ["\t".join(f"?{v}" for v in result.vars or [])]
    for row in result.bindings:
        cells = []
        for v in result.vars or []:
            term = row.get(v)
            if isinstance(term, RdfLiteral) and term.datatype == XSD.string:
                term = RdfLiteral(str(term))  # RDF 1.1: a simple literal is an xsd:string; write it plainly
            cells.append("" if term is None else term.n3().replace("\t", "\\t").replace("\n", "\\n"))
        lines.append("\t".join(cells))
    return "\n".join(lines) + "\n"
