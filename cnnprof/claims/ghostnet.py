"""GhostNet claims: the Ghost module's cost, GhostNet's compute against MobileNetV3, GhostNetV2's
DFC attention against a fully connected attention map.

Counted and timed on ``cnnprof.models.blocks.ghost`` modules and the registered networks. The
fully connected attention map of the GhostNetV2 paper (the seed's formula a_hw = Σ F_{hw,h'w'} ⊙
z_h'w') is built here as one linear layer over the H·W positions of every channel, the direct form
whose cost is O(H²W²); in a network it takes the place of a DFC branch (a 1x1 conv to the gated
channels, then the linear layer over positions at full resolution, then a sigmoid).
"""

from __future__ import annotations

from cnnprof.claims import ABOVE, THREAD_CLOCK, Claim, Measurement, Plot, absolute, rel
from cnnprof.claims.common import (
    cite,
    count_module,
    count_registered,
    device_text,
    exponent,
    fmt_m,
    forward_with_hooks,
    median,
    paper,
    params,
    ratio_summary,
    seed,
    time_inference,
)
from cnnprof.models.catalog import GHOSTNET, GHOSTNETV2

GHOST_CHS = 96  # c (input) and n (output) channels of the replaced convolution
GHOST_MAP = 28
GHOST_TIME_MAP = 56
GHOST_RATIOS = (2, 3, 4)
ATTN_CHS = 32
ATTN_SIZES = (14, 28, 56)  # even sizes: DFC's 2x2 pooling is exact
SIMILAR = 0.10  # "similar compute": within 10% of each other
FC_SIZE = 56  # the feature map at which a fully connected attention map is timed
FC_UNACCEPTABLE = 2.0  # "unacceptable": FC attention at one stage doubles the whole network's latency
V1_SIMILAR_WIDTH = 1.1  # GhostNetV1's width whose MACs match GhostNetV2 1.0x (counted: 167.0M vs 167.0M)
_ARM = "the papers timed ARM phones (TFLite)"


def ghost_speedup_formula(s: int, c: int) -> float:
    """GhostNet paper Eq. 4 with d = k: r_s = s·c / (s + c − 1)."""
    return s * c / (s + c - 1)


def _conv_and_ghost(s: int, *, kernel: int = 3, dw_size: int = 3, chs: int = GHOST_CHS):
    from torch import nn

    from cnnprof.models.blocks.ghost import GhostModule

    conv = nn.Conv2d(chs, chs, kernel, padding=kernel // 2, bias=False)
    ghost = GhostModule(chs, chs, kernel_size=kernel, ratio=s, dw_size=dw_size)
    return conv, ghost


def ghost_vs_conv(s: int, *, kernel: int = 3, dw_size: int = 3, chs: int = GHOST_CHS) -> tuple[int, int]:
    """MACs of an ordinary kxk conv chs -> chs and of the Ghost module that replaces it."""
    conv, ghost = _conv_and_ghost(s, kernel=kernel, dw_size=dw_size, chs=chs)
    shape = (chs, GHOST_MAP, GHOST_MAP)
    return count_module(conv, shape).macs, count_module(ghost, shape).macs


def measure_ghost_module(s: int):
    def measure() -> Measurement:
        conv, ghost = ghost_vs_conv(s)
        conv1, ghost1 = ghost_vs_conv(s, kernel=1)
        return Measurement(
            measured=conv / ghost, formula=ghost_speedup_formula(s, GHOST_CHS),
            detail=(f"ordinary 3x3 conv {GHOST_CHS}->{GHOST_CHS} at {GHOST_MAP}x{GHOST_MAP}: {conv:,} MACs; Ghost "
                    f"module (3x3 primary to {GHOST_CHS // s}, 3x3 depthwise cheap op, s={s}): {ghost:,}; paper "
                    f"s·c/(s+c−1) = {ghost_speedup_formula(s, GHOST_CHS):.3f}: the module is built to that count. With "
                    f"GhostNet's own 1x1 primary conv and 3x3 cheap op the saving is {conv1 / ghost1:.2f}x"),
        )

    return measure


def measure_ghost_latency(*, s: int = 2, size: int = GHOST_TIME_MAP, protocol=None) -> Measurement:
    conv, ghost = _conv_and_ghost(s)
    shape = (GHOST_CHS, size, size)
    macs_ratio = count_module(conv, shape).macs / count_module(ghost, shape).macs
    (t_conv, t_ghost), busy = time_inference([conv, ghost], [shape] * 2, protocol)
    ratio, lo, hi, p = ratio_summary(t_conv, t_ghost)
    return Measurement(
        measured=ratio, ci=(lo, hi), device=device_text(clock=THREAD_CLOCK), busy=busy, clock=THREAD_CLOCK,
        detail=(f"inference at 1x{GHOST_CHS}x{size}x{size}, torch eager, interleaved, {len(t_conv)} calls each: "
                f"ordinary 3x3 conv {median(t_conv):.3f} ms, Ghost module (s={s}, BN and ReLU included) "
                f"{median(t_ghost):.3f} ms; conv / Ghost {ratio:.2f} (95% bootstrap interval {lo:.2f}-{hi:.2f}, "
                f"Mann-Whitney p={p:.2g}) for a MAC saving of {macs_ratio:.2f}x"),
    )


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


def attention_costs() -> dict[str, list[int]]:
    """MACs of the fully connected attention map and of DFC attention at each ATTN_SIZES."""
    fc, dfc = [], []
    for size in ATTN_SIZES:
        shape = (ATTN_CHS, size, size)
        fc.append(count_module(_fc_attention(ATTN_CHS, size), shape).macs)
        dfc.append(count_module(_dfc_gate(ATTN_CHS), shape).macs)
    return {"fc": fc, "dfc": dfc}


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
        detail=(f"MACs against H·W, {ATTN_CHS} channels: {_per_size(c)}; an nn.Linear(HW, HW) is built with (HW)² "
                "weights, so the exponent is 2 by construction"),
        plots=(_attention_plot(c),),
    )


