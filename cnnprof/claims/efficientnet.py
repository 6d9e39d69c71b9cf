"""EfficientNet V1 claims: compound scaling.

Figures are counted on ``cnnprof.models.efficientnet`` networks scaled one dimension at a time
and by ``cnnprof.scaling`` (the same code as ``cnnprof scale``). V2's claims (training-aware
design) are in ``cnnprof.claims.efficientnetv2``.
"""

from __future__ import annotations

import math

from cnnprof.claims import ABOVE, Claim, Measurement, Plot, absolute, rel
from cnnprof.claims.common import (
    cite,
    count_registered,
    exponent,
    fmt_m,
    paper,
    seed,
    shared,
)
from cnnprof.models.catalog import EFFICIENTNET

B0 = "efficientnet_b0"
SCALE = 2.0  # each dimension is scaled by this factor to read its MAC exponent
COMPOUND_PHIS = (1, 2, 3, 4)
# The seed states the three exponents alike (d, w², r²): one band for all three.
EXPONENT_BAND = 0.1
# "≈ 2^φ": the constraint it rests on is itself 4% off 2 (α·β²·γ² = 1.92); ±10% for every φ and for
# the fitted growth per step, so that a growth of 1.92 per step fails from φ = 3 on (1.92³ = 7.08).
COMPOUND_BAND = 0.10


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
                "paper's grid-searched coefficients): arithmetic on the constants the scaling is built from"),
    )


def compound_rows() -> list:
    """B0 compound-scaled at φ = 0 and COMPOUND_PHIS (built once per run)."""
    from cnnprof.scaling import scale_rows

    return shared("effnet-compound", lambda: scale_rows(B0, [0.0, *map(float, COMPOUND_PHIS)]))


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


def feature_sides(counts) -> list[int]:
    """The distinct feature-map sides of a counted network, in the order they first appear."""
    sides: list[int] = []
    for layer in counts.layers:
        shape = layer.output_shape
        if len(shape) == 4 and shape[-1] > 1 and shape[-1] not in sides:
            sides.append(shape[-1])
    return sides


def phi1_jump(row0, row1) -> str:
    """Why φ = 1 overshoots 2^φ, read from the two built networks: their repeats and maps."""
    c0 = count_registered(B0, row0.resolution, tuple(sorted({"width_mult": row0.width_mult,
                                                             "depth_mult": row0.depth_mult}.items())))
    c1 = count_registered(B0, row1.resolution, tuple(sorted({"width_mult": row1.width_mult,
                                                             "depth_mult": row1.depth_mult}.items())))
    s0, s1 = feature_sides(c0), feature_sides(c1)
    blocks0, blocks1 = sum(row0.repeats), sum(row1.repeats)
    return (f"the jump at φ = 1 comes from rounding in the built networks: ceil(n·{row1.depth_mult:g}) turns B0's "
            f"repeats {list(row0.repeats)} into {list(row1.repeats)}, {blocks1} blocks for {blocks0} "
            f"(x{blocks1 / blocks0:.2f} where α = {row1.depth_mult:g}); at {row1.resolution} px 'same' padding rounds "
            f"each stride-2 map up ({', '.join(map(str, s1))}), a {s1[-1]}x{s1[-1]} final map for {s0[-1]}x{s0[-1]} "
            f"(({s1[-1]}/{s0[-1]})² = {(s1[-1] / s0[-1]) ** 2:.2f} for the last stages where γ² = "
            f"{(row1.resolution / row0.resolution) ** 2:.2f}); channels {list(row1.channels)} for "
            f"{list(row0.channels)}")


def measure_compound(phi: int):
    def measure() -> Measurement:
        rows = compound_rows()
        row = next(r for r in rows if r.phi == phi)
        why = (phi1_jump(rows[0], row) if phi == 1 else
               "ceil(n·d) rounds every stage's repeats up and 'same' padding rounds each stride-2 map up")
        return Measurement(
            measured=row.macs_ratio, formula=row.compound_pow_phi,
            detail=(f"B0 built at d={row.depth_mult:.3f}, w={row.width_mult:.3f}, {row.resolution}x{row.resolution} "
                    f"(repeats {list(row.repeats)}): {fmt_m(row.macs)} MACs = {row.macs_ratio:.2f}x B0; "
                    f"(α·β²·γ²)^φ = {row.compound_pow_phi:.2f}; {why}; closest official variant by MACs: "
                    f"{row.closest}"),
            plots=(_compound_plot(rows),) if phi == COMPOUND_PHIS[-1] else (),
        )

    return measure


