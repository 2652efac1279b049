"""Hugging Face Hub payload → ModelRecord.

The payload is the Hub's wire JSON for one model (a `list_models` item or a `model_info` response,
re-serialised from the client's `ModelInfo` by `info_to_payload`), optionally with the README text
under `README_KEY`. Mapping never trusts shapes: every field is read defensively, absurd values are
dropped with a note (kept in `source_facts["mapping_notes"]` and logged) and only a payload without
a usable id raises `MalformedRecord`.

Over ~500 lines: one mapping (`normalize_payload`, a single pass over the payload, and the defensive
readers and section mappers only it uses) and the ModelInfo → wire JSON conversion that makes its
input (`info_to_payload`); both follow the Hub's JSON and change together when it does.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from itertools import islice
from typing import Any
from urllib.parse import quote

from modelport.harvesters.base import MalformedRecord
from modelport.harvesters.hf_card import README_MAX_BYTES, ParsedCard, parse_card
from modelport.schema.gguf_names import gguf_type_in_name
from modelport.schema.identity import record_id
from modelport.schema.kb import KnowledgeBase
from modelport.schema.record import (
    Agent,
    Artifact,
    BaseModelLink,
    CardSections,
    EvaluationResult,
    Link,
    ModelRecord,
    Popularity,
    Provenance,
    SourceCode,
    SourceVocabulary,
    source_terms,
)

log = logging.getLogger("modelport.harvesters.huggingface")

README_KEY = "_modelport_readme"  # our addition to the payload: {"text": str, "truncated": bool}
NOTES_KEY = "_modelport_notes"  # our addition: what the harvester had to work around for this model

# Plausibility bounds. Anything outside is a data error upstream, not a model we could deploy.
MAX_PARAMETERS = 10**14  # 100 T; the largest published models are ~2 T
MAX_FILE_BYTES = 2**44  # 16 TiB for one file or directory
MAX_COUNT = 10**12  # downloads / likes
MAX_CONTEXT = 10**9
MAX_ARTIFACTS = 2000
MAX_KEYWORDS = 200
HUB_EPOCH_YEAR = 2015  # the Hub did not exist before; earlier dates are placeholders

# safetensors dtype names (the Hub's `safetensors.parameters` keys) → the numpy-style names other
# sources (MLflow signatures) use, so `dtype = float16` filters across registries.
_ST_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
              "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "U16": "uint16", "U32": "uint32",
              "U64": "uint64", "BOOL": "bool", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
              "F8_E8M0": "float8_e8m0fnu", "F4": "float4", "F6_E2M3": "float6_e2m3", "F6_E3M2": "float6_e3m2"}

# The Hub's lineage relations (tags `base_model:<relation>:<id>`, card `base_model_relation`).
_RELATIONS = {"adapter": "adapter", "finetune": "finetune", "quantized": "quantized", "merge": "merge"}

# ISO 639-1 codes: the Hub turns card `language:` into bare tags, and a two-letter tag that is one of
# these is a language (no library or format tag is). Three-letter ISO 639-3 codes are only trusted
# from the card, since tags like `jax` or `vit` look the same.
_ISO639_1 = frozenset("""
aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv dz
ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii ik
io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml
mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd
se sg si sk sl sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi
vo wa wo xh yi yo za zh zu""".split())  # noqa: SIM905 (a table reads better as text)
_LANG_CODE = re.compile(r"^[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")
_ARXIV = re.compile(r"^\d{4}\.\d{4,5}(v\d+)?$|^[a-z-]+(\.[A-Z]{2})?/\d{7}$")


@dataclasses.dataclass
class MappingContext:
    """What normalize needs besides the payload."""

    source_name: str
    source_kind: str
    harvester_version: str
    kb: KnowledgeBase
    web_base: str = "https://huggingface.co"  # where repo pages and files are served


class _Notes:
    """Reasons for dropped values: logged, and kept on the record so a user can see why."""

    def __init__(self, rid: str) -> None:
        self.rid = rid
        self.items: list[str] = []

    def add(self, msg: str) -> None:
        if msg not in self.items:
            self.items.append(msg)
            log.info("%s: %s", self.rid, msg)


# --- small defensive readers --------------------------------------------------------------------
MAX_DTYPES = 64


def _str(v: Any) -> str | None:
    if isinstance(v, str):
        v = v.strip()
        return v or None
    return None


def _strs(v: Any) -> list[str]:
    """A string or a list of strings (cards write both) → list of non-empty strings."""
    if isinstance(v, str):
        return [v.strip()] if v.strip() else []
    if isinstance(v, list | tuple):
        return [x.strip() for x in v if isinstance(x, str) and x.strip()]
    return []


def _int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        return int(v)
    if isinstance(v, str) and re.fullmatch(r"\s*-?\d+\s*", v):
        return int(v)
    return None


def _bounded(v: Any, what: str, hi: int, notes: _Notes, lo: int = 0) -> int | None:
    if v is None:
        return None
    n = _int(v)
    if n is None:
        if isinstance(v, float) and math.isfinite(v) and lo <= v <= hi:
            return int(v)
        notes.add(f"dropped {what} {str(v)[:40]!r}: not an integer")
        return None
    if n < lo or n > hi:
        notes.add(f"dropped {what} {n:.3g}: outside the plausible range [{lo}, {hi:.0e}]")
        return None
    return n


def number(v: Any) -> float | None:
    """A finite float from a number or a numeric string ("91.2", "91.2%"), else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        f = float(v)
    elif isinstance(v, str):
        s = v.strip().rstrip("%").strip()
        try:
            f = float(s)
        except ValueError:
            return None
    else:
        return None
    return f if math.isfinite(f) else None


