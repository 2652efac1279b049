"""The Elasticsearch backend without a server: its documents fit its mapping, its queries only name
mapped fields and select what the constraint oracle of test_search_constraints.py selects (read
with the documented semantics of the few query clauses it emits), and its requests go out pinned to
the wire format both 8.x and 9.x servers accept, with failures named clearly and without credentials.
The same backend against the real node the suite starts is tested by test_search_constraints.py (the
contract) and, at the end of this file, for what only an Elasticsearch index has: the alias switched
atomically by a rebuild, bulk requests retried after a 429, an index that is not ModelPort's or whose
mapping conflicts refused with a clear error."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from test_search_constraints import CASES, KB, RECORDS, expected, runs

from modelport.index.elasticsearch_backend import (
    ElasticsearchBackend,
    ElasticsearchBackendError,
    current_versions,
    es_document,
    es_query,
    facet_aggs,
    index_mappings,
    int_bounds,
    unique_index_name,
)
from modelport.index.query_syntax import compile_query
from modelport.index.search import FACET_FIELDS, SearchQuery

DOCS = [es_document(r) for r in RECORDS]


# ------------------------------------------------------------------------------------------------
# Documents and mapping
# ------------------------------------------------------------------------------------------------
_JSON_TYPES = {"keyword": (str,), "text": (str,), "long": (int,), "double": (int, float), "boolean": (bool,)}


def _check(value: Any, spec: dict[str, Any], path: str) -> None:
    if spec.get("type") == "nested":
        assert isinstance(value, list) and all(isinstance(o, dict) for o in value), path
        for obj in value:
            for k, v in obj.items():
                assert k in spec["properties"], f"{path}.{k} is not mapped"
                _check(v, spec["properties"][k], f"{path}.{k}")
        return
    for v in value if isinstance(value, list) else [value]:
        ok = isinstance(v, _JSON_TYPES[spec["type"]]) and not (spec["type"] == "long" and isinstance(v, bool))
        assert ok, f"{path}: {v!r} does not fit a {spec['type']} field"


def test_every_field_of_every_document_is_mapped_with_its_type() -> None:
    # The mapping is strict: a field it lacks would make Elasticsearch refuse the record.
    props = index_mappings()["properties"]
    assert index_mappings()["dynamic"] == "strict"
    for doc in DOCS:
        json.dumps(doc, allow_nan=False)  # what the bulk request sends
        for field, value in doc.items():
            assert field in props, f"{field} is not mapped"
            _check(value, props[field], field)
    seen = {f for d in DOCS for f in d}
    assert {"rt", "metric", "lat", "mem", "params", "size", "compat"} <= seen, "the corpus exercises every fact"


def _fields(q: Any, nested: str = "") -> Iterator[str]:
    """Every field a query clause names."""
    if isinstance(q, list):
        for x in q:
            yield from _fields(x, nested)
        return
    if not isinstance(q, dict):
        return
    for kind, body in q.items():
        if kind in ("term", "terms", "range", "prefix", "match_phrase"):
            yield from body
        elif kind == "nested":
            yield body["path"]
            yield from _fields(body["query"], body["path"])
        elif isinstance(body, dict | list):
            yield from _fields(body, nested)


def _mapped(field: str) -> bool:
    props = index_mappings()["properties"]
    head, _, rest = field.partition(".")
    return head in props and (not rest or rest in props[head].get("properties", {}))


def test_queries_and_facets_only_name_mapped_fields() -> None:
    # A clause on an unmapped field matches nothing instead of failing: a typo would pass silently.
    queries = [es_query(compile_query(q, nl=False)[0]) for q, _ in CASES]
    queries.append(es_query(SearchQuery(text='resnet "image classification"', exclude_text=["gguf"])))
    named = {f for q in queries for f in _fields(q)}
    named |= {a[kind]["field"] for a in facet_aggs(list(FACET_FIELDS)).values() for kind in a}
    assert set(facet_aggs(list(FACET_FIELDS))) == set(FACET_FIELDS)
    assert {"compat", "rt", "rt.lo", "metric.code", "lat.ms", "mem.bytes", "params", "size", "name"} <= named
    assert [f for f in named if not _mapped(f)] == []


# ------------------------------------------------------------------------------------------------
# Constraint queries, read with the documented semantics of the clauses the backend emits
# ------------------------------------------------------------------------------------------------
def _values(doc: dict[str, Any], field: str) -> list[Any]:
    v = doc.get(field)
    return [] if v is None else v if isinstance(v, list) else [v]


def _in_range(v: Any, bounds: dict[str, Any]) -> bool:
    return all({"gte": v >= b, "gt": v > b, "lte": v <= b, "lt": v < b}[k] for k, b in bounds.items())


def matches(q: dict[str, Any], doc: dict[str, Any]) -> bool:
    """Whether a document matches a query, per the Elasticsearch query DSL reference: `term` on a
    keyword is exact equality with any value of the field; `range` holds for some value; `nested`
    holds for some nested object; in `bool`, `should` needs one match when there is no `must` or
    `filter` (and `minimum_should_match` when given). Text clauses are not read here (analysis)."""
    [(kind, body)] = q.items()
    if kind == "match_all":
        return True
    if kind == "match_none":
        return False
    if kind == "bool":
        required = body.get("must", []) + body.get("filter", [])
        should = body.get("should", [])
        msm = body.get("minimum_should_match", 0 if required else 1) if should else 0
        return (all(matches(c, doc) for c in required) and not any(matches(c, doc) for c in body.get("must_not", []))
                and sum(matches(c, doc) for c in should) >= msm)
    if kind == "constant_score":  # a filter that scores a constant (the ranking boosts)
        return matches(body["filter"], doc)
    if kind == "ids":
        return doc["id"] in body["values"]
    if kind == "nested":
        path = body["path"]
        return any(matches(body["query"], {f"{path}.{k}": v for k, v in obj.items()}) for obj in _values(doc, path))
    [(field, arg)] = body.items()
    if kind == "term":
        return (arg["value"] if isinstance(arg, dict) else arg) in _values(doc, field)
    if kind == "terms":
        return bool(set(arg) & set(_values(doc, field)))
    if kind == "prefix":
        return any(str(v).startswith(arg) for v in _values(doc, field))
    if kind == "range":
        return any(_in_range(v, arg) for v in _values(doc, field))
    raise AssertionError(f"the reader does not know {kind!r} clauses")


def selected(q: SearchQuery) -> set[str]:
    body = es_query(q)
    return {d["id"] for d in DOCS if matches(body, d)}


@pytest.mark.parametrize(("q", "pred"), CASES, ids=[c[0] for c in CASES])
def test_constraint_queries_select_the_computed_answer(q: str, pred: Any) -> None:
    assert selected(compile_query(q, nl=False)[0]) == expected(pred)


@pytest.mark.parametrize("runtime", ["onnxruntime", "tensorrt"])
def test_runtime_versions_between_kb_releases_use_the_cell_ranges(runtime: str) -> None:
    # KB releases are answered from tokens; other versions from each cell's nested (lo, hi): the
    # lo and hi of one cell must be matched together, with the range semantics at every level.
    versions = [r.version for r in KB.compat.releases_of(runtime)]
    versions += [v + ".3" for v in versions[::3]] + ["0.0.1", "99.0"]
    ranged = 0
    for v in versions:
        for status in ("convertible", "native"):
            for newer in (False, True):
                q = compile_query(f"runtime:{runtime}@{v}{'+' if newer else ''} status:{status}", nl=False)[0]
                ranged += "nested" in json.dumps(es_query(q))
                assert selected(q) == expected(runs(runtime, v, status, newer)), (v, status, newer)
    assert ranged >= 8


@pytest.mark.parametrize("op", ["<", "<=", ">", ">=", "="])
@pytest.mark.parametrize("value", [0.0, 7.0, 7.5, 1e7, 2.5e9, 1e30])
def test_integer_bounds_compare_like_the_numbers(op: str, value: float) -> None:
    bounds = int_bounds(op, value)
    for n in [0, 6, 7, 8, 9_999_999, 10_000_000, 10_000_001, 2_500_000_000, 10**12]:
        want = {"<": n < value, "<=": n <= value, ">": n > value, ">=": n >= value, "=": n == value}[op]
        got = bounds is not None and (bounds[0] is None or n >= bounds[0]) and (bounds[1] is None or n <= bounds[1])
        assert got == want, (n, op, value)


# ------------------------------------------------------------------------------------------------
# The wire: a stand-in HTTP server that answers like Elasticsearch and records what it was sent
# ------------------------------------------------------------------------------------------------
class _Recorder(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.count_status = 200

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: _Recorder

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        self.server.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
        path = self.path.split("?")[0]
        if self.command == "HEAD":
            status, body = 200, None
        elif path == "/_alias/idx":  # the backend's name is an alias over one index
            status, body = 200, {"idx-0123456789ab": {"aliases": {"idx": {}}}}
        elif path.endswith("/_mapping"):
            status, body = 200, {"idx-0123456789ab": {"mappings": {**index_mappings(),
                                                                   "_meta": {"modelport": current_versions()}}}}
        elif path.endswith("/_count") and self.server.count_status == 200:
            status, body = 200, {"count": 3}
        else:
            status, body = self.server.count_status, {"error": {
                "root_cause": [{"type": "index_closed_exception", "reason": "closed"}],
                "type": "index_closed_exception", "reason": "closed"}, "status": self.server.count_status}
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Type", "application/vnd.elasticsearch+json;compatible-with=8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_HEAD = do_PUT = _answer


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    server = _Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_requests_ask_for_the_8_wire_format_that_8_and_9_servers_accept(recorder: _Recorder) -> None:
    b = ElasticsearchBackend(recorder.url, index_name="idx")
    try:
        assert b.count() == 3 and not b.needs_rebuild
    finally:
        b.close()
    assert [p.split("?")[0] for _, p, _ in recorder.requests] == ["/_alias/idx", "/idx-0123456789ab/_mapping",
                                                                  "/idx/_count"]
    for _, _, headers in recorder.requests:
        assert headers["accept"].endswith("compatible-with=8"), headers["accept"]
        assert "content-type" not in headers or headers["content-type"].endswith("compatible-with=8")


def test_a_server_error_names_the_server_and_what_failed_without_credentials(recorder: _Recorder) -> None:
    recorder.count_status = 400
    url = recorder.url.replace("http://", "http://admin:s3cret@")
    b = ElasticsearchBackend(url, index_name="idx")
    try:
        with pytest.raises(ElasticsearchBackendError) as err:
            b.count()
    finally:
        b.close()
    msg = str(err.value)
    assert recorder.url in msg and "counting records failed" in msg and "HTTP 400" in msg and "closed" in msg
    assert "s3cret" not in msg and "admin" not in msg
    assert recorder.requests[0][2]["authorization"].startswith("Basic ")  # the credentials were used, not shown


def test_an_unreachable_server_is_a_clear_error() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    b = ElasticsearchBackend(f"http://user:pw@127.0.0.1:{port}", index_name="idx", request_timeout_s=2)
    try:
        with pytest.raises(ElasticsearchBackendError, match=rf"Elasticsearch at http://127\.0\.0\.1:{port} .*failed"):
            b.search(SearchQuery(text="resnet"))
    finally:
        b.close()


def test_an_unreachable_server_is_a_503_from_the_api_and_one_line_from_the_cli(tmp_path: Any) -> None:
    import os
    import subprocess
    import sys

    from fastapi.testclient import TestClient

    from modelport.api.app import create_app
    from modelport.settings import Settings

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://user:pw@127.0.0.1:{port}"
    settings = Settings(data_dir=tmp_path / "d", base_iri="http://t", embeddings=False,
                        search_backend="elasticsearch", elasticsearch_url=url)
    with TestClient(create_app(settings)) as client:
        res = client.get("/search", params={"q": "resnet"})
    assert res.status_code == 503, res.text
    assert f"Elasticsearch at http://127.0.0.1:{port}" in res.json()["detail"] and "pw" not in res.text
    env = {**os.environ, "MODELPORT_DATA_DIR": str(tmp_path / "d"), "MODELPORT_SEARCH_BACKEND": "elasticsearch",
           "MODELPORT_ELASTICSEARCH_URL": url, "MODELPORT_EMBEDDINGS": "false"}
    cli = subprocess.run([sys.executable, "-m", "modelport.cli", "search", "resnet"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 1, cli.stderr[-2000:]
    said = cli.stdout + cli.stderr
    assert "Traceback" not in said and f"Elasticsearch at http://127.0.0.1:{port}" in said and "pw" not in said


# ------------------------------------------------------------------------------------------------
# Against the real node (tests/conftest.py: elasticsearch_url)
# ------------------------------------------------------------------------------------------------
def _admin(url: str) -> Any:
    """A plain client for setting up what the backend must meet (pinned to the 8 wire format, as the
    backend's own is, so an 8.x node answers it)."""
    from elasticsearch import Elasticsearch

    from modelport.index.elasticsearch.client import PinnedCompatTransport

    return Elasticsearch(url, transport_class=PinnedCompatTransport)


@pytest.fixture
def live(elasticsearch_url: str) -> Iterator[ElasticsearchBackend]:
    b = ElasticsearchBackend(elasticsearch_url, index_name=unique_index_name(), replicas=0, bulk_backoff_s=0.2)
    yield b
    b.delete_index()
    b.close()


def test_a_rebuild_fills_a_new_index_while_searches_read_the_old_one_then_switches(
        live: ElasticsearchBackend) -> None:
    live.upsert(RECORDS[:40])
    live.commit()
    (old,) = live._concrete()
    old_total = live.search(SearchQuery(text="model", limit=1)).total
    during: list[tuple[int, int]] = []

    def catalog() -> Iterator[Any]:
        for i, r in enumerate(RECORDS):
            if i == 150:  # three batches are already in the new index by now
                during.append((live.count(), live.search(SearchQuery(text="model", limit=1)).total))
            yield r

    assert live.rebuild_from(catalog(), batch=50) == len(RECORDS)
    assert during == [(40, old_total)]
    assert live.count() == len(RECORDS) and live.search(SearchQuery(text="model", limit=1)).total > old_total
    (new,) = live._concrete()
    assert new != old and not live._client.indices.exists(index=old)


def test_a_failed_rebuild_leaves_the_old_index_serving_and_nothing_behind(live: ElasticsearchBackend) -> None:
    live.upsert(RECORDS[:40])
    live.commit()
    (old,) = live._concrete()

    def broken() -> Iterator[Any]:
        yield from RECORDS[:120]
        raise RuntimeError("the catalog went away")

    with pytest.raises(RuntimeError, match="catalog went away"):
        live.rebuild_from(broken(), batch=50)
    assert live._concrete() == [old] and live.count() == 40
    assert sorted(live._client.indices.get(index=f"{live.index_name}-*").body) == [old]


class _Reader:
    """A projection after the search one: after each batch of a reindex, what another process's
    searches on the same alias see (count and total), and the documents of every index of that name."""

    name = "reader"

    def __init__(self, url: str, index: str, fail_at: int | None = None) -> None:
        self.backend = ElasticsearchBackend(url, index_name=index)
        self.admin, self.index, self.fail_at = _admin(url), index, fail_at
        self.armed = False
        self.seen: list[tuple[int, int]] = []
        self.indices: list[dict[str, int]] = []

    def apply(self, live: list[Any], gone: list[str], fresh: Any = frozenset()) -> None:
        if not self.armed:
            return
        if self.fail_at is not None and len(self.seen) == self.fail_at:
            raise RuntimeError("the projection after search failed")
        self.seen.append((self.backend.count(), self.backend.search(SearchQuery(text="model", limit=1)).total))
        self.indices.append({i: int(self.admin.count(index=i)["count"])
                             for i in self.admin.indices.get(index=f"{self.index}-*").body})

    def commit(self) -> None:
        pass

    def clear(self) -> None:
        pass

    def close(self) -> None:
        self.backend.close()
        self.admin.close()


def _es_pipeline(tmp: Any, url: str, index: str, reader: _Reader) -> Any:
    from modelport.pipeline import Pipeline
    from modelport.settings import Settings

    # Every batch committed (refreshed) at once, so the new index holds it searchable before the next.
    p = Pipeline(Settings(data_dir=tmp, base_iri="http://t", embeddings=False, search_backend="elasticsearch",
                          elasticsearch_url=url, elasticsearch_index=index, search_commit_interval_s=0))
    p.extra_projections.append(reader)
    with p.catalog.transaction():
        p.catalog.upsert_many(RECORDS[:40])
    p.project(graph=False)
    with p.catalog.transaction():  # stored since: the reindex brings them in
        p.catalog.upsert_many(RECORDS[40:120])
    reader.armed = True
    return p


def test_reindex_fills_a_new_index_that_searches_see_only_once_complete(tmp_path: Any,
                                                                        elasticsearch_url: str) -> None:
    index = unique_index_name()
    reader = _Reader(elasticsearch_url, index)
    p = _es_pipeline(tmp_path / "d", elasticsearch_url, index, reader)
    try:
        (old,) = p.search._concrete()
        old_total = reader.backend.search(SearchQuery(text="model", limit=1)).total
        assert p.reindex(batch=40) == 120  # what `modelport reindex` runs
        # During each of the three batches searches still read the old index, complete, while the new
        # one beside it held the batches before, searchable (each refreshed at its commit).
        assert reader.seen == [(40, old_total)] * 3
        assert [d[old] for d in reader.indices] == [40, 40, 40]
        assert [sorted(n for i, n in d.items() if i != old) for d in reader.indices] == [[0], [40], [80]]
        (new,) = p.search._concrete()
        assert new != old and not reader.admin.indices.exists(index=old)
        assert reader.backend.count() == 120 and p.catalog.dirty_count() == 0
        assert reader.backend.search(SearchQuery(text="model", limit=1)).total > old_total
    finally:
        p.search.delete_index()
        p.close()
        reader.close()


def test_a_failed_reindex_leaves_the_old_index_serving_and_its_records_to_catch_up(
        tmp_path: Any, elasticsearch_url: str) -> None:
    index = unique_index_name()
    reader = _Reader(elasticsearch_url, index, fail_at=1)
    p = _es_pipeline(tmp_path / "d", elasticsearch_url, index, reader)
    try:
        (old,) = p.search._concrete()
        with pytest.raises(Exception, match="projection after search failed"):
            p.reindex(batch=40)
        assert p.search._concrete() == [old] and reader.backend.count() == 40
        assert sorted(reader.admin.indices.get(index=f"{index}-*").body) == [old]  # nothing half-built left
        assert p.catalog.dirty_count() == 120  # nothing lost: the next drain brings the old index up to date
        reader.fail_at = None
        p.project(graph=False)
        assert p.search._concrete() == [old] and reader.backend.count() == 120 and p.catalog.dirty_count() == 0
    finally:
        p.search.delete_index()
        p.close()
        reader.close()


def test_bulk_requests_refused_with_429_are_retried_with_backoff(live: ElasticsearchBackend,
                                                                  elasticsearch_url: str) -> None:
    live.count()  # the index exists before requests start being refused
    admin = _admin(elasticsearch_url)
    limit = "network.breaker.inflight_requests.limit"

    def trips() -> int:
        stats = admin.nodes.stats(metric="breaker").body
        return sum(int(n["breakers"]["inflight_requests"]["tripped"]) for n in stats["nodes"].values())

    before = trips()
    # Every bulk body (kilobytes) now trips the in-flight requests breaker: a 429 for the request.
    admin.cluster.put_settings(persistent={limit: "200b"})
    lift = threading.Timer(2.0, lambda: admin.cluster.put_settings(persistent={limit: None}))
    lift.start()
    try:
        live.upsert(RECORDS[:60])
        refused = trips() - before
    finally:
        lift.join()
        admin.cluster.put_settings(persistent={limit: None})
        admin.close()
    live.commit()
    assert live.count() == 60
    assert refused > 0  # the requests really were refused, and every record still arrived


def test_an_index_whose_mapping_conflicts_is_refused_with_the_fields_named(elasticsearch_url: str) -> None:
    from modelport.index.elasticsearch_backend import index_settings

    name = unique_index_name()
    mappings = index_mappings()
    mappings["properties"]["params"] = {"type": "keyword"}  # e.g. made by hand or by an index template
    admin = _admin(elasticsearch_url)
    admin.indices.create(index=f"{name}-000000000000", settings=index_settings(1, 0), mappings=mappings,
                         aliases={name: {}})
    b = ElasticsearchBackend(elasticsearch_url, index_name=name)
    try:
        with pytest.raises(ElasticsearchBackendError, match="field 'params' is keyword in the index, long in this"):
            b.search(SearchQuery(text="resnet"))
        assert admin.indices.exists(index=f"{name}-000000000000")  # refused, never deleted
    finally:
        b.close()
        admin.indices.delete(index=f"{name}-000000000000")
        admin.close()


def test_an_alias_over_an_index_modelport_did_not_create_is_refused(elasticsearch_url: str) -> None:
    name = unique_index_name()
    admin = _admin(elasticsearch_url)
    admin.indices.create(index=f"{name}-theirs", mappings={"properties": {"title": {"type": "text"}}},
                         aliases={name: {}})
    b = ElasticsearchBackend(elasticsearch_url, index_name=name)
    try:
        with pytest.raises(ElasticsearchBackendError, match="not created by ModelPort"):
            b.upsert(RECORDS[:1])
        assert admin.indices.exists(index=f"{name}-theirs")
    finally:
        b.close()
        admin.indices.delete(index=f"{name}-theirs")
        admin.close()


# ------------------------------------------------------------------------------------------------
# modelport serve on Elasticsearch
# ------------------------------------------------------------------------------------------------
def _app_over_corpus(tmp: Any, **settings: Any) -> Any:
    from fastapi.testclient import TestClient

    from modelport.api.app import create_app
    from modelport.pipeline import Pipeline
    from modelport.settings import Settings

    # BM25 ranking (embeddings off) so both backends' answers can be compared exactly.
    s = Settings(data_dir=tmp, base_iri="http://search.test", embeddings=False, **settings)
    p = Pipeline(s)
    with p.catalog.transaction():
        p.catalog.upsert_many(RECORDS)
    # Projected from the catalog, as a harvest or `modelport reindex` does: each record derived under
    # the current KB, both outboxes drained. (The fixture's records carry compatibility cells derived
    # under an older KB. Written into the index directly, they left the catalog's outbox full, and the
    # server's drain at start replaced them with the current derivation, adding e.g. the Triton and
    # KServe runtimes, at a moment of its own: each backend was compared before or after its drain by
    # chance, and the drains' CPU pushed facets past their time limit.)
    p.project()
    p.close()
    return TestClient(create_app(s))


def _counted(client: Any, params: dict[str, Any], tries: int = 3) -> dict[str, Any]:
    """The search's answer with every facet counted. Facets have a time limit (0.5 s) and say when
    they ran out of it, which a loaded machine may make them do; two such answers would compare
    equal without counting anything, so the request is repeated (a few times) until they count."""
    for _ in range(tries):
        res = client.get("/search", params=params)
        assert res.status_code == 200, (params, res.text)
        body: dict[str, Any] = res.json()
        if body["facets"] and not any(f["timed_out"] for f in body["facets"].values()):
            return body
    raise AssertionError(f"facets of {params} ran out of time {tries} times: {body['facets']}")


def _by_value(hits: list[dict[str, Any]], sort: str) -> list[tuple[float, frozenset[str]]]:
    by_id = {r.id: r for r in RECORDS}
    out: list[tuple[float, frozenset[str]]] = []
    for h in hits:
        value = float(getattr(by_id[h["id"]].popularity, sort) or 0)
        if out and out[-1][0] == value:
            out[-1] = (value, out[-1][1] | {h["id"]})
        else:
            out.append((value, frozenset({h["id"]})))
    return out


def test_serve_on_elasticsearch_reports_the_cluster_and_answers_like_the_embedded_backend(
        tmp_path: Any, elasticsearch_url: str) -> None:
    index = unique_index_name()
    embedded = _app_over_corpus(tmp_path / "embedded")
    es = _app_over_corpus(tmp_path / "es", search_backend="elasticsearch", elasticsearch_url=elasticsearch_url,
                          elasticsearch_index=index)
    try:
        with embedded, es:
            health = es.get("/health").json()
            assert health["status"] == "ok" and health["records"] == len(RECORDS)
            # What a user relies on to compare answers: both indexes hold what the catalog holds.
            assert health["pending_projection"] == embedded.get("/health").json()["pending_projection"] == 0
            search = health["search"]
            assert search["backend"] == "elasticsearch" and search["cluster_status"] in ("green", "yellow")
            assert search["documents"] == len(RECORDS) and search["index"] == index
            assert "search" not in embedded.get("/health").json()
            for params in ({"q": "runtime:onnxruntime@1.14 license:apache-2.0", "sort": "downloads"},
                           {"q": "task:image-classification -format:onnx", "sort": "likes", "limit": 50},
                           {"q": "params:<100M", "sort": "downloads", "facets": "task,license,runtime"},
                           {"q": "classification", "sort": "downloads"}):
                ja, jb = _counted(embedded, params), _counted(es, params)
                assert ja["total"] == jb["total"] > 0, params
                # The same order; records with equal values may come in either order (Tantivy breaks
                # ties by insertion, Elasticsearch by id), so compare the values and the ids per value.
                # (the last group may be cut by the page's end at a different record).
                assert _by_value(ja["hits"], params["sort"])[:-1] == _by_value(jb["hits"], params["sort"])[:-1]
                assert ja["facets"] == jb["facets"], params
            page_a, page_b = (c.get("/", params={"q": "classification"}) for c in (embedded, es))
            assert page_a.status_code == page_b.status_code == 200
            first = embedded.get("/search", params={"q": "classification"}).json()["hits"][0]["name"]
            assert first in page_a.text and first in page_b.text
    finally:
        b = ElasticsearchBackend(elasticsearch_url, index_name=index)
        b.delete_index()
        b.close()


def test_health_says_when_the_cluster_does_not_answer(tmp_path: Any) -> None:
    from fastapi.testclient import TestClient

    from modelport.api.app import create_app
    from modelport.settings import Settings

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(data_dir=tmp_path / "d", base_iri="http://t", embeddings=False,
                        search_backend="elasticsearch", elasticsearch_url=f"http://127.0.0.1:{port}")
    with TestClient(create_app(settings)) as client:
        res = client.get("/health")
    assert res.status_code == 200
    body = res.json()
    assert body["status"] == "degraded" and body["search"]["status"] == "unavailable"
    assert f"127.0.0.1:{port}" in body["search"]["error"]


def test_hybrid_in_the_cluster_ranks_by_knn_within_the_constraints(live: ElasticsearchBackend, tmp_path: Any) -> None:
    import numpy as np

    from modelport.index.elasticsearch.hybrid import ElasticsearchHybrid
    from modelport.index.embeddings import CachedEmbedder, EmbeddingCache, load_embedder

    embedder = CachedEmbedder(load_embedder(), EmbeddingCache(tmp_path / "cache.sqlite"))
    live.embedder = embedder
    corpus = RECORDS[:120]
    live.upsert(corpus)
    live.commit()
    assert live.vector_count() == len(corpus)
    allowed = [r for r in corpus if "image-classification" in r.tasks]
    constraint = SearchQuery(filters={"task": ["image-classification"]})
    # kNN in the cluster: the exact nearest records among those the filter allows (so few records
    # that HNSW visits them all), with their cosines.
    qvec = embedder.embedder.embed_query("classify photos of animals")
    vecs, _ = embedder.embed_records(allowed)
    cos = vecs @ qvec
    want = [allowed[i].id for i in np.argsort(-cos)[:5]]
    got = live.knn(qvec, es_query(constraint), 5)
    assert [rid for rid, _ in got] == want
    assert [s for _, s in got] == pytest.approx(sorted(cos, reverse=True)[:5], abs=0.02)  # int8-quantized
    searcher = ElasticsearchHybrid(live, embedder)
    for mode in ("hybrid", "vector"):
        res = searcher.search(constraint.model_copy(update={"text": "classify photos of animals", "limit": 10}),
                              mode=mode)  # type: ignore[arg-type]
        assert res.hits and {h.id for h in res.hits} <= {r.id for r in allowed}, mode
        assert not res.notices, res.notices
