"""EfficientNet claims: compound scaling (V1) and training-aware design (V2).

V1 figures are counted on ``cnnprof.models.efficientnet`` networks scaled one dimension at a time
and by ``cnnprof.scaling`` (the same code as ``cnnprof scale``). V2's claims are about training
speed and memory access: the training steps are timed (forward, cross-entropy, backward, SGD;
torch eager, one thread, or ``--device cuda``), interleaving the compared networks in one process
to cancel most of a shared machine's noise, and every such row names the device; the paper timed
TPUs and GPUs. Depthwise slowness is read off a per-layer profile (``depthwise.by_stage``).
"""

from __future__ import annotations

import math
from dataclasses import replace

from cnnprof.claims import ABOVE, Claim, Measurement, Plot, absolute, rel
from cnnprof.claims.common import (
    busy_while,
    cite,
    count_module,
    count_registered,
    device_text,
    exponent,
    fmt_bytes,
    fmt_m,
    interleaved,
    median,
    median_ci,
    paper,
    quick_protocol,
    ratio_summary,
    seed,
    shared,
    timing_device,
    train_step_runners,
)
from cnnprof.models.catalog import EFFICIENTNET, EFFICIENTNETV2

B0 = "efficientnet_b0"
SCALE = 2.0  # each dimension is scaled by this factor to read its MAC exponent
COMPOUND_PHIS = (1, 2, 3, 4)
# Training steps are timed at the first size of the paper's progressive learning.
TRAIN_RES = 128
FUSED_BATCH = 2
FUSED_BATCH_GPU = 32  # a GPU is only busy at a training batch
V2_COUNT_RES = 224  # V2-S's structural counts (expansion, last stage) are taken at this input
MAX_RES = 480
LARGER_RES = 640
_TPU = "the paper timed training on TPUv3 cores and inference on a V100 GPU"


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


# -- V2: Fused-MBConv training speed ------------------------------------------------------------------
def fused_timing(*, protocol=None, batch: int | None = None, res: int = TRAIN_RES) -> dict:
    """Interleaved training steps of V2-S's stem + stages 1-3 with Fused-MBConv and with MBConv."""
    from cnnprof.models.efficientnetv2 import early_stages
    from cnnprof.timing import torch_threads

    device = timing_device()
    batch = batch or (FUSED_BATCH if device == "cpu" else FUSED_BATCH_GPU)
    shape = (3, res, res)
    fused, mb = early_stages(fused=True), early_stages(fused=False)
    f_macs, m_macs = count_module(fused, shape).macs, count_module(mb, shape).macs
    with torch_threads(1):
        runners = train_step_runners([fused, mb], shape, batch=batch)
        (t_fused, t_mb), busy = busy_while(lambda: interleaved([r.step for r in runners], protocol or quick_protocol()))
    return {"batch": batch, "res": res, "t_fused": t_fused, "t_mb": t_mb, "f_macs": f_macs, "m_macs": m_macs,
            "device": device_text(), "busy": busy}


def _fused() -> dict:
    return shared("effnetv2-fused", fused_timing)


def _fused_setting(t: dict) -> str:
    return (f"training step (forward, CE, backward, SGD) of EfficientNetV2-S's stem + stages 1-3 at "
            f"{t['batch']}x3x{t['res']}x{t['res']}, torch eager, interleaved, {len(t['t_fused'])} steps each")


def measure_fused_training(t: dict | None = None) -> Measurement:
    t = t or _fused()
    ratio, lo, hi, p = ratio_summary(t["t_mb"], t["t_fused"])
    return Measurement(
        measured=ratio, ci=(lo, hi), device=t["device"], busy=t["busy"],
        detail=(f"{_fused_setting(t)}: MBConv {median(t['t_mb']):.1f} ms / Fused-MBConv {median(t['t_fused']):.1f} ms "
                f"= {ratio:.2f} (95% bootstrap interval {lo:.2f}-{hi:.2f}, Mann-Whitney p={p:.2g}); forward MACs per "
                f"image Fused {fmt_m(t['f_macs'])} vs MBConv {fmt_m(t['m_macs'])}"),
    )


