"""Calibrating a table: ``lut calibrate``'s procedure (the training networks chosen where the
predictor is least sure, timed whole, the correction fitted by ``cnnprof.lut.correction``, then
checked on a disjoint held-out sample and FBNet-A/B/C; see ``correction``'s text for the model and
the sampling), and ``lut build --calibrate``'s single scale (``calibrate_scale``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from cnnprof.errors import UsageError
from cnnprof.lut import measure
from cnnprof.lut.correction import Fit, calibrated_predictions, choose, entry_variance, features, fit, select
from cnnprof.lut.keys import split
from cnnprof.lut.predict import SpaceMatrix, error_stats, predict_model, predict_parts
from cnnprof.lut.probe import SpeedProbe
from cnnprof.lut.space import (
    FBNET_SPACE_NAME,
    REFERENCE_MODELS,
    arch_code,
    disjoint_sample,
    space_network,
    space_object,
)
from cnnprof.lut.table import METHOD, Calibration, Table, env_id, environment

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from cnnprof.lut.measure import Timer
    from cnnprof.models.fbnet import SearchSpace
    from cnnprof.timing.protocol import Protocol

POOL_SEED, HOLDOUT_SEED = 104_729, 7_919


# -- measuring whole networks of the space --------------------------------------------------------
def space_jobs_for(space: "SearchSpace", matrix: SpaceMatrix, rows: "np.ndarray", prefix: str,
                   *, head_chs: int | None = None) -> list[tuple[str, Callable[[], Any], tuple[int, ...]]]:
    """(label, build, input) for each architecture row (networks built seeded, batch norms
    calibrated, as every command builds them)."""
    return [(f"{prefix} {arch_code(r)}", (lambda r=r: space_network(space, matrix.names(r), head_chs)),
             tuple(space.input)) for r in rows]


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
    table: Table,
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
        timer = timer or measure.make_timer(backend=table.backend, threads=table.threads,
                                            protocol=measure.per_round(protocol or measure.NETWORK_PROTOCOL, rounds),
                                            onnx_dir=onnx_dir, clock=table.clock, probe=probe,
                                            allocator=table.allocator)
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
                times = measure.time_networks(jobs, timer, rounds=rounds)
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
        train_cal = calibrated_predictions(calibration, pool_x[chosen], matrix.fixed_ms, kinds)
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
                times = measure.time_networks(jobs, timer, rounds=rounds)
                held_measured = [t.median_ms for t in times[:len(held_rows)]]
                hx = features(matrix, held_rows)
                held_pred = hx.sum(axis=1) + matrix.fixed_ms
                held_raw = error_stats(held_pred, held_measured)
                held_cal = error_stats(calibrated_predictions(calibration, hx, matrix.fixed_ms, kinds), held_measured)
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


def _reference_models(table: Table, matrix: SpaceMatrix, models: Sequence[str], calibration: Calibration,
                      kinds: Sequence[str]) -> list[dict[str, Any]]:
    """The reference models whose parts are all in the table, with their raw and calibrated
    predictions (and how to build them)."""
    from cnnprof import targets as targets_mod

    out = []
    for target in targets_mod.resolve_targets(list(models)) if models else []:
        model = target.build()
        parts = split(model, target.input, name=target.name)
        raw, cal, ok = predict_model(table, parts, calibration)
        if ok:
            out.append({"model": target.name, "raw": raw, "calibrated": cal, "build": target.build,
                        "input": tuple(target.input)})
    return out


# -- lut build --calibrate: one scale ------------------------------------------------------------
def calibrate_scale(
    table: Table,
    *,
    path: str | Path,
    models: Sequence[str] = REFERENCE_MODELS,
    protocol: "Protocol" = measure.WHOLE_PROTOCOL,
    rounds: int = measure.ROUNDS,
    timer: "Timer | None" = None,
) -> dict | None:
    """Time ``models`` whole, compare with their block sums, store one scale factor in the table.

    The whole networks are timed in ``rounds`` interleaved rounds (as the table's entries). The
    scale is the geometric mean of measured / predicted (it minimises the squared log error,
    i.e. relative error in both directions). It is kept beside the raw table and offered as a
    *calibrated* prediction, reported as such; the raw sum is always reported first. Returns the
    calibration, or None when a model has blocks missing from the table."""
    import tempfile

    from cnnprof import targets

    here = environment(table.backend, table.threads, table.clock)
    built = []
    for target in targets.resolve_targets(list(models)):
        model = target.build()
        predicted, missing = predict_parts(table, split(model, target.input, name=target.name))
        if missing:
            return None
        built.append((target, model, predicted))
    times: dict[str, list[measure.Measured]] = {target.name: [] for target, _, _ in built}
    with tempfile.TemporaryDirectory(prefix="cnnprof-lut-") as onnx_dir:
        timer = timer or measure.make_timer(backend=table.backend, threads=table.threads,
                                            protocol=measure.per_round(protocol, rounds), onnx_dir=onnx_dir,
                                            clock=table.clock, allocator=table.allocator)
        for _ in range(rounds):
            for target, model, _ in built:
                times[target.name].append(timer(model, target.input, target.name))
    fitted = {}
    for target, _, predicted in built:
        measured = measure.combine(times[target.name]).median_ms
        fitted[target.name] = {"predicted_ms": predicted, "measured_ms": measured, "ratio": predicted / measured}
    scale = math.exp(sum(math.log(v["measured_ms"] / v["predicted_ms"]) for v in fitted.values()) / len(fitted))
    table.calibration = {
        "scale": scale,
        "method": "geometric mean of whole-network / sum-of-blocks latency",
        "fitted_on": fitted,
        "env": env_id(here),
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    table.save(path)
    return table.calibration
