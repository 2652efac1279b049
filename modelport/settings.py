"""Settings from the environment (`MODELPORT_*`) and an optional TOML file (`MODELPORT_CONFIG`)."""

from __future__ import annotations

import importlib.util
import json
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from modelport.schema.identity import DEFAULT_BASE_IRI


class SourceConfig(BaseModel):
    """One configured source: `kind` picks the harvester, `name` is unique in the catalog. Options
    whose names say they are credentials (token, key, password, secret …), and URLs carrying
    credentials, are held as SecretStr, so
    no repr, log or dump of the settings shows them; `plain_options` unwraps them for the harvester."""

    name: str = Field(min_length=1, max_length=200)
    # A built-in kind (mlflow, huggingface, tfhub, kaggle) or one an installed plug-in declares in
    # the entry-point group `modelport.sources` (harvesters/registry.py).
    kind: str = Field(min_length=1, max_length=100)
    options: dict[str, Any] = Field(default_factory=dict)  # e.g. {"tracking_uri": "http://…"}
    schedule: str | None = None  # cron expression for `modelport schedule`
    # `modelport verify` loads this source's pickled models (code runs; in a sandbox without network).
    trusted: bool = False
    # A run still going after this long is stopped (at its next record or batch) and recorded as
    # stopped for its time limit; a listing of the whole Hub takes ~10 minutes, enrichment longer.
    time_limit_s: float = Field(default=6 * 3600.0, gt=0)

    @field_validator("options")
    @classmethod
    def _secrets_hidden(cls, v: dict[str, Any]) -> dict[str, Any]:
        from modelport.schema.redact import SECRET_OPTION, redact_url

        # A URL with credentials in it (http://user:password@host, ?token=…) is a secret as a whole.
        return {k: SecretStr(val) if isinstance(val, str) and (SECRET_OPTION.search(k) or redact_url(val) != val)
                else val for k, val in v.items()}

    @model_validator(mode="after")
    def _options_fit_kind(self) -> SourceConfig:
        # Checked when the settings load (every command, `serve` before it listens): a misspelt or
        # out-of-range option is an error naming the source and the field, not a failure at the
        # first scheduled run. The kind's module is imported here (its extra must be installed).
        from modelport.harvesters.registry import validate_options

        validate_options(self.kind, self.name, self.plain_options())
        return self

    def plain_options(self) -> dict[str, Any]:
        """The options as the harvester takes them (secrets unwrapped: pass them on, never print them)."""
        return {k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in self.options.items()}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MODELPORT_", env_nested_delimiter="__", extra="ignore")

    data_dir: Path = Path("var/modelport")
    base_iri: str = DEFAULT_BASE_IRI
    search_backend: Literal["embedded", "elasticsearch"] = "embedded"
    # The Elasticsearch backend's server (credentials may be given as http://user:password@host:9200;
    # the backend's messages and logs leave them out, and so does the settings' repr), its index and
    # an optional API key. Checked when the settings load, without connecting: the first search or
    # harvest contacts the server.
    elasticsearch_url: str | None = Field(default=None, validate_default=True, repr=False)
    elasticsearch_index: str = Field(default="modelport", min_length=1)
    elasticsearch_api_key: SecretStr | None = None

    @field_validator("search_backend")
    @classmethod
    def _backend_usable(cls, v: str) -> str:
        # Say so at startup rather than fail on an import deep inside the first harvest or search.
        if v == "elasticsearch" and importlib.util.find_spec("elasticsearch") is None:
            raise ValueError("the Elasticsearch search backend needs the official client: "
                             "pip install 'modelport[elasticsearch]' (or set MODELPORT_SEARCH_BACKEND=embedded)")
        return v

    @field_validator("elasticsearch_url")
    @classmethod
    def _url_for_backend(cls, v: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("search_backend") == "elasticsearch" and not (v and v.strip()):
            raise ValueError("the Elasticsearch search backend needs MODELPORT_ELASTICSEARCH_URL, e.g. "
                             "http://localhost:9200 (or set MODELPORT_SEARCH_BACKEND=embedded)")
        return v.strip() if v else v

    embeddings: bool = True  # use dense vectors when the extra is installed
    # `modelport verify` downloads at most this much per model (known sizes are checked first).
    max_download_bytes: int = Field(default=2 * 1024**3, gt=0)
    # A harvest commits the search index (making its records searchable) at most this often.
    search_commit_interval_s: float = Field(default=2.0, ge=0.0)
    # Full harvests never tombstone more than this share of a source's live records in one run.
    tombstone_failsafe_ratio: float = Field(default=0.25, ge=0.0, le=1.0)
    # `serve` projects what the catalog's outboxes hold (e.g. left by a crash) this often; 0: never.
    outbox_drain_interval_s: float = Field(default=30.0, ge=0.0)
    query_timeout_s: float = Field(default=10.0, gt=0)
    max_results: int = Field(default=1000, gt=0)
    # -- serving limits (README "Limits, admin token and CORS") ------------------------------------
    # SPARQL runs in this many child processes (lower CPU priority), each allowed to grow by
    # `query_memory_mb` over its idle size; a query waits for a free one within its own time limit.
    sparql_workers: int = Field(default=2, ge=1, le=16)
    sparql_queue: int = Field(default=8, ge=0, le=256)  # queries waiting beyond these get a 503 at once
    query_memory_mb: int = Field(default=1024, ge=64)
    sparql_max_result_mb: int = Field(default=32, ge=1)  # a serialized answer larger than this is refused
    # Queries read a snapshot of the graph taken after writes, at most this often (the staleness bound).
    sparql_snapshot_interval_s: float = Field(default=5.0, ge=0.0)
    max_request_bytes: int = Field(default=64 * 1024, ge=1024)  # request body and query string each
    # State-changing routes need `Authorization: Bearer <token>`; without a token they are disabled.
    admin_token: SecretStr | None = Field(default=None, repr=False)
    # Origins allowed to call the API from a browser (CORS); none by default. Comma-separated or JSON.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, v: Any) -> Any:
        if isinstance(v, str):
            if v.strip().startswith("["):
                return json.loads(v)
            return [o.strip() for o in v.split(",") if o.strip()]
        return v
    sources: list[SourceConfig] = Field(default_factory=list)

    @field_validator("sources")
    @classmethod
    def _names_unique(cls, v: list[SourceConfig]) -> list[SourceConfig]:
        # The name is the catalog's key for one registry (records, checkpoints, schedules).
        seen: set[str] = set()
        for c in v:
            if c.name in seen:
                raise ValueError(f"two [[sources]] entries are named {c.name!r}")
            seen.add(c.name)
        return v

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _TomlSource(settings_cls)

    @property
    def catalog_path(self) -> Path:
        return self.data_dir / "catalog.sqlite"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def graph_dir(self) -> Path:
        return self.data_dir / "graph"

    def ensure_dirs(self) -> None:
        for d in (self.data_dir, self.index_dir, self.graph_dir):
            d.mkdir(parents=True, exist_ok=True)


class _TomlSource(PydanticBaseSettingsSource):
    """Reads the TOML file named by MODELPORT_CONFIG (keys as in Settings, `[[sources]]` tables)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        import os

        path = os.environ.get("MODELPORT_CONFIG")
        if not path:
            return {}
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"MODELPORT_CONFIG points at {p}, which is not a file")
        with p.open("rb") as fh:
            return tomllib.load(fh)
