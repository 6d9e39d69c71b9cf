"""GhostNet blocks: the Ghost module, DFC attention (GhostNetV2) and the Ghost bottleneck.

Ghost module (Han et al., CVPR 2020, Sec. 3.1): an ordinary convolution makes only
``m = ceil(out / s)`` "intrinsic" feature maps; a cheap depthwise ``d x d`` convolution makes
``s - 1`` "ghost" maps from each of them; the two are concatenated and cut back to ``out``. Against
an ordinary ``k x k`` convolution with ``c`` input channels, the speed-up is
``s * c * k^2 / (c * k^2 + (s - 1) * d^2)``, i.e. ``s * c / (s + c - 1) ~ s`` when ``d = k``
(paper Eq. 4).

DFC attention (Tang et al., NeurIPS 2022, Sec. 4): a "decoupled fully connected" gate computed on
the module *input* at half resolution: 2x2 average pool -> 1x1 conv + BN -> depthwise ``1 x K`` +
BN -> depthwise ``K x 1`` + BN -> sigmoid -> nearest upsampling to the Ghost output size; the
Ghost output is multiplied by it. There is no activation inside the branch (official code).

Both follow huawei-noah/Efficient-AI-Backbones (``ghostnet_pytorch/ghostnet.py``,
``ghostnetv2_pytorch/model/ghostnetv2_torch.py``): convs without bias, BN eps 1e-5.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cnnprof.models.blocks.core import Act, ConvBNAct, SqueezeExcite


class DFCAttention(nn.Module):
    """GhostNetV2's decoupled fully connected attention; returns a gate at ``out_size``.

    The horizontal (``1 x K``) and vertical (``K x 1``) depthwise convs each mix information
    along one axis, so two of them reach a long range at the cost of ``2 * K`` weights per channel.
    Working on a 2x down-sampled map cuts their MACs by 4 (paper Sec. 4.2).
    """

    def __init__(self, in_chs: int, out_chs: int, *, kernel_size: int = 5):
        super().__init__()
        self.pool = nn.AvgPool2d(2, stride=2)
        self.conv_reduce = ConvBNAct(in_chs, out_chs, 1, act=None)
        self.conv_h = ConvBNAct(out_chs, out_chs, (1, kernel_size), groups=out_chs, act=None)
        self.conv_v = ConvBNAct(out_chs, out_chs, (kernel_size, 1), groups=out_chs, act=None)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
        a = self.conv_v(self.conv_h(self.conv_reduce(self.pool(x))))
        return F.interpolate(self.gate(a), size=out_size, mode="nearest")


class GhostModule(nn.Module):
    """Primary ``k x k`` conv to ``m = ceil(out / ratio)`` channels, cheap depthwise
    ``dw_size x dw_size`` conv ``m -> m * (ratio - 1)``, concatenate, keep the first ``out_chs``.

    ``act`` (ReLU in GhostNet, ``None`` for the projection) follows both convs. ``dfc`` multiplies
    the output by a :class:`DFCAttention` gate computed from the input (GhostNetV2).
    Conv weights: ``in * m * k^2 + m * (ratio - 1) * dw_size^2``.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        *,
        kernel_size: int = 1,
        ratio: int = 2,
        dw_size: int = 3,
        act: Act | None = nn.ReLU,
        dfc: bool = False,
        dfc_kernel: int = 5,
    ):
        super().__init__()
        if ratio < 2:
            raise ValueError(f"ratio s must be >= 2 (s = 1 is an ordinary conv), got {ratio}")
        self.out_chs = out_chs
        init_chs = math.ceil(out_chs / ratio)
        self.primary_conv = ConvBNAct(in_chs, init_chs, kernel_size, act=act)
        self.cheap_operation = ConvBNAct(init_chs, init_chs * (ratio - 1), dw_size, groups=init_chs, act=act)
        self.dfc = DFCAttention(in_chs, out_chs, kernel_size=dfc_kernel) if dfc else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        intrinsic = self.primary_conv(x)
        ghost = self.cheap_operation(intrinsic)
        out = torch.cat([intrinsic, ghost], dim=1)[:, : self.out_chs]
        if self.dfc is not None:
            out = out * self.dfc(x, out.shape[-2:])
        return out


class GhostBottleneck(nn.Module):
    """Ghost bottleneck (paper Fig. 3): ``ghost1`` expand (ReLU) -> [depthwise ``k x k`` stride 2
    + BN, no activation] -> [SE] -> ``ghost2`` project (no activation) + shortcut.

    The shortcut is the identity when the shape is kept, otherwise depthwise ``k x k`` (stride)
    + BN -> 1x1 + BN, as in the official code (the paper only says "a downsampling layer").
    ``se_chs`` > 0 adds squeeze-excite with a ReLU and a hard-sigmoid gate.
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
        ratio: int = 2,
        dw_size: int = 3,
        dfc: bool = False,
    ):
        super().__init__()
        self.ghost1 = GhostModule(in_chs, mid_chs, ratio=ratio, dw_size=dw_size, act=nn.ReLU, dfc=dfc)
        self.conv_dw = (
            ConvBNAct(mid_chs, mid_chs, kernel_size, stride=stride, groups=mid_chs, act=None)
            if stride > 1
            else nn.Identity()
        )
        self.se = (
            SqueezeExcite(mid_chs, se_chs, act=nn.ReLU, gate=nn.Hardsigmoid) if se_chs > 0 else nn.Identity()
        )
        self.ghost2 = GhostModule(mid_chs, out_chs, ratio=ratio, dw_size=dw_size, act=None)
        if stride == 1 and in_chs == out_chs:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                ConvBNAct(in_chs, in_chs, kernel_size, stride=stride, groups=in_chs, act=None),
                ConvBNAct(in_chs, out_chs, 1, act=None),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.ghost1(x)
        out = self.conv_dw(out)
        out = self.se(out)
        out = self.ghost2(out)
        return out + self.shortcut(x)
