"""GhostNet claims: the Ghost module's cost, GhostNet's compute against MobileNetV3, GhostNetV2's
DFC attention against a fully connected attention map.

Counted on ``cnnprof.models.blocks.ghost`` modules and the registered networks. The fully
connected attention map of the GhostNetV2 paper (Eq. 3 in the seed: a_hw = Σ F_{hw,h'w'} ⊙ z_h'w')
is built here as one linear layer over the H·W positions of every channel, the direct form whose
cost is O(H²W²).
"""

from __future__ import annotations

from cnnprof.claims import Claim, Measurement, Plot, absolute, rel
from cnnprof.claims.common import cite, count_module, count_registered, exponent, fmt_m, source
from cnnprof.models.catalog import GHOSTNET, GHOSTNETV2

GHOST_CHS = 96  # c (input) and n (output) channels of the replaced convolution
GHOST_MAP = 28
GHOST_RATIOS = (2, 3, 4)
ATTN_CHS = 32
ATTN_SIZES = (14, 28, 56)  # even sizes: DFC's 2x2 pooling is exact
SIMILAR = 0.10  # "similar compute": MACs within 10% of each other


def ghost_speedup_formula(s: int, c: int) -> float:
    """GhostNet paper Eq. 4 with d = k: r_s = s·c / (s + c − 1)."""
    return s * c / (s + c - 1)


