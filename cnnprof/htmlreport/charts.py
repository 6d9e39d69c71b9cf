"""The report's charts, as Vega-Lite specifications (plain dicts), and the data they draw.

Each function takes the rows it needs and returns ``Chart`` values: a spec whose data is a named
dataset, and the datasets themselves (kept once in the page however many charts use them). Charts
render as SVG (crisp when printed); tooltips, selectors and zoom are Vega-Lite's own.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Sequence

SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"  # names the grammar; nothing is fetched
WIDTH = 380
HEIGHT = 260
MAX_LABELS = 25  # more points than this drawn in a panel: names in tooltips (and the table) only
GATE_COLOURS = {"regression": "#d62728", "count changed": "#ff7f0e", "warning": "#bcbd22", "improvement": "#2ca02c",
                "pass": "#7f7f7f"}


@dataclass
class Chart:
    id: str
    title: str
    spec: dict[str, Any]
    datasets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both (lower x and lower y), by x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    front, best = [], math.inf
    for i in order:
        if points[i][1] < best:
            front.append(i)
            best = points[i][1]
    return front


def series_of(row: dict[str, Any]) -> str:
    return f"{row.get('backend') or '?'} {row.get('precision') or 'fp32'}"


def _scatter_panel(x: str, x_title: str, front: str) -> dict[str, Any]:
    tooltip = [{"field": "model"}, {"field": "series", "title": "backend precision"},
               {"field": "latency_ms_median", "title": "median (ms)", "format": ".3f"},
               {"field": "macs", "title": "MACs", "format": ",d"},
               {"field": "params", "title": "params", "format": ",d"},
               {"field": "batch"}, {"field": "threads"}, {"field": "revision"}]
    enc_x = {"field": x, "type": "quantitative", "scale": {"type": "log"}, "title": x_title}
    enc_y = {"field": "latency_ms_median", "type": "quantitative", "scale": {"type": "log"},
             "title": "median latency (ms)"}
    layers: list[dict[str, Any]] = [
        {"transform": [{"filter": f"datum.{front}"}],
         "mark": {"type": "line", "strokeDash": [4, 3], "strokeWidth": 1},
         "encoding": {"x": enc_x, "y": enc_y, "color": {"field": "series", "type": "nominal", "legend": None},
                      "order": {"field": x, "type": "quantitative"}}},
        {"mark": {"type": "point", "filled": True, "size": 60},
         "encoding": {"x": enc_x, "y": enc_y,
                      "color": {"field": "series", "type": "nominal", "title": "backend precision"},
                      "shape": {"field": "series", "type": "nominal", "title": "backend precision"},
                      "tooltip": tooltip}},
    ]
    # each point named beside it while the panel draws at most MAX_LABELS points: counted in the
    # browser after the batch and threads selectors have filtered them, so it is the number drawn
    layers.append({"transform": [{"joinaggregate": [{"op": "count", "as": "drawn"}]},
                                 {"filter": f"datum.drawn <= {MAX_LABELS}"}],
                   "mark": {"type": "text", "align": "left", "dx": 5, "dy": -5, "fontSize": 9},
                   "encoding": {"x": enc_x, "y": enc_y, "text": {"field": "model"}}})
    return {"width": WIDTH, "height": HEIGHT, "layer": layers,
            "title": f"latency against {x_title.split(' (')[0]} (dashed: Pareto front of each marker)"}


def pareto(rows: Sequence[dict[str, Any]]) -> list[Chart]:
    """One chart per machine: latency against MACs and against params, one marker (colour and shape)
    per backend/precision, the Pareto front of each; selectors for batch and threads."""
    timed = [r for r in rows if r.get("latency_ms_median") and r.get("macs") and r.get("params") and not r.get("error")]
    charts = []
    for i, machine in enumerate(sorted({r["machine"] for r in timed})):
        mine = [dict(r, series=series_of(r)) for r in timed if r["machine"] == machine]
        groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
        for r in mine:
            groups[(r["series"], r["batch"], r["threads"])].append(r)
        for group in groups.values():
            for x, flag in (("macs", "front_macs"), ("params", "front_params")):
                points = [(float(r[x]), float(r["latency_ms_median"])) for r in group]
                on = set(pareto_front(points))
                for j, r in enumerate(group):
                    r[flag] = j in on
        batches = sorted({r["batch"] for r in mine if r.get("batch") is not None})
        threads = sorted({r["threads"] for r in mine if r.get("threads") is not None})
        data = [{k: r.get(k) for k in ("model", "series", "latency_ms_median", "macs", "params", "batch", "threads",
                                        "revision", "front_macs", "front_params")} for r in mine]
        name = f"pareto{i}"
        params = [
            {"name": "batch_sel", "value": batches[0] if batches else 1,
             "bind": {"input": "select", "options": batches or [1], "name": "batch "}},
            {"name": "threads_sel", "value": threads[0] if threads else 1,
             "bind": {"input": "select", "options": threads or [1], "name": " threads "}},
        ]
        spec = {
            "$schema": SCHEMA, "data": {"name": name}, "params": params,
            "transform": [{"filter": "datum.batch == batch_sel && datum.threads == threads_sel"}],
            "hconcat": [_scatter_panel("macs", "MACs (conv + linear multiply-adds)", "front_macs"),
                        _scatter_panel("params", "parameters", "front_params")],
            "resolve": {"scale": {"color": "shared", "shape": "shared"}},
        }
        charts.append(Chart(f"chart-pareto-{i}", machine, spec, {name: data}))
    return charts


CURVE_BUILT = "MACs built"
CURVE_TWO = "φ=0 MACs × 2^φ"
CURVE_COMPOUND = "φ=0 MACs × (α·β²·γ²)^φ"


def _compound(row: dict[str, Any]) -> float | None:
    """(α·β²·γ²)^φ of a scale row: as ``scale`` wrote it, else from its multipliers (α^φ, β^φ, γ^φ)."""
    if row.get("compound_pow_phi"):
        return float(row["compound_pow_phi"])
    d, w, r = row.get("depth_mult"), row.get("width_mult"), row.get("res_mult")
    return float(d) * float(w) ** 2 * float(r) ** 2 if d and w and r else None


def scaling_curves(scale_rows: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The compound-scaling curves of the newest ``cnnprof scale`` run of each base, the same
    whether the rows come from the database or from a report file: for each φ, the MACs of the
    network built, φ=0's MACs × 2^φ and φ=0's MACs × (α·β²·γ²)^φ (φ=0's MACs: the run's own φ=0
    row, else MACs / the MACs ratio to φ=0 that ``scale`` wrote); and the latency of each φ and
    backend/precision where it was measured. Returns (curves, latency)."""
    runs: dict[str, dict[tuple, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in scale_rows:
        if r.get("model") and r.get("phi") is not None:
            runs[r["model"]][(int(r.get("run_id") or 0), str(r.get("command") or ""))].append(r)
    curves, latency = [], []
    for base in sorted(runs):  # the newest run: the highest id, else (report files) the newest file
        newest = max(runs[base], key=lambda k: (k[0], max(str(r.get("recorded_at") or "") for r in runs[base][k])))
        rows = sorted(runs[base][newest], key=lambda r: float(r["phi"]))
        zero = next((r for r in rows if float(r["phi"]) == 0 and r.get("macs")), None)
        seen: set[float] = set()
        for r in rows:
            phi = float(r["phi"])
            if r.get("latency_ms_median"):
                latency.append({"base": base, "phi": phi, "series": f"{base} {series_of(r)}" if r.get("backend")
                                else base, "latency_ms_median": r["latency_ms_median"]})
            if phi in seen or not r.get("macs"):  # one row per φ and precision: the MACs are the same
                continue
            seen.add(phi)
            base_macs = float(zero["macs"]) if zero else (float(r["macs"]) / float(r["macs_ratio"])
                                                          if r.get("macs_ratio") else None)
            curves.append({"base": base, "phi": phi, "curve": CURVE_BUILT, "macs": float(r["macs"])})
            if base_macs is None:
                continue
            curves.append({"base": base, "phi": phi, "curve": CURVE_TWO, "macs": base_macs * 2.0 ** phi})
            compound = _compound(r)
            if compound is not None:
                curves.append({"base": base, "phi": phi, "curve": CURVE_COMPOUND, "macs": base_macs * compound})
    return curves, latency


def scaling(scale_rows: Sequence[dict[str, Any]], profile_rows: Sequence[dict[str, Any]]) -> tuple[list[Chart], str]:
    """The compound-scaling curve: from the newest ``cnnprof scale`` run of each base
    (``scaling_curves``: MACs built against φ beside φ=0 x 2^φ and x (α·β²·γ²)^φ; latency when it
    was measured), else from the EfficientNet B0-B7 rows (the published compound-scaled family: MACs
    and latency per variant). Returns the charts and a sentence saying which."""
    charts: list[Chart] = []
    data, latency = scaling_curves(scale_rows)
    if data:
        bases = sorted({d["base"] for d in data})
        panels = [{
            "width": WIDTH, "height": HEIGHT, "data": {"name": "scaling"}, "title": "MACs against φ",
            "mark": {"type": "line", "point": True},
            "encoding": {"x": {"field": "phi", "type": "quantitative", "title": "φ"},
                         "y": {"field": "macs", "type": "quantitative", "scale": {"type": "log"}, "title": "MACs"},
                         "color": {"field": "curve", "type": "nominal", "title": "curve",
                                   "sort": [CURVE_BUILT, CURVE_TWO, CURVE_COMPOUND]},
                         "tooltip": [{"field": "base"}, {"field": "phi", "title": "φ"}, {"field": "curve"},
                                     {"field": "macs", "title": "MACs", "format": ",.0f"}]}}]
        if len(bases) > 1:  # a dash per base (one base: no legend for it)
            panels[0]["encoding"]["strokeDash"] = {"field": "base", "type": "nominal"}
        datasets = {"scaling": data}
        if latency:
            datasets["scaling_latency"] = latency
            panels.append({
                "width": WIDTH, "height": HEIGHT, "data": {"name": "scaling_latency"}, "title": "latency against φ",
                "mark": {"type": "line", "point": True},
                "encoding": {"x": {"field": "phi", "type": "quantitative", "title": "φ"},
                             "y": {"field": "latency_ms_median", "type": "quantitative",
                                   "title": "median latency (ms)"},
                             "color": {"field": "series", "type": "nominal", "title": "base backend precision"},
                             "tooltip": [{"field": "series"}, {"field": "phi", "title": "φ"},
                                         {"field": "latency_ms_median", "title": "median (ms)", "format": ".2f"}]}})
        charts.append(Chart("chart-scaling", "compound scaling", {"$schema": SCHEMA, "hconcat": panels,
                                                                  "resolve": {"scale": {"color": "independent"}}},
                            datasets))
        return charts, (f"From the newest `cnnprof scale` run of {', '.join(bases)}: the MACs of each network built "
                        "at φ against φ=0's MACs × 2^φ and × (α·β²·γ²)^φ (the curves compound scaling aims at).")
    family = [r for r in profile_rows if (r.get("model") or "").startswith("efficientnet_b") and r.get("macs")
              and not r.get("error")]
    if not family:
        return [], ("Nothing to draw yet: `cnnprof scale --phi 3` (stored in the database) draws the curve, as do "
                    "rows of EfficientNet-B0...B7 (`cnnprof sweep 'efficientnet_b?'`).")
    newest_rows: dict[tuple, dict[str, Any]] = {}
    for r in family:
        newest_rows[(r["model"], series_of(r) if r.get("latency_ms_median") else "counts", r.get("machine"))] = r
    data = [{"model": m, "variant": int(m[-1]) if m[-1].isdigit() else None, "series": s, "machine": mach,
             "macs": r["macs"], "latency_ms_median": r.get("latency_ms_median")}
            for (m, s, mach), r in newest_rows.items()]
    panels = [{"width": WIDTH, "height": HEIGHT, "title": "MACs of B0...B7", "transform": [{"filter": "datum.macs"}],
               "mark": {"type": "line", "point": True},
               "encoding": {"x": {"field": "variant", "type": "ordinal", "title": "EfficientNet-B (φ)"},
                            "y": {"field": "macs", "type": "quantitative", "scale": {"type": "log"}, "title": "MACs"},
                            "tooltip": [{"field": "model"}, {"field": "macs", "format": ",d"}]}}]
    if any(d["latency_ms_median"] for d in data):
        panels.append({"width": WIDTH, "height": HEIGHT, "title": "latency of B0...B7",
                       "transform": [{"filter": "datum.latency_ms_median"}], "mark": {"type": "line", "point": True},
                       "encoding": {"x": {"field": "variant", "type": "ordinal", "title": "EfficientNet-B (φ)"},
                                    "y": {"field": "latency_ms_median", "type": "quantitative",
                                          "scale": {"type": "log"}, "title": "median latency (ms)"},
                                    "color": {"field": "series", "type": "nominal", "title": "backend precision"},
                                    "strokeDash": {"field": "machine", "type": "nominal"},
                                    "tooltip": [{"field": "model"}, {"field": "series"}, {"field": "machine"},
                                                {"field": "latency_ms_median", "format": ".2f"}]}})
    spec = {"$schema": SCHEMA, "data": {"name": "scaling_family"}, "hconcat": panels}
    charts.append(Chart("chart-scaling", "EfficientNet-B0...B7", spec, {"scaling_family": data}))
    return charts, ("No `cnnprof scale` run is stored; drawn from the newest rows of EfficientNet-B0...B7, the "
                    "paper's own compound-scaled family (B1...B7 are B0 at φ = 1...7 with rounded coefficients).")


def rooflines(layer_rows: Sequence[dict[str, Any]], roofs: dict[tuple[str, int], dict[str, float]],
              limit: int = 12) -> list[Chart]:
    """One roofline per model, backend and machine, from its newest per-layer run: arithmetic
    intensity against achieved GMAC/s, a point per layer (size: its latency), coloured by op kind,
    under the machine's two roofs."""
    newest: dict[tuple, int] = {}
    for r in layer_rows:
        key = (r.get("model"), r.get("backend"), r.get("machine"))
        newest[key] = max(newest.get(key, -1), int(r.get("run_id") or 0))
    charts = []
    for i, (key, run_id) in enumerate(sorted(newest.items(), key=lambda kv: -kv[1])[:limit]):
        model, backend, machine = key
        mine = [r for r in layer_rows if (r.get("model"), r.get("backend"), r.get("machine")) == key
                and int(r.get("run_id") or 0) == run_id and (r.get("intensity") or 0) > 0
                and (r.get("gmacs_per_s") or 0) > 0]
        if not mine:
            continue
        points = [{"layer": r.get("layer"), "op_kind": r.get("op_kind") or "other", "intensity": r["intensity"],
                   "gmacs_per_s": r["gmacs_per_s"], "latency_ms": r.get("latency_ms_median"), "macs": r.get("macs")}
                  for r in mine]
        roof = roofs.get((machine, run_id)) or next((v for (m, _), v in roofs.items() if m == machine), None)
        layers: list[dict[str, Any]] = []
        datasets = {f"roof_points{i}": points}
        if roof:
            xs = [p["intensity"] for p in points]
            ridge = roof["peak"] / roof["bandwidth"]
            lo, hi = min(min(xs), ridge) / 3, max(max(xs), ridge) * 3
            line = [{"intensity": lo * (hi / lo) ** (k / 60),
                     "roof": min(roof["peak"], roof["bandwidth"] * lo * (hi / lo) ** (k / 60))} for k in range(61)]
            datasets[f"roof_line{i}"] = line
            layers.append({"data": {"name": f"roof_line{i}"}, "mark": {"type": "line", "color": "black"},
                           "encoding": {"x": {"field": "intensity", "type": "quantitative", "scale": {"type": "log"}},
                                        "y": {"field": "roof", "type": "quantitative", "scale": {"type": "log"}}}})
        layers.append({"data": {"name": f"roof_points{i}"}, "mark": {"type": "circle", "opacity": 0.75},
                       "encoding": {
                           "x": {"field": "intensity", "type": "quantitative", "scale": {"type": "log"},
                                 "title": "MACs per byte moved"},
                           "y": {"field": "gmacs_per_s", "type": "quantitative", "scale": {"type": "log"},
                                 "title": "achieved GMAC/s"},
                           "size": {"field": "latency_ms", "type": "quantitative", "title": "latency (ms)"},
                           "color": {"field": "op_kind", "type": "nominal", "title": "op kind"},
                           "tooltip": [{"field": "layer"}, {"field": "op_kind"},
                                       {"field": "latency_ms", "format": ".4f"},
                                       {"field": "macs", "format": ",d"}, {"field": "intensity", "format": ".2f"},
                                       {"field": "gmacs_per_s", "format": ".2f"}]}})
        title = f"{model} ({backend}) on {machine}"
        roof_text = (f"roofs {roof['peak']:.1f} GMAC/s, {roof['bandwidth']:.1f} GB/s" if roof
                     else "no roofs recorded")
        spec = {"$schema": SCHEMA, "width": WIDTH + 120, "height": HEIGHT + 40, "layer": layers,
                "title": {"text": title, "subtitle": roof_text}}
        charts.append(Chart(f"chart-roofline-{i}", title, spec, datasets))
    return charts


def history(lines: Sequence[dict[str, Any]], revision_order: dict[str, str],
            changes: Sequence[Any] = ()) -> tuple[Chart | None, list[str]]:
    """Latency of each model across revisions (selector: the model), a line per backend/precision,
    batch and machine, the gate's verdicts marked on the revisions where it checked the model, and
    ``changes`` (``changes.ChangePoint``) as dotted rules on the first revision after each step.
    Returns the chart (None when no model has two revisions) and the models it offers."""
    by_model: dict[str, set[str]] = defaultdict(set)
    for line in lines:
        if line.get("latency_ms_median") is not None:
            by_model[line["model"]].add(line["revision"])
    flagged = {ln["model"] for ln in lines if ln.get("gate") and ln["gate"] != "pass"}
    models = sorted((m for m, revs in by_model.items() if len(revs) > 1),
                    key=lambda m: (m not in flagged, -len(by_model[m]), m))  # first shown: one the gate flagged
    if not models:
        return None, []
    revisions = sorted(revision_order, key=lambda r: revision_order[r])
    order = {r: i for i, r in enumerate(revisions)}
    keep = set(models)
    data = [{"model": ln["model"], "revision": ln["revision"], "order": order.get(ln["revision"], len(order)),
             "line": f"{ln.get('backend')} {ln.get('precision') or 'fp32'} b{ln.get('batch')} t{ln.get('threads')}",
             "machine": ln.get("machine"), "latency_ms_median": ln.get("latency_ms_median"),
             "ci_low": ln.get("latency_ms_ci_low"), "ci_high": ln.get("latency_ms_ci_high"), "gate": ln.get("gate"),
             "gate_ratio": ln.get("gate_ratio")}
            for ln in lines if ln["model"] in keep]
    tops: dict[tuple, float] = {}
    for d in data:
        if d["latency_ms_median"] is not None:
            key = (d["model"], d["revision"])
            tops[key] = max(tops.get(key, 0.0), d["latency_ms_median"])
    highest = {m: max((v for (mm, _), v in tops.items() if mm == m), default=1.0) for m in keep}
    marks = {}
    for d in data:
        if d["gate"] and d["gate"] != "pass":
            key = (d["model"], d["revision"], d["machine"])
            marks[key] = {"model": d["model"], "revision": d["revision"], "order": d["order"], "machine": d["machine"],
                          "gate": d["gate"], "gate_ratio": d["gate_ratio"],
                          "y": tops.get((d["model"], d["revision"]), highest[d["model"]])}
    x = {"field": "revision", "type": "ordinal", "sort": {"field": "order"},
         "title": "revision (in the order first seen)"}
    steps = [{"model": c.model, "revision": c.revision, "order": order.get(c.revision, len(order)),
              "machine": c.machine, "line": f"{c.backend} {c.precision or 'fp32'} b{c.batch} t{c.threads}",
              "verdict": c.verdict, "step": f"{c.ratio:.3f} [{c.ci_low:.3f}, {c.ci_high:.3f}]"}
             for c in changes if c.model in keep]
    chosen = {"filter": "datum.model == model_sel"}
    tooltip = [{"field": "model"}, {"field": "revision"}, {"field": "line"}, {"field": "machine"},
               {"field": "latency_ms_median", "title": "median (ms)", "format": ".3f"}, {"field": "gate"}]
    layers = [
        {"data": {"name": "history"}, "transform": [chosen, {"filter": "isValid(datum.latency_ms_median)"}],
         "mark": {"type": "line", "point": True},
         "encoding": {"x": x, "y": {"field": "latency_ms_median", "type": "quantitative",
                                    "title": "median latency (ms)"},
                      "color": {"field": "line", "type": "nominal", "title": "backend precision batch threads"},
                      "strokeDash": {"field": "machine", "type": "nominal"}, "tooltip": tooltip}},
        {"data": {"name": "history"},
         "transform": [chosen, {"filter": "isValid(datum.ci_low) && isValid(datum.ci_high)"}],
         "mark": {"type": "rule", "opacity": 0.5},
         "encoding": {"x": x, "y": {"field": "ci_low", "type": "quantitative"}, "y2": {"field": "ci_high"},
                      "color": {"field": "line", "type": "nominal"}}},
    ]
    datasets = {"history": data}
    if marks:
        datasets["history_gate"] = list(marks.values())
        layers.append(
            {"data": {"name": "history_gate"}, "transform": [chosen],
             "mark": {"type": "point", "shape": "triangle-down", "size": 240, "filled": True, "yOffset": -16,
                      "opacity": 1},
             "encoding": {"x": x, "y": {"field": "y", "type": "quantitative"},
                          "fill": {"field": "gate", "type": "nominal", "title": "gate flagged",
                                   "scale": {"domain": list(GATE_COLOURS), "range": list(GATE_COLOURS.values())}},
                          "tooltip": [{"field": "revision"}, {"field": "machine"}, {"field": "gate"},
                                      {"field": "gate_ratio", "title": "ratio (normalised)", "format": ".3f"}]}})
    if steps:
        datasets["history_changes"] = steps
        layers.append(
            {"data": {"name": "history_changes"}, "transform": [chosen],
             "mark": {"type": "rule", "strokeDash": [4, 3], "strokeWidth": 2},
             "encoding": {"x": x, "stroke": {"field": "verdict", "type": "nominal", "title": "change point",
                                             "scale": {"domain": ["regression", "improvement"],
                                                       "range": [GATE_COLOURS["regression"],
                                                                 GATE_COLOURS["improvement"]]}},
                          "tooltip": [{"field": "revision", "title": "first revision after"}, {"field": "line"},
                                      {"field": "machine"}, {"field": "verdict"},
                                      {"field": "step", "title": "step [95% interval]"}]}})
    spec = {
        "$schema": SCHEMA, "width": 2 * WIDTH, "height": HEIGHT + 40,
        "params": [{"name": "model_sel", "value": models[0],
                    "bind": {"input": "select", "options": models, "name": "model "}}],
        "layer": layers,
    }
    return Chart("chart-history", "history", spec, datasets), models


def accuracy_latency(evals: Sequence[dict[str, Any]], profile: Sequence[dict[str, Any]]) -> list[Chart]:
    """Top-1 on the user's images (``cnnprof eval``) against batch-1 median latency (``bench``), one
    point per model, backend and precision that has both on the same machine (the newest of each),
    with the top-1's 95% interval as a bar. One chart, or none."""
    latency: dict[tuple, dict[str, Any]] = {}
    for r in profile:  # oldest first: the newest wins
        if r.get("latency_ms_median") and not r.get("error") and (r.get("batch") or 1) == 1:
            latency[(r.get("model"), r.get("backend"), r.get("precision") or "fp32", r.get("machine"))] = r
    newest: dict[tuple, dict[str, Any]] = {}
    for r in evals:
        if r.get("top1") is not None and not r.get("error"):
            newest[(r.get("model"), r.get("backend"), r.get("precision") or "fp32", r.get("machine"))] = r
    data = []
    for key, r in newest.items():
        t = latency.get(key)
        if t is None:
            continue
        drop = r.get("top1_drop")
        data.append({"model": r["model"], "series": series_of(r), "top1": 100 * r["top1"],
                     "top1_low": 100 * (r.get("top1_low") or r["top1"]),
                     "top1_high": 100 * (r.get("top1_high") or r["top1"]), "images": r.get("images"),
                     "top1_drop": None if drop is None else 100 * drop,
                     "latency_ms_median": t["latency_ms_median"], "machine": r.get("machine")})
    if not data:
        return []
    enc_x = {"field": "latency_ms_median", "type": "quantitative", "scale": {"type": "log"},
             "title": "median latency, batch 1 (ms)"}
    colour = {"field": "series", "type": "nominal", "title": "backend precision"}
    tooltip = [{"field": "model"}, {"field": "series", "title": "backend precision"},
               {"field": "top1", "title": "top-1 (%)", "format": ".2f"},
               {"field": "top1_low", "title": "95% low", "format": ".2f"},
               {"field": "top1_high", "title": "95% high", "format": ".2f"},
               {"field": "top1_drop", "title": "drop vs fp32 torch (points)", "format": ".2f"},
               {"field": "images"}, {"field": "latency_ms_median", "title": "median (ms)", "format": ".3f"},
               {"field": "machine"}]
    spec = {
        "$schema": SCHEMA, "data": {"name": "accuracy"}, "width": WIDTH, "height": HEIGHT,
        "title": "top-1 on the evaluated images against latency",
        "layer": [
            {"mark": {"type": "rule"}, "encoding": {
                "x": enc_x, "y": {"field": "top1_low", "type": "quantitative", "title": "top-1 (%)",
                                  "scale": {"zero": False}},
                "y2": {"field": "top1_high"}, "color": colour}},
            {"mark": {"type": "point", "filled": True, "size": 60}, "encoding": {
                "x": enc_x, "y": {"field": "top1", "type": "quantitative"}, "color": colour,
                "shape": {"field": "series", "type": "nominal", "title": "backend precision"}, "tooltip": tooltip}},
            {"mark": {"type": "text", "align": "left", "dx": 5, "dy": -5, "fontSize": 9},
             "encoding": {"x": enc_x, "y": {"field": "top1", "type": "quantitative"}, "text": {"field": "model"}}},
        ],
    }
    return [Chart("chart-accuracy", "accuracy against latency", spec, {"accuracy": data})]
