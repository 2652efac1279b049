"""Hugging Face mapping throughput: Hub payload → normalized, stored, projected record.

No network and no embeddings: synthetic payloads of realistic shape (the test corpus's 70-odd
real-world-shaped models as templates, with new ids, revisions, dates, counts and tag subsets) are
fed by a source that yields prepared SourceRecords, first through `normalize` alone, then through
the whole Pipeline in its two phases: the harvest (normalize + compatibility + catalog + search
index: stored and searchable), then the RDF graph catching up from its outbox; and both together.

    .venv/bin/python bench/hf_mapping.py                 # 100k payloads
    .venv/bin/python bench/hf_mapping.py -n 20000 --profile
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import gc
import hashlib
import io
import json
import os
import pstats
import random
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from modelport.harvesters.base import Checkpoint, HarvestEvent, HarvestMode, ListingComplete, SourceRecord
from modelport.harvesters.huggingface import HuggingFaceSource
from modelport.pipeline import Pipeline
from modelport.schema.record import ModelRecord
from modelport.settings import Settings

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "hf" / "corpus.json"
WORDS = ["tiny", "base", "large", "instruct", "chat", "v2", "distilled", "finetuned", "lora", "int8", "awq", "dpo",
         "sft", "med", "legal", "code", "vision", "speech", "ja", "de", "fr", "multilingual", "qa", "ner", "7b",
         "1b", "small", "xl", "mini", "turbo"]


def synthetic_payloads(n: int, seed: int = 7, start: int = 0) -> list[dict[str, Any]]:
    """n payloads cloned from the corpus templates with fresh identity and varied values; `start`: the
    number of the first (a large corpus is made in slices, each seeded by its start)."""
    rng = random.Random(seed if start == 0 else f"{seed}-{start}")
    templates = [m for m in json.loads(CORPUS.read_text(encoding="utf-8"))["models"] if not m.get("disabled")]
    t0 = datetime(2025, 6, 1, tzinfo=UTC)
    out = []
    for i in range(start, start + n):
        p = copy.deepcopy(templates[i % len(templates)])
        base = p["id"].split("/")[-1]
        p["id"] = p["modelId"] = f"org{rng.randrange(5000)}/{base}-{rng.choice(WORDS)}-{i}"
        p["author"] = p["id"].split("/")[0]
        p["sha"] = hashlib.sha1(p["id"].encode()).hexdigest()
        p["lastModified"] = (t0 - timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        p["downloads"] = int(rng.paretovariate(1.2) * 10)
        p["likes"] = int(rng.paretovariate(1.5))
        tags = p.get("tags") or []
        if tags:  # drop a few tags so the index does not see 70 identical tag sets
            p["tags"] = [t for t in tags if rng.random() > 0.15 or ":" in t]
        for s in p.get("siblings") or []:
            if isinstance(s.get("size"), int) and s["size"] > 0 and s.get("lfs"):
                s["size"] = s["lfs"]["size"] = int(s["size"] * rng.uniform(0.5, 1.5))
                s["lfs"]["sha256"] = hashlib.sha256(f"{p['id']}/{s['rfilename']}".encode()).hexdigest()
        out.append(p)
    return out


class PreparedSource(HuggingFaceSource):
    """The real HF source's `normalize`, fed from memory instead of the network."""

    def __init__(self, payloads: list[dict[str, Any]], page: int) -> None:
        super().__init__("huggingface", endpoint="https://huggingface.co", enrich=False)  # no network calls
        self.payloads, self.page = payloads, page

    def events(self, mode: HarvestMode, checkpoint: dict[str, Any] | None) -> Iterator[HarvestEvent]:
        for i, p in enumerate(self.payloads, 1):
            yield SourceRecord(local_id=p["id"], payload=p, etag=p["sha"])
            if i % self.page == 0:
                yield Checkpoint(state={"offset": i})
        yield ListingComplete(listed=len(self.payloads))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def bench_normalize(payloads: list[dict[str, Any]], batch: int) -> dict[str, float]:
    src = HuggingFaceSource("huggingface")
    items = [SourceRecord(local_id=p["id"], payload=p) for p in payloads]
    lat: list[float] = []
    t0 = time.perf_counter()
    for k in range(0, len(items), batch):
        b0 = time.perf_counter()
        recs: list[ModelRecord] = [src.normalize(it) for it in items[k:k + batch]]
        assert recs
        lat.append(time.perf_counter() - b0)
    total = time.perf_counter() - t0
    return {"records": len(items), "seconds": total, "rps": len(items) / total, "cpu_ms": float("nan"),
            "p50_ms": pct(lat, 0.5) * 1000, "p95_ms": pct(lat, 0.95) * 1000, "rss_mb": peak_rss_mb()}


