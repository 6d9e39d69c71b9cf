"""``cnnprof bench``: latency of models on PyTorch eager, torch.compile and ONNX Runtime."""

from __future__ import annotations

from typing import Annotated

import typer

from cnnprof.cli.options import (
    DEFAULT_DB,
    BackendOpt,
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
from cnnprof.cli.timed import LATENCY_COLUMNS, ReportCopy, collect, finish
from cnnprof.files import check_distinct, check_writable
from cnnprof.references import reference_files
from cnnprof.report import Column, Format, emit
from cnnprof.rows import ProfileRow
from cnnprof.timing.protocol import DEFAULT

COLUMNS = [
    Column("model", "model", priority=0),
    Column("backend", "backend", priority=0),
    Column("device", "device", priority=3),
    Column("threads", "threads", "int"),
    Column("batch", "batch", "int", priority=1),
    *LATENCY_COLUMNS,
    Column("latency_ms_ci_low", "CI95 low", "ms", priority=3),
    Column("latency_ms_ci_high", "CI95 high", "ms", priority=3),
    Column("throughput_per_s", "items/s", "float", priority=3),
    Column("gmacs_per_s", "GMAC/s", "float", priority=3),
    Column("setup_s", "setup s", "float", priority=3),
    Column("parity_max_abs", "max |diff|", "float"),
    Column("warnings", "warnings", wrap=True, priority=3),
    Column("error", "error", wrap=True, priority=1),
]


def bench_command(
    models: ModelsArg,
    backend: BackendOpt = "torch",
    device: DeviceOpt = "cpu",
    batch: Annotated[str, typer.Option("--batch", "-b", help="Batch sizes, comma-separated (e.g. 1,8,32).")] = "1",
    threads: ThreadsOpt = "1",
    channels_last: Annotated[bool, typer.Option("--channels-last", help="NHWC memory format (torch backends).")] = False,
    train: Annotated[bool, typer.Option("--train", help="Time a training step: forward, backward, SGD step.")] = False,
    resolution: ResolutionOpt = None,
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
    """Time models: warm-up, then at least --min-runs calls and --min-time seconds per configuration.

    Rows carry median, mean, std, p10/p90/p99, IQR, min, a 95% interval of the median,
    throughput, achieved GMAC/s, set-up time (compile, ONNX session) and first-run time, the
    output difference against PyTorch eager, and warnings (noisy, few runs, machine busy).
    Rows are also saved as CSV under reports/ (not with --no-save). A model that fails becomes a
    row with its error, the others go on, and the command then exits 1.

    Examples:

      cnnprof bench efficientnet_b0

      cnnprof bench ghostnet mobilenetv3 --backend torch,onnxruntime --batch 1,8

      cnnprof bench efficientnetv2_s --train --resolution 224

      cnnprof bench fbnet_c --threads all --plot latency.png
    """
    from cnnprof import bench, timing
    from cnnprof.cli import options, stored
    from cnnprof.plots import check_plot_path, latency_bars
    from cnnprof.store.columns import Kind
    from cnnprof.targets import parse_resolution, resolve_targets
    from cnnprof.timing.protocol import with_limits

    check_writable(output)
    check_plot_path(plot)
    check_distinct([output, plot], reference_files(models))
    backends = options.parse_list(backend, what="backend", choices=timing.BACKENDS)
    batches = options.parse_batches(batch)
    n_threads = options.parse_threads(threads)
    targets = resolve_targets(models, input_shape=input_shape, model_args=model_arg, keep_errors=len(models) > 1)
    res = parse_resolution(resolution)
    copy = ReportCopy("bench", enabled=not no_save)
    recorder = stored.recorder("bench", db, no_db, outputs=[output, plot])
    protocol = with_limits(DEFAULT, min_time_s=min_time, min_runs=min_runs)
    rows, interrupted = collect(
        lambda update: bench.bench_rows(
            targets, backends=backends, device=device, batches=batches, threads=n_threads,
            channels_last=channels_last, train=train, resolution=res, protocol=protocol, on_progress=update,
        )
    )
    records = [r.to_dict() for r in rows]
    fields = ProfileRow.field_names()
    if records:
        emit(records, columns=COLUMNS, fmt=fmt, output=output, fields=fields, partial=interrupted,
             title="training step" if train else "inference latency")
        copy.save(records, fields, partial=interrupted)
        recorder.save(rows, kind=Kind.PROFILE, partial=interrupted, threads=n_threads)
        if plot is not None:
            latency_bars(records, plot, title="training step" if train else "inference latency")
    finish(rows, interrupted)
