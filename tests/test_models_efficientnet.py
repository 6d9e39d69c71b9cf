"""EfficientNet V1 (B0-B7), EfficientNetV2 (S/M/L, B0-B3) and MobileNetV3 (Large/Small): the
rules and blocks of each, worked out by hand. Every variant's forward pass and its counts
against the official figures are in tests/test_zoo.py."""

from __future__ import annotations

import functools

import pytest
import torch
from shape_counter import conv_linear_macs
from torch import nn

from cnnprof.counting import count_params
from cnnprof.models.blocks.core import ConvBNAct, FusedMBConv, MBConv, SqueezeExcite, make_divisible
from cnnprof.models.efficientnetv2 import (
    BASE_STAGES,
    S_STAGES,
    early_stages,
    efficientnetv2,
    round_filters,
)
from cnnprof.models.registry import get, list_models

V1 = [f"efficientnet_b{i}" for i in range(8)]
V2 = ["efficientnetv2_s", "efficientnetv2_m", "efficientnetv2_l"] + [f"efficientnetv2_b{i}" for i in range(4)]
MNV3 = ["mobilenetv3_large", "mobilenetv3_small"]
ALL = V1 + V2 + MNV3
SMALL_INPUT = (3, 32, 32)  # the catalog's min_input for all of these


@functools.cache
def built(name: str) -> nn.Module:
    """The variant with real weights, built once per session (tests only read it)."""
    torch.manual_seed(0)
    return get(name).build().eval()


@functools.cache
def built_v2(arch: str) -> nn.Module:
    """An unscaled V2 on the meta device: structure and counts without allocating weights."""
    with torch.device("meta"):
        return efficientnetv2(arch=arch).eval()


def rel(measured: int, reference: int) -> float:
    return abs(measured - reference) / reference


def test_catalog_lists_every_variant():
    assert list_models("efficientnet_b*") == V1
    assert list_models("efficientnet_*") == V1 + [f"efficientnet_lite{i}" for i in range(5)]
    assert sorted(list_models("efficientnetv2_*")) == sorted(V2)
    assert list_models("mobilenetv3_*") == MNV3


# -- EfficientNet V1 -------------------------------------------------------------------------
def block_in_chs(block: MBConv) -> int:
    """Input channels of an MBConv (its expand conv's, or its depthwise conv's when not expanding)."""
    first = block.conv_pw if isinstance(block.conv_pw, ConvBNAct) else block.conv_dw
    return first.conv.in_channels


@pytest.mark.parametrize("name", ["efficientnet_b0", "efficientnet_b3"])
def test_v1_se_reduce_relative_to_block_input(name: str):
    model = built(name)
    blocks = [b for b in model.blocks if isinstance(b, MBConv)]
    assert len(blocks) == len(model.blocks)
    for b in blocks:
        in_chs, mid_chs = block_in_chs(b), b.conv_dw.conv.in_channels
        assert b.se.conv_reduce.in_channels == mid_chs
        assert b.se.conv_reduce.out_channels == max(1, int(in_chs * 0.25))


def test_v1_b0_se_hand_values():
    blocks = built("efficientnet_b0").blocks
    # block 0: 32 -> 16, expansion 1: SE 32 -> 8; block 1: 16 -> 24, expanded 96: SE 96 -> 4, not 24
    assert (blocks[0].se.conv_reduce.in_channels, blocks[0].se.conv_reduce.out_channels) == (32, 8)
    assert (blocks[1].se.conv_reduce.in_channels, blocks[1].se.conv_reduce.out_channels) == (96, 4)
    # the last block: 192 -> 320, expanded 1152: SE 1152 -> 48
    assert (blocks[-1].se.conv_reduce.in_channels, blocks[-1].se.conv_reduce.out_channels) == (1152, 48)


# -- MobileNetV3 -----------------------------------------------------------------------------
# (expanded channels, SE channels) of every SE block: make_divisible(exp / 4, 8), paper Tables 1-2.
MNV3_SE = {
    "mobilenetv3_large": [(72, 24), (120, 32), (120, 32), (480, 120), (672, 168), (672, 168), (960, 240), (960, 240)],
    "mobilenetv3_small": [
        (16, 8), (96, 24), (240, 64), (240, 64), (120, 32), (144, 40), (288, 72), (576, 144), (576, 144)
    ],
}


