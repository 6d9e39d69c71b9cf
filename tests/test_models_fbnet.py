"""FBNet V1 (search space, A/B/C), V2 (F1-F4, L1, L2), V3 (A-G): shapes, counts, block formulas."""

from __future__ import annotations

import random

import pytest
import torch
from shape_counter import meta_counts
from torch import nn

from cnnprof.counting import count
from cnnprof.models.blocks.core import ChannelShuffle, ConvBNAct, MBConv
from cnnprof.models.blocks.fbnet import SkipBlock, irf_mid_chs, irf_se_chs, round_channels, scale_arch
from cnnprof.models.fbnet import CANDIDATES, FBNET_ARCHS, FBNET_SPACE, fbnet, fbnet_space
from cnnprof.models.fbnetv2 import ARCHS as V2_ARCHS
from cnnprof.models.fbnetv2 import fbnetv2
from cnnprof.models.fbnetv3 import ARCHS as V3_ARCHS
from cnnprof.models.fbnetv3 import fbnetv3
from cnnprof.models.registry import get, list_models

NAMES = list_models("fbnet*")

# Params and conv + linear MACs of the official definitions, counted on the official build, not on
# cnnprof's. Where each number comes from (benchmarks/fbnet_official_counts.py reproduces all 16
# from a mobile-vision checkout at commit bb8465c and prints them beside this table and cnnprof's
# own count; every one matched exactly when it was last run):
# - the definition: MODEL_ARCH["fbnet_a" / "fbnet_b" / "fbnet_c"] of
#   mobile_cv/arch/fbnet_v2/fbnet_modeldef_cls_fbnet.py, ["FBNetV2_F1" ... "FBNetV2_L2"] of
#   fbnet_modeldef_cls_fbnetv2.py (MODEL_ARCH_FBNETV2_PAPER), ["FBNetV3_A" ... "FBNetV3_G"] of
#   fbnet_modeldef_cls_fbnetv3.py (MODEL_ARCH_FBNETV3);
# - the network: the official FBNetBuilder (the definition's basic_args, unify_arch_def,
#   build_blocks from 3 input channels), then the model zoo's classification head (global average
#   pool, 1x1 conv with bias to 1000 classes);
# - params: every parameter (batch-norm weight and bias included, running statistics not);
# - MACs: forward hooks on nn.Conv2d (output elements x in_channels / groups x kernel area) and
#   nn.Linear, one batch-1 forward at the definition's own input_size (the catalog's native input).
# The released model cards (kept in the catalog beside them as "released") were counted another,
# unstated way and differ by under 1%: they are published figures, not these exact counts.
OFFICIAL = {
    "fbnet_a": (4_321_232, 244_452_664),
    "fbnet_b": (4_818_216, 291_004_424),
    "fbnet_c": (5_592_784, 378_136_224),
    "fbnetv2_f1": (6_024_744, 56_231_936),
    "fbnetv2_f2": (6_024_744, 85_163_192),
    "fbnetv2_f3": (6_924_840, 121_423_712),
    "fbnetv2_f4": (7_022_880, 237_605_592),
    "fbnetv2_l1": (8_538_792, 325_025_344),
    "fbnetv2_l2": (8_538_792, 422_610_304),
    "fbnetv3_a": (8_598_480, 355_514_328),
    "fbnetv3_b": (8_598_480, 460_150_000),
    "fbnetv3_c": (9_973_816, 555_578_368),
    "fbnetv3_d": (10_306_296, 642_628_864),
    "fbnetv3_e": (10_772_896, 759_952_160),
    "fbnetv3_f": (13_896_160, 1_178_860_656),
    "fbnetv3_g": (16_623_920, 2_125_187_200),
}


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_all_variants_are_registered():
    assert sorted(NAMES) == sorted(OFFICIAL)


@pytest.mark.parametrize("name", NAMES)
def test_counts_are_exactly_the_official_definitions(name):
    spec = get(name)
    params, macs = meta_counts(spec)  # tests/shape_counter.py; count() agrees with it (test_zoo.py)
    ref = spec.reference
    assert abs(params - ref.params) <= spec.params_slack
    assert abs(macs / ref.macs - 1) <= spec.macs_tol
    assert (params, macs) == OFFICIAL[name]  # exactly the official definitions' counts


