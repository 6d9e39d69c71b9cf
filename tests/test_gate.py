"""cnnprof gate: baseline schema and its failures, verdict statistics on synthetic samples, the
re-measurement of ambiguous models, and record + check end to end (fresh worker processes, a very
short protocol): a registered model, a user's model made slower with the same counts (exit 1, the
markdown table the CI workflow publishes), an ambiguous model measured again."""

from __future__ import annotations

import json
import math
import os
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
ONE = ("--processes", "1", "--min-time", "0.2")


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


# -- re-measurement of ambiguous models (fake processes) --------------------------------------------
def _fake_measure(first: dict[str, list[ProcessSamples]], extra_level: float, asked: list):
    """A stand-in for ``measure.measure``: the first pass returns ``first``; every later call (one
    process, for the models still ambiguous) one process at ``extra_level``. Records each call."""
    from cnnprof.gate import measure as gm

    def fake(models, settings, *, processes=None, **_):
        names = tuple(m.name for m in models)
        asked.append((names, processes))
        run = gm.Run(names, rounds=12, measure_s=0.2, wall_s=1.0, others_cores=0.0)
        if processes is None:
            return {n: list(first[n]) for n in names}, [run] * settings.processes
        return {n: [proc(extra_level, noise=0.0)] for n in names}, [run]

    return fake


def _two_models():
    """mobilenetv3_small unchanged (a clear pass); ghostnet_100 1.3x and 1.5x in its two first
    processes: its interval holds 1.10 (ambiguous) until two more processes at 1.4x settle it."""
    base = make_baseline([record_of("mobilenetv3_small", procs(3.0, 5, seed=1)),
                          record_of("ghostnet_100", procs(3.0, 5, seed=3))])
    first = {"mobilenetv3_small": [proc(3.0, noise=0.0)] * 2,
             "ghostnet_100": [proc(3.0 * 1.3, noise=0.0), proc(3.0 * 1.5, noise=0.0)]}
    return base, first


def test_only_ambiguous_models_are_measured_again_until_settled(monkeypatch):
    from cnnprof.gate.measure import Settings

    base, first = _two_models()
    asked: list = []
    monkeypatch.setattr(core, "measure", _fake_measure(first, 3.0 * 1.4, asked))
    result = core.check(base, Settings(processes=2), extra_processes=3, compare_counts=False)
    # one pass over both, then one process at a time for ghostnet_100 alone, stopping once its
    # interval leaves 1.10 (after two of the three allowed)
    assert asked == [(("mobilenetv3_small", "ghostnet_100"), None), (("ghostnet_100",), 1), (("ghostnet_100",), 1)]
    rows = {r.model: r for r in result.rows}
    ghost, mbv3 = rows["ghostnet_100"], rows["mobilenetv3_small"]
    assert ghost.verdict == stats.REGRESSION and ghost.processes_now == 4 and ghost.ci_low > 1.10
    assert ghost.note == "re-measured in 2 more process(es)"
    assert mbv3.verdict == stats.PASS and mbv3.processes_now == 2 and mbv3.note == ""
    assert len(result.runs) == 2 + 2


def test_the_budget_stops_the_re_measurement_and_says_so(monkeypatch):
    from cnnprof.gate.measure import Settings

    base, first = _two_models()
    asked: list = []
    monkeypatch.setattr(core, "measure", _fake_measure(first, 3.0 * 1.4, asked))
    result = core.check(base, Settings(processes=2), extra_processes=3, budget_s=0.0, compare_counts=False)
    assert len(asked) == 1  # the first pass only
    ghost = next(r for r in result.rows if r.model == "ghostnet_100")
    assert ghost.verdict == stats.PASS and ghost.ci_low <= 1.10 <= ghost.ci_high
    assert "inconclusive: interval holds 1.1 (not re-measured: the 0 s budget is spent)" in ghost.note


# -- baseline file ---------------------------------------------------------------------------------
def write(path: Path, baseline: Baseline) -> Path:
    path.write_text(baseline.to_json())
    return path


