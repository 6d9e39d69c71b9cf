"""The measurement protocol shared by every backend.

Warm up until both a count and a time are reached, then measure one call per sample until
both a minimum count and a minimum time are reached (the dual rule of MLPerf's LoadGen), with a
time cap. Each sample is one timed call, so the spread is real; the harness costs two
``perf_counter`` reads per call (see ``benchmarks/timing_overhead.py``).

While measuring, the CPU time used by *other* processes is sampled from ``/proc/stat``: a
machine that is busy while we time is flagged in the row, not hidden.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import time
from dataclasses import dataclass
from typing import Callable

from cnnprof.rows import Note


@dataclass(frozen=True)
class Protocol:
    """How long to warm up and measure. The defaults time a batch-1 EfficientNet-B0 in about
    3 s per backend on a 2-core CPU (0.5 s warm-up + 2 s of samples + set-up)."""

    warmup_runs: int = 3
    warmup_s: float = 0.5
    min_runs: int = 10
    min_time_s: float = 2.0
    max_time_s: float = 60.0
    max_runs: int = 100_000

    def __post_init__(self) -> None:
        if self.min_runs < 1 or self.min_time_s < 0 or self.warmup_runs < 0 or self.warmup_s < 0:
            raise ValueError("protocol counts and times must be non-negative (min_runs >= 1)")


# -- the named protocols: every command times under one of these (or one field changed) ------------
# bench, compare: a batch-1 EfficientNet-B0 in about 3 s per backend on a 2-core CPU
DEFAULT = Protocol()
# a whole network, shorter: `scale --latency`, whole-network timings of the latency tables
WHOLE = Protocol(warmup_runs=3, warmup_s=0.3, min_runs=10, min_time_s=1.0, max_time_s=60.0)
# one round of interleaved A/B timing (claims): a few seconds per pair
QUICK = Protocol(warmup_runs=2, warmup_s=0.3, min_runs=8, min_time_s=1.5, max_time_s=30.0)
# a step that takes about a second (EfficientNetV2-M's training step): fewer rounds
SLOW_STEP = Protocol(warmup_runs=1, warmup_s=0.0, min_runs=6, min_time_s=1.0, max_time_s=30.0)
# per-layer timing (`profile --timing`): many runs, every layer's median stable
PER_LAYER = Protocol(warmup_runs=3, warmup_s=0.5, min_runs=30, min_time_s=3.0, max_time_s=60.0)
# one latency-table entry: a space has ~110 distinct blocks of 0.01-5 ms each at one thread
LUT_ENTRY = Protocol(warmup_runs=3, warmup_s=0.05, min_runs=10, min_time_s=0.3, max_time_s=20.0)
# a block timed without a table (additivity), and one round of blocks-and-whole interleaving
LUT_QUICK = Protocol(warmup_runs=2, warmup_s=0.02, min_runs=10, min_time_s=0.12, max_time_s=10.0)
LUT_ROUND = Protocol(warmup_runs=2, warmup_s=0.05, min_runs=5, min_time_s=0.3, max_time_s=20.0)
# the additivity claim on the thread CPU clock: many short rounds of blocks-and-whole instead of a few long
# ones, so that the rounds give the ratio an interval (`cnnprof claims`, fbnet-lat-additivity)
ADDITIVITY_BLOCK = Protocol(warmup_runs=2, warmup_s=0.0, min_runs=5, min_time_s=0.03, max_time_s=5.0)
ADDITIVITY_WHOLE = Protocol(warmup_runs=1, warmup_s=0.0, min_runs=5, min_time_s=0.1, max_time_s=10.0)
# one network of an in-context latency table, one round: plain calls, then as many instrumented ones
LUT_CONTEXT = Protocol(warmup_runs=2, warmup_s=0.05, min_runs=8, min_time_s=0.25, max_time_s=20.0)
# a whole network checked against a probed latency table, over all its rounds (lut calibrate, lut predict)
LUT_NETWORK = Protocol(warmup_runs=2, warmup_s=0.05, min_runs=18, min_time_s=0.6, max_time_s=30.0)
# the gate's measurement processes: warm-up, then rounds until both a time and a count are met
GATE = Protocol(warmup_runs=1, warmup_s=0.3, min_runs=12, min_time_s=3.0, max_time_s=120.0)
# a few calls at one thread, to tell OpenMP spin-waiting from a slow machine
SPIN_PROBE = Protocol(warmup_runs=1, warmup_s=0.0, min_runs=3, min_time_s=0.3, max_time_s=10.0)



def with_limits(base: Protocol, *, min_time_s: float | None = None, min_runs: int | None = None) -> Protocol:
    """``base`` with the measuring limits a user gave (``--min-time``, ``--min-runs``); None keeps
    the base's."""
    return dataclasses.replace(
        base, min_time_s=base.min_time_s if min_time_s is None else min_time_s,
        min_runs=base.min_runs if min_runs is None else min_runs)