def parse_hub_datetime(v: Any) -> datetime | None:
    if isinstance(v, datetime):
        return v if v.tzinfo else v.replace(tzinfo=UTC)
    s = _str(v)
    if not s:
        return None
    s = s.replace("Z", "+00:00")
    # Python < 3.12 accepts at most 6 fractional digits; the Hub sometimes sends 9.
    s = re.sub(r"(\.\d{6})\d+", r"\1", s)
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None
    dt = dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    if dt.year < HUB_EPOCH_YEAR or dt.year > 2200:
        return None
    return dt


def hub_time(dt: datetime | None) -> str | None:
    """The Hub's own timestamp spelling (ms precision, `Z`), which `ModelInfo` requires."""
    if dt is None:
        return None
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


# --- classification of files, cached: the same file names recur across thousands of repos -------
_PATH_CACHE: dict[tuple[str, str], tuple[str | None, str]] = {}


def classify_path(kb: KnowledgeBase, path: str) -> tuple[str | None, str]:
    """(format id, artifact path). Directory formats (`*.mlpackage/…`) map every file inside to the
    directory, and win over a file-level match of an inner file (its `model.mlmodel`)."""
    key = (kb.version, path)
    hit = _PATH_CACHE.get(key)
    if hit is None:
        if len(_PATH_CACHE) > 200_000:
            _PATH_CACHE.clear()
        hit = _PATH_CACHE[key] = _classify(kb, path)
    return hit


def _classify(kb: KnowledgeBase, path: str) -> tuple[str | None, str]:
    for fmt in kb.formats.values():
        for p in fmt.patterns:
            m = p.search(path)
            if m and m.group(0).endswith("/"):
                return fmt.id, path[:m.end() - 1]
    return kb.format_of_path(path), path


