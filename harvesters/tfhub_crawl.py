"""The Scrapy side of the TF Hub harvester: a spider that walks a documentation tree (directory
listings, links between pages, or a file:// tree), parses each document and hands the results to an
item pipeline that writes them to a JSON-lines file the `TFHubSource` reads back.

The crawl runs in a child process (`python -m modelport.harvesters.tfhub_crawl CONFIG.json`): a
Twisted reactor can start only once per process, and a harvest may run many times in one process
(tests, the scheduler), so each crawl gets a fresh interpreter and the parent never imports Twisted.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin, urlparse
from urllib.request import url2pathname

from pydantic import BaseModel, Field

from modelport.errors import SourceError
from modelport.harvesters.tfhub_parse import MalformedDocument, html_title, parse_html, parse_markdown

# Files worth requesting: documents, pages and directories. Everything else a listing shows
# (icons, YAML vocabularies, model archives) is never downloaded.
_FOLLOW_EXT = re.compile(r"(/|\.md|\.html?|/[^./]+)$", re.IGNORECASE)
_MD_LINK_RE = re.compile(r"\]\(([^)\s]+\.md)\)")


class CrawlConfig(BaseModel):
    """Everything the child process needs; written as JSON next to its outputs."""

    root: str
    incremental: bool = False
    cache_dir: str | None = None  # HTTP cache + last parse results (incremental mode)
    items_path: str
    summary_path: str
    user_agent: str = "ModelPort-TFHub-Harvester/1.0 (+https://w3id.org/modelport)"
    obey_robots: bool = True
    concurrency: int = Field(default=8, ge=1)
    autothrottle_start_delay: float = Field(default=0.5, ge=0)
    autothrottle_max_delay: float = Field(default=10.0, ge=0)
    autothrottle_target_concurrency: float = Field(default=4.0, gt=0)
    retry_times: int = Field(default=2, ge=0)
    download_timeout: float = Field(default=30.0, gt=0)
    # Bounds on what one crawl may cost: pages fetched, wall time, bytes of one response. A crawl
    # that hits one stops, says so, and is incomplete (nothing tombstoned).
    max_pages: int = Field(default=20_000, ge=1)
    max_seconds: float = Field(default=3_600.0, gt=0)
    max_response_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    log_level: str = "WARNING"


class CrawlSummary(BaseModel):
    """What the crawl saw, beyond the items: the source decides completeness from it."""

    root_ok: bool = False
    pages_fetched: int = 0
    docs_parsed: int = 0  # documents run through the parser in this crawl
    docs_reused: int = 0  # unchanged documents (HTTP 304 / fresh cache) whose earlier parse was reused
    malformed: int = 0
    fetch_errors: list[dict[str, str]] = Field(default_factory=list)  # [{"url", "reason"}]
    robots_excluded: list[str] = Field(default_factory=list)
    stopped: str | None = None  # why the crawl stopped early (page cap, time limit)
    stats: dict[str, Any] = Field(default_factory=dict)  # Scrapy's own counters (retries, cache, …)

    @property
    def complete(self) -> bool:
        return self.root_ok and not self.fetch_errors and self.stopped is None


def scope_prefix(root: str) -> str:
    """Links are followed only below the root's directory (`http://h/docs/index.html` → `http://h/docs/`)."""
    url = urldefrag(root)[0]
    if url.endswith("/"):
        return url
    parsed = urlparse(url)
    if parsed.scheme == "file" and Path(url2pathname(unquote(parsed.path))).is_dir():
        return url + "/"
    return url.rsplit("/", 1)[0] + "/"


def file_url_to_path(url: str) -> Path:
    return Path(url2pathname(unquote(urlparse(url).path)))


# -- Scrapy components (imported only in the child process) ------------------------------------

