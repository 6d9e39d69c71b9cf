"""Timing: one protocol (``protocol.py``), one small interface, five backends.

A backend is a runner class built from ``(model or ONNX file, example input, options)`` whose
``step()`` times one call and returns milliseconds, whose ``infer(x)`` returns the output for
another input of the same shape (the parity check), and which reports ``setup_s`` (compile,
session creation, engine build), ``export_s`` (ONNX export, and quantisation for int8) and
``first_run_ms``. ``time_model`` applies the protocol to any of them in this process and returns
a ``Latency``; ``cnnprof.bench.isolated`` does the same in a fresh worker process per
configuration, which also measures the run's peak memory (``cnnprof.timing.memory``).

Precisions (``precision.py``): fp32, fp16, bf16 (autocast for torch and compile; OpenVINO's
inference precision), int8 (a static QDQ quantisation of the ONNX export, ``cnnprof.timing.quantize``).
Every row is checked against fp32 PyTorch eager on the same inputs (``parity.py``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from cnnprof.errors import CnnprofError, UsageError, memory_guard, one_line
from cnnprof.files import MODELS_DIR
from cnnprof.timing.quantize import QuantOptions
from cnnprof.rows import Latency, Note, Notes
from cnnprof.timing.parity import PARITY_INPUTS, Parity, ParityMeter, output_notes, parity_notes
from cnnprof.timing.precision import ONNX_BACKENDS, PRECISIONS, refusal
from cnnprof.timing.protocol import DEFAULT, SPIN, SPIN_PROBE, CpuMonitor, Protocol, run, warnings_for

BACKENDS = ("torch", "compile", "onnxruntime", "openvino", "tensorrt")
DEVICES = ("cpu", "cuda")
SPIN_RATIO = 1.5  # N threads slower than this times 1 thread: OpenMP threads are fighting


class BackendError(CnnprofError):
    """A backend could not run this model (export, compile or session failure)."""


@dataclass(frozen=True)
class TimingOptions:
    backend: str = "torch"
    device: str = "cpu"
    threads: int = 1
    batch: int = 1
    channels_last: bool = False
    train: bool = False
    protocol: Protocol = DEFAULT
    onnx_dir: str = MODELS_DIR
    parity: bool = True
    precision: str = "fp32"
    quant: QuantOptions = field(default_factory=QuantOptions)  # how int8 copies are calibrated
    force: bool = False  # time a precision this machine would only emulate
    cuda_graphs: bool = False  # torch eager on CUDA: replay a captured CUDA graph
    parity_inputs: int = PARITY_INPUTS

    @property
    def is_reference(self) -> bool:
        """Whether this configuration *is* the parity reference (fp32 eager on the CPU)."""
        return (self.backend == "torch" and self.device == "cpu" and str(self.precision) == "fp32"
                and not self.cuda_graphs)


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def check_options(opts: TimingOptions) -> None:
    """Reject what cannot run here before any work: exit 2 with one line."""
    if opts.backend not in BACKENDS:
        raise UsageError(f"unknown backend {opts.backend!r}; choose from {', '.join(BACKENDS)}")
    if opts.device not in DEVICES:
        raise UsageError(f"unknown device {opts.device!r}; choose cpu or cuda")
    if str(opts.precision) not in PRECISIONS:
        raise UsageError(f"unknown precision {opts.precision!r}; choose from {', '.join(PRECISIONS)}")
    if opts.threads < 1:
        raise UsageError(f"threads must be at least 1, got {opts.threads}")
    if opts.batch < 1:
        raise UsageError(f"batch must be at least 1, got {opts.batch}")
    if opts.parity_inputs < 1:
        raise UsageError(f"parity inputs must be at least 1, got {opts.parity_inputs}")
    if opts.train and opts.backend not in ("torch", "compile"):
        raise UsageError(f"{opts.backend} times inference only; --train needs the torch or compile backend")
    if opts.train and str(opts.precision) != "fp32":
        raise UsageError("--train times fp32 only")
    if str(opts.precision) == "int8":
        opts.quant.check()
    check_device(opts)
    why = refusal(opts.backend, opts.device, opts.precision, force=opts.force)
    if why:
        raise UsageError(why)


def check_device(opts: TimingOptions) -> None:
    """The runtime and device ``opts`` name exist here (CUDA, its providers, OpenVINO)."""
    if opts.backend == "openvino":
        if opts.device != "cpu":
            raise UsageError("openvino times on the CPU: use --device cpu")
        from cnnprof.timing.openvino import require_openvino

        require_openvino()
    if opts.cuda_graphs:
        if opts.backend != "torch":
            raise UsageError("--cuda-graphs applies to --backend torch (eager)")
        if not cuda_available():
            raise UsageError("--cuda-graphs needs a CUDA device: none is available on this machine")
        if opts.device != "cuda":
            raise UsageError("--cuda-graphs needs --device cuda")
    if opts.backend == "tensorrt":
        if not cuda_available():
            raise UsageError("tensorrt runs on a CUDA device: none is available on this machine")
        if opts.device != "cuda":
            raise UsageError("tensorrt runs on CUDA only: add --device cuda")
        from cnnprof.timing.ort import tensorrt_providers

        tensorrt_providers(str(opts.precision))  # raises a UsageError when the provider is missing
        return
    if opts.device == "cuda":
        if not cuda_available():
            raise UsageError("--device cuda: no CUDA device is available on this machine")
        if opts.backend == "onnxruntime":
            from cnnprof.timing.ort import providers_for

            providers_for("cuda")  # raises a UsageError when the CUDA provider is missing


def runnable(backend: str, device: str, precision: str, *, force: bool = False) -> str | None:
    """None where ``backend`` can time ``precision`` on ``device`` here, else why not (one line)."""
    try:
        check_options(TimingOptions(backend=backend, device=device, precision=precision, force=force))
    except UsageError as exc:
        return str(exc)
    return None


@contextlib.contextmanager
def torch_threads(n: int):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def onnx_file(model, example, opts: TimingOptions, name: str,
              onnx_path: str | None = None) -> tuple[Path, float | None]:
    """The file an ONNX backend times for ``opts``: the model's export (or ``onnx_path``), or its
    int8 QDQ copy, or (ONNX Runtime on CUDA) its fp16 copy. Returns (path, seconds of export and
    quantisation: None when nothing was exported)."""
    from cnnprof.timing.quantize import cached_fp16, cached_int8

    seconds = None
    if onnx_path is None:
        from cnnprof.onnx_export import cached_export

        onnx_path, seconds, _ = cached_export(model.eval(), example, name=name, folder=opts.onnx_dir)
    path = Path(onnx_path)
    precision = str(opts.precision)
    if precision == "int8":
        path, spent, _ = cached_int8(path, opts.quant, folder=opts.onnx_dir)
        seconds = (seconds or 0.0) + spent
    elif precision == "fp16" and opts.backend == "onnxruntime":
        path, spent, _ = cached_fp16(path, folder=opts.onnx_dir)
        seconds = (seconds or 0.0) + spent
    return path, seconds


def onnx_runner(path: str | Path, x, opts: TimingOptions, export_s: float | None = None):
    """The runner of an ONNX backend on a prepared file (``onnx_file``); ``x`` a numpy array."""
    try:
        if opts.backend == "openvino":
            from cnnprof.timing.openvino import OpenVinoRunner

            return OpenVinoRunner(path, x, threads=opts.threads, precision=str(opts.precision), export_s=export_s)
        if opts.backend == "tensorrt":
            from cnnprof.timing.ort import TensorrtRunner

            return TensorrtRunner(path, x, threads=opts.threads, precision=str(opts.precision), export_s=export_s)
        from cnnprof.timing.ort import OrtRunner

        return OrtRunner(path, x, device=opts.device, threads=opts.threads, precision=str(opts.precision),
                         export_s=export_s)
    except CnnprofError:
        raise
    except Exception as exc:  # noqa: BLE001 - a backend failure becomes this row's error, not a traceback
        raise BackendError(f"{opts.backend} failed: {one_line(exc)}") from exc


def make_runner(model, example, opts: TimingOptions, name: str, onnx_path: str | None = None):
    """The backend's runner, with failures turned into a one-line ``BackendError``."""
    try:
        if opts.backend == "torch":
            from cnnprof.timing.eager import EagerRunner

            return EagerRunner(model, example, device=opts.device, channels_last=opts.channels_last, train=opts.train,
                               precision=str(opts.precision), cuda_graphs=opts.cuda_graphs)
        if opts.backend == "compile":
            from cnnprof.timing.compiled import CompiledRunner

            return CompiledRunner(model, example, device=opts.device, channels_last=opts.channels_last,
                                  train=opts.train, precision=str(opts.precision))
        if opts.train:
            raise UsageError(f"{opts.backend} times inference only; --train needs the torch or compile backend")
        path, export_s = onnx_file(model, example, opts, name, onnx_path)
        return onnx_runner(path, example.numpy(), opts, export_s)
    except CnnprofError:
        raise
    except Exception as exc:  # noqa: BLE001 - a backend failure becomes this row's error, not a traceback
        raise BackendError(f"{opts.backend} failed: {one_line(exc)}") from exc


