"""Running a sweep: the cells in a shuffled order, pass after pass, each cell pass in a worker,
every pass stored as it ends, each cell's row pooling its passes.

Why passes (as asv does): a run of cells in one order on a shared machine meets its slow spells
at the cells that happen to be running then. Each pass runs every cell once, in its own random
order, in a fresh process (each process draws its own speed "state": measurements.md, B); a
cell's row pools the samples of all its passes, so a slow spell or an unlucky process weighs on
one pass of every cell rather than on all of one cell, and the spread between a cell's passes is
reported when it is wide.

Nothing measured is lost: each pass is stored with the cell's pooled row in one transaction as
soon as its worker ends, so a sweep that is killed keeps every finished pass; ``resume`` continues
the newest unfinished sweep of the same cells at the same revision on the same machine and
environment, skipping its stored passes, and skips cells that another sweep at that revision
and environment measured completely. Ctrl-C stops after the cells running now (a second Ctrl-C,
or SIGTERM, stops them too; the run is marked interrupted either way).
"""

from __future__ import annotations

import hashlib
import json
import random
import signal
import statistics
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from cnnprof.store import Store, Where
from cnnprof.store.columns import Kind
from cnnprof.sweep.executor import Executor, Job, Result
from cnnprof.sweep.matrix import Cell, Matrix
from cnnprof.workers import decode, encode

Progress = Callable[["Status"], None]
SPREAD_NOTE = 0.10  # pass medians further apart than this (max/min - 1): say so in the row


@dataclass
class Status:
    """Where a sweep stands, for its progress display."""

    total: int  # cell passes planned in this run
    done: int = 0
    failed: int = 0  # cell passes that gave an error
    skipped: int = 0  # cell passes already stored (resume)
    current: str = ""
    stopping: bool = False


@dataclass
class SweepResult:
    run_id: int
    resumed: bool
    cells: list[Cell]
    rows: list[dict[str, Any]]  # the pooled row of each cell measured in this run, in cell order
    skipped_cells: int  # measured completely by another sweep (resume)
    interrupted: bool
    passes: list[dict[str, Any]] = field(default_factory=list)  # this invocation's results (overheads)
    terminated: bool = False  # stopped by SIGTERM

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r.get("error")]


def plan_digest(cells: Sequence[Cell], passes: int) -> str:
    data = json.dumps([sorted(c.key for c in cells), passes])
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def pass_order(cells: Sequence[Cell], pass_index: int, seed: int) -> list[Cell]:
    """The cells of one pass, in their own random order (seeded: the same sweep, the same orders)."""
    order = list(cells)
    random.Random(f"{seed}:{pass_index}").shuffle(order)
    return order


