"""The fit behind ``lut calibrate``: a per-machine correction of the table, learned from whole
networks and tested on others (the correction itself is stored with the table: ``table.Calibration``).

The table's sum misses what no single block shows: the per-network cost of the framework
around the blocks, and block types that cost more (or less) in a network than their entries say
(an isolated table's ``k5_e6`` at 56x56 misses the page faults it takes in a network; an ONNX
Runtime table misses nothing it can see, but the profiler's shares are not the plain run's).
``lut calibrate`` measures whole networks of the space and fits

    LAT(a) = overhead + fixed(a) + sum_t scale_t * sum_{l: a_l of type t} LUT(l, a_l)

(``fixed`` = stem + head + glue from the table; one scale per candidate type, nine for FBNet)
by ridge regression on the relative error, shrunk towards overhead 0 and scale 1 with the
strength chosen by leave-one-out error; the correction kept is this one, or overhead plus one
scale shared by every type, or none at all, whichever has the least leave-one-out error on the
training networks (``choose``: nine scales need more, or steadier, networks than two). It then
measures a separate, disjoint held-out sample (and FBNet-A/B/C, which are never trained on) and
reports the error of the raw sum and of the calibrated one there: a correction that only fits
its own training set shows it.

Adaptive sampling. The training set starts with a few random networks; then, while the time
budget lasts, it adds the networks of a random pool whose prediction is least certain: the
predictive variance of the fitted model (its parameters' covariance; where the training set has
not pinned a block type down) plus the entries' own variance over their contexts (where the
table is unsure of a block). The selection is greedy with the information each chosen network
adds, so one batch does not pick the same kind of network four times (nn-Meter samples its
kernels' configurations where its predictor errs most, Zhang et al., MobiSys 2021).

Prediction stays one gather and one sum: the scales multiply the table's columns once
(``SpaceMatrix.from_table(..., calibration=...)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from cnnprof.lut.table import Calibration, Table

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from cnnprof.lut.predict import SpaceMatrix

LAMBDAS = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
MIN_SIGMA = 0.01  # relative noise floor of a whole-network measurement, for the predictive variance


# -- features and the fit -------------------------------------------------------------------------
def features(matrix: "SpaceMatrix", choices: "np.ndarray") -> "np.ndarray":
    """(N, K): for each architecture, the sum of its blocks' table latencies by candidate type."""
    import numpy as np

    choices = np.asarray(choices, dtype=np.intp)
    n, k = len(choices), len(matrix.candidates)
    out = np.zeros((n, k))
    rows = np.arange(n)
    for layer in range(matrix.layers):
        c = choices[:, layer]
        out[rows, c] += matrix.latency[layer, c]
    return out


@dataclass(frozen=True)
class Fit:
    theta: "np.ndarray"  # overhead, scales...
    cov: "np.ndarray"  # covariance of theta (relative-error units)
    lam: float
    loo_rmse: float
    rmse: float


def fit(x: "np.ndarray", fixed: "np.ndarray", measured: "np.ndarray", *, lambdas: Sequence[float] = LAMBDAS) -> Fit:
    """Ridge fit of ``measured ~ overhead + fixed + x @ scales`` on relative residuals, shrunk to
    overhead 0 and scales 1; the strength is the one of ``lambdas`` with the least leave-one-out
    error (closed form for ridge)."""
    import numpy as np

    x, fixed, m = (np.asarray(a, dtype=float) for a in (x, fixed, measured))
    n, k = x.shape
    if n < 1:
        raise ValueError("fit: no networks")
    a = np.hstack([np.ones((n, 1)), x]) / m[:, None]  # relative design
    b = (m - fixed) / m
    prior = np.concatenate([[0.0], np.ones(k)])
    scale0 = 1.0 / float(np.median(m))  # overhead in units of a typical network: shrink it like a scale
    weights = np.concatenate([[scale0 ** 2], np.ones(k)])
    best = None
    for lam in lambdas:
        reg = lam * np.diag(weights)
        gram = a.T @ a + reg
        inv = np.linalg.inv(gram)
        theta = inv @ (a.T @ b + reg @ prior)
        resid = a @ theta - b
        hat = np.einsum("ij,jk,ik->i", a, inv, a)
        loo = resid / np.clip(1 - hat, 1e-6, None)
        score = float(np.sqrt(np.mean(loo ** 2)))
        if best is None or score < best[0] - 1e-12:
            dof = max(1.0, n - float(hat.sum()))
            sigma2 = max(float(resid @ resid) / dof, MIN_SIGMA ** 2)
            best = (score, lam, theta, sigma2 * inv, float(np.sqrt(np.mean(resid ** 2))))
    score, lam, theta, cov, rmse = best
    return Fit(theta, cov, lam, score, rmse)


STRUCTURES = ("per-type", "shared", "none")  # what the fit may choose between, by leave-one-out error


@dataclass(frozen=True)
class ChosenCorrection:
    structure: str  # per-type (overhead + a scale per block type), shared (overhead + one scale), none
    theta: "np.ndarray"  # overhead, scales... (full length whatever the structure)
    lam: float
    loo_rmse: float
    scores: dict[str, float]  # every structure's best leave-one-out relative RMSE


