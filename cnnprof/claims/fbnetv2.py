"""FBNetV2 claims: channel masking and the weight sharing it rests on.

FBNetV2 (DMaskingNAS, Wan et al. 2020, Sec. 3.2; the seed's steps A-E): a channel search over
``k`` output widths ``c_1 < ... < c_k = C`` can run every option as its own block, zero-pad the
outputs to ``C`` channels and take the Gumbel-weighted sum (step B), or, with the blocks sharing
one weight tensor, run the ``C``-filter block once and multiply its output by the combined mask
``M = sum_i g_i l_i`` (step E). ``MaskedChannelBlock`` is step E and ``PaddedSumBlock`` step B;
``FilterMaskedBlock`` is step C (full-width blocks, filters past c_i masked, no sharing) and
``step_d`` step D (the shared block masked option by option). All are built from the zoo's
``ConvBNAct`` so that their cost is counted like any model's. Step B = C and D = E are identities
(linearity); what the masking saves (memory, MACs, training time) is measured against step B.
"""

from __future__ import annotations

from collections.abc import Sequence

from cnnprof.claims import ABOVE, Claim, Measurement, Plot, absolute, rel
from cnnprof.claims.common import (
    device_text,
    median,
    ratio_summary,
    saved_bytes,
    seed,
    shared,
    timing_device,
)
from cnnprof.models.catalog import FBNETV2

MASK_IN = 32
MASK_MAX = 64  # C, the widest option
MASK_MAP = 28
MASK_KS = (1, 2, 4, 8, 16, 32)
SHARING_K = 8  # channel options in the timed training step


# -- FBNetV2 channel masking ------------------------------------------------------------------------
def channel_options(k: int, widest: int = MASK_MAX) -> tuple[int, ...]:
    """``k`` evenly spaced output widths ending at ``widest``: c_i = round(widest * i / k)."""
    if not 1 <= k <= widest:
        raise ValueError(f"k must be in [1, {widest}], got {k}")
    return tuple(round(widest * i / k) for i in range(1, k + 1))


def _block(in_chs: int, out_chs: int):
    from torch import nn

    from cnnprof.models.blocks.core import ConvBNAct

    return ConvBNAct(in_chs, out_chs, 3, act=nn.ReLU)


def _width_masks(options: Sequence[int]):
    """One row per option: 1 on its first c_i channels of max(options), 0 after."""
    import torch

    masks = torch.zeros(len(options), max(options))
    for i, c in enumerate(options):
        masks[i, :c] = 1.0
    return masks


