"""ESPNet V2 claims: EESP against ESP (the seed's example, M = 240, g = K = 4), and grouped
point-wise convolutions against the separate ones they stand for.

Counted or timed on ``cnnprof.models.blocks.esp`` modules as built, the paper's formulas beside
them (convolution weights only); a row whose value is the formula the module was built from is
an ``identity``. The strided units' shortcut to the input image is costed on two built ESPNetV2
networks, with and without it; what it adds (accuracy) is cited.
"""

from __future__ import annotations

from cnnprof.claims import ABOVE, THREAD_CLOCK, Claim, Measurement, absolute, rel
from cnnprof.claims.common import (
    conv_weights,
    count_module,
    device_text,
    median,
    params,
    ratio_summary,
    seed,
    time_inference,
)
from cnnprof.claims.espnet import KERNEL
from cnnprof.models.catalog import ESPNETV2

# The seed's EESP example: M = 240, g = K = 4, d = M / K = 60.
EESP_M = 240
EESP_G = 4
EESP_MAP = 56


# -- EESP against ESP ------------------------------------------------------------------------------
def eesp_ratio_formula(m: int, g: int, k: int, n: int = KERNEL) -> float:
    """The seed's (ESPNetv2 Sec. 3) complexity reduction (M d + n² d² K) / (M d / g + (n² + d) d K)."""
    d = m // k
    return (m * d + n**2 * d**2 * k) / (m * d / g + (n**2 + d) * d * k)


def _esp_and_eesp():
    from cnnprof.models.blocks.esp import EESP, ESP

    esp = ESP(EESP_M, EESP_M, branches=EESP_G, residual=True)
    eesp = EESP(EESP_M, EESP_M, branches=EESP_G, groups=EESP_G, r_lim=9)
    return esp, eesp


def measure_eesp_params() -> Measurement:
    esp, eesp = _esp_and_eesp()
    w_esp, w_eesp = conv_weights(esp), conv_weights(eesp)
    p_esp, p_eesp = params(esp), params(eesp)
    formula = eesp_ratio_formula(EESP_M, EESP_G, EESP_G)
    return Measurement(
        measured=p_esp / p_eesp, formula=formula,
        detail=(f"all parameters of the built modules (the official designs, BN and PReLU included): "
                f"ESP({EESP_M}->{EESP_M}, K={EESP_G} branches of d={EESP_M // EESP_G}, n={KERNEL}) {p_esp:,}, "
                f"EESP(g=K={EESP_G}) {p_eesp:,}. Conv weights alone, {w_esp:,} vs {w_eesp:,}, are the seed's formula "
                f"(Md + n²d²K)/(Md/g + (n²+d)dK) = {formula:.3f} by construction; BN and PReLU only dilute it to "
                f"{p_esp / p_eesp:.2f}: a consistency check of the built modules, not evidence"),
    )


def measure_eesp_macs() -> Measurement:
    esp, eesp = _esp_and_eesp()
    shape = (EESP_M, EESP_MAP, EESP_MAP)
    e, v2 = count_module(esp, shape).macs, count_module(eesp, shape).macs
    return Measurement(
        measured=e / v2, formula=eesp_ratio_formula(EESP_M, EESP_G, EESP_G),
        detail=(f"counted at {EESP_MAP}x{EESP_MAP}: ESP {e:,} MACs, EESP {v2:,} MACs; all stride 1, so the ratio is "
                "the conv weights' ratio, the formula the modules are built from"),
    )


def _grouped_and_separate(chs: int, groups: int):
    """A ``groups``-group 1x1 conv chs -> chs and the same weights as ``groups`` separate 1x1 convs,
    one per channel group (the seed's Fig. c against Fig. b)."""
    import torch
    from torch import nn

    grouped = nn.Conv2d(chs, chs, 1, groups=groups, bias=False)
    per = chs // groups

    class SeparatePointwise(nn.Module):
        """K point-wise convs, one per branch (channel group), outputs concatenated."""

        def __init__(self) -> None:
            super().__init__()
            self.convs = nn.ModuleList(nn.Conv2d(per, per, 1, bias=False) for _ in range(groups))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([conv(part) for conv, part in zip(self.convs, x.split(per, 1))], 1)

    separate = SeparatePointwise()
    with torch.no_grad():
        for i, conv in enumerate(separate.convs):
            conv.weight.copy_(grouped.weight[i * per: (i + 1) * per])
    return grouped.eval(), separate.eval()


