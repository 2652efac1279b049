"""The `modelport` command line.

Just over ~500 lines: one typer app whose commands share the harvest and writer-lock helpers at the
top; the split into one module per command is issue #13 (see harvesters/huggingface.py).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from modelport.harvesters.base import HarvestMode, Source, SourceError
from modelport.pipeline import JobReport, Pipeline
from modelport.settings import Settings

app = typer.Typer(help="ModelPort: harvest ML model registries, search them by compatibility, query them with SPARQL.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
harvest_app = typer.Typer(help="Harvest a source into the catalog, index and graph.", no_args_is_help=True)
app.add_typer(harvest_app, name="harvest")
console = Console(stderr=True)
out = Console()


def fail(message: str, code: int = 1) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


@contextmanager
def writing(settings: Settings, command: str) -> Iterator[None]:
    """Hold the data dir's writer lock for the command (modelport/datadir_lock.py); another writer
    running there is a clear error at once (exit 3)."""
    from modelport.datadir_lock import DataDirBusy, writer_lock

    try:
        with writer_lock(settings.data_dir, command):
            yield
    except DataDirBusy as e:
        fail(str(e), 3)


def run_harvest(source: Source, mode: HarvestMode, limit: int | None = None,
                settings: Settings | None = None) -> JobReport:
    """Run one harvest with a progress line and a summary table; exits non-zero on failure."""
    settings = settings or Settings()
    with writing(settings, "harvest"):
        return _run_harvest(source, mode, limit, settings)


def _run_harvest(source: Source, mode: HarvestMode, limit: int | None, settings: Settings) -> JobReport:
    pipeline = Pipeline(settings)
    try:
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                      console=console, transient=True, disable=not console.is_terminal) as progress:
            task = progress.add_task(f"harvesting {source.name}", total=None)

            status_line = getattr(source, "status_line", None)  # e.g. the Hub's budget left, next window

            def tick(r: JobReport) -> None:
                c = r.counts
                stored = c["inserted"] + c["updated"] + c["unchanged"]
                text = (f"harvesting {source.name}: {c['seen']} listed, {stored} stored ({c['inserted']} new, "
                        f"{c['updated']} updated), {c['skipped']} skipped")
                if "enriched" in c:
                    text += f" | enriched {c['enriched']}, {c['enrich_failed']} failed"
                if status_line is not None:
                    text += f" | {status_line()}"
                progress.update(task, description=text)
                last[0] = r

            last: list[JobReport | None] = [None]
            done = threading.Event()

            def refresh() -> None:  # the budget line moves while a harvest waits for the next window
                while not done.wait(1.0):
                    if last[0] is not None and status_line is not None:
                        tick(last[0])

            threading.Thread(target=refresh, daemon=True, name="harvest-progress").start()
            try:
                report = pipeline.harvest(source, mode=mode, limit=limit, progress=tick)
            finally:
                done.set()
    except SourceError as e:
        fail(str(e))
    except KeyboardInterrupt:
        fail("interrupted; the next run resumes from the last checkpoint", 130)
    except Exception as e:  # a failed harvest keeps what it stored; say what happened
        fail(f"harvest of {source.name} failed: {type(e).__name__}: {e}")
    finally:
        pipeline.close()
    table = Table(title=f"harvest {report.source} ({report.mode}) — job {report.job_id}: {report.status}")
    for k in report.counts:
        table.add_column(k, justify="right")
    table.add_row(*(str(v) for v in report.counts.values()))
    out.print(table)
    unknown = report.unknown_terms.summary()
    if unknown:
        from modelport.unknown_terms import describe

        # A source's names are its text, not rich markup.
        out.print(f"names the KB does not know (source terms; see `modelport jobs`): {describe(unknown)}",
                  markup=False)
    for err in report.errors[:20]:
        console.print(f"[yellow]  {err['ref']}: {err['reason']}[/]")
    if report.errors_total > 20:
        console.print(f"[yellow]  … and {report.errors_total - 20} more (see `modelport jobs`); by kind: "
                      + ", ".join(f"{k} {n}" for k, n in sorted(report.error_groups.items(), key=lambda kv: -kv[1]))
                      + "[/]")
    return report


def _configured_mode(src: Source) -> HarvestMode:
    """The mode a source's own options ask for (Hugging Face's `mode`), else a full harvest."""
    mode = getattr(getattr(src, "options", None), "mode", None)
    return "incremental" if mode == "incremental" else "full"


def harvest_named(kind: str, name: str, flags: dict[str, object], mode: HarvestMode | None = None,
                  limit: int | None = None, settings: Settings | None = None) -> tuple[Source, JobReport]:
    """The one path of every `harvest …` command: the configured `[[sources]]` entry `name` (if any)
    supplies the options, flags given on the command line override them, the kind's `Options` checks
    them (exit 2 naming the source and field), the registry builds the source (exit 1 when it cannot
    work) and the harvest runs. `mode` None: the options' own `mode`, else full."""
    from modelport.harvesters.registry import SourceOptionsError, UnknownSourceKind
    from modelport.sources import build_named

    settings = settings or Settings()
    try:
        src = build_named(settings, kind, name, flags)
    except (SourceOptionsError, UnknownSourceKind) as e:
        fail(f"invalid options: {e}", 2)
    except SourceError as e:
        fail(str(e))
    report = run_harvest(src, mode if mode is not None else _configured_mode(src), limit, settings)
    return src, report


