"""Measuring helpers shared by the claim modules: where a claim comes from (the seed's heading and
a verbatim phrase, or a paper), counts of registered models (cached for one process), conv weight
counts, log-log exponents, interleaved A/B timing with intervals, the bytes autograd keeps, and
the name of the device a timing ran on.

Heavy imports (torch, the zoo) happen inside the functions, so listing claims stays cheap.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import re
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from cnnprof.claims.names import CUDA_CLOCK, PAPER_PREFIX, RELEASED_PREFIX, SEED_PREFIX, THREAD_CLOCK, WALL_CLOCK

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from cnnprof.rows import Counts
    from cnnprof.timing.protocol import Protocol

SEED_FILE = "000_bb3f2cd0ea179623.txt"
SEED_TITLE = "CNN 模型小型化（下）"


# Where the training-step claims time: "cpu" unless `cnnprof claims --device cuda` says otherwise.
_DEVICE: contextvars.ContextVar[str] = contextvars.ContextVar("cnnprof_claims_device", default="cpu")


def timing_device() -> str:
    return _DEVICE.get()


@contextlib.contextmanager
def on_device(device: str) -> Iterator[None]:
    """Run the timing claims on ``device`` ("cpu" or "cuda") inside this block."""
    token = _DEVICE.set(device)
    try:
        yield
    finally:
        _DEVICE.reset(token)


# -- one run's shared measurements -----------------------------------------------------------------------
# Several rows read one measurement (the additivity rounds, one training-step timing): inside
# ``run_claims`` it is taken once per run; a measure called on its own takes it afresh.
_RUN_CACHE: contextvars.ContextVar[dict | None] = contextvars.ContextVar("cnnprof_claims_cache", default=None)


@contextlib.contextmanager
def one_run() -> Iterator[None]:
    """Share measurements between the claims of one run inside this block."""
    token = _RUN_CACHE.set({})
    try:
        yield
    finally:
        _RUN_CACHE.reset(token)


def shared(key: str, measure: Callable[[], Any]) -> Any:
    """``measure()``, taken once per run (every call outside a run measures again)."""
    cache = _RUN_CACHE.get()
    if cache is None:
        return measure()
    if key not in cache:
        cache[key] = measure()
    return cache[key]


# -- provenance ---------------------------------------------------------------------------------------
def seed(heading: str, paper: str = "") -> str:
    """``seed §<heading>``, the seed's own heading (as written, without its #s), and optionally
    ``; paper: <title>, <section>`` for the formula or figure the seed takes from the paper."""
    return f"{SEED_PREFIX}{heading}" + (f"; {PAPER_PREFIX}{paper}" if paper else "")


def paper(title: str, where: str) -> str:
    """``paper: <title>, <section or table>``: a claim the paper makes and the seed does not."""
    return f"{PAPER_PREFIX}{title}, {where}"


def released(what: str) -> str:
    """``released: <implementation and file>``: a figure of a released implementation."""
    return f"{RELEASED_PREFIX}{what}"


def cite(name: str, figure: str) -> str:
    """The detail of an accuracy claim: why it is cited and where the figure comes from."""
    return (
        f"needs ImageNet training and evaluation, not measurable offline; {figure} as published "
        f"({name})"
    )


# -- devices --------------------------------------------------------------------------------------------
def cpu_name() -> str:
    """The CPU model in a few words: 'Intel Xeon Processor' (no (R), flags or clock)."""
    from cnnprof.timing.environment import cpu_model

    name = cpu_model().split(" [", 1)[0]
    name = re.sub(r"\((R|TM|tm|r)\)", "", name)
    name = re.sub(r"\s+@.*$", "", name)
    name = re.sub(r"\s+CPU\b", "", name)
    return " ".join(name.split()) or "unknown CPU"


def device_text(*, threads: int = 1, clock: str = "wall", device: str | None = None) -> str:
    """Where a timing ran: 'cpu (Intel Xeon Processor, 1 thread)', 'cuda (NVIDIA H100)'; with
    ``clock`` "cpu" (or ``claims.THREAD_CLOCK``) ', thread CPU clock' after the threads."""
    device = device or timing_device()
    if device == "cpu":
        clock_text = ", thread CPU clock" if clock in ("cpu", THREAD_CLOCK) else ""
        return f"cpu ({cpu_name()}, {threads} thread{'s' if threads != 1 else ''}{clock_text})"
    from cnnprof.timing.environment import gpu_name

    return f"{device} ({gpu_name() or 'unknown GPU'})"


# -- counting -------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def count_registered(name: str, resolution: int | None = None, options: tuple[tuple[str, Any], ...] = ()) -> Counts:
    """Counts of a registered variant (optionally with builder overrides and a square input),
    built once per process: several claims read the same model."""
    from cnnprof.targets import count_target, registered

    target = registered(name, **dict(options))
    shape = target.input if resolution is None else (target.input[0], resolution, resolution)
    return count_target(target, shape)


def count_module(module: nn.Module, shape: tuple[int, ...]) -> Counts:
    from cnnprof.counting import count

    return count(module, shape, label=type(module).__name__)


def forward_with_hooks(model: nn.Module, shape: tuple[int, ...],
                       hooks: Sequence[tuple[nn.Module, Callable]]) -> None:
    """One inference of ``model`` on zeros of ``shape`` (batch 1, eval mode) with each
    ``(module, hook)`` registered as a forward hook for the call, and removed after it."""
    import torch

    handles = [m.register_forward_hook(hook) for m, hook in hooks]
    try:
        with torch.inference_mode():
            model.eval()(torch.zeros(1, *shape))
    finally:
        for h in handles:
            h.remove()


def conv_weights(module: nn.Module) -> int:
    """Weights of the module's convolutions (biases, BN and PReLU left out): what the papers'
    parameter formulas count."""
    from torch import nn

    return sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Conv2d))


def params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def saved_bytes(module: nn.Module, shape: tuple[int, ...], *, batch: int = 1) -> int:
    """Bytes of the tensors autograd keeps for the backward pass of one training forward (each
    storage once, parameters left out): the activation memory a training step holds at the end of
    its forward, its peak. The module is left in eval mode."""
    import torch

    weights = {p.untyped_storage().data_ptr() for p in module.parameters()}
    module.train()
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        if storage.data_ptr() not in weights:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    x = torch.randn(batch, *shape, requires_grad=False)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x).sum()
    module.eval()
    return sum(seen.values())


def exponent(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of log y against log x: the power p in y ~ x^p."""
    lx = [math.log(v) for v in x]
    ly = [math.log(v) for v in y]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    sxx = sum((a - mx) ** 2 for a in lx)
    if sxx == 0:
        raise ValueError("exponent needs at least two different x values")
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sxx