def measure_fused_throughput(t: dict | None = None) -> Measurement:
    t = t or _fused()
    time_ratio, lo, hi, _ = ratio_summary(t["t_mb"], t["t_fused"])
    mac_ratio = t["f_macs"] / t["m_macs"]
    f_rate = t["f_macs"] * t["batch"] / median(t["t_fused"]) / 1e6
    m_rate = t["m_macs"] * t["batch"] / median(t["t_mb"]) / 1e6
    return Measurement(
        measured=mac_ratio * time_ratio, ci=(mac_ratio * lo, mac_ratio * hi), device=t["device"], busy=t["busy"],
        detail=(f"{_fused_setting(t)}: forward MACs per ms of step, Fused-MBConv {f_rate:.1f}M vs MBConv {m_rate:.1f}M "
                f"(MACs Fused / MBConv {mac_ratio:.2f} x time MBConv / Fused {time_ratio:.2f}; the interval is the "
                "time ratio's, the MACs are counted): Fused-MBConv's dense convolutions do more of their arithmetic "
                "per unit of time even where its step is slower"),
    )


def by_stage(protocol=None):
    """The per-layer comparison of depthwise and dense convolutions (once per run) and the
    ``busy_while`` note."""
    from cnnprof.claims.depthwise import depthwise_by_stage

    return shared("effnetv2-depthwise",
                  lambda: busy_while(lambda: depthwise_by_stage(B0, protocol=protocol or quick_protocol())))


def _stage_text(s) -> str:
    return (f"{s.model}, torch eager, 1 thread, {s.runs} profiled runs; ns per MAC (median over runs): early stages "
            f"(output stride <= {s.early_max_stride}) depthwise {s.early_dw_ns_per_mac:.3f} vs dense/point-wise "
            f"{s.early_dense_ns_per_mac:.3f} ({fmt_m(s.early_dw_macs)} and {fmt_m(s.early_dense_macs)} MACs); late "
            f"stages (>= {s.late_min_stride}) depthwise {s.late_dw_ns_per_mac:.3f} vs {s.late_dense_ns_per_mac:.3f} "
            f"({fmt_m(s.late_dw_macs)} and {fmt_m(s.late_dense_macs)} MACs)")


def measure_depthwise_early() -> Measurement:
    s, busy = by_stage()
    med, lo, hi = median_ci(s.early_penalty_runs)
    return Measurement(
        measured=med, ci=(lo, hi), device=device_text(), busy=busy,
        detail=(f"{_stage_text(s)}: in the early stages a depthwise MAC takes {med:.1f}x the time of a dense one "
                f"(95% bootstrap interval over runs {lo:.1f}-{hi:.1f})"),
    )


def measure_depthwise_early_vs_late() -> Measurement:
    s, busy = by_stage()
    med, lo, hi = median_ci(s.early_over_late_runs)
    late, _, _ = median_ci(s.late_penalty_runs)
    return Measurement(
        measured=med, ci=(lo, hi), device=device_text(), busy=busy,
        detail=(f"{_stage_text(s)}: the depthwise penalty (depthwise / dense time per MAC) is "
                f"{median_ci(s.early_penalty_runs)[0]:.1f}x early and {late:.1f}x late; early / late {med:.2f} (95% "
                f"bootstrap interval over runs {lo:.2f}-{hi:.2f})"),
    )


# -- V2: expansion ratio, the last stage, the 480 px limit, M and L -----------------------------------
def _v2s(stages=None):
    """EfficientNetV2-S as built, or with ``stages`` in place of its stage table."""
    from cnnprof.models.efficientnet import EfficientNet
    from cnnprof.models.efficientnetv2 import ROUND_LIMIT, S_STAGES, S_STEM

    return EfficientNet(stages=S_STAGES if stages is None else stages, stem_chs=S_STEM, round_limit=ROUND_LIMIT)


