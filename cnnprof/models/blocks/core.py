"""Blocks shared across families: rounding rules, conv-BN-act, squeeze-excite, MBConv, Fused-MBConv.

Each block has a straight-line ``forward``; what varies between families (activation, SE gate,
how SE channels are derived, whether 1x1 convs are grouped) is a constructor argument the family
module sets from its table, never a version switch inside the block.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import TypeVar

import torch
from torch import nn

Act = type[nn.Module]
Row = TypeVar("Row")


# -- rounding rules --------------------------------------------------------------------------
def make_divisible(value: float, divisor: int = 8, *, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` (at least ``min_value``).

    If that rounds down by more than ``1 - round_limit`` (10% by default), one ``divisor`` is
    added back: the rule of the MobileNet / EfficientNet V1 reference code. EfficientNetV2 drops
    that step (``round_limit=0``).
    """
    if divisor < 1:
        raise ValueError(f"divisor must be >= 1, got {divisor}")
    min_value = divisor if min_value is None else min_value
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < round_limit * value:
        new_value += divisor
    return new_value


def round_repeats(repeats: int, depth_mult: float) -> int:
    """Scale a stage's layer count by ``depth_mult``, rounding up (EfficientNet ``round_repeats``)."""
    return math.ceil(depth_mult * repeats)


def stage_rows(stage: Sequence[Row], depth_mult: float) -> tuple[Row, ...]:
    """The rows of a stage of ``n`` rows scaled to ``N = ceil(n * depth_mult)`` blocks (the
    depth rule GhostNet, MobileNetV3 and FBNet use for compound scaling; rows are frozen
    dataclasses with a ``stride`` field).

    Block ``j`` takes row ``round(j * (n - 1) / (N - 1))``: rows evenly spaced from the first to
    the last, so every row is kept (each repeated about ``N / n`` times, copies next to each
    other) when ``N >= n``, and the first and last rows are kept when ``N < n`` (``N = 1`` keeps
    the last, which sets the stage's output width). Only the first block keeps the stage's
    stride; later copies of a row are stride-1 repeats at its output width (identity shortcut).
    """
    if depth_mult <= 0:
        raise ValueError(f"depth_mult must be > 0, got {depth_mult}")
    if any(row.stride != 1 for row in stage[1:]):
        raise ValueError("only the first row of a stage may have a stride")
    n = len(stage)
    blocks = round_repeats(n, depth_mult)  # >= 1 for depth_mult > 0
    if blocks == 1:
        picked = [stage[-1]]
    else:
        picked = [stage[math.floor(j * (n - 1) / (blocks - 1) + 0.5)] for j in range(blocks)]
    return tuple(replace(row, stride=stage[0].stride if j == 0 else 1) for j, row in enumerate(picked))


# -- building blocks -------------------------------------------------------------------------
class ConvBNAct(nn.Module):
    """Convolution, batch norm, optional activation. Padding defaults to "same" for odd kernels."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int | tuple[int, int] = 1,
        *,
        stride: int = 1,
        groups: int = 1,
        dilation: int = 1,
        padding: int | tuple[int, int] | None = None,
        act: Act | None = nn.ReLU,
        bias: bool = False,
        bn_eps: float = 1e-5,
    ):
        super().__init__()
        if padding is None:
            k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
            padding = (dilation * (k[0] - 1) // 2, dilation * (k[1] - 1) // 2)
        self.conv = nn.Conv2d(
            in_chs, out_chs, kernel_size, stride=stride, padding=padding, dilation=dilation, groups=groups, bias=bias
        )
        self.bn = nn.BatchNorm2d(out_chs, eps=bn_eps)
        self.act = act() if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: global pool, 1x1 reduce, activation, 1x1 expand, gate, rescale.

    ``se_chs`` is given by the caller because families derive it differently: EfficientNet from
    the *block input* channels (``int(in_chs * 0.25)``), MobileNetV3 / GhostNet from the
    expanded channels rounded to a divisor.
    """

    def __init__(self, chs: int, se_chs: int, *, act: Act = nn.ReLU, gate: Act = nn.Sigmoid):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv_reduce = nn.Conv2d(chs, se_chs, 1, bias=True)
        self.act = act()
        self.conv_expand = nn.Conv2d(se_chs, chs, 1, bias=True)
        self.gate = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.pool(x)
        s = self.gate(self.conv_expand(self.act(self.conv_reduce(s))))
        return x * s


