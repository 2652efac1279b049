"""TF Hub harvests end to end: the real Scrapy engine crawls a fixture documentation tree served by a
local HTTP server (directory listings, ETag/Last-Modified, 304s, robots.txt) or read via file://,
and the records land in the catalog through the one Pipeline."""

from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest

from modelport.harvesters.base import ListingComplete, Skipped, SourceError, SourceRecord
from modelport.harvesters.tfhub import TFHubSource
from modelport.pipeline import Pipeline
from modelport.settings import Settings

DOCS = Path(__file__).parent / "fixtures" / "tfhub" / "docs"
MODEL_DOCS = 41  # 25 Module + 3 Placeholder + 7 Lite + 5 Tfjs + 1 Coral (collections/publishers are not records)
ALL_DOCS = 50
FAST = {"autothrottle_start_delay": 0.0, "retry_times": 1, "download_timeout": 10}


@dataclass
class ServerState:
    root: Path
    requests: list[tuple[str, str | None, str | None]] = field(default_factory=list)  # path, INM, IMS
    not_modified: int = 0
    fail_paths: set[str] = field(default_factory=set)
    redirects: dict[str, str] = field(default_factory=dict)  # path -> Location
    delay_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def served(self, suffix: str = ".md") -> list[str]:
        return [p for p, _, _ in self.requests if p.endswith(suffix)]


