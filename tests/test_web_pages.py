"""The server-rendered pages over real HTTP, as a client without JavaScript sees them: content
negotiation of /models/{id}, the matrix and its explanations in the HTML itself, the embedded JSON-LD,
escaping of source text, page weight, no asset from outside the server, chips that remove their
constraint, and the SPARQL page."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html import unescape
from urllib.parse import parse_qs, urlparse

import httpx
import pyoxigraph as ox
import pytest
from conftest import LiveServer
from web_fixture import BASE_ID, build

from modelport.api.sparql_page import EXAMPLES
from modelport.api.web import without_phrase

BROWSER = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"}
MAX_PAGE_BYTES = 200_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    from modelport.api.app import create_app

    with LiveServer(create_app(build(tmp_path_factory.mktemp("web-pages")))) as live:
        yield live


def get(server: LiveServer, path: str, **kw: object) -> httpx.Response:
    return httpx.get(server.url + path, timeout=30, **kw)  # type: ignore[arg-type]


def page_weight(server: LiveServer, html: str) -> int:
    """The HTML plus every asset it references (all must come from this server)."""
    refs = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert not re.search(r'(?:src|href)="(?:https?:)?//(?!127\.0\.0\.1)[^"]*\.(?:css|js|woff2?|png|svg)', html)
    assert not re.search(r"@import|url\(\s*['\"]?https?:", html)
    return len(html.encode()) + sum(len(get(server, r).content) for r in set(refs))


def test_model_page_is_negotiated(server: LiveServer) -> None:
    html = get(server, f"/models/{BASE_ID}", headers=BROWSER)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    plain = get(server, f"/models/{BASE_ID}", headers={"accept": "*/*"})
    assert plain.headers["content-type"] == "application/json" and plain.json()["id"] == BASE_ID
    ld = get(server, f"/models/{BASE_ID}", headers={"accept": "application/ld+json"})
    assert ld.headers["content-type"].startswith("application/ld+json")
    assert get(server, f"/models/{BASE_ID}", params={"format": "html"}).headers["content-type"].startswith("text/html")
    assert get(server, "/models/huggingface:no/such", headers=BROWSER).status_code == 404


def test_model_page_without_javascript(server: LiveServer) -> None:
    html = get(server, f"/models/{BASE_ID}", headers=BROWSER).text
    # the matrix: rows are runtimes, cells coloured by status, each a <details> holding its explanation
    matrix = html[html.index('<table class="matrix"'):html.index("</table>", html.index('<table class="matrix"'))]
    assert ">ONNX Runtime<" in matrix and ">NVIDIA TensorRT<" in matrix
    cell = re.search(r'<td class="c-native" data-runtime="onnxruntime" data-target="android"><details>(.*?)</details>',
                     matrix, re.S)
    assert cell and "ONNX Runtime" in cell.group(1) and "Android" in cell.group(1) and "≥ 1.16" in cell.group(1)
    trt = re.search(r'<td class="c-convertible"><details><summary>convertible.*?</details>', matrix, re.S)
    assert trt and "Conversion steps" in trt.group() and "trtexec" in trt.group() and "confidence medium" in trt.group()
    # KB facts cite their sources as links
    assert re.search(r'<a href="https://github.com/onnx/onnx-tensorrt/[^"]+" rel="nofollow noopener">', html)
    # hardware: estimates are labelled as such
    assert "(estimate)" in html and "NVIDIA T4 16GB" in html
    # evaluations with where they came from; card sections
    ev = html[html.index('id="evaluations"'):]
    assert "mIoU" in ev and "ADE20K" in ev and "validation" in ev and 'href="https://example.org/paper"' in ev
    assert "Segmenting street scenes." in html and "Not for medical images." in html
    # the source link back, versions of representations
    assert 'href="https://huggingface.co/acme/vit-base"' in html and "?format=turtle" in html


def test_checks_inside_a_cell_are_shown(server: LiveServer) -> None:
    """A verification at one runtime version sits inside the derived cell (its status and range stay):
    the page shows the point with its numbers, whatever fields the cell model carries."""
    html = get(server, f"/models/{BASE_ID}", headers=BROWSER).text
    row = re.search(r'<details class="cell" id="rt-onnxruntime">.*?</details>', html, re.S).group()
    assert "native" in row and "≥ 1.16" in row  # the derived cell is kept
    assert "verified at 1.20.1" in row and "3e-07" in row and "CPUExecutionProvider" in row
    assert re.search(r'<td class="c-native points"><details><summary>native <span[^>]*>✓1</span>', html)


def test_source_text_is_escaped_and_json_ld_is_parseable(server: LiveServer) -> None:
    html = get(server, f"/models/{BASE_ID}", headers=BROWSER).text
    assert "<b>base</b>" not in html and "&lt;b&gt;base&lt;/b&gt;" in html
    scripts = re.findall(r'<script type="application/ld\+json">(.*?)</script>', html, re.S)
    assert len(scripts) == 1
    doc = json.loads(scripts[0])
    quads = list(ox.parse(json.dumps(doc), format=ox.RdfFormat.JSON_LD))
    names = {q.object.value for q in quads if q.predicate.value == "http://schema.org/name"}
    assert "vit-base" in names
    assert any(q.predicate.value == "https://w3id.org/fair4ml#mlTask" for q in quads)
    desc = next(q.object.value for q in quads if q.predicate.value == "http://schema.org/description")
    assert "</script>" in desc  # kept intact in the data, yet it did not end the element


def test_pages_are_light_and_self_contained(server: LiveServer) -> None:
    for path, params in ((f"/models/{BASE_ID}", {}), ("/", {"q": "image classification runs on Android"}),
                         ("/sparql", {}), ("/downloads", {})):
        r = get(server, path, headers=BROWSER, params=params)
        assert r.status_code == 200
        weight = page_weight(server, r.text)
        assert weight < MAX_PAGE_BYTES, f"{path} weighs {weight} bytes"


def test_chips_remove_their_constraint(server: LiveServer) -> None:
    q = "image classification runs on Android under 50 ms on a T4 license:mit"
    html = get(server, "/", params={"q": q, "format": "onnx"}, headers=BROWSER).text
    chips = {unescape(label): unescape(href) for href, label in
             re.findall(r'<a class="chip rm [^"]*" href="([^"]+)"[^>]*>([^<]+)</a>', html)}
    assert {"target:android", "latency@t4<50ms", "license:MIT", "format:onnx"} <= set(chips)
    for label, href in chips.items():
        params = parse_qs(urlparse(href).query)
        again = get(server, "/search", params={**params, "facets": "none"}).json()
        kept = {c["syntax"] for c in again["interpretation"]["constraints"]}
        kept |= {f"{k}:{v}" for k, vs in params.items() if k == "format" for v in vs}
        assert label not in kept, (label, href)
        assert set(chips) - {label} <= kept, (label, href)


def test_without_phrase_keeps_the_rest_tidy() -> None:
    assert without_phrase("resnet, runs on Android, Apache licensed", "runs on Android") == "resnet, Apache licensed"
    assert without_phrase("task:vision detector", "task:vision") == "detector"
    assert without_phrase("detector", "runs on iOS") is None


def test_sparql_page(server: LiveServer) -> None:
    page = get(server, "/sparql", headers=BROWSER)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<textarea" in page.text and all(title in page.text for title, _ in EXAMPLES)
    assert "10 s" in page.text or "s</b>" in page.text  # the limits are shown
    # programs still get the protocol (no query and no browser: the service description, or a 400), not the page
    assert not get(server, "/sparql").headers.get("content-type", "").startswith("text/html")
    q = next(text for title, text in EXAMPLES if title.startswith("Fine-tunes"))
    res = get(server, "/sparql", params={"query": q, "format": "html"}, headers=BROWSER)
    assert res.status_code == 200 and "<table>" in res.text
    rows = re.findall(r"<tr><td>(.*?)</tr>", res.text, re.S)
    assert len(rows) == 3 and all(BASE_ID in r for r in rows)
    for fmt in ("json", "xml", "csv", "tsv"):
        href = re.search(rf'<a href="([^"]+format={fmt})" download>', res.text)
        assert href, fmt
        dl = get(server, href.group(1).replace("&amp;", "&"))
        assert dl.status_code == 200 and BASE_ID in dl.text
    bad = get(server, "/sparql", params={"query": "SELECT WHERE {", "format": "html"}, headers=BROWSER)
    assert bad.status_code == 400 and 'class="error"' in bad.text


@pytest.mark.parametrize("path,params", [
    ("/", {"q": "x" * 5000}), ("/", {"cursor": "garbage"}), ("/", {"sort": "bogus"}), ("/", {"min_status": "x"}),
    ("/", {"q": '"unclosed ( OR -', "task": "\x00"}), ("/", {"q": "metric:accuracy@>=", "nl": "maybe"}),
    ("/models/" + "a" * 3000, {}), (f"/models/{BASE_ID}", {"format": "pdf"}),
    ("/sparql", {"format": "html", "query": "SELECT * WHERE { ?s ?p ?o } LIMIT 3 #" + "#" * 10000}),
    ("/sparql", {"format": "html", "query": "DELETE WHERE { ?s ?p ?o }"}),
    ("/static/..%2F..%2Fpyproject.toml", {}), ("/static/nope.js", {}), ("/sitemaps/models-abc.xml", {}),
    ("/sitemaps/models-99999999999999999999.xml", {}), ("/downloads/%00", {}),
])
def test_hostile_inputs_are_answered_without_a_server_error(server: LiveServer, path: str,
                                                             params: dict[str, str]) -> None:
    r = get(server, path, params=params, headers=BROWSER)
    assert r.status_code < 500, (path, r.status_code, r.text[:300])
    if r.status_code >= 400 and r.headers["content-type"].startswith("application/json"):
        assert r.json()["detail"]


def test_a_missing_model_is_a_page_for_people(server: LiveServer) -> None:
    r = get(server, "/models/huggingface:acme/no-such-vit", headers=BROWSER)
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "No such model" in r.text and 'href="/?q=acme%20no%20such%20vit"' in r.text
    assert get(server, "/models/huggingface:acme/no-such-vit").json()["detail"]  # programs still get JSON
    assert "accept" in get(server, f"/models/{BASE_ID}", headers=BROWSER).headers["vary"].lower()
