"""ESPNet V1 / V2: the ESP and EESP blocks against the papers' weight formulas, the constructor
switches, and every variant against the official implementation's counts."""

from __future__ import annotations

import functools

import pytest
import torch
from shape_counter import meta_counts
from torch import nn

from cnnprof.counting import count
from cnnprof.models.blocks.esp import (
    EESP,
    ESP,
    V1_BN_EPS,
    V2_BN_EPS,
    StridedEESP,
    StridedESP,
    eesp_dilations,
)
from cnnprof.models.espnet import ESPNet, espnet, espnet_c, espnet_widths
from cnnprof.models.espnetv2 import espnetv2, espnetv2_channels
from cnnprof.models.registry import get

V1 = ["espnet", "espnet_c"]
V2 = ["espnetv2_050", "espnetv2_100", "espnetv2_125", "espnetv2_150", "espnetv2_200"]
SCALES = {"espnetv2_050": 0.5, "espnetv2_100": 1.0, "espnetv2_125": 1.25, "espnetv2_150": 1.5, "espnetv2_200": 2.0}


def conv_weights(module: nn.Module) -> int:
    """Weights of convolutions only (no BN, PReLU or linear parameters)."""
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))


@functools.cache
def native_counts(name: str) -> tuple[int, int]:
    """(params, MACs) at the native input, from the shape counter (tests/shape_counter.py)."""
    return meta_counts(get(name))


# -- ESP (V1) ------------------------------------------------------------------------------------
def test_esp_k4_on_240_channels_has_the_papers_144000_conv_weights():
    esp = ESP(240, 240, branches=4)
    assert conv_weights(esp.conv_reduce) == 240 * 60 == 14_400
    assert conv_weights(esp.branches) == 9 * 60 * 60 * 4 == 129_600
    assert conv_weights(esp) == 144_000
    # BN (2 N) and PReLU (N) come on top and are not part of the formula
    assert sum(p.numel() for p in esp.parameters()) == 144_000 + 3 * 240


def test_esp_macs_are_its_conv_weights_times_output_positions():
    c = count(ESP(240, 240, branches=4), (240, 16, 16))
    assert c.macs == 144_000 * 16 * 16


@pytest.mark.parametrize("k", [2, 3, 4, 5, 6])
def test_esp_branch_count_follows_the_formula(k):
    # d = N // K; the dilation-1 branch takes the remainder, so the branches output N in total:
    # conv weights = M d + 9 d N (reduce 1x1, then d -> d_k per branch)
    m, n = 240, 240
    esp = ESP(m, n, branches=k)
    d = n // k
    assert esp.dilations == tuple(2**i for i in range(k))
    assert [b.dilation for b in esp.branches] == [(2**i, 2**i) for i in range(k)]
    assert conv_weights(esp) == m * d + 9 * d * n


def test_esp_official_channel_split_gives_the_remainder_to_the_first_branch():
    assert [b.out_channels for b in ESP(64, 64).branches] == [16, 12, 12, 12, 12]
    assert [b.out_channels for b in ESP(128, 128).branches] == [28, 25, 25, 25, 25]


def test_strided_esp_reduces_with_a_3x3_stride_2_conv():
    esp = StridedESP(19, 64)
    d = 64 // 5
    assert esp.conv_reduce.kernel_size == (3, 3) and esp.conv_reduce.stride == (2, 2)
    assert conv_weights(esp) == 9 * 19 * d + 9 * d * 64
    assert esp(torch.randn(1, 19, 32, 48)).shape == (1, 64, 16, 24)


def _without_norm(module: nn.Module) -> nn.Module:
    module.norm_act = nn.Identity()
    return module.eval()


@pytest.mark.parametrize("hff", [True, False])
def test_esp_hff_sums_the_dilated_branches_cumulatively(hff):
    torch.manual_seed(0)
    esp = _without_norm(ESP(40, 40, branches=4, hff=hff, residual=False))
    x = torch.randn(1, 40, 12, 12)
    with torch.no_grad():
        outs = [b(esp.conv_reduce(x)) for b in esp.branches]
        if hff:  # the dilation-1 branch is concatenated as it is
            outs = [outs[0], outs[1], outs[1] + outs[2], outs[1] + outs[2] + outs[3]]
        torch.testing.assert_close(esp(x), torch.cat(outs, 1))
    assert conv_weights(esp) == conv_weights(ESP(40, 40, branches=4, hff=not hff, residual=False))


def test_esp_residual_adds_the_input():
    torch.manual_seed(0)
    with_res = _without_norm(ESP(64, 64, residual=True))
    without = _without_norm(ESP(64, 64, residual=False))
    without.load_state_dict(with_res.state_dict())
    x = torch.randn(1, 64, 10, 10)
    with torch.no_grad():
        torch.testing.assert_close(with_res(x) - without(x), x)
    with pytest.raises(ValueError, match="residual"):
        ESP(40, 20, residual=True)