# -- pooling ---------------------------------------------------------------------------------------
def pool(cell: Cell, results: Sequence[Mapping[str, Any]], planned: int) -> dict[str, Any]:
    """The row of a cell from the results of its passes so far: counts from the pass that counted,
    latency statistics of all the passes' samples together, the notes of every pass."""
    ok = [r for r in results if r.get("ok")]
    errors = [r["error"] for r in results if not r.get("ok")]
    extra = {"cell": cell.key, "precision": cell.precision, "passes": len(ok), "passes_planned": planned,
             "pass_errors": errors}
    if cell.kind:
        extra["kind"] = cell.kind
    if not ok:
        return {**results[-1]["row"], **extra, "error": errors[-1]}
    counted = next((r for r in ok if r["row"].get("params") is not None), ok[0])
    row = dict(counted["row"])
    timed = [r for r in ok if r.get("samples")]
    _tag_node(row, timed[0] if cell.timing and timed else ok[0], ok)
    if cell.timing and timed:
        from cnnprof.timing.protocol import FEW, NOISY, warnings_for
        from cnnprof.timing.stats import summarize, tail_note

        samples = [s for r in timed for s in r["samples"]]
        s = summarize(samples)
        first = timed[0]["row"]
        for key in ("backend", "device", "threads", "setup_s", "export_s", "first_run_ms", "environment"):
            row[key] = first.get(key)
        parity = [r["row"].get("parity_max_abs") for r in timed if r["row"].get("parity_max_abs") is not None]
        seconds = s.median / 1e3
        row.update({
            "latency_ms_median": s.median, "latency_ms_mean": s.mean, "latency_ms_std": s.std,
            "latency_ms_p10": s.p10, "latency_ms_p90": s.p90, "latency_ms_p99": s.p99,
            "latency_ms_p90_upper": s.p90_upper, "latency_ms_p99_upper": s.p99_upper,
            "latency_tails": tail_note(s.n) or "", "latency_ms_iqr": s.iqr,
            "latency_ms_min": s.min, "latency_ms_ci_low": s.ci_low, "latency_ms_ci_high": s.ci_high, "runs": s.n,
            "throughput_per_s": cell.batch / seconds if seconds > 0 else None,
            "gmacs_per_s": row["macs"] / seconds / 1e9 if row.get("macs") and seconds > 0 else None,
            "parity_max_abs": max(parity) if parity else None,
        })
        notes: dict[str, str] = {}
        for r in timed:  # each pass's own notes, but for spread and count: judged on the pool below
            for text in filter(None, str(r["row"].get("warnings") or "").split("; ")):
                kind = text.split(":", 1)[0].strip()
                if kind not in (NOISY, FEW):
                    notes.setdefault(kind, text)
        cores = (first.get("environment") or {}).get("cores") or 1
        for note in warnings_for(samples, threads=cell.threads, cores=cores, others_cores=0.0):
            notes.setdefault(note.kind, str(note))
        medians = [statistics.median(r["samples"]) for r in timed]
        extra["pass_medians"] = medians
        if len(medians) > 1 and min(medians) > 0 and max(medians) / min(medians) - 1 > SPREAD_NOTE:
            notes.setdefault("passes", "passes: medians " + ", ".join(f"{m:.3g}" for m in medians)
                             + f" ms ({100 * (max(medians) / min(medians) - 1):.0f}% apart)")
        hosts = list(dict.fromkeys(r["node"]["label"] for r in ok if r.get("node")))
        if len(hosts) > 1:
            notes.setdefault("nodes", "nodes: passes measured on " + ", ".join(hosts))
        if errors:
            notes.setdefault("failed passes", f"failed passes: {len(errors)} of {len(results)} ({errors[-1][:120]})")
        row["warnings"] = "; ".join(notes.values())
    row["error"] = ""
    return {**row, **extra}


def _tag_node(row: dict[str, Any], lead: Mapping[str, Any], ok: Sequence[Mapping[str, Any]]) -> None:
    """A cluster cell's row names the node that measured it (``lead``: the pass whose latency
    environment the row keeps) and carries that node's environment and host, as the driver
    tagged them (``sweep.ray_executor``)."""
    node = lead.get("node")
    if not node:
        return
    row["node"] = node["id"]
    row["host"] = node["label"]
    row["kind"] = node["kind"]
    if not row.get("environment"):
        row["environment"] = node.get("environment") or lead.get("environment")
    row["nodes"] = list(dict.fromkeys(r["node"]["id"] for r in ok if r.get("node")))


