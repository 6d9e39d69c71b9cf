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

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol

Job = dict[str, Any]
Result = dict[str, Any]
OnResult = Callable[[Job, Result], None]


class Executor(Protocol):
    def run(self, jobs: Iterable[Job], on_result: OnResult, should_stop: Callable[[], bool]) -> None: ...


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _tail(path: Path, limit: int = 300) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:limit] if lines else ""


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
    proc: subprocess.Popen
    folder: Path
    started: float
    deadline: float
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

    def _start(self, job: Job, tmp: Path, index: int) -> _Running:
        folder = tmp / f"job{index}"
        folder.mkdir()
        job = {**job, "spawned_at": time.time(), "watch_parent": True}
        (folder / "job.json").write_text(json.dumps(job))
        tag = uuid.uuid4().hex
        env = {**os.environ, **self.env, TAG: tag}
        root = str(Path(__file__).resolve().parents[2])  # this cnnprof, whatever the worker's folder
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        out = open(folder / "output.txt", "wb")
        try:
            proc = subprocess.Popen(
                [self.python, "-m", "cnnprof.sweep.worker", str(folder / "job.json"), str(folder / "result.json")],
                stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        finally:
            out.close()
        now = time.monotonic()
        return _Running(job, proc, folder, now, now + self.timeout_s, tag)

    def _finish(self, r: _Running, timed_out: bool) -> Result:
        seconds = time.monotonic() - r.started
        if timed_out:
            self._kill(r)
            return failure(r.job, f"timed out: the cell ran past the {self.timeout_s:g} s timeout and was stopped",
                           seconds=seconds)
        kill_tagged(r.tag)  # what it left running
        with contextlib.suppress(OSError):
            r.proc.stdin.close()
        code = r.proc.returncode
        result_path = r.folder / "result.json"
        if code == 0 and result_path.exists():
            try:
                result = json.loads(result_path.read_text())
            except (OSError, ValueError) as exc:
                return failure(r.job, f"the worker's result is unreadable ({exc})", seconds=seconds)
            result["seconds"] = seconds
            return result
        last = _tail(r.folder / "output.txt")
        if code is not None and code < 0:
            name = _signal_name(-code)
            hint = " (out of memory? the kernel's OOM killer sends SIGKILL)" if -code == signal.SIGKILL else ""
            error = f"the worker crashed: killed by {name}{hint}"
        elif code == 70:
            error = "the worker stopped: the sweep that started it went away"
        else:
            error = f"the worker crashed: exit code {code}"
        return failure(r.job, error + (f"; its last output: {last}" if last else ""), seconds=seconds)

    def _kill(self, r: _Running) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(r.proc.pid, signal.SIGKILL)
        kill_tagged(r.tag)
        with contextlib.suppress(Exception):
            r.proc.wait(timeout=10)
        with contextlib.suppress(OSError):
            r.proc.stdin.close()

    def run(self, jobs: Iterable[Job], on_result: OnResult, should_stop: Callable[[], bool],
            abort: Callable[[], bool] = lambda: False) -> None:
        """As the module says; ``abort()`` true: kill the running workers and return at once."""
        pending = list(jobs)
        running: list[_Running] = []
        with tempfile.TemporaryDirectory(prefix="cnnprof-sweep-") as tmp_name:
            tmp = Path(tmp_name)
            index = 0
            try:
                while pending or running:
                    while pending and len(running) < max(1, self.parallel) and not should_stop():
                        running.append(self._start(pending.pop(0), tmp, index))
                        index += 1
                    if not running:
                        return
                    if abort():
                        return
                    time.sleep(self.poll_s)
                    for r in list(running):
                        done = r.proc.poll() is not None
                        late = not done and time.monotonic() > r.deadline
                        if done or late:
                            running.remove(r)
                            on_result(r.job, self._finish(r, timed_out=late))
            finally:
                for r in running:
                    self._kill(r)
