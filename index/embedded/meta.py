"""The index's own bookkeeping (`IndexMeta`), in `META_FILE` beside the Tantivy files: the versions that
decide a rebuild, the numbering generation, the next row number and the ids of fact keys."""

from __future__ import annotations

import json
import os
import threading
import uuid
from pathlib import Path
from typing import Any

from modelport.index.embedded.schema import INDEX_FORMAT
from modelport.index.facts import FACTS_VERSION, KEY_MAX
from modelport.schema.kb import get_kb

META_FILE = "modelport-index.json"


class IndexMeta:
    """The index's own bookkeeping, in a JSON file beside the Tantivy files: layout / facts / KB
    versions (a mismatch means rebuild), the next row number, and the ids of fact keys. Keys are
    append-only within a generation (a new one starts whenever the index is emptied), so a reader
    holding an older table of the same generation only lacks keys that newer documents introduced."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.versions: dict[str, Any] = {}
        self.generation = ""
        self.next_row = 0
        self.keys: dict[str, int] = {}
        self._mtime = 0.0
        self._lock = threading.Lock()

    @staticmethod
    def current_versions() -> dict[str, Any]:
        return {"format": INDEX_FORMAT, "facts": FACTS_VERSION, "kb": get_kb().version}

    def _read(self) -> tuple[dict[str, Any], float] | None:
        try:
            st = self.path.stat()
            return json.loads(self.path.read_text()), st.st_mtime
        except (OSError, ValueError):
            return None

    def load(self) -> bool:
        got = self._read()
        if got is None:
            return False
        data, self._mtime = got
        self.versions = data.get("versions", {})
        self.generation = str(data.get("generation", ""))
        self.next_row = int(data.get("next_row", 0))
        self.keys = {str(k): int(v) for k, v in data.get("keys", {}).items()}
        return True

    def reset(self) -> None:
        self.versions, self.next_row, self.keys = self.current_versions(), 0, {}
        self.generation = uuid.uuid4().hex

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        with self._lock:
            tmp.write_text(json.dumps({"versions": self.versions, "generation": self.generation,
                                       "next_row": self.next_row, "keys": self.keys}))
            os.replace(tmp, self.path)
            self._mtime = self.path.stat().st_mtime

    def key_id(self, key: str, create: bool = False) -> int | None:
        kid = self.keys.get(key)
        if kid is None and not create:
            self.refresh()
            kid = self.keys.get(key)
        if kid is None and create:
            with self._lock:
                kid = self.keys.setdefault(key, len(self.keys) + 1)
            if kid > KEY_MAX:
                raise RuntimeError("search index fact-key table is full; run `modelport reindex`")
        return kid

    def key_ids_with_prefix(self, prefix: str) -> list[int]:
        return [v for k, v in self.keys.items() if k.startswith(prefix)]

    def refresh(self) -> None:
        """Pick up keys another process (a harvest) added: merged within one generation, replaced
        when the index was emptied and renumbered meanwhile."""
        try:
            if self.path.stat().st_mtime == self._mtime:
                return
        except OSError:
            return
        got = self._read()
        if got is None:
            return
        data, mtime = got
        with self._lock:
            if str(data.get("generation", "")) != self.generation:
                self.generation = str(data.get("generation", ""))
                self.versions = data.get("versions", {})
                self.keys = {str(k): int(v) for k, v in data.get("keys", {}).items()}
                self.next_row = int(data.get("next_row", 0))
            else:
                for k, v in data.get("keys", {}).items():
                    self.keys.setdefault(str(k), int(v))
                self.next_row = max(self.next_row, int(data.get("next_row", 0)))
            self._mtime = mtime
