"""A SPARQL query worker: a child process of the server that runs one query at a time over a
read-only snapshot of the graph (index/sparql_pool.py). It lowers its own CPU priority, caps its
address space (RLIMIT_AS) at its idle size plus the memory budget, and dies with its parent; the
server kills it when a query runs past its time limit. Nothing else writes a snapshot, so opening
it read-only is safe (Oxigraph calls read-only opening beside a writer undefined behaviour).

Wire protocol over a socket: length-prefixed JSON header, then a length-prefixed body."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import os
import resource
import signal
import socket
import struct
import sys
from typing import Any

_HEAD = struct.Struct("!IQ")  # header length, body length


def send_msg(sock: socket.socket, header: dict[str, Any], body: bytes = b"") -> None:
    head = json.dumps(header).encode()
    sock.sendall(_HEAD.pack(len(head), len(body)) + head + body)


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise EOFError("peer closed")
        buf += chunk
    return bytes(buf)


def recv_msg(sock: socket.socket) -> tuple[dict[str, Any], bytes]:
    hlen, blen = _HEAD.unpack(recv_exact(sock, _HEAD.size))
    header = json.loads(recv_exact(sock, hlen))
    return header, recv_exact(sock, blen) if blen else b""


def status_kb(field: str, pid: int | str = "self") -> int:
    """A VmXXX line of /proc/<pid>/status in KiB (0 when unreadable)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG: a worker busy in a long query must not outlive a server killed with SIGKILL.
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:
        os._exit(0)


def main(fd: int, memory_mb: int, nice: int) -> None:
    _die_with_parent()
    with contextlib.suppress(OSError):
        os.nice(nice)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the terminal is the server's to handle
    sock = socket.socket(fileno=fd)
    import pyoxigraph as ox

    from modelport.index.sparql_exec import SparqlError, SparqlTimeout, execute, serialize

    # Warm the engine and the serializers once so their memory counts as idle size, not as a query's.
    warm = ox.Store()
    serialize(execute(warm, "SELECT * WHERE { ?s ?p ?o }", {}), "json")
    del warm
    gc.collect()
    idle_vm = status_kb("VmSize") * 1024
    budget = memory_mb * 1024 * 1024
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (idle_vm + budget, idle_vm + budget))
    idle_rss = status_kb("VmRSS")
    send_msg(sock, {"ready": True, "pid": os.getpid(), "idle_rss_kb": idle_rss})
    store: Any = None
    opened: str | None = None
    while True:
        try:
            req, _ = recv_msg(sock)
        except (EOFError, OSError):
            return
        recycle = False
        try:
            if req["snapshot"] != opened:
                store = None
                gc.collect()
                store = ox.Store.read_only(req["snapshot"])
                opened = req["snapshot"]
            ans = execute(store, req["query"], req["prefixes"], req["timeout_s"], req["max_rows"])
            body = serialize(ans, req["format"])
            kind, truncated, elapsed_ms = ans.kind, ans.truncated, ans.elapsed_ms
            del ans
            if len(body) > req["max_bytes"]:
                header: dict[str, Any] = {"ok": False, "error": "too_large", "message": (
                    f"the answer is {len(body) // 1024} KiB, more than the limit of {req['max_bytes'] // 1024} "
                    "KiB (MODELPORT_SPARQL_MAX_RESULT_MB); add a LIMIT or select fewer variables")}
                body = b""
            else:
                header = {"ok": True, "kind": kind, "truncated": truncated, "elapsed_ms": elapsed_ms}
        except SparqlError as e:
            header, body = {"ok": False, "error": "query", "message": str(e)}, b""
        except SparqlTimeout as e:
            header, body = {"ok": False, "error": "timeout", "message": str(e)}, b""
        except MemoryError:
            header, body, recycle = {"ok": False, "error": "memory", "message": "out of memory"}, b"", True
        except OSError as e:
            header, body, recycle = {"ok": False, "error": "store", "message": f"graph snapshot unreadable: {e}"}, \
                b"", True
        header["peak_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # A worker whose heap grew far past its idle size gives the memory back by starting afresh.
        rss = status_kb("VmRSS")
        if rss - idle_rss > budget // 1024 // 2:
            recycle = True
        header["recycle"] = recycle
        try:
            send_msg(sock, header, body)
        except OSError:
            return
        if recycle:
            return


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
