"""Settings (modelport/settings.py): environment over the TOML file named by MODELPORT_CONFIG,
credentials hidden, and `[[sources]]` checked when the settings load."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from modelport.settings import Settings, SourceConfig


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("MODELPORT_CONFIG", "MODELPORT_BASE_IRI", "MODELPORT_DATA_DIR", "MODELPORT_CORS_ORIGINS",
                "MODELPORT_SEARCH_BACKEND", "MODELPORT_ELASTICSEARCH_URL"):
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "modelport.toml"
    monkeypatch.setenv("MODELPORT_CONFIG", str(path))
    return path


def test_toml_file_and_environment(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config.write_text('base_iri = "http://from.toml"\nmax_results = 50\n'
                      '[[sources]]\nname = "team"\nkind = "mlflow"\nschedule = "0 3 * * *"\n'
                      '[sources.options]\ntracking_uri = "http://127.0.0.1:5000"\npage_size = 20\n')
    s = Settings()
    assert s.base_iri == "http://from.toml" and s.max_results == 50
    assert [(c.name, c.kind, c.schedule) for c in s.sources] == [("team", "mlflow", "0 3 * * *")]
    assert s.sources[0].plain_options() == {"tracking_uri": "http://127.0.0.1:5000", "page_size": 20}
    monkeypatch.setenv("MODELPORT_BASE_IRI", "http://from.env")  # the environment wins over the file
    assert Settings().base_iri == "http://from.env"


def test_missing_config_file_is_an_error(config: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a file"):
        Settings()


def test_credentials_in_source_options_are_hidden(config: Path) -> None:
    c = SourceConfig(name="hub", kind="huggingface", options={"token": "hf_s3cret", "endpoint": "http://h.test"})
    assert isinstance(c.options["token"], SecretStr) and c.options["endpoint"] == "http://h.test"
    assert "hf_s3cret" not in repr(c) and "hf_s3cret" not in c.model_dump_json()
    assert c.plain_options()["token"] == "hf_s3cret"  # what the harvester gets
    uri = SourceConfig(name="ml", kind="mlflow", options={"tracking_uri": "http://u:pw0rd@127.0.0.1:5000"})
    assert isinstance(uri.options["tracking_uri"], SecretStr) and "pw0rd" not in repr(uri)


@pytest.mark.parametrize(("kind", "options", "field"), [
    ("mlflow", {}, "tracking_uri"),
    ("mlflow", {"tracking_uri": "http://x", "page_size": 10**6}, "page_size"),
    ("huggingface", {"enrich_priority": []}, "enrich_priority"),
    ("kaggle", {"api_token": "t", "retries": -1}, "retries"),
    ("tfhub", {"root": "file:///x", "crawl_options": {"max_pages": 0}}, "crawl_options"),
])
def test_bad_source_options_fail_when_the_settings_load(kind: str, options: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as e:
        Settings(sources=[{"name": "prod", "kind": kind, "options": options}])
    text = str(e.value)
    assert "'prod'" in text and f"options.{field}" in text


def test_source_names_are_unique_and_kinds_known() -> None:
    with pytest.raises(ValidationError, match="two \\[\\[sources\\]\\] entries are named 'a'"):
        Settings(sources=[{"name": "a", "kind": "tfhub", "options": {"root": "file:///x"}},
                          {"name": "a", "kind": "tfhub", "options": {"root": "file:///y"}}])
    with pytest.raises(ValidationError, match="unknown source kind 'svn'"):
        Settings(sources=[{"name": "a", "kind": "svn"}])


def test_cors_origins_and_backend_checks(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config.write_text("")
    monkeypatch.setenv("MODELPORT_CORS_ORIGINS", "http://a.test, http://b.test")
    assert Settings().cors_origins == ["http://a.test", "http://b.test"]
    monkeypatch.setenv("MODELPORT_CORS_ORIGINS", '["http://c.test"]')
    assert Settings().cors_origins == ["http://c.test"]
    monkeypatch.setenv("MODELPORT_SEARCH_BACKEND", "elasticsearch")
    with pytest.raises(ValidationError, match="needs MODELPORT_ELASTICSEARCH_URL"):
        Settings()
    monkeypatch.setenv("MODELPORT_ELASTICSEARCH_URL", " http://127.0.0.1:9200 ")
    assert Settings().elasticsearch_url == "http://127.0.0.1:9200"
