"""The one process boundary: a job goes to a fresh ``python -m MODULE JOB.json RESULT.json`` and
its result comes back, both through one typed codec (dataclasses <-> JSON).

Why fresh processes: a measurement's peak memory and its per-process speed state are only those
of the model when nothing ran before it in that interpreter, and a crash, a hang or an
out-of-memory stays in the worker. The bench's timing worker, the gate's measurement processes
and the sweep's cells all cross here.

Parent side: ``spawn(module, job, timeout_s=..., result=Type)`` runs a worker to its end and
returns its decoded result, or raises ``WorkerFailed`` with one line (killed by a signal, with a
hint when SIGKILL says out of memory; ran past its timeout; exited without a result: the last
line of its stderr). A ``CnnprofError`` the job itself raised comes back as its own line
(``WorkerFailed.own``). ``Worker(module, job, ...)`` starts one without waiting, for a caller
that runs several (``poll``, ``finish``, ``kill``). ``handshake=True``: the worker calls ``ready()`` once it
is set up and waits there until the parent has done what it does meanwhile (``while_starting``).

Worker side: ``serve(run, job=Type)`` reads the job, calls ``run(job)``, writes the encoded result
atomically and leaves at once (no interpreter teardown: the answer is already on disk).

The codec: ``encode`` turns dataclasses into dicts, enums into their values and tuples into
lists; ``decode(data, Type)`` rebuilds the typed value from the type hints (nested dataclasses,
enums, tuples, ``X | None``, lists, dicts, tuple subclasses such as ``Notes``). Floats cross as
they are, NaN and infinities included (both ends are this tool's Python, and a row's infinite
parity error is a value, not a gap): they become null only where data leaves the tool for a
file (``rows.finite``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import types
import typing
from collections import abc
from pathlib import Path
from typing import Any, Callable, Mapping

from cnnprof.errors import CnnprofError

READY = "cnnprof-worker: READY"
ROOT = str(Path(__file__).resolve().parents[1])  # this cnnprof, whatever the worker's folder
PARENT_GONE = 70  # the exit status of a worker whose parent went away (``watch_parent``)


# -- the codec -------------------------------------------------------------------------------------
def encode(value: Any) -> Any:
    """``value`` as JSON-ready data (see the module docstring)."""
    if isinstance(value, enum.Enum):
        return encode(value.value)
    if isinstance(value, (bool, int, float, type(None))):
        return value
    if isinstance(value, str):
        # a str carrying more than its text (a row's Note: its kind) goes as its constructor's arguments
        own_args = type(value) is not str and "__getnewargs__" in vars(type(value))
        return [encode(v) for v in value.__getnewargs__()] if own_args else str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot send a {type(value).__name__} to another process")


def _item_type(cls: type) -> Any:
    """The item type of a tuple subclass declared as ``class Notes(tuple[Note, ...])``."""
    for base in getattr(cls, "__orig_bases__", ()):
        args = typing.get_args(base)
        if typing.get_origin(base) is tuple and args:
            return args[0]
    return Any


def decode(data: Any, tp: Any = Any) -> Any:
    """``data`` (as ``encode`` wrote it) as a value of type ``tp``."""
    if tp is Any or tp is None:
        return data
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        return decode(data, options[0]) if len(options) == 1 else data
    if origin is typing.Literal:
        return data
    if origin is not None:
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(decode(v, args[0]) for v in data)
            return tuple(decode(v, a) for v, a in zip(data, args)) if args else tuple(data)
        if isinstance(origin, type) and issubclass(origin, abc.Mapping):
            kt, vt = args if len(args) == 2 else (Any, Any)
            return {decode(k, kt): decode(v, vt) for k, v in data.items()}
        if origin in (list, set, frozenset) or isinstance(origin, type) and issubclass(origin, abc.Sequence):
            item = args[0] if args else Any
            return (origin if origin in (set, frozenset) else list)(decode(v, item) for v in data)
        return data
    if not isinstance(tp, type):
        return data
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return tp(**{f.name: decode(data[f.name], hints.get(f.name, Any))
                     for f in dataclasses.fields(tp) if f.init and f.name in data})
    if issubclass(tp, enum.Enum):
        return tp(data)
    if tp is float:
        return None if data is None else float(data)
    if issubclass(tp, str) and tp is not str and isinstance(data, list):
        return tp(*data)  # a str subclass sent as its constructor's arguments (see encode)
    if issubclass(tp, tuple) and tp is not tuple:
        item = _item_type(tp)
        return tp(decode(v, item) for v in data)
    if tp is tuple:
        return tuple(data)
    return data


# -- the worker's side -----------------------------------------------------------------------------
def ready() -> None:
    """Handshake, worker side: say READY and wait for the parent's line (``handshake=True``).
    No line (the parent is gone): nobody wants the result, leave."""
    sys.stdout.write(READY + "\n")
    sys.stdout.flush()
    if not sys.stdin.readline():
        os._exit(4)


def watch_parent() -> None:
    """End this process when the parent that started it with ``watch_parent=True`` is gone: it
    holds our stdin's other end, and a read that returns means it closed (exited, or was killed)."""
    import threading

    def watch() -> None:
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        os._exit(PARENT_GONE)

    threading.Thread(target=watch, daemon=True).start()