NOISY_IQR = 0.10  # IQR above 10% of the median: spread too wide (torch.utils.benchmark's rule)
FEW_RUNS = 20
# the kinds of note a timing carries
NOISY, FEW, BUSY, SPIN = "noisy", "few runs", "machine busy", "spin-wait"


def run(step: Callable[[], float], protocol: Protocol, *, collect: bool = True) -> list[float]:
    """Warm up, then collect samples (ms) from ``step`` (which times one call and returns ms).

    Python's garbage collector is paused while timing (as ``timeit`` and
    ``torch.utils.benchmark`` do): a collection landing inside one call is not the model's time.
    ``collect=False`` skips the full collection before (a tenth of a second in a process holding
    many models; the latency tables time hundreds of short runs).
    """
    if collect:
        gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _run(step, protocol)
    finally:
        if was_enabled:
            gc.enable()


def _run(step: Callable[[], float], protocol: Protocol) -> list[float]:
    start = time.perf_counter()
    n = 0
    while n < protocol.warmup_runs or time.perf_counter() - start < protocol.warmup_s:
        step()
        n += 1
        if time.perf_counter() - start > protocol.max_time_s / 4:
            break
    samples: list[float] = []
    start = time.perf_counter()
    while True:
        samples.append(step())
        elapsed = time.perf_counter() - start
        if len(samples) >= protocol.min_runs and elapsed >= protocol.min_time_s:
            break
        if elapsed >= protocol.max_time_s or len(samples) >= protocol.max_runs:
            break
    return samples


class CpuMonitor:
    """CPU used by other processes during a window, in cores (Linux ``/proc``; else unknown)."""

    def __init__(self) -> None:
        self._start = self._read()

    @staticmethod
    def _read() -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat") as fh:
                fields = fh.readline().split()[1:]
            with open("/proc/self/stat") as fh:
                mine = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        values = [int(v) for v in fields]
        idle = values[3] + (values[4] if len(values) > 4 else 0)
        busy = sum(values[:8]) - idle  # user nice system idle iowait irq softirq steal
        own = int(mine[11]) + int(mine[12])  # utime + stime of this process, all threads
        return time.perf_counter(), float(busy), float(own)

    def others_cores(self) -> float | None:
        end = self._read()
        if self._start is None or end is None:
            return None
        wall = end[0] - self._start[0]
        if wall <= 0.05:
            return None
        ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        others = (end[1] - self._start[1]) - (end[2] - self._start[2])
        return max(0.0, others / ticks / wall)


def warnings_for(samples: list[float], *, threads: int, cores: int, others_cores: float | None) -> list[Note]:
    """The warnings a row carries: spread too wide, too few runs, machine busy."""
    from cnnprof.timing.stats import summarize

    s = summarize(samples)
    out = []
    if s.median > 0 and s.iqr > NOISY_IQR * s.median:
        out.append(Note.tagged(NOISY, f"IQR is {100 * s.iqr / s.median:.0f}% of the median"))
    if s.n < FEW_RUNS:
        out.append(Note.tagged(FEW, f"only {s.n}, the median's interval is wide"))
    if others_cores is not None and others_cores + threads > cores + 0.25:
        out.append(Note.tagged(
            BUSY, f"other processes used {others_cores:.1f} of {cores} cores while timing with {threads} thread(s)"))
    elif others_cores is None and hasattr(os, "getloadavg"):
        load = os.getloadavg()[0]
        if load > cores + 0.5:
            out.append(Note.tagged(BUSY, f"load average {load:.1f} on {cores} cores"))
    return out