# --- the mapping --------------------------------------------------------------------------------
def normalize_payload(payload: dict[str, Any], ctx: MappingContext) -> ModelRecord:
    if not isinstance(payload, dict):
        raise MalformedRecord(f"payload is a {type(payload).__name__}, not an object")
    repo_id = _str(payload.get("id")) or _str(payload.get("modelId"))
    if not repo_id:
        raise MalformedRecord("payload has no model id")
    kb = ctx.kb
    rid = record_id(ctx.source_name, repo_id)
    notes = _Notes(rid)
    for n in _strs(payload.get(NOTES_KEY)):
        notes.add(n)
    web = ctx.web_base.rstrip("/")

    card_data = payload.get("cardData")
    if card_data is not None and not isinstance(card_data, dict):
        notes.add(f"ignored cardData: a {type(card_data).__name__}, not a mapping")
        card_data = None
    card: ParsedCard | None = None
    readme = payload.get(README_KEY)
    if isinstance(readme, dict) and isinstance(readme.get("text"), str):
        card = parse_card(readme["text"], truncated=bool(readme.get("truncated")))
        for n in card.notes:
            notes.add(n)
        if card_data is None and card.front_matter:
            card_data = card.front_matter  # the API had no cardData: the README's YAML is the same data
    cd: dict[str, Any] = card_data or {}

    tags = _strs(payload.get("tags"))
    plain_tags = [t for t in tags if ":" not in t]
    prefixed: dict[str, list[str]] = {}
    for t in tags:
        if ":" in t:
            k, _, v = t.partition(":")
            if v.strip():
                prefixed.setdefault(k.strip().lower(), []).append(v.strip())

    facts: dict[str, Any] = {}
    sha = _str(payload.get("sha"))
    if sha:
        facts["sha"] = sha

    # tasks: the pipeline tag (any spelling the KB knows), plus tags that are themselves task ids
    tasks: list[str] = []
    # (where, value) of names the KB does not know: kept as source terms
    unknown: dict[SourceVocabulary, list[tuple[str, object]]] = {"task": [], "library": []}
    for raw in (_str(payload.get("pipeline_tag")), _str(cd.get("pipeline_tag"))):
        if raw:
            t = kb.task_id(raw)
            if t:
                tasks.append(t)
            else:
                facts.setdefault("pipeline_tag", raw)
                unknown["task"].append(("pipeline_tag", raw))
    for t in plain_tags:
        tid = kb.task_id(t)
        if tid is not None and tid == t.lower():
            tasks.append(tid)

    # frameworks: library_name first, then library tags the KB knows
    frameworks: list[str] = []
    library_name = _str(payload.get("library_name")) or _str(cd.get("library_name"))
    if library_name:
        lib = kb.library_for_hub(library_name)
        if lib:
            frameworks.append(lib.id)
        else:
            facts["library_name"] = library_name
            unknown["library"].append(("library_name", library_name))
    for t in plain_tags:
        lib = kb.library_for_hub(t)
        if lib:
            frameworks.append(lib.id)

    artifacts, file_facts = _artifacts(payload.get("siblings"), repo_id, sha, web, kb, notes)
    facts.update(file_facts)

    # Formats the Hub declares (tags, library) count only when the file list is unknown (a listing
    # without siblings): when we can see the files they are the truth, and tags are coarse (`tf` is set
    # for a Keras .h5 as well as a SavedModel, `pytorch` for a library that ships only TFLite files).
    declared: list[str] = []
    if payload.get("siblings") is None:
        candidates = [f for t in plain_tags for f in kb.formats_for_hub_tag(t)]
        for lib_id in frameworks:
            lib = kb.libraries.get(lib_id)
            if lib:
                candidates.extend(lib.declares_formats)
        declared = list(dict.fromkeys(candidates))

    # size facts: parameters and dtypes from safetensors, else from GGUF metadata
    parameter_count: int | None = None
    dtypes: list[str] = []
    st = payload.get("safetensors")
    if isinstance(st, dict):
        parameter_count = _bounded(st.get("total"), "safetensors parameter count", MAX_PARAMETERS, notes)
        params = st.get("parameters")
        if isinstance(params, dict):
            # A real file has a handful of dtypes; an oversized object from a hostile payload must
            # not become a million-entry list on the record.
            for k, v in islice(params.items(), MAX_DTYPES):
                if isinstance(k, str) and len(k) <= 32 and (_int(v) or 0) > 0:
                    dtype = _ST_DTYPES.get(k.upper(), k.lower())
                    if dtype not in dtypes:
                        dtypes.append(dtype)
    gguf = payload.get("gguf")
    architecture: str | None = None
    if isinstance(gguf, dict):
        if parameter_count is None:
            parameter_count = _bounded(gguf.get("total"), "GGUF parameter count", MAX_PARAMETERS, notes)
        g_arch = _str(gguf.get("architecture"))
        if g_arch:
            facts["gguf_architecture"] = g_arch
        ctx_len = _bounded(gguf.get("context_length"), "GGUF context length", MAX_CONTEXT, notes, lo=1)
        if ctx_len:
            facts["context_length"] = ctx_len
    config = payload.get("config")
    if isinstance(config, dict):
        archs = _strs(config.get("architectures"))
        architecture = archs[0] if archs else _str(config.get("architecture"))
        model_type = _str(config.get("model_type"))
        if model_type:
            facts["model_type"] = model_type
            architecture = architecture or model_type
        if len(archs) > 1:
            facts["architectures"] = archs
    architecture = architecture or facts.get("gguf_architecture")
    ti = payload.get("transformersInfo")
    if isinstance(ti, dict):
        for key in ("auto_model", "processor", "custom_class"):
            if _str(ti.get(key)):
                facts[key] = ti[key]

    # licence: card first (it may say `other` + a name), tag as fallback
    license_raw = next(iter(_strs(cd.get("license"))), None) or next(iter(prefixed.get("license", [])), None)
    if license_raw and license_raw.lower() == "other" and _str(cd.get("license_name")):
        license_raw = cd["license_name"]
    license_id = kb.license_id(license_raw) if license_raw else None
    if _str(cd.get("license_link")):
        facts["license_link"] = cd["license_link"]

    datasets = [kb.dataset_id(d) for d in [*prefixed.get("dataset", []), *_strs(cd.get("datasets"))]]

    # languages: card list (trusted), then two-letter tags that are ISO 639-1 codes
    languages: list[str] = []
    for lang in _strs(cd.get("language")):
        lang = lang.strip()
        if lang.lower() == "multilingual" or _LANG_CODE.match(lang):
            languages.append(lang.lower() if "-" not in lang and "_" not in lang else lang)
    lang_tags = set()
    for t in plain_tags:
        if t in _ISO639_1 or t == "multilingual":
            languages.append(t)
            lang_tags.add(t)

    links = [Link(rel="homepage", url=f"{web}/{repo_id}")]
    for a in prefixed.get("arxiv", []):
        if _ARXIV.match(a):
            links.append(Link(rel="paper", url=f"https://arxiv.org/abs/{a}"))
        else:
            notes.add(f"ignored arxiv tag {a[:40]!r}: not an arXiv id")
    for d in prefixed.get("doi", []):
        links.append(Link(rel="doi", url=f"https://doi.org/{d}"))

    base_models = _base_models(prefixed.get("base_model", []), cd, ctx.source_name, repo_id)

    evaluations = _evaluations(payload, cd, kb, notes)

    author = _str(payload.get("author")) or (repo_id.split("/", 1)[0] if "/" in repo_id else None)
    publisher = Agent(name=author, url=f"{web}/{author}") if author else None

    gated = payload.get("gated")
    private = payload.get("private") is True
    access = "private" if private else ("gated" if gated not in (None, False, "false", "False") else "public")
    if access == "gated" and isinstance(gated, str):
        facts["gated"] = gated

    used = _bounded(payload.get("usedStorage"), "used storage", MAX_FILE_BYTES * 64, notes)
    if used is not None:
        facts["used_storage_bytes"] = used
    if _str(payload.get("inference")):
        facts["inference"] = payload["inference"]
    if isinstance(payload.get("childrenModelCount"), int):
        facts["children_model_count"] = payload["childrenModelCount"]

    keywords = [t for t in plain_tags if t not in lang_tags] + _strs(cd.get("tags"))
    if len(keywords) > MAX_KEYWORDS:
        notes.add(f"kept the first {MAX_KEYWORDS} of {len(keywords)} tags")
        keywords = keywords[:MAX_KEYWORDS]

    sections = CardSections()
    description = None
    if card is not None:
        sections = CardSections(body=card.body, **{k: v for k, v in card.sections.items()
                                                   if k in CardSections.model_fields})
        description = card.description
    if description is None:
        description = _str(cd.get("description")) or _str(cd.get("model_description"))

    terms = [t for vocabulary, said in unknown.items() for t in source_terms(vocabulary, said, notes.add)]
    if notes.items:
        facts["mapping_notes"] = notes.items

    return ModelRecord(
        id=rid,
        source=ctx.source_name,
        source_kind=ctx.source_kind,
        local_id=repo_id,
        name=repo_id,
        description=description,
        publisher=publisher,
        license=license_id,
        tasks=tasks,
        frameworks=frameworks,
        artifacts=artifacts,
        source_code=_code_files(payload.get("siblings")),
        declared_formats=declared,
        parameter_count=parameter_count,
        dtypes=dtypes,
        architecture=architecture,
        base_models=base_models,
        training_datasets=datasets,
        evaluations=evaluations,
        languages=languages,
        keywords=keywords,
        source_terms=terms,
        version=sha,
        created=parse_hub_datetime(payload.get("createdAt")),
        modified=parse_hub_datetime(payload.get("lastModified")),
        popularity=Popularity(
            downloads=_bounded(payload.get("downloads"), "downloads", MAX_COUNT, notes),
            likes=_bounded(payload.get("likes"), "likes", MAX_COUNT, notes),
        ),
        links=links,
        card=sections,
        access=access,  # type: ignore[arg-type]
        source_facts=facts,
        provenance=Provenance(source_url=f"{web}/{repo_id}", harvested_at=datetime.now(UTC),
                              harvester=ctx.source_kind, harvester_version=ctx.harvester_version),
    )