def serve(run: Callable[[Any], Any], *, job: Any = Any, error_code: int = 0,
          argv: list[str] | None = None) -> None:
    """Worker main: ``JOB.json RESULT.json`` from ``argv``; the result of ``run(job)``, or a
    ``CnnprofError`` as ``{"error": line}`` with exit status ``error_code``; then leave at once."""
    from cnnprof.files import write_atomic

    job_path, result_path = (sys.argv[1:] if argv is None else argv)[:2]
    value = decode(json.loads(Path(job_path).read_text()), job)
    code = 0
    try:
        record = encode(run(value))
    except CnnprofError as exc:  # a model or backend that cannot run: one line for the parent
        record, code = {"error": str(exc)}, error_code
    write_atomic(result_path, json.dumps(record))
    leave(code)


def leave(code: int) -> None:
    """Flush and exit at once: the answer is already on disk."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# -- the parent's side -----------------------------------------------------------------------------
class WorkerFailed(CnnprofError):
    """A worker gave no result (``own`` False: crashed, timed out) or its job's own one-line error
    (``own`` True)."""

    def __init__(self, line: str, *, own: bool = False, reason: str = ""):
        super().__init__(line)
        self.own = own
        self.reason = reason or line


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def crash_reason(returncode: int | None) -> str:
    """How a worker ended without a result, in a few words."""
    if returncode is not None and returncode < 0:
        hint = " (out of memory? the kernel's OOM killer sends SIGKILL)" if -returncode == signal.SIGKILL else ""
        return f"killed by {signal_name(-returncode)}{hint}"
    return f"exit code {returncode}"


def environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A worker's environment: this one, unbuffered, with ``extra``, and this cnnprof importable."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra or {})}
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def last_line(path: Path, limit: int = 300) -> str:
    """The last non-empty line of a worker's output (what it said before it died)."""
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:limit] if lines else ""


@dataclasses.dataclass
class Ended:
    """How a worker ended: its exit status (None: still running when it was killed), whether it ran
    past its timeout, its run time, the last line of its output, and its result record (None: none
    written, or unreadable: ``unreadable`` says why)."""

    returncode: int | None
    timed_out: bool
    seconds: float
    tail: str
    record: Any = None
    unreadable: str = ""


