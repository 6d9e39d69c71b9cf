"""ESPNet claims: ESP against a standard convolution, HFF against gridding, EESP against ESP.

Every figure is counted on ``cnnprof.models.blocks.esp`` modules as built; the papers' formulas
are evaluated beside them (they count convolution weights: BN and PReLU are left out).

Gridding metric (defined here): an impulse (1 on every input channel at the centre of a 65x65
map) goes through an ESP module whose convolution weights are all 1 and whose BN / PReLU are
identities, so the output is exactly the support of each branch's receptive field. For each
output group (the channels of one dilated branch after fusion) the response is summed over its
channels; its *hole share* is the fraction of zero positions inside the bounding box of the
non-zero ones. A 3x3 kernel at dilation r covers 9 of (2r + 1)^2 positions, so a pure dilated
branch has holes 1 - 9 / (2r + 1)^2; a gridding-free response has none.
"""

from __future__ import annotations

from cnnprof.claims import ABOVE, Claim, Measurement, Plot, absolute, rel
from cnnprof.claims.common import conv_weights, count_module, source
from cnnprof.models.catalog import ESPNET, ESPNETV2

# ESPNet V1's module in the paper's example: N = M = 128, K = 4 parallel 3x3 branches.
ESP_M = 128
ESP_K = 4
KERNEL = 3
MAC_MAP = 64  # feature map (HxW) at which MACs are counted
SAME_RF_MAP = 32  # smaller map for the large-kernel standard convolution
# The seed's EESP example: M = 240, g = K = 4, d = M / K = 60.
EESP_M = 240
EESP_G = 4
# Gridding: ESPNet V1's K = 5 branches (dilations 1..16) on a narrow module.
GRID_K = 5
GRID_CHS = 40
GRID_MAP = 65


# -- ESP against a standard convolution ------------------------------------------------------------
def esp_formula(m: int, n_out: int, k: int, n: int = KERNEL) -> int:
    """ESPNet paper Sec. 3.1: an ESP module learns (N M + (N n)^2) / K weights."""
    return (n_out * m + (n_out * n) ** 2) // k


def effective_kernel(k: int, n: int = KERNEL) -> int:
    """Effective kernel of the largest branch, dilation 2^(K-1): (n - 1) 2^(K-1) + 1."""
    return (n - 1) * 2 ** (k - 1) + 1


