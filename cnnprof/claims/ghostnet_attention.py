"""GhostNetV2 claims about attention at run time: DFC against a fully connected attention map and
against self-attention, timed where GhostNetV2 1.0x computes its DFC gates.

Every DFC branch of the built GhostNetV2 1.0x is taken at its own input (C, H, W): 14 branches on
56x56 to 7x7 maps. At each, three gates with the same input and gated channels:

* DFC: the branch as built (2x2 average pooling, 1x1 conv, 1x5 and 5x1 depthwise convs, sigmoid,
  nearest upsampling);
* FC: a 1x1 conv to the gated channels, one linear layer over the H·W positions (the seed's
  a_hw = Σ F_{hw,h'w'} z_{h'w'}), sigmoid (``ghostnet._fc_gate_module``);
* self-attention: 1x1 convs to queries, keys and values of the gated channels, softmax(QᵀK/√c)
  over the H·W tokens mixing the values, sigmoid: one head, the smallest self-attention gate.

Each kind's gates are one step (all 14 in turn, each on its own seeded input), timed on the thread
CPU clock at one thread, interleaved with the others and with the network itself as built and
without its DFC branches (what DFC costs the network). One measurement serves both rows.
"""

from __future__ import annotations

from cnnprof.claims import ABOVE, THREAD_CLOCK, Claim, Measurement
from cnnprof.claims.common import (
    busy_while,
    count_module,
    device_text,
    fmt_m,
    median,
    quick_protocol,
    ratio_summary,
    seed,
    shared,
)
from cnnprof.models.catalog import GHOSTNETV2

KINDS = ("dfc", "fc", "sa")
NAMES = {"dfc": "DFC", "fc": "FC attention", "sa": "self-attention"}


def self_attention_gate(in_chs: int, out_chs: int):
    """One-head self-attention producing a gate of ``out_chs`` channels at the input's positions."""
    import math

    import torch
    from torch import nn

    class SelfAttentionGate(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.qkv = nn.Conv2d(in_chs, 3 * out_chs, 1, bias=False)

        def forward(self, x: torch.Tensor, out_size) -> torch.Tensor:
            n, _, h, w = x.shape
            q, k, v = self.qkv(x).flatten(2).chunk(3, dim=1)  # each n x c x hw
            weights = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(out_chs), dim=-1)  # n x hw x hw
            return torch.sigmoid(v @ weights.transpose(1, 2)).reshape(n, out_chs, h, w)

    return SelfAttentionGate()