class Worker:
    """A started worker process: ``python -m module JOB.json RESULT.json`` in a folder of its own.
    ``handshake``: its stdout is read for READY (``go``); ``watch_parent``: its stdin stays open
    for it to watch; ``new_session``: its own process group (killed as one); ``keep_stdout``: its
    prints join its stderr in the output whose last line explains a crash."""

    def __init__(self, module: str, job: Any, *, timeout_s: float, env: Mapping[str, str] | None = None,
                 handshake: bool = False, watch_parent: bool = False, new_session: bool = False,
                 keep_stdout: bool = False, python: str = sys.executable, prefix: str = "cnnprof-worker-"):
        self.timeout_s = timeout_s
        self.new_session = new_session
        self.folder = Path(tempfile.mkdtemp(prefix=prefix))  # job, result and output: gone when it ends
        self.job_path, self.result_path = self.folder / "job.json", self.folder / "result.json"
        self.log_path = self.folder / "output.txt"
        self.job_path.write_text(json.dumps(encode(job)))
        log = open(self.log_path, "wb")
        try:  # a model's prints go nowhere unless asked: a command's stdout is its report
            stdout = subprocess.PIPE if handshake else (log if keep_stdout else subprocess.DEVNULL)
            stdin = subprocess.PIPE if handshake or watch_parent else subprocess.DEVNULL
            self.proc = subprocess.Popen([python, "-m", module, str(self.job_path), str(self.result_path)],
                                         stdin=stdin, stdout=stdout, stderr=log, env=environment(env),
                                         start_new_session=new_session)
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise
        finally:
            log.close()
        self.started = time.monotonic()
        self.deadline = self.started + timeout_s

    def go(self) -> None:
        """Handshake, parent side: wait for the worker's READY (its own prints before it are
        skipped), then let it go on."""
        for line in self.proc.stdout:
            if line.decode(errors="replace").strip() == READY:
                self.proc.stdin.write(b"go\n")
                self.proc.stdin.flush()
                return

    @property
    def late(self) -> bool:
        return time.monotonic() > self.deadline

    def poll(self) -> bool:
        """Whether it has ended or run past its timeout (``finish`` then)."""
        return self.proc.poll() is not None or self.late

    def wait(self) -> bool:
        """Wait for it to end (reading what it still prints); False: it ran past its timeout."""
        try:
            self.proc.communicate(timeout=max(0.0, self.deadline - time.monotonic()))
            return True
        except subprocess.TimeoutExpired:
            return False

    def kill(self) -> None:
        """Kill it (its whole session when it has one of its own) and reap it."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.new_session:
                os.killpg(self.proc.pid, signal.SIGKILL)
            else:
                self.proc.kill()
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=10)
        self._close_pipes()

    def _close_pipes(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError, AttributeError):
                pipe.close()

    def finish(self, timed_out: bool | None = None) -> Ended:
        """How it ended (killed first when it ran past its timeout); its folder is removed."""
        timed_out = self.late and self.proc.poll() is None if timed_out is None else timed_out
        if timed_out:
            self.kill()
        self._close_pipes()
        ended = Ended(self.proc.returncode, timed_out, time.monotonic() - self.started, last_line(self.log_path))
        if not timed_out and self.result_path.exists():
            try:
                ended.record = json.loads(self.result_path.read_text())
            except (OSError, ValueError) as exc:
                ended.unreadable = str(exc)
        self.close()
        return ended

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def spawn(module: str, job: Any, *, timeout_s: float, result: Any = Any, env: Mapping[str, str] | None = None,
          handshake: bool = False, while_starting: Callable[[], None] | None = None,
          what: str = "measurement process") -> Any:
    """Run ``python -m module`` on ``job`` to its end; its result decoded as ``result``. Raises
    ``WorkerFailed`` (see the module docstring); ``while_starting`` runs here while it starts."""
    worker = Worker(module, job, timeout_s=timeout_s, env=env, handshake=handshake)
    try:
        if while_starting is not None:
            while_starting()
        if handshake:
            worker.go()
        ended = worker.finish(timed_out=not worker.wait())
    except BaseException:  # Ctrl-C, or an error in while_starting: leave nothing behind
        worker.kill()
        worker.close()
        raise
    if ended.timed_out:
        raise WorkerFailed(f"the {what} ran longer than {timeout_s:.0f} s")
    record = ended.record
    if not isinstance(record, dict):
        reason = ended.unreadable and f"its result is unreadable ({ended.unreadable})"
        if not reason:
            reason = crash_reason(ended.returncode) if (ended.returncode or 0) < 0 else \
                ended.tail or crash_reason(ended.returncode)
        raise WorkerFailed(f"{what} failed: {reason}", reason=reason)
    if record.get("error"):
        raise WorkerFailed(str(record["error"]), own=True)
    return decode(record, result)