def _code_files(siblings: Any) -> list[SourceCode]:
    """The repo's Python files (custom modelling code), listed only: the listing has no contents."""
    if not isinstance(siblings, list):
        return []
    paths = [_str(s.get("rfilename")) for s in siblings if isinstance(s, dict)]
    return [SourceCode(path=p) for p in paths if p and p.endswith(".py")][:50]


def _artifacts(siblings: Any, repo_id: str, sha: str | None, web: str, kb: KnowledgeBase,
               notes: _Notes) -> tuple[list[Artifact], dict[str, Any]]:
    """Model files (those the KB recognises) with sizes and LFS sha256; other files only count
    towards the repo's file facts."""
    facts: dict[str, Any] = {}
    if not isinstance(siblings, list):
        return [], facts
    rev = sha or "main"
    by_path: dict[str, Artifact] = {}
    total = 0
    sized = False
    for s in siblings:
        if not isinstance(s, dict):
            continue
        path = _str(s.get("rfilename"))
        if not path:
            continue
        lfs = s.get("lfs") if isinstance(s.get("lfs"), dict) else {}
        raw_size = s.get("size") if s.get("size") is not None else lfs.get("size")
        size = (_bounded(raw_size, f"size of {path[:80]}", MAX_FILE_BYTES, notes)
                if raw_size is not None else None)
        if size is not None:
            total += size
            sized = True
        fmt, apath = classify_path(kb, path)
        if fmt is None:
            continue
        sha256 = _str(lfs.get("sha256"))
        if sha256 and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
            notes.add(f"dropped sha256 of {path[:80]}: not a hex digest")
            sha256 = None
        if apath != path:  # a file inside a directory artifact: sum into the directory
            art = by_path.get(apath)
            if art is None:
                art = by_path[apath] = Artifact(path=apath, format=fmt, size_bytes=size,
                                                url=f"{web}/{repo_id}/tree/{rev}/{quote(apath)}")
            elif size is not None:
                art.size_bytes = (art.size_bytes or 0) + size
            continue
        if len(by_path) >= MAX_ARTIFACTS:
            notes.add(f"kept the first {MAX_ARTIFACTS} model files")
            continue
        art = Artifact(path=path, format=fmt, size_bytes=size, sha256=sha256.lower() if sha256 else None,
                       url=f"{web}/{repo_id}/resolve/{rev}/{quote(path)}")
        if fmt == "gguf":
            art.quantization = gguf_type_in_name(path, kb)
        by_path[path] = art
    facts["file_count"] = sum(1 for s in siblings if isinstance(s, dict) and s.get("rfilename"))
    if sized:
        facts["repo_size_bytes"] = total
    return list(by_path.values()), facts


