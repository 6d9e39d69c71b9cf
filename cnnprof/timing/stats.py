"""Statistics of latency samples: order statistics, a distribution-free interval for the median,
distribution-free upper bounds of the tail percentiles (p90, p99), Mann-Whitney U, and a bootstrap
interval of a ratio of medians. numpy only.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from cnnprof.rows import TAIL_MINIMUMS, tail_note  # noqa: F401  (a row's rule, used here too)


@dataclass(frozen=True)
class Summary:
    median: float
    mean: float
    std: float
    p10: float
    p90: float
    p99: float
    iqr: float
    min: float
    ci_low: float
    ci_high: float
    n: int
    p90_upper: float | None = None  # 95% upper confidence bound of the 90th percentile (tail_upper)
    p99_upper: float | None = None  # the same for the 99th; None below TAIL_MINIMUMS' sample counts


def median_ci(samples: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free confidence interval of the median from order statistics.

    The number of samples below the true median is Binomial(n, 1/2); the interval is the
    pair of order statistics j < k with P(j <= B < k) >= ``confidence`` (normal approximation
    with continuity correction for the ranks; exact enough from n = 6 on).
    """
    x = np.sort(np.asarray(samples, dtype=float))
    n = len(x)
    if n == 0:
        return (math.nan, math.nan)
    if n < 6:
        return (float(x[0]), float(x[-1]))
    z = _z(confidence)
    half = z * math.sqrt(n) / 2
    lo = max(0, int(math.floor(n / 2 - half)) - 1)
    hi = min(n - 1, int(math.ceil(n / 2 + half)))
    return (float(x[lo]), float(x[hi]))


def _z(confidence: float) -> float:
    # two-sided normal quantile via the inverse error function (no scipy)
    return math.sqrt(2) * _erfinv(confidence)


def _erfinv(y: float) -> float:
    # Newton iterations on math.erf from a good start: plenty for confidence levels
    x = 0.0 if y == 0 else math.copysign(math.sqrt(-math.log((1 - abs(y)) / 2)) * 0.9, y)
    for _ in range(60):
        err = math.erf(x) - y
        x -= err / (2 / math.sqrt(math.pi) * math.exp(-x * x))
    return x


TAIL_CONFIDENCE = 0.95


@functools.lru_cache(maxsize=4096)
def upper_rank(n: int, q: float, confidence: float = TAIL_CONFIDENCE) -> int | None:
    """The rank k (1-based) of the order statistic that bounds the ``q``-quantile from above with
    ``confidence``, from ``n`` samples; None where no order statistic does (n too small).

    Distribution-free (any continuous distribution, independent samples): the number of samples at
    or below the true quantile x_q is B ~ Binomial(n, q), and the k-th smallest sample X_(k) lies
    above x_q exactly when fewer than k samples do, so

        P(X_(k) >= x_q) = P(B < k) = sum_{j=0}^{k-1} C(n, j) q^j (1 - q)^(n - j).

    k is the smallest rank with P(B < k) >= ``confidence``. It exists when P(B < n) = 1 - q^n
    reaches it: for a 95% bound of p90, n >= 29; of p99, n >= 299. Computed exactly (in logs)
    from the upper tail, P(B >= k) <= 1 - ``confidence``.
    """
    if n < 1 or not 0 < q < 1 or not 0 < confidence < 1:
        return None
    log_q, log_p = math.log(q), math.log1p(-q)
    lg_n = math.lgamma(n + 1)
    allowed = 1 - confidence
    tail = 0.0  # P(B >= k), adding pmf(k) as k goes down from n
    rank = None
    for k in range(n, 0, -1):
        tail += math.exp(lg_n - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_q + (n - k) * log_p)
        if tail > allowed * (1 + 1e-12):
            break
        rank = k
    return rank


def tail_upper(samples: Sequence[float], percentile: int) -> float | None:
    """The 95% upper confidence bound of the ``percentile``-th percentile of ``samples``: its
    order statistic of rank ``upper_rank``; None below ``TAIL_MINIMUMS[percentile]`` samples (or
    where no rank bounds it)."""
    n = len(samples)
    if n < TAIL_MINIMUMS.get(percentile, 1):
        return None
    k = upper_rank(n, percentile / 100)
    if k is None:
        return None
    return float(np.partition(np.asarray(samples, dtype=float), k - 1)[k - 1])


def summarize(samples: Sequence[float]) -> Summary:
    x = np.asarray(samples, dtype=float)
    if x.size == 0:
        raise ValueError("no samples")
    q10, q25, q50, q75, q90, q99 = np.percentile(x, [10, 25, 50, 75, 90, 99])
    lo, hi = median_ci(x)
    return Summary(
        median=float(q50),
        mean=float(x.mean()),
        std=float(x.std(ddof=1)) if x.size > 1 else 0.0,
        p10=float(q10),
        p90=float(q90),
        p99=float(q99),
        iqr=float(q75 - q25),
        min=float(x.min()),
        ci_low=lo,
        ci_high=hi,
        n=int(x.size),
        p90_upper=tail_upper(x, 90),
        p99_upper=tail_upper(x, 99),
    )


def mann_whitney_u(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Two-sided Mann-Whitney U test of ``a`` vs ``b``: (U of a, p-value).

    Normal approximation with tie correction and continuity correction, as used by asv and
    Google Benchmark's compare.py; accurate for the sample sizes timing produces (n >= 8).
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    n1, n2 = a.size, b.size
    if n1 == 0 or n2 == 0:
        raise ValueError("both samples must be non-empty")
    both = np.concatenate([a, b])
    ranks = _rankdata(both)
    r1 = ranks[:n1].sum()
    u1 = r1 - n1 * (n1 + 1) / 2
    mu = n1 * n2 / 2
    _, counts = np.unique(both, return_counts=True)
    n = n1 + n2
    tie = (counts**3 - counts).sum() / (n * (n - 1)) if n > 1 else 0.0
    sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie))
    if sigma == 0:
        return float(u1), 1.0
    z = (abs(u1 - mu) - 0.5) / sigma
    p = math.erfc(max(z, 0.0) / math.sqrt(2))
    return float(u1), min(1.0, p)


def _rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties get their average rank."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=float)
    sorted_x = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def bootstrap_ratio_ci(
    num: Sequence[float], den: Sequence[float], *, confidence: float = 0.95, rounds: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of median(num) / median(den) (deterministic seed)."""
    rng = np.random.default_rng(seed)
    a = np.asarray(num, dtype=float)
    b = np.asarray(den, dtype=float)
    ia = rng.integers(0, a.size, size=(rounds, a.size))
    ib = rng.integers(0, b.size, size=(rounds, b.size))
    ratios = np.median(a[ia], axis=1) / np.median(b[ib], axis=1)
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(ratios, [tail, 100 - tail])
    return float(lo), float(hi)
