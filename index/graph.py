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


GRAPH_LAYOUT = "2"  # how records are stored; a store of another layout is rebuilt from the catalog
_META = ox.NamedNode("https://w3id.org/modelport/graph-meta")
_LAYOUT = ox.NamedNode(PREFIXES["mp"] + "graphLayout")


class GraphStore:
    """Records' own triples live in the default graph: Oxigraph indexes a default-graph triple three
    ways and a named-graph quad six, so a record costs about half the store's CPU it did as a named
    graph of its own (bench/results/graph-lean-2026-12-02.md). A record's triples are its IRI's and
    those of the nodes it owns (`<record IRI>#part`), so it is still replaced or removed as a whole,
    in one transaction. Shared nodes (profiles, cells, agents) and the KB stay in named graphs."""

    def __init__(self, path: Path | str | None) -> None:
        self.store = ox.Store(str(path)) if path is not None else ox.Store()
        self._shared: set[str] = set()  # shared-node graphs known to be stored (see add_shared)

    # -- writes ------------------------------------------------------------------------------
    def layout_current(self) -> bool:
        """Whether the store holds records the way this code writes them (an empty store does)."""
        marker = ox.Quad(_META, _LAYOUT, ox.Literal(GRAPH_LAYOUT), _META)
        if marker in self.store:
            return True
        if next(iter(self.store.quads_for_pattern(None, None, None)), None) is None:
            self.store.add(marker)
            return True
        return False

    def has_record(self, iri: str) -> bool:
        s = ox.NamedNode(iri)
        return next(iter(self.store.quads_for_pattern(s, None, None, ox.DefaultGraph())), None) is not None

    def replace(self, items: Iterable[tuple[str, str]]) -> None:
        """(record IRI, N-Triples) pairs: each record's old triples are deleted and the new ones inserted in
        one SPARQL update, which Oxigraph applies as a single transaction: readers never see a
        half-replaced record."""
        items = list(items)
        if items:
            self.store.update(_delete_records([iri for iri, _ in items]) + " ;\nINSERT DATA {\n"
                              + "".join(nt for _, nt in items) + "}")

    def add_new(self, items: list[tuple[str, str]]) -> None:
        """Records the store has never held, in one bulk load (Oxigraph's fast path; not transactional,
        which is harmless for records nobody can have read yet — and the catalog's outbox replays a
        batch cut short)."""
        if items:
            self.store.bulk_load("".join(nt for _, nt in items).encode(), format=ox.RdfFormat.N_TRIPLES)

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
        """Remove records (their triples and those of the nodes they own)."""
        iris = list(iris)
        for k in range(0, len(iris), 500):
            self.store.update(_delete_records(iris[k:k + 500]))

    def clear(self) -> None:
        """Empty the store; it is then of this code's layout (the caller re-projects every record)."""
        self.store.clear()
        self._shared.clear()
        self.store.add(ox.Quad(_META, _LAYOUT, ox.Literal(GRAPH_LAYOUT), _META))

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


def _delete_records(iris: list[str]) -> str:
    """A SPARQL update deleting records from the default graph: each record IRI's triples and those of
    the nodes it owns (`<IRI>#…`, reached from the record in one or two steps: a verified cell's run and
    evidence hang off the cell).

    Each branch of the UNION carries its own VALUES. SPARQL evaluates a group bottom-up, so a variable
    bound only outside a group is unbound inside it: `VALUES ?m {…} { BIND(?m AS ?s) ?s ?p ?o }`
    matches every triple of the store, and deleted every other record whenever one was replaced."""
    values = "VALUES ?m { " + " ".join(f"<{iri}>" for iri in iris) + " }"
    owned = "FILTER(isIRI({v}) && STRSTARTS(STR({v}), CONCAT(STR(?m), \"#\")))"
    return ("DELETE { ?s ?p ?o } WHERE { "
            f"{{ {values} ?m ?p ?o . BIND(?m AS ?s) }} UNION "
            f"{{ {values} ?m ?q ?s . {owned.format(v='?s')} ?s ?p ?o }} UNION "
            f"{{ {values} ?m ?q ?x . {owned.format(v='?x')} ?x ?r ?s . {owned.format(v='?s')} ?s ?p ?o }} }}")


def _nquads(items: Iterable[tuple[str, str]]) -> bytes:
    """(graph IRI, N-Triples) pairs as N-Quads: each triple line gets its graph."""
    return "".join(nt.replace(" .\n", f" <{iri}> .\n") for iri, nt in items).encode()
