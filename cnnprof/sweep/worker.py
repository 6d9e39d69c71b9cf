"""One pass of one sweep cell, in the process that runs it.

``run_cell(job)`` is the whole of it, a plain function from a job (a dict: the cell, the pass, the
protocol) to a result (a dict: the report row, the samples, where and how long each step took), so
that any executor can call it: the local one starts ``python -m cnnprof.sweep.worker JOB RESULT``
for every cell pass (a fresh interpreter: a crash, a hang or an out-of-memory stays in it), and a
cluster's executor can call it as a remote task.

The result's ``overhead`` separates what the worker costs from what it measures: ``start_s`` (the
process starting, until this module runs), ``import_s`` (torch and cnnprof), ``resolve_s``,
``count_s``, ``build_s``, ``calibrate_s``; ``measure_s`` is the timing itself (warm-up, samples,
the backend's set-up such as an ONNX export).
"""

from __future__ import annotations

import dataclasses
import socket
import sys
import time
from typing import Any, Mapping

IMPORTS = ("torch", "cnnprof.targets", "cnnprof.counting", "cnnprof.timing")


def _imports() -> float:
    t0 = time.perf_counter()
    import importlib

    for name in IMPORTS:
        importlib.import_module(name)
    return time.perf_counter() - t0


def _error_result(job: Mapping[str, Any], error: str, overhead: dict[str, float], row: dict | None = None) -> dict:
    from cnnprof.sweep.matrix import Cell
    from cnnprof.workers import decode

    cell = decode(job["cell"], Cell)
    base = {"model": cell.model, "batch": cell.batch, "backend": cell.backend, "device": cell.device,
            "threads": cell.threads if cell.timing else None}
    return {"ok": False, "error": error, "row": {**(row or base), "error": error}, "samples": None,
            "host": socket.gethostname(), "environment": None, "overhead": overhead, "measure_s": None}


def run_cell(job: Mapping[str, Any], overhead: dict[str, float] | None = None) -> dict[str, Any]:
    """Count and/or time one cell once (see the module docstring); never raises for the cell's own
    failures: they are the result's ``error``."""
    overhead = dict(overhead or {})
    overhead["import_s"] = overhead.get("import_s", 0.0) + _imports()
    try:
        return _run(job, overhead)
    except Exception as exc:  # noqa: BLE001 - the cell's failure is its row, whatever it was
        from cnnprof.errors import CnnprofError, is_out_of_memory, one_line

        ours = isinstance(exc, CnnprofError)  # already a sentence for people: kept whole
        text = one_line(exc, typed=not ours, limit=None if ours else 300)
        if (is_out_of_memory(exc) or "can't allocate memory" in text) and not text.startswith("out of memory"):
            text = f"out of memory: {text}"  # (a user's factory failing to allocate comes wrapped)
        return _error_result(job, text, overhead)


def _run(job: Mapping[str, Any], overhead: dict[str, float]) -> dict[str, Any]:
    from cnnprof import counting, timing
    from cnnprof.errors import memory_guard
    from cnnprof.rows import ProfileRow, counts_row, format_shape, with_latency
    from cnnprof.sweep.matrix import NATIVE, Cell
    from cnnprof.targets import (
        calibrate_model,
        count_target,
        parse_resolution,
        resolve_targets,
        running,
        target_input,
    )
    from cnnprof.timing.environment import fingerprint
    from cnnprof.timing.protocol import DEFAULT, with_limits
    from cnnprof.workers import decode

    cell = decode(job["cell"], Cell)
    t = time.perf_counter()
    target = resolve_targets([cell.model], input_shape=job.get("input"))[0]
    if target.error:
        return _error_result(job, target.error, overhead)
    res = None if cell.resolution == NATIVE else parse_resolution(cell.resolution)
    shape = target_input(target, res, batch=cell.batch)
    overhead["resolve_s"] = time.perf_counter() - t
    row = ProfileRow(model=target.name, family=target.family, input=format_shape(shape), batch=cell.batch)
    macs = None
    if job.get("count", True):
        t = time.perf_counter()
        if target.onnx_path is None:
            counts = counting.scale_to_batch(count_target(target, shape), cell.batch)
        else:
            counts = count_target(target, shape, batch=cell.batch)
        overhead["count_s"] = time.perf_counter() - t
        row = counts_row(model=target.name, family=target.family, counts=counts, input_shape=shape, batch=cell.batch)
        macs = counts.macs
    row = dataclasses.replace(row, precision=cell.precision)
    samples = None
    measure_s = None
    environment = fingerprint(cell.threads if cell.timing else 1)
    if cell.timing:
        row = dataclasses.replace(row, backend=cell.backend, device=cell.device, threads=cell.threads)
        model = None
        meter = idle_meter(cell)  # this worker is fresh: its resident set before the model is idle
        if target.onnx_path is None:
            t = time.perf_counter()
            model = target.build(shape=shape, calibrate=False)
            overhead["build_s"] = time.perf_counter() - t
            if target.spec is not None:
                t = time.perf_counter()
                with memory_guard(f"{target.name} at input {format_shape(shape)}"):
                    model = calibrate_model(model, shape)
                overhead["calibrate_s"] = time.perf_counter() - t
        protocol = with_limits(DEFAULT, min_time_s=job.get("min_time_s"), min_runs=job.get("min_runs"))
        opts = timing.TimingOptions(backend=cell.backend, device=cell.device, threads=cell.threads, batch=cell.batch,
                                    protocol=protocol, precision=cell.precision)
        t = time.perf_counter()
        with running(target.name):
            latency = timing.time_model(model, shape, name=target.name, opts=opts, onnx_path=target.onnx_path,
                                        memory=meter)
        measure_s = time.perf_counter() - t
        row = dataclasses.replace(with_latency(row, latency, macs), environment=environment)
        samples = list(latency.samples)
    return {"ok": True, "error": None, "row": row.to_dict(), "samples": samples, "host": socket.gethostname(),
            "environment": environment.to_dict(), "overhead": overhead, "measure_s": measure_s}


def idle_meter(cell):
    """A peak-memory meter started now, with the cell's runtime imported (its libraries are not the
    run's): the row's peak memory is what warm-up and timing needed beyond this state."""
    from cnnprof import timing
    from cnnprof.timing import memory
    from cnnprof.bench.worker import import_backend

    opts = timing.TimingOptions(backend=cell.backend, device=cell.device)
    import_backend(opts)
    meter = memory.CudaPeak(torch_allocator=opts.backend.is_torch) if cell.device == "cuda" else memory.CpuPeak()
    meter.start()
    return meter


def _limit_memory(gb: float | None) -> None:
    if not gb:
        return
    import resource

    limit = int(gb * 1e9)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def main(argv: list[str] | None = None) -> int:
    entered = time.time()
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        sys.stderr.write("usage: python -m cnnprof.sweep.worker JOB.json RESULT.json\n")
        return 2
    from cnnprof.workers import serve, watch_parent

    def run(job: dict[str, Any]) -> dict[str, Any]:
        if job.get("watch_parent"):
            watch_parent()  # end with the sweep that started this worker
        overhead = {"start_s": max(0.0, entered - float(job.get("spawned_at", entered))), "import_s": _imports()}
        _limit_memory(job.get("memory_limit_gb"))
        return run_cell(job, overhead)

    serve(run, argv=args)  # leaves at once: no interpreter teardown counted in the next cell's time
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