def _build_spider_class() -> type:
    import scrapy
    from scrapy.exceptions import IgnoreRequest
    from scrapy.http import Request, Response
    from scrapy.spidermiddlewares.httperror import HttpError

    class TFHubDocsSpider(scrapy.Spider):
        name = "tfhub-docs"

        def __init__(self, config: CrawlConfig, previous: dict[str, Any], **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.config = config
            self.prefix = scope_prefix(config.root)
            self.previous = previous  # url → {"sha256", "item"} from the last incremental crawl
            self.parse_map: dict[str, dict[str, Any]] = {}
            self.summary = CrawlSummary()
            self.requested = 0
            self.deadline = time.monotonic() + config.max_seconds

        def _budget_left(self) -> bool:
            """Whether another page may be requested (the page cap and the time limit)."""
            if self.requested >= self.config.max_pages:
                self.summary.stopped = f"page cap reached ({self.config.max_pages} pages); crawl incomplete"
                return False
            if time.monotonic() >= self.deadline:
                self.summary.stopped = f"time limit reached ({self.config.max_seconds:g} s); crawl incomplete"
                return False
            return True

        async def start(self) -> AsyncIterator[Any]:  # type: ignore[override]
            for req in self._requests_for(self.config.root, root=True):
                yield req

        # A revalidating request: RFC2616Policy then asks the server with If-None-Match /
        # If-Modified-Since even when the cached copy would still count as fresh, so a
        # re-crawl always notices changed documents.
        def _request(self, url: str, root: bool = False) -> Request:
            headers = {"Cache-Control": "max-age=0"} if self.config.incremental else {}
            self.requested += 1
            return Request(url, callback=self.parse_page, errback=self.on_error, headers=headers,
                           meta={"root": root}, dont_filter=root)

        def _requests_for(self, url: str, root: bool = False) -> Iterator[Request]:
            if not root and not self._budget_left():
                return
            if urlparse(url).scheme == "file":
                path = file_url_to_path(url)
                if path.is_dir():
                    # For file:// the file system is the listing: walk it (sorted for stable order).
                    if root:
                        self.summary.root_ok = True
                    for dirpath, dirnames, filenames in os.walk(path):
                        dirnames.sort()
                        for fn in sorted(filenames):
                            if fn.lower().endswith((".md", ".html", ".htm")):
                                if not self._budget_left():
                                    return
                                yield self._request(Path(dirpath, fn).resolve().as_uri())
                    return
                if not path.exists():
                    self.summary.fetch_errors.append({"url": url, "reason": "no such file"})
                    return
            yield self._request(url, root=root)

        def _in_scope(self, url: str) -> bool:
            return url.startswith(self.prefix) and bool(_FOLLOW_EXT.search(urlparse(url).path or "/"))

        def _follow(self, response: Response, hrefs: list[str]) -> Iterator[Request]:
            for href in hrefs:
                url = urldefrag(urljoin(response.url, href.strip()))[0]
                if url != response.url and self._in_scope(url):
                    yield from self._requests_for(url)

        def parse_page(self, response: Response) -> Iterator[Any]:
            self.summary.pages_fetched += 1
            if response.meta.get("root"):
                self.summary.root_ok = True
            body: bytes = response.body
            text = body.decode("utf-8", errors="replace")
            ctype = response.headers.get(b"Content-Type", b"").decode("latin-1").lower()
            path = urlparse(response.url).path.lower()
            sniffed_html = text.lstrip()[:15].lower().startswith(("<!doctype html", "<html"))
            is_html = "html" in ctype or path.endswith((".html", ".htm")) or (
                not path.endswith(".md") and sniffed_html)
            if path.endswith(".md") or (not is_html and text.startswith("# ")):
                yield from self._document(response, text, "markdown")
                # Relative links between markdown pages also lead to documents.
                yield from self._follow(response, _MD_LINK_RE.findall(text))
                return
            if not is_html:
                return
            if html_title(text):
                yield from self._document(response, text, "html")
            yield from self._follow(response, response.xpath("//a/@href").getall())

        def _document(self, response: Response, text: str, form: str) -> Iterator[dict[str, Any]]:
            url = response.url
            sha = hashlib.sha256(response.body).hexdigest()
            prev = self.previous.get(url)
            # An unchanged document (served from the HTTP cache after a 304 or while fresh) keeps
            # its earlier parse; the hash check guards against a cache and parse map out of step.
            # Scrapy never caches file:// responses; there the content hash alone decides.
            unchanged = "cached" in response.flags or response.url.startswith("file:")
            if self.config.incremental and unchanged and prev and prev.get("sha256") == sha:
                item = prev["item"]
                self.summary.docs_reused += 1
            else:
                self.summary.docs_parsed += 1
                try:
                    doc = parse_markdown(text, url) if form == "markdown" else parse_html(text, url)
                    item = {"kind": "doc", "url": url, "doc": doc.model_dump(mode="json")}
                except MalformedDocument as exc:
                    item = {"kind": "malformed", "url": url, "reason": str(exc), "local_id": exc.local_id}
            if item["kind"] == "malformed":
                self.summary.malformed += 1
            self.parse_map[url] = {"sha256": sha, "item": item}
            yield item

        def on_error(self, failure: Any) -> None:
            url = failure.request.url
            # By marker, not class: run as `-m`, this module is __main__ while Scrapy loads the
            # middleware from its import name, so the two hold different class objects.
            if getattr(failure.value, "out_of_scope", False):
                self.summary.fetch_errors.append({"url": url, "reason": str(failure.value)})
                return
            if failure.check(HttpError):
                reason = f"HTTP {failure.value.response.status}"
            elif failure.check(IgnoreRequest):
                # Only robots.txt drops requests here: documents the site asks us not to crawl
                # are out of the catalog's scope, not a failed fetch.
                self.summary.robots_excluded.append(url)
                return
            else:
                reason = f"{type(failure.value).__name__}: {failure.value}"
            self.summary.fetch_errors.append({"url": url, "reason": reason})

    return TFHubDocsSpider


@cache
def _out_of_scope_redirect_class() -> type:
    from scrapy.exceptions import IgnoreRequest

    class OutOfScopeRedirect(IgnoreRequest):
        """A redirect that leaves the crawl's scope (another host, or outside the root's folder)."""

        out_of_scope = True

    return OutOfScopeRedirect


class ScopeMiddleware:
    """Refuses requests that redirects made and that leave the root's scope: a document server must
    not send the crawler (and what it trusts) to another host. Sits after Scrapy's
    RedirectMiddleware, which re-schedules the redirected request through the whole chain."""

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler
        config = CrawlConfig.model_validate_json(crawler.settings.get("MODELPORT_CRAWL_CONFIG"))
        self.prefix = scope_prefix(config.root)
        self.origin = "{0.scheme}://{0.netloc}/".format(urlparse(config.root))

    @classmethod
    def from_crawler(cls, crawler: Any) -> ScopeMiddleware:
        return cls(crawler)

    def process_request(self, request: Any) -> None:
        if request.meta.get("redirect_urls") and not request.url.startswith(self.prefix):
            first = request.meta["redirect_urls"][0]
            # robots.txt lives at the origin's root, outside a docs folder: same host is enough there.
            if not (urlparse(request.url).path == "/robots.txt" and request.url.startswith(self.origin)):
                raise _out_of_scope_redirect_class()(
                    f"redirected from {first} to {request.url}, outside {self.prefix}; not followed")
        return None


class FetchErrorMiddleware:
    """Sits between the HTTP cache and the downloader so that errors the cache papers over
    (a stale copy served for a refused connection or a 5xx) still mark the crawl incomplete."""

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Any) -> FetchErrorMiddleware:
        return cls(crawler)

    def _note(self, url: str, reason: str) -> None:
        spider = self.crawler.spider
        if spider is not None:
            spider.summary.fetch_errors.append({"url": url, "reason": reason})

    def process_response(self, request: Any, response: Any) -> Any:
        if response.status >= 500 and "cached_response" in request.meta:
            self._note(request.url, f"HTTP {response.status} (stale cached copy served)")
        return response

    def process_exception(self, request: Any, exception: Exception) -> None:
        if "cached_response" in request.meta:
            self._note(request.url, f"{type(exception).__name__}: {exception} (stale cached copy served)")
        return None


