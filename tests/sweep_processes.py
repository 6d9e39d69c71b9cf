"""What the sweep tests that run `cnnprof sweep` in a process of its own look for: the sweep
workers still running under a test's folder, and a condition awaited while that process lives."""

from __future__ import annotations

import os
import time
from pathlib import Path


def workers_of(tmp: Path) -> list[int]:
    """Sweep workers still running whose job lies under ``tmp`` (the test's TMPDIR)."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "cnnprof.sweep.worker" in cmd and str(tmp) in cmd:
            found.append(int(pid))
    return found


def wait_for(condition, proc, what: str, timeout: float = 120.0) -> None:
    """Wait until ``condition()``; fail if ``proc`` ended first or ``timeout`` seconds passed."""
    deadline = time.time() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, f"{what} did not happen in time"
        time.sleep(0.1)
