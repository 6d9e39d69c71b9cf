"""Change points over a model's history: where a configuration's latency stepped, between which
revisions, by how much, and how sure that is.

Each configuration (model, machine, backend, precision, batch, threads; a gate check's own series
apart) is a series of one median per revision, in revision order. Its change points are found by
PELT (Killick et al. 2012) with the least-squares cost on log latency, as ruptures runs it in
compiled code (``KernelCPD`` with the linear kernel); every segment holds at least ``min_size``
revisions, so one noisy point cannot be a change. The penalty is ``PENALTY x sigma^2 x log n``,
sigma the series' own noise, read robustly from the median absolute step between neighbours
(a single step barely moves it), floored at ``SIGMA_FLOOR``.

Each change point names the first revision after it and the step: the ratio of the medians of
the segments either side (at most ``WINDOW`` revisions a side, those nearest the change), with a
95% interval from a bootstrap that resamples the points of both segments and draws each point
within its own stored interval (``latency_ms_ci_low/high``) or the series' noise, whichever is
wider, so it holds both the scatter across revisions and each measurement's own (two points a
side alone would give a far too narrow interval). A step whose interval holds 1.0 is
``inconclusive``, not a change; otherwise ``regression`` (slower) or ``improvement``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from cnnprof.rows import Row

MIN_SIZE = 2  # revisions per segment, at least
PENALTY = 4.0
SIGMA_FLOOR = 0.002  # 0.2% of the latency: below it, two medians differ by their rounding, not a change
CONFIDENCE = 0.95
RESAMPLES = 2000
WINDOW = 50  # revisions a side, nearest the change point, that its step is measured on
SERIES_KEYS = ("model", "machine", "backend", "precision", "batch", "threads", "series")
REGRESSION, IMPROVEMENT, INCONCLUSIVE = "regression", "improvement", "inconclusive"


@dataclass(frozen=True)
class ChangePoint(Row):
    """A step in one configuration's series: ``revision`` is the first revision after it."""

    model: str
    machine: str
    backend: str
    precision: str
    batch: int | None
    threads: int | None
    revision: str
    previous: str  # the last revision before the step
    verdict: str  # regression, improvement, inconclusive (the interval holds 1.0)
    ratio: float  # median of the segment after / median of the segment before
    ci_low: float
    ci_high: float
    before_ms: float
    after_ms: float
    revisions_before: int
    revisions_after: int
    series: str = "timed"  # timed rows (bench, sweep, profile) or a gate check's own
    note: str = ""


