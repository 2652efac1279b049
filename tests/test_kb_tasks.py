"""Task definitions in the KB (ontology/kb/tasks.ttl): loaded with the task concepts, cited, and
carried into a record's embedded summary (document expansion for paraphrased task queries)."""

from __future__ import annotations

from datetime import UTC, datetime

from rdflib import URIRef
from rdflib.namespace import DCTERMS

from modelport.index.embeddings import summary_text
from modelport.schema.kb import KB_BASE, get_kb
from modelport.schema.record import ModelRecord

HF_TASKS = "https://github.com/huggingface/huggingface.js/blob/"


def _record(tasks: list[str], description: str) -> ModelRecord:
    return ModelRecord(
        id="huggingface:acme/pix", source="huggingface", source_kind="huggingface", local_id="acme/pix",
        name="pix", tasks=tasks, description=description,
        provenance={"harvested_at": datetime(2026, 1, 1, tzinfo=UTC), "harvester": "t", "harvester_version": "0"})


def test_task_definitions_load_and_cite_the_hugging_face_task_page() -> None:
    kb = get_kb()
    assert kb.tasks["text-to-image"].definition == "Text-to-image is the task of generating images from input text."
    defined = [t for t in kb.tasks.values() if t.definition]
    assert len(defined) >= 30
    for task in defined:
        source = str(kb.graph.value(URIRef(f"{KB_BASE}task/{task.id}"), DCTERMS.source))
        assert source.startswith(HF_TASKS) and source.endswith(f"/packages/tasks/src/tasks/{task.id}/data.ts")
        assert task.definition.count(". ") == 0  # one sentence
    # Top concepts have no task page: no definition is made up for them.
    assert kb.tasks["computer-vision"].definition is None


def test_summary_text_ends_with_the_definitions_of_the_records_tasks() -> None:
    kb = get_kb()
    text = summary_text(_record(["text-to-image", "image-to-image"], "Makes pictures. Fast."))
    t2i, i2i = kb.tasks["text-to-image"].definition, kb.tasks["image-to-image"].definition
    assert t2i and i2i
    assert text.startswith("pix by acme Task: text to image, image to image. Makes pictures. Fast.")
    assert text.endswith(f"{t2i} {i2i}")
    # Tasks the KB does not define (or does not know) add nothing.
    assert summary_text(_record(["robotics", "not-a-task"], "Arm.")).endswith("Arm.")
