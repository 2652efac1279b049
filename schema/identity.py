"""Record identity: ids are `<source>:<source-local id>`, IRIs `<base>/model/<source>/<escaped id>`."""

from __future__ import annotations

from urllib.parse import quote, unquote

# Where record IRIs live unless `base_iri` is configured: the local server's own address.
DEFAULT_BASE_IRI = "http://127.0.0.1:8000"


def record_id(source: str, local_id: str) -> str:
    return f"{source}:{local_id}"


def split_id(rid: str) -> tuple[str, str]:
    source, sep, local = rid.partition(":")
    if not sep or not source or not local:
        raise ValueError(f"not a record id (expected '<source>:<local id>'): {rid!r}")
    return source, local


def record_iri(base: str, rid: str) -> str:
    source, local = split_id(rid)
    # Slashes stay readable (HF ids are owner/name); everything else that is not IRI-safe is escaped.
    return f"{base.rstrip('/')}/model/{quote(source, safe='')}/{quote(local, safe='/@')}"


def iri_to_id(base: str, iri: str) -> str | None:
    prefix = f"{base.rstrip('/')}/model/"
    if not iri.startswith(prefix):
        return None
    source, _, local = iri[len(prefix):].partition("/")
    return record_id(unquote(source), unquote(local)) if local else None
