"""cnnprof claims: each claim's measurement on its own (small sizes, hand-checkable values), the
verdict logic, and the command line (counting-only families; timing claims monkeypatched)."""

from __future__ import annotations

import json
import math
import sys
import types

import pytest
import torch

from cnnprof import claims
from cnnprof.claims import ABOVE, BELOW, Claim, Measurement, NotAvailable, Tolerance, absolute, evaluate, rel
from cnnprof.claims import efficientnet as eff_claims
from cnnprof.claims import espnet as esp_claims
from cnnprof.claims import fbnet as fb_claims
from cnnprof.claims import ghostnet as ghost_claims
from cnnprof.claims.common import conv_weights, exponent, interleaved
from cnnprof.timing.protocol import Protocol


# -- ESPNet --------------------------------------------------------------------------------------------
def test_eesp_vs_esp_conv_weights_are_the_seeds_example():
    esp, eesp = esp_claims._esp_and_eesp()
    # ESP: 1x1 reduce 240*60 + 4 branches of 3x3 60->60 = 14,400 + 129,600
    assert conv_weights(esp) == 240 * 60 + 4 * 9 * 60 * 60 == 144_000
    # EESP: group 1x1 reduce 240*60/4 + 4 depthwise 3x3 (9*60) + group 1x1 merge 240*240/4
    assert conv_weights(eesp) == 3_600 + 4 * 9 * 60 + 14_400 == 20_160
    assert esp_claims.eesp_ratio_formula(240, 4, 4) == pytest.approx(144_000 / 20_160)
    m = esp_claims.measure_eesp_params()
    assert m.measured == pytest.approx(7.142857, rel=1e-6) and m.formula == pytest.approx(m.measured)


def test_esp_against_standard_conv_matches_the_paper_formula():
    assert esp_claims.esp_formula(128, 128, 4) == (128 * 128 + (128 * 3) ** 2) // 4 == 40_960
    assert esp_claims.effective_kernel(4) == 17 and esp_claims.effective_kernel(5) == 33
    m = esp_claims.measure_esp_vs_conv_params()
    assert m.measured == pytest.approx(147_456 / 40_960) == pytest.approx(3.6)
    assert m.formula == pytest.approx(m.measured)


def test_hole_share_of_a_dilated_grid():
    r = torch.zeros(9, 9)
    r[0::4, 0::4] = 1.0  # a 3x3 kernel at dilation 4: 9 points in a 9x9 box
    assert esp_claims.hole_share(r) == pytest.approx(1 - 9 / 81)
    assert esp_claims.hole_share(torch.ones(3, 3)) == 0.0


def test_esp_gridding_without_hff_is_each_branchs_grid_and_hff_lowers_it():
    without, _, dilations = esp_claims.esp_gridding(False)
    assert dilations == (1, 2, 4, 8, 16)
    assert without == pytest.approx([1 - 9 / (2 * d + 1) ** 2 for d in dilations])
    with_hff, _, _ = esp_claims.esp_gridding(True)
    assert with_hff[1] == pytest.approx(without[1])  # the first dilated branch has nothing to add
    assert with_hff[2] == pytest.approx(1 - 17 / 81)  # {-2,0,2}² ∪ {-4,0,4}²
    assert all(w < o for w, o in zip(with_hff[2:], without[2:]))


# -- FBNet ---------------------------------------------------------------------------------------------
def test_fbnet_search_space_is_nine_to_the_22():
    m = fb_claims.measure_space_size()
    assert m.measured == float(9**22) and "984,770,902,183,611,232,881" in m.detail


def test_channel_masking_equals_the_padded_weighted_sum():
    assert fb_claims.channel_options(4) == (16, 32, 48, 64)
    assert fb_claims.masking_equivalence(k=4, size=8) < 1e-5


def test_masking_cost_is_flat_and_the_supernets_grows():
    costs = fb_claims.masking_costs(ks=(1, 4))
    assert costs["masked_macs"][1] == costs["masked_macs"][0]
    # k = 4 branches of 16, 32, 48, 64 filters: (16 + 32 + 48 + 64) / 64 = 2.5 times the single block
    assert costs["naive_macs"][1] / costs["naive_macs"][0] == pytest.approx(2.5)
    assert costs["masked_bytes"][1] / costs["masked_bytes"][0] == pytest.approx(1.0, rel=0.05)
    assert costs["naive_bytes"][1] > 2 * costs["naive_bytes"][0]


def _fake_module(monkeypatch, name: str, **attrs) -> None:
    module = types.ModuleType(name)
    for k, v in attrs.items():
        setattr(module, k, v)
    monkeypatch.setitem(sys.modules, name, module)


def test_additivity_claim_uses_the_lookup_table_when_there(monkeypatch):
    rows = [types.SimpleNamespace(model=m, predicted_ms=p, measured_ms=10.0, ratio=p / 10.0, source="t")
            for m, p in (("fbnet_a", 9.0), ("fbnet_b", 12.0))]
    _fake_module(monkeypatch, "cnnprof.lut", additivity=lambda **kw: rows)
    m = fb_claims.measure_additivity()
    assert m.measured == 1.2 and "fbnet_a 9.0 vs 10.0 ms" in m.detail