def series_of(lines: Sequence[dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    """The history lines' points, grouped by configuration (``SERIES_KEYS``), each group in the
    lines' order: ``revision``, ``ms`` and its interval ``lo``, ``hi``. A timed line's point is its
    median; a gate check's line (one no timed line matched) is a point of the gate's own series,
    its raw median now (``now_ms``: a gate process times differently from bench)."""
    out: dict[tuple, list[dict[str, Any]]] = {}
    for ln in lines:
        ms, lo, hi, series = ln.get("latency_ms_median"), ln.get("latency_ms_ci_low"), ln.get("latency_ms_ci_high"), \
            "timed"
        if not ms and ln.get("source") == "gate-check":
            ms, lo, hi, series = ln.get("now_ms"), None, None, "gate"
        if not isinstance(ms, (int, float)) or not ms > 0 or not math.isfinite(ms):
            continue
        key = tuple(series if k == "series" else ln.get(k) for k in SERIES_KEYS)
        out.setdefault(key, []).append({"revision": ln.get("revision"), "ms": float(ms), "lo": lo, "hi": hi})
    return out


def noise(x) -> float:
    """The series' noise (sd of log latency), robustly: the median absolute difference between
    neighbours over its expectation for normal noise, sqrt(2) x 0.6745 (a step moves one difference)."""
    import numpy as np

    if len(x) < 2:
        return SIGMA_FLOOR
    return max(float(np.median(np.abs(np.diff(x)))) / (math.sqrt(2.0) * 0.6745), SIGMA_FLOOR)


def breakpoints(x, *, min_size: int = MIN_SIZE, penalty: float = PENALTY) -> list[int]:
    """Indices where a new segment of ``x`` (log latencies) starts."""
    import numpy as np
    import ruptures

    n = len(x)
    if n < 2 * min_size:
        return []
    pen = penalty * noise(x) ** 2 * math.log(n)
    algo = ruptures.KernelCPD(kernel="linear", min_size=min_size, jump=1).fit(np.asarray(x, float).reshape(-1, 1))
    return [int(b) for b in algo.predict(pen=pen)[:-1]]


def _log_sd(ln: dict[str, Any]) -> float:
    """A point's own uncertainty, in log latency: its stored 95% interval's half-width over 1.96."""
    lo, hi = ln.get("lo"), ln.get("hi")
    if not isinstance(lo, (int, float)) or not isinstance(hi, (int, float)) or not lo or not hi or lo <= 0 or hi < lo:
        return 0.0
    return (math.log(hi) - math.log(lo)) / (2 * 1.96)


def step_interval(before: Sequence[dict], after: Sequence[dict], *, sigma: float = 0.0,
                  confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """The interval of median(after) / median(before) (see the module docstring): each point is
    drawn within its own interval or the series' noise ``sigma`` (log), whichever is wider."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def medians(points: Sequence[dict]):
        x = np.log([p["ms"] for p in points])
        sd = np.array([max(_log_sd(p), sigma) for p in points])
        idx = rng.integers(0, len(points), size=(resamples, len(points)))
        return np.median(x[idx] + rng.standard_normal(idx.shape) * sd[idx], axis=1)

    r = np.exp(medians(after) - medians(before))
    tail = (1 - confidence) / 2 * 100
    return float(np.percentile(r, tail)), float(np.percentile(r, 100 - tail))


def change_points(lines: Sequence[dict[str, Any]], *, min_size: int = MIN_SIZE, penalty: float = PENALTY,
                  seed: int = 0) -> list[ChangePoint]:
    """The change points of every configuration's series (``lines``: history lines in revision
    order, as ``store.query.history_lines`` and ``order_lines`` give them)."""
    import numpy as np

    out = []
    for key, points in series_of(lines).items():
        x = np.log([p["ms"] for p in points])
        cuts = breakpoints(x, min_size=min_size, penalty=penalty)
        bounds = [0, *cuts, len(points)]
        for i, cut in enumerate(cuts):
            before = points[max(bounds[i], cut - WINDOW):cut]
            after = points[cut:min(bounds[i + 2], cut + WINDOW)]
            b_ms = float(np.median([p["ms"] for p in before]))
            a_ms = float(np.median([p["ms"] for p in after]))
            lo, hi = step_interval(before, after, sigma=noise(x), seed=seed)
            verdict = REGRESSION if lo > 1.0 else IMPROVEMENT if hi < 1.0 else INCONCLUSIVE
            fields = dict(zip(SERIES_KEYS, key))
            out.append(ChangePoint(
                model=fields["model"], machine=fields["machine"], backend=fields["backend"],
                precision=fields["precision"], batch=fields["batch"], threads=fields["threads"],
                revision=after[0]["revision"], previous=before[-1]["revision"], verdict=verdict,
                ratio=a_ms / b_ms, ci_low=lo, ci_high=hi, before_ms=b_ms, after_ms=a_ms,
                revisions_before=cut - bounds[i], revisions_after=bounds[i + 2] - cut, series=fields["series"],
                note="" if verdict != INCONCLUSIVE else "the interval holds 1.0: not a change"))
    return out


def too_short(lines: Sequence[dict[str, Any]], min_size: int = MIN_SIZE) -> list[str]:
    """One note per configuration whose series is too short for a change point."""
    out = []
    for key, points in series_of(lines).items():
        if len(points) < 2 * min_size:
            f = dict(zip(SERIES_KEYS, key))
            out.append(f"{f['backend']} {f['precision']} b{f['batch']} t{f['threads']} ({f['machine']}): "
                       f"{len(points)} revision(s), a change point needs {2 * min_size} ({min_size} a side)")
    return out


# -- revision order --------------------------------------------------------------------------------
def order_lines(lines: list[dict[str, Any]], repo: str | Path | None) -> tuple[list[dict[str, Any]], str]:
    """``lines`` with their revisions in ``repo``'s commit order (``gitrev.revision_order``); the
    revisions it does not hold follow, in the order first seen. Returns the lines and how they
    are ordered, in words."""
    if repo is None:
        return lines, "in the order first seen"
    from cnnprof.gitrev import revision_order

    revisions = list(dict.fromkeys(ln["revision"] for ln in lines if ln.get("revision")))
    known = revision_order(repo, revisions)
    if not known:
        return lines, "in the order first seen"
    rank = {r: i for i, r in enumerate(known)}
    rest = {r: len(known) + i for i, r in enumerate(r for r in revisions if r not in rank)}
    rank.update(rest)
    ordered = sorted(lines, key=lambda ln: rank.get(ln.get("revision"), len(rank)))  # stable: first seen within
    how = f"in commit order of {repo}" + (f" ({len(rest)} revision(s) it does not hold last, as first seen)"
                                          if rest else "")
    return ordered, how
