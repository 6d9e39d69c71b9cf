"""GhostNet V1 / V2: Ghost module and DFC counts by hand, the paper's speed-up ratio, the tables,
width and depth rules, and every variant's params and MACs against the official code's counts."""

import functools
import math

import pytest
import torch
from shape_counter import meta_counts
from torch import nn

from cnnprof.counting import count
from cnnprof.models.blocks.core import make_divisible, stage_rows
from cnnprof.models.blocks.ghost import DFCAttention, GhostBottleneck, GhostModule
from cnnprof.models.ghostnet import V1_STAGES, Row, ghostnet
from cnnprof.models.ghostnetv2 import V2_STAGES, ghostnetv2
from cnnprof.models.registry import get

V1_NAMES = ["ghostnet_050", "ghostnet_100", "ghostnet_130"]
V2_NAMES = ["ghostnetv2_100", "ghostnetv2_130", "ghostnetv2_160"]
# Operators that may run uncounted: none of them has multiply-adds (paper convention).
FREE_OPS = {"aten::add", "aten::mul", "aten::hardsigmoid", "aten::sigmoid", "aten::avg_pool2d"}


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def conv_weights(m: nn.Module) -> int:
    return sum(c.weight.numel() for c in m.modules() if isinstance(c, nn.Conv2d))


@functools.cache
def native_count(name: str) -> tuple[int, int]:
    """(params, MACs) at the native input, from the shape counter (tests/shape_counter.py)."""
    return meta_counts(get(name))


def bottlenecks(model: nn.Module) -> list[GhostBottleneck]:
    return [b for stage in model.blocks for b in stage]


# -- Ghost module ----------------------------------------------------------------------------
@pytest.mark.parametrize("ratio", [2, 3, 4])
@pytest.mark.parametrize("in_chs, out_chs, kernel, dw", [(16, 48, 1, 3), (24, 100, 3, 3), (40, 96, 1, 5)])
def test_ghost_module_weights_follow_formula(ratio, in_chs, out_chs, kernel, dw):
    gm = GhostModule(in_chs, out_chs, kernel_size=kernel, ratio=ratio, dw_size=dw)
    m = math.ceil(out_chs / ratio)
    assert conv_weights(gm) == in_chs * m * kernel**2 + m * (ratio - 1) * dw**2
    assert n_params(gm) == conv_weights(gm) + 2 * m * ratio  # BN affine on m + m * (s - 1) channels
    assert gm(torch.randn(1, in_chs, 9, 9)).shape == (1, out_chs, 9, 9)  # sliced to out_chs


@pytest.mark.parametrize("ratio", [2, 3, 4])
def test_ghost_module_speedup_matches_paper_ratio(ratio):
    """Paper Eq. 4: an ordinary k x k conv over a ghost module whose cheap op is also k x k costs
    s * c / (s + c - 1) times more; exact when s divides the output channels, and within
    (s - 1) / (s + c - 1) of s."""
    c, out, k, hw = 32, 96, 3, 8  # 96 is divisible by 2, 3 and 4
    ordinary = count(nn.Conv2d(c, out, k, padding=1, bias=False), (c, hw, hw)).macs
    ghost = count(GhostModule(c, out, kernel_size=k, ratio=ratio, dw_size=k), (c, hw, hw)).macs
    measured = ordinary / ghost
    formula = ratio * c / (ratio + c - 1)
    assert measured == pytest.approx(formula, rel=1e-12)
    assert abs(measured - ratio) / ratio <= (ratio - 1) / (ratio + c - 1) + 1e-12
    # With s not dividing out (100 = 3 * 34 - 2), m = ceil(out / s) makes 2 channels too many:
    # the measured ratio stays within 3% of the formula.
    ordinary = count(nn.Conv2d(c, 100, k, padding=1, bias=False), (c, hw, hw)).macs
    ghost = count(GhostModule(c, 100, kernel_size=k, ratio=ratio, dw_size=k), (c, hw, hw)).macs
    assert ordinary / ghost == pytest.approx(formula, rel=0.03)


