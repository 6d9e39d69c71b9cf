"""ESPNet V1 claims: ESP against a standard convolution, and HFF (EESP against ESP: ``espnetv2``).

Every figure is counted or timed on ``cnnprof.models.blocks.esp`` modules as built; the papers'
formulas are evaluated beside them (they count convolution weights: BN and PReLU are left out).
Where the measured value is the formula the module was built from (a weight count), the row is an
``identity``: it checks that the built module is the one described.

ESP's receptive field is measured, not assumed: an impulse through the module as built (conv
weights |w| + 1, BN as identity) marks the positions it reaches, and the standard convolution of
"the same receptive field" takes that side. Its memory is judged on weights plus the activations
a training forward keeps, on the map ESPNet runs the module at: the activations alone, against a
bare convolution that keeps only its input, are above 1 by construction (a consistency row).

HFF and gridding. The seed's claim ("ESP 中的 HFF 消除了网格伪影") is about feature maps of a
*trained* ESPNet (the paper's Fig. 2), which cannot be reproduced without training on Cityscapes:
that row is ``cited``. Beside it, a clearly labelled proxy at initialisation: a single active
pixel (the seed's own example of a gridding artifact) goes through a stack of three ESP modules
with random weights (PyTorch's default initialisation, eight seeds), and the *checkerboard share*
of the response is the fraction of its energy (mean removed per channel) at spatial frequencies
within 1/8 cycle/pixel of the Nyquist corner (|f_x|, |f_y| >= 3/8), where a checkerboard pattern
sits: about 1/16 for a flat spectrum (``flat_share``). The proxy compares it with and without
HFF, seed by seed.
"""

from __future__ import annotations

from cnnprof.claims import ABOVE, BELOW, THREAD_CLOCK, Claim, Measurement, Plot, absolute, rel
from cnnprof.claims.common import (
    conv_weights,
    count_module,
    device_text,
    fmt_bytes,
    geometric_mean_ci,
    median,
    params,
    ratio_summary,
    saved_bytes,
    seed,
    time_inference,
)
from cnnprof.models.catalog import ESPNET

# ESPNet V1's module in the paper's example: N = M = 128, K = 4 parallel 3x3 branches.
ESP_M = 128
ESP_K = 4
KERNEL = 3
MAC_MAP = 64  # feature map (HxW) at which MACs are counted
SAME_RF_MAP = 32  # smaller map for the large-kernel standard convolution
RF_PROBE_CHS = 32  # the impulse probe of ESP's receptive field: channels (any K divides them)
# The memory verdict: an ESPNet-C level-3 map (1/8 of a 512x1024 Cityscapes image), where the
# network runs its ESP modules; the activations ESP keeps grow with the map, the conv's weights do not.
MEMORY_MAP = (64, 128)
# HFF proxy: a stack of ESPNet V1's modules (K = 5 branches, dilations 1..16) on a narrow map.
PROXY_MODULES = 3
PROXY_SEEDS = 8
PROXY_CHS = 40
PROXY_MAP = 64
NYQUIST_BAND = 3 / 8  # cycles/pixel: |f| from here to 1/2 is "near Nyquist"
# HFF latency: an ESPNet-C level-3 module (128 channels, 1/8 of a 512x1024 image).
HFF_TIME_CHS = 128
HFF_TIME_SHAPE = (64, 128)


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
                f"({params(esp):,} params with BN/PReLU); a standard {KERNEL}x{KERNEL} conv {ESP_M}->{ESP_M} has "
                f"{conv_weights(conv3):,}; paper formula n²NM / ((NM + (Nn)²)/K) = {formula:.3f}. The weight count is "
                "the formula the module is built from: this checks the module, not the claim"),
    )


def measure_esp_vs_conv_macs() -> Measurement:
    esp, conv3, _ = _esp_and_convs()
    shape = (ESP_M, MAC_MAP, MAC_MAP)
    e, c = count_module(esp, shape).macs, count_module(conv3, shape).macs
    formula = KERNEL**2 * ESP_M * ESP_M / esp_formula(ESP_M, ESP_M, ESP_K)
    return Measurement(
        measured=c / e, formula=formula,
        detail=(f"counted at {MAC_MAP}x{MAC_MAP}: ESP {e:,} MACs vs standard {KERNEL}x{KERNEL} conv {c:,} "
                "(stride 1, same padding: MACs = weights x positions, so the ratio is the weights')"),
    )


