"""Facts an ONNX file declares about itself (opsets, IR version, producer, operators), read for
Artifact.details by the harvesters and the verify job."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def inspect_onnx(path: str | Path) -> dict[str, Any]:
    """Facts an `.onnx` file declares about itself, for Artifact.details: the default-domain
    opset ("opset"), the ONNX-ML opset ("ml_opset"), the IR version, the producer and the
    operator types used. External weight files are not read."""
    import onnx  # optional dependency (extra "verify"); only the harvester / verify job need it

    model = onnx.load(str(path), load_external_data=False)
    opsets = {(imp.domain or "ai.onnx"): int(imp.version) for imp in model.opset_import}
    out: dict[str, Any] = {"ir_version": int(model.ir_version), "opsets": opsets}
    if "ai.onnx" in opsets:
        out["opset"] = opsets["ai.onnx"]
    if "ai.onnx.ml" in opsets:
        out["ml_opset"] = opsets["ai.onnx.ml"]
    if model.producer_name:
        out["producer_name"] = model.producer_name
    if model.producer_version:
        out["producer_version"] = model.producer_version
    out["op_types"] = sorted({n.op_type for n in model.graph.node})
    out["inputs"] = [i.name for i in model.graph.input]
    out["outputs"] = [o.name for o in model.graph.output]
    return out