def bench_pipeline(payloads: list[dict[str, Any]], batch: int, data_dir: Path) -> list[tuple[str, dict[str, float]]]:
    """The real Pipeline, timed in its two phases: harvest (normalize + compatibility + catalog + search
    index, batch by batch: records are stored and searchable), then the RDF graph catching up from
    its outbox (what `harvest` runs at its end)."""
    settings = Settings(data_dir=data_dir, base_iri="http://bench", embeddings=False)
    pipeline = Pipeline(settings)
    marks: list[float] = []
    t0, c0 = time.perf_counter(), time.process_time()
    # The source checkpoints every `batch` records; a larger pipeline batch means each checkpoint is
    # exactly one flush (store + project), so the per-batch latencies are whole batches.
    report = pipeline.harvest(PreparedSource(payloads, batch), mode="full", batch_size=batch + 1,
                              progress=lambda r: marks.append(time.perf_counter()), project_graph=False)
    t1, c1 = time.perf_counter(), time.process_time()
    pending = pipeline.catalog.dirty_count("graph")
    moved = pipeline.project_graph()
    t2, c2 = time.perf_counter(), time.process_time()
    stored = pipeline.catalog.count(source="huggingface")
    quads = pipeline.graph.triple_count()
    pipeline.close()
    assert report.status == "ok" and stored == len(payloads), (report.status, stored, report.errors[:3])
    assert pending == len(moved) == len(payloads), (pending, len(moved))
    lat = [b - a for a, b in zip([t0, *marks], marks, strict=False) if b - a > 0]
    n = len(payloads)
    rss = peak_rss_mb()
    print(f"graph: {quads:,} quads in the store ({quads / n:.0f} per record, shared nodes included)", file=sys.stderr)
    return [
        ("harvest: stored + searchable", {"records": n, "seconds": t1 - t0, "rps": n / (t1 - t0),
                                          "cpu_ms": (c1 - c0) / n * 1000, "p50_ms": pct(lat, 0.5) * 1000,
                                          "p95_ms": pct(lat, 0.95) * 1000, "rss_mb": rss}),
        ("graph catch-up (outbox → Oxigraph)", {"records": n, "seconds": t2 - t1, "rps": n / (t2 - t1),
                                                "cpu_ms": (c2 - c1) / n * 1000, "p50_ms": float("nan"),
                                                "p95_ms": float("nan"), "rss_mb": rss}),
        ("end to end (both)", {"records": n, "seconds": t2 - t0, "rps": n / (t2 - t0),
                               "cpu_ms": (c2 - c0) / n * 1000, "p50_ms": float("nan"), "p95_ms": float("nan"),
                               "rss_mb": rss}),
    ]


