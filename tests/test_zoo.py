"""Every registered variant: forwards at a small input, and counts match the official figures.

The reference of each variant is the official implementation's count (parameters, conv +
linear multiply-adds at the native input); tolerances are stored with the spec (0.5% params and
1% MACs against official code, 1.5% against the FBNet definitions). All variants are checked
with the meta-device shape counter (tests/shape_counter.py, fast at any resolution); cnnprof's
own fvcore-based ``count`` is checked to agree with it exactly on one variant of every family,
at the native input. (``cnnprof profile '*'`` runs ``count`` on all of them.)
"""

import pytest
import torch
from shape_counter import meta_counts

from cnnprof.counting import count
from cnnprof.models.registry import get, list_models

NAMES = list_models()
ONE_PER_FAMILY = [
    "efficientnet_b0", "efficientnetv2_b0", "mobilenetv3_large", "ghostnet_100", "ghostnetv2_100", "espnet",
    "espnetv2_100", "fbnet_c", "fbnetv2_f4", "fbnetv3_a",
]


def test_one_per_family_covers_every_family():
    assert {get(n).family for n in ONE_PER_FAMILY} == {get(n).family for n in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_forward_at_a_small_input(name):
    spec = get(name)
    model = spec.build().eval()
    h = max(spec.min_input, 64)
    w = 2 * h if spec.task == "segmentation" else h
    with torch.inference_mode():
        out = model(torch.randn(2, 3, h, w))
    if spec.task == "segmentation":
        assert out.shape[0] == 2 and out.shape[1] == 20
        scale = 8 if name == "espnet_c" else 1  # the encoder alone stops at 1/8
        assert tuple(out.shape[2:]) == (h // scale, w // scale)
    else:
        assert out.shape == (2, 1000)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_counts_match_the_official_implementation(name):
    spec = get(name)
    params, macs = meta_counts(spec)
    ref = spec.reference
    assert abs(params - ref.params) / ref.params <= spec.params_tol, (params, ref.params)
    assert abs(macs - ref.macs) / ref.macs <= spec.macs_tol, (macs, ref.macs)


@pytest.mark.parametrize("name", ONE_PER_FAMILY)
def test_cnnprof_count_agrees_with_the_shape_counter(name):
    spec = get(name)
    c = count(spec.build(), spec.input, label=name)
    assert (c.params, c.macs) == meta_counts(spec)
    assert c.status == "complete", c.status