@pytest.mark.parametrize("ratio", [2, 3, 4])
def test_ghost_module_1x1_macs_about_one_over_s(ratio):
    """GhostNet's own setting: 1x1 primary conv, d x d cheap op. Ratio vs a 1x1 conv is
    s * c / (c + (s - 1) * d^2): about s once c >> d^2 (here c = 256, d = 3: within 10%)."""
    c, out, d, hw = 256, 96, 3, 8
    ordinary = count(nn.Conv2d(c, out, 1, bias=False), (c, hw, hw)).macs
    ghost = count(GhostModule(c, out, ratio=ratio, dw_size=d), (c, hw, hw)).macs
    assert ghost == hw * hw * (out // ratio) * (c + (ratio - 1) * d * d)
    assert ordinary / ghost == pytest.approx(ratio * c / (c + (ratio - 1) * d * d), rel=1e-12)
    assert ordinary / ghost == pytest.approx(ratio, rel=0.10)


def test_ghost_module_rejects_ratio_one():
    with pytest.raises(ValueError, match="ratio"):
        GhostModule(8, 8, ratio=1)


# -- DFC attention and bottleneck -------------------------------------------------------------
def test_dfc_attention_counts_by_hand():
    in_chs, out_chs, k = 16, 48, 5
    dfc = DFCAttention(in_chs, out_chs, kernel_size=k)
    # 1x1 conv + BN, 1xK dw + BN, Kx1 dw + BN
    assert n_params(dfc) == in_chs * out_chs + 2 * out_chs + 2 * (out_chs * k + 2 * out_chs)
    c = count(GhostModule(in_chs, out_chs, dfc=True), (in_chs, 14, 14))
    plain = count(GhostModule(in_chs, out_chs), (in_chs, 14, 14))
    assert c.macs - plain.macs == 7 * 7 * (in_chs * out_chs + 2 * k * out_chs)  # at half resolution
    gate = dfc(torch.randn(1, in_chs, 7, 7), (7, 7))  # odd size: pooled to 3x3, upsampled to 7x7
    assert gate.shape == (1, out_chs, 7, 7) and 0 <= gate.min() and gate.max() <= 1


def test_ghost_bottleneck_params_by_hand():
    in_chs, mid, out, k = 16, 48, 24, 3
    b = GhostBottleneck(in_chs, out, mid_chs=mid, kernel_size=k, stride=2)
    ghost1 = in_chs * 24 + 2 * 24 + 24 * 9 + 2 * 24  # m = 24, 1x1 then 3x3 dw, BN on both
    conv_dw = mid * k * k + 2 * mid
    ghost2 = mid * 12 + 2 * 12 + 12 * 9 + 2 * 12
    shortcut = in_chs * k * k + 2 * in_chs + in_chs * out + 2 * out
    assert n_params(b) == ghost1 + conv_dw + ghost2 + shortcut
    assert b(torch.randn(1, in_chs, 16, 16)).shape == (1, out, 8, 8)
    same = GhostBottleneck(out, out, mid_chs=72, se_chs=20)
    assert isinstance(same.shortcut, nn.Identity) and isinstance(same.conv_dw, nn.Identity)
    assert isinstance(same.se.gate, nn.Hardsigmoid)
    assert n_params(same.se) == 72 * 20 + 20 + 20 * 72 + 72


# -- tables and width ------------------------------------------------------------------------
def test_v2_table_is_v1_plus_dfc_after_the_first_two_blocks():
    v1 = [r for s in V1_STAGES for r in s]
    v2 = [r for s in V2_STAGES for r in s]
    assert [len(s) for s in V1_STAGES] == [len(s) for s in V2_STAGES] == [1, 1, 1, 1, 1, 1, 5, 1, 4]
    assert [(r.kernel, r.exp, r.out, r.se, r.stride) for r in v1] == [
        (r.kernel, r.exp, r.out, r.se, r.stride) for r in v2
    ]
    assert not any(r.dfc for r in v1)
    assert [r.dfc for r in v2] == [False, False] + [True] * 14


@pytest.mark.parametrize(
    "width, stem, exps, outs, final",
    [
        (0.5, 8, [8, 24, 36, 36, 60, 120, 100, 92, 92, 240, 336, 336] + [480] * 4,
         [8, 12, 12, 20, 20, 40, 40, 40, 40, 56, 56] + [80] * 5, 480),
        (1.3, 20, [20, 64, 92, 92, 156, 312, 260, 240, 240, 624, 872, 872] + [1248] * 4,
         [20, 32, 32, 52, 52, 104, 104, 104, 104, 144, 144] + [208] * 5, 1248),
    ],
)
def test_width_rounds_to_multiples_of_four(width, stem, exps, outs, final):
    model = ghostnet(width_mult=width)
    blocks = bottlenecks(model)
    assert model.stem.conv.out_channels == stem
    assert [b.ghost1.out_chs for b in blocks] == exps
    assert [b.ghost2.out_chs for b in blocks] == outs
    assert model.conv_final.conv.out_channels == final
    assert model.conv_head.in_channels == final and model.conv_head.out_channels == 1280  # not scaled
    assert model.conv_head.bias is not None


def test_se_reduces_expanded_channels_to_multiple_of_four():
    blocks = bottlenecks(ghostnet())
    se = [(b.ghost1.out_chs, b.se.conv_reduce.out_channels) for b in blocks if not isinstance(b.se, nn.Identity)]
    assert se == [(72, 20), (120, 32), (480, 120), (672, 168), (672, 168), (960, 240), (960, 240)]


# -- depth multiplier ------------------------------------------------------------------------
def test_stage_rows_repeat_and_drop_evenly():
    stage = V1_STAGES[6]  # 200, 184, 184, 480, 672
    assert stage_rows(stage, 1.0) == stage
    assert [r.exp for r in stage_rows(stage, 2.0)] == [200, 200, 184, 184, 184, 184, 480, 480, 672, 672]
    assert [r.exp for r in stage_rows(stage, 0.5)] == [200, 184, 672]  # ceil(2.5): first, middle, last
    down = V1_STAGES[7][0]  # a stride-2 stage of one row
    assert [(r.exp, r.stride) for r in stage_rows((down,), 1.5)] == [(672, 2), (672, 1)]
    two = (Row(3, 48, 24, False, 2), Row(3, 72, 32, False, 1))
    assert stage_rows(two, 0.4) == (Row(3, 72, 32, False, 2),)  # the last row, with the stage's stride
    with pytest.raises(ValueError, match="first row"):
        stage_rows((Row(3, 72, 24, False, 1), Row(3, 72, 24, False, 2)), 1.0)


@pytest.mark.parametrize("depth", [0.5, 1.0, 1.5])
def test_depth_mult_repeats_each_stage_ceil_n_times(depth):
    model = ghostnet(depth_mult=depth)
    assert [len(stage) for stage in model.blocks] == [math.ceil(len(s) * depth) for s in V1_STAGES]
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


@pytest.mark.parametrize("build, table", [(ghostnet, V1_STAGES), (ghostnetv2, V2_STAGES)])
def test_depth_mult_one_builds_the_table_as_is(build, table):
    assert all(stage_rows(stage, 1.0) == stage for stage in table)
    blocks = bottlenecks(build(depth_mult=1.0))
    rows = [r for s in table for r in s]
    assert [b.ghost1.out_chs for b in blocks] == [r.exp for r in rows]
    assert [not isinstance(b.conv_dw, nn.Identity) for b in blocks] == [r.stride == 2 for r in rows]
    assert [b.ghost1.dfc is not None for b in blocks] == [r.dfc for r in rows]
    # (exact counts at depth 1.0 against the official code: test_variant_matches_official_counts)


# -- network-level switches ------------------------------------------------------------------
def _widths(width: float) -> list[tuple[int, int, int]]:
    """(in, mid, out) of every bottleneck, worked out from the table."""
    in_chs = make_divisible(16 * width, 4)
    rows = []
    for r in (r for s in V1_STAGES for r in s):
        mid, out = make_divisible(r.exp * width, 4), make_divisible(r.out * width, 4)
        rows.append((in_chs, mid, out))
        in_chs = out
    return rows


@pytest.mark.parametrize("width", [1.0, 1.6])
def test_v2_adds_dfc_params_on_fourteen_blocks(width):
    # Each DFC branch: 1x1 in -> mid (+BN), 1x5 and 5x1 depthwise (+BN): mid * (in + 16).
    dfc = sum(mid * (in_chs + 16) for in_chs, mid, _ in _widths(width)[2:])
    assert n_params(ghostnetv2(width_mult=width)) - n_params(ghostnet(width_mult=width)) == dfc


def test_dw_size_switch_changes_cheap_op_weights():
    # Every Ghost module's cheap op has ceil(c / 2) channels at s = 2: 3x3 -> 5x5 adds 16 each.
    cheap = sum(math.ceil(mid / 2) + math.ceil(out / 2) for _, mid, out in _widths(1.0))
    assert n_params(ghostnet(dw_size=5)) - n_params(ghostnet()) == 16 * cheap


def test_ratio_switch_shrinks_primary_convs():
    # At s = 3 each Ghost module has m = ceil(c / 3) primary maps and 2m cheap maps.
    def ghost_weights(in_chs: int, out_chs: int, s: int) -> int:
        m = math.ceil(out_chs / s)
        return in_chs * m + m * (s - 1) * 9 + 2 * m * s

    delta = sum(
        ghost_weights(i, mid, 3) + ghost_weights(mid, o, 3) - ghost_weights(i, mid, 2) - ghost_weights(mid, o, 2)
        for i, mid, o in _widths(1.0)
    )
    assert n_params(ghostnet(ratio=3)) - n_params(ghostnet()) == delta < 0


# -- every variant ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", V1_NAMES + V2_NAMES)
def test_variant_forwards_at_its_min_input(name):
    spec = get(name)
    model = spec.build(num_classes=10).eval()
    with torch.inference_mode():
        side = spec.min_input  # the smallest input the catalog promises
        assert model(torch.randn(1, 3, side, side)).shape == (1, 10)


def test_v2_rejects_inputs_below_min_input():
    # DFC's 2x2 pool needs a map of at least 2x2 at stride 32, i.e. an input of at least 33.
    assert get("ghostnetv2_100").min_input == 33
    with pytest.raises(RuntimeError):
        ghostnetv2().eval()(torch.randn(1, 3, 32, 32))


@pytest.mark.parametrize("name", V1_NAMES + V2_NAMES)
def test_variant_matches_official_counts(name):
    spec = get(name)
    params, macs = native_count(name)
    assert abs(params - spec.reference.params) <= spec.params_slack
    assert macs == pytest.approx(spec.reference.macs, rel=spec.macs_tol)


def test_v2_minus_v1_macs_are_the_dfc_branches():
    # ghost1 runs at the block input resolution; DFC at half of it (floor).
    sides = [112, 112, 56, 56, 28, 28, 14, 14, 14, 14, 14, 14, 7, 7, 7, 7]
    dfc = sum((s // 2) ** 2 * mid * (i + 10) for s, (i, mid, _) in list(zip(sides, _widths(1.0)))[2:])
    assert native_count("ghostnetv2_100")[1] - native_count("ghostnet_100")[1] == dfc


# -- the shared multiplier vocabulary ----------------------------------------------------------
def test_v2_at_half_width_and_double_depth_by_hand():
    model = ghostnetv2(width_mult=0.5, depth_mult=2.0)
    # every stage of n rows becomes 2n blocks, each row twice in a row
    assert [len(stage) for stage in model.blocks] == [2, 2, 2, 2, 2, 2, 10, 2, 8]
    blocks = bottlenecks(model)
    # the table's exp / out halved, rounded to multiples of 4 (see test_width_rounds_to_multiples_of_four)
    exps = [8, 24, 36, 36, 60, 120, 100, 92, 92, 240, 336, 336, 480, 480, 480, 480]
    outs = [8, 12, 12, 20, 20, 40, 40, 40, 40, 56, 56, 80, 80, 80, 80, 80]
    assert [b.ghost1.out_chs for b in blocks] == [e for e in exps for _ in range(2)]
    assert [b.ghost2.out_chs for b in blocks] == [o for o in outs for _ in range(2)]
    # only the first block of a stage keeps its stride (a depthwise conv); copies carry the DFC flag
    assert [not isinstance(b.conv_dw, nn.Identity) for b in blocks] == (
        [False, False, True, False, False, False, True, False, False, False, True, False]
        + [False] * 10 + [True, False] + [False] * 8
    )
    assert [b.ghost1.dfc is not None for b in blocks] == [False] * 4 + [True] * 28
    assert model.stem.conv.out_channels == 8 and model.conv_final.conv.out_channels == 480
    with torch.inference_mode():
        assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


@pytest.mark.parametrize("build", [ghostnet, ghostnetv2])
@pytest.mark.parametrize("bad", [{"width_mult": 0.0}, {"width_mult": -1.0}, {"depth_mult": 0.0}])
def test_multipliers_must_be_positive(build, bad):
    with pytest.raises(ValueError, match="width_mult and depth_mult must be > 0"):
        build(**bad)


def test_catalog_passes_width_mult():
    assert dict(get("ghostnet_130").options) == {"width_mult": 1.3}
    assert dict(get("ghostnetv2_160").options) == {"width_mult": 1.6}
    with pytest.raises(TypeError):
        ghostnet(width=1.0)  # the old keyword is gone: one vocabulary across families
