"""The RDF projection: an on-disk Oxigraph store, one named graph per record (so a record's triples
are replaced or removed atomically), the ontology and KB in a graph of their own, and SPARQL 1.1
queries answered with a time limit and a row cap through the rdflib API (oxrdflib)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pyoxigraph as ox

from modelport.index.sparql_exec import QueryKind, SparqlAnswer, SparqlError, SparqlTimeout, execute
from modelport.schema.kb import ontology_dir
from modelport.schema.rdf import KB_GRAPH, PREFIXES

# The query side lives in index/sparql_exec.py (run inside killable worker processes by the API);
# these names stay importable from here.
__all__ = ["GraphStore", "QueryKind", "SparqlAnswer", "SparqlError", "SparqlTimeout"]


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
        """Run a read-only query in this process (the CLI and tests; the API runs queries in the
        worker pool of index/sparql_pool.py, which can stop any query)."""
        return execute(self.store, text, dict(PREFIXES), timeout_s, max_rows)

    def snapshot(self, target: Path) -> None:
        """A consistent copy of the store at `target` (hard links to its immutable files when on the
        same file system, so cheap), which other processes may open read-only while this one writes."""
        self.store.flush()
        self.store.backup(str(target))


def _nquads(items: Iterable[tuple[str, str]]) -> bytes:
    """(graph IRI, N-Triples) pairs as N-Quads: each triple line gets its graph."""
    return "".join(nt.replace(" .\n", f" <{iri}> .\n") for iri, nt in items).encode()