def _base_models(tag_values: list[str], cd: dict[str, Any], source: str, repo_id: str) -> list[BaseModelLink]:
    """`base_model:<id>` / `base_model:<relation>:<id>` tags (Hub-computed) and the card's
    `base_model` (+ `base_model_relation`). A specific relation beats the generic `derived`."""
    found: dict[str, str] = {}

    def add(ref: str, rel: str) -> None:
        ref = ref.strip()
        if not ref or ref == repo_id or not re.fullmatch(r"[\w.\-]+(/[\w.\-]+)?", ref):
            return
        if found.get(ref, "derived") == "derived":
            found[ref] = rel

    for v in tag_values:
        head, sep, rest = v.partition(":")
        if sep and head.lower() in _RELATIONS:
            add(rest, _RELATIONS[head.lower()])
        else:
            add(v, "derived")
    card_rel = _RELATIONS.get((_str(cd.get("base_model_relation")) or "").lower(), "derived")
    for b in _strs(cd.get("base_model")):
        add(b, card_rel)
    return [BaseModelLink(ref=record_id(source, ref), relation=rel) for ref, rel in found.items()]  # type: ignore[arg-type]


def _evaluations(payload: dict[str, Any], cd: dict[str, Any], kb: KnowledgeBase,
                 notes: _Notes) -> list[EvaluationResult]:
    out: dict[tuple[Any, ...], EvaluationResult] = {}

    def keep(ev: EvaluationResult) -> None:
        key = (ev.metric, ev.dataset, ev.dataset_config, ev.split, ev.task, ev.metric_name, ev.value)
        out.setdefault(key, ev)

    for mi in (payload.get("model-index"), cd.get("model-index")):
        for ev in _model_index(mi, kb, notes):
            keep(ev)
    er = payload.get("evalResults")
    if isinstance(er, list):
        for item in er:
            ev = _eval_result_entry(item, kb, notes)
            if ev is not None:
                keep(ev)
    return list(out.values())


