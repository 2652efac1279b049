"""The FastAPI application: search, model records, SPARQL, harvest log, health and a web page."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from modelport import __version__
from modelport.api import hf_compat, models_routes, publish, search_routes, sparql_routes, web
from modelport.index.search import SearchBackendError
from modelport.scheduler import AlreadyRunning, HarvestScheduler, UnknownSource
from modelport.services import Services
from modelport.settings import Settings

log = logging.getLogger(__name__)


class HarvestRequest(BaseModel):
    source: str
    mode: Literal["full", "incremental"] | None = None


def _warm(services: Services) -> None:
    try:
        services.hybrid.warm()
    except Exception as e:  # noqa: BLE001 — a failed warm-up only means the first search loads it
        log.warning("search warm-up failed: %s", e)


def create_app(settings: Settings | None = None, warm_search: bool = False) -> FastAPI:
    """`warm_search`: load the embedding model and its query fast path at start-up, in the
    background (seconds), instead of inside the first text search (`modelport serve` does)."""
    services = Services(settings)
    scheduler = HarvestScheduler(services.pipeline)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scheduler.start()
        if warm_search:
            threading.Thread(target=_warm, args=(services,), name="search-warm-up", daemon=True).start()
        yield
        scheduler.shutdown()
        services.close()

    app = FastAPI(
        title="ModelPort",
        version=__version__,
        description="Federated discovery of machine-learning models: search by task, format, runtime "
                    "compatibility and metrics; every record as JSON, JSON-LD and Turtle; SPARQL 1.1 over the graph.",
        lifespan=lifespan,
    )
    app.state.services = services

    @app.exception_handler(SearchBackendError)
    async def backend_unavailable(request: Request, exc: SearchBackendError) -> JSONResponse:
        # A remote search server that is down is the service's state, not the request's fault.
        return JSONResponse(status_code=503, content={"detail": str(exc)})

    @app.get("/health", tags=["meta"])
    def health() -> dict[str, object]:
        return {"status": "ok", "version": __version__, "records": services.catalog.count(),
                "sources": services.catalog.sources(), "pending_projection": services.catalog.dirty_count(),
                "pending_graph": services.catalog.dirty_count("graph")}

    @app.get("/harvests", tags=["harvest"])
    def harvests(source: str | None = None, limit: int = 50) -> list[dict[str, object]]:
        """The job log: every harvest with its start, end, counts and errors, and the records it set aside
        (quarantined: their content a store or projection refused; retried when they change or on reindex)
        that are still aside."""
        return [{**j.__dict__, "quarantined": [
                    {"record_id": q.record_id, "stage": q.stage, "reason": q.reason, "at": q.quarantined_at}
                    for q in services.catalog.quarantined(job_id=j.id, limit=100)]}
                for j in services.catalog.jobs(source, min(max(limit, 1), 500))]

    @app.get("/harvests/sources", tags=["harvest"])
    def harvest_sources() -> list[dict[str, object]]:
        """Configured sources with their schedule, next run, whether one is running and the last result."""
        return scheduler.schedules()

    @app.post("/harvests", status_code=202, tags=["harvest"])
    def start_harvest(body: HarvestRequest) -> dict[str, str]:
        """Ask the scheduler to harvest a configured source now (202: queued; see GET /harvests)."""
        try:
            scheduler.run_now(body.source, body.mode)
        except UnknownSource:
            raise HTTPException(404, f"no configured source {body.source!r}; configured: "
                                     f"{sorted(scheduler.sources)}") from None
        except AlreadyRunning:
            raise HTTPException(409, f"a harvest of {body.source!r} is already running") from None
        return {"source": body.source, "status": "queued"}

    app.include_router(search_routes.router)
    app.include_router(models_routes.router)
    app.include_router(sparql_routes.router)
    app.include_router(web.router)
    app.include_router(publish.router)
    app.include_router(hf_compat.router)
    return app
