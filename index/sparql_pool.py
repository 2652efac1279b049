"""SPARQL for untrusted clients: queries run in a small pool of worker processes (index/sparql_worker.py)
that the server can kill, over read-only snapshots of the graph.

Why processes: Oxigraph cannot cancel a query, and an aggregate, ORDER BY or string function runs to
its end however long that takes or however much memory it needs; only killing its process stops it.
Why snapshots: the serving process owns the store and writes it (harvests), and Oxigraph calls
opening a store read-only while another process writes it undefined behaviour. `Store.backup` makes a
consistent copy (hard links, so cheap) that nothing writes; workers open that read-only.

Staleness: a snapshot is taken when a query arrives and the store's files changed since the last one,
at most every `sparql_snapshot_interval_s` — an answer misses at most the writes of that interval
(plus what the graph outbox has not projected yet)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelport.errors import ModelPortError
from modelport.index.sparql_exec import SparqlAnswer, SparqlError, check
from modelport.index.sparql_worker import recv_msg, send_msg
from modelport.index.sparql_worker import status_kb as _status_kb

log = logging.getLogger(__name__)


class QueryLimitError(ModelPortError):
    """A query stopped by a limit, or a pool that cannot take it: `limit` names the setting."""

    def __init__(self, message: str, limit: str, status: int = 503, retry_after: int | None = None,
                 peak_rss_kb: int | None = None) -> None:
        super().__init__(message)
        self.limit = limit
        self.status = self.http_status = status
        self.retry_after = retry_after
        self.peak_rss_kb = peak_rss_kb  # the stopped worker's peak resident memory, when known


class QueryRefused(SparqlError):
    """The engine refused the query (syntax and the like): the client's 400."""


@dataclass
class PoolAnswer:
    body: bytes
    kind: str
    truncated: bool
    elapsed_ms: float
    peak_rss_kb: int


class GraphSnapshots:
    """Read-only copies of the graph store for the workers, refreshed after writes (see module doc).
    Old copies are removed once no query can still be reading them."""

    def __init__(self, take: Callable[[Path], None], store_dir: Path, root: Path, interval_s: float,
                 keep_s: float) -> None:
        self.take, self.store_dir, self.root = take, store_dir, root
        self.interval_s, self.keep_s = interval_s, keep_s
        self._lock = threading.Lock()
        self._current: Path | None = None
        self._taken_at = 0.0
        self._signature: object = None
        self._gen = 0
        self._old: list[tuple[float, Path]] = []
        shutil.rmtree(root, ignore_errors=True)  # copies of an earlier run are stale
        root.mkdir(parents=True, exist_ok=True)

    def _files(self) -> object:
        # A write appends to the store's log or adds table files: their names, sizes and times change.
        try:
            return sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in os.scandir(self.store_dir))
        except OSError:
            return None

    def current(self) -> str:
        with self._lock:
            now = time.monotonic()
            if self._current is None or (now - self._taken_at >= self.interval_s and self._files() != self._signature):
                self._gen += 1
                target = self.root / f"{self._gen:06d}"
                self.take(target)
                self._signature = self._files()
                if self._current is not None:
                    self._old.append((now, self._current))
                self._current, self._taken_at = target, now
            while self._old and now - self._old[0][0] > self.keep_s:
                shutil.rmtree(self._old.pop(0)[1], ignore_errors=True)
            return str(self._current)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass(eq=False)  # identity: workers live in sets
class _Worker:
    proc: subprocess.Popen[bytes]
    sock: socket.socket
    idle_rss_kb: int = 0
    queries: int = 0


@dataclass
class PoolStats:
    killed_time: int = 0
    killed_memory: int = 0
    refused_busy: int = 0
    peak_rss_kb: int = 0
    idle_rss_kb: int = 0
    last_peak: dict[str, int] = field(default_factory=dict)


