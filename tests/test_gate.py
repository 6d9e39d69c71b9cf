"""cnnprof gate: baseline schema and its failures, verdict statistics on synthetic samples, and one
record + check end to end on a tiny model (fresh worker processes, a very short protocol)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from cnnprof.errors import UsageError
from cnnprof.gate import core, stats
from cnnprof.gate.baseline import SCHEMA, Baseline, ModelRecord, ProcessSamples, load_baseline
from cnnprof.gate.calibration import CALIBRATION_INPUT, CALIBRATION_NAME, CALIBRATION_VERSION
from cnnprof.gate.measure import MALLOC_ENV, PROTOCOL_VERSION

TINY = ("mobilenetv3_small", (3, 64, 64))
FAST = ("--processes", "2", "--min-time", "0.2")


# -- synthetic samples -----------------------------------------------------------------------------
def proc(level: float, *, n: int = 40, noise: float = 0.05, speed: float = 1.0, seed: int = 0) -> ProcessSamples:
    """A process whose model costs ``level`` calibration calls, on a machine ``speed`` times slower."""
    rng = np.random.default_rng(seed)
    calib = speed * 5.0 * np.exp(rng.normal(0, noise, n + 1))
    model = level * np.sqrt(calib[:-1] * calib[1:]) * np.exp(rng.normal(0, noise, n))
    cpu = 0.98
    return ProcessSamples(tuple(model), tuple(calib[:-1]), tuple(calib[1:]),
                          tuple(cpu * model), tuple(cpu * calib[:-1]), tuple(cpu * calib[1:]))


def procs(level: float, k: int, *, spread: float = 0.02, seed: int = 0, **kw) -> list[ProcessSamples]:
    """``k`` processes, each in its own state: its level is off by a lognormal ``spread``."""
    rng = np.random.default_rng(1000 + seed)
    return [proc(level * math.exp(rng.normal(0, spread)), seed=seed * 100 + i, **kw) for i in range(k)]


def make_baseline(models: list[ModelRecord], **overrides) -> Baseline:
    fields = dict(
        backend="torch", threads=1, threads_spec="1",
        calibration={"version": CALIBRATION_VERSION, "name": CALIBRATION_NAME, "input": list(CALIBRATION_INPUT)},
        protocol={"version": PROTOCOL_VERSION, "processes": 2, "min_time_s": 0.2, "min_rounds": 10, "warmup_s": 0.3,
                  "instances": 2, "clock": "cpu"},
        environment=core._fingerprint(1), models=tuple(models), created="2026-01-01T00:00:00Z",
    )
    fields.update(overrides)
    return Baseline(**fields)


def record_of(name: str, processes: list[ProcessSamples], *, params: int = 10, macs: int = 100,
              shape=(3, 64, 64)) -> ModelRecord:
    return ModelRecord(name=name, input=shape, params=params, macs=macs, processes=tuple(processes))


def verdict(base: list[ProcessSamples], now: list[ProcessSamples], factor: float = 1.10, alpha: float = 0.01,
            counts=(10, 100)):
    return core.judge(record_of("m", base), now, input_shape=(3, 64, 64), counts=counts, factor=factor,
                      alpha=alpha, clock="cpu")


# -- statistics ------------------------------------------------------------------------------------
def test_student_t_matches_tables():
    # two-sided critical values from any t table
    assert stats.t_two_sided_p(4.604, 4) == pytest.approx(0.01, abs=2e-4)
    assert stats.t_two_sided_p(2.228, 10) == pytest.approx(0.05, abs=2e-4)
    assert stats.t_two_sided_p(12.706, 1) == pytest.approx(0.05, abs=2e-4)
    assert stats.t_critical(0.01, 6) == pytest.approx(3.707, abs=2e-3)
    assert stats.t_two_sided_p(0.0, 5) == 1.0


def test_normalising_cancels_machine_speed():
    fast, slow = proc(3.0, speed=1.0, noise=0.0), proc(3.0, speed=1.7, noise=0.0)
    assert np.allclose(stats.normalised(fast), 3.0) and np.allclose(stats.normalised(slow), 3.0)
    assert stats.raw_median([slow]) == pytest.approx(1.7 * stats.raw_median([fast]))


def test_a_a_passes():
    v = verdict(procs(3.0, 5, seed=1), procs(3.0, 4, seed=2))
    assert v.verdict == stats.PASS
    assert v.ci_low < 1.0 < v.ci_high and v.p_value > 0.01


def test_a_a_on_a_slower_machine_passes():
    v = verdict(procs(3.0, 5, seed=1), procs(3.0, 4, seed=2, speed=1.4))
    assert v.raw_ratio > 1.3  # a naive gate would fail this
    assert v.verdict == stats.PASS


def test_clear_30_percent_slowdown_fails():
    v = verdict(procs(3.0, 5, seed=1), procs(3.9, 4, seed=2))
    assert v.verdict == stats.REGRESSION
    assert v.ratio == pytest.approx(1.3, rel=0.05)
    assert v.ci_low > 1.0 and v.p_value < 0.01


def test_30_percent_but_not_significant_passes():
    # two processes a side, each in a wildly different state: the spread swamps the difference
    v = verdict(procs(3.0, 2, seed=3, spread=0.35), procs(3.9, 2, seed=4, spread=0.35))
    assert v.ratio > 1.10
    assert v.p_value >= 0.01
    assert v.verdict == stats.PASS


def test_faster_is_an_improvement_and_passes():
    v = verdict(procs(3.0, 5, seed=1), procs(2.4, 4, seed=2))
    assert v.verdict == stats.IMPROVEMENT and v.ratio < 1 / 1.10


def test_small_slowdown_under_the_factor_passes():
    v = verdict(procs(3.0, 5, seed=1, spread=0.005), procs(3.15, 4, seed=2, spread=0.005))
    assert v.p_value < 0.01 and 1.0 < v.ratio < 1.10  # real, but within the allowed factor
    assert v.verdict == stats.PASS


def test_p_value_and_interval_agree():
    for seed in range(6):
        c = stats.compare(procs(3.0, 4, seed=seed), procs(3.1, 3, seed=seed + 50), alpha=0.05)
        assert (c.p_value < 0.05) == (not c.ci_low <= 1.0 <= c.ci_high)


def test_interval_holding_the_factor_is_ambiguous():
    c = stats.Comparison(1.08, 1.01, 1.15, 0.02, "welch", 4, 4)
    assert stats.ambiguous(c, factor=1.10)
    assert not stats.ambiguous(stats.Comparison(1.3, 1.2, 1.4, 1e-5, "welch", 4, 4), factor=1.10)
    assert not stats.ambiguous(stats.Comparison(1.0, 0.95, 1.05, 0.9, "welch", 4, 4), factor=1.10)


def test_changed_counts_fail_whatever_the_latency():
    v = verdict(procs(3.0, 5, seed=1), procs(3.0, 4, seed=2), counts=(11, 100))
    assert v.verdict == stats.COUNT_CHANGED and "params 10 -> 11" in v.note


def test_one_process_a_side_says_its_p_value_is_within_process():
    v = verdict(procs(3.0, 1, seed=1), procs(3.0, 1, seed=2))
    assert v.method.startswith("within-process") and "process-to-process" in v.note


def test_wall_clock_used_when_cpu_times_are_missing():
    wall_only = [ProcessSamples(p.ms, p.calibration_before_ms, p.calibration_after_ms) for p in procs(3.0, 3)]
    base = make_baseline([record_of("mobilenetv3_small", wall_only)])
    assert core.choose_clock(base, 1) == "wall"
    assert core.choose_clock(make_baseline([record_of("mobilenetv3_small", procs(3.0, 3))]), 1) == "cpu"
    assert core.choose_clock(make_baseline([record_of("mobilenetv3_small", procs(3.0, 3))]), 2) == "wall"


# -- baseline file ---------------------------------------------------------------------------------
def write(path: Path, baseline: Baseline) -> Path:
    path.write_text(baseline.to_json())
    return path


def test_baseline_round_trips(tmp_path):
    b = make_baseline([record_of("mobilenetv3_small", procs(3.0, 2))])
    loaded = load_baseline(write(tmp_path / "b.json", b))
    assert json.loads(loaded.to_json()) == json.loads(b.to_json())
    doc = json.loads((tmp_path / "b.json").read_text())
    assert doc["schema"] == SCHEMA and doc["calibration"]["version"] == CALIBRATION_VERSION
    assert set(doc["models"][0]) == {"name", "input", "params", "macs", "processes"}
    assert {"torch", "cpu", "threads"} <= set(doc["environment"])


def _good(tmp_path) -> dict:
    return make_baseline([record_of("mobilenetv3_small", procs(3.0, 2))]).to_dict()


BAD = {
    "missing": None,
    "empty": "",
    "truncated": "TRUNCATE",
    "corrupt": b"\x89PNG\r\n\x1a\n\x00\xff",
    "not an object": "[1, 2, 3]",
    "wrong schema": lambda d: {**d, "schema": "cnnprof.gate.baseline/0"},
    "no models": lambda d: {**d, "models": []},
    "params missing": lambda d: {**d, "models": [{k: v for k, v in d["models"][0].items() if k != "params"}]},
    "macs a string": lambda d: {**d, "models": [{**d["models"][0], "macs": "385M"}]},
    "negative time": lambda d: {**d, "models": [{**d["models"][0], "processes": [
        {**d["models"][0]["processes"][0], "ms": [-1.0] * len(d["models"][0]["processes"][0]["ms"])}]}]},
    "model gone": lambda d: {**d, "models": [{**d["models"][0], "name": "mobilenetv9_tiny"}]},
    "other calibration": lambda d: {**d, "calibration": {**d["calibration"], "version": 999}},
    "other protocol": lambda d: {**d, "protocol": {**d["protocol"], "version": 999}},
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_baseline_is_one_line_exit_2_and_untouched(cli, tmp_path, case):
    path = tmp_path / "baseline.json"
    bad = BAD[case]
    if bad == "TRUNCATE":
        text = json.dumps(_good(tmp_path))
        path.write_text(text[: len(text) // 2])
    elif isinstance(bad, bytes):
        path.write_bytes(bad)
    elif isinstance(bad, str):
        path.write_text(bad)
    elif callable(bad):
        path.write_text(json.dumps(bad(_good(tmp_path))))
    before = path.read_bytes() if path.exists() else None
    result = cli("gate", "check", "--baseline", str(path), *FAST)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnnprof: error: "), result.stderr
    assert "Traceback" not in result.output
    assert (path.read_bytes() if path.exists() else None) == before


def test_strict_env_makes_a_different_environment_an_error(cli, tmp_path):
    b = make_baseline([record_of("mobilenetv3_small", procs(3.0, 2))])
    env = {**b.environment, "torch": "1.0.0", "cpu": "A different CPU"}
    path = write(tmp_path / "b.json", make_baseline(list(b.models), environment=env))
    with pytest.raises(UsageError, match="torch"):
        core.prepare(load_baseline(path), source=str(path), strict_env=True)
    _, _, diffs = core.prepare(load_baseline(path), source=str(path), strict_env=False)
    assert any(d.startswith("torch:") for d in diffs) and any(d.startswith("cpu:") for d in diffs)
    result = cli("gate", "check", "--baseline", str(path), "--strict-env", *FAST)
    assert result.exit_code == 2 and "torch: '1.0.0'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_factor_and_alpha_are_usage_errors(cli, tmp_path):
    path = write(tmp_path / "b.json", make_baseline([record_of("mobilenetv3_small", procs(3.0, 2))]))
    assert cli("gate", "check", "--baseline", str(path), "--factor", "0.9").exit_code == 2
    assert cli("gate", "check", "--baseline", str(path), "--alpha", "1.5").exit_code == 2


def test_record_refuses_to_overwrite_without_update(cli, tmp_path):
    path = tmp_path / "baseline.json"
    path.write_text("precious")
    result = cli("gate", "record", TINY[0], "--resolution", "64", "--baseline", str(path), *FAST)
    assert result.exit_code == 2 and "--update" in result.stderr
    assert path.read_text() == "precious"


# -- end to end: fresh worker processes ------------------------------------------------------------
def test_record_then_check_end_to_end(cli, tmp_path):
    path = tmp_path / "baseline.json"
    path.write_text("old")
    result = cli("gate", "record", TINY[0], "--resolution", "64", "--baseline", str(path), "--update", *FAST,
                 "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    b = load_baseline(path)
    assert b.models[0].input == TINY[1] and len(b.models[0].processes) == 2
    assert rows[0]["params"] == b.models[0].params > 0 and rows[0]["macs"] == b.models[0].macs > 0
    assert b.protocol["clock"] == "cpu" and all(p.has_cpu for p in b.models[0].processes)
    assert b.protocol["malloc"] == MALLOC_ENV and b.protocol["instances"] >= 1

    # an A/A check: a factor of 3 keeps noise on this shared machine from failing it
    result = cli("gate", "check", "--baseline", str(path), *FAST, "--extra-processes", "0", "--factor", "3",
                 "--format", "json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)[0]
    assert row["verdict"] in (stats.PASS, stats.IMPROVEMENT)
    assert row["params_now"] == row["params_baseline"] and row["macs_now"] == row["macs_baseline"]
    assert row["processes_baseline"] == 2 and row["processes_now"] == 2
    assert row["ci_low"] <= row["ratio"] <= row["ci_high"] and 0 <= row["p_value"] <= 1
    assert "calibration workload" in result.stderr

    # the same baseline with other counts and another torch: count changed (exit 1), env reported
    doc = json.loads(path.read_text())
    doc["models"][0]["macs"] += 1
    doc["environment"]["torch"] = "1.0.0"
    path.write_text(json.dumps(doc))
    result = cli("gate", "check", "--baseline", str(path), "--processes", "1", "--min-time", "0.2",
                 "--extra-processes", "0", "--factor", "3")
    assert result.exit_code == 1, result.output
    assert "count changed" in result.stdout and "MACs" in result.stdout
    assert "environment differs" in result.stderr and "torch: '1.0.0'" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("cnnprof: error: 1 of 1 model(s) failed the gate")


def test_time_budget_stops_starting_processes(monkeypatch):
    from cnnprof.gate import measure as gm

    calls = []

    def fake_run(models, settings, while_starting=None):
        calls.append(1)
        run = gm.Run(tuple(m.name for m in models), rounds=12, measure_s=3.0, wall_s=9.0, others_cores=0.0)
        return {m.name: proc(3.0, seed=len(calls)) for m in models}, run

    monkeypatch.setattr(gm, "run_process", fake_run)
    models = [gm.GateModel(*TINY)]
    # each process "takes" 9 s: with 8 s left only the first 3 (the minimum) run, not the 5 asked for
    import time as _time

    samples, runs = gm.measure(models, gm.Settings(processes=5), deadline=_time.perf_counter() + 8, min_processes=3)
    assert len(runs) == 3 and len(samples[TINY[0]]) == 3
    calls.clear()
    samples, runs = gm.measure(models, gm.Settings(processes=5), deadline=_time.perf_counter() + 1000, min_processes=3)
    assert len(runs) == 5
    assert gm.next_process_s(runs, 3.0) == pytest.approx(6.0 + 3.0)


def test_a_users_model_and_an_onnx_file_are_gated_by_reference(cli, tmp_path):
    import shutil

    import torch

    from cnnprof.onnx_export import export_onnx

    user_file = tmp_path / "my_nets.py"
    shutil.copy(Path(__file__).with_name("user_model.py"), user_file)
    ref = f"{user_file}:tiny_net(width=4)"
    path = tmp_path / "user.json"
    result = cli("gate", "record", ref, "--input", "3x40x40", "--baseline", str(path), *FAST, "--format", "json")
    assert result.exit_code == 0, result.output
    b = load_baseline(path)
    assert b.models[0].name == ref and b.models[0].input == (3, 40, 40)
    assert b.models[0].params == json.loads(result.stdout)[0]["params"] > 0
    result = cli("gate", "check", "--baseline", str(path), *FAST, "--extra-processes", "0", "--factor", "3")
    assert result.exit_code == 0, result.output

    # an ONNX file is timed by ONNX Runtime, and only there
    from user_model import tiny_net

    onnx_file = tmp_path / "tiny.onnx"
    export_onnx(tiny_net().eval(), torch.randn(1, 3, 32, 32), onnx_file)
    result = cli("gate", "record", str(onnx_file), "--baseline", str(tmp_path / "o.json"), *FAST)
    assert result.exit_code == 2 and "--backend onnxruntime" in result.stderr
    result = cli("gate", "record", str(onnx_file), "--backend", "onnxruntime", "--baseline",
                 str(tmp_path / "o.json"), *FAST, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["macs"] > 0

    # the user's file is gone: the baseline names a model that no longer loads
    user_file.unlink()
    result = cli("gate", "check", "--baseline", str(path), *FAST)
    assert result.exit_code == 2 and "no longer loads" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
