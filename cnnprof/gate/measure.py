"""Run measurement processes one after another and collect their samples.

Each process is a fresh interpreter (``python -m cnnprof.gate.worker``), so each one draws its
own per-process state, as a CI job would. Processes run strictly one at a time: two of them
timing at once on a 2-core machine would each be the other's noise. While the first one imports
torch and builds its models, this process may do other work (``while_first_starts``: counting
parameters and MACs), and only then tells it to start timing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from cnnprof.errors import CnnprofError
from cnnprof.files import MODELS_DIR
from cnnprof.gate.baseline import MAX_INSTANCES as MAX_INSTANCES  # re-exported
from cnnprof.gate.baseline import ProcessSamples
from cnnprof.rows import Row
from cnnprof.timing.protocol import GATE
from cnnprof.workers import WorkerFailed, spawn

Progress = Callable[[str], None]
PROTOCOL_VERSION = 1
# glibc's malloc serves large blocks with fresh mmap()ed pages (page faults, zeroing) until a free
# raises its mmap threshold, which then depends on every allocation the process made before. The
# result is a per-process, per-history speed "state": measured here, the calibration network ran
# at 20 ms per call next to the 224x224 models and at 13.5 ms next to the same models at larger
# inputs, and EfficientNet-B0 spent 30% of its time faulting pages in. Fixed thresholds (the
# 64-bit maximum of 32 MiB; never trim) keep batch-1 activations on the reused heap, in every
# worker, so the gate measures the network's work and not its allocation history.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 36),
              "MALLOC_TOP_PAD_": str(64 << 20)}


class MeasureError(CnnprofError):
    """A measurement process failed (a model that does not run on this backend, a crash)."""

    exit_code = 2


@dataclass(frozen=True)
class GateModel:
    """What the gate times: a registered model at an input (C, H, W)."""

    name: str
    input: tuple[int, int, int]


@dataclass(frozen=True)
class Settings:
    """How each measurement process times (``processes`` is how many of them)."""

    backend: str = "torch"
    precision: str = "fp32"
    threads: int = 1
    processes: int = 4
    min_time_s: float = GATE.min_time_s  # timed rounds per process, at least this long ...
    min_rounds: int = GATE.min_runs  # ... and at least this many rounds
    instances: int = 4  # copies of every network per process, used in turn (see worker)
    max_time_s: float = GATE.max_time_s
    warmup_s: float = GATE.warmup_s
    onnx_dir: str = MODELS_DIR
    worker_timeout_s: float = 600.0

    @property
    def clock(self) -> str:
        """Which clock the verdict uses: the timing thread's CPU clock with one thread (it leaves
        out the time another process held the core), else wall time (several threads' CPU time
        would count OpenMP workers spinning while they wait)."""
        return "cpu" if self.threads == 1 else "wall"

    def protocol(self) -> dict:
        return {"version": PROTOCOL_VERSION, "processes": self.processes, "min_time_s": self.min_time_s,
                "min_rounds": self.min_rounds, "instances": self.instances, "warmup_s": self.warmup_s,
                "clock": self.clock, "interleave": "C M1 C M2 ... C Mn C, one call each", "malloc": MALLOC_ENV}


@dataclass(frozen=True)
class Run(Row):
    """One process: how long it took and how busy the machine was while it timed."""

    models: tuple[str, ...]
    rounds: int
    measure_s: float
    wall_s: float
    others_cores: float | None


@dataclass(frozen=True)
class GateJob:
    """What one measurement process is sent (``handshake``: it waits for the parent once set up)."""

    models: tuple[GateModel, ...]
    settings: Settings
    max_rounds: int = 1_000_000
    handshake: bool = True


def run_process(models: Sequence[GateModel], settings: Settings,
                while_starting: Callable[[], None] | None = None) -> tuple[dict[str, ProcessSamples], Run]:
    """One measurement process over ``models``; ``while_starting`` runs here while it imports."""
    t0 = time.perf_counter()
    try:
        result: dict[str, Any] = spawn("cnnprof.gate.worker", GateJob(tuple(models), settings),
                                       timeout_s=settings.worker_timeout_s, env=MALLOC_ENV, handshake=True,
                                       while_starting=while_starting)
    except WorkerFailed as exc:
        raise MeasureError(f"measurement process failed: {exc}" if exc.own else str(exc)) from None
    keys = ("ms", "calibration_before_ms", "calibration_after_ms", "cpu_ms", "calibration_before_cpu_ms",
            "calibration_after_cpu_ms")
    samples = {m["name"]: ProcessSamples(*(tuple(m[k]) for k in keys)) for m in result["models"]}
    run = Run(tuple(m.name for m in models), int(result["rounds"]), float(result["measure_s"]),
              time.perf_counter() - t0, result.get("others_cores"))
    return samples, run


def next_process_s(runs: Sequence[Run], min_time_s: float) -> float:
    """How long one more process will take: the median start-up seen (the first process is left
    out when there are others: it also waited for the counting) plus the timed part."""
    overheads = sorted(r.wall_s - r.measure_s for r in (runs[1:] or runs))
    return (overheads[len(overheads) // 2] if overheads else 0.0) + min_time_s


def measure(models: Sequence[GateModel], settings: Settings, *, processes: int | None = None,
            while_first_starts: Callable[[], None] | None = None, deadline: float | None = None,
            min_processes: int = 1, on_progress: Progress | None = None,
            ) -> tuple[dict[str, list[ProcessSamples]], list[Run]]:
    """``processes`` (default ``settings.processes``) processes, one after another, pooled per model.

    With a ``deadline`` (a ``time.perf_counter()`` value), no process beyond the first
    ``min_processes`` starts if it would likely end after it: on a machine so busy that every
    process is slow, the check stays within its time and measures fewer processes (its intervals
    get wider, and the test stays honest)."""
    n = settings.processes if processes is None else processes
    out: dict[str, list[ProcessSamples]] = {m.name: [] for m in models}
    runs: list[Run] = []
    for i in range(n):
        if deadline is not None and i >= min_processes and \
                time.perf_counter() + next_process_s(runs, settings.min_time_s) > deadline:
            break
        if on_progress:
            what = models[0].name if len(models) == 1 else f"{len(models)} models"
            on_progress(f"timing {what} in process {i + 1} of {n}")
        samples, run = run_process(models, settings, while_first_starts if i == 0 else None)
        for name, s in samples.items():
            out[name].append(s)
        runs.append(run)
    return out, runs