@pytest.mark.parametrize("name", ["fbnetv3_a", "fbnetv3_b", "fbnetv3_c", "fbnetv3_f", "fbnetv3_d"])
def test_min_input_is_the_smallest_accepted(name):
    spec = get(name)
    model = spec.build().eval()
    side = spec.min_input
    with torch.inference_mode():
        model(torch.randn(1, 3, side, side))
        if side > 32:  # the padding overrides make one pixel less fail
            with pytest.raises(RuntimeError):
                model(torch.randn(1, 3, side - 1, side - 1))


# -- channel rules -----------------------------------------------------------------------------
def get_divisible_by(num: float, divisor: int) -> int:
    """mobile-vision's rule, written out: nearest multiple, +divisor below 95%, at least divisor."""
    ret = int(num)
    if num % divisor != 0:
        ret = int((int(num / divisor + 0.5) or 1) * divisor)
        if ret < 0.95 * num:
            ret += divisor
    return max(ret, divisor)


def test_round_channels_is_mobile_vision_rule():
    for value in [x / 7 for x in range(1, 4000)]:
        assert round_channels(value, 8) == get_divisible_by(value, 8), value


def test_mid_and_se_channels_by_hand():
    assert irf_mid_chs(24, 5.4566, 8) == 128  # 130.96 -> 128 (within 5%)
    assert irf_mid_chs(24, 1.7912, 8) == 48  # 42.99 -> 40 is 7% short -> 48
    assert irf_mid_chs(16, 1, 8) == 16
    assert irf_mid_chs(24, 6, 1) == 144  # V1: no rounding
    # V2: a quarter of mid; V3 (less_se_channels): a quarter of mid / expand
    assert irf_se_chs(120, 5, less_se_channels=False, divisor=8) == 32  # int(30) -> 32
    assert irf_se_chs(120, 5, less_se_channels=True, divisor=8) == 8  # int(6) -> 8
    assert irf_se_chs(1104, 6, less_se_channels=True, divisor=8) == 48  # int(46) -> 48


# -- the FBNet V1 search space -------------------------------------------------------------------
def test_search_space_size():
    assert len(FBNET_SPACE.layers) == 22
    assert len(FBNET_SPACE.candidates) == 9
    assert FBNET_SPACE.size() == 9**22 == 984770902183611232881
    assert isinstance(FBNET_SPACE.size(), int)


def test_search_space_layers_follow_table_1():
    outs = [layer.out_chs for layer in FBNET_SPACE.layers]
    assert outs == [16] + [24] * 4 + [32] * 4 + [64] * 4 + [112] * 4 + [184] * 4 + [352]
    strides = {i: layer.stride for i, layer in enumerate(FBNET_SPACE.layers) if layer.stride != 1}
    assert strides == {1: 2, 5: 2, 9: 2, 17: 2}
    shapes = FBNET_SPACE.block_input_shapes()
    assert shapes[0] == (16, 112, 112)
    assert shapes[1] == (16, 112, 112) and shapes[2] == (24, 56, 56)
    assert shapes[13] == (64, 14, 14) and shapes[21] == (184, 7, 7)
    assert fbnet_space(320).block_input_shapes()[21] == (184, 10, 10)


def test_published_archs_are_valid_choices():
    names = {c.name for c in CANDIDATES}
    for choices in FBNET_ARCHS.values():
        assert len(choices) == 22 and set(choices) <= names


def _block(layer: int, name: str) -> nn.Module:
    return FBNET_SPACE.build_block(layer, name)


def test_k3_e6_block_by_hand():
    # layer 2 is 24 -> 24 at 56x56; every conv has a bias, every BN two parameters per channel
    block = _block(2, "k3_e6")
    pw = 24 * 144 + 144 + 2 * 144
    dw = 144 * 3 * 3 + 144 + 2 * 144
    pwl = 144 * 24 + 24 + 2 * 24
    assert n_params(block) == pw + dw + pwl == 9144
    assert block.has_skip
    c = count(block, (24, 56, 56))
    assert c.macs == 56 * 56 * (24 * 144 + 144 * 9 + 144 * 24)


