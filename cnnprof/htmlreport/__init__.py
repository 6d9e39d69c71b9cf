"""``cnnprof report``: one self-contained HTML page of results.

Everything it needs is inside the file (styles, the chart library, the data, no web fonts or
images from elsewhere), and its Content-Security-Policy forbids the page any request, so it opens
offline, from a mail attachment or a CI artefact, and shows the same thing everywhere. Sections:
the latest results (a sortable, filterable table), the Pareto picture (latency against MACs and
against params, per machine), the compound-scaling curve, rooflines of per-layer timings, the
claims with their verdicts, each model's latency across revisions with the gate's verdicts, and
the runs. Charts are Vega-Lite (interactive: tooltips, selectors), drawn as SVG, so the page
prints legibly.
"""

from __future__ import annotations

import html
import json
import time
from typing import Any, Sequence

from cnnprof.htmlreport import charts as ch
from cnnprof.htmlreport.data import Dataset
from cnnprof.rows import finite
from cnnprof.store.columns import Kind

RESULT_COLUMNS = [
    ("model", "model", "text"), ("family", "family", "text"), ("backend", "backend", "text"),
    ("precision", "precision", "text"), ("batch", "batch", "int"), ("threads", "threads", "int"),
    ("input", "input", "text"), ("params", "params", "count"), ("macs", "MACs", "count"),
    ("latency_ms_median", "median (ms)", "ms"), ("latency_ms_p90", "p90 (ms)", "ms"),
    ("latency_ms_iqr", "IQR (ms)", "ms"), ("runs", "runs", "int"), ("passes", "passes", "int"),
    ("warnings", "warnings", "notes"), ("error", "error", "prose"), ("revision", "revision", "text"),
    ("machine", "machine", "text"), ("recorded_at", "recorded (UTC)", "time"),
]


def _machine_first(columns: list[tuple[str, str, str]], machines: list[str]) -> list[tuple[str, str, str]]:
    """With results from more than one machine (cluster nodes), the machine column comes second,
    beside the model, where rows that differ only by machine can be told apart at a glance."""
    if len(machines) < 2:
        return columns
    machine = next(c for c in columns if c[0] == "machine")
    rest = [c for c in columns if c[0] != "machine"]
    return rest[:1] + [machine] + rest[1:]


CLAIM_COLUMNS = [
    ("claim", "claim", "text"), ("verdict", "verdict", "verdict"), ("expected", "expected", "float"),
    ("measured", "measured", "float"), ("unit", "unit", "text"), ("tolerance", "tolerance", "text"),
    ("statement", "statement", "prose"), ("revision", "revision", "text"), ("machine", "machine", "text"),
]
GATE_COLUMNS = [
    ("model", "model", "text"), ("verdict", "verdict", "verdict"), ("ratio", "ratio (normalised)", "float"),
    ("ci_low", "CI low", "float"), ("ci_high", "CI high", "float"), ("p_value", "p-value", "float"),
    ("baseline_ms", "baseline (ms)", "ms"), ("now_ms", "now (ms)", "ms"), ("revision", "revision", "text"),
    ("machine", "machine", "text"), ("recorded_at", "checked (UTC)", "time"), ("note", "note", "prose"),
]
RUN_COLUMNS = [
    ("id", "run", "int"), ("command", "command", "text"), ("status", "status", "text"),
    ("started_at", "started (UTC)", "time"), ("revision", "revision", "text"), ("rows", "rows", "int"),
    ("errors", "errors", "int"), ("machine", "machine", "text"), ("argv", "command line", "prose"),
]
ENV_COLUMNS = [
    ("machine", "machine", "text"), ("torch", "torch", "text"), ("onnxruntime", "onnxruntime", "text"),
    ("openvino", "openvino", "text"), ("python", "python", "text"), ("cpu", "CPU", "text"), ("cores", "cores", "int"),
    ("gpu", "GPU", "text"), ("platform", "platform", "text"), ("revisions", "cnnprof revisions", "prose"),
    ("rows", "profile rows", "int"), ("newest", "newest (UTC)", "time"),
]
MAX_RUNS_SHOWN = 500


def _code(text: str) -> str:
    """`command` -> <code>command</code> in escaped text."""
    import re

    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def _latest(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    newest: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        newest[tuple(r.get(k) for k in keys)] = r
    return list(newest.values())


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]]) -> dict[str, Any]:
    return {"columns": [list(c) for c in columns], "rows": [[r.get(c[0]) for c in columns] for r in rows]}


