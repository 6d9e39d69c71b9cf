"""``cnnprof bench``: latency, parity and peak memory of models on PyTorch eager, torch.compile, ONNX
Runtime, OpenVINO and TensorRT, in fp32, fp16, bf16 and int8."""

from __future__ import annotations

from typing import Annotated

import typer

from cnnprof.cli.options import (
    DEFAULT_DB,
    BackendOpt,
    CalibrationOpt,
    CalibrationSamplesOpt,
    CudaGraphsOpt,
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
from cnnprof.cli.timed import LATENCY_COLUMNS, PARITY_COLUMNS, ReportCopy, collect, finish
from cnnprof.files import check_distinct, check_writable
from cnnprof.references import reference_files
from cnnprof.report import Column, Format, emit
from cnnprof.rows import ProfileRow
from cnnprof.timing.protocol import DEFAULT

COLUMNS = [
    Column("model", "model", priority=0),
    Column("backend", "backend", priority=0),
    Column("precision", "precision", priority=0),
    Column("device", "device", priority=3),
    Column("threads", "threads", "int"),
    Column("batch", "batch", "int", priority=1),
    *LATENCY_COLUMNS,
    Column("latency_ms_ci_low", "CI95 low", "ms", priority=3),
    Column("latency_ms_ci_high", "CI95 high", "ms", priority=3),
    Column("throughput_per_s", "items/s", "float", priority=3),
    Column("gmacs_per_s", "GMAC/s", "float", priority=3),
    Column("setup_s", "setup s", "float", priority=3),
    *PARITY_COLUMNS,
    Column("warnings", "warnings", wrap=True, priority=3),
    Column("error", "error", wrap=True, priority=1),
]


def bench_command(
    models: ModelsArg,
    backend: BackendOpt = "torch",
    precision: PrecisionOpt = "fp32",
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
    cuda_graphs: CudaGraphsOpt = False,
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
    """Time models: warm-up, then at least --min-runs calls and --min-time seconds per configuration.

    Each backend x precision is timed in a fresh worker process (not with --in-process), which
    also measures the run's peak memory beyond the idle process (CUDA: max allocated). Rows carry
    median, mean, std, p10/p90/p99, IQR, min, a 95% interval of the median, throughput, achieved
    GMAC/s, set-up time (compile, session, engine) and first-run time, parity against fp32
    PyTorch eager on the same --parity-inputs images (max |diff|, SQNR in dB, top-1 agreement;
    per pixel for segmentation), peak memory, and warnings (noisy, few runs, machine busy, parity
    below its precision's limit). int8 is a static QDQ quantisation of the ONNX export,
    calibrated on synthetic images at the timed resolution and cached under models/. With
    several configurations, a second table names each model's fastest one and its speed-up over
    fp32 eager. Rows are also saved as CSV under reports/ (not with --no-save). A model that
    fails becomes a row with its error, the others go on, and the command then exits 1.

    Examples:

      cnnprof bench efficientnet_b0

      cnnprof bench mobilenetv3_small --backend onnxruntime,openvino --precision fp32,int8

      cnnprof bench ghostnet fbnet_c --backend all --precision all --plot configs.png

      cnnprof bench ghostnet mobilenetv3 --backend torch,onnxruntime --batch 1,8

      cnnprof bench efficientnet_b0 --device cuda --backend torch,tensorrt --precision fp16 --cuda-graphs

      cnnprof bench efficientnetv2_s --train --resolution 224
    """
    from cnnprof import bench
    from cnnprof.cli import options, stored
    from cnnprof.cli.common import say_warnings
    from cnnprof.cli.timed import quant_options, say_precision_context, show_fastest
    from cnnprof.plots import check_plot_path, latency_bars, macs_vs_latency
    from cnnprof.store.columns import Kind
    from cnnprof.targets import parse_resolution, resolve_targets
    from cnnprof.timing.protocol import with_limits

    check_writable(output)
    check_plot_path(plot)
    check_distinct([output, plot], reference_files(models))
    backends, all_backends = options.parse_backends(backend)
    precisions, all_precisions = options.parse_precisions(precision)
    quant = quant_options(calibration, calibration_samples)
    options.check_cuda_graphs(cuda_graphs, backends, device)
    batches = options.parse_batches(batch)
    n_threads = options.parse_threads(threads)
    protocol = with_limits(DEFAULT, min_time_s=min_time, min_runs=min_runs)
    plan = bench.make_plan(backends, precisions, device=device, threads=n_threads, channels_last=channels_last,
                           train=train, protocol=protocol, quant=quant, force=force, cuda_graphs=cuda_graphs,
                           parity_inputs=parity_inputs, only_runnable=all_backends or all_precisions)
    targets = resolve_targets(models, input_shape=input_shape, model_args=model_arg, keep_errors=len(models) > 1)
    res = parse_resolution(resolution)
    copy = ReportCopy("bench", enabled=not no_save)
    recorder = stored.recorder("bench", db, no_db, outputs=[output, plot])
    say_precision_context(precisions, list(plan.skipped), device)
    rows, interrupted = collect(
        lambda update: bench.bench_rows(targets, batches=batches, resolution=res, isolate=not in_process,
                                        on_progress=update, plan=plan)
    )
    records = [r.to_dict() for r in rows]
    fields = ProfileRow.field_names()
    title = "training step" if train else "inference latency"
    if records:
        emit(records, columns=COLUMNS, fmt=fmt, output=output, fields=fields, partial=interrupted, title=title)
        show_fastest(rows, to_terminal=fmt == Format.table and output is None)
        for r in rows:
            say_warnings(f"{r.model} ({r.backend} {r.precision}, batch {r.batch})", r.warnings)
        copy.save(records, fields, partial=interrupted)
        recorder.save(rows, kind=Kind.PROFILE, partial=interrupted, threads=n_threads)
        if plot is not None:
            if len({r.precision for r in rows}) > 1 or all_backends:
                macs_vs_latency(records, plot, title=f"{title}: MACs against latency per backend and precision",
                                by_precision=True)
            else:
                latency_bars(records, plot, title=title)
    finish(rows, interrupted)
