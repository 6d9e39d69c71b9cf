"""``cnnprof profile``: what each model costs (params, MACs, activations, bytes moved) and, with
``--timing``, where its time goes layer by layer (latency against MACs, bytes and the roofline)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cnnprof.cli.common import progress, say_warnings
from cnnprof.cli.options import (
    DEFAULT_DB,
    BatchOpt,
    DbOpt,
    FormatOpt,
    InputOpt,
    ModelArgOpt,
    WeightsOpt,
    ModelsArg,
    NoDbOpt,
    OutputOpt,
    ResolutionOpt,
    option,
)
from cnnprof.cli.timed import fail_on_error_rows
from cnnprof.files import check_distinct, check_writable
from cnnprof.references import reference_files
from cnnprof.report import Column, Format, emit
from cnnprof.rows import ProfileRow
from cnnprof.timing.protocol import PER_LAYER

TOP_DEFAULT = 5
DEPTH_DEFAULT = 2

COUNT_COLUMNS = [
    Column("model", "model", priority=0),
    Column("input", "input", priority=0),
    Column("batch", "batch", "int", priority=1),
    Column("params", "params", "count", priority=1),
    Column("macs", "MACs (conv+linear)", "macs", priority=1),
    Column("macs_fvcore", "MACs (fvcore total)", "macs", priority=3),
    Column("activations", "activations", "count", priority=3),
    Column("peak_activation_bytes", "peak activations", "bytes"),
    Column("bytes_moved", "bytes moved", "bytes", priority=3),
    Column("counts_status", "status"),
    Column("error", "error", wrap=True, priority=1),
]
MODULE_COLUMNS = [
    Column("name", "module"),
    Column("kind", "type"),
    Column("params", "params", "count"),
    Column("macs", "MACs (conv+linear)", "macs"),
    Column("macs_share", "share", "pct"),
    Column("macs_fvcore", "MACs (fvcore)", "macs"),
]
OP_COLUMNS = [
    Column("op", "operator"),
    Column("macs", "multiply-adds", "macs"),
    Column("counted_in", "counted in"),
    Column("calls", "calls (uncounted ops)", "int"),
]

DepthOpt = Annotated[Optional[int], typer.Option(
    "--depth", "-d", min=0, show_default=False,
    help="Depth of the per-module table (one model, table format; default 2). With --timing: time the "
         "modules at this depth instead of the leaf layers.")]


def profile_command(
    models: ModelsArg,
    resolution: ResolutionOpt = None,
    batch: BatchOpt = 1,
    depth: DepthOpt = None,
    input_shape: InputOpt = None,
    model_arg: ModelArgOpt = None,
    weights: WeightsOpt = "random",
    fmt: FormatOpt = Format.table,
    output: OutputOpt = None,
    timing: Annotated[bool, typer.Option(
        "--timing", help="Time every layer and join it with its MACs and bytes: achieved GMAC/s, MACs per byte, "
                         "share of latency against share of MACs, op kind, per-kind summary, coverage.")] = False,
    backend: Annotated[Optional[str], option(
        "backend", show_default=False,
        help="With --timing: torch (eager, forward hooks; default) or onnxruntime (its profiler, nodes mapped "
             "back to modules).")] = None,
    top: Annotated[Optional[int], typer.Option(
        "--top", show_default=False,
        help=f"With --timing: list first the N layers whose latency share most exceeds their MAC share "
             f"(default {TOP_DEFAULT}).")] = None,
    plot: Annotated[Optional[Path], option(
        "plot", dir_okay=False, show_default=False,
        help="With --timing: draw the roofline (MACs/byte against achieved GMAC/s, this machine's roofs) "
             "to this .png/.svg/.pdf.")] = None,
    threads: Annotated[Optional[str], option(
        "threads", show_default=False,
        help="With --timing: intra-op threads, N or 'all' (default 1).")] = None,
    min_time: Annotated[Optional[float], option(
        "min_time", min=0.0, show_default=False,
        help=f"With --timing: measure for at least this many seconds per model "
             f"(default {PER_LAYER.min_time_s:g}).")] = None,
    min_runs: Annotated[Optional[int], option(
        "min_runs", min=1, max=100_000, show_default=False,
        help=f"With --timing: at least this many timed runs per model (default {PER_LAYER.min_runs}).")] = None,
    db: DbOpt = DEFAULT_DB,
    no_db: NoDbOpt = False,
) -> None:
    """Count params, MACs (conv + linear multiply-adds: the papers' "FLOPs"), activations, their peak, bytes moved.

    Peak activations: the largest sum of fp32 activation bytes alive at one time in execution
    order (a tensor lives from the operation that makes it to the last one that reads it; the
    input from the start, the output to the end; views and in-place results count once), at
    the given --batch.

    For a single model in table format, also the per-module table (to --depth) and the
    per-operator split, including the operators that ran but were not counted.

    With --timing: per-layer latency (median over many runs, 1 thread by default) joined
    with each layer's MACs and bytes moved, the top mismatches (latency share most above
    MAC share) first, a summary per op kind, and the coverage (sum of per-layer times
    against the whole-model latency). CSV/JSON: one row per layer.

    Examples:

      cnnprof profile efficientnet_b0

      cnnprof profile 'ghostnet*' --format csv -o reports/ghostnet.csv

      cnnprof profile espnet --resolution 256x512 --depth 1

      cnnprof profile path/to/my_net.py:build --input 3x224x224

      cnnprof profile models/my_net.onnx

      cnnprof profile efficientnet_b0 --timing --top 10 --plot roofline.png

      cnnprof profile ghostnet --timing --backend onnxruntime -f csv -o ghostnet-layers.csv
    """
    check_writable(output)
    check_distinct([output, plot], reference_files(models))
    if timing:  # per-layer latency
        return _run_timing(models, resolution=resolution, batch=batch, depth=depth, input_shape=input_shape,
                           model_arg=model_arg, weights=weights, fmt=fmt, output=output, backend=backend, top=top,
                           plot=plot, threads=threads, min_time=min_time, min_runs=min_runs, db=None if no_db else db)
    _without_timing(backend=backend, top=top, plot=plot, threads=threads, min_time=min_time, min_runs=min_runs)
    _count(models, resolution=resolution, batch=batch, depth=DEPTH_DEFAULT if depth is None else depth,
           input_shape=input_shape, model_arg=model_arg, weights=weights, fmt=fmt, output=output, db=db, no_db=no_db)


def _without_timing(**given_options) -> None:
    """The options that only --timing reads are refused without it (one line naming them)."""
    given = [f"--{name.replace('_', '-')}" for name, value in given_options.items() if value is not None]
    if given:
        from cnnprof.errors import UsageError

        raise UsageError(f"{', '.join(given)} {'needs' if len(given) == 1 else 'need'} --timing")


def _count(models, *, resolution, batch, depth, input_shape, model_arg, weights, fmt, output, db, no_db) -> None:
    """``profile``: the counts of every model, and for one model on a terminal its details."""
    from cnnprof import bench
    from cnnprof.cli import stored
    from cnnprof.rows import RowKind
    from cnnprof.targets import check_batch, parse_resolution, resolve_targets

    targets = resolve_targets(models, input_shape=input_shape, model_args=model_arg, keep_errors=len(models) > 1,
                              weights=weights)
    res = parse_resolution(resolution)
    check_batch(batch)
    recorder = stored.recorder("profile", db, no_db, outputs=[output])
    with progress() as update:
        results = bench.count_rows(targets, resolution=res, batch=batch, on_progress=update)
    rows = [row for row, _ in results]
    emit(rows, columns=COUNT_COLUMNS, fmt=fmt, output=output, fields=ProfileRow)
    recorder.save(rows, kind=RowKind.PROFILE)
    if fmt == Format.table and output is None and len(results) == 1 and results[0][1] is not None:
        _print_details(results[0][1], depth)
    fail_on_error_rows(rows)


def _print_details(counts, depth: int) -> None:
    from cnnprof.counting import CONV_LINEAR_OPS
    from cnnprof.terminal import stdout_console

    console = stdout_console()
    modules = [
        {**m.__dict__, "name": m.name or "(model)", "macs_share": (m.macs / counts.macs) if counts.macs else None}
        for m in counts.modules
        if m.depth <= depth and (m.params or m.macs or m.depth == 0)
    ]
    if modules:  # an ONNX file has no module tree
        emit(modules, columns=MODULE_COLUMNS, title=f"per module (depth <= {depth})", console=console)
    onnx_graph = counts.macs_fvcore is None  # counted from an ONNX graph: every listed op is in macs

    def counted_in(op: str) -> str:
        if onnx_graph:
            return "macs (ONNX graph)"
        return "macs, macs_fvcore" if op in CONV_LINEAR_OPS else "macs_fvcore only"

    ops = [
        {"op": op, "macs": v, "counted_in": counted_in(op), "calls": None}
        for op, v in sorted(counts.by_op.items(), key=lambda kv: -kv[1])
    ]
    ops += [{"op": op, "macs": None, "counted_in": "not counted", "calls": n} for op, n in sorted(counts.uncounted.items())]
    emit(ops, columns=OP_COLUMNS, title=f"per operator (counts: {counts.status})", console=console)


# -- --timing -------------------------------------------------------------------------------------
LAYER_COLUMNS = [
    Column("index", "#", "int"),
    Column("name", "layer"),
    Column("op_kind", "op kind"),
    Column("output", "output"),
    Column("macs", "MACs", "macs"),
    Column("bytes_moved", "bytes", "bytes"),
    Column("intensity", "MACs/B", "float"),
    Column("latency_ms", "latency", "ms"),
    Column("latency_share", "% time", "pct"),
    Column("macs_share", "% MACs", "pct"),
    Column("gmacs_per_s", "GMAC/s", "float"),
    Column("roof_fraction", "% roof", "pct"),
]
TOP_COLUMNS = [
    Column("mismatch_rank", "rank", "int"),
    Column("name", "layer"),
    Column("op_kind", "op kind"),
    Column("output", "output"),
    Column("macs", "MACs", "macs"),
    Column("latency_ms", "latency", "ms"),
    Column("latency_share", "% time", "pct"),
    Column("macs_share", "% MACs", "pct"),
    Column("share_gap", "gap", "pct"),
    Column("gmacs_per_s", "GMAC/s", "float"),
    Column("gbytes_per_s", "GB/s", "float"),
    Column("intensity", "MACs/B", "float"),
]
KIND_COLUMNS = [
    Column("op_kind", "op kind"),
    Column("layers", "layers", "int"),
    Column("macs", "MACs", "macs"),
    Column("macs_share", "% MACs", "pct"),
    Column("latency_ms", "latency", "ms"),
    Column("latency_share", "% time", "pct"),
    Column("gmacs_per_s", "GMAC/s", "float"),
]


def _run_timing(models, *, resolution, batch, depth, input_shape, model_arg, weights, fmt, output, backend, top, plot,
                threads, min_time, min_runs, db) -> None:
    """``profile --timing``: per-layer latency joined with counts; tables, rows, roofline."""
    from cnnprof import layerprof, machine
    from cnnprof.cli import options, stored
    from cnnprof.errors import UsageError
    from cnnprof.plots import check_plot_path
    from cnnprof.rows import RowKind
    from cnnprof.targets import check_batch, parse_resolution, resolve_targets, target_input
    from cnnprof.terminal import say
    from cnnprof.timing.protocol import with_limits

    backend = layerprof.check_backend(backend or "torch")
    top = TOP_DEFAULT if top is None else top
    if top < 1:
        raise UsageError(f"--top must be at least 1, got {top}")
    check_plot_path(plot)
    n_threads = options.parse_threads(threads or "1")
    protocol = with_limits(PER_LAYER, min_time_s=min_time, min_runs=min_runs)
    targets = resolve_targets(models, input_shape=input_shape, model_args=model_arg, keep_errors=len(models) > 1,
                              weights=weights)
    res = parse_resolution(resolution)
    check_batch(batch)
    for t in targets:
        target_input(t, res, batch=batch)  # a bad resolution fails before the machine is measured
    recorder = stored.recorder("profile", db, db is None, outputs=[output, plot])
    profiles = []
    with progress() as update:
        if machine.load(n_threads) is None:
            update(f"measuring this machine's roofs at {n_threads} thread(s), once (see `cnnprof machine`)")
        roofs, _ = machine.roofs(n_threads, on_warning=lambda m: say(f"warning: {m}"))
        for profile in layerprof.profile_targets(
            targets, backend=backend, threads=n_threads, batch=batch, depth=depth, resolution=res,
            protocol=protocol, roofs=roofs, on_progress=update,
        ):
            profiles.append(profile)
    records = [r.to_dict() for p in profiles for r in p.ordered(top)]
    recorder.save(records, kind=RowKind.LAYER, threads=n_threads, context={"roofs": roofs.to_dict()})
    fields = layerprof.LayerRow.field_names()
    if fmt != Format.table or output is not None:
        emit(records, columns=LAYER_COLUMNS, fmt=fmt, output=output, fields=fields)
    else:
        _print_timing_tables(profiles, top, roofs)
    for p in profiles:
        say_warnings(p.model, p.warnings)
    if plot is not None and any(not p.error for p in profiles):
        from cnnprof.plots import roofline

        names = ", ".join(p.model for p in profiles if not p.error)
        shape = next((p.input for p in profiles if not p.error), "")
        roofline(records, roofs, plot, label_top=top,
                 title=f"{names} ({shape}, {backend}, {n_threads} thread(s), batch {batch}) on {roofs.cpu}")
        say(f"saved {plot}")
    fail_on_error_rows(profiles)


def coverage_line(p) -> str:
    """The coverage statement: per-layer sum against whole-model latency."""
    from cnnprof.timing.backends import Backend

    what = "hooks" if Backend(p.backend).is_torch else "profiling"
    return (f"coverage: the per-layer medians sum to {p.layers_sum_ms:.2f} ms = {100 * p.coverage:.1f}% of the "
            f"whole-model median {p.model_latency_ms:.2f} ms (runs without {what}, interleaved with the "
            f"{p.runs} runs with {what}); within each run with {what} the layers account for "
            f"{100 * p.coverage_in_run:.1f}% of it (median; that run's median {p.instrumented_latency_ms:.2f} ms)")


def _print_timing_tables(profiles, top: int, roofs) -> None:
    from cnnprof.terminal import stdout_console

    console = stdout_console()
    console.print(f"machine: {roofs.cpu}, {roofs.threads} thread(s): compute roof {roofs.peak_gmacs:.1f} GMAC/s, "
                  f"bandwidth roof {roofs.bandwidth_gbs:.1f} GB/s, ridge {roofs.ridge:.2f} MACs/byte "
                  f"(measured {roofs.measured_at})", soft_wrap=True)
    for p in profiles:
        console.print(f"\n{p.model} ({p.input}, batch {p.batch}, {p.backend}, {p.threads} thread(s))",
                      style="bold", soft_wrap=True)
        if p.error:
            emit([{"model": p.model, "error": p.error}], columns=[Column("model", "model"),
                 Column("error", "error", wrap=True)], console=console)
            continue
        rows = [r.to_dict() for r in p.ordered(top)]
        ranked = [r for r in rows if r["mismatch_rank"] is not None]
        emit(ranked, columns=TOP_COLUMNS, console=console,
             title=f"top {len(ranked)}: share of latency most above share of MACs")
        emit([r.to_dict() for r in p.rows], columns=LAYER_COLUMNS, console=console,
             title=f"per layer, in execution order ({len(p.rows)} layers)")
        emit([k.to_dict() for k in p.kinds], columns=KIND_COLUMNS, console=console,
             title="per op kind (shares of the per-layer sums)")
        console.print(coverage_line(p), soft_wrap=True)
