"""``cnnprof compare``: models side by side, with ratios to the first, counted and timed."""

from __future__ import annotations

from typing import Annotated

import typer

from cnnprof.cli.options import (
    DEFAULT_DB,
    BackendOpt,
    BatchOpt,
    CalibrationOpt,
    CalibrationSamplesOpt,
    DbOpt,
    DeviceOpt,
    ForceOpt,
    FormatOpt,
    InProcessOpt,
    InputOpt,
    MinRunsOpt,
    MinTimeOpt,
    ModelArgOpt,
    ModelsArg,
    NoDbOpt,
    NoSaveOpt,
    OutputOpt,
    ParityInputsOpt,
    PlotOpt,
    PrecisionOpt,
    ResolutionOpt,
    ThreadsOpt,
)
from cnnprof.cli.timed import ReportCopy, collect, finish
from cnnprof.files import check_distinct, check_writable
from cnnprof.references import reference_files
from cnnprof.report import Column, Format, emit
from cnnprof.rows import ProfileRow
from cnnprof.timing.protocol import DEFAULT

RATIO_FIELDS = ["params_ratio", "macs_ratio", "latency_ratio"]
COUNT_COLUMNS = [
    Column("model", "model", priority=0),
    Column("input", "input", priority=0),
    Column("params", "params", "count", priority=1),
    Column("params_ratio", "params / first", "ratio", priority=3),
    Column("macs", "MACs", "macs", priority=1),
    Column("macs_ratio", "MACs / first", "ratio", priority=3),
]


def _ratio(value, base):
    return value / base if value is not None and base else None


def config_label(backend: str, precision: str) -> str:
    """'onnxruntime' for fp32 (as before precisions existed), else 'onnxruntime int8'."""
    return backend if precision in ("", "fp32") else f"{backend} {precision}"


def with_ratios(rows: list[ProfileRow]) -> list[dict]:
    """Long rows (one per model x backend x precision) with ratios to the first model on the same
    backend and precision."""
    first_model = rows[0].model
    firsts = {(r.backend, r.precision): r for r in rows if r.model == first_model}
    out = []
    for r in rows:
        base = firsts.get((r.backend, r.precision), rows[0])
        out.append({
            **r.to_dict(),
            "params_ratio": _ratio(r.params, base.params),
            "macs_ratio": _ratio(r.macs, base.macs),
            "latency_ratio": _ratio(r.latency_ms_median, base.latency_ms_median),
        })
    return out


def wide(rows: list[ProfileRow], records: list[dict], backends: list[str]) -> tuple[list[dict], list[Column]]:
    """One line per model for the terminal: counts, then median latency and ratio per backend and
    precision (``records`` are ``rows`` with their ratios; ``backends`` the configuration labels in
    order, see ``config_label``)."""
    by_model: dict[str, dict] = {}
    for row, r in zip(rows, records):
        line = by_model.setdefault(r["model"], {k: r.get(k) for k in ("model", "input", "params", "params_ratio",
                                                                       "macs", "macs_ratio")})
        if r.get("backend"):
            label = config_label(r["backend"], r.get("precision") or "")
            line[f"{label}_ms"] = r.get("latency_ms_median")
            line[f"{label}_ratio"] = r.get("latency_ratio")
            if r.get("parity_max_abs") is not None and (r.get("precision") or "fp32") == "fp32":
                line["parity"] = max(line.get("parity") or 0.0, r["parity_max_abs"])
            if r.get("parity_sqnr_db") is not None and (r.get("precision") or "fp32") != "fp32":
                line["sqnr"] = min(line.get("sqnr", float("inf")), r["parity_sqnr_db"])
        errors = [e for e in (line.get("error"), r.get("error")) if e]
        line["error"] = "; ".join(dict.fromkeys(errors))
        if row.warnings:
            tags = ", ".join(row.warnings.kinds())
            label = config_label(row.backend, row.precision)
            line["warnings"] = "; ".join(filter(None, [line.get("warnings"), f"{label}: {tags}"]))
    columns = list(COUNT_COLUMNS)
    for b in backends:
        # the latency ratio is compare's answer: on a narrow terminal the medians go before it
        columns += [Column(f"{b}_ms", f"{b} median", "ms", priority=2), Column(f"{b}_ratio", f"{b} / first", "ratio",
                                                                             priority=1)]
    if any("parity" in line for line in by_model.values()):
        columns.append(Column("parity", "max |diff| vs torch", "float", priority=3))
    if any("sqnr" in line for line in by_model.values()):
        columns.append(Column("sqnr", "lowest SQNR dB (not fp32)", "float", priority=3))
    # already the kinds per configuration ("onnxruntime int8: noisy, machine busy")
    columns += [Column("warnings", "warnings", wrap=True, priority=3, short=False), Column("error", "error", wrap=True, priority=1)]
    return list(by_model.values()), columns