@pytest.mark.parametrize("name", MNV3)
def test_mnv3_se_from_expanded_channels(name: str):
    se_blocks = [b.se for b in built(name).blocks if isinstance(b.se, SqueezeExcite)]
    se = [(m.conv_reduce.in_channels, m.conv_reduce.out_channels) for m in se_blocks]
    assert se == MNV3_SE[name]
    assert all(s == make_divisible(e / 4, 8) for e, s in se)
    assert all(isinstance(m.gate, nn.Hardsigmoid) for m in se_blocks)


# -- EfficientNetV2 --------------------------------------------------------------------------
def test_v2_round_filters_has_no_90_percent_step():
    # 16 * 1.2 = 19.2 rounds to 16 (17% down); V1's rule would add 8 back.
    assert round_filters(16, 1.2) == 16
    assert make_divisible(16 * 1.2, 8) == 24
    assert [round_filters(c, 1.1) for c in (32, 16, 48, 96, 112, 192, 1280)] == [32, 16, 56, 104, 120, 208, 1408]


def v2_stage_layout(model: nn.Module) -> tuple[list[type], list[int], list[int]]:
    """Block kinds, output channels and strides of each block."""
    kinds, outs, strides = [], [], []
    for b in model.blocks:
        kinds.append(type(b))
        last = b.conv_pwl if isinstance(b.conv_pwl, ConvBNAct) else b.conv_exp
        outs.append(last.conv.out_channels)
        first_strided = b.conv_exp if isinstance(b, FusedMBConv) else b.conv_dw
        strides.append(first_strided.conv.stride[0])
    return kinds, outs, strides


