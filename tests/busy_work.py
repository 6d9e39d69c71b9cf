"""A model whose cost is known in advance, for the tests that pin latency units and magnitude."""

from __future__ import annotations

import time

from torch import nn


class BusyWork(nn.Module):
    """Each call spins until this thread has used ``cpu_ms`` of CPU time (so no clock can read
    less for it), and times itself with its own wall clock (``inner_ms``, one entry per call)."""

    def __init__(self, cpu_ms: float):
        super().__init__()
        self.cpu_ms = cpu_ms
        self.inner_ms: list[float] = []

    def forward(self, x):
        t0, c0 = time.perf_counter(), time.thread_time()
        while (time.thread_time() - c0) * 1e3 < self.cpu_ms:
            pass
        self.inner_ms.append((time.perf_counter() - t0) * 1e3)
        return x
