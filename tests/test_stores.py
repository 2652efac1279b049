"""The data directory's stores open once per process, even when several threads ask first at once
(a server's search warm-up and its first requests do)."""

from __future__ import annotations

import threading
from pathlib import Path

from modelport.settings import Settings
from modelport.stores import Stores


def _search_from_threads(stores: Stores, n: int) -> tuple[list[object], list[BaseException]]:
    """`stores.search` asked by n threads released at the same moment: what each got, what failed."""
    start = threading.Barrier(n)
    got: list[object] = []
    errors: list[BaseException] = []

    def open_search() -> None:
        start.wait()
        try:
            got.append(stores.search)
        except BaseException as e:  # noqa: BLE001 - collected and asserted by the caller
            errors.append(e)

    threads = [threading.Thread(target=open_search) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return got, errors


def test_threads_asking_at_once_share_one_opened_store(tmp_path: Path) -> None:
    for attempt in range(5):  # fresh directories: the race is in the first open
        stores = Stores(Settings(data_dir=tmp_path / str(attempt), base_iri="http://t", embeddings=False))
        try:
            got, errors = _search_from_threads(stores, 8)
            assert errors == [] and len(got) == 8 and len({id(s) for s in got}) == 1
            assert stores.search.count() == 0  # usable, not half-opened
        finally:
            stores.close()
