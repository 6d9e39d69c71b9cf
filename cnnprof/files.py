"""Writing files the user asked for: atomically, and checked before the work that fills them.

Everything cnnprof writes (reports, plots, lookup tables, baselines, the machine cache, worker
results) goes through ``write_atomic``: the data lands in a temporary file beside the target and
is renamed over it, so a reader never sees half a file and an interrupted run leaves the old one
intact. ``check_writable`` lets a command fail with one line *before* minutes of measuring.

Knows nothing of the rest of the project (its only import is the error type).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from cnnprof.errors import UsageError

# Where the tool writes when the user names no path: built artefacts (exported ONNX files, latency
# tables), and reports (a CSV copy of every run).
MODELS_DIR = "models"
REPORTS_DIR = "reports"


def check_writable(path: str | os.PathLike | None) -> None:
    """Fail early (exit 2) when ``path`` cannot be written, before any expensive work."""
    if path is None:
        return
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise UsageError(f"output path {str(p)!r} is a directory")
    if not parent.is_dir():
        raise UsageError(f"cannot write {str(p)!r}: folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise UsageError(f"cannot write {str(p)!r}: permission denied")


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write to a temporary file in the same folder, then rename: never a half-written file."""
    p = Path(path)
    check_writable(p)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent if str(p.parent) else ".")
    try:
        with os.fdopen(fd, mode, **({} if isinstance(data, bytes) else {"encoding": "utf-8"})) as fh:
            fh.write(data)
        # mkstemp makes the file private (0600): give it the mode a plain open() would have, or
        # keep the mode of the file it replaces
        os.chmod(tmp, p.stat().st_mode & 0o7777 if p.exists() else 0o666 & ~umask())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return p


def umask() -> int:
    """The process's file-creation mask (read without changing it for long)."""
    current = os.umask(0)
    os.umask(current)
    return current
