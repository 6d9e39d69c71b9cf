"""What ``bench`` and ``compare`` share: running the measurements with progress, keeping what was
measured when interrupted, the environment line, the latency columns."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable

from cnnprof.cli.common import progress
from cnnprof.files import REPORTS_DIR, write_atomic
from cnnprof.report import Column, Format, render_text
from cnnprof.rows import ProfileRow
from cnnprof.terminal import say

LATENCY_COLUMNS = [
    Column("latency_ms_median", "median", "ms"),
    Column("latency_ms_p90", "p90", "ms"),
    Column("latency_ms_iqr", "IQR", "ms"),
    Column("runs", "runs", "int"),
]


def collect(rows: Iterable) -> tuple[list, bool]:
    """Consume a row generator under a progress line; Ctrl-C keeps the rows already measured."""
    out = []
    with progress() as update:
        try:
            for row in rows(update) if callable(rows) else rows:
                out.append(row)
        except KeyboardInterrupt:
            return out, True
    return out, False


def save_report(kind: str, records: list[dict], fields: list[str]) -> Path:
    """Keep a CSV copy under reports/ (created if needed), named by command and time."""
    folder = Path(REPORTS_DIR)
    folder.mkdir(exist_ok=True)
    path = folder / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}.csv"
    return write_atomic(path, render_text(records, fields, [], Format.csv))


def finish(rows: list[ProfileRow], interrupted: bool) -> None:
    """Say on stderr where things stand; exit 130 after an interruption (rows already saved)."""
    env = next((r.environment for r in rows if r.environment is not None), None)
    if env is not None:
        say(f"environment: {env.describe()}")
    if interrupted:
        say(f"interrupted: kept the {len(rows)} row(s) measured so far")
        raise SystemExit(130)
