"""FBNet V1 (Wu et al., CVPR 2019, arXiv:1812.03443): the layer-wise search space and FBNet-A/B/C.

The search space is paper Table 1 (a fixed macro-architecture: 3x3 stride-2 stem to 16, 22
"to be searched" layers in stages of f = 16, 24, 32, 64, 112, 184, 352 channels with n = 1, 4,
4, 4, 4, 4, 1 layers, the first of a stage carrying its stride; a 1x1 conv to 1984; pooling; a
classifier) and Table 2 (nine candidate blocks per layer: k3_e1, k3_e1_g2, k3_e3, k3_e6, k5_e1,
k5_e1_g2, k5_e3, k5_e6, skip). It is an object, ``SearchSpace``, so that its size (9^22), each
layer's input shape and any single candidate block can be asked for: ``FBNET_SPACE`` is the
224x224 one. FBNet-A/B/C are ``build_network`` of their published choices, ``FBNET_ARCHS``.

Blocks follow the official definitions (mobile-vision ``fbnet_modeldef_cls_fbnet.py``, built by
``blocks_factory.py`` / ``irf_block.py``): the expansion multiplies the *input* channels; an e1
block has no 1x1 expand conv; the g2 blocks group both 1x1 convs in two and shuffle the channels
before the depthwise conv (for e1, the input itself); all block convs have a bias (``use_bias``),
as do the stem and the head conv (PyTorch's default in the official ``conv_k3`` / ``conv_k1``);
``skip`` is the identity, or a 1x1 conv (no bias) + BN + ReLU at a stride or channel change; the
classifier is a 1x1 conv with bias on the pooled features (a linear layer); ReLU, BN eps 1e-5.

Differences paper vs official code: the released FBNet-A has a 1504-channel head, not 1984. The
paper gives FBNet-B 4.5M parameters, but the released checkpoint has 4.77M and the official
definition counts 4.82M (not explained anywhere we found; both are listed in the catalog);
FBNet-C: paper 375M MACs vs 378M counted from the official definition (383M in the released
model card). Counts here follow the official definition.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from cnnprof.models.blocks.core import ConvBNAct, make_divisible, stage_rows
from cnnprof.models.blocks.fbnet import ConvHead, FBNetNetwork, SkipBlock, irf_block


@dataclass(frozen=True)
class Candidate:
    """One of the searched blocks (paper Table 2): kernel, expansion, 1x1 groups, or skip."""

    name: str
    kernel: int = 0
    expand: int = 0
    groups: int = 1
    is_skip: bool = False


@dataclass(frozen=True)
class SearchLayer:
    """One searchable layer: its position (0-based), widths, stride and input size (H, W)."""

    index: int
    in_chs: int
    out_chs: int
    stride: int
    in_hw: tuple[int, int]


@dataclass(frozen=True)
class Stem:
    out_chs: int = 16
    kernel: int = 3
    stride: int = 2


@dataclass(frozen=True)
class Stage:
    """A row of paper Table 1's searched part: ``repeats`` layers to ``out_chs``, first strided."""

    out_chs: int
    repeats: int
    stride: int


# Paper Table 2, in its order.
CANDIDATES = (
    Candidate("k3_e1", kernel=3, expand=1),
    Candidate("k3_e1_g2", kernel=3, expand=1, groups=2),
    Candidate("k3_e3", kernel=3, expand=3),
    Candidate("k3_e6", kernel=3, expand=6),
    Candidate("k5_e1", kernel=5, expand=1),
    Candidate("k5_e1_g2", kernel=5, expand=1, groups=2),
    Candidate("k5_e3", kernel=5, expand=3),
    Candidate("k5_e6", kernel=5, expand=6),
    Candidate("skip", is_skip=True),
)

# Paper Table 1: the TBS rows (1 + 4 + 4 + 4 + 4 + 4 + 1 = 22 layers).
STAGES = (
    Stage(16, 1, 1),
    Stage(24, 4, 2),
    Stage(32, 4, 2),
    Stage(64, 4, 2),
    Stage(112, 4, 1),
    Stage(184, 4, 2),
    Stage(352, 1, 1),
)
HEAD_CHS = 1984
BLOCK_BIAS = True  # the official definitions build every searched block with use_bias


