"""The FastAPI application: search, model records, SPARQL, harvest log, health and a web page."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Literal

import anyio
from fastapi import FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from modelport import __version__
from modelport.api import (
    hf_compat,
    models_routes,
    publish,
    search_routes,
    sparql_description,  # noqa: F401  (registers the Service Description views)
    sparql_routes,
    web,
)
from modelport.api.deps import ADMIN_HELP, AdminOnly
from modelport.api.limits import RequestLimits
from modelport.errors import ServiceUnavailable, UserError
from modelport.index.search import cursor_key_for, set_cursor_key
from modelport.index.sparql_pool import GraphSnapshots, SparqlPool
from modelport.scheduler import AlreadyRunning, HarvestScheduler, UnknownSource
from modelport.schema.rdf import PREFIXES
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


def make_sparql_pool(services: Services) -> SparqlPool:
    s = services.settings
    snapshots = GraphSnapshots(lambda target: services.graph.snapshot(target), s.graph_dir / "oxigraph",
                               s.graph_dir / "snapshots", interval_s=s.sparql_snapshot_interval_s,
                               keep_s=2 * s.query_timeout_s + s.sparql_snapshot_interval_s + 5)
    return SparqlPool(snapshots, dict(PREFIXES), workers=s.sparql_workers, queue=s.sparql_queue,
                      memory_mb=s.query_memory_mb, max_result_bytes=s.sparql_max_result_mb << 20)


def create_app(settings: Settings | None = None, warm_search: bool = False) -> FastAPI:
    """`warm_search`: load the embedding model and its query fast path at start-up, in the
    background (seconds), instead of inside the first text search (`modelport serve` does)."""
    services = Services(settings)
    # Search cursors are signed with the data directory's key: valid across restarts, unforgeable.
    set_cursor_key(cursor_key_for(services.settings.data_dir))
    scheduler = HarvestScheduler(services.pipeline)
    pool = make_sparql_pool(services)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool.start()
        scheduler.start()
        if warm_search:
            threading.Thread(target=_warm, args=(services,), name="search-warm-up", daemon=True).start()
        yield
        pool.close()
        pool.snapshots.close()
        # A harvest that does not stop within the grace keeps its stores open: closing them under it
        # would fail its last writes, and what it stored so far is committed anyway.
        if scheduler.shutdown(timeout_s=2.0):
            services.close()

    app = FastAPI(
        title="ModelPort",
        version=__version__,
        description="Federated discovery of machine-learning models: search by task, format, runtime "
                    "compatibility and metrics; every record as JSON, JSON-LD and Turtle; SPARQL 1.1 over the graph.",
        lifespan=lifespan,
        # What any route may answer besides its own codes: malformed input, the request size cap, and a
        # search backend (or SPARQL worker) that cannot answer now.
        responses={400: {"description": "malformed input; `detail` says what"},
                   404: {"description": "no such resource (record, source, page)"},
                   406: {"description": "nothing offered is acceptable (`Accept` or `format`)"},
                   413: {"description": "request larger than MODELPORT_MAX_REQUEST_BYTES"},
                   503: {"description": "a backend cannot answer now, or a limit stopped the work"}},
    )
    app.state.services = services
    app.state.sparql_pool = pool
    # Threads for SPARQL requests of their own: queries waiting for a worker never take the threads
    # /health, /search and the rest answer on.
    app.state.sparql_limiter = anyio.CapacityLimiter(pool.size + pool.queue + 1)
    settings = services.settings
    app.add_middleware(RequestLimits, max_bytes=settings.max_request_bytes)
    if settings.cors_origins:  # off by default: browsers on other origins get no CORS headers
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Accept", "Content-Type", "Authorization"], allow_credentials=False)

    @app.exception_handler(ServiceUnavailable)
    async def unavailable(request: Request, exc: ServiceUnavailable) -> JSONResponse:
        # A remote search server that is down is the service's state, not the request's fault.
        return JSONResponse(status_code=exc.http_status, content={"detail": str(exc)})

    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError) -> JSONResponse:
        # A bad query or parameter a route did not answer itself: the client's error, with the message.
        return JSONResponse(status_code=exc.http_status, content={"detail": str(exc)})

    @app.get("/health", tags=["meta"])
    def health() -> dict[str, object]:
        out: dict[str, object] = {
            "status": "ok", "version": __version__, "records": services.catalog.count(),
            "sources": services.catalog.sources(), "pending_projection": services.catalog.dirty_count(),
            "pending_graph": services.catalog.dirty_count("graph"),
            "graph_lag_s": round(services.pipeline.graph_lag_s(), 3), "sparql": pool.describe()}
        backend_health = getattr(services.search_backend, "health", None)
        if callable(backend_health):  # a search server: its cluster's health and the index's size
            out["search"] = search = backend_health()
            if search.get("status") != "ok":
                out["status"] = "degraded"
        return out

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

    @app.post("/harvests", status_code=202, tags=["harvest"], dependencies=[AdminOnly],
              responses={401: {"description": "no admin token sent"},
                         403: {"description": "wrong admin token, or admin routes disabled"},
                         404: {"description": "no such configured source"},
                         409: {"description": "that source is already queued or running"}},
              description="Ask the scheduler to harvest a configured source now (202: queued; see GET "
                          f"/harvests). Admin only: {ADMIN_HELP}.")
    def start_harvest(body: HarvestRequest) -> dict[str, str]:
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


def run_server(app: FastAPI, host: str, port: int, on_exit: Callable[[], None] | None = None) -> None:
    """Serve `app` until SIGINT/SIGTERM and exit within seconds: the SPARQL workers are killed as the
    signal arrives (queries in flight answer 503 at once instead of running to their time limit),
    requests still open after 2 s are cancelled, and once the stores are closed the process ends
    without waiting for the interpreter's teardown of large native libraries."""
    import os
    import sys

    import uvicorn

    settings: Settings = app.state.services.settings
    # h11 refuses request heads over 16 KB with a bare 400; let them reach our 413 with its message.
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2,
                            h11_max_incomplete_event_size=settings.max_request_bytes + 16 * 1024)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: object) -> None:
            threading.Thread(target=app.state.sparql_pool.close, name="sparql-stop", daemon=True).start()
            super().handle_exit(sig, frame)  # type: ignore[arg-type]
            # uvicorn re-raises the signal after its shutdown, which would end the process before
            # `on_exit` runs (the demo's MLflow server) and report a kill; this is a clean stop.
            getattr(self, "_captured_signals", []).clear()

    server = Server(config)
    try:
        server.run()
    finally:
        if on_exit is not None:
            on_exit()
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(0 if server.started else 3)  # 3: could not start (e.g. the port is taken), as uvicorn.run says
