"""The backends, one record each: the one place that says what a backend is and can do.

A record names the backend (``Backend``, a str-valued enum: written as its plain value in every
row, table and file), what it times (``Runtime.TORCH``: the PyTorch module; ``Runtime.ONNX``: its
ONNX export, or the int8 / fp16 copy of it), the devices it runs on, the precisions it refuses
(with the one line that says why), the modules a fresh worker imports before its idle memory is
read, the environment entries that make its measurements comparable, and the factory of its
runner. Code asks the record (``record(backend)``, or ``Backend.torch.record``) instead of
comparing backend names: adding a backend is adding a record.

Precision rules that hold for every backend (fp16 needs CUDA; bf16 needs native instructions)
live in ``precision.refusal``, which consults these records first. ``Precision``, ``Runtime`` and
the device names live below this registry (``names.py``, re-exported here), so that the runner
modules the factories import need not import the registry back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol

from cnnprof.rows import Choice
from cnnprof.timing.names import CPU as CPU
from cnnprof.timing.names import CUDA as CUDA
from cnnprof.timing.names import Precision as Precision
from cnnprof.timing.names import Runtime as Runtime


class Backend(Choice):
    """A timing backend; its value is what rows, tables, files and the database hold."""

    torch = "torch"
    compile = "compile"
    onnxruntime = "onnxruntime"
    openvino = "openvino"
    tensorrt = "tensorrt"

    @property
    def record(self) -> "BackendRecord":
        return RECORDS[self]

    @property
    def is_torch(self) -> bool:
        """Times the PyTorch module itself (in this interpreter's torch, under its threads)."""
        return RECORDS[self].runtime is Runtime.TORCH

    @property
    def is_onnx(self) -> bool:
        """Times an ONNX file (the export, or its int8 / fp16 copy)."""
        return RECORDS[self].runtime is Runtime.ONNX

    @classmethod
    def parse(cls, value) -> "Backend | None":
        """The member named ``value`` (a member or its string), or None for an unknown name."""
        try:
            return cls(value)
        except ValueError:
            return None


class RunnerOptions(Protocol):
    """What a runner factory reads of a configuration (``cnnprof.timing.TimingOptions`` has it)."""

    device: str
    threads: int
    channels_last: bool
    train: bool
    precision: Precision
    cuda_graphs: bool


REFERENCE = (Backend.torch, Precision.fp32)  # the parity reference, and the speed-ups' baseline (on the CPU)


@dataclass(frozen=True)
class BackendRecord:
    """One backend: what it times, where, which precisions it refuses and why, how it starts."""

    backend: Backend
    runtime: Runtime
    devices: tuple[str, ...]
    wrong_device: str  # the one line for a device not in ``devices``
    runner: Callable  # (model or ONNX path, example input, RunnerOptions, export seconds) -> runner
    imports: tuple[str, ...]  # imported by a fresh worker before its idle resident set is read
    env_keys: tuple[str, ...] = ()  # environment entries (runtime versions) its timings depend on
    refused: Mapping[Precision, str] = field(default_factory=dict)  # on any device ({backend} filled in)
    refused_on: Mapping[tuple[str, Precision], str] = field(default_factory=dict)  # on one device
    requires: Callable[[str, Precision], None] | None = None  # raises a UsageError where the runtime is missing
    cuda_graphs: bool = False  # can replay a captured CUDA graph
    trains: bool = False  # can time a training step

    @property
    def precisions(self) -> tuple[Precision, ...]:
        """The precisions this backend times on some device (this machine's hardware aside)."""
        return tuple(p for p in Precision if p not in self.refused)

    def refusal(self, device: str, precision: Precision) -> str | None:
        """This backend's own reason not to time ``precision`` on ``device``, or None."""
        why = self.refused.get(precision) or self.refused_on.get((device, precision))
        return why.format(backend=self.backend.value) if why else None


# -- runner factories (lazy: a backend's runtime is imported only when it runs) -------------------------
def _eager(model, example, opts: RunnerOptions, export_s=None):
    from cnnprof.timing.eager import EagerRunner

    return EagerRunner(model, example, device=opts.device, channels_last=opts.channels_last, train=opts.train,
                       precision=opts.precision, cuda_graphs=opts.cuda_graphs)


def _compiled(model, example, opts: RunnerOptions, export_s=None):
    from cnnprof.timing.compiled import CompiledRunner

    return CompiledRunner(model, example, device=opts.device, channels_last=opts.channels_last, train=opts.train,
                          precision=opts.precision)


def _ort(path, x, opts: RunnerOptions, export_s=None):
    from cnnprof.timing.ort import OrtRunner

    return OrtRunner(path, x, device=opts.device, threads=opts.threads, precision=opts.precision, export_s=export_s)


def _openvino(path, x, opts: RunnerOptions, export_s=None):
    from cnnprof.timing.openvino import OpenVinoRunner

    return OpenVinoRunner(path, x, threads=opts.threads, precision=opts.precision, export_s=export_s)


def _tensorrt(path, x, opts: RunnerOptions, export_s=None):
    from cnnprof.timing.ort import TensorrtRunner

    return TensorrtRunner(path, x, threads=opts.threads, precision=opts.precision, export_s=export_s)


# -- what must be installed ----------------------------------------------------------------------------
def _requires_ort(device: str, precision: Precision) -> None:
    if device == CUDA:
        from cnnprof.timing.ort import providers_for

        providers_for(CUDA)  # raises a UsageError when the CUDA provider is missing


def _requires_openvino(device: str, precision: Precision) -> None:
    from cnnprof.timing.openvino import require_openvino

    require_openvino()


def _requires_tensorrt(device: str, precision: Precision) -> None:
    from cnnprof.timing.ort import tensorrt_providers

    tensorrt_providers(precision)  # raises a UsageError when the provider is missing


_NO_TORCH_INT8 = ("int8 is not implemented for {backend}: it is timed as a static-quantised QDQ ONNX model "
                  "with --backend onnxruntime, openvino or tensorrt")
_TORCH_IMPORTS = ("torch", "cnnprof.timing.eager")

RECORDS: dict[Backend, BackendRecord] = {r.backend: r for r in (
    BackendRecord(
        Backend.torch, Runtime.TORCH, (CPU, CUDA), "", _eager, _TORCH_IMPORTS,
        refused={Precision.int8: _NO_TORCH_INT8}, cuda_graphs=True, trains=True),
    BackendRecord(
        Backend.compile, Runtime.TORCH, (CPU, CUDA), "", _compiled, _TORCH_IMPORTS + ("cnnprof.timing.compiled",),
        refused={Precision.int8: _NO_TORCH_INT8}, trains=True),
    BackendRecord(
        Backend.onnxruntime, Runtime.ONNX, (CPU, CUDA), "", _ort, ("onnxruntime",), ("onnxruntime",),
        refused={Precision.bf16: "onnxruntime has no bf16 kernels: time bf16 with --backend openvino or torch "
                                 "(or fp16 on CUDA)"},
        refused_on={(CUDA, Precision.int8): "int8 on CUDA: use --backend tensorrt (ONNX Runtime's CUDA provider "
                                            "runs a QDQ model's convolutions in float)"},
        requires=_requires_ort),
    BackendRecord(
        Backend.openvino, Runtime.ONNX, (CPU,), "openvino times on the CPU: use --device cpu", _openvino,
        ("openvino",), ("openvino",),
        refused={Precision.fp16: "openvino: fp16 is not offered here; time bf16 or int8 on the CPU"},
        requires=_requires_openvino),
    BackendRecord(
        Backend.tensorrt, Runtime.ONNX, (CUDA,), "tensorrt runs on CUDA only: add --device cuda", _tensorrt,
        ("onnxruntime",), ("onnxruntime",),
        refused={Precision.bf16: "tensorrt: cnnprof builds fp32, fp16 and int8 engines; bf16 is not offered"},
        requires=_requires_tensorrt),
)}

BACKENDS = tuple(b.value for b in Backend)
PRECISIONS = tuple(p.value for p in Precision)
ONNX_BACKENDS = tuple(b.value for b in Backend if b.is_onnx)  # time an ONNX file (int8: its QDQ copy)
TORCH_BACKENDS = tuple(b.value for b in Backend if b.is_torch)


def record(backend: Backend | str) -> BackendRecord:
    """The record of ``backend`` (a member or its name; an unknown name is a ValueError)."""
    return RECORDS[Backend(backend)]

