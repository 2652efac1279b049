"""The projections the pipeline feeds from the catalog's outboxes: the search index and the RDF graph
(whose writes are split into a Python half and a store half, so the two can overlap)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from modelport.index.search import SearchBackend, StagedRebuild
from modelport.schema.identity import record_iri
from modelport.schema.kb import get_kb
from modelport.schema.rdf import record_rdf
from modelport.schema.record import ModelRecord


class Projection(Protocol):
    """A view rebuilt from the catalog: gets the changed records (`fresh`: the ids it has never
    seen, which need no removal first) and the ids that left."""

    name: str

    def apply(self, live: list[ModelRecord], gone: list[str], fresh: set[str] | frozenset[str] = frozenset()
              ) -> None: ...

    def commit(self) -> None: ...

    def clear(self) -> None: ...


class SearchProjection:
    name = "search"

    def __init__(self, backend: SearchBackend) -> None:
        self.backend = backend

    def apply(self, live: list[ModelRecord], gone: list[str], fresh: set[str] | frozenset[str] = frozenset()
              ) -> None:
        if live:
            self.backend.upsert(live)
        if gone:
            self.backend.delete(gone)

    def commit(self) -> None:
        self.backend.commit()

    def clear(self) -> None:
        self.backend.clear()

    @property
    def stages_rebuild(self) -> bool:
        """Whether the backend rebuilds into a new index that searches see only once complete (a
        search server, whose readers are other processes); the embedded index is emptied instead."""
        return isinstance(self.backend, StagedRebuild)

    def _staged(self) -> StagedRebuild:
        assert isinstance(self.backend, StagedRebuild)  # callers ask `stages_rebuild` first
        return self.backend

    def begin_rebuild(self) -> None:
        self._staged().begin_rebuild()

    def finish_rebuild(self) -> None:
        self._staged().finish_rebuild()

    def abort_rebuild(self) -> None:
        self._staged().abort_rebuild()


@dataclass
class GraphBatch:
    gone: list[str]
    shared: dict[str, str] = field(default_factory=dict)
    new: list[tuple[str, str]] = field(default_factory=list)  # (graph IRI, N-Triples) never stored before
    changed: list[tuple[str, str]] = field(default_factory=list)


class GraphProjection:
    """The RDF graph, fed from its own outbox after the search projections (see index/catalog.py)."""

    name = "graph"

    def __init__(self, graph: Any, base: str) -> None:
        self.graph, self.base = graph, base

    def apply(self, live: list[ModelRecord], gone: list[str], fresh: set[str] | frozenset[str] = frozenset()
              ) -> None:
        self.write(self.serialize(live, gone, fresh))

    def serialize(self, live: list[ModelRecord], gone: list[str], fresh: set[str] | frozenset[str] = frozenset()
                  ) -> GraphBatch:
        """The Python half of a write (N-Triples text): run it while the previous batch loads. `fresh`:
        ids the catalog has just inserted, which the graph cannot hold yet."""
        batch = GraphBatch([record_iri(self.base, rid) for rid in gone])
        for r in live:
            x = record_rdf(r, self.base)
            batch.shared.update(x.shared)
            new = r.id in fresh or not self.graph.has_record(r.iri)
            (batch.new if new else batch.changed).append((r.iri, x.own))
        return batch

    def write(self, batch: GraphBatch) -> None:
        """The store half (Rust, without the GIL)."""
        self.graph.remove(batch.gone)
        # Shared nodes first: a record graph never links to a node that is not there yet.
        self.graph.add_shared(batch.shared)
        self.graph.add_new(batch.new)
        self.graph.replace(batch.changed)

    def commit(self) -> None:
        self.graph.flush()

    def clear(self) -> None:
        self.graph.clear()
        self.graph.load_ontology(get_kb().version)


def merge_batches(parts: list[GraphBatch]) -> GraphBatch:
    """One graph write for the parts of a batch serialized apart (records isolated one by one)."""
    if len(parts) == 1:
        return parts[0]
    out = GraphBatch([])
    for b in parts:
        out.gone += b.gone
        out.shared.update(b.shared)
        out.new += b.new
        out.changed += b.changed
    return out