def test_additivity_claim_is_cited_while_the_table_is_missing(monkeypatch):
    _fake_module(monkeypatch, "cnnprof.lut")  # no `additivity` yet
    claim = next(c for c in fb_claims.CLAIMS if c.id == "fbnet-lat-additivity")
    result, _ = evaluate(claim)
    assert result.verdict == "cited" and "not available yet" in result.detail and result.measured is None


# -- EfficientNet --------------------------------------------------------------------------------------
def test_mac_exponents_of_depth_and_resolution():
    base = eff_claims.b0_macs(resolution=64)
    assert exponent([1, 2], [base, eff_claims.b0_macs(resolution=128)]) == pytest.approx(2.0, abs=0.1)
    assert exponent([1, 2], [base, eff_claims.b0_macs(depth=2.0, resolution=64)]) == pytest.approx(1.0, abs=0.15)


def test_exponent_and_nas_reward_arithmetic():
    assert exponent([1, 2, 4], [3, 12, 48]) == pytest.approx(2.0)
    assert eff_claims.nas_reward(0.8, 1.0, 1.0) == 0.8
    assert eff_claims.nas_reward(0.8, 2.0, 4.0) == pytest.approx(0.8 * 2**-0.07 * 4**-0.05)
    assert claims.efficientnet.REWARD_V == -0.05  # the seed's "−005"


def test_depthwise_share_claim_reads_the_profilers_shares(monkeypatch):
    share = types.SimpleNamespace(early_dw_conv_latency_share=0.3, early_dw_conv_macs_share=0.15, max_stride=8,
                                  early_dw_unit_latency_share=0.4, model_dw_conv_latency_share=0.2,
                                  model_dw_conv_macs_share=0.09, coverage=0.8)
    monkeypatch.setattr("cnnprof.claims.depthwise.depthwise_latency_share", lambda *a, **k: share)
    m = eff_claims.measure_depthwise_share()
    assert m.measured == pytest.approx(2.0) and m.expected == 1.0


# -- GhostNet ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("s", [2, 3, 4])
def test_ghost_module_saving_is_the_papers_ratio(s):
    conv, ghost = ghost_claims.ghost_vs_conv(s)
    assert conv / ghost == pytest.approx(s * 96 / (s + 96 - 1))


def test_attention_exponents():
    assert ghost_claims.measure_fc_exponent().measured == pytest.approx(2.0, abs=1e-9)
    assert ghost_claims.measure_dfc_exponent().measured == pytest.approx(1.0, abs=1e-9)


# -- verdicts and the registry --------------------------------------------------------------------------
def test_tolerances():
    assert rel(0.1).accepts(7.0, 7.6) and not rel(0.1).accepts(7.0, 7.8)
    assert absolute(0.05).accepts(0.0, 0.04) and not absolute(0.05).accepts(0.0, 0.06)
    assert ABOVE.accepts(1.0, 1.01) and not ABOVE.accepts(1.0, 1.0)
    assert BELOW.accepts(1.0, 0.9) and not BELOW.accepts(1.0, 1.1)
    assert not rel(0.1).accepts(1.0, math.nan)
    assert rel(0.02).describe() == "±2%" and ABOVE.describe() == "> expected"
    with pytest.raises(ValueError):
        Tolerance("roughly", 1.0)


def _planted(measured: float, id: str = "planted") -> Claim:
    return Claim(id=id, family="espnet", source="test", statement="planted", expected=1.0, unit="x",
                 tolerance=rel(0.1), measure=lambda: Measurement(measured=measured, detail="planted"))


def test_evaluate_holds_deviates_and_cites():
    assert evaluate(_planted(1.05))[0].verdict == "holds"
    assert evaluate(_planted(1.5))[0].verdict == "deviates"

    def missing() -> Measurement:
        raise NotAvailable("not there")

    c = Claim(id="m", family="fbnet", source="s", statement="s", expected=1.0, unit="x", tolerance=rel(0.1),
              measure=missing)
    r, _ = evaluate(c)
    assert r.verdict == "cited" and r.detail == "not measured: not there"
    with pytest.raises(ValueError):
        Claim(id="x", family="fbnet", source="s", statement="s", expected=1.0, unit="x")  # cited without reason
    with pytest.raises(ValueError):
        Claim(id="x", family="nosuch", source="s", statement="s", expected=1.0, unit="x", cited="r")


