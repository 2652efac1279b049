"""/health and /search latency while N heavy SPARQL queries run (issue 11).

Starts a real `modelport serve` on a loopback port over a data directory (the TF Hub fixture sample,
crawled first when none is given), keeps N clients each sending a query that can never finish within
the time limit (a COUNT over a triple product), and meanwhile times /health and /search from one
client. Prints percentiles, the heavy queries' statuses and times, the SPARQL workers' peak RSS and
the server's own RSS before and after, with the load average (the machine may be shared).

    python bench/hostile_load.py --heavy 4 --seconds 20 [--data-dir DIR] [--timeout 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from serve_helpers import HEAVY, Served, harvest_tfhub_fixture  # noqa: E402


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] * 1000 if s else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--heavy", type=int, default=4, help="concurrent heavy SPARQL clients")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--timeout", type=float, default=10.0, help="MODELPORT_QUERY_TIMEOUT_S")
    ap.add_argument("--data-dir", type=Path, help="a data directory to copy and serve (default: TF Hub sample)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="hostile-load-"))
    try:
        if args.data_dir:
            shutil.copytree(args.data_dir, work, dirs_exist_ok=True)
        else:
            harvest_tfhub_fixture(work)
        env = {"MODELPORT_QUERY_TIMEOUT_S": str(args.timeout)}
        with Served(work, env) as served:
            run(served, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(served: Served, args: argparse.Namespace) -> None:
    stop = time.monotonic() + args.seconds
    heavy: list[tuple[int, float, str]] = []
    lock = threading.Lock()

    def heavy_client() -> None:
        with httpx.Client(base_url=served.url, timeout=args.timeout + 30) as http:
            while time.monotonic() < stop:
                t0 = time.monotonic()
                r = http.get("/sparql", params={"query": HEAVY["count-product"]})
                limit = r.json().get("limit", "") if r.status_code != 200 else ""
                with lock:
                    heavy.append((r.status_code, time.monotonic() - t0, limit))

    rss_before = served.rss_kb()
    with httpx.Client(base_url=served.url, timeout=30) as http:  # warm the search path first
        http.get("/search", params={"q": "mobilenet", "facets": "none"})
    threads = [threading.Thread(target=heavy_client, daemon=True) for _ in range(args.heavy)]
    for t in threads:
        t.start()
    time.sleep(min(1.0, args.seconds / 4))
    lat: dict[str, list[float]] = {"/health": [], "/search": []}
    errors = 0
    with httpx.Client(base_url=served.url, timeout=30) as http:
        while time.monotonic() < stop:
            for path, params in (("/health", {}), ("/search", {"q": "mobilenet image", "facets": "none"})):
                t0 = time.monotonic()
                r = http.get(path, params=params)
                lat[path].append(time.monotonic() - t0)
                errors += r.status_code != 200
            time.sleep(0.02)
    for t in threads:
        t.join(args.timeout + 35)
    pool = served.health()["sparql"]
    rss_after = served.rss_kb()
    load = os.getloadavg()

    print(f"\nhostile load: {args.heavy} heavy SPARQL clients for {args.seconds:g} s, query time limit "
          f"{args.timeout:g} s, {pool['workers']} workers; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          f"on {os.cpu_count()} CPUs")
    print("\n| endpoint | requests | p50 ms | p95 ms | p99 ms | max ms | non-200 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for path, values in lat.items():
        print(f"| {path} | {len(values)} | {pct(values, 50):.1f} | {pct(values, 95):.1f} | {pct(values, 99):.1f} "
              f"| {max(values) * 1000:.1f} | {errors if path == '/health' else ''} |")
    times = [t for _, t, _ in heavy]
    by: dict[str, int] = {}
    for code, _, limit in heavy:
        key = f"{code} {limit}".strip()
        by[key] = by.get(key, 0) + 1
    print(f"\nheavy queries: {len(heavy)} answered: {by}; time to answer p50 {statistics.median(times):.2f} s, "
          f"max {max(times):.2f} s (limit {args.timeout:g} s)" if heavy else "\nheavy queries: none answered")
    print(f"SPARQL workers: peak RSS {pool['peak_rss_mb']} MB (idle {pool['idle_rss_mb']} MB, budget "
          f"{pool['memory_budget_mb']} MB); stopped for time {pool['stopped_for_time']}, for memory "
          f"{pool['stopped_for_memory']}, refused busy {pool['refused_busy']}")
    print(f"server RSS: {rss_before / 1024:.0f} MB before, {rss_after / 1024:.0f} MB after")


if __name__ == "__main__":
    main()
