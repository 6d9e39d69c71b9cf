"""A resumed sweep launches only the cell passes it lacks: a spy stands in for the executor (the
cell launcher), so every pass a sweep asks for is counted, and the rows it prints pool the stored
passes' samples with the new ones, not samples measured again."""

from __future__ import annotations

import json

import pytest
from store_data import environment

from cnnprof.store import Store
from cnnprof.sweep.driver import Sweep
from cnnprof.sweep.matrix import Cell, Matrix

PASSES = 3
SAMPLES = 4  # per pass


class SpyExecutor:
    """Runs nothing: records each job it is given and answers with samples that name the sweep
    that launched them (``base``) and the pass. ``stop_after``: ask the sweep to stop (Ctrl-C) after
    that many results."""

    def __init__(self, base: float, stop_after: int | None = None):
        self.base = base
        self.stop_after = stop_after
        self.launched: list[tuple[str, int]] = []
        self.sweep: Sweep | None = None

    def run(self, jobs, on_result, should_stop) -> None:
        for job in jobs:
            if should_stop():
                return
            cell = job["cell"]
            self.launched.append((Cell.from_dict(cell).key, job["pass"]))
            level = self.base + job["pass"] / 10
            row = {"model": cell["model"], "batch": cell["batch"], "backend": cell["backend"], "device": "cpu",
                   "threads": 1, "params": 10 if job["count"] else None, "macs": 1000, "warnings": "", "error": "",
                   "environment": {"cores": 2}}
            on_result(job, {"ok": True, "row": row, "samples": [level] * SAMPLES, "seconds": 0.1,
                            "overhead": {"start": 0.01}, "measure_s": 0.05})
            if self.stop_after is not None and len(self.launched) >= self.stop_after:
                self.sweep.stop()


def sweep(db, executor: SpyExecutor, *, resume: bool, notes: list[str] | None = None):
    matrix = Matrix(models=("m",), backends=("torch",), batches=(1, 2, 4), passes=PASSES, min_time_s=0.0, min_runs=3)
    store = Store.open(db)
    run = Sweep(matrix, matrix.cells(["m"]), store, executor, environment=environment("abc1234"),
                argv=["cnnprof", "sweep", "m"], resume=resume, on_notice=(notes if notes is not None else []).append)
    executor.sweep = run
    try:
        return run.run()
    finally:
        store.close()


def test_a_resumed_sweep_launches_only_the_missing_passes_and_pools_the_stored_ones(tmp_path):
    db = tmp_path / "x.db"
    first = SpyExecutor(base=1.0, stop_after=4)
    interrupted = sweep(db, first, resume=False)
    assert interrupted.interrupted and len(first.launched) == 4
    every = {(c.key, p) for c in interrupted.cells for p in range(1, PASSES + 1)}
    assert len(every) == 9

    second = SpyExecutor(base=2.0)
    notes: list[str] = []
    resumed = sweep(db, second, resume=True, notes=notes)
    assert resumed.resumed and not resumed.interrupted and resumed.run_id == interrupted.run_id
    assert "resuming sweep run 1: 4 cell pass(es) already stored" in notes
    # exactly the five missing passes, each once; none of the four stored ones again
    assert len(second.launched) == 5 and set(second.launched) == every - set(first.launched)

    stored_by_first = {}
    for key, p in first.launched:
        stored_by_first.setdefault(key, set()).add(p)
    for row in resumed.rows:
        old = stored_by_first.get(row["cell"], set())
        # the first sweep's passes keep their samples (1.x ms); the passes launched now, 2.x ms
        assert row["pass_medians"] == [(1.0 if p in old else 2.0) + p / 10 for p in range(1, PASSES + 1)], row
        assert row["runs"] == PASSES * SAMPLES and row["passes"] == PASSES
    with Store.open(db) as store:
        passes = store.passes_of(resumed.run_id)
    assert len(passes) == 9
    for p in passes:
        level = (1.0 if (p["cell"], p["pass"]) in set(first.launched) else 2.0) + p["pass"] / 10
        assert json.loads(p["samples"]) == [pytest.approx(level)] * SAMPLES


def test_resuming_a_finished_sweep_launches_nothing(tmp_path):
    db = tmp_path / "x.db"
    sweep(db, SpyExecutor(base=1.0), resume=False)
    again = SpyExecutor(base=2.0)
    notes: list[str] = []
    result = sweep(db, again, resume=True, notes=notes)
    assert again.launched == [] and result.run_id == 0
    assert "nothing to measure: every cell was measured completely at this revision" in notes
