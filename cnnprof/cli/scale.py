"""``cnnprof scale``: compound scaling (EfficientNet) of any family with width and depth multipliers."""

from __future__ import annotations

from typing import Annotated

import typer

from cnnprof.cli.common import progress
from cnnprof.cli.options import DEFAULT_DB, DbOpt, FormatOpt, NoDbOpt, OutputOpt, PlotOpt, option
from cnnprof.files import check_writable
from cnnprof.report import Column, Format, emit
from cnnprof.terminal import say

COLUMNS = [
    Column("phi", "φ", "float"),
    Column("depth_mult", "d=α^φ", "float"),
    Column("width_mult", "w=β^φ", "float"),
    Column("res_mult", "r=γ^φ", "float"),
    Column("resolution", "input", "int"),
    Column("channels_text", "channels built", wrap=True),
    Column("repeats_text", "repeats built", wrap=True),
    Column("params", "params", "count"),
    Column("macs", "MACs", "macs"),
    Column("macs_ratio", "MACs / φ=0", "ratio"),
    Column("two_pow_phi", "2^φ", "ratio"),
    Column("compound_pow_phi", "(αβ²γ²)^φ", "ratio"),
    Column("closest_text", "closest official (by MACs)", wrap=True),
]
LATENCY_COLUMNS = [Column("latency_ms_median", "latency", "ms"), Column("latency_ms_iqr", "IQR", "ms")]
PRECISION_COLUMNS = [Column("backend", "backend"), Column("precision", "precision")]


def scale_command(
    phi: Annotated[float, typer.Option("--phi", help="Largest compound coefficient φ (>= 0; fractional allowed): "
                                                     "rows for 0, 1, ..., N (and N if fractional).")],
    alpha: Annotated[float, typer.Option("--alpha", help="Depth base α (>= 1).")] = 1.2,
    beta: Annotated[float, typer.Option("--beta", help="Width base β (>= 1).")] = 1.1,
    gamma: Annotated[float, typer.Option("--gamma", help="Resolution base γ (>= 1).")] = 1.15,
    base: Annotated[str, typer.Option(
        "--base", help="Registered variant to scale: any with a square input (every family has width and "
                       "depth multipliers).")] = "efficientnet_b0",
    resolution: Annotated[int | None, option(
        "resolution", help="Input side at φ = 0 (default: the base's native input).")] = None,
    latency: Annotated[bool, typer.Option(
        "--latency", help="Also time each scaled network (CPU, 1 thread, short protocol).")] = False,
    backend: Annotated[str, option(
        "backend", help="With --latency: torch (eager), compile, onnxruntime or openvino.")] = "torch",
    precision: Annotated[str, option(
        "precision", help="With --latency: comma-separated precisions (fp32, bf16, int8 on onnxruntime or "
                                  "openvino); one row per φ and precision.")] = "fp32",
    plot: PlotOpt = None,
    fmt: FormatOpt = Format.table,
    output: OutputOpt = None,
    db: DbOpt = DEFAULT_DB,
    no_db: NoDbOpt = False,
) -> None:
    """Compound-scale a network: depth α^φ, width β^φ, resolution γ^φ (EfficientNet, Sec. 3.3).

    For each φ: the multipliers, the input side actually built (nearest pixel), the channels
    (stem, then each run of blocks) and repeats read from the built network, its params and MACs,
    the MACs ratio to φ = 0 beside 2^φ and (α·β²·γ²)^φ, and the official variant of the base's
    family closest in MACs (official counts, for comparison). The MACs ratio overshoots
    (α·β²·γ²)^φ because repeats are rounded up (ceil) and channels to multiples of 8 (4 for
    GhostNet).

    Examples:

      cnnprof scale --phi 3

      cnnprof scale --phi 2.5 --base ghostnet_100 --latency --plot ghostnet-scaling.png

      cnnprof scale --phi 4 --alpha 1.4 --beta 1.2 --gamma 1.0 --format json

      cnnprof scale --phi 2 --base mobilenetv3_large --latency --backend onnxruntime --precision fp32,int8
    """
    from cnnprof import scaling
    from cnnprof.cli import stored
    from cnnprof.errors import UsageError
    from cnnprof.plots import check_plot_path
    from cnnprof.rows import RowKind
    from cnnprof.timing.backends import BACKENDS, Backend, Precision
    from cnnprof.timing.precision import parse_precisions

    coeffs = scaling.Coefficients(alpha, beta, gamma).check()
    backend = Backend.parse(backend.strip().lower()) or backend.strip().lower()
    if not isinstance(backend, Backend):
        raise UsageError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    precisions = parse_precisions(precision)
    if not latency and (precision != Precision.fp32 or backend is not Backend.torch):
        raise UsageError("--backend and --precision need --latency")
    phis = scaling.phis_up_to(phi)
    if resolution is not None and resolution < 1:
        raise UsageError(f"--resolution must be a positive number of pixels, got {resolution}")
    check_writable(output)
    check_plot_path(plot)
    recorder = stored.recorder("scale", db, no_db, outputs=[output, plot])
    with progress() as update:
        rows = scaling.scale_rows(base, phis, coeffs, resolution=resolution, latency=latency, backend=backend,
                                  precisions=precisions, on_progress=update, on_notice=say)
    records = [_record(r) for r in rows]
    columns = COLUMNS + ((PRECISION_COLUMNS if len(precisions) > 1 else []) + LATENCY_COLUMNS if latency else [])
    title = _title(rows[0].base, coeffs, backend=backend, precisions=precisions, latency=latency)
    if fmt == Format.table and output is None:
        emit(records, columns=columns, title=title)
    else:
        emit(records, columns=columns, fmt=fmt, output=output, fields=scaling.ScaleRow.field_names())
    recorder.save(rows, kind=RowKind.SCALE, context={"alpha": alpha, "beta": beta, "gamma": gamma},
                  extra={"backend": "torch" if latency else None, "threads": 1 if latency else None})
    if plot is not None:
        _draw(rows, plot, title=f"{rows[0].base}: compound scaling (α={alpha:g}, β={beta:g}, γ={gamma:g})")
    for w in sorted({w for r in rows for w in r.latency_warnings}):
        say(f"warning: {w}")


