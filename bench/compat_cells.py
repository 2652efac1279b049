"""Matrix entries per record and the cost of deriving them plus their search facts, on the
360-record search fixture corpus, with the full KB and with the KB minus `serving.ttl` and
`code-migration.ttl` (what issue 18 added). Usage: `python bench/compat_cells.py` from the repo root."""

from __future__ import annotations

import gzip
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from modelport.index.facts import record_facts
from modelport.index.vocab import get_vocab
from modelport.schema.compat import _CORE_CACHE, derive_compatibility
from modelport.schema.kb import KnowledgeBase, load_kb, ontology_dir
from modelport.schema.record import ModelRecord

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "search" / "corpus.jsonl.gz"


def run(recs: list[ModelRecord], kb: KnowledgeBase, *, cold: bool) -> tuple[float, int, int]:
    if cold:
        _CORE_CACHE.clear()
    vocab = get_vocab()
    t0 = time.perf_counter()
    entries = tokens = 0
    for r in recs:
        r.compatibility = []
        r.compatibility = derive_compatibility(r, kb)
        entries += len(r.compatibility)
        tokens += len(record_facts(r, vocab).tokens)
    return time.perf_counter() - t0, entries, tokens


def main() -> None:
    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        recs = [ModelRecord.model_validate_json(line) for line in f]
    tmp = Path(tempfile.mkdtemp())
    shutil.copytree(ontology_dir() / "kb", tmp / "kb")
    for name in ("serving.ttl", "code-migration.ttl"):
        (tmp / "kb" / name).unlink()
    print(f"uptime load average: {os.getloadavg()}")
    print("| KB | cold p50 / min (ms) | memoized p50 (ms) | entries/record | facts tokens/record |")
    for label, kb in (("without serving/code-migration", load_kb(tmp / "kb")), ("full KB", load_kb())):
        cold = [run(recs, kb, cold=True) for _ in range(5)]
        warm = [run(recs, kb, cold=False)[0] for _ in range(5)]
        times = sorted(c[0] for c in cold)
        print(f"| {label} | {statistics.median(times) * 1e3:.0f} / {times[0] * 1e3:.0f} | "
              f"{statistics.median(warm) * 1e3:.0f} | {cold[0][1] / len(recs):.1f} | {cold[0][2] / len(recs):.1f} |")
    print(f"uptime load average: {os.getloadavg()}")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