def _columnar(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Records as {cols, rows}: the page's data, about half the size of a list of objects."""
    cols: list[str] = []
    for r in records:
        for k in r:
            if k not in cols:
                cols.append(k)
    return {"cols": cols, "rows": [[r.get(c) for c in cols] for r in records]}


# Characters that must not appear raw in JSON inlined in a <script> element: '<' (a '</script>' closes
# it, a '<!--<script>' puts the parser into a state where the real '</script>' no longer does), '>'
# and '&' (the other halves of those sequences), and the two line separators that older JavaScript
# parsers take for line ends. Each becomes its \uXXXX escape, which JSON.parse reads back unchanged.
_SCRIPT_UNSAFE = {ord(c): f"\\u{ord(c):04x}" for c in "<>&\u2028\u2029"}


def _script_json(data: Any) -> str:
    """JSON safe inside a <script> element: whatever the data holds (a model name of
    '</script>' or '<!--<script>'), the element ends where the page says and parses back as given."""
    text = json.dumps(finite(data), allow_nan=False, separators=(",", ":"), default=str)
    return text.translate(_SCRIPT_UNSAFE)


def build(data: Dataset, *, title: str = "cnnprof report", compare: Sequence[str] | None = None) -> str:
    """The page, as text. ``compare``: the two runs or revisions its comparison shows (A, B; by
    default the two newest revisions)."""
    from cnnprof.htmlreport import assets
    from cnnprof.htmlreport import compare as comparing
    from cnnprof.changes import INCONCLUSIVE, change_points
    from cnnprof.store.query import first_seen_models, history_lines
    from cnnprof.version import __version__

    profile = data.of(Kind.PROFILE)
    latest = _latest(profile, ("model", "input", "batch", "backend", "device", "threads", "precision", "machine"))
    latest.sort(key=lambda r: (r.get("model") or "", r.get("backend") or "", r.get("precision") or "",
                               r.get("batch") or 0, r.get("threads") or 0, r.get("machine") or ""))
    claims = _latest(data.of(Kind.CLAIM), ("claim", "machine"))
    claims.sort(key=lambda r: r.get("claim") or "")
    gate = _latest(data.of(Kind.GATE_CHECK), ("model", "machine"))
    timed = [r for r in profile if r.get("latency_ms_median") is not None and not r.get("error")]
    # a line's revision is its model's own where a row says it (``model_revision``), else cnnprof's
    seen = {**data.revision_order, **first_seen_models([*timed, *data.of(Kind.GATE_CHECK)])}
    lines = history_lines(timed, data.of(Kind.GATE_CHECK), seen)
    steps = [c for c in change_points(lines) if c.verdict != INCONCLUSIVE]

    charts: list[ch.Chart] = []
    sections: list[tuple[str, str, str]] = []  # id, heading, inner HTML

    machines = sorted({r["machine"] for r in profile if r.get("machine")})
    revisions = sorted(data.revision_order, key=lambda r: data.revision_order[r])
    models = sorted({r["model"] for r in profile if r.get("model")})
    total_rows = sum(len(v) for v in data.rows.values())
    esc = html.escape

    sections.append(("results", "Latest results", (
        f"<p>The newest row of each configuration (model, input, batch, backend, device, threads, precision, "
        f"machine): {len(latest)} of {len(profile)} profile rows. Click a header to sort; type to filter. Latency is "
        f"the median of the pooled samples (sweeps pool their passes), in milliseconds. A column with the same "
        f"value on every row is said once above the table instead; <em>columns</em> shows it again.</p>"
        f'<div class="controls"><input type="search" class="filter" data-for="table-results" '
        f'placeholder="filter rows (e.g. ghostnet, onnxruntime)" aria-label="filter the results"></div>'
        f'<div class="table-wrap"><table id="table-results" class="sortable" data-table="results" data-compact>'
        f"</table></div>"
        if latest else "<p class=empty>No profile rows yet: <code>cnnprof sweep</code>, <code>bench</code>, "
        "<code>compare</code> or <code>profile</code> record them.</p>")))

    comparison = comparing.of(data, compare)
    offered = comparing.choices(data, comparison) if comparison is not None else []
    if comparison is not None:
        options = "".join(f'<option value="{i}">{esc(c.title)}</option>' for i, c in enumerate(offered))
        sections.append(("compare", "Comparison of two runs or revisions", (
            '<div class="controls"><label>Compare <select id="compare-pick" aria-label="the two runs or revisions '
            f'compared">{options}</select></label></div>'
            f'<p>A: <span class="side" id="compare-a">{esc(comparison.a.label)}</span>; B: <span class="side" '
            f'id="compare-b">{esc(comparison.b.label)}</span>. <span id="compare-note">{esc(comparison.note)}</span>'
            "</p><p>Each configuration (model, input, backend, precision, batch, threads, machine) timed in both: the "
            "ratio of B's median latency to A's, and its interval [B low / A high, B high / A low] from the two "
            "medians' 95% intervals where both rows have one (<em>slower</em> or <em>faster</em> when the interval "
            "excludes 1, else <em>inconclusive</em>); <em>gate at B</em> is the verdict of <code>cnnprof gate "
            "check</code> on that configuration at B's revision. The gate's regressions first, then the largest "
            "ratios. <code>cnnprof report --compare A B</code> (run ids or revisions) chooses the first two shown "
            "(by default the two newest revisions); the selector also offers each revision against the one before."
            "</p>"
            f'<p class="empty" id="compare-empty"{"" if not comparison.rows else " hidden"}>No configuration was '
            "timed in both.</p>"
            '<div class="controls"><input type="search" class="filter" data-for="table-compare" '
            'placeholder="filter rows" aria-label="filter the comparison"></div><div class="table-wrap">'
            '<table id="table-compare" class="sortable" data-table="compare" data-compact></table></div>')))

    sections.append(("environment", "Where they were measured", (
        "<p>The runtime versions, CPU and platform stored with the profile rows, per machine (a machine "
        "appears once for each set of versions it measured with), and the revisions of cnnprof that measured "
        "them.</p>"
        '<div class="table-wrap"><table id="table-environment" class="sortable" data-table="environment"></table>'
        "</div>" if data.environments else "<p class=empty>No profile rows: no environment to show.</p>")))

    pareto = ch.pareto(latest)
    charts += pareto
    sections.append(("pareto", "Pareto: latency against MACs and parameters", (
        "<p>One panel pair per machine; one marker per backend and precision; the dashed line joins the models "
        "no other model beats on both axes (for that marker, batch and threads: choose them under each chart). "
        f"Each point is named while a panel draws at most {ch.MAX_LABELS} points; hover over a point for its model "
        "and figures. Log scales. MACs are conv + linear multiply-adds, the papers' \"FLOPs\".</p>"
        + "".join(f'<h3>{esc(c.title)}</h3><div class="chart" id="{c.id}"></div>' for c in pareto)
        if pareto else "<p class=empty>No timed rows with counts yet (<code>cnnprof sweep</code>).</p>")))

    accuracy = ch.accuracy_latency(data.of(Kind.EVAL), profile)
    charts += accuracy
    sections.append(("accuracy", "Accuracy against latency", (
        "<p>Top-1 on the user's images (<code>cnnprof eval</code>, with its 95% interval as a bar) against the "
        "batch-1 median latency <code>cnnprof bench</code> measured for the same model, backend and precision on "
        "the same machine; the newest of each. The accuracy is that of the weights evaluated, on the images "
        "evaluated (docs/accuracy.md).</p>" + "".join(f'<div class="chart" id="{c.id}"></div>' for c in accuracy)
        if accuracy else "<p class=empty>No model has both an accuracy (<code>cnnprof eval</code>) and a batch-1 "
        "latency (<code>cnnprof bench</code>) for the same backend and precision.</p>")))

    scaling, scaling_text = ch.scaling(data.of(Kind.SCALE), profile)
    charts += scaling
    sections.append(("scaling", "Compound scaling", f"<p>{_code(esc(scaling_text))}</p>" + "".join(
        f'<div class="chart" id="{c.id}"></div>' for c in scaling)))

    roofs = ch.rooflines(data.of(Kind.LAYER), data.roofs)
    charts += roofs
    sections.append(("roofline", "Rooflines of per-layer timings", (
        "<p>Each layer of the newest per-layer run of a model (<code>cnnprof profile MODEL --timing</code>): "
        "arithmetic intensity against the rate it achieved, under the machine's compute and bandwidth roofs "
        "(<code>cnnprof machine</code>). Point size: the layer's latency.</p>"
        + "".join(f'<div class="chart" id="{c.id}"></div>' for c in roofs)
        if roofs else "<p class=empty>No per-layer timings recorded: <code>cnnprof profile MODEL --timing</code> "
        "records them.</p>")))

    if claims:
        counts = {}
        for r in claims:
            counts[r.get("verdict")] = counts.get(r.get("verdict"), 0) + 1
        summary = ", ".join(f'<span class="verdict v-{esc(str(k))}">{esc(str(k))}</span> {n}'
                            for k, n in sorted(counts.items(), key=lambda kv: str(kv[0])))
        body = (f"<p>The newest verdict on each claim of the seed chapter (per machine): {summary}.</p>"
                '<div class="table-wrap"><table id="table-claims" class="sortable" data-table="claims"></table></div>')
    else:
        body = "<p class=empty>No claims recorded: <code>cnnprof claims</code> records them.</p>"
    sections.append(("claims", "Claims and their verdicts", body))

    hist, hist_models = ch.history(lines, seen, steps)
    if hist is not None:
        charts.append(hist)
    flagged = [ln for ln in lines if ln.get("gate") and ln["gate"] != "pass"]
    n_flagged = len({(ln["model"], ln["revision"], ln["machine"]) for ln in flagged})
    hist_text = (f"<p>The median latency of each model at each revision (choose the model; {len(hist_models)} "
                 "have rows at more than one revision), a line per backend, precision, batch and threads (dash: "
                 "machine), with its 95% interval; triangles mark the revisions where <code>cnnprof gate check</code> "
                 f"flagged the model ({n_flagged} flagged in all); dotted rules mark change points, on the first "
                 f"revision after each step ({len(steps)} in all: <code>cnnprof history MODEL --changes</code>). "
                 "Revisions are ordered by when they were first seen.</p>"
                 + (f'<div class="chart" id="{hist.id}"></div>' if hist is not None else
                    f"<p class=empty>{len(revisions)} revision(s) so far: the history appears once a "
                    "model has rows at two revisions.</p>"))
    if gate:
        hist_text += ('<h3>The gate\'s newest verdicts</h3><div class="table-wrap"><table id="table-gate" '
                      'class="sortable" data-table="gate"></table></div>')
    sections.append(("history", "History across revisions", hist_text))

    runs = data.runs[:MAX_RUNS_SHOWN]
    sections.append(("runs", "Runs", (
        f"<p>{len(data.runs)} run(s), newest first" + (f" (the newest {MAX_RUNS_SHOWN} shown)" if len(data.runs) >
                                                        MAX_RUNS_SHOWN else "") + ".</p>"
        '<div class="table-wrap"><table id="table-runs" class="sortable" data-table="runs"></table></div>'
        if runs else "<p class=empty>Read from report files: no runs.</p>")))

    payload = {
        "tables": {"results": _table(latest, _machine_first(RESULT_COLUMNS, machines)),
                   "environment": _table(data.environments, ENV_COLUMNS), "claims": _table(claims, CLAIM_COLUMNS),
                   "gate": _table(gate, GATE_COLUMNS), "runs": _table(runs, RUN_COLUMNS),
                   "compare": _table(comparison.rows if comparison else [], comparing.COLUMNS)},
        "comparisons": [{"a": c.a.label, "b": c.b.label, "note": c.note, "table": _table(c.rows, comparing.COLUMNS)}
                        for c in offered],
        "charts": [{"target": c.id, "spec": c.spec, "datasets": sorted(c.datasets)} for c in charts],
        "datasets": {name: _columnar(values) for c in charts for name, values in c.datasets.items()},
    }
    bundle, versions = assets.vega_bundle()
    bundle = bundle.replace("</script", "<\\/script")  # (it has none; a script element must not close early)
    generated = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    nav = "".join(f'<a href="#{sid}">{esc(heading.split(":")[0])}</a>' for sid, heading, _ in sections)
    body = "".join(f'<section id="{sid}"><h2>{esc(heading)}</h2>{inner}</section>' for sid, heading, inner in sections)
    meta = (f"{total_rows} row(s) from {esc(data.source)}; {len(models)} model(s), {len(machines)} machine(s), "
            f"{len(revisions)} revision(s). Generated {generated} by cnnprof {esc(__version__)}.")
    csp = ("default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
           "img-src data:; font-src data:")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{assets.styles()}</style></head><body>"
        f'<header><h1>{esc(title)}</h1><p class="meta">{meta}</p><nav>{nav}</nav></header>'
        f"<main>{body}</main>"
        f'<footer>Charts: {esc(versions)}, inlined. Tables and data: cnnprof. This file makes no network '
        "requests.</footer>"
        f'<script id="cnnprof-data" type="application/json">{_script_json(payload)}</script>'
        f"<script>{bundle}</script><script>{assets.script()}</script></body></html>\n"
    )
