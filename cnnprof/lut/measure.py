"""Timing for the latency table: one block in isolation, or a whole network, with the project's
protocol (``cnnprof.timing``) on the torch or ONNX Runtime backend at a fixed thread count.

A block is timed on its own seeded random input; for ONNX Runtime it is exported first (into a
temporary folder the caller owns, so a build does not leave a hundred small files behind).

Rounds. A shared machine's load comes and goes within seconds, so every module is timed in
``ROUNDS`` short rounds spread over the whole run (all modules once, then all again, ...), and
the median of its round medians is kept (``combine``): a busy spell spoils one round of many
modules, not the whole measurement of a few.

Two clocks. ``wall`` (the default, the project's protocol): ``perf_counter`` around each call.
``cpu``: the calling thread's CPU time (``thread_time_ns``) around each call, for one thread only.
At one intra-op thread both PyTorch and ONNX Runtime compute in the calling thread, so this
clock leaves out the time the thread waits while other processes hold the core: on a shared
machine it measures what a block costs rather than how busy the machine was. Cache pollution
by the other processes still shows.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Sequence

from cnnprof.timing.protocol import LUT_ENTRY, LUT_QUICK, WHOLE, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from cnnprof.rows import Latency

# A table entry: short, since a space has ~110 distinct blocks (each 0.01-5 ms at one thread).
BLOCK_PROTOCOL = LUT_ENTRY
# What ``additivity`` uses when it has no table: a minute for FBNet-A/B/C on a 2-core machine.
QUICK_PROTOCOL = LUT_QUICK
# A whole network for ``--measure``: long enough for a stable median of a 10-50 ms call.
WHOLE_PROTOCOL = WHOLE


@dataclass(frozen=True)
class Measured:
    """The statistics a table keeps for one timed module (ms)."""

    median_ms: float
    iqr_ms: float
    p10_ms: float
    p90_ms: float
    runs: int
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_latency(cls, lat: "Latency") -> "Measured":
        return cls(lat.median, lat.iqr, lat.p10, lat.p90, lat.runs, tuple(lat.warnings))


# (module, input (C, H, W), label) -> Measured
Timer = Callable[["nn.Module", tuple, str], Measured]
ROUNDS = 3


def per_round(protocol: Protocol, rounds: int) -> Protocol:
    """``protocol``'s measuring time and count shared among ``rounds`` rounds (warm-up kept:
    each round starts a fresh runner)."""
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    return replace(protocol, min_time_s=protocol.min_time_s / rounds,
                   min_runs=max(3, math.ceil(protocol.min_runs / rounds)))


def combine(rounds: Sequence[Measured]) -> Measured:
    """One module's rounds as one measurement: the median of the round medians (likewise IQR,
    p10, p90), so that a round that fell into a busy spell of the machine does not move it;
    runs add up; warnings are kept once each."""
    if not rounds:
        raise ValueError("combine: no rounds")
    warnings = tuple(dict.fromkeys(w for m in rounds for w in m.warnings))
    return Measured(
        median_ms=statistics.median(m.median_ms for m in rounds),
        iqr_ms=statistics.median(m.iqr_ms for m in rounds),
        p10_ms=statistics.median(m.p10_ms for m in rounds),
        p90_ms=statistics.median(m.p90_ms for m in rounds),
        runs=sum(m.runs for m in rounds),
        warnings=warnings,
    )


def make_timer(*, backend: str, threads: int, protocol: Protocol, onnx_dir: str, clock: str = "wall") -> Timer:
    """A timer for modules on ``backend`` with ``threads`` intra-op threads under ``protocol``."""
    from cnnprof.errors import UsageError
    from cnnprof.timing import TimingOptions

    if clock not in ("wall", "cpu"):
        raise UsageError(f"unknown clock {clock!r}; choose wall or cpu")
    if clock == "cpu" and threads != 1:
        raise UsageError("the cpu clock times the calling thread only: use it with --threads 1")
    opts = TimingOptions(backend=backend, threads=threads, protocol=protocol, onnx_dir=onnx_dir, parity=False)

    def wall_timer(module: "nn.Module", input_shape: tuple, label: str) -> Measured:
        from cnnprof.timing import time_model

        return Measured.from_latency(time_model(module, tuple(input_shape), name=_file_name(label), opts=opts))

    def cpu_timer(module: "nn.Module", input_shape: tuple, label: str) -> Measured:
        return _time_cpu(module, tuple(input_shape), _file_name(label), opts)

    return wall_timer if clock == "wall" else cpu_timer


def _time_cpu(module: "nn.Module", input_shape: tuple, name: str, opts) -> Measured:
    """The protocol with each call timed by the calling thread's CPU clock."""
    import torch

    from cnnprof.timing import make_runner, torch_threads
    from cnnprof.timing.environment import cpu_count
    from cnnprof.timing.protocol import CpuMonitor, run, warnings_for
    from cnnprof.timing.stats import summarize

    example = torch.randn(1, *input_shape, generator=torch.Generator().manual_seed(0))
    with torch_threads(opts.threads):
        runner = make_runner(module.eval(), example, opts, name)
        if opts.backend == "torch":
            call = runner.call
        else:
            session, feed = runner.session, runner.feed

            def call() -> None:
                session.run(None, feed)

        def step() -> float:
            start = time.thread_time_ns()
            call()
            return (time.thread_time_ns() - start) / 1e6

        monitor = CpuMonitor()
        samples = run(step, opts.protocol)
        notes = warnings_for(samples, threads=opts.threads, cores=cpu_count(), others_cores=monitor.others_cores())
    s = summarize(samples)
    return Measured(s.median, s.iqr, s.p10, s.p90, s.n, tuple(notes))


def _file_name(label: str) -> str:
    return "lut-" + "".join(c if c.isalnum() or c in "-_." else "_" for c in label)[:80]
