"""EfficientNet V2 claims: training-aware design.

They are about training speed and memory access: the training steps are timed (forward,
cross-entropy, backward, SGD; torch eager, one thread, or ``--device cuda``), interleaving the
compared networks in one process to cancel most of a shared machine's noise, and every such row
names the device; the paper timed TPUs and GPUs. Depthwise slowness is read off a per-layer
profile (``depthwise.by_stage``). The 3x3-kernel row reads the theoretical receptive field off the
convolutions the forward runs; V2-M's late layers are timed at inference against V2-S (one small
input for both, so that only the layers differ).
"""

from __future__ import annotations

import functools
from dataclasses import replace

from cnnprof.claims import ABOVE, BELOW, THREAD_CLOCK, WALL_CLOCK, Claim, Measurement
from cnnprof.claims.common import (
    busy_while,
    clock_of,
    count_module,
    count_registered,
    device_text,
    fmt_bytes,
    fmt_m,
    forward_with_hooks,
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
from cnnprof.claims.efficientnet import B0
from cnnprof.models.catalog import EFFICIENTNETV2

# Training steps are timed at the first size of the paper's progressive learning.
TRAIN_RES = 128
FUSED_BATCH = 2
FUSED_BATCH_GPU = 32  # a GPU is only busy at a training batch
V2_COUNT_RES = 224  # V2-S's structural counts (expansion, last stage) are taken at this input
MAX_RES = 480
LARGER_RES = 640
_TPU = "the paper timed training on TPUv3 cores and inference on a V100 GPU"


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
    clock = clock_of(runners)
    return {"batch": batch, "res": res, "t_fused": t_fused, "t_mb": t_mb, "f_macs": f_macs, "m_macs": m_macs,
            "device": device_text(clock=clock), "busy": busy, "clock": clock}


def _fused() -> dict:
    return shared("effnetv2-fused", fused_timing)


def _fused_setting(t: dict) -> str:
    return (f"training step (forward, CE, backward, SGD) of EfficientNetV2-S's stem + stages 1-3 at "
            f"{t['batch']}x3x{t['res']}x{t['res']}, torch eager, interleaved, {len(t['t_fused'])} steps each")


def measure_fused_training(t: dict | None = None) -> Measurement:
    t = t or _fused()
    ratio, lo, hi, p = ratio_summary(t["t_mb"], t["t_fused"])
    return Measurement(
        measured=ratio, ci=(lo, hi), device=t["device"], busy=t["busy"], clock=t["clock"],
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
    free = "pays for" if time_ratio >= 1 else "does not pay for"
    return Measurement(
        measured=mac_ratio * time_ratio, ci=(mac_ratio * lo, mac_ratio * hi), expected=mac_ratio, device=t["device"],
        busy=t["busy"], clock=t["clock"],
        detail=(f"{_fused_setting(t)}: forward MACs per ms of step, Fused-MBConv {f_rate:.1f}M vs MBConv {m_rate:.1f}M "
                f"(MACs Fused / MBConv {mac_ratio:.2f} x time MBConv / Fused {time_ratio:.2f}; the interval is the "
                f"time ratio's, the MACs are counted). The bound is the MAC ratio {mac_ratio:.2f}, counted: a gain in "
                f"MACs per ms below it means the extra arithmetic costs time (the same test as effnetv2-fused-training, "
                f"read as utilisation): the better use of the hardware {free} the {mac_ratio:.2f}x MACs here"),
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


# The early / late ratio of one process's per-layer profile moved from 1.02 [1.01-1.06] to 0.94 between
# two runs on one quiet machine (load 1.2-1.8): the runs of one profile share one process's memory
# layout, so their interval does not cover the next process's. Its verdict looks at the interval
# widened by that spread.
DEPTHWISE_PROCESS_MARGIN = 1.10


def measure_depthwise_early_vs_late() -> Measurement:
    s, busy = by_stage()
    med, lo, hi = median_ci(s.early_over_late_runs)
    late, _, _ = median_ci(s.late_penalty_runs)
    return Measurement(
        measured=med, ci=(lo, hi), device=device_text(), busy=busy, clock=WALL_CLOCK,
        process_margin=DEPTHWISE_PROCESS_MARGIN,
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


# -- V2: 3x3 kernels with more layers; late layers without much latency -----------------------------
def receptive_field(model, shape: tuple[int, ...]) -> tuple[int, dict[int, int], int]:
    """Theoretical receptive field (input pixels) of the deepest feature map along the main path,
    from every convolution the forward runs, in order: rf += (k - 1) * dilation * jump, jump *=
    stride. Convolutions on a 1x1 map (squeeze-excite) are left out. Also the number of spatial
    (k > 1) convolutions by kernel size and of all convolutions run."""
    from torch import nn

    seen: list[tuple[int, int, int, int]] = []

    def hook(mod, inputs, _out) -> None:
        seen.append((mod.kernel_size[0], mod.stride[0], mod.dilation[0], inputs[0].shape[-1]))

    forward_with_hooks(model, shape, [(m, hook) for m in model.modules() if isinstance(m, nn.Conv2d)])
    rf, jump, kernels = 1, 1, {}
    for k, stride, dilation, side in seen:
        if side == 1:
            continue
        rf += (k - 1) * dilation * jump
        jump *= stride
        if k > 1:
            kernels[k] = kernels.get(k, 0) + 1
    return rf, kernels, len(seen)


def _kernels_text(kernels: dict[int, int]) -> str:
    return ", ".join(f"{n} {k}x{k}" for k, n in sorted(kernels.items()))


def measure_kernel3_receptive_field() -> Measurement:
    from cnnprof.targets import registered

    shape = (3, V2_COUNT_RES, V2_COUNT_RES)
    rf_s, k_s, n_s = receptive_field(registered("efficientnetv2_s").build(calibrate=False), shape)
    rf_b, k_b, n_b = receptive_field(registered(B0).build(calibrate=False), shape)
    return Measurement(
        measured=rf_s / rf_b,
        detail=(f"theoretical receptive field of the last feature map, read from every convolution the forward runs "
                f"(squeeze-excite convs on 1x1 maps left out): EfficientNetV2-S {rf_s} px from spatial convs "
                f"{_kernels_text(k_s)} ({n_s} convs in all); EfficientNet-B0 {rf_b} px from {_kernels_text(k_b)} "
                f"({n_b} convs): V2-S keeps only 3x3 kernels and reaches {rf_s / rf_b:.2f}x B0's receptive field with "
                f"{sum(k_s.values())} spatial convs against {sum(k_b.values())}"),
    )


LATENCY_RES = 128  # both networks at one small input: seconds, not minutes, on one CPU thread


def measure_m_latency(*, res: int = LATENCY_RES, protocol=None, name: str = "efficientnetv2_m") -> Measurement:
    """Inference time of V2-M (or ``name``) against V2-S, interleaved, at ``res``; bound: their
    parameter ratio."""
    from cnnprof.claims.common import params, time_inference
    from cnnprof.targets import registered

    shape = (3, res, res)
    small, big = (registered(n).build(calibrate=False) for n in ("efficientnetv2_s", name))
    p_small, p_big = params(small), params(big)  # counted on the built modules (no forward needed)
    (t_big, t_small), busy = time_inference([big, small], [shape, shape], protocol)
    ratio, lo, hi, p = ratio_summary(t_big, t_small)
    param_ratio = p_big / p_small
    return Measurement(
        measured=ratio, ci=(lo, hi), expected=param_ratio, device=device_text(clock=THREAD_CLOCK), busy=busy,
        clock=THREAD_CLOCK,
        detail=(f"inference at 1x3x{res}x{res}, torch eager, 1 thread, interleaved, {len(t_big)} calls each: {name} "
                f"{median(t_big):.1f} ms / efficientnetv2_s {median(t_small):.1f} ms = {ratio:.2f} (95% bootstrap "
                f"interval {lo:.2f}-{hi:.2f}, Mann-Whitney p={p:.2g}); parameters {fmt_m(p_big)} / {fmt_m(p_small)} = "
                f"{param_ratio:.2f} (counted): the time grows {ratio / param_ratio:.2f}x as much as the capacity. Both "
                "at one input so that only the layers differ; the paper times each at its own inference size on a "
                "GPU"),
    )


_V2 = EFFICIENTNETV2
_V2H = "训练感知 NAS 和缩放"
_LATER = "在网络的后期添加更多的层提升模型容量且不引入过多耗时"
CLAIMS = [
    Claim(
        id="effnetv2-fused-training", family="efficientnetv2", source=seed(_V2H, _V2 + ", Sec. 3.2, Table 3"),
        quote="还使用了 Fused-MBConv 模块，加快训练速度与提升性能",
        statement="Fused-MBConv in the early stages trains faster than MBConv: MBConv / Fused-MBConv training-step "
                  "time of V2-S's stem + stages 1-3 (same output shapes) (holds above 1)",
        expected=1.0, unit="x", tolerance=ABOVE, measure=measure_fused_training, timed=True, paper_device=_TPU,
    ),
    Claim(
        id="effnetv2-fused-mac-throughput", family="efficientnetv2", source=paper(_V2, "Sec. 3.2"),
        statement="Fused-MBConv uses the hardware so much better than MBConv that its extra arithmetic is free: "
                  "MACs per ms of the training step, Fused / MBConv (holds above the MAC ratio Fused / MBConv, "
                  "counted)",
        expected=None, unit="x", tolerance=ABOVE, measure=measure_fused_throughput, timed=True, paper_device=_TPU,
    ),
    Claim(
        id="effnetv2-depthwise-share", family="efficientnetv2", source=paper(_V2, "Sec. 3.2"),
        statement="the premise of 'depthwise convolutions are slow in early layers': in EfficientNet-B0's early "
                  "stages a depthwise MAC takes longer than a dense or point-wise one (time per MAC, depthwise / "
                  "dense; holds above 1). Whether they are slower early than late is "
                  "effnetv2-depthwise-early-vs-late",
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
    Claim(
        id="effnetv2-kernel3-receptive-field", family="efficientnetv2", source=seed(_V2H, _V2 + ", Sec. 3.3"),
        quote="但是会增加多个卷积用以提升感受野",
        statement="V2 prefers 3x3 kernels but adds layers to keep the receptive field: theoretical receptive field "
                  "of V2-S (3x3 only) / EfficientNet-B0 (3x3 and 5x5) (holds above 1)",
        expected=1.0, unit="x", tolerance=ABOVE, measure=measure_kernel3_receptive_field,
    ),
    *[
        Claim(
            id=f"effnetv2-{v}-latency", family="efficientnetv2", source=seed(_V2H, _V2 + ", Sec. 3.3"),
            quote=_LATER,
            statement=f"the layers V2-{v.upper()} adds in the late stages add capacity without much latency: "
                      f"inference time V2-{v.upper()} / V2-S at {LATENCY_RES}x{LATENCY_RES} (holds below their "
                      "parameter ratio, counted)",
            expected=None, unit="x", tolerance=BELOW,
            measure=functools.partial(measure_m_latency, name=f"efficientnetv2_{v}"), timed=True,
            paper_device="the paper timed inference on a V100 GPU",
        )
        for v in ("m", "l")
    ],
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