@dataclass(frozen=True)
class SearchSpace:
    """The FBNet layer-wise search space at one input size: every architecture is one candidate
    name per layer, and ``build_network`` makes it a network with ``stem``, ``blocks``, ``head``."""

    stem: Stem
    layers: tuple[SearchLayer, ...]
    candidates: tuple[Candidate, ...]
    head_chs: int
    input: tuple[int, int, int]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.candidates)

    def size(self) -> int:
        """Number of architectures: candidates ** layers (an exact integer)."""
        return len(self.candidates) ** len(self.layers)

    def candidate(self, name: str) -> Candidate:
        for c in self.candidates:
            if c.name == name:
                return c
        raise ValueError(f"unknown FBNet candidate {name!r}; choose from {', '.join(self.names)}")

    def block_input_shapes(self) -> tuple[tuple[int, int, int], ...]:
        """Each searchable layer's input (C, H, W) at this space's input size."""
        return tuple((layer.in_chs, *layer.in_hw) for layer in self.layers)

    def build_block(self, layer_index: int, candidate_name: str) -> nn.Module:
        """The module that ``candidate_name`` puts at layer ``layer_index`` (0-based)."""
        if not 0 <= layer_index < len(self.layers):
            raise ValueError(f"layer_index must be in [0, {len(self.layers)}), got {layer_index}")
        layer = self.layers[layer_index]
        cand = self.candidate(candidate_name)
        if cand.is_skip:
            return SkipBlock(layer.in_chs, layer.out_chs, stride=layer.stride)
        return irf_block(
            layer.in_chs,
            layer.out_chs,
            kernel=cand.kernel,
            expand=cand.expand,
            stride=layer.stride,
            act=nn.ReLU,
            groups=cand.groups,
            bias=BLOCK_BIAS,
            divisor=1,  # V1 has no width rounding: mid = in * e exactly
        )

    def build_stem(self) -> nn.Module:
        """3x3 stride-2 conv (with bias) + BN + ReLU."""
        return ConvBNAct(self.input[0], self.stem.out_chs, self.stem.kernel, stride=self.stem.stride, bias=True)

    def build_head(self, *, head_chs: int | None = None, num_classes: int = 1000) -> nn.Module:
        """1x1 conv to ``head_chs`` (default: the space's) + BN + ReLU, pool, classifier."""
        head_chs = self.head_chs if head_chs is None else head_chs
        return ConvHead(self.layers[-1].out_chs, head_chs, num_classes=num_classes)

    def build_network(
        self, choices: Sequence[str], *, head_chs: int | None = None, num_classes: int = 1000
    ) -> FBNetNetwork:
        """The network of one architecture: one candidate name per layer."""
        if len(choices) != len(self.layers):
            raise ValueError(f"need {len(self.layers)} choices, one per layer, got {len(choices)}")
        blocks = nn.Sequential(*(self.build_block(i, name) for i, name in enumerate(choices)))
        head = self.build_head(head_chs=head_chs, num_classes=num_classes)
        return FBNetNetwork(self.build_stem(), blocks, head)

    def sample(self, rng: random.Random) -> tuple[str, ...]:
        """A uniformly random architecture (one candidate name per layer)."""
        return tuple(rng.choice(self.names) for _ in self.layers)


