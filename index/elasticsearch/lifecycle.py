"""The index behind the backend's name: the name is an alias over one concrete index
(`<name>-<12 hex>`), so a rebuild writes a new index while searches read the old one, then moves the
alias and drops the old index in one atomic `_aliases` request (`begin_rebuild` .. `finish_rebuild`,
which `modelport reindex` uses). Here too: refusing an index that
ModelPort did not create, and a mapping that conflicts with this version's."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from elasticsearch import ApiError, Elasticsearch, NotFoundError, TransportError

from modelport.index.elasticsearch.client import ElasticsearchBackendError, reason
from modelport.index.elasticsearch.mapping import current_versions, index_mappings, index_settings

log = logging.getLogger(__name__)

T = TypeVar("T")
_FOREIGN = ("it exists but was not created by ModelPort; set MODELPORT_ELASTICSEARCH_INDEX to another name or "
            "delete it")


def field_types(props: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Every field path of a mapping's `properties` with its type (`object` when it has none)."""
    out: dict[str, str] = {}
    for name, spec in props.items():
        path = f"{prefix}{name}"
        out[path] = str(spec.get("type", "object"))
        if isinstance(spec.get("properties"), dict):
            out.update(field_types(spec["properties"], f"{path}."))
    return out


def mapping_conflicts(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """How a stored mapping's fields differ from the wanted one's (types, missing or extra fields)."""
    have, want = field_types(stored.get("properties", {})), field_types(wanted.get("properties", {}))
    out = [f"field {f!r} is {have[f]} in the index, {t} in this version" for f, t in want.items()
           if f in have and have[f] != t]
    out += [f"field {f!r} is missing from the index" for f in want if f not in have]
    out += [f"field {f!r} is in the index but not in this version's mapping" for f in have if f not in want]
    return out


class IndexLifecycle:
    """The alias and its concrete index, for `ElasticsearchBackend` (which supplies the client, the
    error wrapping and the index settings)."""

    _client: Elasticsearch
    index_name: str
    shards: int
    replicas: int | None
    _needs_rebuild: bool
    _staging: str | None  # the index a rebuild is filling (writes go there), None otherwise
    _lock: threading.Lock

    def _open(self) -> None:  # pragma: no cover - provided by the backend
        raise NotImplementedError

    def _call(self, what: str, fn: Callable[[], T]) -> T:  # pragma: no cover - provided by the backend
        raise NotImplementedError

    def _error(self, what: str, detail: str) -> ElasticsearchBackendError:  # pragma: no cover
        raise NotImplementedError

    def _new_index_name(self) -> str:
        return f"{self.index_name}-{uuid.uuid4().hex[:12]}"

    def _concrete(self) -> list[str]:
        """The indices behind the alias (none when the alias does not exist)."""
        try:
            resp = self._client.indices.get_alias(name=self.index_name)
        except NotFoundError:
            return []
        except ApiError as e:
            raise self._error("resolving the alias", f"HTTP {e.meta.status}: {reason(e)}") from None
        except TransportError as e:
            raise self._error("resolving the alias", f"{type(e).__name__}: {e.message}") from None
        return sorted(resp.body)

    def _check_ours(self, index: str) -> dict[str, Any]:
        """The versions that built `index`; an index without ModelPort's `_meta` is refused (never
        delete someone else's data), as is one whose fields conflict with this version's mapping
        while claiming the same versions (changed by hand or by a template)."""
        resp = self._call("reading the mapping", lambda: self._client.indices.get_mapping(index=index))
        index_body: dict[str, Any] = next(iter(resp.body.values()), {})
        mappings = index_body.get("mappings", {})
        built_by = mappings.get("_meta", {}).get("modelport")
        if not isinstance(built_by, dict):
            raise self._error("opening the index", _FOREIGN)
        if built_by == current_versions():
            conflicts = mapping_conflicts(mappings, index_mappings())
            if conflicts:
                raise self._error("opening the index", f"its mapping conflicts with this version's: "
                                  f"{'; '.join(conflicts[:5])}; rebuild it (`modelport reindex` after deleting it) "
                                  f"or set MODELPORT_ELASTICSEARCH_INDEX to another name")
        return built_by

    def _open_index(self) -> None:
        """Make sure the alias exists over one index of this version (called once, under the lock)."""
        concrete = self._concrete()
        if len(concrete) > 1:
            raise self._error("opening the index", f"the alias points at {len(concrete)} indices "
                              f"({', '.join(concrete)}); ModelPort keeps exactly one behind it")
        if concrete:
            built_by = self._check_ours(concrete[0])
            if built_by != current_versions():
                log.warning("search index %r was built by another version (%s); it is replaced by an empty one and "
                            "must be rebuilt from the catalog", self.index_name, built_by)
                self._switch_to(self._create(), concrete)
                self._needs_rebuild = True
            return
        exists = self._call("checking the index", lambda: bool(self._client.indices.exists(index=self.index_name)))
        if exists:  # a plain index under the alias's name: ours from before aliases, or someone else's
            self._check_ours(self.index_name)
            log.warning("search index %r predates the alias layout; it is replaced and must be rebuilt",
                        self.index_name)
            self._call("deleting the old index", lambda: self._client.indices.delete(index=self.index_name))
            self._needs_rebuild = True
        self._create(alias=True)

    def _create(self, alias: bool = False) -> str:
        """A new concrete index with this version's settings and mapping, optionally born with the alias."""
        name = self._new_index_name()
        try:
            self._client.indices.create(index=name, settings=index_settings(self.shards, self.replicas),
                                        mappings=index_mappings(),
                                        aliases={self.index_name: {"is_write_index": True}} if alias else None)
        except ApiError as e:
            raise self._error("creating the index", f"HTTP {e.meta.status}: {reason(e)}") from None
        except TransportError as e:
            raise self._error("creating the index", f"{type(e).__name__}: {e.message}") from None
        return name

    def _switch_to(self, new: str, old: list[str]) -> None:
        """Point the alias at `new` and delete `old`, as one atomic cluster-state change: a search sees
        either the old index or the new one, never neither."""
        actions: list[dict[str, Any]] = [{"add": {"index": new, "alias": self.index_name, "is_write_index": True}}]
        actions += [{"remove_index": {"index": o}} for o in old]
        self._call("switching the alias", lambda: self._client.indices.update_aliases(actions=actions))

    def begin_rebuild(self) -> None:
        """From here on writes (`upsert`, `delete`, `commit`) go to a new, empty index while searches
        keep reading the current one; `finish_rebuild` switches the alias to it, `abort_rebuild`
        drops it. `modelport reindex` (Pipeline.reindex) rebuilds this way."""
        self._open()
        with self._lock:
            if self._staging is not None:
                raise self._error("starting a rebuild", f"a rebuild into {self._staging!r} is already running")
            self._staging = self._create()

    def finish_rebuild(self) -> None:
        """Make the new index searchable, then point the alias at it and drop the old one in one atomic
        change: a search sees the old index or the new one, never a half-built one. If this fails the
        new index is dropped and the old one still serves."""
        with self._lock:
            new, self._staging = self._staging, None
            if new is None:
                raise self._error("finishing a rebuild", "no rebuild is running")
            try:
                self._call("refreshing the new index", lambda: self._client.indices.refresh(index=new))
                self._switch_to(new, [c for c in self._concrete() if c != new])
            except BaseException:
                self._drop(new)
                raise
            self._needs_rebuild = False

    def abort_rebuild(self) -> None:
        """Drop the index a rebuild was filling (if any); the old one still serves, unchanged."""
        with self._lock:
            new, self._staging = self._staging, None
        if new is not None:
            self._drop(new)

    def _drop(self, index: str) -> None:
        self._call("deleting an unfinished index", lambda: self._client.options(ignore_status=404).indices.delete(
            index=index))

    def _delete_all(self) -> None:
        """The alias's indices, or a plain index of that name."""
        targets = self._concrete() or [self.index_name]
        for t in targets:
            self._call("deleting the index", partial(self._client.options(ignore_status=404).indices.delete, index=t))
