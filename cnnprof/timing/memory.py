"""Peak memory of a timed run, measured.

CPU: the growth of the resident set of a *fresh* worker process (``cnnprof.bench.worker``):
``idle`` is its resident set once its libraries are imported and before the model is loaded; its
high-water mark is reset once the model is loaded and the runtime set up (Linux
``/proc/self/clear_refs``), so the peak is that of warm-up and timing, and the result is that peak
minus ``idle``: the model's weights as the runtime holds them, the activations and the runtime's
workspace. A fresh process, because in a process that already ran other models the allocator
reuses memory they freed without the resident set growing, and the figure would depend on what
ran before. Where the high-water mark cannot be reset (not Linux), the process's lifetime peak
(``getrusage``) is used, which also holds the set-up's transient copies.

A sweep's worker (``cnnprof.sweep.worker``) is fresh too and starts its meter before it builds the
model; its peak also holds the PyTorch module it built (and, for int8, what the quantiser's heap
kept), so it reads higher than ``bench``'s worker, which only loads the timed copy.

CUDA: PyTorch's ``max_memory_allocated`` over warm-up and timing (torch backends); for ONNX
Runtime and TensorRT, which allocate outside PyTorch, the device memory in use after timing
minus before set-up (their arenas keep their peak).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")


def _status_kb(key: str) -> int | None:
    try:
        text = _STATUS.read_text()
    except OSError:
        return None
    m = re.search(rf"^{key}:\s+(\d+)\s+kB", text, re.M)
    return int(m.group(1)) * 1024 if m else None


def rss_bytes() -> int | None:
    """This process's resident set now."""
    return _status_kb("VmRSS")


def reset_peak() -> bool:
    """Reset this process's resident high-water mark to its current resident set (Linux 4.0+)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int | None:
    """This process's resident high-water mark (since start, or since ``reset_peak``)."""
    peak = _status_kb("VmHWM")
    if peak is not None:
        return peak
    try:
        import resource

        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, OSError):
        return None
    return int(maxrss) if sys.platform == "darwin" else int(maxrss) * 1024


class CpuPeak:
    """``start()`` at the idle state, ``armed()`` once set up, ``growth()`` after timing."""

    def __init__(self) -> None:
        self.idle: int | None = None
        self.reset = False

    def start(self) -> None:
        self.idle = rss_bytes()
        if self.idle is None:  # no /proc: the lifetime peak so far stands in for idle
            self.idle = peak_rss_bytes()

    def armed(self) -> None:
        self.reset = reset_peak()

    def growth(self) -> int | None:
        peak = peak_rss_bytes()
        if peak is None or self.idle is None:
            return None
        return max(0, peak - self.idle)


class CudaPeak:
    """Device memory: torch's allocator peak (``torch_allocator``), else the driver's in-use figure."""

    def __init__(self, *, torch_allocator: bool) -> None:
        import torch

        self.torch = torch
        self.torch_allocator = torch_allocator
        torch.cuda.init()
        self.before = self._in_use()

    def _in_use(self) -> int:
        free, total = self.torch.cuda.mem_get_info()
        return int(total - free)

    def start(self) -> None:
        self.before = self._in_use()

    def armed(self) -> None:
        if self.torch_allocator:
            self.torch.cuda.synchronize()
            self.torch.cuda.reset_peak_memory_stats()

    def growth(self) -> int | None:
        self.torch.cuda.synchronize()
        if self.torch_allocator:
            return int(self.torch.cuda.max_memory_allocated())
        return max(0, self._in_use() - self.before)


def describe_method(device: str, backend: str) -> str:
    """How a row's peak memory was measured, for the docs and notes."""
    if device == "cuda":
        from cnnprof.timing.backends import Backend

        return "max_memory_allocated" if Backend(backend).is_torch else "device memory in use after timing"
    return "peak resident growth of a fresh process" + ("" if os.path.exists("/proc/self/clear_refs") else
                                                        " (lifetime peak: no /proc here)")
