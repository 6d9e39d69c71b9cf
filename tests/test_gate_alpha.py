"""The gate's significance level pinned: fixed samples whose p-value is worked out by hand (Welch's
t with two processes a side, equal spreads: two degrees of freedom, where Student's t has a
closed form), between 0.01 and 0.5, so that the documented default (`--alpha`, 0.01, README)
passes them and 0.5 fails them: a default moved to 0.5 fails here every time."""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
from pathlib import Path

import pytest

from cnnprof.gate import core, stats
from cnnprof.gate.baseline import ModelRecord, ProcessSamples
from cnnprof.gate.calibration import CALIBRATION_INPUT, CALIBRATION_NAME, CALIBRATION_VERSION
from cnnprof.gate.measure import PROTOCOL_VERSION, Run, Settings

ROOT = Path(__file__).resolve().parents[1]
MODEL = "mobilenetv3_small"
RATIO = 1.3  # now / baseline: above the default factor 1.10
D = 0.06  # each side's two processes sit at exp(-D) and exp(+D) times the side's level


def process(level: float, n: int = 20) -> ProcessSamples:
    """A process whose every call costs ``level`` calibration calls (1 ms each, on both clocks)."""
    calls, calibration = (level,) * n, (1.0,) * n
    return ProcessSamples(calls, calibration, calibration, calls, calibration, calibration)


BASE = [process(math.exp(-D)), process(math.exp(D))]
NOW = [process(RATIO * math.exp(-D)), process(RATIO * math.exp(D))]


def p_by_hand() -> float:
    """log levels -D, +D against log(RATIO) -D, +D: difference log(RATIO); each side's variance
    (n - 1 = 1) is 2 D^2, so the standard error is sqrt(2 D^2 / 2 + 2 D^2 / 2) = D sqrt(2), and
    Welch's degrees of freedom are exactly 2. Student's t with 2 degrees of freedom has
    P(|T| >= t) = 1 - t / sqrt(2 + t^2)."""
    t = math.log(RATIO) / (D * math.sqrt(2))
    return 1 - t / math.sqrt(2 + t * t)


def documented_alpha() -> float:
    found = re.findall(r"`--alpha`, ([0-9.]+)\)", (ROOT / "docs" / "gate.md").read_text())
    assert len(found) == 1, "the gate's page names its default --alpha once: '(`--alpha`, 0.01)'"
    return float(found[0])


def baseline():
    return core.Baseline(
        backend="torch", threads=1, threads_spec="1",
        calibration={"version": CALIBRATION_VERSION, "name": CALIBRATION_NAME, "input": list(CALIBRATION_INPUT)},
        protocol={"version": PROTOCOL_VERSION, "processes": 2, "min_time_s": 0.2, "min_rounds": 10, "warmup_s": 0.3,
                  "instances": 1, "clock": "cpu"},
        environment=core._fingerprint(1), created="2026-01-01T00:00:00Z",
        models=(ModelRecord(name=MODEL, input=(3, 64, 64), params=10, macs=100, processes=tuple(BASE)),))


@pytest.fixture
def fixed_samples(monkeypatch):
    """``gate check`` measures nothing: its processes return NOW, its counts are the baseline's."""
    asked = []

    def measure(models, settings, *, processes=None, **_):
        asked.append(processes)
        names = tuple(m.name for m in models)
        return {n: list(NOW) for n in names}, [Run(names, rounds=20, measure_s=0.1, wall_s=0.5, others_cores=0.0)] * 2

    monkeypatch.setattr(core, "measure", measure)
    monkeypatch.setattr(core, "count_models", lambda models: {m.name: (10, 100) for m in models})
    return asked


def test_the_fixed_samples_p_value_is_the_one_worked_out_by_hand():
    c = stats.compare(BASE, NOW, alpha=0.01, clock="cpu")
    assert c.method == "welch-t on process medians"
    assert c.ratio == pytest.approx(RATIO, rel=1e-12)
    assert c.p_value == pytest.approx(p_by_hand(), rel=1e-6)
    assert 0.01 < c.p_value < 0.5  # about 0.091: significant at 0.5, not at 0.01
    assert stats.decide(c, factor=1.10, alpha=0.01) == stats.PASS
    assert stats.decide(c, factor=1.10, alpha=0.5) == stats.REGRESSION


def test_the_default_alpha_is_the_documented_one(fixed_samples):
    assert documented_alpha() == 0.01
    [row] = core.check(baseline(), Settings(processes=2), extra_processes=0).rows
    assert row.verdict == stats.PASS and row.p_value == pytest.approx(p_by_hand(), rel=1e-6)
    [row] = core.check(baseline(), Settings(processes=2), extra_processes=0, alpha=0.5).rows
    assert row.verdict == stats.REGRESSION


def test_gate_check_without_alpha_passes_what_alpha_half_fails(cli, tmp_path, fixed_samples):
    path = tmp_path / "baseline.json"
    path.write_text(baseline().to_json())
    common = ("gate", "check", "--baseline", str(path), "--processes", "2", "--extra-processes", "0", "-f", "json")
    default = cli(*common)
    assert default.exit_code == 0, default.output
    assert [r["verdict"] for r in json.loads(default.stdout)] == ["pass"]
    half = cli(*common, "--alpha", "0.5")
    assert half.exit_code == 1 and f"{MODEL} (regression, 1.300x)" in half.stderr, half.output
    assert fixed_samples == [None, None]  # one first pass each, nothing re-measured
    with sqlite3.connect(os.environ["CNNPROF_DB"]) as conn:  # each check records the alpha it used
        used = [json.loads(c)["alpha"] for (c,) in conn.execute("SELECT context FROM runs ORDER BY id")]
    assert used == [documented_alpha(), 0.5]
