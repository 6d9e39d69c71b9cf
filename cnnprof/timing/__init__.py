"""Timing: one protocol (``protocol.py``), one small interface, five backends (``backends.py``
holds one record each: what it times, where, which precisions, its runner; code asks the record).

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
from cnnprof.timing.backends import BACKENDS, CPU, CUDA, ONNX_BACKENDS, PRECISIONS, REFERENCE, Backend, Precision
from cnnprof.timing.precision import refusal
from cnnprof.timing.protocol import DEFAULT, SPIN, SPIN_PROBE, CpuMonitor, Protocol, run, warnings_for

DEVICES = (CPU, CUDA)
SPIN_RATIO = 1.5  # N threads slower than this times 1 thread: OpenMP threads are fighting


class BackendError(CnnprofError):
    """A backend could not run this model (export, compile or session failure)."""


@dataclass(frozen=True)
class TimingOptions:
    """One configuration to time. ``backend`` and ``precision`` are held as ``Backend`` and
    ``Precision`` (their names are accepted and converted; an unknown name is kept as given, for
    ``check_options`` to refuse in one line)."""

    backend: Backend = Backend.torch
    device: str = CPU
    threads: int = 1
    batch: int = 1
    channels_last: bool = False
    train: bool = False
    protocol: Protocol = DEFAULT
    onnx_dir: str = MODELS_DIR
    parity: bool = True
    precision: Precision = Precision.fp32
    quant: QuantOptions = field(default_factory=QuantOptions)  # how int8 copies are calibrated
    force: bool = False  # time a precision this machine would only emulate
    cuda_graphs: bool = False  # torch eager on CUDA: replay a captured CUDA graph
    parity_inputs: int = PARITY_INPUTS

    def __post_init__(self) -> None:
        object.__setattr__(self, "backend", Backend.parse(self.backend) or self.backend)
        object.__setattr__(self, "precision", Precision.parse(self.precision) or self.precision)

    @property
    def is_reference(self) -> bool:
        """Whether this configuration *is* the parity reference (fp32 eager on the CPU)."""
        return (self.backend, self.precision) == REFERENCE and self.device == CPU and not self.cuda_graphs

    @property
    def record(self):
        """The backend's record (``backends.BackendRecord``); only for a known backend."""
        return self.backend.record


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def check_options(opts: TimingOptions) -> None:
    """Reject what cannot run here before any work: exit 2 with one line."""
    if not isinstance(opts.backend, Backend):
        raise UsageError(f"unknown backend {opts.backend!r}; choose from {', '.join(BACKENDS)}")
    if opts.device not in DEVICES:
        raise UsageError(f"unknown device {opts.device!r}; choose cpu or cuda")
    if not isinstance(opts.precision, Precision):
        raise UsageError(f"unknown precision {opts.precision!r}; choose from {', '.join(PRECISIONS)}")
    if opts.threads < 1:
        raise UsageError(f"threads must be at least 1, got {opts.threads}")
    if opts.batch < 1:
        raise UsageError(f"batch must be at least 1, got {opts.batch}")
    if opts.parity_inputs < 1:
        raise UsageError(f"parity inputs must be at least 1, got {opts.parity_inputs}")
    if opts.train and not opts.record.trains:
        raise UsageError(_inference_only(opts.backend))
    if opts.train and opts.precision is not Precision.fp32:
        raise UsageError("--train times fp32 only")
    if opts.precision is Precision.int8:
        opts.quant.check()
    check_device(opts)
    why = refusal(opts.backend, opts.device, opts.precision, force=opts.force)
    if why:
        raise UsageError(why)


def _inference_only(backend: Backend) -> str:
    trains = " or ".join(b.value for b in Backend if b.record.trains)
    return f"{backend} times inference only; --train needs the {trains} backend"


def check_device(opts: TimingOptions) -> None:
    """The runtime and device ``opts`` name exist here (CUDA, its providers, OpenVINO)."""
    spec = opts.record
    if spec.devices == (CUDA,) and not cuda_available():
        raise UsageError(f"{opts.backend} runs on a CUDA device: none is available on this machine")
    if opts.device in DEVICES and opts.device not in spec.devices:
        raise UsageError(spec.wrong_device)
    if opts.cuda_graphs:
        if not spec.cuda_graphs:
            with_graphs = ", ".join(b.value for b in Backend if b.record.cuda_graphs)
            raise UsageError(f"--cuda-graphs applies to --backend {with_graphs} (eager)")
        if not cuda_available():
            raise UsageError("--cuda-graphs needs a CUDA device: none is available on this machine")
        if opts.device != CUDA:
            raise UsageError("--cuda-graphs needs --device cuda")
    if opts.device == CUDA and not cuda_available():
        raise UsageError("--device cuda: no CUDA device is available on this machine")
    if spec.requires is not None:
        spec.requires(opts.device, opts.precision)


def runnable(backend: Backend | str, device: str, precision: Precision | str, *, force: bool = False) -> str | None:
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
    if opts.precision is Precision.int8:
        path, spent, _ = cached_int8(path, opts.quant, folder=opts.onnx_dir)
        seconds = (seconds or 0.0) + spent
    elif opts.precision is Precision.fp16 and opts.backend is Backend.onnxruntime:  # TensorRT builds fp16 itself
        path, spent, _ = cached_fp16(path, folder=opts.onnx_dir)
        seconds = (seconds or 0.0) + spent
    return path, seconds


def _failure(opts: TimingOptions, exc: Exception) -> BackendError:
    return BackendError(f"{opts.backend} failed: {one_line(exc)}")