def _esp_and_convs():
    from torch import nn

    from cnnprof.models.blocks.esp import ESP

    esp = ESP(ESP_M, ESP_M, branches=ESP_K, residual=True)
    conv3 = nn.Conv2d(ESP_M, ESP_M, KERNEL, padding=KERNEL // 2, bias=False)
    nk = effective_kernel(ESP_K)
    conv_rf = nn.Conv2d(ESP_M, ESP_M, nk, padding=nk // 2, bias=False)
    return esp, conv3, conv_rf


def measure_esp_vs_conv_params() -> Measurement:
    esp, conv3, _ = _esp_and_convs()
    ratio = conv_weights(conv3) / conv_weights(esp)
    formula = KERNEL**2 * ESP_M * ESP_M / esp_formula(ESP_M, ESP_M, ESP_K)
    return Measurement(
        measured=ratio, formula=formula,
        detail=(f"built ESP({ESP_M}->{ESP_M}, K={ESP_K}, n={KERNEL}) has {conv_weights(esp):,} conv weights "
                f"({sum(p.numel() for p in esp.parameters()):,} params with BN/PReLU); a standard {KERNEL}x{KERNEL} "
                f"conv {ESP_M}->{ESP_M} has {conv_weights(conv3):,}; paper formula n²NM / ((NM + (Nn)²)/K) = "
                f"{formula:.3f}; the ESP's effective receptive field is {effective_kernel(ESP_K)}x"
                f"{effective_kernel(ESP_K)}, the standard conv's {KERNEL}x{KERNEL}"),
    )


def measure_esp_vs_conv_macs() -> Measurement:
    esp, conv3, _ = _esp_and_convs()
    shape = (ESP_M, MAC_MAP, MAC_MAP)
    e, c = count_module(esp, shape).macs, count_module(conv3, shape).macs
    formula = KERNEL**2 * ESP_M * ESP_M / esp_formula(ESP_M, ESP_M, ESP_K)
    return Measurement(
        measured=c / e, formula=formula,
        detail=(f"counted at {MAC_MAP}x{MAC_MAP}: ESP {e:,} MACs vs standard {KERNEL}x{KERNEL} conv {c:,} "
                "(stride 1, same padding: MACs = weights x positions, so the ratio is the weights'); "
                f"formula {formula:.3f}"),
    )


def measure_esp_vs_same_rf() -> Measurement:
    esp, _, conv_rf = _esp_and_convs()
    nk = effective_kernel(ESP_K)
    shape = (ESP_M, SAME_RF_MAP, SAME_RF_MAP)
    e, c = count_module(esp, shape).macs, count_module(conv_rf, shape).macs
    formula = nk**2 * ESP_M * ESP_M / esp_formula(ESP_M, ESP_M, ESP_K)
    return Measurement(
        measured=c / e, formula=formula,
        detail=(f"standard {nk}x{nk} conv {ESP_M}->{ESP_M} (the ESP's effective receptive field "
                f"(n-1)2^(K-1)+1 = {nk}): {conv_weights(conv_rf):,} weights, {c:,} MACs at "
                f"{SAME_RF_MAP}x{SAME_RF_MAP} vs ESP {conv_weights(esp):,} weights, {e:,} MACs; "
                f"formula n_K²NM / ((NM + (Nn)²)/K) = {formula:.1f}; params ratio "
                f"{conv_weights(conv_rf) / conv_weights(esp):.1f}"),
    )


# -- HFF and gridding -----------------------------------------------------------------------------
def _impulse_module(module):
    """Conv weights set to 1, BN / PReLU replaced by identities: the response is the support."""
    import torch
    from torch import nn

    for name, child in list(module.named_modules()):
        for attr in ("bn", "act", "norm_act"):
            if hasattr(child, attr) and isinstance(getattr(child, attr), (nn.Module,)):
                setattr(child, attr, nn.Identity())
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(1.0)
    return module.eval()


def hole_share(response) -> float:
    """Zero positions / positions inside the bounding box of the non-zero ones (2-D tensor)."""
    import torch

    nonzero = response.abs() > 1e-6
    ys, xs = torch.nonzero(nonzero, as_tuple=True)
    if len(ys) == 0:
        return 1.0
    box = nonzero[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
    return 1.0 - box.float().mean().item()


def group_responses(module, in_chs: int, groups: list[int], size: int = GRID_MAP):
    """Impulse response of ``module`` summed over each output group's channels (sizes ``groups``)."""
    import torch

    x = torch.zeros(1, in_chs, size, size)
    x[..., size // 2, size // 2] = 1.0
    with torch.inference_mode():
        y = module(x)[0].abs()
    out, start = [], 0
    for n in groups:
        out.append(y[start: start + n].sum(0))
        start += n
    return out


def esp_gridding(hff: bool, *, k: int = GRID_K, chs: int = GRID_CHS) -> tuple[list[float], list, tuple[int, ...]]:
    """Hole share of each output group of ESP(chs -> chs, K = k) with or without HFF."""
    from cnnprof.models.blocks.esp import ESP

    esp = _impulse_module(ESP(chs, chs, branches=k, hff=hff, residual=False))
    d = chs // k
    maps = group_responses(esp, chs, [chs - (k - 1) * d] + [d] * (k - 1))
    return [hole_share(r) for r in maps], maps, esp.dilations


def eesp_gridding(hff: bool, *, k: int = 4, chs: int = 32) -> tuple[list[float], tuple[int, ...]]:
    """The same for ESPNetv2's EESP (HFF from the dilation-1 branch; grouped 1x1 merge keeps the
    K groups apart)."""
    from cnnprof.models.blocks.esp import EESP

    eesp = _impulse_module(EESP(chs, chs, branches=k, groups=k, r_lim=13, hff=hff, residual=False))
    maps = group_responses(eesp, chs, [chs // k] * k)
    return [hole_share(r) for r in maps], eesp.dilations


def _mean_dilated(shares: list[float]) -> float:
    return sum(shares[1:]) / len(shares[1:])


def _gridding_plot(without_maps, with_maps, dilations) -> Plot:
    def draw(path) -> None:
        from cnnprof.plots import _figure, save

        plt = _figure()
        cols = len(dilations)
        fig, axes = plt.subplots(2, cols, figsize=(2.2 * cols, 4.8))
        for row, (maps, label) in enumerate(((without_maps, "without HFF"), (with_maps, "with HFF"))):
            for col, (resp, dil) in enumerate(zip(maps, dilations)):
                ax = axes[row][col]
                half = (2 ** (len(dilations) - 1)) + 4  # the largest dilation plus a margin
                c = resp.shape[0] // 2
                view = resp[c - half: c + half + 1, c - half: c + half + 1]
                ax.imshow((view > 1e-6).float().numpy() * 0.3 + (view / view.max()).numpy(), cmap="magma")
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(f"{label}\ngroup d={dil}: holes {hole_share(resp):.2f}", fontsize=7)
        fig.suptitle("ESP impulse response per output group (conv weights 1, no BN/PReLU)", fontsize=9)
        save(fig, path)
        plt.close(fig)

    return Plot("esp-hff-gridding.png", draw)


def measure_hff_gridding() -> Measurement:
    without, without_maps, dilations = esp_gridding(False)
    with_, with_maps, _ = esp_gridding(True)
    e_without, e_dil = eesp_gridding(False)
    e_with, _ = eesp_gridding(True)
    per = ", ".join(f"d={d}: {a:.3f} -> {b:.3f}" for d, a, b in zip(dilations[1:], without[1:], with_[1:]))
    return Measurement(
        measured=_mean_dilated(with_), expected=0.0,
        detail=(f"mean hole share of the dilated groups of ESP({GRID_CHS}->{GRID_CHS}, K={GRID_K}) on an impulse "
                f"(weights 1, BN/PReLU removed; holes = zeros in each group's response box): without HFF "
                f"{_mean_dilated(without):.3f}, with HFF {_mean_dilated(with_):.3f} ({per}). HFF adds the smaller "
                "dilations into each larger group, but the official ESP fuses only the dilated branches "
                "(all even dilations), so odd offsets stay empty; EESP, whose HFF starts at the dilation-1 "
                f"branch (dilations {e_dil}): {_mean_dilated(e_without):.3f} -> {_mean_dilated(e_with):.3f}"),
        plots=(_gridding_plot(without_maps, with_maps, dilations),),
    )


def measure_hff_reduction() -> Measurement:
    without, _, _ = esp_gridding(False)
    with_, _, _ = esp_gridding(True)
    a, b = _mean_dilated(without), _mean_dilated(with_)
    return Measurement(
        measured=1.0 - b / a, expected=0.0,
        detail=(f"relative drop of the mean hole share of the dilated groups with HFF: {a:.3f} -> {b:.3f} "
                "(same impulse test as esp-hff-gridding)"),
    )


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
    p_esp, p_eesp = (sum(p.numel() for p in m.parameters()) for m in (esp, eesp))
    formula = eesp_ratio_formula(EESP_M, EESP_G, EESP_G)
    return Measurement(
        measured=w_esp / w_eesp, formula=formula,
        detail=(f"built ESP({EESP_M}->{EESP_M}, K={EESP_G} branches of d={EESP_M // EESP_G}, n={KERNEL}) has "
                f"{w_esp:,} conv weights, EESP(g=K={EESP_G}) {w_eesp:,}; the seed's formula "
                f"(Md + n²d²K)/(Md/g + (n²+d)dK) = {formula:.3f}; with BN/PReLU params {p_esp:,} vs {p_eesp:,} "
                f"({p_esp / p_eesp:.2f}x)"),
    )


def measure_eesp_macs() -> Measurement:
    esp, eesp = _esp_and_eesp()
    shape = (EESP_M, 56, 56)
    e, v2 = count_module(esp, shape).macs, count_module(eesp, shape).macs
    return Measurement(
        measured=e / v2, formula=eesp_ratio_formula(EESP_M, EESP_G, EESP_G),
        detail=f"counted at 56x56: ESP {e:,} MACs, EESP {v2:,} MACs (all stride 1: the weights' ratio)",
    )


_V1 = source("ESPNetV1", ESPNET)
# The paper's formula at its own example (N = M = 128, K = 4, n = 3): the expected figures.
_PAPER_3X3 = KERNEL**2 * ESP_M * ESP_M / esp_formula(ESP_M, ESP_M, ESP_K)
_V2 = source("ESPNetV2 (EESP)", ESPNETV2)
CLAIMS = [
    Claim(
        id="esp-vs-conv-params", family="espnet", source=_V1 + " Sec. 3.1",
        statement=(f"ESP factorises a standard conv (point-wise reduce + K dilated branches): with N = M = {ESP_M}, "
                   f"K = {ESP_K}, n = 3 it learns n²NM·K/(NM + (Nn)²) times fewer weights than a 3x3 conv"),
        expected=_PAPER_3X3, unit="x", tolerance=rel(0.02), measure=measure_esp_vs_conv_params,
    ),
    Claim(
        id="esp-vs-conv-macs", family="espnet", source=_V1 + " Sec. 3.1",
        statement="the same reduction in multiply-adds (ESP against a 3x3 standard conv)",
        expected=_PAPER_3X3, unit="x", tolerance=rel(0.02), measure=measure_esp_vs_conv_macs,
    ),
    Claim(
        id="esp-vs-conv-same-rf", family="espnet", source=_V1 + " Sec. 3.1",
        statement=(f"against a standard conv of the same effective receptive field "
                   f"({effective_kernel(ESP_K)}x{effective_kernel(ESP_K)}), ESP's MAC reduction is "
                   "n_K²NM·K/(NM + (Nn)²)"),
        expected=effective_kernel(ESP_K) ** 2 * ESP_M * ESP_M / esp_formula(ESP_M, ESP_M, ESP_K), unit="x",
        tolerance=rel(0.02), measure=measure_esp_vs_same_rf,
    ),
    Claim(
        id="esp-hff-gridding", family="espnet", source=_V1 + " Sec. 3.1 (HFF), Fig. 2",
        statement="HFF removes the gridding artifacts of ESP's dilated branches (seed: HFF 消除了网格伪影): "
                  "no holes in the dilated groups' impulse responses",
        expected=0.0, unit="hole share", tolerance=absolute(0.05), measure=measure_hff_gridding,
    ),
    Claim(
        id="esp-hff-gridding-reduction", family="espnet", source=_V1 + " Sec. 3.1 (HFF)",
        statement="HFF reduces gridding: the dilated groups' hole share is lower with HFF than without",
        expected=0.0, unit="relative drop", tolerance=ABOVE, measure=measure_hff_reduction,
    ),
    Claim(
        id="eesp-vs-esp-params", family="espnetv2", source=_V2 + " Sec. 3.2",
        statement="with M = 240, g = K = 4, d = M/K = 60, EESP has ~7x fewer parameters than ESP",
        expected=7.0, unit="x", tolerance=rel(0.1), measure=measure_eesp_params,
    ),
    Claim(
        id="eesp-vs-esp-macs", family="espnetv2", source=_V2 + " Sec. 3.2",
        statement="EESP's complexity reduction over ESP, (Md + n²d²K)/(Md/g + (n²+d)dK), holds for multiply-adds",
        expected=7.0, unit="x", tolerance=rel(0.1), measure=measure_eesp_macs,
    ),
]
