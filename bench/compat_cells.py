"""Cells per record and derivation+facts cost on the 360-record search fixture corpus, with the
full KB and with the KB minus serving.ttl / code-migration.ttl (the facts issue 18 added)."""
import gzip, os, shutil, statistics, sys, tempfile, time
from pathlib import Path
from modelport.schema.record import ModelRecord
from modelport.schema.compat import derive_compatibility, _CORE_CACHE
from modelport.schema.kb import load_kb, ontology_dir
from modelport.index.facts import record_facts
from modelport.index.vocab import get_vocab
root = Path(sys.argv[1])
recs = [ModelRecord.model_validate_json(l) for l in gzip.open(root / "tests/fixtures/search/corpus.jsonl.gz", "rt")]
vocab = get_vocab()
tmp = Path(tempfile.mkdtemp()); shutil.copytree(ontology_dir() / "kb", tmp / "kb")
for f in ("serving.ttl", "code-migration.ttl"):
    (tmp / "kb" / f).unlink()
for name, kb in (("KB without serving/code-migration", load_kb(tmp / "kb")), ("full KB", load_kb())):
    def run(cold=True):
        if cold:
            _CORE_CACHE.clear()
        t = time.perf_counter(); n = tok = 0
        for r in recs:
            r.compatibility = []
            r.compatibility = derive_compatibility(r, kb)
            n += len(r.compatibility)
            tok += len(record_facts(r, vocab).tokens)
        return time.perf_counter() - t, n, tok
    res = [run() for _ in range(5)]
    warm = sorted(run(False)[0] for _ in range(5))
    ts = sorted(x[0] for x in res)
    print(f"{name}: cold derive+facts for {len(recs)} records: p50 {statistics.median(ts)*1000:.0f} ms "
          f"(min {ts[0]*1000:.0f}); memoized p50 {statistics.median(warm)*1000:.0f} ms; entries/record {res[0][1]/len(recs):.1f}; facts tokens/record "
          f"{res[0][2]/len(recs):.1f}; load avg {os.getloadavg()[0]:.1f}")
