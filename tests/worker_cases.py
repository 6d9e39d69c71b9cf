"""A worker for tests/test_workers.py: ``python -m worker_cases JOB RESULT`` does what the job's
``case`` says (answer, raise, die by a signal, print then exit, hang, wait for the handshake)."""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    case: str
    values: tuple[float, ...] = ()


@dataclass(frozen=True)
class Answer:
    total: float
    values: tuple[float, ...]


def run(job: Case) -> Answer:
    from cnnprof.errors import UsageError
    from cnnprof.workers import ready

    if job.case == "raise":
        raise UsageError("the job's own error\nsecond line")
    if job.case == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if job.case == "exit":
        sys.stderr.write("something went wrong here\n\n")
        sys.stderr.flush()
        os._exit(3)
    if job.case == "hang":
        time.sleep(60)
    if job.case == "handshake":
        print("a print before READY is skipped", flush=True)
        ready()
    return Answer(total=sum(job.values), values=job.values)


if __name__ == "__main__":
    from cnnprof.workers import serve

    serve(run, job=Case)