def measure_compound_growth() -> Measurement:
    rows = compound_rows()
    phis = [r.phi for r in rows]
    logs = [math.log2(r.macs_ratio) for r in rows]
    mp, ml = sum(phis) / len(phis), sum(logs) / len(logs)
    slope = sum((p - mp) * (v - ml) for p, v in zip(phis, logs)) / sum((p - mp) ** 2 for p in phis)
    steps = ", ".join(f"{b.macs_ratio / a.macs_ratio:.2f}" for a, b in zip(rows, rows[1:]))
    return Measurement(
        measured=2**slope, formula=rows[1].compound_pow_phi,
        detail=(f"least-squares fit of log2(MACs / B0) against φ = {', '.join(f'{p:g}' for p in phis)} on the built "
                f"networks: slope {slope:.3f}, growth {2 ** slope:.3f} per φ step (step by step: {steps}); "
                f"α·β²·γ² = {rows[1].compound_pow_phi:.3f}. The φ = 1 step is the outlier (see effnet-compound-phi1)"),
    )


def measure_b0(what: str):
    def measure() -> Measurement:
        c = count_registered(B0)
        value = c.macs if what == "macs" else c.params
        return Measurement(measured=float(value),
                           detail=f"counted efficientnet_b0 at 224x224: {c.params:,} params, {c.macs:,} MACs")

    return measure


# -- convolutions dominate the arithmetic -------------------------------------------------------------
# aten ops counted as one operation per output element (batch norm in inference: a scale and a shift)
_ELEMENTWISE = {"batch_norm": 2, "native_batch_norm_legit_no_training": 2, "native_batch_norm": 2}
_FREE = {"flatten", "dropout", "view", "reshape", "unsafe_view", "t", "transpose", "permute", "expand", "clone",
         "contiguous", "detach", "alias", "slice", "select", "cat", "split", "split_with_sizes", "unsqueeze",
         "squeeze", "empty", "zeros", "ones", "to_copy", "copy", "lift_fresh", "size", "stride"}
_CONV_LINEAR = {"conv2d", "convolution", "linear", "addmm", "mm", "matmul", "bmm"}
_POOLS = ("adaptive_avg_pool", "avg_pool", "mean", "max_pool", "adaptive_max_pool")


