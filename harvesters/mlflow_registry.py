"""MLflow model registry source: every registered model and every version, through `MlflowClient`
against any tracking URI, with the MLmodel file and environment files downloaded through the
tracking server. One record per model version, linked to its registered model.

Just over ~500 lines: one source (listing, artifact facts, mapping) and the small parsers of
MLflow's own files that only it uses; none of them is shared with another source.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import httpx
import yaml
from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement as PkgRequirement
from pydantic import Field, SecretStr

from modelport.harvesters.artifact_download import CannotCap, OverCap, download_file, walk
from modelport.harvesters.base import (
    Checkpoint,
    HarvestEvent,
    HarvestMode,
    ListingComplete,
    MalformedRecord,
    Skipped,
    SourceError,
    SourceRecord,
    new_provenance,
)
from modelport.harvesters.bounded import UnsafeInput, bounded, load_json, load_yaml
from modelport.harvesters.plugin import SourceContext, SourceOptions, SourcePlugin
from modelport.schema.code_scan import MAX_CODE_BYTES, scan_python
from modelport.schema.compat import inspect_onnx
from modelport.schema.identity import record_id
from modelport.schema.kb import get_kb
from modelport.schema.record import (
    Agent,
    Artifact,
    EvaluationResult,
    Link,
    ModelRecord,
    Requirement,
    Signature,
    SourceCode,
    source_terms,
)
from modelport.schema.redact import redact_text, redact_url

log = logging.getLogger(__name__)

ENV_FILES = ("requirements.txt", "python_env.yaml", "conda.yaml")
_SPLIT_PREFIX = re.compile(r"^(train|training|val|valid|validation|eval|test)[_/.-](.+)$", re.IGNORECASE)
_SPLITS = {"training": "train", "valid": "validation", "val": "validation", "eval": "validation"}
# Onnx files are opened to read the opset they declare; larger ones are listed but not downloaded
# (a file of unknown size is streamed and dropped once it passes the cap: harvesters/artifact_download.py).
MAX_INSPECT_BYTES = 200 * 1024 * 1024
# MLmodel and environment files are small text; a listing that says otherwise is not followed.
MAX_TEXT_FILE_BYTES = 1024 * 1024


class MlflowOptions(SourceOptions):
    """The `options` table of an MLflow `[[sources]]` entry."""

    # A URI may carry credentials (http://user:password@host): held as a secret as a whole.
    tracking_uri: SecretStr
    page_size: int = Field(default=100, ge=1, le=1000)
    request_retries: int = Field(default=2, ge=0, le=20)
    request_timeout_s: int = Field(default=30, ge=1, le=3600)
    # Download caps while harvesting: ONNX files opened for their opset, and MLmodel/environment files.
    max_inspect_bytes: int = Field(default=MAX_INSPECT_BYTES, ge=1, le=64 * 1024**3)
    max_text_file_bytes: int = Field(default=MAX_TEXT_FILE_BYTES, ge=1, le=64 * 1024**2)


class MlflowSource(SourcePlugin):
    kind = "mlflow"
    harvester_version = "1.0"

    def __init__(self, tracking_uri: str, name: str = "mlflow", cache_dir: Path | None = None,
                 page_size: int = 100, request_retries: int = 2, request_timeout_s: int = 30,
                 max_inspect_bytes: int = MAX_INSPECT_BYTES, max_text_file_bytes: int = MAX_TEXT_FILE_BYTES) -> None:
        if not tracking_uri or "://" not in tracking_uri and not tracking_uri.startswith(("sqlite:", "file:")):
            raise SourceError(f"not a tracking URI: {tracking_uri!r} (expected e.g. http://host:5000)")
        # MLflow's client retries a dead server for minutes by default; a harvest should fail fast
        # and say why. These are read per request.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(request_retries))
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(request_timeout_s))
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        from mlflow import MlflowClient

        self.name = name
        self.uri = tracking_uri.rstrip("/")  # for the client only: it may carry credentials
        self.public_uri = redact_url(self.uri)  # for everything stored, logged or shown
        self.page_size = page_size
        self.max_inspect_bytes, self.max_text_file_bytes = max_inspect_bytes, max_text_file_bytes
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        self.kb = get_kb()
        self._cache = _ArtifactCache(cache_dir / f"mlflow-{name}.sqlite" if cache_dir else None)

    # -- listing -------------------------------------------------------------------------------
    Options = MlflowOptions

    @classmethod
    def create(cls, name: str, options: MlflowOptions, context: SourceContext) -> MlflowSource:
        # The artifact cache is one file per source under the data dir's cache (mlflow-<name>.sqlite).
        source = cls(options.tracking_uri.get_secret_value(), name=name, cache_dir=context.cache_root,
                     page_size=options.page_size, request_retries=options.request_retries,
                     request_timeout_s=options.request_timeout_s, max_inspect_bytes=options.max_inspect_bytes,
                     max_text_file_bytes=options.max_text_file_bytes)
        source.options = options
        return source

    def check(self) -> None:
        """Fail fast with a clear message when the server is not there."""
        scheme = urlparse(self.uri).scheme
        if scheme in ("http", "https"):
            try:
                r = httpx.get(f"{self.uri}/health", timeout=10)
            except httpx.HTTPError as e:
                raise SourceError(f"MLflow tracking server {self.public_uri} is unreachable: "
                                  f"{redact_text(str(e))}") from e
            if r.status_code >= 400:
                raise SourceError(f"MLflow tracking server {self.public_uri} answered {r.status_code} on /health")

    def events(self, mode: HarvestMode, checkpoint: dict[str, Any] | None) -> Iterator[HarvestEvent]:
        """MLflow cannot filter registry listings by update time, so every run lists all versions;
        what makes re-runs cheap is the artifact cache (model versions are immutable)."""
        self.check()
        listed = 0
        token: str | None = None
        while True:
            page = self._call(self.client.search_registered_models, max_results=self.page_size, page_token=token)
            for rm in page:
                tags = dict(rm.tags or {})
                if str(tags.get("mlflow.prompt.is_prompt", "")).lower() == "true":
                    continue  # prompts live in the registry but are not models
                try:
                    versions = self._versions(rm.name)
                except SourceError as e:
                    yield Skipped(ref=rm.name, reason=f"cannot list versions: {e}")
                    continue
                for v in versions:
                    listed += 1
                    local_id = f"{rm.name}/{v.version}"
                    try:
                        payload = self._payload(rm, v)
                    except Exception as e:  # one unreadable version never stops the harvest
                        yield Skipped(ref=local_id, reason=f"{type(e).__name__}: {e}")
                        continue
                    yield SourceRecord(local_id=local_id, payload=payload, etag=str(v.last_updated_timestamp),
                                       url=self._ui_url(rm.name, v.version))
            token = page.token
            if not token:
                break
            yield Checkpoint(state={"page_token": token, "listed": listed})
        yield Checkpoint(state={"listed": listed, "completed_at": datetime.now(UTC).isoformat()})
        yield ListingComplete(listed=listed)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return fn(*args, **kwargs)
        except MlflowException as e:
            raise SourceError(redact_text(f"MLflow at {self.public_uri}: {e.message if hasattr(e, 'message') else e}")
                              ) from e

    def _versions(self, name: str) -> list[Any]:
        out, token = [], None
        escaped = name.replace("'", "\\'")
        while True:
            page = self._call(self.client.search_model_versions, filter_string=f"name='{escaped}'",
                              max_results=1000, page_token=token)
            out.extend(page)
            token = page.token
            if not token:
                return sorted(out, key=lambda v: int(v.version))

    def _ui_url(self, name: str, version: str) -> str:
        return f"{self.public_uri}/#/models/{quote(name, safe='')}/versions/{version}"

    # -- one version -----------------------------------------------------------------------------
    def _payload(self, rm: Any, v: Any) -> dict[str, Any]:
        aliases = rm.aliases if isinstance(rm.aliases, dict) else {}
        payload: dict[str, Any] = {
            "registered_model": {
                "name": rm.name, "description": rm.description or "", "tags": dict(rm.tags or {}),
                "aliases": {k: str(val) for k, val in aliases.items()},
                "creation_timestamp": rm.creation_timestamp, "last_updated_timestamp": rm.last_updated_timestamp,
            },
            "version": {
                "version": str(v.version), "description": v.description or "", "tags": dict(v.tags or {}),
                "source": v.source, "run_id": v.run_id, "status": v.status, "user_id": v.user_id,
                "current_stage": v.current_stage, "run_link": v.run_link,
                "creation_timestamp": v.creation_timestamp, "last_updated_timestamp": v.last_updated_timestamp,
            },
        }
        model_id = getattr(v, "model_id", None) or _model_id_from_source(v.source)
        payload["run"] = self._run_data(v.run_id, model_id)
        key = f"{rm.name}\x00{v.version}\x00{v.source}"
        cached = self._cache.get(key)
        if cached is None:
            cached = self._artifact_facts(rm.name, str(v.version))
            if not cached.get("errors"):
                self._cache.put(key, cached)
        payload["artifacts"] = cached
        return payload

    def _run_data(self, run_id: str | None, model_id: str | None) -> dict[str, Any]:
        """Params and metrics, from the MLflow 3 LoggedModel when there is one, else from the run."""
        data: dict[str, Any] = {"params": {}, "metrics": {}, "errors": []}
        if model_id:
            try:
                lm = self.client.get_logged_model(model_id)
                data["params"].update(dict(lm.params or {}))
                for m in lm.metrics or []:
                    data["metrics"][m.key] = {"value": m.value, "dataset": getattr(m, "dataset_name", None)}
            except Exception as e:
                data["errors"].append(f"logged model {model_id}: {e}")
        if run_id:
            try:
                run = self.client.get_run(run_id)
                data["params"] = {**dict(run.data.params or {}), **data["params"]}
                for k, val in (run.data.metrics or {}).items():
                    data["metrics"].setdefault(k, {"value": val, "dataset": None})
            except Exception as e:
                data["errors"].append(f"run {run_id}: {e}")
        return data

    def _artifact_facts(self, name: str, version: str) -> dict[str, Any]:
        """The file listing, MLmodel, environment files and ONNX opsets of one version."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        facts: dict[str, Any] = {"files": [], "mlmodel": None, "env": {}, "onnx": {}, "errors": []}
        try:
            uri = self.client.get_model_version_download_uri(name, version)
        except Exception as e:
            facts["errors"].append(f"download URI: {e}")
            return facts
        facts["download_uri"] = uri
        try:
            repo = get_artifact_repository(uri, tracking_uri=self.uri, registry_uri=self.uri)
            facts["files"] = walk(repo, "", depth=3)
        except Exception as e:
            facts["errors"].append(f"listing artifacts: {e}")
            return facts
        names = {f["path"] for f in facts["files"]}
        sizes = {f["path"]: f.get("size") for f in facts["files"]}
        # Every download is capped (a listed size over the cap is never fetched, an unknown one is
        # streamed and stopped at the cap): a failed one is an error on the record, never the harvest's.
        with tempfile.TemporaryDirectory() as tmp:
            for fname in ("MLmodel", *ENV_FILES):
                if fname not in names:
                    if fname == "MLmodel":
                        facts["errors"].append("MLmodel file is missing")
                    continue
                try:
                    local = download_file(repo, fname, Path(tmp), self.max_text_file_bytes, sizes.get(fname))
                    text = local.read_text(errors="replace")
                except (OverCap, CannotCap) as e:
                    facts["errors"].append(f"{fname} not downloaded: {e}")
                    continue
                except Exception as e:
                    facts["errors"].append(f"downloading {fname}: {e}")
                    continue
                if fname == "MLmodel":
                    facts["mlmodel_text"] = text[:100_000]
                else:
                    facts["env"][fname] = text[:100_000]
            for f in facts["files"]:
                # Model source code (code_paths, models-from-code): read with ast, never run, for
                # code migration between frameworks (schema/code_scan.py).
                size = f.get("size")
                if f["path"].endswith(".py") and not f.get("is_dir") and (size is None or size <= MAX_CODE_BYTES):
                    try:
                        local = download_file(repo, f["path"], Path(tmp), MAX_CODE_BYTES, size)
                        facts.setdefault("code", {})[f["path"]] = scan_python(
                            f["path"], local.read_text(errors="replace"), get_kb(), size).model_dump(mode="json")
                    except Exception as e:
                        facts["errors"].append(f"reading {f['path']}: {e}")
                if f["path"].endswith(".onnx") and not f.get("is_dir"):
                    try:
                        local = download_file(repo, f["path"], Path(tmp), self.max_inspect_bytes, size)
                        facts["onnx"][f["path"]] = inspect_onnx(str(local))
                    except (OverCap, CannotCap) as e:  # listed, not opened: the opset stays unknown
                        # Not an error: the same answer every time (artifacts of a version do not
                        # change), so the facts stay cached instead of being streamed again each harvest.
                        facts.setdefault("not_downloaded", []).append(str(e))
                    except Exception as e:
                        facts["errors"].append(f"reading {f['path']}: {e}")
        return facts

    # -- normalize -------------------------------------------------------------------------------
    def normalize(self, item: SourceRecord) -> ModelRecord:
        p = item.payload
        try:
            rm, v, run, arts = p["registered_model"], p["version"], p.get("run") or {}, p.get("artifacts") or {}
        except (KeyError, TypeError) as e:
            raise MalformedRecord(f"payload lacks {e}") from e
        kb = self.kb
        name, version = rm["name"], v["version"]
        facts: dict[str, Any] = {"status": v.get("status"), "run_id": v.get("run_id"), "source": v.get("source"),
                                 "stage": v.get("current_stage"), "download_uri": arts.get("download_uri"),
                                 "tracking_uri": self.public_uri}
        errors = list(arts.get("errors") or []) + list(run.get("errors") or [])
        if arts.get("not_downloaded"):  # files over the download caps: listed, not opened
            facts["not_downloaded"] = list(arts["not_downloaded"])[:20]

        mlmodel: dict[str, Any] = {}
        if arts.get("mlmodel_text"):
            try:
                loaded = load_yaml(arts["mlmodel_text"])
                if not isinstance(loaded, dict):
                    raise ValueError("not a mapping")
                mlmodel = loaded
            except UnsafeInput as e:  # an alias bomb: refused for this record, with the reason
                raise MalformedRecord(f"MLmodel refused: {e}") from e
            except (yaml.YAMLError, ValueError) as e:
                errors.append(f"MLmodel is not valid YAML: {str(e)[:200]}")
        flavors: dict[str, Any] = mlmodel.get("flavors") if isinstance(mlmodel.get("flavors"), dict) else {}

        frameworks, declared, reqs = [], [], []
        unknown_libs: list[tuple[str, object]] = []
        produced_with: dict[str, str] = {}  # flavour version keys, e.g. {"sklearn_version": "1.9.1"}
        for flavor, conf in flavors.items():
            conf = conf if isinstance(conf, dict) else {}
            lib = kb.library_for_flavor(flavor)
            if lib is None:
                unknown_libs.append(("flavor", flavor))  # a flavour the KB does not know: a source term
                continue
            frameworks.append(lib.id)  # python_function too: every such model loads as an MLflow pyfunc
            fmt = kb.format_for_mlflow(flavor, conf.get("serialization_format"))
            declared.extend([fmt] if fmt else list(lib.declares_formats))
            produced = conf.get(lib.flavor_version_key) if lib.flavor_version_key else None
            if produced:
                produced_with[lib.flavor_version_key] = str(produced)
            if produced and lib.python_package:
                reqs.append(Requirement(name=lib.python_package, specifier=f"=={produced}", source_file="MLmodel"))
        if mlmodel.get("mlflow_version"):
            reqs.append(Requirement(name="mlflow", specifier=f"=={mlmodel['mlflow_version']}", source_file="MLmodel"))
        env_reqs = _parse_requirements(arts.get("env", {}).get("requirements.txt", ""))
        pinned = {r.name.lower() for r in env_reqs}
        requirements = env_reqs + [r for r in reqs if r.name.lower() not in pinned]

        artifacts = []
        base_uri = arts.get("download_uri", "")
        for f in arts.get("files", []):
            if f.get("is_dir"):
                continue
            fmt = kb.format_of_path(f["path"])
            # The producing versions describe the model files, not configs or env files.
            details = {**(produced_with if fmt else {}), **arts.get("onnx", {}).get(f["path"], {})}
            size = f.get("size")
            artifacts.append(Artifact(path=f["path"], format=fmt, size_bytes=size if isinstance(size, int) and
                                      size >= 0 else None, url=f"{base_uri}/{f['path']}" if base_uri else None,
                                      details=details))

        tags = {**rm.get("tags", {}), **v.get("tags", {})}
        user_tags = {k: val for k, val in tags.items() if not k.startswith("mlflow.")}
        task_tags = [(k, val) for k, val in user_tags.items()
                     if k.lower() in ("task", "mltask") and isinstance(val, str)]
        tasks = [t for t in (kb.task_id(val) for _, val in task_tags) if t]
        terms = [*source_terms("task", [(k, val) for k, val in task_tags if not kb.task_id(val)], errors.append),
                 *source_terms("library", unknown_libs, errors.append)]
        evaluations = _metrics(run.get("metrics", {}), tags.get("dataset") or tags.get("eval_dataset"))
        signature = _signature(mlmodel.get("signature"))
        if mlmodel:
            facts.update({k: mlmodel.get(k) for k in ("mlflow_version", "model_size_bytes", "model_uuid",
                                                       "utc_time_created", "model_id") if mlmodel.get(k)})
            facts["flavors"] = sorted(flavors)
            facts["flavor_config"] = {k: {kk: vv for kk, vv in (c or {}).items() if isinstance(vv, str | int | float)}
                                      for k, c in flavors.items() if isinstance(c, dict)}
        if errors:
            facts["errors"] = errors[:20]
            log.warning("%s:%s/%s recorded with problems: %s", self.name, name, version, "; ".join(errors[:3]))
        aliases = [a for a, ver in rm.get("aliases", {}).items() if str(ver) == str(version)]
        url = item.url or self._ui_url(name, version)
        return ModelRecord(
            id=record_id(self.name, item.local_id), source=self.name, source_kind=self.kind,
            local_id=item.local_id, name=name, version=str(version),
            version_group=record_id(self.name, name),
            description=(v.get("description") or rm.get("description") or None),
            authors=[Agent(name=v["user_id"], kind="person")] if v.get("user_id") else [],
            license=kb.license_id(user_tags.get("license")),
            tasks=tasks, frameworks=frameworks, source_terms=terms, artifacts=artifacts,
            declared_formats=[d for d in declared if d],
            source_code=_source_code(arts),
            training_datasets=[kb.dataset_id(user_tags["dataset"])] if user_tags.get("dataset") else [],
            evaluations=evaluations,
            keywords=[f"{k}:{val}" if val else k for k, val in user_tags.items() if k.lower() != "license"],
            aliases=aliases, created=_ts(v.get("creation_timestamp")), modified=_ts(v.get("last_updated_timestamp")),
            links=[Link(rel="registry", url=url)] + (
                [Link(rel="run", url=v["run_link"])] if v.get("run_link") else []),
            requirements=requirements, signature=signature,
            params={str(k): str(val)[:500] for k, val in (run.get("params") or {}).items()},
            source_facts=facts,
            provenance=new_provenance(self, url),
        )


