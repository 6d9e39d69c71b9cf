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

Differences paper vs official code (the code is followed): the paper's d = M / K assumes N
divisible by K; the code uses d = floor(N / K) and gives the dilation-1 branch the remainder
channels (N = 64 -> 16, 12, 12, 12, 12), whose output HFF therefore leaves out of its sums
(``blocks.esp.ESP``). The decoder's ESP (2C -> C) has no residual (M != N); the paper's ~0.36 M
parameters are the official code's 365,109 at C = 20, which this build reproduces exactly.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnprof.models.blocks.esp import ESP, V1_BN_EPS, BNPReLU, ConvBNPReLU, ImagePyramid, StridedESP

IMAGE_CHS = 3
LEVEL1_CHS = 16
LEVEL2_CHS = 64
LEVEL3_CHS = 128
OUTPUT_STRIDE = 8


class ESPNetC(nn.Module):
    """ESPNet-C: the encoder, predicting ``num_classes`` logits at 1/8 of the input resolution."""

    def __init__(self, *, num_classes: int = 20, p: int = 2, q: int = 8, branches: int = 5, hff: bool = True):
        super().__init__()
        cat1_chs = LEVEL1_CHS + IMAGE_CHS
        cat2_chs = 2 * LEVEL2_CHS + IMAGE_CHS
        cat3_chs = 2 * LEVEL3_CHS
        self.level1 = ConvBNPReLU(IMAGE_CHS, LEVEL1_CHS, 3, stride=2, bn_eps=V1_BN_EPS)
        self.image_half = ImagePyramid(1)
        self.image_quarter = ImagePyramid(2)
        self.norm_act1 = BNPReLU(cat1_chs, bn_eps=V1_BN_EPS)
        self.level2_down = StridedESP(cat1_chs, LEVEL2_CHS, branches=branches, hff=hff)
        self.level2 = nn.Sequential(*(ESP(LEVEL2_CHS, LEVEL2_CHS, branches=branches, hff=hff) for _ in range(p)))
        self.norm_act2 = BNPReLU(cat2_chs, bn_eps=V1_BN_EPS)
        self.level3_down = StridedESP(cat2_chs, LEVEL3_CHS, branches=branches, hff=hff)
        self.level3 = nn.Sequential(*(ESP(LEVEL3_CHS, LEVEL3_CHS, branches=branches, hff=hff) for _ in range(q)))
        self.norm_act3 = BNPReLU(cat3_chs, bn_eps=V1_BN_EPS)
        self.classifier = nn.Conv2d(cat3_chs, num_classes, 1, bias=False)
        self.feature_chs = (cat1_chs, cat2_chs, cat3_chs)

    def features(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The concatenated features at strides 2, 4 and 8 (19, 131 and 256 channels)."""
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

    def __init__(self, *, num_classes: int = 20, p: int = 2, q: int = 8, branches: int = 5, hff: bool = True):
        super().__init__()
        c = num_classes
        self.encoder = ESPNetC(num_classes=c, p=p, q=q, branches=branches, hff=hff)
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


def espnet_c(*, num_classes: int = 20, p: int = 2, q: int = 8) -> ESPNetC:
    """ESPNet-C encoder (alpha2 = p, alpha3 = q): logits at 1/8 of the input resolution."""
    return ESPNetC(num_classes=num_classes, p=p, q=q)


def espnet(*, num_classes: int = 20, p: int = 2, q: int = 8) -> ESPNet:
    """ESPNet segmentation network (alpha2 = p, alpha3 = q): logits at the input resolution."""
    return ESPNet(num_classes=num_classes, p=p, q=q)
