"""User models that fail the way a sweep's workers must survive: a crash, a kill (what the kernel's
out-of-memory killer does), a hang, an allocation beyond the worker's memory limit."""

import os
import signal
import time

from torch import nn


def segfaults() -> nn.Module:
    os.kill(os.getpid(), signal.SIGSEGV)


def oom_killed() -> nn.Module:
    os.kill(os.getpid(), signal.SIGKILL)


def hangs() -> nn.Module:
    time.sleep(3600)


def hungry() -> nn.Module:
    import torch

    torch.ones(4_000_000_000)  # 16 GB: beyond a worker's --memory-limit
    return nn.Conv2d(3, 4, 3)
