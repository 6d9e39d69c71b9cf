"""EfficientNet claims: compound scaling (V1) and training-aware design (V2).

V1 figures are counted on ``cnnprof.models.efficientnet`` networks scaled one dimension at a time
and by ``cnnprof.scaling`` (the same code as ``cnnprof scale``). V2's claims are about training
speed, so they time training steps (forward, cross-entropy, backward, SGD; torch eager, CPU, one
thread), interleaving the compared networks in one process to cancel most of a shared machine's
noise; they say "on this CPU", where the paper timed TPUs and GPUs.
"""

from __future__ import annotations

import math

from cnnprof.claims import ABOVE, BELOW, Claim, Measurement, NotAvailable, Plot, absolute, rel
from cnnprof.claims.common import (
    cite,
    count_module,
    count_registered,
    exponent,
    fmt_m,
    interleaved,
    quick_protocol,
    ratio_summary,
    source,
    timing_device,
    train_step_runners,
)
from cnnprof.models.catalog import EFFICIENTNET, EFFICIENTNETV2

B0 = "efficientnet_b0"
SCALE = 2.0  # each dimension is scaled by this factor to read its MAC exponent
COMPOUND_PHIS = (1, 2, 3, 4)
# EfficientNetV2 NAS reward exponents (paper Sec. 3.3): w for the step time, v for the params.
REWARD_W = -0.07
REWARD_V = -0.05
# Training steps are timed at the first size of the paper's progressive learning.
TRAIN_RES = 128
FUSED_BATCH = 2
FUSED_BATCH_GPU = 32  # a GPU is only busy at a training batch


# -- V1: one dimension at a time ----------------------------------------------------------------------
def b0_macs(*, width: float = 1.0, depth: float = 1.0, resolution: int = 224) -> int:
    options = tuple(sorted({"width_mult": width, "depth_mult": depth}.items()))
    return count_registered(B0, resolution, options).macs


def width_exponent_formula() -> tuple[float, float]:
    """The width exponent B0's layers predict between w = 1 and w = SCALE, and the depthwise share
    of B0's MACs: a conv whose input or output width is fixed (depthwise, the 3-channel stem, the
    1000-class classifier) scales as w, every other one as w²."""
    from torch import nn

    from cnnprof.targets import registered

    model = registered(B0).build(calibrate=False)
    modules = dict(model.named_modules())
    counts = count_registered(B0)
    linear_macs = quad_macs = dw_macs = 0
    for layer in counts.layers:
        m = modules.get(layer.name)
        if not layer.macs or m is None:
            continue
        depthwise = isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels
        fixed = (isinstance(m, nn.Conv2d) and m.in_channels == 3) or (
            isinstance(m, nn.Linear) and m.out_features == 1000)
        if depthwise:
            dw_macs += layer.macs
        if depthwise or fixed:
            linear_macs += layer.macs
        else:
            quad_macs += layer.macs
    total = linear_macs + quad_macs
    predicted = math.log((linear_macs * SCALE + quad_macs * SCALE**2) / total) / math.log(SCALE)
    return predicted, dw_macs / counts.macs


def measure_depth_exponent() -> Measurement:
    base, deep = b0_macs(), b0_macs(depth=SCALE)
    blocks = sum(m.macs for m in count_registered(B0).modules if m.name == "blocks")
    return Measurement(
        measured=exponent([1.0, SCALE], [base, deep]),
        detail=(f"B0 at depth x{SCALE:g} (repeats ceil(n·d)): {fmt_m(base)} -> {fmt_m(deep)} MACs; the blocks are "
                f"{blocks / base:.1%} of B0's MACs (stem and head do not repeat, ceil rounds the repeats up)"),
    )


def measure_width_exponent() -> Measurement:
    base, wide = b0_macs(), b0_macs(width=SCALE)
    predicted, dw_share = width_exponent_formula()
    return Measurement(
        measured=exponent([1.0, SCALE], [base, wide]), formula=predicted,
        detail=(f"B0 at width x{SCALE:g} (channels make_divisible(c·w, 8)): {fmt_m(base)} -> {fmt_m(wide)} MACs. "
                f"Depthwise convs are {dw_share:.1%} of B0's MACs and scale as w, not w² (each filter sees one "
                f"channel), as do the 3-channel stem and the classifier: weighting each layer by its own exponent "
                f"predicts {predicted:.3f}"),
    )


