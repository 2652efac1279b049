"""The request budget and retry policy the Hub source draws every request from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx2
import pytest
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

from modelport.harvesters.hf_http import bucket_of
from modelport.harvesters.huggingface import is_transient
from modelport.harvesters.ratelimit import Budget, BudgetSet, RateLimiter, RetryPolicy, call_with_retry, server_delay


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


def test_sliding_window_budget() -> None:
    clock = FakeClock()
    lim = RateLimiter(3, 10.0, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        assert lim.acquire() == 0.0
        clock.now += 1
    # the 4th request in the window waits until the first one is 10 s old
    assert lim.acquire() == pytest.approx(7.0)
    assert clock.slept == [pytest.approx(7.0)]
    clock.now += 100
    assert lim.acquire() == 0.0 and lim.requests == 5


def test_block_for_holds_every_request() -> None:
    clock = FakeClock()
    lim = RateLimiter(100, 1.0, clock=clock, sleep=clock.sleep)
    lim.block_for(30)
    assert lim.acquire() == pytest.approx(30)
    assert lim.acquire() == 0.0


def test_server_delay_headers() -> None:
    assert server_delay({"Retry-After": "7"}) == 7
    assert server_delay({"RateLimit": '"api";r=0;t=55', "Retry-After": "3"}) == 55
    assert server_delay({"ratelimit": '"api";r=12;t=55', "retry-after": "3"}) == 3  # budget left: not a reset
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert server_delay({"Retry-After": format_datetime(now + timedelta(seconds=20), usegmt=True)}, now) == 20
    assert server_delay({"Retry-After": "soon"}) is None and server_delay({}) is None and server_delay(None) is None


def _http_error(status: int, headers: dict[str, str] | None = None) -> HfHubHTTPError:
    req = httpx2.Request("GET", "http://hub.test/api/models/a/b")
    resp = httpx2.Response(status, headers=headers or {}, request=req)
    return HfHubHTTPError(f"{status} error", response=resp)


def test_call_with_retry_waits_as_told_then_succeeds() -> None:
    clock = FakeClock()
    lim = RateLimiter(1000, 300, clock=clock, sleep=clock.sleep)
    answers: list[object] = [_http_error(429, {"RateLimit": '"api";r=0;t=55'}), _http_error(503), "ok"]

    def fn() -> str:
        a = answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return str(a)

    out = call_with_retry(fn, describe="t", limiter=lim, policy=RetryPolicy(attempts=5, base_wait_s=2),
                          is_retryable=is_transient, headers_of=lambda e: e.response.headers, sleep=clock.sleep)
    assert out == "ok"
    # 55 s held in the limiter (for every request), then 2^1 × base for the 503 without headers
    assert [s for s in clock.slept if s] == [pytest.approx(55), pytest.approx(4)] and lim.requests == 3


def test_call_with_retry_gives_up_and_reraises() -> None:
    calls = []

    def fn() -> None:
        calls.append(1)
        raise _http_error(500)

    with pytest.raises(HfHubHTTPError):
        call_with_retry(fn, describe="t", limiter=None, policy=RetryPolicy(attempts=3, base_wait_s=0),
                        is_retryable=is_transient, headers_of=lambda e: None, sleep=lambda s: None)
    assert len(calls) == 3
    calls.clear()

    def missing() -> None:
        calls.append(1)
        raise RepositoryNotFoundError("gone", response=_http_error(401).response)

    with pytest.raises(RepositoryNotFoundError):
        call_with_retry(missing, describe="t", limiter=None, policy=RetryPolicy(attempts=3),
                        is_retryable=is_transient, headers_of=lambda e: None, sleep=lambda s: None)
    assert len(calls) == 1  # a 401/404 is an answer, not a hiccup


def test_transient_errors_are_found_through_wrapping() -> None:
    try:
        try:
            raise _http_error(503)
        except HfHubHTTPError as inner:
            raise LocalEntryNotFoundError("cannot find the requested files") from inner
    except LocalEntryNotFoundError as wrapped:
        assert is_transient(wrapped)
    assert is_transient(httpx2.ConnectError("refused"))
    assert not is_transient(_http_error(400)) and not is_transient(ValueError("x"))


def test_server_accounting_replaces_the_configured_budget() -> None:
    """RateLimit r/t (and RateLimit-Policy q/w) from an answer: spend exactly what is left, then wait
    for the announced reset; after it, a full window of the server's quota."""
    clock = FakeClock()
    b = Budget(1000, 300.0, clock=clock, sleep=clock.sleep)
    b.acquire()
    b.observe(remaining=2, reset_in_s=40, quota=500, window_s=300)  # anonymous tier, 40 s to go
    assert b.acquire() == 0.0 and b.acquire() == 0.0
    assert b.acquire() == pytest.approx(40)  # the third waits for the server's reset, no 429 earned
    st = b.state()
    assert (st.quota, st.window_s, st.remaining) == (500, 300, 499)
    # a new window by our own count, when the server said nothing since
    clock.now += 300
    assert b.state().remaining == 500 and b.acquire() == 0.0


def test_budget_set_routes_by_bucket() -> None:
    clock = FakeClock()
    api, res = (Budget(2, 10, name=n, clock=clock, sleep=clock.sleep) for n in ("api", "resolvers"))
    bs = BudgetSet({"api": api, "resolvers": res}, bucket_of)
    assert bs.for_url("http://h/gpt2/resolve/main/README.md") is res
    assert bs.for_url("http://h/api/models?limit=1000") is api and bs.get("pages") is None
