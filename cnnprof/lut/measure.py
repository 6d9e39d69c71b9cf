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

The speed probe and the steady allocator (``cnnprof.lut.probe``) keep the machine's state out
of the readings: every call can be preceded by the probe and its time put at the table's
reference speed.

In place. ``make_in_place_timer`` times a whole network twice over: plain calls (the network's
latency) and instrumented calls that split each call into its parts (stem, each block, head)
and the glue between them: forward hooks reading the clock on PyTorch, ONNX Runtime's profiler
(node kernel times, mapped to the parts by the exporter's scope names) on ONNX Runtime. The
parts' shares of the instrumented calls, applied to the plain latency, are the parts' in-place
latencies: they add up to the network's latency by construction, and they include what a part
costs *there* (caches holding the previous block's output and not its own weights, the
allocator's state, ONNX Runtime's fused and re-laid-out kernels).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Sequence

from cnnprof.lut.probe import clock_ns, probed_run, use_allocator
from cnnprof.lut.table import Allocator
from cnnprof.timing.protocol import LUT_ENTRY, LUT_NETWORK, LUT_QUICK, WHOLE, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from cnnprof.lut.keys import Part
    from cnnprof.lut.probe import SpeedProbe
    from cnnprof.rows import Latency

# A table entry: short, since a space has ~110 distinct blocks (each 0.01-5 ms at one thread).
BLOCK_PROTOCOL = LUT_ENTRY
# What ``additivity`` uses when it has no table: a minute for FBNet-A/B/C on a 2-core machine.
QUICK_PROTOCOL = LUT_QUICK
# A whole network for ``--measure``: long enough for a stable median of a 10-50 ms call.
WHOLE_PROTOCOL = WHOLE
# A whole network checked against a probed (in-context) table: shorter warm-up, every call probed.
NETWORK_PROTOCOL = LUT_NETWORK


@dataclass(frozen=True)
class Measured:
    """The statistics a table keeps for one timed module (ms). With a speed probe the times are
    at the probe's reference speed; ``raw_median_ms`` is then the median as the clock read it and
    ``speed`` the median of probe / reference while timing (1.25 = the machine ran 25% slow)."""

    median_ms: float
    iqr_ms: float
    p10_ms: float
    p90_ms: float
    runs: int
    warnings: tuple[str, ...] = ()
    raw_median_ms: float | None = None
    speed: float | None = None

    @classmethod
    def from_latency(cls, lat: "Latency") -> "Measured":
        return cls(lat.median, lat.iqr, lat.p10, lat.p90, lat.runs, tuple(lat.warnings))

    @property
    def clock_ms(self) -> float:
        """The median as the clock read it (normalised or not)."""
        return self.median_ms if self.raw_median_ms is None else self.raw_median_ms


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
    raw = [m.raw_median_ms for m in rounds if m.raw_median_ms is not None]
    speed = [m.speed for m in rounds if m.speed is not None]
    return Measured(
        median_ms=statistics.median(m.median_ms for m in rounds),
        iqr_ms=statistics.median(m.iqr_ms for m in rounds),
        p10_ms=statistics.median(m.p10_ms for m in rounds),
        p90_ms=statistics.median(m.p90_ms for m in rounds),
        runs=sum(m.runs for m in rounds),
        warnings=warnings,
        raw_median_ms=statistics.median(raw) if raw else None,
        speed=statistics.median(speed) if speed else None,
    )


def make_timer(*, backend: str, threads: int, protocol: Protocol, onnx_dir: str, clock: str = "wall",
               probe: "SpeedProbe | None" = None, allocator: Allocator | None = None) -> Timer:
    """A timer for modules on ``backend`` with ``threads`` intra-op threads under ``protocol``;
    with ``probe``, every call is probed and the times normalised to its reference speed; with
    ``allocator``, the process's ``malloc`` is set so first (``use_allocator``)."""
    from cnnprof.errors import UsageError
    from cnnprof.lut.table import BACKENDS as LUT_BACKENDS
    from cnnprof.timing import TimingOptions

    if allocator is not None:
        use_allocator(allocator)

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

    def probed_timer(module: "nn.Module", input_shape: tuple, label: str) -> Measured:
        return _time_probed(module, tuple(input_shape), _file_name(label), opts, clock, probe)

    if probe is not None:
        return probed_timer
    return wall_timer if clock == "wall" else cpu_timer


def _time_probed(module: "nn.Module", input_shape: tuple, name: str, opts, clock: str, probe: "SpeedProbe") -> Measured:
    """The protocol with every call probed; times at the probe's reference speed."""
    import torch

    from cnnprof.errors import memory_guard
    from cnnprof.timing import make_runner, torch_threads
    from cnnprof.timing.environment import cpu_count
    from cnnprof.timing.protocol import CpuMonitor, warnings_for
    from cnnprof.timing.stats import summarize

    example = torch.randn(1, *input_shape, generator=torch.Generator().manual_seed(0))
    read = clock_ns(clock)
    with memory_guard(f"{name} at input {'x'.join(map(str, input_shape))} on {opts.backend},"), \
            torch_threads(opts.threads):
        runner = make_runner(module.eval(), example, opts, name)
        call = runner.call if opts.backend.is_torch else (lambda: runner.session.run(None, runner.feed))

        def step() -> tuple[float]:
            start = read()
            call()
            return ((read() - start) / 1e6,)

        monitor = CpuMonitor()
        rows, factors = probed_run(step, opts.protocol, probe)
        raw = [r[0] for r in rows]
        notes = warnings_for(raw, threads=opts.threads, cores=cpu_count(), others_cores=monitor.others_cores())
    s = summarize([r * f for r, f in zip(raw, factors)])
    return Measured(s.median, s.iqr, s.p10, s.p90, s.n, tuple(notes), raw_median_ms=statistics.median(raw),
                    speed=statistics.median(1 / f for f in factors))


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
        if opts.backend.is_torch:
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


def time_networks(jobs: Sequence[tuple[str, Callable[[], "nn.Module"], tuple]], timer: Timer, *, rounds: int = ROUNDS,
                  on_progress: Callable[[str], None] | None = None) -> list[Measured]:
    """Time each (label, build, input) whole in ``rounds`` interleaved passes (each network rebuilt
    every pass: hundreds of networks need not fit in memory); one ``combine``d result each."""
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    keep = len(jobs) <= KEEP_BUILT and rounds > 1
    built: dict[int, "nn.Module"] = {}
    times: list[list[Measured]] = [[] for _ in jobs]
    for r in range(rounds):
        for n, (label, make, shape) in enumerate(jobs):
            if on_progress:
                on_progress(f"round {r + 1}/{rounds}: timing {label} whole ({n + 1}/{len(jobs)})")
            model = built.get(n) or make()
            if keep:
                built[n] = model
            times[n].append(timer(model, tuple(shape), label))
            del model
    return [combine(t) for t in times]


KEEP_BUILT = 40  # up to this many networks stay built between rounds (FBNet: ~20 MB each)


# -- a network timed whole and split into its parts in place -------------------------------------
@dataclass(frozen=True)
class InPlace:
    """One network in place: its latency (plain calls) and, per part, what the part took inside it.

    ``parts`` follow the split's order (stem, blocks, head) and, with ``glue_ms`` (the time
    outside every part: the framework's dispatch between them, ONNX Runtime's layout reorders
    and session overhead), add up to ``whole.median_ms``. Times at the probe's reference speed
    when probed."""

    whole: Measured
    parts: tuple[float, ...]
    glue_ms: float
    instrumented_ms: float  # median of the instrumented calls (hooks or the profiler cost a little)


# (network, input (C, H, W), its parts from ``keys.split``, label) -> InPlace
InPlaceTimer = Callable[["nn.Module", tuple, Sequence["Part"], str], InPlace]


def make_in_place_timer(*, backend: str, threads: int, protocol: Protocol, onnx_dir: str, clock: str = "wall",
                        probe: "SpeedProbe | None" = None, allocator: Allocator | None = None) -> InPlaceTimer:
    """A timer that measures networks in place (see the module's text) on ``backend``."""
    from cnnprof.errors import UsageError
    from cnnprof.lut.table import BACKENDS as LUT_BACKENDS
    from cnnprof.timing import TimingOptions

    if allocator is not None:
        use_allocator(allocator)

    if clock not in ("wall", "cpu"):
        raise UsageError(f"unknown clock {clock!r}; choose wall or cpu")
    if clock == "cpu" and threads != 1:
        raise UsageError("the cpu clock times the calling thread only: use it with --threads 1")
    if backend not in LUT_BACKENDS:
        raise UsageError(f"in-place timing needs {' or '.join(LUT_BACKENDS)}, not {backend!r}")
    opts = TimingOptions(backend=backend, threads=threads, protocol=protocol, onnx_dir=onnx_dir, parity=False)

    def timer(model: "nn.Module", input_shape: tuple, parts: Sequence["Part"], label: str) -> InPlace:
        from cnnprof.errors import memory_guard

        with memory_guard(f"{label} at input {'x'.join(map(str, input_shape))} on {backend},"):
            if opts.backend.is_torch:
                return _in_place_torch(model, tuple(input_shape), parts, opts, clock, probe)
            return _in_place_ort(model, tuple(input_shape), parts, _file_name(label), opts, clock, probe)

    return timer


def in_place_result(plain: Sequence[float], plain_factors: Sequence[float], units: Sequence[Sequence[float]],
                    unit_factors: Sequence[float], warnings: Sequence[str] = ()) -> InPlace:
    """Plain calls (ms) and instrumented calls split into units (parts..., glue; ms) -> ``InPlace``:
    each unit's median over the calls, as shares of their sum, applied to the plain median."""
    import numpy as np

    from cnnprof.timing.stats import summarize

    norm = [t * f for t, f in zip(plain, plain_factors)]
    s = summarize(norm)
    whole = Measured(s.median, s.iqr, s.p10, s.p90, s.n, tuple(warnings),
                     raw_median_ms=statistics.median(plain), speed=statistics.median(1 / f for f in plain_factors))
    table = np.asarray(units, dtype=float) * np.asarray(unit_factors, dtype=float)[:, None]
    medians = np.median(table, axis=0)
    total = float(medians.sum())
    scale = s.median / total if total > 0 else 0.0
    parts = tuple(float(v) * scale for v in medians[:-1])
    return InPlace(whole, parts, float(medians[-1]) * scale, float(np.median(table.sum(axis=1))))


def _in_place_torch(model: "nn.Module", input_shape: tuple, parts: Sequence["Part"], opts, clock: str,
                    probe: "SpeedProbe | None") -> InPlace:
    """Forward hooks on the stem and every block read the clock inside the real forward pass;
    the head is the time from the last block's end to the forward's end."""
    import torch

    from cnnprof.timing import torch_threads
    from cnnprof.timing.environment import cpu_count
    from cnnprof.timing.protocol import CpuMonitor, warnings_for

    live = [p.module for p in parts if p.role != "head"]
    n = len(live)
    read = clock_ns(clock)
    x = torch.randn(1, *input_shape, generator=torch.Generator().manual_seed(0))
    marks = [0] * (2 * n)

    def pre(i: int):
        def hook(module, args) -> None:
            marks[i] = read()
        return hook

    def post(i: int):
        def hook(module, args, output) -> None:
            marks[i] = read()
        return hook

    model.eval()
    with torch_threads(opts.threads), torch.inference_mode():
        def plain() -> tuple[float]:
            start = read()
            model(x)
            return ((read() - start) / 1e6,)

        def hooked() -> tuple[float, ...]:
            start = read()
            model(x)
            end = read()
            spans = [marks[2 * i + 1] - marks[2 * i] for i in range(n)]
            head = end - marks[2 * n - 1]
            glue = (end - start) - sum(spans) - head
            return ((end - start) / 1e6, *(v / 1e6 for v in spans), head / 1e6, glue / 1e6)

        monitor = CpuMonitor()
        plain_rows, plain_factors = probed_run(plain, opts.protocol, probe, collect=True)
        handles = []
        try:
            for i, module in enumerate(live):
                handles.append(module.register_forward_pre_hook(pre(2 * i)))
                handles.append(module.register_forward_hook(post(2 * i + 1)))
            rows, factors = probed_run(hooked, opts.protocol, probe)
        finally:
            for h in handles:
                h.remove()
        raw = [r[0] for r in plain_rows]
        notes = warnings_for(raw, threads=opts.threads, cores=cpu_count(), others_cores=monitor.others_cores())
    return in_place_result(raw, plain_factors, [r[1:] for r in rows], factors, notes)


def unit_index(path: str | None, labels: Sequence[str]) -> int:
    """Which part an ONNX node belongs to: 0 the stem, 1..n the blocks (``labels``), n + 1 the head
    (any other module scope), n + 2 the glue (no scope, or a container of blocks)."""
    n = len(labels)
    if path is None:
        return n + 2
    if path == "stem" or path.startswith("stem."):
        return 0
    for i, label in enumerate(labels):
        if path == label or path.startswith(label + "."):
            return i + 1
    if any(label.startswith(path + ".") for label in labels):
        return n + 2
    return n + 1


def _in_place_ort(model: "nn.Module", input_shape: tuple, parts: Sequence["Part"], name: str, opts, clock: str,
                  probe: "SpeedProbe | None") -> InPlace:
    """ONNX Runtime's profiler splits each run into node kernel times; a part's share of a run is
    its nodes' share of the run's kernel time (nodes after graph optimisation: batch norms folded,
    activations and residual additions fused into the convolutions, layout reorders added)."""
    import json
    import tempfile
    from pathlib import Path

    import torch

    from cnnprof.errors import CnnprofError
    from cnnprof.onnx_export import cached_export
    from cnnprof.timing import BackendError, torch_threads
    from cnnprof.timing.environment import cpu_count
    from cnnprof.timing.layers import module_for_node, parse_ort_profile
    from cnnprof.timing.ort import make_session
    from cnnprof.timing.protocol import CpuMonitor, warnings_for

    labels = [p.label for p in parts if p.role == "block"]
    module_names = {n for n, _ in model.named_modules() if n}
    read = clock_ns(clock)
    x = torch.randn(1, *input_shape, generator=torch.Generator().manual_seed(0))
    with torch_threads(opts.threads), tempfile.TemporaryDirectory(prefix="cnnprof-ortprof-") as tmp:
        try:
            path, _, _ = cached_export(model.eval(), x, name=name, folder=opts.onnx_dir)
            session = make_session(path, threads=opts.threads)
            profiled = make_session(path, threads=opts.threads, profile_prefix=str(Path(tmp) / "lut"))
        except CnnprofError:
            raise
        except Exception as exc:  # noqa: BLE001 - a backend failure is one line
            raise BackendError(f"onnxruntime failed: {type(exc).__name__}: {str(exc).strip()[:300]}") from exc
        feed = {session.get_inputs()[0].name: x.numpy()}

        def timed(sess):
            def step() -> tuple[float]:
                start = read()
                sess.run(None, feed)
                return ((read() - start) / 1e6,)
            return step

        monitor = CpuMonitor()
        plain_rows, plain_factors = probed_run(timed(session), opts.protocol, probe, collect=True)
        rows, factors = probed_run(timed(profiled), opts.protocol, probe)
        raw = [r[0] for r in plain_rows]
        notes = warnings_for(raw, threads=opts.threads, cores=cpu_count(), others_cores=monitor.others_cores())
        events = json.loads(Path(profiled.end_profiling()).read_text())
    runs = parse_ort_profile(events)[-len(rows):]
    if len(runs) != len(rows):
        raise BackendError(f"onnxruntime's profile of {name} holds {len(runs)} runs, not {len(rows)}")
    where: dict[str, int] = {}
    units = []
    for row, nodes in zip(rows, runs):
        per = [0.0] * (len(labels) + 3)
        for node in nodes:
            if node.name not in where:
                where[node.name] = unit_index(module_for_node(node.name, module_names), labels)
            per[where[node.name]] += node.dur_us
        total = sum(per)
        units.append([row[0] * v / total for v in per] if total > 0 else per)
    return in_place_result(raw, plain_factors, units, factors, notes)