def test_k5_e1_g2_block_by_hand():
    # layer 10 is 64 -> 64 at 14x14; e1: no 1x1 expand; the 1x1 project has 2 groups
    block = _block(10, "k5_e1_g2")
    assert isinstance(block.conv_pw, nn.Identity)
    dw = 64 * 5 * 5 + 64 + 2 * 64
    pwl = (64 // 2) * 64 + 64 + 2 * 64
    assert n_params(block) == dw + pwl == 4032
    assert count(block, (64, 14, 14)).macs == 14 * 14 * (64 * 25 + 32 * 64)


def test_grouped_expand_block_by_hand():
    # k3_e1_g2 at the stride-2 layer 1 (16 -> 24): mid = 16, so no expand; grouped project
    block = _block(1, "k3_e1_g2")
    assert n_params(block) == (16 * 9 + 16 + 32) + (8 * 24 + 24 + 48)
    assert not block.has_skip


def test_skip_candidate():
    assert n_params(_block(2, "skip")) == 0  # 24 -> 24, stride 1: identity
    skip = _block(1, "skip")  # 16 -> 24, stride 2: 1x1 conv (no bias) + BN + ReLU
    assert isinstance(skip.conv, ConvBNAct) and isinstance(skip.conv.act, nn.ReLU)
    assert n_params(skip) == 16 * 24 + 2 * 24
    assert count(skip, (16, 112, 112)).macs == 56 * 56 * 16 * 24


def test_every_candidate_builds_at_every_layer_with_the_right_shape():
    space = fbnet_space(32)
    for layer, (c, h, w) in zip(space.layers, space.block_input_shapes()):
        x = torch.randn(1, c, h, w)
        for cand in CANDIDATES:
            y = space.build_block(layer.index, cand.name).eval()(x)
            assert y.shape == (1, layer.out_chs, -(-h // layer.stride), -(-w // layer.stride))


def test_g2_blocks_shuffle_channels():
    for name in ("k3_e1_g2", "k5_e1_g2"):
        block = _block(10, name).eval()
        assert isinstance(block.shuffle, ChannelShuffle) and block.shuffle.groups == 2
        assert block.conv_pwl.conv.groups == 2
    order = ChannelShuffle(2)(torch.arange(8.0).view(1, 8, 1, 1)).flatten().tolist()
    assert order == [0, 4, 1, 5, 2, 6, 3, 7]
    # a change in the first half of the input reaches the second half of the output only
    # through the shuffle (the grouped 1x1 project alone would keep the halves apart)
    block = _block(10, "k5_e1_g2").eval()
    x = torch.randn(1, 64, 14, 14)
    x2 = x.clone()
    x2[:, :32] += 1.0
    with torch.no_grad():
        diff = (block(x2) - block(x))[:, 32:].abs().max()
        block.shuffle = nn.Identity()
        diff_unshuffled = (block(x2) - block(x))[:, 32:].abs().max()
    assert diff > 1e-3
    assert diff_unshuffled == 0


def test_composing_stem_blocks_head_equals_network():
    choices = FBNET_SPACE.sample(random.Random(0))
    assert len(choices) == 22 and choices == FBNET_SPACE.sample(random.Random(0))
    space = fbnet_space(64)
    net = space.build_network(choices).eval()
    assert isinstance(net.blocks, nn.Sequential) and len(net.blocks) == 22
    # separately built parts, given the network's weights, compose to the network's forward
    stem = space.build_stem()
    stem.load_state_dict(net.stem.state_dict())
    blocks = [space.build_block(i, name) for i, name in enumerate(choices)]
    for block, net_block in zip(blocks, net.blocks):
        block.load_state_dict(net_block.state_dict())
    head = space.build_head()
    head.load_state_dict(net.head.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        y = stem.eval()(x)
        for i, block in enumerate(blocks):
            assert tuple(y.shape[1:]) == space.block_input_shapes()[i]
            y = block.eval()(y)
        y = head.eval()(y)
        assert torch.allclose(y, net(x), atol=1e-5)


def test_fbnet_archs_are_build_network_of_their_choices():
    for arch in "abc":
        model = fbnet(arch=arch)
        kinds = [type(b) for b in model.blocks]
        assert kinds == [SkipBlock if n == "skip" else MBConv for n in FBNET_ARCHS[arch]]
    assert fbnet(arch="a").head.conv.conv.out_channels == 1504
    assert fbnet(arch="b").head.conv.conv.out_channels == 1984


def test_build_network_rejects_bad_choices():
    with pytest.raises(ValueError):
        FBNET_SPACE.build_network(FBNET_ARCHS["b"][:21])
    with pytest.raises(ValueError):
        FBNET_SPACE.build_block(0, "k7_e6")
    with pytest.raises(ValueError):
        FBNET_SPACE.build_block(22, "skip")


# -- V2 / V3 --------------------------------------------------------------------------------------
def test_num_classes_changes_only_the_classifier():
    for build, head_chs in ((lambda k: fbnet(arch="b", num_classes=k), 1984),
                            (lambda k: fbnetv2(arch="f1", num_classes=k), 1600),
                            (lambda k: fbnetv3(arch="a", num_classes=k), 1984)):
        assert n_params(build(1000)) - n_params(build(10)) == 990 * (head_chs + 1)


def test_unknown_arch_is_an_error():
    for build in (fbnet, fbnetv2, fbnetv3):
        with pytest.raises(ValueError):
            build(arch="z")


def test_v2_skip_is_relu_conv_where_channels_change():
    model = fbnetv2(arch="f1")
    skip = model.blocks[8]  # 56 -> 80
    assert isinstance(skip, SkipBlock) and isinstance(skip.conv.act, nn.ReLU)
    assert n_params(skip) == 56 * 80 + 2 * 80
    identity = fbnetv2(arch="f4").blocks[10]  # 64 -> 64
    assert isinstance(identity, SkipBlock) and n_params(identity) == 0


def test_v2_head_by_hand():
    head = fbnetv2(arch="f1").head  # 224 -> 1344 (+BN) -> pool -> 1600 (no bias) -> classifier
    assert n_params(head) == 224 * 1344 + 2 * 1344 + 1344 * 1600 + 1600 * 1000 + 1000


def test_v3_padding_overrides_shrink_late_stages():
    a = fbnetv3(arch="a")
    pads = [b.conv_dw.conv.padding for b in a.blocks if b.conv_dw.conv.stride == (2, 2)]
    assert pads == [(2, 2), (2, 2), (1, 1), (0, 0)]  # "same", "same", k5 pad 1, k3 pad 0
    with torch.no_grad():
        feats_a = a.blocks(a.stem(torch.randn(1, 3, 248, 248)))
        d = fbnetv3(arch="d").eval()
        feats_d = d.blocks(d.stem(torch.randn(1, 3, 248, 248)))
    assert feats_a.shape[-1] == 7  # 248 -> 124 -> 62 -> 31 -> 15 -> 7
    assert feats_d.shape[-1] == 8  # "same" padding throughout: ceil(248 / 32)


def test_v3_se_uses_less_channels_and_hard_sigmoid():
    block = fbnetv3(arch="a").blocks[6]  # first stage-3 block: 24 -> 40, e5, mid 120
    assert block.conv_dw.conv.out_channels == 120
    assert block.se.conv_reduce.out_channels == 8
    assert isinstance(block.se.gate, nn.Hardsigmoid) and isinstance(block.se.act, nn.Hardswish)
    v2_block = fbnetv2(arch="f1").blocks[3]  # 24 -> 32, e5.3501, ReLU, SE on mid / 4
    mid = v2_block.conv_dw.conv.out_channels
    assert mid == 128 and v2_block.se.conv_reduce.out_channels == 32
    assert isinstance(v2_block.se.act, nn.ReLU)


# -- V2 / V3 width and depth multipliers ---------------------------------------------------------
def _outs(model: nn.Module) -> list[int]:
    return [b.conv_pwl.conv.out_channels if isinstance(b, MBConv) else b.conv.conv.out_channels for b in model.blocks]


def test_scale_arch_at_one_is_the_official_table():
    for arch in [*V2_ARCHS.values(), *V3_ARCHS.values()]:
        assert scale_arch(arch) == arch


def test_v3_at_half_width_and_double_depth_by_hand():
    model = fbnetv3(arch="a", width_mult=0.5, depth_mult=2.0)
    # A's rows repeat 2, 1, 3, 1, 4, 1, 4, 1, 5, 1, 5, 1 times; doubled: 58 blocks
    # widths 16, 24, 40, 72, 120, 184, 224 halved to 8, 12, 20, 36, 60, 92, 112 and rounded to the
    # nearest multiple of 8 (+8 if over 5% lost): 8, 16, 24, 40, 64, 96, 112
    assert len(model.blocks) == 58
    expected = [8] * 4 + [16] * (2 + 6) + [24] * (2 + 8) + [40] * (2 + 8) + [64] * (2 + 10) + [96] * (2 + 10)
    expected += [112] * 2
    assert _outs(model) == expected
    # a row's first block keeps its stride and padding override; the copies are stride 1, "same"
    strided = {i: b.conv_dw.conv.padding for i, b in enumerate(model.blocks) if b.conv_dw.conv.stride == (2, 2)}
    assert strided == {4: (2, 2), 12: (2, 2), 22: (1, 1), 44: (0, 0)}
    assert model.blocks[23].conv_dw.conv.padding == (2, 2) and model.blocks[45].conv_dw.conv.padding == (1, 1)
    assert model.stem.conv.out_channels == 8
    # head: 1x1 to round(112 * 6) = 672, then 1984 / 2 = 992
    assert model.head.conv_pw.conv.out_channels == 672 and model.head.fc.out_features == 992
    with torch.inference_mode():
        assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


def test_v2_at_half_width_and_double_depth_keeps_skip_rows_single():
    model = fbnetv2(arch="f1", width_mult=0.5, depth_mult=2.0)
    # 13 IRF rows of one block each, doubled, and the two skip rows once each: 28 blocks
    assert len(model.blocks) == 28
    skips = [i for i, b in enumerate(model.blocks) if isinstance(b, SkipBlock)]
    assert skips == [16, 27]
    # 8, 24, 24, 32, 24 | 56, 56, 56 | skip 80 | 80, 80 | 144, 144, 144 | skip 224, halved and
    # rounded: 4 -> 8 (at least 8), 12 -> 16, 16, 28 -> 32, 40, 72, 112
    assert _outs(model) == [8] * 2 + [16] * 8 + [32] * 6 + [40] * 5 + [72] * 6 + [112]
    assert isinstance(model.blocks[16].conv, ConvBNAct)  # 32 -> 40: a 1x1 ConvBNReLU
    assert model.stem.conv.out_channels == 8 and model.head.fc.out_features == 800
    with torch.inference_mode():
        assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


def test_v2_v3_depth_mult_rounds_each_rows_repeats_up():
    # G's repeats 3, 1, 4, 1, 4, 1, 4, 1, 8, 1, 6, 2 at 0.5: 2, 1, 2, 1, 2, 1, 2, 1, 4, 1, 3, 1
    assert len(fbnetv3(arch="g", depth_mult=0.5).blocks) == 21
    # F4: 13 IRF rows of one block, 2 of two, 2 skips; at 1.5: 13 * 2 + 2 * 3 + 2
    assert len(fbnetv2(arch="f4").blocks) == 13 + 2 * 2 + 2
    assert len(fbnetv2(arch="f4", depth_mult=1.5).blocks) == 34


def test_v2_v3_width_mult_above_one():
    model = fbnetv3(arch="a", width_mult=1.25)
    # 16, 24, 40, 72, 120, 184, 224 * 1.25 = 20, 30, 50, 90, 150, 230, 280 -> 24, 32, 48, 88, 152, 232, 280
    assert sorted(set(_outs(model))) == [24, 32, 48, 88, 152, 232, 280]
    assert model.stem.conv.out_channels == 24 and model.head.fc.out_features == 2480


@pytest.mark.parametrize("build", [fbnetv2, fbnetv3])
@pytest.mark.parametrize("bad", [{"width_mult": 0.0}, {"width_mult": -1.0}, {"depth_mult": 0.0}])
def test_v2_v3_multipliers_must_be_positive(build, bad):
    with pytest.raises(ValueError, match="width_mult and depth_mult must be > 0"):
        build(**bad)