def measure_resolution_exponent() -> Measurement:
    base, big = b0_macs(), b0_macs(resolution=round(224 * SCALE))
    return Measurement(
        measured=exponent([1.0, SCALE], [base, big]),
        detail=f"B0 at {round(224 * SCALE)}x{round(224 * SCALE)}: {fmt_m(base)} -> {fmt_m(big)} MACs",
    )


def measure_constraint() -> Measurement:
    from cnnprof.scaling import Coefficients

    c = Coefficients()
    return Measurement(
        measured=c.factor,
        detail=(f"α·β²·γ² = {c.alpha:g} · {c.beta:g}² · {c.gamma:g}² = {c.factor:.4f} (cnnprof.scaling, the "
                "paper's grid-searched coefficients)"),
    )


_ROWS: list = []


def compound_rows() -> list:
    """B0 compound-scaled at φ = 0 and COMPOUND_PHIS (built once per process)."""
    if not _ROWS:
        from cnnprof.scaling import scale_rows

        _ROWS.extend(scale_rows(B0, [0.0, *map(float, COMPOUND_PHIS)]))
    return _ROWS


def _compound_plot(rows) -> Plot:
    def draw(path) -> None:
        from cnnprof.plots import _figure, save

        plt = _figure()
        fig, ax = plt.subplots(figsize=(6, 4))
        phis = [r.phi for r in rows]
        ax.plot(phis, [r.macs_ratio for r in rows], "o-", label="measured MACs / B0")
        ax.plot(phis, [r.two_pow_phi for r in rows], "--", label="2^φ")
        ax.plot(phis, [r.compound_pow_phi for r in rows], ":", label="(α·β²·γ²)^φ")
        ax.set_yscale("log", base=2)
        ax.set_xlabel("φ")
        ax.set_ylabel("MACs relative to B0")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title("EfficientNet-B0 compound scaling", fontsize=9)
        save(fig, path)
        plt.close(fig)

    return Plot("efficientnet-compound-scaling.png", draw)


def measure_compound(phi: int):
    def measure() -> Measurement:
        rows = compound_rows()
        row = next(r for r in rows if r.phi == phi)
        return Measurement(
            measured=row.macs_ratio, formula=row.compound_pow_phi,
            detail=(f"B0 built at d={row.depth_mult:.3f}, w={row.width_mult:.3f}, {row.resolution}x{row.resolution} "
                    f"(repeats {list(row.repeats)}): {fmt_m(row.macs)} MACs = {row.macs_ratio:.2f}x B0; "
                    f"(α·β²·γ²)^φ = {row.compound_pow_phi:.2f}; ceil(n·d) rounds every stage's repeats up and "
                    f"'same' padding rounds each stride-2 map up, so the built network overshoots; closest official "
                    f"variant by MACs: {row.closest}"),
            plots=(_compound_plot(rows),) if phi == COMPOUND_PHIS[-1] else (),
        )

    return measure


def measure_b0(what: str):
    def measure() -> Measurement:
        c = count_registered(B0)
        value = c.macs if what == "macs" else c.params
        return Measurement(measured=float(value),
                           detail=f"counted efficientnet_b0 at 224x224: {c.params:,} params, {c.macs:,} MACs")

    return measure


# -- V2 --------------------------------------------------------------------------------------------------
def measure_fused_training() -> Measurement:
    from cnnprof.models.efficientnetv2 import early_stages
    from cnnprof.timing import torch_threads

    device = timing_device()
    batch = FUSED_BATCH if device == "cpu" else FUSED_BATCH_GPU
    shape = (3, TRAIN_RES, TRAIN_RES)
    fused, mb = early_stages(fused=True), early_stages(fused=False)
    f_macs, m_macs = count_module(fused, shape).macs, count_module(mb, shape).macs
    with torch_threads(1):
        runners = train_step_runners([fused, mb], shape, batch=batch)
        t_fused, t_mb = interleaved([r.step for r in runners], quick_protocol())
    ratio, lo, hi, p = ratio_summary(t_mb, t_fused)
    return Measurement(
        measured=ratio, expected=1.0,
        detail=(f"training step (forward, CE, backward, SGD) of EfficientNetV2-S's stem + stages 1-3 at "
                f"{batch}x3x{TRAIN_RES}x{TRAIN_RES}, torch eager on {device} (1 CPU thread), interleaved, "
                f"{len(t_fused)} "
                f"steps each: MBConv {sorted(t_mb)[len(t_mb) // 2]:.1f} ms / Fused-MBConv "
                f"{sorted(t_fused)[len(t_fused) // 2]:.1f} ms = {ratio:.2f} (95% CI {lo:.2f}-{hi:.2f}, "
                f"Mann-Whitney p={p:.2g}); forward MACs per image Fused {fmt_m(f_macs)} vs MBConv {fmt_m(m_macs)}; "
                "the paper timed TPUs/GPUs, where depthwise convs are slow"),
    )