def elementwise_ops(model, shape: tuple[int, ...]) -> tuple[int, dict[str, int]]:
    """Arithmetic outside convolutions and linear layers in one inference forward: one operation
    per output element of each element-wise op (two for batch norm), one per input element of a
    pooling; read from every aten op the forward dispatches."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    per_op: dict[str, int] = {}

    class Counter(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            name = func.overloadpacket.__name__.strip("_")
            if name in _CONV_LINEAR or name in _FREE:
                return out
            if name.startswith(_POOLS):
                first = args[0] if args and isinstance(args[0], torch.Tensor) else None
                n = first.numel() if first is not None else 0
            else:
                t = out[0] if isinstance(out, (tuple, list)) and out else out
                n = t.numel() * _ELEMENTWISE.get(name, 1) if isinstance(t, torch.Tensor) else 0
            per_op[name] = per_op.get(name, 0) + n
            return out

    x = torch.randn(1, *shape, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode(), Counter():
        model.eval()(x)
    return sum(per_op.values()), per_op


def measure_conv_dominates(name: str = B0) -> Measurement:
    from cnnprof.targets import registered

    target = registered(name)
    c = count_registered(name)
    other, per_op = elementwise_ops(target.build(calibrate=False), target.input)
    share = 2 * c.macs / (2 * c.macs + other)
    top = ", ".join(f"{k} {fmt_m(v)}" for k, v in sorted(per_op.items(), key=lambda kv: -kv[1])[:5])
    return Measurement(
        measured=share,
        detail=(f"{name} at {target.input[1]}x{target.input[2]}: conv + linear {fmt_m(c.macs)} MACs = "
                f"{fmt_m(2 * c.macs)} operations (a multiply and an add each); everything else {fmt_m(other)} "
                f"operations ({top}; one per output element, two for batch norm, one per input element of a "
                f"pooling), read from every op the forward dispatches. In MACs against those operations the share "
                f"is {c.macs / (c.macs + other):.1%}; in time the element-wise work weighs far more (memory-bound)"),
    )


_V1 = EFFICIENTNET + ", Sec. 3.3"
_SCALING = "常规卷积运算的 FLOPS 与 d，$w^{2}$，$r^{2}$ 成正比"
CLAIMS = [
    Claim(
        id="effnet-compound-constraint", family="efficientnet", source=seed("复合缩放", _V1 + ", Eq. 3"),
        quote="作者做了 $α⋅β^{2}⋅γ^{2}≈2$ 的约束",
        statement="α·β²·γ² = 1.2 · 1.1² · 1.15² ≈ 2", expected=2.0, unit="", tolerance=rel(0.05),
        measure=measure_constraint, identity=True,
    ),
    Claim(
        id="effnet-depth-exponent", family="efficientnet", source=seed("复合缩放", _V1), quote=_SCALING,
        statement="a conv network's MACs grow ∝ d (B0 scaled in depth alone; measured exponent)",
        expected=1.0, unit="exponent", tolerance=absolute(EXPONENT_BAND), measure=measure_depth_exponent,
    ),
    Claim(
        id="effnet-width-exponent", family="efficientnet", source=seed("复合缩放", _V1), quote=_SCALING,
        statement="MACs grow ∝ w² (B0 scaled in width alone; depthwise convs scale ∝ w)",
        expected=2.0, unit="exponent", tolerance=absolute(EXPONENT_BAND), measure=measure_width_exponent,
    ),
    Claim(
        id="effnet-resolution-exponent", family="efficientnet", source=seed("复合缩放", _V1), quote=_SCALING,
        statement="MACs grow ∝ r² (B0 scaled in resolution alone: doubling the input doubles every map's side, so "
                  "every conv's MACs are multiplied by 4 by construction; only the classifier's stay)",
        expected=2.0, unit="exponent", tolerance=absolute(EXPONENT_BAND), measure=measure_resolution_exponent,
        identity=True,
    ),
    *[
        Claim(
            id=f"effnet-compound-phi{phi}", family="efficientnet", source=seed("复合缩放", _V1),
            quote="总 FLOPS 大约会增加 $2^{ϕ}$",
            statement=f"compound scaling at φ = {phi} multiplies B0's MACs by about 2^φ = {2 ** phi} (within "
                      f"{COMPOUND_BAND:.0%}, the growth row's band)",
            expected=float(2**phi), unit="x", tolerance=rel(COMPOUND_BAND), measure=measure_compound(phi),
        )
        for phi in COMPOUND_PHIS
    ],
    Claim(
        id="effnet-compound-growth", family="efficientnet", source=seed("复合缩放", _V1),
        quote="总 FLOPS 大约会增加 $2^{ϕ}$",
        statement="compound scaling multiplies the MACs by about 2 per unit of φ: growth per φ step fitted over "
                  "φ = 0..4 (within 10%)",
        expected=2.0, unit="x", tolerance=rel(COMPOUND_BAND), measure=measure_compound_growth,
    ),
    Claim(
        id="effnet-conv-dominates", family="efficientnet", source=seed("复合缩放", _V1),
        quote="由于卷积运算通常在 ConvNets 中占主导地位",
        statement="convolutions dominate the arithmetic of a ConvNet: conv + linear share of EfficientNet-B0's "
                  "operations, element-wise work counted (holds above 90%)",
        expected=0.9, unit="share", tolerance=ABOVE, measure=measure_conv_dominates,
    ),
    Claim(
        id="effnet-balance", family="efficientnet", source=seed("复合缩放", EFFICIENTNET + ", Sec. 3.2, Fig. 3-4"),
        quote="不同维度的 Scaling 并不相互独立",
        statement="the scaling dimensions are not independent: scaling width, depth and resolution together "
                  "(balanced) gives more accuracy for the same MACs than scaling one of them",
        expected=None, unit="",
        cited=("a statement about accuracy: it needs networks trained on ImageNet at each scaling (the paper's "
               "Fig. 3-4), not measurable offline; the MACs of each scaling are counted in the exponent and "
               "compound rows"),
    ),
    Claim(
        id="effnet-b0-macs", family="efficientnet", source=paper(EFFICIENTNET, "Table 2"),
        statement="EfficientNet-B0 costs 0.39B FLOPs (multiply-adds)", expected=0.39e9, unit="MACs",
        tolerance=rel(0.02), measure=measure_b0("macs"),
    ),
    Claim(
        id="effnet-b0-params", family="efficientnet", source=paper(EFFICIENTNET, "Table 2"),
        statement="EfficientNet-B0 has 5.3M parameters", expected=5.3e6, unit="params", tolerance=rel(0.02),
        measure=measure_b0("params"),
    ),
    Claim(
        id="effnet-b0-top1", family="efficientnet", source=paper(EFFICIENTNET, "Table 2"),
        statement="EfficientNet-B0 reaches 77.1% ImageNet top-1 (76.3% in the ICML version)", expected=77.1,
        unit="% top-1", tolerance=absolute(1.0),
        cited=cite("Tan & Le 2019, Table 2 (current arXiv version)", "77.1% top-1"),
    ),
]
