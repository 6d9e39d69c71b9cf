"""Measuring helpers shared by the claim modules: counts of registered models (cached for one
process), conv weight counts, log-log exponents, interleaved A/B timing, and the seed's citation.

Heavy imports (torch, the zoo) happen inside the functions, so listing claims stays cheap.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from cnnprof.rows import Counts
    from cnnprof.timing.protocol import Protocol

SEED = "seed 000_bb3f2cd0ea179623 (CNN 模型小型化（下）)"


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


def source(section: str, paper: str) -> str:
    """``seed §<section>; <paper>``: where a claim comes from."""
    return f"seed §{section}; {paper}"


def cite(name: str, figure: str) -> str:
    """The detail of an accuracy claim: why it is cited and where the figure comes from."""
    return (
        f"needs ImageNet training and evaluation, not measurable offline; {figure} as published "
        f"({name})"
    )


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


def conv_weights(module: nn.Module) -> int:
    """Weights of the module's convolutions (biases, BN and PReLU left out): what the papers'
    parameter formulas count."""
    from torch import nn

    return sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Conv2d))


def exponent(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of log y against log x: the power p in y ~ x^p."""
    lx = [math.log(v) for v in x]
    ly = [math.log(v) for v in y]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    sxx = sum((a - mx) ** 2 for a in lx)
    if sxx == 0:
        raise ValueError("exponent needs at least two different x values")
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sxx


def quick_protocol() -> Protocol:
    """The short interleaved protocol of the timing claims (``timing.protocol.QUICK``)."""
    from cnnprof.timing.protocol import QUICK

    return QUICK


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


def train_step_runners(models: Sequence[nn.Module], input_shape: tuple[int, ...], *, batch: int = 1) -> list:
    """Eager runners (on ``timing_device()``) that time one training step each (forward,
    cross-entropy, backward, SGD): the same seeded input for all."""
    import torch

    from cnnprof.timing.eager import EagerRunner

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *input_shape, generator=gen)
    return [EagerRunner(m, x, device=timing_device(), channels_last=False, train=True) for m in models]


def ratio_summary(num: Sequence[float], den: Sequence[float]) -> tuple[float, float, float, float]:
    """median(num) / median(den), its 95% bootstrap interval and the Mann-Whitney p-value."""
    from cnnprof.timing.stats import bootstrap_ratio_ci, mann_whitney_u, summarize

    ratio = summarize(num).median / summarize(den).median
    lo, hi = bootstrap_ratio_ci(num, den)
    _, p = mann_whitney_u(num, den)
    return ratio, lo, hi, p


def fmt_m(value: float) -> str:
    """Millions, for details: 385.8M (two decimals below 10M: 0.27M)."""
    return f"{value / 1e6:.2f}M" if value < 1e7 else f"{value / 1e6:.1f}M"
