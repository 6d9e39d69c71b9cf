"""Precisions, the OpenVINO / TensorRT / CUDA paths, parity, int8 quantisation, peak memory.

Tiny models only; nothing here asserts a time. What needs a GPU is marked ``cuda`` (deselected by
default); everything else about the GPU paths (option checks, refusals, the code paths chosen)
is tested here with CUDA absent or pretended.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from support import one_line
import torch
from torch import nn

from cnnprof import timing
from cnnprof.errors import CnnprofError, UsageError
from cnnprof.timing import TimingOptions, check_options
from cnnprof.timing import precision as prec
from cnnprof.timing.parity import ParityMeter, parity_batches, parity_notes
from cnnprof.timing.protocol import Protocol

USER = str(Path(__file__).with_name("user_model.py"))
FAST = Protocol(warmup_runs=1, warmup_s=0.0, min_runs=5, min_time_s=0.0)
INT8_SQNR_MAX_DB = 60  # one 8-bit rounding of a full-scale signal: ~50 dB
# A tiny model's peak memory beyond the idle worker (measured: torch ~7 MB, ONNX Runtime ~12 MB,
# OpenVINO ~45 MB); with the idle worker counted too they would read ~240, ~65 and ~100 MB.
PEAK_MAX = {"torch": 48 << 20, "onnxruntime": 32 << 20, "openvino": 72 << 20}


def tiny():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 10)).eval()


@pytest.fixture
def native_bf16(monkeypatch):
    """Pretend the CPU has bf16 instructions (autocast runs either way; only the refusal differs)."""
    monkeypatch.setattr(prec, "bf16_capability", lambda flags=None: (True, "native (test)"))


# -- which precision runs where -------------------------------------------------------------------
@pytest.mark.parametrize("backend, device, precision, needle", [
    ("torch", "cpu", "int8", "int8 is not implemented for torch"),
    ("compile", "cpu", "int8", "int8 is not implemented for compile"),
    ("onnxruntime", "cpu", "bf16", "onnxruntime has no bf16 kernels"),
    ("onnxruntime", "cpu", "fp16", "runs on CUDA only"),
    ("torch", "cpu", "fp16", "runs on CUDA only"),
    ("onnxruntime", "cuda", "int8", "use --backend tensorrt"),
    ("openvino", "cpu", "fp16", "openvino: fp16 is not offered"),
    ("tensorrt", "cuda", "bf16", "bf16 is not offered"),
])
def test_refusals_name_the_reason(backend, device, precision, needle):
    why = prec.refusal(backend, device, precision, cpu_bf16=(True, "native"), cuda_bf16=True)
    assert why is not None and needle in why and "\n" not in why


@pytest.mark.parametrize("backend, device, precision", [
    ("torch", "cpu", "fp32"), ("onnxruntime", "cpu", "int8"), ("openvino", "cpu", "int8"),
    ("openvino", "cpu", "bf16"), ("torch", "cpu", "bf16"), ("compile", "cpu", "bf16"), ("torch", "cuda", "fp16"),
    ("compile", "cuda", "bf16"), ("onnxruntime", "cuda", "fp16"), ("tensorrt", "cuda", "fp16"),
    ("tensorrt", "cuda", "int8"),
])
def test_what_runs(backend, device, precision):
    assert prec.refusal(backend, device, precision, cpu_bf16=(True, "native"), cuda_bf16=True) is None


def test_bf16_on_a_cpu_without_it_is_refused_unless_forced():
    emulated = prec.bf16_capability(frozenset({"avx2", "avx512f"}))
    assert emulated == (False, "emulated (no avx512_bf16 or amx_bf16)")
    why = prec.refusal("torch", "cpu", "bf16", cpu_bf16=emulated)
    assert "emulated" in why and "--force" in why
    assert prec.refusal("torch", "cpu", "bf16", cpu_bf16=emulated, force=True) is None
    assert prec.refusal("openvino", "cpu", "bf16", cpu_bf16=emulated) is not None
    assert prec.bf16_capability(frozenset({"amx_bf16"})) == (True, "native (amx_bf16)")
    assert prec.bf16_capability(frozenset({"avx512_bf16", "amx_bf16"}))[1] == "native (avx512_bf16, amx_bf16)"
    assert "cannot read" in prec.refusal("torch", "cpu", "bf16", cpu_bf16=(False, "unknown (cannot read)"))
    assert prec.refusal("torch", "cuda", "bf16", cuda_bf16=False).startswith("this GPU has no native bf16")


def test_parse_precisions():
    assert prec.parse_precisions("FP32, int8,fp32") == ["fp32", "int8"]
    assert prec.parse_precisions("all") == ["fp32", "fp16", "bf16", "int8"]
    for bad, needle in (("fp64", "unknown precision 'fp64'"), (" , ", "empty list")):
        with pytest.raises(UsageError, match=needle):
            prec.parse_precisions(bad)


# -- option checks without a GPU (and with one pretended) ------------------------------------------
@pytest.mark.parametrize("opts, needle", [
    (TimingOptions(precision="fp64"), "unknown precision"),
    (TimingOptions(backend="tensorrt"), "tensorrt runs on a CUDA device: none is available"),
    (TimingOptions(backend="tensorrt", device="cuda"), "tensorrt runs on a CUDA device: none is available"),
    (TimingOptions(cuda_graphs=True), "--cuda-graphs needs a CUDA device: none is available"),
    (TimingOptions(backend="onnxruntime", cuda_graphs=True), "--cuda-graphs applies to --backend torch"),
    (TimingOptions(device="cuda", precision="fp16"), "no CUDA device is available"),
    (TimingOptions(backend="openvino", device="cuda"), "openvino times on the CPU"),
    (TimingOptions(train=True, precision="bf16"), "--train times fp32 only"),
    (TimingOptions(backend="openvino", train=True), "times inference only"),
    (TimingOptions(backend="onnxruntime", precision="int8", quant=__import__("cnnprof.timing.quantize").timing.quantize.QuantOptions(
        method="kl")), "unknown calibration method"),
    (TimingOptions(parity_inputs=0), "parity inputs must be at least 1"),
])
def test_check_options_refuses_in_one_line(opts, needle, monkeypatch):
    monkeypatch.setattr(timing, "cuda_available", lambda: False)
    with pytest.raises(UsageError, match=needle) as info:
        check_options(opts)
    assert "\n" not in str(info.value)


def test_gpu_runtimes_checked_when_cuda_is_pretended(monkeypatch):
    """With CUDA present but the CPU build of onnxruntime: each GPU runtime says what to install."""
    monkeypatch.setattr(timing, "cuda_available", lambda: True)
    with pytest.raises(UsageError, match="add --device cuda"):
        check_options(TimingOptions(backend="tensorrt"))
    with pytest.raises(UsageError, match="no TensorrtExecutionProvider.*onnxruntime-gpu"):
        check_options(TimingOptions(backend="tensorrt", device="cuda"))
    with pytest.raises(UsageError, match="no CUDAExecutionProvider here: .*onnxruntime-gpu"):
        check_options(TimingOptions(backend="onnxruntime", device="cuda", precision="fp16"))
    with pytest.raises(UsageError, match="--cuda-graphs needs --device cuda"):
        check_options(TimingOptions(cuda_graphs=True))
    check_options(TimingOptions(device="cuda", precision="fp16", cuda_graphs=True))  # torch eager: fine


def test_tensorrt_provider_options_follow_the_precision(monkeypatch):
    import onnxruntime

    from cnnprof.timing import ort

    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    (name, fp16), *rest = ort.tensorrt_providers("fp16")
    assert name == "TensorrtExecutionProvider" and fp16["trt_fp16_enable"] and not fp16["trt_int8_enable"]
    assert rest == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    int8 = ort.tensorrt_providers("int8")[0][1]
    assert int8["trt_int8_enable"] and not int8["trt_fp16_enable"]


def test_openvino_missing_is_one_line(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_openvino(name, *args, **kwargs):
        if name == "openvino":
            raise ImportError("no openvino")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openvino)
    with pytest.raises(UsageError, match=r"openvino is not installed \(pip install openvino\)"):
        check_options(TimingOptions(backend="openvino"))


def test_openvino_compiles_at_the_precision_it_says():
    from cnnprof.timing.openvino import compile_config

    assert compile_config(2, "fp32") == {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": 2,
                                         "INFERENCE_PRECISION_HINT": "f32"}
    assert compile_config(1, "int8")["INFERENCE_PRECISION_HINT"] == "f32"  # unquantised parts stay fp32
    assert compile_config(1, "bf16")["INFERENCE_PRECISION_HINT"] == "bf16"


def test_configurations_keep_what_runs_when_all_is_asked(monkeypatch, native_bf16):
    from cnnprof.bench import configurations

    monkeypatch.setattr(timing, "cuda_available", lambda: False)
    pairs, skipped = configurations(list(timing.BACKENDS), list(prec.PRECISIONS), only_runnable=True)
    assert pairs == [("torch", "fp32"), ("torch", "bf16"), ("compile", "fp32"), ("compile", "bf16"),
                     ("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("openvino", "fp32"), ("openvino", "bf16"),
                     ("openvino", "int8")]
    assert any(s.startswith("tensorrt fp32: tensorrt runs on a CUDA device") for s in skipped)
    assert any(s.startswith("onnxruntime bf16: onnxruntime has no bf16 kernels") for s in skipped)
    with pytest.raises(UsageError, match="onnxruntime has no bf16 kernels"):
        configurations(["onnxruntime"], ["bf16"])


# -- parity ---------------------------------------------------------------------------------------------
def test_parity_figures_worked_by_hand():
    ref = np.array([[1.0, 2.0, 3.0], [3.0, 1.0, 0.0]])
    meter = ParityMeter()
    meter.add(ref, ref)
    p = meter.result()
    assert p.max_abs == 0 and p.sqnr_db is None and p.top1_agreement == 1.0 and p.inputs == 2

    out = ref + np.array([[0.1, 0.0, 0.0], [0.0, 0.0, 3.5]])  # row 1 becomes [3, 1, 3.5]: class 2, not 0
    meter = ParityMeter()
    meter.add(out, ref)
    p = meter.result()
    signal, noise = 1 + 4 + 9 + 9 + 1 + 0, 0.1**2 + 3.5**2
    assert p.max_abs == pytest.approx(3.5) and p.scale == 3.0
    assert p.sqnr_db == pytest.approx(10 * math.log10(signal / noise))
    assert p.top1_agreement == 0.5  # row 0 keeps class 2, row 1 moves from class 0 to class 2


def test_top1_agreement_counts_inputs_and_pixels():
    ref = np.zeros((2, 3))
    ref[0, 1] = 1.0
    ref[1, 2] = 1.0
    out = ref.copy()
    out[1, 0] = 5.0  # input 1 now says class 0
    meter = ParityMeter()
    meter.add(out, ref)
    assert meter.result().top1_agreement == 0.5
    seg_ref = np.zeros((1, 4, 2, 2))
    seg_ref[0, 3] = 1.0  # every pixel: class 3
    seg_out = seg_ref.copy()
    seg_out[0, 0, 0, 0] = 9.0  # one pixel of four disagrees
    meter = ParityMeter()
    meter.add(seg_out, seg_ref)
    assert meter.result().top1_agreement == 0.75
    meter = ParityMeter()
    meter.add(np.ones((2, 1)), np.ones((2, 1)))  # one channel: no classes to agree on
    assert meter.result().top1_agreement is None


def test_parity_notes_follow_each_precision_limit():
    ref = np.linspace(-1, 1, 1000).reshape(10, 100)
    rng = np.random.default_rng(0)

    def parity(noise_db):
        noise = rng.standard_normal(ref.shape)
        noise *= math.sqrt(np.sum(ref**2) / np.sum(noise**2) / 10 ** (noise_db / 10))
        meter = ParityMeter()
        meter.add(ref + noise, ref)
        return meter.result()

    low, high = parity(12.0), parity(20.0)
    assert low.sqnr_db == pytest.approx(12.0) and high.sqnr_db == pytest.approx(20.0)
    notes = parity_notes(low, "int8")
    assert [n.kind for n in notes] == ["parity"] and "SQNR 12.0 dB is below 15 dB for int8" in notes[0]
    assert parity_notes(high, "int8") == []
    tiny_diff = ParityMeter()
    tiny_diff.add(ref + 5e-3, ref)  # 0.5% of the output's scale (1.0)
    assert parity_notes(tiny_diff.result(), "fp16") == []
    big_diff = ParityMeter()
    big_diff.add(ref + 2e-2, ref)
    assert "above 0.01 for fp16" in parity_notes(big_diff.result(), "fp16")[0]
    assert parity_notes(big_diff.result(), "bf16") == []  # bf16 keeps 3 bits fewer: its limit is 8x


def test_non_finite_outputs_are_flagged_not_hidden():
    ref = np.ones((1, 4))
    out = np.array([[1.0, np.inf, np.nan, 1.0]])
    meter = ParityMeter()
    meter.add(out, ref)
    p = meter.result()
    assert p.nonfinite == 2 and math.isinf(p.max_abs)
    assert "2 output values were inf or NaN" in parity_notes(p, "fp16")[0]


def test_parity_inputs_start_with_the_timed_input():
    example = np.full((2, 3, 4, 4), 7.0, dtype=np.float32)
    batches = parity_batches(example, 2, inputs=5)
    assert len(batches) == 3 and (batches[0] == 7.0).all()  # 2 + 2 + 2 >= 5 images
    again = parity_batches(example, 2, inputs=5)
    assert all((a == b).all() for a, b in zip(batches, again))  # the same inputs for every configuration
    with pytest.raises(ValueError, match="output shape"):
        ParityMeter().add(np.ones((1, 3)), np.ones((1, 4)))


# -- peak live activation memory ----------------------------------------------------------------------
def test_peak_activations_worked_by_hand():
    from cnnprof.counting import peak_activations, peak_live_bytes

    assert peak_live_bytes([(0, 1, 10), (1, 2, 5), (2, 3, 7), (4, 4, 1)]) == 15
    # conv1 (input 3 ch + output 8 ch alive), in-place relu (same storage), conv2 (8 ch in + 4 ch out)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(8, 4, 1)).eval()
    assert peak_activations(net, torch.randn(1, 3, 16, 16)) == 4 * 16 * 16 * max(3 + 8, 8 + 4)
    # a view (flatten) shares its storage; a skip connection keeps its tensor alive across the branch
    class Skip(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(4, 4, 1)
            self.b = nn.Conv2d(4, 4, 1)

        def forward(self, x):
            y = self.b(self.a(x))  # x stays alive until the add: x, a(x), b(a(x)) at once
            return (x + y).flatten(1)

    assert peak_activations(Skip().eval(), torch.randn(2, 4, 8, 8)) == 4 * 2 * 4 * 64 * 3


def test_profile_shows_peak_activations_for_pytorch_and_onnx(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("profile", f"{USER}:tiny_net", "-f", "json", "--batch", "2")
    row = json.loads(result.stdout)[0]
    # conv (3 -> 8 maps of 32x32), batch norm (8 -> 8), relu (8 -> 8, not in place): at the batch norm
    # and at the relu, two 8-channel maps are alive at once, more than conv's 3 + 8; batch 2, fp32
    assert row["peak_activation_bytes"] == 4 * 2 * 32 * 32 * (8 + 8)
    assert cli("export", f"{USER}:tiny_net", "-o", str(tmp_path / "tiny.onnx")).exit_code == 0
    onnx_row = json.loads(cli("profile", str(tmp_path / "tiny.onnx"), "-f", "json").stdout)[0]
    # the graph folds batch norm into the conv: Conv (3 -> 8), Relu (8 -> 8): again two 8-channel maps
    assert onnx_row["peak_activation_bytes"] == 4 * 32 * 32 * (8 + 8)
    table = cli("profile", "espnet_c", "-r", "64x128")
    assert "peak activations" in table.stdout


# -- int8 and fp16 copies of an ONNX file ---------------------------------------------------------------
@pytest.fixture
def tiny_onnx(tmp_path):
    from cnnprof.onnx_export import cached_export

    path, _, _ = cached_export(tiny(), torch.randn(1, 3, 16, 16), name="tiny", folder=tmp_path)
    return path


def test_int8_copy_is_qdq_per_channel_and_cached(tiny_onnx, tmp_path):
    import onnx

    from cnnprof.timing.quantize import QuantOptions, cached_int8

    folder = tmp_path / "copies"
    path, _, reused = cached_int8(tiny_onnx, QuantOptions(samples=4), folder=folder)
    assert not reused and path.parent == folder and "-int8-" in path.name
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    quantized = {i.name: list(i.dims) for i in onnx.load(str(path)).graph.initializer}
    conv = next(n for n, dims in quantized.items() if n.endswith("_quantized") and dims == [8, 3, 3, 3])
    assert quantized[conv.replace("_quantized", "_scale")] == [8]  # one scale per output channel of the conv
    assert cached_int8(tiny_onnx, QuantOptions(samples=4), folder=folder)[0] == path
    assert cached_int8(tiny_onnx, QuantOptions(samples=4), folder=folder)[2]
    other, _, _ = cached_int8(tiny_onnx, QuantOptions(samples=5), folder=folder)
    assert other != path  # another calibration, another file


def test_a_failing_quantisation_is_one_line(tiny_onnx, tmp_path, monkeypatch):
    from onnxruntime import quantization

    from cnnprof.timing.quantize import QuantizeError, QuantOptions, cached_int8

    def broken(*args, **kwargs):
        raise RuntimeError("calibration diverged\nsecond line")

    monkeypatch.setattr(quantization, "quantize_static", broken)
    with pytest.raises(QuantizeError, match="int8 quantisation of .* failed: RuntimeError: calibration diverged$"):
        cached_int8(tiny_onnx, QuantOptions(samples=2), folder=tmp_path)
    assert not list(tmp_path.glob("*-int8-*"))  # nothing half-written is left


def test_fp16_copy_keeps_float32_inputs(tiny_onnx, tmp_path):
    import onnx

    from cnnprof.timing.quantize import cached_fp16
    from cnnprof.timing.ort import make_session

    path, _, _ = cached_fp16(tiny_onnx, folder=tmp_path)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)  # its nodes put back in order (the converter appends its casts)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
    # it runs (here on the CPU provider, which cnnprof does not time fp16 on) close to the fp32 file
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    half = make_session(path, threads=1).run(None, {"input": x})[0]
    full = make_session(tiny_onnx, threads=1).run(None, {"input": x})[0]
    assert half.dtype == np.float32 and np.abs(half - full).max() < 1e-2 * np.abs(full).max()


# -- timing in this process --------------------------------------------------------------------------
def test_int8_and_openvino_rows_carry_parity(tmp_path):
    rows = {}
    for backend, precision in (("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("openvino", "int8")):
        opts = TimingOptions(backend=backend, precision=precision, protocol=FAST, onnx_dir=str(tmp_path),
                             parity_inputs=4)
        rows[backend, precision] = timing.time_model(tiny(), (3, 16, 16), name="tiny", opts=opts)
    fp32, int8 = rows["onnxruntime", "fp32"], rows["onnxruntime", "int8"]
    assert fp32.precision == "fp32" and fp32.parity_sqnr_db > 80 and fp32.parity_top1_agreement == 1.0
    assert int8.precision == "int8" and 0 < int8.parity_max_abs and int8.parity_sqnr_db < fp32.parity_sqnr_db
    assert int8.export_s > 0  # export and quantisation are set-up, reported apart
    # 8-bit steps: one rounding to int8 of a full-scale signal is ~50 dB (6 dB a bit); a few layers of them, less
    for row in (int8, rows["openvino", "int8"]):
        assert 20 < row.parity_sqnr_db < INT8_SQNR_MAX_DB and row.parity_top1_agreement >= 0.75
    assert rows["openvino", "int8"].peak_memory_bytes is None  # timed in this process: not measured


def test_torch_bf16_autocast_row(native_bf16):
    lat = timing.time_model(tiny(), (3, 16, 16), name="tiny",
                            opts=TimingOptions(precision="bf16", protocol=FAST, parity_inputs=4))
    # bf16 keeps 8 significant bits: one rounding is ~50 dB below the signal; float32 would be ~140 dB
    assert lat.precision == "bf16" and 0 < lat.parity_max_abs < 0.05 and 30 < lat.parity_sqnr_db < 70
    fp32 = timing.time_model(tiny(), (3, 16, 16), name="tiny", opts=TimingOptions(protocol=FAST))
    assert fp32.parity_max_abs is None  # fp32 eager on the CPU is the reference itself


def test_eager_runner_casts_under_autocast_only_for_low_precision():
    from cnnprof.timing.eager import EagerRunner

    runner = EagerRunner(tiny(), torch.randn(1, 3, 8, 8), device="cpu", channels_last=False, train=False,
                         precision="bf16")
    with runner.autocast():
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    plain = EagerRunner(tiny(), torch.randn(1, 3, 8, 8), device="cpu", channels_last=False, train=False)
    with plain.autocast():
        assert not torch.is_autocast_enabled("cpu")
    assert plain.graph is None and plain.infer(np.zeros((1, 3, 8, 8), np.float32)).dtype == np.float32


# -- a fresh process per configuration: peak memory ---------------------------------------------------
def test_cpu_peak_sees_an_allocation():
    from cnnprof.timing.memory import CpuPeak

    meter = CpuPeak()
    meter.start()
    meter.armed()
    block = np.ones(64 << 20, dtype=np.uint8)  # 64 MiB, touched
    growth = meter.growth()
    del block
    assert growth >= 60 << 20


def test_recipes_rebuild_the_same_target():
    from cnnprof.targets import from_recipe, registered, resolve_targets

    t = registered("mobilenetv3_small", width_mult=0.5)
    again = from_recipe(t.recipe)
    assert again.name == t.name and again.input == t.input
    assert sum(p.numel() for p in again.build(calibrate=False).parameters()) == \
        sum(p.numel() for p in t.build(calibrate=False).parameters())
    user = resolve_targets([f"{USER}:tiny_net"], model_args=["width=4"])[0]
    rebuilt = from_recipe(user.recipe).build()
    assert rebuilt.conv.out_channels == 4
    with pytest.raises(UsageError, match="not a model recipe"):
        from_recipe("__import__('os')")


def test_bench_done_when_four_rows_with_parity_and_memory(cli, tmp_path, monkeypatch):
    """The issue's command on a tiny model: ONNX Runtime and OpenVINO, fp32 and int8, each in a
    fresh worker: latency, parity and peak memory in every row."""
    monkeypatch.chdir(tmp_path)
    result = cli("bench", f"{USER}:tiny_net", "--backend", "onnxruntime,openvino", "--precision", "fp32,int8",
                 "--min-time", "0", "--min-runs", "3", "--parity-inputs", "4", "--calibration-samples", "4",
                 "--format", "json", "--no-save")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["backend"], r["precision"]) for r in rows] == [
        ("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("openvino", "fp32"), ("openvino", "int8")]
    for r in rows:
        assert r["latency_ms_median"] > 0 and r["error"] == ""
        if r["precision"] == "fp32":  # the same float32 arithmetic in another order: rounding only
            assert r["parity_max_abs"] < 1e-5 and r["parity_sqnr_db"] > 100 and r["parity_top1_agreement"] == 1.0
        else:
            assert 20 < r["parity_sqnr_db"] < INT8_SQNR_MAX_DB and r["parity_top1_agreement"] >= 0.75
        # the runtime's growth beyond the idle worker: TinyNet's weights at least (1.3 kB), and far below
        # an idle worker's own resident set (ONNX Runtime ~53 MB, OpenVINO ~55 MB), which is not counted
        assert 4 * r["params"] <= r["peak_memory_bytes"] <= PEAK_MAX[r["backend"]], r
    assert list((tmp_path / "models").glob("*-int8-*.onnx"))  # the quantised copy is cached under models/
    assert "fastest: " in result.stderr


def test_torch_rows_rebuild_the_model_in_the_worker(tmp_path):
    from cnnprof.targets import resolve_targets
    from cnnprof.bench.isolated import IsolatedModel

    t = resolve_targets([f"{USER}:tiny_net"])[0]
    model = t.build(shape=t.input)
    with IsolatedModel(name=t.name, input_shape=t.input, batch=2, model=model, recipe=t.recipe,
                       parity_inputs=4) as iso:
        lat = iso.time(TimingOptions(protocol=FAST, batch=2, onnx_dir=str(tmp_path)))
        compiled = iso.time(TimingOptions(backend="onnxruntime", protocol=FAST, batch=2, onnx_dir=str(tmp_path)))
        folder = iso.folder
    # a torch worker's growth for TinyNet is a few MB; the idle worker holds ~230 MB that is not the run's
    assert lat.backend == "torch" and lat.batch == 2 and 4 * 322 <= lat.peak_memory_bytes <= PEAK_MAX["torch"]
    assert lat.parity_max_abs is None  # the reference itself
    assert compiled.parity_max_abs < 1e-4  # the parent's weights, bit for bit, went to the export
    assert not folder.exists()


def test_a_failing_worker_is_the_rows_error(tmp_path):
    from cnnprof.bench.isolated import TimingJob, run_worker

    inputs = tmp_path / "inputs.npy"
    np.save(inputs, np.zeros((1, 1, 3, 8, 8), np.float32))
    job = TimingJob(name="broken", input_shape=(3, 8, 8), inputs=str(inputs), onnx_path=str(tmp_path / "missing.onnx"),
                    options=TimingOptions(backend="onnxruntime", protocol=FAST))
    with pytest.raises(CnnprofError, match="^onnxruntime failed: ") as info:
        run_worker(job)
    assert "\n" not in str(info.value)


# -- the command line: bad input, several models, all configurations -----------------------------------
@pytest.mark.parametrize("args, needle", [
    (["--precision", "fp64"], "unknown precision 'fp64'"),
    (["--backend", "onnxruntime", "--precision", "bf16"], "onnxruntime has no bf16 kernels"),
    (["--precision", "int8"], "int8 is not implemented for torch"),
    (["--backend", "tensorrt"], "tensorrt runs on a CUDA device: none is available"),
    (["--backend", "tvm"], "unknown backend 'tvm'"),
    (["--cuda-graphs"], "--cuda-graphs needs a CUDA device"),
    (["--backend", "onnxruntime", "--cuda-graphs"], "--cuda-graphs applies to --backend torch"),
    (["--device", "cuda", "--precision", "fp16"], "no CUDA device is available"),
    (["--backend", "onnxruntime", "--precision", "int8", "--calibration", "kl"], "unknown calibration method"),
    (["--parity-inputs", "999999999999"], "--parity-inputs: 999999999999 images of 3x32x32 need"),
    (["--backend", "onnxruntime", "--precision", "int8", "--calibration-samples", "999999999999"],
     "--calibration-samples: 999999999999 images"),
])
def test_bench_bad_precision_input_exits_2(cli, args, needle, monkeypatch):
    monkeypatch.setattr(timing, "cuda_available", lambda: False)
    result = cli("bench", f"{USER}:tiny_net", *args, "--no-save")
    assert result.exit_code == 2 and one_line(result) and needle in result.stderr, result.stderr


def test_gate_record_refuses_a_precision_before_measuring(cli, tmp_path):
    result = cli("gate", "record", "mobilenetv3_small", "--precision", "int8", "--baseline", str(tmp_path / "b.json"))
    assert result.exit_code == 2 and one_line(result) and "int8 is not implemented for torch" in result.stderr
    assert not (tmp_path / "b.json").exists()


def test_gate_baseline_keeps_its_precision():
    from cnnprof.gate.baseline import _Invalid, parse_baseline

    doc = {"schema": "cnnprof.gate.baseline/1", "calibration": {"version": 1}, "backend": "onnxruntime",
           "threads": 1, "protocol": {}, "environment": {},
           "models": [{"name": "mobilenetv3_small", "input": [3, 224, 224], "params": 1, "macs": 1,
                       "processes": [{"ms": [1.0], "calibration_before_ms": [1.0], "calibration_after_ms": [1.0]}]}]}
    assert parse_baseline(doc).precision == "fp32"  # written before precisions existed
    assert parse_baseline({**doc, "precision": "int8"}).precision == "int8"
    assert json.loads(parse_baseline({**doc, "precision": "int8"}).to_json())["precision"] == "int8"
    with pytest.raises(_Invalid, match="field precision is 'int4'"):
        parse_baseline({**doc, "precision": "int4"})


def test_a_failing_quantisation_single_model_exits_2_several_models_keep_going(cli, tmp_path, monkeypatch):
    from cnnprof.timing import quantize

    monkeypatch.chdir(tmp_path)
    real = quantize.quantize_int8

    def fails_for_width_4(source, path, options):
        if "width=4" in source.name or "width_4" in source.name:
            raise RuntimeError("no calibration data")
        return real(source, path, options)

    monkeypatch.setattr(quantize, "quantize_int8", fails_for_width_4)
    common = ["--backend", "onnxruntime", "--precision", "fp32,int8", "--min-time", "0", "--min-runs", "2",
              "--parity-inputs", "2", "--calibration-samples", "2", "--in-process", "--no-save"]
    single = cli("bench", f"{USER}:tiny_net(width=4)", *common)
    assert single.exit_code == 2 and one_line(single) and "int8 quantisation of" in single.stderr
    assert "no calibration data" in single.stderr
    several = cli("bench", f"{USER}:tiny_net(width=4)", f"{USER}:tiny_net", *common, "-f", "json")
    assert several.exit_code == 1 and "some rows failed: 1 of 4" in several.stderr
    rows = {(r["model"].rsplit(":", 1)[1], r["precision"]): r for r in json.loads(several.stdout)}
    assert "no calibration data" in rows["tiny_net(width=4)", "int8"]["error"]
    assert rows["tiny_net(width=4)", "fp32"]["latency_ms_median"] > 0
    assert rows["tiny_net", "int8"]["latency_ms_median"] > 0 and rows["tiny_net", "int8"]["error"] == ""


def test_precision_all_in_process_names_the_fastest(cli, tmp_path, monkeypatch, native_bf16):
    monkeypatch.chdir(tmp_path)
    result = cli("bench", f"{USER}:tiny_net", "--backend", "torch,onnxruntime,openvino", "--precision", "all",
                 "--min-time", "0", "--min-runs", "3", "--parity-inputs", "2", "--calibration-samples", "2",
                 "--in-process", "--no-save", "--plot", str(tmp_path / "configs.png"))
    assert result.exit_code == 0, result.stderr
    for config in ("torch", "onnxruntime", "openvino"):
        assert config in result.stdout
    assert "fastest configuration per model" in result.stdout and "vs fp32 eager" in result.stdout
    assert "not timed here: onnxruntime bf16" in result.stderr and "bf16 on this CPU: native (test)" in result.stderr
    assert (tmp_path / "configs.png").stat().st_size > 0


def test_fastest_is_the_quickest_row_with_its_speedup():
    from cnnprof.bench import fastest
    from cnnprof.rows import Note, Notes, ProfileRow

    def row(backend, precision, ms, **kw):
        return ProfileRow(model="m", backend=backend, precision=precision, device="cpu", latency_ms_median=ms, **kw)

    rows = [row("torch", "fp32", 10.0), row("onnxruntime", "int8", 2.5, parity_sqnr_db=12.0,
                                             warnings=Notes([Note("parity", "parity: low"), Note("noisy", "x")])),
            row("openvino", "fp32", 4.0), ProfileRow(model="m", backend="compile", error="failed")]
    (best,) = fastest(rows)
    assert (best.backend, best.precision, best.configurations) == ("onnxruntime", "int8", 3)
    assert best.speedup_vs_fp32_eager == 4.0 and best.parity_sqnr_db == 12.0
    assert best.warnings.kinds() == ["parity", "noisy"]  # every warning of its row
    (alone,) = fastest([row("openvino", "fp32", 4.0)])
    assert alone.speedup_vs_fp32_eager is None


def test_compare_columns_per_backend_and_precision(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("compare", f"{USER}:tiny_net", f"{USER}:tiny_net(width=16)", "--backend", "onnxruntime",
                 "--precision", "fp32,int8", "--min-time", "0", "--min-runs", "2", "--parity-inputs", "2",
                 "--calibration-samples", "2", "--in-process", "--no-save", "-f", "json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["precision"], round(r["latency_ratio"], 6) if r["model"].endswith("tiny_net") else None)
            for r in rows][:2] == [("fp32", 1.0), ("int8", 1.0)]  # each configuration against its own first
    from cnnprof.cli.compare import config_label

    assert config_label("onnxruntime", "fp32") == "onnxruntime" and config_label("openvino", "int8") == "openvino int8"


def test_scale_latency_per_precision(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("scale", "--phi", "0", "--base", "mobilenetv3_small", "--resolution", "64", "--latency",
                 "--backend", "onnxruntime", "--precision", "fp32,int8", "-f", "json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["phi"], r["backend"], r["precision"]) for r in rows] == [(0.0, "onnxruntime", "fp32"),
                                                                        (0.0, "onnxruntime", "int8")]
    assert all(r["latency_ms_median"] > 0 for r in rows)
    bad = cli("scale", "--phi", "0", "--latency", "--precision", "int8")
    assert bad.exit_code == 2 and "int8 is not implemented for torch" in bad.stderr
    assert cli("scale", "--phi", "0", "--precision", "int8").exit_code == 2  # needs --latency


def test_environment_names_openvino():
    from importlib import metadata

    from cnnprof.timing.environment import fingerprint

    env = fingerprint(1)
    assert env.openvino == metadata.version("openvino") and f"openvino {env.openvino}" in env.describe()


# -- on a GPU (run with -m cuda; benchmarks/gpu_check_precision.py gives the figures) -----------------
@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cuda_autocast_rows(precision):
    lat = timing.time_model(tiny(), (3, 64, 64), name="tiny",
                            opts=TimingOptions(device="cuda", precision=precision, protocol=FAST, parity_inputs=4))
    assert lat.device == "cuda" and lat.precision == precision and lat.parity_sqnr_db > 20


@pytest.mark.cuda
def test_cuda_graphs_replay_matches_eager():
    lat = timing.time_model(tiny(), (3, 64, 64), name="tiny",
                            opts=TimingOptions(device="cuda", cuda_graphs=True, protocol=FAST, parity_inputs=4))
    assert lat.setup_s > 0 and lat.parity_max_abs < 1e-3


@pytest.mark.cuda
def test_cuda_peak_memory_in_a_worker(tmp_path):
    from cnnprof.targets import resolve_targets
    from cnnprof.bench.isolated import IsolatedModel

    t = resolve_targets([f"{USER}:tiny_net"])[0]
    with IsolatedModel(name=t.name, input_shape=t.input, batch=1, model=t.build(shape=t.input), recipe=t.recipe,
                       parity_inputs=2) as iso:
        lat = iso.time(TimingOptions(device="cuda", precision="fp16", protocol=FAST, onnx_dir=str(tmp_path)))
    assert lat.peak_memory_bytes > 0


@pytest.mark.cuda
@pytest.mark.parametrize("backend, precision", [("onnxruntime", "fp16"), ("tensorrt", "fp16"),
                                                ("tensorrt", "int8")])
def test_gpu_runtimes(backend, precision, tmp_path):
    lat = timing.time_model(tiny(), (3, 64, 64), name="tiny",
                            opts=TimingOptions(backend=backend, device="cuda", precision=precision, protocol=FAST,
                                               onnx_dir=str(tmp_path), parity_inputs=4))
    assert lat.backend == backend and lat.parity_sqnr_db is not None and lat.setup_s > 0