def nas_reward(accuracy: float, step_time: float, params: float, *, w: float = REWARD_W, v: float = REWARD_V) -> float:
    """EfficientNetV2's training-aware NAS reward A·S^w·P^v (paper Sec. 3.3)."""
    return accuracy * step_time**w * params**v


def measure_nas_reward() -> Measurement:
    from cnnprof.counting import count_params
    from cnnprof.models import registry
    from cnnprof.targets import registered
    from cnnprof.timing import torch_threads
    from cnnprof.timing.protocol import SLOW_STEP

    names = ("efficientnetv2_s", "efficientnetv2_m")
    acc = [registry.get(n).paper_figure.top1 for n in names]
    models = [registered(n).build(calibrate=False) for n in names]
    params = [count_params(m) for m in models]
    with torch_threads(1):
        runners = train_step_runners(models, (3, TRAIN_RES, TRAIN_RES))
        # V2-M's step takes ~1 s here: fewer rounds than the quick protocol.
        t_s, t_m = interleaved([r.step for r in runners], SLOW_STEP)
    step_ratio, lo, hi, _ = ratio_summary(t_m, t_s)
    p_ratio = params[1] / params[0]
    reward_s = nas_reward(acc[0], 1.0, params[0] / 1e6)
    reward_m = nas_reward(acc[1], step_ratio, params[1] / 1e6)
    typo = (acc[1] / acc[0]) * step_ratio**REWARD_W * p_ratio**-5.0
    needed = 1.0 / (step_ratio**REWARD_W * p_ratio**REWARD_V)
    return Measurement(
        measured=reward_m / reward_s, expected=1.0,
        detail=(f"A = paper top-1 (S {acc[0]}%, M {acc[1]}%, cited), S = training-step time at 1x3x{TRAIN_RES}x"
                f"{TRAIN_RES} normalised to V2-S (measured, interleaved: M/S = {step_ratio:.2f}, 95% CI "
                f"{lo:.2f}-{hi:.2f}), P = counted params ({params[0] / 1e6:.2f}M, {params[1] / 1e6:.2f}M): reward S "
                f"{reward_s:.2f}, M {reward_m:.2f}; M would need {needed - 1:.1%} relative more accuracy to tie. "
                f"The seed prints v as \"−005\": read literally (v = −5) the ratio would be {typo:.2g}, the params "
                "term swamping accuracy; the paper's v is −0.05"),
    )


def measure_depthwise_share() -> Measurement:
    from cnnprof.claims.depthwise import depthwise_latency_share

    share = depthwise_latency_share(B0, protocol=quick_protocol())
    lat, macs = share.early_dw_conv_latency_share, share.early_dw_conv_macs_share
    if not lat or not macs:
        raise NotAvailable("the profile of efficientnet_b0 has no depthwise layers in its early stages")
    return Measurement(
        measured=lat / macs, expected=1.0,
        detail=(f"efficientnet_b0, torch eager, 1 thread, layers with output stride <= {share.max_stride}: depthwise "
                f"convs take {lat:.1%} of the per-layer latency for {macs:.1%} of the MACs "
                f"(with their BN and activation {share.early_dw_unit_latency_share or 0:.1%}); whole model "
                f"{share.model_dw_conv_latency_share or 0:.1%} of latency for "
                f"{share.model_dw_conv_macs_share or 0:.1%} "
                f"of MACs; per-layer coverage of the whole-model latency {share.coverage or 0:.0%}"),
    )


