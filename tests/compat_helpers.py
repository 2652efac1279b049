"""Record builders shared by the compatibility tests (tests/test_compat_*.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from modelport.schema.record import Artifact, ModelRecord, Provenance, Requirement

MB = 1 << 20
GB = 1 << 30


def rec(rid: str = "x", **kw: Any) -> ModelRecord:
    return ModelRecord(
        id=f"test:{rid}", iri=f"http://test/model/test/{rid}", source="test", source_kind="test", local_id=rid,
        name=rid, provenance=Provenance(harvested_at=datetime(2026, 1, 1, tzinfo=UTC), harvester="test",
                                        harvester_version="0"), **kw)


def art(path: str, fmt: str, size: int | None = None, **details: Any) -> Artifact:
    return Artifact(path=path, format=fmt, size_bytes=size, details=details)


def pin(name: str, spec: str) -> Requirement:
    return Requirement(name=name, specifier=spec, source_file="requirements.txt")
