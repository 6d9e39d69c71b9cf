"""ESPNet (V1) for semantic segmentation and its encoder ESPNet-C (Mehta et al., ECCV 2018,
arXiv:1803.06815).

Follows the paper's networks "ESPNet-C" and "ESPNet" (Sec. 3, the figure of the path from ESPNet-A
to ESPNet) with alpha2 = p, alpha3 = q, as the official code builds them (sacmehta/ESPNet
``train/Model.py``, ``ESPNet_Encoder`` / ``ESPNet``):

=========  =================================================================  =====  ======
level      layers                                                             out    stride
=========  =================================================================  =====  ======
1          CBR 3x3 s2 (3 -> 16); concat the image pooled once; BN + PReLU     19     2
2          strided ESP (19 -> 64); p ESP(64); concat [ESPs, strided, image    131    4
           pooled twice]; BN + PReLU
3          strided ESP (131 -> 128); q ESP(128); concat [strided, ESPs];      256    8
           BN + PReLU
classify   1x1 conv (256 -> C): ESPNet-C's output                             C      8
decoder    BN, 2x2 transposed conv -> concat with a 1x1 conv (131 -> C) of     C      1
           level 2 -> BN + PReLU -> ESP(2C -> C) -> transposed conv, BN +
           PReLU -> concat level 1 -> CBR 3x3 (19 + C -> C) -> transposed conv
=========  =================================================================  =====  ======

Convolutions are bias-free, activations per-channel PReLU, BN eps 1e-3; C = 20 (Cityscapes' 19
classes plus the void/background label the official training maps 255 to); native input 3x512x1024.
ESPNet's logits come at the input resolution (H and W must be multiples of 8), ESPNet-C's at 1/8.

Multipliers (for compound scaling; the paper varies only alpha2 and alpha3): ``depth_mult`` makes
alpha2 = ceil(p d) and alpha3 = ceil(q d); ``width_mult`` scales the level widths 16 / 64 / 128 by
``espnet_widths``. The decoder's widths follow the class count C, not the multipliers. At 1.0 and
1.0 the network is the official one.

Differences paper vs official code (the code is followed): the paper's d = M / K assumes N
divisible by K; the code uses d = floor(N / K) and gives the dilation-1 branch the remainder
channels (N = 64 -> 16, 12, 12, 12, 12), whose output HFF therefore leaves out of its sums
(``blocks.esp.ESP``). The decoder's ESP (2C -> C) has no residual (M != N); the paper's ~0.36 M
parameters are the official code's 365,109 at C = 20, which this build reproduces exactly.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnprof.models.blocks.core import make_divisible, round_repeats
from cnnprof.models.blocks.esp import ESP, V1_BN_EPS, BNPReLU, ConvBNPReLU, ImagePyramid, StridedESP

IMAGE_CHS = 3
LEVEL_CHS = (16, 64, 128)  # levels 1, 2, 3 (official ESPNet_Encoder)
WIDTH_DIVISOR = 8
OUTPUT_STRIDE = 8


def espnet_widths(width_mult: float) -> tuple[int, int, int]:
    """Level 1, 2 and 3 widths at ``width_mult``: ``make_divisible(c * width_mult, 8)``, the nearest
    multiple of 8, never more than 10% down and at least 8.

    Why 8: an ESP of N channels gives each of its K = 5 branches d = floor(N / K) channels (the
    dilation-1 branch takes the remainder), so N must be at least K for d >= 1; every multiple of
    8 is. Multiples of K would split evenly but could not give the official 64 and 128, which
    multiples of 8 give at 1.0. Example: 0.5 -> (8, 32, 64), 1.3 -> (24, 80, 168).
    """
    if width_mult <= 0:
        raise ValueError(f"width_mult must be > 0, got {width_mult}")
    l1, l2, l3 = (make_divisible(c * width_mult, WIDTH_DIVISOR) for c in LEVEL_CHS)
    return l1, l2, l3


class ESPNetC(nn.Module):
    """ESPNet-C: the encoder, predicting ``num_classes`` logits at 1/8 of the input resolution.

    ``widths`` are the level 1, 2, 3 widths (official: 16, 64, 128); ``p`` and ``q`` the ESP counts
    of levels 2 and 3."""

    def __init__(
        self,
        *,
        num_classes: int = 20,
        p: int = 2,
        q: int = 8,
        widths: tuple[int, int, int] = LEVEL_CHS,
        branches: int = 5,
        hff: bool = True,
    ):
        super().__init__()
        level1_chs, level2_chs, level3_chs = widths
        cat1_chs = level1_chs + IMAGE_CHS
        cat2_chs = 2 * level2_chs + IMAGE_CHS
        cat3_chs = 2 * level3_chs
        self.level1 = ConvBNPReLU(IMAGE_CHS, level1_chs, 3, stride=2, bn_eps=V1_BN_EPS)
        self.image_half = ImagePyramid(1)
        self.image_quarter = ImagePyramid(2)
        self.norm_act1 = BNPReLU(cat1_chs, bn_eps=V1_BN_EPS)
        self.level2_down = StridedESP(cat1_chs, level2_chs, branches=branches, hff=hff)
        self.level2 = nn.Sequential(*(ESP(level2_chs, level2_chs, branches=branches, hff=hff) for _ in range(p)))
        self.norm_act2 = BNPReLU(cat2_chs, bn_eps=V1_BN_EPS)
        self.level3_down = StridedESP(cat2_chs, level3_chs, branches=branches, hff=hff)
        self.level3 = nn.Sequential(*(ESP(level3_chs, level3_chs, branches=branches, hff=hff) for _ in range(q)))
        self.norm_act3 = BNPReLU(cat3_chs, bn_eps=V1_BN_EPS)
        self.classifier = nn.Conv2d(cat3_chs, num_classes, 1, bias=False)
        self.feature_chs = (cat1_chs, cat2_chs, cat3_chs)

    def features(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The concatenated features at strides 2, 4 and 8 (19, 131 and 256 channels at the official widths)."""
        x1 = self.norm_act1(torch.cat([self.level1(image), self.image_half(image)], 1))
        down2 = self.level2_down(x1)
        x2 = self.norm_act2(torch.cat([self.level2(down2), down2, self.image_quarter(image)], 1))
        down3 = self.level3_down(x2)
        x3 = self.norm_act3(torch.cat([down3, self.level3(down3)], 1))
        return x1, x2, x3

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(image)[2])


