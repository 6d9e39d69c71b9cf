"""Pictures of report rows (matplotlib, headless). PNG or SVG by the file's extension."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from cnnprof.errors import UsageError

PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def check_plot_path(path: str | os.PathLike | None) -> None:
    if path is None:
        return
    from cnnprof.files import check_writable

    if Path(path).suffix.lower() not in PLOT_SUFFIXES:
        raise UsageError(f"--plot: use a .png, .svg or .pdf file name, got {str(path)!r}")
    check_writable(path)


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str | os.PathLike) -> Path:
    """Render to memory, then write atomically."""
    import io

    from cnnprof.files import write_atomic

    buf = io.BytesIO()
    fig.savefig(buf, format=Path(path).suffix.lower().lstrip("."), bbox_inches="tight", dpi=120)
    return write_atomic(path, buf.getvalue())


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points not dominated in (lower x, lower y), sorted by x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    front, best = [], float("inf")
    for i in order:
        if points[i][1] < best:
            front.append(i)
            best = points[i][1]
    return front


def _series(record: dict[str, Any], by_precision: bool) -> str:
    if not by_precision:
        return record["backend"]
    return f"{record['backend']} {record.get('precision') or 'fp32'}"


def macs_vs_latency(records: Sequence[dict[str, Any]], path: str | os.PathLike, *, title: str = "",
                    by_precision: bool = False) -> Path:
    """Scatter of MACs (x) against median latency (y), one series (and marker) per backend, or per
    backend and precision with ``by_precision``, points labelled, each series' Pareto front
    (fewer MACs and lower latency) drawn as a line."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(7.5, 5))
    series = sorted({_series(r, by_precision) for r in records if r.get("latency_ms_median") is not None})
    for i, name in enumerate(series):
        rows = [r for r in records if _series(r, by_precision) == name and r.get("latency_ms_median") and r.get("macs")]
        pts = [(r["macs"] / 1e6, r["latency_ms_median"]) for r in rows]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], label=name, zorder=3,
                   marker=_MODEL_MARKERS[i % len(_MODEL_MARKERS)])
        backend = name
        for r, (x, y) in zip(rows, pts):
            ax.annotate(r["model"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        front = [pts[i] for i in pareto_front(pts)]
        if len(front) > 1:
            ax.plot([p[0] for p in front], [p[1] for p in front], linestyle="--", linewidth=1, zorder=2,
                    label=f"{backend} Pareto front")
    ax.set_xlabel("MACs (millions, conv + linear)")
    ax.set_ylabel("median latency (ms)")
    ax.set_title(title or "MACs against latency")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    out = save(fig, path)
    plt.close(fig)
    return out


def latency_bars(records: Sequence[dict[str, Any]], path: str | os.PathLike, *, title: str = "") -> Path:
    """Median latency per model and backend (and batch), with p10-p90 whiskers."""
    plt = _figure()
    rows = [r for r in records if r.get("latency_ms_median") is not None]
    labels = [f"{r['model']}\n{r['backend']} b{r['batch']}" for r in rows]
    medians = [r["latency_ms_median"] for r in rows]
    lower = [r["latency_ms_median"] - r["latency_ms_p10"] for r in rows]
    upper = [r["latency_ms_p90"] - r["latency_ms_median"] for r in rows]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(rows) + 2), 4.5))
    ax.bar(range(len(rows)), medians, yerr=[lower, upper], capsize=3, color="tab:blue", alpha=0.8)
    ax.set_xticks(range(len(rows)), labels, fontsize=7)
    ax.set_ylabel("median latency (ms), whiskers p10-p90")
    ax.set_title(title or "latency")
    ax.grid(True, axis="y", alpha=0.3)
    out = save(fig, path)
    plt.close(fig)
    return out


