"""Every registered variant: forwards at a small input, and counts match the official figures.

The reference of each variant is the official implementation's count (parameters, conv +
linear multiply-adds at the native input); tolerances are stored with the spec: parameters
exactly where the reference is an exact count, else to the unit it is quoted to; MACs 1% against
official code, 1.5% against the FBNet definitions. All variants are checked
with the meta-device shape counter (tests/shape_counter.py, fast at any resolution). cnnprof's
own fvcore-based ``count`` must agree with that counter *exactly* on every variant at a small
input (where both count the same way and the check is fast), and on one variant of every family
at the native input. The ONNX-graph counter is checked on every variant by a slow test
(tests/test_onnx_count.py).
"""

import pytest
import torch
from shape_counter import conv_linear_macs, meta_counts

from cnnprof.counting import count
from cnnprof.models.registry import get, list_models

NAMES = list_models()
ONE_PER_FAMILY = [
    "efficientnet_b0", "efficientnet_lite0", "efficientnetv2_b0", "mobilenetv3_large", "ghostnet_100",
    "ghostnetv2_100", "espnet",
    "espnetv2_100", "fbnet_c", "fbnetv2_f4", "fbnetv3_a",
]


def small_input(spec) -> tuple[int, int, int]:
    """A small input the variant accepts (segmentation networks: twice as wide as high)."""
    h = max(spec.min_input, 64)
    return (3, h, 2 * h if spec.task == "segmentation" else h)


def test_one_per_family_covers_every_family():
    assert {get(n).family for n in ONE_PER_FAMILY} == {get(n).family for n in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_forward_at_a_small_input(name):
    spec = get(name)
    model = spec.build().eval()
    _, h, w = small_input(spec)
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
    assert abs(params - ref.params) <= spec.params_slack, (params, ref.params, spec.params_slack)
    assert abs(macs - ref.macs) / ref.macs <= spec.macs_tol, (macs, ref.macs)


# The references that are exact counts (torchvision's weights metadata; the official ESPNet code),
# and the count each must equal to the parameter: a change here is a deliberate one.
EXACT_PARAMS = {
    "efficientnet_b0": 5_288_548, "efficientnet_b1": 7_794_184, "efficientnet_b2": 9_109_994,
    "efficientnet_b3": 12_233_232, "efficientnet_b4": 19_341_616, "efficientnet_b5": 30_389_784,
    "efficientnet_b6": 43_040_704, "efficientnet_b7": 66_347_960, "efficientnetv2_s": 21_458_488,
    "efficientnetv2_m": 54_139_356, "efficientnetv2_l": 118_515_272, "mobilenetv3_large": 5_483_032,
    "mobilenetv3_small": 2_542_856, "espnet": 365_109,
    # EfficientNet-Lite: efficientnet_lite_pytorch 0.1.0 (EfficientNet.from_name); d-li14/efficientnet-lite.pytorch
    # (4.652M ... 13.007M) and keras-hub's timm-converted Lite0 (4,652,008) agree
    "efficientnet_lite0": 4_652_008, "efficientnet_lite1": 5_416_680, "efficientnet_lite2": 6_092_072,
    "efficientnet_lite3": 8_197_096, "efficientnet_lite4": 13_006_568,
}


def test_exact_references_leave_no_slack_and_rounded_ones_only_their_rounding():
    exact = {n for n in NAMES if get(n).params_rounded_to == 1}
    assert exact == set(EXACT_PARAMS)
    for name in NAMES:
        spec = get(name)
        assert spec.reference.params == EXACT_PARAMS.get(name, spec.reference.params)
        if name in exact:
            assert spec.params_slack == 0, name
        else:  # half the unit quoted, and at most 0.25% more (ESPNetv2's unused parameters, see the catalog)
            assert spec.params_rounded_to // 2 <= spec.params_slack <= spec.params_rounded_to // 2 + \
                0.0025 * spec.reference.params, name


@pytest.mark.parametrize("name", sorted(EXACT_PARAMS))
def test_exact_parameter_counts(name):
    params, _ = meta_counts(get(name))
    assert params == EXACT_PARAMS[name]


@pytest.mark.parametrize("name", NAMES)
def test_cnnprof_count_is_exact_on_every_variant_at_a_small_input(name):
    """fvcore's trace (cnnprof.counting) against output shapes on the meta device, same input."""
    spec = get(name)
    shape = small_input(spec)
    torch.manual_seed(0)
    c = count(spec.build(), shape, label=name)
    with torch.device("meta"):
        meta_model = spec.build()
    assert c.params == sum(p.numel() for p in meta_model.parameters())
    assert c.macs == conv_linear_macs(meta_model, shape)
    assert c.status == "complete", c.status


@pytest.mark.parametrize("name", ONE_PER_FAMILY)
def test_cnnprof_count_agrees_with_the_shape_counter(name):
    spec = get(name)
    c = count(spec.build(), spec.input, label=name)
    assert (c.params, c.macs) == meta_counts(spec)
    assert c.status == "complete", c.status


# One smallish variant per builder, to build away from the catalog's multipliers.
ONE_PER_BUILDER = [
    "efficientnet_b0", "efficientnet_lite1", "efficientnetv2_b0", "mobilenetv3_small", "ghostnet_050",
    "ghostnetv2_100", "espnet",
    "espnet_c", "espnetv2_050", "fbnet_a", "fbnetv2_f1", "fbnetv3_a",
]


def test_one_per_builder_covers_every_builder():
    assert {get(n).builder for n in ONE_PER_BUILDER} == {get(n).builder for n in NAMES}


@pytest.mark.parametrize("name", ONE_PER_BUILDER)
def test_every_builder_takes_width_mult_and_depth_mult_with_effect(name):
    import importlib
    import inspect

    spec = get(name)
    module_name, _, func_name = spec.builder.partition(":")
    params = inspect.signature(getattr(importlib.import_module(module_name), func_name)).parameters
    for key in ("width_mult", "depth_mult"):
        assert params[key].kind is inspect.Parameter.KEYWORD_ONLY and params[key].default == 1.0
    own = dict(spec.options)
    width, depth = own.get("width_mult", 1.0), own.get("depth_mult", 1.0)

    def n_params(**overrides) -> int:
        return sum(p.numel() for p in spec.build(**overrides).parameters())

    base = n_params()
    assert n_params(width_mult=width * 1.5) > base and n_params(depth_mult=depth * 2) > base
    for bad in ({"width_mult": 0.0}, {"depth_mult": 0.0}, {"width_mult": -1.0}):
        with pytest.raises(ValueError, match="width_mult and depth_mult must be > 0"):
            spec.build(**bad)
