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
    from cnnprof.report import check_writable

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

    from cnnprof.report import write_atomic

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


def macs_vs_latency(records: Sequence[dict[str, Any]], path: str | os.PathLike, *, title: str = "") -> Path:
    """Scatter of MACs (x) against median latency (y), one series per backend, points labelled,
    the Pareto front (fewer MACs and lower latency) drawn as a line."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(7.5, 5))
    backends = sorted({r["backend"] for r in records if r.get("latency_ms_median") is not None})
    for backend in backends:
        rows = [r for r in records if r["backend"] == backend and r.get("latency_ms_median") and r.get("macs")]
        pts = [(r["macs"] / 1e6, r["latency_ms_median"]) for r in rows]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], label=backend, zorder=3)
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