def _model_index(mi: Any, kb: KnowledgeBase, notes: _Notes) -> Iterable[EvaluationResult]:
    if mi is None:
        return
    if isinstance(mi, dict):
        mi = [mi]
    if not isinstance(mi, list):
        notes.add("ignored model-index: not a list")
        return
    for entry in mi:
        results = entry.get("results") if isinstance(entry, dict) else None
        if not isinstance(results, list):
            continue
        for res in results:
            if not isinstance(res, dict):
                continue
            task = res.get("task") if isinstance(res.get("task"), dict) else {}
            ds = res.get("dataset") if isinstance(res.get("dataset"), dict) else {}
            src = res.get("source") if isinstance(res.get("source"), dict) else {}
            task_raw = _str(task.get("type")) or _str(task.get("name"))
            ds_raw = _str(ds.get("type")) or _str(ds.get("name"))
            metrics = res.get("metrics")
            if not isinstance(metrics, list):
                continue
            for m in metrics:
                if not isinstance(m, dict):
                    continue
                mtype = _str(m.get("type")) or _str(m.get("name"))
                if not mtype:
                    notes.add("skipped a model-index metric without a type or name")
                    continue
                value = number(m.get("value"))
                if value is None:
                    notes.add(f"skipped metric {mtype[:40]!r} on {str(ds_raw)[:40]!r}: value "
                              f"{str(m.get('value'))[:40]!r} is not a number")
                    continue
                verified = m.get("verified")
                yield EvaluationResult(
                    metric=kb.metric_id(mtype), value=value, metric_name=_str(m.get("name")) or mtype,
                    dataset=kb.dataset_id(ds_raw) if ds_raw else None, dataset_name=_str(ds.get("name")),
                    dataset_config=_str(ds.get("config")) or _str(m.get("config")),
                    split=_str(ds.get("split")),
                    task=(kb.task_id(task_raw) or task_raw) if task_raw else None,
                    verified=verified if isinstance(verified, bool) else None,
                    source=_str(src.get("url")) or _str(src.get("name")), provenance="model-index")


def _eval_result_entry(item: Any, kb: KnowledgeBase, notes: _Notes) -> EvaluationResult | None:
    """The `.eval_results/*.yaml` shape (`expand=evalResults`): a benchmark dataset + task id and one
    score; the metric is the benchmark's own, so it is recorded as `score`."""
    if not isinstance(item, dict):
        return None
    data = item.get("data") if isinstance(item.get("data"), dict) else item
    ds = data.get("dataset") if isinstance(data.get("dataset"), dict) else {}
    ds_id = _str(ds.get("id"))
    value = number(data.get("value"))
    if not ds_id or value is None:
        why = "no dataset id" if not ds_id else "value is not a number"
        notes.add(f"skipped an evalResults entry: {why}")
        return None
    src = data.get("source") if isinstance(data.get("source"), dict) else {}
    metric_raw = _str(data.get("metric")) or "score"
    return EvaluationResult(metric=kb.metric_id(metric_raw), value=value, metric_name=_str(ds.get("task_id")),
                            dataset=kb.dataset_id(ds_id), dataset_name=ds_id,
                            dataset_config=_str(ds.get("task_id")), verified=bool(data.get("verifyToken")),
                            source=_str(src.get("url")) or _str(src.get("name")), provenance="evalResults")