class SparqlPool:
    def __init__(self, snapshots: GraphSnapshots, prefixes: dict[str, str], *, workers: int = 2, queue: int = 8,
                 memory_mb: int = 1024, max_result_bytes: int = 32 << 20, nice: int = 10,
                 start_timeout_s: float = 120.0) -> None:
        self.snapshots, self.prefixes = snapshots, prefixes
        self.size, self.queue, self.memory_mb = workers, queue, memory_mb
        self.max_result_bytes, self.nice, self.start_timeout_s = max_result_bytes, nice, start_timeout_s
        self.stats = PoolStats()
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._starting = 0
        self._waiting = 0
        self._closed = False
        self._spawner: threading.Thread | None = None
        self.start_error: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        with self._cond:
            if self._spawner is None and not self._closed:
                self._spawner = threading.Thread(target=self._spawn_loop, name="sparql-spawner", daemon=True)
                self._spawner.start()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            workers = list(self._all)
            self._cond.notify_all()
        for w in workers:
            self._kill(w, wait=False)

    def _is_closed(self) -> bool:
        """(A method, not the attribute: another thread may close the pool while a worker starts, which
        a type checker that narrowed `self._closed` above would call unreachable.)"""
        return self._closed

    def _spawn_loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed and len(self._all) + self._starting >= self.size:
                    self._cond.wait()
                if self._closed:
                    return
                self._starting += 1
            worker: _Worker | None = None
            try:
                worker = self._spawn()
            except Exception as e:  # noqa: BLE001 — said in /health and to each query; retried
                self.start_error = f"{type(e).__name__}: {e}"
                log.error("could not start a SPARQL worker: %s", self.start_error)
            with self._cond:
                self._starting -= 1
                if worker is not None:
                    if self._is_closed():
                        self._kill(worker)
                        return
                    self.start_error = None
                    self._all.add(worker)
                    self._idle.append(worker)
                self._cond.notify_all()
            if worker is None:
                time.sleep(1.0)

    def _spawn(self) -> _Worker:
        parent, child = socket.socketpair()
        env = {**os.environ, "MALLOC_ARENA_MAX": "2", "RUST_BACKTRACE": "0"}
        try:
            # Through nice(1) when there is one, so even the interpreter's start-up (a replacement starts
            # while the server is busiest) runs at the workers' lower priority; else the worker lowers it.
            nice = shutil.which("nice")
            prefix, own = ([nice, "-n", str(self.nice)], 0) if nice else ([], self.nice)
            proc = subprocess.Popen(
                [*prefix, sys.executable, "-m", "modelport.index.sparql_worker", str(child.fileno()),
                 str(self.memory_mb), str(own)],
                pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, env=env, close_fds=True)
        finally:
            child.close()
        worker = _Worker(proc, parent)
        parent.settimeout(self.start_timeout_s)
        try:
            hello, _ = recv_msg(parent)
        except (OSError, EOFError) as e:
            self._kill(worker)
            raise RuntimeError(f"worker exited while starting (status {proc.poll()})") from e
        worker.idle_rss_kb = int(hello.get("idle_rss_kb", 0))
        self.stats.idle_rss_kb = max(self.stats.idle_rss_kb, worker.idle_rss_kb)
        return worker

    def _kill(self, worker: _Worker, wait: bool = True) -> tuple[int | None, int]:
        """Kill and (with `wait`) reap; returns (exit status as Popen reports it, peak RSS in KiB).
        Without `wait` the reaping happens in the background: a killed process needs CPU time to exit,
        which a loaded machine gives a nice-10 process late, and the client should not wait for that."""
        with self._cond:
            self._all.discard(worker)
            if worker in self._idle:
                self._idle.remove(worker)
            self._cond.notify_all()
        with contextlib.suppress(OSError):
            worker.sock.close()
        proc = worker.proc
        if proc.returncode is not None:
            return proc.returncode, 0
        peak = _status_kb("VmHWM", proc.pid)  # read before the kill: afterwards it is gone
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        if not wait:
            threading.Thread(target=self._reap, args=(proc,), name="sparql-reap", daemon=True).start()
            return None, peak
        return self._reap(proc)[0], peak

    def _reap(self, proc: subprocess.Popen[bytes]) -> tuple[int | None, int]:
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except ChildProcessError:
            proc.returncode = proc.returncode if proc.returncode is not None else -1
            return proc.returncode, 0
        proc.returncode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        self._note_peak(int(usage.ru_maxrss))
        return proc.returncode, int(usage.ru_maxrss)

    def _reap_dead(self, worker: _Worker) -> tuple[int | None, int]:
        """A worker whose socket closed: wait for its exit (it is dying or dead) and reap it."""
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                pid, status, usage = os.wait4(worker.proc.pid, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                worker.proc.returncode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
                with self._cond:
                    self._all.discard(worker)
                    self._cond.notify_all()
                with contextlib.suppress(OSError):
                    worker.sock.close()
                return worker.proc.returncode, int(usage.ru_maxrss)
            time.sleep(0.01)
        return self._kill(worker)

    # -- queries -----------------------------------------------------------------------------------
    def _acquire(self, deadline: float, timeout_s: float) -> _Worker:
        self.start()
        with self._cond:
            if self._closed:
                raise QueryLimitError("the server is shutting down", "shutdown")
            if not self._idle and self._waiting >= self.queue:
                self.stats.refused_busy += 1
                raise QueryLimitError(
                    f"all {self.size} SPARQL workers are busy and {self._waiting} queries are waiting "
                    "(MODELPORT_SPARQL_WORKERS, MODELPORT_SPARQL_QUEUE); try again shortly", "sparql_queue",
                    retry_after=max(1, int(timeout_s)))
            self._waiting += 1
            try:
                while not self._idle:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._closed:
                        self.stats.refused_busy += 1
                        why = f"; last start failure: {self.start_error}" if self.start_error else ""
                        raise QueryLimitError(
                            f"no SPARQL worker became free within the query's {timeout_s:g} s limit "
                            f"(MODELPORT_QUERY_TIMEOUT_S; {self.size} workers){why}", "query_timeout_s",
                            retry_after=max(1, int(timeout_s)))
                    self._cond.wait(remaining)
                return self._idle.pop()
            finally:
                self._waiting -= 1

    def _release(self, worker: _Worker) -> None:
        with self._cond:
            if worker in self._all and not self._closed:
                self._idle.append(worker)
            self._cond.notify_all()

    def run(self, query: str, fmt: str, timeout_s: float, max_rows: int, started: float | None = None) -> PoolAnswer:
        """Run `query` (already checked: index/sparql_exec.check) and serialize it as `fmt`, within
        `timeout_s` from `started` (a time.monotonic() when the request arrived; now by default) in all,
        waiting for a worker included, and within the worker's memory budget."""
        deadline = (started if started is not None else time.monotonic()) + timeout_s
        worker = self._acquire(deadline, timeout_s)
        try:
            snapshot = self.snapshots.current()
            remaining = max(0.05, deadline - time.monotonic())
            worker.queries += 1
            worker.sock.settimeout(remaining)
            send_msg(worker.sock, {"query": query, "format": fmt, "timeout_s": remaining, "max_rows": max_rows,
                                   "prefixes": self.prefixes, "snapshot": snapshot,
                                   "max_bytes": self.max_result_bytes})
            header, body = recv_msg(worker.sock)
        except TimeoutError:
            _, peak = self._kill(worker, wait=False)
            self._note_peak(peak)
            self.stats.killed_time += 1
            raise QueryLimitError(f"query ran past its {timeout_s:g} s limit (MODELPORT_QUERY_TIMEOUT_S) and was "
                                  "stopped", "query_timeout_s", peak_rss_kb=peak) from None
        except (EOFError, OSError):
            status, peak = self._reap_dead(worker)
            self._note_peak(peak)
            if self._closed:
                raise QueryLimitError("the server is shutting down", "shutdown") from None
            self.stats.killed_memory += 1
            raise QueryLimitError(
                f"query needed more than its memory budget of {self.memory_mb} MB (MODELPORT_QUERY_MEMORY_MB) "
                f"and was stopped (worker exit status {status})", "query_memory_mb", peak_rss_kb=peak) from None
        except BaseException:
            self._kill(worker)
            raise
        peak = int(header.get("peak_rss_kb", 0))
        self._note_peak(peak)
        if header.get("recycle"):
            self._reap_dead(worker)
        else:
            self._release(worker)
        if header.get("ok"):
            return PoolAnswer(body, str(header["kind"]), bool(header["truncated"]), float(header["elapsed_ms"]),
                              peak)
        error, message = header.get("error"), str(header.get("message", ""))
        if error == "query":
            raise QueryRefused(message)
        if error == "timeout":
            self.stats.killed_time += 1
            raise QueryLimitError(f"{message} (MODELPORT_QUERY_TIMEOUT_S) and was stopped", "query_timeout_s",
                                  peak_rss_kb=peak)
        if error == "memory":
            self.stats.killed_memory += 1
            raise QueryLimitError(f"query needed more than its memory budget of {self.memory_mb} MB "
                                  "(MODELPORT_QUERY_MEMORY_MB) and was stopped", "query_memory_mb", peak_rss_kb=peak)
        if error == "too_large":
            raise QueryLimitError(message, "sparql_max_result_mb")
        raise QueryLimitError(message or "the SPARQL worker failed", "store")

    def answer(self, query: str, timeout_s: float, max_rows: int) -> SparqlAnswer:
        """`run`, read back into rdflib terms for callers that show the answer (the SPARQL page):
        SparqlError for a refused query, QueryLimitError for one a limit stopped."""
        import io

        from rdflib import Graph
        from rdflib.query import Result

        form = check(query)
        graph = form in ("CONSTRUCT", "DESCRIBE")
        ans = self.run(query, "nt" if graph else "json", timeout_s, max_rows)
        if graph:
            g = Graph()
            for prefix, ns in self.prefixes.items():
                g.bind(prefix, ns)
            g.parse(data=ans.body.decode(), format="nt")
            result = Result("CONSTRUCT")
            result.graph = g
        else:
            result = Result.parse(io.BytesIO(ans.body), format="json")
        return SparqlAnswer(form, result, ans.truncated, ans.elapsed_ms)

    def _note_peak(self, peak_kb: int) -> None:
        self.stats.peak_rss_kb = max(self.stats.peak_rss_kb, peak_kb)

    def describe(self) -> dict[str, Any]:
        with self._cond:
            busy = len(self._all) - len(self._idle)
            out: dict[str, Any] = {"workers": self.size, "ready": len(self._idle), "busy": busy,
                                   "waiting": self._waiting, "memory_budget_mb": self.memory_mb,
                                   "worker_pids": sorted(w.proc.pid for w in self._all)}
        out.update(stopped_for_time=self.stats.killed_time, stopped_for_memory=self.stats.killed_memory,
                   refused_busy=self.stats.refused_busy, peak_rss_mb=round(self.stats.peak_rss_kb / 1024, 1),
                   idle_rss_mb=round(self.stats.idle_rss_kb / 1024, 1))
        if self.start_error:
            out["start_error"] = self.start_error
        return out
