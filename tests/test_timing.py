"""The timing protocol, its statistics and the backends, on tiny models (no wall-time assertions)."""

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from cnnprof.errors import UsageError
from cnnprof.timing import BackendError, TimingOptions, check_options, time_model
from cnnprof.timing.protocol import Protocol, run, warnings_for
from cnnprof.timing.stats import bootstrap_ratio_ci, mann_whitney_u, median_ci, summarize

FAST = Protocol(warmup_runs=2, warmup_s=0.0, min_runs=12, min_time_s=0.0)


def tiny():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 10)).eval()


# -- statistics ------------------------------------------------------------------------------
def test_summary_order_statistics():
    s = summarize(list(range(1, 101)))
    assert s.median == 50.5 and s.min == 1 and s.n == 100
    assert s.p10 < s.median < s.p90 < s.p99
    assert s.iqr == pytest.approx(49.5)
    assert s.ci_low <= s.median <= s.ci_high
    # for n = 100 the 95% interval of the median spans about the 40th to 61st order statistics
    assert 38 <= s.ci_low <= 42 and 59 <= s.ci_high <= 63


def test_median_ci_covers_the_true_median_about_95_percent():
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(400):
        lo, hi = median_ci(rng.exponential(size=60))
        hits += lo <= math.log(2) <= hi  # median of Exp(1) is ln 2
    assert 0.92 <= hits / 400 <= 0.99


def test_mann_whitney_matches_hand_computation():
    u, p = mann_whitney_u([1, 2, 3], [4, 5, 6])
    assert u == 0.0
    # mu = 4.5, sigma = sqrt(3*3/12*7) = 2.2913; z = (4.5 - 0.5) / sigma = 1.7457
    assert p == pytest.approx(math.erfc(1.7457 / math.sqrt(2)), rel=1e-3)
    assert mann_whitney_u([5.0] * 10, [5.0] * 10)[1] == 1.0
    rng = np.random.default_rng(0)
    a, b = rng.normal(10, 1, 50), rng.normal(11, 1, 50)
    assert mann_whitney_u(a, b)[1] < 1e-4
    assert mann_whitney_u(a, rng.normal(10, 1, 50))[1] > 0.01


def test_bootstrap_ratio_interval_is_deterministic_and_covers():
    a = np.linspace(11, 13, 40)
    b = np.linspace(9, 11, 40)
    lo, hi = bootstrap_ratio_ci(a, b)
    assert (lo, hi) == bootstrap_ratio_ci(a, b)
    assert lo < 12 / 10 < hi


# -- protocol --------------------------------------------------------------------------------
def test_protocol_meets_both_count_and_time():
    calls = []

    def step():
        calls.append(1)
        return 1.0

    samples = run(step, Protocol(warmup_runs=3, warmup_s=0.0, min_runs=7, min_time_s=0.0))
    assert len(samples) == 7 and len(calls) == 10
    samples = run(step, Protocol(warmup_runs=0, warmup_s=0.0, min_runs=1, min_time_s=0.05))
    assert len(samples) > 1  # kept going until the minimum time


def test_warnings_name_noise_few_runs_and_a_busy_machine():
    steady = [10.0 + 0.01 * (i % 3) for i in range(50)]
    assert warnings_for(steady, threads=1, cores=2, others_cores=0.1) == []
    noisy = [10.0, 14.0] * 25
    assert any(w.startswith("noisy") for w in warnings_for(noisy, threads=1, cores=2, others_cores=0.0))
    assert any(w.startswith("few runs") for w in warnings_for(steady[:5], threads=1, cores=2, others_cores=0.0))
    busy = warnings_for(steady, threads=2, cores=2, others_cores=0.9)
    assert any(w.startswith("machine busy") for w in busy)


# -- backends ---------------------------------------------------------------------------------
def test_torch_eager_latency_row():
    lat = time_model(tiny(), (3, 16, 16), name="tiny", opts=TimingOptions(protocol=FAST))
    assert lat.backend == "torch" and lat.threads == 1 and lat.runs >= 12
    assert lat.min <= lat.p10 <= lat.median <= lat.p90 <= lat.p99
    assert lat.ci_low <= lat.median <= lat.ci_high
    assert lat.first_run_ms > 0 and lat.parity_max_abs is None


def test_training_step_updates_weights():
    model = tiny()
    before = model[0].weight.detach().clone()
    lat = time_model(model, (3, 16, 16), name="tiny", opts=TimingOptions(protocol=FAST, train=True, batch=2))
    assert lat.runs >= 12 and not torch.equal(before, model[0].weight)


def test_onnxruntime_backend_matches_torch_and_reuses_its_export(tmp_path):
    opts = TimingOptions(backend="onnxruntime", protocol=FAST, onnx_dir=str(tmp_path))
    lat = time_model(tiny(), (3, 16, 16), name="tiny", opts=opts)
    files = list(tmp_path.glob("*.onnx"))
    assert len(files) == 1 and not list(tmp_path.glob("*.data"))  # one self-contained file
    assert lat.parity_max_abs < 1e-4 and lat.setup_s > 0 and lat.export_s > 0
    time_model(tiny(), (3, 16, 16), name="tiny", opts=opts)
    assert list(tmp_path.glob("*.onnx")) == files  # same seeded weights: the export is reused


