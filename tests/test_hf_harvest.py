"""Hugging Face harvests end to end: the real `huggingface_hub` client against a local server that
speaks the Hub API, through the Pipeline into the catalog — retries, rate limits, malformed items,
crashes and resumes, deletions and incremental runs."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import RemoteEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

from modelport.harvesters.base import Checkpoint, EnrichTarget, ListingComplete, SourceError, SourceRecord
from modelport.harvesters.huggingface import HuggingFaceSource
from modelport.index.search import SearchQuery
from modelport.pipeline import Pipeline
from modelport.settings import Settings

_HF = Path(__file__).parent / "fixtures" / "hf"
if str(_HF) not in sys.path:
    sys.path.insert(0, str(_HF))
from fake_hub import FakeHub, load_corpus  # noqa: E402

CORPUS = load_corpus()
ALL = CORPUS["models"]
PUBLIC = [m for m in ALL if not m.get("private")]
LIVE = [m for m in PUBLIC if not m.get("disabled")]  # what a tokenless full harvest stores
# A smaller registry for the tests about control flow (newest first, as the listing returns them).
SMALL_IDS = [m["id"] for m in sorted(LIVE, key=lambda m: m["lastModified"], reverse=True)[:24]]


def small_corpus() -> list[dict[str, Any]]:
    return [m for m in ALL if m["id"] in SMALL_IDS]


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    # thousands of per-model calls: the tests about metering use their own, small quotas
    with FakeHub(quotas=None) as h:
        yield h


@pytest.fixture
def small_hub() -> Iterator[FakeHub]:
    with FakeHub(models=small_corpus(), readmes=CORPUS["readmes"]) as h:
        yield h


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    p = Pipeline(Settings(data_dir=tmp_path, base_iri="http://test", embeddings=False))
    yield p
    p.close()


def make_source(hub: FakeHub, **kw: Any) -> HuggingFaceSource:
    opts: dict[str, Any] = {"endpoint": hub.url, "page_size": 8, "retry_base_wait_s": 0.01,
                            "retry_max_wait_s": 0.05, "retry_attempts": 4, "max_consecutive_failures": 3,
                            "enrich_max_models": None, "rate_limit_requests": 100_000,
                            "resolver_rate_limit_requests": 100_000}
    opts.update(kw)
    return HuggingFaceSource("huggingface", **opts)


def live_ids(p: Pipeline) -> set[str]:
    return {r.local_id for r in p.catalog.iter_records(source="huggingface")}


def test_fake_hub_speaks_like_the_hub(hub: FakeHub) -> None:
    """The real client's calls work against the fake as they do against the Hub (wire-formats §1)."""
    api = HfApi(endpoint=hub.url, token=False)
    listed = list(api.list_models(full=True, cardData=True, fetch_config=True, sort="last_modified"))
    assert len(listed) == len(PUBLIC)
    assert len(hub.requests("GET", r"^/api/models\?")) > 1  # followed the absolute Link header
    assert all(s.size is None for m in listed for s in m.siblings or [])  # listings carry names only
    info = api.model_info("google-bert/bert-base-uncased", files_metadata=True)
    assert any(s.lfs and s.size == 440_449_768 for s in info.siblings or [])
    sha = api.model_info("gpt2").sha
    assert sha and api.model_info("gpt2", revision=sha).sha == sha
    expanded = list(api.list_models(expand=["downloads", "gguf"], author="bartowski"))
    assert expanded[0].gguf and expanded[0].tags is None
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("nobody/nothing")
    with pytest.raises(RevisionNotFoundError):
        api.model_info("gpt2", revision="v9")
    with pytest.raises(RemoteEntryNotFoundError):
        api.hf_hub_download("gpt2", "no-such-file.txt")
    # other clients: `expand[]=` and capitalised booleans (requests sent `True`)
    import httpx

    r = httpx.get(f"{hub.url}/api/models", params=[("expand[]", "likes"), ("author", "timm")])
    assert r.status_code == 200 and set(r.json()[0]) == {"_id", "id", "likes"}
    r = httpx.get(f"{hub.url}/api/models", params={"full": "True", "author": "timm"})
    assert "siblings" in r.json()[0]
    assert httpx.get(f"{hub.url}/api/models", params={"full": "true", "expand": "likes"}).status_code == 400


