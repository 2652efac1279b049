"""The data directory's stores, opened once per process and owned here: the catalog (the truth), the
search backend, the RDF graph and the dense-vector projection. The write path (`Pipeline`) and the read
side (`Services`) hold the same `Stores`, so neither opens a store through the other; each store opens
on first use (a CLI search needs no graph, a SPARQL query no index)."""

from __future__ import annotations

import gc
import logging
import threading
from typing import TYPE_CHECKING, Any, Literal

from modelport.errors import ServiceUnavailable
from modelport.index.backends import open_search_backend
from modelport.index.catalog import Catalog
from modelport.index.search import SearchBackend
from modelport.schema.kb import get_kb
from modelport.schema.redact import install_log_redaction
from modelport.settings import Settings

if TYPE_CHECKING:
    from modelport.index.vectors import VectorProjection

log = logging.getLogger("modelport.stores")


class Stores:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.settings.ensure_dirs()
        install_log_redaction()
        self.catalog = Catalog(self.settings.catalog_path)
        self.kb = get_kb()
        self._search: SearchBackend | None = None
        self._graph: Any = None
        self._vectors: VectorProjection | Literal[False] | None = None  # False once found unavailable
        self.vectors_unavailable: str | None = None
        # One lock for the first opens: a server opens its stores from several threads at once (the
        # search warm-up and the first requests), and two openers of one index directory raced on
        # its files ("No such file or directory" from the loser). Re-entrant: vectors opens search.
        self._opening = threading.RLock()

    @property
    def search(self) -> SearchBackend:
        if self._search is None:
            with self._opening:
                if self._search is None:
                    self._search = open_search_backend(self.settings)
        return self._search

    @property
    def graph(self) -> Any:
        if self._graph is None:
            with self._opening:
                return self._open_graph()
        return self._graph

    def _open_graph(self) -> Any:
        if self._graph is None:
            from modelport.index.graph import GraphStore

            try:
                self._graph = GraphStore(self.settings.graph_dir / "oxigraph")
            except OSError as e:
                raise ServiceUnavailable(
                    f"cannot open the graph store at {self.settings.graph_dir}: {e}. Is another modelport "
                    "process (e.g. `modelport serve`) using this data directory?") from e
            if not self._graph.layout_current():
                # A store written by an older version of the graph's shape: rebuild it from the catalog.
                log.warning("the graph store holds another layout; it is emptied and re-projected")
                self._graph.clear()
                self.catalog.mark_all_dirty("graph")
            self._graph.load_ontology(self.kb.version)
        return self._graph

    @property
    def vectors(self) -> VectorProjection | None:
        """The dense-vector projection (index/vectors.py), or None when embeddings are switched off,
        their extra is not installed or the backend is not the embedded one (`vectors_unavailable`
        says which). It shares the embedded search index's row numbers."""
        if self._vectors is None:
            with self._opening:
                self._open_vectors()
        return self._vectors or None

    def _open_vectors(self) -> None:
        if self._vectors is None:
            if self.settings.search_backend != "embedded":
                self._vectors = False
                self.vectors_unavailable = "dense vectors work with the embedded search backend only"
            else:
                from modelport.index.vectors import open_vector_projection

                projection, self.vectors_unavailable = open_vector_projection(self.settings, self.search)
                self._vectors = projection if projection is not None else False

    def close(self) -> None:
        with self._opening:
            self._close()

    def _close(self) -> None:
        if self._search is not None:
            self._search.close()
        if self._vectors:
            self._vectors.close()
        # Oxigraph (RocksDB) holds a lock on its directory until the store object is freed.
        self._search = self._graph = self._vectors = None
        gc.collect()
        self.catalog.close()


__all__ = ["Stores"]
