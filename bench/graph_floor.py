"""The RDF store's own floor for Hub records: what the graph projection writes for n synthetic Hub
payloads (bench/hf_mapping.py's corpus) — each record's own triples into the default graph, the shared
nodes (profiles, cells, agents) once each in graphs of their own — prepared first, then bulk-loaded
into an on-disk Oxigraph store in batches of 1,000 records with nothing else running. No harvest,
catalog or search index can make the graph phase faster than this.

    .venv/bin/python bench/graph_floor.py            # 100k records
    .venv/bin/python bench/graph_floor.py -n 20000
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

import pyoxigraph as ox

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hf_mapping import PreparedSource, synthetic_payloads  # noqa: E402

from modelport.harvesters.base import SourceRecord  # noqa: E402
from modelport.index.graph import _nquads  # noqa: E402
from modelport.schema.compat import enrich_record  # noqa: E402
from modelport.schema.identity import record_iri  # noqa: E402
from modelport.schema.kb import get_kb  # noqa: E402
from modelport.schema.rdf import record_rdf  # noqa: E402

BATCH = 1000  # records per bulk load, as Pipeline.project_graph


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=100_000, help="records (default 100000)")
    n = ap.parse_args().n
    payloads = synthetic_payloads(n)
    source, kb = PreparedSource(payloads, BATCH), get_kb()
    batches: list[bytes] = []
    shared: dict[str, str] = {}
    quads = 0
    for i in range(0, n, BATCH):
        items = []
        for p in payloads[i:i + BATCH]:
            r = source.normalize(SourceRecord(local_id=p["id"], payload=p))
            r.iri = record_iri("http://bench", r.id)
            enrich_record(r, kb)
            r.with_hash()
            rdf = record_rdf(r, "http://bench")
            shared.update(rdf.shared)
            items.append((r.iri, rdf.own))
            quads += rdf.own.count("\n")
        batches.append("".join(nt for _, nt in items).encode())
    del payloads
    gc.collect()
    shared_quads = sum(nt.count("\n") for nt in shared.values())
    print(f"{n:,} records prepared: {quads / n:.1f} triples of their own each, {len(shared):,} shared graphs "
          f"({shared_quads:,} quads, {shared_quads / n:.1f} per record)", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="graph-floor-") as tmp:
        store = ox.Store(tmp)
        t, c = time.perf_counter(), time.process_time()
        store.bulk_load(_nquads(list(shared.items())), format=ox.RdfFormat.N_QUADS)
        for b in batches:
            store.bulk_load(b, format=ox.RdfFormat.N_TRIPLES)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        del store
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print("| records | quads per record (shared included) | seconds | records/s | quads/s | CPU µs per quad |")
    print("| --- | --- | --- | --- | --- | --- |")
    total = quads + shared_quads
    print(f"| {n:,} | {total / n:.1f} | {wall:.1f} | {n / wall:,.0f} | {total / wall:,.0f} | {cpu / total * 1e6:.1f} |")
    print(f"({os.cpu_count()} CPUs, load average {load}; CPU time counts Oxigraph's loader threads)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
