"""``cnnprof export``: export, check, run once, and cross-check the counts of two independent counters.

The ONNX-graph counter (``onnx_count``) reads multiply-adds from the exported graph's shapes; the
fvcore counter traces the PyTorch module. They share no code, so agreement (within 0.5%) is
evidence that both are right; where they differ, the per-layer difference says where.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from cnnprof.errors import CnnprofError, UsageError, one_line
from cnnprof.files import MODELS_DIR
from cnnprof.rows import Row
from cnnprof.targets import running

AGREEMENT = 0.005  # relative tolerance between the two MAC counters


@dataclass(frozen=True)
class LayerDiff:
    module: str
    macs_fvcore: int
    macs_onnx: int


@dataclass(frozen=True)
class ExportRow(Row):
    model: str
    input: str
    path: str
    bytes: int
    opset: int
    dynamic_batch: bool
    export_s: float
    params: int  # PyTorch module parameters
    params_onnx: int  # float initializers (batch norm folded into convolutions)
    macs: int  # fvcore conv + linear
    macs_onnx: int  # read from the ONNX graph
    macs_rel_diff: float
    counters_agree: bool
    counts_status: str
    parity_max_abs: float
    parity_batch2_max_abs: float | None = None
    layer_diffs: tuple[LayerDiff, ...] = field(default_factory=tuple)


def layer_differences(counts, onnx_counts) -> list[LayerDiff]:
    """Per module path: fvcore's conv + linear MACs against the ONNX nodes named after it."""
    from cnnprof.onnx_count import module_path

    onnx_by_module: dict[str, int] = {}
    for node in onnx_counts.nodes:
        key = module_path(node.name) or node.name
        onnx_by_module[key] = onnx_by_module.get(key, 0) + node.macs
    torch_by_module = {layer.name: layer.macs for layer in counts.layers if layer.macs}
    out = []
    for key in sorted(set(onnx_by_module) | set(torch_by_module)):
        a, b = torch_by_module.get(key, 0), onnx_by_module.get(key, 0)
        if a != b:
            out.append(LayerDiff(key, a, b))
    return out


def export_and_check(target, *, output: str | Path | None = None, opset: int = 17, dynamic_batch: bool = False,
                     exporter: str = "torchscript", batch: int = 1) -> ExportRow:
    """Export ``target`` to ``output`` (default ``models/NAME.onnx``), check the file with the
    ONNX checker, run it once in ONNX Runtime against PyTorch, and compare the two counters.

    The export is made and checked in a temporary file beside ``output``; only a file that
    passed every check replaces ``output`` (in one rename), so a model that cannot be exported
    leaves the user's file as it was."""
    import torch

    from cnnprof.files import check_writable, destination, ensure_folder, replace_file, write_atomic
    from cnnprof.onnx_export import ExportError, export_onnx

    if target.onnx_path is not None:
        raise UsageError(f"{target.name} is already an ONNX file")
    if opset < 7 or opset > 25:
        raise UsageError(f"--opset must be between 7 and 25, got {opset}")
    shape = tuple(target.input)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in target.name)
    path = Path(output) if output is not None else ensure_folder(MODELS_DIR) / f"{safe}.onnx"
    check_writable(path)
    real, in_place = destination(path)
    model = target.build()
    example = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory(prefix=".cnnprof-export-", dir=None if in_place else real.parent) as tmpdir:
        tmp = Path(tmpdir) / "model.onnx"
        t0 = time.perf_counter()
        with running(target.name):
            export_onnx(model, example, tmp, opset=opset, dynamic_batch=dynamic_batch, exporter=exporter)
        export_s = time.perf_counter() - t0
        try:
            with running(target.name):
                row = _check(target, model, tmp, shape=shape, example=example, batch=batch,
                             dynamic_batch=dynamic_batch)
        except CnnprofError:
            raise
        except Exception as exc:  # noqa: BLE001 - an exported graph that cannot be used is this model's error
            raise ExportError(f"{target.name}: the exported graph cannot be used ({one_line(exc, limit=200)}); "
                              f"{str(path)!r} was not written") from None
        size = tmp.stat().st_size
        if in_place:
            write_atomic(path, tmp.read_bytes())
        else:
            replace_file(tmp, real)
    return dataclasses.replace(row, path=str(path), bytes=size, export_s=export_s)


def _check(target, model, path: Path, *, shape, example, batch: int, dynamic_batch: bool) -> ExportRow:
    """Check an exported file: ONNX checker, one run in ONNX Runtime against PyTorch, the two
    counters compared."""
    import numpy as np
    import torch

    from cnnprof.counting import count
    from cnnprof.onnx_count import count_onnx, load
    from cnnprof.timing.ort import make_session

    proto = load(path)  # the ONNX checker runs here
    session = make_session(path, threads=1)
    name = session.get_inputs()[0].name

    def parity(x):
        with torch.inference_mode():
            ref = model(x).float().numpy()
        got = np.asarray(session.run(None, {name: x.numpy()})[0])
        return float(np.abs(got - ref).max())

    parity1 = parity(example)
    parity2 = parity(torch.randn(2, *shape, generator=torch.Generator().manual_seed(1))) if dynamic_batch else None
    counts = count(model, shape, batch=batch, label=target.name)
    oc = count_onnx(proto, batch=batch)
    rel = abs(oc.macs - counts.macs) / counts.macs if counts.macs else 0.0
    agree = rel <= AGREEMENT
    return ExportRow(
        model=target.name, input="x".join(map(str, shape)), path=str(path), bytes=0,
        opset=oc.opset, dynamic_batch=dynamic_batch, export_s=0.0, params=counts.params,
        params_onnx=oc.params, macs=counts.macs, macs_onnx=oc.macs, macs_rel_diff=rel, counters_agree=agree,
        counts_status=oc.status, parity_max_abs=parity1, parity_batch2_max_abs=parity2,
        layer_diffs=tuple(layer_differences(counts, oc)) if not agree else (),
    )