# -- EESP (V2) -----------------------------------------------------------------------------------
def test_eesp_on_240_channels_has_the_papers_20160_conv_weights():
    eesp = EESP(240, 240, branches=4, groups=4)
    assert conv_weights(eesp.conv_reduce) == 240 * 60 // 4 == 3_600
    assert conv_weights(eesp.branches) == 9 * 60 * 4 == 2_160
    assert conv_weights(eesp.conv_merge) == 60 * 60 * 4 == 14_400
    assert conv_weights(eesp) == 20_160
    assert conv_weights(ESP(240, 240, branches=4)) / conv_weights(eesp) == pytest.approx(7.143, abs=1e-3)
    # reduce BN + PReLU (3 d), concat BN + PReLU (3 N), merge BN (2 N), output PReLU (N)
    assert sum(p.numel() for p in eesp.parameters()) == 20_160 + 3 * 60 + 6 * 240
    assert count(eesp, (240, 8, 8)).macs == 20_160 * 8 * 8


@pytest.mark.parametrize("g", [1, 2, 4, 12])
def test_eesp_group_count_follows_the_formula(g):
    m = n = 240
    k = 4
    d = n // k
    eesp = EESP(m, n, branches=k, groups=g)
    assert eesp.conv_reduce.conv.groups == g and eesp.conv_merge.conv.groups == g
    assert conv_weights(eesp) == m * d // g + 9 * d * k + n * n // g


@pytest.mark.parametrize("k", [2, 4, 6])
def test_eesp_branch_count_follows_the_formula(k):
    m = n = 240
    d = n // k
    eesp = EESP(m, n, branches=k, groups=2, r_lim=17)
    assert len(eesp.branches) == k and eesp.dilations == tuple(range(1, k + 1))
    assert conv_weights(eesp) == m * d // 2 + 9 * d * k + n * n // 2


@pytest.mark.parametrize(
    "r_lim, dilations",
    [(13, (1, 2, 3, 4)), (11, (1, 2, 3, 4)), (9, (1, 2, 3, 4)), (7, (1, 1, 2, 3)), (5, (1, 1, 1, 2))],
)
def test_eesp_dilations_follow_the_receptive_field_limit(r_lim, dilations):
    assert eesp_dilations(4, r_lim) == dilations
    assert [b.dilation[0] for b in EESP(32, 32, r_lim=r_lim).branches] == list(dilations)


@pytest.mark.parametrize("hff", [True, False])
def test_eesp_hff_sums_all_branches_cumulatively(hff):
    torch.manual_seed(0)
    eesp = _without_norm(EESP(32, 32, hff=hff, residual=False, out_act=False, r_lim=9))
    eesp.conv_merge = nn.Identity()
    x = torch.randn(1, 32, 12, 12)
    with torch.no_grad():
        outs = [b(eesp.conv_reduce(x)) for b in eesp.branches]
        if hff:
            outs = [sum(outs[: i + 1]) for i in range(4)]
        torch.testing.assert_close(eesp(x), torch.cat(outs, 1))


def test_strided_eesp_concatenates_a_pooled_input_and_adds_the_image_shortcut():
    m, n, k, g = 32, 64, 4, 4
    down = StridedEESP(m, n, branches=k, groups=g, r_lim=13)
    d = (n - m) // k
    eesp_weights = m * d // g + 9 * d * k + (n - m) ** 2 // g
    assert conv_weights(down.eesp) == eesp_weights
    assert conv_weights(down.shortcut) == 9 * 3 * 3 + 3 * n
    assert conv_weights(StridedEESP(m, n, image_shortcut=False)) == eesp_weights
    x, image = torch.randn(1, m, 28, 28), torch.randn(1, 3, 112, 112)
    assert down(x, image).shape == (1, n, 14, 14)
    with pytest.raises(ValueError, match="image"):
        down(x)


# -- networks ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "scale, expected",
    [
        (0.5, (16, (32, 64, 128, 256), 1024)),
        (1.0, (32, (64, 128, 256, 512), 1024)),
        (1.25, (32, (80, 160, 320, 640), 1024)),
        (1.5, (32, (96, 192, 384, 768), 1024)),
        (2.0, (32, (128, 256, 512, 1024), 1280)),
    ],
)
def test_espnetv2_channel_rule(scale, expected):
    assert espnetv2_channels(scale) == expected
    model = espnetv2(width_mult=scale)
    assert model.stem.conv.out_channels == expected[0]
    assert tuple(int(d.act.num_parameters) for d in model.downs) == expected[1]
    assert model.classifier.in_features == expected[2]


