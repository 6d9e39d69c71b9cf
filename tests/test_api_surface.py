"""What a newcomer meets first: ``cnnprof.<submodule>`` after ``import cnnprof`` (loaded on first
access, so ``import cnnprof`` itself loads nothing heavy), and short reprs for results."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def test_submodules_load_on_first_access_after_import_cnnprof():
    result = python(
        "import sys, cnnprof\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('cnnprof.') or m == 'torch')\n"
        "print(loaded)\n"
        "print(cnnprof.targets.__name__, cnnprof.timing.__name__, cnnprof.lut.__name__, cnnprof.claims.__name__,"
        " cnnprof.gate.__name__, cnnprof.store.__name__)\n"
    )
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert first == "['cnnprof.version']"  # import cnnprof loads no submodule and no torch
    assert second == "cnnprof.targets cnnprof.timing cnnprof.lut cnnprof.claims cnnprof.gate cnnprof.store"


def test_a_name_that_is_no_submodule_is_an_attribute_error():
    import cnnprof

    with pytest.raises(AttributeError, match="no attribute 'no_such_room'"):
        cnnprof.no_such_room  # noqa: B018
    assert not hasattr(cnnprof, "no_such_room")
    assert {"targets", "timing", "lut", "count"} <= set(dir(cnnprof))


def test_counts_repr_is_the_headline_and_the_data_one_attribute_away():
    import cnnprof

    counts = cnnprof.count("efficientnet_b0")
    text = repr(counts)
    assert len(text) < 400, text
    assert text.startswith("Counts(") and f"params={counts.params}" in text and f"macs={counts.macs}" in text
    assert f"layers=<{len(counts.layers)} items>" in text and len(counts.layers) > 100
    assert counts.modules and counts.by_op  # the full data is still there


def test_rows_have_short_reprs_whatever_they_hold():
    from cnnprof.rows import Environment, Latency, Note, Notes, ProfileRow

    env = Environment(python="3.11", platform="Linux", cpu="x" * 300, cores=2, torch="2", onnxruntime="1", gpu="",
                      threads=1, env={f"VAR{i}": "1" * 50 for i in range(40)}, loadavg=(1.0, 1.0, 1.0),
                      tool="cnnprof 0.1.0")
    samples = tuple(float(i) for i in range(10_000))
    lat = Latency(backend="torch", device="cpu", threads=1, batch=1, samples=samples, median=1.0, mean=1.0, std=0.1,
                  p10=0.9, p90=1.1, p99=1.2, iqr=0.1, min=0.8, ci_low=0.99, ci_high=1.01)
    row = ProfileRow(model="m" * 500, params=10, macs=20, backend="torch", latency_ms_median=1.0, environment=env,
                     warnings=Notes([Note.tagged("noisy", "y" * 400)]))
    for value in (env, lat, row):
        assert len(repr(value)) < 400, repr(value)
    assert "samples=<10000 values>" in repr(lat) and lat.samples == samples
    assert "params=10" in repr(row) and row.environment is env
