"""Sources are plug-ins (harvesters/plugin.py, harvesters/registry.py): a third-party distribution
adds a source kind through the entry-point group `modelport.sources` without editing ModelPort, and
harvests through the real pipeline; `[[sources]]` options are checked when the settings load (exit 2
naming the source and the field); every `harvest <kind>` command takes a configured source's options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from modelport.harvesters import registry
from modelport.harvesters.base import SourceError
from modelport.harvesters.plugin import SourceContext
from modelport.index.search import SearchQuery
from modelport.pipeline import Pipeline
from modelport.settings import Settings

ROOT = Path(__file__).resolve().parents[1]

# A whole third-party source in one module: options, listing and mapping. It imports only
# ModelPort's public plug-in API.
PLUGIN_MODULE = textwrap.dedent('''
    import json
    from pathlib import Path

    from pydantic import Field

    from modelport.harvesters.base import ListingComplete, MalformedRecord, SourceRecord, new_provenance
    from modelport.harvesters.plugin import SourceOptions, SourcePlugin
    from modelport.schema.identity import record_id
    from modelport.schema.record import ModelRecord


    class Options(SourceOptions):
        path: str = Field(min_length=1)
        max_items: int = Field(default=100, ge=1, le=10_000)


    class LocalJsonSource(SourcePlugin):
        kind = "localjson"
        Options = Options
        harvester_version = "0.1"

        def events(self, mode, checkpoint):
            items = json.loads(Path(self.options.path).read_text())[: self.options.max_items]
            for it in items:
                yield SourceRecord(local_id=it["id"], payload=it)
            yield ListingComplete(listed=len(items))

        def normalize(self, item):
            p = item.payload
            if "name" not in p:
                raise MalformedRecord("no name")
            return ModelRecord(id=record_id(self.name, item.local_id), source=self.name, source_kind=self.kind,
                               local_id=item.local_id, name=p["name"], description=p.get("desc"),
                               tasks=p.get("tasks", []), provenance=new_provenance(self, None))


    class NotASource:
        pass
''')


def write_plugin_dist(site: Path) -> None:
    """An installed distribution as importlib.metadata finds it: a module and a dist-info folder
    with METADATA and entry_points.txt (what `pip install` of a wheel leaves behind)."""
    site.mkdir(parents=True, exist_ok=True)
    (site / "mp_localjson.py").write_text(PLUGIN_MODULE)
    info = site / "mp_localjson-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mp-localjson\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[modelport.sources]\nlocaljson = mp_localjson:LocalJsonSource\n"
                                           "broken = mp_localjson:NotASource\nmissing = mp_localjson_nope:X\n")


@pytest.fixture
def plugin_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The plug-in distribution on sys.path for this test only (monkeypatch restores sys.path)."""
    site = tmp_path / "site"
    write_plugin_dist(site)
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("mp_localjson", None)


def models_file(tmp_path: Path) -> Path:
    f = tmp_path / "models.json"
    f.write_text(json.dumps([
        {"id": "acme/tiny-detector", "name": "Tiny detector", "desc": "finds gizmos in photos",
         "tasks": ["object-detection"]},
        {"id": "acme/no-name"},  # malformed: skipped with its reason, the rest goes on
        {"id": "acme/sentiment", "name": "Sentiment", "desc": "reads moods", "tasks": ["text-classification"]},
    ]))
    return f


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([sys.executable, "-m", "modelport.cli", *args], capture_output=True, text=True,
                       env={"PATH": "/usr/bin:/bin", "MODELPORT_EMBEDDINGS": "false", **env}, timeout=180, cwd=ROOT)
    r.stderr = " ".join(r.stderr.split())  # the console wraps long messages at its width
    return r


