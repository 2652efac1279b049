"""The Hub source's budget and enrichment stage against a fake Hub that meters like the Hub (fixed
windows, RateLimit headers, 429 past the quota): budget use, pacing without 429s, 429 storms,
priorities, resumption, "gone" answers under the fail-safe, and credentials kept on one origin."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelport.harvesters.base import SourceError
from modelport.harvesters.huggingface import HuggingFaceSource
from modelport.pipeline import Pipeline
from modelport.settings import Settings

_HF = Path(__file__).parent / "fixtures" / "hf"
if str(_HF) not in sys.path:
    sys.path.insert(0, str(_HF))
from fake_hub import FakeHub, load_corpus  # noqa: E402

CORPUS = load_corpus()
LIVE = [m for m in CORPUS["models"] if not m.get("private") and not m.get("disabled")]
IDS = [m["id"] for m in sorted(LIVE, key=lambda m: m["lastModified"], reverse=True)[:24]]
TOKEN = "hf_test_token"


def corpus() -> list[dict[str, Any]]:
    return [m for m in CORPUS["models"] if m["id"] in IDS]


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    p = Pipeline(Settings(data_dir=tmp_path, base_iri="http://test", embeddings=False))
    yield p
    p.close()


def source(hub: FakeHub, **kw: Any) -> HuggingFaceSource:
    opts: dict[str, Any] = {"endpoint": hub.url, "retry_base_wait_s": 0.01, "retry_max_wait_s": 0.05,
                            "retry_attempts": 3, "enrich_max_models": None}
    opts.update(kw)
    return HuggingFaceSource("huggingface", **opts)


def enriched(p: Pipeline) -> set[str]:
    return {rid.split(":", 1)[1] for rid in p.catalog.enriched_ids("huggingface")}


def test_budget_is_used_but_never_exceeded_and_no_429(pipeline: Pipeline) -> None:
    """Paced by the Hub's own headers (the source is configured for 1,000 a window, the server says 8
    per 2 s window; two seconds so that a loaded CI machine's own work per window stays well inside it):
    never more than the quota in any window, ≥ 95 % of it in every window that ends
    while work remains, no 429 at all."""
    quota = 8
    with FakeHub(models=corpus(), quotas={"api": (quota, quota), "resolvers": (100, 100)}, window_s=2) as hub:
        src = source(hub, token=TOKEN)
        report = pipeline.harvest(src, mode="full")
        assert report.status == "ok" and report.counts["enriched"] == len(IDS), report.errors
        assert hub.throttled() == 0 and src.meter.throttled == 0
        api = [t for t, bucket, _ in hub.metered if bucket == "api"]
        assert len(api) == 1 + len(IDS)  # one listing page (1,000 a request) + one model_info per model
        per_window = Counter(int(t // hub.window_s) for t in api)
        # the windows that begin while enrichment runs (it starts somewhere in a window, after the
        # listing page is stored and indexed, so that one is partly used by design)
        windows = range(int(api[1] // hub.window_s) + 1, max(per_window) + 1)
        assert max(per_window.values()) <= quota
        full = [per_window[w] for w in windows][:-1]  # the last window is where the work ran out
        assert full and all(n >= 0.95 * quota for n in full), per_window
        st = {s.name: s for s in src.meter.budgets.states()}["api"]
        assert st.quota == quota  # the server's policy replaced the configured 1,000


def test_a_429_storm_costs_time_never_records(pipeline: Pipeline) -> None:
    with FakeHub(models=corpus(), quotas=None) as hub:
        # a proxy in front answers 429 (come back in 1 s) to the next five model_info requests
        hub.fail("GET", r"^/api/models/", 429, times=5, headers={"RateLimit": '"api";r=0;t=1'})
        t0 = time.monotonic()
        report = pipeline.harvest(source(hub, retry_attempts=2), mode="full")
        assert time.monotonic() - t0 >= 4.5  # each announced second was waited (five of them)
        assert report.status == "ok" and report.counts["enriched"] == len(IDS)
        assert report.counts["enrich_failed"] == report.counts["skipped"] == 0


def test_priority_and_only_changed_revisions(pipeline: Pipeline) -> None:
    with FakeHub(models=corpus(), quotas=None) as hub:
        top = sorted(corpus(), key=lambda m: -(m.get("downloads") or 0))
        report = pipeline.harvest(source(hub, enrich_max_models=3, enrich_priority=["downloads"]), mode="full")
        assert report.counts["enriched"] == 3 and enriched(pipeline) == {m["id"] for m in top[:3]}
        # interleaved: the most downloaded not yet done, then the most recently changed
        report = pipeline.harvest(source(hub, enrich_max_models=2), mode="incremental")
        newest = max((m for m in corpus() if m["id"] not in {t["id"] for t in top[:4]}),
                     key=lambda m: m["lastModified"])
        assert enriched(pipeline) == {m["id"] for m in top[:4]} | {newest["id"]}
        pipeline.harvest(source(hub), mode="incremental")
        assert enriched(pipeline) == set(IDS)
        # a listing of the same revisions keeps what enrichment added
        report = pipeline.harvest(source(hub), mode="full")
        assert report.counts["unchanged"] == len(IDS) and report.counts["enriched"] == 0
        bert = pipeline.catalog.get("huggingface:google-bert/bert-base-uncased")
        assert bert is not None and any(a.size_bytes for a in bert.artifacts)
        # only a changed sha is enriched again
        before = len(hub.requests("GET", r"^/api/models/"))
        hub.touch(IDS[5], likes=77)
        report = pipeline.harvest(source(hub), mode="incremental")
        assert report.counts["enriched"] == 1
        assert [t.split("?")[0] for t in hub.requests("GET", r"^/api/models/")[before:]] == [f"/api/models/{IDS[5]}"]


def test_enrichment_resumes_where_it_stopped(pipeline: Pipeline) -> None:
    with FakeHub(models=corpus(), quotas=None) as hub:
        pipeline.harvest(source(hub, enrich_max_models=0), mode="full")
        order = [m["id"] for m in sorted(corpus(), key=lambda m: (-(m.get("downloads") or 0), m["id"]))]
        for rid in order[10:12]:  # the 11th and 12th most downloaded fail for good: the run dies there
            hub.fail("GET", rf"^/api/models/{rid}\?", 503, times=100)
        with pytest.raises(SourceError, match="in a row"):
            pipeline.harvest(source(hub, retry_attempts=1, max_consecutive_failures=2,
                                    enrich_priority=["downloads"]), mode="incremental")
        assert enriched(pipeline) == set(order[:10])  # committed, although the run failed
        hub.clear_faults()
        before = Counter(t.split("?")[0] for t in hub.requests("GET", r"^/api/models/"))
        report = pipeline.harvest(source(hub, enrich_priority=["downloads"]), mode="incremental")
        assert report.counts["enriched"] == len(IDS) - 10 and enriched(pipeline) == set(IDS)
        after = Counter(t.split("?")[0] for t in hub.requests("GET", r"^/api/models/")) - before
        assert all(after[f"/api/models/{rid}"] == 0 for rid in order[:10])  # nothing fetched twice


def test_model_info_404_for_everything_tombstones_nothing(pipeline: Pipeline) -> None:
    with FakeHub(models=corpus(), quotas=None) as hub:
        pipeline.harvest(source(hub, enrich_max_models=0), mode="full")
        hub.fail("GET", r"^/api/models/", 404, times=1000, headers={"X-Error-Code": "RepoNotFound"})
        report = pipeline.harvest(source(hub), mode="incremental")
        assert report.counts["tombstoned"] == 0 and pipeline.catalog.count(source="huggingface") == len(IDS)
        assert any("fail-safe" in e["reason"] for e in report.errors)
        # one real deletion among sane answers does go
        hub.clear_faults()
        hub.fail("GET", rf"^/api/models/{IDS[7]}\?", 404, times=1000, headers={"X-Error-Code": "RepoNotFound"})
        report = pipeline.harvest(source(hub), mode="incremental")
        assert report.counts["tombstoned"] == 1 and pipeline.catalog.get(f"huggingface:{IDS[7]}") is None


def test_token_never_leaves_the_endpoint_origin(pipeline: Pipeline) -> None:
    with FakeHub(models=corpus(), quotas=None, token=TOKEN) as hub, \
            FakeHub(models=corpus(), quotas=None, token=TOKEN) as elsewhere:
        # a Link header pointing at another origin: refused before anything is sent there
        hub.next_link_origin = elsewhere.url
        with pytest.raises(SourceError, match="another origin"):
            pipeline.harvest(source(hub, token=TOKEN, page_size=5), mode="full")
        assert elsewhere.log == []
        assert pipeline.catalog.count(source="huggingface") == 5  # page 1 is kept
        # a redirect to another origin (model_info, README): refused, the record keeps its listing data
        hub.next_link_origin = None
        hub.fail("GET", rf"^/api/models/{IDS[0]}\?", 302, times=100,
                 headers={"Location": f"{elsewhere.url}/api/models/{IDS[0]}?blobs=true"})
        report = pipeline.harvest(source(hub, token=TOKEN), mode="full")
        assert elsewhere.log == []
        assert report.counts["enrich_failed"] == 1 and "refused" in report.errors[0]["reason"]
        assert report.counts["enriched"] == len(IDS) - 1


def test_progress_line_shows_budget_left_and_next_window() -> None:
    with FakeHub(models=corpus()) as hub:  # the Hub's own anonymous quotas: 500 API requests per 300 s
        src = source(hub, enrich_max_models=0, rate_limit_requests=None)
        assert "api 500/500 left" in src.status_line()  # before any answer: the configured anonymous tier
        list(src.events("full", None))
        line = src.status_line()
        assert "api 499/500 left, next window in" in line and "resolvers 3000/3000 left" in line


def test_fake_hub_meters_like_the_hub() -> None:
    """The fake is what makes the budget tests mean something: fixed windows per client and bucket,
    draft-09 headers on every answer, 429 past the quota (a client ignoring the headers gets it)."""
    import httpx

    with FakeHub(models=corpus(), quotas={"api": (3, 5), "resolvers": (1, 1)}, window_s=60) as hub:
        answers = [httpx.get(f"{hub.url}/api/models", params={"limit": 1}) for _ in range(4)]
        assert [r.status_code for r in answers] == [200, 200, 200, 429]
        assert answers[0].headers["RateLimit"].startswith('"api";r=2;t=')
        assert answers[0].headers["RateLimit-Policy"] == '"fixed window";"api";q=3;w=60'
        assert answers[3].headers["RateLimit"].startswith('"api";r=0;t=')
        # a token is another client with the free account's quota; resolvers are another bucket
        authed = httpx.get(f"{hub.url}/api/models", params={"limit": 1}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert authed.status_code == 200 and authed.headers["RateLimit"].startswith('"api";r=4;')
        assert httpx.head(f"{hub.url}/gpt2/resolve/main/config.json").headers["RateLimit"].startswith('"resolvers";r=0')
        assert hub.throttled() == 1