def ghost_vs_conv(s: int, *, kernel: int = 3, dw_size: int = 3, chs: int = GHOST_CHS) -> tuple[int, int]:
    """MACs of an ordinary kxk conv chs -> chs and of the Ghost module that replaces it."""
    from torch import nn

    from cnnprof.models.blocks.ghost import GhostModule

    shape = (chs, GHOST_MAP, GHOST_MAP)
    conv = nn.Conv2d(chs, chs, kernel, padding=kernel // 2, bias=False)
    ghost = GhostModule(chs, chs, kernel_size=kernel, ratio=s, dw_size=dw_size)
    return count_module(conv, shape).macs, count_module(ghost, shape).macs


def measure_ghost_module(s: int):
    def measure() -> Measurement:
        conv, ghost = ghost_vs_conv(s)
        conv1, ghost1 = ghost_vs_conv(s, kernel=1)
        return Measurement(
            measured=conv / ghost, formula=ghost_speedup_formula(s, GHOST_CHS),
            detail=(f"ordinary 3x3 conv {GHOST_CHS}->{GHOST_CHS} at {GHOST_MAP}x{GHOST_MAP}: {conv:,} MACs; Ghost "
                    f"module (3x3 primary to {GHOST_CHS // s}, 3x3 depthwise cheap op, s={s}): {ghost:,}; paper "
                    f"s·c/(s+c−1) = {ghost_speedup_formula(s, GHOST_CHS):.3f}. With GhostNet's own 1x1 primary conv "
                    f"and 3x3 cheap op the saving is {conv1 / ghost1:.2f}x (s·c/(c + 9(s−1)))"),
        )

    return measure


def measure_ghostnet_vs_mbv3() -> Measurement:
    from cnnprof.models import registry

    g, m = count_registered("ghostnet_130").macs, count_registered("mobilenetv3_large").macs
    pg, pm = (registry.get(n).paper_figure.macs for n in ("ghostnet_130", "mobilenetv3_large"))
    return Measurement(
        measured=g / m,
        detail=(f"counted at 224x224: GhostNet 1.3x {fmt_m(g)} MACs, MobileNetV3-Large {fmt_m(m)} (papers: "
                f"{fmt_m(pg)} vs {fmt_m(pm)}, ratio {pg / pm:.3f}); 'similar' taken as within {SIMILAR:.0%}"),
    )


def measure_ghostnetv2_macs() -> Measurement:
    c = count_registered("ghostnetv2_100")
    return Measurement(measured=float(c.macs),
                       detail=f"counted ghostnetv2_100 at 224x224: {c.params:,} params, {c.macs:,} MACs")


def _fc_attention(chs: int, size: int):
    import torch
    from torch import nn

    class FullyConnectedAttention(nn.Module):
        """a_hw = Σ_{h'w'} F_{hw,h'w'} z_{h'w'} for every channel: a linear layer over positions,
        (H·W)² weights shared by the channels, C·(H·W)² multiply-adds."""

        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(size * size, size * size, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            n, c, h, w = x.shape
            return torch.sigmoid(self.fc(x.reshape(n, c, h * w))).reshape(n, c, h, w)

    return FullyConnectedAttention()


def _dfc_gate(chs: int):
    import torch
    from torch import nn

    from cnnprof.models.blocks.ghost import DFCAttention

    class DFCGate(nn.Module):
        """GhostNetV2's DFC attention as a one-input module (its gate at the input's size)."""

        def __init__(self) -> None:
            super().__init__()
            self.dfc = DFCAttention(chs, chs)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.dfc(x, x.shape[-2:])

    return DFCGate()


_ATTN: dict[str, list[int]] = {}


def attention_costs() -> dict[str, list[int]]:
    """MACs of the fully connected attention map and of DFC attention at each ATTN_SIZES."""
    if not _ATTN:
        fc, dfc = [], []
        for size in ATTN_SIZES:
            shape = (ATTN_CHS, size, size)
            fc.append(count_module(_fc_attention(ATTN_CHS, size), shape).macs)
            dfc.append(count_module(_dfc_gate(ATTN_CHS), shape).macs)
        _ATTN.update(fc=fc, dfc=dfc)
    return _ATTN


def _attention_plot(costs: dict[str, list[int]]) -> Plot:
    def draw(path) -> None:
        from cnnprof.plots import _figure, save

        plt = _figure()
        fig, ax = plt.subplots(figsize=(6, 4))
        hw = [s * s for s in ATTN_SIZES]
        ax.loglog(hw, costs["fc"], "o-", label="fully connected attention, O(H²W²)")
        ax.loglog(hw, costs["dfc"], "s-", label="DFC attention (GhostNetV2)")
        for x, s in zip(hw, ATTN_SIZES):
            ax.annotate(f"{s}x{s}", (x, costs["dfc"][ATTN_SIZES.index(s)]), textcoords="offset points",
                        xytext=(0, -12), fontsize=7)
        from matplotlib.ticker import NullFormatter

        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("positions H·W")
        ax.set_ylabel("MACs")
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(fontsize=8)
        ax.set_title(f"Attention map cost, {ATTN_CHS} channels", fontsize=9)
        save(fig, path)
        plt.close(fig)

    return Plot("ghostnetv2-dfc-vs-fc.png", draw)


def _per_size(costs: dict[str, list[int]]) -> str:
    return ", ".join(f"{s}x{s}: FC {fmt_m(f)} vs DFC {fmt_m(d)} ({f / d:.0f}x)"
                     for s, f, d in zip(ATTN_SIZES, costs["fc"], costs["dfc"]))


def measure_fc_exponent() -> Measurement:
    c = attention_costs()
    return Measurement(
        measured=exponent([s * s for s in ATTN_SIZES], c["fc"]),
        detail=f"MACs against H·W, {ATTN_CHS} channels: {_per_size(c)}",
        plots=(_attention_plot(c),),
    )


def measure_dfc_exponent() -> Measurement:
    c = attention_costs()
    return Measurement(
        measured=exponent([s * s for s in ATTN_SIZES], c["dfc"]),
        detail=(f"DFC = 2x2 avg-pool, 1x1 conv, depthwise 1x5 and 5x1 convs at half resolution, nearest upsampling: "
                f"{_per_size(c)}"),
    )


_V1 = source("GhostNet V1", GHOSTNET)
_V2 = source("GhostNet V2 (DFC attention)", GHOSTNETV2)
CLAIMS = [
    *[
        Claim(
            id=f"ghost-module-cost-s{s}", family="ghostnet", source=_V1 + " Sec. 3.1 (Eq. 4)",
            statement=f"a Ghost module costs about 1/s of the ordinary convolution it replaces (s = {s}: ~{s}x "
                      "fewer MACs; paper s·c/(s+c−1))",
            expected=float(s), unit="x", tolerance=rel(0.05), measure=measure_ghost_module(s),
        )
        for s in GHOST_RATIOS
    ],
    Claim(
        id="ghostnet-130-vs-mbv3-macs", family="ghostnet", source=_V1 + " (ImageNet table)",
        statement="GhostNet 1.3x and MobileNetV3-Large have similar compute (226M vs 219M MACs): "
                  "GhostNet / MobileNetV3",
        expected=1.0, unit="x", tolerance=rel(SIMILAR), measure=measure_ghostnet_vs_mbv3,
    ),
    Claim(
        id="ghostnet-130-top1", family="ghostnet", source=_V1 + " (ImageNet table)",
        statement="GhostNet 1.3x reaches 75.7% top-1, above MobileNetV3-Large's 75.2% at similar compute",
        expected=75.7, unit="% top-1", cited=cite("Han et al. 2020, ImageNet comparison table", "75.7% top-1"),
    ),
    Claim(
        id="ghostnetv2-100-macs", family="ghostnetv2", source=_V2 + " (ImageNet table)",
        statement="GhostNetV2 1.0x costs 167M FLOPs (multiply-adds)", expected=167e6, unit="MACs",
        tolerance=rel(0.02), measure=measure_ghostnetv2_macs,
    ),
    Claim(
        id="ghostnetv2-fc-attention-exponent", family="ghostnetv2", source=_V2 + " Sec. 4 (Eq. 3)",
        statement="a fully connected attention map costs O(H²W²): MACs exponent in H·W",
        expected=2.0, unit="exponent", tolerance=absolute(0.05), measure=measure_fc_exponent,
    ),
    Claim(
        id="ghostnetv2-dfc-exponent", family="ghostnetv2", source=_V2 + " Sec. 4.2",
        statement="DFC attention decouples the map into fixed-size horizontal and vertical depthwise convs: its "
                  "cost is linear in H·W (MACs exponent)",
        expected=1.0, unit="exponent", tolerance=absolute(0.05), measure=measure_dfc_exponent,
    ),
    Claim(
        id="ghostnetv2-100-top1", family="ghostnetv2", source=_V2 + " (ImageNet table)",
        statement="GhostNetV2 1.0x reaches 75.3% top-1 at 167M MACs",
        expected=75.3, unit="% top-1", cited=cite("Tang et al. 2022, ImageNet table; official README", "75.3% top-1"),
    ),
    Claim(
        id="ghostnetv2-v1-top1", family="ghostnetv2", source=_V2 + " (ImageNet table)",
        statement="GhostNetV1 at similar cost reaches 74.5% top-1 (GhostNetV2 paper's comparison)",
        expected=74.5, unit="% top-1",
        cited=cite("Tang et al. 2022, comparison with GhostNetV1 (the V1 paper itself gives 73.9% at 1.0x)",
                   "74.5% top-1"),
    ),
]
