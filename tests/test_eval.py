"""``cnnprof eval`` on a task whose answer is known: a tiny network trained here on generated
images of coloured shapes, evaluated on other generated images through PyTorch, ONNX Runtime and
OpenVINO in fp32 and int8. The expected top-1 is computed in the test from the network itself
(its own preprocessing of the generated pixels, its own forward pass), never written down."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from eval_data import CLASSES, MEAN, SIZE, STD, dataset, normalised, trained_net, write_folder

from cnnprof.eval import calibration_split, evaluate, wilson
from cnnprof.imagefolder import Preprocess, scan
from cnnprof.targets import Target

PRE = Preprocess((SIZE, SIZE), 1.0, "bilinear", MEAN, STD)


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    """The trained network, the held-out images (saved as PNG in class folders) and, for each
    saved image, whether the network classifies it correctly (computed here, in torch)."""
    net = trained_net()
    images, labels = dataset(15, seed=7)
    root = tmp_path_factory.mktemp("shapes")
    write_folder(root / "images", images, labels)
    with torch.inference_mode():
        predicted = net(torch.from_numpy(normalised(images))).argmax(1).numpy()
    return net, root, images, labels, predicted


def _index(path) -> int:
    return int(re.search(r"img(\d+)", path.name).group(1))


def _target(net) -> Target:
    return Target(name="shapes", family="user", input=(3, SIZE, SIZE), builder=lambda: net)


def test_every_backend_and_precision_scores_what_the_network_really_does(task):
    net, root, images, labels, predicted = task
    calibration = 12
    rows = list(evaluate(_target(net), root / "images", backends=("torch", "onnxruntime", "openvino"),
                         precisions=("fp32", "int8"), only_runnable=True, calibration=calibration, preprocess=PRE,
                         batch=5, workers=2, onnx_dir=str(root / "models")))
    assert [(r.backend, r.precision) for r in rows] == [
        ("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("openvino", "fp32"), ("openvino", "int8")]
    assert not any(r.error for r in rows), [r.error for r in rows]
    # the images evaluated: all but the calibration images set apart for int8
    samples, _ = scan(root / "images", classes=CLASSES)
    evaluated, calib = calibration_split(samples, calibration, True)
    assert len(calib) == calibration and not {s.path for s in calib} & {s.path for s in evaluated}
    idx = np.array([_index(s.path) for s in evaluated])
    expected = float(np.mean(predicted[idx] == labels[idx]))
    assert 0.6 < expected < 1.0  # the network is accurate but not perfect, so the figure can come out wrong
    reference = rows[0]
    assert reference.images == len(samples) - calibration
    assert reference.top1 == pytest.approx(expected, abs=1e-12)
    assert reference.top1_drop == 0 and reference.top1_agreement == 1
    assert reference.top1_low < reference.top1 < reference.top1_high
    assert (reference.top1_low, reference.top1_high) == pytest.approx(wilson(round(expected * len(idx)), len(idx)))
    for row in rows:
        assert row.images == reference.images
        assert row.top5 is None and "top-5" in str(row.warnings)  # 4 classes: top-5 would always be 100%
        assert row.top1_drop == pytest.approx(reference.top1 - row.top1, abs=1e-12)
        # images whose top-1 class moved are the only ones whose correctness can change
        assert abs(row.top1 - reference.top1) <= 1 - row.top1_agreement + 1e-12
        assert (row.crop_pct, row.interpolation, row.mean) == (1.0, "bilinear", "0.5,0.5,0.5")
        if row.precision == "fp32":
            assert row.top1_agreement >= 0.97 and row.calibration_images is None
        else:  # int8 on real calibration images keeps most of this network's accuracy
            assert row.calibration_images == calibration
            assert row.top1_agreement >= 0.8 and row.top1 >= expected - 0.15


def test_without_int8_every_image_is_evaluated_and_top1_is_the_networks(task):
    net, root, images, labels, predicted = task
    (row,) = evaluate(_target(net), root / "images", preprocess=PRE, batch=4, workers=1)
    assert row.images == len(images)
    assert row.top1 == pytest.approx(float(np.mean(predicted == labels)), abs=1e-12)
    assert row.weights == "factory" and row.seconds > 0 and row.images_per_s > 0


def test_wilson_interval_of_a_textbook_case():
    # 8 successes of 10: 0.490 to 0.943 (Wilson 1927; Newcombe 1998, Table I)
    assert wilson(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    low, high = wilson(0, 20)
    assert low == 0 and high == pytest.approx(0.1611, abs=1e-4)


def test_preprocessing_is_timms_resize_crop_normalise(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(40, 60, 3), dtype=np.uint8)
    pre = Preprocess((16, 16), 0.8, "bicubic", (0.1, 0.2, 0.3), (0.5, 0.6, 0.7))
    assert pre.resize == 20  # floor(16 / 0.8)
    # by hand: shorter side 40 -> 20, the longer 60 -> 30, centre 16x16 of 20x30
    small = np.asarray(Image.fromarray(pixels).resize((30, 20), Image.BICUBIC), dtype=np.float32) / 255
    want = ((small[2:18, 7:23] - (0.1, 0.2, 0.3)) / (0.5, 0.6, 0.7)).transpose(2, 0, 1)
    assert np.allclose(pre.apply(Image.fromarray(pixels)), want, atol=1e-6)
    grey = Image.fromarray(pixels[:, :, 0])
    palette = Image.fromarray(pixels).convert("P")
    rgba = Image.fromarray(pixels).convert("RGBA")
    for image in (grey, palette, rgba):
        out = pre.apply(image)
        assert out.shape == (3, 16, 16)
        assert np.allclose(out, pre.apply(image.convert("RGB")))


def test_int8_calibrates_on_the_images_file_when_given(tmp_path):
    from cnnprof.onnx_export import cached_export
    from cnnprof.timing.quantize import QuantOptions, cached_int8, calibration_batches

    real = np.random.default_rng(3).standard_normal((5, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "calib.npy", real)
    batches = calibration_batches((2, 3, 8, 8), 99, str(tmp_path / "calib.npy"))
    assert len(batches) == 3 and all(b.shape == (2, 3, 8, 8) for b in batches)
    assert np.array_equal(np.concatenate(batches)[:5], real)  # the images themselves, in order
    assert np.array_equal(batches[-1][1], real[0])  # the last batch filled from the start
    # the cached int8 copy is keyed by the images' bytes: other images, another copy
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    source, _, _ = cached_export(net, torch.zeros(2, 3, 8, 8), name="tiny", folder=tmp_path)
    np.save(tmp_path / "other.npy", real[::-1].copy())
    paths = {cached_int8(source, QuantOptions(images=str(tmp_path / f)), folder=tmp_path)[0]
             for f in ("calib.npy", "other.npy")} | {cached_int8(source, QuantOptions(), folder=tmp_path)[0]}
    assert len(paths) == 3 and all(p.is_file() for p in paths)


def test_skipped_images_leave_every_configuration_on_the_same_readable_images(task, tmp_path):
    import shutil

    net, root, images, labels, predicted = task
    folder = tmp_path / "images"
    shutil.copytree(root / "images", folder)
    for k in (0, 2):  # unreadable files that sort before every image of their class
        (folder / str(k) / "a_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    rows = list(evaluate(_target(net), folder, backends=("torch", "onnxruntime"), precisions=("fp32",),
                         only_runnable=True, preprocess=PRE, batch=4, workers=2, skip_bad=True,
                         onnx_dir=str(tmp_path / "models")))
    expected = float(np.mean(predicted == labels))
    for row in rows:
        assert row.images == len(images) and row.skipped_images == 2 and "a_broken.png" in str(row.warnings)
        assert row.top1 == pytest.approx(expected, abs=1e-12)
    assert rows[1].top1_agreement >= 0.97
