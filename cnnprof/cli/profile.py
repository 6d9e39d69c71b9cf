"""``cnnprof profile``: what each model costs (params, MACs, activations, bytes moved)."""

from __future__ import annotations

from typing import Annotated

import typer

from cnnprof.cli.common import progress
from cnnprof.cli.options import BatchOpt, FormatOpt, ModelsArg, OutputOpt, ResolutionOpt
from cnnprof.report import Column, Format, check_writable, emit

COUNT_COLUMNS = [
    Column("model", "model"),
    Column("input", "input"),
    Column("batch", "batch", "int"),
    Column("params", "params", "count"),
    Column("macs", "MACs (conv+linear)", "macs"),
    Column("macs_fvcore", "MACs (fvcore total)", "macs"),
    Column("activations", "activations", "count"),
    Column("bytes_moved", "bytes moved", "bytes"),
    Column("counts_status", "status"),
    Column("error", "error", wrap=True),
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


def profile_command(
    models: ModelsArg,
    resolution: ResolutionOpt = None,
    batch: BatchOpt = 1,
    depth: Annotated[int, typer.Option("--depth", "-d", min=0, help="Depth of the per-module table (one model, table format).")] = 2,
    fmt: FormatOpt = Format.table,
    output: OutputOpt = None,
) -> None:
    """Count params, MACs (conv + linear multiply-adds: the papers' "FLOPs"), activations and bytes moved.

    For a single model in table format, also the per-module table (to --depth) and the
    per-operator split, including the operators that ran but were not counted.

    Examples:

      cnnprof profile efficientnet_b0

      cnnprof profile 'ghostnet*' --format csv -o reports/ghostnet.csv

      cnnprof profile espnet --resolution 256x512 --depth 1
    """
    from cnnprof import api

    check_writable(output)
    targets = api.resolve_targets(models)
    res = api.parse_resolution(resolution)
    api.check_batch(batch)
    with progress() as update:
        results = api.count_rows(targets, resolution=res, batch=batch, on_progress=update)
    rows = [row for row, _ in results]
    emit(rows, columns=COUNT_COLUMNS, fmt=fmt, output=output)
    if fmt == Format.table and output is None and len(results) == 1 and results[0][1] is not None:
        _print_details(results[0][1], depth)


def _print_details(counts, depth: int) -> None:
    from cnnprof.counting import CONV_LINEAR_OPS
    from cnnprof.report import stdout_console

    console = stdout_console()
    modules = [
        {**m.__dict__, "name": m.name or "(model)", "macs_share": (m.macs / counts.macs) if counts.macs else None}
        for m in counts.modules
        if m.depth <= depth and (m.params or m.macs or m.depth == 0)
    ]
    emit(modules, columns=MODULE_COLUMNS, title=f"per module (depth <= {depth})", console=console)
    ops = [
        {"op": op, "macs": v, "counted_in": "macs, macs_fvcore" if op in CONV_LINEAR_OPS else "macs_fvcore only", "calls": None}
        for op, v in sorted(counts.by_op.items(), key=lambda kv: -kv[1])
    ]
    ops += [{"op": op, "macs": None, "counted_in": "not counted", "calls": n} for op, n in sorted(counts.uncounted.items())]
    emit(ops, columns=OP_COLUMNS, title=f"per operator (counts: {counts.status})", console=console)
