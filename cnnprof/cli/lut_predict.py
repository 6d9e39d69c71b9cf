"""``cnnprof lut predict``: a network's latency as the sum of its blocks in a lookup table, and with
``--measure`` how far that holds here, beside the MACs baselines (registered on ``cli.lut.lut_app``)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Optional

import typer

from cnnprof.cli.common import command
from cnnprof.cli.lut import (
    EXPERT,
    SUMMARY_COLUMNS,
    LutBackendOpt,
    LutThreadsOpt,
    TableOpt,
    _backend,
    _clock,
    lut_app,
)
from cnnprof.cli.options import DEFAULT_DB, DbOpt, FormatOpt, ModelArgOpt, NoDbOpt, OutputOpt
from cnnprof.report import Column, Format
from cnnprof.terminal import say
from cnnprof.timing.protocol import LUT_NETWORK, WHOLE

PREDICT_COLUMNS = [
    Column("model", "network"),
    Column("arch", "arch"),
    Column("parts", "parts", "int"),
    Column("predicted_ms", "predicted (sum)", "ms"),
    Column("calibrated_ms", "calibrated", "ms"),
    Column("macs_ms", "MACs x c", "ms", priority=3),
    Column("macs_kind_ms", "MACs per kind", "ms", priority=3),
    Column("measured_ms", "measured", "ms"),
    Column("measured_raw_ms", "clock read", "ms", priority=3),
    Column("speed", "speed", "ratio", priority=3),
    Column("error", "error", "pct"),
    Column("calibrated_error", "calibrated error", "pct"),
    Column("loss", "loss", "float"),
    Column("rank", "rank", "int"),
    Column("missing", "missing from the table", wrap=True),
    Column("warnings", "note", wrap=True),
]
# the MACs baselines beside the table (lut.baseline): held out, one constant and one per op kind
BASELINE_COLUMNS = [Column("macs", "MACs x c"), Column("macs_by_kind", "MACs per op kind")]


def _calibration_note(stored: dict) -> str:
    from cnnprof.lut.table import Calibration

    cal = Calibration.from_dict(stored)
    if cal.single:
        fitted = ", ".join(stored.get("fitted_on", {}))
        return f"calibrated = raw sum x {cal.default_scale:.3f}, the scale fitted on {fitted} by `lut build`"
    n = len(cal.trained_on())
    low, high = min(cal.scales.values()), max(cal.scales.values())
    scales = f"one scale {low:.2f}" if high - low < 1e-9 else f"a scale per block type ({low:.2f}..{high:.2f})"
    return (f"calibrated = {cal.overhead_ms:+.2f} ms + stem/head/glue + {scales} x the table, fitted on {n} networks "
            "by `lut calibrate` (left out of the sample)")


def _shorten(text: str, limit: int = 6) -> str:
    items = text.split(", ") if text else []
    return ", ".join(items[:limit]) + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


PredictModelsArg = Annotated[Optional[list[str]], typer.Argument(help="Models (names, aliases, patterns) whose "
                                                                 "blocks are all in the table.")]
SampleSeedOpt = Annotated[int, typer.Option("--seed", help="Seed of --sample.")]
AlphaOpt = Annotated[float, typer.Option("--alpha", help="FBNet loss alpha.")]
BetaOpt = Annotated[float, typer.Option("--beta", help="FBNet loss beta.")]
SampleOpt = Annotated[int, typer.Option("--sample", min=0, help="Also predict N random FBNet architectures (at most "
                                        "10,000,000).")]
MeasureOpt = Annotated[bool, typer.Option("--measure", help="Also time each whole network and report the error.")]
PredictClockOpt = Annotated[Optional[str], typer.Option("--clock", rich_help_panel=EXPERT, help="Read the table built "
                                                        "with this clock: wall or cpu (default: wall's, else "
                                                        "cpu's).")]
StrictEnvOpt = Annotated[bool, typer.Option("--strict-env", help="A table from another environment (CPU, threads, "
                                            "backend, versions) is an error (exit 2), not a warning.")]
LossOpt = Annotated[Optional[float], typer.Option("--loss", help="Rank by FBNet's loss CE * alpha * log(LAT)^beta "
                                                  "with this cross-entropy value (e.g. 2.0).")]
TopOpt = Annotated[Optional[int], typer.Option("--top", min=1, help="Show only the K best sampled networks (lowest "
                                               "loss, else fastest); default all up to 1000, else 20.")]
PredictMinTimeOpt = Annotated[Optional[float], typer.Option(
    "--min-time", min=0.0, rich_help_panel=EXPERT,
    help=f"Seconds of timed calls per whole network (--measure; over all rounds; default {WHOLE.min_time_s}, "
         f"{LUT_NETWORK.min_time_s} for an in-context table).")]
PredictRoundsOpt = Annotated[int, typer.Option("--rounds", min=1, rich_help_panel=EXPERT,
                                               help="Passes over all networks (--measure); each keeps the median of "
                                               "its rounds.")]


@lut_app.command("predict")
@command
def predict_command(
    models: PredictModelsArg = None,
    sample: SampleOpt = 0,
    seed: SampleSeedOpt = 0,
    measure: MeasureOpt = False,
    table_path: TableOpt = None,
    backend: LutBackendOpt = None,
    threads: LutThreadsOpt = None,
    clock: PredictClockOpt = None,
    strict_env: StrictEnvOpt = False,
    loss: LossOpt = None,
    alpha: AlphaOpt = 0.2,
    beta: BetaOpt = 0.6,
    top: TopOpt = None,
    min_time: PredictMinTimeOpt = None,
    rounds: PredictRoundsOpt = 3,
    model_arg: ModelArgOpt = None,
    fmt: FormatOpt = Format.table,
    output: OutputOpt = None,
    db: DbOpt = DEFAULT_DB,
    no_db: NoDbOpt = False,
) -> None:
    """Predict latency as the sum of the table's block latencies; with --measure, check it.

    For sampled architectures the table is a (layers x candidates) matrix: a million predictions
    take well under a second. With --measure each whole network is timed too (same backend and
    threads) and the error reported; a measured sample always brings FBNet-A/B/C, and leaves out
    every network the table's calibration was fitted on (it is held out). Over a group: the share
    within +-5% and +-10% (nn-Meter's accuracy figure), |error| mean/median/p90, and Spearman's
    rank correlation. Whole networks are timed in --rounds passes (a busy spell spoils one round,
    not one network); with an in-context table, every call is probed and the error taken at the
    table's reference speed (the clock's own reading is shown too). When the table holds a
    calibration (`lut calibrate`), the calibrated prediction is shown beside the raw sum.
    The arch column gives one digit per layer: 0 k3_e1, 1 k3_e1_g2, 2 k3_e3, 3 k3_e6,
    4 k5_e1, 5 k5_e1_g2, 6 k5_e3, 7 k5_e6, 8 skip.

    Examples:

      cnnprof lut predict fbnet_a fbnet_b fbnet_c --measure

      cnnprof lut predict --clock cpu --sample 100 --measure

      cnnprof lut predict --sample 1000000 --loss 2.0 --top 10

      cnnprof lut predict mobilenetv3_large --table models/lut-torch-t1.json --strict-env
    """
    from cnnprof.cli import options, stored
    from cnnprof.cli.common import progress
    from cnnprof.errors import UsageError
    from cnnprof.files import check_distinct, check_writable
    from cnnprof.lut import evaluate
    from cnnprof.lut.table import find_default, load
    from cnnprof.references import reference_files
    from cnnprof.targets import resolve_targets
    from cnnprof.timing.protocol import with_limits

    check_writable(output)
    if not models and not sample:
        raise UsageError("give model names or --sample N")
    n_threads = options.parse_threads(threads) if threads is not None else None
    backend_name = _backend(backend, "torch") if backend is not None else None
    path = table_path or find_default(backend_name, n_threads, clock and _clock(clock, n_threads or 1))
    check_distinct([output], [path, *reference_files(models)])
    table = load(path)
    targets = resolve_targets(models, model_args=model_arg) if models else []
    protocol = with_limits(LUT_NETWORK if table.probe else WHOLE, min_time_s=min_time)
    recorder = stored.recorder("lut-predict", db, no_db or not measure, outputs=[output])  # measured rows only
    with progress() as update:
        result = evaluate.predict(
            table, targets, sample=sample, seed=seed, measure=measure, loss_ce=loss, alpha=alpha, beta=beta,
            threads=n_threads, backend=backend_name, strict_env=strict_env, top=top, protocol=protocol, rounds=rounds,
            on_progress=update, on_warning=lambda m: say(f"warning: {m}"),
        )
    _emit_rows(result, table, path, fmt, output)
    _record(recorder, result, table, path)
    _emit_predict_summary(result, table, fmt, output)
    _notes(result, table, measure)


def _emit_rows(result, table, path, fmt: Format, output) -> None:
    """One row per network: on the terminal without empty columns and with short lists."""
    from cnnprof.lut import evaluate
    from cnnprof.report import emit

    title = f"latency predicted from {path} ({table.backend}, {table.threads} thread(s), {table.clock} clock)"
    rows, columns = result.rows, PREDICT_COLUMNS
    if fmt == Format.table and output is None:  # the terminal: no empty columns, short lists
        columns = [c for c in columns if c.field in ("model", "predicted_ms")
                   or any(getattr(r, c.field) not in (None, "") for r in rows)]
        rows = [dataclasses.replace(r, missing=_shorten(r.missing)) for r in rows]
    emit(rows, columns=columns, fmt=fmt, output=output, fields=evaluate.ROW_FIELDS, title=title)


def _record(recorder, result, table, path) -> None:
    from cnnprof.rows import RowKind

    recorder.save(result.rows, kind=RowKind.PREDICT, threads=table.threads, context={"table": str(path)},
                  extra={"backend": table.backend, "threads": table.threads, "device": "cpu"})


def _emit_predict_summary(result, table, fmt: Format, output) -> None:
    """How well the sum predicts the whole networks (and how fast it predicts): a table on the
    terminal (or markdown), else one line each on stderr beside the rows on stdout."""
    from cnnprof.lut import evaluate
    from cnnprof.report import emit, human

    summary = list(result.summary)
    if result.rate is not None:
        r = result.rate
        summary += [
            evaluate.SummaryRow("prediction", "architectures sampled", r["n"], kind="int"),
            evaluate.SummaryRow("prediction", "seconds to sample them", r["sample_s"]),
            evaluate.SummaryRow("prediction", "seconds to predict them", r["predict_s"]),
            evaluate.SummaryRow("prediction", "architectures per second", r["rate_per_s"], kind="count"),
        ]
        if result.shown < result.sampled:
            say(f"showing {result.shown} of {result.sampled} sampled networks (--top)")
    if not summary:
        return
    shown = [{"group": s.group, "metric": s.metric, "raw": human(s.raw, s.kind),
              "calibrated": human(s.calibrated, s.kind), "macs": human(s.macs, s.kind),
              "macs_by_kind": human(s.macs_by_kind, s.kind)} for s in summary]
    summary_columns = SUMMARY_COLUMNS if table.calibration else SUMMARY_COLUMNS[:3]
    baselines = any(s.macs is not None or s.macs_by_kind is not None for s in summary)
    if baselines:
        summary_columns = [*summary_columns, *BASELINE_COLUMNS]
    if fmt == Format.table:
        emit(shown, columns=summary_columns, fmt=fmt, fields=evaluate.SUMMARY_FIELDS,
             title="how well the sum predicts the whole network" if result.summary else "prediction rate")
    elif fmt == Format.md and output is None:
        emit(shown, columns=summary_columns, fmt=fmt, fields=evaluate.SUMMARY_FIELDS)
    else:
        for s in shown:
            also = [f"calibrated {s['calibrated']}"] if s["calibrated"] != "-" else []
            also += [f"{c.header} {s[c.field]}" for c in BASELINE_COLUMNS if s[c.field] != "-"]
            say(f"{s['group']}: {s['metric']}: {s['raw']}" + (f" ({'; '.join(also)})" if also else ""))
    if baselines:
        from cnnprof.lut.baseline import EXPLAINED

        say(EXPLAINED)


def _notes(result, table, measure: bool) -> None:
    """What the reader should know about the figures; exit 1 when a model could not be predicted."""
    from cnnprof.errors import CheckFailed

    if result.flagged:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(result.flagged.items()))
        say(f"note: of the {result.used} table entries used, these were flagged when measured: {kinds}")
    if table.calibration and result.summary:
        say(_calibration_note(table.calibration))
    if table.probe and measure:
        say(f"measured = the clock's reading x probe reference ({table.probe['reference_ms']:.3f} ms) / the probe "
            "around each call: the networks at the table's reference speed (the clock's own reading: `clock read`)")
    if result.incomplete:
        missing = [r.model for r in result.rows if r.model in result.incomplete and r.missing]
        hint = (f"; add their blocks with `cnnprof lut build --space none --models {','.join(missing)}`"
                if missing else "")
        raise CheckFailed(f"{len(result.incomplete)} model(s) could not be predicted from the table: "
                          f"{', '.join(result.incomplete)}{hint}")