OLD_NS = 1_000_000_000 * 10**9  # 2001-09-09: any write since then moves a file's mtime


def freeze(path: Path):
    """What ``untouched`` compares: the file's bytes, inode and modification time, with the time
    first set far in the past. A command that wrote the file, even the same bytes in place or by an
    atomic replace, changes the time (and an atomic replace the inode); reading it changes none.
    ``None`` if there is no file (a command must not create one either)."""
    if not path.exists():
        return None
    os.utime(path, ns=(OLD_NS, OLD_NS))
    return untouched(path)


def untouched(path: Path):
    if not path.exists():
        return None
    st = path.stat()
    return path.read_bytes(), st.st_ino, st.st_mtime_ns


def test_untouched_sees_a_rewrite_of_the_same_bytes(tmp_path):
    """The baseline-untouched assertions below could fail: a check that rewrote the baseline with
    exactly its own bytes (in place, or atomically) would be caught, as would one that created it."""
    from cnnprof.files import write_atomic

    path = tmp_path / "baseline.json"
    path.write_text('{"schema": "x"}')
    before = freeze(path)
    assert untouched(path) == before  # reading is not writing
    path.write_bytes(path.read_bytes())
    assert untouched(path) != before
    before = freeze(path)
    write_atomic(path, path.read_text())
    assert untouched(path) != before
    missing = tmp_path / "none.json"
    before = freeze(missing)
    missing.write_text("")
    assert untouched(missing) != before


def test_baseline_round_trips(tmp_path):
    b = make_baseline([record_of("mobilenetv3_small", procs(3.0, 2))])
    loaded = load_baseline(write(tmp_path / "b.json", b))
    assert json.loads(loaded.to_json()) == json.loads(b.to_json())
    doc = json.loads((tmp_path / "b.json").read_text())
    assert doc["schema"] == SCHEMA and doc["calibration"]["version"] == CALIBRATION_VERSION
    assert set(doc["models"][0]) == {"name", "input", "params", "macs", "processes"}
    assert {"torch", "cpu", "threads"} <= set(doc["environment"])



