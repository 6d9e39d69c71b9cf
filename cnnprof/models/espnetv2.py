"""ESPNetv2 ImageNet classifier (Mehta et al., CVPR 2019, arXiv:1811.11431).

Follows the paper's ImageNet architecture table as the official code builds it
(sacmehta/ESPNetv2 ``imagenet/Model.py`` ``EESPNet``; same EESP unit in sacmehta/EdgeNets): a 3x3
stride-2 CBR stem, four levels each opened by a strided EESP (``StridedEESP``) and followed by
3 / 7 / 3 EESP units at levels 3 / 4 / 5, a depth-wise 3x3 CBR and a 4-group 1x1 CBR expanding to
1024 (1280 at s = 2), global pooling, dropout 0.2 and the FC. All activations are PReLU, BN eps
1e-5, convolutions bias-free. The width rule is ``espnetv2_channels``.

Where the paper differs from the official code or leaves a detail open, the code is followed:

* EESP dilations are limited per level by a receptive-field limit (``r_lim`` 13, 11, 9, 7, 5;
  see ``blocks.esp.eesp_dilations``), not the same 1, 2, 3, 4 everywhere.
* The input-image shortcut feeds the strided units of levels 2, 3 and 4; level 5's strided unit
  has none.
* The official ``EESPNet`` also creates parameters its forward never uses, and its parameter
  count includes them: level 5's image-shortcut layers (90 + 5 N5, N5 = level 5's width) and the
  output PReLU of every strided EESP (N5 - stem slopes in all). They are left out here, so this
  network has 90 + 6 N5 - stem fewer parameters (3,130 = 0.19% at s = 1) and the same MACs.
* The repository's FLOPs leave out the final FC; ``cnnprof`` counts it (about 1 M MACs more).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from cnnprof.models.blocks.esp import EESP, V2_BN_EPS, ConvBNPReLU, StridedEESP

BASE_CHS = 32


@dataclass(frozen=True)
class Level:
    """One spatial level: a strided EESP, then ``repeats`` EESP units at the same width."""

    repeats: int
    down_r_lim: int  # receptive-field limit of the strided EESP's branches
    r_lim: int  # receptive-field limit of the level's EESP units
    image_shortcut: bool


# sacmehta/ESPNetv2 imagenet/Model.py: reps = [0, 3, 7, 3], r_lim = [13, 11, 9, 7, 5]; the strided
# unit of level i+1 uses the same limit as the units of level i. Levels 2 to 5, output stride 4..32.
LEVELS = (
    Level(repeats=0, down_r_lim=13, r_lim=11, image_shortcut=True),
    Level(repeats=3, down_r_lim=11, r_lim=9, image_shortcut=True),
    Level(repeats=7, down_r_lim=9, r_lim=7, image_shortcut=True),
    Level(repeats=3, down_r_lim=7, r_lim=5, image_shortcut=False),
)


def espnetv2_channels(scale: float, *, branches: int = 4) -> tuple[int, tuple[int, ...], int]:
    """(stem, per-level widths, head width) at width scale ``s`` (official ``EESPNet`` rule).

    base_s = int(32 s) rounded up to a multiple of K; the stem keeps 32 unless base_s is
    smaller; level i (2..5) has base_s * 2^(i-1) channels; the head has 1024 channels for
    s <= 1.5 and 1280 up to s = 2.

    >>> espnetv2_channels(1.0)
    (32, (64, 128, 256, 512), 1024)
    """
    if not 0 < scale <= 2.0:
        raise ValueError(f"scale must be in (0, 2], got {scale}")
    base_s = math.ceil(int(BASE_CHS * scale) / branches) * branches
    stem = min(BASE_CHS, base_s)
    widths = tuple(base_s * 2**i for i in range(1, len(LEVELS) + 1))
    head = 1024 if scale <= 1.5 else 1280
    return stem, widths, head


class ESPNetV2(nn.Module):
    def __init__(
        self,
        *,
        scale: float = 1.0,
        levels: tuple[Level, ...] = LEVELS,
        branches: int = 4,
        groups: int = 4,
        dropout: float = 0.2,
        num_classes: int = 1000,
    ):
        super().__init__()
        stem_chs, widths, head_chs = espnetv2_channels(scale, branches=branches)
        self.stem = ConvBNPReLU(3, stem_chs, 3, stride=2, bn_eps=V2_BN_EPS)
        self.downs = nn.ModuleList()
        self.stages = nn.ModuleList()
        in_chs = stem_chs
        for level, out_chs in zip(levels, widths):
            self.downs.append(
                StridedEESP(
                    in_chs, out_chs, branches=branches, groups=groups, r_lim=level.down_r_lim,
                    image_shortcut=level.image_shortcut,
                )
            )
            self.stages.append(
                nn.Sequential(
                    *(
                        EESP(out_chs, out_chs, branches=branches, groups=groups, r_lim=level.r_lim)
                        for _ in range(level.repeats)
                    )
                )
            )
            in_chs = out_chs
        # Widen cheaply before pooling: depth-wise 3x3, then a grouped 1x1 (groups = K).
        self.head_dw = ConvBNPReLU(in_chs, in_chs, 3, groups=in_chs)
        self.head_pw = ConvBNPReLU(in_chs, head_chs, 1, groups=branches)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(head_chs, num_classes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.stem(image)
        for down, stage in zip(self.downs, self.stages):
            x = stage(down(x, image))
        x = self.head_pw(self.head_dw(x))
        return self.classifier(self.dropout(self.pool(x).flatten(1)))


def espnetv2(*, scale: float = 1.0, num_classes: int = 1000) -> ESPNetV2:
    """ESPNetv2 ImageNet classifier at width scale ``scale`` (0.5, 1.0, 1.25, 1.5, 2.0 published)."""
    return ESPNetV2(scale=scale, num_classes=num_classes)