def _upsample2x(chs: int) -> nn.ConvTranspose2d:
    """Learned 2x upsampling: 2x2 transposed conv, stride 2, bias-free (C -> C)."""
    return nn.ConvTranspose2d(chs, chs, 2, stride=2, bias=False)


class ESPNet(nn.Module):
    """ESPNet: ESPNet-C plus the light decoder, predicting logits at the input resolution."""

    def __init__(
        self,
        *,
        num_classes: int = 20,
        p: int = 2,
        q: int = 8,
        widths: tuple[int, int, int] = LEVEL_CHS,
        branches: int = 5,
        hff: bool = True,
    ):
        super().__init__()
        c = num_classes
        self.encoder = ESPNetC(num_classes=c, p=p, q=q, widths=widths, branches=branches, hff=hff)
        cat1_chs, cat2_chs, _ = self.encoder.feature_chs
        # stride 8 -> 4: BN on the encoder's logits, then upsample
        self.norm8 = nn.BatchNorm2d(c, eps=V1_BN_EPS)
        self.up8 = _upsample2x(c)
        # stride 4: project level 2 to C, fuse with the upsampled logits, upsample to stride 2
        self.project4 = nn.Conv2d(cat2_chs, c, 1, bias=False)
        self.norm_act4 = BNPReLU(2 * c, bn_eps=V1_BN_EPS)
        self.esp4 = ESP(2 * c, c, branches=branches, hff=hff, residual=False)
        self.up4 = _upsample2x(c)
        self.norm_act_up4 = BNPReLU(c, bn_eps=V1_BN_EPS)
        # stride 2: fuse with level 1, then upsample to the input resolution
        self.fuse2 = ConvBNPReLU(cat1_chs + c, c, 3, bn_eps=V1_BN_EPS)
        self.up2 = _upsample2x(c)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        if h % OUTPUT_STRIDE or w % OUTPUT_STRIDE:
            raise ValueError(f"ESPNet needs H and W divisible by {OUTPUT_STRIDE}, got {h}x{w}")
        x1, x2, x3 = self.encoder.features(image)
        y = self.up8(self.norm8(self.encoder.classifier(x3)))
        y = self.esp4(self.norm_act4(torch.cat([self.project4(x2), y], 1)))
        y = self.norm_act_up4(self.up4(y))
        y = self.fuse2(torch.cat([y, x1], 1))
        return self.up2(y)


def _check(p: int, q: int, width_mult: float, depth_mult: float) -> None:
    if width_mult <= 0 or depth_mult <= 0:
        raise ValueError(f"width_mult and depth_mult must be > 0, got {width_mult}, {depth_mult}")
    if p < 0 or q < 0:
        raise ValueError(f"p and q must be >= 0, got {p}, {q}")


def espnet_c(
    *, num_classes: int = 20, p: int = 2, q: int = 8, width_mult: float = 1.0, depth_mult: float = 1.0
) -> ESPNetC:
    """ESPNet-C encoder (alpha2 = ceil(p * depth_mult), alpha3 = ceil(q * depth_mult), level widths
    ``espnet_widths(width_mult)``): logits at 1/8 of the input resolution."""
    _check(p, q, width_mult, depth_mult)
    return ESPNetC(
        num_classes=num_classes,
        p=round_repeats(p, depth_mult),
        q=round_repeats(q, depth_mult),
        widths=espnet_widths(width_mult),
    )


def espnet(
    *, num_classes: int = 20, p: int = 2, q: int = 8, width_mult: float = 1.0, depth_mult: float = 1.0
) -> ESPNet:
    """ESPNet segmentation network (alpha2 = ceil(p * depth_mult), alpha3 = ceil(q * depth_mult),
    level widths ``espnet_widths(width_mult)``): logits at the input resolution."""
    _check(p, q, width_mult, depth_mult)
    return ESPNet(
        num_classes=num_classes,
        p=round_repeats(p, depth_mult),
        q=round_repeats(q, depth_mult),
        widths=espnet_widths(width_mult),
    )
