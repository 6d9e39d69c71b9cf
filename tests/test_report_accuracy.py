"""The page's accuracy-against-latency chart: one point per model, backend and precision that has
both an ``eval`` top-1 and a batch-1 ``bench`` latency on the same machine (the newest of each),
drawn in a real browser."""

from __future__ import annotations

import json
import re

import pytest
from browser import needs_chromium, opened
from store_data import environment

CPU = "Test CPU 0 [avx2]"


def _profile(backend, precision, ms, batch=1):
    return {"model": "net_a", "family": "synthetic", "input": "3x224x224", "batch": batch, "params": 1_000_000,
            "macs": 50_000_000, "backend": backend, "device": "cpu", "threads": 1, "precision": precision,
            "latency_ms_median": ms, "latency_ms_iqr": 0.1, "runs": 40, "warnings": "", "error": ""}


def _eval(backend, precision, top1, error=""):
    return {"model": "net_a", "family": "synthetic", "weights": "net_a.pt", "input": "3x224x224", "batch": 1,
            "backend": backend, "device": "cpu", "threads": 1, "precision": precision, "images": 500,
            "top1": top1, "top1_low": top1 - 0.04, "top1_high": top1 + 0.04, "top1_drop": 0.75 - top1,
            "top1_agreement": 0.97, "crop_pct": 0.875, "interpolation": "bilinear", "error": error}


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from typer.testing import CliRunner

    from cnnprof.cli import app
    from cnnprof.store import Store, now_iso
    from cnnprof.store.columns import Kind

    folder = tmp_path_factory.mktemp("accuracy")
    env = environment("0abc000", cpu=CPU)
    with Store.open(folder / "db.db") as store:
        store.record("bench", ["cnnprof", "bench"], Kind.PROFILE,
                     [_profile("torch", "fp32", 12.0), _profile("onnxruntime", "int8", 4.0),
                      _profile("onnxruntime", "int8", 99.0, batch=8), _profile("openvino", "fp32", 7.0)],
                     environment=env, started_at=now_iso())
        store.record("eval", ["cnnprof", "eval"], Kind.EVAL,
                     [_eval("torch", "fp32", 0.70), _eval("onnxruntime", "int8", 0.72),
                      _eval("openvino", "int8", 0.5), _eval("openvino", "fp32", 0.0, error="failed")],
                     environment=env, started_at=now_iso())
        store.record("eval", ["cnnprof", "eval"], Kind.EVAL, [_eval("torch", "fp32", 0.75)], environment=env,
                     started_at=now_iso())  # newer: this one is drawn
    out = folder / "report.html"
    result = CliRunner().invoke(app, ["report", "--db", str(folder / "db.db"), "--output", str(out)])
    assert result.exit_code == 0, result.stderr
    return out


def test_the_points_are_the_configurations_with_both_figures(page):
    data = json.loads(re.search(r'<script id="cnnprof-data" type="application/json">(.*?)</script>',
                                page.read_text(encoding="utf-8"), re.S).group(1))
    columnar = data["datasets"]["accuracy"]
    points = sorted((r[columnar["cols"].index("series")], r[columnar["cols"].index("top1")],
                     r[columnar["cols"].index("latency_ms_median")]) for r in columnar["rows"])
    # openvino int8 has no latency, openvino fp32's evaluation failed, batch 8 is not batch 1
    assert points == [("onnxruntime int8", pytest.approx(72.0), 4.0), ("torch fp32", pytest.approx(75.0), 12.0)]


@needs_chromium
def test_the_chart_draws_one_point_and_one_interval_per_configuration(page):
    with opened(page) as (browser_page, seen):
        marks = browser_page.evaluate("""['symbol', 'rule'].map(k => document.querySelectorAll(
            '#chart-accuracy svg g.mark-' + k + '.role-mark path, #chart-accuracy svg g.mark-' + k +
            '.role-mark line').length)""")
        heading = browser_page.evaluate("document.querySelector('#accuracy h2')?.textContent || ''")
    assert seen.errors == [] and seen.console_errors() == []
    assert marks == [2, 2]
    assert "Accuracy against latency" in heading
