"""The seed's misprinted formulas: what it prints, what the paper has, and what the misprint would
change, computed here. They are not claims (nothing is measured), so they are reported apart, in
the errata section of ``cnnprof claims --format md`` and after the terminal table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cnnprof.claims.common import seed
from cnnprof.models.catalog import EFFICIENTNET, EFFICIENTNETV2, ESPNET, FBNET
from cnnprof.rows import Row

ERRATA_FIELDS = ["id", "family", "source", "seed_text", "correct", "reference", "consequence"]
# EfficientNetV2's search reward A·S^w·P^v (paper Sec. 3.3)
REWARD_W = -0.07
REWARD_V = -0.05
REWARD_V_AS_PRINTED = -5.0  # the seed's "v=-005" read literally
LATENCIES_MS = (20.0, 30.0)  # two latencies to compare FBNet's loss at
PHIS = (2, 7)  # compound coefficients to compare EfficientNet's FLOPs growth at (B2's and B7's φ)
ESP_EXAMPLE = (128, 4)  # ESPNet's module in the paper's example: M = N = 128, K = 4


@dataclass(frozen=True)
class Erratum(Row):
    """One misprint: ``seed_text`` is copied verbatim from the seed (a text search finds it)."""

    id: str
    family: str
    source: str
    seed_text: str
    correct: str
    reference: str
    consequence: str


def reward_v() -> Erratum:
    doubled = 2.0**REWARD_V
    literal = 2.0**REWARD_V_AS_PRINTED
    return Erratum(
        id="effnetv2-reward-v", family="efficientnetv2", source=seed("训练感知 NAS 和缩放"),
        seed_text="w=-0.07 和 v=-005",
        correct=f"v = {REWARD_V} (reward A·S^w·P^v with w = {REWARD_W}, v = {REWARD_V})",
        reference=EFFICIENTNETV2 + ", Sec. 3.3",
        consequence=(f"with v = {REWARD_V}, doubling the parameters multiplies the reward by 2^{REWARD_V} = "
                     f"{doubled:.3f} ({doubled - 1:+.1%}); read as v = {REWARD_V_AS_PRINTED:g} it would multiply it "
                     f"by 2^{REWARD_V_AS_PRINTED:g} = {literal:.3f}, a {1 / literal:.0f}x penalty that no accuracy "
                     "gain (A is a factor near 1) could offset: the search would pick the smallest network"),
    )


def fbnet_beta() -> Erratum:
    from cnnprof.lut.predict import FBNET_ALPHA, FBNET_BETA, fbnet_loss

    a, b = LATENCIES_MS
    paper_ratio = fbnet_loss(1.0, b) / fbnet_loss(1.0, a)
    seed_ratio = (FBNET_ALPHA * FBNET_BETA * math.log(b)) / (FBNET_ALPHA * FBNET_BETA * math.log(a))
    return Erratum(
        id="fbnet-loss-beta", family="fbnet", source=seed("Latency-Aware 损失函数"), seed_text="αlog(LAT(a)^{β})",
        correct="L(a, w_a) = CE(a, w_a) · α log(LAT(a))^β: β is the exponent of log LAT, not of LAT",
        reference=FBNET + ", latency-aware loss (Eq. 2)",
        consequence=(f"as printed, α log(LAT^β) = αβ log LAT: β becomes a second scale factor beside α and the "
                     f"exponent that shapes the latency term is lost. With α = {FBNET_ALPHA}, β = {FBNET_BETA} "
                     f"(cnnprof.lut.fbnet_loss), going from {a:g} to {b:g} ms multiplies the paper's latency factor by "
                     f"{paper_ratio:.3f} and the printed one by {seed_ratio:.3f}"),
    )


def effnet_flops_exponent() -> Erratum:
    from cnnprof.scaling import ALPHA, BETA, GAMMA

    base = ALPHA * BETA**2 * GAMMA**2
    growth = ", ".join(f"φ = {phi}: {base**phi:.1f}x as written in the paper, {base * phi:.2f}x as printed"
                       for phi in PHIS)
    return Erratum(
        id="effnet-flops-exponent", family="efficientnet", source=seed("复合缩放"), seed_text="(α⋅β^{2}⋅γ^{2})ϕ",
        correct="the FLOPs grow by (α·β²·γ²)^φ: φ is the exponent, not a factor (hence 2^φ under α·β²·γ² ≈ 2)",
        reference=EFFICIENTNET + ", Sec. 3.3",
        consequence=(f"with α, β, γ = {ALPHA}, {BETA}, {GAMMA} (α·β²·γ² = {base:.3f}): {growth}. As printed the FLOPs "
                     "would grow linearly in φ, and the seed's own next sentence (2^φ) would not follow from it"),
    )


def esp_reduce_kernels() -> Erratum:
    from cnnprof.models.blocks.esp import ESP

    n, k = ESP_EXAMPLE
    esp = ESP(n, n, branches=k, residual=True)
    d = esp.conv_reduce.out_channels
    branch_out = sum(branch.out_channels for branch in esp.branches)
    return Erratum(
        id="esp-reduce-kernels", family="espnet", source=seed("ESP 模块"), seed_text="K 个 1x1xM 的小卷积核",
        correct="N/K kernels of 1x1xM: the point-wise conv reduces the M input channels to d = N/K, which each of the "
                "K dilated branches keeps, so that their concatenation has the N output channels",
        reference=ESPNET + ", Sec. 3.1",
        consequence=(f"with M = N = {n}, K = {k}: the built module's reduce conv has d = {d} kernels "
                     f"({d * n:,} weights) and its branches concatenate to {branch_out} channels; K kernels would give "
                     f"a {k}-channel map ({k * n:,} weights) and a concatenation of K·K = {k * k} channels, not the "
                     f"{n} the residual sum with the input needs"),
    )


def errata() -> list[Erratum]:
    """The seed's misprints, with their consequences computed."""
    return [esp_reduce_kernels(), fbnet_beta(), effnet_flops_exponent(), reward_v()]