def reference_outputs(model, batches) -> list:
    """fp32 PyTorch eager outputs (numpy, on the CPU) for the parity inputs ``batches``."""
    import numpy as np
    import torch

    model = model.eval()
    out = []
    with torch.inference_mode(), torch_threads(1):  # one thread: see isolated.IsolatedModel.references_file
        for x in batches:
            out.append(np.asarray(model(torch.from_numpy(np.asarray(x))).float().numpy()))
    return out


def measure_parity(runner, batches, references) -> Parity:
    """Run ``runner`` on every parity batch and compare with ``references``."""
    meter = ParityMeter()
    for x, ref in zip(batches, references):
        try:
            meter.add(runner.infer(x), ref)
        except ValueError as exc:
            raise BackendError(f"parity: {exc}") from None
    return meter.result()


def measure(make_runner_now: Callable[[], object], opts: TimingOptions, *, parity_data=None,
            memory=None) -> Latency:
    """The protocol on the runner ``make_runner_now()`` builds, under ``opts``' threads.

    ``parity_data``: (input batches, reference outputs) to compare against; ``memory``: a
    ``memory.CpuPeak`` / ``CudaPeak`` started at the idle state (None: not measured)."""
    from cnnprof.timing.environment import cpu_count

    with torch_threads(opts.threads) if opts.backend in ("torch", "compile") else contextlib.nullcontext():
        runner = make_runner_now()
        if memory is not None:
            memory.armed()
        monitor = CpuMonitor()
        samples = run(runner.step, opts.protocol)
        others = monitor.others_cores()
        peak = memory.growth() if memory is not None else None
        notes = warnings_for(samples, threads=opts.threads, cores=cpu_count(), others_cores=others)
        if opts.threads > 1 and opts.device == "cpu" and opts.backend in ("torch", "compile"):
            notes += _spin_check(runner, samples, opts)
        parity = None
        if parity_data is not None:
            parity = measure_parity(runner, *parity_data)
            notes += parity_notes(parity, str(opts.precision))
        elif opts.is_reference and opts.parity and not opts.train and getattr(runner, "x", None) is not None:
            notes += output_notes(runner.infer(runner.x))  # the reference: is its own output a number?
        if str(opts.precision) == "int8" and getattr(runner, "path", None) is not None:
            from cnnprof.timing.quantize import int8_notes

            notes += int8_notes(runner.path)
    if opts.channels_last and opts.backend not in ("torch", "compile"):
        notes.append(Note("option", "--channels-last applies to the torch backends only"))
    return latency_of(samples, opts, runner, notes=notes, parity=parity, peak=peak)