_V1 = source("EfficientNet V1 (compound scaling)", EFFICIENTNET)
_V2 = source("EfficientNet V2 (training-aware NAS)", EFFICIENTNETV2)
CLAIMS = [
    Claim(
        id="effnet-compound-constraint", family="efficientnet", source=_V1 + " Sec. 3.3 (Eq. 3)",
        statement="α·β²·γ² = 1.2 · 1.1² · 1.15² ≈ 2", expected=2.0, unit="", tolerance=rel(0.05),
        measure=measure_constraint,
    ),
    Claim(
        id="effnet-depth-exponent", family="efficientnet", source=_V1 + " Sec. 3.3",
        statement="a conv network's MACs grow ∝ d (B0 scaled in depth alone; measured exponent)",
        expected=1.0, unit="exponent", tolerance=absolute(0.1), measure=measure_depth_exponent,
    ),
    Claim(
        id="effnet-width-exponent", family="efficientnet", source=_V1 + " Sec. 3.3",
        statement="MACs grow ∝ w² (B0 scaled in width alone; depthwise convs scale ∝ w)",
        expected=2.0, unit="exponent", tolerance=absolute(0.15), measure=measure_width_exponent,
    ),
    Claim(
        id="effnet-resolution-exponent", family="efficientnet", source=_V1 + " Sec. 3.3",
        statement="MACs grow ∝ r² (B0 scaled in resolution alone)",
        expected=2.0, unit="exponent", tolerance=absolute(0.1), measure=measure_resolution_exponent,
    ),
    *[
        Claim(
            id=f"effnet-compound-phi{phi}", family="efficientnet", source=_V1 + " Sec. 3.3",
            statement=f"compound scaling at φ = {phi} multiplies B0's MACs by about 2^φ = {2 ** phi}",
            expected=float(2**phi), unit="x", tolerance=rel(0.25), measure=measure_compound(phi),
        )
        for phi in COMPOUND_PHIS
    ],
    Claim(
        id="effnet-b0-macs", family="efficientnet", source=_V1 + " Table 2",
        statement="EfficientNet-B0 costs 0.39B FLOPs (multiply-adds)", expected=0.39e9, unit="MACs",
        tolerance=rel(0.02), measure=measure_b0("macs"),
    ),
    Claim(
        id="effnet-b0-params", family="efficientnet", source=_V1 + " Table 2",
        statement="EfficientNet-B0 has 5.3M parameters", expected=5.3e6, unit="params", tolerance=rel(0.02),
        measure=measure_b0("params"),
    ),
    Claim(
        id="effnet-b0-top1", family="efficientnet", source=_V1 + " Table 2",
        statement="EfficientNet-B0 reaches 77.1% ImageNet top-1 (76.3% in the ICML version)", expected=77.1,
        unit="% top-1", cited=cite("Tan & Le 2019, Table 2 (current arXiv version)", "77.1% top-1"),
    ),
    Claim(
        id="effnetv2-fused-training", family="efficientnetv2", source=_V2 + " Sec. 3.2 (Table 3)",
        statement="Fused-MBConv in the early stages trains faster than MBConv: MBConv / Fused-MBConv training-step "
                  "time of V2-S's stem + stages 1-3 (same output shapes) on this machine (--device)",
        expected=1.0, unit="x", tolerance=ABOVE, measure=measure_fused_training, timed=True,
    ),
    Claim(
        id="effnetv2-nas-reward", family="efficientnetv2", source=_V2 + " Sec. 3.3",
        statement="the search reward A·S^w·P^v with w = −0.07, v = −0.05 (seed: \"−005\") trades accuracy for "
                  "training speed and size: it ranks V2-S (searched) above V2-M (V2-S scaled up); reward M / S",
        expected=1.0, unit="ratio", tolerance=BELOW, measure=measure_nas_reward, timed=True,
    ),
    Claim(
        id="effnetv2-depthwise-share", family="efficientnetv2", source=_V2 + " Sec. 3.2",
        statement="depthwise convolutions are slow in early layers: in EfficientNet-B0's early stages their share "
                  "of latency exceeds their share of MACs (latency share / MAC share)",
        expected=1.0, unit="x", tolerance=ABOVE, measure=measure_depthwise_share, timed=True,
    ),
]
