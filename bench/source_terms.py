"""How many names the KB does not know the harvesters now keep as source terms, and whether each is
found by its filter: the Hub fixture corpus through the real Hub mapping, the TF Hub fixture docs
through a real Scrapy crawl (file://), both indexed in the embedded backend.

The issue's figures (138 of 1,200 `library_name` values on 1,981 real Hub records, 17 of 1,997 TF Hub
task values on 2,730 documents) came from real samples that are not in this repository; this measures
the fixture corpora the tests use, which carry real published metadata.

    .venv/bin/python bench/source_terms.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from modelport.harvesters.base import SourceRecord
from modelport.harvesters.huggingface import HuggingFaceSource
from modelport.harvesters.tfhub import TFHubSource
from modelport.index.embedded import TantivyBackend
from modelport.index.query_syntax import compile_query
from modelport.pipeline import Pipeline
from modelport.schema.record import ModelRecord
from modelport.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "hf"))
from fake_hub import load_corpus  # noqa: E402


def hub_records() -> list[ModelRecord]:
    src = HuggingFaceSource("huggingface")
    return [src.normalize(SourceRecord(local_id=m["id"], payload=m)) for m in load_corpus()["models"]]


def tfhub_records(tmp: Path) -> list[ModelRecord]:
    settings = Settings(data_dir=tmp / "data", base_iri="http://bench", embeddings=False)
    p = Pipeline(settings)
    try:
        p.harvest(TFHubSource((ROOT / "tests" / "fixtures" / "tfhub" / "docs").as_uri(), name="tfhub",
                              cache_dir=tmp / "cache",
                              crawl_options={"autothrottle_start_delay": 0.0}), mode="full", project_graph=False)
        return list(p.catalog.iter_records(source="tfhub"))
    finally:
        p.close()


def measure(name: str, records: list[ModelRecord], tmp: Path) -> list[str]:
    idx = TantivyBackend(tmp / f"idx-{name}")
    idx.upsert(records)
    idx.commit()
    rows = []
    for vocabulary, field in (("library", "framework"), ("task", "task")):
        named = Counter(t.key for r in records for t in r.source_terms_of(vocabulary))
        kb_values = sum(len(r.frameworks if vocabulary == "library" else r.tasks) for r in records)
        found = 0
        t0 = time.perf_counter()
        for key, n in named.items():
            q, _ = compile_query(f'{field}:"{key}"', nl=False)
            hits = idx.search(q.model_copy(update={"limit": 100})).total
            found += hits == n
        ms = (time.perf_counter() - t0) * 1000 / max(len(named), 1)
        rows.append(f"| {name} | {len(records)} | {vocabulary} | {kb_values} | {sum(named.values())} | {len(named)} | "
                    f"{found}/{len(named)} | {ms:.1f} | {', '.join(k for k, _ in named.most_common(6))} |")
    idx.close()
    return rows


def main() -> None:
    print(f"uptime: {os.popen('uptime').read().strip()}")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rows = measure("hub-fixture", hub_records(), tmp) + measure("tfhub-fixture", tfhub_records(tmp), tmp)
    print("| corpus | records | vocabulary | KB values | source-term values | distinct | found by filter "
          "(hits = records naming it) | ms/filter | most named |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