def measure_expansion_memory() -> Measurement:
    from cnnprof.models.efficientnetv2 import S_STAGES

    shape = (3, V2_COUNT_RES, V2_COUNT_RES)
    six = tuple(replace(s, expand=6) if s.expand > 1 else s for s in S_STAGES)
    built, wide = count_module(_v2s(), shape), count_module(_v2s(six), shape)
    changed = [i + 1 for i, s in enumerate(S_STAGES) if s.expand not in (1, 6)]
    per_mac = ("the access saved is smaller than the arithmetic saved" if built.bytes_moved / built.macs >
               wide.bytes_moved / wide.macs else "the access falls faster than the arithmetic")
    return Measurement(
        measured=wide.bytes_moved / built.bytes_moved,
        detail=(f"EfficientNetV2-S as built (expansion 4 in stages {', '.join(map(str, changed))}) against the same "
                f"network with expansion 6 there, counted at {V2_COUNT_RES}x{V2_COUNT_RES}: bytes moved (fp32 inputs, "
                f"weights and outputs of every layer) {fmt_bytes(built.bytes_moved)} vs {fmt_bytes(wide.bytes_moved)}; "
                f"MACs {fmt_m(built.macs)} vs {fmt_m(wide.macs)}. A smaller expansion moves fewer bytes by "
                f"construction; per MAC the built network moves {built.bytes_moved / built.macs:.3f} bytes against "
                f"{wide.bytes_moved / wide.macs:.3f}: {per_mac}"),
    )


def measure_last_stage() -> Measurement:
    from cnnprof.models.blocks.core import MBConv
    from cnnprof.models.efficientnet import B0_STAGES
    from cnnprof.models.efficientnetv2 import S_STAGES

    shape = (3, V2_COUNT_RES, V2_COUNT_RES)
    last = B0_STAGES[-1]
    assert last.stride == 1 and last.block is MBConv
    with_last = count_module(_v2s(S_STAGES + (last,)), shape)
    built = count_module(_v2s(), shape)
    return Measurement(
        measured=with_last.params / built.params,
        detail=(f"EfficientNetV2-S with EfficientNet-B0's last stage (MBConv{last.expand} k{last.kernel} stride 1, "
                f"{last.out_chs} channels, {last.repeats} block) appended, against V2-S as built: "
                f"{fmt_m(with_last.params)} vs {fmt_m(built.params)} params; bytes moved at "
                f"{V2_COUNT_RES}x{V2_COUNT_RES} "
                f"{fmt_bytes(with_last.bytes_moved)} vs {fmt_bytes(built.bytes_moved)} "
                f"(x{with_last.bytes_moved / built.bytes_moved:.3f}). Removing a stage removes its weights by "
                "construction; the figures say how much. EfficientNetV2-M and -L do end with a stride-1 stage "
                "(512 and 640 channels)"),
    )


def measure_max_resolution() -> Measurement:
    small, large = count_registered("efficientnetv2_s", MAX_RES), count_registered("efficientnetv2_s", LARGER_RES)
    return Measurement(
        measured=large.macs / small.macs,
        cited=("the reason for the limit is that larger images cost more than the accuracy they add (paper Sec. 3.3): "
               "accuracy needs ImageNet, not measurable here; what the limit saves is counted"),
        detail=(f"EfficientNetV2-S at {LARGER_RES} against {MAX_RES} px: MACs {fmt_m(large.macs)} vs "
                f"{fmt_m(small.macs)} (x{large.macs / small.macs:.2f}), conv outputs {fmt_m(large.activations)} vs "
                f"{fmt_m(small.activations)} elements (x{large.activations / small.activations:.2f}), bytes moved x"
                f"{large.bytes_moved / small.bytes_moved:.2f}; (640/480)² = {(LARGER_RES / MAX_RES) ** 2:.2f}"),
    )


