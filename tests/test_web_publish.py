"""Publishing for crawlers and other catalogs: `modelport export` dumps (N-Quads gzip, JSON lines gzip)
that the server offers at /downloads, a sitemap index paged within the protocol's limit, robots.txt."""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyoxigraph as ox
import pytest
from conftest import LiveServer
from web_fixture import BASE_ID, build

from modelport.api import publish
from modelport.schema.identity import record_iri
from modelport.schema.record import ModelRecord
from modelport.settings import Settings

SM = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
BASE = "http://publish.test"


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    s = build(tmp_path_factory.mktemp("web-publish"), base_iri=BASE)
    from modelport.index.catalog import Catalog

    cat = Catalog(s.catalog_path)
    cat.tombstone(["huggingface:acme/vit-ft-3"], "removed upstream")  # a tombstone is never published
    cat.close()
    return s


@pytest.fixture(scope="module")
def exported(settings: Settings) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODELPORT_DATA_DIR": str(settings.data_dir), "MODELPORT_BASE_IRI": BASE}
    return subprocess.run([sys.executable, "-m", "modelport.cli", "export"], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.fixture(scope="module")
def server(settings: Settings, exported: object) -> Iterator[LiveServer]:
    from modelport.api.app import create_app

    with LiveServer(create_app(settings)) as live:
        yield live


def live_ids(settings: Settings) -> set[str]:
    from modelport.index.catalog import Catalog

    cat = Catalog(settings.catalog_path)
    try:
        return {r.id for r in cat.iter_records()}
    finally:
        cat.close()


def test_export_writes_both_dumps(exported: subprocess.CompletedProcess[str], settings: Settings) -> None:
    assert exported.returncode == 0, exported.stderr
    out = settings.data_dir / "exports"
    ids = live_ids(settings)
    with gzip.open(out / "modelport.jsonl.gz", "rt", encoding="utf-8") as f:
        recs = [ModelRecord.model_validate_json(line) for line in f]
    assert {r.id for r in recs} == ids and "huggingface:acme/vit-ft-3" not in ids
    assert next(r for r in recs if r.id == BASE_ID).compatibility  # the record as served, with its matrix
    store = ox.Store()
    with gzip.open(out / "modelport.nq.gz") as f:
        store.bulk_load(f.read(), format=ox.RdfFormat.N_QUADS)
    graphs = {g.value for g in store.named_graphs()}
    assert {record_iri(BASE, i) for i in ids} <= graphs and "https://w3id.org/modelport/kb" in graphs
    # the dump answers the same SPARQL as the server's graph: fine-tunes of the base, over the KB
    rows = list(store.query(
        "PREFIX fair4ml: <https://w3id.org/fair4ml#> PREFIX schema: <http://schema.org/> "
        f"SELECT ?id WHERE {{ ?m fair4ml:fineTunedFrom <{record_iri(BASE, BASE_ID)}> ; schema:identifier ?id }}",
        use_default_graph_as_union=True))
    assert sorted(str(r["id"].value) for r in rows) == ["huggingface:acme/vit-ft-1", "huggingface:acme/vit-ft-2"]


def test_downloads_are_offered(server: LiveServer, settings: Settings) -> None:
    page = httpx.get(f"{server.url}/downloads", headers={"accept": "text/html"}).text
    assert "modelport.nq.gz" in page and "modelport.jsonl.gz" in page
    manifest = httpx.get(f"{server.url}/downloads", headers={"accept": "application/json"}).json()
    assert manifest["records"] == len(live_ids(settings))
    for name, meta in manifest["files"].items():
        r = httpx.get(f"{server.url}/downloads/{name}")
        assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == meta["sha256"]
    for bad in ("catalog.sqlite", "..%2Fcatalog.sqlite", "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd"):
        assert httpx.get(f"{server.url}/downloads/{bad}").status_code == 404


def test_sitemap_index_pages_every_live_record(server: LiveServer, settings: Settings,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # The page size is the protocol's 50,000; a smaller one makes this catalog span several pages.
    assert publish.URLS_PER_SITEMAP == 50_000
    monkeypatch.setattr(publish, "URLS_PER_SITEMAP", 100)
    index = ET.fromstring(httpx.get(f"{server.url}/sitemap.xml").content)
    locs = [e.text for e in index.iter(f"{SM}loc")]
    ids = live_ids(settings)
    assert len(locs) == 1 + -(-len(ids) // 100) and all(loc.startswith(BASE) for loc in locs)
    seen: list[str] = []
    for loc in locs[1:]:
        page = ET.fromstring(httpx.get(server.url + loc[len(BASE):]).content)
        urls = [e.text for e in page.iter(f"{SM}loc")]
        assert 0 < len(urls) <= 100
        seen += urls
    assert sorted(seen) == sorted(f"{BASE}/models/{i}" for i in ids)
    assert httpx.get(f"{server.url}/sitemaps/models-{len(locs) - 1}.xml").status_code == 404
    assert httpx.get(f"{server.url}/sitemaps/models--1.xml").status_code in (404, 422)


def test_robots(server: LiveServer) -> None:
    robots = httpx.get(f"{server.url}/robots.txt").text
    assert f"Sitemap: {BASE}/sitemap.xml" in robots and "Disallow: /sparql" in robots
    assert "Allow: /models/" in robots


def test_export_refuses_unknown_formats(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "modelport.cli", "export", "--format", "rdfxml"], capture_output=True,
                       text=True, env={**os.environ, "MODELPORT_DATA_DIR": str(tmp_path)}, timeout=120)
    assert r.returncode != 0 and "rdfxml" in r.stderr and "nquads" in r.stderr