def _exit_if_failed(report: JobReport) -> None:
    if report.status == "failed":
        raise typer.Exit(1)


@harvest_app.command("mlflow")
def harvest_mlflow(
    tracking_uri: Annotated[str | None, typer.Option(
        "--tracking-uri", help="e.g. http://127.0.0.1:5000 (default: the configured source's)")] = None,
    source: Annotated[str, typer.Option(help="Source name in the catalog (one per registry)")] = "mlflow",
    full: Annotated[bool, typer.Option("--full/--incremental", help="Full runs tombstone vanished versions")] = True,
    limit: Annotated[int | None, typer.Option(help="Stop after N versions (no tombstones then)")] = None,
) -> None:
    """Harvest every registered model and every version of an MLflow registry."""
    _, report = harvest_named("mlflow", source, {"tracking_uri": tracking_uri},
                              "full" if full else "incremental", limit)
    _exit_if_failed(report)


@harvest_app.command("huggingface")
def harvest_huggingface(
    endpoint: Annotated[str | None, typer.Option(
        "--endpoint", help="Hub API endpoint (default https://huggingface.co, or the configured source's)")] = None,
    token: Annotated[str | None, typer.Option(
        "--token", envvar="HF_TOKEN", help="Access token (private and gated repos, the free account's "
        "budget of 1,000 API requests per 5 minutes instead of 500); sent only to the endpoint, never stored")]
    = None,
    author: Annotated[str | None, typer.Option("--author", help="Only models of this user or organisation")] = None,
    filter: Annotated[list[str] | None, typer.Option(  # noqa: A002 (the Hub's own parameter name)
        "--filter", help="Tag, library or `license:…` filter; repeat to require several")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Stop after N models (no deletions then)")]
    = None,
    full: Annotated[bool | None, typer.Option(
        "--full/--incremental", help="Full runs list everything and tombstone vanished models; "
        "incremental runs stop at the last run's newest change")] = None,
    cards: Annotated[bool | None, typer.Option(
        "--cards/--no-cards", help="Enrichment also fetches README.md (description and card sections)")] = None,
    enrich: Annotated[int | None, typer.Option(
        "--enrich", min=0, help="Enrich at most N models this run (model_info with file metadata, cards), "
        "most downloaded and most recently changed first; 0: listing only")] = None,
    enrich_for: Annotated[float | None, typer.Option(
        "--enrich-for", min=1, help="Stop enriching after this many seconds")] = None,
    source: Annotated[str, typer.Option("--source", help="Source name in the catalog")] = "huggingface",
) -> None:
    """Harvest models from a Hugging Face Hub endpoint: the listing (everything, stored and searchable
    at once), then enrichment of the models that need it, within the request budget. A configured
    source of that name supplies defaults; flags given here override them."""
    flags: dict[str, object] = {"endpoint": endpoint, "token": token, "author": author, "filter": filter or None,
                                "limit": limit, "cards": cards, "enrich_max_models": enrich,
                                "enrich_time_limit_s": enrich_for}
    mode: HarvestMode | None = ("full" if full else "incremental") if full is not None else None
    _, report = harvest_named("huggingface", source, flags, mode)
    _exit_if_failed(report)


@harvest_app.command("tfhub")
def harvest_tfhub(
    root: Annotated[str | None, typer.Option(
        "--root", help="Docs tree: http(s):// (listing or linked pages) or file:// (default: the configured "
        "source's)")] = None,
    source: Annotated[str, typer.Option(help="Source name in the catalog")] = "tfhub",
    incremental: Annotated[bool, typer.Option(
        "--incremental/--full", help="Re-crawl with the HTTP cache: only changed docs re-parsed")] = False,
) -> None:
    """Crawl a TF Hub documentation tree (markdown or its HTML rendering) with Scrapy."""
    src, report = harvest_named("tfhub", source, {"root": root}, "incremental" if incremental else "full")
    summary = getattr(src, "last_summary", None)
    if summary is not None:
        out.print(f"documents parsed {summary.docs_parsed}, reused from cache {summary.docs_reused}, "
                  f"malformed {summary.malformed}, fetch errors {len(summary.fetch_errors)}")
        if not summary.complete:
            console.print("[yellow]crawl incomplete: nothing was tombstoned[/]")
    _exit_if_failed(report)


@harvest_app.command("kaggle")
def harvest_kaggle(
    endpoint: Annotated[str | None, typer.Option(help="Kaggle API base URL")] = None,
    owner: Annotated[str | None, typer.Option()] = None,
    search_text: Annotated[str | None, typer.Option("--search")] = None,
    source: Annotated[str, typer.Option()] = "kaggle",
    limit: Annotated[int | None, typer.Option()] = None,
    incremental: Annotated[bool, typer.Option("--incremental/--full")] = False,
) -> None:
    """Harvest Kaggle Models (credentials: KAGGLE_USERNAME + KAGGLE_KEY, or KAGGLE_API_TOKEN)."""
    _, report = harvest_named("kaggle", source, {"endpoint": endpoint, "owner": owner, "search": search_text},
                              "incremental" if incremental else "full", limit)
    _exit_if_failed(report)


@harvest_app.command("configured")
def harvest_configured(
    name: Annotated[list[str] | None, typer.Option("--name", help="Only these configured sources")] = None,
    incremental: Annotated[bool, typer.Option("--incremental/--full")] = False,
) -> None:
    """Harvest every source configured in the TOML file named by MODELPORT_CONFIG (its sources tables),
    built-in kinds and installed plug-ins (entry-point group `modelport.sources`) alike."""
    settings = Settings()
    chosen = [c for c in settings.sources if not name or c.name in name]
    if not chosen:
        fail("no configured source matches (set MODELPORT_CONFIG to a TOML file with [[sources]] tables)")
    failed = []
    for config in chosen:
        try:
            _, report = harvest_named(config.kind, config.name, {}, "incremental" if incremental else "full",
                                      settings=settings)
            if report.status == "failed":
                failed.append(config.name)
        except typer.Exit:  # one source failing does not stop the others
            failed.append(config.name)
    if failed:
        fail(f"harvest failed for: {', '.join(failed)}")


@app.command()
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
) -> None:
    """Serve the HTTP API and the web page. POST /harvests (and any other state-changing route) needs
    `Authorization: Bearer <token>` with the token set as MODELPORT_ADMIN_TOKEN here; without it
    those routes are off. SIGTERM or Ctrl-C stops the server within seconds."""
    from modelport.api.app import create_app, run_server

    settings = Settings()
    if settings.admin_token is not None and settings.admin_token.get_secret_value():
        console.print("admin routes (POST /harvests): on — send `Authorization: Bearer $MODELPORT_ADMIN_TOKEN`")
    else:
        console.print("admin routes (POST /harvests): off — set MODELPORT_ADMIN_TOKEN to enable them")
    with writing(settings, "serve"):
        run_server(create_app(settings, warm_search=True), host, port)