def test_espnetv2_levels_use_the_official_receptive_field_limits():
    model = espnetv2()
    assert [d.eesp.dilations for d in model.downs] == [(1, 2, 3, 4), (1, 2, 3, 4), (1, 2, 3, 4), (1, 1, 2, 3)]
    assert [len(s) for s in model.stages] == [0, 3, 7, 3]
    assert [s[0].dilations for s in model.stages[1:]] == [(1, 2, 3, 4), (1, 1, 2, 3), (1, 1, 1, 2)]
    assert [d.shortcut is not None for d in model.downs] == [True, True, True, False]


@pytest.mark.parametrize("name", V1 + V2)
def test_convs_are_bias_free_with_per_channel_prelu_and_the_official_bn_eps(name):
    model = get(name).build()
    eps = V1_BN_EPS if name in V1 else V2_BN_EPS
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert convs and all(c.bias is None for c in convs)
    assert all(bn.eps == eps for bn in model.modules() if isinstance(bn, nn.BatchNorm2d))
    assert all(a.num_parameters > 1 for a in model.modules() if isinstance(a, nn.PReLU))


def test_espnet_logits_at_the_input_resolution_and_espnet_c_at_one_eighth():
    x = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        assert espnet().eval()(x).shape == (1, 20, 64, 128)
        assert espnet_c().eval()(x).shape == (1, 20, 8, 16)
        assert espnet(num_classes=19).eval()(x).shape == (1, 19, 64, 128)
    with pytest.raises(ValueError, match="divisible by 8"):
        espnet().eval()(torch.randn(1, 3, 60, 128))


def test_espnet_depth_multipliers_add_esp_modules():
    model = espnet(p=2, q=8)
    assert isinstance(model, ESPNet)
    assert (len(model.encoder.level2), len(model.encoder.level3)) == (2, 8)
    # each extra ESP(128) adds its conv weights: 128 * 25 + 9 * 25 * 128, plus BN + PReLU (3 x 128)
    extra = sum(p.numel() for p in espnet(q=9).parameters()) - sum(p.numel() for p in model.parameters())
    assert extra == 128 * 25 + 9 * 25 * 128 + 3 * 128


# -- width and depth multipliers -------------------------------------------------------------------
def _esp_split(esp: ESP) -> list[int]:
    return [b.out_channels for b in esp.branches]


def test_espnet_at_half_width_and_double_depth_by_hand():
    model = espnet(width_mult=0.5, depth_mult=2.0)
    enc = model.encoder
    assert (len(enc.level2), len(enc.level3)) == (4, 16)  # ceil(2 * 2), ceil(8 * 2)
    # widths 16 / 64 / 128 halved: 8 / 32 / 64, already multiples of 8
    assert enc.level1.conv.out_channels == 8
    assert enc.level2_down.conv_reduce.in_channels == 8 + 3
    # ESP(32): d = 32 // 5 = 6 per dilated branch, the dilation-1 branch takes 32 - 4 * 6 = 8
    assert all(_esp_split(esp) == [8, 6, 6, 6, 6] for esp in [enc.level2_down, *enc.level2])
    assert enc.level3_down.conv_reduce.in_channels == 2 * 32 + 3
    assert all(_esp_split(esp) == [16, 12, 12, 12, 12] for esp in [enc.level3_down, *enc.level3])
    assert enc.classifier.in_channels == 2 * 64
    # the decoder reads the narrower levels; its own widths follow the 20 classes
    assert model.project4.in_channels == 2 * 32 + 3 and model.fuse2.conv.in_channels == 8 + 3 + 20
    assert _esp_split(model.esp4) == [4, 4, 4, 4, 4]
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 64, 128)).shape == (1, 20, 64, 128)


def test_espnet_c_at_wider_width_and_fractional_depth_by_hand():
    model = espnet_c(width_mult=1.3, depth_mult=0.5)
    assert (len(model.level2), len(model.level3)) == (1, 4)  # ceil(2 * 0.5), ceil(8 * 0.5)
    # 16 * 1.3 = 20.8 -> 24; 64 * 1.3 = 83.2 -> 80 (4% down); 128 * 1.3 = 166.4 -> 168
    assert model.level1.conv.out_channels == 24
    assert _esp_split(model.level2[0]) == [16, 16, 16, 16, 16]  # 80 = 5 * 16
    assert _esp_split(model.level3[0]) == [36, 33, 33, 33, 33]  # d = 168 // 5 = 33, 168 - 4 * 33 = 36
    assert model.classifier.in_channels == 2 * 168
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 64, 128)).shape == (1, 20, 8, 16)


