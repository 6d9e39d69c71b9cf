"""User models for the signal tests: one that leaves a child running in a session of its own, one
that says when it is building (then takes its time). Each writes what it did into the file named
by $CNNPROF_TEST_MARK."""

import os
import time
from pathlib import Path

from torch import nn


def forks_away() -> nn.Module:
    pid = os.fork()
    if pid == 0:  # the child: out of the worker's process group and session, then waits
        os.setsid()
        Path(os.environ["CNNPROF_TEST_MARK"]).write_text(str(os.getpid()))
        time.sleep(600)
        os._exit(0)
    deadline = time.time() + 30
    while not Path(os.environ["CNNPROF_TEST_MARK"]).exists() and time.time() < deadline:
        time.sleep(0.05)
    return nn.Conv2d(3, 4, 3)


def builds_slowly() -> nn.Module:
    Path(os.environ["CNNPROF_TEST_MARK"]).write_text("building")
    time.sleep(600)
    return nn.Conv2d(3, 4, 3)
