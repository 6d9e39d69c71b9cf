"""The FBNet V1-V3 and EfficientNet V1-V2 claim rows: the FBNetV2 masking steps, the memory
contrast, the FBNetV3 counts, the EfficientNet bands, the receptive field and the timed rows'
bounds (the timed ones read a clock: marked ``timing``)."""

from __future__ import annotations

import statistics
import types

import pytest

from cnnprof import claims
from cnnprof.claims import Verdict, common, evaluate, verdict_for
from cnnprof.claims import efficientnet as eff_claims
from cnnprof.claims import efficientnetv2 as effv2_claims
from cnnprof.claims import fbnet as fb_claims
from cnnprof.claims import fbnetv2 as fbv2_claims
from cnnprof.claims import fbnetv3 as fbv3_claims
from cnnprof.timing.protocol import Protocol

TINY = Protocol(warmup_runs=1, warmup_s=0.0, min_runs=6, min_time_s=0.0, max_time_s=5.0)


def claim(claim_id: str) -> claims.Claim:
    return next(c for c in claims.all_claims() if c.id == claim_id)


def run(claim_id: str) -> claims.ClaimResult:
    return evaluate(claim(claim_id))[0]


# -- FBNetV2 -------------------------------------------------------------------------------------------
def test_step_d_equals_step_e_and_step_b_equals_step_c_without_sharing():
    assert fbv2_claims.masking_equivalence(k=4, size=8) < 1e-5
    b_c, b_e = fbv2_claims.unshared_equivalence(k=4, size=8)
    assert b_c < 1e-5 and b_e > 1e-2  # B = C with independent weights; B != E until they are shared
    assert run("fbnetv2-mask-equivalence").verdict is Verdict.IDENTITY
    r = run("fbnetv2-step-b-equals-c")
    assert r.verdict is Verdict.IDENTITY and "B equals E only once the weights are shared" in r.detail


def _costs(naive_growth: float) -> dict:
    ks = [1, 32]
    return {"k": ks, "masked_macs": [10, 10], "naive_macs": [10, 165], "masked_bytes": [1000, 1016],
            "naive_bytes": [1000, round(1000 * naive_growth)]}


def test_the_memory_contrast_is_the_verdict_and_the_flat_masked_layer_an_identity(monkeypatch):
    monkeypatch.setattr(fbv2_claims, "_costs", lambda: _costs(18.0))
    assert run("fbnetv2-mask-memory").verdict is Verdict.IDENTITY
    grows = run("fbnetv2-supernet-memory")
    assert grows.verdict is Verdict.HOLDS and grows.measured == pytest.approx(18.0 / 1.016)
    monkeypatch.setattr(fbv2_claims, "_costs", lambda: _costs(1.5))  # a supernet whose memory stays flat
    assert run("fbnetv2-supernet-memory").verdict is Verdict.DEVIATES


def test_the_real_masking_costs_keep_the_masked_layer_flat():
    costs = fbv2_claims.masking_costs(ks=(1, 4))
    assert costs["masked_bytes"][1] / costs["masked_bytes"][0] == pytest.approx(1.0, rel=0.05)
    assert costs["naive_bytes"][1] / costs["naive_bytes"][0] > 2


