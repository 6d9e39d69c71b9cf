"""Executors: where a sweep's cell passes run.

An executor has one method, ``run(jobs, on_result, should_stop)``: it runs the jobs (dicts for
``worker.run_cell``) in the order given, calls ``on_result(job, result)`` in the caller's thread
as each one ends, and starts no new job once ``should_stop()`` is true (those already running
finish). ``LocalExecutor`` runs each job in a fresh Python process on this machine; a cluster's
executor would submit ``worker.run_cell`` as remote tasks behind the same method.

A local worker runs in a session of its own, so the terminal's Ctrl-C reaches only the sweep
(which then stops after the current cell), and it ends when the sweep's process goes away (it
watches its stdin). A worker that crashes (a signal, an exit without a result), runs past the
cell timeout (its process group is killed) or runs out of memory gives an error result naming
what happened; the sweep goes on.

Nothing a worker started outlives it: each worker gets a tag of its own in its environment
(``CNNPROF_SWEEP_JOB``), which every process it starts inherits, even one that leaves its process
group and session (``os.setsid``); when the worker ends, however it ends, every process still
carrying its tag is killed (found through ``/proc/PID/environ``).
"""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Protocol

from cnnprof.workers import PARENT_GONE, Worker, crash_reason

Job = dict[str, Any]
Result = dict[str, Any]
OnResult = Callable[[Job, Result], None]


class Executor(Protocol):
    def run(self, jobs: Iterable[Job], on_result: OnResult, should_stop: Callable[[], bool]) -> None: ...


TAG = "CNNPROF_SWEEP_JOB"


def kill_tagged(tag: str) -> int:
    """SIGKILL every process whose environment carries ``TAG=tag`` (a worker's descendants, whatever
    process group or session they moved to); how many were found."""
    needle = f"{TAG}={tag}".encode()
    killed = 0
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                if needle not in fh.read().split(b"\0"):
                    continue
            os.kill(int(name), signal.SIGKILL)
            killed += 1
        except (OSError, ValueError):
            continue  # gone meanwhile, or not ours to read
    return killed


def failure(job: Mapping[str, Any], error: str, *, seconds: float | None = None) -> Result:
    """The result of a job whose worker gave none."""
    cell = job["cell"]
    row = {"model": cell["model"], "batch": cell["batch"], "backend": cell["backend"], "device": cell["device"],
           "threads": cell["threads"] if cell["backend"] else None, "error": error}
    return {"ok": False, "error": error, "row": row, "samples": None, "host": None, "environment": None,
            "overhead": None, "measure_s": None, "seconds": seconds}


@dataclass
class _Running:
    job: Job
    worker: Worker
    tag: str = ""


@dataclass
class LocalExecutor:
    """Fresh ``python -m cnnprof.sweep.worker`` processes; at most ``parallel`` at once (the caller
    gives 1 for timing, where two measurements would disturb each other)."""

    timeout_s: float = 600.0
    parallel: int = 1
    python: str = sys.executable
    env: dict[str, str] = field(default_factory=dict)
    poll_s: float = 0.05

    def _start(self, job: Job) -> _Running:
        job = {**job, "spawned_at": time.time(), "watch_parent": True}
        tag = uuid.uuid4().hex
        worker = Worker("cnnprof.sweep.worker", job, timeout_s=self.timeout_s, env={**self.env, TAG: tag},
                        watch_parent=True, new_session=True, keep_stdout=True, python=self.python,
                        prefix="cnnprof-sweep-")
        return _Running(job, worker, tag)

    def _finish(self, r: _Running, timed_out: bool) -> Result:
        ended = r.worker.finish(timed_out)
        kill_tagged(r.tag)  # what it left running
        if timed_out:
            return failure(r.job, f"timed out: the cell ran past the {self.timeout_s:g} s timeout and was stopped",
                           seconds=ended.seconds)
        if ended.returncode == 0 and ended.unreadable:
            return failure(r.job, f"the worker's result is unreadable ({ended.unreadable})", seconds=ended.seconds)
        if ended.returncode == 0 and isinstance(ended.record, dict):
            return {**ended.record, "seconds": ended.seconds}
        if ended.returncode == PARENT_GONE:
            error = "the worker stopped: the sweep that started it went away"
        else:
            error = f"the worker crashed: {crash_reason(ended.returncode)}"
        return failure(r.job, error + (f"; its last output: {ended.tail}" if ended.tail else ""),
                       seconds=ended.seconds)

    def _kill(self, r: _Running) -> None:
        r.worker.kill()
        kill_tagged(r.tag)
        r.worker.close()

    def run(self, jobs: Iterable[Job], on_result: OnResult, should_stop: Callable[[], bool],
            abort: Callable[[], bool] = lambda: False) -> None:
        """As the module says; ``abort()`` true: kill the running workers and return at once."""
        pending = list(jobs)
        running: list[_Running] = []
        try:
            while pending or running:
                while pending and len(running) < max(1, self.parallel) and not should_stop():
                    running.append(self._start(pending.pop(0)))
                if not running:
                    return
                if abort():
                    return
                time.sleep(self.poll_s)
                for r in list(running):
                    done = r.worker.proc.poll() is not None
                    late = not done and r.worker.late
                    if done or late:
                        running.remove(r)
                        on_result(r.job, self._finish(r, timed_out=late))
        finally:
            for r in running:
                self._kill(r)