def latency_of(samples: list[float], opts: TimingOptions, runner, *, notes, parity: Parity | None,
               peak: int | None) -> Latency:
    from cnnprof.timing.stats import summarize

    s = summarize(samples)
    return Latency(
        backend=opts.backend,
        device=opts.device,
        threads=opts.threads,
        batch=opts.batch,
        samples=tuple(samples),
        median=s.median,
        mean=s.mean,
        std=s.std,
        p10=s.p10,
        p90=s.p90,
        p99=s.p99,
        iqr=s.iqr,
        min=s.min,
        ci_low=s.ci_low,
        ci_high=s.ci_high,
        warnings=Notes(notes),
        setup_s=runner.setup_s,
        export_s=runner.export_s,
        first_run_ms=runner.first_run_ms,
        parity_max_abs=parity.max_abs if parity else None,
        precision=str(opts.precision),
        parity_sqnr_db=parity.sqnr_db if parity else None,
        parity_top1_agreement=parity.top1_agreement if parity else None,
        peak_memory_bytes=peak,
        p90_upper=s.p90_upper,
        p99_upper=s.p99_upper,
    )


def time_model(model, input_shape: tuple[int, ...], *, name: str, opts: TimingOptions,
               onnx_path: str | None = None, memory=None) -> Latency:
    """Time ``model`` on a seeded random input of ``(batch, *input_shape)`` under ``opts``, in
    this process. Peak memory only with ``memory`` (a ``memory.CpuPeak`` / ``CudaPeak`` started
    when this process was idle, before the model was built: a fresh process, as a sweep's worker
    or ``cnnprof.bench.isolated``'s).

    With ``onnx_path`` (and ``model=None``) an existing ONNX file is timed with an ONNX backend."""
    shape = "x".join(str(d) for d in input_shape)
    with memory_guard(f"{name} at input {shape}, batch {opts.batch}, on {opts.backend},"):
        return _time_model(model, tuple(input_shape), name=name, opts=opts, onnx_path=onnx_path, memory=memory)