def test_onnxruntime_rejects_training():
    with pytest.raises(UsageError, match="inference only"):
        time_model(tiny(), (3, 8, 8), name="tiny", opts=TimingOptions(backend="onnxruntime", train=True, protocol=FAST))


@pytest.mark.parametrize(
    "opts, needle",
    [
        (TimingOptions(backend="tvm"), "unknown backend"),
        (TimingOptions(threads=0), "threads must be at least 1"),
        (TimingOptions(batch=0), "batch must be at least 1"),
        (TimingOptions(device="tpu"), "unknown device"),
    ],
)
def test_bad_options_are_usage_errors(opts, needle):
    with pytest.raises(UsageError, match=needle):
        check_options(opts)


def test_a_backend_failure_is_one_line(monkeypatch, tmp_path):
    from cnnprof.timing import ort

    def broken(*args, **kwargs):
        raise RuntimeError("session exploded\nwith a second line")

    monkeypatch.setattr(ort, "make_session", broken)
    with pytest.raises(BackendError) as err:
        time_model(tiny(), (3, 8, 8), name="tiny",
                   opts=TimingOptions(backend="onnxruntime", protocol=FAST, onnx_dir=str(tmp_path)))
    assert str(err.value) == "onnxruntime failed: RuntimeError: session exploded"


@pytest.mark.slow
def test_compile_backend_reports_compile_time_separately():
    lat = time_model(tiny(), (3, 16, 16), name="tiny", opts=TimingOptions(backend="compile", protocol=FAST))
    assert lat.setup_s > 0 and lat.parity_max_abs < 1e-4


@pytest.mark.cuda
@pytest.mark.parametrize("backend", ["torch", "compile"])
def test_cuda_backends_time_with_events(backend):
    lat = time_model(tiny(), (3, 64, 64), name="tiny", opts=TimingOptions(backend=backend, device="cuda", protocol=FAST))
    assert lat.device == "cuda" and lat.runs >= 12 and lat.parity_max_abs < 1e-3


# -- command line ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, needle",
    [
        (["--backend", "tvm"], "unknown backend 'tvm'"),
        (["--threads", "0"], "threads must be a positive integer"),
        (["--threads", "many"], "threads must be a positive integer"),
        (["--batch", "1,x"], "batch list must be integers"),
        (["--batch", "0"], "batch must be at least 1"),
        (["--plot", "out.txt"], ".png, .svg or .pdf"),
    ]
    + ([(["--device", "cuda"], "no CUDA device")] if not torch.cuda.is_available() else []),
)
def test_bench_bad_input_exits_2(cli, args, needle):
    result = cli("bench", "mobilenetv3_small", *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and needle in result.stderr


def _fake_rows(n_ok: int, then=None):
    from cnnprof.rows import ProfileRow

    def gen(*args, **kwargs):
        for i in range(n_ok):
            yield ProfileRow(model=f"m{i}", backend="torch", latency_ms_median=1.0 + i, macs=10, params=5)
        if then is not None:
            raise then

    return gen


def test_bench_keeps_measured_rows_on_ctrl_c(cli, monkeypatch, tmp_path):
    from cnnprof import bench

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bench, "bench_rows", _fake_rows(2, then=KeyboardInterrupt()))
    result = cli("bench", "mobilenetv3_small", "-f", "json")
    assert result.exit_code == 130
    assert [r["model"] for r in json.loads(result.stdout)] == ["m0", "m1"]
    saved = list((tmp_path / "reports").glob("bench-*.csv"))
    assert len(saved) == 1 and len(saved[0].read_text().splitlines()) == 3
    assert "interrupted" in result.stderr


def test_failed_row_does_not_stop_the_others(cli, monkeypatch, tmp_path):
    from cnnprof import onnx_export
    from cnnprof.errors import CnnprofError

    monkeypatch.chdir(tmp_path)
    real = onnx_export.export_onnx

    def flaky(model, example, path, **kwargs):
        if "mobilenetv3_small" in str(path):
            raise onnx_export.ExportError("ONNX export failed (torchscript: planted)")
        return real(model, example, path, **kwargs)

    monkeypatch.setattr(onnx_export, "export_onnx", flaky)
    result = cli("compare", "mobilenetv3_small", "mobilenetv3_large", "-r", "64", "--min-time", "0",
                 "--min-runs", "3", "-f", "json")
    assert result.exit_code == 1 and "some rows failed: 1 of 4" in result.stderr, result.output  # measured, flagged
    rows = {(r["model"], r["backend"]): r for r in json.loads(result.stdout)}
    assert "planted" in rows[("mobilenetv3_small", "onnxruntime")]["error"]
    assert rows[("mobilenetv3_large", "onnxruntime")]["error"] == ""
    assert rows[("mobilenetv3_large", "onnxruntime")]["latency_ms_median"] > 0
    assert rows[("mobilenetv3_small", "torch")]["latency_ms_median"] > 0
    env = rows[("mobilenetv3_large", "torch")]["environment"]
    assert env["threads"] == 1 and env["torch"].startswith("2.") and env["cpu"]
    assert rows[("mobilenetv3_large", "torch")]["latency_ratio"] == pytest.approx(
        rows[("mobilenetv3_large", "torch")]["latency_ms_median"] / rows[("mobilenetv3_small", "torch")]["latency_ms_median"])
    assert issubclass(onnx_export.ExportError, CnnprofError)
