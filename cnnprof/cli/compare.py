"""``cnnprof compare``: models side by side, with ratios to the first, counted and timed."""

from __future__ import annotations

from typing import Annotated

import typer

from cnnprof.cli.options import BackendOpt, BatchesOpt, Measure, ModelsArg, grouped
from cnnprof.cli.timed import collect, finish
from cnnprof.report import Column, Format, emit
from cnnprof.rows import ProfileRow

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
    """Long rows (one per model x backend x precision x batch) with ratios to the first model on the
    same backend, precision and batch."""
    first_model = rows[0].model
    firsts = {(r.backend, r.precision, r.batch): r for r in rows if r.model == first_model}
    out = []
    for r in rows:
        base = firsts.get((r.backend, r.precision, r.batch), rows[0])
        out.append({
            **r.to_dict(),
            "params_ratio": _ratio(r.params, base.params),
            "macs_ratio": _ratio(r.macs, base.macs),
            "latency_ratio": _ratio(r.latency_ms_median, base.latency_ms_median),
        })
    return out


def wide(rows: list[ProfileRow], records: list[dict], backends: list[str]) -> tuple[list[dict], list[Column]]:
    """One line per model (and batch size, when several) for the terminal: counts, then median
    latency and ratio per backend and precision (``records`` are ``rows`` with their ratios;
    ``backends`` the configuration labels in order, see ``config_label``)."""
    by_model: dict[tuple, dict] = {}
    several = len({r.get("batch") for r in records}) > 1
    for row, r in zip(rows, records):
        keys = ("model", "batch", "input", "params", "params_ratio", "macs", "macs_ratio") if several else (
            "model", "input", "params", "params_ratio", "macs", "macs_ratio")
        line = by_model.setdefault((r["model"], r.get("batch")), {k: r.get(k) for k in keys})
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
    columns = COUNT_COLUMNS[:1] + [Column("batch", "batch", "int", priority=1)] + COUNT_COLUMNS[1:] if several else (
        list(COUNT_COLUMNS))
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


@grouped
def compare_command(
    models: ModelsArg,
    backend: BackendOpt = "torch,onnxruntime",
    no_timing: Annotated[bool, typer.Option("--no-timing", help="Counts only: skip the latency columns.")] = False,
    batch: BatchesOpt = "1",
    m: Measure = Measure(),
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
    from cnnprof.cli.timed import measure, plan

    p = plan("compare", models, m, backend=backend, batch=batch, timed=not no_timing)
    rows, interrupted = collect(_counted(p) if no_timing else measure(p, m))
    if rows:
        _report(rows, m, p, interrupted, timed=not no_timing)
    finish(rows, interrupted)


def _counted(p):
    from cnnprof import bench

    def produce(update):
        for batch in p.batches:
            yield from (row for row, _ in bench.count_rows(p.targets, resolution=p.resolution, batch=batch,
                                                          on_progress=update))

    return produce


def _report(rows: list[ProfileRow], m: Measure, p, interrupted: bool, *, timed: bool) -> None:
    """The wide table on a terminal (else the long rows as asked), the fastest configurations, the
    CSV copy, the database and the plot."""
    from cnnprof.cli.timed import say_parity_weights, show_fastest
    from cnnprof.plots import macs_vs_latency
    from cnnprof.rows import RowKind

    records = with_ratios(rows)
    fields = ProfileRow.field_names() + RATIO_FIELDS
    batches = ",".join(map(str, p.batches))
    if m.fmt == Format.table and m.output is None:
        labels = list(dict.fromkeys(config_label(b, q) for b, q in p.configs)) if timed else []
        table_rows, columns = wide(rows, records, labels)
        settings = f"; latency: batch {batches}, {p.threads} thread(s), {m.device}" if timed else ""
        emit(table_rows, columns=columns, partial=interrupted,
             title=f"compared with {rows[0].model} (MACs = conv + linear multiply-adds{settings})")
    else:
        emit(records, columns=COUNT_COLUMNS, fmt=m.fmt, output=m.output, fields=fields, partial=interrupted)
    if timed:
        show_fastest(rows, to_terminal=m.fmt == Format.table and m.output is None)
        say_parity_weights(rows)
    p.copy.save(records, fields, partial=interrupted)
    p.recorder.save(rows, kind=RowKind.PROFILE, partial=interrupted, threads=p.threads)
    if m.plot is not None and p.backends:
        macs_vs_latency(records, m.plot, title=f"MACs against latency ({p.threads} thread(s), batch {batches})",
                        by_precision=len(p.precisions) > 1 or p.precisions != ["fp32"])
