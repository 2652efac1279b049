"""The web front end in a real browser (Debian's chromium driven by Playwright, no browser download):
search, facets, the "read as" chips, the model page with its compatibility matrix and lineage links, and
the SPARQL page. Each test saves a screenshot under test-artifacts/ and checks what a person sees."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
from conftest import LiveServer
from web_fixture import ADAPTER, ARTIFACTS, BASE_ID, CHROMIUM, CHROMIUM_ARGS, FINETUNES, QUANT, VERSIONS, build

if not os.access(CHROMIUM, os.X_OK):  # `make test` installs it (tools/ensure_chromium.sh); a bare pytest says so
    pytest.fail(f"{CHROMIUM} is missing: run tools/ensure_chromium.sh (apt-get install chromium)", pytrace=False)

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    from modelport.api.app import create_app

    settings = build(tmp_path_factory.mktemp("web-browser"))
    with LiveServer(create_app(settings)) as live:
        yield live


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1360, "height": 900})
        yield ctx
        ctx.close()


@pytest.fixture
def page(browser_context: object, server: LiveServer) -> Iterator[Page]:
    """A tab that may only talk to the server under test: anything else is refused and recorded."""
    pg: Page = browser_context.new_page()  # type: ignore[attr-defined]
    outside: list[str] = []

    def guard(route: object) -> None:
        url = route.request.url  # type: ignore[attr-defined]
        host = urlparse(url).hostname
        if url.startswith(("data:", "about:")) or host == "127.0.0.1":
            route.continue_()  # type: ignore[attr-defined]
        else:
            outside.append(url)
            route.abort()  # type: ignore[attr-defined]

    pg.route("**/*", guard)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    pg.close()
    assert outside == [], f"the page tried to load assets from outside the server: {outside}"
    assert errors == [], f"script errors: {errors}"


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_search_toggle_a_facet_and_remove_a_chip(page: Page, server: LiveServer) -> None:
    page.goto(server.url + "/")
    page.fill("input[type=search]", "image classification runs on Android license:mit")
    page.press("input[type=search]", "Enter")
    page.wait_for_load_state()
    labels = page.locator(".reading a.chip.rm").all_inner_texts()
    assert "target:android" in labels and "license:MIT" in labels
    total_before = int(re.match(r"(\d+)", page.inner_text(".controls .meta")).group(1))
    shot(page, "search-read-as")
    # toggle a facet: the format facet narrows the results and becomes a removable chip
    page.locator("aside a[data-field=format][data-value=onnx]").click()
    page.wait_for_load_state()
    assert "format=onnx" in page.url
    total_facet = int(re.match(r"(\d+)", page.inner_text(".controls .meta")).group(1))
    assert 0 < total_facet <= total_before
    expect(page.locator("aside a.on[data-field=format]")).to_contain_text("onnx")
    assert "format:onnx" in page.locator(".reading a.chip.rm").all_inner_texts()
    shot(page, "search-facet")
    # remove the licence chip: the constraint is gone from the query and the results widen
    page.locator(".reading a.chip.rm", has_text="license:MIT").click()
    page.wait_for_load_state()
    assert "license:MIT" not in page.locator(".reading a.chip.rm").all_inner_texts()
    assert "license" not in page.input_value("input[type=search]").lower()
    assert "format=onnx" in page.url  # the other constraints stay
    total_after = int(re.match(r"(\d+)", page.inner_text(".controls .meta")).group(1))
    assert total_after >= total_facet
    for h in page.locator(".hit .chips").all_inner_texts()[:5]:
        assert "onnx" in h
    shot(page, "search-chip-removed")


def test_sort_control_and_shareable_state(page: Page, server: LiveServer) -> None:
    page.goto(server.url + "/?q=task:image-classification")
    page.select_option("select[name=sort]", "downloads")  # the script submits on change
    page.wait_for_url(re.compile(r"sort=downloads"))
    downloads = [int(x.split(" downloads")[0].split("· ")[-1].replace(",", ""))
                 for x in page.locator(".hit .meta").all_inner_texts() if "downloads" in x]
    assert downloads == sorted(downloads, reverse=True) and len(downloads) > 3
    url = page.url
    page.goto(url)  # the same URL shows the same state
    assert page.locator("select[name=sort]").input_value() == "downloads"
    shot(page, "search-sorted")


def test_keyboard_and_empty_and_error_states(page: Page, server: LiveServer) -> None:
    page.goto(server.url + "/?q=qqxzzv")
    expect(page.locator(".empty h2")).to_have_text("No model matches")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type("params<abc")
    page.keyboard.press("Enter")
    page.wait_for_load_state()
    expect(page.locator(".error")).to_contain_text("params")
    expect(page.locator(".error mark")).to_have_text("params<abc")
    shot(page, "search-error")


def test_model_page_matrix_cell_explains_itself(page: Page, server: LiveServer) -> None:
    page.goto(server.url + "/?q=vit-base")
    page.locator(".hit h2 a", has_text="vit-base").first.click()
    page.wait_for_load_state()
    assert page.url.endswith("/models/" + BASE_ID)
    expect(page.locator("h1")).to_contain_text("vit-base")
    matrix = page.locator("table.matrix")
    expect(matrix).to_be_visible()
    rows = matrix.locator("tbody th").all_inner_texts()
    assert "ONNX Runtime" in rows and "NVIDIA TensorRT" in rows
    ort_android = matrix.locator("td[data-runtime=onnxruntime][data-target=android]")
    assert "c-native" in (ort_android.get_attribute("class") or "")
    trt = matrix.locator("tr", has_text="NVIDIA TensorRT").locator("td").first
    assert "c-convertible" in (trt.get_attribute("class") or "")
    expl = trt.locator(".explain")
    expect(expl).to_be_hidden()
    trt.locator("summary").click()
    expect(expl).to_be_visible()
    # really in view: the point at the middle of the explanation belongs to it (not clipped or covered)
    expl.scroll_into_view_if_needed()
    box = expl.bounding_box()  # viewport coordinates, as elementFromPoint takes them
    assert box and box["width"] > 100 and box["height"] > 40
    on_top = page.evaluate("([x, y]) => !!document.elementFromPoint(x, y)?.closest('.explain')",
                           [box["x"] + box["width"] / 2, box["y"] + min(box["height"] / 2, 200)])
    assert on_top, "the cell's explanation is hidden behind or clipped by something"
    expect(expl).to_contain_text("Conversion steps")
    expect(expl).to_contain_text("trtexec")
    expect(expl).to_contain_text("confidence")
    shot(page, "model-cell-open")
    # evaluations, hardware estimates marked as such, and the embedded JSON-LD
    expect(page.locator("#evaluations table")).to_contain_text("ADE20K")
    expect(page.locator("#compatibility").get_by_text("(estimate)").first).to_be_visible()
    ld = page.locator("script[type='application/ld+json']").inner_text()
    assert "http://schema.org/name" in ld and "https://w3id.org/fair4ml#" in ld


def test_follow_a_lineage_link(page: Page, server: LiveServer) -> None:
    page.goto(f"{server.url}/models/{BASE_ID}")
    lineage = page.locator("#lineage")
    expect(lineage.locator("h3", has_text="Fine-tunes")).to_contain_text("3")
    expect(lineage.locator("h3", has_text="Adapters")).to_contain_text("1")
    expect(lineage.locator("h3", has_text="Quantizations")).to_contain_text("1")
    for rid in (*FINETUNES, ADAPTER, QUANT):
        expect(lineage.locator(f"a[href='/models/{rid}']")).to_have_count(1)
    shot(page, "model-lineage")
    lineage.locator(f"a[href='/models/{FINETUNES[0]}']").click()
    page.wait_for_load_state()
    assert page.url.endswith(FINETUNES[0])
    back = page.locator("#lineage").locator(f"a[href='/models/{BASE_ID}']")
    expect(back).to_be_visible()
    expect(page.locator("#lineage")).to_contain_text("fine-tuned from")
    page.goto(f"{server.url}/models/{VERSIONS[1]}")
    versions = page.locator("#lineage")
    expect(versions.locator("h3", has_text="Other versions")).to_contain_text("2")
    expect(versions.locator(f"a[href='/models/{VERSIONS[0]}']")).to_have_count(1)
    shot(page, "model-versions")


def test_sparql_page_runs_an_example(page: Page, server: LiveServer) -> None:
    page.goto(server.url + "/sparql")
    expect(page.locator("textarea#query")).to_be_visible()
    page.select_option("#examples", label="Fine-tunes and the models they come from")
    assert "fineTunedFrom" in page.input_value("#query")
    page.locator("form button", has_text="Run query").click()
    page.wait_for_load_state()
    table = page.locator("#results table")
    expect(table).to_be_visible()
    expect(table.locator("tbody tr")).to_have_count(len(FINETUNES))
    expect(page.locator("#results")).to_contain_text("Download")
    shot(page, "sparql-results")