class CollectItemsPipeline:
    """The Scrapy item pipeline: every item goes to the JSON-lines file the source reads, and at the
    end the crawl summary and (incremental mode) the parse map for the next crawl are written."""

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler
        raw = crawler.settings.get("MODELPORT_CRAWL_CONFIG")
        self.config: CrawlConfig = CrawlConfig.model_validate_json(raw)
        self.fh: Any = None

    @classmethod
    def from_crawler(cls, crawler: Any) -> CollectItemsPipeline:
        return cls(crawler)

    def open_spider(self) -> None:
        self.fh = open(self.config.items_path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close_spider

    def process_item(self, item: dict[str, Any]) -> dict[str, Any]:
        self.fh.write(json.dumps(item, ensure_ascii=False) + "\n")
        return item

    def close_spider(self) -> None:
        self.fh.close()
        spider = self.crawler.spider
        summary: CrawlSummary = spider.summary
        reason = (self.crawler.stats.get_value("finish_reason") if self.crawler.stats else None) or ""
        if summary.stopped is None and str(reason).startswith("closespider_"):
            summary.stopped = f"crawl stopped by {reason}; crawl incomplete"
        if summary.stopped is None and time.monotonic() >= spider.deadline:
            summary.stopped = f"time limit reached ({self.config.max_seconds:g} s); crawl incomplete"
        stats = self.crawler.stats.get_stats() if self.crawler.stats else {}
        summary.stats = {k: v for k, v in stats.items() if isinstance(v, int | float | str)}
        _write_atomic(Path(self.config.summary_path), summary.model_dump_json())
        if self.config.incremental and self.config.cache_dir:
            parse_map = spider.parse_map
            if not summary.complete:  # keep what an interrupted crawl did not reach
                parse_map = {**spider.previous, **parse_map}
            _write_atomic(Path(self.config.cache_dir) / "parsed.json", json.dumps(parse_map))


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def scrapy_settings(config: CrawlConfig) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "BOT_NAME": "modelport",
        "USER_AGENT": config.user_agent,
        "ROBOTSTXT_OBEY": config.obey_robots,
        "CONCURRENT_REQUESTS": config.concurrency,
        "CONCURRENT_REQUESTS_PER_DOMAIN": config.concurrency,
        "AUTOTHROTTLE_ENABLED": True,
        "AUTOTHROTTLE_START_DELAY": config.autothrottle_start_delay,
        "AUTOTHROTTLE_MAX_DELAY": config.autothrottle_max_delay,
        "AUTOTHROTTLE_TARGET_CONCURRENCY": config.autothrottle_target_concurrency,
        "DOWNLOAD_DELAY": 0,
        "RETRY_ENABLED": True,
        "RETRY_TIMES": config.retry_times,
        "DOWNLOAD_TIMEOUT": config.download_timeout,
        "REDIRECT_ENABLED": True,
        "REDIRECT_MAX_TIMES": 5,
        "DOWNLOAD_MAXSIZE": config.max_response_bytes,
        "DOWNLOAD_WARNSIZE": 0,
        # A hard stop a little after the spider's own time check, for requests already in flight.
        "CLOSESPIDER_TIMEOUT": config.max_seconds + config.download_timeout,
        "CLOSESPIDER_PAGECOUNT": config.max_pages + config.concurrency,
        "DOWNLOADER_MIDDLEWARES": {"modelport.harvesters.tfhub_crawl.ScopeMiddleware": 50},
        "COOKIES_ENABLED": False,
        "TELNETCONSOLE_ENABLED": False,
        "LOG_LEVEL": config.log_level,
        "LOG_STDOUT": False,
        "ITEM_PIPELINES": {"modelport.harvesters.tfhub_crawl.CollectItemsPipeline": 100},
        "MODELPORT_CRAWL_CONFIG": config.model_dump_json(),
    }
    if config.incremental and config.cache_dir:
        settings.update({
            "HTTPCACHE_ENABLED": True,
            "HTTPCACHE_POLICY": "scrapy.extensions.httpcache.RFC2616Policy",
            "HTTPCACHE_STORAGE": "scrapy.extensions.httpcache.FilesystemCacheStorage",
            "HTTPCACHE_DIR": str(Path(config.cache_dir, "httpcache").resolve()),
            "HTTPCACHE_EXPIRATION_SECS": 0,
            "DOWNLOADER_MIDDLEWARES": {"modelport.harvesters.tfhub_crawl.ScopeMiddleware": 50,
                                       "modelport.harvesters.tfhub_crawl.FetchErrorMiddleware": 950},
        })
    return settings