# --- ModelInfo → wire JSON ------------------------------------------------------------------------
_SIMPLE_ATTRS = {
    "author": "author", "sha": "sha", "private": "private", "gated": "gated", "disabled": "disabled",
    "downloads": "downloads", "downloadsAllTime": "downloads_all_time", "likes": "likes",
    "library_name": "library_name", "gguf": "gguf", "inference": "inference", "tags": "tags",
    "pipeline_tag": "pipeline_tag", "mask_token": "mask_token", "trendingScore": "trending_score",
    "usedStorage": "used_storage", "widgetData": "widget_data", "model-index": "model_index",
    "config": "config", "spaces": "spaces", "baseModels": "base_models",
    "childrenModelCount": "children_model_count",
    "resourceGroup": "resource_group", "securityRepoStatus": "security_repo_status",
}
_HANDLED = {"id", "last_modified", "created_at", "card_data", "transformers_info", "siblings", "safetensors",
            "eval_results", "inference_provider_mapping", "lastModified", "cardData", "transformersInfo",
            *_SIMPLE_ATTRS.values()}


def info_to_payload(info: Any) -> dict[str, Any]:
    """Serialise a `huggingface_hub.ModelInfo` back to the Hub's wire shape, so list items and
    `model_info` answers are one payload type (and a stored payload stays JSON)."""
    out: dict[str, Any] = {"id": info.id}
    for key, attr in _SIMPLE_ATTRS.items():
        v = getattr(info, attr, None)
        if v is not None:
            out[key] = v
    for key, attr in (("lastModified", "last_modified"), ("createdAt", "created_at")):
        v = getattr(info, attr, None)
        if isinstance(v, datetime):
            out[key] = hub_time(v)
    cd = getattr(info, "card_data", None)
    if cd is not None:
        try:
            out["cardData"] = cd.to_dict() if hasattr(cd, "to_dict") else cd
        except Exception as exc:  # the client's card model has many validators; a bad card is not fatal
            log.info("%s: cardData could not be re-serialised (%s)", info.id, exc)
    ti = getattr(info, "transformers_info", None)
    if ti is not None:
        out["transformersInfo"] = {k: v for k, v in dataclasses.asdict(ti).items() if v is not None}
    if info.siblings is not None:
        sibs = []
        for s in info.siblings:
            d: dict[str, Any] = {"rfilename": s.rfilename}
            if s.size is not None:
                d["size"] = s.size
            if s.blob_id is not None:
                d["blobId"] = s.blob_id
            if s.lfs is not None:
                d["lfs"] = {"sha256": s.lfs.sha256, "size": s.lfs.size, "pointerSize": s.lfs.pointer_size}
            sibs.append(d)
        out["siblings"] = sibs
    st = getattr(info, "safetensors", None)
    if st is not None:
        out["safetensors"] = {"parameters": st.parameters, "total": st.total}
    ers = getattr(info, "eval_results", None)
    if ers:
        out["evalResults"] = [_eval_entry_wire(e) for e in ers]
    for k, v in vars(info).items():  # keys the client does not know (`_id`, `modelId`, new fields)
        if k not in _HANDLED and k not in out and _jsonable(v):
            out[k] = v
    return out


def _eval_entry_wire(e: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"dataset": {"id": e.dataset_id, "task_id": e.task_id}, "value": e.value}
    if e.dataset_revision:
        d["dataset"]["revision"] = e.dataset_revision
    for k, attr in (("verifyToken", "verify_token"), ("date", "date"), ("notes", "notes")):
        if getattr(e, attr, None) is not None:
            d[k] = getattr(e, attr)
    src = {k: getattr(e, f"source_{k}") for k in ("url", "name", "user", "org") if getattr(e, f"source_{k}")}
    if src:
        d["source"] = src
    return d


def _jsonable(v: Any) -> bool:
    return v is None or isinstance(v, str | int | float | bool | list | dict)


__all__ = ["MappingContext", "normalize_payload", "info_to_payload",
           "parse_hub_datetime", "hub_time", "number", "classify_path", "README_KEY", "NOTES_KEY", "README_MAX_BYTES"]