def test_registry_covers_the_seed():
    all_ = claims.all_claims()
    ids = [c.id for c in all_]
    assert len(ids) == len(set(ids))
    assert {c.family for c in all_} == set(claims.FAMILIES)
    for needed in ("eesp-vs-esp-params", "esp-vs-conv-same-rf", "esp-hff-gridding", "fbnet-search-space",
                   "fbnet-b-macs", "fbnet-lat-additivity", "fbnetv2-mask-equivalence", "fbnetv2-mask-macs",
                   "fbnetv2-naive-cost", "effnet-compound-constraint", "effnet-width-exponent",
                   "effnet-compound-phi4", "effnet-b0-macs", "effnetv2-fused-training", "effnetv2-nas-reward",
                   "effnetv2-depthwise-share", "ghost-module-cost-s3", "ghostnet-130-vs-mbv3-macs",
                   "ghostnetv2-100-macs", "ghostnetv2-dfc-exponent"):
        assert needed in ids
    cited = {c.id: c for c in all_ if c.measure is None}
    for acc_id, figure in (("fbnet-b-top1", 74.1), ("ghostnet-130-top1", 75.7), ("ghostnetv2-100-top1", 75.3),
                           ("mobilenetv3-large-top1", 75.2), ("ghostnetv2-v1-top1", 74.5)):
        assert cited[acc_id].expected == figure
    assert all(c.source.startswith("seed §") for c in all_)


def test_interleaved_keeps_the_measured_rounds_of_each_step():
    calls: list[str] = []

    def step(name, ms):
        return lambda: (calls.append(name), ms)[1]

    a, b = interleaved([step("a", 1.0), step("b", 2.0)],
                       Protocol(warmup_runs=2, warmup_s=0.0, min_runs=5, min_time_s=0.0))
    assert a == [1.0] * 5 and b == [2.0] * 5
    assert calls[:4] == ["a", "b", "a", "b"]


# -- the command line ----------------------------------------------------------------------------------
def test_cli_counting_families_as_json(cli):
    result = cli("claims", "--family", "espnetv2,fbnetv2", "--format", "json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["id"] for r in rows] == ["eesp-vs-esp-params", "eesp-vs-esp-macs", "fbnetv2-mask-equivalence",
                                       "fbnetv2-mask-macs", "fbnetv2-mask-memory", "fbnetv2-naive-cost"]
    assert list(rows[0])[:9] == ["id", "family", "source", "statement", "expected", "measured", "tolerance",
                                 "verdict", "detail"]
    assert all(r["verdict"] == "holds" for r in rows)
    assert rows[0]["measured"] == pytest.approx(144_000 / 20_160)


def test_cli_unknown_family_exits_2_listing_the_known(cli):
    result = cli("claims", "--family", "resnet")
    assert result.exit_code == 2
    assert "unknown claim family 'resnet'" in result.stderr and "ghostnetv2" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_strict_exits_1_only_when_a_claim_deviates(cli, monkeypatch):
    monkeypatch.setattr(claims, "all_claims", lambda: [_planted(1.0, "fine"), _planted(3.0, "off")])
    relaxed = cli("claims", "--format", "csv")
    assert relaxed.exit_code == 0
    assert relaxed.stdout.splitlines()[0] == ",".join(claims.RESULT_FIELDS)
    assert "off,espnet" in relaxed.stdout and ",deviates," in relaxed.stdout
    strict = cli("claims", "--strict")
    assert strict.exit_code == 1
    assert "off" in strict.stdout and "--strict: 1 measured claim(s) deviate: off" in strict.stderr
    monkeypatch.setattr(claims, "all_claims", lambda: [_planted(1.0, "fine")])
    assert cli("claims", "--strict").exit_code == 0


def test_cli_plot_writes_the_gridding_picture(cli, tmp_path, monkeypatch):
    grid = next(c for c in esp_claims.CLAIMS if c.id == "esp-hff-gridding")
    monkeypatch.setattr(claims, "all_claims", lambda: [grid])
    result = cli("claims", "--plot", str(tmp_path / "pics"))
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "pics" / "esp-hff-gridding.png").stat().st_size > 1000
    (tmp_path / "afile").write_text("x")
    bad = cli("claims", "--plot", str(tmp_path / "afile"))
    assert bad.exit_code == 2 and "wants a folder" in bad.stderr


@pytest.mark.parametrize(
    "device, needle",
    [("tpu", "unknown device 'tpu'")]
    + ([("cuda", "no CUDA device")] if not __import__("torch").cuda.is_available() else []),
)
def test_claims_device_must_exist(cli, device, needle):
    result = cli("claims", "--family", "mobilenetv3", "--device", device)
    assert result.exit_code == 2 and needle in result.stderr and result.stderr.count("\n") == 1


def test_training_claims_run_on_the_device_asked_for(monkeypatch):
    from cnnprof.claims import common

    seen = []
    monkeypatch.setattr("cnnprof.timing.eager.EagerRunner.__init__",
                        lambda self, model, x, *, device, channels_last, train: seen.append(device))
    with common.on_device("meta-device-for-test"):
        common.train_step_runners([object()], (3, 8, 8))
    common.train_step_runners([object()], (3, 8, 8))
    assert seen == ["meta-device-for-test", "cpu"]