def _make_masked(in_chs: int, options: Sequence[int]):
    import torch
    from torch import nn

    class MaskedChannelBlock(nn.Module):
        """Step E: one block with ``max(options)`` filters, output times M = sum_i g_i l_i, where
        l_i keeps the first c_i channels and g = softmax(architecture logits)."""

        def __init__(self) -> None:
            super().__init__()
            self.block = _block(in_chs, max(options))
            self.register_buffer("masks", _width_masks(options))
            self.logits = nn.Parameter(torch.randn(len(options), generator=torch.Generator().manual_seed(1)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            g = torch.softmax(self.logits, 0)
            mask = (g[:, None] * self.masks).sum(0)
            return self.block(x) * mask.view(1, -1, 1, 1)

    return MaskedChannelBlock()


def _make_padded(in_chs: int, options: Sequence[int]):
    import torch
    import torch.nn.functional as F
    from torch import nn

    class PaddedSumBlock(nn.Module):
        """Step B: every option is its own block b_i with c_i filters; outputs zero-padded to
        max(options) channels and summed with weights g = softmax(architecture logits)."""

        def __init__(self) -> None:
            super().__init__()
            self.options = tuple(options)
            self.branches = nn.ModuleList(_block(in_chs, c) for c in options)
            self.logits = nn.Parameter(torch.randn(len(options), generator=torch.Generator().manual_seed(1)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            g = torch.softmax(self.logits, 0)
            widest = max(self.options)
            out = 0
            for gi, branch, c in zip(g, self.branches, self.options):
                out = out + gi * F.pad(branch(x), (0, 0, 0, 0, 0, widest - c))
            return out

        def share_from(self, masked) -> None:
            """Give every b_i the first c_i filters of ``masked``'s block (the weight sharing that
            makes step B equal to step E)."""
            shared = masked.block
            with torch.no_grad():
                self.logits.copy_(masked.logits)
                for branch, c in zip(self.branches, self.options):
                    branch.conv.weight.copy_(shared.conv.weight[:c])
                    for name in ("weight", "bias", "running_mean", "running_var"):
                        getattr(branch.bn, name).copy_(getattr(shared.bn, name)[:c])

    return PaddedSumBlock()


def _random_bn(block) -> None:
    """Randomise a block's BN statistics and affine terms (BN in eval mode is then not the identity)."""
    import torch

    with torch.no_grad():
        block.bn.running_mean.uniform_(-0.5, 0.5)
        block.bn.running_var.uniform_(0.5, 2.0)
        block.bn.weight.uniform_(0.5, 1.5)
        block.bn.bias.uniform_(-0.2, 0.2)


def step_d(masked, x):
    """Step D: the shared block b run once per option, each output times its own mask l_i, summed
    with weights g_i: sum_i g_i (b(x) * l_i)."""
    import torch

    g = torch.softmax(masked.logits, 0)
    out = 0
    for gi, mask in zip(g, masked.masks):
        out = out + gi * (masked.block(x) * mask.view(1, -1, 1, 1))
    return out


def masking_equivalence(k: int = 8, *, size: int = 16, seed: int = 0) -> float:
    """Max |step D - step E| (the shared block masked option by option and summed, against one
    block times the combined mask M), on a random input (BN in eval mode, randomised statistics so
    that it is not the identity)."""
    import torch

    torch.manual_seed(seed)
    masked = _make_masked(MASK_IN, channel_options(k))
    _random_bn(masked.block)
    masked.eval()
    x = torch.randn(2, MASK_IN, size, size)
    with torch.no_grad():
        return float((step_d(masked, x) - masked(x)).abs().max())


def _make_filter_masked(in_chs: int, options: Sequence[int]):
    import torch
    from torch import nn

    class FilterMaskedBlock(nn.Module):
        """Step C: every option is its own block with max(options) filters (no sharing), its
        output times l_i (the filters past c_i masked out), summed with weights g_i."""

        def __init__(self) -> None:
            super().__init__()
            widest = max(options)
            self.branches = nn.ModuleList(_block(in_chs, widest) for _ in options)
            self.register_buffer("masks", _width_masks(options))
            self.logits = nn.Parameter(torch.randn(len(options), generator=torch.Generator().manual_seed(1)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            g = torch.softmax(self.logits, 0)
            out = 0
            for gi, branch, mask in zip(g, self.branches, self.masks):
                out = out + gi * (branch(x) * mask.view(1, -1, 1, 1))
            return out

    return FilterMaskedBlock()


def unshared_equivalence(k: int = 8, *, size: int = 16, seed: int = 0) -> tuple[float, float]:
    """Step B without weight sharing (k independent blocks of c_i filters, zero-padded and summed)
    against step C (k independent blocks of C filters, output masked to c_i): max |B - C| when
    block i of C holds block i of B's filters in its first c_i (the rest random), and the max |B -
    E| against the masked block built from the widest branch (what sharing changes)."""
    import torch

    torch.manual_seed(seed)
    options = channel_options(k)
    padded = _make_padded(MASK_IN, options)
    filt = _make_filter_masked(MASK_IN, options)
    masked = _make_masked(MASK_IN, options)
    for branch in filt.branches:
        _random_bn(branch)
    _random_bn(masked.block)
    with torch.no_grad():
        filt.logits.copy_(padded.logits)
        masked.logits.copy_(padded.logits)
        for branch, wide, c in zip(padded.branches, filt.branches, options):
            branch.conv.weight.copy_(wide.conv.weight[:c])
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(branch.bn, name).copy_(getattr(wide.bn, name)[:c])
    for m in (padded, filt, masked):
        m.eval()
    x = torch.randn(2, MASK_IN, size, size)
    with torch.no_grad():
        b = padded(x)
        return float((b - filt(x)).abs().max()), float((b - masked(x)).abs().max())


def masking_costs(ks: Sequence[int] = MASK_KS) -> dict[str, list[int]]:
    """MACs and saved-for-backward bytes of the masked layer and of the k-branch supernet per k."""
    from cnnprof.claims.common import count_module

    shape = (MASK_IN, MASK_MAP, MASK_MAP)
    out: dict[str, list[int]] = {"k": list(ks), "masked_macs": [], "naive_macs": [], "masked_bytes": [],
                                 "naive_bytes": []}
    for k in ks:
        options = channel_options(k)
        for kind, make in (("masked", _make_masked), ("naive", _make_padded)):
            module = make(MASK_IN, options)
            out[f"{kind}_macs"].append(count_module(module, shape).macs)
            out[f"{kind}_bytes"].append(saved_bytes(module, shape))
    return out


def _costs() -> dict[str, list[int]]:
    return shared("fbnetv2-masking-costs", masking_costs)


def _masking_plot(costs: dict[str, list[int]]) -> Plot:
    def draw(path) -> None:
        from cnnprof.plots import _figure, save

        plt = _figure()
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
        for ax, what, scale, label in ((axes[0], "macs", 1e6, "MACs (millions)"),
                                       (axes[1], "bytes", 2**20, "saved for backward (MiB)")):
            ax.plot(costs["k"], [v / scale for v in costs[f"naive_{what}"]], "o-", label="k-branch supernet (step B)")
            ax.plot(costs["k"], [v / scale for v in costs[f"masked_{what}"]], "s-", label="channel masking (step E)")
            ax.set_xscale("log", base=2)
            ax.set_xlabel("channel options k")
            ax.set_ylabel(label)
            ax.grid(True, alpha=0.3)
        axes[0].legend(fontsize=8)
        fig.suptitle(f"FBNetV2 channel search cost: 3x3 conv {MASK_IN}->{MASK_MAX} at {MASK_MAP}x{MASK_MAP}",
                     fontsize=9)
        save(fig, path)
        plt.close(fig)

    return Plot("fbnetv2-masking-cost.png", draw)


def _curve(costs: dict[str, list[int]], key: str, scale: float, unit: str) -> str:
    return ", ".join(f"k={k}: {v / scale:.2f}{unit}" for k, v in zip(costs["k"], costs[key]))


def measure_mask_equivalence() -> Measurement:
    diff = masking_equivalence()
    return Measurement(
        measured=diff,
        detail=(f"max |step D - step E| on a random 2x{MASK_IN}x16x16 input, k=8 options {channel_options(8)} of one "
                "shared 3x3 conv-BN-ReLU block b: D = sum_i g_i (b(x) * l_i), E = b(x) * sum_i g_i l_i (the same "
                "product, summed before or after; BN statistics randomised)"),
    )


def measure_unshared() -> Measurement:
    b_c, b_e = unshared_equivalence()
    return Measurement(
        measured=b_c,
        detail=(f"max |step B - step C| on a random 2x{MASK_IN}x16x16 input, k=8 options {channel_options(8)}, no "
                f"weight sharing: B = k blocks of c_i filters zero-padded to {MASK_MAX} and summed, C = k blocks of "
                f"{MASK_MAX} filters whose outputs past c_i are masked (block i of C holds block i of B's filters "
                f"first, the rest random; BN statistics randomised). Against step E (one shared block) the same step "
                f"B differs by up to {b_e:.3g}: B equals E only once the weights are shared"),
    )


def measure_mask_macs() -> Measurement:
    c = _costs()
    return Measurement(
        measured=c["masked_macs"][-1] / c["masked_macs"][0], formula=1.0,
        detail=f"masked layer MACs (counted): {_curve(c, 'masked_macs', 1e6, 'M')}",
        plots=(_masking_plot(c),),
    )


def measure_mask_memory() -> Measurement:
    c = _costs()
    return Measurement(
        measured=c["masked_bytes"][-1] / c["masked_bytes"][0],
        detail=(f"bytes autograd saves for backward (one training forward) of the masked layer: "
                f"{_curve(c, 'masked_bytes', 2**20, ' MiB')}: the block's tensors are the same for every k, only the "
                f"k x {MASK_MAX} mask grows"),
    )


def measure_supernet_memory() -> Measurement:
    c = _costs()
    k = c["k"][-1]
    naive, masked = c["naive_bytes"][-1] / c["naive_bytes"][0], c["masked_bytes"][-1] / c["masked_bytes"][0]
    return Measurement(
        measured=naive / masked,
        detail=(f"bytes autograd saves for backward (one training forward), k = 1 to {k} evenly spaced options: k-branch "
                f"supernet {_curve(c, 'naive_bytes', 2**20, ' MiB')} (x{naive:.1f}); masked layer "
                f"{_curve(c, 'masked_bytes', 2**20, ' MiB')} (x{masked:.2f}); growth supernet / masked "
                f"{naive / masked:.1f}"),
    )


def measure_naive_cost() -> Measurement:
    c = _costs()
    k = c["k"][-1]
    formula = sum(channel_options(k)) / MASK_MAX
    return Measurement(
        measured=c["naive_macs"][-1] / c["naive_macs"][0], formula=formula,
        detail=(f"k-branch supernet MACs: {_curve(c, 'naive_macs', 1e6, 'M')} (sum of c_i / C = {formula:g} at k={k}); "
                f"its saved-for-backward memory grows {c['naive_bytes'][-1] / c['naive_bytes'][0]:.1f}x from k=1 to "
                f"k={k}, the masked layer's {c['masked_bytes'][-1] / c['masked_bytes'][0]:.2f}x"),
    )


# -- FBNetV2: what weight sharing saves in a training step ---------------------------------------------
def measure_sharing_step(*, k: int = SHARING_K, size: int = MASK_MAP, protocol=None) -> Measurement:
    """Training step (forward, loss, backward, SGD) of the masked layer against the k-branch
    supernet, interleaved."""
    import torch

    from cnnprof.claims.common import ClockedRunner, busy_while, clock_of, interleaved, quick_protocol
    from cnnprof.timing import torch_threads
    from cnnprof.timing.eager import EagerRunner

    options = channel_options(k)
    masked, padded = _make_masked(MASK_IN, options), _make_padded(MASK_IN, options)
    padded.share_from(masked)
    x = torch.randn(2, MASK_IN, size, size, generator=torch.Generator().manual_seed(0))

    class Head(torch.nn.Module):
        """Pool and classify, so that a cross-entropy step has logits to work on."""

        def __init__(self, body) -> None:
            super().__init__()
            self.body = body

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return self.body(t).mean((2, 3))

    with torch_threads(1):
        runners = [ClockedRunner(EagerRunner(Head(m), x, device=timing_device(), channels_last=False, train=True))
                   for m in (padded, masked)]
        (t_padded, t_masked), busy = busy_while(
            lambda: interleaved([r.step for r in runners], protocol or quick_protocol()))
    ratio, lo, hi, p = ratio_summary(t_padded, t_masked)
    from cnnprof.claims.common import count_module

    shape = (MASK_IN, size, size)
    mac_ratio = count_module(padded, shape).macs / count_module(masked, shape).macs
    clock = clock_of(runners)
    return Measurement(
        measured=ratio / mac_ratio, ci=(lo / mac_ratio, hi / mac_ratio), device=device_text(clock=clock), busy=busy,
        clock=clock,
        detail=(f"training step (forward, cross-entropy, backward, SGD) at 2x{MASK_IN}x{size}x{size}, a 3x3 "
                f"conv-BN-ReLU searched over k={k} widths {options}, torch eager, interleaved, {len(t_masked)} steps "
                f"each: k-branch supernet (step B) {median(t_padded):.3f} ms, one shared masked block (step E) "
                f"{median(t_masked):.3f} ms; supernet / masked {ratio:.2f} (95% bootstrap interval {lo:.2f}-{hi:.2f}, "
                f"Mann-Whitney p={p:.2g}); forward MACs supernet / masked {mac_ratio:.2f} (counted): the time saving is "
                f"{ratio / mac_ratio:.2f}x the MAC saving"),
    )


# -- FBNetV2: what is not built here ---------------------------------------------------------------
_ABSTRACT = FBNETV2 + ", abstract"
SEARCH_CLAIMS = [
    Claim(
        id="fbnetv2-search-space-size", family="fbnetv2", source=seed("FBNet V2", _ABSTRACT),
        quote="大幅增加搜索空间",
        statement="DMaskingNAS enlarges the search space greatly (the paper: up to 10^14 times conventional DNAS)",
        expected=1e14, unit="x",
        cited=("cnnprof holds FBNetV2's searched networks (F1-L2), not its search space (the channel, expansion and "
               "resolution options of every layer), so the space cannot be counted here; 10^14x is the paper's "
               "abstract, the seed gives no figure"),
    ),
    Claim(
        id="fbnetv2-resolution-search", family="fbnetv2", source=seed("FBNet V2", FBNETV2 + ", resolution search"),
        quote="将 channel 数和输入分辨率分别以 mask 和采样的方式加入到超网中",
        statement="input resolution is searched by sampling inside the supernet at a small cost in memory and "
                  "compute",
        expected=None, unit="",
        cited=("cnnprof builds no resolution supernet (the paper's spatially subsampled feature maps padded back to "
               "one shape), and the seed puts no figure on 'a small cost': nothing to measure or compare"),
    ),
]

_V2 = FBNETV2 + ", channel search (DMaskingNAS)"
_FLAT = "不会引起额外的 FLOP 或存储器成本"
_MEMORY = "使得随着搜索空间的扩大，存储和计算成本几乎保持不变"
SHARING_BAND = 0.25
SUPERNET_MEMORY_FACTOR = 2.0
CLAIMS = [
    Claim(
        id="fbnetv2-mask-equivalence", family="fbnetv2", source=seed("通道搜索", _V2 + ", steps D-E"),
        quote="Step E 和 Step D 是等效的",
        statement="step D (the shared block masked option by option, Σ g_i (b(x) ∘ l_i)) equals step E (one block "
                  "times the combined mask M = Σ g_i l_i)",
        expected=0.0, unit="max |diff|", tolerance=absolute(1e-5), measure=measure_mask_equivalence, identity=True,
    ),
    Claim(
        id="fbnetv2-step-b-equals-c", family="fbnetv2", source=seed("通道搜索", _V2 + ", steps B-C"),
        quote="Step B 和 Step C 是等价的",
        statement="without weight sharing, zero-padding each option's output (step B) equals masking the filters of "
                  "full-width blocks (step C)",
        expected=0.0, unit="max |diff|", tolerance=absolute(1e-5), measure=measure_unshared, identity=True,
    ),
    Claim(
        id="fbnetv2-mask-macs", family="fbnetv2", source=seed("通道搜索", _V2 + ", step E"), quote=_FLAT,
        statement="channel masking adds no MACs as the options grow: MACs at k = 32 / at k = 1",
        expected=1.0, unit="x", tolerance=rel(0.05), measure=measure_mask_macs, identity=True,
    ),
    Claim(
        id="fbnetv2-mask-memory", family="fbnetv2", source=seed("FBNet V2", _V2 + ", step E"), quote=_MEMORY,
        statement="the masked layer keeps the same tensors for backward whatever the number of options: activation "
                  "bytes at k = 32 / at k = 1 (within 5%)",
        expected=1.0, unit="x", tolerance=rel(0.05), measure=measure_mask_memory, identity=True,
    ),
    Claim(
        id="fbnetv2-supernet-memory", family="fbnetv2", source=seed("FBNet V2", _V2 + ", step E"), quote=_MEMORY,
        statement="feature-map reuse is what keeps the memory flat as the search space grows: growth of the "
                  "activation bytes kept for backward from k = 1 to k = 32 options, k-branch supernet / masked layer "
                  f"(holds above {SUPERNET_MEMORY_FACTOR:g}: masking at least halves a 32-option search's memory)",
        expected=SUPERNET_MEMORY_FACTOR, unit="x", tolerance=ABOVE, measure=measure_supernet_memory,
    ),
    Claim(
        id="fbnetv2-naive-cost", family="fbnetv2", source=seed("通道搜索", _V2 + ", steps A-B"),
        quote="为了减少搜索 channel 时候的计算量",
        statement="a supernet with one branch per channel option costs Σ c_i: its MACs grow with k "
                  "(k = 32 evenly spaced options against k = 1)",
        expected=sum(channel_options(MASK_KS[-1])) / MASK_MAX, unit="x", tolerance=rel(0.05),
        measure=measure_naive_cost, identity=True,
    ),
    Claim(
        id="fbnetv2-sharing-training-step", family="fbnetv2", source=seed("通道搜索", _V2),
        quote="这在 DNAS 被证明可以减少训练时间和提高准确性",
        statement=f"sharing weights cuts a search training step's time as much as it cuts its MACs: (k-branch "
                  f"supernet / masked layer training-step time) / (their MAC ratio) at k = {SHARING_K} (holds within "
                  f"±{SHARING_BAND:.0%})",
        expected=1.0, unit="x", tolerance=rel(SHARING_BAND), measure=measure_sharing_step, timed=True,
        paper_device="the paper reports search cost in GPU hours, not this step",
    ),
    *SEARCH_CLAIMS,
]
