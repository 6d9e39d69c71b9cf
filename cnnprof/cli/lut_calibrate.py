"""``cnnprof lut calibrate``: the per-device correction of a latency table, learned from whole
networks of the space and checked on networks it never saw (registered on ``cli.lut.lut_app``)."""

from __future__ import annotations

from typing import Annotated

import typer

from cnnprof.cli.common import command
from cnnprof.cli.lut import (
    EXPERT,
    ClockOpt,
    LutBackendOpt,
    LutThreadsOpt,
    TableOpt,
    _backend,
    _clock,
    _emit_summary,
    lut_app,
)
from cnnprof.cli.options import FormatOpt, OutputOpt
from cnnprof.report import Format
from cnnprof.terminal import say
from cnnprof.timing.protocol import LUT_NETWORK


@lut_app.command("calibrate")
@command
def calibrate_command(
    table_path: TableOpt = None,
    backend: LutBackendOpt = None,
    threads: LutThreadsOpt = None,
    clock: ClockOpt = "wall",
    budget: Annotated[float, typer.Option("--budget", help="Seconds of training measurements: networks are added "
                                          "where the predictor is least sure until they are spent.")] = 180.0,
    train: Annotated[int, typer.Option("--train", help="Training networks, at most.")] = 48,
    holdout: Annotated[int, typer.Option("--holdout", help="Held-out networks (never trained on) to report the "
                                         "error on; FBNet-A/B/C are measured beside them.")] = 30,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the pool and of the held-out sample.")] = 0,
    initial: Annotated[int, typer.Option("--initial", rich_help_panel=EXPERT,
                                         help="Random networks before the adaptive choice starts.")] = 8,
    batch: Annotated[int, typer.Option("--batch", rich_help_panel=EXPERT,
                                       help="Networks chosen per step of the adaptive choice.")] = 4,
    rounds: Annotated[int, typer.Option("--rounds", rich_help_panel=EXPERT,
                                        help="Passes over each group of networks; each keeps the median of its "
                                        "rounds.")] = 2,
    min_time: Annotated[float, typer.Option("--min-time", min=0.0, rich_help_panel=EXPERT,
                                            help="Seconds of timed calls per whole network (over all "
                                            "rounds).")] = LUT_NETWORK.min_time_s,
    fmt: FormatOpt = Format.table,
    output: OutputOpt = None,
) -> None:
    """Learn a per-machine correction of the table from whole networks; report it on others.

    Times a training sample of FBNet networks whole and fits latency = overhead + stem/head/glue +
    a scale per block type x that type's table latencies (ridge regression on the relative error,
    shrunk towards overhead 0 and scale 1), or overhead + one shared scale, or no correction,
    whichever predicts the training networks it left out best. The first --initial networks are random; then, within
    --budget seconds, the networks of a random pool whose prediction is least certain are added
    (the fit's own uncertainty plus how much the context moves their blocks). Then a separate
    held-out sample (disjoint from the training set) and FBNet-A/B/C are timed, and the error of
    the raw sum and of the calibrated prediction is reported there. The correction is stored in
    the table; `lut predict` shows it beside the raw sum, and leaves its training networks out of
    a measured sample.

    Examples:

      cnnprof lut calibrate --clock cpu

      cnnprof lut calibrate --backend onnxruntime --clock cpu --budget 120 --holdout 20

      cnnprof lut calibrate --table models/lut-torch-t1-cpu.json -f json -o reports/calibration.json
    """
    from cnnprof.cli import options
    from cnnprof.cli.common import progress
    from cnnprof.files import check_distinct, check_writable
    from cnnprof.lut import learn as lut_calibrate
    from cnnprof.lut.table import default_path, load
    from cnnprof.timing.protocol import with_limits

    check_writable(output)
    n_threads = options.parse_threads(threads) if threads is not None else None
    backend_name = _backend(backend, "torch") if backend is not None else None
    path = table_path or default_path(backend_name or "torch", n_threads or 1, _clock(clock, n_threads or 1))
    _check_calibration_options(budget, train, holdout, initial, batch, rounds)
    check_distinct([output], [path])
    check_writable(path)
    table = load(path)
    with progress() as update:
        report = lut_calibrate.calibrate(
            table, path=path, budget_s=budget, max_train=train, initial=initial, batch=batch, holdout=holdout,
            seed=seed, rounds=rounds, protocol=with_limits(LUT_NETWORK, min_time_s=min_time), on_progress=update)
    rows = calibration_rows(report)
    title = (f"correction learned for {path} ({table.backend}, {table.threads} thread(s), {table.clock} clock, "
             f"{table.mode} entries)")
    _emit_summary(rows, fmt, output, title, calibrated=True)
    say(f"stored the correction in {path}: {len(report.trained_on)} training networks in {report.train_s:.0f} s, "
        f"{len(report.holdout)} held-out in {report.holdout_s:.0f} s")
    if report.interrupted:
        say("interrupted: the correction was fitted on the networks measured so far")
        raise SystemExit(130)


def _check_calibration_options(budget: float, train: int, holdout: int, initial: int, batch: int, rounds: int) -> None:
    from cnnprof.errors import UsageError

    if not budget > 0 or budget != budget or budget == float("inf"):
        raise UsageError(f"--budget takes a positive number of seconds, got {budget}")
    for name, value, low in (("--train", train, 2), ("--holdout", holdout, 1), ("--initial", initial, 2),
                             ("--batch", batch, 1), ("--rounds", rounds, 1)):
        if value < low:
            raise UsageError(f"{name} must be at least {low}, got {value}")


def calibration_rows(report) -> list:
    """The calibration report as summary rows: the correction, the training, the held-out
    accuracy (raw sum against calibrated), and FBNet-A/B/C."""
    from cnnprof.lut.evaluate import SUMMARY_METRICS, SummaryRow

    cal = report.calibration
    rows = [SummaryRow("correction", "overhead per network", cal.overhead_ms, None, "ms")]
    rows += [SummaryRow("correction", f"scale {kind}", value, None, "ratio") for kind, value in cal.scales.items()]
    t = report.train_stats
    rows += [
        SummaryRow("training", "networks measured", t["n"], None, "int"),
        SummaryRow("training", "steps of adaptive choice", report.rounds_of_selection, None, "int"),
        SummaryRow("training", "seconds", report.train_s, None, "float"),
        SummaryRow("training", "mean |error| (fitted on these)", t["raw_mean_abs_error"],
                   t["calibrated_mean_abs_error"], "pct"),
        SummaryRow("training", "leave-one-out RMS error", None, t["loo_rmse"], "pct"),
    ]
    for structure, score in t.get("loo_rmse_by_structure", {}).items():
        kept = " (kept)" if structure == t.get("structure") else ""
        rows.append(SummaryRow("training", f"leave-one-out RMS error, {structure} correction{kept}", None, score,
                               "pct"))
    if report.holdout_raw:
        rows += [SummaryRow("held-out", label, report.holdout_raw[key], report.holdout_calibrated.get(key), kind)
                 for key, label, kind in SUMMARY_METRICS]
        rows.append(SummaryRow("held-out", "seconds", report.holdout_s, None, "float"))
    for m in report.models:
        rows.append(SummaryRow(m["model"], "predicted", m["predicted_ms"], m["calibrated_ms"], "ms"))
        rows.append(SummaryRow(m["model"], "measured", m["measured_ms"], m["measured_ms"], "ms"))
        rows.append(SummaryRow(m["model"], "error", m["error"], m["calibrated_error"], "pct"))
    return rows
