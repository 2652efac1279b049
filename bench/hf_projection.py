"""What a harvest of the whole Hugging Face Hub would take, projected from costs measured here.

Measured against the local fake Hub (in a process of its own; real `huggingface_hub` client, real
pipeline), on N models made
from the 1,981 real payloads of tests/fixtures/hf/corpus.json (new ids, shas and dates):

- the listing stage per page of 1,000 models (HTTP, JSON, the client's ModelInfo checks) and per
  record stored and made searchable (catalog + Tantivy, no embeddings);
- the graph projection per record (Oxigraph), measured separately;
- the enrichment stage per model (model_info with file metadata, stored and indexed).

The projection for 2,000,000 models combines those with the free account's budget (1,000 API
requests and 5,000 resolver requests per 5-minute window: huggingface/hub-docs docs/hub/rate-limits.md).
Network time to the real Hub is not measured (no traffic leaves this machine): the figures are the
floor this machine and the budget set. Embeddings are projected from the measured encoder rate in
/work/shared/reference/engine-measurements.md (about 100 texts/s at 64 tokens on 2 cores), not measured here.

    .venv/bin/python bench/hf_projection.py [--models 10000]
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import math
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "hf"))
from fake_hub import FakeHub, load_corpus  # noqa: E402

from modelport.harvesters.base import SourceRecord  # noqa: E402
from modelport.harvesters.huggingface import HuggingFaceSource  # noqa: E402
from modelport.pipeline import Pipeline  # noqa: E402
from modelport.settings import Settings  # noqa: E402

HUB_MODELS = 2_000_000
PAGE = 1000
FREE_API, FREE_RESOLVERS, WINDOW_S = 1000, 5000, 300
EMBED_TEXTS_PER_S = 100.0  # reference/engine-measurements.md, all-MiniLM-L6-v2, 64 tokens, 2 cores


def corpus(n: int) -> list[dict[str, Any]]:
    base = [m for m in load_corpus()["models"] if not m.get("private") and not m.get("disabled")]
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        m = copy.deepcopy(base[i % len(base)])
        m["id"] = f"{m['id']}-{i}" if i >= len(base) else m["id"]
        m["sha"] = hashlib.sha1(m["id"].encode()).hexdigest()
        m["lastModified"] = (t0 + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        out.append(m)
    return out


def _serve(models: list[dict[str, Any]], conn: Any) -> None:
    """The fake Hub in a process of its own, so this process's CPU time is the harvest's alone."""
    with FakeHub(models=models, readmes={}, quotas=None) as hub:
        conn.send(hub.url)
        conn.recv()  # until told to stop
        conn.send(len(hub.requests("GET", r"^/api/models\?")))


def uptime() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=10_000)
    ap.add_argument("--enrich", type=int, default=1000, help="models to enrich for the per-model cost")
    args = ap.parse_args()
    models = corpus(args.models)
    print(f"load average at start: {uptime()}  (the machine is shared: figures vary with load)")
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=_serve, args=(models, child), daemon=True)
    server.start()
    url = parent.recv()
    with tempfile.TemporaryDirectory() as tmp:
        opts = {"endpoint": url, "rate_limit_requests": 10**9, "resolver_rate_limit_requests": 10**9}

        # 1. the listing alone: pages of 1,000 through the client's session and checks
        src = HuggingFaceSource("huggingface", **opts)
        t, c = time.perf_counter(), time.process_time()
        listed = sum(isinstance(e, SourceRecord) for e in src.events("full", None))
        listing_s = time.perf_counter() - t
        listing_cpu = time.process_time() - c
        pages = math.ceil(listed / PAGE)
        per_page = listing_s / pages

        # 2. listing + store + search index (no embeddings, no graph)
        p = Pipeline(Settings(data_dir=Path(tmp) / "d", embeddings=False))
        t, c = time.perf_counter(), time.process_time()
        report = p.harvest(HuggingFaceSource("huggingface", **opts, enrich=False), mode="full",
                           project_graph=False)
        stored_s = time.perf_counter() - t
        stored_cpu = time.process_time() - c
        assert report.counts["inserted"] == listed == args.models, report.counts
        per_record_store = max(0.0, stored_s - listing_s) / listed

        # 3. the graph projection
        t = time.perf_counter()
        p.project_graph()
        per_record_graph = (time.perf_counter() - t) / listed

        # 4. enrichment per model (model_info with file metadata, merged, stored, indexed)
        n_enrich = min(args.enrich, listed)
        t = time.perf_counter()
        report = p.harvest(HuggingFaceSource("huggingface", **opts, enrich_max_models=n_enrich),
                           mode="incremental", project_graph=False)
        enrich_s = time.perf_counter() - t
        assert report.counts["enriched"] == n_enrich, report.counts
        per_enriched = enrich_s / n_enrich
        p.close()
    parent.send("stop")
    assert parent.recv() >= 2 * pages  # the listing ran twice (alone, then with the pipeline)
    server.join(timeout=10)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    hub_pages = math.ceil(HUB_MODELS / PAGE)
    cpu_listing = hub_pages * per_page + HUB_MODELS * per_record_store
    # the budget floor: the first window's 1,000 requests at once, then one window per further 1,000
    budget_floor = (math.ceil(hub_pages / FREE_API) - 1) * WINDOW_S
    searchable_s = max(cpu_listing, budget_floor)
    graph_s = HUB_MODELS * per_record_graph
    embed_s = HUB_MODELS / EMBED_TEXTS_PER_S
    per_day_api = FREE_API * (86_400 / WINDOW_S)  # one model_info per model
    per_day_cpu = 86_400 / per_enriched
    per_day = min(per_day_api, per_day_cpu)
    readme_per_day = FREE_RESOLVERS * (86_400 / WINDOW_S) / 2  # HEAD + GET per card

    cpu_searchable = max(hub_pages * listing_cpu / pages + HUB_MODELS * max(0.0, stored_cpu - listing_cpu) / listed,
                         budget_floor)
    rows = [
        ("models measured", f"{listed:,}"),
        ("listing pages (1,000 a request)", f"{pages}"),
        ("listing: seconds per page (HTTP + JSON + client checks)", f"{per_page:.3f}"),
        ("store + search index: ms per record", f"{per_record_store * 1000:.3f}"),
        ("graph: ms per record", f"{per_record_graph * 1000:.3f}"),
        ("enrichment: ms per model (model_info, store, index)", f"{per_enriched * 1000:.2f}"),
        ("peak RSS MB", f"{rss:.0f}"),
        ("— projection for 2,000,000 models, free account —", ""),
        ("listing requests", f"{hub_pages:,}"),
        ("budget floor for the listing (s)", f"{budget_floor:,.0f}"),
        ("listed + stored + searchable (s)", f"{searchable_s:,.0f} ({searchable_s / 3600:.2f} h; goal <= 1 h: "
                                              f"{'met' if searchable_s <= 3600 else 'NOT met'})"),
        ("same from CPU seconds instead of wall time (less load noise)",
         f"{cpu_searchable:,.0f} ({cpu_searchable / 3600:.2f} h)"),
        ("graph projection, separately (s)", f"{graph_s:,.0f} ({graph_s / 3600:.2f} h)"),
        ("embeddings, separately (s, at 100 texts/s, not measured here)", f"{embed_s:,.0f} ({embed_s / 3600:.1f} h)"),
        ("enrichment: models per day (API budget / this CPU)", f"{per_day_api:,.0f} / {per_day_cpu:,.0f}"),
        ("enrichment of the 100k most downloaded (h)", f"{100_000 / per_day * 24:.1f} (goal <= 24 h: "
                                                      f"{'met' if 100_000 / per_day <= 1 else 'NOT met'})"),
        ("cards (README) per day, resolver budget", f"{readme_per_day:,.0f}"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"| {'figure'.ljust(width)} | value |")
    print(f"| {'-' * width} | ----- |")
    for k, v in rows:
        print(f"| {k.ljust(width)} | {v} |")
    print(f"load average at end: {uptime()}")


if __name__ == "__main__":
    main()