class DropPath(nn.Module):
    """Stochastic depth on the residual branch (active in training only)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class ChannelShuffle(nn.Module):
    """Interleave channels across ``groups`` (ShuffleNet), so grouped 1x1 convs mix groups."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class MBConv(nn.Module):
    """Inverted residual (MobileNetV2/V3, EfficientNet, FBNet):

    ``conv_pw`` (1x1 expand, skipped when ``mid_chs == in_chs`` unless ``force_expand``) ->
    [channel shuffle] -> ``conv_dw`` (kxk depthwise, stride) -> [``se``] -> ``conv_pwl`` (1x1
    project, no activation) -> residual when stride 1 and ``in_chs == out_chs``.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        *,
        mid_chs: int,
        kernel_size: int = 3,
        stride: int = 1,
        se_chs: int = 0,
        act: Act = nn.ReLU,
        se_act: Act | None = None,
        se_gate: Act = nn.Sigmoid,
        pw_groups: int = 1,
        shuffle: bool = False,
        dw_padding: int | None = None,
        force_expand: bool = False,
        bias: bool = False,
        bn_eps: float = 1e-5,
        drop_path: float = 0.0,
        residual: bool = True,
    ):
        super().__init__()
        self.has_skip = residual and stride == 1 and in_chs == out_chs
        expand = force_expand or mid_chs != in_chs
        self.conv_pw = (
            ConvBNAct(in_chs, mid_chs, 1, groups=pw_groups, act=act, bias=bias, bn_eps=bn_eps)
            if expand
            else nn.Identity()
        )
        self.shuffle = ChannelShuffle(pw_groups) if shuffle and pw_groups > 1 else nn.Identity()
        self.conv_dw = ConvBNAct(
            mid_chs,
            mid_chs,
            kernel_size,
            stride=stride,
            groups=mid_chs,
            padding=dw_padding,
            act=act,
            bias=bias,
            bn_eps=bn_eps,
        )
        self.se = (
            SqueezeExcite(mid_chs, se_chs, act=se_act or act, gate=se_gate) if se_chs > 0 else nn.Identity()
        )
        self.conv_pwl = ConvBNAct(mid_chs, out_chs, 1, groups=pw_groups, act=None, bias=bias, bn_eps=bn_eps)
        self.drop_path = DropPath(drop_path) if self.has_skip else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_pw(x)
        out = self.shuffle(out)
        out = self.conv_dw(out)
        out = self.se(out)
        out = self.conv_pwl(out)
        if self.has_skip:
            out = self.drop_path(out) + x
        return out


class FusedMBConv(nn.Module):
    """Fused-MBConv (EfficientNetV2): the 1x1 expand and kxk depthwise fused into one kxk conv.

    ``mid_chs == in_chs`` (expansion 1): a single kxk conv + BN + act straight to ``out_chs``.
    Otherwise kxk conv to ``mid_chs`` + BN + act -> [SE] -> 1x1 project + BN. Residual when stride
    1 and ``in_chs == out_chs``.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        *,
        mid_chs: int,
        kernel_size: int = 3,
        stride: int = 1,
        se_chs: int = 0,
        act: Act = nn.SiLU,
        se_gate: Act = nn.Sigmoid,
        bn_eps: float = 1e-5,
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.has_skip = stride == 1 and in_chs == out_chs
        if mid_chs == in_chs:
            self.conv_exp = ConvBNAct(in_chs, out_chs, kernel_size, stride=stride, act=act, bn_eps=bn_eps)
            self.se = nn.Identity()
            self.conv_pwl = nn.Identity()
        else:
            self.conv_exp = ConvBNAct(in_chs, mid_chs, kernel_size, stride=stride, act=act, bn_eps=bn_eps)
            self.se = SqueezeExcite(mid_chs, se_chs, act=act, gate=se_gate) if se_chs > 0 else nn.Identity()
            self.conv_pwl = ConvBNAct(mid_chs, out_chs, 1, act=None, bn_eps=bn_eps)
        self.drop_path = DropPath(drop_path) if self.has_skip else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_exp(x)
        out = self.se(out)
        out = self.conv_pwl(out)
        if self.has_skip:
            out = self.drop_path(out) + x
        return out