def test_a_model_record_as_the_baseline_file_holds_it():
    """Every field of the record, its input as a list, and a process recorded without the CPU clock
    (a file written before it existed) has no CPU-clock lists, not empty ones."""
    wall_only = ProcessSamples((2.0, 2.5), (1.0, 1.1), (1.2, 1.3))
    both = ProcessSamples((2.0,), (1.0,), (1.2,), (1.9,), (0.9,), (1.1,))
    record = record_of("mobilenetv3_small", [wall_only, both], params=7, macs=99)
    assert record.to_dict() == {
        "name": "mobilenetv3_small", "input": [3, 64, 64], "params": 7, "macs": 99,
        "processes": [{"ms": [2.0, 2.5], "calibration_before_ms": [1.0, 1.1], "calibration_after_ms": [1.2, 1.3]},
                      {"ms": [2.0], "calibration_before_ms": [1.0], "calibration_after_ms": [1.2], "cpu_ms": [1.9],
                       "calibration_before_cpu_ms": [0.9], "calibration_after_cpu_ms": [1.1]}]}
    assert list(record.to_dict()) == ["name", "input", "params", "macs", "processes"]

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
    before = freeze(path)
    result = cli("gate", "check", "--baseline", str(path), *FAST)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnnprof: error: "), result.stderr
    assert "Traceback" not in result.output
    assert untouched(path) == before  # not rewritten, not "repaired", not created


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
@pytest.mark.timing
def test_record_then_check_end_to_end(cli, tmp_path):
    path = tmp_path / "baseline.json"
    path.write_text("old")
    result = cli("gate", "record", TINY[0], "--resolution", "64", "--baseline", str(path), "--update", *FAST,
                 "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    b = load_baseline(path)
    assert b.models[0].input == TINY[1] and len(b.models[0].processes) == 2
    from cnnprof.counting import count
    from cnnprof.models.registry import get

    exact = count(get(TINY[0]).build(), TINY[1])
    assert rows[0]["params"] == b.models[0].params == exact.params
    assert rows[0]["macs"] == b.models[0].macs == exact.macs
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
    # the figures are the baseline's and each other's: raw medians of the stored calls, the ratio at
    # the centre (in log) of its t interval, an interval that excludes 1 exactly when p < alpha
    assert row["baseline_ms"] == pytest.approx(stats.raw_median(b.models[0].processes))
    assert row["calibration_baseline_ms"] == pytest.approx(stats.calibration_median(b.models[0].processes))
    assert row["raw_ratio"] == pytest.approx(row["now_ms"] / row["baseline_ms"])
    assert row["ratio"] == pytest.approx(math.sqrt(row["ci_low"] * row["ci_high"]))
    assert (row["p_value"] < 0.01) == (not row["ci_low"] <= 1.0 <= row["ci_high"])
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
    # one process each: this is about references surviving the baseline, not about verdicts
    result = cli("gate", "record", ref, "--input", "3x40x40", "--baseline", str(path), *ONE, "--format", "json")
    assert result.exit_code == 0, result.output
    b = load_baseline(path)
    assert b.models[0].name == ref and b.models[0].input == (3, 40, 40)
    # TinyNet(width=4) by hand: 3x3 conv 3 -> 4 (108 weights), batch norm (8), linear 4 -> 10 (50)
    assert b.models[0].params == json.loads(result.stdout)[0]["params"] == 108 + 8 + 50
    assert b.models[0].macs == 108 * 40 * 40 + 40
    result = cli("gate", "check", "--baseline", str(path), *ONE, "--extra-processes", "0", "--factor", "3")
    assert result.exit_code == 0, result.output

    # an ONNX file is timed by ONNX Runtime, and only there
    from user_model import tiny_net

    onnx_file = tmp_path / "tiny.onnx"
    export_onnx(tiny_net().eval(), torch.randn(1, 3, 32, 32), onnx_file)
    result = cli("gate", "record", str(onnx_file), "--baseline", str(tmp_path / "o.json"), *FAST)
    assert result.exit_code == 2 and "--backend onnxruntime" in result.stderr
    result = cli("gate", "record", str(onnx_file), "--backend", "onnxruntime", "--baseline",
                 str(tmp_path / "o.json"), *ONE, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["macs"] == 27 * 8 * 32 * 32 + 8 * 10  # tiny_net() at its 3x32x32

    # the user's file is gone: the baseline names a model that no longer loads
    user_file.unlink()
    result = cli("gate", "check", "--baseline", str(path), *FAST)
    assert result.exit_code == 2 and "no longer loads" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# -- end to end: a user's model made slower, and an ambiguous model measured again ----------------
SLOWABLE_NET = '''"""A user's network whose forward can do extra element-wise passes: no parameters, no MACs."""
import torch
from torch import nn

EXTRA_PASSES = 0


class Net(nn.Module):
    input_shape = (3, 32, 32)

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv1(x)))
        for _ in range(EXTRA_PASSES):
            x = x * 0.5 + 0.5
        return self.fc(self.conv2(x).mean((2, 3)))


def net():
    return Net()
'''
# 60 passes (a multiply and an add on 16x32x32 values each) made it 2.97-3.08x slower, normalised,
# in the gate here. (The edited line is longer than the original, so Python's bytecode cache,
# keyed by source size and mtime, cannot serve the old code.)
SLOWER = "EXTRA_PASSES = 60"
# Three processes a side: with two, Welch's test can have about one degree of freedom (t = 63.7
# at alpha 0.01), and an interval too wide to decide even a 3x slowdown.
THREE = ("--processes", "3", "--min-time", "0.2")


@pytest.fixture(scope="module")
def user_gate(tmp_path_factory):
    """A user's model file and a baseline recorded of it (3 processes)."""
    from typer.testing import CliRunner

    from cnnprof.cli import app

    folder = tmp_path_factory.mktemp("gate-user")
    model_file = folder / "nets.py"
    model_file.write_text(SLOWABLE_NET)
    baseline = folder / "baseline.json"
    result = CliRunner().invoke(app, ["gate", "record", f"{model_file}:net", "--baseline", str(baseline), *THREE])
    assert result.exit_code == 0, result.output
    return model_file, baseline


def read_markdown_table(text: str) -> list[dict[str, str]]:
    """The rows of the one markdown table in ``text``, as {header: cell}."""
    import re

    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    cells = [[c.strip() for c in re.split(r"(?<!\\)\|", ln.strip()[1:-1])] for ln in lines]
    header, rule, *rows = cells
    assert all(set(c) <= set("-:") and c for c in rule) and len(rule) == len(header), lines[1]
    assert all(len(r) == len(header) for r in rows), lines
    return [dict(zip(header, r)) for r in rows]


def parse_ratio(cell: str) -> tuple[float, float, float]:
    """'1.234 [1.100, 1.380]' -> (1.234, 1.1, 1.38)."""
    ratio, interval = cell.split(" [")
    low, high = interval.rstrip("]").split(", ")
    return float(ratio), float(low), float(high)


@pytest.mark.timing
def test_a_slower_model_with_the_same_counts_fails_the_gate(cli, user_gate, tmp_path):
    """The workflow's command (`gate check --format md --output gate.md`) passes the model as
    recorded, then fails it (exit 1, verdict regression, the table still written) once its file
    makes every call about 3x slower without changing a parameter or a MAC."""
    model_file, baseline = user_gate
    gate_md = tmp_path / "gate.md"
    check = ("gate", "check", "--baseline", str(baseline), *THREE, "--factor", "1.5", "--format", "md",
             "--output", str(gate_md))
    before = freeze(baseline)

    result = cli(*check)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # the table went to the file
    (row,) = read_markdown_table(gate_md.read_text())
    assert row["model"] == f"{model_file}:net" and row["input"] == "3x32x32" and row["verdict"] == "pass"
    assert parse_ratio(row["ratio (normalised) [interval]"])[0] < 1.5
    assert untouched(baseline) == before

    original = model_file.read_text()
    model_file.write_text(original.replace("EXTRA_PASSES = 0", SLOWER))
    try:
        result = cli(*check)
    finally:
        model_file.write_text(original)
    assert result.exit_code == 1, result.output
    (row,) = read_markdown_table(gate_md.read_text())  # written before the exit 1, as CI shows it
    ratio, low, high = parse_ratio(row["ratio (normalised) [interval]"])
    assert row["verdict"] == "regression" and ratio > 1.5 and low > 1.0, row
    assert float(row["p-value"]) < 0.01
    assert "count changed" not in result.output  # same params and MACs: latency alone failed it
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"cnnprof: error: 1 of 1 model(s) failed the gate: {model_file}:net (regression, ")
    assert untouched(baseline) == before


@pytest.mark.timing
def test_an_ambiguous_model_is_measured_again_in_more_processes(cli, user_gate, tmp_path):
    """The real re-measurement path: the recorded baseline with two of its processes pulled 9x
    apart (one's model calls /3, the other's x3) has an interval of the ratio too wide to decide
    anything: the first pass is ambiguous whatever this machine measures, so the check starts one
    more process for it, and says so."""
    model_file, baseline = user_gate
    doc = json.loads(baseline.read_text())
    for process, scale in zip(doc["models"][0]["processes"], (1 / 3, 3.0)):
        for key in ("ms", "cpu_ms"):
            process[key] = [v * scale for v in process[key]]
    spread = tmp_path / "spread.json"
    spread.write_text(json.dumps(doc))
    # the copy is in another folder than the model's file: --trust allows that file (tests/test_trust.py)
    result = cli("gate", "check", "--baseline", str(spread), "--processes", "1", "--extra-processes", "1",
                 "--min-time", "0.2", "--format", "json", "--trust", str(model_file))
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)[0]
    assert row["processes_now"] == 2 and row["verdict"] == "pass"
    assert "re-measured in 1 more process(es)" in row["note"] and "inconclusive: interval holds 1.1" in row["note"]
    assert "(2 measurement process(es))" in result.stderr
