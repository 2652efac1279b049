"""Full dumps of the catalog for other catalogs and crawlers: every live record as RDF (N-Quads,
gzip: each record in its named graph, shared derived nodes once each, plus the ontology and KB) and
as JSON lines (gzip: the record as `GET /models/{id}` gives it). Reads the catalog only, so it can run
beside `modelport serve`; files are written aside and renamed into place, so a download never sees
half a dump. The server offers what is in `<data dir>/exports` at /downloads."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import pyoxigraph as ox

from modelport.index.catalog import Catalog
from modelport.schema.identity import record_iri
from modelport.schema.kb import get_kb, ontology_dir
from modelport.schema.rdf import KB_GRAPH, record_rdf
from modelport.settings import Settings

ExportFormat = Literal["nquads", "jsonl"]
FILES: dict[str, str] = {"nquads": "modelport.nq.gz", "jsonl": "modelport.jsonl.gz"}
FORMATS: dict[str, ExportFormat] = {"nquads": "nquads", "jsonl": "jsonl"}  # a name given → the format
MANIFEST = "manifest.json"
MEDIA = {"nquads": "application/n-quads", "jsonl": "application/x-ndjson"}


def exports_dir(settings: Settings) -> Path:
    return settings.data_dir / "exports"


@dataclass
class ExportReport:
    out_dir: Path
    records: int = 0
    files: dict[str, dict[str, object]] = field(default_factory=dict)


class _Sink:
    """A gzip file written under a temporary name, hashed as it goes, renamed into place on close."""

    def __init__(self, path: Path) -> None:
        self.path, self.tmp = path, path.with_name(f".{path.name}.part")
        self.raw = open(self.tmp, "wb")  # noqa: SIM115 — closed in finish/abort
        self.gz = gzip.GzipFile(fileobj=self.raw, mode="wb", compresslevel=6, mtime=0)
        self.lines = 0

    def write(self, data: bytes, lines: int) -> None:
        self.gz.write(data)
        self.lines += lines

    def finish(self) -> dict[str, object]:
        self.gz.close()
        self.raw.close()
        digest = hashlib.sha256()
        with open(self.tmp, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        os.replace(self.tmp, self.path)
        return {"bytes": self.path.stat().st_size, "sha256": digest.hexdigest(), "lines": self.lines}

    def abort(self) -> None:
        self.gz.close()
        self.raw.close()
        self.tmp.unlink(missing_ok=True)


def _kb_quads() -> bytes:
    """The ontology and knowledge base, in the graph SPARQL sees them in."""
    g = ox.NamedNode(KB_GRAPH)
    files = [ontology_dir() / "modelport.ttl", *sorted((ontology_dir() / "kb").glob("*.ttl"))]
    quads = [ox.Quad(t.subject, t.predicate, t.object, g)
             for f in files for t in ox.parse(path=str(f), format=ox.RdfFormat.TURTLE)]
    data = ox.serialize(quads, format=ox.RdfFormat.N_QUADS)
    assert data is not None  # pyoxigraph returns None only when given an output to write to
    return data


def export(settings: Settings, out_dir: Path | None = None,
           formats: tuple[ExportFormat, ...] = ("nquads", "jsonl"),
           progress: Callable[[int], None] | None = None) -> ExportReport:
    out = out_dir or exports_dir(settings)
    out.mkdir(parents=True, exist_ok=True)
    report = ExportReport(out)
    sinks = {f: _Sink(out / FILES[f]) for f in formats}
    catalog = Catalog(settings.catalog_path)
    base = settings.base_iri
    seen_shared: set[str] = set()
    try:
        if "nquads" in sinks:
            kb = _kb_quads()
            sinks["nquads"].write(kb, kb.count(b"\n"))
        for rec in catalog.iter_records():
            report.records += 1
            if "nquads" in sinks:
                rdf = record_rdf(rec, base)
                iri = record_iri(base, rec.id)
                parts = [rdf.own.replace(" .\n", f" <{iri}> .\n")]
                for node, nt in rdf.shared.items():
                    if node not in seen_shared:  # a shared node lives in a graph of its own IRI, once
                        seen_shared.add(node)
                        parts.append(nt.replace(" .\n", f" <{node}> .\n"))
                data = "".join(parts).encode()
                sinks["nquads"].write(data, data.count(b"\n"))
            if "jsonl" in sinks:
                sinks["jsonl"].write(rec.model_dump_json().encode() + b"\n", 1)
            if progress and report.records % 1000 == 0:
                progress(report.records)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        for f, sink in sinks.items():
            report.files[FILES[f]] = {"format": f, "media_type": MEDIA[f], "encoding": "gzip",
                                      "records": report.records, "generated_at": stamp, **sink.finish()}
    except BaseException:
        for sink in sinks.values():
            sink.abort()
        raise
    finally:
        catalog.close()
    manifest_path = out / MANIFEST
    old = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest = {"generated_at": datetime.now(UTC).isoformat(timespec="seconds"), "records": report.records,
                "base_iri": base, "kb_version": get_kb().version,
                "files": {**{k: v for k, v in old.get("files", {}).items() if (out / k).exists()}, **report.files}}
    tmp = manifest_path.with_name(".manifest.json.part")
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, manifest_path)
    return report


def read_manifest(settings: Settings) -> dict[str, object] | None:
    path = exports_dir(settings) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None