@app.command()
def search(
    text: Annotated[str, typer.Argument(help="Free text and qualifiers, e.g. 'task:image-classification "
                                              "runtime:onnxruntime@1.14 license:apache-2.0 mobilenet'")] = "",
    task: Annotated[list[str] | None, typer.Option()] = None,
    format: Annotated[list[str] | None, typer.Option()] = None,
    framework: Annotated[list[str] | None, typer.Option()] = None,
    source: Annotated[list[str] | None, typer.Option()] = None,
    license: Annotated[list[str] | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 10,
    nl: Annotated[bool, typer.Option("--nl/--no-nl", help="Read constraints written in plain words")] = True,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Search the catalog from the terminal (the query syntax of GET /search; see the README)."""
    from modelport.index.query_syntax import QuerySyntaxError, compile_query
    from modelport.index.search import SearchQuery
    from modelport.services import Services

    filters = {k: v for k, v in {"task": task, "format": format, "framework": framework, "source": source,
                                 "license": license}.items() if v}
    try:
        query, interp = compile_query(text, nl=nl, base=SearchQuery(filters=filters, limit=limit))
    except QuerySyntaxError as e:
        console.print(f"[bold red]query error[/] at position {e.position} ({e.token!r}): {e.message}"
                      + (f" — {e.hint}" if e.hint else ""))
        raise typer.Exit(2) from None
    svc = Services(Settings())
    try:
        res = svc.search(query)
    finally:
        svc.close()
    if as_json:
        out.print_json(res.model_dump_json())
        return
    table = Table(title=f"{res.total} models ({res.took_ms:.1f} ms) — read as: {query.to_syntax() or 'everything'}")
    for col in ("id", "tasks", "formats", "runtimes", "license"):
        table.add_column(col)
    for h in res.hits:
        table.add_row(h.id, ", ".join(h.tasks), ", ".join(h.formats),
                      "; ".join(f"{k} {v}" for k, v in h.runtimes.items()), h.license or "")
    out.print(table)


@app.command()
def sparql(
    query: Annotated[str, typer.Argument(help="A SPARQL 1.1 query, or @file.rq")],
    format: Annotated[str, typer.Option(help="json, xml, csv, tsv (SELECT/ASK) or turtle, json-ld, nt")] = "csv",
) -> None:
    """Run a read-only SPARQL query over the graph."""
    from modelport.index.graph import SparqlError, SparqlTimeout

    if query.startswith("@"):
        path = Path(query[1:])
        if not path.is_file():
            fail(f"no such query file: {path}")
        query = path.read_text()
    settings = Settings()
    pipeline = Pipeline(settings)
    try:
        ans = pipeline.graph.query(query, timeout_s=settings.query_timeout_s)
    except (SparqlError, SparqlTimeout) as e:
        fail(f"SPARQL: {e}")
    finally:
        pipeline.close()
    if ans.kind in ("SELECT", "ASK"):
        data = ans.result.serialize(format=format if format in ("json", "xml", "csv", "tsv") else "csv")
    else:
        data = ans.result.graph.serialize(format=format if format in ("turtle", "json-ld", "nt") else "turtle")
    sys.stdout.write(data.decode() if isinstance(data, bytes) else data)
    if ans.truncated:
        console.print("[yellow]result truncated at the row cap[/]")


@app.command()
def verify(
    source: Annotated[str | None, typer.Option(help="Only records of this source")] = None,
    limit: Annotated[int | None, typer.Option(help="At most N records")] = None,
) -> None:
    """Run each reachable model in its framework and in ONNX Runtime on the same random inputs and
    record the result as a `verified` (or `failed-verification`) compatibility cell."""

    settings = Settings()
    with writing(settings, "verify"):
        _verify_command(settings, source, limit)


def _verify_command(settings: Settings, source: str | None, limit: int | None) -> None:
    from modelport.verify_job import verify as run_verify

    pipeline = Pipeline(settings)
    try:
        with console.status("verifying") as status:
            report = run_verify(pipeline, source, limit, progress=lambda r: status.update(f"verifying {r.id}"))
    finally:
        pipeline.close()
    table = Table(title=f"verification: {report.checked} checked, {report.verified} verified, {report.failed} failed")
    for col in ("record", "status", "max abs diff", "tolerance", "runtime"):
        table.add_column(col)
    for rid, e in report.results.items():
        m = e.measurements
        atol = (m.get("tolerance") or {}).get("atol", "")
        table.add_row(rid, e.status, str(m.get("max_abs_diff", m.get("error", ""))), str(atol),
                      f"onnxruntime {m.get('onnxruntime_version', '')}")
    out.print(table)
    for s in report.skipped:
        console.print(f"[yellow]  skipped {s}[/]")


@app.command()
def reindex() -> None:
    """Rebuild the search index and the RDF graph from the catalog."""
    settings = Settings()
    with writing(settings, "reindex"):
        pipeline = Pipeline(settings)
        try:
            with console.status("rebuilding projections from the catalog"):
                n = pipeline.reindex()
        finally:
            pipeline.close()
    out.print(f"reindexed {n} records")


@app.command()
def jobs(source: Annotated[str | None, typer.Option()] = None, limit: int = 20) -> None:
    """Show the harvest job log, and the records set aside (quarantined) that are still aside."""
    from modelport.index.catalog import Catalog
    from modelport.unknown_terms import TOP_N, describe

    catalog = Catalog(Settings().catalog_path)  # reading only: no lock, no stores opened
    try:
        table = Table(title="harvest jobs")
        for col in ("id", "source", "mode", "started", "status", "counts", "errors", "unknown to the KB"):
            table.add_column(col)
        listed = catalog.jobs(source, limit)
        for j in listed:
            table.add_row(str(j.id), j.source, j.mode or "", j.started_at[:19], j.status,
                          json.dumps(j.counts), str(len(j.errors)), Text(describe(j.unknown_terms)))
        out.print(table)
        latest = next((j for j in listed if j.unknown_terms), None)
        if latest is not None:
            # The full list of the latest job that met some, so the KB can grow (GET /harvests has every job's).
            t = Table(title=f"names job {latest.id} ({latest.source}) met that the KB does not know "
                            f"(top {TOP_N} per vocabulary; records naming each)")
            for col in ("vocabulary", "name", "records"):
                t.add_column(col)
            for vocabulary, info in latest.unknown_terms.items():
                for name, n in info.get("top", {}).items():
                    t.add_row(vocabulary, Text(name), str(n))  # a source's text, not rich markup
            out.print(t)
        aside = catalog.quarantined(source, limit=200)
        if aside:
            q = Table(title="quarantined records (retried when they change, or on `modelport reindex`)")
            for col in ("record", "stage", "job", "reason"):
                q.add_column(col)
            for r in aside:
                q.add_row(r.record_id, r.stage, str(r.job_id or ""), r.reason)
            out.print(q)
    finally:
        catalog.close()


@app.command()
def export(
    out_dir: Annotated[Path | None, typer.Option("--out", help="Directory (default: <data dir>/exports, "
                                                                "which the server offers at /downloads)")] = None,
    fmt: Annotated[list[str] | None, typer.Option("--format", help="nquads and/or jsonl (default: both)")] = None,
) -> None:
    """Write full dumps of the catalog: N-Quads (gzip) and JSON lines (gzip), with a manifest."""
    from modelport.export import FILES, FORMATS
    from modelport.export import export as run_export

    names = tuple(fmt or FILES)
    bad = [f for f in names if f not in FORMATS]
    if bad:
        fail(f"unknown format(s) {bad}; choose from {sorted(FILES)}")
    formats = tuple(FORMATS[f] for f in names)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("exporting", total=None)
        try:
            report = run_export(Settings(), out_dir, formats,
                                progress=lambda n: progress.update(task, description=f"exporting: {n} records"))
        except OSError as e:
            fail(f"export failed: {e}")
    table = Table(title=f"export of {report.records} records to {report.out_dir}")
    for col in ("file", "format", "bytes", "lines", "sha256"):
        table.add_column(col)
    for name, f in report.files.items():
        table.add_row(name, str(f["format"]), f"{f['bytes']:,}", f"{f['lines']:,}", str(f["sha256"])[:16] + "…")
    out.print(table)


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="API port")] = 8000,
    mlflow_port: Annotated[int, typer.Option(help="Port of the local MLflow server")] = 5005,
    serve_api: Annotated[bool, typer.Option("--serve/--no-serve")] = True,
) -> None:
    """Start a local MLflow server, register real models in it, harvest it and serve the API."""
    from modelport.demo import run_demo

    settings = Settings()
    with writing(settings, "demo"):
        run_demo(settings, port=port, mlflow_port=mlflow_port, serve_api=serve_api)


def main() -> None:
    from pydantic import ValidationError

    from modelport.errors import ServiceUnavailable, SourceError, UserError

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # The Elasticsearch client logs each retry with a traceback; the backend's own error says it once.
    logging.getLogger("elastic_transport").setLevel(logging.ERROR)
    try:
        app()
    except ValidationError as e:  # settings from the environment or MODELPORT_CONFIG that cannot work
        errors = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        console.print(f"[bold red]error:[/] invalid configuration: {errors}")
        raise SystemExit(2) from None
    except UserError as e:  # what a command did not turn into its own message: the same exit code
        console.print(f"[bold red]error:[/] {e}")
        raise SystemExit(e.exit_code) from None
    except (ServiceUnavailable, SourceError) as e:  # e.g. Elasticsearch unreachable: the message says where
        console.print(f"[bold red]error:[/] {e}")
        raise SystemExit(e.exit_code) from None
    # Anything else is a bug: Python's traceback says where.


if __name__ == "__main__":
    main()