def example_input(batch: int, input_shape: tuple[int, ...]):
    """The timed input: standard normal, seed 0 (every backend and precision gets the same)."""
    import torch

    return torch.randn(batch, *input_shape, generator=torch.Generator().manual_seed(0))


def _time_model(model, input_shape: tuple[int, ...], *, name: str, opts: TimingOptions,
                onnx_path: str | None, memory=None) -> Latency:
    from cnnprof.timing.parity import parity_batches

    check_options(opts)
    example = example_input(opts.batch, input_shape)
    if model is None and (onnx_path is None or opts.backend not in ONNX_BACKENDS):
        raise UsageError(f"{name}: only an ONNX file can be timed without a PyTorch module, with an ONNX backend "
                         f"({', '.join(ONNX_BACKENDS)})")
    model = model.eval() if model is not None else None
    parity_data = None
    if model is not None and opts.parity and not opts.train and not opts.is_reference:
        batches = parity_batches(example.numpy(), opts.batch, opts.parity_inputs)
        parity_data = (batches, reference_outputs(model, batches))
    return measure(lambda: make_runner(model, example, opts, name, onnx_path=onnx_path), opts,
                   parity_data=parity_data, memory=memory)


def _spin_check(runner, samples: list[float], opts: TimingOptions) -> list[str]:
    """With several threads, time a few calls at one thread: if N threads are much slower than
    one, OpenMP worker threads are spin-waiting against another busy process (seen 100x)."""
    from cnnprof.timing.stats import summarize

    with torch_threads(1):
        single = summarize(run(runner.step, SPIN_PROBE)).median
    multi = summarize(samples).median
    if single > 0 and multi > SPIN_RATIO * single:
        return [Note.tagged(
            SPIN, f"{opts.threads} threads ran {multi / single:.1f}x slower than 1 thread ({multi:.1f} vs {single:.1f} "
            "ms): OpenMP threads are likely spin-waiting on a busy machine; use --threads 1 or "
            "OMP_WAIT_POLICY=PASSIVE")]
    return []
