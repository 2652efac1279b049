"""GET /api/models through the real `huggingface_hub.HfApi(endpoint=...)` client over the whole
federated catalog: search, author, filter, sort, limit with `Link` paging, expand, and clear 400s."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from conftest import LiveServer
from web_fixture import BASE_ID, FINETUNES, build

from modelport.schema.record import ModelRecord

hf = pytest.importorskip("huggingface_hub", reason="the huggingface extra is required")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    from modelport.api.app import create_app

    with LiveServer(create_app(build(tmp_path_factory.mktemp("web-hf")))) as live:
        yield live


@pytest.fixture(scope="module")
def api(server: LiveServer) -> object:
    return hf.HfApi(endpoint=server.url, token=False)


@pytest.fixture(scope="module")
def records(server: LiveServer) -> list[ModelRecord]:
    from web_fixture import corpus, family

    rs = corpus()
    return rs + family(rs)


def test_search_and_filter(api: object, records: list[ModelRecord]) -> None:
    found = list(api.list_models(search="vit", filter="onnx", limit=50))  # type: ignore[attr-defined]
    ids = {m.id for m in found}
    assert {BASE_ID, *FINETUNES} <= ids
    for m in found:
        assert "onnx" in m.tags and m.modelport["url"].endswith("/models/" + m.id)  # type: ignore[attr-defined]
    # several filters must all hold (the Hub's semantics), across registries
    both = list(api.list_models(filter=["image-classification", "license:mit"], limit=500))  # type: ignore[attr-defined]
    expected = {r.id for r in records if "image-classification" in r.tasks and r.license == "MIT"}
    assert {m.id for m in both} == expected and len({r.split(":")[0] for r in expected}) > 1
    assert all(m.pipeline_tag == "image-classification" for m in both)


def test_author_and_sort(api: object, records: list[ModelRecord]) -> None:
    pub = next(r.publisher.name for r in records if r.publisher)
    mine = list(api.list_models(author=pub, sort="downloads", limit=1000))  # type: ignore[attr-defined]
    assert {m.id for m in mine} == {r.id for r in records if r.publisher and r.publisher.name == pub}
    downloads = [m.downloads for m in mine]
    assert downloads == sorted(downloads, reverse=True) and all(m.author == pub for m in mine)
    likes = [m.likes for m in api.list_models(sort="likes", limit=30)]  # type: ignore[attr-defined]
    assert likes == sorted(likes, reverse=True) and len(likes) == 30


def test_link_pagination_walks_the_whole_catalog(api: object, server: LiveServer, records: list[ModelRecord]) -> None:
    first = httpx.get(f"{server.url}/api/models", params={"limit": 50, "sort": "downloads"})
    assert first.status_code == 200 and len(first.json()) == 50 and 'rel="next"' in first.headers["link"]
    # no limit: the client follows Link headers page by page until the catalog is exhausted
    every = [m.id for m in api.list_models(sort="downloads")]  # type: ignore[attr-defined]
    assert len(every) == len(set(every)) == len(records)


def test_expand(api: object) -> None:
    [m] = [x for x in api.list_models(search="vit-base", expand=["siblings", "cardData", "downloads"], limit=40)  # type: ignore[attr-defined]
           if x.id == BASE_ID]
    assert [s.rfilename for s in m.siblings] == ["model.onnx"]
    assert m.card_data.license == "MIT" and m.card_data.datasets == ["ade20k"]
    assert m.downloads is not None and m.tags is None  # only what was asked for
    [ft] = [x for x in api.list_models(search="vit-ft-1", expand=["cardData"], limit=40)  # type: ignore[attr-defined]
            if x.id == FINETUNES[0]]
    assert ft.card_data.base_model == [BASE_ID]


def test_bad_parameters_are_clear_400s(server: LiveServer) -> None:
    for params, word in (({"sort": "trendingScore"}, "sort"), ({"expand": "inference"}, "expand"),
                         ({"direction": "1"}, "descending"), ({"cursor": "garbage"}, "cursor"),
                         ({"search": "params<abc"}, "params")):
        r = httpx.get(f"{server.url}/api/models", params=params)
        assert r.status_code == 400 and word in r.text, (params, r.text)
    with pytest.raises(hf.errors.HfHubHTTPError):
        list(hf.HfApi(endpoint=server.url, token=False).list_models(sort="trending_score", limit=5))