def choose(x: "np.ndarray", fixed: "np.ndarray", measured: "np.ndarray", *,
           structures: Sequence[str] = STRUCTURES, lambdas: Sequence[float] = LAMBDAS) -> ChosenCorrection:
    """The correction with the least leave-one-out error on the training networks among
    ``structures``: ``per-type`` (overhead + one scale per block type, as ``fit``), ``shared``
    (overhead + one scale for every type: two numbers, for a training set too small or too noisy
    to pin nine down) and ``none`` (the table as it is). Each is a ridge fit shrunk towards the
    table (overhead 0, scales 1) with its strength chosen by the same leave-one-out error. Only
    the training networks decide: the held-out ones are never looked at."""
    import numpy as np

    x, fixed, m = (np.asarray(a, dtype=float) for a in (x, fixed, measured))
    n, k = x.shape
    a = np.hstack([np.ones((n, 1)), x]) / m[:, None]
    prior = np.concatenate([[0.0], np.ones(k)])
    r = (m - fixed) / m - a @ prior  # what the table leaves unexplained, relative
    scale0 = 1.0 / float(np.median(m))
    maps = {"per-type": np.eye(1 + k), "shared": np.vstack([[1.0, 0.0]] + [[0.0, 1.0]] * k)}
    weights = {"per-type": np.concatenate([[scale0 ** 2], np.ones(k)]), "shared": np.array([scale0 ** 2, float(k)])}
    scores: dict[str, float] = {}
    best: ChosenCorrection | None = None
    for structure in structures:
        if structure == "none":
            options = [(float(np.sqrt(np.mean(r ** 2))), 0.0, prior.copy())]
        elif structure in maps:
            t = maps[structure]
            design = a @ t
            options = []
            for lam in lambdas:
                inv = np.linalg.inv(design.T @ design + lam * np.diag(weights[structure]))
                phi = inv @ (design.T @ r)
                hat = np.einsum("ij,jk,ik->i", design, inv, design)
                loo = (design @ phi - r) / np.clip(1 - hat, 1e-6, None)
                options.append((float(np.sqrt(np.mean(loo ** 2))), lam, prior + t @ phi))
        else:
            raise ValueError(f"unknown structure {structure!r}")
        score, lam, theta = min(options, key=lambda o: o[0])
        scores[structure] = score
        if best is None or score < best.loo_rmse - 1e-12:
            best = ChosenCorrection(structure, theta, lam, score, scores)
    return best


def relative_uncertainty(x: "np.ndarray", fixed: float, predicted: "np.ndarray", cov: "np.ndarray",
                         entry_var: "np.ndarray") -> "np.ndarray":
    """Predictive relative standard deviation: the fit's (``cov``, relative units, with the
    predicted latency standing in for the unknown measurement) plus the entries' own."""
    import numpy as np

    a = np.hstack([np.ones((len(x), 1)), x]) / predicted[:, None]
    fit_var = np.einsum("ij,jk,ik->i", a, cov, a)
    return np.sqrt(fit_var + entry_var / predicted ** 2)


def entry_variance(table: Table, space: str, choices: "np.ndarray") -> "np.ndarray":
    """Variance (ms^2) of each architecture's sum from its entries' spread over contexts: the
    variance of a mean of ``contexts`` values is spread^2 / contexts. Isolated entries: 0."""
    import numpy as np

    index = table.spaces[space]
    var = np.array([[(table.entries[k].spread_ms ** 2 / table.entries[k].contexts) if k in table.entries
                     and table.entries[k].contexts else 0.0 for k in row] for row in index.layers])
    choices = np.asarray(choices, dtype=np.intp)
    return var[np.arange(var.shape[0])[None, :], choices].sum(axis=1)


def select(candidates_x: "np.ndarray", predicted: "np.ndarray", entry_var: "np.ndarray", cov: "np.ndarray",
           count: int, *, exclude: set[int] = frozenset()) -> list[int]:
    """Greedy choice of ``count`` pool rows of highest predictive uncertainty; after each choice
    the covariance is updated as if that network had been measured (one rank-1 step), so the next
    choice goes where the model is still unsure."""
    import numpy as np

    a = np.hstack([np.ones((len(candidates_x), 1)), candidates_x]) / predicted[:, None]
    info = np.linalg.inv(cov)
    sigma2 = MIN_SIGMA ** 2
    chosen: list[int] = []
    for _ in range(count):
        c = np.linalg.inv(info)
        var = np.einsum("ij,jk,ik->i", a, c, a) + entry_var / predicted ** 2
        for i in list(exclude) + chosen:
            var[i] = -np.inf
        best = int(np.argmax(var))
        if not np.isfinite(var[best]):
            break
        chosen.append(best)
        info = info + np.outer(a[best], a[best]) / sigma2
    return chosen


def calibrated_predictions(calibration: Calibration, x: "np.ndarray", fixed_ms: float,
                           kinds: Sequence[str]) -> "np.ndarray":
    """``calibration`` applied to feature rows ``x`` (per-type sums of the table) plus the fixed parts."""
    import numpy as np

    scales = np.array([calibration.scale_of(t) for t in kinds])
    if calibration.single:
        return calibration.default_scale * (x.sum(axis=1) + fixed_ms)
    return calibration.overhead_ms + fixed_ms + x @ scales


__all__ = ["LAMBDAS", "STRUCTURES", "ChosenCorrection", "Fit", "calibrated_predictions", "choose", "entry_variance", "features",
           "fit", "relative_uncertainty", "select"]
