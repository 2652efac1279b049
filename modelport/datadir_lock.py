"""One writer per data dir: every command that writes the catalog and its projections (harvest,
reindex, verify, demo, serve) holds an exclusive lock on `<data dir>/writer.lock` while it runs.
A second writer is refused at once, saying who holds the lock, instead of writing the catalog and
search index and then failing at the graph store half-way (Oxigraph's own lock)."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from modelport.errors import ServiceUnavailable

# Locks this process holds, by path: a command that takes the lock may call another that takes it
# too (the demo harvests, then serves); flock would refuse the second open in the same process.
_held: dict[Path, int] = {}


class DataDirBusy(ServiceUnavailable):
    """Another process writes this data dir."""


def lock_path(data_dir: Path) -> Path:
    return data_dir / "writer.lock"


@contextmanager
def writer_lock(data_dir: Path, command: str) -> Iterator[None]:
    """Hold the data dir's writer lock for `command`; raises DataDirBusy at once if another process
    holds it. The lock is the kernel's (flock): a crashed holder leaves no stale lock behind."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = lock_path(data_dir).resolve()
    if path in _held:
        _held[path] += 1
        try:
            yield
        finally:
            _held[path] -= 1
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise DataDirBusy(busy_message(data_dir, command, holder)) from None
    _held[path] = 1
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "command": command}).encode(), 0)
        yield
    finally:
        del _held[path]
        try:
            os.ftruncate(fd, 0)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def busy_message(data_dir: Path, command: str, holder: dict[str, object]) -> str:
    who = f"`modelport {holder.get('command', '?')}` (pid {holder.get('pid', '?')})"
    text = f"the data dir {data_dir} is being written by {who}; `modelport {command}` would be a second writer"
    if holder.get("command") in ("serve", "demo"):
        text += (". While it serves, harvest through it: POST /harvests {\"source\": \"<name>\"} or a "
                 "source's `schedule` in the configuration")
    return text


def _holder(fd: int) -> dict[str, object]:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}