def fbnet_space(input_size: int = 224, *, stem: Stem = Stem(), stages: tuple[Stage, ...] = STAGES) -> SearchSpace:
    """The FBNet search space at ``input_size`` x ``input_size`` ("same" padding: H -> ceil(H / s))."""
    hw = -(-input_size // stem.stride)
    layers = []
    in_chs = stem.out_chs
    for stage in stages:
        for i in range(stage.repeats):
            stride = stage.stride if i == 0 else 1
            layers.append(SearchLayer(len(layers), in_chs, stage.out_chs, stride, (hw, hw)))
            in_chs = stage.out_chs
            hw = -(-hw // stride)
    return SearchSpace(stem, tuple(layers), CANDIDATES, HEAD_CHS, (3, input_size, input_size))


FBNET_SPACE = fbnet_space(224)

# Published choices, paper "searched architectures" figure = mobile-vision fbnet_a/_b/_c.
# fmt: off
FBNET_ARCHS: dict[str, tuple[str, ...]] = {
    "a": (
        "skip",
        "k3_e3", "k3_e1", "skip", "skip",
        "k5_e6", "k3_e3", "k5_e1", "k3_e3",
        "k5_e6", "k5_e3", "k5_e1_g2", "k5_e6",
        "k3_e6", "k5_e1_g2", "k5_e3", "k3_e1_g2",
        "k5_e6", "k5_e6", "k5_e3", "k5_e6",
        "k5_e6",
    ),
    "b": (
        "k3_e1",
        "k3_e6", "k5_e1", "k3_e1", "k3_e1",
        "k5_e6", "k5_e3", "k3_e6", "k5_e6",
        "k5_e6", "k5_e6", "skip", "k5_e3",
        "k5_e6", "k3_e1", "k5_e1", "k5_e3",
        "k5_e6", "k5_e1", "k5_e6", "k5_e6",
        "k3_e6",
    ),
    "c": (
        "k3_e1",
        "k3_e6", "skip", "k3_e1", "k3_e1",
        "k5_e6", "k5_e3", "k5_e6", "k3_e6",
        "k5_e6", "k5_e3", "k5_e6", "k5_e6",
        "k5_e6", "k5_e6", "k5_e6", "k5_e3",
        "k5_e6", "k5_e6", "k5_e6", "k5_e6",
        "k3_e6",
    ),
}
# fmt: on
# The released FBNet-A narrows the head conv; B and C keep the search space's 1984.
FBNET_HEAD_CHS = {"a": 1504, "b": HEAD_CHS, "c": HEAD_CHS}


@dataclass(frozen=True)
class _Choice:
    """A searched layer's choice with its stride, so that ``stage_rows`` can repeat it."""

    name: str
    stride: int


def scale_choices(
    choices: Sequence[str], stages: tuple[Stage, ...], depth_mult: float
) -> tuple[tuple[Stage, ...], tuple[str, ...]]:
    """Stages with ``ceil(n * depth_mult)`` layers each, and the choices for them: a stage's
    choices spread evenly over its new layers (``blocks.stage_rows``)."""
    new_stages, new_choices, start = [], [], 0
    for stage in stages:
        names = choices[start : start + stage.repeats]
        rows = tuple(_Choice(name, stage.stride if i == 0 else 1) for i, name in enumerate(names))
        start += stage.repeats
        picked = stage_rows(rows, depth_mult)
        new_stages.append(Stage(stage.out_chs, len(picked), stage.stride))
        new_choices.extend(row.name for row in picked)
    return tuple(new_stages), tuple(new_choices)


def fbnet(
    *, arch: str = "b", width_mult: float = 1.0, depth_mult: float = 1.0, num_classes: int = 1000
) -> FBNetNetwork:
    """FBNet ``a``, ``b`` or ``c``: the 224x224 search space built with the published choices.

    ``width_mult`` and ``depth_mult`` (for compound scaling; the paper has neither) scale the
    stem, stage and head widths by ``make_divisible(c * w, 8)`` and each stage's layer count by
    ``ceil(n * d)``, repeating its choices evenly. At 1.0 and 1.0 the network is the published one.
    """
    if arch not in FBNET_ARCHS:
        raise ValueError(f"arch must be one of {sorted(FBNET_ARCHS)}, got {arch!r}")
    if width_mult <= 0 or depth_mult <= 0:
        raise ValueError(f"width_mult and depth_mult must be > 0, got {width_mult}, {depth_mult}")
    if width_mult == 1.0 and depth_mult == 1.0:
        return FBNET_SPACE.build_network(FBNET_ARCHS[arch], head_chs=FBNET_HEAD_CHS[arch], num_classes=num_classes)
    stages, choices = scale_choices(FBNET_ARCHS[arch], STAGES, depth_mult)
    stages = tuple(Stage(make_divisible(s.out_chs * width_mult, 8), s.repeats, s.stride) for s in stages)
    space = fbnet_space(224, stem=Stem(out_chs=make_divisible(Stem().out_chs * width_mult, 8)), stages=stages)
    head_chs = make_divisible(FBNET_HEAD_CHS[arch] * width_mult, 8)
    return space.build_network(choices, head_chs=head_chs, num_classes=num_classes)
