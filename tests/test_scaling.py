"""Compound scaling: the arithmetic, what is built at each φ, the families' multipliers, the command."""

from __future__ import annotations

import json

import pytest

from cnnprof import scaling
from cnnprof.counting import count
from cnnprof.errors import UsageError
from cnnprof.models import registry


def test_multipliers_and_the_compound_factor():
    assert scaling.multipliers(0.0) == (1.0, 1.0, 1.0)
    d, w, r = scaling.multipliers(2.0)
    assert (d, w, r) == pytest.approx((1.44, 1.21, 1.3225))
    assert scaling.compound_factor(1.2, 1.1, 1.15) == pytest.approx(1.92027)
    assert scaling.Coefficients(2.0, 1.0, 1.0).factor == 2.0
    assert scaling.multipliers(0.5, scaling.Coefficients(4.0, 1.0, 1.0))[0] == pytest.approx(2.0)


def test_resolution_rounding_and_phi_lists():
    assert scaling.scaled_resolution(224, 1.15) == 258  # 257.6 to the nearest pixel
    assert scaling.scaled_resolution(260, 1.0) == 260
    assert scaling.phis_up_to(3) == [0.0, 1.0, 2.0, 3.0]
    assert scaling.phis_up_to(2.5) == [0.0, 1.0, 2.0, 2.5]
    assert scaling.phis_up_to(0) == [0.0]


def test_bad_input_is_a_usage_error():
    with pytest.raises(UsageError, match="--phi"):
        scaling.phis_up_to(-1)
    with pytest.raises(UsageError, match="--beta must be at least 1"):
        scaling.Coefficients(beta=0.9).check()
    with pytest.raises(UsageError, match="non-square input 512x1024"):
        scaling.scaling_base("espnet")
    with pytest.raises(UsageError, match="unknown model"):
        scaling.scaling_base("resnet50")
    with pytest.raises(UsageError, match="below ghostnetv2_100's minimum 33"):
        scaling.scale_rows("ghostnetv2_100", [0.0, 1.0], resolution=16)


def test_bases_know_their_options():
    assert scaling.scaling_base("efficientnet_b1").depth == 1.1
    ghost = scaling.scaling_base("ghostnet_130")
    assert (ghost.width, ghost.depth) == (1.3, 1.0)
    assert scaling.scaling_base("fbnet").name == "fbnet_b"
    assert scaling.scaling_base("espnetv2_150").width == 1.5


def test_every_family_scales_through_its_multipliers():
    """ESPNetv2 had no depth multiplier before every builder took width_mult / depth_mult: at
    phi = 1 its EESP units per level are ceil(n * 1.2) = 4, 9, 4 (from 3, 7, 3)."""
    zero, one = scaling.scale_rows("espnetv2_100", [0.0, 1.0], resolution=64)
    assert zero.repeats != one.repeats and one.params > zero.params and one.macs_ratio > 1.0
    built = scaling.scaled_target(scaling.scaling_base("espnetv2_100"), 1.2, 1.0).build(calibrate=False)
    assert [len(stage) for stage in built.stages] == [0, 4, 9, 4]


def test_phi_zero_is_the_base_exactly_and_ratios_follow():
    rows = scaling.scale_rows("efficientnet_b0", [0.0, 0.5, 1.0], resolution=64)
    base = count(registry.get("efficientnet_b0").build(), (3, 64, 64))
    zero, half, one = rows
    assert (zero.params, zero.macs, zero.resolution, zero.macs_ratio) == (base.params, base.macs, 64, 1.0)
    assert zero.channels == (32, 16, 24, 40, 80, 112, 192, 320) and zero.repeats == (1, 2, 2, 3, 3, 4, 1)
    assert half.depth_mult == pytest.approx(1.2**0.5) and half.resolution == round(64 * 1.15**0.5)
    assert one.macs_ratio == pytest.approx(one.macs / zero.macs)
    assert one.two_pow_phi == 2.0 and one.compound_pow_phi == pytest.approx(1.92027)
    assert one.channels == (32, 16, 24, 48, 88, 120, 208, 352)  # B2's widths: w = 1.1
    assert one.repeats == (2, 3, 3, 4, 4, 5, 2)  # ceil(n * 1.2)
    assert zero.closest == "efficientnet_b0" and zero.closest_macs == 385_800_000


@pytest.mark.parametrize("name", ["ghostnet_100", "mobilenetv3_large", "fbnet_b"])
def test_other_families_scale(name):
    zero, one = scaling.scale_rows(name, [0.0, 1.0], resolution=64)
    assert zero.params == count(registry.get(name).build(), (3, 64, 64)).params
    assert one.params > zero.params and one.macs > zero.macs
    assert sum(one.repeats) > sum(zero.repeats)


def test_mobilenetv3_and_fbnet_multipliers_keep_the_defaults_identical():
    from cnnprof.models.fbnet import fbnet
    from cnnprof.models.mobilenetv3 import LARGE, mobilenetv3, stages_of

    assert [len(s) for s in stages_of(LARGE)] == [1, 2, 3, 4, 2, 3]
    assert mobilenetv3(depth_mult=1.0).state_dict().keys() == mobilenetv3().state_dict().keys()
    assert len(mobilenetv3(depth_mult=2.0).blocks) == 30
    assert len(fbnet(arch="b", width_mult=1.0, depth_mult=1.0).blocks) == 22
    assert len(fbnet(arch="b", depth_mult=2.0).blocks) == 44
    wide = fbnet(arch="b", width_mult=1.5)
    assert wide.stem.conv.out_channels == 24 and wide.head.conv.conv.out_channels == 2976


def test_cli_prints_rows_and_rejects_bad_input(cli):
    result = cli("scale", "--phi", "1.5", "--base", "mobilenetv3_small", "--resolution", "64", "--format", "json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["phi"] for r in rows] == [0.0, 1.0, 1.5]
    assert list(rows[0]) == scaling.ScaleRow.field_names()
    assert rows[0]["macs_ratio"] == 1.0 and rows[2]["resolution"] == round(64 * 1.15**1.5)
    for args, needle in ((["--phi", "-1"], "--phi must be"), (["--phi", "1", "--alpha", "0.9"], "--alpha"),
                         (["--phi", "1", "--base", "espnet"], "non-square input"),
                         (["--phi", "1", "--base", "nosuch"], "unknown model"),
                         (["--phi", "1", "--base", "ghostnetv2_100", "-r", "20"], "minimum")):
        bad = cli("scale", *args)
        assert bad.exit_code == 2, args
        assert needle in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
