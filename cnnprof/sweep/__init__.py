"""Sweeps: a matrix of cells (models x backends x precisions x batches x threads x resolutions x
devices), each cell pass measured in a worker of its own, every result stored as it comes.

* ``matrix``: the matrix (options or a TOML file) and its cells;
* ``worker``: ``run_cell(job) -> result``, one cell pass (``python -m cnnprof.sweep.worker``);
* ``executor``: where workers run (``LocalExecutor``: fresh processes on this machine);
* ``ray_executor``: the same workers on the nodes of a Ray cluster (``--cluster``);
* ``driver``: passes in shuffled orders, pooling, storing, resuming, stopping on Ctrl-C.
"""

from __future__ import annotations

from cnnprof.sweep.matrix import Cell, Matrix

__all__ = ["Cell", "Matrix", "overhead_summary"]

OVERHEAD_STEPS = ("start_s", "import_s", "resolve_s", "count_s", "build_s", "calibrate_s", "ray_s")


def overhead_summary(passes: list[dict]) -> dict[str, float]:
    """Median seconds of each step of the workers' overhead (and of measuring) over ``passes``
    (``SweepResult.passes``); steps no pass took are left out."""
    import statistics

    out: dict[str, float] = {}
    for step in OVERHEAD_STEPS:
        values = [p["overhead"][step] for p in passes if p.get("overhead") and p["overhead"].get(step) is not None]
        if values:
            out[step] = statistics.median(values)
    measured = [p["measure_s"] for p in passes if p.get("measure_s") is not None]
    if measured:
        out["measure_s"] = statistics.median(measured)
    total = [p["seconds"] for p in passes if p.get("seconds") is not None]
    if total:
        out["worker_s"] = statistics.median(total)
    return out