# -- roofline (cnnprof profile --timing --plot) -----------------------------------------------------
ROOFLINE_KIND_COLOURS = {
    "dense conv": "tab:blue", "pointwise": "tab:orange", "depthwise": "tab:green", "dilated": "tab:olive",
    "grouped": "tab:purple", "squeeze-excite": "tab:red", "Ghost cheap op": "tab:cyan", "DFC attention": "tab:pink",
    "linear": "tab:brown", "pooling/upsampling": "tab:gray", "elementwise": "black", "mixed": "gold", "other": "silver",
}
_MODEL_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def roofline(records: Sequence[dict[str, Any]], roofs: Any, path: str | os.PathLike, *, title: str = "",
             label_top: int = 5) -> Path:
    """Log-log roofline: arithmetic intensity (MACs per byte moved) against achieved GMAC/s, one
    point per layer with MACs (area ~ its latency share), coloured by op kind, one marker per
    model; the machine's compute roof and bandwidth roof; the ``label_top`` plotted layers of each
    model whose latency share most exceeds their MAC share are labelled. ``roofs`` needs
    ``peak_gmacs`` and ``bandwidth_gbs`` (``cnnprof.machine.Roofs``)."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(9, 6))
    rows = [r for r in records if not r.get("error")]
    points = [r for r in rows if (r.get("intensity") or 0) > 0 and (r.get("gmacs_per_s") or 0) > 0]
    models = list(dict.fromkeys(r["model"] for r in rows))
    peak, bandwidth = float(roofs.peak_gmacs), float(roofs.bandwidth_gbs)
    ridge = peak / bandwidth
    xs = [r["intensity"] for r in points] or [ridge]
    x_lo, x_hi = min(min(xs), ridge) / 3, max(max(xs), ridge) * 3
    grid = [x_lo * (x_hi / x_lo) ** (i / 200) for i in range(201)]
    ax.plot(grid, [min(peak, bandwidth * x) for x in grid], color="black", linewidth=1.5, zorder=2)
    ax.axvline(ridge, color="black", linestyle=":", linewidth=0.8, zorder=1)
    seen_kinds = []
    labelled: list = []
    for m, model in enumerate(models):
        mine = [r for r in points if r["model"] == model]
        for r in mine:
            kind = r.get("op_kind") or "other"
            if kind not in seen_kinds:
                seen_kinds.append(kind)
            ax.scatter(r["intensity"], r["gmacs_per_s"], s=12 + 900 * (r.get("latency_share") or 0.0),
                       color=ROOFLINE_KIND_COLOURS.get(kind, "silver"), marker=_MODEL_MARKERS[m % len(_MODEL_MARKERS)],
                       alpha=0.75, edgecolors="white", linewidths=0.4, zorder=3)
        ranked = sorted((r for r in mine if r.get("share_gap") is not None), key=lambda r: -r["share_gap"])
        labelled += [(r, m) for r in ranked[:label_top]]
    # Labels go in a column at the left, above the bandwidth roof (where no layer can be), top to
    # bottom in the order of their points, each with a leader line: close points stay legible.
    labelled.sort(key=lambda rm: -rm[0]["gmacs_per_s"])
    for i, (r, m) in enumerate(labelled):
        name = r["name"] if len(models) == 1 else f"{r['model']}: {r['name']}"
        ax.annotate(f"{name} ({r['op_kind']})", (r["intensity"], r["gmacs_per_s"]),
                    xytext=(x_lo * 1.15, peak * 0.75 / 1.35 ** i), textcoords="data", fontsize=7, va="center",
                    zorder=4, arrowprops={"arrowstyle": "-", "linewidth": 0.5, "color": "gray", "relpos": (1.0, 0.5)})
    handles = [
        plt.Line2D([], [], color="black", label=f"roofs: {peak:.1f} GMAC/s, {bandwidth:.1f} GB/s"),
        plt.Line2D([], [], color="black", linestyle=":", label=f"ridge {ridge:.2f} MACs/byte"),
    ]
    handles += [plt.Line2D([], [], marker="o", linestyle="", color=ROOFLINE_KIND_COLOURS.get(k, "silver"), label=k)
                for k in seen_kinds]
    if len(models) > 1:
        handles += [plt.Line2D([], [], marker=_MODEL_MARKERS[i % len(_MODEL_MARKERS)], linestyle="", color="gray",
                               label=model) for i, model in enumerate(models)]
    hidden = [r for r in rows if r not in points and (r.get("latency_share") or 0) > 0]
    hidden_share = sum(r.get("latency_share") or 0.0 for r in hidden) / max(1, len(models))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (MACs per byte moved, fp32 inputs + weights + outputs)")
    ax.set_ylabel("achieved GMAC/s (MACs / median latency)")
    subtitle = (f"{len(points)} layers with MACs (area ~ latency share); {len(hidden)} without MACs "
                f"(elementwise, pooling: {100 * hidden_share:.0f}% of latency) not shown")
    ax.set_title((title or "roofline") + "\n" + subtitle, fontsize=9)
    ax.grid(True, which="both", alpha=0.25)
    if handles:
        ax.legend(handles=handles, fontsize=7, loc="lower right")
    out = save(fig, path)
    plt.close(fig)
    return out
