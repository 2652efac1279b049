"""The in-process vector index (one embedding per live record) and the projection that feeds it.

Search is exact over the candidate rows the hard constraints leave: brute force is exact, needs
no index build and makes filtering a mask (reference/engine-measurements.md §4). Vectors are a
float32 matrix in a memory-mapped file; each record id keeps one row for good (updates overwrite
it, deletions only clear its live bit), and the id → row map with each row's text key lives in
SQLite. Above `coarse_min_rows` a full scan of 1.5 GB per query is too slow for a 2-core machine,
so a PCA projection of every row (64 floats) is scanned first and only the best few thousand rows
are scored exactly; `search(..., exact=True)` skips that stage.

Over ~500 lines: `VectorIndex` is one on-disk layout (the matrix, the coarse PCA rows, the SQLite row
map) whose writers and scanners all read it; the projection that feeds it (~90 lines) is its one
writer and stays beside it.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from modelport.index.embeddings import (
    DIM,
    CachedEmbedder,
    EmbeddingCache,
    EmbeddingsUnavailable,
    load_embedder,
    summary_text,
    text_key,
)
from modelport.schema.record import ModelRecord

if TYPE_CHECKING:
    from modelport.index.search import SearchBackend
    from modelport.settings import Settings

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rows (
    id    TEXT PRIMARY KEY,
    row   INTEGER NOT NULL UNIQUE,
    key   TEXT,
    alive INTEGER NOT NULL,
    seq   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS rows_seq ON rows(seq);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
"""
_FLUSH_EVERY_S = 30.0
_CHUNK = 131_072  # rows per matmul block: bounds temporary memory at 0.2 GB for 384 dims