def stage_structure(name: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(channels, repeats) of a registered EfficientNetV2, read from the built network."""
    from cnnprof.scaling import built_structure
    from cnnprof.targets import registered

    model = registered(name).build(calibrate=False)
    return built_structure(model, (3, 64, 64))


def measure_not_compound(name: str):
    def measure() -> Measurement:
        s_ch, s_rep = stage_structure("efficientnetv2_s")
        ch, rep = stage_structure(name)
        n = len(s_rep)
        depth = [b / a for a, b in zip(s_rep, rep[:n])]
        width = [b / a for a, b in zip(s_ch[1:], ch[1:n + 1])]
        early = sum(rep[:3]) / sum(s_rep[:3])
        late = sum(rep[3:]) / sum(s_rep[3:])
        extra = rep[n:]
        return Measurement(
            measured=late / early,
            detail=(f"built networks, stem then stages: V2-S channels {list(s_ch)}, repeats {list(s_rep)}; {name} "
                    f"channels {list(ch)}, repeats {list(rep)}. Stage by stage {name} / V2-S: repeats "
                    f"{', '.join(f'{d:.2f}' for d in depth)}; channels {', '.join(f'{w:.2f}' for w in width)}"
                    + (f"; plus {len(extra)} stage(s) V2-S does not have ({', '.join(map(str, extra))} blocks of "
                       f"{', '.join(map(str, ch[n + 1:]))} channels)" if extra else "")
                    + f". One depth and one width multiplier would give equal ratios in every stage (up to rounding); "
                    f"the late stages (4 on) grow x{late:.2f} in blocks, the early ones (1-3) x{early:.2f}"),
        )

    return measure


_V1 = EFFICIENTNET + ", Sec. 3.3"
_V2 = EFFICIENTNETV2
_SCALING = "常规卷积运算的 FLOPS 与 d，$w^{2}$，$r^{2}$ 成正比"
_V2H = "训练感知 NAS 和缩放"
_LATER = "在网络的后期添加更多的层提升模型容量且不引入过多耗时"
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
        expected=1.0, unit="exponent", tolerance=absolute(0.1), measure=measure_depth_exponent,
    ),
    Claim(
        id="effnet-width-exponent", family="efficientnet", source=seed("复合缩放", _V1), quote=_SCALING,
        statement="MACs grow ∝ w² (B0 scaled in width alone; depthwise convs scale ∝ w)",
        expected=2.0, unit="exponent", tolerance=absolute(0.15), measure=measure_width_exponent,
    ),
    Claim(
        id="effnet-resolution-exponent", family="efficientnet", source=seed("复合缩放", _V1), quote=_SCALING,
        statement="MACs grow ∝ r² (B0 scaled in resolution alone)",
        expected=2.0, unit="exponent", tolerance=absolute(0.1), measure=measure_resolution_exponent,
    ),
    *[
        Claim(
            id=f"effnet-compound-phi{phi}", family="efficientnet", source=seed("复合缩放", _V1),
            quote="总 FLOPS 大约会增加 $2^{ϕ}$",
            statement=f"compound scaling at φ = {phi} multiplies B0's MACs by about 2^φ = {2 ** phi} (within 25%)",
            expected=float(2**phi), unit="x", tolerance=rel(0.25), measure=measure_compound(phi),
        )
        for phi in COMPOUND_PHIS
    ],
    Claim(
        id="effnet-compound-growth", family="efficientnet", source=seed("复合缩放", _V1),
        quote="总 FLOPS 大约会增加 $2^{ϕ}$",
        statement="compound scaling multiplies the MACs by about 2 per unit of φ: growth per φ step fitted over "
                  "φ = 0..4 (within 10%)",
        expected=2.0, unit="x", tolerance=rel(0.10), measure=measure_compound_growth,
    ),
    Claim(
        id="effnet-conv-dominates", family="efficientnet", source=seed("复合缩放", _V1),
        quote="由于卷积运算通常在 ConvNets 中占主导地位",
        statement="convolutions dominate the arithmetic of a ConvNet: conv + linear share of EfficientNet-B0's "
                  "operations, element-wise work counted (holds above 90%)",
        expected=0.9, unit="share", tolerance=ABOVE, measure=measure_conv_dominates,
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
        unit="% top-1", cited=cite("Tan & Le 2019, Table 2 (current arXiv version)", "77.1% top-1"),
    ),
    Claim(
        id="effnetv2-fused-training", family="efficientnetv2", source=seed(_V2H, _V2 + ", Sec. 3.2, Table 3"),
        quote="还使用了 Fused-MBConv 模块，加快训练速度与提升性能",
        statement="Fused-MBConv in the early stages trains faster than MBConv: MBConv / Fused-MBConv training-step "
                  "time of V2-S's stem + stages 1-3 (same output shapes) (holds above 1)",
        expected=1.0, unit="x", tolerance=ABOVE, measure=measure_fused_training, timed=True, paper_device=_TPU,
    ),
    Claim(
        id="effnetv2-fused-mac-throughput", family="efficientnetv2", source=paper(_V2, "Sec. 3.2"),
        statement="Fused-MBConv uses the hardware better than MBConv (the paper's reason for it): MACs per ms of "
                  "the training step, Fused / MBConv (holds above 1)",
        expected=1.0, unit="x", tolerance=ABOVE, measure=measure_fused_throughput, timed=True, paper_device=_TPU,
    ),
    Claim(
        id="effnetv2-depthwise-share", family="efficientnetv2", source=paper(_V2, "Sec. 3.2"),
        statement="depthwise convolutions are slow in early layers: in EfficientNet-B0's early stages a depthwise "
                  "MAC takes longer than a dense or point-wise one (time per MAC, depthwise / dense; holds above 1)",
        expected=1.0, unit="x", tolerance=ABOVE, measure=measure_depthwise_early, timed=True, paper_device=_TPU,
    ),
    Claim(
        id="effnetv2-depthwise-early-vs-late", family="efficientnetv2", source=paper(_V2, "Sec. 3.2"),
        statement="depthwise convolutions are slow in early layers but effective in later stages: the depthwise "
                  "penalty (time per MAC against dense) early / late in EfficientNet-B0 (holds above 1)",
        expected=1.0, unit="x", tolerance=ABOVE, measure=measure_depthwise_early_vs_late, timed=True,
        paper_device=_TPU,
    ),
    Claim(
        id="effnetv2-expansion-memory", family="efficientnetv2", source=seed(_V2H, _V2 + ", Sec. 3.3"),
        quote="使用较小的 expansion ratio (之前是 6)，从而减少内存的访问量",
        statement="a smaller expansion ratio (4 where V1 has 6) reduces memory access: bytes moved by V2-S with "
                  "expansion 6 / as built",
        expected=1.0, unit="x", tolerance=ABOVE, measure=measure_expansion_memory, identity=True,
    ),
    Claim(
        id="effnetv2-no-last-stage", family="efficientnetv2", source=seed(_V2H, _V2 + ", Sec. 3.3"),
        quote="移除了最后一个 stride 为 1 的 stage，从而减少部分参数和内存访问",
        statement="removing the last stride-1 stage reduces parameters and memory access: params of V2-S with "
                  "B0's last stage appended / as built",
        expected=1.0, unit="x", tolerance=ABOVE, measure=measure_last_stage, identity=True,
    ),
    Claim(
        id="effnetv2-max-480", family="efficientnetv2", source=seed(_V2H, _V2 + ", Sec. 3.3"),
        quote="限制最大推理图像尺寸为 480",
        statement=f"the maximum inference size is limited to {MAX_RES} px, as larger images cost more than they "
                  f"give: MACs at {LARGER_RES} / at {MAX_RES} (V2-S)",
        expected=None, unit="x", measure=measure_max_resolution,
    ),
    *[
        Claim(
            id=f"effnetv2-{v}-not-compound", family="efficientnetv2", source=seed(_V2H, _V2 + ", Sec. 3.3"),
            quote=_LATER,
            statement=f"V2-{v.upper()} is not a pure compound scaling of V2-S: more layers are added in the late "
                      "stages; growth in blocks of stages 4 on / of stages 1-3 (holds above 1)",
            expected=1.0, unit="x", tolerance=ABOVE, measure=measure_not_compound(f"efficientnetv2_{v}"),
        )
        for v in ("m", "l")
    ],
]