def grouped_equivalence(chs: int = EESP_M, groups: int = EESP_G, size: int = 16) -> float:
    """Max |grouped 1x1 conv - K separate 1x1 convs| on a random input."""
    import torch

    grouped, separate = _grouped_and_separate(chs, groups)
    x = torch.randn(2, chs, size, size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        return float((grouped(x) - separate(x)).abs().max())


def measure_grouped_equivalence() -> Measurement:
    diff = grouped_equivalence()
    return Measurement(
        measured=diff,
        detail=(f"EESP's merge: a {EESP_G}-group 1x1 conv {EESP_M}->{EESP_M} against {EESP_G} separate 1x1 convs "
                f"{EESP_M // EESP_G}->{EESP_M // EESP_G} with the same weights, concatenated: max |diff| {diff:.2g} "
                "on a random 2x240x16x16 input (float32 rounding). A grouped conv is by definition the separate convs"),
    )


def measure_grouped_faster(*, chs: int = EESP_M, groups: int = EESP_G, size: int = EESP_MAP,
                           protocol=None) -> Measurement:
    grouped, separate = _grouped_and_separate(chs, groups)
    (t_sep, t_grp), busy = time_inference([separate, grouped], [(chs, size, size)] * 2, protocol)
    ratio, lo, hi, p = ratio_summary(t_sep, t_grp)
    return Measurement(
        measured=ratio, ci=(lo, hi), device=device_text(clock=THREAD_CLOCK), busy=busy, clock=THREAD_CLOCK,
        detail=(f"inference at 1x{chs}x{size}x{size}, torch eager, interleaved, {len(t_sep)} calls each: {groups} "
                f"separate 1x1 convs + concat {median(t_sep):.3f} ms, one {groups}-group 1x1 conv {median(t_grp):.3f} "
                f"ms; separate / grouped {ratio:.3f} (95% bootstrap interval {lo:.3f}-{hi:.3f}, Mann-Whitney "
                f"p={p:.2g})"),
    )


def without_image_shortcut(width: float = 1.0):
    """ESPNetV2 at ``width`` as built and the same network without its input-image shortcuts."""
    from dataclasses import replace

    from cnnprof.models.espnetv2 import LEVELS, ESPNetV2

    plain = tuple(replace(level, image_shortcut=False) for level in LEVELS)
    return ESPNetV2(width_mult=width), ESPNetV2(width_mult=width, levels=plain)


def measure_image_shortcut() -> Measurement:
    from cnnprof.models.espnetv2 import LEVELS

    built, plain = without_image_shortcut()
    shape = (3, SHORTCUT_RES, SHORTCUT_RES)
    cb, cp = count_module(built, shape), count_module(plain, shape)
    levels = sum(level.image_shortcut for level in LEVELS)
    return Measurement(
        measured=(cb.macs - cp.macs) / cp.macs, cited=_SHORTCUT_WHY,
        detail=(f"ESPNetV2 1.0x at {SHORTCUT_RES}x{SHORTCUT_RES} with the shortcut to the image at {levels} strided "
                f"EESP units (the image average-pooled to the unit's size, a 3x3 and a 1x1 conv): {cb.params:,} params, "
                f"{cb.macs:,} MACs; without it {cp.params:,} params, {cp.macs:,} MACs: it adds "
                f"{cb.params - cp.params:,} params and {cb.macs - cp.macs:,} MACs "
                f"({(cb.macs - cp.macs) / cp.macs:.2%} of the MACs; the pooling is not counted as multiply-adds)"),
    )


SHORTCUT_RES = 224
_SHORTCUT_WHY = ("what the shortcut adds, more effective multi-scale representations, shows only in accuracy after "
                 "ImageNet training, not measurable offline; the seed gives no figure for its cost, measured beside")
_V2_PAPER = ESPNETV2 + ", Sec. 3"
CLAIMS = [
    Claim(
        id="eesp-vs-esp-params", family="espnetv2", source=seed("EESP 模块", _V2_PAPER),
        quote="EESP 比 ESP 少 7 倍的参数",
        statement="with M = 240, g = K = 4, d = M/K = 60, EESP has ~7x fewer parameters than ESP (all parameters)",
        expected=7.0, unit="x", tolerance=rel(0.1), measure=measure_eesp_params, identity=True,
    ),
    Claim(
        id="eesp-vs-esp-macs", family="espnetv2", source=seed("EESP 模块", _V2_PAPER),
        quote="通过组逐点和深度可分离扩张卷积，该模块的计算复杂度得到了显著的降低",
        statement="EESP's complexity reduction over ESP, (Md + n²d²K)/(Md/g + (n²+d)dK), holds for multiply-adds",
        expected=7.0, unit="x", tolerance=rel(0.1), measure=measure_eesp_macs, identity=True,
    ),
    Claim(
        id="eesp-grouped-equivalence", family="espnetv2", source=seed("EESP 模块", _V2_PAPER),
        quote="（c）是（b）的等价模式",
        statement="K separate point-wise convs equal one point-wise conv with K groups (Fig. c is Fig. b): max |diff|",
        expected=0.0, unit="max |diff|", tolerance=absolute(1e-5), measure=measure_grouped_equivalence,
        identity=True,
    ),
    Claim(
        id="eesp-grouped-faster", family="espnetv2", source=seed("EESP 模块", _V2_PAPER),
        quote="而分组卷积的在实现上更高效",
        statement=("the grouped point-wise conv runs faster than K separate ones: separate / grouped inference time "
                   f"of EESP's merge ({EESP_M} channels, K = {EESP_G}) (holds above 1)"),
        expected=1.0, unit="x", tolerance=ABOVE,
        measure=measure_grouped_faster, timed=True, paper_device="the paper gives no timing of this",
    ),
    Claim(
        id="eesp-image-shortcut", family="espnetv2", source=seed("EESP 模块", _V2_PAPER),
        quote="一种带有捷径连接到输入图像的分层 EESP 模块，以更有效地学习多尺度的表示",
        statement=("the strided EESP units' shortcut to the input image helps learn multi-scale representations "
                   "(its cost: MACs it adds to ESPNetV2 1.0x, as a share of the network without it)"),
        expected=None, unit="share of MACs", measure=measure_image_shortcut,
    ),
]
