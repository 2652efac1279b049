"""Kaggle Models source (the successor of TF Hub), read through the `kaggle` package's SDK
(`kagglesdk` ModelApiClient.list_models: `POST {endpoint}/v1/models.ModelApiService/ListModels`).

One record per model instance (`<owner>/<model>/<framework>/<variation>`, the kagglehub handle): an
instance is the deployable thing, its latest version number is the record's version. Formats and
libraries come from the instance framework through the KB (`mp:kaggleFramework` in
ontology/kb/formats.ttl and libraries.ttl).

The SDK reads its endpoint from a fixed enum (`KaggleEnv`: PROD https://api.kaggle.com, TEST
http://localhost:7777 …). A configurable base URL (a mirror, a proxy, a local fake) is had by a
small KaggleHttpClient subclass that overrides the one method building request URLs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from datetime import datetime
from functools import cache
from typing import Any

from pydantic import Field, SecretStr
from rdflib import RDF

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
from modelport.harvesters.plugin import SourceContext, SourceOptions, SourcePlugin
from modelport.harvesters.ratelimit import RETRY_STATUSES, RetryPolicy, call_with_retry
from modelport.schema.kb import MP, get_kb, local_name
from modelport.schema.record import (
    Agent,
    Artifact,
    BaseModelLink,
    CardSections,
    Link,
    ModelRecord,
    Popularity,
    Provenance,
)

HARVESTER_VERSION = "1.0.0"
DEFAULT_ENDPOINT = "https://api.kaggle.com"
CARD_BODY_CAP = 20_000


# -- KB look-ups -----------------------------------------------------------------------------------

def _norm_framework(value: str) -> str:
    """`MODEL_FRAMEWORK_TENSOR_FLOW_2`, `tensorFlow2` and `TensorFlow2` all become `tensorflow2`."""
    v = value.strip()
    if v.upper().startswith("MODEL_FRAMEWORK_"):
        v = v[len("MODEL_FRAMEWORK_"):]
    return re.sub(r"[\s_-]+", "", v).lower()


@cache
def _framework_index(rdf_type: str) -> dict[str, tuple[str, ...]]:
    kb = get_kb()
    out: dict[str, set[str]] = {}
    for s, o in kb.graph.subject_objects(MP.kaggleFramework):
        if (s, RDF.type, MP[rdf_type]) in kb.graph:
            out.setdefault(_norm_framework(str(o)), set()).add(local_name(s))
    return {k: tuple(sorted(v)) for k, v in out.items()}


def format_for_framework(framework: str) -> str | None:
    hits = _framework_index("Format").get(_norm_framework(framework), ())
    return hits[0] if hits else None


def library_for_framework(framework: str) -> str | None:
    hits = _framework_index("Library").get(_norm_framework(framework), ())
    return hits[0] if hits else None


def framework_slug(framework: str) -> str:
    """Kaggle's URL/handle spelling of a framework enum: MODEL_FRAMEWORK_TENSOR_FLOW_2 → tensorFlow2."""
    v = framework.strip()
    if not v.upper().startswith("MODEL_FRAMEWORK_"):
        return v
    parts = v[len("MODEL_FRAMEWORK_"):].lower().split("_")
    return parts[0] + "".join(p.capitalize() for p in parts[1:])


def _kaggle_transient(exc: BaseException) -> bool:
    """A 408/429/5xx answer or a network failure: worth another try; any other answer is final."""
    import requests

    if isinstance(exc, requests.HTTPError):
        return exc.response is not None and exc.response.status_code in RETRY_STATUSES
    return isinstance(exc, requests.RequestException)


def _kaggle_headers(exc: BaseException) -> Any:
    resp = getattr(exc, "response", None)
    return resp.headers if resp is not None else None


# -- the SDK client ----------------------------------------------------------------------------------

