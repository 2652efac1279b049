"""The one request budget and retry policy every harvester uses against a rate-limited registry.

A `Budget` is a fixed-window quota (the Hugging Face Hub meters "all quotas over 5-minute fixed
windows": huggingface/hub-docs docs/hub/rate-limits.md) that every request of a source draws from.
It starts from configuration and is re-synchronised from the server's own accounting whenever an
answer carries IETF `RateLimit` / `RateLimit-Policy` headers (draft-ietf-httpapi-ratelimit-headers-09,
which the Hub implements): with `r` requests left and the window resetting in `t` seconds, the budget
spends exactly those `r` and then waits `t`, so it stops before the server would answer 429.
`BudgetSet` keeps one budget per bucket (the Hub's "api" and "resolvers").

`call_with_retry` wraps one request in a tenacity retry: on a 429/503 it waits exactly what the
server says (`RateLimit: "api";r=0;t=55` or `Retry-After`), otherwise it backs off exponentially.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception

from modelport.errors import describe

log = logging.getLogger(__name__)

T = TypeVar("T")

# Statuses that mean "try again later" rather than "this request is wrong".
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class BudgetState:
    """What a progress line shows: requests left in this window and when the next one starts."""

    name: str
    quota: int
    window_s: float
    remaining: int
    resets_in_s: float
    requests: int
    waited_s: float
    from_server: bool  # the figures come from the server's RateLimit headers, not our own count


class Budget:
    """A fixed-window request budget: at most `quota` request starts per `window_s` window.

    Blocking (not failing) is the point: a harvest that respects the budget never earns the 429s
    that would cost far more time. Without server headers the window starts at the first request
    and is counted here; `observe` replaces that count by the server's whenever it reports one.
    """

    def __init__(self, quota: int = 1000, window_s: float = 300.0, *, name: str = "api",
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if quota < 1 or window_s <= 0:
            raise ValueError("a budget needs quota >= 1 and window_s > 0")
        self.name = name
        self.quota = quota
        self.window_s = window_s
        self._clock = clock
        self._sleep = sleep
        self._window_end: float | None = None  # end of the current window; None before the first request
        self._left = quota
        self._from_server = False
        self._blocked_until = 0.0
        self._lock = threading.Lock()
        self.waited_s = 0.0  # total time spent waiting, for reports and tests
        self.requests = 0

    def acquire(self) -> float:
        """Wait until one more request fits the budget, count it, and return the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                if self._window_end is None or now >= self._window_end:
                    # A new window: full quota again (the server's reset, or our own window's end).
                    self._window_end, self._left, self._from_server = now + self.window_s, self.quota, False
                delay = self._blocked_until - now
                if delay <= 0 and self._left <= 0:
                    delay = self._window_end - now
                if delay <= 0:
                    self._left -= 1
                    self.requests += 1
                    self.waited_s += waited
                    return waited
            # Sleep without the lock (a progress display reads `state` meanwhile), then look again:
            # another caller may have taken the first slot of the new window.
            self._sleep(delay)
            waited += delay

    def observe(self, remaining: int, reset_in_s: float, quota: int | None = None,
                window_s: float | None = None) -> None:
        """The server's accounting (IETF `RateLimit: r=…;t=…`, `RateLimit-Policy: q=…;w=…`) replaces ours."""
        with self._lock:
            if quota is not None and quota >= 1:
                self.quota = quota
            if window_s is not None and window_s > 0:
                self.window_s = window_s
            self._left = max(0, remaining)
            self._window_end = self._clock() + max(0.0, reset_in_s)
            self._from_server = True

    def block_for(self, seconds: float) -> None:
        """Hold back every request for `seconds` (a server told us to wait that long)."""
        if seconds > 0:
            with self._lock:
                self._blocked_until = max(self._blocked_until, self._clock() + seconds)

    def state(self) -> BudgetState:
        with self._lock:
            now = self._clock()
            fresh = self._window_end is None or now >= self._window_end
            return BudgetState(self.name, self.quota, self.window_s, self.quota if fresh else self._left,
                               0.0 if fresh or self._window_end is None else self._window_end - now,
                               self.requests, self.waited_s, self._from_server and not fresh)


