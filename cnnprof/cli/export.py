"""``cnnprof export``: a model to ONNX, checked, run once, counted by the ONNX-graph counter."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cnnprof.cli.common import progress
from cnnprof.cli.options import WHERE, FormatOpt, InputOpt, ModelArgOpt, WeightsOpt, option
from cnnprof.files import check_writable
from cnnprof.report import Column, Format, emit
from cnnprof.terminal import say

COLUMNS = [
    Column("model", "model"),
    Column("path", "file"),
    Column("bytes", "size", "bytes"),
    Column("opset", "opset", "int"),
    Column("export_s", "export s", "float"),
    Column("params", "params (torch)", "count"),
    Column("params_onnx", "params (ONNX, BN folded)", "count"),
    Column("macs", "MACs (fvcore)", "macs"),
    Column("macs_onnx", "MACs (ONNX graph)", "macs"),
    Column("macs_rel_diff", "diff", "pct"),
    Column("counts_status", "status"),
    Column("parity_max_abs", "max |ORT - torch|", "float"),
]
FIELDS = [
    "model", "input", "path", "bytes", "opset", "dynamic_batch", "export_s", "params", "params_onnx", "macs",
    "macs_onnx", "macs_rel_diff", "counters_agree", "counts_status", "parity_max_abs", "parity_batch2_max_abs",
    "layer_diffs",
]


def export_command(
    model: Annotated[str, typer.Argument(help="A registered model name or alias, or a user model reference.")],
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset version.")] = 17,
    dynamic_batch: Annotated[bool, typer.Option("--dynamic-batch", help="Make the batch dimension dynamic.")] = False,
    output: Annotated[Optional[Path], option("output", help="Where to write the .onnx file "
                                                   f"(default models/NAME.onnx; {WHERE}).", dir_okay=False)] = None,
    input_shape: InputOpt = None,
    model_arg: ModelArgOpt = None,
    weights: WeightsOpt = "random",
    fmt: FormatOpt = Format.table,
) -> None:
    """Export a model to one ONNX file, check it, run it in ONNX Runtime, cross-check its MACs.

    The file is self-contained and checked with the ONNX checker; one run in ONNX Runtime gives
    the output difference against PyTorch, and the MACs read from the ONNX graph are compared
    with fvcore's (the two counters share no code; they must agree within 0.5%).

    Examples:

      cnnprof export ghostnet_100

      cnnprof export efficientnet_b0 --dynamic-batch --opset 18 -o b0.onnx

      cnnprof export tests/user_model.py:tiny_net --input 3x64x64
    """
    from cnnprof import targets
    from cnnprof.exporting import export_and_check
    from cnnprof.files import check_distinct
    from cnnprof.references import reference_files

    if output is not None and output.suffix.lower() != ".onnx":
        raise typer.BadParameter("the file name must end in .onnx", param_hint="--output")
    check_writable(output)
    check_distinct([output], reference_files([model]))
    target = targets.resolve_targets([model], input_shape=input_shape, model_args=model_arg, weights=weights)[0]
    with progress() as update:
        update(f"exporting {target.name}")
        row = export_and_check(target, output=output, opset=opset, dynamic_batch=dynamic_batch)
    emit([row.to_dict()], columns=COLUMNS, fmt=fmt, fields=FIELDS, title="ONNX export")
    if row.layer_diffs and fmt == Format.table:
        emit([d.__dict__ for d in row.layer_diffs], columns=[
            Column("module", "module"), Column("macs_fvcore", "MACs (fvcore)", "macs"),
            Column("macs_onnx", "MACs (ONNX)", "macs")], title="layers where the counters differ")
    say(f"wrote {row.path}")
    if not row.counters_agree:
        say(f"the two MAC counters differ by {100 * row.macs_rel_diff:.2f}% (> 0.5%)")