def onnx_runner(path: str | Path, x, opts: TimingOptions, export_s: float | None = None):
    """The runner of an ONNX backend on a prepared file (``onnx_file``); ``x`` a numpy array."""
    try:
        return opts.record.runner(path, x, opts, export_s)
    except CnnprofError:
        raise
    except Exception as exc:  # noqa: BLE001 - a backend failure becomes this row's error, not a traceback
        raise _failure(opts, exc) from exc


def make_runner(model, example, opts: TimingOptions, name: str, onnx_path: str | None = None,
                prepared: tuple[Path, float | None] | None = None):
    """The backend's runner, with failures turned into a one-line ``BackendError``; an ONNX
    backend times ``prepared`` (file, export seconds) where given, else ``onnx_file``'s."""
    try:
        if opts.backend.is_torch:
            return opts.record.runner(model, example, opts)
        if opts.train:
            raise UsageError(_inference_only(opts.backend))
        path, export_s = prepared or onnx_file(model, example, opts, name, onnx_path)
        return onnx_runner(path, example.numpy(), opts, export_s)
    except CnnprofError:
        raise
    except Exception as exc:  # noqa: BLE001 - a backend failure becomes this row's error, not a traceback
        raise _failure(opts, exc) from exc


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

    with torch_threads(opts.threads) if opts.backend.is_torch else contextlib.nullcontext():
        runner = make_runner_now()
        if memory is not None:
            memory.armed()
        monitor = CpuMonitor()
        samples = run(runner.step, opts.protocol)
        others = monitor.others_cores()
        peak = memory.growth() if memory is not None else None
        notes = warnings_for(samples, threads=opts.threads, cores=cpu_count(), others_cores=others)
        if opts.threads > 1 and opts.device == CPU and opts.backend.is_torch:
            notes += _spin_check(runner, samples, opts)
        parity = None
        if parity_data is not None:
            parity = measure_parity(runner, *parity_data)
            notes += parity_notes(parity, opts.precision)
        elif opts.is_reference and opts.parity and not opts.train and getattr(runner, "x", None) is not None:
            notes += output_notes(runner.infer(runner.x))  # the reference: is its own output a number?
        if opts.precision is Precision.int8 and getattr(runner, "path", None) is not None:
            from cnnprof.timing.quantize import int8_notes

            notes += int8_notes(runner.path)
    if opts.channels_last and not opts.backend.is_torch:
        notes.append(Note("option", "--channels-last applies to the torch backends only"))
    return latency_of(samples, opts, runner, notes=notes, parity=parity, peak=peak)


def latency_of(samples: list[float], opts: TimingOptions, runner, *, notes, parity: Parity | None,
               peak: int | None) -> Latency:
    from cnnprof.timing.stats import summarize

    s = summarize(samples)
    return Latency(
        backend=opts.backend.value,
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
        precision=opts.precision.value,
        parity_sqnr_db=parity.sqnr_db if parity else None,
        parity_top1_agreement=parity.top1_agreement if parity else None,
        peak_memory_bytes=peak,
        p90_upper=s.p90_upper,
        p99_upper=s.p99_upper,
    )


def time_model(model, input_shape: tuple[int, ...], *, name: str, opts: TimingOptions,
               onnx_path: str | None = None, memory=None, checked: bool = False,
               prepared: tuple[Path, float | None] | None = None) -> Latency:
    """Time ``model`` on a seeded random input of ``(batch, *input_shape)`` under ``opts``, in
    this process. Peak memory only with ``memory`` (a ``memory.CpuPeak`` / ``CudaPeak`` started
    when this process was idle, before the model was built: a fresh process, as a sweep's worker
    or ``cnnprof.bench.isolated``'s).

    With ``onnx_path`` (and ``model=None``) an existing ONNX file is timed with an ONNX backend.
    ``checked``: ``opts`` already passed ``check_options`` (a run's plan checks each configuration
    once); ``prepared``: the (file, export seconds) ``onnx_file`` already made for ``opts``."""
    shape = "x".join(str(d) for d in input_shape)
    if not checked:
        check_options(opts)
    with memory_guard(f"{name} at input {shape}, batch {opts.batch}, on {opts.backend},"):
        return _time_model(model, tuple(input_shape), name=name, opts=opts, onnx_path=onnx_path, memory=memory,
                           prepared=prepared)


def example_input(batch: int, input_shape: tuple[int, ...]):
    """The timed input: standard normal, seed 0 (every backend and precision gets the same)."""
    import torch

    return torch.randn(batch, *input_shape, generator=torch.Generator().manual_seed(0))


def _time_model(model, input_shape: tuple[int, ...], *, name: str, opts: TimingOptions,
                onnx_path: str | None, memory=None, prepared=None) -> Latency:
    from cnnprof.timing.parity import parity_batches

    example = example_input(opts.batch, input_shape)
    if model is None and (onnx_path is None or not opts.backend.is_onnx):
        raise UsageError(f"{name}: only an ONNX file can be timed without a PyTorch module, with an ONNX backend "
                         f"({', '.join(ONNX_BACKENDS)})")
    model = model.eval() if model is not None else None
    parity_data = None
    if model is not None and opts.parity and not opts.train and not opts.is_reference:
        batches = parity_batches(example.numpy(), opts.batch, opts.parity_inputs)
        parity_data = (batches, reference_outputs(model, batches))
    return measure(lambda: make_runner(model, example, opts, name, onnx_path=onnx_path, prepared=prepared), opts,
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
