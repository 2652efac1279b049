"""The catalog: normalized records in SQLite (WAL), the source of truth every projection is rebuilt from.

Besides the records it keeps first/last-seen times, tombstones, per-source harvest checkpoints and the
job log. Two flags are the outboxes of the projections, set whenever a record's visible content
changes or it is tombstoned: `dirty` is cleared when the search index (and vectors) caught up,
`graph_dirty` when the RDF graph did. The graph has its own because it is written later and slower
(Oxigraph's on-disk writes, ~130k quads/s here): a harvest makes records searchable first, and the
graph catches up after it. Every such change also bumps the record's `rev`; a projection clears a
flag only for the revision it projected, so a change that lands while a batch is being projected
(a verification result, which leaves the content hash as it was) keeps the record in the outbox.

Over ~500 lines: `Catalog` is one SQLite schema behind one connection and one transaction rule
(`_Tx`); outboxes, quarantine, verifications and enrichments are columns or tables keyed on the record
rows and written in the same transactions, so a split by table would spread one schema over modules.
"""

from __future__ import annotations

import itertools
import json
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from modelport.errors import ServiceUnavailable
from modelport.schema.record import CompatibilityEntry, ModelRecord

log = logging.getLogger(__name__)

Outbox = Literal["search", "graph"]
_FLAG: dict[str, str] = {"search": "dirty", "graph": "graph_dirty"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id            TEXT PRIMARY KEY,
    source        TEXT NOT NULL,
    local_id      TEXT NOT NULL,
    content_hash  TEXT NOT NULL,
    data          TEXT NOT NULL,
    first_seen    TEXT NOT NULL,
    last_seen     TEXT NOT NULL,
    deleted_at    TEXT,
    deleted_reason TEXT,
    dirty         INTEGER NOT NULL DEFAULT 1,
    graph_dirty   INTEGER NOT NULL DEFAULT 1,
    rev           INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS records_source ON records(source, deleted_at);
CREATE TABLE IF NOT EXISTS checkpoints (
    source     TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    source      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    mode        TEXT,
    params      TEXT NOT NULL DEFAULT '{}',
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    status      TEXT NOT NULL DEFAULT 'running',
    counts      TEXT NOT NULL DEFAULT '{}',
    errors      TEXT NOT NULL DEFAULT '[]',
    unknown_terms TEXT NOT NULL DEFAULT '{}'  -- names the KB does not know, by vocabulary (JobReport)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- Records a projection (or the store) could not take because of their content: out of that outbox
-- until their content changes (upsert) or `reindex` clears the table; shown by the job log.
CREATE TABLE IF NOT EXISTS quarantine (
    record_id      TEXT NOT NULL,
    stage          TEXT NOT NULL,  -- store | search | vectors | graph | <projection name>
    rev            INTEGER,
    reason         TEXT NOT NULL,
    job_id         INTEGER,
    quarantined_at TEXT NOT NULL,
    PRIMARY KEY (record_id, stage)
);
CREATE TABLE IF NOT EXISTS verifications (
    record_id   TEXT PRIMARY KEY,
    entries     TEXT NOT NULL,
    verified_at TEXT NOT NULL,
    artifacts   TEXT  -- schema.compat.artifact_signature of what was checked; NULL: from before it was kept
);
-- What a source's enrichment stage added to a record (harvesters/base.py `Enrichable`), for the
-- revision (`etag`) it was fetched at; `failures` count attempts since, so failing records go last.
CREATE TABLE IF NOT EXISTS enrichments (
    record_id   TEXT PRIMARY KEY,
    source      TEXT NOT NULL,
    etag        TEXT,
    extras      TEXT,
    enriched_at TEXT,
    failures    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT
);
CREATE INDEX IF NOT EXISTS enrichments_source ON enrichments(source);
"""

# Enrichment priority keys → the stored record's JSON path (highest first).
_ENRICH_ORDER: dict[str, str] = {"downloads": "$.popularity.downloads", "likes": "$.popularity.likes",
                                 "modified": "$.modified", "created": "$.created"}
_ENRICH_INDEXED = ("downloads", "modified")  # the default priorities; the others sort when asked for


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class UpsertResult:
    inserted: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    revived: list[str] = field(default_factory=list)
    revs: dict[str, int] = field(default_factory=dict)  # the revision of every record written


@dataclass
class Quarantined:
    record_id: str
    stage: str
    rev: int | None
    reason: str
    job_id: int | None
    quarantined_at: str


class CatalogIOError(ServiceUnavailable):
    """The catalog could not be written or read for a reason outside any record (disk full, read-only
    file system, I/O error): the message names the cause SQLite gave, and nothing committed is lost."""


@dataclass
class StoredRecord:
    record: ModelRecord
    first_seen: str
    last_seen: str
    deleted_at: str | None
    deleted_reason: str | None


@dataclass
class Job:
    id: int
    source: str
    kind: str
    mode: str | None
    params: dict[str, Any]
    started_at: str
    finished_at: str | None
    status: str
    counts: dict[str, int]
    errors: list[dict[str, str]]
    # Tasks and libraries the harvest met that the KB does not know: {vocabulary: {"records": n,
    # "distinct": n, "top": {name: records}}} (modelport/unknown_terms.py), so the KB can grow.
    unknown_terms: dict[str, Any] = field(default_factory=dict)


_JOB_COLUMNS = "id, source, kind, mode, params, started_at, finished_at, status, counts, errors, unknown_terms"


def _job(r: Any) -> Job:
    return Job(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6], r[7], json.loads(r[8]), json.loads(r[9]),
               json.loads(r[10] or "{}"))


class Catalog:
    """Thread-safe access to the catalog database (one connection, serialized by a lock)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        cols = {r[1] for r in self._conn.execute("PRAGMA table_info(records)")}
        if "graph_dirty" not in cols:  # catalogs from before the graph had an outbox of its own
            self._conn.execute("ALTER TABLE records ADD COLUMN graph_dirty INTEGER NOT NULL DEFAULT 0")
            self._conn.execute("UPDATE records SET graph_dirty=dirty")
        if "rev" not in cols:  # catalogs from before outbox flags were cleared by revision
            self._conn.execute("ALTER TABLE records ADD COLUMN rev INTEGER NOT NULL DEFAULT 1")
        if "unknown_terms" not in {r[1] for r in self._conn.execute("PRAGMA table_info(jobs)")}:
            self._conn.execute("ALTER TABLE jobs ADD COLUMN unknown_terms TEXT NOT NULL DEFAULT '{}'")
        if "artifacts" not in {r[1] for r in self._conn.execute("PRAGMA table_info(verifications)")}:
            self._conn.execute("ALTER TABLE verifications ADD COLUMN artifacts TEXT")
        # Outboxes are read in id order (keyset paging): partial indexes on id hold exactly their rows.
        self._conn.execute("DROP INDEX IF EXISTS records_dirty")  # superseded by records_dirty_ids
        self._conn.execute("CREATE INDEX IF NOT EXISTS records_dirty_ids ON records(id) WHERE dirty = 1")
        self._conn.execute("CREATE INDEX IF NOT EXISTS records_graph_dirty_ids ON records(id) WHERE graph_dirty = 1")
        # Enrichment priority orders (enrichment_queue): walked in order instead of sorting the catalog.
        for key, path in _ENRICH_ORDER.items():
            if key in _ENRICH_INDEXED:
                self._conn.execute(f"CREATE INDEX IF NOT EXISTS records_enrich_{key} ON records("
                                   f"source, json_extract(data, '{path}') DESC, id) WHERE deleted_at IS NULL")
        # Live ids in id order, for the sitemap's pages and dumps (an OFFSET walks this small index only).
        self._conn.execute("CREATE INDEX IF NOT EXISTS records_live_ids ON records(id) WHERE deleted_at IS NULL")
        self._lock = threading.RLock()
        self._verified: set[str] | None = None

    def close(self) -> None:
        self._conn.close()

    # -- transactions ----------------------------------------------------------------------
    def transaction(self) -> _Tx:
        return _Tx(self)

    # -- records ---------------------------------------------------------------------------
    def upsert_many(self, records: Iterable[ModelRecord], seen_at: str | None = None,
                    stored: Mapping[str, str] | None = None) -> UpsertResult:
        """Insert or update by id; a record whose content hash is unchanged only gets `last_seen`.
        What is stored is the normalized record (`ModelRecord.stored_json`; `stored` may carry that
        text already made, by id); reads derive the compatibility matrix again (`hydrate`).
        Call inside `transaction()` to commit together with a checkpoint."""
        stored = stored or {}
        seen_at = seen_at or _now()
        res = UpsertResult()
        with self._lock:
            recs = list(records)
            if not recs:
                return res
            existing: dict[str, tuple[str, str | None]] = {}
            ids = [r.id for r in recs]
            for chunk in _chunks(ids, 500):
                q = f"SELECT id, content_hash, deleted_at FROM records WHERE id IN ({','.join('?' * len(chunk))})"
                for rid, h, deleted in self._conn.execute(q, chunk):
                    existing[rid] = (h, deleted)
            touch, write = [], []
            for r in recs:
                h = r.provenance.content_hash or r.compute_hash()
                r.provenance.content_hash = h
                old = existing.get(r.id)
                if old is None:
                    res.inserted.append(r.id)
                    write.append((r.id, r.source, r.local_id, h, stored.get(r.id) or r.stored_json(), seen_at,
                                  seen_at))
                elif old[0] == h and old[1] is None:
                    res.unchanged.append(r.id)
                    touch.append((seen_at, r.id))
                else:
                    (res.revived if old[1] is not None else res.updated).append(r.id)
                    write.append((r.id, r.source, r.local_id, h, stored.get(r.id) or r.stored_json(), seen_at,
                                  seen_at))
                existing[r.id] = (h, None)  # a batch may hold the same id twice: last one wins
            if write:
                self._conn.executemany(
                    """INSERT INTO records (id, source, local_id, content_hash, data, first_seen, last_seen, dirty,
                                           graph_dirty)
                       VALUES (?, ?, ?, ?, ?, ?, ?, 1, 1)
                       ON CONFLICT(id) DO UPDATE SET content_hash=excluded.content_hash, data=excluded.data,
                         last_seen=excluded.last_seen, deleted_at=NULL, deleted_reason=NULL, dirty=1,
                         graph_dirty=1, rev=records.rev+1""",
                    write,
                )
                res.revs = dict(self._revisions([w[0] for w in write]))
                # New content gets another chance in every projection that quarantined the old one.
                self._unquarantine([w[0] for w in write])
            if touch:
                self._conn.executemany("UPDATE records SET last_seen=? WHERE id=?", touch)
        return res

    def get(self, rid: str, include_deleted: bool = False) -> ModelRecord | None:
        stored = self.get_stored(rid)
        if stored is None or (stored.deleted_at and not include_deleted):
            return None
        return stored.record

    def get_stored(self, rid: str) -> StoredRecord | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT data, first_seen, last_seen, deleted_at, deleted_reason FROM records WHERE id=?", (rid,)
            ).fetchone()
        if row is None:
            return None
        rec = self.hydrate([ModelRecord.model_validate_json(row[0])])[0]
        return StoredRecord(rec, row[1], row[2], row[3], row[4])

    def get_many(self, ids: list[str], matrix: Literal["full", "runtimes"] = "full") -> dict[str, ModelRecord]:
        """Live records by id. `matrix="runtimes"` derives only the runtime cells (no hardware fit,
        no latency estimates): enough for a search hit, and ~10x cheaper."""
        out: dict[str, ModelRecord] = {}
        with self._lock:
            for chunk in _chunks(ids, 500):
                q = f"SELECT id, data FROM records WHERE deleted_at IS NULL AND id IN ({','.join('?' * len(chunk))})"
                for rid, data in self._conn.execute(q, chunk):
                    out[rid] = ModelRecord.model_validate_json(data)
        self.hydrate(list(out.values()), matrix)
        return out

    def iter_records(self, source: str | None = None, include_deleted: bool = False,
                     batch: int = 1000) -> Iterator[ModelRecord]:
        where, args = ["1=1"], []
        if source:
            where.append("source=?")
            args.append(source)
        if not include_deleted:
            where.append("deleted_at IS NULL")
        last = ""
        while True:
            with self._lock:
                rows = self._conn.execute(
                    f"SELECT id, data FROM records WHERE {' AND '.join(where)} AND id > ? ORDER BY id LIMIT ?",
                    [*args, last, batch],
                ).fetchall()
            if not rows:
                return
            yield from self.hydrate([ModelRecord.model_validate_json(data) for _rid, data in rows])
            last = rows[-1][0]

    def live_ids_page(self, offset: int, limit: int) -> list[str]:
        """Live record ids in id order, `limit` from `offset` (the sitemap's fixed-size pages)."""
        with self._lock:
            return [r[0] for r in self._conn.execute(
                "SELECT id FROM records INDEXED BY records_live_ids WHERE deleted_at IS NULL ORDER BY id "
                "LIMIT ? OFFSET ?", (limit, offset))]

    def live_ids(self, source: str) -> set[str]:
        with self._lock:
            return {r[0] for r in self._conn.execute(
                "SELECT id FROM records WHERE source=? AND deleted_at IS NULL", (source,))}

    def count(self, source: str | None = None, include_deleted: bool = False) -> int:
        q, args = "SELECT count(*) FROM records WHERE 1=1", []
        if source:
            q += " AND source=?"
            args.append(source)
        if not include_deleted:
            q += " AND deleted_at IS NULL"
        with self._lock:
            return int(self._conn.execute(q, args).fetchone()[0])

    def sources(self) -> dict[str, int]:
        with self._lock:
            return dict(self._conn.execute(
                "SELECT source, count(*) FROM records WHERE deleted_at IS NULL GROUP BY source").fetchall())

    def tombstone(self, ids: Iterable[str], reason: str) -> list[str]:
        """Mark records gone upstream. Their data stays (history, lineage targets) but they leave
        every projection."""
        done = []
        now = _now()
        with self._lock:
            for rid in ids:
                cur = self._conn.execute(
                    "UPDATE records SET deleted_at=?, deleted_reason=?, dirty=1, graph_dirty=1, rev=rev+1 "
                    "WHERE id=? AND deleted_at IS NULL",
                    (now, reason, rid))
                if cur.rowcount:
                    done.append(rid)
            self._unquarantine(done)
        return done

    # -- quarantine ---------------------------------------------------------------------------
    def quarantine(self, rid: str, stage: str, reason: str, rev: int | None = None, job_id: int | None = None,
                   outbox: Outbox | None = None) -> None:
        """Set a record aside for one stage with the reason; its outbox flag (for `rev`) is cleared so
        the projection's drain goes on without it."""
        with self._lock:
            self._conn.execute(
                "INSERT INTO quarantine VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(record_id, stage) DO UPDATE SET "
                "rev=excluded.rev, reason=excluded.reason, job_id=excluded.job_id, "
                "quarantined_at=excluded.quarantined_at", (rid, stage, rev, reason[:2000], job_id, _now()))
            if outbox is not None and rev is not None:
                self._conn.execute(f"UPDATE records SET {_FLAG[outbox]}=0 WHERE id=? AND rev=?", (rid, rev))

    def quarantined(self, source: str | None = None, job_id: int | None = None,
                    limit: int = 1000) -> list[Quarantined]:
        q, args = "SELECT * FROM quarantine WHERE 1=1", []
        if source:  # ids are "<source>:<local id>"
            q += " AND substr(record_id, 1, ?) = ?"
            args += [len(source) + 1, source + ":"]
        if job_id is not None:
            q += " AND job_id = ?"
            args.append(job_id)
        q += " ORDER BY quarantined_at DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            return [Quarantined(*r) for r in self._conn.execute(q, args).fetchall()]

    def quarantine_count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM quarantine").fetchone()[0])

    def clear_quarantine(self) -> int:
        """Give every quarantined record another try (`reindex` marks everything dirty after this)."""
        with self._lock:
            return self._conn.execute("DELETE FROM quarantine").rowcount

    def _unquarantine(self, ids: list[str]) -> None:
        for chunk in _chunks(ids, 500):
            self._conn.execute(f"DELETE FROM quarantine WHERE record_id IN ({','.join('?' * len(chunk))})", chunk)

    # -- projection outboxes ----------------------------------------------------------------
    def dirty(self, limit: int = 1000, outbox: Outbox = "search",
              after: str | None = None) -> list[tuple[str, str | None, int]]:
        """(id, record JSON or None if tombstoned, revision) of records that projection lacks, by id
        (after `after`, to page past records that are being projected)."""
        where = f"{_FLAG[outbox]}=1" + (" AND id > ?" if after is not None else "")
        args = ([after] if after is not None else []) + [limit]
        with self._lock:
            rows = self._conn.execute(
                f"SELECT id, data, deleted_at, rev FROM records WHERE {where} ORDER BY id LIMIT ?", args
            ).fetchall()
        return [(rid, None if deleted else data, h) for rid, data, deleted, h in rows]

    def mark_clean(self, items: list[tuple[str, int]], outbox: Outbox = "search") -> None:
        """Clear the flag of each (id, revision) projected, unless the record changed again since
        (a newer revision stays in the outbox)."""
        with self._lock:
            self._conn.executemany(f"UPDATE records SET {_FLAG[outbox]}=0 WHERE id=? AND rev=?", items)

    def revisions(self, ids: list[str]) -> list[tuple[str, int]]:
        """(id, current revision) of the given records, for `mark_clean`."""
        with self._lock:
            return self._revisions(ids)

    def _revisions(self, ids: list[str]) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        for chunk in _chunks(ids, 500):
            q = f"SELECT id, rev FROM records WHERE id IN ({','.join('?' * len(chunk))})"
            out.extend(self._conn.execute(q, chunk).fetchall())
        return out

    def mark_all_dirty(self, outbox: Outbox | None = None) -> int:
        sets = ", ".join([*(f"{f}=1" for o, f in _FLAG.items() if outbox in (None, o)), "rev=rev+1"])
        with self._lock:
            return self._conn.execute(f"UPDATE records SET {sets}").rowcount

    def dirty_count(self, outbox: Outbox = "search") -> int:
        with self._lock:
            return int(self._conn.execute(f"SELECT count(*) FROM records WHERE {_FLAG[outbox]}=1").fetchone()[0])

    def get_checkpoint(self, source: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute("SELECT state FROM checkpoints WHERE source=?", (source,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_checkpoint(self, source: str, state: dict[str, Any]) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO checkpoints (source, state, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(source) DO UPDATE SET state=excluded.state, updated_at=excluded.updated_at",
                (source, json.dumps(state, default=str), _now()))

    def clear_checkpoint(self, source: str) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM checkpoints WHERE source=?", (source,))

    # -- job log ---------------------------------------------------------------------------
    def start_job(self, source: str, kind: str, mode: str | None, params: dict[str, Any]) -> int:
        with self._lock:
            cur = self._conn.execute(
                "INSERT INTO jobs (source, kind, mode, params, started_at) VALUES (?, ?, ?, ?, ?)",
                (source, kind, mode, json.dumps(params, default=str), _now()))
            return int(cur.lastrowid or 0)

    def finish_job(self, job_id: int, status: str, counts: dict[str, int], errors: list[dict[str, str]],
                   unknown_terms: dict[str, Any] | None = None) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE jobs SET finished_at=?, status=?, counts=?, errors=?, unknown_terms=? WHERE id=?",
                (_now(), status, json.dumps(counts), json.dumps(errors[:1000]), json.dumps(unknown_terms or {}),
                 job_id))

    def jobs(self, source: str | None = None, limit: int = 50) -> list[Job]:
        q, args = f"SELECT {_JOB_COLUMNS} FROM jobs", list[str | int]()
        if source:
            q += " WHERE source=?"
            args.append(source)
        q += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._conn.execute(q, args).fetchall()
        return [_job(r) for r in rows]

    def get_job(self, job_id: int) -> Job | None:
        with self._lock:
            r = self._conn.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id=?", (job_id,)).fetchone()
        return _job(r) if r else None

    # -- verification results (outlive re-harvests: they are merged in at enrichment) ------------
    def set_verifications(self, record_id: str, entries: list[CompatibilityEntry]) -> None:
        """Store verification results for the record's artifacts as they are now (a result is
        applied only while they stay the same); the record goes back into the projections' outbox,
        since its derived matrix changes although what the source says does not."""
        from modelport.schema.compat import artifact_signature

        payload = json.dumps([e.model_dump(mode="json") for e in entries])
        with self._lock:
            row = self._conn.execute("SELECT data FROM records WHERE id=?", (record_id,)).fetchone()
            if row is None:
                raise KeyError(f"no record {record_id!r} in the catalog")
            checked = artifact_signature(ModelRecord.model_validate_json(row[0]).artifacts)
            self._conn.execute(
                "INSERT INTO verifications VALUES (?, ?, ?, ?) ON CONFLICT(record_id) DO UPDATE SET "
                "entries=excluded.entries, verified_at=excluded.verified_at, artifacts=excluded.artifacts",
                (record_id, payload, _now(), checked))
            self._conn.execute("UPDATE records SET dirty=1, graph_dirty=1, rev=rev+1 WHERE id=?", (record_id,))
            if self._verified is not None:
                self._verified.add(record_id)

    def get_verifications(self, record: ModelRecord) -> list[CompatibilityEntry]:
        """The record's verification results, unless its artifacts changed since they were checked."""
        from modelport.schema.compat import artifact_signature

        if not self._has_verifications(record.id):
            return []
        with self._lock:
            row = self._conn.execute("SELECT entries, artifacts FROM verifications WHERE record_id=?",
                                     (record.id,)).fetchone()
        if row is None:
            return []
        if row[1] is not None and row[1] != artifact_signature(record.artifacts):
            log.debug("verification of %s is for other artifacts than it has now: not applied", record.id)
            return []
        return [CompatibilityEntry.model_validate(e) for e in json.loads(row[0])]

    def _has_verifications(self, record_id: str) -> bool:
        # Few records are ever verified: one set lookup spares the harvest a query per record.
        with self._lock:
            if self._verified is None:
                self._verified = {r[0] for r in self._conn.execute("SELECT record_id FROM verifications")}
            return record_id in self._verified

    def hydrate(self, records: list[ModelRecord], matrix: Literal["full", "runtimes"] = "full") -> list[ModelRecord]:
        """Give stored (normalized) records their compatibility matrix and latency estimates under the
        current KB, with their verification results; in place, and returned."""
        from modelport.schema.compat import enrich_record, runtime_cells
        from modelport.schema.kb import get_kb

        kb = get_kb()
        for r in records:
            r.compatibility = self.get_verifications(r)
            if matrix == "full" or r.compatibility:
                enrich_record(r, kb)
            else:
                r.compatibility = runtime_cells(r, kb)
        return records

    # -- enrichment (per-record calls of a source, stored per revision) ---------------------------
    def set_enrichments(self, rows: list[tuple[str, str, str | None, dict[str, Any]]]) -> None:
        """Store (record id, source, etag, extras) as enriched now; call inside `transaction()` to
        commit with the records they produced."""
        now = _now()
        with self._lock:
            self._conn.executemany(
                "INSERT INTO enrichments (record_id, source, etag, extras, enriched_at, failures, last_error) "
                "VALUES (?, ?, ?, ?, ?, 0, NULL) ON CONFLICT(record_id) DO UPDATE SET etag=excluded.etag, "
                "extras=excluded.extras, enriched_at=excluded.enriched_at, failures=0, last_error=NULL",
                [(rid, src, etag, json.dumps(extras), now) for rid, src, etag, extras in rows])

    def enrichment_failed(self, record_id: str, source: str, reason: str) -> None:
        """Count a failed enrichment: the record stays in the queue, behind those that did not fail."""
        with self._lock:
            self._conn.execute(
                "INSERT INTO enrichments (record_id, source, failures, last_error) VALUES (?, ?, 1, ?) "
                "ON CONFLICT(record_id) DO UPDATE SET failures=failures+1, last_error=excluded.last_error",
                (record_id, source, reason[:500]))

    def enriched_ids(self, source: str) -> set[str]:
        with self._lock:
            return {r[0] for r in self._conn.execute(
                "SELECT record_id FROM enrichments WHERE source=? AND etag IS NOT NULL", (source,))}

    def get_enrichment(self, record_id: str) -> tuple[str | None, dict[str, Any]] | None:
        """(etag, extras) of the record's last enrichment, or None."""
        with self._lock:
            row = self._conn.execute("SELECT etag, extras FROM enrichments WHERE record_id=? AND extras IS NOT NULL",
                                     (record_id,)).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def enrichment_queue(self, source: str, priority: list[str], limit: int | None
                         ) -> list[tuple[str, str, str | None]]:
        """(record id, local id, current version) of live records of `source` never enriched or
        enriched at another revision: the priority orders interleaved (the first of each, then the
        second of each, …, without repeats), then the records whose enrichment failed (fewest
        failures first). Each order walks an expression index (`records_enrich_<key>`) and stops at
        `limit`, so a run over 2M records does not sort the catalog."""
        keys = [k for k in priority if k in _ENRICH_ORDER] or ["downloads"]
        n = -1 if limit is None else limit
        lists = []
        with self._lock:
            for k in keys:
                expr = f"json_extract(r.data, '{_ENRICH_ORDER[k]}')"
                lists.append(self._conn.execute(
                    f"""SELECT r.id, r.local_id, json_extract(r.data, '$.version') FROM records r
                        LEFT JOIN enrichments e ON e.record_id = r.id
                        WHERE r.source = ? AND r.deleted_at IS NULL
                          AND (e.record_id IS NULL
                               OR (e.failures = 0 AND e.etag IS NOT json_extract(r.data, '$.version')))
                        ORDER BY {expr} DESC, r.id LIMIT ?""", (source, n)).fetchall())
            failed = self._conn.execute(
                f"""SELECT r.id, r.local_id, json_extract(r.data, '$.version') FROM enrichments e
                    JOIN records r ON r.id = e.record_id
                    WHERE e.source = ? AND e.failures > 0 AND r.deleted_at IS NULL
                      AND e.etag IS NOT json_extract(r.data, '$.version')
                    ORDER BY e.failures, json_extract(r.data, '{_ENRICH_ORDER[keys[0]]}') DESC
                    LIMIT ?""", (source, n)).fetchall()
        out: list[tuple[str, str, str | None]] = []
        seen: set[str] = set()
        for row in [*itertools.chain.from_iterable(itertools.zip_longest(*lists)), *failed]:
            if row is not None and row[0] not in seen:
                seen.add(row[0])
                out.append((row[0], row[1], row[2]))
                if limit is not None and len(out) >= limit:
                    break
        return out

    def enrichment_counts(self, source: str) -> tuple[int, int]:
        """(live records enriched at their current revision, live records of the source)."""
        with self._lock:
            done, total = self._conn.execute(
                """SELECT COUNT(e.record_id), COUNT(*) FROM records r LEFT JOIN enrichments e
                   ON e.record_id = r.id AND e.extras IS NOT NULL AND e.etag IS json_extract(r.data, '$.version')
                   WHERE r.source = ? AND r.deleted_at IS NULL""", (source,)).fetchone()
        return int(done), int(total)

    # -- meta ------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._conn.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                               (key, value))


class _Tx:
    """`with catalog.transaction():` — one SQLite transaction, rolled back on error."""

    def __init__(self, catalog: Catalog) -> None:
        self.c = catalog

    def __enter__(self) -> Catalog:
        self.c._lock.acquire()
        try:
            self.c._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            self.c._lock.release()
            raise io_error(self.c.path, e) from e
        return self.c

    def __exit__(self, exc_type: object, exc: object, _tb: object) -> None:
        try:
            if exc_type is None:
                try:
                    self.c._conn.execute("COMMIT")
                except sqlite3.OperationalError as e:
                    self._rollback()
                    raise io_error(self.c.path, e) from e  # noqa: B904 — the commit's own error
            else:
                # SQLite rolls back by itself on some errors (SQLITE_FULL, SQLITE_IOERR): a second
                # ROLLBACK then fails with "no transaction is active", which must not hide the cause.
                self._rollback()
                if isinstance(exc, sqlite3.OperationalError) and isinstance(
                        err := io_error(self.c.path, exc), CatalogIOError):
                    raise err from exc
        finally:
            self.c._lock.release()

    def _rollback(self) -> None:
        if self.c._conn.in_transaction:
            try:
                self.c._conn.execute("ROLLBACK")
            except sqlite3.Error as e:  # the original error is the one to report
                log.warning("rollback of the catalog failed: %s", e)


def io_error(path: Path, e: sqlite3.Error) -> CatalogIOError | sqlite3.Error:
    """A storage failure (disk full, read-only, I/O) as a CatalogIOError naming the file and the cause;
    other SQLite errors unchanged."""
    text = str(e)
    code = getattr(e, "sqlite_errorname", "") or ""
    if any(k in code for k in ("SQLITE_FULL", "SQLITE_READONLY", "SQLITE_IOERR", "SQLITE_CANTOPEN",
                               "SQLITE_BUSY", "SQLITE_LOCKED")) or any(
            k in text for k in ("disk is full", "readonly", "disk I/O", "unable to open", "locked")):
        return CatalogIOError(f"cannot write the catalog {path}: {text}"
                              f"{' (' + code + ')' if code else ''}; what was committed before is kept")
    return e


def _chunks(items: list[str], n: int) -> Iterator[list[str]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]
