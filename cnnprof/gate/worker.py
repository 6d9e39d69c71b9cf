"""One measurement process of the gate: ``python -m cnnprof.gate.worker JOB.json RESULT.json``.

Why a separate process: the same model on the same machine settles into a different speed in
each process (measurements.md section B: 1-thread medians of 26 vs 32 ms, a per-process state,
stable inside the process). A baseline recorded in one CI job and a check in another therefore
differ by that state even when nothing changed. The gate samples it: every measurement runs in
several fresh interpreters, and the statistics treat the process, not the call, as the unit.

What one process does:

1. import torch, build the calibration network and every model of the job (seeded weights, the
   job's input shapes) and make ``instances`` copies of each (new memory for weights, input and
   buffers), with a runner for each on the job's backend and thread count; warm them up;
2. print ``READY`` and wait for a line on stdin (``workers.ready``), so the parent can count parameters and MACs
   while this process imports (never while it times);
3. time rounds ``C M1 C M2 ... C Mn`` until both ``min_time_s`` seconds and ``min_rounds`` rounds
   are done, one call each (``C`` = one call of the calibration network; the ``C`` after ``Mn``
   opens the next round), keeping for each model call the calibration calls right before and
   right after it. Round ``r`` uses instance ``r mod K`` of every network. One call, not a block
   of calls, so a change of machine speed is tracked call by call. Several instances, because a
   copy's memory placement is part of its speed: measured here (8 processes each, malloc fixed
   as ``measure.MALLOC_ENV`` says), the spread of per-process medians of normalised times was
   2.8 / 3.1 / 1.9% (mobilenetv3_small / ghostnet_100 / efficientnet_b0) with one instance and
   2.2 / 1.7 / 1.5% with six, for 2.3 s more per process; the default is 4;
4. write every call's milliseconds, wall clock and the timing thread's CPU clock, to
   RESULT.json (atomically) and exit at once.

Nothing here decides anything; ``cnnprof.gate.stats`` turns the calls into normalised samples.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pragma: no cover
    from cnnprof.gate.measure import GateJob


def _warm_up(step: Callable[[], float], seconds: float, min_calls: int) -> None:
    start = time.perf_counter()
    n = 0
    while n < min_calls or time.perf_counter() - start < seconds:
        step()
        n += 1


def _timed(step: Callable[[], float], cpu_clock: Callable[[], int]) -> tuple[float, float]:
    """One call: (wall ms as the runner measures it, CPU ms of this thread / process)."""
    c0 = cpu_clock()
    wall = step()
    return wall, (cpu_clock() - c0) / 1e6


def run_job(job: GateJob, wait: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """Build, warm up, ``wait()``, then time the interleaved rounds; returns the result record."""
    import copy

    import torch

    from cnnprof import timing
    from cnnprof.gate.calibration import CALIBRATION_INPUT, CALIBRATION_NAME, build_calibration
    from cnnprof.targets import resolve_one
    from cnnprof.timing.protocol import CpuMonitor

    s = job.settings
    threads = s.threads
    opts = timing.TimingOptions(backend=s.backend, threads=threads, onnx_dir=s.onnx_dir, precision=s.precision,
                                parity=False)
    gen = torch.Generator().manual_seed(0)
    names = [CALIBRATION_NAME] + [item.name for item in job.models]
    targets = [resolve_one(item.name, tuple(item.input)) for item in job.models]
    # an ONNX file has no module: ONNX Runtime times the file itself
    models = [build_calibration()] + [None if t.onnx_path else t.build(seed=0) for t in targets]
    onnx_paths = [None] + [t.onnx_path for t in targets]
    examples = [torch.randn(1, *CALIBRATION_INPUT, generator=gen)]
    examples += [torch.randn(1, *item.input, generator=gen) for item in job.models]
    # torch.compile would compile every copy again: one instance there.
    instances = 1 if opts.backend is timing.Backend.compile else max(1, s.instances)

    with timing.torch_threads(threads):
        # Instance k of every network is a separate copy (weights, input, buffers in new memory).
        sets = [[timing.make_runner(copy.deepcopy(m), x.clone(), opts, n, onnx_path=p)
                 for m, x, n, p in zip(models, examples, names, onnx_paths)] for _ in range(instances)]
        for j in range(len(names)):  # warm-up time is per network, shared by its instances
            for k in range(instances):
                _warm_up(sets[k][j].step, s.warmup_s / instances, 1)
        wait()
        monitor = CpuMonitor()
        # One thread runs the whole call on this thread: its CPU clock excludes the time other
        # processes held the core. With more threads, the process clock (all threads) is kept.
        cpu_clock = time.thread_time_ns if threads == 1 else time.process_time_ns
        fine = time.get_clock_info("thread_time" if threads == 1 else "process_time").resolution <= 1e-6
        n_models = len(names) - 1
        ms: list[list[float]] = [[] for _ in range(n_models)]
        cpu: list[list[float]] = [[] for _ in range(n_models)]
        before: list[list[float]] = [[] for _ in range(n_models)]
        after: list[list[float]] = [[] for _ in range(n_models)]
        before_cpu: list[list[float]] = [[] for _ in range(n_models)]
        after_cpu: list[list[float]] = [[] for _ in range(n_models)]
        start = time.perf_counter()
        rounds = 0
        prev = _timed(sets[0][0].step, cpu_clock)
        while True:
            calib, *runners = sets[rounds % instances]  # round r runs instance r mod K of everything
            for i, runner in enumerate(runners):
                wall, cpu_ms = _timed(runner.step, cpu_clock)
                nxt = _timed(calib.step, cpu_clock)
                ms[i].append(wall)
                cpu[i].append(cpu_ms)
                before[i].append(prev[0])
                after[i].append(nxt[0])
                before_cpu[i].append(prev[1])
                after_cpu[i].append(nxt[1])
                prev = nxt
            rounds += 1
            elapsed = time.perf_counter() - start
            if rounds >= s.min_rounds and elapsed >= s.min_time_s:
                break
            if rounds >= job.max_rounds or elapsed >= s.max_time_s:
                break
        others = monitor.others_cores()
    return {
        "models": [
            {"name": item.name, "input": list(item.input), "ms": ms[i], "cpu_ms": cpu[i] if fine else [],
             "calibration_before_ms": before[i], "calibration_after_ms": after[i],
             "calibration_before_cpu_ms": before_cpu[i] if fine else [],
             "calibration_after_cpu_ms": after_cpu[i] if fine else []}
            for i, item in enumerate(job.models)
        ],
        "rounds": rounds,
        "instances": instances,
        "measure_s": time.perf_counter() - start,
        "others_cores": others,
        "error": None,
    }


def main(argv: list[str]) -> None:
    from cnnprof.gate.measure import GateJob
    from cnnprof.workers import ready, serve

    serve(lambda job: run_job(job, ready if job.handshake else lambda: None), job=GateJob, error_code=3, argv=argv)


if __name__ == "__main__":
    main(sys.argv[1:])
