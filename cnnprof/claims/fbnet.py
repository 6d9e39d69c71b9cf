"""FBNet claims: the search space's size, FBNet-B's cost, additive latency, FBNetV2's channel masking.

FBNetV2 (DMaskingNAS, Wan et al. 2020, Sec. 3.2; the seed's steps A-E): a channel search over
``k`` output widths ``c_1 < ... < c_k = C`` can run every option as its own block, zero-pad the
outputs to ``C`` channels and take the Gumbel-weighted sum (step B), or, with the blocks sharing
one weight tensor, run the ``C``-filter block once and multiply its output by the combined mask
``M = sum_i g_i l_i`` (step E). ``MaskedChannelBlock`` is step E and ``PaddedSumBlock`` step B;
both are built here from the zoo's ``ConvBNAct`` so that their cost is counted like any model's.
"""

from __future__ import annotations

from collections.abc import Sequence

from cnnprof.claims import Claim, Measurement, NotAvailable, Plot, absolute, rel
from cnnprof.claims.common import cite, count_registered, fmt_m, source
from cnnprof.models.catalog import FBNET, FBNETV2

MASK_IN = 32
MASK_MAX = 64  # C, the widest option
MASK_MAP = 28
MASK_KS = (1, 2, 4, 8, 16, 32)
ADDITIVITY_MODELS = ("fbnet_a", "fbnet_b", "fbnet_c")


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


def _make_masked(in_chs: int, options: Sequence[int]):
    import torch
    from torch import nn

    class MaskedChannelBlock(nn.Module):
        """Step E: one block with ``max(options)`` filters, output times M = sum_i g_i l_i, where
        l_i keeps the first c_i channels and g = softmax(architecture logits)."""

        def __init__(self) -> None:
            super().__init__()
            self.block = _block(in_chs, max(options))
            masks = torch.zeros(len(options), max(options))
            for i, c in enumerate(options):
                masks[i, :c] = 1.0
            self.register_buffer("masks", masks)
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


def masking_equivalence(k: int = 8, *, size: int = 16, seed: int = 0) -> float:
    """Max |step B - step E| with shared weights, on a random input (BN in eval mode, randomised
    statistics so that it is not the identity)."""
    import torch

    torch.manual_seed(seed)
    options = channel_options(k)
    masked = _make_masked(MASK_IN, options)
    with torch.no_grad():
        masked.block.bn.running_mean.uniform_(-0.5, 0.5)
        masked.block.bn.running_var.uniform_(0.5, 2.0)
        masked.block.bn.weight.uniform_(0.5, 1.5)
        masked.block.bn.bias.uniform_(-0.2, 0.2)
    padded = _make_padded(MASK_IN, options)
    padded.share_from(masked)
    masked.eval()
    padded.eval()
    x = torch.randn(2, MASK_IN, size, size)
    with torch.no_grad():
        return float((padded(x) - masked(x)).abs().max())


def saved_bytes(module, shape: tuple[int, ...]) -> int:
    """Bytes of the tensors autograd keeps for the backward pass of one training forward (each
    storage once): the memory a training step holds at the end of its forward, its peak."""
    import torch

    module.train()
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    x = torch.randn(1, *shape)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x).sum()
    module.eval()
    return sum(seen.values())


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


_COSTS: dict[str, list[int]] = {}


def _costs() -> dict[str, list[int]]:
    if not _COSTS:
        _COSTS.update(masking_costs())
    return _COSTS


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
        detail=(f"max |step B - step E| on a random 2x{MASK_IN}x16x16 input, k=8 options "
                f"{channel_options(8)} of a 3x3 conv-BN-ReLU block, weights shared (b_i = first c_i filters), "
                "BN statistics randomised"),
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
        detail=(f"bytes autograd saves for backward (one training forward): masked "
                f"{_curve(c, 'masked_bytes', 2**20, ' MiB')}; k-branch supernet "
                f"{_curve(c, 'naive_bytes', 2**20, ' MiB')}"),
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


# -- FBNet V1 ----------------------------------------------------------------------------------------
def measure_space_size() -> Measurement:
    from cnnprof.models.fbnet import FBNET_SPACE

    size = FBNET_SPACE.size()
    return Measurement(
        measured=float(size), formula=float(len(FBNET_SPACE.candidates) ** len(FBNET_SPACE.layers)),
        detail=(f"the built search space has {len(FBNET_SPACE.candidates)} candidate blocks x "
                f"{len(FBNET_SPACE.layers)} searchable layers: {len(FBNET_SPACE.candidates)}^"
                f"{len(FBNET_SPACE.layers)} = {size:,} architectures"),
    )


def _paper(name: str):
    from cnnprof.models import registry

    return registry.get(name).paper_figure


def _released(name: str):
    from cnnprof.models import registry

    return next(f for f in registry.get(name).published if f.source.startswith("released"))


def measure_fbnet_b_macs() -> Measurement:
    c = count_registered("fbnet_b")
    return Measurement(measured=float(c.macs),
                       detail=(f"counted fbnet_b at 224x224 (conv + linear): {fmt_m(c.macs)}; released checkpoint "
                               f"{fmt_m(_released('fbnet_b').macs)}"))


