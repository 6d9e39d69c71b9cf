"""``cnnprof compare``: models side by side, with ratios to the first, counted and timed."""

from __future__ import annotations

from typing import Annotated

import typer

from cnnprof.cli.options import (
    DEFAULT_DB,
    BackendOpt,
    BatchOpt,
    DbOpt,
    DeviceOpt,
    FormatOpt,
    InputOpt,
    MinRunsOpt,
    MinTimeOpt,
    ModelArgOpt,
    ModelsArg,
    NoDbOpt,
    NoSaveOpt,
    OutputOpt,
    PlotOpt,
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
    Column("params_ratio", "/ first", "ratio", priority=3),
    Column("macs", "MACs", "macs", priority=1),
    Column("macs_ratio", "/ first", "ratio"),
]


def _ratio(value, base):
    return value / base if value is not None and base else None


def with_ratios(rows: list[ProfileRow]) -> list[dict]:
    """Long rows (one per model x backend) with ratios to the first model on the same backend."""
    first_model = rows[0].model
    firsts = {r.backend: r for r in rows if r.model == first_model}
    out = []
    for r in rows:
        base = firsts.get(r.backend, rows[0])
        out.append({
            **r.to_dict(),
            "params_ratio": _ratio(r.params, base.params),
            "macs_ratio": _ratio(r.macs, base.macs),
            "latency_ratio": _ratio(r.latency_ms_median, base.latency_ms_median),
        })
    return out


def wide(rows: list[ProfileRow], records: list[dict], backends: list[str]) -> tuple[list[dict], list[Column]]:
    """One line per model for the terminal: counts, then median latency and ratio per backend
    (``records`` are ``rows`` with their ratios)."""
    by_model: dict[str, dict] = {}
    for row, r in zip(rows, records):
        line = by_model.setdefault(r["model"], {k: r.get(k) for k in ("model", "input", "params", "params_ratio",
                                                                       "macs", "macs_ratio")})
        if r.get("backend"):
            line[f"{r['backend']}_ms"] = r.get("latency_ms_median")
            line[f"{r['backend']}_ratio"] = r.get("latency_ratio")
            if r.get("parity_max_abs") is not None:
                line["parity"] = max(line.get("parity") or 0.0, r["parity_max_abs"])
        errors = [e for e in (line.get("error"), r.get("error")) if e]
        line["error"] = "; ".join(dict.fromkeys(errors))
        if row.warnings:
            tags = ", ".join(row.warnings.kinds())
            line["warnings"] = "; ".join(filter(None, [line.get("warnings"), f"{row.backend}: {tags}"]))
    columns = list(COUNT_COLUMNS)
    for b in backends:
        columns += [Column(f"{b}_ms", f"{b} median", "ms", priority=1), Column(f"{b}_ratio", "/ first", "ratio")]
    if any("parity" in line for line in by_model.values()):
        columns.append(Column("parity", "max |diff| vs torch", "float", priority=3))
    columns += [Column("warnings", "warnings", wrap=True, priority=3), Column("error", "error", wrap=True, priority=1)]
    return list(by_model.values()), columns


def compare_command(
    models: ModelsArg,
    backend: BackendOpt = "torch,onnxruntime",
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
    no_save: NoSaveOpt = False,
    db: DbOpt = DEFAULT_DB,
    no_db: NoDbOpt = False,
    fmt: FormatOpt = Format.table,
    output: OutputOpt = None,
) -> None:
    """Compare models side by side: params, MACs and latency per backend, with ratios to the first.

    Latency is measured on PyTorch eager and ONNX Runtime (CPU, 1 thread) unless --backend or
    --no-timing say otherwise; ONNX Runtime's output is checked against PyTorch's (max |diff|).
    The long rows (one per model and backend) are also saved as CSV under reports/ (not with
    --no-save). A model that fails becomes a row with its error, the others go on, and the
    command then exits 1.

    Examples:

      cnnprof compare espnetv2 ghostnet

      cnnprof compare efficientnet_b0 mobilenetv3_large fbnet_c --plot pareto.png

      cnnprof compare 'ghostnet*' --no-timing --format md
    """
    from cnnprof import bench, timing
    from cnnprof.cli import options, stored
    from cnnprof.plots import check_plot_path, macs_vs_latency
    from cnnprof.store.columns import Kind
    from cnnprof.targets import check_batch, parse_resolution, resolve_targets
    from cnnprof.timing.protocol import with_limits

    check_writable(output)
    check_plot_path(plot)
    check_distinct([output, plot], reference_files(models))
    backends = [] if no_timing else options.parse_list(backend, what="backend", choices=timing.BACKENDS)
    n_threads = options.parse_threads(threads)
    targets = resolve_targets(models, input_shape=input_shape, model_args=model_arg, keep_errors=len(models) > 1)
    res = parse_resolution(resolution)
    check_batch(batch)
    copy = ReportCopy("compare", enabled=not no_save)
    recorder = stored.recorder("compare", db, no_db, outputs=[output, plot])
    if no_timing:
        def produce(update):
            return (row for row, _ in bench.count_rows(targets, resolution=res, batch=batch, on_progress=update))
    else:
        protocol = with_limits(DEFAULT, min_time_s=min_time, min_runs=min_runs)

        def produce(update):
            return bench.bench_rows(targets, backends=backends, device=device, batches=[batch], threads=n_threads,
                                  resolution=res, protocol=protocol, on_progress=update)
    rows, interrupted = collect(produce)
    if not rows:
        finish([], interrupted)
        return
    records = with_ratios(rows)
    fields = ProfileRow.field_names() + RATIO_FIELDS
    if fmt == Format.table and output is None:
        table_rows, columns = wide(rows, records, backends)
        settings = "" if no_timing else f"; latency: batch {batch}, {n_threads} thread(s), {device}"
        emit(table_rows, columns=columns, partial=interrupted,
             title=f"compared with {rows[0].model} (MACs = conv + linear multiply-adds{settings})")
    else:
        emit(records, columns=COUNT_COLUMNS, fmt=fmt, output=output, fields=fields, partial=interrupted)
    copy.save(records, fields, partial=interrupted)
    recorder.save(rows, kind=Kind.PROFILE, partial=interrupted, threads=n_threads)
    if plot is not None and backends:
        macs_vs_latency(records, plot, title=f"MACs against latency ({n_threads} thread(s), batch {batch})")
    finish(rows, interrupted)
