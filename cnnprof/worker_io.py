"""What every worker process (``bench.worker``, ``gate.worker``, ``sweep.worker``) does at its
edges: write its answer for the parent atomically, a model that cannot run as a one-line error,
and leave without torch's slow interpreter teardown once the answer is on disk."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable


def answer(result_path: Path, work: Callable[[], dict[str, Any]], *, error_code: int = 0) -> int:
    """Run ``work`` and write its record to ``result_path``; a ``CnnprofError`` is written as
    ``{"error": line}`` and gives ``error_code``."""
    from cnnprof.errors import CnnprofError
    from cnnprof.files import write_atomic

    code = 0
    try:
        record = work()
    except CnnprofError as exc:  # a model or backend that cannot run: one line for the parent
        record, code = {"error": str(exc)}, error_code
    write_atomic(result_path, json.dumps(record))
    return code


def leave(code: int) -> None:
    """Flush and exit at once: the answer is already on disk."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
