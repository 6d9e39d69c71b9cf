"""ESP and EESP blocks of ESPNet V1 and V2, with their strided forms and input-image shortcuts.

* ``ESP`` (ESPNet, Mehta et al. ECCV 2018, Sec. 3, Fig. 1): reduce -> split into K parallel
  dilated 3x3 branches (dilation 2^(k-1)) -> hierarchical feature fusion (HFF) -> concat ->
  [residual] -> BN + PReLU. ``StridedESP`` reduces with a 3x3 stride-2 conv and has no residual.
* ``EESP`` (ESPNetv2, Mehta et al. CVPR 2019, Sec. 3): group 1x1 reduce (BN + PReLU)
  -> K depth-wise dilated 3x3 branches -> HFF over all branches -> BN + PReLU on the concat ->
  group 1x1 merge + BN -> [residual] -> PReLU. ``StridedEESP`` (paper Fig. 2, the official ``DownSampler``)
  concatenates a stride-2 EESP with an average-pooled copy of its input and adds a projection of
  the average-pooled RGB image.
* ``ImagePyramid`` (ESPNet V1's input projection) and ``ImageShortcut`` (ESPNetv2's input
  reinforcement) bring the RGB image down to a feature map's resolution.

Choices follow the official code (sacmehta/ESPNet ``train/Model.py``, sacmehta/ESPNetv2
``imagenet/Model.py``): bias-free convolutions, per-channel PReLU, BN eps 1e-3 in V1 and the
PyTorch default 1e-5 in V2. Where it differs from the papers:

* ESP: the reduce conv maps M -> d = floor(N / K) channels and the first (dilation-1) branch
  outputs the remainder N - (K - 1) d, so any N works (the paper writes d = N / K). HFF sums only
  the dilated branches (2..K) cumulatively; the dilation-1 branch goes to the concat unchanged.
* EESP: the branch dilations are not 1..K as the paper's figure suggests for every unit; the
  receptive field of each branch (3, 5, 7, ... for dilation 1, 2, 3, ...) is clipped to a
  per-level limit ``r_lim`` (see ``eesp_dilations``), so deep low-resolution units use smaller
  dilations.

Each block keeps its parallel branches in ``.branches`` (an ``nn.ModuleList``) so that analysis
code can run them one at a time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

V1_BN_EPS = 1e-3  # ESPNet V1 (train/Model.py); ESPNetv2 uses the PyTorch default 1e-5
V2_BN_EPS = 1e-5


class BNPReLU(nn.Module):
    """Batch norm followed by a per-channel PReLU (the official ``BR``)."""

    def __init__(self, chs: int, *, bn_eps: float = V2_BN_EPS):
        super().__init__()
        self.bn = nn.BatchNorm2d(chs, eps=bn_eps)
        self.act = nn.PReLU(chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(x))


class ConvBNPReLU(nn.Module):
    """Bias-free conv, batch norm, and (if ``act``) a per-channel PReLU ("CBR" / "CB").

    ``core.ConvBNAct`` builds its activation with no arguments, which would give a single shared
    PReLU slope; the ESPNets learn one slope per channel.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 1,
        *,
        stride: int = 1,
        groups: int = 1,
        act: bool = True,
        bn_eps: float = V2_BN_EPS,
    ):
        super().__init__()
        self.conv = nn.Conv2d(
            in_chs, out_chs, kernel_size, stride=stride, padding=(kernel_size - 1) // 2, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_chs, eps=bn_eps)
        self.act = nn.PReLU(out_chs) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


def _dilated_conv(in_chs: int, out_chs: int, dilation: int, *, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """3x3 bias-free conv whose padding keeps the size (up to the stride) at any dilation."""
    return nn.Conv2d(
        in_chs, out_chs, 3, stride=stride, padding=dilation, dilation=dilation, groups=groups, bias=False
    )


def _fuse(outs: list[torch.Tensor], start: int) -> list[torch.Tensor]:
    """Hierarchical feature fusion: from branch ``start`` on, each output is added to the fused
    output before it, so a large-dilation branch is smoothed by all smaller ones (de-gridding)."""
    fused = list(outs[: start + 1])
    for out in outs[start + 1 :]:
        fused.append(out + fused[-1])
    return fused


# -- ESPNet V1 -------------------------------------------------------------------------------
class ESP(nn.Module):
    """ESP module: conv_reduce (M -> d) -> K dilated 3x3 branches -> [HFF] -> concat (N) ->
    [+ input] -> BN + PReLU.

    ``branches`` = K, dilations 1, 2, 4, ..., 2^(K-1); d = N // K; the dilation-1 branch outputs
    the remainder N - (K - 1) d. ``reduce_kernel`` is 1 in the residual modules (the paper's
    parameter formula M d + n^2 d^2 K) and 3 in the strided module. ``residual`` needs stride 1 and
    M = N.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        *,
        branches: int = 5,
        hff: bool = True,
        residual: bool = True,
        stride: int = 1,
        reduce_kernel: int = 1,
        bn_eps: float = V1_BN_EPS,
    ):
        super().__init__()
        if branches < 1:
            raise ValueError(f"branches must be >= 1, got {branches}")
        mid_chs = out_chs // branches
        if mid_chs < 1:
            raise ValueError(f"out_chs={out_chs} is too few for {branches} branches")
        if residual and (stride != 1 or in_chs != out_chs):
            raise ValueError(f"a residual ESP needs stride 1 and in_chs == out_chs, got {in_chs}->{out_chs} s{stride}")
        first_chs = out_chs - (branches - 1) * mid_chs
        self.dilations = tuple(2**k for k in range(branches))
        self.hff = hff
        self.residual = residual
        self.conv_reduce = nn.Conv2d(
            in_chs, mid_chs, reduce_kernel, stride=stride, padding=(reduce_kernel - 1) // 2, bias=False
        )
        self.branches = nn.ModuleList(
            _dilated_conv(mid_chs, first_chs if k == 0 else mid_chs, d) for k, d in enumerate(self.dilations)
        )
        self.norm_act = BNPReLU(out_chs, bn_eps=bn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.conv_reduce(x)
        outs = [branch(reduced) for branch in self.branches]
        if self.hff:
            outs = _fuse(outs, start=1)  # the dilation-1 branch (different width) is not summed
        out = torch.cat(outs, 1)
        if self.residual:
            out = out + x
        return self.norm_act(out)


class StridedESP(ESP):
    """Strided ESP (official ``DownSamplerB``): the reduce conv is 3x3 with stride 2; no residual."""

    def __init__(self, in_chs: int, out_chs: int, *, branches: int = 5, hff: bool = True, bn_eps: float = V1_BN_EPS):
        super().__init__(
            in_chs, out_chs, branches=branches, hff=hff, residual=False, stride=2, reduce_kernel=3, bn_eps=bn_eps
        )


class ImagePyramid(nn.Module):
    """The RGB image average-pooled (3x3, stride 2, pad 1) ``times`` times: ESPNet V1's input
    projection, concatenated with feature maps of 1/2^times resolution. No parameters."""

    def __init__(self, times: int):
        super().__init__()
        self.pools = nn.ModuleList(nn.AvgPool2d(3, stride=2, padding=1) for _ in range(times))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        for pool in self.pools:
            image = pool(image)
        return image


# -- ESPNet V2 -------------------------------------------------------------------------------
# Receptive field of a 3x3 kernel at dilation r is 2r + 1: RF 3 -> 1, 5 -> 2, 7 -> 3, ...
def eesp_dilations(branches: int, r_lim: int) -> tuple[int, ...]:
    """Branch dilations of an EESP unit (official rule): branch i wants receptive field 3 + 2i;
    one above ``r_lim`` falls back to 3 (dilation 1); sorted ascending.

    >>> eesp_dilations(4, 13), eesp_dilations(4, 7), eesp_dilations(4, 5)
    ((1, 2, 3, 4), (1, 1, 2, 3), (1, 1, 1, 2))
    """
    fields = sorted(rf if rf <= r_lim else 3 for rf in (3 + 2 * i for i in range(branches)))
    return tuple((rf - 1) // 2 for rf in fields)


class EESP(nn.Module):
    """EESP unit: group 1x1 reduce (M -> d, BN + PReLU) -> K depth-wise dilated 3x3 branches
    (d -> d each) -> HFF (cumulative sums over all K) -> BN + PReLU on the concat (N = d K) ->
    group 1x1 merge (N -> N, BN) -> [+ input] -> [PReLU].

    Conv weights: M d / g + 9 d K + (d K)^2 / g; with g = K that is the paper's
    M d / g + (n^2 + d) d K. ``stride=2`` strides the depth-wise branches; the strided unit inside
    ``StridedEESP`` is built with ``residual=False, out_act=False`` (the official ``down_method
    'avg'``), its activation coming after the concat there.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        *,
        stride: int = 1,
        branches: int = 4,
        groups: int = 4,
        r_lim: int = 7,
        hff: bool = True,
        residual: bool = True,
        out_act: bool = True,
        bn_eps: float = V2_BN_EPS,
    ):
        super().__init__()
        if out_chs % branches:
            raise ValueError(f"out_chs={out_chs} must be divisible by branches={branches} (equal depth-wise branches)")
        mid_chs = out_chs // branches
        if in_chs % groups or mid_chs % groups:
            raise ValueError(f"in_chs={in_chs} and out_chs/branches={mid_chs} must be divisible by groups={groups}")
        if residual and (stride != 1 or in_chs != out_chs):
            raise ValueError(f"a residual EESP needs stride 1 and in_chs == out_chs, got {in_chs}->{out_chs} s{stride}")
        self.dilations = eesp_dilations(branches, r_lim)
        self.hff = hff
        self.residual = residual
        self.conv_reduce = ConvBNPReLU(in_chs, mid_chs, 1, groups=groups, bn_eps=bn_eps)
        self.branches = nn.ModuleList(
            _dilated_conv(mid_chs, mid_chs, d, stride=stride, groups=mid_chs) for d in self.dilations
        )
        self.norm_act = BNPReLU(out_chs, bn_eps=bn_eps)
        # A g-group 1x1 conv is g independent point-wise convs, one per channel group.
        self.conv_merge = ConvBNPReLU(out_chs, out_chs, 1, groups=groups, act=False, bn_eps=bn_eps)
        self.act = nn.PReLU(out_chs) if out_act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.conv_reduce(x)
        outs = [branch(reduced) for branch in self.branches]
        if self.hff:
            outs = _fuse(outs, start=0)
        out = self.conv_merge(self.norm_act(torch.cat(outs, 1)))
        if self.residual:
            out = out + x
        return self.act(out)


class ImageShortcut(nn.Module):
    """ESPNetv2's input reinforcement: the RGB image average-pooled (3x3, stride 2, pad 1) until
    it has the feature map's size, then a 3x3 conv-BN-PReLU (3 -> 3) and a 1x1 conv-BN (3 -> N)."""

    def __init__(self, out_chs: int, *, image_chs: int = 3, bn_eps: float = V2_BN_EPS):
        super().__init__()
        self.conv_3x3 = ConvBNPReLU(image_chs, image_chs, 3, bn_eps=bn_eps)
        self.conv_1x1 = ConvBNPReLU(image_chs, out_chs, 1, act=False, bn_eps=bn_eps)

    def forward(self, image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        while tuple(image.shape[-2:]) != tuple(size):
            if image.shape[-2] < size[0] or image.shape[-1] < size[1]:
                raise ValueError(f"image {tuple(image.shape[-2:])} cannot be pooled to {tuple(size)}")
            image = F.avg_pool2d(image, 3, stride=2, padding=1)
        return self.conv_1x1(self.conv_3x3(image))


class StridedEESP(nn.Module):
    """Strided EESP (official ``DownSampler``): concat [avg-pool 3x3 s2 of the input (M),
    stride-2 EESP (M -> N - M)] -> [+ image shortcut] -> PReLU (N)."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        *,
        branches: int = 4,
        groups: int = 4,
        r_lim: int = 9,
        image_shortcut: bool = True,
        bn_eps: float = V2_BN_EPS,
    ):
        super().__init__()
        self.pool = nn.AvgPool2d(3, stride=2, padding=1)
        self.eesp = EESP(
            in_chs, out_chs - in_chs, stride=2, branches=branches, groups=groups, r_lim=r_lim,
            residual=False, out_act=False, bn_eps=bn_eps,
        )
        self.shortcut = ImageShortcut(out_chs, bn_eps=bn_eps) if image_shortcut else None
        self.act = nn.PReLU(out_chs)

    def forward(self, x: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        out = torch.cat([self.pool(x), self.eesp(x)], 1)
        if self.shortcut is not None:
            if image is None:
                raise ValueError("this StridedEESP has an image shortcut: pass the input image")
            out = out + self.shortcut(image, out.shape[-2:])
        return self.act(out)