@pytest.mark.timing
def test_the_sharing_step_is_judged_against_its_mac_ratio(monkeypatch):
    seen = []
    real = common.interleaved
    monkeypatch.setattr(common, "interleaved", lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
    m = fbv2_claims.measure_sharing_step(k=4, size=8, protocol=TINY)
    t_padded, t_masked = seen[-1]
    options = fbv2_claims.channel_options(4)
    shape = (fbv2_claims.MASK_IN, 8, 8)
    macs = (common.count_module(fbv2_claims._make_padded(fbv2_claims.MASK_IN, options), shape).macs
            / common.count_module(fbv2_claims._make_masked(fbv2_claims.MASK_IN, options), shape).macs)
    assert macs == pytest.approx(2.5, rel=0.01)  # (16 + 32 + 48 + 64) / 64, plus the same BN on both sides
    assert m.measured == pytest.approx(statistics.median(t_padded) / statistics.median(t_masked) / macs, rel=1e-12)
    assert m.ci[0] <= m.measured <= m.ci[1] and "the MAC saving" in m.detail
    c = claim("fbnetv2-sharing-training-step")
    assert c.tolerance.kind == "rel" and c.expected == 1.0  # a band around "time tracks MACs", not "above 1"


# -- FBNet V1 ------------------------------------------------------------------------------------------
@pytest.mark.timing
def test_the_lookup_table_is_timed_against_a_network():
    m = fb_claims.measure_lut_speed(protocol=TINY, n=2000, rounds=3)
    assert m.ci[0] <= m.measured <= m.ci[1] and m.measured > 1
    assert "22 x 9 lookup table" in m.detail and m.device.startswith("cpu (")
    assert claim("fbnet-lut-speed").tolerance.kind == "above"


def test_fbnet_search_cost_is_cited_with_its_reason():
    r = run("fbnet-search-cost")
    assert r.verdict is Verdict.CITED and "GPU hours" in r.detail


# -- FBNetV3 -------------------------------------------------------------------------------------------
def test_fbnetv3_is_a_claim_family():
    assert "fbnetv3" in claims.FAMILIES and "fbnetv3" in claims.MODULES
    assert claims.parse_families("fbnetv3") == ["fbnetv3"]
    ids = [c.id for c in claims.select(claims.all_claims(), ["fbnetv3"])]
    assert ids[:7] == [f"fbnetv3-{v}-macs" for v in "abcdefg"] and len(ids) == 10


def test_fbnetv3_counts_against_the_released_checkpoints():
    a = run("fbnetv3-a-macs")
    assert a.verdict is Verdict.HOLDS and a.measured == common.count_registered("fbnetv3_a").macs
    assert a.expected == fbv3_claims.released_figure("fbnetv3_a").macs == 356_600_000
    assert "-0.30% against the released checkpoint's 356.6M" in a.detail
    rows = fbv3_claims.params_deviations()
    worst = max(abs(counted / released - 1) for _, counted, released in rows)
    p = run("fbnetv3-params")
    assert p.verdict is Verdict.HOLDS and p.measured == pytest.approx(worst) and 0 < worst < 0.01
    assert run("fbnetv3-joint-search").verdict is Verdict.CITED


# -- EfficientNet --------------------------------------------------------------------------------------
def test_the_three_exponents_share_one_band_and_resolution_is_an_identity():
    bands = {claim(f"effnet-{d}-exponent").tolerance for d in ("depth", "width", "resolution")}
    assert len(bands) == 1 and bands.pop().value == 0.1
    assert claim("effnet-resolution-exponent").identity and not claim("effnet-width-exponent").identity
    assert run("effnet-balance").verdict is Verdict.CITED


def _rows(growth: float) -> list:
    return [types.SimpleNamespace(phi=float(p), macs_ratio=growth**p, compound_pow_phi=1.92**p, depth_mult=1.2**p,
                                  width_mult=1.1**p, resolution=224, repeats=(1,), macs=1, closest="b0")
            for p in range(5)]


def test_a_growth_of_192_per_step_fails_2_to_the_phi_from_phi_3(monkeypatch):
    monkeypatch.setattr(eff_claims, "compound_rows", lambda: _rows(1.92))
    verdicts = [run(f"effnet-compound-phi{p}").verdict for p in (2, 3, 4)]
    assert verdicts == [Verdict.HOLDS, Verdict.DEVIATES, Verdict.DEVIATES]  # 3.69, 7.08, 13.6 against 4, 8, 16
    monkeypatch.setattr(eff_claims, "compound_rows", lambda: _rows(2.0))
    assert run("effnet-compound-phi4").verdict is Verdict.HOLDS


# -- EfficientNetV2 ------------------------------------------------------------------------------------
def test_receptive_field_of_the_convolutions_run():
    from torch import nn

    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, stride=2, padding=1),
                        nn.Conv2d(4, 4, 5, padding=2), nn.Conv2d(4, 4, 1))
    # 1 + 2 + 2 + 4 * 2 (after the stride 2) = 13; the 1x1 adds nothing
    assert effv2_claims.receptive_field(net, (3, 16, 16)) == (13, {3: 2, 5: 1}, 4)
    r = run("effnetv2-kernel3-receptive-field")
    assert r.verdict is Verdict.HOLDS and r.measured > 1 and "V2-S keeps only 3x3 kernels" in r.detail


def _fused(t_fused: float, t_mb: float) -> dict:
    return {"batch": 2, "res": 32, "t_fused": [t_fused * (1 + i / 100) for i in range(8)],
            "t_mb": [t_mb * (1 + i / 100) for i in range(8)], "f_macs": 400, "m_macs": 100, "device": "cpu (x)",
            "busy": "", "clock": "thread CPU"}


def test_fused_throughput_is_bounded_by_its_mac_ratio():
    c = claim("effnetv2-fused-mac-throughput")
    slower = effv2_claims.measure_fused_throughput(_fused(2.0, 1.0))  # 4x the MACs in 2x the time: 2x the rate
    assert slower.measured == pytest.approx(2.0) and slower.expected == pytest.approx(4.0)
    assert verdict_for(c, slower.expected, slower) is Verdict.DEVIATES  # above 1, below the MAC ratio
    faster = effv2_claims.measure_fused_throughput(_fused(1.0, 1.5))
    assert verdict_for(c, faster.expected, faster) is Verdict.HOLDS


@pytest.mark.timing
def test_m_latency_is_timed_against_the_parameter_ratio(monkeypatch):
    seen = []
    real = common.interleaved
    monkeypatch.setattr(common, "interleaved", lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
    m = effv2_claims.measure_m_latency(res=32, protocol=TINY)
    t_m, t_s = seen[-1]
    assert m.measured == pytest.approx(statistics.median(t_m) / statistics.median(t_s), rel=1e-12)
    ratio = common.count_registered("efficientnetv2_m", 32).params / common.count_registered("efficientnetv2_s",
                                                                                           32).params
    assert m.expected == pytest.approx(ratio) and 2 < ratio < 3 and m.device.startswith("cpu (")
    assert claim("effnetv2-m-latency").tolerance.kind == "below"


def test_the_l_latency_row_times_v2_l():
    """V2-L's row measures V2-L against V2-S, not V2-M again."""
    l_row = claim("effnetv2-l-latency")
    assert l_row.tolerance.kind == "below" and l_row.measure.keywords == {"name": "efficientnetv2_l"}
    assert claim("effnetv2-m-latency").measure.keywords == {"name": "efficientnetv2_m"}
