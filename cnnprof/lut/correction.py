"""A per-machine correction of the table, learned from whole networks and tested on others.

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

import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from cnnprof.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from cnnprof.lut.measure import Timer
    from cnnprof.lut.predict import SpaceMatrix
    from cnnprof.lut.table import Table
    from cnnprof.models.fbnet import SearchSpace
    from cnnprof.timing.protocol import Protocol

METHOD = ("per-network overhead + per-block-type scale, or one shared scale, or none, whichever has the least "
          "leave-one-out error on the training networks (ridge, leave-one-out strength), relative error")
LAMBDAS = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
MIN_SIGMA = 0.01  # relative noise floor of a whole-network measurement, for the predictive variance
REFERENCE_MODELS = ("fbnet_a", "fbnet_b", "fbnet_c")
POOL_SEED, HOLDOUT_SEED = 104_729, 7_919


@dataclass(frozen=True)
class Calibration:
    """The fitted correction: ``overhead_ms`` per network, ``scales`` per block type (a type the
    fit did not see gets ``default_scale``), and the record of how it was fitted."""

    overhead_ms: float = 0.0
    scales: dict[str, float] = field(default_factory=dict)
    default_scale: float = 1.0
    method: str = METHOD
    record: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Calibration":
        """A stored calibration; also the single scale of ``lut build --calibrate``."""
        if not isinstance(d, dict):
            raise TypeError("the calibration is not a JSON object")
        if "scales" in d:
            scales = {str(k): _finite(v, f"calibration scale {k}") for k, v in dict(d["scales"]).items()}
            record = {k: v for k, v in d.items() if k not in ("overhead_ms", "scales", "default_scale", "method")}
            return cls(_finite(d.get("overhead_ms", 0.0), "calibration overhead_ms"), scales,
                       _finite(d.get("default_scale", 1.0), "calibration default_scale"), str(d.get("method", METHOD)),
                       record)
        scale = _finite(d["scale"], "calibration scale")
        if scale <= 0:
            raise ValueError("calibration scale must be positive")
        return cls(0.0, {}, scale, str(d.get("method", "single scale")), {k: v for k, v in d.items() if k != "method"})

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "overhead_ms": self.overhead_ms, "scales": dict(self.scales),
                "default_scale": self.default_scale, **self.record}

    def scale_of(self, kind: str | None) -> float:
        return self.scales.get(kind, self.default_scale) if kind is not None else self.default_scale

    @property
    def single(self) -> bool:
        """An older single-scale calibration (no overhead, one scale for everything)."""
        return not self.scales

    def apply(self, fixed_ms: float, by_type: dict[str | None, float]) -> float:
        """Calibrated latency from the fixed parts' sum and the blocks' sums by type."""
        if self.single:
            return self.default_scale * (fixed_ms + sum(by_type.values()))
        return self.overhead_ms + fixed_ms + sum(self.scale_of(t) * v for t, v in by_type.items())

    def trained_on(self) -> set[str]:
        return set(self.record.get("trained_on", []))


def _finite(value: Any, what: str) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{what} must be finite")
    return v


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
class Choice:
    structure: str  # per-type (overhead + a scale per block type), shared (overhead + one scale), none
    theta: "np.ndarray"  # overhead, scales... (full length whatever the structure)
    lam: float
    loo_rmse: float
    scores: dict[str, float]  # every structure's best leave-one-out relative RMSE


def choose(x: "np.ndarray", fixed: "np.ndarray", measured: "np.ndarray", *,
           structures: Sequence[str] = STRUCTURES, lambdas: Sequence[float] = LAMBDAS) -> Choice:
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
    best: Choice | None = None
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
            best = Choice(structure, theta, lam, score, scores)
    return best


def relative_uncertainty(x: "np.ndarray", fixed: float, predicted: "np.ndarray", cov: "np.ndarray",
                         entry_var: "np.ndarray") -> "np.ndarray":
    """Predictive relative standard deviation: the fit's (``cov``, relative units, with the
    predicted latency standing in for the unknown measurement) plus the entries' own."""
    import numpy as np

    a = np.hstack([np.ones((len(x), 1)), x]) / predicted[:, None]
    fit_var = np.einsum("ij,jk,ik->i", a, cov, a)
    return np.sqrt(fit_var + entry_var / predicted ** 2)


def entry_variance(table: "Table", space: str, choices: "np.ndarray") -> "np.ndarray":
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