def measure_dfc_exponent() -> Measurement:
    c = attention_costs()
    return Measurement(
        measured=exponent([s * s for s in ATTN_SIZES], c["dfc"]),
        detail=(f"DFC = 2x2 avg-pool, 1x1 conv, depthwise 1x5 and 5x1 convs at half resolution, nearest upsampling: "
                f"{_per_size(c)}; fixed-size kernels make it linear in H·W by construction"),
    )


# -- in the network: FC attention in place of DFC, and GhostNetV2 against V1 --------------------------
def _fc_gate_module(in_chs: int, out_chs: int, size: int):
    """A fully connected attention map in a DFC branch's place: 1x1 conv (in -> out channels, as
    DFC's), then a linear layer over the size x size positions, then a sigmoid."""
    import torch
    from torch import nn

    class FCGate(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(in_chs, out_chs, 1, bias=False)
            self.fc = nn.Linear(size * size, size * size, bias=False)

        def forward(self, x: torch.Tensor, out_size) -> torch.Tensor:
            a = self.conv(x)
            n, c, h, w = a.shape
            a = torch.sigmoid(self.fc(a.reshape(n, c, h * w))).reshape(n, c, h, w)
            return a if (h, w) == tuple(out_size) else torch.nn.functional.interpolate(a, size=tuple(out_size))

    return FCGate()


def dfc_inputs(model, shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """Input shape (C, H, W) of every DFC branch of ``model``, from one forward pass."""

    from cnnprof.models.blocks.ghost import DFCAttention

    seen: dict[str, tuple[int, ...]] = {}

    def hook(name: str):
        def record(module, inputs, output) -> None:
            seen.setdefault(name, tuple(inputs[0].shape[1:]))

        return record

    forward_with_hooks(model, shape, [(m, hook(name)) for name, m in model.named_modules()
                                      if isinstance(m, DFCAttention)])
    return seen


def with_fc_attention(model, shape: tuple[int, ...], size: int = FC_SIZE):
    """``model`` (a built GhostNetV2) with its DFC branches on ``size`` x ``size`` maps replaced by
    fully connected attention maps; returns the number replaced."""
    inputs = dfc_inputs(model, shape)
    modules = dict(model.named_modules())
    replaced = 0
    for name, (chs, h, w) in inputs.items():
        if (h, w) != (size, size):
            continue
        parent_name, attr = name.rsplit(".", 1)
        dfc = modules[name]
        gate = _fc_gate_module(chs, dfc.conv_reduce.conv.out_channels, size)
        setattr(modules[parent_name], attr, gate)
        replaced += 1
    return replaced


def measure_fc_in_network(*, protocol=None) -> Measurement:
    from cnnprof.targets import registered

    target = registered("ghostnetv2_100")
    built = target.build()
    fc_net = target.build()
    replaced = with_fc_attention(fc_net, target.input)
    chs = next(m.conv.out_channels for m in fc_net.modules() if type(m).__name__ == "FCGate")
    fc_alone, dfc_alone = _fc_attention(chs, FC_SIZE), _dfc_gate(chs)
    attn_shape = (chs, FC_SIZE, FC_SIZE)
    (t_fc_net, t_net, t_fc, t_dfc), busy = time_inference([fc_net, built, fc_alone, dfc_alone],
                                                  [target.input, target.input, attn_shape, attn_shape], protocol)
    ratio, lo, hi, p = ratio_summary(t_fc_net, t_net)
    fc_weights = (FC_SIZE * FC_SIZE) ** 2
    return Measurement(
        measured=ratio, ci=(lo, hi), device=device_text(clock=THREAD_CLOCK), busy=busy, clock=THREAD_CLOCK,
        detail=(f"GhostNetV2 1.0x at 224x224 with fully connected attention maps in place of DFC in its {replaced} "
                f"blocks at {FC_SIZE}x{FC_SIZE} (DFC elsewhere), against the network as built, torch eager, "
                f"interleaved, {len(t_net)} calls each: {median(t_fc_net):.1f} ms vs {median(t_net):.1f} ms, ratio "
                f"{ratio:.2f} (95% bootstrap interval {lo:.2f}-{hi:.2f}, Mann-Whitney p={p:.2g}). One attention map "
                f"at {FC_SIZE}x{FC_SIZE} with {chs} channels: FC {median(t_fc):.2f} ms, {fc_weights / 1e6:.2f}M "
                f"weights, {fmt_m(chs * fc_weights)} MACs; DFC {median(t_dfc):.3f} ms, {params(dfc_alone):,} params; "
                f"the whole network has {params(built) / 1e6:.2f}M params, the FC version {params(fc_net) / 1e6:.2f}M"),
    )


def measure_v2_vs_v1_latency(*, protocol=None) -> Measurement:
    from cnnprof.targets import registered

    v2, v1 = registered("ghostnetv2_100"), registered("ghostnet_100", width_mult=V1_SIMILAR_WIDTH)
    c2 = count_registered("ghostnetv2_100")
    c1 = count_registered("ghostnet_100", None, (("width_mult", V1_SIMILAR_WIDTH),))
    (t2, t1), busy = time_inference([v2.build(), v1.build()], [v2.input, v1.input], protocol)
    ratio, lo, hi, p = ratio_summary(t2, t1)
    return Measurement(
        measured=ratio, ci=(lo, hi), device=device_text(clock=THREAD_CLOCK), busy=busy, clock=THREAD_CLOCK,
        detail=(f"GhostNetV2 1.0x ({fmt_m(c2.macs)} MACs, {c2.params / 1e6:.2f}M params) against GhostNetV1 at width "
                f"{V1_SIMILAR_WIDTH:g} ({fmt_m(c1.macs)} MACs, {c1.params / 1e6:.2f}M params; the width whose MACs "
                f"match, which the 74.5% comparison implies but the seed does not name), 224x224, torch eager, "
                f"interleaved, {len(t2)} calls each: {median(t2):.1f} ms vs {median(t1):.1f} ms, V2 / V1 {ratio:.2f} "
                f"(95% bootstrap interval {lo:.2f}-{hi:.2f}, Mann-Whitney p={p:.2g}); GhostNetV1 1.0x has "
                f"{fmt_m(count_registered('ghostnet_100').macs)} MACs"),
    )


# -- DFC's receptive field, from impulses ---------------------------------------------------------------
def support_copy(module):
    """A copy of ``module`` (a DFC branch, an ESP module) whose convolutions have weights |w| + 1 and
    whose batch norms are identities, so that its response to a positive impulse (all positive on
    the way: PReLU and ReLU pass it unchanged) shows exactly which positions it reaches."""
    import copy

    import torch
    from torch import nn

    probe = copy.deepcopy(module).double().eval()
    with torch.no_grad():
        for m in probe.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.copy_(m.weight.abs() + 1.0)
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.zero_()
                m.running_var.fill_(1.0 - m.eps)
                m.weight.fill_(1.0)
                m.bias.zero_()
    return probe


def dfc_reach(dfc, shape: tuple[int, ...]) -> tuple[int, bool, bool]:
    """What one DFC branch sees at input ``shape``: the side of the square of gate positions a
    centre impulse reaches; whether it is global (an impulse in either corner reaches the opposite
    corner); whether the last row and column reach no position at all (the 2x2 pooling floors odd
    sizes)."""
    import torch

    probe = support_copy(dfc)
    chs, h, w = shape

    def reached(y0: int, x0: int):
        x = torch.zeros(1, chs, h, w, dtype=torch.float64)
        x[0, :, y0, x0] = 1.0
        with torch.inference_mode():
            return (probe(x, (h, w)) - probe(torch.zeros_like(x), (h, w))).abs().sum(1)[0] > 0

    centre = reached(h // 2, w // 2)
    ys, xs = torch.nonzero(centre, as_tuple=True)
    side = int(max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)) if len(ys) else 0
    first, last = reached(0, 0), reached(h - 1, w - 1)
    return side, bool(first[h - 1, w - 1]) and bool(last[0, 0]), not bool(last.any())


def measure_dfc_receptive_field() -> Measurement:
    from cnnprof.targets import registered

    target = registered("ghostnetv2_100")
    model = target.build(calibrate=False)
    modules = dict(model.named_modules())
    found = dfc_inputs(model, target.input)
    by_size: dict[int, list[tuple[int, bool, bool]]] = {}
    for name, shape in found.items():
        by_size.setdefault(shape[-1], []).append(dfc_reach(modules[name], shape))
    gates = [r for v in by_size.values() for r in v]
    parts = []
    for size, found_here in sorted(by_size.items(), reverse=True):
        sides = sorted({side for side, _, _ in found_here})
        square = "/".join(f"{side}x{side}" for side in sides)
        text = (f"{len(found_here)} on {size}x{size}: a centre impulse reaches a {square} square of the gate, "
                f"{sum(g for _, g, _ in found_here)} global")
        if any(d for _, _, d in found_here):
            text += " (the last row and column reach no position: the 2x2 pooling floors the odd side)"
        parts.append(text)
    return Measurement(
        measured=sum(g for _, g, _ in gates) / len(gates),
        detail=(f"the {len(gates)} DFC branches of the built GhostNetV2 1.0x, each probed at its own input size with "
                f"impulses (conv weights |w| + 1, BN as identity, float64: the response marks exactly the positions "
                f"reached): {'; '.join(parts)}. A fully connected map is global at every size"),
    )


_V1 = GHOSTNET
_V2 = GHOSTNETV2
_DFC_H = "解耦全连接注意力机制 DFC"
CLAIMS = [
    *[
        Claim(
            id=f"ghost-module-cost-s{s}", family="ghostnet", source=seed("Ghost Module", _V1 + ", Sec. 3.1, Eq. 4"),
            quote="以减少计算成本",
            statement=f"a Ghost module costs about 1/s of the ordinary convolution it replaces (s = {s}: ~{s}x "
                      "fewer MACs; paper s·c/(s+c−1))",
            expected=float(s), unit="x", tolerance=rel(0.05), measure=measure_ghost_module(s), identity=True,
        )
        for s in GHOST_RATIOS
    ],
    Claim(
        id="ghost-module-latency", family="ghostnet", source=seed("Ghost Module", _V1 + ", Sec. 3.1"),
        quote="以减少计算成本",
        statement="the Ghost module (s = 2) runs faster than the ordinary 3x3 convolution it replaces: conv / Ghost "
                  "inference time (holds above 1)",
        expected=1.0, unit="x", tolerance=ABOVE, measure=measure_ghost_latency, timed=True, paper_device=_ARM,
    ),
    Claim(
        id="ghostnet-130-vs-mbv3-macs", family="ghostnet", source=seed("GhostNet V1", _V1 + ", ImageNet table"),
        quote="在相似计算量情况下",
        statement="GhostNet 1.3x and MobileNetV3-Large have similar compute (226M vs 219M MACs): "
                  "GhostNet / MobileNetV3 (within 10%)",
        expected=1.0, unit="x", tolerance=rel(SIMILAR), measure=measure_ghostnet_vs_mbv3,
    ),
    Claim(
        id="ghostnet-130-top1", family="ghostnet", source=seed("GhostNet V1", _V1 + ", ImageNet table"),
        quote="Top-1 正确率达 75.7%",
        statement="GhostNet 1.3x reaches 75.7% top-1, above MobileNetV3-Large's 75.2% at similar compute",
        expected=75.7, unit="% top-1", tolerance=absolute(1.0),
        cited=cite("Han et al. 2020, ImageNet comparison table", "75.7% top-1"),
    ),
    Claim(
        id="ghostnetv2-100-macs", family="ghostnetv2", source=seed("GhostNet V2", _V2 + ", ImageNet table"),
        quote="它在具有 167M FLOPs 的 ImageNet 上实现了 75.3%的 top-1 精度",
        statement="GhostNetV2 1.0x costs 167M FLOPs (multiply-adds)", expected=167e6, unit="MACs",
        tolerance=rel(0.02), measure=measure_ghostnetv2_macs,
    ),
    Claim(
        id="ghostnetv2-fc-attention-exponent", family="ghostnetv2", source=seed(_DFC_H, _V2 + ", Eq. 3"),
        quote="该过程的计算复杂度仍然是二次方",
        statement="a fully connected attention map costs O(H²W²): MACs exponent in H·W",
        expected=2.0, unit="exponent", tolerance=absolute(0.05), measure=measure_fc_exponent, identity=True,
    ),
    Claim(
        id="ghostnetv2-dfc-exponent", family="ghostnetv2", source=paper(_V2, "Sec. 3.2, DFC attention"),
        statement="DFC attention decouples the map into fixed-size horizontal and vertical depthwise convs: its "
                  "cost is linear in H·W (MACs exponent)",
        expected=1.0, unit="exponent", tolerance=absolute(0.05), measure=measure_dfc_exponent, identity=True,
    ),
    Claim(
        id="ghostnetv2-fc-attention-56", family="ghostnetv2", source=seed(_DFC_H, _V2 + ", Eq. 3"),
        quote="这在实际情况下是不可接受的",
        statement=(f"a fully connected attention map is unacceptable in practice at high resolution: GhostNetV2 1.0x "
                   f"with FC attention in its {FC_SIZE}x{FC_SIZE} blocks / as built, inference time (holds at "
                   f"{FC_UNACCEPTABLE:g}x or more: one stage's attention doubling the network's latency)"),
        expected=FC_UNACCEPTABLE, unit="x", tolerance=ABOVE, measure=measure_fc_in_network, timed=True,
        paper_device=_ARM,
    ),
    Claim(
        id="ghostnetv2-dfc-receptive-field", family="ghostnetv2", source=seed("GhostNet V2", _V2 + ", DFC attention"),
        quote="还可以捕获远程像素之间的依赖关系",
        statement=("DFC captures dependencies between distant pixels like the fully connected map it approximates: "
                   "share of GhostNetV2 1.0x's DFC gates whose impulse-measured receptive field covers their whole "
                   "feature map (holds at 1: all of them, as for FC attention)"),
        expected=1.0, unit="share", tolerance=absolute(0.0), measure=measure_dfc_receptive_field,
    ),
    Claim(
        id="ghostnetv2-vs-v1-latency", family="ghostnetv2", source=seed("GhostNet V2", _V2 + ", ImageNet table"),
        quote="但计算成本相似",
        statement=(f"GhostNetV2 1.0x costs about as much as GhostNetV1 at the same MACs (width {V1_SIMILAR_WIDTH:g}): "
                   "inference time V2 / V1 (within 10%)"),
        expected=1.0, unit="x", tolerance=rel(SIMILAR), measure=measure_v2_vs_v1_latency, timed=True,
        paper_device=_ARM,
    ),
    Claim(
        id="ghostnetv2-100-top1", family="ghostnetv2", source=seed("GhostNet V2", _V2 + ", ImageNet table"),
        quote="实现了 75.3%的 top-1 精度",
        statement="GhostNetV2 1.0x reaches 75.3% top-1 at 167M MACs",
        expected=75.3, unit="% top-1", tolerance=absolute(1.0),
        cited=cite("Tang et al. 2022, ImageNet table; official README", "75.3% top-1"),
    ),
    Claim(
        id="ghostnetv2-v1-top1", family="ghostnetv2", source=seed("GhostNet V2", _V2 + ", ImageNet table"),
        quote="显著高于 GhostNetV1 (74.5%)，但计算成本相似",
        statement="GhostNetV1 at similar cost reaches 74.5% top-1 (GhostNetV2 paper's comparison)",
        expected=74.5, unit="% top-1",
        cited=cite("Tang et al. 2022, comparison with GhostNetV1 (the V1 paper itself gives 73.9% at 1.0x)",
                   "74.5% top-1"),
    ),
]