def make_model_client(endpoint: str, username: str | None, key: str | None, api_token: str | None,
                      user_agent: str) -> Any:
    """A kagglesdk ModelApiClient talking to `endpoint` (`https://api.kaggle.com`, or `http://host/api`
    for a Kaggle-style deployment: requests go to `{endpoint}/v1/<service>/<method>`)."""
    from kagglesdk.kaggle_env import KaggleEnv
    from kagglesdk.kaggle_http_client import KaggleHttpClient
    from kagglesdk.models.services.model_api_service import ModelApiClient

    base = endpoint.rstrip("/")

    class EndpointHttpClient(KaggleHttpClient):  # type: ignore[misc]
        def _get_request_url(self, service_name: str, request_name: str) -> str:
            return f"{base}/v1/{service_name}/{request_name}"

    http = EndpointHttpClient(env=KaggleEnv.PROD, username=username, password=key, api_token=api_token,
                              user_agent=user_agent)
    return ModelApiClient(http)


class KaggleOptions(SourceOptions):
    """The `options` table of a Kaggle `[[sources]]` entry (credentials default to KAGGLE_USERNAME +
    KAGGLE_KEY or KAGGLE_API_TOKEN from the environment)."""

    endpoint: str = Field(default=DEFAULT_ENDPOINT, min_length=1, max_length=2000)
    owner: str | None = Field(default=None, max_length=200)
    search: str | None = Field(default=None, max_length=500)
    page_size: int = Field(default=50, ge=1, le=1000)
    username: str | None = Field(default=None, max_length=200)
    key: SecretStr | None = None
    api_token: SecretStr | None = None
    retries: int = Field(default=3, ge=0, le=20)
    backoff_s: float = Field(default=1.0, ge=0, le=600)
    max_pages: int | None = Field(default=None, ge=1)


