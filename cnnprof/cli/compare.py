"""``cnnprof compare``: models side by side, with ratios to the first."""

from __future__ import annotations

import time
from pathlib import Path

from cnnprof.cli.common import progress, stderr_console
from cnnprof.cli.options import BatchOpt, FormatOpt, ModelsArg, OutputOpt, ResolutionOpt
from cnnprof.report import Column, Format, check_writable, emit, render_text, write_atomic
from cnnprof.rows import ProfileRow

RATIO_FIELDS = ["params_ratio", "macs_ratio"]
COLUMNS = [
    Column("model", "model"),
    Column("input", "input"),
    Column("params", "params", "count"),
    Column("params_ratio", "params / first", "ratio"),
    Column("macs", "MACs", "macs"),
    Column("macs_ratio", "MACs / first", "ratio"),
    Column("activations", "activations", "count"),
    Column("error", "error", wrap=True),
]


def _ratio(value, base):
    return value / base if value is not None and base else None


def compare_command(
    models: ModelsArg,
    resolution: ResolutionOpt = None,
    batch: BatchOpt = 1,
    fmt: FormatOpt = Format.table,
    output: OutputOpt = None,
) -> None:
    """Compare models side by side, with ratios to the first model.

    The rows are also saved as CSV under reports/ (the path is printed on stderr).

    Examples:

      cnnprof compare espnetv2 ghostnet

      cnnprof compare efficientnet_b0 mobilenetv3_large fbnet_c --format md
    """
    from cnnprof import api

    check_writable(output)
    targets = api.resolve_targets(models)
    res = api.parse_resolution(resolution)
    api.check_batch(batch)
    with progress() as update:
        results = api.count_rows(targets, resolution=res, batch=batch, on_progress=update)
    rows = [row for row, _ in results]
    base = rows[0]
    records = [
        {**row.to_dict(), "params_ratio": _ratio(row.params, base.params), "macs_ratio": _ratio(row.macs, base.macs)}
        for row in rows
    ]
    fields = ProfileRow.field_names() + RATIO_FIELDS
    emit(records, columns=COLUMNS, fmt=fmt, output=output, fields=fields,
         title="compared with " + base.model + " (MACs = conv + linear multiply-adds)")
    saved = save_report("compare", records, fields)
    stderr_console().print(f"saved {saved}", highlight=False)


def save_report(kind: str, records: list[dict], fields: list[str]) -> Path:
    """Keep a CSV copy under reports/ (created if needed), named by command and time."""
    folder = Path("reports")
    folder.mkdir(exist_ok=True)
    path = folder / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}.csv"
    return write_atomic(path, render_text(records, fields, [], Format.csv))