class VectorIndex:
    """Rows of L2-normalised vectors addressed by record id, searched by dot product."""

    def __init__(self, path: Path | str, dim: int = DIM, coarse_dim: int = 64,
                 coarse_min_rows: int = 150_000, rerank: int = 2000) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.dim, self.coarse_dim, self.coarse_min_rows, self.rerank = dim, coarse_dim, coarse_min_rows, rerank
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path / "rows.sqlite", check_same_thread=False, isolation_level=None,
                                     timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        self._pending: dict[str, tuple[int, str | None, int]] = {}  # id → (row, key, alive) to write at commit
        self._flushed_at = time.monotonic()
        self._load()

    # -- state ------------------------------------------------------------------------------------
    def _meta(self) -> dict[str, str]:
        return dict(self._conn.execute("SELECT k, v FROM meta").fetchall())

    def _load(self) -> None:
        """(Re)read everything from disk: the row map, the matrices and the PCA basis."""
        meta = self._meta()
        if not meta:
            meta = {"dim": str(self.dim), "capacity": "1024", "next_row": "0", "seq": "0",
                    "generation": uuid.uuid4().hex}
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", meta.items())
            self._conn.execute("COMMIT")
        if int(meta["dim"]) != self.dim:
            raise ValueError(f"vector index at {self.path} holds {meta['dim']}-d vectors, not {self.dim}-d; "
                             "run `modelport reindex`")
        self.generation = meta["generation"]
        self.capacity = int(meta["capacity"])
        self.next_row = int(meta["next_row"])
        self.seq = int(meta["seq"])
        # Which numbering the rows follow (the search index's generation, when rows come from it).
        self.row_space = meta.get("row_space", "")
        self._row: dict[str, int] = {}
        self._ids: list[str | None] = [None] * self.capacity
        self._keys: list[str | None] = [None] * self.capacity
        self._alive = np.zeros(self.capacity, dtype=bool)
        self._apply_rows(self._conn.execute("SELECT id, row, key, alive FROM rows"))
        self._open_matrices()
        self._pca: tuple[np.ndarray, np.ndarray] | None = None
        self._pca_rows = int(meta.get("pca_rows", "0"))
        if self._pca_rows and (self.path / "pca.npz").exists():
            with np.load(self.path / "pca.npz") as z:
                self._pca = (z["mean"].astype(np.float32), z["components"].astype(np.float32))

    def _apply_rows(self, rows: Any) -> None:
        for rid, row, key, alive in rows:
            if row >= len(self._ids):
                self._grow_lists(row + 1)
            old = self._row.get(rid)
            if old is not None and old != row and self._ids[old] == rid:
                self._ids[old], self._alive[old] = None, False
            self._row[rid] = row
            self._ids[row] = rid
            self._keys[row] = key
            self._alive[row] = bool(alive)

    def _grow_lists(self, needed: int) -> None:
        extra = max(needed, self.capacity) - len(self._ids)
        if extra > 0:
            self._ids.extend([None] * extra)
            self._keys.extend([None] * extra)
            self._alive = np.concatenate([self._alive, np.zeros(extra, dtype=bool)])

    def _open_matrices(self) -> None:
        self._X = self._memmap("vectors.f32", self.dim)
        self._C = self._memmap("coarse.f32", self.coarse_dim) if (self.path / "coarse.f32").exists() else None

    def _memmap(self, name: str, width: int) -> np.memmap:
        file = self.path / name
        size = self.capacity * width * 4
        if not file.exists() or file.stat().st_size < size:
            with open(file, "ab") as fh:
                fh.truncate(size)
        return np.memmap(file, dtype=np.float32, mode="r+", shape=(self.capacity, width))

    def refresh(self) -> None:
        """Pick up rows another process (a harvest next to `modelport serve`) committed since."""
        with self._lock:
            meta = self._meta()
            if meta.get("generation") != self.generation:
                self._load()
                return
            seq = int(meta.get("seq", "0"))
            if seq == self.seq:
                return
            capacity = int(meta["capacity"])
            if capacity != self.capacity:
                self.capacity = capacity
                self._grow_lists(capacity)
                self._open_matrices()
            self._apply_rows(self._conn.execute("SELECT id, row, key, alive FROM rows WHERE seq > ?", (self.seq,)))
            self.next_row, self.seq = int(meta["next_row"]), seq
            self.row_space = meta.get("row_space", "")
            if int(meta.get("pca_rows", "0")) != self._pca_rows:
                self._load()

    def _ensure_capacity(self, rows: int) -> None:
        if rows <= self.capacity:
            return
        capacity = self.capacity
        while capacity < rows:
            capacity *= 2
        self._X.flush()
        if self._C is not None:
            self._C.flush()
        self.capacity = capacity
        self._grow_lists(capacity)
        self._open_matrices()

    # -- writes -------------------------------------------------------------------------------------
    def key_of(self, rid: str) -> str | None:
        """The text key of a record's live vector (None when it has none)."""
        row = self._live_row(rid)
        return self._keys[row] if row is not None else None

    def row_of(self, rid: str) -> int | None:
        return self._live_row(rid)

    def _live_row(self, rid: str) -> int | None:
        row = self._row.get(rid)
        return row if row is not None and self._alive[row] and self._ids[row] == rid else None

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, keys: Sequence[str | None],
               rows: Sequence[int] | None = None) -> None:
        """Store one vector per id. `rows` (optional) are the ids' row numbers in the search index,
        so that the rows its constraint queries return address this index directly; without them
        an id keeps the row it had, or takes the next free one."""
        if not len(ids):
            return
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        with self._lock:
            at = np.empty(len(ids), dtype=np.int64)
            for i, rid in enumerate(ids):
                old = self._row.get(rid)
                row = int(rows[i]) if rows is not None else (old if old is not None else self.next_row)
                if old is not None and old != row and self._ids[old] == rid:
                    self._alive[old] = False  # the search index renumbered this record
                    self._ids[old] = None
                self.next_row = max(self.next_row, row + 1)
                self._ensure_capacity(self.next_row)
                other = self._ids[row]
                if other is not None and other != rid:
                    self._row.pop(other, None)  # the row now belongs to another record
                    self._pending[other] = (-1, None, 0)
                self._row[rid] = row
                self._ids[row] = rid
                at[i] = row
                self._keys[row] = keys[i]
                self._alive[row] = True
                self._pending[rid] = (row, keys[i], 1)
            order = np.argsort(at)  # sorted writes touch the file sequentially
            self._X[at[order]] = vectors[order]
            if self._pca is not None and self._C is not None:
                self._C[at[order]] = self._project(vectors[order])

    def delete(self, ids: Sequence[str]) -> None:
        with self._lock:
            for rid in ids:
                row = self._live_row(rid)
                if row is not None:
                    self._alive[row] = False
                    self._pending[rid] = (row, self._keys[row], 0)

    def commit(self) -> None:
        with self._lock:
            if not self._pending and not self._needs_pca():
                return
            if self._needs_pca():
                self._fit_pca()
            # Other processes see the rows through the shared page cache at once; syncing to disk
            # on every batch only costs (msync walks the whole mapping). After an OS crash the rows
            # of the last seconds may be stale: `modelport reindex` restores them from the cache.
            if time.monotonic() - self._flushed_at > _FLUSH_EVERY_S:
                self._flush()
            seq = self.seq + 1
            self._conn.execute("BEGIN IMMEDIATE")
            gone = [(rid,) for rid, (row, _, _) in self._pending.items() if row < 0]
            if gone:
                self._conn.executemany("DELETE FROM rows WHERE id=?", gone)
            # Rows are unique: clear the one an id takes over before writing it.
            moved = [(row, rid) for rid, (row, _, _) in self._pending.items() if row >= 0]
            self._conn.executemany("DELETE FROM rows WHERE row=? AND id<>?", moved)
            self._conn.executemany(
                "INSERT INTO rows (id, row, key, alive, seq) VALUES (?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE "
                "SET row=excluded.row, key=excluded.key, alive=excluded.alive, seq=excluded.seq",
                [(rid, row, key, alive, seq) for rid, (row, key, alive) in self._pending.items() if row >= 0])
            self._conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [
                ("capacity", str(self.capacity)), ("next_row", str(self.next_row)), ("seq", str(seq)),
                ("pca_rows", str(self._pca_rows)), ("row_space", self.row_space)])
            self._conn.execute("COMMIT")
            self.seq = seq
            self._pending.clear()

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
            del self._X
            self._C = None
            self._conn.close()
            shutil.rmtree(self.path, ignore_errors=True)
            self.path.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path / "rows.sqlite", check_same_thread=False,
                                         isolation_level=None, timeout=30)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.executescript(_SCHEMA)
            self._load()

    def _flush(self) -> None:
        self._X.flush()
        if self._C is not None:
            self._C.flush()
        self._flushed_at = time.monotonic()

    def close(self) -> None:
        with self._lock:
            self._flush()
            self._conn.close()

    # -- the coarse stage -----------------------------------------------------------------------------
    def _needs_pca(self) -> bool:
        alive = int(self._alive[:self.next_row].sum()) if self.next_row >= self.coarse_min_rows else 0
        # Refit when the collection has grown fourfold since the basis was fitted.
        return alive >= self.coarse_min_rows and (self._pca is None or alive >= 4 * self._pca_rows)

    def _fit_pca(self) -> None:
        """Fit the basis on a sample of live rows, then project every row (a few seconds per 1M)."""
        live = np.flatnonzero(self._alive[:self.next_row])
        rng = np.random.default_rng(0)
        sample = np.sort(rng.choice(live, size=min(len(live), 50_000), replace=False))
        xs = np.asarray(self._X[sample], dtype=np.float64)
        mean = xs.mean(axis=0)
        xs -= mean
        _vals, vecs = np.linalg.eigh(xs.T @ xs)
        components = vecs[:, ::-1][:, :self.coarse_dim].T.astype(np.float32)
        self._pca = (mean.astype(np.float32), components)
        self._pca_rows = len(live)
        np.savez(self.path / "pca.npz", mean=self._pca[0], components=components)
        if self._C is None:
            self._C = self._memmap("coarse.f32", self.coarse_dim)
        for start in range(0, self.next_row, _CHUNK):
            stop = min(start + _CHUNK, self.next_row)
            self._C[start:stop] = self._project(np.asarray(self._X[start:stop]))
        log.info("vector index: PCA coarse stage fitted on %d of %d rows", len(sample), len(live))

    def _project(self, vectors: np.ndarray) -> np.ndarray:
        assert self._pca is not None
        mean, components = self._pca
        projected: np.ndarray = (vectors - mean) @ components.T
        return projected

    # -- reads ----------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._alive[:self.next_row].sum())

    def rows_of(self, ids: Sequence[str]) -> np.ndarray:
        """Live rows of the given record ids (ids without a vector are left out)."""
        get = self._live_row
        return np.fromiter((r for r in map(get, ids) if r is not None), dtype=np.int64)

    def ids_of(self, rows: Sequence[int] | np.ndarray) -> list[str]:
        return [self._ids[int(r)] or "" for r in rows]

    def vector(self, rid: str) -> np.ndarray | None:
        row = self._live_row(rid)
        return np.array(self._X[row]) if row is not None else None

    def similarities(self, query: np.ndarray, ids: Sequence[str]) -> dict[str, float]:
        """Exact cosine of the query with each given record's vector (records without one are left out)."""
        q = np.asarray(query, dtype=np.float32).reshape(self.dim)
        pairs = [(rid, self._live_row(rid)) for rid in ids]
        pairs = [(rid, r) for rid, r in pairs if r is not None]
        if not pairs:
            return {}
        rows = np.fromiter((r for _, r in pairs), dtype=np.int64)
        scores = np.asarray(self._X[rows]) @ q
        return {rid: float(s) for (rid, _), s in zip(pairs, scores, strict=True)}

    def search(self, query: np.ndarray, k: int, candidates: np.ndarray | None = None,
               exact: bool = False) -> list[tuple[str, float]]:
        """The k live rows most similar to `query` (record id, cosine), best first, restricted to
        the `candidates` rows when given."""
        rows, scores = self.search_rows(query, k, candidates, exact)
        return list(zip(self.ids_of(rows), scores.tolist(), strict=True))

    def search_rows(self, query: np.ndarray, k: int, candidates: np.ndarray | None = None,
                    exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        q = np.asarray(query, dtype=np.float32).reshape(self.dim)
        n = self.next_row
        if n == 0 or k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if candidates is not None:
            candidates = self._live_sorted(np.asarray(candidates, dtype=np.int64), n)
            if len(candidates) == 0:
                return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        pca, coarse_rows = self._pca, self._C
        # A candidate scored exactly reads 1.5 KB, in the coarse space 256 B: past ~1.2 × rerank
        # candidates, ranking them coarsely and rescoring the best `rerank` reads less.
        small = candidates is not None and len(candidates) <= self.rerank * 6 // 5
        if pca is None or coarse_rows is None or exact or small:
            if candidates is None:
                scores = self._scan(self._X, q, n)
                return _top(scores, k)
            scores = self._gather(self._X, candidates, q)
            top, s = _top(scores, k)
            return candidates[top], s
        # Coarse stage: rank every allowed row in the PCA space, then score the best exactly.
        qc = pca[1] @ q
        pool = max(self.rerank, 4 * k)
        if candidates is not None and len(candidates) * 5 < n:
            pre, _ = _top(self._gather(coarse_rows, candidates, qc), pool)
            pool_rows = candidates[pre]
        else:
            allowed = None
            if candidates is not None:
                allowed = np.zeros(n, dtype=bool)
                allowed[candidates] = True
            pool_rows, _ = _top(self._scan(coarse_rows, qc, n, allowed), pool)
        pool_rows = np.sort(pool_rows)
        exact_scores = np.asarray(self._X[pool_rows]) @ q
        top, s = _top(exact_scores, k)
        return pool_rows[top], s

    def _live_sorted(self, rows: np.ndarray, n: int) -> np.ndarray:
        """The distinct live rows among `rows`, ascending. Past ~n/64 rows a mask over all rows is
        far cheaper than sorting them (`np.unique` of 40k rows took 5.4 ms at 1M, the mask 0.7;
        of 300k, 70 ms against 0.8), and a constraint query can list that many."""
        rows = rows[(rows >= 0) & (rows < n)]
        if len(rows) * 64 < n:
            rows = np.unique(rows)
            alive: np.ndarray = rows[self._alive[rows]]
            return alive
        mask = np.zeros(n, dtype=bool)
        mask[rows] = True
        mask &= self._alive[:n]
        return np.flatnonzero(mask)

    def cost_per_row_us(self) -> tuple[float, float]:
        """(scanning all rows, scoring listed candidates) in µs per row, for choosing between
        listing candidates and filtering a full ranking; memory-bound reads of 256 B (coarse) or
        1.5 KB (exact) rows, measured on the 2-core reference machine."""
        return (0.015, 0.03) if self._pca is not None else (0.06, 0.1)

    def search_filtered(self, query: np.ndarray, k: int, allow: Callable[[np.ndarray], np.ndarray],
                        share: float) -> tuple[np.ndarray, np.ndarray]:
        """The k best rows that `allow` accepts, for when asking about a few rows is cheaper than
        listing every accepted one (broad constraints): all rows are ranked (in the coarse space
        when it is on), `allow` is asked about the best of them, enough that about 2k should pass
        given the expected accepted `share`, and the pool widens until k passed or none is left."""
        q = np.asarray(query, dtype=np.float32).reshape(self.dim)
        n, alive = self.next_row, len(self)
        if n == 0 or k <= 0 or alive == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        pca, coarse_rows = self._pca, self._C
        coarse = pca is not None and coarse_rows is not None
        scores = (self._scan(coarse_rows, pca[1] @ q, n) if pca is not None and coarse_rows is not None
                  else self._scan(self._X, q, n))
        pool = int(2 * k / max(share, 1e-6)) + 64
        while True:
            pool = min(pool, alive)
            rows, _ = _top(scores, pool)
            keep = rows[np.isin(rows, allow(rows))]  # still best first
            if len(keep) >= k or pool >= alive:
                if coarse:
                    keep = np.sort(keep)
                    top, s = _top(np.asarray(self._X[keep]) @ q, k)
                    return keep[top], s
                return keep[:k], scores[keep[:k]]
            pool *= 4

    def _scan(self, matrix: np.ndarray, q: np.ndarray, n: int, allowed: np.ndarray | None = None) -> np.ndarray:
        out = np.empty(n, dtype=np.float32)
        for start in range(0, n, _CHUNK):
            stop = min(start + _CHUNK, n)
            np.matmul(matrix[start:stop], q, out=out[start:stop])
        dead = ~self._alive[:n] if allowed is None else ~(self._alive[:n] & allowed)
        out[dead] = -np.inf
        return out

    @staticmethod
    def _gather(matrix: np.ndarray, rows: np.ndarray, q: np.ndarray) -> np.ndarray:
        out = np.empty(len(rows), dtype=np.float32)
        step = 16_384
        for start in range(0, len(rows), step):
            out[start:start + step] = matrix[rows[start:start + step]] @ q
        return out


def _top(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the k largest finite scores, best first."""
    n = len(scores)
    if n == 0:
        return np.zeros(0, dtype=np.int64), scores[:0]
    k = min(k, n)
    if n > 200_000:
        # A threshold from a strided sample keeps ~2k of the scores for the exact partition: a full
        # argpartition over 1M floats costs more than the scan that produced them.
        sample = scores[:: n // 16_384]
        want = min(len(sample) - 1, int(k * len(sample) / n * 2) + 8)
        thr = np.partition(sample, len(sample) - 1 - want)[len(sample) - 1 - want]
        idx = np.flatnonzero(scores >= thr) if np.isfinite(thr) else np.flatnonzero(np.isfinite(scores))
        if len(idx) < k:
            idx = np.argpartition(scores, n - k)[n - k:]
    elif k < n:
        idx = np.argpartition(scores, n - k)[n - k:]
    else:
        idx = np.arange(n)
    sub = scores[idx]
    if len(idx) > k:
        keep = np.argpartition(sub, len(sub) - k)[len(sub) - k:]
        idx, sub = idx[keep], sub[keep]
    order = np.argsort(-sub, kind="stable")
    idx, sub = idx[order], sub[order]
    finite = np.isfinite(sub)
    return idx[finite].astype(np.int64), sub[finite]


@runtime_checkable
class RowNumbers(Protocol):
    """A search backend whose records have row numbers for life (the embedded one), which the
    vector index then uses as its own rows."""

    def rows_of(self, ids: list[str]) -> dict[str, int]: ...

    def row_space(self) -> str | None:
        """The numbering's generation: a new one whenever the backend renumbers (is emptied)."""
        ...


class VectorProjection:
    """Keeps the vector index in step with the catalog: embeds the records whose summary text
    changed (through the content-hash cache) and clears the rows of records that left.

    With `rows_from` (the embedded search backend) a record's vector sits at the record's row in
    the search index, so the rows a constraint query returns there address vectors here without
    any id lookups. The search projection runs (and commits) first in the pipeline, so its rows
    exist when this one applies the same batch."""

    name = "vectors"

    def __init__(self, index: VectorIndex, embedder: CachedEmbedder, rows_from: RowNumbers | None = None) -> None:
        self.index, self.embedder, self.rows_from = index, embedder, rows_from
        self.failed: str | None = None

    def row_space(self) -> str | None:
        """The search index's numbering generation (None when rows are our own)."""
        return self.rows_from.row_space() if self.rows_from is not None else None

    def in_step(self) -> bool:
        """False when the search index was renumbered (rebuilt on its own) since these rows were
        written: its rows no longer address our vectors until `modelport reindex`."""
        space = self.row_space()
        return space is None or self.index.row_space == space or len(self.index) == 0

    def apply(self, live: list[ModelRecord], gone: list[str], fresh: set[str] | frozenset[str] = frozenset()
              ) -> None:
        if gone:
            self.index.delete(gone)
        if not live:
            return
        rows: dict[str, int] | None = None
        if self.rows_from is not None:
            rows = self.rows_from.rows_of([r.id for r in live])
            space = self.row_space()
            if space is not None and len(self.index) == 0:
                self.index.row_space = space
        todo: list[tuple[str, str, str]] = []
        model_id = self.embedder.embedder.model_id
        for r in live:
            if rows is not None and r.id not in rows:
                continue  # not in the search index (yet): nothing could find it
            text = summary_text(r)
            key = text_key(model_id, text)
            same_row = rows is None or self.index.row_of(r.id) == rows[r.id]
            if self.index.key_of(r.id) != key or not same_row:  # else the stored vector stands
                todo.append((r.id, text, key))
        if not todo:
            return
        try:
            vecs, keys = self.embedder.embed_texts([t for _, t, _ in todo])
        except EmbeddingsUnavailable as e:
            # A harvest must not fail because the optional model broke; those records are still
            # found by BM25, and `modelport reindex` embeds them once the model works again.
            if self.failed is None:
                log.error("embedding failed, %d records left without vectors: %s", len(todo), e)
            self.failed = str(e)
            return
        ids = [rid for rid, _, _ in todo]
        self.index.upsert(ids, vecs, keys, [rows[i] for i in ids] if rows is not None else None)

    def commit(self) -> None:
        self.index.commit()

    def clear(self) -> None:
        self.index.clear()

    def close(self) -> None:
        self.index.close()
        self.embedder.cache.close()


def open_vector_projection(settings: Settings, search_backend: SearchBackend | None = None
                           ) -> tuple[VectorProjection | None, str | None]:
    """The vector projection for a data directory, or (None, why not) when embeddings are off or
    their extra is missing; the reason is what search reports as its notice. Pass the embedded
    search backend to share its row numbers."""
    try:
        embedder = load_embedder(settings.embeddings)
    except EmbeddingsUnavailable as e:
        log.info("%s", e)
        return None, str(e)
    vectors_dir = settings.index_dir / "vectors"
    index = VectorIndex(vectors_dir)
    cache = EmbeddingCache(settings.index_dir / "embedding-cache.sqlite")
    rows_from = search_backend if isinstance(search_backend, RowNumbers) else None
    return VectorProjection(index, CachedEmbedder(embedder, cache), rows_from), None

