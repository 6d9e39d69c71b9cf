"""The ESPNet, ESPNetV2 and GhostNetV2 claims that measure more than a module's weight count: ESP's
receptive field from an impulse, memory with weights, the residual's gradient, the image shortcut,
the network-level rows, and the attention timings (a real, tiny run, marked ``timing``)."""

from __future__ import annotations

import math
import statistics

import pytest
import torch

from cnnprof import claims
from cnnprof.claims import Verdict, common, evaluate
from cnnprof.claims import espnet as esp_claims
from cnnprof.claims import espnet_network as net_claims
from cnnprof.claims import espnetv2 as espv2_claims
from cnnprof.claims import ghostnet_attention as attn_claims
from cnnprof.claims.common import count_module, count_registered, params
from cnnprof.timing.protocol import Protocol

TINY = Protocol(warmup_runs=1, warmup_s=0.0, min_runs=6, min_time_s=0.0, max_time_s=5.0)


def run(claim_id: str):
    return evaluate(next(c for c in claims.all_claims() if c.id == claim_id))[0]


# -- ESPNet --------------------------------------------------------------------------------------------
def test_esp_receptive_field_is_measured_by_an_impulse(monkeypatch):
    # dilations 1, 2, 4 (, 8): the span (n-1)2^(K-1)+1, and only the union of the 3x3 grids inside it
    assert esp_claims.esp_reach(3, chs=8) == (9, 9 + 8 * 2)
    assert esp_claims.esp_reach(4, chs=8) == (17, 9 + 8 * 3)
    r = run("esp-receptive-field")
    assert r.verdict is Verdict.IDENTITY and r.measured == 17 and "33 of 289 positions" in r.detail
    from torch import nn

    from cnnprof.models.blocks import esp

    class Undilated(esp.ESP):  # a module whose branches do not dilate: the impulse sees it
        def __init__(self, in_chs, out_chs, **kw):
            super().__init__(in_chs, out_chs, **kw)
            for b in self.branches:
                b.dilation, b.padding = (1, 1), (1, 1)

    monkeypatch.setattr(esp, "ESP", Undilated)
    r = run("esp-receptive-field")
    assert r.verdict is Verdict.DEVIATES and r.measured == 3
    # the same-receptive-field comparison takes the measured side: a 3x3 conv now, not 17x17
    same = run("esp-vs-conv-same-rf")
    assert same.verdict is Verdict.DEVIATES and "standard 3x3 conv" in same.detail
    assert isinstance(esp.ESP(8, 8, branches=2).branches[1], nn.Conv2d)


def test_esp_memory_verdict_counts_weights_and_activations():
    m = esp_claims.memory_vs_same_rf(esp_claims.MEMORY_MAP)
    total = (m["esp_saved"] + m["esp_weights"]) / (m["conv_saved"] + m["conv_weights"])
    r = run("esp-memory-vs-conv")
    assert r.measured == pytest.approx(total) and r.verdict is (Verdict.HOLDS if total < 1 else Verdict.DEVIATES)
    assert m["esp_saved"] > m["conv_saved"] and m["conv_weights"] > m["esp_weights"]  # the two pull apart
    # on a map four times larger the activations win: the verdict could go the other way
    big = esp_claims.memory_vs_same_rf((128, 256))
    assert (big["esp_saved"] + big["esp_weights"]) > (big["conv_saved"] + big["conv_weights"])
    assert next(c for c in claims.all_claims() if c.id == "esp-activations-vs-conv").identity