class KaggleSource(SourcePlugin):
    """Kaggle Models, optionally narrowed to one owner and/or a search string."""

    kind = "kaggle"
    harvester_version = HARVESTER_VERSION

    def __init__(self, *, name: str = "kaggle", endpoint: str = DEFAULT_ENDPOINT, owner: str | None = None,
                 search: str | None = None, page_size: int = 50, username: str | None = None,
                 key: str | None = None, api_token: str | None = None,
                 retries: int = 3, backoff_s: float = 1.0, max_pages: int | None = None) -> None:
        self.name = name
        self.endpoint = endpoint
        self.owner = owner
        self.search = search
        self.page_size = page_size
        self.username = username if username is not None else os.environ.get("KAGGLE_USERNAME")
        # Held as SecretStr: no repr or log of the source shows them; unwrapped only for the client.
        self.key = _secret(key if key is not None else os.environ.get("KAGGLE_KEY"))
        self.api_token = _secret(api_token if api_token is not None else os.environ.get("KAGGLE_API_TOKEN"))
        self.retries = retries
        self.backoff_s = backoff_s
        self.policy = RetryPolicy(attempts=retries + 1, base_wait_s=backoff_s, max_wait_s=max(60.0, backoff_s))
        self.max_pages = max_pages
        if not self.api_token and not (self.username and self.key):
            # The API refuses anonymous calls, even for public models.
            raise SourceError("Kaggle credentials missing: set KAGGLE_USERNAME and KAGGLE_KEY "
                              "(or KAGGLE_API_TOKEN)")
        self._client: Any = None

    Options = KaggleOptions

    @classmethod
    def create(cls, name: str, options: KaggleOptions, context: SourceContext) -> KaggleSource:
        o = options
        source = cls(name=name, endpoint=o.endpoint, owner=o.owner, search=o.search, page_size=o.page_size,
                     username=o.username, key=o.key, api_token=o.api_token,  # type: ignore[arg-type]
                     retries=o.retries, backoff_s=o.backoff_s, max_pages=o.max_pages)
        source.options = o
        return source

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = make_model_client(self.endpoint, self.username, _plain(self.key), _plain(self.api_token),
                                             user_agent=f"modelport-kaggle/{HARVESTER_VERSION}")
        return self._client

    # -- listing ---------------------------------------------------------------------------------
    def _list_page(self, page_token: str | None, sort_by: str) -> Any:
        import requests
        from kagglesdk.models.types.model_api_service import ApiListModelsRequest
        from kagglesdk.models.types.model_enums import ListModelsOrderBy

        req = ApiListModelsRequest()
        req.sort_by = ListModelsOrderBy[sort_by]
        req.page_size = self.page_size
        if self.owner:
            req.owner = self.owner
        if self.search:
            req.search = self.search
        if page_token:
            req.page_token = page_token
        try:
            # The one retry policy (harvesters/ratelimit.py): waits what Retry-After says, else backs off.
            return call_with_retry(lambda: self.client.list_models(req), describe="Kaggle ListModels",
                                   limiter=None, policy=self.policy, is_retryable=_kaggle_transient,
                                   headers_of=_kaggle_headers)
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status in (401, 403):
                raise SourceError(f"Kaggle refused the credentials at {self.endpoint} (HTTP {status})") from exc
            raise SourceError(f"Kaggle ListModels failed at {self.endpoint}: {exc}") from exc
        except requests.RequestException as exc:
            raise SourceError(f"cannot reach Kaggle at {self.endpoint}: {exc}") from exc

    def events(self, mode: HarvestMode, checkpoint: dict[str, Any] | None) -> Iterator[HarvestEvent]:
        checkpoint = checkpoint or {}
        # Incremental: newest updates first, stop at the last complete harvest's watermark.
        watermark = checkpoint.get("watermark") if mode == "incremental" else None
        # A listing interrupted mid-way resumes at its page; then it is not a complete listing.
        resume = checkpoint.get("page_token") if checkpoint.get("in_progress") else None
        page_token = resume
        started = datetime.now().astimezone().isoformat()
        newest = checkpoint.get("newest_update")
        listed = 0
        pages = 0
        stopped_early = False
        while True:
            resp = self._list_page(page_token, "LIST_MODELS_ORDER_BY_UPDATE_TIME")
            pages += 1
            for model in resp.models:
                mdict = model.to_dict()
                updated = mdict.get("updateTime")
                if watermark and updated and updated < watermark:
                    stopped_early = True
                    break
                if updated and (newest is None or updated > newest):
                    newest = updated
                instances = mdict.pop("instances", []) or []
                if not instances:
                    yield Skipped(ref=mdict.get("ref", "?"), reason="Kaggle model without instances")
                    continue
                for inst in instances:
                    local_id = instance_handle(mdict, inst)
                    if local_id is None:
                        yield Skipped(ref=mdict.get("ref", "?"), reason=f"instance without slug/framework: {inst}")
                        continue
                    payload = {"model": mdict, "instance": inst}
                    blob = json.dumps(payload, sort_keys=True).encode()
                    listed += 1
                    yield SourceRecord(local_id=local_id, payload=payload, url=inst.get("url") or mdict.get("url"),
                                       etag=hashlib.sha256(blob).hexdigest()[:32])
            page_token = resp.next_page_token or None
            if stopped_early or not page_token or (self.max_pages is not None and pages >= self.max_pages):
                break
            yield Checkpoint(state={"in_progress": True, "page_token": page_token,
                                    "watermark": checkpoint.get("watermark"), "newest_update": newest})
        complete = not stopped_early and page_token is None and resume is None
        state: dict[str, Any] = {"in_progress": False, "page_token": None, "newest_update": newest,
                                 "watermark": checkpoint.get("watermark")}
        if complete or stopped_early:
            state["watermark"] = newest or started
        yield Checkpoint(state=state)
        if complete:  # every page read from the first: unseen records may go
            yield ListingComplete(listed=listed)

    # -- normalize ---------------------------------------------------------------------------------
    def normalize(self, item: SourceRecord) -> ModelRecord:
        try:
            return self._normalize(item)
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedRecord(f"Kaggle payload {item.local_id}: {exc}") from exc

    def _normalize(self, item: SourceRecord) -> ModelRecord:
        kb = get_kb()
        model: dict[str, Any] = item.payload["model"]
        inst: dict[str, Any] = item.payload["instance"]
        framework = str(inst.get("framework") or "")
        fmt = format_for_framework(framework)
        lib = library_for_framework(framework)
        rid = f"{self.name}:{item.local_id}"
        owner = model.get("author") or model["ref"].split("/", 1)[0]

        tasks: list[str] = []
        keywords = ["kaggle", framework_slug(framework)]
        for tag in model.get("tags") or []:
            tid = kb.task_id(tag.get("ref") or "") or kb.task_id(tag.get("name") or "")
            if tid:
                tasks.append(tid)
            else:
                keywords.append(tag.get("ref") or tag.get("name"))

        base_models: list[BaseModelLink] = []
        base = inst.get("baseModelInstanceInformation") or {}
        if base.get("modelSlug") and base.get("instanceSlug"):
            bowner = (base.get("owner") or {}).get("slug") or owner
            bfw = framework_slug(str(base.get("framework") or framework))
            base_models.append(BaseModelLink(
                ref=f"{self.name}:{bowner}/{base['modelSlug']}/{bfw}/{base['instanceSlug']}", relation="finetune"))
        elif inst.get("externalBaseModelUrl"):
            base_models.append(BaseModelLink(ref=inst["externalBaseModelUrl"], relation="derived"))

        datasets = [kb.dataset_id(d) for d in _training_data(inst.get("trainingData"))]
        size = inst.get("totalUncompressedBytes")
        artifacts = []
        if size:
            artifacts.append(Artifact(path=f"{item.local_id}/{inst.get('versionNumber', '')}".rstrip("/"),
                                      format=fmt, size_bytes=int(size), url=inst.get("downloadUrl") or None,
                                      details={"archive": "whole model instance version"}))
        links = [Link(rel="kaggle", url=inst["url"])] if inst.get("url") else []
        if model.get("url"):
            links.append(Link(rel="source", url=model["url"]))
        body = "\n\n".join(x for x in (model.get("description"), inst.get("overview"), inst.get("usage")) if x)
        publisher = Agent(name=owner, kind="organization", url=f"https://www.kaggle.com/{owner}")
        record = ModelRecord(
            id=rid,
            source=self.name,
            source_kind=self.kind,
            local_id=item.local_id,
            name=f"{model.get('title') or model['ref']} ({framework_slug(framework)}/{inst.get('slug')})",
            description=model.get("subtitle") or None,
            authors=[publisher],
            publisher=publisher,
            license=kb.license_id(inst.get("licenseName")),
            tasks=tasks,
            frameworks=[lib] if lib else [],
            artifacts=artifacts,
            declared_formats=[fmt] if fmt else [],
            base_models=base_models,
            training_datasets=datasets,
            keywords=keywords,
            version=str(inst["versionNumber"]) if inst.get("versionNumber") is not None else None,
            version_group=f"{self.name}:{model['ref']}",
            created=_dt(model.get("publishTime")),
            modified=_dt(model.get("updateTime")),
            popularity=Popularity(likes=model.get("voteCount")),
            links=links,
            card=CardSections(body=body[:CARD_BODY_CAP] or None,
                              training_data="\n".join(_as_list(inst.get("trainingData"))) or None),
            access="private" if model.get("isPrivate") else "public",
            source_facts={k: v for k, v in {
                "model_ref": model["ref"], "model_id": model.get("id"), "instance_id": inst.get("id"),
                "instance_slug": inst.get("slug"), "framework": framework_slug(framework),
                "fine_tunable": inst.get("fineTunable", False), "instance_type": inst.get("modelInstanceType"),
                "version_id": inst.get("versionId"), "license_name": inst.get("licenseName"),
            }.items() if v is not None},
            provenance=Provenance(**new_provenance(self, inst.get("url") or model.get("url"))),
        )
        return record.with_hash()


