"""Every registered variant: forwards at a small input, and counts match the official figures.

The reference of each variant is the official implementation's count (parameters, conv +
linear multiply-adds at the native input); tolerances are stored with the spec (0.5% params and
1% MACs against official code, 1.5% against the FBNet definitions).
"""

import functools

import pytest
import torch

from cnnprof.counting import count
from cnnprof.models.registry import get, list_models

NAMES = list_models()


@functools.lru_cache(maxsize=None)
def native_counts(name: str):
    spec = get(name)
    return count(spec.build(), spec.input, label=name)


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
    c = native_counts(name)
    ref = spec.reference
    assert abs(c.params - ref.params) / ref.params <= spec.params_tol, (c.params, ref.params)
    assert abs(c.macs - ref.macs) / ref.macs <= spec.macs_tol, (c.macs, ref.macs)
    assert c.status == "complete", c.status