def at_size(gate):
    """``gate`` as a one-input module (its gate at the input's size), for the counter."""
    from torch import nn

    class AtSize(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gate = gate

        def forward(self, x):
            return self.gate(x, x.shape[-2:])

    return AtSize()


def attention_places(largest: int | None = None):
    """GhostNetV2 1.0x as built, and its DFC branches with their input shapes (those on maps of at
    most ``largest`` a side, if given) and the three gates at each."""
    from cnnprof.claims.ghostnet import _fc_gate_module, dfc_inputs
    from cnnprof.targets import registered

    target = registered("ghostnetv2_100")
    model = target.build()
    modules = dict(model.named_modules())
    places = []
    for name, shape in dfc_inputs(model, target.input).items():
        chs, h, w = shape
        if largest is not None and max(h, w) > largest:
            continue
        dfc = modules[name]
        out = dfc.conv_reduce.conv.out_channels
        places.append((shape, {"dfc": dfc, "fc": _fc_gate_module(chs, out, h), "sa": self_attention_gate(chs, out)}))
    return target, model, places


def without_dfc(model):
    """A copy of a built GhostNetV2 whose Ghost modules have no DFC branch (no attention)."""
    import copy

    from cnnprof.models.blocks.ghost import GhostModule

    plain = copy.deepcopy(model)
    for m in plain.modules():
        if isinstance(m, GhostModule):
            m.dfc = None
    return plain


def cpu_ms(fn):
    """A step timing ``fn()`` on the calling thread's CPU clock, in ms."""
    import time

    def step() -> float:
        start = time.thread_time_ns()
        fn()
        return (time.thread_time_ns() - start) / 1e6

    return step


def attention_timing(protocol=None, *, largest: int | None = None) -> dict:
    """Interleaved thread-CPU samples (ms) of the network, the network without DFC and each kind's
    gates; their MACs; the ``busy_while`` note."""
    import torch

    from cnnprof.claims.common import interleaved
    from cnnprof.timing import torch_threads

    target, model, places = attention_places(largest)
    plain = without_dfc(model)
    gen = torch.Generator().manual_seed(0)
    inputs = [torch.randn(1, *shape, generator=gen) for shape, _ in places]
    image = torch.randn(1, *target.input, generator=gen)
    macs = {kind: sum(count_module(at_size(g[kind]), shape).macs for shape, g in places) for kind in KINDS}
    macs["net"], macs["no_dfc"] = (count_module(m, target.input).macs for m in (model, plain))
    for _, gates in places:
        for g in gates.values():
            g.eval()

    def gates_of(kind: str):
        return lambda: [g[kind](x, x.shape[-2:]) for x, (_, g) in zip(inputs, places)]

    steps = [cpu_ms(lambda: model.eval()(image)), cpu_ms(lambda: plain.eval()(image))]
    steps += [cpu_ms(gates_of(kind)) for kind in KINDS]
    with torch_threads(1), torch.inference_mode():
        samples, busy = busy_while(lambda: interleaved(steps, protocol or quick_protocol()))
    net, no_dfc, *kinds = samples
    return {"net": net, "no_dfc": no_dfc, **dict(zip(KINDS, kinds)), "macs": macs, "busy": busy,
            "places": [shape for shape, _ in places]}


def _timing(protocol=None, largest: int | None = None) -> dict:
    if protocol is None and largest is None:
        return shared("ghostnetv2-attention-timing", attention_timing)
    return attention_timing(protocol, largest=largest)


def _common_text(t: dict) -> str:
    sides = sorted({s[-1] for s in t["places"]}, reverse=True)
    sets = ", ".join(f"{NAMES[k]} {median(t[k]):.2f} ms, {fmt_m(t['macs'][k])} MACs" for k in KINDS)
    net, lo, hi, _ = ratio_summary(t["net"], t["no_dfc"])
    return (f"the {len(t['places'])} DFC places of GhostNetV2 1.0x at 224x224 ({'/'.join(map(str, sides))} a side), "
            f"each kind's gates run in turn, torch eager, thread CPU clock, interleaved, {len(t['net'])} rounds: "
            f"{sets}. The network as built {median(t['net']):.1f} ms, without its DFC branches "
            f"{median(t['no_dfc']):.1f} ms: DFC costs it {net - 1:+.1%} of time (95% bootstrap interval {lo - 1:+.1%} "
            f"to {hi - 1:+.1%}) for {t['macs']['net'] / t['macs']['no_dfc'] - 1:+.1%} of MACs ({fmt_m(t['macs']['net'])} "
            f"vs {fmt_m(t['macs']['no_dfc'])})")


def measure_dfc_latency(*, protocol=None, largest: int | None = None) -> Measurement:
    t = _timing(protocol, largest)
    ratio, lo, hi, p = ratio_summary(t["fc"], t["dfc"])
    return Measurement(
        measured=ratio, ci=(lo, hi), device=device_text(clock=THREAD_CLOCK), busy=t["busy"], clock=THREAD_CLOCK,
        detail=(f"FC attention / DFC gates {ratio:.1f} (95% bootstrap interval {lo:.1f}-{hi:.1f}, Mann-Whitney "
                f"p={p:.2g}); {_common_text(t)}"),
    )


def measure_self_attention_latency(*, protocol=None, largest: int | None = None) -> Measurement:
    t = _timing(protocol, largest)
    ratio, lo, hi, p = ratio_summary(t["sa"], t["dfc"])
    sa_fc, sf_lo, sf_hi, _ = ratio_summary(t["sa"], t["fc"])
    return Measurement(
        measured=ratio, ci=(lo, hi), device=device_text(clock=THREAD_CLOCK), busy=t["busy"], clock=THREAD_CLOCK,
        detail=(f"self-attention / DFC gates {ratio:.1f} (95% bootstrap interval {lo:.1f}-{hi:.1f}, Mann-Whitney "
                f"p={p:.2g}); self-attention / FC attention {sa_fc:.2f} ({sf_lo:.2f}-{sf_hi:.2f}); {_common_text(t)}"),
    )


_V2 = GHOSTNETV2
_PHONES = "the paper timed ARM phones (TFLite)"
CLAIMS = [
    Claim(
        id="ghostnetv2-dfc-latency", family="ghostnetv2", source=seed("GhostNet V2", _V2 + ", Sec. 3.2"),
        quote="它不仅可以在普通硬件上快速执行",
        statement=("DFC attention runs fast on ordinary hardware: the time of the fully connected attention maps it "
                   "approximates / DFC's, at every DFC place of GhostNetV2 1.0x (holds above 1; what DFC adds to the "
                   "network's time is in the detail)"),
        expected=1.0, unit="x", tolerance=ABOVE, measure=measure_dfc_latency, timed=True, paper_device=_PHONES,
    ),
    Claim(
        id="ghostnetv2-self-attention-latency", family="ghostnetv2",
        source=seed("解耦全连接注意力机制 DFC", _V2 + ", Sec. 3.2"),
        quote="虽然自注意力操作可以很好地建模长距离依赖，但是部署效率低",
        statement=("self-attention deploys inefficiently: one-head self-attention gates / DFC gates of the same "
                   "channels, time at every DFC place of GhostNetV2 1.0x (holds above 1; against FC attention in "
                   "the detail)"),
        expected=1.0, unit="x", tolerance=ABOVE, measure=measure_self_attention_latency, timed=True,
        paper_device=_PHONES,
    ),
]
