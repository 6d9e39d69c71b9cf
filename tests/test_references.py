"""User model references: a file or package factory, an ONNX file, hubs, and every bad reference."""

import json
import sys

import pytest
import torch

USER = "tests/user_model.py"


def tiny_counts(width=8, classes=10, hw=32):
    params = 27 * width + 2 * width + width * classes + classes
    macs = 27 * width * hw * hw + width * classes
    return params, macs


def run_json(cli, *args):
    result = cli(*args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_profile_a_model_from_a_file_with_its_declared_input(cli):
    row = run_json(cli, "profile", f"{USER}:tiny_net")[0]
    assert (row["params"], row["macs"]) == tiny_counts()
    assert row["input"] == "3x32x32" and row["family"] == "user" and row["model"] == f"{USER}:tiny_net"


def test_keyword_options_and_model_args_and_input(cli):
    row = run_json(cli, "profile", f"{USER}:tiny_net(width=16)", "--input", "3x64x64", "--model-arg", "classes=5")[0]
    assert (row["params"], row["macs"]) == tiny_counts(width=16, classes=5, hw=64)


def test_package_module_factory(cli, monkeypatch):
    monkeypatch.syspath_prepend("tests")
    row = run_json(cli, "profile", "user_model:TinyNet")[0]
    assert (row["params"], row["macs"]) == tiny_counts()


def test_python_api_takes_references():
    import cnnprof

    c = cnnprof.count(f"{USER}:tiny_net(width=4)")
    assert (c.params, c.macs) == tiny_counts(width=4)
    df = cnnprof.profile([f"{USER}:tiny_net", "mobilenetv3_small"], resolution=None)
    assert list(df["model"]) == [f"{USER}:tiny_net", "mobilenetv3_small"]


@pytest.fixture
def tiny_onnx(tmp_path):
    from user_model import tiny_net

    from cnnprof.onnx_export import export_onnx

    path = tmp_path / "tiny.onnx"
    export_onnx(tiny_net().eval(), torch.randn(1, 3, 32, 32), path)
    return path


@pytest.fixture(autouse=True)
def _user_model_importable(monkeypatch):
    monkeypatch.syspath_prepend("tests")


def test_profile_an_onnx_file(cli, tiny_onnx):
    row = run_json(cli, "profile", str(tiny_onnx))[0]
    params, macs = tiny_counts()
    assert row["macs"] == macs and row["family"] == "onnx" and row["input"] == "3x32x32"
    # batch norm is folded into the convolution on export: its 2*8 parameters become 8 biases
    assert row["params"] == params - 8
    assert row["counts_status"] == "complete" and row["macs_fvcore"] is None


def test_bench_an_onnx_file_with_onnxruntime_only(cli, tiny_onnx, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("bench", str(tiny_onnx), "--backend", "onnxruntime,torch", "--min-time", "0", "--min-runs", "3",
                 "--format", "json")
    assert result.exit_code == 1 and "some rows failed: 1 of 2" in result.stderr  # the torch row
    rows = json.loads(result.stdout)
    by_backend = {r["backend"]: r for r in rows}
    ort = by_backend["onnxruntime"]
    assert ort["error"] == "" and ort["runs"] == 3  # --min-runs 3, no minimum time
    assert ort["throughput_per_s"] == pytest.approx(1000 / ort["latency_ms_median"])  # items/s from ms
    assert "is an ONNX file: it is timed with onnxruntime, openvino" in by_backend["torch"]["error"]


def test_export_a_user_model_and_cross_check_the_counters(cli, tmp_path):
    out = tmp_path / "tiny.onnx"
    row = run_json(cli, "export", f"{USER}:tiny_net", "--dynamic-batch", "-o", str(out))[0]
    assert out.is_file() and row["path"] == str(out) and row["bytes"] == out.stat().st_size
    assert row["macs_onnx"] == row["macs"] == tiny_counts()[1] and row["counters_agree"] is True
    assert row["parity_max_abs"] < 1e-5 and row["parity_batch2_max_abs"] < 1e-5


def _bad_module(tmp_path):
    path = tmp_path / "bad_module.py"
    path.write_text("import torch\nraise RuntimeError('no GPU here')\n")
    return path


@pytest.mark.parametrize(
    "ref, extra, needle",
    [
        ("no_such_package.models:net", [], "cannot import 'no_such_package.models': ModuleNotFoundError"),
        ("BAD_MODULE:net", [], "cannot import"),
        (f"{USER}:missing", [], "has no attribute 'missing'"),
        (f"{USER}:NOT_CALLABLE", [], "is a int, not a callable"),
        (f"{USER}:not_a_model", [], "returned int, not a torch.nn.Module"),
        (f"{USER}:broken(width=3)", [], "the factory raised ValueError: width 3 is not supported"),
        (f"{USER}:no_shape", [], "declares no input shape: pass --input"),
        (f"{USER}:fixed_input", ["--input", "3x32x32"], "layer 'fc' (Linear) got 1x3600"),
        (f"{USER}:tiny_net(width=)", [], "must be keyword literals"),
        (f"{USER}:tiny_net", ["--input", "3x0x2"], "three positive sizes"),
        (f"{USER}:tiny_net", ["--model-arg", "nokey"], "key=value"),
        ("missing_file.py:net", [], "does not exist"),
        ("CORRUPT_ONNX", [], "is not a valid ONNX model"),
        ("TEXT_ONNX", [], "is not a valid ONNX model"),
        ("missing.onnx", [], "does not exist"),
        ("timm:resnet18", [], "timm is not installed"),
        ("torchvision:resnet18", [], "torchvision is not installed"),
    ],
)
def test_bad_references_are_one_line_exit_2(cli, tmp_path, ref, extra, needle):
    if ref == "BAD_MODULE:net":
        ref = f"{_bad_module(tmp_path)}:net"
    elif ref == "CORRUPT_ONNX":
        path = tmp_path / "corrupt.onnx"
        path.write_bytes(b"\x08\x07\x12\x04junk" * 10)
        ref = str(path)
    elif ref == "TEXT_ONNX":
        path = tmp_path / "notes.onnx"
        path.write_text("this is not a model\n")
        ref = str(path)
    for module in ("timm", "torchvision"):
        assert module not in sys.modules or ref.split(":")[0] != module  # the hubs are absent here
    result = cli("profile", ref, *extra)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1, result.stderr
    assert needle in result.stderr
    assert "Traceback" not in result.output
