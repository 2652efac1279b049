"""Scheduled and on-demand harvests inside the serving process (which owns the stores): each
configured source with a cron `schedule` runs on it; `POST /harvests` queues a run now. One run
per source at a time; runs of different sources go one after another (one writer)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from modelport.harvesters.base import HarvestMode
from modelport.harvesters.registry import build_source
from modelport.pipeline import Pipeline
from modelport.schema.redact import redact_text
from modelport.settings import SourceConfig

log = logging.getLogger(__name__)


class UnknownSource(KeyError):
    pass


class AlreadyRunning(RuntimeError):
    pass


@dataclass
class RunState:
    running: set[str] = field(default_factory=set)
    last: dict[str, dict[str, Any]] = field(default_factory=dict)


class HarvestScheduler:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.sources: dict[str, SourceConfig] = {c.name: c for c in pipeline.settings.sources}
        # One worker: the catalog and the projections have a single writer.
        self.scheduler = BackgroundScheduler(executors={"default": ThreadPoolExecutor(1)}, timezone=UTC)
        self.state = RunState()
        self._lock = threading.Lock()
        # The serving process owns the stores: it brings both outboxes (search, graph) up to date by
        # itself — at start (what a crashed or graph-less run left) and then every interval — on the
        # same single worker as the harvests, so it never writes beside one.
        interval = pipeline.settings.outbox_drain_interval_s
        if interval > 0:
            self.scheduler.add_job(self.drain, IntervalTrigger(seconds=interval, timezone=UTC), id="drain-outboxes",
                                   coalesce=True, max_instances=1, next_run_time=datetime.now(UTC))
        for config in self.sources.values():
            if config.schedule:
                self.scheduler.add_job(self._run, CronTrigger.from_crontab(config.schedule, timezone=UTC),
                                       args=[config.name, None], id=f"schedule:{config.name}",
                                       coalesce=True, max_instances=1, misfire_grace_time=3600)

    def start(self) -> None:
        self.scheduler.start()

    def shutdown(self) -> None:
        self.scheduler.shutdown(wait=False)

    def schedules(self) -> list[dict[str, Any]]:
        out = []
        for name, config in sorted(self.sources.items()):
            job = self.scheduler.get_job(f"schedule:{name}")
            nxt = getattr(job, "next_run_time", None) if job else None
            out.append({"source": name, "kind": config.kind, "schedule": config.schedule,
                        "next_run": nxt.isoformat() if nxt else None, "running": name in self.state.running,
                        "last": self.state.last.get(name)})
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

    def run_now(self, name: str, mode: HarvestMode | None = None) -> None:
        """Queue a run of a configured source; refuses a second run of the same source."""
        if name not in self.sources:
            raise UnknownSource(name)
        with self._lock:
            if name in self.state.running:
                raise AlreadyRunning(name)
            self.state.running.add(name)
        self.scheduler.add_job(self._run, args=[name, mode, True], id=f"now:{name}:{datetime.now(UTC).timestamp()}")

    def _run(self, name: str, mode: HarvestMode | None, marked: bool = False) -> None:
        with self._lock:
            if not marked and name in self.state.running:
                return
            self.state.running.add(name)
        config = self.sources[name]
        started = datetime.now(UTC).isoformat()
        try:
            source = build_source(config, self.pipeline.settings)
            run_mode: HarvestMode = mode or config.options.get("mode") or "incremental"
            report = self.pipeline.harvest(source, mode=run_mode)
            self.state.last[name] = {"job_id": report.job_id, "status": report.status, "started": started,
                                     "counts": report.counts}
        except Exception as e:  # recorded in the job log by the pipeline; the scheduler keeps going
            log.error("scheduled harvest of %s failed: %s", name, e)
            self.state.last[name] = {"status": "failed", "started": started,
                                     "error": redact_text(f"{type(e).__name__}: {e}")}
        finally:
            with self._lock:
                self.state.running.discard(name)