def bench_follow(payloads: list[dict[str, Any]], batch: int, data_dir: Path) -> list[tuple[str, dict[str, float]]]:
    """The real Pipeline as `modelport harvest` runs it: the graph follows the harvest batch by batch
    (written on a thread of its own) and the job ends when its records are in the graph too. Also
    records the graph's lag (Pipeline.graph_lag_s) at every batch."""
    settings = Settings(data_dir=data_dir, base_iri="http://bench", embeddings=False)
    pipeline = Pipeline(settings)
    marks: list[float] = []
    lags: list[float] = []

    def progress(_: Any) -> None:
        marks.append(time.perf_counter())
        lags.append(pipeline.graph_lag_s())

    t0, c0 = time.perf_counter(), time.process_time()
    report = pipeline.harvest(PreparedSource(payloads, batch), mode="full", batch_size=batch + 1, progress=progress)
    t1, c1 = time.perf_counter(), time.process_time()
    pending = pipeline.catalog.dirty_count("graph")
    res = pipeline.graph.query("SELECT (COUNT(*) AS ?n) WHERE { ?m a fair4ml:MLModel }").result
    in_graph = int(res.bindings[0][res.vars[0]])  # type: ignore[index]
    pipeline.close()
    n = len(payloads)
    assert report.status == "ok" and pending == 0 and in_graph == n, (report.status, pending, in_graph)
    lat = [b - a for a, b in zip([t0, *marks], marks, strict=False) if b - a > 0]
    print(f"graph lag during the harvest: p50 {pct(lags, 0.5):.2f} s, p95 {pct(lags, 0.95):.2f} s, "
          f"max {max(lags, default=0):.2f} s (target ≤ 10 s)", file=sys.stderr)
    return [("end to end, graph following (harvest)", {
        "records": n, "seconds": t1 - t0, "rps": n / (t1 - t0), "cpu_ms": (c1 - c0) / n * 1000,
        "p50_ms": pct(lat, 0.5) * 1000, "p95_ms": pct(lat, 0.95) * 1000, "rss_mb": peak_rss_mb(),
        "lag_max_s": max(lags, default=0.0)})]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=100_000, help="number of payloads (default 100000)")
    ap.add_argument("--batch", type=int, default=500, help="records per batch / checkpoint (default 500)")
    ap.add_argument("--pipeline-n", type=int, help="payloads for the pipeline stages (default: -n)")
    ap.add_argument("--stage", choices=("normalize", "pipeline", "follow", "all"), default="all",
                    help="pipeline: harvest, then the graph apart (per-stage costs); follow: the harvest as "
                         "`modelport harvest` runs it, the graph following; all: every stage")
    ap.add_argument("--profile", action="store_true", help="cProfile the pipeline stages (top 30 by tottime)")
    args = ap.parse_args(argv)

    t = time.perf_counter()
    payloads = synthetic_payloads(args.n)
    gen_s = time.perf_counter() - t
    # A real harvest holds one page of payloads, not 100k: keep the generated corpus out of the
    # collector's way so GC pauses over it do not show up as mapping cost.
    gc.collect()
    gc.freeze()
    kib = sum(len(json.dumps(p)) for p in payloads[:1000]) / min(1000, len(payloads)) / 1024
    print(f"generated {len(payloads)} payloads in {gen_s:.1f} s (mean {kib:.1f} KiB of JSON each)", file=sys.stderr)
    rows: list[tuple[str, dict[str, float]]] = []
    if args.stage in ("normalize", "all"):
        rows.append(("normalize only", bench_normalize(payloads, args.batch)))
    sub = payloads[:args.pipeline_n] if args.pipeline_n else payloads
    if args.stage in ("follow", "all"):
        with tempfile.TemporaryDirectory(prefix="hf-bench-") as tmp:
            rows += bench_follow(sub, args.batch, Path(tmp) / "f")
        gc.collect()
    if args.stage in ("pipeline", "all"):
        with tempfile.TemporaryDirectory(prefix="hf-bench-") as tmp:
            prof = cProfile.Profile() if args.profile else None
            if prof:
                prof.enable()
            rows += bench_pipeline(sub, args.batch, Path(tmp) / "b")
            if prof:
                prof.disable()
                buf = io.StringIO()
                pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(30)
                print(buf.getvalue())
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    head = f"| {'stage':<38} | {'records':>8} | {'seconds':>8} | {'records/s':>9} | {'CPU ms/rec':>10} | " \
           f"{'p50 batch ms':>12} | {'p95 batch ms':>12} | {'peak RSS MB':>11} |"
    print(head)
    print("|" + "|".join("-" * (len(c) + 0) for c in head.split("|")[1:-1]) + "|")
    for name, r in rows:
        print(f"| {name:<38} | {r['records']:>8.0f} | {r['seconds']:>8.1f} | {r['rps']:>9.0f} | {r['cpu_ms']:>10.2f} | "
              f"{r['p50_ms']:>12.1f} | {r['p95_ms']:>12.1f} | {r['rss_mb']:>11.0f} |")
    print(f"(batch = {args.batch} records; {os.cpu_count()} CPUs, load average {load}; "
          "target ≥ 1,500 records/s end to end; CPU ms/rec is this process's CPU time, all threads)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