def _title(base: str, coeffs, *, backend, precisions: list[str], latency: bool) -> str:
    alpha, beta, gamma = coeffs.alpha, coeffs.beta, coeffs.gamma
    from cnnprof.timing.backends import Backend

    what = "torch eager" if backend is Backend.torch else backend
    return (f"{base} compound-scaled: α={alpha:g}, β={beta:g}, γ={gamma:g}, α·β²·γ²={coeffs.factor:.4g} "
            f"(MACs = conv + linear multiply-adds"
            + (f"; latency: {what}, {', '.join(precisions)}, CPU, 1 thread)" if latency else ")"))


def _record(r) -> dict:
    """A row as printed: its fields, and its channels, repeats and closest official variant as text."""
    rec = r.to_dict()
    rec["channels_text"] = ",".join(map(str, r.channels))
    rec["repeats_text"] = ",".join(map(str, r.repeats))
    if r.closest:
        known = [f"{k} {v:g}" for k, v in (("w", r.closest_width), ("d", r.closest_depth)) if v is not None]
        known += [f"{r.closest_resolution}px", f"{r.closest_macs / 1e6:.0f}M"]
        rec["closest_text"] = f"{r.closest} ({', '.join(known)})"
    return rec


def _draw(rows, path, *, title: str) -> None:
    """The picture of the scaled networks (MACs, and latency where timed, against φ), then says where."""
    from cnnprof.plots import _figure, save

    plt = _figure()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    timed = rows
    rows = [r for r in rows if r.precision == rows[0].precision]  # the counts, once per φ
    phis = [r.phi for r in rows]
    base = rows[0].macs / rows[0].macs_ratio
    ax.plot(phis, [r.macs / 1e6 for r in rows], "o-", label="MACs built")
    ax.plot(phis, [base * r.two_pow_phi / 1e6 for r in rows], "--", label="φ=0 MACs x 2^φ")
    ax.plot(phis, [base * r.compound_pow_phi / 1e6 for r in rows], ":", label="φ=0 MACs x (α·β²·γ²)^φ")
    for r in rows:
        if r.closest:
            ax.annotate(f"≈{r.closest}", (r.phi, r.macs / 1e6), textcoords="offset points", xytext=(4, -10),
                        fontsize=7)
    ax.set_yscale("log")
    ax.set_xlabel("φ")
    ax.set_ylabel("MACs (millions)")
    ax.grid(True, alpha=0.3)
    lines, labels = ax.get_legend_handles_labels()
    if any(r.latency_ms_median is not None for r in timed):
        ax2 = ax.twinx()
        for i, precision in enumerate(dict.fromkeys(r.precision for r in timed)):
            mine = [r for r in timed if r.precision == precision]
            ax2.plot([r.phi for r in mine], [r.latency_ms_median for r in mine], marker="s^Do"[i % 4],
                     color=("tab:red", "tab:purple", "tab:brown", "tab:pink")[i % 4],
                     label=f"latency (ms, {mine[0].backend} {precision})")
        ax2.set_ylabel("median latency (ms, 1 thread)")
        more_lines, more_labels = ax2.get_legend_handles_labels()
        lines, labels = lines + more_lines, labels + more_labels
    ax.legend(lines, labels, fontsize=8, loc="upper left")
    ax.set_title(title, fontsize=9)
    save(fig, path)
    say(f"wrote {path}")
    plt.close(fig)
