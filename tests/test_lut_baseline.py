"""The MACs baselines ``lut predict --measure`` shows beside the table (cnnprof.lut.baseline):
non-negative least squares, held-out fitting, MACs by op kind, and the summary figures with fake
timers whose latency is made of MACs (no clock is read)."""

from __future__ import annotations

import numpy as np
import pytest
from torch import nn

from cnnprof.lut import baseline, evaluate
from cnnprof.lut.measure import Measured
from cnnprof.lut.table import load
from test_lut import full_table_path, space224  # noqa: F401 (fixtures)


def test_nnls_solves_a_positive_system_and_clips_a_negative_coefficient():
    a = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert baseline.nnls(a, a @ np.array([2.0, 3.0])) == pytest.approx([2.0, 3.0])
    # unconstrained: x = (2, -1); with x >= 0 the best is x2 = 0, x1 = mean of (2, 1)
    b = np.array([2.0, -1.0, 1.0])
    x = baseline.nnls(a, b)
    assert x[1] == 0.0 and x[0] == pytest.approx(1.5)


def test_held_out_predictions_come_from_the_other_half():
    f = np.array([[1.0], [2.0], [3.0], [4.0]])
    exact = baseline.held_out(f, 5.0 * f[:, 0])
    assert exact == pytest.approx(5.0 * f[:, 0])
    skewed = np.array([10.0, 20.0, 30.0, 80.0])  # one network twice as slow per MAC as the others
    pred = baseline.held_out(f, skewed)
    in_sample = f[:, 0] * baseline.fit(f, skewed)[0]
    assert not np.allclose(pred, in_sample)  # not the in-sample fit: each half fitted on the other
    assert baseline.held_out(f[:3], skewed[:3]) is None  # too few networks for two halves


def test_macs_by_kind_counts_convs_and_linear_by_op_kind():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1, groups=8),
                          nn.Conv2d(8, 16, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    got = baseline.macs_by_kind(model, (3, 8, 8))
    assert got == {"dense conv": 64 * 8 * 27, "depthwise": 64 * 8 * 9, "pointwise": 64 * 16 * 8, "linear": 160}


def _macs_timer(per_kind: dict[str, float]):
    """A whole network 'takes' sum over op kinds of its MACs x per_kind[kind] (default 1e-6 ms)."""

    def timer(module, input_shape, label):
        ms = sum(m * per_kind.get(k, 1e-6) for k, m in baseline.macs_by_kind(module, input_shape).items())
        return Measured(ms, 0.0, ms, ms, 20)

    return timer


def _summary(result, group: str, metric: str):
    return next(s for s in result.summary if s.group == group and s.metric == metric)


def test_latency_proportional_to_macs_gives_the_macs_baseline_rho_1_and_all_within_10(full_table_path):  # noqa: F811
    result = evaluate.predict(load(full_table_path), sample=6, seed=3, measure=True, rounds=1,
                              timer=_macs_timer({}))
    for group in ("models", "samples"):
        assert _summary(result, group, "Spearman rho").macs == pytest.approx(1.0)
        assert _summary(result, group, "within +-10%").macs == 1.0
        assert _summary(result, group, "mean |error|").macs == pytest.approx(0.0, abs=1e-9)
    measured = [r for r in result.rows if r.measured_ms is not None]
    assert all(r.macs_ms == pytest.approx(r.measured_ms) for r in measured)
    # per kind: right too, up to what a half of 4-5 networks leaves undetermined among 5 kinds
    assert all(r.macs_kind_ms == pytest.approx(r.measured_ms, rel=0.01) for r in measured)


def test_a_kind_three_times_slower_per_mac_makes_the_per_kind_baseline_beat_macs_alone(full_table_path):  # noqa: F811
    result = evaluate.predict(load(full_table_path), sample=10, seed=4, measure=True, rounds=1,
                              timer=_macs_timer({"depthwise": 3e-6}))
    errors = _summary(result, "samples", "mean |error|")
    assert errors.macs_by_kind == pytest.approx(0.0, abs=1e-6)  # the model is exact per kind
    assert errors.macs > 0.02  # one constant cannot follow the depthwise share
    assert errors.macs_by_kind < errors.macs


def test_cli_predict_measure_shows_the_table_beside_both_baselines(cli, full_table_path, monkeypatch):  # noqa: F811
    from cnnprof.lut import measure

    monkeypatch.setattr(measure, "make_timer", lambda **kw: _macs_timer({}))
    out = cli("lut", "predict", "--table", str(full_table_path), "--sample", "5", "--measure", "--rounds", "1",
              "--no-db", "-f", "json")
    assert out.exit_code == 0, out.output
    rows = [r for r in __import__("json").loads(out.stdout) if r["measured_ms"] is not None]
    assert len(rows) == 8 and all(r["macs"] > 0 and r["macs_ms"] == pytest.approx(r["measured_ms"]) for r in rows)
    assert all(r["macs_kind_ms"] is not None for r in rows)
    assert "samples: within +-10%: " in out.stderr
    line = next(ln for ln in out.stderr.splitlines() if ln.startswith("samples: within +-10%"))
    assert "MACs x c 100" in line and "MACs per op kind" in line
    assert "fitted on the other half of the measured networks" in out.stderr
