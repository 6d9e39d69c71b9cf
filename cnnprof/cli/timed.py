"""What ``bench`` and ``compare`` share: running the measurements with progress, keeping what was
measured when interrupted, the environment line, the latency columns."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable

from cnnprof.cli.common import progress
from cnnprof.errors import RowsFailed, shorten
from cnnprof.files import REPORTS_DIR, ensure_folder, write_atomic
from cnnprof.report import Column, Format, render_text
from cnnprof.rows import ProfileRow
from cnnprof.terminal import say

LATENCY_COLUMNS = [
    Column("latency_ms_median", "median", "ms", priority=1),
    Column("latency_ms_p90", "p90", "ms"),
    Column("latency_ms_iqr", "IQR", "ms"),
    Column("runs", "runs", "int", priority=3),
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


class ReportCopy:
    """The CSV copy of a run kept under reports/: its folder checked (or created) before any
    measuring, so a ``reports`` that is a file or read-only fails in one line at once; ``save``
    never replaces another run's copy (names to the millisecond, then -2, -3, ...)."""

    def __init__(self, kind: str, *, enabled: bool = True):
        self.kind = kind
        self.folder = ensure_folder(REPORTS_DIR) if enabled else None

    def save(self, records: list[dict], fields: list[str], *, partial: bool = False) -> Path | None:
        if self.folder is None:
            return None
        now = time.time()
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f"-{int(now * 1000) % 1000:03d}"
        path = self.folder / f"{self.kind}-{stamp}{'-partial' if partial else ''}.csv"
        saved = write_atomic(path, render_text(records, fields, [], Format.csv, partial=partial), exclusive=True)
        say(f"saved {saved}")
        return saved


def finish(rows: list[ProfileRow], interrupted: bool) -> None:
    """Say on stderr where things stand; exit 130 after an interruption (rows already written,
    marked partial), exit 1 when some rows carry an error."""
    env = next((r.environment for r in rows if r.environment is not None), None)
    if env is not None:
        say(f"environment: {env.describe()}")
    if interrupted:
        say(f"interrupted: kept the {len(rows)} row(s) measured so far (written as partial)")
        raise SystemExit(130)
    fail_on_error_rows(rows)


def fail_on_error_rows(rows) -> None:
    """Exit 1 ("some rows failed") when a row of a multi-model run carries an error: the run
    went on, but CI must be able to tell."""
    failed = [r.model for r in rows if r.error]
    if failed:
        names = ", ".join(dict.fromkeys(failed))
        raise RowsFailed(f"some rows failed: {len(failed)} of {len(rows)} ({shorten(names, 120)}); "
                         "see their error column")