class DocsHandler(http.server.SimpleHTTPRequestHandler):
    """http.server's directory listings plus validators: a strong ETag (content hash) and
    Last-Modified on every file, 304 for a matching If-None-Match (or, without one, If-Modified-Since)."""

    state: ServerState

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, directory=str(self.state.root), **kwargs)  # type: ignore[arg-type]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def send_head(self) -> Any:  # what SimpleHTTPRequestHandler.send_head returns (a file or None)
        st = self.state
        inm, ims = self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")
        with st.lock:
            st.requests.append((self.path, inm, ims))
        if self.path in st.fail_paths:
            self.send_error(500, "injected failure")
            return None
        if st.delay_s:
            time.sleep(st.delay_s)
        if self.path in st.redirects:
            self.send_response(301)
            self.send_header("Location", st.redirects[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            return super().send_head()  # listings, redirects, 404
        data = Path(path).read_bytes()
        etag = '"' + hashlib.sha256(data).hexdigest()[:20] + '"'
        mtime = os.stat(path).st_mtime
        if inm is not None:
            fresh = etag in [t.strip() for t in inm.split(",")] or inm.strip() == "*"
        elif ims is not None:
            try:
                fresh = int(mtime) <= parsedate_to_datetime(ims).timestamp()
            except (TypeError, ValueError):
                fresh = False
        else:
            fresh = False
        if fresh:
            with st.lock:
                st.not_modified += 1
            self.send_response(304)
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", formatdate(mtime, usegmt=True))
            self.end_headers()
            return None
        self.send_response(200)
        ctype = "text/markdown; charset=utf-8" if path.endswith(".md") else self.guess_type(path)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", formatdate(mtime, usegmt=True))
        self.end_headers()
        return BytesIO(data)


@dataclass
class DocsServer:
    url: str
    state: ServerState
    root: Path


def _serve(root: Path) -> Iterator[DocsServer]:
    state = ServerState(root=root)
    handler = type("Handler", (DocsHandler,), {"state": state})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield DocsServer(url=f"http://127.0.0.1:{srv.server_port}/", state=state, root=root)
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A private copy of the fixture tree, so tests can edit and delete documents."""
    dst = tmp_path / "docs"
    shutil.copytree(DOCS, dst)
    return dst


@pytest.fixture
def server(tree: Path) -> Iterator[DocsServer]:
    yield from _serve(tree)


def _settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", base_iri="http://test")


def _source(root: str, settings: Settings, name: str = "tfhub") -> TFHubSource:
    return TFHubSource(root, name=name, crawl_options=FAST,
                       cache_dir=settings.data_dir / "cache" / "tfhub" / name)


def _live_ids(pipe: Pipeline, source: str = "tfhub") -> set[str]:
    return {r.id for r in pipe.catalog.iter_records(source=source)}


def test_full_crawl_over_http_lands_every_model_version_in_the_catalog(server: DocsServer, tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    pipe = Pipeline(settings)
    src = _source(server.url, settings)
    report = pipe.harvest(src, mode="full")
    assert report.counts["inserted"] == MODEL_DOCS and report.counts["skipped"] == 1
    assert any("broken-model" in e["reason"] and "'format' given more than once" in e["reason"]
               and server.url in e["reason"] for e in report.errors)
    assert src.last_summary is not None and src.last_summary.complete
    assert src.last_summary.docs_parsed == ALL_DOCS
    assert len(server.state.served()) == ALL_DOCS  # every document fetched once, listings followed
    assert "/robots.txt" in [p for p, _, _ in server.state.requests]  # robots.txt consulted

    ids = _live_ids(pipe)
    assert len(ids) == MODEL_DOCS
    r = pipe.catalog.get("tfhub:google/imagenet/mobilenet_v2_100_224/classification/5")
    assert r is not None and r.formats[:3] == ["tf-savedmodel", "tflite", "tfjs"]
    assert r.license == "Apache-2.0" and r.provenance.defaults_applied
    assert r.provenance.source_url == server.url + "google/models/imagenet/mobilenet_v2_100_224/classification/5.md"
    # the parent's compatibility gains its deployments' targets (derived by the pipeline from formats)
    assert {c.format for c in r.compatibility} >= {"tf-savedmodel", "tflite", "tfjs"}
    lite = pipe.catalog.get("tfhub:google/lite-model/spice/1")
    assert lite is not None and lite.base_models[0].ref == "tfhub:google/spice/2"
    assert pipe.catalog.get("tfhub:google/spice/1") is not None  # same handle, different record

    # Unchanged tree, second full crawl: nothing changes, nothing is tombstoned.
    again = pipe.harvest(_source(server.url, settings), mode="full")
    assert again.counts["unchanged"] == MODEL_DOCS and again.counts["tombstoned"] == 0
    assert again.counts["inserted"] == 0 and again.counts["updated"] == 0


def test_file_url_crawl_gives_the_same_records(tree: Path, tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    pipe = Pipeline(settings)
    report = pipe.harvest(_source(tree.as_uri(), settings), mode="full")
    assert report.counts["inserted"] == MODEL_DOCS and report.counts["skipped"] == 1
    r = pipe.catalog.get("tfhub:tensorflow/mobilenet_v2_1.0_224_quantized/1")
    assert r is not None and r.declared_formats == ["tflite", "edgetpu-tflite"]
    # a plain directory path means the same as its file:// URL
    assert _source(str(tree), settings).root == tree.resolve().as_uri()

    # incremental over file://: no HTTP cache, the content hash tells unchanged documents apart
    first = _source(tree.as_uri(), settings)
    pipe.harvest(first, mode="incremental")
    assert first.last_summary is not None and first.last_summary.docs_parsed == ALL_DOCS
    doc = tree / "deepmind/models/biggan-deep-128/1.md"
    doc.write_text(doc.read_text().replace("128x128", "128 x 128 pixels"))
    second = _source(tree.as_uri(), settings)
    report = pipe.harvest(second, mode="incremental")
    assert second.last_summary is not None and second.last_summary.docs_parsed == 1
    assert report.counts["updated"] == 1


def test_incremental_recrawl_reparses_only_changed_documents(server: DocsServer, tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    pipe = Pipeline(settings)
    first_src = _source(server.url, settings)
    first = pipe.harvest(first_src, mode="incremental")
    assert first.counts["inserted"] == MODEL_DOCS
    assert first_src.last_summary is not None and first_src.last_summary.docs_parsed == ALL_DOCS
    assert (settings.data_dir / "cache" / "tfhub" / "tfhub" / "httpcache").is_dir()

    # Change two documents: a module's description and a TF Lite deployment's asset path.
    m = server.root / "google/models/yamnet/1.md"
    m.write_text(m.read_text().replace("521 audio event classes", "521 AudioSet classes"))
    lite = server.root / "google/models/spice/lite/1.md"
    lite.write_text(lite.read_text().replace("asset-path: legacy", "asset-path: https://example.org/spice.tflite"))
    server.state.requests.clear()

    src = _source(server.url, settings)
    report = pipe.harvest(src, mode="incremental")
    summary = src.last_summary
    assert summary is not None and summary.complete
    assert summary.docs_parsed == 2 and summary.docs_reused == ALL_DOCS - 2
    # every document was revalidated with a conditional request; 48 were answered 304
    md_requests = [(p, inm) for p, inm, _ in server.state.requests if p.endswith(".md")]
    assert len(md_requests) == ALL_DOCS and all(inm for _, inm in md_requests)
    assert server.state.not_modified == ALL_DOCS - 2
    assert report.counts["updated"] == 2 and report.counts["unchanged"] == MODEL_DOCS - 2
    y = pipe.catalog.get("tfhub:google/yamnet/1")
    assert y is not None and "521 AudioSet classes" in (y.description or "")
    sp = pipe.catalog.get("tfhub:google/lite-model/spice/1")
    assert sp is not None and sp.source_facts["asset_path"] == "https://example.org/spice.tflite"

    # Nothing changed: a third crawl parses nothing at all.
    src3 = _source(server.url, settings)
    third = pipe.harvest(src3, mode="incremental")
    assert src3.last_summary is not None and src3.last_summary.docs_parsed == 0
    assert third.counts["unchanged"] == MODEL_DOCS


def test_removed_document_is_tombstoned_only_after_a_complete_crawl(server: DocsServer, tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    pipe = Pipeline(settings)
    pipe.harvest(_source(server.url, settings), mode="incremental")
    (server.root / "deepmind/models/ganeval-cifar10-convnet/1.md").unlink()

    # One document fails with a server error (after retries, and the HTTP cache's stale copy does
    # not count as success): the crawl is incomplete, so the removed document is not tombstoned.
    server.state.fail_paths.add("/google/models/spice/2.md")
    src = _source(server.url, settings)
    events = list(src.events("incremental", None))
    assert not any(isinstance(e, ListingComplete) for e in events)
    assert src.last_summary is not None and src.last_summary.fetch_errors
    report = pipe.harvest(_source(server.url, settings), mode="incremental")
    assert report.counts["tombstoned"] == 0
    assert "tfhub:deepmind/ganeval-cifar10-convnet/1" in _live_ids(pipe)

    # The server recovers: a complete crawl tombstones exactly the vanished document.
    server.state.fail_paths.clear()
    report = pipe.harvest(_source(server.url, settings), mode="incremental")
    assert report.counts["tombstoned"] == 1
    assert _live_ids(pipe) == {f"tfhub:{x}" for x in _expected_ids()} - {"tfhub:deepmind/ganeval-cifar10-convnet/1"}


def test_full_mode_fetch_error_also_blocks_tombstoning(server: DocsServer, tmp_path: Path) -> None:
    server.state.fail_paths.add("/tensorflow/models/ssd_mobilenet_v2/2.md")
    src = _source(server.url, _settings(tmp_path))
    events = list(src.events("full", None))
    skipped = [e for e in events if isinstance(e, Skipped)]
    assert any(e.ref.endswith("/tensorflow/models/ssd_mobilenet_v2/2.md") and "HTTP 500" in e.reason for e in skipped)
    assert not any(isinstance(e, ListingComplete) for e in events)
    assert sum(isinstance(e, SourceRecord) for e in events) == MODEL_DOCS - 1
    # retried before giving up
    assert len([p for p, _, _ in server.state.requests if p == "/tensorflow/models/ssd_mobilenet_v2/2.md"]) == 2


def test_robots_txt_is_obeyed(server: DocsServer, tmp_path: Path) -> None:
    (server.root / "robots.txt").write_text("User-agent: *\nDisallow: /sayakpaul/\n")
    src = _source(server.url, _settings(tmp_path))
    events = list(src.events("full", None))
    ids = {e.local_id for e in events if isinstance(e, SourceRecord)}
    assert not any(i.startswith("sayakpaul/") for i in ids)
    assert len(ids) == MODEL_DOCS - 3
    assert not any(p.startswith("/sayakpaul/") for p, _, _ in server.state.requests)
    assert src.last_summary is not None and src.last_summary.robots_excluded == [server.url + "sayakpaul/"]
    # what the site excludes is out of scope, not a failed fetch: the listing is still complete
    assert any(isinstance(e, ListingComplete) for e in events)


def _render_site(dst: Path) -> list[str]:
    """The tfhub.dev page form: every document rendered to HTML (metadata comments pass through the
    markdown renderer), reachable only through links from an index page (no directory listings)."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": True}).enable("table")
    pages = []
    for p in sorted(DOCS.rglob("*.md")):
        rel = p.relative_to(DOCS).with_suffix(".html")
        out = dst / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("<!doctype html><html><head><meta charset='utf-8'><title>TF Hub</title></head><body>"
                       "<header><a href='/index.html'>TF Hub</a></header>"
                       f"<main><article>{md.render(p.read_text(encoding='utf-8'))}</article></main></body></html>",
                       encoding="utf-8")
        pages.append(rel.as_posix())
    links = "".join(f"<li><a href='{rel}'>{rel}</a></li>" for rel in pages)
    (dst / "index.html").write_text(f"<!doctype html><html><body><h1>Models</h1><ul>{links}</ul></body></html>")
    return pages


