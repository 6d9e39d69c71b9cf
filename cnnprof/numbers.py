"""Numbers a user gives (options, sweep files, filters): parsed, normalised and bounded in one place.

A count is a whole number in a stated range, a quantity a finite number in a stated range, a list
of counts is deduplicated by value (``1,01,+1`` is one batch size), and a value outside its range
is one line naming the option and the range (exit 2), never an overflow further down (SQLite
stores integers up to 2**63 - 1, numpy seeds are non-negative, ``setrlimit`` takes a C long).
Knows nothing of the rest of the project but its errors.
"""

from __future__ import annotations

import math
from typing import Any

from cnnprof.errors import UsageError, shorten

SQLITE_INT_MAX = 2**63 - 1  # the largest integer a database column (and a filter on one) can hold
MAX_BATCH = 1 << 20  # a batch of 1,048,576 small images is already hundreds of GB of input
MAX_SAMPLE = 10_000_000  # lut predict --sample: ~0.6 GB of architectures, predictions and ranking
MAX_SEED = 2**32 - 1
MAX_MEMORY_GB = 1_000_000.0  # a petabyte of address space per worker


def _range(lo: float | None, hi: float | None) -> str:
    fmt = (lambda v: f"{v:,}" if isinstance(v, int) else f"{v:g}")
    if lo is not None and hi is not None:
        return f"from {fmt(lo)} to {fmt(hi)}"
    if lo is None and hi is None:
        return ""
    return f"at least {fmt(lo)}" if lo is not None else f"at most {fmt(hi)}"


def whole(value: Any, what: str, *, lo: int | None = 0, hi: int | None = SQLITE_INT_MAX) -> int:
    """``value`` (an int, or text such as ``"+01"``) as an int in [lo, hi]; anything else is one
    line naming ``what`` and the range."""
    n: int | None = None
    if isinstance(value, bool):
        n = None
    elif isinstance(value, int):
        n = value
    elif isinstance(value, str):
        text = value.strip()
        body = text[1:] if text[:1] in "+-" else text
        # ASCII digits only (int() also reads '٣'); at most 30 of them (an overflow, not a parse, past that)
        if body.isascii() and body.isdigit() and len(body) <= 30:
            n = int(text)
    if n is None:
        raise UsageError(f"{what} must be a whole number {_range(lo, hi)}".rstrip()
                         + f", got {shorten(str(value), 40)!r}")
    if lo is not None and n < lo:
        raise UsageError(f"{what} must be at least {lo:,}, got {shorten(str(n), 40)}")
    if hi is not None and n > hi:
        raise UsageError(f"{what} must be at most {hi:,}, got {shorten(str(n), 40)}")
    return n


def real(value: Any, what: str, *, lo: float | None = None, hi: float | None = None,
         above: bool = False) -> float:
    """``value`` as a finite float in [lo, hi] (``above``: strictly above ``lo``); NaN, infinities
    and values outside the range are one line naming ``what``."""
    try:
        x = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError, OverflowError):
        x = math.nan
    low_ok = lo is None or (x > lo if above else x >= lo)
    if not math.isfinite(x) or not low_ok or (hi is not None and x > hi):
        if lo is None and hi is None:
            where = ""
        else:
            where = " " + _range(lo, hi)
            if above and lo is not None:
                where = f" above {lo:g}" + (f" and at most {hi:g}" if hi is not None else "")
        raise UsageError(f"{what} must be a finite number{where}, got {shorten(str(value), 40)}")
    return x


def whole_list(text: str, what: str, *, lo: int | None = 0, hi: int | None = SQLITE_INT_MAX) -> list[int]:
    """``"1,01,+1,8"`` -> [1, 8]: each item a whole number in [lo, hi], repeats (by value) dropped,
    order kept."""
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise UsageError(f"{what}: empty list")
    for t in items:
        try:
            whole(t, what, lo=None, hi=None)
        except UsageError:
            raise UsageError(f"{what} list must be integers separated by commas (e.g. 1,8), "
                             f"got {shorten(str(text), 40)!r}") from None
    return list(dict.fromkeys(whole(t, what, lo=lo, hi=hi) for t in items))