def crawl_in_this_process(config: CrawlConfig) -> None:
    """Run one crawl; must be the only crawl of this process (the reactor cannot restart)."""
    from scrapy.crawler import CrawlerProcess

    previous: dict[str, Any] = {}
    if config.incremental and config.cache_dir:
        pm = Path(config.cache_dir) / "parsed.json"
        if pm.is_file():
            try:
                previous = json.loads(pm.read_text(encoding="utf-8"))
            except ValueError:
                previous = {}  # a damaged parse map only costs re-parsing
    process = CrawlerProcess(settings=scrapy_settings(config), install_root_handler=True)
    process.crawl(_build_spider_class(), config=config, previous=previous)
    process.start()


class CrawlResult(BaseModel):
    items: list[dict[str, Any]]
    summary: CrawlSummary


class CrawlFailed(SourceError):
    """The crawl process itself failed (not a single document)."""


def run_crawl(config: CrawlConfig | dict[str, Any], *, timeout: float | None = None) -> CrawlResult:
    """Run a crawl in a child process and return its items and summary."""
    base = config.model_dump() if isinstance(config, CrawlConfig) else dict(config)
    with tempfile.TemporaryDirectory(prefix="modelport-tfhub-") as tmp:
        if base.get("cache_dir"):
            base["cache_dir"] = str(Path(base["cache_dir"]).resolve())
        base.setdefault("items_path", str(Path(tmp, "items.jsonl")))
        base.setdefault("summary_path", str(Path(tmp, "summary.json")))
        cfg = CrawlConfig.model_validate(base)
        cfg_path = Path(tmp, "config.json")
        cfg_path.write_text(cfg.model_dump_json(), encoding="utf-8")
        try:
            # cwd is the temp dir: `-m` puts the cwd first on sys.path, and run from the repository
            # root the bare `modelport/` folder would shadow the installed package.
            proc = subprocess.run(
[sys.executable, "-m", "modelport.harvesters.tfhub_crawl", str(cfg_path)],
                                  capture_output=True, text=True, timeout=timeout, check=False, cwd=tmp)
        except subprocess.TimeoutExpired as exc:
            raise CrawlFailed(f"crawl of {cfg.root} ran past {timeout} s") from exc
        summary_path = Path(cfg.summary_path)
        if proc.returncode != 0 or not summary_path.is_file():
            tail = (proc.stderr or "")[-2000:]
            raise CrawlFailed(f"crawl process for {cfg.root} failed (exit {proc.returncode}): {tail}")
        items = [json.loads(line) for line in Path(cfg.items_path).read_text(encoding="utf-8").splitlines()
                 if line.strip()]
        summary = CrawlSummary.model_validate_json(summary_path.read_text(encoding="utf-8"))
    return CrawlResult(items=items, summary=summary)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m modelport.harvesters.tfhub_crawl CONFIG.json", file=sys.stderr)
        return 2
    config = CrawlConfig.model_validate_json(Path(argv[0]).read_text(encoding="utf-8"))
    crawl_in_this_process(config)
    return 0


__all__ = ["CrawlConfig", "CrawlSummary", "CrawlResult", "CrawlFailed", "run_crawl", "scope_prefix"]

if __name__ == "__main__":
    raise SystemExit(main())
