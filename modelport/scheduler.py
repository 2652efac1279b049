"""Scheduled and on-demand harvests inside the serving process (which owns the stores): each
configured source with a cron `schedule` runs on it; `POST /harvests` queues a run now.

One worker thread runs the harvests one after another (the catalog and the projections have one
writer). APScheduler only says when a schedule is due; its job returns at once (queueing), so it
never misfires for being busy. A source is in at most one state — queued, running or idle — changed
only under one lock, and the run's `finally` always returns it to idle: a trigger while it is queued
or running is refused (409) and changes nothing; schedules due meanwhile are coalesced into the run
already queued or running; a run past its time limit (`time_limit_s` of the source) is stopped at its
next record or batch and recorded as such; shutdown stops the current run the same way and drops
what was queued. Draining the projection outboxes runs on the same worker thread, between harvests,
so it never writes beside one."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from modelport.errors import ModelPortError, UserError
from modelport.harvesters.base import HarvestEvent, HarvestMode, Source, SourceRecord
from modelport.pipeline import JobReport, Pipeline
from modelport.schema.record import ModelRecord
from modelport.schema.redact import redact_text
from modelport.settings import Settings, SourceConfig
from modelport.sources import build_source

log = logging.getLogger(__name__)


class UnknownSource(UserError, KeyError):
    """No configured source of that name."""

    http_status = 404


class AlreadyRunning(UserError, RuntimeError):
    """A harvest of that source is running already."""

    http_status = 409


class RunStopped(ModelPortError):
    """Raised inside a harvest to stop it (time limit, shutdown); the pipeline records the job as
    failed with this message and keeps every batch already stored."""


@dataclass
class RunState:
    queued: dict[str, HarvestMode | None] = field(default_factory=dict)
    running: set[str] = field(default_factory=set)
    last: dict[str, dict[str, Any]] = field(default_factory=dict)
    coalesced: dict[str, int] = field(default_factory=dict)


class _Stoppable:
    """The source as the pipeline sees it, with a check between events: a run past its deadline or
    asked to stop raises RunStopped at its next record (a call blocked inside the source's client
    returns first, within that client's own timeouts)."""

    def __init__(self, inner: Source, check: Callable[[], None]) -> None:
        self._inner, self._check = inner, check

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def kind(self) -> str:
        return self._inner.kind

    @property
    def harvester_version(self) -> str:
        return self._inner.harvester_version

    def normalize(self, item: SourceRecord) -> ModelRecord:
        return self._inner.normalize(item)

    def events(self, mode: HarvestMode, checkpoint: dict[str, Any] | None) -> Iterator[HarvestEvent]:
        events = self._inner.events(mode, checkpoint)
        try:
            for ev in events:
                self._check()
                yield ev
        finally:
            close = getattr(events, "close", None)
            if close:
                close()


BuildSource = Callable[[SourceConfig, Settings], Source]


class HarvestScheduler:
    def __init__(self, pipeline: Pipeline, build: BuildSource = build_source) -> None:
        self.pipeline = pipeline
        self.build = build
        self.sources: dict[str, SourceConfig] = {c.name: c for c in pipeline.settings.sources}
        self.scheduler = BackgroundScheduler(timezone=UTC)
        self.state = RunState()
        self._cond = threading.Condition()
        self._order: deque[str] = deque()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._drain_due = False
        # The serving process owns the stores: it brings both outboxes (search, graph) up to date by
        # itself — at start (what a crashed or graph-less run left) and then every interval — on the
        # harvest worker, so it never writes beside a harvest.
        interval = pipeline.settings.outbox_drain_interval_s
        if interval > 0:
            self.scheduler.add_job(self._request_drain, IntervalTrigger(seconds=interval, timezone=UTC),
                                   id="drain-outboxes", coalesce=True, max_instances=1,
                                   next_run_time=datetime.now(UTC))
        for config in self.sources.values():
            if config.schedule:
                # misfire_grace_time=None: a schedule missed while the process was busy or asleep still
                # runs (once: coalesce) when it wakes.
                self.scheduler.add_job(self._due, CronTrigger.from_crontab(config.schedule, timezone=UTC),
                                       args=[config.name], id=f"schedule:{config.name}", coalesce=True,
                                       max_instances=1, misfire_grace_time=None)

    def start(self) -> None:
        self._worker = threading.Thread(target=self._work, name="harvest-worker", daemon=True)
        self._worker.start()
        self.scheduler.start()

    def shutdown(self, timeout_s: float = 2.0) -> bool:
        """Stop the schedules, drop queued runs and stop the running one; True when no run is left
        after `timeout_s` (the worker is a daemon thread: it never keeps the process alive)."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        with self._cond:
            self._stop.set()
            for name in list(self.state.queued):
                self.state.last[name] = {"status": "not-run", "error": "the server stopped before it started",
                                         "started": None}
            self.state.queued.clear()
            self._order.clear()
            self._cond.notify_all()
        if self._worker is not None:
            self._worker.join(timeout_s)
            return not self._worker.is_alive()
        return True

    def schedules(self) -> list[dict[str, Any]]:
        out = []
        for name, config in sorted(self.sources.items()):
            job = self.scheduler.get_job(f"schedule:{name}")
            nxt = getattr(job, "next_run_time", None) if job else None
            with self._cond:
                state = "running" if name in self.state.running else "queued" if name in self.state.queued else "idle"
                out.append({"source": name, "kind": config.kind, "schedule": config.schedule,
                            "next_run": nxt.isoformat() if nxt else None, "running": state == "running",
                            "state": state, "time_limit_s": config.time_limit_s,
                            "coalesced": self.state.coalesced.get(name, 0), "last": self.state.last.get(name)})
        return out

    def drain(self) -> int:
        """Project what the catalog's outboxes hold; returns how many records moved."""
        catalog = self.pipeline.catalog
        if not catalog.dirty_count() and not catalog.dirty_count("graph"):
            return 0
        try:
            moved = self.pipeline.project()
        except Exception as e:  # logged; the next interval tries again
            log.error("draining the projection outboxes failed: %s", e)
            return 0
        log.info("projected %d records left in the outboxes", moved)
        return moved

    def _request_drain(self) -> None:
        with self._cond:
            self._drain_due = True  # coalesced: one drain however often it came due
            self._cond.notify_all()

    def run_now(self, name: str, mode: HarvestMode | None = None) -> None:
        """Queue a run of a configured source; refuses (changing nothing) while it is queued or running."""
        if name not in self.sources:
            raise UnknownSource(name)
        with self._cond:
            if name in self.state.running or name in self.state.queued or self._stop.is_set():
                raise AlreadyRunning(name)
            self._enqueue(name, mode)

    def _due(self, name: str) -> None:
        """A schedule fired: queue the source unless a run of it is already queued or running."""
        with self._cond:
            if name in self.state.running or name in self.state.queued:
                self.state.coalesced[name] = self.state.coalesced.get(name, 0) + 1
                log.info("schedule of %s coalesced into the run already %s", name,
                         "running" if name in self.state.running else "queued")
                return
            if not self._stop.is_set():
                self._enqueue(name, None)

    def _enqueue(self, name: str, mode: HarvestMode | None) -> None:
        self.state.queued[name] = mode
        self._order.append(name)
        self._cond.notify_all()

    def _work(self) -> None:
        while True:
            name: str | None = None
            with self._cond:
                while not self._order and not self._drain_due and not self._stop.is_set():
                    self._cond.wait()
                if self._stop.is_set():
                    return
                if self._order:  # harvests first; a harvest projects its own records anyway
                    name = self._order.popleft()
                    mode = self.state.queued.pop(name)
                    self.state.running.add(name)
                else:
                    self._drain_due = False
            if name is None:
                self.drain()
                continue
            try:
                self._run(name, mode)
            finally:
                with self._cond:
                    self.state.running.discard(name)
                    self._cond.notify_all()

    def _run(self, name: str, mode: HarvestMode | None) -> None:
        config = self.sources[name]
        started = datetime.now(UTC).isoformat()
        deadline = time.monotonic() + config.time_limit_s
        stopped: list[str] = []

        def check(_report: JobReport | None = None) -> None:
            if self._stop.is_set():
                stopped.append("stopped")
                raise RunStopped("stopped: the server is shutting down; the next run resumes from the last checkpoint")
            if time.monotonic() > deadline:
                stopped.append("timed-out")
                raise RunStopped(f"stopped: the run went past its time limit of {config.time_limit_s:g} s "
                                 f"(time_limit_s of source {name!r}); the next run resumes from the last checkpoint")

        try:
            source = _Stoppable(self.build(config, self.pipeline.settings), check)
            run_mode: HarvestMode = mode or config.options.get("mode") or "incremental"
            report = self.pipeline.harvest(source, mode=run_mode, progress=check)
            self.state.last[name] = {"job_id": report.job_id, "status": report.status, "started": started,
                                     "counts": report.counts}
        except Exception as e:  # recorded in the job log by the pipeline; the scheduler keeps going
            status = stopped[0] if stopped else "failed"
            log.error("harvest of %s %s: %s", name, status, e)
            self.state.last[name] = {"status": status, "started": started,
                                     "error": redact_text(f"{type(e).__name__}: {e}")}