def test_html_page_form_site(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    _render_site(site)
    settings = _settings(tmp_path)
    pipe = Pipeline(settings)
    for srv in _serve(site):
        report = pipe.harvest(_source(srv.url + "index.html", settings), mode="full")
        assert report.counts["inserted"] == MODEL_DOCS and report.counts["skipped"] == 1
    assert _live_ids(pipe) == {f"tfhub:{x}" for x in _expected_ids()}
    r = pipe.catalog.get("tfhub:google/universal-sentence-encoder/4")
    assert r is not None and r.source_facts["document_form"] == "html"
    assert r.tasks == ["sentence-similarity"] and r.license == "Apache-2.0"
    assert "universal-sentence-encoder" in r.keywords  # collection membership read from HTML links
    assert r.publisher is not None and r.publisher.name == "Google"


def _expected_ids() -> set[str]:
    from modelport.harvesters.tfhub_parse import MODEL_TYPES, MalformedDocument, parse_markdown

    out = set()
    for p in DOCS.rglob("*.md"):
        try:
            d = parse_markdown(p.read_text(encoding="utf-8"))
        except MalformedDocument:
            continue
        if d.doc_type in MODEL_TYPES:
            out.add(d.local_id)
    return out


def test_unreachable_root_and_bad_roots_are_source_errors(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SourceError, match="cannot read TF Hub root"):
        list(_source(f"http://127.0.0.1:{port}/", settings).events("full", None))
    with pytest.raises(SourceError, match="http"):
        TFHubSource("ftp://example.org/docs")
    with pytest.raises(SourceError, match="neither a URL nor"):
        TFHubSource(str(tmp_path / "missing"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="no TF Hub documents"):
        list(_source(empty.as_uri(), settings).events("full", None))


def test_cli_command(server: DocsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from modelport.cli import app

    monkeypatch.setenv("MODELPORT_DATA_DIR", str(tmp_path / "cli-data"))
    monkeypatch.setenv("MODELPORT_BASE_IRI", "http://test")
    runner = CliRunner()
    args = ["harvest", "tfhub", "--root", server.url, "--incremental", "--source", "tfhub-mirror"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "documents parsed 50" in r.output
    pipe = Pipeline(Settings())
    assert len(_live_ids(pipe, "tfhub-mirror")) == MODEL_DOCS
    rec = pipe.catalog.get("tfhub-mirror:google/lite-model/spice/1")
    assert rec is not None and rec.base_models[0].ref == "tfhub-mirror:google/spice/2"
    pipe.close()
    r = runner.invoke(app, args)
    assert r.exit_code == 0 and "documents parsed 0" in r.output
    r = runner.invoke(app, ["harvest", "tfhub", "--root", "ftp://nowhere/"])
    assert r.exit_code == 1 and "error" in r.output


def test_page_cap_stops_the_crawl_and_blocks_tombstoning(server: DocsServer, tmp_path: Path) -> None:
    src = TFHubSource(server.url, name="tfhub", crawl_options={**FAST, "max_pages": 6, "concurrency": 1})
    events = list(src.events("full", None))
    assert not any(isinstance(e, ListingComplete) for e in events)
    assert any(isinstance(e, Skipped) and "page cap reached (6 pages)" in e.reason for e in events)
    pages = [p for p, _, _ in server.state.requests if p != "/robots.txt"]
    assert len(pages) <= 6 and sum(isinstance(e, SourceRecord) for e in events) < MODEL_DOCS


def test_time_limit_stops_the_crawl(server: DocsServer, tmp_path: Path) -> None:
    server.state.delay_s = 0.2
    src = TFHubSource(server.url, name="tfhub", crawl_options={**FAST, "max_seconds": 1.0, "concurrency": 2})
    started = time.monotonic()
    events = list(src.events("full", None))
    assert time.monotonic() - started < 30  # ALL_DOCS pages at 0.2 s each, 2 at a time, would take > 5 s
    assert src.last_summary is not None and "time limit" in (src.last_summary.stopped or "")
    assert not any(isinstance(e, ListingComplete) for e in events)


def test_redirects_outside_the_scope_are_not_followed(server: DocsServer, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(DOCS / "tensorflow", elsewhere / "tensorflow")
    for other in _serve(elsewhere):
        doc = "/tensorflow/models/ssd_mobilenet_v2/2.md"
        server.state.redirects[doc] = other.url.rstrip("/") + doc
        server.state.redirects["/google/"] = other.url + "tensorflow/"
        src = _source(server.url, _settings(tmp_path))
        events = list(src.events("full", None))
        assert other.state.requests == []  # the other host never saw a request
        reasons = [e.reason for e in events if isinstance(e, Skipped)]
        assert any("outside" in r and "not followed" in r and doc in r for r in reasons)
        assert not any(isinstance(e, ListingComplete) for e in events)
