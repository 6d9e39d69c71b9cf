"""Export a model to one self-contained ONNX file, quietly and atomically, with a cache.

The TorchScript-based exporter is used by default: on this kind of 2-core machine it exports
EfficientNet-B0 in a few seconds where the dynamo exporter takes several times longer, and both
produce the same graph for these convolutional networks. ``exporter="dynamo"`` selects the
other one; if the default fails for a model, the dynamo exporter is tried before giving up.

Files are keyed by a digest of the weights, input shape, exporter and opset, so timing the
same (seeded) model again reuses its file instead of exporting anew.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch import nn

from cnnprof.errors import CnnprofError, one_line
from cnnprof.files import MODELS_DIR, replace_file

DEFAULT_OPSET = 17


class ExportError(CnnprofError):
    """The model could not be exported to ONNX."""


@contextlib.contextmanager
def _quiet():
    """torch.onnx prints progress, warnings and log lines; keep them off the terminal."""
    sink = io.StringIO()
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch._dynamo", "torch.export", "torch.fx", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lvl in zip(loggers, levels):
            lg.setLevel(lvl)


def weights_digest(model: nn.Module) -> str:
    h = hashlib.sha1()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def export_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: str | os.PathLike,
    *,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = False,
    exporter: str = "torchscript",
) -> Path:
    """Export ``model`` (in eval mode) at ``example``'s shape to one file at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    order = [exporter] + [e for e in ("torchscript", "dynamo") if e != exporter]
    errors = []
    for kind in order:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".onnx", dir=path.parent)
        os.close(fd)
        try:
            with _quiet(), torch.no_grad():
                _export(model, example, tmp, opset=opset, dynamic_batch=dynamic_batch, kind=kind)
            replace_file(tmp, path)  # the mode a plain write gives (mkstemp makes it private)
            return path
        except Exception as exc:  # noqa: BLE001 - collected and reported as one ExportError below
            errors.append(f"{kind}: {one_line(exc, limit=None)}")
        finally:
            for leftover in (tmp, tmp + ".data"):
                with contextlib.suppress(OSError):
                    os.unlink(leftover)
    raise ExportError("ONNX export failed (" + "; ".join(errors) + ")")


def _export(model, example, f, *, opset, dynamic_batch, kind):
    if kind == "dynamo":
        dynamic_shapes = ({0: torch.export.Dim("batch")},) if dynamic_batch else None
        torch.onnx.export(
            model, (example,), f, dynamo=True, external_data=False, verbose=False, opset_version=max(opset, 18),
            input_names=["input"], output_names=["output"], dynamic_shapes=dynamic_shapes,
        )
    else:
        axes = {"input": {0: "batch"}, "output": {0: "batch"}} if dynamic_batch else None
        torch.onnx.export(
            model, (example,), f, dynamo=False, verbose=False, opset_version=opset,
            input_names=["input"], output_names=["output"], dynamic_axes=axes,
        )


def cached_export(
    model: nn.Module,
    example: torch.Tensor,
    *,
    name: str,
    folder: str | os.PathLike = MODELS_DIR,
    opset: int = DEFAULT_OPSET,
    exporter: str = "torchscript",
) -> tuple[Path, float, bool]:
    """Export unless an identical export exists. Returns (path, seconds spent, reused?)."""
    start = time.perf_counter()
    shape = "x".join(str(s) for s in example.shape)
    key = hashlib.sha1(
        f"{weights_digest(model)}|{shape}|{exporter}|{opset}|{torch.__version__}".encode()
    ).hexdigest()[:12]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    path = Path(folder) / f"{safe}-{shape}-{key}.onnx"
    if path.is_file() and path.stat().st_size > 0:
        return path, time.perf_counter() - start, True
    export_onnx(model, example, path, opset=opset, exporter=exporter)
    return path, time.perf_counter() - start, False
