"""The vector index: exact search, restriction to candidate rows, upsert/delete, persistence,
readers in another process picking up new rows, shared row numbers, and the PCA coarse stage's
recall against exact search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelport.index.vectors import VectorIndex, _top

DIM = 32


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute(x: np.ndarray, q: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[int]:
    s = x @ q
    if allowed is not None:
        s = np.where(allowed, s, -np.inf)
    order = np.argsort(-s, kind="stable")
    return [int(i) for i in order[:k] if np.isfinite(s[i])]


@pytest.fixture
def filled(tmp_path: Path) -> tuple[VectorIndex, np.ndarray]:
    rng = np.random.default_rng(7)
    x = unit(rng, 500)
    index = VectorIndex(tmp_path / "v", dim=DIM)
    index.upsert([f"r{i}" for i in range(500)], x, [f"k{i}" for i in range(500)])
    index.commit()
    return index, x


def test_exact_top_k_matches_brute_force(filled: tuple[VectorIndex, np.ndarray]) -> None:
    index, x = filled
    q = x[3] * 0.6 + x[9] * 0.4
    q /= np.linalg.norm(q)
    got = index.search(q, 10)
    assert [rid for rid, _ in got] == [f"r{i}" for i in brute(x, q, 10)]
    assert got[0][1] == pytest.approx(float(x[brute(x, q, 1)[0]] @ q), abs=1e-5)
    assert all(a[1] >= b[1] for a, b in zip(got, got[1:], strict=False))


def test_candidates_restrict_the_search(filled: tuple[VectorIndex, np.ndarray]) -> None:
    index, x = filled
    allowed = np.zeros(500, dtype=bool)
    allowed[::7] = True
    cands = np.flatnonzero(allowed)
    got = index.search(x[3], 10, cands)
    assert [rid for rid, _ in got] == [f"r{i}" for i in brute(x, x[3], 10, allowed)]
    assert "r3" not in {rid for rid, _ in got}  # the nearest vector itself is not a candidate
    assert index.search(x[3], 10, np.zeros(0, dtype=np.int64)) == []


@pytest.mark.parametrize("n_candidates", [3, 300])  # few: sorted and deduplicated; many: a mask over all rows
def test_candidate_lists_may_repeat_rows_hold_dead_rows_and_rows_out_of_range(
        filled: tuple[VectorIndex, np.ndarray], n_candidates: int) -> None:
    index, x = filled
    index.delete(["r21"])
    index.commit()
    rng = np.random.default_rng(3)
    picked = rng.choice(500, n_candidates, replace=False)
    picked[0] = 21  # dead
    raw = np.concatenate([picked, picked[: n_candidates // 2], [500, 9_999, -1]])  # repeats, beyond the end
    rng.shuffle(raw)
    allowed = np.zeros(500, dtype=bool)
    allowed[picked] = True
    allowed[21] = False
    k = min(10, int(allowed.sum()))
    got = index.search(x[picked[1]], k, raw)
    assert [rid for rid, _ in got] == [f"r{i}" for i in brute(x, x[picked[1]], k, allowed)]
    assert len({rid for rid, _ in got}) == len(got)


def test_delete_and_update_in_place(filled: tuple[VectorIndex, np.ndarray], tmp_path: Path) -> None:
    index, x = filled
    index.delete(["r3"])
    index.commit()
    assert "r3" not in {rid for rid, _ in index.search(x[3], 5)}
    assert index.key_of("r3") is None and len(index) == 499
    # An update keeps the record's row; a revived record gets its row back.
    row = index.row_of("r4")
    index.upsert(["r4", "r3"], np.stack([x[3], x[3]]), ["new", "back"])
    index.commit()
    assert index.row_of("r4") == row and index.key_of("r4") == "new"
    assert {rid for rid, _ in index.search(x[3], 2)} == {"r3", "r4"}
    assert len(index) == 500 and index.next_row == 500


def test_persists_and_other_readers_refresh(filled: tuple[VectorIndex, np.ndarray], tmp_path: Path) -> None:
    index, x = filled
    reader = VectorIndex(tmp_path / "v", dim=DIM)  # e.g. `modelport serve` beside a harvest
    assert reader.search(x[42], 1)[0][0] == "r42"
    rng = np.random.default_rng(1)
    extra = unit(rng, 2000)  # enough to grow the files past their capacity
    index.upsert([f"n{i}" for i in range(2000)], extra, ["k"] * 2000)
    index.delete(["r42"])
    index.commit()
    assert reader.search(extra[1500], 1)[0][0] != "n1500"  # not yet: the reader has old rows
    reader.refresh()
    assert reader.search(extra[1500], 1)[0][0] == "n1500"
    assert reader.search(x[42], 1)[0][0] != "r42"
    assert len(reader) == len(index) == 2499


def test_clear_and_dimension_check(filled: tuple[VectorIndex, np.ndarray], tmp_path: Path) -> None:
    index, x = filled
    index.clear()
    assert len(index) == 0 and index.search(x[0], 5) == []
    index.upsert(["a"], x[:1], ["k"])
    index.commit()
    assert index.search(x[0], 5)[0][0] == "a"
    with pytest.raises(ValueError, match="384-d"):
        VectorIndex(tmp_path / "v", dim=384)


def test_shared_row_numbers_follow_the_search_index(tmp_path: Path) -> None:
    """Rows given by the search index address the vectors; a renumbered record moves, and a row
    taken over by another record no longer answers for the old one."""
    rng = np.random.default_rng(3)
    x = unit(rng, 4)
    index = VectorIndex(tmp_path / "v", dim=DIM)
    index.upsert(["a", "b"], x[:2], ["ka", "kb"], rows=[10, 20])
    index.commit()
    assert index.row_of("a") == 10 and index.search(x[1], 1, np.array([20]))[0][0] == "b"
    index.upsert(["b", "c"], x[1:3], ["kb", "kc"], rows=[30, 10])  # b renumbered, c takes a's old row
    index.commit()
    assert index.row_of("b") == 30 and index.row_of("c") == 10 and index.row_of("a") is None
    assert index.search(x[1], 1, np.array([20])) == []  # row 20 is empty now
    reopened = VectorIndex(tmp_path / "v", dim=DIM)
    assert (reopened.row_of("a"), reopened.row_of("b"), reopened.row_of("c")) == (None, 30, 10)
    assert {rid for rid, _ in reopened.search(x[2], 5)} == {"b", "c"}


def test_coarse_stage_keeps_recall_on_clustered_vectors(tmp_path: Path) -> None:
    """Above `coarse_min_rows` a PCA pre-ranking picks the rows scored exactly; on clustered data
    (like real embeddings: a low-rank signal plus noise) it must find what brute force finds."""
    rng = np.random.default_rng(11)
    dim, n = 64, 6000
    basis = np.linalg.qr(rng.standard_normal((dim, 12)))[0].T
    centres = rng.standard_normal((60, 12))
    x = (centres[rng.integers(0, 60, n)] + 0.5 * rng.standard_normal((n, 12))) @ basis
    x = (x + 0.05 * rng.standard_normal((n, dim))).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index = VectorIndex(tmp_path / "v", dim=dim, coarse_dim=16, coarse_min_rows=4000, rerank=200)
    index.upsert([str(i) for i in range(n)], x, ["k"] * n)
    index.commit()
    assert index._pca is not None  # the coarse stage is on
    queries = unit(rng, 40, dim) * 0.2 + x[rng.integers(0, n, 40)]
    recall = []
    for q in queries:
        q /= np.linalg.norm(q)
        got = {rid for rid, _ in index.search(q, 10)}
        want = {rid for rid, _ in index.search(q, 10, exact=True)}
        recall.append(len(got & want) / 10)
    assert np.mean(recall) >= 0.95
    # Rows added after the fit are projected too (a copy of row 5, nudged, must be found).
    late = x[5:6] + 0.01 * unit(rng, 1, dim)
    late /= np.linalg.norm(late)
    index.upsert(["late"], late, ["k"])
    index.commit()
    assert {rid for rid, _ in index.search(late[0], 2)} == {"late", "5"}


def test_top_selection_on_large_arrays() -> None:
    rng = np.random.default_rng(5)
    s = rng.standard_normal(300_000).astype(np.float32)
    s[::3] = -np.inf  # masked rows
    idx, vals = _top(s, 25)
    want = np.argsort(-s)[:25]
    assert list(idx) == list(want) and np.all(np.isfinite(vals))