# Kept for callers that knew the sliding-window limiter: the same budget, fixed windows.
RateLimiter = Budget


class BudgetSet:
    """One budget per bucket of a source ("api", "resolvers", …), chosen per request URL."""

    def __init__(self, budgets: Mapping[str, Budget], classify: Callable[[str], str]) -> None:
        if not budgets:
            raise ValueError("a budget set needs at least one budget")
        self.budgets = dict(budgets)
        self._classify = classify
        self._default = next(iter(self.budgets))

    def for_url(self, url: str) -> Budget:
        return self.budgets.get(self._classify(url)) or self.budgets[self._default]

    def get(self, bucket: str) -> Budget | None:
        return self.budgets.get(bucket)

    def states(self) -> list[BudgetState]:
        return [b.state() for b in self.budgets.values()]


# IETF draft 09 item: `"policy-name";r=<remaining>;t=<seconds>`; one token, parameters in order.
_RATELIMIT_RE = re.compile(r'"?(?P<kind>[\w-]{1,64})"?\s{0,8};\s{0,8}r\s{0,8}=\s{0,8}(?P<r>\d{1,12})'
                           r'\s{0,8};\s{0,8}t\s{0,8}=\s{0,8}(?P<t>\d{1,12})')


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
    if rl and (m := _RATELIMIT_RE.search(rl[:512])) and int(m.group("r")) == 0:
        return float(m.group("t"))
    ra = _header(headers, "retry-after")
    if ra:
        ra = ra.strip()[:128]
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
    # A failure whose answer says when to come back (429 with RateLimit/Retry-After) is the server
    # pacing us, not the request failing: it costs time, not one of `attempts`, up to this many.
    max_throttled: int = 50


def call_with_retry(fn: Callable[[], T], *, describe: str, limiter: Budget | None,
                    policy: RetryPolicy, is_retryable: Callable[[BaseException], bool],
                    headers_of: Callable[[BaseException], Mapping[str, str] | None],
                    sleep: Callable[[float], None] = time.sleep, acquire: bool = True) -> T:
    """Run `fn` (one request) under the budget, retrying transient failures; the last error is
    re-raised unchanged once `policy.attempts` (or `policy.max_throttled` server-paced waits) are
    used up. `acquire=False` when the requests
    already draw from `limiter` on their own (an HTTP client hook): it then only holds the budget
    for a server-announced wait."""

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        delay = server_delay(headers_of(exc)) if exc is not None else None
        if delay is not None:
            delay = min(delay, policy.max_server_wait_s)
            if limiter is not None:
                limiter.block_for(delay)
                return 0.0  # the budget does the waiting, for this and every other request
            return delay
        return min(policy.max_wait_s, policy.base_wait_s * 2 ** (state.attempt_number - 1))

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("retrying %s (attempt %d of %d) after: %s", describe, state.attempt_number,
                    policy.attempts, _short(exc))

    def attempt() -> T:
        if limiter is not None and acquire:
            limiter.acquire()
        return fn()

    plain, throttled = [0], [0]

    def stop(state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        if exc is not None and server_delay(headers_of(exc)) is not None:
            throttled[0] += 1
            return throttled[0] > policy.max_throttled
        plain[0] += 1
        return plain[0] >= max(1, policy.attempts)

    retrying = Retrying(stop=stop, wait=wait,
                        retry=retry_if_exception(is_retryable), reraise=True,
                        before_sleep=before_sleep, sleep=sleep)
    return retrying(attempt)


def _short(exc: BaseException | None) -> str:
    return describe(exc) if exc is not None else "?"


__all__ = ["Budget", "BudgetSet", "BudgetState", "RateLimiter", "RetryPolicy", "RETRY_STATUSES",
           "call_with_retry", "server_delay"]
