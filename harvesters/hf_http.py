"""The Hub source's HTTP discipline, enforced below every call it makes.

`huggingface_hub` sends every request (listing pages, `model_info`, `hf_hub_download`'s HEAD and GET
and the client's own retries inside them) through one shared httpx client, which it lets an
application configure with `set_client_factory`. ModelPort adds two hooks to that client; they act
only while a source has a `HubMeter` active (a context variable, so other code in the process is
untouched):

- a request to any origin other than the configured endpoint's is refused (`CrossOriginRefused`)
  before it is sent, so the token never leaves that origin — whether a `Link: next` header or a
  redirect points elsewhere;
- every request draws from the source's budget for its bucket ("resolvers" for `/resolve/` URLs,
  "api" otherwise: the Hub's buckets, huggingface/hub-docs docs/hub/rate-limits.md), and every answer
  re-synchronises that budget from its `RateLimit` / `RateLimit-Policy` headers, parsed by the
  client's own `parse_ratelimit_headers` (huggingface_hub >= 1.2).
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx2
from huggingface_hub.utils import get_session, parse_ratelimit_headers, set_client_factory
from huggingface_hub.utils._http import default_client_factory

from modelport.harvesters.base import SourceError
from modelport.harvesters.ratelimit import Budget, BudgetSet

# Requests per 5-minute window by bucket, (anonymous, with a token): the "Rate limit Tiers" table of
# huggingface/hub-docs docs/hub/rate-limits.md (Anonymous user / Free user rows, September 2025).
HUB_DEFAULT_QUOTAS: dict[str, tuple[int, int]] = {"api": (500, 1000), "resolvers": (3000, 5000)}
HUB_WINDOW_S = 300.0


class CrossOriginRefused(SourceError):
    """The source was about to send a request (with its credentials) to another origin."""


Origin = tuple[str, str, int]


def origin_of(url: str) -> Origin:
    parts = urlsplit(url)
    scheme = (parts.scheme or "").lower()
    return scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(scheme, 0)


def show_origin(o: Origin) -> str:
    return f"{o[0]}://{o[1]}:{o[2]}"


def bucket_of(url: str) -> str:
    return "resolvers" if "/resolve/" in urlsplit(url).path else "api"


@dataclass
class HubMeter:
    """One source's view of its endpoint: the only origin it may talk to and its budgets."""

    origin: Origin
    budgets: BudgetSet
    requests: Counter[str] = field(default_factory=Counter)  # by bucket, as sent
    throttled: int = 0  # 429 answers received
    _lock: threading.Lock = field(default_factory=threading.Lock)


_ACTIVE: ContextVar[HubMeter | None] = ContextVar("modelport_hub_meter", default=None)


@contextmanager
def metered(meter: HubMeter) -> Iterator[None]:
    """Every huggingface_hub request made inside this block is checked and budgeted by `meter`."""
    install_hooks()
    token = _ACTIVE.set(meter)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def _on_request(request: httpx2.Request) -> None:
    meter = _ACTIVE.get()
    if meter is None:
        return
    target = origin_of(str(request.url))
    if target != meter.origin:
        raise CrossOriginRefused(
            f"refused to send {request.method} {target[0]}://{target[1]}/…: the Hub source talks only to its "
            f"configured endpoint {show_origin(meter.origin)} (a Link header or redirect pointed elsewhere)")
    meter.budgets.for_url(str(request.url)).acquire()
    with meter._lock:
        meter.requests[bucket_of(str(request.url))] += 1


def _on_response(response: httpx2.Response) -> None:
    meter = _ACTIVE.get()
    if meter is None:
        return
    if response.status_code == 429:
        with meter._lock:
            meter.throttled += 1
    info = parse_ratelimit_headers(response.headers)
    if info is None:
        return
    budget = meter.budgets.get(info.resource_type) or meter.budgets.for_url(str(response.request.url))
    budget.observe(info.remaining, float(info.reset_in_seconds), info.limit,
                   float(info.window_seconds) if info.window_seconds else None)


_installed = False
_install_lock = threading.Lock()


def _client_factory() -> httpx2.Client:
    client = default_client_factory()
    hooks = client.event_hooks
    client.event_hooks = {"request": [*hooks.get("request", []), _on_request],
                          "response": [*hooks.get("response", []), _on_response]}
    return client


def install_hooks() -> None:
    """Give huggingface_hub's shared client the two hooks (once per process)."""
    global _installed
    with _install_lock:
        if not _installed:
            set_client_factory(_client_factory)
            _installed = True


def session() -> httpx2.Client:
    install_hooks()
    return get_session()


_shared: dict[tuple[Origin, str, tuple[tuple[str, int], ...], float], BudgetSet] = {}
_shared_lock = threading.Lock()


def shared_budgets(endpoint: str, token: str | None, quotas: dict[str, int], window_s: float) -> BudgetSet:
    """The Hub meters per account (or address without a token): every source object for the same
    endpoint and token in this process draws from one budget set."""
    who = hashlib.sha256(token.encode()).hexdigest() if token else "anonymous"
    key = (origin_of(endpoint), who, tuple(sorted(quotas.items())), window_s)
    with _shared_lock:
        if key not in _shared:
            _shared[key] = BudgetSet({name: Budget(q, window_s, name=name) for name, q in quotas.items()},
                                     bucket_of)
        return _shared[key]


def budget_line(meter: HubMeter) -> str:
    """A short progress text: requests left per bucket and when the window resets."""
    parts = []
    for st in meter.budgets.states():
        parts.append(f"{st.name} {st.remaining}/{st.quota} left"
                     + (f", next window in {st.resets_in_s:.0f}s" if st.resets_in_s > 0 else ""))
    return "; ".join(parts)


__all__ = ["HubMeter", "CrossOriginRefused", "metered", "session", "shared_budgets", "origin_of", "bucket_of",
           "budget_line", "install_hooks", "HUB_DEFAULT_QUOTAS", "HUB_WINDOW_S"]
