"""Client-side request budget and retry policy for harvesters that talk to rate-limited registries.

A `RateLimiter` keeps a sliding-window budget (default: the Hugging Face Hub's 1000 requests per
300 s) that every request of a source draws from; `call_with_retry` wraps one request in a tenacity
retry that waits as long as the server asks (`Retry-After`, IETF `RateLimit: "api";r=0;t=55`) and
otherwise backs off exponentially.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

log = logging.getLogger(__name__)

T = TypeVar("T")

# Statuses that mean "try again later" rather than "this request is wrong".
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class RateLimiter:
    """Sliding-window budget: at most `max_requests` starts in any `period_s` window.

    Blocking (not failing) is the point: a harvest that respects the budget never earns the
    429s that would cost far more time. `block_for` lets a server-announced reset pause every
    request of the source, not only the one that got the 429.
    """

    def __init__(self, max_requests: int = 1000, period_s: float = 300.0, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if max_requests < 1 or period_s <= 0:
            raise ValueError("rate limit needs max_requests >= 1 and period_s > 0")
        self.max_requests = max_requests
        self.period_s = period_s
        self._clock = clock
        self._sleep = sleep
        self._starts: deque[float] = deque()
        self._blocked_until = 0.0
        self._lock = threading.Lock()
        self.waited_s = 0.0  # total time spent waiting, for reports and tests
        self.requests = 0

    def acquire(self) -> float:
        """Wait until one more request fits the budget, record it, and return the seconds waited."""
        waited = 0.0
        with self._lock:
            while True:
                now = self._clock()
                while self._starts and self._starts[0] <= now - self.period_s:
                    self._starts.popleft()
                delay = self._blocked_until - now
                if len(self._starts) >= self.max_requests:
                    delay = max(delay, self._starts[0] + self.period_s - now)
                if delay <= 0:
                    self._starts.append(now)
                    self.requests += 1
                    self.waited_s += waited
                    return waited
                # Holding the lock while sleeping is deliberate: every caller must wait anyway.
                self._sleep(delay)
                waited += delay

    def block_for(self, seconds: float) -> None:
        """Hold back every request for `seconds` (a server told us its window resets then)."""
        if seconds > 0:
            with self._lock:
                self._blocked_until = max(self._blocked_until, self._clock() + seconds)


_RATELIMIT_RE = re.compile(r'"?(?P<kind>[\w-]+)"?\s*;\s*r\s*=\s*(?P<r>\d+)\s*;\s*t\s*=\s*(?P<t>\d+)')


def _header(headers: Mapping[str, str], name: str) -> str | None:
    name = name.lower()
    for k, v in headers.items():
        if k.lower() == name:
            return v
    return None


def server_delay(headers: Mapping[str, str] | None, now: datetime | None = None) -> float | None:
    """Seconds the server asked us to wait, from `RateLimit` (r=0;t=N) or `Retry-After` (seconds
    or an HTTP date); None if it said nothing usable."""
    if not headers:
        return None
    rl = _header(headers, "ratelimit")
    if rl and (m := _RATELIMIT_RE.search(rl)) and int(m.group("r")) == 0:
        return float(m.group("t"))
    ra = _header(headers, "retry-after")
    if ra:
        ra = ra.strip()
        if ra.isdigit():
            return float(ra)
        try:
            when = parsedate_to_datetime(ra)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one request: `attempts` in all, exponential waits from `base_wait_s` up to
    `max_wait_s`, and server-announced waits honoured up to `max_server_wait_s`."""

    attempts: int = 6
    base_wait_s: float = 1.0
    max_wait_s: float = 60.0
    max_server_wait_s: float = 600.0


def call_with_retry(fn: Callable[[], T], *, describe: str, limiter: RateLimiter | None,
                    policy: RetryPolicy, is_retryable: Callable[[BaseException], bool],
                    headers_of: Callable[[BaseException], Mapping[str, str] | None],
                    sleep: Callable[[float], None] = time.sleep) -> T:
    """Run `fn` (one request) under the budget, retrying transient failures; the last error is
    re-raised unchanged once `policy.attempts` are used up."""

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        delay = server_delay(headers_of(exc)) if exc is not None else None
        if delay is not None:
            delay = min(delay, policy.max_server_wait_s)
            if limiter is not None:
                limiter.block_for(delay)
                return 0.0  # the limiter does the waiting, for this and every other request
            return delay
        return min(policy.max_wait_s, policy.base_wait_s * 2 ** (state.attempt_number - 1))

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("retrying %s (attempt %d of %d) after: %s", describe, state.attempt_number,
                    policy.attempts, _short(exc))

    def attempt() -> T:
        if limiter is not None:
            limiter.acquire()
        return fn()

    retrying = Retrying(stop=stop_after_attempt(max(1, policy.attempts)), wait=wait,
                        retry=retry_if_exception(is_retryable), reraise=True,
                        before_sleep=before_sleep, sleep=sleep)
    return retrying(attempt)


def _short(exc: BaseException | None) -> str:
    if exc is None:
        return "?"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


__all__ = ["RateLimiter", "RetryPolicy", "RETRY_STATUSES", "call_with_retry", "server_delay"]
