"""The scheduler cannot wedge a source (issue 11): two triggers in a row, a trigger during a scheduled
run, a job that raises, shutdown mid-run and a run past its time limit. Real harvests: the Hugging Face
source through the real `huggingface_hub` client against the local fake Hub, slowed per request so
a run lasts long enough to be interrupted; the real pipeline and stores under the real scheduler."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from modelport.pipeline import Pipeline
from modelport.scheduler import AlreadyRunning, HarvestScheduler
from modelport.settings import Settings, SourceConfig

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "hf"))
from fake_hub import FakeHub, _Handler  # noqa: E402


class SlowHub(FakeHub):
    """The fake Hub, answering each request after `delay_s` (set per test)."""

    delay_s = 0.0

    def start(self) -> SlowHub:
        from http.server import ThreadingHTTPServer

        hub = self

        class Handler(_Handler):
            def _dispatch(self, method: str) -> None:
                time.sleep(hub.delay_s)
                super()._dispatch(method)

        Handler.hub = hub
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self


@pytest.fixture
def hub() -> Iterator[SlowHub]:
    with SlowHub() as h:
        yield h


def source(name: str, hub: FakeHub, **kw: Any) -> SourceConfig:
    options = {"endpoint": hub.url, "page_size": 4, "files_metadata": False, "retry_attempts": 1,
               "retry_base_wait_s": 0.01, "retry_max_wait_s": 0.05, "max_consecutive_failures": 1, "mode": "full",
               "timeout_s": 5}
    return SourceConfig(name=name, kind="huggingface", options=options, **kw)


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Any]:
    made: list[tuple[HarvestScheduler, Pipeline]] = []

    def build(*sources: SourceConfig) -> HarvestScheduler:
        settings = Settings(data_dir=tmp_path / f"d{len(made)}", base_iri="http://test", embeddings=False,
                            sources=list(sources))
        pipeline = Pipeline(settings)
        sched = HarvestScheduler(pipeline)
        sched.start()
        made.append((sched, pipeline))
        return sched

    yield build
    for sched, pipeline in made:
        assert sched.shutdown(timeout_s=10)
        pipeline.close()


def state(sched: HarvestScheduler, name: str) -> str:
    return next(s["state"] for s in sched.schedules() if s["source"] == name)


def wait_for(cond: Any, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def jobs(sched: HarvestScheduler, name: str) -> list[Any]:
    return sched.pipeline.catalog.jobs(name, 50)


def test_two_triggers_in_a_row_run_both_and_leave_nothing_running(make: Any, hub: SlowHub) -> None:
    hub.delay_s = 0.02
    sched = make(source("a", hub), source("b", hub))
    sched.run_now("a")
    with pytest.raises(AlreadyRunning):  # queued or running: refused, nothing changes
        sched.run_now("a")
    sched.run_now("b")  # another source queues behind it (was: marked running forever, a 409 until restart)
    wait_for(lambda: state(sched, "a") == state(sched, "b") == "idle" and sched.state.last.get("b"))
    assert [j.status for j in jobs(sched, "a")] == ["ok"] and [j.status for j in jobs(sched, "b")] == ["ok"]
    assert sched.state.last["a"]["status"] == sched.state.last["b"]["status"] == "ok"
    sched.run_now("a")  # and each can run again
    wait_for(lambda: len(jobs(sched, "a")) == 2 and state(sched, "a") == "idle")


def test_trigger_during_a_scheduled_run_is_refused_and_schedules_coalesce(make: Any, hub: SlowHub) -> None:
    hub.delay_s = 0.15
    sched = make(source("a", hub, schedule="0 3 * * *"))
    job = sched.scheduler.get_job("schedule:a")
    job.modify(next_run_time=datetime.now(UTC))  # the cron trigger fires now, through APScheduler
    wait_for(lambda: state(sched, "a") == "running")
    with pytest.raises(AlreadyRunning):
        sched.run_now("a")
    for _ in range(3):  # the schedule comes due again while it runs: folded into this run
        sched.scheduler.get_job("schedule:a").modify(next_run_time=datetime.now(UTC))
        wait_for(lambda n=_: sched.state.coalesced.get("a", 0) == n + 1, 10)
    assert state(sched, "a") == "running"
    wait_for(lambda: state(sched, "a") == "idle")
    assert [j.status for j in jobs(sched, "a")] == ["ok"]  # one run, not four
    assert sched.schedules()[0]["next_run"]  # still scheduled


def test_a_job_that_raises_frees_its_source(make: Any, hub: SlowHub) -> None:
    hub.fail("GET", r"^/api/models\?", 401, times=100, body='{"error": "Invalid credentials"}',
             headers={"X-Error-Code": "InvalidCredentials"})
    sched = make(source("a", hub))
    sched.run_now("a")
    wait_for(lambda: sched.state.last.get("a") is not None and state(sched, "a") == "idle")
    assert sched.state.last["a"]["status"] == "failed" and sched.state.last["a"]["error"]
    hub.clear_faults()
    sched.run_now("a")  # not wedged
    wait_for(lambda: sched.state.last["a"]["status"] == "ok" and state(sched, "a") == "idle")


def test_shutdown_mid_run_stops_it_and_records_it(make: Any, hub: SlowHub, tmp_path: Path) -> None:
    hub.delay_s = 0.2
    sched = make(source("a", hub), source("b", hub))
    sched.run_now("a")
    sched.run_now("b")
    wait_for(lambda: state(sched, "a") == "running")
    started = time.monotonic()
    assert sched.shutdown(timeout_s=5)
    assert time.monotonic() - started < 5
    assert state(sched, "a") == state(sched, "b") == "idle"
    assert sched.state.last["a"]["status"] == "stopped"
    assert sched.state.last["b"]["status"] == "not-run"
    (job,) = jobs(sched, "a")
    assert job.status == "failed" and "shutting down" in job.errors[-1]["reason"]
    with pytest.raises(AlreadyRunning):  # a stopped scheduler takes nothing new
        sched.run_now("a")


def test_a_run_past_its_time_limit_is_stopped_and_recorded(make: Any, hub: SlowHub) -> None:
    hub.delay_s = 0.2
    sched = make(source("a", hub, time_limit_s=0.5))
    sched.run_now("a")
    wait_for(lambda: sched.state.last.get("a") is not None and state(sched, "a") == "idle", 30)
    assert sched.state.last["a"]["status"] == "timed-out"
    (job,) = jobs(sched, "a")
    assert job.status == "failed" and "time limit of 0.5 s" in job.errors[-1]["reason"]
    assert job.counts["seen"] < 72  # stopped part-way (the corpus has 72 models)