def instance_handle(model: dict[str, Any], inst: dict[str, Any]) -> str | None:
    if not model.get("ref") or not inst.get("slug") or not inst.get("framework"):
        return None
    return f"{model['ref']}/{framework_slug(str(inst['framework']))}/{inst['slug']}"


def _as_list(v: Any) -> list[str]:
    # `trainingData` is a repeated string on the wire (a list), a plain string in older payloads.
    items = v if isinstance(v, list) else [v] if v else []
    return [str(x) for x in items if x]


def _training_data(v: Any) -> list[str]:
    items = _as_list(v)
    # Free text; only short names (a dataset name, not a paragraph) become dataset ids.
    return [x.strip() for x in items if isinstance(x, str) and x.strip() and len(x) <= 64 and "\n" not in x]


def _dt(v: Any) -> datetime | None:
    if not v:
        return None
    try:
        return datetime.fromisoformat(str(v).replace("Z", "+00:00"))
    except ValueError:
        return None


# -- CLI -------------------------------------------------------------------------------------------

__all__ = ["KaggleSource", "format_for_framework", "library_for_framework",
           "framework_slug", "make_model_client"]


def _secret(value: str | SecretStr | None) -> SecretStr | None:
    return SecretStr(value) if isinstance(value, str) and value else value or None


def _plain(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None