def test_espnet_depth_mult_rounds_up_and_width_rule_keeps_every_esp_valid():
    enc = espnet(depth_mult=1.2).encoder
    assert (len(enc.level2), len(enc.level3)) == (3, 10)  # ceil(2.4), ceil(9.6)
    assert espnet_widths(1.0) == (16, 64, 128)
    assert espnet_widths(0.1) == (8, 8, 16)  # at least 8 >= K = 5: every ESP branch keeps a channel
    model = espnet_c(width_mult=0.1)
    assert _esp_split(model.level2_down) == [4, 1, 1, 1, 1]


def test_espnetv2_depth_mult_scales_the_eesp_units_of_each_level():
    assert [len(s) for s in espnetv2(depth_mult=2.0).stages] == [0, 6, 14, 6]
    assert [len(s) for s in espnetv2(depth_mult=0.5).stages] == [0, 2, 4, 2]  # ceil(1.5), ceil(3.5), ceil(1.5)
    assert [len(s) for s in espnetv2(depth_mult=1.1).stages] == [0, 4, 8, 4]  # ceil(3.3), ceil(7.7), ceil(3.3)


def test_espnetv2_at_half_width_and_double_depth_by_hand():
    model = espnetv2(width_mult=0.5, depth_mult=2.0)
    assert model.stem.conv.out_channels == 16
    assert tuple(int(d.act.num_parameters) for d in model.downs) == (32, 64, 128, 256)
    assert [len(s) for s in model.stages] == [0, 6, 14, 6]
    assert [{unit.conv_merge.conv.out_channels for unit in s} for s in model.stages[1:]] == [{64}, {128}, {256}]
    assert model.classifier.in_features == 1024
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


@pytest.mark.parametrize(
    "width, stem, widths, head",
    [
        # int(32 s) rounded up to a multiple of 8 (base), the stem 16 below base 32
        (0.75, 16, (48, 96, 192, 384), 1024),  # base 24: the official rule's 24-wide stem cannot build
        (1.1, 32, (80, 160, 320, 640), 1024),  # int(35.2) = 35 -> 40 (officially 36, which cannot build)
        (1.75, 32, (112, 224, 448, 896), 1280),
        (2.5, 32, (160, 320, 640, 1280), 1280),  # beyond the official s <= 2, the head stays 1280
        (0.2, 16, (32, 64, 128, 256), 1024),  # base at least 16
    ],
)
def test_espnetv2_builds_at_widths_between_the_published_ones(width, stem, widths, head):
    assert espnetv2_channels(width) == (stem, widths, head)
    model = espnetv2(width_mult=width)
    assert model.stem.conv.out_channels == stem
    assert tuple(int(d.act.num_parameters) for d in model.downs) == widths
    assert model.classifier.in_features == head
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 1000)


@pytest.mark.parametrize("build", [espnet, espnet_c, espnetv2])
@pytest.mark.parametrize("bad", [{"width_mult": 0.0}, {"width_mult": -0.5}, {"depth_mult": 0.0}])
def test_multipliers_must_be_positive(build, bad):
    with pytest.raises(ValueError, match="width_mult and depth_mult must be > 0"):
        build(**bad)


def test_catalog_passes_width_mult_to_espnetv2():
    assert dict(get("espnetv2_125").options) == {"width_mult": 1.25}
    with pytest.raises(TypeError):
        espnetv2(scale=1.0)  # the old keyword is gone: one vocabulary across families


@pytest.mark.parametrize("name", V1 + V2)
def test_every_variant_accepts_its_catalog_min_input(name):
    spec = get(name)
    with torch.no_grad():
        out = spec.build().eval()(torch.randn(1, 3, spec.min_input, spec.min_input))
    assert out.shape[:2] == (1, 20 if name in V1 else 1000)


# Parameters the official EESPNet creates but never uses, which its parameter count includes: the
# image-shortcut layers of level 5's DownSampler (3x3 CBR on 3 channels: 81 + 6 + 3; 1x1 conv to
# N5 and BN: 5 N5) and each strided EESP's output PReLU (N_i - N_(i-1) slopes, summing to N5 - stem).
def _official_unused_params(scale: float) -> int:
    stem, widths, _ = espnetv2_channels(scale)
    return 90 + 5 * widths[-1] + widths[-1] - stem


@pytest.mark.parametrize("name", V1 + V2)
def test_params_and_macs_match_the_official_implementation(name):
    spec = get(name)
    params, macs = native_counts(name)
    ref = spec.reference
    assert abs(params - ref.params) <= spec.params_slack
    assert abs(macs - ref.macs) <= spec.macs_tol * ref.macs
    if name == "espnet":
        assert params == 365_109  # the official count, exactly
    if name in SCALES:  # the references are quoted to 100 parameters
        assert abs(params + _official_unused_params(SCALES[name]) - ref.params) <= 50
