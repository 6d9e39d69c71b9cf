"""The gate's statistics: normalised samples, a process-level comparison, verdicts. numpy only.

Normalisation. Every model call is timed between two calls of the fixed calibration network
(``C M C``). Its normalised time is ``ms / sqrt(before * after)``: the model's cost in units of the
calibration workload measured at that very moment, so a machine that is 30% slower for the
whole check (another tenant, another host) is cancelled, and so is a slow minute inside it.

The unit of replication is the process. Calls of one process share that process's state
(measurements.md sections B and C: bimodal per-process medians; a within-process Mann-Whitney
test called a +9.4% model *significantly faster* in 3 of 11 processes). Treating the hundreds of
calls as independent makes any two runs look "significantly" different. So each process is
reduced to one number, the log of its median normalised time, and the two sides (baseline
processes, check processes) are compared with Welch's t-test on those numbers: the spread
*between processes* is what decides significance. The ratio is the exponential of the
difference of the mean log levels, with the matching t interval at ``1 - alpha``, so "the
interval excludes 1" and "p < alpha" say the same thing.

With a single process on both sides there is no spread between processes to measure; the
comparison then falls back to Mann-Whitney U on the calls and a bootstrap interval of the ratio of
medians, and says that this p-value is over-confident (``method`` = ``within-process``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from cnnprof.gate.baseline import ProcessSamples
from cnnprof.rows import Choice
from cnnprof.timing.stats import bootstrap_ratio_ci, mann_whitney_u


class GateVerdict(Choice):
    """What ``gate check`` says of one model."""

    PASS = "pass"
    REGRESSION = "regression"
    IMPROVEMENT = "improvement"
    COUNT_CHANGED = "count changed"
    WARNING = "warning"  # slower by more than --warn (and significantly so), not by more than --fail: exit 0


PASS, REGRESSION, IMPROVEMENT, COUNT_CHANGED, WARNING = GateVerdict


def normalised(p: ProcessSamples, clock: str = "wall") -> np.ndarray:
    """Each model call divided by the geometric mean of the calibration calls around it."""
    ms, before, after = (np.asarray(v, dtype=float) for v in p.clock(clock))
    return ms / np.sqrt(before * after)


def level(p: ProcessSamples, clock: str = "wall") -> float:
    """One process's log median normalised time: the number the test compares."""
    return float(math.log(np.median(normalised(p, clock))))


def normalised_level(processes: Sequence[ProcessSamples], clock: str = "wall") -> float:
    """The geometric mean of the processes' median normalised times (what ``compare`` compares)."""
    return float(math.exp(sum(level(p, clock) for p in processes) / len(processes)))


def raw_median(processes: Sequence[ProcessSamples]) -> float:
    return float(np.median(np.concatenate([np.asarray(p.ms, dtype=float) for p in processes])))


def calibration_median(processes: Sequence[ProcessSamples]) -> float:
    return float(np.median(np.concatenate([np.asarray(p.calibration_before_ms + p.calibration_after_ms, dtype=float)
                                           for p in processes])))


# -- Student's t without scipy -----------------------------------------------------------------------
def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function, evaluated with Lentz's method."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom."""
    if math.isinf(t):
        return 0.0
    return min(1.0, betainc(df / 2.0, 0.5, df / (df + t * t)))


def t_critical(alpha: float, df: float) -> float:
    """The t with two-sided tail probability ``alpha`` (bisection on ``t_two_sided_p``)."""
    lo, hi = 0.0, 1.0
    while t_two_sided_p(hi, df) > alpha:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_two_sided_p(mid, df) > alpha:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


# -- comparison ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    """now / baseline, normalised: point estimate, ``1 - alpha`` interval, two-sided p-value."""

    ratio: float
    ci_low: float
    ci_high: float
    p_value: float
    method: str  # "welch-t on process medians" | "pooled-t on process medians" | "within-process"
    processes_base: int
    processes_now: int


def compare(base: Sequence[ProcessSamples], now: Sequence[ProcessSamples], *, alpha: float,
            clock: str = "wall") -> Comparison:
    """Compare the normalised times of two sets of processes (see the module docstring)."""
    if not base or not now:
        raise ValueError("both sides need at least one process")
    nb, nn = len(base), len(now)
    if nb == 1 and nn == 1:
        a, b = normalised(now[0], clock), normalised(base[0], clock)
        _, p = mann_whitney_u(a, b)
        lo, hi = bootstrap_ratio_ci(a, b, confidence=1 - alpha)
        return Comparison(float(np.median(a) / np.median(b)), lo, hi, p, "within-process", nb, nn)
    lb = np.array([level(p, clock) for p in base])
    ln = np.array([level(p, clock) for p in now])
    diff = float(ln.mean() - lb.mean())
    vb = float(lb.var(ddof=1)) if nb > 1 else math.nan
    vn = float(ln.var(ddof=1)) if nn > 1 else math.nan
    if nb > 1 and nn > 1:
        se2 = vb / nb + vn / nn
        denom = (vb / nb) ** 2 / (nb - 1) + (vn / nn) ** 2 / (nn - 1)
        df = se2 * se2 / denom if denom > 0 else float(nb + nn - 2)
        method = "welch-t on process medians"
    else:  # one side has a single process: borrow the other side's spread (equal variances)
        pooled = vb if nb > 1 else vn
        se2 = pooled * (1 / nb + 1 / nn)
        df = float(nb + nn - 2)
        method = "pooled-t on process medians"
    se = math.sqrt(max(se2, 0.0))
    if se == 0.0:
        p = 1.0 if diff == 0.0 else 0.0
        half = 0.0
    else:
        p = t_two_sided_p(diff / se, df)
        half = t_critical(alpha, df) * se
    return Comparison(math.exp(diff), math.exp(diff - half), math.exp(diff + half), p, method, nb, nn)


def decide(c: Comparison, *, factor: float, alpha: float, warn: float | None = None) -> str:
    """regression: slower by more than ``factor`` and significant; improvement: the mirror image;
    warning: slower by more than ``warn`` (at most ``factor``) and significant."""
    if c.ratio > factor and c.p_value < alpha:
        return REGRESSION
    if warn is not None and c.ratio > warn and c.p_value < alpha:
        return WARNING
    if c.ratio < 1.0 / factor and c.p_value < alpha:
        return IMPROVEMENT
    return PASS


def ambiguous(c: Comparison, *, factor: float) -> bool:
    """The interval holds the factor: more processes could turn pass into regression or back."""
    return c.ci_low <= factor <= c.ci_high