def esp_reach(k: int = ESP_K, *, chs: int = RF_PROBE_CHS) -> tuple[int, int]:
    """ESP(K=k)'s receptive field, measured by an impulse: the side of the square a centre
    impulse reaches in the output, and how many positions of it are reached. The module is probed
    as built (residual, BN, PReLU) with conv weights |w| + 1 and BN as identity, in float64, so the
    response marks exactly the positions reached (``ghostnet.support_copy``)."""
    import torch

    from cnnprof.claims.ghostnet import support_copy
    from cnnprof.models.blocks.esp import ESP

    probe = support_copy(ESP(chs, chs, branches=k, residual=True))
    size = 2 * effective_kernel(k) + 1  # room on every side: the reach is never clipped by the border
    x = torch.zeros(1, chs, size, size, dtype=torch.float64)
    x[..., size // 2, size // 2] = 1.0
    with torch.inference_mode():
        reached = (probe(x) - probe(torch.zeros_like(x))).abs().sum(1)[0] > 0
    ys, xs = torch.nonzero(reached, as_tuple=True)
    side = int(max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)) if len(ys) else 0
    return side, int(reached.sum())


def measure_esp_receptive_field() -> Measurement:
    side, reached = esp_reach()
    return Measurement(
        measured=float(side),
        detail=(f"a centre impulse through ESP({RF_PROBE_CHS}->{RF_PROBE_CHS}, K={ESP_K}, dilations "
                f"{', '.join(str(2 ** i) for i in range(ESP_K))}) as built (conv weights |w| + 1, BN as identity, "
                f"float64) reaches a {side}x{side} square against 3x3 for the conv it replaces; inside it only "
                f"{reached} of {side * side} positions ({reached / (side * side):.0%}): the union of the dilated "
                "3x3 grids, a sparse field (the gridding HFF addresses). The span follows from the dilations the "
                "module is built with"),
    )