def compare_command(
    models: ModelsArg,
    backend: BackendOpt = "torch,onnxruntime",
    precision: PrecisionOpt = "fp32",
    no_timing: Annotated[bool, typer.Option("--no-timing", help="Counts only: skip the latency columns.")] = False,
    device: DeviceOpt = "cpu",
    threads: ThreadsOpt = "1",
    resolution: ResolutionOpt = None,
    batch: BatchOpt = 1,
    min_time: MinTimeOpt = DEFAULT.min_time_s,
    min_runs: MinRunsOpt = DEFAULT.min_runs,
    plot: PlotOpt = None,
    input_shape: InputOpt = None,
    model_arg: ModelArgOpt = None,
    in_process: InProcessOpt = False,
    calibration: CalibrationOpt = "minmax",
    calibration_samples: CalibrationSamplesOpt = 32,
    parity_inputs: ParityInputsOpt = 16,
    force: ForceOpt = False,
    no_save: NoSaveOpt = False,
    db: DbOpt = DEFAULT_DB,
    no_db: NoDbOpt = False,
    fmt: FormatOpt = Format.table,
    output: OutputOpt = None,
) -> None:
    """Compare models side by side: params, MACs and latency per backend and precision, with ratios to the first.

    Latency is measured on PyTorch eager and ONNX Runtime (CPU, 1 thread, fp32) unless --backend,
    --precision or --no-timing say otherwise, each configuration in a fresh worker process
    (which also measures its peak memory; not with --in-process). Every configuration's output
    is checked against fp32 PyTorch eager (max |diff|, SQNR, top-1 agreement). With several
    configurations, a second table names each model's fastest one and its speed-up over fp32
    eager. The long rows (one per model, backend and precision) are also saved as CSV under
    reports/ (not with --no-save). A model that fails becomes a row with its error, the others
    go on, and the command then exits 1.

    Examples:

      cnnprof compare espnetv2 ghostnet

      cnnprof compare efficientnet_b0 mobilenetv3_large fbnet_c --plot pareto.png

      cnnprof compare ghostnet mobilenetv3_large --backend all --precision all --plot configs.png

      cnnprof compare 'ghostnet*' --no-timing --format md
    """
    from cnnprof import bench
    from cnnprof.cli import options, stored
    from cnnprof.cli.timed import quant_options, say_precision_context, show_fastest
    from cnnprof.plots import check_plot_path, macs_vs_latency
    from cnnprof.store.columns import Kind
    from cnnprof.targets import check_batch, parse_resolution, resolve_targets
    from cnnprof.timing.protocol import with_limits

    check_writable(output)
    check_plot_path(plot)
    check_distinct([output, plot], reference_files(models))
    backends, precisions, skipped, only_runnable = [], [], [], False
    quant = None
    if not no_timing:
        backends, all_backends = options.parse_backends(backend)
        precisions, all_precisions = options.parse_precisions(precision)
        only_runnable = all_backends or all_precisions
        quant = quant_options(calibration, calibration_samples)
    n_threads = options.parse_threads(threads)
    if not no_timing:
        protocol = with_limits(DEFAULT, min_time_s=min_time, min_runs=min_runs)
        plan = bench.make_plan(backends, precisions, device=device, threads=n_threads, protocol=protocol, quant=quant,
                               force=force, parity_inputs=parity_inputs, only_runnable=only_runnable)
        configs, skipped = plan.pairs, list(plan.skipped)
    targets = resolve_targets(models, input_shape=input_shape, model_args=model_arg, keep_errors=len(models) > 1)
    res = parse_resolution(resolution)
    check_batch(batch)
    copy = ReportCopy("compare", enabled=not no_save)
    recorder = stored.recorder("compare", db, no_db, outputs=[output, plot])
    if no_timing:
        def produce(update):
            return (row for row, _ in bench.count_rows(targets, resolution=res, batch=batch, on_progress=update))
    else:
        say_precision_context(precisions, skipped, device)

        def produce(update):
            return bench.bench_rows(targets, batches=[batch], resolution=res, isolate=not in_process,
                                    on_progress=update, plan=plan)
    rows, interrupted = collect(produce)
    if not rows:
        finish([], interrupted)
        return
    records = with_ratios(rows)
    fields = ProfileRow.field_names() + RATIO_FIELDS
    if fmt == Format.table and output is None:
        labels = [] if no_timing else list(dict.fromkeys(config_label(b, p) for b, p in configs))
        table_rows, columns = wide(rows, records, labels)
        settings = "" if no_timing else f"; latency: batch {batch}, {n_threads} thread(s), {device}"
        emit(table_rows, columns=columns, partial=interrupted,
             title=f"compared with {rows[0].model} (MACs = conv + linear multiply-adds{settings})")
    else:
        emit(records, columns=COUNT_COLUMNS, fmt=fmt, output=output, fields=fields, partial=interrupted)
    if not no_timing:
        show_fastest(rows, to_terminal=fmt == Format.table and output is None)
    copy.save(records, fields, partial=interrupted)
    recorder.save(rows, kind=Kind.PROFILE, partial=interrupted, threads=n_threads)
    if plot is not None and backends:
        macs_vs_latency(records, plot, title=f"MACs against latency ({n_threads} thread(s), batch {batch})",
                        by_precision=len(precisions) > 1 or precisions != ["fp32"])
    finish(rows, interrupted)
