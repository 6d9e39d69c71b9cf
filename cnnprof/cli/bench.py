"""``cnnprof bench``: latency, parity and peak memory of models on PyTorch eager, torch.compile, ONNX
Runtime, OpenVINO and TensorRT, in fp32, fp16, bf16 and int8."""

from __future__ import annotations

from typing import Annotated

import typer

from cnnprof.cli.options import BackendOpt, BatchesOpt, CudaGraphsOpt, Measure, ModelsArg, grouped
from cnnprof.cli.timed import LATENCY_COLUMNS, PARITY_COLUMNS, collect, finish
from cnnprof.report import Column, Format, emit
from cnnprof.rows import ProfileRow

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


@grouped
def bench_command(
    models: ModelsArg,
    backend: BackendOpt = "torch",
    batch: BatchesOpt = "1",
    channels_last: Annotated[bool, typer.Option("--channels-last", help="NHWC memory format (torch backends).")] = False,
    train: Annotated[bool, typer.Option("--train", help="Time a training step: forward, backward, SGD step.")] = False,
    cuda_graphs: CudaGraphsOpt = False,
    m: Measure = Measure(),
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

      cnnprof bench efficientnet_lite0 --weights package --backend onnxruntime --precision fp32,int8
    """
    from cnnprof.cli.timed import measure, plan

    p = plan("bench", models, m, backend=backend, batch=batch, cuda_graphs=cuda_graphs, channels_last=channels_last,
             train=train)
    rows, interrupted = collect(measure(p, m))
    if rows:
        _report(rows, m, p, interrupted, title="training step" if train else "inference latency")
    finish(rows, interrupted)


def _report(rows: list[ProfileRow], m: Measure, p, interrupted: bool, *, title: str) -> None:
    """The rows as asked (--format, --output), the fastest configurations, warnings, the CSV copy,
    the database and the plot."""
    from cnnprof.cli.common import say_warnings
    from cnnprof.cli.timed import say_parity_weights, show_fastest
    from cnnprof.plots import latency_bars, macs_vs_latency
    from cnnprof.rows import RowKind

    records = [r.to_dict() for r in rows]
    fields = ProfileRow.field_names()
    emit(records, columns=COLUMNS, fmt=m.fmt, output=m.output, fields=fields, partial=interrupted, title=title)
    show_fastest(rows, to_terminal=m.fmt == Format.table and m.output is None)
    say_parity_weights(rows)
    for r in rows:
        say_warnings(f"{r.model} ({r.backend} {r.precision}, batch {r.batch})", r.warnings)
    p.copy.save(records, fields, partial=interrupted)
    p.recorder.save(rows, kind=RowKind.PROFILE, partial=interrupted, threads=p.threads)
    if m.plot is not None:
        if len({r.precision for r in rows}) > 1 or p.all_backends:
            macs_vs_latency(records, m.plot, title=f"{title}: MACs against latency per backend and precision",
                            by_precision=True)
        else:
            latency_bars(records, m.plot, title=title)