def test_full_harvest_with_cards(hub: FakeHub, pipeline: Pipeline) -> None:
    report = pipeline.harvest(make_source(hub, cards=True, page_size=25), mode="full")
    assert report.status == "ok", report.errors
    assert report.counts["seen"] == len(LIVE) == report.counts["inserted"]
    assert live_ids(pipeline) == {m["id"] for m in LIVE}
    bert = pipeline.catalog.get("huggingface:google-bert/bert-base-uncased")
    assert bert is not None and bert.description and bert.description.startswith("Pretrained model on English")
    assert bert.card.training_data and "BookCorpus" in bert.card.training_data
    assert {a.path: a.size_bytes for a in bert.artifacts}["model.safetensors"] == 440_449_768
    assert any(c.runtime == "onnxruntime" for c in bert.compatibility)  # enriched by the pipeline
    gated = pipeline.catalog.get("huggingface:meta-llama/Llama-3.2-1B")
    assert gated is not None and gated.access == "gated" and gated.card.bias  # a gated repo's card is public
    huge = pipeline.catalog.get("huggingface:weird/garbage-model-index")
    assert huge is not None and any("longer than" in n for n in huge.source_facts["mapping_notes"])
    assert huge.card.body and len(huge.card.body) <= 32_000
    assert pipeline.catalog.get("huggingface:acme-corp/internal-classifier") is None  # private, no token
    # the wire: a listing with the expand projection (as list_models(expand=…) sends it: repeated keys,
    # never with full/cardData/config), then enrichment: model_info with blobs, README at the listed revision
    first = hub.requests("GET", r"^/api/models\?")[0]
    for part in ("expand=cardData", "expand=siblings", "expand=safetensors", "expand=sha", "sort=lastModified",
                 "limit=25"):
        assert part in first
    assert "full=" not in first and "config=" not in first
    assert len(hub.requests("GET", r"^/api/models\?")) == -(-len(PUBLIC) // 25)
    assert len(hub.requests("GET", r"^/api/models/.+\?blobs=true$")) == len(LIVE)
    assert report.counts["enriched"] == len(LIVE) and report.counts["enrich_failed"] == 0
    assert hub.requests("HEAD", rf"^/google-bert/bert-base-uncased/resolve/{bert.version}/README.md$")


def test_token_sees_private_repos(small_hub: FakeHub, pipeline: Pipeline) -> None:
    small_hub.models["acme/secret"] = {**small_hub.models[SMALL_IDS[0]], "id": "acme/secret", "private": True}
    pipeline.harvest(make_source(small_hub, token=small_hub.token), mode="full")
    rec = pipeline.catalog.get("huggingface:acme/secret")
    assert rec is not None and rec.access == "private"


def test_retries_honour_the_server(small_hub: FakeHub, pipeline: Pipeline) -> None:
    """429/5xx bursts on listing pages, model_info and README: retried (waiting as long as the server
    asks) and nothing is lost."""
    a, b, c = SMALL_IDS[0], SMALL_IDS[5], SMALL_IDS[10]
    small_hub.fail("GET", r"^/api/models\?(?!.*cursor)", 503)  # first page
    small_hub.fail("GET", r"^/api/models\?.*cursor", 429, headers={"RateLimit": '"api";r=0;t=1'})  # page 2
    small_hub.fail("GET", rf"^/api/models/{a}\?", 429, times=2, headers={"Retry-After": "0"})
    small_hub.fail("GET", rf"^/api/models/{b}\?", 500, times=2)
    # (the client itself retries a failed README HEAD once per second; our retry is the outer layer)
    small_hub.fail("HEAD", rf"^/{c}/resolve/.*/README.md$", 502)
    small_hub.readmes[c] = "# Card\n\nA card behind flaky HEADs.\n"
    t0 = time.monotonic()
    source = make_source(small_hub, cards=True)
    report = pipeline.harvest(source, mode="full")
    assert time.monotonic() - t0 >= 0.95  # the RateLimit reset was waited for
    assert report.status == "ok" and report.counts["skipped"] == report.counts["enrich_failed"] == 0, report.errors
    assert all(f.hits == f.times for f in small_hub.faults)
    assert live_ids(pipeline) == set(SMALL_IDS)
    card_rec = pipeline.catalog.get(f"huggingface:{c}")
    assert card_rec is not None and card_rec.description == "A card behind flaky HEADs."
    # every request — ours, and hf_hub_download's HEAD/GET with the client's own retries — went through
    # the source's budget: one count per request the server saw
    assert sum(source.meter.requests.values()) == len(small_hub.requests())
    assert source.meter.requests["resolvers"] == len(small_hub.requests(pattern="/resolve/"))
    assert source.limiter.waited_s >= 0.95


def test_persistent_model_failure_is_skipped_not_deleted(small_hub: FakeHub, pipeline: Pipeline) -> None:
    pipeline.harvest(make_source(small_hub), mode="full")
    victim = SMALL_IDS[3]
    small_hub.touch(victim, downloads=5)
    small_hub.fail("GET", rf"^/api/models/{victim}\?", 503, times=100)
    report = pipeline.harvest(make_source(small_hub, retry_attempts=2), mode="full")
    # the listing's record is stored at once; only its enrichment failed
    assert report.status == "partial" and report.counts["enrich_failed"] == 1 and report.counts["updated"] == 1
    assert report.errors[0]["ref"] == victim and "503" in report.errors[0]["reason"]
    assert report.counts["tombstoned"] == 0 and victim in live_ids(pipeline)  # still upstream: kept
    rec = pipeline.catalog.get(f"huggingface:{victim}")
    assert rec is not None and rec.popularity.downloads == 5 and all(a.size_bytes is None for a in rec.artifacts)
    # it stays in the enrichment queue: the next run (even an incremental one with nothing new) gets it
    small_hub.clear_faults()
    report = pipeline.harvest(make_source(small_hub), mode="incremental")
    assert report.counts["enriched"] == 1 and report.status == "ok"
    rec = pipeline.catalog.get(f"huggingface:{victim}")
    assert rec is not None and any(a.size_bytes for a in rec.artifacts)


def test_malformed_item_mid_page_keeps_the_rest(small_hub: FakeHub, pipeline: Pipeline) -> None:
    pipeline.harvest(make_source(small_hub), mode="full")
    bad_a, bad_b = SMALL_IDS[9], SMALL_IDS[11]  # both on page 2 (page size 8)
    small_hub.list_overrides[bad_a] = {**small_hub.models[bad_a], "lastModified": "the day before yesterday"}
    small_hub.list_overrides[bad_b] = {"modelId": bad_b, "siblings": [{"size": 3}]}
    small_hub.models.pop(SMALL_IDS[20])  # really deleted: must go, despite the malformed items
    report = pipeline.harvest(make_source(small_hub), mode="full")
    assert report.counts["skipped"] == 2
    assert {e["ref"] for e in report.errors} == {bad_a, bad_b}
    assert all("malformed listing item" in e["reason"] for e in report.errors)
    assert report.counts["seen"] == len(SMALL_IDS) - 3  # the rest of page 2 and the pages after it
    assert report.counts["unchanged"] == len(SMALL_IDS) - 3
    live = live_ids(pipeline)
    assert {bad_a, bad_b} <= live  # unreadable now, but still on the Hub: not deleted
    assert SMALL_IDS[20] not in live and report.counts["tombstoned"] == 1


def test_model_info_answer_malformed_keeps_the_listing_record(small_hub: FakeHub, pipeline: Pipeline) -> None:
    rid = SMALL_IDS[2]
    small_hub.info_overrides[rid] = {"id": rid, "safetensors": {"parameters": {"F32": 3}}}  # no total: KeyError
    report = pipeline.harvest(make_source(small_hub), mode="full")
    assert report.status == "partial" and report.counts["enriched"] == len(SMALL_IDS) - 1
    assert [e["ref"] for e in report.errors] == [rid] and "malformed" in report.errors[0]["reason"]
    rec = pipeline.catalog.get(f"huggingface:{rid}")
    # the listing's data is kept: file names (no sizes: those come only with model_info)
    assert rec is not None and rec.artifacts and all(a.size_bytes is None for a in rec.artifacts)


def test_truncated_listings_never_delete(small_hub: FakeHub, pipeline: Pipeline) -> None:
    pipeline.harvest(make_source(small_hub), mode="full")
    gone = SMALL_IDS[-1]
    small_hub.models.pop(gone)
    # --limit: a partial listing, no deletions
    report = pipeline.harvest(make_source(small_hub, limit=5), mode="full")
    assert report.counts["seen"] == 5 and report.counts["tombstoned"] == 0 and gone in live_ids(pipeline)
    # a listing that dies on page 2: no deletions either
    small_hub.fail("GET", r"^/api/models\?.*cursor", 500, times=100)
    with pytest.raises(SourceError):
        pipeline.harvest(make_source(small_hub, retry_attempts=2), mode="full")
    assert gone in live_ids(pipeline)
    small_hub.clear_faults()
    # the next full run resumes where the failed one stopped: it did not list page 1 itself, so it
    # cannot tell what vanished …
    report = pipeline.harvest(make_source(small_hub), mode="full")
    assert report.status == "ok" and report.counts["tombstoned"] == 0
    # … and the next uninterrupted full run deletes what is gone
    report = pipeline.harvest(make_source(small_hub), mode="full")
    assert report.counts["tombstoned"] == 1 and gone not in live_ids(pipeline)
    stored = pipeline.catalog.get_stored(f"huggingface:{gone}")
    assert stored is not None and stored.deleted_at is not None


def test_crash_mid_listing_resumes_without_loss_or_duplicates(small_hub: FakeHub, pipeline: Pipeline) -> None:
    # page 2 fails for good → the listing stops after page 1, which is stored and searchable
    small_hub.fail("GET", r"^/api/models\?.*cursor", 503, times=100)
    with pytest.raises(SourceError, match="listing models"):
        pipeline.harvest(make_source(small_hub, retry_attempts=1, checkpoint_every=3), mode="full")
    assert live_ids(pipeline) == set(SMALL_IDS[:8])
    listing_before = len(small_hub.requests("GET", r"^/api/models\?"))
    small_hub.clear_faults()
    report = pipeline.harvest(make_source(small_hub), mode="full")
    assert report.status == "ok"
    assert live_ids(pipeline) == set(SMALL_IDS)
    # resumed at the checkpoint (page 2's cursor), not from the first page: nothing read twice
    assert report.counts["inserted"] == len(SMALL_IDS) - 8 and report.counts["unchanged"] == 0
    assert "cursor=" in small_hub.requests("GET", r"^/api/models\?")[listing_before]
    assert pipeline.catalog.count(source="huggingface") == len(SMALL_IDS)


def test_source_events_checkpoint_and_resume_directly(small_hub: FakeHub) -> None:
    """Without the pipeline: a run cut after any event resumes from its last checkpoint and yields
    every model exactly once over the two runs."""
    src = make_source(small_hub, checkpoint_every=5)
    all_ids = [e.local_id for e in src.events("full", None) if isinstance(e, SourceRecord)]
    assert all_ids == SMALL_IDS  # newest first
    for cut in (3, 7, 11, 17):
        seen: list[str] = []
        state: dict[str, Any] | None = None
        committed: list[str] = []
        for n, ev in enumerate(src.events("full", None)):
            if isinstance(ev, SourceRecord):
                seen.append(ev.local_id)
            if isinstance(ev, Checkpoint):
                state, committed = ev.state, list(seen)
            if n == cut:
                break
        rest = [e for e in src.events("full", state)]
        again = [e.local_id for e in rest if isinstance(e, SourceRecord)]
        assert committed + again == SMALL_IDS, cut
        assert not any(isinstance(e, ListingComplete) for e in rest) or state is None


def test_full_run_tombstones_removed_and_disabled(small_hub: FakeHub, pipeline: Pipeline) -> None:
    pipeline.harvest(make_source(small_hub), mode="full")
    removed, disabled = SMALL_IDS[4], SMALL_IDS[6]
    small_hub.models.pop(removed)
    small_hub.models[disabled]["disabled"] = True
    report = pipeline.harvest(make_source(small_hub), mode="full")
    assert report.counts["tombstoned"] == 2
    live = live_ids(pipeline)
    assert removed not in live and disabled not in live
    d = pipeline.catalog.get_stored(f"huggingface:{disabled}")
    assert d is not None and d.deleted_reason == "disabled on the Hub"


def test_incremental_stops_at_the_checkpoint(small_hub: FakeHub, pipeline: Pipeline) -> None:
    pipeline.harvest(make_source(small_hub), mode="full")
    older = SMALL_IDS[15], SMALL_IDS[20]
    small_hub.touch(older[0], likes=4242)
    small_hub.touch(older[1], hours_later=2, downloads=7)
    before = len(small_hub.log)
    report = pipeline.harvest(make_source(small_hub), mode="incremental")
    assert report.counts["seen"] == 2 and report.counts["updated"] == 2, report.counts
    new_requests = small_hub.log[before:]
    assert [t for m, t in new_requests if t.startswith("/api/models?")].__len__() == 1  # stopped on page 1
    assert {t.split("?")[0] for m, t in new_requests if t.startswith("/api/models/")} == {
        f"/api/models/{i}" for i in older}
    rec = pipeline.catalog.get(f"huggingface:{older[0]}")
    assert rec is not None and rec.popularity.likes == 4242
    # nothing changed since: one listing request, nothing fetched
    before = len(small_hub.log)
    report = pipeline.harvest(make_source(small_hub), mode="incremental")
    assert report.counts["seen"] == 0 and len(small_hub.log) - before == 1
    # a disabled repo shows up as a change and leaves the catalog
    small_hub.touch(SMALL_IDS[1], disabled=True)
    report = pipeline.harvest(make_source(small_hub), mode="incremental")
    assert report.counts["tombstoned"] == 1 and SMALL_IDS[1] not in live_ids(pipeline)


def test_configured_budget_throttles_without_server_headers(pipeline: Pipeline) -> None:
    with FakeHub(models=small_corpus(), quotas=None) as quiet:  # a mirror that sends no RateLimit headers
        src = make_source(quiet, rate_limit_requests=6, rate_limit_period_s=0.5, limit=9)
        t0 = time.monotonic()
        report = pipeline.harvest(src, mode="full")
        assert report.counts["seen"] == 9 and report.counts["enriched"] == 9
        # 2 listing pages + 9 model_info = 11 requests at 6 per 0.5 s → at least one full window waited
        assert len(quiet.requests()) == 11
        assert time.monotonic() - t0 >= 0.5 and src.limiter.waited_s > 0


def test_filters_and_author_are_sent(hub: FakeHub) -> None:
    src = make_source(hub, author="timm", filter=["image-classification"])
    ids = [e.local_id for e in src.events("full", None) if isinstance(e, SourceRecord)]
    assert sorted(ids) == ["timm/resnet50.a1_in1k", "timm/vit_base_patch16_224.augreg2_in21k_ft_in1k"]
    assert "author=timm" in hub.requests("GET", r"^/api/models\?")[0]


def test_cli_command(small_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from modelport.cli import app
    monkeypatch.setenv("MODELPORT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MODELPORT_EMBEDDINGS", "false")
    runner = CliRunner()
    res = runner.invoke(app, ["harvest", "huggingface", "--endpoint", small_hub.url, "--full", "--limit", "4"])
    assert res.exit_code == 0, res.output
    assert "seen" in res.output
    p = Pipeline(Settings(data_dir=tmp_path / "data"))
    assert p.catalog.count(source="huggingface") == 4
    p.close()
    # a configured source supplies options (here: no retries) and an unreachable endpoint fails cleanly
    cfg = tmp_path / "modelport.toml"
    cfg.write_text('[[sources]]\nname = "hf-down"\nkind = "huggingface"\n'
                   '[sources.options]\nendpoint = "http://127.0.0.1:9"\nretry_attempts = 1\n')
    monkeypatch.setenv("MODELPORT_CONFIG", str(cfg))
    res = runner.invoke(app, ["harvest", "huggingface", "--source", "hf-down"])
    assert res.exit_code == 1
    assert "error" in res.output and "listing models" in res.output


def test_refused_resume_point_restarts_the_listing(small_hub: FakeHub) -> None:
    src = make_source(small_hub)
    state = next(ev.state for ev in src.events("full", None) if isinstance(ev, Checkpoint))
    state["resume"]["page_url"] = state["resume"]["page_url"].split("cursor=")[0] + "cursor=expired"
    events = list(src.events("full", state))
    assert [e.local_id for e in events if isinstance(e, SourceRecord)] == SMALL_IDS
    assert any(isinstance(e, ListingComplete) for e in events)  # a listing from the start is complete


def test_listing_only_full_harvest_is_one_request_per_page(pipeline: Pipeline) -> None:
    """Listing first: N models cost ⌈N / page cap⌉ requests (the fake Hub caps pages as the Hub does),
    no per-model request, and the records are stored and searchable as soon as the listing ends."""
    with FakeHub(models=small_corpus(), max_page_size=10) as capped:
        src = make_source(capped, page_size=1000, enrich_max_models=0)
        report = pipeline.harvest(src, mode="full")
        assert report.counts["inserted"] == len(SMALL_IDS)
        assert len(capped.requests("GET", r"^/api/models\?")) == -(-len(SMALL_IDS) // 10) == len(capped.requests())
        assert "limit=1000" in capped.requests()[0]
    bert = pipeline.catalog.get("huggingface:google-bert/bert-base-uncased")
    assert bert is not None and "safetensors" in bert.formats and all(a.size_bytes is None for a in bert.artifacts)
    assert bert.parameter_count and bert.license  # what the listing's expand gives: safetensors, cardData
    hits = pipeline.search.search(SearchQuery(text="bert"))
    assert "huggingface:google-bert/bert-base-uncased" in {h.id for h in hits.hits}


def test_readme_scratch_space_does_not_grow(small_hub: FakeHub, tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    src = make_source(small_hub, cards=True, cache_dir=scratch)
    targets = [EnrichTarget(local_id=e.local_id, etag=e.etag) for e in src.events("full", None)
               if isinstance(e, SourceRecord)]
    recs = [src.normalize(e) for e in src.enrich(targets) if isinstance(e, SourceRecord)]
    assert len(recs) == len(SMALL_IDS) and any(r.card.body for r in recs)
    assert [p.name for p in scratch.rglob("*") if p.is_file()] in ([], ["CACHEDIR.TAG"])
