"""Timing: one protocol (``protocol.py``), one small interface, three backends.

A backend is a runner class built from ``(model, example input, options)`` whose ``step()``
times one call and returns milliseconds, whose ``output()`` returns one inference output for the
parity check, and which reports ``setup_s`` (compile or session creation), ``export_s`` and
``first_run_ms``. ``time_model`` applies the protocol to any of them and returns a ``Latency``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from cnnprof.errors import CnnprofError, UsageError, memory_guard
from cnnprof.files import MODELS_DIR
from cnnprof.rows import Latency, Note, Notes
from cnnprof.timing.protocol import DEFAULT, SPIN, SPIN_PROBE, CpuMonitor, Protocol, run, warnings_for

BACKENDS = ("torch", "compile", "onnxruntime")
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


def check_options(opts: TimingOptions) -> None:
    """Reject what cannot run here before any work: exit 2 with one line."""
    if opts.backend not in BACKENDS:
        raise UsageError(f"unknown backend {opts.backend!r}; choose from {', '.join(BACKENDS)}")
    if opts.device not in DEVICES:
        raise UsageError(f"unknown device {opts.device!r}; choose cpu or cuda")
    if opts.threads < 1:
        raise UsageError(f"threads must be at least 1, got {opts.threads}")
    if opts.batch < 1:
        raise UsageError(f"batch must be at least 1, got {opts.batch}")
    if opts.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UsageError("--device cuda: no CUDA device is available on this machine")
        if opts.backend == "onnxruntime":
            from cnnprof.timing.ort import providers_for

            providers_for("cuda")  # raises a UsageError when the CUDA provider is missing


@contextlib.contextmanager
def torch_threads(n: int):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def make_runner(model, example, opts: TimingOptions, name: str, onnx_path: str | None = None):
    """The backend's runner, with failures turned into a one-line ``BackendError``."""
    try:
        if opts.backend == "torch":
            from cnnprof.timing.eager import EagerRunner

            return EagerRunner(model, example, device=opts.device, channels_last=opts.channels_last, train=opts.train)
        if opts.backend == "compile":
            from cnnprof.timing.compiled import CompiledRunner

            return CompiledRunner(model, example, device=opts.device, channels_last=opts.channels_last, train=opts.train)
        if opts.train:
            raise UsageError("onnxruntime times inference only; --train needs the torch or compile backend")
        from cnnprof.timing.ort import OrtRunner

        return OrtRunner(model, example, device=opts.device, threads=opts.threads, name=name, onnx_dir=opts.onnx_dir,
                         onnx_path=onnx_path)
    except CnnprofError:
        raise
    except Exception as exc:  # noqa: BLE001 - a backend failure becomes this row's error, not a traceback
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise BackendError(f"{opts.backend} failed: {type(exc).__name__}: {first[:300]}") from exc


def time_model(model, input_shape: tuple[int, ...], *, name: str, opts: TimingOptions,
               onnx_path: str | None = None) -> Latency:
    """Time ``model`` on a seeded random input of ``(batch, *input_shape)`` under ``opts``.

    With ``onnx_path`` (and ``model=None``) an existing ONNX file is timed with ONNX Runtime."""
    shape = "x".join(str(d) for d in input_shape)
    with memory_guard(f"{name} at input {shape}, batch {opts.batch}, on {opts.backend},"):
        return _time_model(model, tuple(input_shape), name=name, opts=opts, onnx_path=onnx_path)


def _time_model(model, input_shape: tuple[int, ...], *, name: str, opts: TimingOptions,
                onnx_path: str | None) -> Latency:
    import torch

    from cnnprof.timing.environment import cpu_count
    from cnnprof.timing.stats import summarize

    check_options(opts)
    gen = torch.Generator().manual_seed(0)
    example = torch.randn(opts.batch, *input_shape, generator=gen)
    if model is None and (onnx_path is None or opts.backend != "onnxruntime"):
        raise UsageError(f"{name}: only an ONNX file can be timed without a PyTorch module, with onnxruntime")
    model = model.eval() if model is not None else None
    reference = None
    if model is not None and opts.parity and not opts.train and (opts.backend != "torch" or opts.device != "cpu"):
        with torch.inference_mode():
            reference = model(example).float()
    with torch_threads(opts.threads):
        runner = make_runner(model, example, opts, name, onnx_path=onnx_path)
        monitor = CpuMonitor()
        samples = run(runner.step, opts.protocol)
        others = monitor.others_cores()
        parity = None
        if reference is not None:
            parity = float((runner.output() - reference).abs().max())
        notes = warnings_for(samples, threads=opts.threads, cores=cpu_count(), others_cores=others)
        if opts.threads > 1 and opts.device == "cpu" and opts.backend != "onnxruntime":
            notes += _spin_check(runner, samples, opts)
    if opts.channels_last and opts.backend == "onnxruntime":
        notes.append(Note("option", "--channels-last applies to the torch backends only"))
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
        parity_max_abs=parity,
    )


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