def _source_code(arts: dict[str, Any]) -> list[SourceCode]:
    """The version's Python files: as read at fetch time where they were small enough, else listed."""
    read = arts.get("code") or {}
    out = []
    for f in arts.get("files") or []:
        path = f.get("path") or ""
        if f.get("is_dir") or not path.endswith(".py"):
            continue
        try:
            out.append(SourceCode.model_validate(read[path]) if path in read else
                       SourceCode(path=path, size_bytes=f.get("size") if isinstance(f.get("size"), int) else None))
        except (ValueError, TypeError):
            out.append(SourceCode(path=path))
    return out[:50]


def _model_id_from_source(source: str | None) -> str | None:
    # MLflow 3 versions point at LoggedModels: source is "models:/m-<id>" and model_id may be unset.
    if source and source.startswith("models:/m-"):
        return source.split("/", 1)[1].split("/")[0]
    return None


def _ts(ms: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(ms) / 1000, tz=UTC) if ms else None
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _parse_requirements(text: str) -> list[Requirement]:
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            req = PkgRequirement(line)
        except InvalidRequirement:
            continue
        out.append(Requirement(name=req.name, specifier=str(req.specifier), source_file="requirements.txt"))
    return out


def _signature(sig: Any) -> Signature | None:
    if not isinstance(sig, dict):
        return None
    parts: dict[str, list[dict[str, Any]]] = {}
    for key in ("inputs", "outputs"):
        raw = sig.get(key)
        try:
            val = load_json(raw[:1_000_000]) if isinstance(raw, str) else raw
        except ValueError:  # invalid or too deeply nested JSON (UnsafeInput)
            val = None
        parts[key] = [bounded(x, max_depth=8, max_items=200, max_chars=2_000) for x in val[:2_000]
                      if isinstance(x, dict)] if isinstance(val, list) else []
    return Signature(**parts)


