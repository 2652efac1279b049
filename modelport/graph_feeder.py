"""The graph writer that follows a running harvest, batch by batch (see `GraphFeeder`)."""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future

from modelport.errors import describe
from modelport.index.catalog import Catalog
from modelport.projections import GraphProjection
from modelport.schema.record import ModelRecord

# The pipeline's logger: the feeder's messages are about the harvest it follows.
log = logging.getLogger("modelport.pipeline")


class GraphFeeder:
    """Writes a running harvest's batches to the graph: each batch is serialized in the harvest's thread
    (Python) and written on one writer thread (Oxigraph, without the GIL) while the harvest reads the
    next. At most one write is in flight: when the store is slower than the harvest, the harvest waits
    for it, so the graph never falls more than about two batches behind. A batch that fails (a record
    whose triples are refused, a full disk) stops the feeding: its records stay in the graph outbox,
    and the catch-up at the end of the harvest writes them, setting bad records aside."""

    def __init__(self, catalog: Catalog, projection: GraphProjection) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.catalog = catalog
        self.projection: GraphProjection | None = projection  # None once closed
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="graph-feeder")
        self.pending: tuple[Future[None], list[tuple[str, int]]] | None = None
        self.waiting: float | None = None  # when the oldest batch not yet written was stored
        self.failed = False

    def feed(self, live: list[ModelRecord], revisions: list[tuple[str, int]],
             fresh: set[str] | frozenset[str] = frozenset()) -> None:
        projection = self.projection
        if self.failed or not live or projection is None:
            return
        stored = time.monotonic()
        if self.waiting is None:
            self.waiting = stored
        try:
            work = projection.serialize(live, [], fresh)
        except Exception as e:  # noqa: BLE001 — the catch-up isolates the record that caused it
            self._fail(e)
            return
        self._finish()
        if not self.failed:
            self.waiting = stored if self.pending is None else self.waiting
            self.pending = (self.pool.submit(projection.write, work), revisions)

    def _fail(self, e: BaseException) -> None:
        self.failed = True
        log.warning("the graph stops following this harvest (its catch-up writes the rest): %s", describe(e, 500))

    def _finish(self) -> None:
        if self.pending is None:
            return
        future, revisions = self.pending
        self.pending = None
        try:
            future.result()
        except Exception as e:  # noqa: BLE001 — the records stay in the outbox; the catch-up retries
            self._fail(e)
            return
        self.catalog.mark_clean(revisions, outbox="graph")
        self.waiting = None

    def lag_s(self) -> float:
        waiting = self.waiting
        return 0.0 if waiting is None else max(time.monotonic() - waiting, 0.0)

    def close(self) -> None:
        try:
            if self.projection is not None:
                self._finish()
        finally:
            self.pool.shutdown(wait=True)
            self.waiting = None
            # A failed harvest's traceback keeps this object alive; it must not keep the graph store (and
            # its directory lock) alive after Pipeline.close().
            self.projection = None