def test_residual_gradient_compares_the_same_weights_with_and_without(monkeypatch):
    small = {"modules": 2, "chs": 10, "size": 8, "batch": 2}
    with_res, without = (net_claims.esp_stack_grads(r, 0, **small) for r in (True, False))
    assert with_res != without and all(v > 0 for v in with_res + without)
    assert net_claims.esp_stack_grads(True, 0, **small) == with_res  # deterministic per seed
    seen, real = [], net_claims.residual_gradients
    monkeypatch.setattr(net_claims, "residual_gradients", lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
    r = run("esp-residual-gradient")
    logs = [math.log(a[0] / b[0]) for a, b in zip(seen[0]["with"], seen[0]["without"])]
    assert len(logs) == net_claims.GRAD_SEEDS and r.measured == pytest.approx(math.exp(sum(logs) / len(logs)))
    assert r.ci_low <= r.measured <= r.ci_high and "PROXY AT INITIALISATION" in r.detail
    # at initialisation the residual lowers the first module's gradient (the BN after the sum)
    assert r.verdict is Verdict.DEVIATES and r.ci_high < 1


def test_espnet_network_row_is_cited_with_its_counts():
    r = run("espnet-network-efficiency")
    assert r.verdict is Verdict.CITED and r.measured == count_registered("espnet").params
    assert "PSPNet" in r.detail and "0.365M params" in r.detail


# -- ESPNetV2 ------------------------------------------------------------------------------------------
def test_image_shortcut_cost_is_the_difference_of_two_built_networks():
    from cnnprof.models.blocks.esp import StridedEESP

    built, plain = espv2_claims.without_image_shortcut()
    shortcut_params = sum(params(m.shortcut) for m in built.modules()
                          if isinstance(m, StridedEESP) and m.shortcut is not None)
    assert shortcut_params > 0 and params(built) - params(plain) == shortcut_params
    shape = (3, 224, 224)
    macs = count_module(built, shape).macs, count_module(plain, shape).macs
    r = run("eesp-image-shortcut")
    assert r.verdict is Verdict.CITED and r.measured == pytest.approx((macs[0] - macs[1]) / macs[1]) and r.measured > 0


# -- GhostNetV2 attention ------------------------------------------------------------------------------
def test_self_attention_gate_is_counted_and_shaped():
    gate = attn_claims.self_attention_gate(8, 12)
    hw = 7 * 7
    assert count_module(attn_claims.at_size(gate), (8, 7, 7)).macs == 3 * 12 * 8 * hw + 2 * 12 * hw * hw
    with torch.inference_mode():
        a = gate(torch.randn(2, 8, 7, 7), (7, 7))
    assert a.shape == (2, 12, 7, 7) and float(a.min()) > 0 and float(a.max()) < 1


def test_attention_places_and_the_network_without_dfc():
    from cnnprof.models.blocks.ghost import DFCAttention

    target, model, places = attn_claims.attention_places()
    assert sorted({shape for shape, _ in places}) == [(24, 56, 56), (40, 28, 28), (80, 14, 14), (112, 14, 14),
                                                      (160, 7, 7)]
    assert len(places) == 14 and len(attn_claims.attention_places(largest=7)[2]) == 4
    plain = attn_claims.without_dfc(model)
    assert sum(isinstance(m, DFCAttention) for m in model.modules()) == 14
    assert not any(isinstance(m, DFCAttention) for m in plain.modules())
    x = torch.randn(1, *target.input)
    with torch.inference_mode():
        assert plain.eval()(x).shape == model.eval()(x).shape == (1, 1000)
    for shape, gates in places[:3]:  # the three gates are drop-in: same gate shape at each place
        z = torch.randn(1, *shape)
        with torch.inference_mode():
            outs = [gates[k].eval()(z, shape[1:]) for k in attn_claims.KINDS]
        assert len({tuple(o.shape) for o in outs}) == 1


@pytest.mark.timing
def test_attention_timings_are_the_ratios_of_their_samples(monkeypatch):
    seen, real = [], common.interleaved
    monkeypatch.setattr(common, "interleaved", lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
    m = attn_claims.measure_dfc_latency(protocol=TINY, largest=7)  # a real timing, the 7x7 places only
    net, no_dfc, dfc, fc, sa = seen[-1]
    assert m.measured == pytest.approx(statistics.median(fc) / statistics.median(dfc), rel=1e-12)
    assert m.ci[0] <= m.measured <= m.ci[1] and "thread CPU clock" in m.device and "1 thread" in m.device
    assert "4 DFC places" in m.detail
    assert len(net) == len(no_dfc) == len(dfc) == len(sa) and "without its DFC branches" in m.detail
    s = attn_claims.measure_self_attention_latency(protocol=TINY, largest=7)
    _, _, dfc, fc, sa = seen[-1]
    assert s.measured == pytest.approx(statistics.median(sa) / statistics.median(dfc), rel=1e-12)