def measure_fbnet_b_params(figure: str):
    """``figure`` = "paper" or "released": which published count the detail compares with."""

    def measure() -> Measurement:
        c = count_registered("fbnet_b")
        paper, released = _paper("fbnet_b").params, _released("fbnet_b").params
        if figure == "paper":
            detail = (f"counted fbnet_b (the official definition): {c.params / 1e6:.3f}M; paper {paper / 1e6:.1f}M, "
                      f"released checkpoint {released / 1e6:.3f}M: the paper's figure is {1 - paper / released:.1%} "
                      "below the released one, unexplained in the paper")
        else:
            detail = (f"counted fbnet_b: {c.params / 1e6:.3f}M against the released checkpoint's "
                      f"{released / 1e6:.3f}M (our build follows the official definition, whose block convs "
                      "have biases)")
        return Measurement(measured=float(c.params), detail=detail)

    return measure


def measure_additivity() -> Measurement:
    try:
        from cnnprof.lut import additivity
    except (ImportError, AttributeError) as exc:
        raise NotAvailable(f"the latency lookup table (cnnprof.lut.additivity) is not available yet ({exc})") from exc
    rows = additivity(models=ADDITIVITY_MODELS, backend="torch", threads=1)
    worst = max(rows, key=lambda r: abs(r.ratio - 1.0))
    per = "; ".join(f"{r.model} {r.predicted_ms:.1f} vs {r.measured_ms:.1f} ms ({r.ratio:.3f})" for r in rows)
    return Measurement(
        measured=worst.ratio,
        detail=(f"sum of per-block latencies / whole-network latency, torch eager, 1 thread ({rows[0].source}): "
                f"{per}; the row shows the ratio farthest from 1 ({worst.model}); isolated blocks run with a warm "
                "cache, so the sum tends to undershoot on CPU"),
    )


_V1 = source("FBNet V1", FBNET)
_V2 = source("FBNet V2 (channel search)", FBNETV2)
CLAIMS = [
    Claim(
        id="fbnet-search-space", family="fbnet", source=_V1 + " Sec. 3.2 (Table 1, 2)",
        statement="the layer-wise search space (9 candidate blocks in each of 22 layers) holds 9^22 ≈ 10^21 "
                  "architectures",
        expected=1e21, unit="architectures", tolerance=rel(0.05), measure=measure_space_size,
    ),
    Claim(
        id="fbnet-b-macs", family="fbnet", source=_V1 + " (abstract, ImageNet table)",
        statement="FBNet-B costs 295M FLOPs (multiply-adds)",
        expected=295e6, unit="MACs", tolerance=rel(0.02), measure=measure_fbnet_b_macs,
    ),
    Claim(
        id="fbnet-b-params", family="fbnet", source=_V1 + " (ImageNet table)",
        statement="FBNet-B has 4.5M parameters (paper)",
        expected=4.5e6, unit="params", tolerance=rel(0.05), measure=measure_fbnet_b_params("paper"),
    ),
    Claim(
        id="fbnet-b-params-released", family="fbnet", source=_V1 + "; facebookresearch/mobile-vision model card",
        statement="FBNet-B's released checkpoint has 4.777M parameters",
        expected=4.777e6, unit="params", tolerance=rel(0.015), measure=measure_fbnet_b_params("released"),
    ),
    Claim(
        id="fbnet-lat-additivity", family="fbnet", source=_V1 + " Sec. 3.3 (Eq. 3)",
        statement="a network's latency is the sum of its blocks' latencies, LAT(a) = Σ_l LAT(b_l), on serial "
                  "devices such as CPUs (predicted / measured for FBNet-A/B/C)",
        expected=1.0, unit="ratio", tolerance=rel(0.1), measure=measure_additivity, timed=True,
    ),
    Claim(
        id="fbnet-b-top1", family="fbnet", source=_V1 + " (abstract)",
        statement="FBNet-B reaches 74.1% ImageNet top-1",
        expected=74.1, unit="% top-1", cited=cite("Wu et al. 2019, abstract; released checkpoint 74.21%",
                                                  "74.1% top-1"),
    ),
    Claim(
        id="fbnetv2-mask-equivalence", family="fbnetv2", source=_V2 + ", steps B-E",
        statement="with shared weights, the zero-padded weighted sum over k channel options (step B) equals one "
                  "convolution times the combined mask M = Σ g_i l_i (step E)",
        expected=0.0, unit="max |diff|", tolerance=absolute(1e-5), measure=measure_mask_equivalence,
    ),
    Claim(
        id="fbnetv2-mask-macs", family="fbnetv2", source=_V2 + ", step E",
        statement="channel masking adds no MACs as the options grow: MACs at k = 32 / at k = 1",
        expected=1.0, unit="x", tolerance=rel(0.05), measure=measure_mask_macs,
    ),
    Claim(
        id="fbnetv2-mask-memory", family="fbnetv2", source=_V2 + ", step E",
        statement="channel masking keeps memory nearly constant as the options grow: saved-for-backward bytes at "
                  "k = 32 / at k = 1",
        expected=1.0, unit="x", tolerance=rel(0.05), measure=measure_mask_memory,
    ),
    Claim(
        id="fbnetv2-naive-cost", family="fbnetv2", source=_V2 + ", steps A-B",
        statement="a supernet with one branch per channel option costs Σ c_i: its MACs grow with k "
                  "(k = 32 evenly spaced options against k = 1)",
        expected=sum(channel_options(MASK_KS[-1])) / MASK_MAX, unit="x", tolerance=rel(0.05),
        measure=measure_naive_cost,
    ),
]