# -- measuring whole networks of the space --------------------------------------------------------
def space_jobs_for(space: "SearchSpace", matrix: "SpaceMatrix", rows: "np.ndarray", prefix: str,
                   *, head_chs: int | None = None) -> list[tuple[str, Callable[[], Any], tuple[int, ...]]]:
    """(label, build, input) for each architecture row (networks built seeded, batch norms
    calibrated, as every command builds them)."""
    from cnnprof.lut.context import space_network
    from cnnprof.lut.predict import arch_code

    return [(f"{prefix} {arch_code(r)}", (lambda r=r: space_network(space, matrix.names(r), head_chs)),
             tuple(space.input)) for r in rows]


def space_object(space_name: str):
    from cnnprof.lut.builder import FBNET_SPACE_NAME

    if space_name != FBNET_SPACE_NAME:
        raise UsageError(f"no search space named {space_name!r} (known: {FBNET_SPACE_NAME})")
    from cnnprof.models.fbnet import FBNET_SPACE

    return FBNET_SPACE


def disjoint_sample(n: int, layers: int, candidates: int, *, seed: int, exclude: set[str]) -> "np.ndarray":
    """``n`` random architectures none of which is in ``exclude`` (codes) or repeated."""
    import numpy as np

    from cnnprof.lut.predict import arch_code, sample_choices

    rng_seed = seed
    out: list[np.ndarray] = []
    seen = set(exclude)
    while len(out) < n:
        for row in sample_choices(max(n - len(out), 1), layers, candidates, seed=rng_seed):
            code = arch_code(row)
            if code not in seen:
                seen.add(code)
                out.append(row)
        rng_seed += 1_000_003
    return np.array(out[:n], dtype=np.uint8).reshape(n, layers)


# -- the whole procedure ----------------------------------------------------------------------------
@dataclass
class CalibrationReport:
    calibration: Calibration
    trained_on: list[str]
    holdout: list[str]
    train_stats: dict[str, float]
    holdout_raw: dict[str, float]
    holdout_calibrated: dict[str, float]
    models: list[dict[str, Any]]  # reference models: predicted raw / calibrated, measured
    train_s: float
    holdout_s: float
    rounds_of_selection: int
    interrupted: bool = False


