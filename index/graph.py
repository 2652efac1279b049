"""The RDF projection: an on-disk Oxigraph store, one named graph per record (so a record's triples
are replaced or removed atomically), the ontology and KB in a graph of their own, and SPARQL 1.1
queries answered with a time limit and a row cap through the rdflib API (oxrdflib)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyoxigraph as ox
from oxrdflib._converter import from_ox
from rdflib import Graph, Variable
from rdflib.query import Result

from modelport.schema.kb import ontology_dir
from modelport.schema.rdf import KB_GRAPH, PREFIXES

QueryKind = Literal["SELECT", "ASK", "CONSTRUCT", "DESCRIBE"]


class SparqlError(ValueError):
    """A query the engine refused (syntax error, update, unsupported form)."""


class SparqlTimeout(TimeoutError):
    pass


@dataclass
class SparqlAnswer:
    kind: QueryKind
    result: Result  # rdflib result: serialize(format="json"|"xml"|"csv"|"tsv") or .graph for CONSTRUCT
    truncated: bool
    elapsed_ms: float


_UPDATE_WORDS = ("INSERT", "DELETE", "LOAD", "CLEAR", "CREATE", "DROP", "COPY", "MOVE", "ADD")


class GraphStore:
    def __init__(self, path: Path | str | None) -> None:
        self.store = ox.Store(str(path)) if path is not None else ox.Store()
        self._shared: set[str] = set()  # shared-node graphs known to be stored (see add_shared)

    # -- writes ------------------------------------------------------------------------------
    def replace(self, items: Iterable[tuple[str, str]]) -> None:
        """(graph IRI, N-Triples) pairs; each graph is dropped and refilled in one SPARQL update,
        which Oxigraph applies as a single transaction: readers never see a half-replaced record."""
        parts = [f"DROP SILENT GRAPH <{iri}> ;\nINSERT DATA {{ GRAPH <{iri}> {{\n{nt}}} }}" for iri, nt in items]
        if parts:
            self.store.update(" ;\n".join(parts))

    def add_new(self, items: list[tuple[str, str]]) -> None:
        """Graphs of records the store has never held, in one bulk load (Oxigraph's fast path; not
        transactional, which is harmless for graphs nobody can have read yet — and the catalog's
        outbox replays a batch cut short)."""
        if items:
            self.store.bulk_load(_nquads(items), format=ox.RdfFormat.N_QUADS)

    def add_shared(self, graphs: dict[str, str]) -> int:
        """Content-addressed nodes many records link to (schema/rdf.py `RecordRdf.shared`): each is
        written once, in a graph named by its own IRI. They go in with a transactional load — a graph
        found in the store is never written again, so it must never be half there. Returns how many
        were new."""
        new = [(iri, nt) for iri, nt in graphs.items() if iri not in self._shared and not self.has_graph(iri)]
        self._shared.update(graphs)
        if new:
            self.store.load(_nquads(new), format=ox.RdfFormat.N_QUADS)
        return len(new)

    def has_graph(self, iri: str) -> bool:
        return self.store.contains_named_graph(ox.NamedNode(iri))

    def remove(self, iris: Iterable[str]) -> None:
        for iri in iris:
            self.store.remove_graph(ox.NamedNode(iri))

    def clear(self) -> None:
        self.store.clear()
        self._shared.clear()

    def load_ontology(self, kb_version: str) -> None:
        """(Re)load the vocabulary, shapes-free ontology and KB into their own graph when the KB changed."""
        marker = ox.Quad(ox.NamedNode(KB_GRAPH), ox.NamedNode(PREFIXES["mp"] + "kbVersion"),
                         ox.Literal(kb_version), ox.NamedNode(KB_GRAPH))
        if marker in self.store:
            return
        g = ox.NamedNode(KB_GRAPH)
        self.store.remove_graph(g) if self.store.contains_named_graph(g) else None
        files = [ontology_dir() / "modelport.ttl", *sorted((ontology_dir() / "kb").glob("*.ttl"))]
        for f in files:
            self.store.load(path=str(f), format=ox.RdfFormat.TURTLE, to_graph=g)
        self.store.add(marker)
        self.store.flush()

    def flush(self) -> None:
        self.store.flush()

    def triple_count(self) -> int:
        return len(self.store)

    # -- queries -----------------------------------------------------------------------------
    def query(self, text: str, timeout_s: float = 10.0, max_rows: int = 10_000) -> SparqlAnswer:
        """Run a read-only query over the union of all graphs. Streams solutions so the row cap and
        the deadline stop the work early; an aggregate that must see everything still finishes its
        first step before the deadline is checked."""
        head = _strip_prologue(text)
        if head.split(None, 1)[0].upper() in _UPDATE_WORDS if head else False:
            raise SparqlError("SPARQL Update is not accepted on this endpoint (read-only)")
        start = time.monotonic()
        deadline = start + timeout_s
        try:
            res = self.store.query(text, use_default_graph_as_union=True, prefixes=dict(PREFIXES))
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
            rows = []
            for i, sol in enumerate(res):
                if i >= max_rows:
                    truncated = True
                    break
                if i % 256 == 0 and time.monotonic() > deadline:
                    raise SparqlTimeout(f"query ran past its {timeout_s:g} s limit")
                rows.append({v: from_ox(val) for v, val in zip(out.vars, sol, strict=True) if val is not None})
            out.bindings = rows
            kind = "SELECT"
        else:
            out = Result("CONSTRUCT")
            g = Graph()
            for prefix, ns in PREFIXES.items():
                g.bind(prefix, ns)
            for i, t in enumerate(res):
                if i >= max_rows:
                    truncated = True
                    break
                if i % 256 == 0 and time.monotonic() > deadline:
                    raise SparqlTimeout(f"query ran past its {timeout_s:g} s limit")
                g.add(from_ox(t))
            out.graph = g
            kind = "DESCRIBE" if head.upper().startswith("DESCRIBE") else "CONSTRUCT"
        if time.monotonic() > deadline:
            raise SparqlTimeout(f"query ran past its {timeout_s:g} s limit")
        return SparqlAnswer(kind, out, truncated, (time.monotonic() - start) * 1000)


def _nquads(items: Iterable[tuple[str, str]]) -> bytes:
    """(graph IRI, N-Triples) pairs as N-Quads: each triple line gets its graph."""
    return "".join(nt.replace(" .\n", f" <{iri}> .\n") for iri, nt in items).encode()


def _strip_prologue(text: str) -> str:
    """The query with PREFIX/BASE declarations and comments removed, to see its form."""
    import re

    t = re.sub(r"#[^\n]*", "", text)
    t = re.sub(r"(?is)\s*(PREFIX\s+[\w-]*:\s*<[^>]*>|BASE\s*<[^>]*>)", "", t)
    return t.strip()
