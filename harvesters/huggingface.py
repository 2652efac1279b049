"""Hugging Face Hub source in two stages: a listing that takes everything the Hub's model listing
can give (the `expand` properties, up to 1,000 models a request) and an enrichment stage of
per-model calls (`model_info` with file metadata, README cards) that the pipeline runs for the
records that need it, in priority order, within a budget (`Enrichable` in harvesters/base.py).

Listing pages are read as raw JSON through the client's own session and error mapping, because one
malformed item raises inside `list_models` and ends the whole iteration; here it becomes one
`Skipped` event and the rest of the page is kept. Every request — ours and the client's own retries —
draws from the source's budget and may only go to the configured endpoint (`hf_http`).
(Over the ~500-line guide: the two stages share options, mapping context and retry plumbing, and the
`harvest huggingface` command lives here until the CLI gets one module per command, issue #13.)
"""

from __future__ import annotations

import itertools
import logging
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

import httpx2
from huggingface_hub import HfApi, ModelInfo
from huggingface_hub.errors import (
    DisabledRepoError,
    GatedRepoError,
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import repo_folder_name
from huggingface_hub.hf_api import ExpandModelProperty_T
from huggingface_hub.utils import build_hf_headers, hf_raise_for_status, validate_repo_id
from pydantic import Field, SecretStr, field_validator

from modelport.errors import describe
from modelport.harvesters.base import (
    Checkpoint,
    EnrichmentPlan,
    EnrichTarget,
    Gone,
    HarvestEvent,
    HarvestMode,
    ListingComplete,
    Skipped,
    SourceError,
    SourceRecord,
)
from modelport.harvesters.hf_http import (
    HUB_DEFAULT_QUOTAS,
    HUB_WINDOW_S,
    CrossOriginRefused,
    HubMeter,
    budget_line,
    metered,
    origin_of,
    session,
    shared_budgets,
    show_origin,
)
from modelport.harvesters.hf_mapping import (
    README_KEY,
    README_MAX_BYTES,
    MappingContext,
    hub_time,
    normalize_payload,
    parse_hub_datetime,
)
from modelport.harvesters.plugin import SourceContext, SourceOptions, SourcePlugin
from modelport.harvesters.ratelimit import RETRY_STATUSES, RetryPolicy, call_with_retry
from modelport.schema.kb import KnowledgeBase, get_kb
from modelport.schema.record import ModelRecord

log = logging.getLogger("modelport.harvesters.huggingface")

HARVESTER_VERSION = "2.0"
CHECKPOINT_VERSION = 2

# What the listing asks for with `expand=` (sent as repeated `expand=` keys, as
# `HfApi.list_models(expand=…)` does; it cannot be combined with full/cardData/config, the client
# raises ValueError). Every property the mapping reads and the listing endpoint documents
# (huggingface/hub-docs PR #1632, docs/hub/api.md); left out: large ones the mapping does not read
# (spaces, widgetData, inferenceProviderMapping) and ones only `model_info` answers (baseModels,
# childrenModelCount, usedStorage: wire-formats §1.4) — those come with enrichment.
LISTING_EXPAND: tuple[str, ...] = (
    "author", "cardData", "config", "createdAt", "disabled", "downloads", "gated", "gguf", "inference",
    "lastModified", "library_name", "likes", "model-index", "pipeline_tag", "private", "safetensors", "sha",
    "siblings", "tags", "transformersInfo")
EXPANDABLE = frozenset(get_args(ExpandModelProperty_T))  # the client's own list of valid values
# What only the per-model calls give: kept by the catalog per revision and merged into later listings.
ENRICHED_KEYS = ("siblings", README_KEY, "baseModels", "childrenModelCount", "usedStorage", "evalResults")
_ID_KEYS = ("id", "_id", "modelId")
PriorityKey = Literal["downloads", "modified", "likes", "created"]


class HuggingFaceOptions(SourceOptions):
    """Configuration of one Hub source (the `options` table of a `[[sources]]` entry)."""

    endpoint: str = "https://huggingface.co"
    token: SecretStr | None = None  # sent only to `endpoint`'s origin; never stored or logged
    author: str | None = None
    filter: list[str] = Field(default_factory=list)  # tags / library / `license:mit` …, all must match
    limit: int | None = Field(default=None, ge=1)  # stop after listing this many models (no deletions then)
    mode: Literal["full", "incremental"] = "incremental"  # default for the CLI and the scheduler
    # -- listing
    page_size: int = Field(default=1000, ge=1, le=1000)  # the Hub's cap per listing request
    expand: list[str] = Field(default_factory=lambda: list(LISTING_EXPAND))
    checkpoint_every: int = Field(default=1000, ge=1)
    # -- enrichment (per-model calls)
    files_metadata: bool = True  # model_info(files_metadata=True): file sizes and sha256
    cards: bool = False  # also fetch README.md (description and card sections)
    enrich: bool = True
    enrich_max_models: int | None = Field(default=1000, ge=0)  # per run; None: every model that needs it
    enrich_time_limit_s: float | None = Field(default=None, gt=0)
    enrich_priority: list[PriorityKey] = Field(default_factory=lambda: ["downloads", "modified"], min_length=1)
    # -- budget: requests per window and bucket; None = the Hub's figure for anonymous / free account
    rate_limit_requests: int | None = Field(default=None, ge=1)  # "api" bucket (listing, model_info)
    resolver_rate_limit_requests: int | None = Field(default=None, ge=1)  # "resolvers" (README downloads)
    rate_limit_period_s: float = Field(default=HUB_WINDOW_S, gt=0)
    retry_attempts: int = Field(default=6, ge=1)
    retry_base_wait_s: float = Field(default=1.0, ge=0)
    retry_max_wait_s: float = Field(default=60.0, ge=0)
    max_server_wait_s: float = Field(default=600.0, ge=0)
    timeout_s: float = Field(default=30.0, gt=0)
    # This many models in a row failing after all retries means the Hub is down, not one bad repo.
    max_consecutive_failures: int = Field(default=10, ge=1)
    cache_dir: Path | None = None  # scratch space for README downloads; a temporary directory if unset

    @field_validator("expand")
    @classmethod
    def _known_expand(cls, v: list[str]) -> list[str]:
        bad = sorted(set(v) - EXPANDABLE)
        if bad:
            raise ValueError(f"not an expand property of the Hub's model listing: {', '.join(bad)}")
        if "sha" not in v or "lastModified" not in v:
            raise ValueError("expand must include sha and lastModified (revision and incremental order)")
        return list(dict.fromkeys(v))

    def quotas(self) -> dict[str, int]:
        tier = 1 if self.token else 0
        return {"api": self.rate_limit_requests or HUB_DEFAULT_QUOTAS["api"][tier],
                "resolvers": self.resolver_rate_limit_requests or HUB_DEFAULT_QUOTAS["resolvers"][tier]}


@dataclass(frozen=True, order=True)
class _Key:
    """Position in the `lastModified`-descending listing."""

    last_modified: datetime
    id: str

    def dump(self) -> dict[str, str]:
        return {"last_modified": hub_time(self.last_modified) or "", "id": self.id}

    @classmethod
    def load(cls, d: Any) -> _Key | None:
        if not isinstance(d, dict):
            return None
        lm = parse_hub_datetime(d.get("last_modified"))
        return cls(lm, str(d.get("id", ""))) if lm else None


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def is_transient(exc: BaseException) -> bool:
    """429/5xx or a network failure anywhere in the chain (`hf_hub_download` wraps a failed HEAD in
    `LocalEntryNotFoundError` … from the HTTP error)."""
    for e in _chain(exc):
        if isinstance(e, CrossOriginRefused):
            return False
        if isinstance(e, HfHubHTTPError):
            resp = getattr(e, "response", None)
            return resp is not None and resp.status_code in RETRY_STATUSES
        if isinstance(e, httpx2.TransportError):
            return True
    return False


def _headers_of(exc: BaseException) -> Any:
    for e in _chain(exc):
        resp = getattr(e, "response", None)
        if resp is not None:
            return resp.headers
    return None


class _Failure(Exception):
    """A model whose enrichment failed; the run goes on without it (the catalog counts the failure
    and asks again later, after the models that have not failed)."""


class HuggingFaceSource(SourcePlugin):
    """A Hugging Face Hub (or a mirror speaking its API) as a ModelPort source."""

    kind = "huggingface"
    harvester_version = HARVESTER_VERSION

    def __init__(self, name: str = "huggingface", options: HuggingFaceOptions | None = None,
                 kb: KnowledgeBase | None = None, **kw: Any) -> None:
        self.name = name
        self.options = options or HuggingFaceOptions(**kw)
        o = self.options
        self.endpoint = o.endpoint.rstrip("/")
        token = o.token.get_secret_value() if o.token else None
        self.api = HfApi(endpoint=self.endpoint, token=token or False, library_name="modelport",
                         library_version=HARVESTER_VERSION)
        self.meter = HubMeter(origin_of(self.endpoint),
                              shared_budgets(self.endpoint, token, o.quotas(), o.rate_limit_period_s))
        self.policy = RetryPolicy(attempts=o.retry_attempts, base_wait_s=o.retry_base_wait_s,
                                  max_wait_s=o.retry_max_wait_s, max_server_wait_s=o.max_server_wait_s)
        self._kb = kb
        self._ctx: MappingContext | None = None
        self._headers = build_hf_headers(token=token or False, library_name="modelport",
                                         library_version=HARVESTER_VERSION)
        self._listing_keys = frozenset(o.expand) | frozenset(_ID_KEYS)
        self._cache_dir: Path | None = None
        # The client logs "Invalid model-index" for every such card it parses (twice per model); the
        # same fact lands in the record's mapping notes, so keep the harvest log readable.
        logging.getLogger("huggingface_hub.repocard_data").setLevel(logging.ERROR)

    Options = HuggingFaceOptions

    @classmethod
    def create(cls, name: str, options: HuggingFaceOptions, context: SourceContext) -> HuggingFaceSource:
        # The host's cache folder unless the options name their own.
        cache_dir = context.cache_dir("huggingface", name)
        if cache_dir is None or "cache_dir" in options.model_fields_set:
            return cls(name, options)
        return cls(name, options.model_copy(update={"cache_dir": cache_dir}))

    @classmethod
    def from_options(cls, name: str, options: dict[str, Any]) -> HuggingFaceSource:
        return cls(name, HuggingFaceOptions(**options))

    @property
    def limiter(self) -> Any:
        """The "api" budget (listing and model_info requests)."""
        return self.meter.budgets.budgets["api"]

    def status_line(self) -> str:
        """Budget left and next window, for progress displays."""
        return budget_line(self.meter)

    # -- normalize ---------------------------------------------------------------------------------
    @property
    def ctx(self) -> MappingContext:
        if self._ctx is None:
            self._ctx = MappingContext(source_name=self.name, source_kind=self.kind,
                                       harvester_version=self.harvester_version, kb=self._kb or get_kb(),
                                       web_base=self.endpoint)
        return self._ctx

    def normalize(self, item: SourceRecord) -> ModelRecord:
        return normalize_payload(item.payload, self.ctx)

    # -- requests ----------------------------------------------------------------------------------
    def _retry(self, fn: Any, describe: str) -> Any:
        # Requests draw from the budget in the HTTP hooks (hf_http), retries included: here only
        # a server-announced wait is handed to the budget.
        with metered(self.meter):
            return call_with_retry(fn, describe=describe, limiter=self.meter.budgets.for_url(self.endpoint + "/api"),
                                   policy=self.policy, is_retryable=is_transient, headers_of=_headers_of,
                                   acquire=False)

    def _listing_params(self, page_size: int) -> list[tuple[str, str]]:
        # What `list_models(author, filter, sort="last_modified", expand=[…], limit)` sends
        # (wire-formats §1.2); no `direction`: the Hub sorts newest first.
        params: list[tuple[str, str]] = []
        if self.options.author:
            params.append(("author", self.options.author))
        params += [("filter", f) for f in self.options.filter]
        params += [("sort", "lastModified"), ("limit", str(page_size))]
        params += [("expand", e) for e in self.options.expand]
        return params

    def _listing_key(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "author": self.options.author, "filter": sorted(self.options.filter),
                "expand": sorted(self.options.expand)}

    def _pages(self, first_url: str | None) -> Iterator[tuple[str, str | None, list[Any]]]:
        """(this page's URL, next page's URL, items). The next URL comes verbatim from the `Link`
        header (it carries the query and the cursor), exactly as the client's `paginate` does — but
        only if it stays on the endpoint's origin."""
        url: str | None = first_url
        params: list[tuple[str, str]] | None = None
        if url is None:
            url, params = f"{self.endpoint}/api/models", self._listing_params(self.options.page_size)
        while url is not None:
            if origin_of(url) != self.meter.origin:
                raise CrossOriginRefused(
                    f"the listing's next page is on another origin ({url.split('?')[0]}); refused: the Hub "
                    f"source sends requests (and its token) only to {show_origin(self.meter.origin)}")

            def get(u: str = url, p: Any = params) -> httpx2.Response:
                r = session().get(u, params=p, headers=self._headers, timeout=self.options.timeout_s)
                hf_raise_for_status(r)
                return r

            try:
                resp = self._retry(get, f"GET {url.split('?')[0]}")
            except CrossOriginRefused:
                raise
            except (HfHubHTTPError, httpx2.HTTPError) as e:
                raise SourceError(f"listing models at {self.endpoint} failed: {describe(e)}") from e
            try:
                items = resp.json()
            except ValueError as e:
                raise SourceError(f"listing page {resp.request.url} is not JSON: {e}") from e
            if not isinstance(items, list):
                raise SourceError(f"listing page {resp.request.url} is not a JSON list")
            nxt = resp.links.get("next", {}).get("url")
            if nxt is not None and origin_of(nxt) != self.meter.origin:
                # Keep this page's models, never store that URL as a resume point, then stop loudly.
                yield str(resp.request.url), None, items
                raise CrossOriginRefused(
                    f"the listing's next page is on another origin ({nxt.split('?')[0]}); refused: the Hub "
                    f"source sends requests (and its token) only to {show_origin(self.meter.origin)}")
            yield str(resp.request.url), nxt, items
            url, params = nxt, None

    # -- listing stage -------------------------------------------------------------------------------
    def events(self, mode: HarvestMode, checkpoint: dict[str, Any] | None) -> Iterator[HarvestEvent]:
        o = self.options
        state = checkpoint if isinstance(checkpoint, dict) else {}
        # A watermark of the older layout (v1) is still a watermark; its resume point is not.
        watermark = _Key.load(state.get("watermark")) if state.get("v") in (1, CHECKPOINT_VERSION) else None
        resume = state.get("resume") if state.get("v") == CHECKPOINT_VERSION else None
        if not isinstance(resume, dict) or resume.get("mode") != mode or resume.get("listing") != self._listing_key():
            if resume:
                log.info("%s: stored resume point is for another mode or listing; starting over", self.name)
            resume = None
        stop_at = watermark if mode == "incremental" else None
        listed = int(resume.get("listed", 0)) if resume else 0
        run_newest = _Key.load(resume.get("run_newest")) if resume else None
        after = _Key.load(resume.get("after")) if resume else None
        first_url = resume.get("page_url") if resume else None
        if first_url is not None and (not isinstance(first_url, str) or origin_of(first_url) != self.meter.origin):
            log.warning("%s: the stored resume point is not on %s; listing from the start", self.name, self.endpoint)
            resume, first_url, listed, run_newest, after = None, None, 0, None, None
        # Deletions are only safe when this very run listed everything from the first page: a
        # resumed run never saw (in the pipeline's eyes) what the crashed run had listed.
        from_start = resume is None
        truncated = False
        since_cp = 0

        def state_now(page_url: str | None, last: _Key | None) -> dict[str, Any]:
            return {"v": CHECKPOINT_VERSION, "watermark": watermark.dump() if watermark else None,
                    "resume": {"mode": mode, "listing": self._listing_key(), "page_url": page_url,
                               "after": last.dump() if last else None, "listed": listed,
                               "run_newest": run_newest.dump() if run_newest else None}}

        reached_watermark = False
        page_url: str | None = None
        last: _Key | None = None
        pages = self._pages(first_url)
        try:
            first_page = next(pages)
        except CrossOriginRefused:
            raise
        except SourceError as e:
            # A stored cursor the server no longer accepts (expired, listing changed shape) must
            # not wedge the source: start the listing over; a transient failure stays an error.
            if first_url is None or e.__cause__ is None or is_transient(e.__cause__):
                raise
            log.warning("%s: the stored resume point was refused (%s); listing from the start",
                        self.name, describe(e.__cause__))
            listed, run_newest, after, from_start = 0, None, None, True
            pages = self._pages(None)
            first_page = next(pages)
        for page_url, next_url, items in itertools.chain([first_page], pages):
            start = _resume_index(items, after) if after is not None else 0
            after = None
            last = None
            for idx in range(start, len(items)):
                raw = items[idx]
                ref = _item_ref(raw, page_url, idx)
                problem = _item_problem(raw)
                if problem is not None:
                    listed += 1
                    yield Skipped(ref=ref, reason=f"malformed listing item: {problem}")
                    continue
                payload: dict[str, Any] = raw
                modified = parse_hub_datetime(payload.get("lastModified"))
                key = _Key(modified, payload["id"]) if modified else None
                if stop_at is not None and key is not None and (
                        key.last_modified < stop_at.last_modified or key == stop_at):
                    reached_watermark = True
                    break
                if o.limit is not None and listed >= o.limit:
                    truncated = True
                    break
                listed += 1
                if run_newest is None and key is not None:
                    run_newest = key
                if payload.get("disabled") is True:
                    yield Gone(local_id=payload["id"], reason="disabled on the Hub")
                else:
                    # The wire JSON is the payload (hf_mapping reads it defensively): re-building it
                    # through the client's ModelInfo cost ~1.7 ms a model, an hour for the whole Hub.
                    yield SourceRecord(local_id=payload["id"], payload=payload,
                                       etag=payload["sha"] if isinstance(payload.get("sha"), str) else None,
                                       url=f"{self.endpoint}/api/models/{payload['id']}")
                last = key or last
                since_cp += 1
                if since_cp >= o.checkpoint_every:
                    since_cp = 0
                    yield Checkpoint(state=state_now(page_url, last))
            if reached_watermark or truncated:
                break
            if next_url is not None:
                since_cp = 0
                yield Checkpoint(state=state_now(next_url, None))
        if truncated:
            # Resume where --limit stopped; the watermark stays until the walk is complete.
            yield Checkpoint(state=state_now(page_url, last))
            log.info("%s: stopped after %d models (limit); no deletions this run", self.name, listed)
            return
        if mode == "full" and from_start:
            yield ListingComplete(listed=listed)
        elif mode == "full":
            log.info("%s: resumed full listing finished; deletions wait for the next uninterrupted "
                     "full run", self.name)
        new_mark = run_newest or watermark
        yield Checkpoint(state={"v": CHECKPOINT_VERSION, "watermark": new_mark.dump() if new_mark else None,
                                "resume": None, "finished_at": hub_time(datetime.now(UTC))})

    # -- enrichment stage ----------------------------------------------------------------------------
    def enrichment_plan(self) -> EnrichmentPlan | None:
        o = self.options
        if not o.enrich or not (o.files_metadata or o.cards) or o.enrich_max_models == 0:
            return None
        return EnrichmentPlan(max_models=o.enrich_max_models, time_limit_s=o.enrich_time_limit_s,
                              priority=list(o.enrich_priority))

    def merge_enrichment(self, item: SourceRecord, extras: dict[str, Any]) -> SourceRecord:
        return item.model_copy(update={"payload": {**item.payload, **extras}})

    def enrich(self, targets: list[EnrichTarget]) -> Iterator[HarvestEvent]:
        """For each target: the record as the listing would give it plus what only per-model calls
        give (`enrichment`), `Gone` when the Hub says it no longer exists, `Skipped` on failure."""
        o = self.options
        own_cache = o.cache_dir is None and o.cards
        self._cache_dir = Path(tempfile.mkdtemp(prefix="modelport-hf-")) if own_cache else o.cache_dir
        consecutive = 0
        try:
            for t in targets:
                try:
                    result = self._enrich_one(t)
                except _Failure as e:
                    consecutive += 1
                    yield Skipped(ref=t.local_id, reason=str(e))
                    if consecutive >= o.max_consecutive_failures:
                        raise SourceError(f"{consecutive} models in a row could not be enriched from "
                                          f"{self.endpoint}; last error: {e}") from e
                    continue
                consecutive = 0
                yield result
        finally:
            if own_cache and self._cache_dir is not None:
                shutil.rmtree(self._cache_dir, ignore_errors=True)
            self._cache_dir = None

    def _enrich_one(self, t: EnrichTarget) -> SourceRecord | Gone:
        repo_id = t.local_id

        def get() -> dict[str, Any]:
            # What HfApi.model_info sends and checks (hf_api.py: GET /api/models/{repo_id}?blobs=true,
            # hf_raise_for_status, ModelInfo(**data)), keeping the wire JSON as the payload, in the
            # same shape as the listing's.
            validate_repo_id(repo_id)
            r = session().get(f"{self.endpoint}/api/models/{repo_id}", headers=self._headers,
                              params={"blobs": True} if self.options.files_metadata else None,
                              timeout=self.options.timeout_s)
            hf_raise_for_status(r)
            data = r.json()
            if not isinstance(data, dict):
                raise ValueError(f"model_info answer is a {type(data).__name__}, not an object")
            ModelInfo(**data)  # an answer the client would refuse is refused here too
            return data

        try:
            payload = self._retry(get, f"model_info {repo_id}")
        except DisabledRepoError:
            return Gone(local_id=repo_id, reason="disabled on the Hub")
        except RepositoryNotFoundError:
            return Gone(local_id=repo_id, reason="repository not found (deleted, renamed or made private)")
        except GatedRepoError as e:
            raise _Failure(f"model_info refused (gated; a token with access is needed): {describe(e)}") from e
        except CrossOriginRefused as e:
            raise _Failure(str(e)) from e
        except (KeyError, TypeError, ValueError) as e:
            # The client could not build ModelInfo from the answer: the listing's record stays.
            raise _Failure(f"model_info answer malformed: {describe(e)}") from e
        except Exception as e:
            if is_transient(e):
                raise _Failure(f"model_info failed after {self.policy.attempts} attempts: {describe(e)}") from e
            if isinstance(e, HfHubHTTPError):
                raise _Failure(f"model_info refused: {describe(e)}") from e
            raise
        if payload.get("disabled") is True:
            return Gone(local_id=repo_id, reason="disabled on the Hub")
        if self.options.cards:
            readme = self._readme(repo_id, payload)
            if readme is not None:
                payload[README_KEY] = readme
        extras = {k: payload[k] for k in ENRICHED_KEYS if k in payload}
        # The record is built from what a listing of this revision gives plus the extras, so the next
        # listing (merged with the same extras) yields the same record, not a flip-flop.
        merged = {**{k: v for k, v in payload.items() if k in self._listing_keys}, **extras}
        sha = payload.get("sha") if isinstance(payload.get("sha"), str) else None
        return SourceRecord(local_id=repo_id, payload=merged, etag=sha, enrichment=extras,
                            url=f"{self.endpoint}/api/models/{repo_id}")

    def _readme(self, repo_id: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        sibs = payload.get("siblings")
        if isinstance(sibs, list) and not any(isinstance(s, dict) and s.get("rfilename") == "README.md"
                                              for s in sibs):
            return None  # known file list without a card: save the two requests
        revision = payload.get("sha") if isinstance(payload.get("sha"), str) else None
        cache_dir = self._cache_dir

        def download() -> str:
            # hf_hub_download makes a HEAD and (unless cached) a GET, with retries of its own: each
            # of them draws from the "resolvers" budget in the HTTP hooks.
            return self.api.hf_hub_download(repo_id, "README.md", revision=revision, cache_dir=cache_dir,
                                            etag_timeout=self.options.timeout_s)

        try:
            path = self._retry(download, f"README {repo_id}")
            with open(path, "rb") as fh:
                data = fh.read(README_MAX_BYTES + 1)
        except (RemoteEntryNotFoundError, RevisionNotFoundError, RepositoryNotFoundError):
            return None
        except Exception as e:
            # A card is an extra: the record is still worth storing without it.
            log.warning("README of %s not fetched: %s", repo_id, describe(e))
            return None
        finally:
            # The download cache is scratch space: kept, it would grow by one card per repo forever.
            if cache_dir is not None:
                folder = repo_folder_name(repo_id=repo_id, repo_type="model")
                shutil.rmtree(Path(cache_dir) / folder, ignore_errors=True)
                shutil.rmtree(Path(cache_dir) / ".locks" / folder, ignore_errors=True)
        return {"text": data[:README_MAX_BYTES].decode("utf-8", errors="replace"),
                "truncated": len(data) > README_MAX_BYTES}


def _item_problem(raw: Any) -> str | None:
    """Why a listing item cannot be a record, or None. Only what the harvest itself relies on is
    checked (an id, a readable date, a file list of named files); the mapping reads the rest
    defensively."""
    if not isinstance(raw, dict):
        return f"a {type(raw).__name__}, not an object"
    rid = raw.get("id")
    if not isinstance(rid, str) or not rid.strip():
        return "no model id"
    lm = raw.get("lastModified")
    if lm is not None and parse_hub_datetime(lm) is None:
        return f"unreadable lastModified {str(lm)[:40]!r}"
    sibs = raw.get("siblings")
    if sibs is not None and (not isinstance(sibs, list)
                             or not all(isinstance(x, dict) and isinstance(x.get("rfilename"), str) for x in sibs)):
        return "siblings is not a list of named files"
    return None


def _resume_index(items: list[Any], after: _Key) -> int:
    """Where to continue in a re-fetched page: after the last processed item if it is still there,
    else at the first item not newer than it (re-reading a few models is harmless, missing one is not)."""
    for i, raw in enumerate(items):
        if isinstance(raw, dict) and raw.get("id") == after.id:
            return i + 1
    for i, raw in enumerate(items):
        lm = parse_hub_datetime(raw.get("lastModified")) if isinstance(raw, dict) else None
        if lm is not None and lm <= after.last_modified:
            return i
    return len(items)


def _item_ref(raw: Any, page_url: str, idx: int) -> str:
    if isinstance(raw, dict):
        for k in ("id", "modelId"):
            if isinstance(raw.get(k), str) and raw[k].strip():
                return raw[k].strip()
    return f"{page_url.split('?')[0]}#{idx}"


__all__ = ["HuggingFaceSource", "HuggingFaceOptions", "is_transient",
           "LISTING_EXPAND", "ENRICHED_KEYS"]