def test_v2_s_matches_paper_table4():
    model = built_v2("s")
    assert model.stem.conv.out_channels == 24 and model.stem.conv.stride == (2, 2)
    kinds, outs, strides = v2_stage_layout(model)
    expected = [(FusedMBConv, 24, 2), (FusedMBConv, 48, 4), (FusedMBConv, 64, 4), (MBConv, 128, 6), (MBConv, 160, 9),
                (MBConv, 256, 15)]
    assert kinds == [k for k, _, n in expected for _ in range(n)]
    assert outs == [c for _, c, n in expected for _ in range(n)]
    assert [i for i, s in enumerate(strides) if s == 2] == [2, 6, 10, 25]
    assert model.head.conv.out_channels == 1280
    assert all(isinstance(m, nn.SiLU) for m in model.modules() if isinstance(m, (nn.ReLU, nn.SiLU, nn.Hardswish)))
    assert all(m.eps == 1e-3 for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def test_v2_stem_is_first_block_input():
    for arch, stem in [("s", 24), ("m", 24), ("l", 32), ("base", 32)]:
        model = built_v2(arch)
        assert model.stem.conv.out_channels == stem
        assert model.blocks[0].conv_exp.conv.in_channels == stem


def test_v2_fused_block_hand_counts():
    model = built_v2("s")
    # Fused-MBConv1, 24 -> 24, 3x3: one dense conv + BN, residual
    b0 = model.blocks[0]
    assert count_params(b0) == 24 * 24 * 9 + 2 * 24 and b0.has_skip
    # Fused-MBConv4, 24 -> 48, 3x3 s2: 3x3 conv 24 -> 96 + BN, 1x1 96 -> 48 + BN, no residual
    b2 = model.blocks[2]
    assert count_params(b2) == 24 * 96 * 9 + 2 * 96 + 96 * 48 + 2 * 48 and not b2.has_skip
    assert conv_linear_macs(b2, (24, 32, 32)) == (24 * 96 * 9 + 96 * 48) * 16 * 16


def test_v2_mbconv_se_hand_counts():
    b = built_v2("s").blocks[10]  # first MBConv4: 64 -> 128, s2, SE 0.25 of the *input* 64
    assert isinstance(b, MBConv)
    assert b.se.conv_reduce.out_channels == 16  # int(64 * 0.25), not int(256 * 0.25)
    pw = 64 * 256 + 2 * 256
    dw = 256 * 9 + 2 * 256
    se = (256 * 16 + 16) + (16 * 256 + 256)
    pwl = 256 * 128 + 2 * 128
    assert count_params(b) == pw + dw + se + pwl
    # expand at 32x32, depthwise (stride 2) and project at 16x16, SE on the pooled 1x1
    macs = 64 * 256 * 32 * 32 + 256 * 9 * 16 * 16 + 2 * 256 * 16 + 256 * 128 * 16 * 16
    assert conv_linear_macs(b, (64, 32, 32)) == macs


def test_v2_se_reduce_relative_to_block_input_everywhere():
    for arch in ("s", "base"):
        for b in built_v2(arch).blocks:
            if isinstance(b, MBConv):
                assert b.se.conv_reduce.out_channels == max(1, int(block_in_chs(b) * 0.25))
            else:
                assert isinstance(b.se, nn.Identity)


def test_v2_base_scaling_b3():
    # width 1.2, depth 1.4 (paper_numbers.md Sec. 7): stem 40, stages 16,40,56,112,136,232 x 2,3,3,5,7,12, head 1536
    model = efficientnetv2(arch="base", width_mult=1.2, depth_mult=1.4)
    assert model.stem.conv.out_channels == 40
    _, outs, _ = v2_stage_layout(model)
    expected = [(16, 2), (40, 3), (56, 3), (112, 5), (136, 7), (232, 12)]
    assert outs == [c for c, n in expected for _ in range(n)]
    assert model.head.conv.out_channels == 1536
    # repeats are ceil(r * d): B1 (d = 1.1) has 2,3,3,4,6,9 = 27 blocks
    assert len(efficientnetv2(arch="base", depth_mult=1.1).blocks) == 27
    assert [s.repeats for s in BASE_STAGES] == [1, 2, 2, 3, 5, 8]


def test_v2_switches():
    model = efficientnetv2(arch="base", dropout=0.3, num_classes=10)
    assert model.dropout.p == 0.3
    assert model.classifier.out_features == 10
    base = count_params(built_v2("base"))
    assert base - count_params(model) == 990 * (1280 + 1)
    # drop-path grows linearly with the block index over the whole network
    blocks = built_v2("s").blocks
    for i, b in enumerate(blocks):
        if b.has_skip:
            assert b.drop_path.p == pytest.approx(0.2 * i / len(blocks))
    with pytest.raises(ValueError, match="arch"):
        efficientnetv2(arch="xl")


# -- early stages: Fused-MBConv vs MBConv ----------------------------------------------------
def test_early_stages_same_shape_fused_has_more_params():
    fused, unfused = early_stages(fused=True), early_stages(fused=False)
    n = sum(s.repeats for s in S_STAGES[:3])
    assert [type(b) for b in fused[1]] == [FusedMBConv] * n
    assert [type(b) for b in unfused[1]] == [MBConv] * n
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert fused.eval()(x).shape == unfused.eval()(x).shape == (1, 64, 8, 8)  # stem, stages 2 and 3 stride 2
    p_fused, p_unfused = count_params(fused), count_params(unfused)
    assert p_fused > p_unfused
    # the official early stages are exactly the first blocks of V2-S
    full = built_v2("s")
    assert p_fused == count_params(full.stem) + sum(count_params(b) for b in full.blocks[:n])
    full_rates = [b.drop_path.p for b in full.blocks[:n] if b.has_skip]
    assert [b.drop_path.p for b in fused[1] if b.has_skip] == pytest.approx(full_rates)
    # first block, 24 -> 24 at expansion 1: a dense 3x3 (24*24*9) vs a depthwise 3x3 + 1x1 (24*9 + 24*24)
    assert count_params(fused[1][0]) - count_params(unfused[1][0]) == 24 * 24 * 9 - (24 * 9 + 24 * 24 + 2 * 24)
