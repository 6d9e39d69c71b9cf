"""Shared blocks and rounding rules, each on its own, with counts worked out by hand."""

import pytest
import torch
from torch import nn

from cnnprof.models.blocks import ConvBNAct, FusedMBConv, MBConv, SqueezeExcite, make_divisible, round_repeats


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("value, expected", [(32, 32), (35.2, 32), (36, 40), (16 * 1.1, 16), (1280 * 1.1, 1408),
                                             (3.9, 8), (1280 * 1.4, 1792), (40 * 1.2, 48)])
def test_make_divisible_rounds_to_nearest_multiple(value, expected):
    assert make_divisible(value, 8) == expected


def test_make_divisible_never_rounds_down_more_than_ten_percent():
    for tenths in range(10, 4000):
        v = tenths / 10
        r = make_divisible(v, 8)
        assert r % 8 == 0 and r >= 0.9 * v, v
    # 13 -> nearest multiple of 8 is 8 (38% down): the 10% rule adds one divisor back
    assert make_divisible(13, 8) == 16
    # without the rule (EfficientNetV2) rounding may go further down
    assert make_divisible(13, 8, round_limit=0.0) == 16  # 13 + 4 = 17 -> 16 anyway
    assert make_divisible(11, 8, round_limit=0.0) == 8
    assert make_divisible(11, 8) == 16
    assert make_divisible(2, 4) == 4  # min_value defaults to the divisor


def test_round_repeats_ceils():
    assert [round_repeats(n, 1.1) for n in (1, 2, 3, 4)] == [2, 3, 4, 5]
    assert round_repeats(3, 1.0) == 3
    assert round_repeats(4, 3.1) == 13


def test_conv_bn_act_params_and_same_padding():
    block = ConvBNAct(16, 32, 3, stride=2)
    assert n_params(block) == 16 * 32 * 9 + 2 * 32  # conv weights + BN affine
    assert block(torch.randn(1, 16, 15, 15)).shape == (1, 32, 8, 8)
    dil = ConvBNAct(8, 8, 3, dilation=4, groups=8, act=None)
    assert dil(torch.randn(1, 8, 20, 20)).shape == (1, 8, 20, 20)


def test_squeeze_excite_params_and_gate():
    se = SqueezeExcite(96, 4)  # EfficientNet: 0.25 x block input (16), not x expanded (96)
    assert n_params(se) == 96 * 4 + 4 + 4 * 96 + 96
    x = torch.randn(2, 96, 5, 5)
    out = se(x)
    gate = out / x
    assert torch.all(gate > 0) and torch.all(gate < 1)
    # one gate value per channel: constant over space
    assert torch.allclose(gate, gate[:, :, :1, :1].expand_as(gate), atol=1e-5)


def test_mbconv_counts_and_skip():
    # 16 -> 24, expansion 6, kernel 3, SE 4: EfficientNet's second stage, first block
    block = MBConv(16, 24, mid_chs=96, kernel_size=3, stride=2, se_chs=4, act=nn.SiLU)
    expected = (16 * 96 + 2 * 96) + (96 * 9 + 2 * 96) + (96 * 4 + 4 + 4 * 96 + 96) + (96 * 24 + 2 * 24)
    assert n_params(block) == expected
    assert not block.has_skip
    assert block(torch.randn(1, 16, 32, 32)).shape == (1, 24, 16, 16)
    same = MBConv(24, 24, mid_chs=24, kernel_size=3)
    assert same.has_skip and isinstance(same.conv_pw, nn.Identity)  # expansion 1: no 1x1 expand
    x = torch.randn(1, 24, 8, 8)
    same.eval()
    with torch.no_grad():
        assert torch.allclose(same(x), same.conv_pwl(same.conv_dw(x)) + x)


def test_mbconv_grouped_pointwise_with_shuffle():
    block = MBConv(16, 16, mid_chs=16, kernel_size=3, pw_groups=2, shuffle=True, force_expand=True)
    # grouped 1x1 convs have half the weights of dense ones
    assert block.conv_pw.conv.weight.numel() == 16 * 16 // 2
    assert block(torch.randn(1, 16, 8, 8)).shape == (1, 16, 8, 8)


def test_fused_mbconv_expansion_one_is_a_single_conv():
    fused1 = FusedMBConv(24, 24, mid_chs=24, kernel_size=3)
    assert n_params(fused1) == 24 * 24 * 9 + 2 * 24
    assert fused1.has_skip
    fused4 = FusedMBConv(24, 48, mid_chs=96, kernel_size=3, stride=2)
    assert n_params(fused4) == (24 * 96 * 9 + 2 * 96) + (96 * 48 + 2 * 48)
    assert fused4(torch.randn(1, 24, 16, 16)).shape == (1, 48, 8, 8)
