"""FBNet building rules and blocks (V1, V2, V3), as the official mobile-vision code builds them.

mobile-vision (facebookresearch/mobile-vision, ``mobile_cv/arch/fbnet_v2``) builds every FBNet
from one inverted-residual block, ``IRFBlock``; what this module adds on top of core's ``MBConv``
is its *rules*, so that the counts match the official definitions:

* mid channels = ``in_chs * expand`` rounded by ``round_channels`` to the network's width
  divisor (8 for V2/V3, 1 for V1), which allows the fractional expansions of FBNetV2;
* the 1x1 expand conv is left out when the mid channels equal the input channels (``e1``), but
  a grouped block still shuffles its input channels before the depthwise conv;
* SE squeezes the mid channels to ``int(mid * 0.25)`` (V2), or ``int(mid * 0.25 / expand)`` when
  ``less_se_channels`` (V3), then rounds to the divisor; its inner activation is the block's;
* ``skip`` is the identity, or a 1x1 conv (no bias) + BN + ReLU where stride or channels change:
  ReLU even inside an h-swish network, because the official skip ignores the block's options.

Rows (``IRF``, ``Skip``) and variants (``IRFArch``) are frozen dataclasses shared by the V2 and
V3 tables; ``scale_arch`` applies ``width_mult`` / ``depth_mult`` to one and ``irf_network`` turns
it into a network with ``stem``, ``blocks`` and ``head``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from cnnprof.models.blocks.core import Act, ConvBNAct, MBConv, make_divisible, round_repeats


# -- channel rules ----------------------------------------------------------------------------
def round_channels(value: float, divisor: int = 8) -> int:
    """mobile-vision ``get_divisible_by``: nearest multiple of ``divisor`` (at least ``divisor``),
    one ``divisor`` more if that lost over 5%. It is ``make_divisible`` with a 0.95 limit."""
    return make_divisible(value, divisor, round_limit=0.95)


def irf_mid_chs(in_chs: int, expand: float, divisor: int) -> int:
    """Width of the depthwise conv of an IRF block: ``in_chs * expand`` rounded to ``divisor``."""
    return round_channels(in_chs * expand, divisor)


def irf_se_chs(mid_chs: int, expand: float, *, less_se_channels: bool, divisor: int) -> int:
    """SE bottleneck width: a quarter of the mid channels (divided by ``expand`` in V3)."""
    ratio = 0.25 / expand if less_se_channels else 0.25
    return round_channels(int(mid_chs * ratio), divisor)


def irf_block(
    in_chs: int,
    out_chs: int,
    *,
    kernel: int,
    expand: float,
    stride: int = 1,
    act: Act = nn.ReLU,
    se: bool = False,
    less_se_channels: bool = False,
    groups: int = 1,
    bias: bool = False,
    dw_padding: int | None = None,
    divisor: int = 8,
) -> MBConv:
    """An official IRF block as an ``MBConv``: 1x1 expand (left out when mid == in) -> [shuffle,
    when grouped] -> kxk depthwise -> [SE, hard-sigmoid gate] -> 1x1 project -> [residual]."""
    mid_chs = irf_mid_chs(in_chs, expand, divisor)
    se_chs = irf_se_chs(mid_chs, expand, less_se_channels=less_se_channels, divisor=divisor) if se else 0
    return MBConv(
        in_chs,
        out_chs,
        mid_chs=mid_chs,
        kernel_size=kernel,
        stride=stride,
        se_chs=se_chs,
        act=act,
        se_gate=nn.Hardsigmoid,
        pw_groups=groups,
        shuffle=groups > 1,
        dw_padding=dw_padding,
        bias=bias,
    )


class SkipBlock(nn.Module):
    """The ``skip`` candidate: identity, or 1x1 conv (stride, no bias) + BN + ReLU where the stride
    or the channel count changes (mobile-vision ``Identity``)."""

    def __init__(self, in_chs: int, out_chs: int, *, stride: int = 1):
        super().__init__()
        if in_chs == out_chs and stride == 1:
            self.conv = nn.Identity()
        else:
            self.conv = ConvBNAct(in_chs, out_chs, 1, stride=stride, act=nn.ReLU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


# -- heads --------------------------------------------------------------------------------------
class ConvHead(nn.Module):
    """FBNet V1 head: 1x1 conv (with bias) + BN + ReLU -> global pool -> classifier.

    The official classifier is a 1x1 conv with bias on the pooled map: a linear layer."""

    def __init__(self, in_chs: int, head_chs: int, *, num_classes: int = 1000):
        super().__init__()
        self.conv = ConvBNAct(in_chs, head_chs, 1, act=nn.ReLU, bias=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(head_chs, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.conv(x)).flatten(1))


class PoolHead(nn.Module):
    """FBNet V2/V3 head (mobile-vision ``ir_pool_hs`` + classifier): 1x1 conv to ``mid_chs`` + BN
    + h-swish -> global pool -> 1x1 conv to ``head_chs`` (no BN, no bias) + h-swish -> classifier.

    After the pool both 1x1 convs see a 1x1 map, so they are written as linear layers."""

    def __init__(self, in_chs: int, mid_chs: int, head_chs: int, *, num_classes: int = 1000):
        super().__init__()
        self.conv_pw = ConvBNAct(in_chs, mid_chs, 1, act=nn.Hardswish)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(mid_chs, head_chs, bias=False)
        self.act = nn.Hardswish()
        self.classifier = nn.Linear(head_chs, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.conv_pw(x)).flatten(1)
        return self.classifier(self.act(self.fc(x)))


class FBNetNetwork(nn.Module):
    """``stem`` -> ``blocks`` (an ``nn.Sequential``, one entry per searched layer) -> ``head``.

    The three parts are addressable so that a block can be built, timed or replaced on its own and
    ``head(blocks(stem(x)))`` is the whole forward."""

    def __init__(self, stem: nn.Module, blocks: nn.Sequential, head: nn.Module):
        super().__init__()
        self.stem = stem
        self.blocks = blocks
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


# -- V2 / V3 tables ---------------------------------------------------------------------------
@dataclass(frozen=True)
class IRF:
    """One row of an official table: ``repeats`` IRF blocks, the first with ``stride``.

    ``expand`` may be fractional (FBNetV2); ``hswish`` False means ReLU; ``se`` is the
    hard-sigmoid squeeze-excite (``_sehsig``); ``dw_padding`` overrides the "same" padding of the
    first block's depthwise conv where the official definition does (FBNetV3).
    """

    kernel: int
    expand: float
    out_chs: int
    stride: int = 1
    repeats: int = 1
    se: bool = False
    hswish: bool = True
    dw_padding: int | None = None


@dataclass(frozen=True)
class Skip:
    """A ``skip`` row: identity, or 1x1 ConvBNReLU where the channels change."""

    out_chs: int
    stride: int = 1


@dataclass(frozen=True)
class IRFArch:
    """A whole V2/V3 variant: 3x3 stride-2 h-swish stem, the rows, and the ``ir_pool_hs`` head
    (1x1 to ``round_channels(last * head_expand)``, pool, 1x1 to ``head_chs``)."""

    stem_chs: int
    rows: tuple[IRF | Skip, ...]
    head_expand: float
    head_chs: int


def scale_arch(arch: IRFArch, *, width_mult: float = 1.0, depth_mult: float = 1.0, divisor: int = 8) -> IRFArch:
    """A V2/V3 variant at ``width_mult`` and ``depth_mult`` (for compound scaling; the papers have
    neither).

    Width: the stem, every row's and the head's output width ``c`` becomes
    ``round_channels(int(c * width_mult), divisor)``, the rule mobile-vision's ``FBNetBuilder``
    applies for its ``width_ratio``; mid, SE and head-expansion widths follow from them as always.
    Depth: an IRF row of ``n`` blocks gets ``ceil(n * depth_mult)`` (``round_repeats``), the first
    keeping the row's stride and padding override and the others stride-1 copies; a ``Skip`` row
    stays one block (its copies would be identities). Every official width is a multiple of 8, so at
    1.0 and 1.0 the variant is returned as it is.
    """
    if width_mult <= 0 or depth_mult <= 0:
        raise ValueError(f"width_mult and depth_mult must be > 0, got {width_mult}, {depth_mult}")

    def width(chs: int) -> int:
        return round_channels(int(chs * width_mult), divisor)

    rows = tuple(
        replace(row, out_chs=width(row.out_chs))
        if isinstance(row, Skip)
        else replace(row, out_chs=width(row.out_chs), repeats=round_repeats(row.repeats, depth_mult))
        for row in arch.rows
    )
    return replace(arch, stem_chs=width(arch.stem_chs), rows=rows, head_chs=width(arch.head_chs))


def build_irf_blocks(
    rows: tuple[IRF | Skip, ...], in_chs: int, *, less_se_channels: bool, bias: bool = False, divisor: int = 8
) -> tuple[nn.Sequential, int]:
    """The blocks of a V2/V3 table, one module per block; returns them and the last width."""
    blocks: list[nn.Module] = []
    for row in rows:
        if isinstance(row, Skip):
            blocks.append(SkipBlock(in_chs, row.out_chs, stride=row.stride))
            in_chs = row.out_chs
            continue
        for i in range(row.repeats):
            blocks.append(
                irf_block(
                    in_chs,
                    row.out_chs,
                    kernel=row.kernel,
                    expand=row.expand,
                    stride=row.stride if i == 0 else 1,
                    act=nn.Hardswish if row.hswish else nn.ReLU,
                    se=row.se,
                    less_se_channels=less_se_channels,
                    bias=bias,
                    dw_padding=row.dw_padding if i == 0 else None,
                    divisor=divisor,
                )
            )
            in_chs = row.out_chs
    return nn.Sequential(*blocks), in_chs


def irf_network(arch: IRFArch, *, less_se_channels: bool, num_classes: int = 1000) -> FBNetNetwork:
    """Build a V2/V3 variant. The stem conv has a bias (the official ``conv_k3_hs`` keeps
    PyTorch's default); IRF convs have none; BN eps 1e-5."""
    stem = ConvBNAct(3, arch.stem_chs, 3, stride=2, act=nn.Hardswish, bias=True)
    blocks, last_chs = build_irf_blocks(arch.rows, arch.stem_chs, less_se_channels=less_se_channels)
    head = PoolHead(
        last_chs, round_channels(last_chs * arch.head_expand), arch.head_chs, num_classes=num_classes
    )
    return FBNetNetwork(stem, blocks, head)