# -- the run ---------------------------------------------------------------------------------------
class Sweep:
    """One sweep over ``cells`` into ``store`` (see the module docstring)."""

    def __init__(self, matrix: Matrix, cells: Sequence[Cell], store: Store, executor: Executor, *,
                 environment: Mapping[str, Any], argv: Sequence[str], resume: bool = False,
                 input_shape: str | None = None, on_progress: Progress | None = None,
                 on_notice: Callable[[str], None] | None = None, revision: str | None = None):
        self.matrix = matrix
        self.revision = revision  # --revision: the models' repository revision, as given
        self.cells = list(cells)
        self.store = store
        self.executor = executor
        self.environment = dict(environment)
        self.where = Where(self.environment)
        self.argv = list(argv)
        self.resume = resume
        self.input_shape = input_shape
        self.on_progress = on_progress or (lambda status: None)
        self.notice = on_notice or (lambda text: None)
        self.on_start: Callable[[], None] = lambda: None  # once the run is decided, before any notice
        self.planned = matrix.effective_passes
        self.digest = plan_digest(self.cells, self.planned)
        self._stop = threading.Event()
        self._abort = threading.Event()

    # resume
    def _continued_run(self) -> int | None:
        rows = self.store._guarded(lambda: list(self.store.conn.execute(
            "SELECT id, status, context FROM runs WHERE command = 'sweep' AND revision = ? AND env_key = ? "
            "ORDER BY id DESC", (self.where.revision, self.where.env_key))))
        for r in rows:
            context = json.loads(r["context"] or "{}")
            if context.get("plan") == self.digest:
                return int(r["id"]) if r["status"] != "done" else None
        return None

    def _complete_elsewhere(self, run_id: int | None) -> set[str]:
        """Cells that another sweep at this revision and environment measured in every pass."""
        keys = {c.key for c in self.cells}
        sql = ("SELECT p.cell, COUNT(*) FROM passes p JOIN runs r ON r.id = p.run_id WHERE p.ok = 1 AND "
               "p.revision = ? AND p.env_key = ? AND p.run_id != ? GROUP BY p.run_id, p.cell")
        found = self.store._guarded(lambda: list(self.store.conn.execute(
            sql, (self.where.revision, self.where.env_key, run_id or -1))))
        return {cell for cell, n in found if cell in keys and n >= self.planned}

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> SweepResult:
        run_id = self._continued_run() if self.resume else None
        resumed = run_id is not None
        if resumed:
            self.store.reopen_run(run_id)  # refused while the sweep that runs it is alive
        self.on_start()
        stored: dict[str, dict[int, dict[str, Any]]] = {c.key: {} for c in self.cells}
        if resumed:
            for p in self.store.passes_of(run_id):
                if p["cell"] in stored and p["ok"]:
                    stored[p["cell"]][int(p["pass"])] = {**json.loads(p["result"]),
                                                         "samples": json.loads(p["samples"] or "null")}
            self.notice(f"resuming sweep run {run_id}: {sum(len(v) for v in stored.values())} cell pass(es) "
                        "already stored")
        elif self.resume:
            self.notice("nothing to resume: no unfinished sweep of these cells at this revision on this machine")
        skip = self._complete_elsewhere(run_id) if self.resume else set()
        if skip:
            self.notice(f"skipping {len(skip)} cell(s) measured completely by another sweep at this revision")
        if not resumed and all(c.key in skip for c in self.cells):
            self.notice("nothing to measure: every cell was measured completely at this revision")
            return SweepResult(run_id=0, resumed=False, cells=self.cells, rows=[], skipped_cells=len(skip),
                               interrupted=False)
        if run_id is None:
            from cnnprof.store.owner import this_process

            run_id = self.store.start_run("sweep", self.argv, environment=self.environment, context={
                "plan": self.digest, "matrix": self.matrix.to_dict(), "cells": len(self.cells),
                "passes": self.planned, "owner": this_process()})
        todo = [c for c in self.cells if c.key not in skip]
        status = Status(total=len(todo) * self.planned,
                        skipped=sum(len(stored[c.key]) for c in todo))
        status.done = status.skipped
        results: dict[str, dict[int, dict[str, Any]]] = {c.key: dict(stored[c.key]) for c in todo}
        by_key = {c.key: c for c in todo}
        this_run: list[dict[str, Any]] = []
        min_time, min_runs = self.matrix.pass_protocol()

        def job_for(cell: Cell, pass_index: int) -> Job:
            counted = any(r.get("ok") and r["row"].get("params") is not None for r in results[cell.key].values())
            return {"cell": encode(cell), "pass": pass_index, "count": not counted, "input": self.input_shape,
                    "min_time_s": min_time, "min_runs": min_runs, "memory_limit_gb": self.matrix.memory_limit_gb}

        def on_result(job: Job, result: Result) -> None:
            cell = by_key[decode(job["cell"], Cell).key]
            results[cell.key][job["pass"]] = result
            ordered = [results[cell.key][k] for k in sorted(results[cell.key])]
            pooled = with_model_revision(pool(cell, ordered, self.planned), self.revision)
            self.store.add_pass(
                run_id, cell.key, job["pass"], kind=Kind.PROFILE, environment=self.environment, host=None,
                ok=bool(result.get("ok")), seconds=result.get("seconds"), overhead=result.get("overhead"),
                samples=result.get("samples"), result={k: v for k, v in result.items() if k != "samples"},
                error=result.get("error"), pooled=pooled, passes=pooled["passes"],
                extra={"precision": cell.precision}, own_environment=bool(pooled.get("node")))
            this_run.append({"cell": cell.key, "pass": job["pass"], **{k: result.get(k) for k in
                                                                       ("ok", "overhead", "measure_s", "seconds")},
                             "node": (result.get("node") or {}).get("id")})
            status.done += 1
            status.failed += 0 if result.get("ok") else 1
            status.current = cell.describe()
            self.on_progress(status)

        previous = signal.getsignal(signal.SIGINT) if threading.current_thread() is threading.main_thread() else None

        def on_sigint(signum, frame) -> None:
            if self._stop.is_set():
                self._abort.set()
                self.notice("stopping now: the running cell passes are dropped")
                return
            self._stop.set()
            status.stopping = True
            self.notice("stopping after the cells running now (Ctrl-C again to stop at once); "
                        "`--resume` continues this sweep")

        terminated = threading.Event()

        def on_sigterm(signum, frame) -> None:  # as a second Ctrl-C: a service manager will not wait
            terminated.set()
            self._stop.set()
            self._abort.set()
            self.notice("terminated: stopping now; the running cell passes are dropped")

        previous_term = signal.getsignal(signal.SIGTERM) if previous is not None else None
        if previous is not None:
            signal.signal(signal.SIGINT, on_sigint)
            signal.signal(signal.SIGTERM, on_sigterm)
        try:
            self.on_progress(status)
            for pass_index in range(1, self.planned + 1):
                if self._stop.is_set():
                    break
                jobs = [job_for(c, pass_index) for c in pass_order(todo, pass_index, self.matrix.seed)
                        if pass_index not in results[c.key]]
                self.executor.run(jobs, on_result, self._stop.is_set, abort=self._abort.is_set) \
                    if _takes_abort(self.executor) else self.executor.run(jobs, on_result, self._stop.is_set)
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
                signal.signal(signal.SIGTERM, previous_term)
        interrupted = self._stop.is_set() and status.done < status.total
        self.store.finish_run(run_id, "interrupted" if interrupted else "done")
        rows = []
        for cell in todo:
            if results[cell.key]:
                ordered = [results[cell.key][k] for k in sorted(results[cell.key])]
                rows.append(pool(cell, ordered, self.planned))
        return SweepResult(run_id=run_id, resumed=resumed, cells=self.cells, rows=rows, skipped_cells=len(skip),
                           interrupted=interrupted, passes=this_run, terminated=terminated.is_set())


def with_model_revision(row: dict[str, Any], given: str | None) -> dict[str, Any]:
    """A cell's row with its model's own revision (``gitrev.model_revision``), where it has one."""
    from cnnprof.gitrev import model_revision

    rev = model_revision(str(row.get("model") or ""), given)
    return {**row, "model_revision": rev} if rev else row


def _takes_abort(executor: Executor) -> bool:
    import inspect

    try:
        return "abort" in inspect.signature(executor.run).parameters
    except (TypeError, ValueError):
        return False
