"""Crafted inputs a hostile or careless registry could send: each record is handled in well under
a second with bounded memory, refused ones are skipped with a clear reason, and the harvest goes on."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from modelport.harvesters.base import SourceRecord
from modelport.harvesters.hf_card import parse_card
from modelport.harvesters.hf_mapping import MappingContext, normalize_payload
from modelport.harvesters.mlflow_registry import MlflowSource
from modelport.pipeline import Pipeline
from modelport.schema.kb import get_kb
from modelport.schema.record import ModelRecord
from modelport.settings import Settings
from tests.test_pipeline import ScriptedSource

# 413 bytes of YAML that would expand ×9 per level (the MLmodel of the report, 53.8 MB as JSON).
ALIAS_BOMB = "\n".join(["a: &a [x, x, x, x, x, x, x, x, x]"] + [
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]" for i in range(7)]) + "\n"


def bounded_run(fn: Callable[[], Any], seconds: float = 1.0, mib: float = 64) -> Any:
    """Run `fn` twice: timed (< `seconds`), then with allocations traced (peak < `mib`; tracing
    slows Python code down several times, so it is not timed). A refusal (ValueError) is returned."""
    def call() -> Any:
        try:
            return fn()
        except ValueError as e:  # refused, as it should be: the time and memory still count
            return e

    started = time.perf_counter()
    out = call()
    took = time.perf_counter() - started
    assert took < seconds, f"took {took:.2f} s"
    tracemalloc.start()
    try:
        call()
        peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    assert peak < mib, f"peaked at {peak:.1f} MiB"
    return out


@pytest.mark.parametrize("text", [
    "# " + " " * 100_000 + "x",                         # the cubic heading pattern's worst case
    "## " + "# " * 50_000 + "\nbody",
    "#" * 3 + " title" + " #" * 50_000,
    "<!--" * 50_000 + "end",                             # unclosed comments
    "[" * 100_000 + "(" * 10,                            # link pattern without closers
    "<" * 100_000,
    ("## Limitations\n" + "### Limitations\nsome text\n") * 3_000,
])
def test_card_parsing_is_linear_on_crafted_markdown(text: str) -> None:
    card = bounded_run(lambda: parse_card(text))
    assert card is not None


def test_card_front_matter_alias_bomb_is_a_note() -> None:
    card = bounded_run(lambda: parse_card("---\n" + ALIAS_BOMB + "---\n# Model\nA model.\n"))
    assert card.front_matter is None and any("unreadable" in n for n in card.notes)
    assert card.description == "A model."


class CraftedMlflow(MlflowSource):
    """The real MLflow normalize over crafted payloads (the events are scripted: no registry would
    accept some of these, but a hostile server can send anything)."""

    def __init__(self, payloads: list[dict[str, Any]]) -> None:
        super().__init__("http://127.0.0.1:9", name="crafted")
        self.payloads = payloads

    def events(self, mode: str, checkpoint: dict[str, Any] | None) -> Iterator[Any]:
        for i, p in enumerate(self.payloads):
            yield SourceRecord(local_id=f"m/{i}", payload=p)


def mlflow_payload(mlmodel: str) -> dict[str, Any]:
    return {"registered_model": {"name": "m", "tags": {}, "aliases": {}},
            "version": {"version": "1", "tags": {}, "run_link": "runs/1"},
            "artifacts": {"mlmodel_text": mlmodel, "files": [{"path": "MLmodel", "size": 10}]}}


def test_mlflow_bombs_and_deep_nesting_are_refused_per_record(tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    deep = "[" * 100_000 + "]" * 100_000
    payloads = [
        mlflow_payload("flavors:\n  sklearn: {sklearn_version: 1.5.0}\n"),
        mlflow_payload(ALIAS_BOMB),
        mlflow_payload("flavors: " + "[" * 50_000 + "]" * 50_000 + "\n"),  # deep YAML
        mlflow_payload(f"flavors:\n  sklearn: {{}}\nsignature:\n  inputs: '{deep}'\n"),  # deep JSON
        mlflow_payload("flavors:\n  onnx: {onnx_version: 1.16.0}\n"),
    ]
    p = Pipeline(Settings(data_dir=tmp_path / "data", base_iri="http://t"))
    try:
        source = CraftedMlflow(payloads)
        for payload in payloads:  # each record alone: bounded time and memory
            bounded_run(lambda payload=payload: source.normalize(SourceRecord(local_id="m/x", payload=payload)),
                        mib=128)
        report = p.harvest(source, mode="full")
        stored = {r.id: r for r in p.catalog.iter_records()}
    finally:
        p.close()
    assert report.status == "partial" and report.counts["skipped"] == 1
    reasons = {e["ref"]: e["reason"] for e in report.errors}
    assert "anchors and aliases" in reasons["crafted:m/1"]
    # too deep to parse: recorded with what is known, like any unreadable MLmodel
    assert any("nesting depth" in e for e in stored["crafted:m/2"].source_facts["errors"])
    assert set(stored) == {"crafted:m/0", "crafted:m/2", "crafted:m/3", "crafted:m/4"}  # the harvest went on
    assert stored["crafted:m/3"].signature is None or not stored["crafted:m/3"].signature.inputs


def test_oversized_safetensors_and_gguf_objects_in_hub_payloads(tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ctx = MappingContext(source_name="hub", source_kind="huggingface", harvester_version="t", kb=get_kb())
    nested: Any = {}
    for _ in range(5_000):
        nested = {"x": nested}
    payloads = [
        {"id": "org/dtypes", "safetensors": {"total": 10, "parameters": {f"T{i}": 1 for i in range(200_000)}}},
        {"id": "org/gguf", "gguf": {"total": 10**30, "architecture": "a" * 1_000_000, "context_length": -5,
                                    "blob": list(range(200_000))}},
        {"id": "org/nested", "config": nested, "cardData": {"deep": nested}},
        {"id": "org/fine", "library_name": "transformers", "pipeline_tag": "text-classification"},
    ]

    class Hub(ScriptedSource):
        kind = "huggingface"

        def events(self, mode: str, checkpoint: dict[str, Any] | None) -> Iterator[Any]:
            for pl in payloads:
                yield SourceRecord(local_id=pl["id"], payload=pl)

        def normalize(self, item: SourceRecord) -> ModelRecord:
            return normalize_payload(item.payload, ctx)

    for pl in payloads:
        bounded_run(lambda pl=pl: normalize_payload(pl, ctx), mib=128)
    p = Pipeline(Settings(data_dir=tmp_path / "data", base_iri="http://t"))
    try:
        report = p.harvest(Hub([], name="hub"), mode="full")
        stored = {r.local_id: r for r in p.catalog.iter_records()}
    finally:
        p.close()
    assert report.status in ("ok", "partial") and "org/fine" in stored
    if "org/dtypes" in stored:
        assert len(stored["org/dtypes"].stored_json()) < 200_000
    if "org/gguf" in stored:
        assert len(stored["org/gguf"].stored_json()) < 1_200_000