def _metrics(metrics: dict[str, Any], dataset: str | None) -> list[EvaluationResult]:
    kb = get_kb()
    out = []
    for key, m in metrics.items():
        value = m.get("value") if isinstance(m, dict) else m
        if not isinstance(value, int | float) or value != value:  # NaN
            continue
        split, metric = None, key
        match = _SPLIT_PREFIX.match(key)
        if match:
            split = _SPLITS.get(match.group(1).lower(), match.group(1).lower())
            metric = match.group(2)
        ds = (m.get("dataset") if isinstance(m, dict) else None) or dataset
        out.append(EvaluationResult(metric=kb.metric_id(metric), metric_name=key, value=float(value), split=split,
                                    dataset=kb.dataset_id(ds) if ds else None, dataset_name=ds,
                                    provenance="mlflow-run"))
    return out


class _ArtifactCache:
    """Artifact facts per model version. Versions are immutable once registered, so a re-harvest
    never downloads the same MLmodel twice."""

    def __init__(self, path: Path | None) -> None:
        self.conn = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(path, check_same_thread=False)
            self.conn.execute("CREATE TABLE IF NOT EXISTS facts (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def get(self, key: str) -> dict[str, Any] | None:
        if self.conn is None:
            return None
        row = self.conn.execute("SELECT value FROM facts WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        if self.conn is not None:
            with self.conn:
                self.conn.execute("INSERT OR REPLACE INTO facts VALUES (?, ?)", (key, json.dumps(value)))
