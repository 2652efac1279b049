"""A faster way to embed one search query with the same model, checked against the model's own
`encode` before it is used.

A query is embedded on the critical path of every text search. `SentenceTransformer.encode` of
one short text took ~10-12 ms on one core of the reference machine, most of it six small fp32
matrix products per layer plus the Python of `transformers`' generic modules. Holding a bfloat16
copy of the transformer, traced and frozen by TorchScript (which fuses the linear layers through
oneDNN), took ~5.5 ms for the same vectors (cosine >= 0.9999 against fp32; bench/results). With
torch 2.13 (the PyPI build this machine now installs) both TorchScript variants take ~7 ms, and the
fp32 graph exported to ONNX and run by ONNX Runtime on one thread takes ~3.4 ms at cosine 1.0000
(bench/results/search-1m-2026-12-08.md): ONNX Runtime's fused attention and GEMM kernels beat
TorchScript's on a single short sequence. Record summaries are still embedded in batches by
`encode` in fp32; only the query side changes.

Whether the fast path is used is decided by measuring, not assumed: at load it must reproduce
`encode` (cosine >= `MIN_COSINE` on probe texts) and be faster on this CPU (bfloat16 is slow on
CPUs without native support), else queries go through `encode` as before. TorchScript is
deprecated in torch 2.x but still shipped; if it goes, the check fails and `encode` is used. ONNX
Runtime and onnx (the exporter needs it) are optional, installed by the `embeddings` extra; without
them that candidate is skipped.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

MIN_COSINE = 0.999  # measured ~0.99993 for bf16 MiniLM; a wrong trace gives far less
PROBES = ("bert", "image classification model that runs on android phones",
          "real-time traffic prediction from camera input at urban intersections, under 50 ms on a T4")
_TIMING_RUNS = 5


def _pooled(auto_model: Any) -> Any:
    """The transformer with the model's tail (mean pooling, normalisation) as one torch module, for
    tracing or export. One unpadded text: no attention mask, so the mean over tokens is the masked
    mean; the pooling runs in fp32 whatever the transformer's dtype."""
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self, auto_model: Any) -> None:
            super().__init__()
            self.auto_model = auto_model

        def forward(self, input_ids: Any) -> Any:
            hidden = self.auto_model(input_ids=input_ids).last_hidden_state
            return torch.nn.functional.normalize(hidden.float().mean(dim=1), dim=1)

    return Pooled(auto_model).eval()


class QueryEncoder:
    """Embeds one text at a time (normalised, float32), through the fastest checked path."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.path = "encode"  # which path queries take: "encode", or the fast variant's name
        self._fast: Callable[[str], np.ndarray] | None = None
        try:
            self._fast, self.path = self._choose()
        except Exception as e:  # noqa: BLE001 — any failure here just means the plain path
            log.info("query embeddings use SentenceTransformer.encode (fast path unavailable: %s)", e)
        else:
            log.info("query embeddings use the %s path", self.path)

    def __call__(self, text: str) -> np.ndarray:
        if self._fast is not None:
            return self._fast(text)
        return self._encode(text)

    def _encode(self, text: str) -> np.ndarray:
        vec = self.model.encode([text], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vec[0], dtype=np.float32)

    def _choose(self) -> tuple[Callable[[str], np.ndarray] | None, str]:
        """The fastest variant that reproduces `encode` on the probes (or none)."""
        import torch

        self._check_architecture()
        candidates: list[tuple[str, Callable[[str], np.ndarray]]] = []
        builders: list[tuple[str, Callable[[], Callable[[str], np.ndarray]]]] = [
            ("onnxruntime-float32", self._onnxruntime),
            *((f"torchscript-{str(dt).removeprefix('torch.')}", lambda dt=dt: self._traced(dt))
              for dt in (torch.bfloat16, torch.float32)),
        ]
        for name, build in builders:
            try:
                candidates.append((name, build()))
            except Exception as e:  # noqa: BLE001 — a variant that cannot be built is not a candidate
                log.debug("query encoder %s unavailable: %s", name, e)
        reference = {p: self._encode(p) for p in PROBES}
        best: tuple[float, str, Callable[[str], np.ndarray] | None] = (self._time(self._encode), "encode", None)
        for name, fn in candidates:
            cos = min(float(np.dot(fn(p), reference[p])) for p in PROBES)
            if cos < MIN_COSINE:
                log.warning("query encoder %s rejected: cosine %.4f against encode", name, cos)
                continue
            took = self._time(fn)
            if took < best[0]:
                best = (took, name, fn)
        return best[2], best[1]

    def _check_architecture(self) -> None:
        """The fast path re-implements only the model's tail: mean pooling, then normalisation."""
        modules = list(self.model)
        kinds = [type(m).__name__ for m in modules]
        if kinds != ["Transformer", "Pooling", "Normalize"] or getattr(modules[1], "pooling_mode", None) != "mean":
            raise ValueError(f"unsupported module layout {kinds}")

    def _traced(self, dtype: Any) -> Callable[[str], np.ndarray]:
        import copy

        import torch

        auto = copy.deepcopy(self.model[0].auto_model).eval().to(dtype)
        example = self._ids(PROBES[1])
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # TorchScript's deprecation and tracer notices
            # (torch.jit.trace carries no annotations in torch 2.13)
            traced = torch.jit.freeze(torch.jit.trace(  # type: ignore[no-untyped-call]
                _pooled(auto), (example,), check_trace=False, strict=False).eval())

        def run(text: str) -> np.ndarray:
            with torch.no_grad():
                vec: np.ndarray = traced(self._ids(text)).numpy()[0].astype(np.float32, copy=False)
                return vec

        return run

    def _onnxruntime(self) -> Callable[[str], np.ndarray]:
        """The fp32 transformer (with the same mean pooling and normalisation) exported to ONNX in
        memory and run by ONNX Runtime on the calling thread: one intra-op thread, no spinning, so
        it leaves the other core to BM25 and the facets as the torch path does."""
        import io

        import onnxruntime as ort  # optional: ImportError means no such candidate
        import torch

        buf = io.BytesIO()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notices
            # The TorchScript-based exporter (dynamo=False): it needs no onnxscript and exports this
            # encoder-only graph exactly (cosine 1.0 against encode on the probes).
            # (torch's stub names a path only; the exporter writes to any binary file object)
            torch.onnx.export(_pooled(self.model[0].auto_model.eval()), (self._ids(PROBES[1]),),
                              buf,  # type: ignore[arg-type]
                              input_names=["input_ids"],
                              output_names=["embedding"], dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}},
                              opset_version=17, dynamo=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(buf.getvalue(), options, providers=["CPUExecutionProvider"])

        def run(text: str) -> np.ndarray:
            ids = np.asarray(self._ids(text), dtype=np.int64)
            vec: np.ndarray = session.run(None, {"input_ids": ids})[0][0].astype(np.float32, copy=False)
            return vec

        return run

    def _ids(self, text: str) -> Any:
        """Token ids exactly as `encode` makes them (the module's own preprocessing, its length cap)."""
        transformer = self.model[0]
        prepare = getattr(transformer, "preprocess", None) or transformer.tokenize
        return prepare([text])["input_ids"]

    @staticmethod
    def _time(fn: Callable[[str], np.ndarray]) -> float:
        fn(PROBES[2])  # first call: allocations, oneDNN primitive creation
        took = []
        for _ in range(_TIMING_RUNS):
            t = time.perf_counter()
            fn(PROBES[2])
            took.append(time.perf_counter() - t)
        return sorted(took)[len(took) // 2]