def calibrate(
    table: "Table",
    *,
    path: str | Path | None = None,
    space: str | None = None,
    search_space: "SearchSpace | None" = None,
    budget_s: float = 180.0,
    max_train: int = 48,
    initial: int = 8,
    batch: int = 4,
    holdout: int = 30,
    models: Sequence[str] = REFERENCE_MODELS,
    seed: int = 0,
    pool: int = 4096,
    rounds: int = 2,
    protocol: "Protocol | None" = None,
    timer: "Timer | None" = None,
    on_progress: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> CalibrationReport:
    """Measure a training sample (adaptive, within ``budget_s``), fit, then measure ``holdout``
    other networks and ``models`` and report both errors; store the calibration in ``table``
    (and save it at ``path``). ``space`` names the table's space (default the FBNet one) and
    ``search_space`` is the ``SearchSpace`` its networks are built from (found from the name when
    not given). ``timer`` (and ``clock``) replace real timing in tests."""
    import tempfile

    import numpy as np

    from cnnprof.lut.builder import FBNET_SPACE_NAME
    from cnnprof.lut.measure import NETWORK_PROTOCOL, SpeedProbe, make_timer, per_round, time_networks
    from cnnprof.lut.predict import SpaceMatrix, arch_code, error_stats
    from cnnprof.lut.table import env_id, environment

    space = space or FBNET_SPACE_NAME
    search_space = search_space or space_object(space)
    for name, value, low in (("--budget", budget_s, 0), ("--train", max_train, 2), ("--holdout", holdout, 1),
                             ("--initial", initial, 2), ("--batch", batch, 1), ("--rounds", rounds, 1)):
        if value < low or (name == "--budget" and value <= 0):
            raise UsageError(f"{name} must be {'positive' if name == '--budget' else f'at least {low}'}, got {value}")
    initial = min(initial, max_train)
    progress = on_progress or (lambda message: None)
    matrix = SpaceMatrix.from_table(table, space)
    k = len(matrix.candidates)
    # own random streams (not ``lut predict --sample``'s), and the held-out sample disjoint from the
    # whole pool the training networks are chosen from
    pool_rows = disjoint_sample(pool, matrix.layers, k, seed=seed + POOL_SEED, exclude=set())
    pool_codes = [arch_code(r) for r in pool_rows]
    held_rows = disjoint_sample(holdout, matrix.layers, k, seed=seed + HOLDOUT_SEED, exclude=set(pool_codes))
    pool_x = features(matrix, pool_rows)
    pool_pred = pool_x.sum(axis=1) + matrix.fixed_ms
    pool_var = entry_variance(table, space, pool_rows)
    probe = SpeedProbe.from_table(table) if timer is None else None
    report_interrupted = False
    chosen: list[int] = []
    measured: list[float] = []
    clock_read: list[float] = []  # the clock's own readings (before the probe's normalisation)
    selections = 0
    start = clock()
    with tempfile.TemporaryDirectory(prefix="cnnprof-lut-") as onnx_dir:
        timer = timer or make_timer(backend=table.backend, threads=table.threads,
                                    protocol=per_round(protocol or NETWORK_PROTOCOL, rounds), onnx_dir=onnx_dir,
                                    clock=table.clock, probe=probe, allocator=table.allocator)
        current: Fit | None = None
        try:
            while len(chosen) < max_train:
                if not chosen:
                    picks = list(range(initial))
                else:
                    per_net = (clock() - start) / len(chosen)
                    room = int((budget_s - (clock() - start)) / max(per_net, 1e-9))
                    count = min(batch, max_train - len(chosen), room)
                    if count < 1:
                        break
                    picks = select(pool_x, pool_pred, pool_var, current.cov, count, exclude=set(chosen))
                    if not picks:
                        break
                    selections += 1
                jobs = space_jobs_for(search_space, matrix, pool_rows[picks], "train")
                progress(f"training: timing {len(picks)} network(s) ({len(chosen) + len(picks)} of at most "
                         f"{max_train}; {clock() - start:.0f} of {budget_s:.0f} s)")
                times = time_networks(jobs, timer, rounds=rounds)
                chosen += picks
                measured += [t.median_ms for t in times]
                clock_read += [t.clock_ms for t in times]
                current = fit(pool_x[chosen], np.full(len(chosen), matrix.fixed_ms), np.array(measured))
        except KeyboardInterrupt:
            report_interrupted = True
        train_s = clock() - start
        if current is None:
            raise UsageError("calibration interrupted before any network was measured")
        kinds = list(matrix.candidates)
        # the uncertainty that chose the networks is the per-type model's; the correction kept is
        # whichever structure predicts the training networks it did not see best (leave-one-out)
        chosen_fit = choose(pool_x[chosen], np.full(len(chosen), matrix.fixed_ms), np.array(measured))
        theta = chosen_fit.theta
        calibration = Calibration(float(theta[0]), {kinds[i]: float(theta[1 + i]) for i in range(k)},
                                  float(math.exp(np.mean(np.log(np.clip(theta[1:], 1e-6, None))))), METHOD, {})
        train_pred_raw = pool_pred[chosen]
        train_cal = _calibrated(calibration, pool_x[chosen], matrix.fixed_ms, kinds)
        train_stats = {"n": len(chosen), "raw_mean_abs_error": error_stats(train_pred_raw, measured)["mean_abs_error"],
                       "calibrated_mean_abs_error": error_stats(train_cal, measured)["mean_abs_error"],
                       "loo_rmse": chosen_fit.loo_rmse, "lambda": chosen_fit.lam,
                       "structure": chosen_fit.structure, "loo_rmse_by_structure": chosen_fit.scores}
        # the held-out sample and the reference models: never trained on
        h0 = clock()
        model_rows: list[dict[str, Any]] = []
        held_raw = held_cal = {}
        held_measured: list[float] = []
        if not report_interrupted:
            try:
                jobs = space_jobs_for(search_space, matrix, held_rows, "held-out")
                refs = _reference_models(table, matrix, models, calibration, kinds)
                jobs += [(r["model"], r["build"], r["input"]) for r in refs]
                progress(f"held-out: timing {len(held_rows)} networks and {len(refs)} reference model(s)")
                times = time_networks(jobs, timer, rounds=rounds)
                held_measured = [t.median_ms for t in times[:len(held_rows)]]
                hx = features(matrix, held_rows)
                held_pred = hx.sum(axis=1) + matrix.fixed_ms
                held_raw = error_stats(held_pred, held_measured)
                held_cal = error_stats(_calibrated(calibration, hx, matrix.fixed_ms, kinds), held_measured)
                for r, t in zip(refs, times[len(held_rows):]):
                    model_rows.append({"model": r["model"], "predicted_ms": r["raw"], "calibrated_ms": r["calibrated"],
                                       "measured_ms": t.median_ms, "raw_measured_ms": t.clock_ms,
                                       "error": (r["raw"] - t.median_ms) / t.median_ms,
                                       "calibrated_error": (r["calibrated"] - t.median_ms) / t.median_ms})
            except KeyboardInterrupt:
                report_interrupted = True
        holdout_s = clock() - h0
    here = environment(table.backend, table.threads, table.clock)
    calibration = Calibration(calibration.overhead_ms, calibration.scales, calibration.default_scale, METHOD, {
        "space": space,
        "trained_on": [pool_codes[i] for i in chosen],
        "train_ms": [round(float(v), 5) for v in measured],  # so the fit can be examined or redone later
        "train_clock_ms": [round(float(v), 5) for v in clock_read],
        "train": train_stats,
        "held_out": {"codes": [arch_code(r) for r in held_rows] if held_measured else [],
                     "raw": held_raw, "calibrated": held_cal, "models": model_rows},
        "budget_s": budget_s, "train_s": train_s, "holdout_s": holdout_s, "rounds": rounds,
        "env": env_id(here), "fitted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })
    if not report_interrupted or chosen:
        table.calibration = calibration.to_dict()
        if path is not None:
            table.save(path)
    return CalibrationReport(calibration, [pool_codes[i] for i in chosen],
                             [arch_code(r) for r in held_rows] if held_measured else [], train_stats, held_raw,
                             held_cal, model_rows, train_s, holdout_s, selections, report_interrupted)


def _calibrated(calibration: Calibration, x: "np.ndarray", fixed_ms: float, kinds: Sequence[str]) -> "np.ndarray":
    import numpy as np

    scales = np.array([calibration.scale_of(t) for t in kinds])
    if calibration.single:
        return calibration.default_scale * (x.sum(axis=1) + fixed_ms)
    return calibration.overhead_ms + fixed_ms + x @ scales


def _reference_models(table: "Table", matrix: "SpaceMatrix", models: Sequence[str], calibration: Calibration,
                      kinds: Sequence[str]) -> list[dict[str, Any]]:
    """The reference models whose parts are all in the table, with their raw and calibrated
    predictions (and how to build them)."""
    from cnnprof import targets as targets_mod
    from cnnprof.lut.keys import split

    out = []
    for target in targets_mod.resolve_targets(list(models)) if models else []:
        model = target.build()
        parts = split(model, target.input, name=target.name)
        raw, cal, ok = predict_model(table, parts, calibration)
        if ok:
            out.append({"model": target.name, "raw": raw, "calibrated": cal, "build": target.build,
                        "input": tuple(target.input)})
    return out


def predict_model(table: "Table", parts: Sequence[Any], calibration: Calibration | None,
                  space: str | None = None) -> tuple[float | None, float | None, bool]:
    """A split model's raw sum and calibrated prediction (None when a part is missing, or the
    calibration does not know one of its block types), and whether every part was found."""
    from cnnprof.lut.builder import FBNET_SPACE_NAME
    from cnnprof.lut.predict import predict_parts

    raw, missing = predict_parts(table, parts)
    if raw is None:
        return None, None, False
    if calibration is None:
        return raw, None, True
    index = table.spaces.get(space or FBNET_SPACE_NAME)
    type_of = index.type_of() if index is not None else {}
    from cnnprof.lut.predict import parts_with_glue

    fixed = 0.0
    by_type: dict[str | None, float] = {}
    for part in parts_with_glue(table, parts):
        value = table.entries[part.key].latency_ms
        if part.role == "block":
            kind = type_of.get(part.key)
            if kind is None and not calibration.single:
                return raw, None, True  # a block type the calibration never saw
            by_type[kind] = by_type.get(kind, 0.0) + value
        else:
            fixed += value
    return raw, calibration.apply(fixed, by_type), True


__all__ = ["STRUCTURES", "Calibration", "CalibrationReport", "Choice", "calibrate", "choose", "disjoint_sample",
           "entry_variance", "features", "fit", "predict_model", "relative_uncertainty", "select"]