def measure_esp_vs_same_rf() -> Measurement:
    from torch import nn

    esp, _, _ = _esp_and_convs()
    nk, reached = esp_reach()
    conv_rf = nn.Conv2d(ESP_M, ESP_M, nk, padding=nk // 2, bias=False)
    shape = (ESP_M, SAME_RF_MAP, SAME_RF_MAP)
    e, c = count_module(esp, shape).macs, count_module(conv_rf, shape).macs
    formula = effective_kernel(ESP_K) ** 2 * ESP_M * ESP_M / esp_formula(ESP_M, ESP_M, ESP_K)
    return Measurement(
        measured=c / e, formula=formula,
        detail=(f"standard {nk}x{nk} conv {ESP_M}->{ESP_M}, {nk} being the side of ESP's receptive field measured "
                f"by an impulse (esp-receptive-field; {reached} of its {nk * nk} positions reached): "
                f"{conv_weights(conv_rf):,} weights, {c:,} MACs at {SAME_RF_MAP}x{SAME_RF_MAP} vs ESP "
                f"{conv_weights(esp):,} weights, {e:,} MACs; formula n_K²NM / ((NM + (Nn)²)/K) = {formula:.1f} with "
                f"n_K = (n-1)2^(K-1)+1 = {effective_kernel(ESP_K)}. Both MAC counts are the weights times the positions"),
    )


def memory_vs_same_rf(size: int | tuple[int, int] = SAME_RF_MAP, chs: int = ESP_M, k: int = ESP_K) -> dict[str, int]:
    """Activation bytes a training forward keeps for backward, and weight bytes, of ESP(chs, K=k)
    and of the standard conv with its receptive field, on a ``size`` map (a side or (H, W))."""
    from torch import nn

    from cnnprof.models.blocks.esp import ESP

    h, w = (size, size) if isinstance(size, int) else size
    esp = ESP(chs, chs, branches=k, residual=True)
    nk = effective_kernel(k)
    conv = nn.Conv2d(chs, chs, nk, padding=nk // 2, bias=False)
    shape = (chs, h, w)
    return {"esp_saved": saved_bytes(esp, shape), "conv_saved": saved_bytes(conv, shape),
            "esp_weights": 4 * params(esp), "conv_weights": 4 * params(conv)}


def _memory_text(m: dict[str, int], shape: tuple[int, int]) -> str:
    nk = effective_kernel(ESP_K)
    return (f"bytes autograd keeps for backward in one training forward at 1x{ESP_M}x{shape[0]}x{shape[1]} (fp32, "
            f"each storage once): ESP(K={ESP_K}) {fmt_bytes(m['esp_saved'])} (its reduced map, every branch output, "
            f"the concat and the BN/PReLU inputs) vs a standard {nk}x{nk} conv {fmt_bytes(m['conv_saved'])} (its "
            f"input only); weights: ESP {fmt_bytes(m['esp_weights'])}, conv {fmt_bytes(m['conv_weights'])}")


def measure_esp_memory() -> Measurement:
    m = memory_vs_same_rf(MEMORY_MAP)
    total = (m["esp_saved"] + m["esp_weights"]) / (m["conv_saved"] + m["conv_weights"])
    # both activation figures grow with the positions, the weights do not: where the totals cross
    positions = MEMORY_MAP[0] * MEMORY_MAP[1]
    per_position = (m["esp_saved"] - m["conv_saved"]) / positions
    crossing = (m["conv_weights"] - m["esp_weights"]) / per_position if per_position > 0 else float("inf")
    return Measurement(
        measured=total,
        detail=(f"weights plus activations, ESP / conv = {total:.3f}, on an ESPNet-C level-3 map (1/8 of 512x1024): "
                f"{_memory_text(m, MEMORY_MAP)}. The activations grow with the map and the weights do not: ESP "
                f"needs less memory below about {crossing:,.0f} positions per image ({crossing ** 0.5:.0f}² at this "
                f"width), more above (esp-activations-vs-conv is the activations alone)"),
    )


def measure_esp_activations() -> Measurement:
    m = memory_vs_same_rf()
    return Measurement(
        measured=m["esp_saved"] / m["conv_saved"],
        detail=(f"activations alone, ESP / conv: {_memory_text(m, (SAME_RF_MAP, SAME_RF_MAP))}. A bare convolution "
                "keeps only its input, the module keeps its input and several maps of the same size, so the ratio "
                "is above 1 for any K and map size: a consistency check, not evidence"),
    )


# -- HFF ------------------------------------------------------------------------------------------------
def checkerboard_share(response, band: float = NYQUIST_BAND) -> float:
    """Share of the energy of ``response`` (C x H x W, mean removed per channel) at frequencies with
    both |f_x| and |f_y| >= ``band`` cycles/pixel: where a checkerboard pattern sits."""
    import torch

    y = response - response.mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.fft2(y).abs() ** 2
    h, w = y.shape[-2:]
    fy = torch.fft.fftfreq(h).abs()[:, None]
    fx = torch.fft.fftfreq(w).abs()[None, :]
    corner = (fy >= band) & (fx >= band)
    total = float(power.sum())
    return float(power[..., corner].sum()) / total if total > 0 else 0.0


def flat_share(size: int, band: float = NYQUIST_BAND) -> float:
    """The checkerboard share of a flat (white) spectrum on a size x size grid: the fraction of
    the discrete frequencies in the corner, squared over the two axes."""
    import torch

    return float((torch.fft.fftfreq(size).abs() >= band).float().mean()) ** 2


def esp_stack(hff: bool, seed_: int, *, modules: int = PROXY_MODULES, chs: int = PROXY_CHS):
    """``modules`` residual ESP modules (K = 5) with PyTorch's default initialisation under ``seed_``."""
    import torch
    from torch import nn

    from cnnprof.models.blocks.esp import ESP

    torch.manual_seed(seed_)
    return nn.Sequential(*(ESP(chs, chs, branches=5, hff=hff, residual=True) for _ in range(modules))).eval()


def impulse(chs: int = PROXY_CHS, size: int = PROXY_MAP):
    """A single active pixel in every channel at the centre (the seed's gridding example)."""
    import torch

    x = torch.zeros(1, chs, size, size)
    x[..., size // 2, size // 2] = 1.0
    return x


def hff_proxy(seeds: int | None = None, *, modules: int = PROXY_MODULES, size: int = PROXY_MAP,
              chs: int = PROXY_CHS) -> dict[str, list]:
    """Checkerboard share of the impulse response of the stack, with and without HFF, per seed
    (``PROXY_SEEDS`` seeds unless told)."""
    import torch

    seeds = PROXY_SEEDS if seeds is None else seeds
    out: dict[str, list] = {"with": [], "without": []}
    x = impulse(chs, size)
    for s in range(seeds):
        for hff, key in ((True, "with"), (False, "without")):
            with torch.inference_mode():
                y = esp_stack(hff, s, modules=modules, chs=chs)(x)[0]
            out[key].append(checkerboard_share(y))
    return out


def _response_maps(hff: bool, seed_: int = 0):
    """|response| summed over channels after each module of the stack (for the picture)."""
    import torch

    stack = esp_stack(hff, seed_)
    y, maps = impulse(), []
    with torch.inference_mode():
        for module in stack:
            y = module(y)
            maps.append((y[0].abs().sum(0), checkerboard_share(y[0])))
    return maps


def _gridding_plot() -> Plot:
    def draw(path) -> None:
        from cnnprof.plots import _figure, save

        plt = _figure()
        rows = ((False, "without HFF"), (True, "with HFF"))
        fig, axes = plt.subplots(2, PROXY_MODULES, figsize=(2.6 * PROXY_MODULES, 5.4))
        for r, (hff, label) in enumerate(rows):
            for c, (resp, share) in enumerate(_response_maps(hff)):
                half = 20
                mid = resp.shape[0] // 2
                view = resp[mid - half: mid + half + 1, mid - half: mid + half + 1]
                axes[r][c].imshow(view.log1p().numpy(), cmap="magma")
                axes[r][c].set_xticks([])
                axes[r][c].set_yticks([])
                axes[r][c].set_title(f"{label}, after module {c + 1}\ncheckerboard share {share:.3f}", fontsize=7)
        fig.suptitle("Proxy at initialisation (random weights, seed 0): impulse response of a stack of ESP modules "
                     "(log |response|, summed over channels)", fontsize=8)
        save(fig, path)
        plt.close(fig)

    return Plot("esp-hff-gridding.png", draw)


def eesp_proxy(seeds: int | None = None) -> list[float]:
    """The same ratio (with / without HFF) for a stack of EESP units, whose fusion starts at the
    dilation-1 branch (dilations 1-4)."""
    import torch
    from torch import nn

    from cnnprof.models.blocks.esp import EESP

    ratios, x = [], impulse(32)
    for s in range(PROXY_SEEDS if seeds is None else seeds):
        shares = []
        for hff in (True, False):
            torch.manual_seed(s)
            stack = nn.Sequential(*(EESP(32, 32, branches=4, groups=4, r_lim=13, hff=hff)
                                    for _ in range(PROXY_MODULES))).eval()
            with torch.inference_mode():
                shares.append(checkerboard_share(stack(x)[0]))
        ratios.append(shares[0] / shares[1])
    return ratios


def measure_hff_proxy() -> Measurement:
    shares = hff_proxy()
    ratios = [a / b for a, b in zip(shares["with"], shares["without"])]
    gm, lo, hi = geometric_mean_ci(ratios)
    e_gm, e_lo, e_hi = geometric_mean_ci(eesp_proxy())
    mean_with = sum(shares["with"]) / len(ratios)
    mean_without = sum(shares["without"]) / len(ratios)
    direction = "lowers" if hi < 1 else "raises" if lo > 1 else "does not measurably change"
    return Measurement(
        measured=gm, ci=(lo, hi), expected=1.0,
        detail=(f"PROXY AT INITIALISATION, not the paper's trained maps: a single active pixel through "
                f"{PROXY_MODULES} residual ESP modules (K=5, dilations 1-16, {PROXY_CHS} channels, {PROXY_MAP}x"
                f"{PROXY_MAP}, default random init, BN/PReLU as initialised), {len(ratios)} seeds; checkerboard share "
                f"of the response energy (|f_x|, |f_y| >= 3/8 cycle/pixel; {flat_share(PROXY_MAP):.4f} for a flat "
                f"spectrum): with HFF "
                f"{mean_with:.4f}, without {mean_without:.4f}; with / without per seed, geometric mean {gm:.3f} "
                f"(95% t-interval {lo:.3f}-{hi:.3f}): at initialisation HFF {direction} the checkerboard share. The "
                "official ESP fuses only its dilated branches (all even dilations), which all pass a checkerboard "
                "unchanged, so summing them cannot cancel it; random zero-mean kernels have no smooth pass-band to "
                f"grid. EESP, fusing from its dilation-1 branch: {e_gm:.3f} ({e_lo:.3f}-{e_hi:.3f})"),
        plots=(_gridding_plot(),),
    )


def measure_hff_params() -> Measurement:
    from cnnprof.models.blocks.esp import ESP

    shape = (ESP_M, MAC_MAP, MAC_MAP)
    a, b = ESP(ESP_M, ESP_M, branches=5, hff=True), ESP(ESP_M, ESP_M, branches=5, hff=False)
    ca, cb = count_module(a, shape), count_module(b, shape)
    adds = sum(ESP_M // 5 for _ in range(5 - 2)) * MAC_MAP * MAC_MAP
    return Measurement(
        measured=float(params(a) - params(b)),
        detail=(f"ESP({ESP_M}->{ESP_M}, K=5) with HFF: {params(a):,} params, {ca.macs:,} MACs; without: "
                f"{params(b):,} params, {cb.macs:,} MACs at {MAC_MAP}x{MAC_MAP}. HFF is K-2 = 3 element-wise "
                f"additions ({adds:,} adds at this size), which have no weights and are not multiply-adds: "
                "true by construction; what HFF costs in time is esp-hff-latency"),
    )


def measure_hff_latency(*, chs: int = HFF_TIME_CHS, shape: tuple[int, int] = HFF_TIME_SHAPE,
                        protocol=None) -> Measurement:
    from cnnprof.models.blocks.esp import ESP

    with_hff = ESP(chs, chs, branches=5, hff=True)
    without = ESP(chs, chs, branches=5, hff=False)
    without.load_state_dict(with_hff.state_dict())
    (t_with, t_without), busy = time_inference([with_hff, without], [(chs, *shape)] * 2, protocol)
    ratio, lo, hi, p = ratio_summary(t_with, t_without)
    return Measurement(
        measured=ratio, ci=(lo, hi), device=device_text(clock=THREAD_CLOCK), busy=busy, clock=THREAD_CLOCK,
        detail=(f"ESP({chs}->{chs}, K=5) inference at 1x{chs}x{shape[0]}x{shape[1]} (an ESPNet-C level-3 module), "
                f"torch eager, interleaved, {len(t_with)} calls each: with HFF {median(t_with):.3f} ms, without "
                f"{median(t_without):.3f} ms, ratio {ratio:.3f} (95% bootstrap interval {lo:.3f}-{hi:.3f}, "
                f"Mann-Whitney p={p:.2g}); same weights in both"),
    )


_V1_PAPER = ESPNET + ", Sec. 3.1"
# The paper's formula at its own example (N = M = 128, K = 4, n = 3): the expected figures.
_PAPER_3X3 = KERNEL**2 * ESP_M * ESP_M / esp_formula(ESP_M, ESP_M, ESP_K)
_FACTORISE = "这种分解方法能够大量减少 ESP 模块的参数和内存"
CLAIMS = [
    Claim(
        id="esp-vs-conv-params", family="espnet", source=seed("ESP 模块", _V1_PAPER), quote=_FACTORISE,
        statement=(f"ESP factorises a standard conv (point-wise reduce + K dilated branches): with N = M = {ESP_M}, "
                   f"K = {ESP_K}, n = 3 it learns n²NM·K/(NM + (Nn)²) times fewer weights than a 3x3 conv"),
        expected=_PAPER_3X3, unit="x", tolerance=rel(0.02), measure=measure_esp_vs_conv_params, identity=True,
    ),
    Claim(
        id="esp-vs-conv-macs", family="espnet", source=seed("ESP 模块", _V1_PAPER), quote=_FACTORISE,
        statement="the same reduction in multiply-adds (ESP against a 3x3 standard conv)",
        expected=_PAPER_3X3, unit="x", tolerance=rel(0.02), measure=measure_esp_vs_conv_macs, identity=True,
    ),
    Claim(
        id="esp-receptive-field", family="espnet", source=seed("ESP 模块", _V1_PAPER), quote="并且保证了较大的感受野",
        statement=(f"ESP keeps a large receptive field: the side of the square a centre impulse reaches through ESP "
                   f"(K = {ESP_K}, dilations 1-{2 ** (ESP_K - 1)}) is (n-1)2^(K-1)+1 = {effective_kernel(ESP_K)}, "
                   "against 3 for the 3x3 conv it replaces"),
        expected=float(effective_kernel(ESP_K)), unit="pixels", tolerance=absolute(0.0),
        measure=measure_esp_receptive_field, identity=True,
    ),
    Claim(
        id="esp-vs-conv-same-rf", family="espnet", source=seed("ESP 模块", _V1_PAPER), quote=_FACTORISE,
        statement=("against a standard conv of ESP's receptive field (its side measured by an impulse), ESP's MAC "
                   "reduction is n_K²NM·K/(NM + (Nn)²)"),
        expected=effective_kernel(ESP_K) ** 2 * ESP_M * ESP_M / esp_formula(ESP_M, ESP_M, ESP_K), unit="x",
        tolerance=rel(0.02), measure=measure_esp_vs_same_rf, identity=True,
    ),
    Claim(
        id="esp-memory-vs-conv", family="espnet", source=seed("ESP 模块", _V1_PAPER), quote=_FACTORISE,
        statement=(f"ESP needs less memory than a standard conv of the same receptive field "
                   f"({effective_kernel(ESP_K)}x{effective_kernel(ESP_K)}): weights plus the activations a training "
                   f"forward keeps, ESP / conv, on an ESPNet-C level-3 map {MEMORY_MAP[0]}x{MEMORY_MAP[1]} "
                   "(holds below 1)"),
        expected=1.0, unit="x", tolerance=BELOW, measure=measure_esp_memory,
    ),
    Claim(
        id="esp-activations-vs-conv", family="espnet", source=seed("ESP 模块", _V1_PAPER), quote=_FACTORISE,
        statement=("consistency: ESP keeps more activations for backward than a bare conv of its receptive field, "
                   "which keeps only its input (activations alone, ESP / conv, above 1 by construction)"),
        expected=1.0, unit="x", tolerance=ABOVE, measure=measure_esp_activations, identity=True,
    ),
    Claim(
        id="esp-hff-gridding", family="espnet", source=seed("HFF 特性", ESPNET + ", Sec. 3.1, Fig. 2"),
        quote="ESP 中的 HFF 消除了网格伪影",
        statement="HFF removes the gridding (checkerboard) artifacts from the feature maps of a trained ESPNet",
        expected=None, unit="",
        cited=("the claim is about feature maps of an ESPNet trained on Cityscapes (the paper's Fig. 2 "
               "visualisation), not measurable without that training; esp-hff-checkerboard-proxy measures a proxy "
               "at initialisation"),
    ),
    Claim(
        id="esp-hff-checkerboard-proxy", family="espnet", source=seed("HFF 特性", ESPNET + ", Sec. 3.1"),
        quote="为了解决 ESP 中的网格问题",
        statement=(f"PROXY AT INITIALISATION (random weights, not trained maps): HFF lowers the checkerboard share of "
                   f"the impulse response of a stack of {PROXY_MODULES} ESP modules; with / without HFF over "
                   f"{PROXY_SEEDS} seeds (holds below 1)"),
        expected=1.0, unit="ratio", tolerance=BELOW, measure=measure_hff_proxy,
    ),
    Claim(
        id="esp-hff-params", family="espnet", source=seed("HFF 特性", _V1_PAPER), quote="且不会增加 ESP 模块的复杂性",
        statement="HFF adds no parameters and no multiply-adds to ESP (parameters with HFF - without)",
        expected=0.0, unit="params", tolerance=absolute(0.0), measure=measure_hff_params, identity=True,
    ),
    Claim(
        id="esp-hff-latency", family="espnet", source=seed("HFF 特性", _V1_PAPER), quote="且不会增加 ESP 模块的复杂性",
        statement="HFF costs little time: inference time of ESP with HFF / without (holds within 10%)",
        expected=1.0, unit="x", tolerance=rel(0.10), measure=measure_hff_latency, timed=True,
        paper_device="the paper gives no timing of HFF",
    ),
]
