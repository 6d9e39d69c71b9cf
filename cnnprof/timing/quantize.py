"""Reduced-precision copies of an exported ONNX model, cached beside it under ``models/``.

``cached_int8`` quantises statically after training with ``onnxruntime.quantization``: QDQ
format (QuantizeLinear / DequantizeLinear pairs that ONNX Runtime, OpenVINO and TensorRT all
read), every operator it can quantise but ``NOT_QUANTISED``, weights int8 symmetric per output
channel, activations uint8 (the u8s8 pair x86 int8 kernels are built for; s8 activations ran
5x slower in ONNX Runtime on efficientnet_b0 here) with ranges calibrated on
``samples`` synthetic standard-normal inputs at the timed resolution (seed ``CALIBRATION_SEED``,
a stream of its own: the timed and parity inputs are not among them). Those inputs are drawn
for a model whose batch norms were already calibrated at that resolution
(``targets.calibrate_model``), so its activations have the range they will have when timed.
``cached_fp16`` converts the file to float16 inside (inputs and outputs stay float32), for ONNX
Runtime's CUDA provider.

Both are keyed by a digest of the source file's bytes and of every option, so the same export
quantised the same way is reused, like ``onnx_export.cached_export``.
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
from dataclasses import dataclass
from pathlib import Path

from cnnprof.errors import CnnprofError, UsageError, one_line
from cnnprof.files import replace_file

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
# Operators left in float (between a DequantizeLinear and a QuantizeLinear): OpenVINO 2026.4
# crashes (a segmentation fault in compile_model) on the QDQ int8 files onnxruntime.quantization
# writes when it quantises a Concat (seen on ghostnet_100) or the BatchNormalization that follows
# one (espnetv2_100, whose batch norms after a concatenation are not folded into a convolution).
# With these two in float every registered model's int8 file compiles and runs in OpenVINO
# (checked on all 46, at 96x96; ghostnetv2 and mobilenetv3 at 224x224, espnet at 128x256), and
# ONNX Runtime's int8 ghostnet_100 ran at the same speed within the noise (11.5 against 11.1 ms,
# interleaved in one process).
NOT_QUANTISED = ("Concat", "BatchNormalization")
CALIBRATION_SEED = 2
DEFAULT_SAMPLES = 32


class QuantizeError(CnnprofError):
    """A model could not be quantised or converted (exit 2, or that row's error)."""


@dataclass(frozen=True)
class QuantOptions:
    """How int8 copies are calibrated: the method and the number of images. ``images``: a
    ``.npy`` file of real, preprocessed images (N x C x H x W, float32) to calibrate on instead
    of synthetic ones (``cnnprof eval`` sets apart images of the user's folder); its digest is
    part of the cached copy's key."""

    method: str = "minmax"
    samples: int = DEFAULT_SAMPLES
    images: str | None = None

    def check(self) -> "QuantOptions":
        if self.method not in CALIBRATION_METHODS:
            raise UsageError(f"unknown calibration method {self.method!r}; "
                             f"choose from {', '.join(CALIBRATION_METHODS)}")
        if self.samples < 1:
            raise UsageError(f"calibration samples must be at least 1, got {self.samples}")
        return self


def file_digest(path: str | os.PathLike) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _cached_name(source: Path, kind: str, options: str, folder: str | os.PathLike | None) -> Path:
    """Where the copy goes: ``folder`` (default: beside the source), named after the source and a
    digest of its bytes and the options (a user's own file gets its copy under ``models/``, never
    beside it)."""
    from cnnprof import version

    key = hashlib.sha1(f"{file_digest(source)}|{kind}|{options}|{_ort_version()}|{version.__version__}".encode())
    return Path(folder or source.parent) / f"{source.stem}-{kind}-{key.hexdigest()[:12]}.onnx"


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


@contextlib.contextmanager
def _quiet():
    """onnxruntime.quantization logs and warns freely; keep it off the terminal."""
    sink = io.StringIO()
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def calibration_batches(input_shape: tuple[int, ...], samples: int, images: str | None = None):
    """The calibration inputs, float32 batches of ``input_shape`` (its first dimension is the
    file's batch): the images of the ``images`` file (the last batch filled from its start), else
    synthetic standard-normal ones until ``samples`` images."""
    import numpy as np

    from cnnprof.timing.parity import check_images_fit

    batch = int(input_shape[0])
    if images is not None:
        real = np.load(images, mmap_mode="r")
        if real.ndim != 4 or tuple(real.shape[1:]) != tuple(input_shape[1:]) or not len(real):
            raise QuantizeError(f"calibration images of shape {tuple(real.shape)} do not fit the model's input "
                                f"{tuple(input_shape[1:])}")
        order = [i % len(real) for i in range(-(-len(real) // batch) * batch)]
        return [np.asarray(real[order[i:i + batch]], dtype=np.float32) for i in range(0, len(order), batch)]
    check_images_fit(-(-samples // batch) * batch, input_shape[1:], "--calibration-samples")
    rng = np.random.default_rng(CALIBRATION_SEED)
    return [rng.standard_normal(input_shape, dtype=np.float32) for _ in range(-(-samples // batch))]


def cached_int8(source: str | os.PathLike, options: QuantOptions = QuantOptions(), *,
                folder: str | os.PathLike | None = None) -> tuple[Path, float, bool]:
    """The QDQ int8 copy of ``source`` (quantised now, or reused). Returns (path, seconds, reused?)."""
    start = time.perf_counter()
    options.check()
    source = Path(source)
    data = f"images:{file_digest(options.images)}" if options.images else f"{options.samples}|seed{CALIBRATION_SEED}"
    path = _cached_name(source, "int8", f"qdq|u8s8|per-channel|{options.method}|{data}|"
                                        f"float:{','.join(NOT_QUANTISED)}", folder)
    if path.is_file() and path.stat().st_size > 0:
        return path, time.perf_counter() - start, True
    try:
        quantize_int8(source, path, options)
    except CnnprofError:
        raise
    except Exception as exc:  # noqa: BLE001 - a quantisation failure is this row's error, in one line
        raise QuantizeError(f"int8 quantisation of {source.name} failed: {one_line(exc)}") from exc
    return path, time.perf_counter() - start, False


def quantize_int8(source: Path, path: Path, options: QuantOptions) -> Path:
    """Quantise ``source`` into ``path`` (written in one rename)."""
    import onnx
    from onnxruntime import quantization as q
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    model = onnx.load(str(source))
    inputs = model.graph.input
    if len(inputs) != 1:
        raise QuantizeError(f"int8 quantisation of {source.name}: the model has {len(inputs)} inputs, "
                            "cnnprof feeds one")
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    if not dims or any(d <= 0 for d in dims):
        raise QuantizeError(f"int8 quantisation of {source.name}: its input shape is not fixed ({dims})")
    name = inputs[0].name
    batches = calibration_batches(tuple(dims), options.samples, options.images)

    class Reader(q.CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(batches)

        def get_next(self):
            x = next(self.items, None)
            return None if x is None else {name: x}

    method = {"minmax": q.CalibrationMethod.MinMax, "entropy": q.CalibrationMethod.Entropy,
              "percentile": q.CalibrationMethod.Percentile}[options.method]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        with _quiet():
            q.quantize_static(
                str(source), tmp, Reader(), quant_format=q.QuantFormat.QDQ, per_channel=True,
                activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8, calibrate_method=method,
                op_types_to_quantize=sorted((set(QDQRegistry) | set(QLinearOpsRegistry)) - set(NOT_QUANTISED)),
                extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
            )
        onnx.checker.check_model(tmp)
        replace_file(tmp, path)
    finally:
        for leftover in (tmp, tmp + ".data"):
            with contextlib.suppress(OSError):
                os.unlink(leftover)
    return path


INTEGER_OPS = ("QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger")


def int8_notes(path: str | os.PathLike) -> list:
    """The warning of an int8 row whose file holds no quantised weight (a model without
    convolutions or matrix products: pooling, reshapes, element-wise ops): its figures are
    essentially the float graph's, with at most some activations rounded on the way."""
    import onnx

    from cnnprof.rows import Note

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:  # noqa: BLE001 - not an ONNX file: nothing to say here
        return []
    constants = {i.name for i in graph.initializer} | {o for n in graph.node if n.op_type == "Constant"
                                                       for o in n.output}
    weights = any(n.op_type in INTEGER_OPS or (n.op_type == "DequantizeLinear" and n.input[0] in constants)
                  for n in graph.node)
    if weights:
        return []
    return [Note.tagged("int8", "nothing was quantised (no convolution or matrix product has int8 weights): "
                                "this row times what is essentially the float graph")]


def sort_nodes(graph) -> None:
    """Put ``graph``'s nodes in an order where each one comes after the nodes that make its inputs
    (ONNX requires it); a graph that cannot be ordered is left as it is for the checker to name."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        ready = [n for n in pending if all(name in available for name in n.input)]
        if not ready:
            return
        for n in ready:
            available.update(n.output)
        ordered += ready
        pending = [n for n in pending if not any(n is r for r in ready)]
    del graph.node[:]
    graph.node.extend(ordered)


def cached_fp16(source: str | os.PathLike, *, folder: str | os.PathLike | None = None) -> tuple[Path, float, bool]:
    """A float16 copy of ``source`` (float32 inputs and outputs kept): for ONNX Runtime on CUDA."""
    start = time.perf_counter()
    source = Path(source)
    path = _cached_name(source, "fp16", "keep-io", folder)
    if path.is_file() and path.stat().st_size > 0:
        return path, time.perf_counter() - start, True
    try:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        with _quiet():
            converted = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
        sort_nodes(converted.graph)  # the converter appends its input casts at the end of the graph
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".onnx", dir=path.parent)
        os.close(fd)
        try:
            onnx.save(converted, tmp)
            onnx.checker.check_model(tmp)
            replace_file(tmp, path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    except CnnprofError:
        raise
    except Exception as exc:  # noqa: BLE001 - a conversion failure is this row's error, in one line
        raise QuantizeError(f"fp16 conversion of {source.name} failed: {one_line(exc)}") from exc
    return path, time.perf_counter() - start, False
