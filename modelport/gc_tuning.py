"""The cyclic garbage collector, tuned for the duration of a harvest or a graph projection."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_tuned = 0
_tuned_lock = threading.Lock()
_restore: list[int] = []


@contextmanager
def collector_tuned_for_throughput() -> Iterator[None]:
    """A harvest allocates ~100 short-lived objects per record, none in reference cycles (reference
    counting frees them). With default thresholds the cyclic collector runs every 700 allocations
    and walks the KB, caches and the batch each time — measured at 60 % of the derivation's time.
    Freeze what exists (never collectable garbage: modules, KB, caches) and collect young objects
    far less often for the harvest's duration."""
    global _tuned
    with _tuned_lock:
        first = _tuned == 0  # nested or concurrent harvests (the scheduler): tuned once, restored by the last
        _tuned += 1
        if first:
            old = gc.get_threshold()
            gc.collect()
            gc.freeze()
            gc.set_threshold(50_000, 50, 1000)
            _restore[:] = old
    try:
        yield
    finally:
        with _tuned_lock:
            _tuned -= 1
            if _tuned == 0:
                gc.set_threshold(*_restore)
                gc.unfreeze()
