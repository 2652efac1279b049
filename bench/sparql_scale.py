"""SPARQL at scale: n synthetic Hub records (bench/hf_mapping.py's corpus, normalized, derived and turned
into the graph projection's RDF by the real code) bulk-loaded into an on-disk Oxigraph store, then the
committed queries below answered the way the endpoint answers them (`GraphStore.query`: union default
graph, predeclared prefixes, row cap, time limit), each repeated; p50/p95 per query, the load time, the
store's size on disk and the multi-constraint query's selectivity. With --rdflib N, the same
multi-constraint query on rdflib's own in-memory engine over the first N records, in a child process
with a time limit, for comparison.

With --served, the same queries also go through the endpoint's own path: `SparqlPool` worker processes
over a read-only snapshot of the store, with the default serving settings (2 workers, 10 s, 1 GiB per
worker, rows capped at 10 × max_results), timed from the request to the serialized JSON answer, as
`POST /sparql` runs them (api/sparql_routes.py), minus HTTP.

    .venv/bin/python bench/sparql_scale.py -n 100000 --rdflib 100000
    nice -n 10 .venv/bin/python bench/sparql_scale.py -n 1000000 --keep /tmp/sparql-1m
    .venv/bin/python bench/sparql_scale.py -n 1000000 --keep /tmp/sparql-1m --served   # reuse, via the pool
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hf_mapping import PreparedSource, synthetic_payloads  # noqa: E402

from modelport.harvesters.base import SourceRecord  # noqa: E402
from modelport.index.graph import GraphStore  # noqa: E402
from modelport.schema.compat import enrich_record  # noqa: E402
from modelport.schema.identity import record_iri  # noqa: E402
from modelport.schema.kb import get_kb  # noqa: E402
from modelport.schema.rdf import PREFIXES, record_rdf, version_key  # noqa: E402

BASE = "http://bench"
SLICE = 1000  # records per bulk load, as the pipeline's graph writer

K116 = version_key("1.16")
# The committed query texts. {id} is filled with a random record's identifier per run.
LOOKUP = """SELECT ?p ?o WHERE { ?m schema:identifier "{id}" ; ?p ?o }"""
# "A native or verified ONNX Runtime cell": derived cells hang off the profile and are never "verified",
# a record's own cells hang off the record, so `mp:profile?/mp:compatibility` with the status test reaches
# both. Written most selective first: Oxigraph keeps the written order where its estimates tie, and
# starting from the profiles' cells (a few hundred) instead visits every record of those profiles.
MULTI = f"""SELECT ?id ?v WHERE {{
  ?e mp:metric met:accuracy ; schema:value ?v . FILTER(?v >= 0.8)
  ?m fair4ml:hasEvaluation ?e ; mp:profile/fair4ml:mlTask task:text-classification ;
     mp:profile?/mp:compatibility ?c .
  ?c mp:status ?st ; mp:runtime rt:onnxruntime ; mp:minVersionKey ?lo ; mp:maxVersionKey ?hi .
  FILTER(?st IN ("native", "verified") && ?lo <= {K116} && {K116} < ?hi)
  ?m schema:identifier ?id .
}} LIMIT 20"""
# Selectivity: how many records the query has in all (counted per matching profile; the synthetic
# corpus has no verified cells, which would add records of their own).
MULTI_COUNT = f"""SELECT (COUNT(DISTINCT ?m) AS ?n) WHERE {{
  {{ SELECT DISTINCT ?p WHERE {{
      ?p fair4ml:mlTask task:text-classification ; mp:compatibility ?c .
      ?c mp:status "native" ; mp:runtime rt:onnxruntime ; mp:minVersionKey ?lo ; mp:maxVersionKey ?hi .
      FILTER(?lo <= {K116} && {K116} < ?hi) }} }}
  ?m mp:profile ?p ; fair4ml:hasEvaluation ?e . ?e mp:metric met:accuracy ; schema:value ?v . FILTER(?v >= 0.8)
}}"""
# Records per task: count per profile first (one pass over the mp:profile links), then per task.
GROUP = """SELECT ?task (SUM(?k) AS ?n) WHERE {
  { SELECT ?p (COUNT(*) AS ?k) WHERE { ?m mp:profile ?p } GROUP BY ?p }
  ?p fair4ml:mlTask ?task
} GROUP BY ?task ORDER BY DESC(?n)"""


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def du_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def records_nt(n: int, derive_every: int = 1) -> Iterator[tuple[list[tuple[str, str]], dict[str, str], list[str]]]:
    """(slice of (record IRI, own N-Triples), shared graphs, ids) per SLICE records. One record in
    `derive_every` is made by the real code (normalize, derive, RDF); the others are copies of one of
    those with a new identity (id, IRI, name and URLs renamed), so a 1M store can be built on two
    shared cores in minutes instead of hours: their shape, profiles and cells are real, only their
    sizes, dates and evaluations repeat."""
    kb = get_kb()
    src = PreparedSource([], SLICE)
    for a in range(0, n, SLICE):
        m = min(SLICE, n - a)
        payloads = synthetic_payloads(max(m // derive_every, 1), start=a)
        own, shared, ids = [], {}, []
        made = []
        for p in payloads:
            r = src.normalize(SourceRecord(local_id=p["id"], payload=p))
            r.iri = record_iri(BASE, r.id)
            enrich_record(r, kb)
            r.with_hash()
            x = record_rdf(r, BASE)
            shared.update(x.shared)
            made.append((r.local_id, r.iri, x.own))
        for i in range(m):
            local, iri, text = made[i % len(made)]
            if i >= len(made):
                new = f"{local}-c{a + i}"
                iri, text = iri.replace(local, new), text.replace(local, new)
                local = new
            own.append((iri, text))
            ids.append(f"huggingface:{local}")
        yield own, shared, ids


def build(path: Path, n: int, derive_every: int, load_batch: int) -> tuple[GraphStore, list[str], dict[str, float]]:
    """Make and load n records, `load_batch` records per bulk load; returns the store, a sample of ids and
    the figures."""
    pending_shared: dict[str, str] = {}
    pending_own: list[tuple[str, str]] = []
    g = GraphStore(path)
    g.load_ontology(get_kb().version)
    rng = random.Random(1)
    sample: list[str] = []
    quads_own = 0
    prep = load = 0.0
    t0 = time.perf_counter()
    it = records_nt(n, derive_every)
    while True:
        a = time.perf_counter()
        try:
            own, shared, ids = next(it)
        except StopIteration:
            break
        b = time.perf_counter()
        pending_shared.update(shared)
        pending_own += own
        if len(pending_own) >= load_batch:
            g.add_shared(pending_shared)
            g.add_new(pending_own)
            pending_shared, pending_own = {}, []
        c = time.perf_counter()
        prep += b - a
        load += c - b
        quads_own += sum(nt.count("\n") for _, nt in own)
        sample += rng.sample(ids, 2)
        done = len(sample) // 2 * SLICE
        if done % 50_000 == 0:
            print(f"  {done:,} records, {time.perf_counter() - t0:.0f} s (prepare {prep:.0f} s, store {load:.0f} s), "
                  f"RSS {rss_mb():.0f} MB, load {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
    t = time.perf_counter()
    g.add_shared(pending_shared)
    g.add_new(pending_own)
    load += time.perf_counter() - t
    g.flush()
    t = time.perf_counter()
    g.store.optimize()
    opt = time.perf_counter() - t
    quads = g.triple_count()
    return g, sample, {"prepare_s": prep, "load_s": load, "optimize_s": opt, "quads": quads,
                       "own_per_record": quads_own / n, "disk_mb": du_mb(path)}


def timed(g: GraphStore, text: str, runs: int) -> tuple[list[float], int]:
    lat, rows = [], 0
    for _ in range(runs):
        t = time.perf_counter()
        ans = g.query(text, timeout_s=60, max_rows=100_000)
        lat.append((time.perf_counter() - t) * 1000)
        rows = len(ans.result.bindings) if ans.kind == "SELECT" else 0
    return lat, rows


def served_timings(g: GraphStore, path: Path,
                   queries: list[tuple[str, list[str]]]) -> list[tuple[str, list[float], int]]:
    """Each (name, query texts) answered through the endpoint's worker pool (api/app.py
    `make_sparql_pool` with default Settings): (name, latencies in ms, rows of the last answer)."""
    import json

    from modelport.index.sparql_pool import GraphSnapshots, SparqlPool
    from modelport.settings import Settings

    s = Settings()
    root = path.parent / f"{path.name}-snapshots"  # the same file system: snapshots are hard links
    snaps = GraphSnapshots(g.snapshot, path, root, interval_s=s.sparql_snapshot_interval_s,
                           keep_s=2 * s.query_timeout_s + s.sparql_snapshot_interval_s + 5)
    pool = SparqlPool(snaps, dict(PREFIXES), workers=s.sparql_workers, queue=s.sparql_queue,
                      memory_mb=s.query_memory_mb, max_result_bytes=s.sparql_max_result_mb << 20)
    pool.start()
    out = []
    try:
        pool.run("ASK { ?s ?p ?o }", "json", 120.0, 10)  # the workers are up and the snapshot taken
        for name, texts in queries:
            lat, rows = [], 0
            for text in texts:
                t = time.perf_counter()
                ans = pool.run(text, "json", s.query_timeout_s, s.max_results * 10)
                lat.append((time.perf_counter() - t) * 1000)
                rows = len(json.loads(ans.body)["results"]["bindings"])
            out.append((name, lat, rows))
    finally:
        pool.close()
        snaps.close()
        shutil.rmtree(root, ignore_errors=True)
    return out


def rdflib_child(n: int, derive_every: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    from rdflib import Graph

    g = Graph()
    t = time.perf_counter()
    for own, shared, _ in records_nt(n, derive_every):
        g.parse(data="".join(nt for _, nt in own) + "".join(shared.values()), format="nt")
    from modelport.schema.kb import ontology_dir

    for f in sorted((ontology_dir() / "kb").glob("*.ttl")):
        g.parse(f, format="turtle")
    out.put(("load", time.perf_counter() - t, len(g), rss_mb()))
    q = MULTI
    for prefix, ns in PREFIXES.items():
        q = f"PREFIX {prefix}: <{ns}>\n" + q
    t = time.perf_counter()
    rows = len(list(g.query(q)))
    out.put(("query", time.perf_counter() - t, rows, rss_mb()))


def bench_rdflib(n: int, derive_every: int, limit_s: float) -> str:
    ctx = mp.get_context("fork")
    q: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    p = ctx.Process(target=rdflib_child, args=(n, derive_every, q))
    t = time.perf_counter()
    p.start()
    msgs = []
    while p.is_alive() and time.perf_counter() - t < limit_s:
        p.join(1)
        while not q.empty():
            msgs.append(q.get())
    while not q.empty():
        msgs.append(q.get())
    if p.is_alive():
        p.kill()
        p.join()
    load = next((m for m in msgs if m[0] == "load"), None)
    query = next((m for m in msgs if m[0] == "query"), None)
    parts = [f"rdflib {n:,} records: "]
    parts.append(f"load {load[1]:.0f} s ({load[2]:,} triples, RSS {load[3]:.0f} MB)" if load
                 else f"load not finished within {limit_s:.0f} s")
    if query:
        parts.append(f"; multi-constraint query {query[1] * 1000:.0f} ms ({query[2]} rows, RSS {query[3]:.0f} MB)")
    elif load:
        parts.append(f"; multi-constraint query not finished within the {limit_s:.0f} s the run had")
    return "".join(parts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=50, help="repetitions per query (lookups: this many ids)")
    ap.add_argument("--rdflib", type=int, default=0, help="records for the rdflib comparison (0: none)")
    ap.add_argument("--rdflib-limit-s", type=float, default=900)
    ap.add_argument("--derive-every", type=int, default=1,
                    help="make one record in this many with the real code, the rest as renamed copies")
    ap.add_argument("--keep", type=Path, help="build (or reuse) the store here instead of a temporary dir")
    ap.add_argument("--load-batch", type=int, default=SLICE,
                    help="records per bulk load (default 1000, as the pipeline's graph writer)")
    ap.add_argument("--rdflib-only", action="store_true", help="only the rdflib comparison (no Oxigraph store)")
    ap.add_argument("--served", action="store_true",
                    help="also answer the queries through the endpoint's worker pool (the serving configuration)")
    args = ap.parse_args()
    if args.rdflib_only:
        print(bench_rdflib(args.rdflib or args.n, args.derive_every, args.rdflib_limit_s))
        print(f"({os.cpu_count()} CPUs, load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())})")
        return 0
    tmp = None
    path = args.keep or Path(tmp := tempfile.mkdtemp(prefix="sparql-scale-"))
    try:
        if args.keep and (path / "CURRENT").exists():
            g = GraphStore(path)
            ids = [r[0].value for r in g.store.query(
                "SELECT ?id WHERE { ?m <http://schema.org/identifier> ?id } LIMIT 200000")]
            figures = {"disk_mb": du_mb(path), "quads": g.triple_count()}
            print(f"reusing the store at {path}", file=sys.stderr)
        else:
            g, ids, figures = build(path, args.n, args.derive_every, args.load_batch)
        gc.collect()
        load_avg = " / ".join(f"{x:.2f}" for x in os.getloadavg())
        rng = random.Random(2)
        lookups: list[float] = []
        for rid in rng.sample(ids, min(args.runs, len(ids))):
            lat, rows = timed(g, LOOKUP.replace("{id}", rid), 1)
            assert rows > 5, rid
            lookups += lat
        multi, multi_rows = timed(g, MULTI, args.runs)
        count_lat, _ = timed(g, MULTI_COUNT, 3)
        counted = g.query(MULTI_COUNT, timeout_s=600).result
        matching = int(counted.bindings[0][counted.vars[0]])
        group, group_rows = timed(g, GROUP, max(args.runs // 5, 3))
        print(f"\n{args.n:,} synthetic Hub records (1 in {args.derive_every} derived by the real code); "
              f"{figures.get('quads', 0):,} quads in the store"
              + (f" ({figures['own_per_record']:.1f} of its own per record)" if "own_per_record" in figures else ""))
        if "load_s" in figures:
            print(f"build: prepare (normalize, derive, RDF) {figures['prepare_s']:.0f} s, store load "
                  f"{figures['load_s']:.0f} s ({args.load_batch:,} records per bulk load), "
                  f"optimize {figures['optimize_s']:.0f} s; on disk "
                  f"{figures['disk_mb']:,.0f} MB; peak RSS {rss_mb():,.0f} MB")
        else:
            print(f"on disk {figures['disk_mb']:,.0f} MB")
        print("\n| query | runs | rows | p50 ms | p95 ms | max ms |")
        print("| --- | --- | --- | --- | --- | --- |")
        for name, lat, rows in (("lookup by identifier (all its triples)", lookups, "10+"),
                                ("task + native/verified ORT ∋ 1.16 + accuracy ≥ 0.8, LIMIT 20", multi, multi_rows),
                                ("its matches counted (selectivity)", count_lat, 1),
                                ("GROUP BY task", group, group_rows)):
            print(f"| {name} | {len(lat)} | {rows} | {pct(lat, .5):.1f} | {pct(lat, .95):.1f} | {max(lat):.1f} |")
        total = g.query("SELECT (COUNT(*) AS ?n) WHERE { ?m a fair4ml:MLModel }").result
        n_models = int(total.bindings[0][total.vars[0]])
        if args.served:
            sample = rng.sample(ids, min(args.runs, len(ids)))
            served = served_timings(g, path, [
                ("lookup by identifier (all its triples)", [LOOKUP.replace("{id}", rid) for rid in sample]),
                ("task + native/verified ORT ∋ 1.16 + accuracy ≥ 0.8, LIMIT 20", [MULTI] * args.runs),
                ("GROUP BY task", [GROUP] * max(args.runs // 5, 3))])
            print("\nthrough the endpoint's worker pool (SparqlPool over a snapshot, default settings):")
            print("\n| query | runs | rows | p50 ms | p95 ms | max ms |")
            print("| --- | --- | --- | --- | --- | --- |")
            for name, lat, rows in served:
                print(f"| {name} | {len(lat)} | {rows} | {pct(lat, .5):.1f} | {pct(lat, .95):.1f} | {max(lat):.1f} |")
        print(f"\nselectivity: {matching:,} of {n_models:,} records match the multi-constraint query "
              f"({matching / max(n_models, 1):.2%})")
        print(f"({os.cpu_count()} CPUs, load average {load_avg} before the queries, "
              f"{' / '.join(f'{x:.2f}' for x in os.getloadavg())} after)")
        del g
        gc.collect()
        if args.rdflib:
            print(bench_rdflib(args.rdflib, args.derive_every, args.rdflib_limit_s))
            print(f"(load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())})")
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