def test_plugin_kinds_come_from_entry_points_only_while_installed(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    assert "localjson" not in registry.kinds()
    with pytest.raises(registry.UnknownSourceKind, match="unknown source kind 'localjson'"):
        registry.load("localjson")
    write_plugin_dist(tmp_path / "site")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    try:
        assert {"localjson", "mlflow", "huggingface", "tfhub", "kaggle"} <= set(registry.kinds())
        assert registry.load("localjson").kind == "localjson"
        with pytest.raises(registry.UnknownSourceKind, match="not a modelport SourcePlugin"):
            registry.load("broken")
        with pytest.raises(registry.UnknownSourceKind, match="cannot be loaded"):
            registry.load("missing")
    finally:
        sys.modules.pop("mp_localjson", None)


def test_plugin_harvests_through_the_pipeline(plugin_site: Path, tmp_path: Path) -> None:
    path = models_file(tmp_path)
    src = registry.build("localjson", "acme-models", {"path": str(path)}, SourceContext())
    p = Pipeline(Settings(data_dir=tmp_path / "data", base_iri="http://models.acme.test", embeddings=False))
    try:
        report = p.harvest(src, mode="full")
        assert report.counts["inserted"] == 2 and report.counts["skipped"] == 1
        assert "no name" in report.errors[0]["reason"]
        assert {r.id for r in p.catalog.iter_records(source="acme-models")} == {
            "acme-models:acme/sentiment", "acme-models:acme/tiny-detector"}
        # The source never sees the deployment's base IRI: the pipeline gives each record its IRI.
        assert {r.iri for r in p.catalog.iter_records(source="acme-models")} == {
            "http://models.acme.test/model/acme-models/acme/sentiment",
            "http://models.acme.test/model/acme-models/acme/tiny-detector"}
        assert [h.id for h in p.search.search(SearchQuery(text="gizmos")).hits] == ["acme-models:acme/tiny-detector"]
    finally:
        p.close()


def test_plugin_options_are_checked_like_builtin_ones(plugin_site: Path) -> None:
    with pytest.raises(registry.SourceOptionsError) as e:
        registry.build("localjson", "acme", {"path": "x", "max_itmes": 5}, SourceContext())
    assert "'acme'" in str(e.value) and "options.max_itmes" in str(e.value) and e.value.fields == ["max_itmes"]
    with pytest.raises(registry.SourceOptionsError, match=r"options\.max_items"):
        registry.build("localjson", "acme", {"path": "x", "max_items": 10**9}, SourceContext())


def test_configured_plugin_source_harvests_from_the_command_line(plugin_site: Path, tmp_path: Path) -> None:
    """A user installs the distribution, names its kind in `[[sources]]` and runs the real CLI."""
    cfg = tmp_path / "modelport.toml"
    cfg.write_text(f'[[sources]]\nname = "acme-models"\nkind = "localjson"\n'
                   f'[sources.options]\npath = "{models_file(tmp_path)}"\n')
    env = {"MODELPORT_DATA_DIR": str(tmp_path / "data"), "MODELPORT_CONFIG": str(cfg),
           "PYTHONPATH": os.pathsep.join([str(plugin_site), str(ROOT)])}
    r = cli("harvest", "configured", env=env)
    assert r.returncode == 0, r.stderr
    r = cli("search", "gizmos", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert [h["id"] for h in json.loads(r.stdout)["hits"]] == ["acme-models:acme/tiny-detector"]


@pytest.mark.parametrize(("kind", "options", "field"), [
    ("mlflow", 'tracking_uri = "http://127.0.0.1:9"\npage_sise = 10', "page_sise"),
    ("mlflow", 'tracking_uri = "http://127.0.0.1:9"\npage_size = 0', "page_size"),
    ("huggingface", 'retry_attempts = "many"', "retry_attempts"),
    ("tfhub", 'root = "file:///nowhere"\ncrawl_options = { max_pagez = 3 }', "crawl_options"),
    ("kaggle", 'api_token = "x"\nownr = "google"', "ownr"),
])
def test_bad_source_option_is_exit_2_at_startup(tmp_path: Path, kind: str, options: str, field: str) -> None:
    """Any command (here `jobs`, which harvests nothing) refuses settings whose source options do
    not fit, naming the source and the field, before doing anything."""
    cfg = tmp_path / "modelport.toml"
    cfg.write_text(f'[[sources]]\nname = "prod-{kind}"\nkind = "{kind}"\n[sources.options]\n{options}\n')
    r = cli("jobs", env={"MODELPORT_DATA_DIR": str(tmp_path / "data"), "MODELPORT_CONFIG": str(cfg)})
    assert r.returncode == 2, r.stderr
    assert f"prod-{kind}" in r.stderr and f"options.{field}" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "data").exists()  # nothing was started


def test_unknown_kind_is_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "modelport.toml"
    cfg.write_text('[[sources]]\nname = "x"\nkind = "gitlab"\n')
    r = cli("jobs", env={"MODELPORT_DATA_DIR": str(tmp_path / "data"), "MODELPORT_CONFIG": str(cfg)})
    assert r.returncode == 2 and "unknown source kind 'gitlab'" in r.stderr


def test_harvest_kind_command_uses_the_configured_options(mlflow_server: object, tmp_path: Path) -> None:
    """`harvest mlflow --source mlflow-prod` takes tracking_uri (and the rest) from the TOML entry;
    a flag given on the command line overrides it."""
    uri = mlflow_server.uri  # type: ignore[attr-defined]
    cfg = tmp_path / "modelport.toml"
    cfg.write_text(f'[[sources]]\nname = "mlflow-prod"\nkind = "mlflow"\n'
                   f'[sources.options]\ntracking_uri = "{uri}"\npage_size = 2\n'
                   f'[[sources]]\nname = "hub"\nkind = "huggingface"\n')
    env = {"MODELPORT_DATA_DIR": str(tmp_path / "data"), "MODELPORT_CONFIG": str(cfg)}
    r = cli("harvest", "mlflow", "--source", "mlflow-prod", env=env)
    assert r.returncode == 0, r.stderr
    p = Pipeline(Settings(data_dir=tmp_path / "data", embeddings=False))
    try:
        assert p.catalog.sources()["mlflow-prod"] > 0
    finally:
        p.close()
    r = cli("harvest", "mlflow", "--source", "mlflow-prod", "--tracking-uri", "http://127.0.0.1:9", env=env)
    assert r.returncode == 1 and "127.0.0.1:9" in r.stderr
    r = cli("harvest", "mlflow", "--source", "hub", env=env)
    assert r.returncode == 1 and "configured as kind 'huggingface'" in r.stderr
    r = cli("harvest", "mlflow", "--source", "unconfigured", env=env)
    assert r.returncode == 2 and "'unconfigured'" in r.stderr and "options.tracking_uri" in r.stderr


def test_builtin_sources_share_one_constructor_shape(tmp_path: Path) -> None:
    ctx = SourceContext(cache_root=tmp_path / "cache")
    tf = registry.build("tfhub", "docs", {"root": str(tmp_path)}, ctx)
    assert tf.name == "docs" and tf.cache_dir == tmp_path / "cache" / "tfhub" / "docs"  # type: ignore[attr-defined]
    kg = registry.build("kaggle", "kg", {"api_token": "t0k", "endpoint": "http://127.0.0.1:9"}, ctx)
    assert kg.api_token.get_secret_value() == "t0k" and "t0k" not in repr(kg.options)  # type: ignore[attr-defined]
    hf = registry.build("huggingface", "hub", {"endpoint": "http://127.0.0.1:9"}, ctx)
    assert hf.options.cache_dir == tmp_path / "cache" / "huggingface" / "hub"  # type: ignore[attr-defined]
    ml = registry.build("mlflow", "ml", {"tracking_uri": "http://u:pw@127.0.0.1:9"}, ctx)
    assert "pw" not in ml.public_uri and "pw" not in repr(ml.options)  # type: ignore[attr-defined]
    with pytest.raises(SourceError, match="neither a URL nor an existing directory"):
        registry.build("tfhub", "docs", {"root": str(tmp_path / "absent")}, ctx)