# -- intervals ------------------------------------------------------------------------------------------
# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (beyond: the normal 1.96).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t975(df: int) -> float:
    if df < 1:
        raise ValueError("t975 needs at least one degree of freedom")
    return _T975[df - 1] if df <= len(_T975) else 1.96


def geometric_mean_ci(ratios: Sequence[float]) -> tuple[float, float, float]:
    """Geometric mean of positive ratios with its 95% t-interval (computed on the logs)."""
    logs = [math.log(r) for r in ratios]
    n = len(logs)
    if n < 2:
        raise ValueError("an interval needs at least two ratios")
    mean = sum(logs) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in logs) / (n - 1))
    half = t975(n - 1) * sd / math.sqrt(n)
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def median_ci(values: Sequence[float], *, rounds: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Median of ``values`` with a 95% percentile-bootstrap interval (deterministic seed)."""
    import numpy as np

    x = np.asarray(values, dtype=float)
    if x.size < 2:
        raise ValueError("an interval needs at least two values")
    rng = np.random.default_rng(seed)
    medians = np.median(x[rng.integers(0, x.size, size=(rounds, x.size))], axis=1)
    lo, hi = np.percentile(medians, [2.5, 97.5])
    return float(np.median(x)), float(lo), float(hi)


def ratio_summary(num: Sequence[float], den: Sequence[float]) -> tuple[float, float, float, float]:
    """median(num) / median(den), its 95% bootstrap interval and the Mann-Whitney p-value."""
    from cnnprof.timing.stats import bootstrap_ratio_ci, mann_whitney_u, summarize

    ratio = summarize(num).median / summarize(den).median
    lo, hi = bootstrap_ratio_ci(num, den)
    _, p = mann_whitney_u(num, den)
    return ratio, lo, hi, p


# -- timing ---------------------------------------------------------------------------------------------
# Rounds of the interleaved timing claims: ``timing.protocol.QUICK`` with at least this many measured
# rounds (QUICK's 8 gave bootstrap intervals whose ends moved by a tenth between runs on a busy
# 2-core machine; 16 rounds of a pair of 224x224 networks still take under 4 s at one thread).
CLAIM_ROUNDS = 16


def quick_protocol() -> Protocol:
    """The interleaved protocol of the timing claims: ``timing.protocol.QUICK`` with
    ``CLAIM_ROUNDS`` measured rounds at least."""
    import dataclasses

    from cnnprof.timing.protocol import QUICK

    return dataclasses.replace(QUICK, min_runs=max(QUICK.min_runs, CLAIM_ROUNDS))


class ClockedRunner:
    """An ``EagerRunner`` whose ``step()`` reads the calling thread's CPU clock around one call
    (``time.thread_time_ns``, CLOCK_THREAD_CPUTIME_ID) where that clock holds all the work: on the
    CPU at one torch thread, where the forward and the backward pass run on the calling thread.
    Time the thread waits while other processes hold the core is not on that clock, so a busy
    machine does not stretch the samples. Elsewhere (CUDA, several threads) ``step()`` is the
    runner's own (CUDA events, the wall clock); ``clock`` says which."""

    def __init__(self, runner) -> None:
        import torch

        self.runner = runner
        kind = str(getattr(runner, "device", "cpu")).split(":", 1)[0]
        if kind == "cuda":
            self.clock = CUDA_CLOCK
        else:
            self.clock = THREAD_CLOCK if kind == "cpu" and torch.get_num_threads() == 1 else WALL_CLOCK

    def step(self) -> float:
        if self.clock != THREAD_CLOCK:
            return self.runner.step()
        start = time.thread_time_ns()
        self.runner.call()
        return (time.thread_time_ns() - start) / 1e6

    def __getattr__(self, name: str) -> Any:
        return getattr(self.runner, name)


def clock_of(runners: Sequence[Any]) -> str:
    """The clock a set of runners' samples were read on (``WALL_CLOCK`` unless all agree)."""
    clocks = {getattr(r, "clock", WALL_CLOCK) for r in runners}
    return clocks.pop() if len(clocks) == 1 else WALL_CLOCK


def interleaved(steps: Sequence[Callable[[], float]], protocol: Protocol) -> list[list[float]]:
    """Time several steps A, B, ... in one process, interleaved A B A B ..., under ``protocol``
    (its dual rule applies to one round). Interleaving removes most of the process-to-process
    noise of a shared machine (shared/reference/measurements.md, section B). Returns the measured
    samples (ms) of each step, warm-up rounds dropped."""
    from cnnprof.timing.protocol import run

    samples: list[list[float]] = [[] for _ in steps]

    def one_round() -> float:
        total = 0.0
        for i, step in enumerate(steps):
            ms = step()
            samples[i].append(ms)
            total += ms
        return total

    measured = len(run(one_round, protocol))
    return [s[-measured:] for s in samples]


def busy_while(measure: Callable[[], Any]) -> tuple[Any, str]:
    """``measure()`` and, if other processes used more than half of the cores our one thread
    leaves them meanwhile, a note saying how much; "" when the machine was quiet. Stricter than
    the protocol's own warning (``timing.protocol.warnings_for``, which flags only a shared core):
    a process on the other core already shifts some ratios of timings through the shared cache and
    memory, even on the thread CPU clock (the additivity ratio moved from 0.96 on a quiet 2-core
    machine to 0.8-0.87 with another process on the second core). The note goes into the row
    (``busy``); the verdict judges the raw interval of a thread-CPU-clock timing and a widened
    one only where the row says so (``claims.judged_interval``)."""
    from cnnprof.timing.environment import cpu_count
    from cnnprof.timing.protocol import CpuMonitor

    if timing_device() != "cpu":
        return measure(), ""
    monitor = CpuMonitor()
    out = measure()
    others, cores = monitor.others_cores(), cpu_count()
    if others is not None and others > 0.5 * max(cores - 1, 1):
        return out, f"other processes used {others:.1f} of the {cores} cores while this was timed"
    return out, ""


def inference_runners(models: Sequence[nn.Module], inputs: Sequence[tuple[int, ...]]) -> list:
    """Eager CPU runners timing one inference call each, on seeded random inputs of ``inputs``
    (one shape per model, batch 1), each call read on the thread CPU clock at one torch thread
    (``ClockedRunner``)."""
    import torch

    from cnnprof.timing.eager import EagerRunner

    gen = torch.Generator().manual_seed(0)
    return [ClockedRunner(EagerRunner(m.eval(), torch.randn(1, *shape, generator=gen), device="cpu",
                                      channels_last=False, train=False)) for m, shape in zip(models, inputs)]


def time_inference(models: Sequence[nn.Module], inputs: Sequence[tuple[int, ...]],
                   protocol: Protocol | None = None) -> tuple[list[list[float]], str]:
    """Interleaved inference samples (ms, thread CPU clock) of ``models`` on the CPU at one
    thread, and the ``busy_while`` note of the machine meanwhile."""
    from cnnprof.timing import torch_threads

    with torch_threads(1):
        runners = inference_runners(models, inputs)
        return busy_while(lambda: interleaved([r.step for r in runners], protocol or quick_protocol()))


def train_step_runners(models: Sequence[nn.Module], input_shape: tuple[int, ...], *, batch: int = 1) -> list:
    """Eager runners (on ``timing_device()``) that time one training step each (forward,
    cross-entropy, backward, SGD): the same seeded input for all; on the CPU at one torch thread
    each step is read on the thread CPU clock (``ClockedRunner``: CPU autograd runs the backward
    pass on the calling thread)."""
    import torch

    from cnnprof.timing.eager import EagerRunner

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *input_shape, generator=gen)
    return [ClockedRunner(EagerRunner(m, x, device=timing_device(), channels_last=False, train=True))
            for m in models]


def median(values: Sequence[float]) -> float:
    from cnnprof.timing.stats import summarize

    return summarize(values).median


def fmt_m(value: float) -> str:
    """Millions, for details: 385.8M (two decimals below 10M: 0.27M)."""
    return f"{value / 1e6:.2f}M" if value < 1e7 else f"{value / 1e6:.1f}M"


def fmt_bytes(value: float) -> str:
    """MiB with two decimals below 10 MiB: 2.00 MiB, 18.1 MiB."""
    mib = value / 2**20
    return f"{mib:.2f} MiB" if mib < 10 else f"{mib:.1f} MiB"
