"""ESPNetv2 ImageNet classifier (Mehta et al., CVPR 2019, arXiv:1811.11431).

Follows the paper's ImageNet architecture table as the official code builds it
(sacmehta/ESPNetv2 ``imagenet/Model.py`` ``EESPNet``; same EESP unit in sacmehta/EdgeNets): a 3x3
stride-2 CBR stem, four levels each opened by a strided EESP (``StridedEESP``) and followed by
3 / 7 / 3 EESP units at levels 3 / 4 / 5, a depth-wise 3x3 CBR and a 4-group 1x1 CBR expanding to
1024 (1280 at s = 2), global pooling, dropout 0.2 and the FC. All activations are PReLU, BN eps
1e-5, convolutions bias-free. The width rule is ``espnetv2_channels``, the depth rule
``scale_levels``.

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
from dataclasses import dataclass, replace

import torch
from torch import nn

from cnnprof.models.blocks.core import round_repeats
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


def espnetv2_channels(scale: float) -> tuple[int, tuple[int, ...], int]:
    """(stem, per-level widths, head width) at width scale ``s`` (the builder's ``width_mult``).

    The official ``EESPNet`` rule: base_s = int(32 s) rounded up to a multiple of K = 4; the stem
    keeps 32 unless base_s is smaller; level i (2..5) has base_s * 2^(i-1) channels; the head has
    1024 channels for s <= 1.5 and 1280 up to s = 2.

    That rule builds only where base_s is 16 or a multiple of 8 from 32 on (the published 0.5, 1,
    1.25, 1.5 and 2 all are): an EESP's K = 4 depth-wise branches must each hold a multiple of its
    4 groups, so every EESP width, including the 2 base_s - stem new channels of level 2's strided
    unit, must be a multiple of 16; at other scales the official code fails as this one would. So
    that every ``s > 0`` builds, base_s is rounded up to a multiple of 8 instead (the official value
    wherever the official rule builds), at least 16, and the stem is 32 from base_s = 32 on and 16
    below it (the official min(32, base_s) wherever that builds). Above s = 2, where the official
    code stops, the head stays 1280.

    >>> espnetv2_channels(1.0), espnetv2_channels(0.75), espnetv2_channels(1.1)
    ((32, (64, 128, 256, 512), 1024), (16, (48, 96, 192, 384), 1024), (32, (80, 160, 320, 640), 1024))
    """
    if not scale > 0:
        raise ValueError(f"width_mult must be > 0, got {scale}")
    base_s = max(16, math.ceil(int(BASE_CHS * scale) / 8) * 8)
    stem = BASE_CHS if base_s >= BASE_CHS else 16
    widths = tuple(base_s * 2**i for i in range(1, len(LEVELS) + 1))
    head = 1024 if scale <= 1.5 else 1280
    return stem, widths, head


def scale_levels(levels: tuple[Level, ...], depth_mult: float) -> tuple[Level, ...]:
    """Each level's EESP units scaled to ``ceil(repeats * depth_mult)`` (``round_repeats``): level 2,
    which has none, keeps none; every level keeps its strided unit."""
    if depth_mult <= 0:
        raise ValueError(f"depth_mult must be > 0, got {depth_mult}")
    return tuple(replace(level, repeats=round_repeats(level.repeats, depth_mult)) for level in levels)


class ESPNetV2(nn.Module):
    def __init__(
        self,
        *,
        width_mult: float = 1.0,
        depth_mult: float = 1.0,
        levels: tuple[Level, ...] = LEVELS,
        branches: int = 4,
        groups: int = 4,
        dropout: float = 0.2,
        num_classes: int = 1000,
    ):
        super().__init__()
        stem_chs, widths, head_chs = espnetv2_channels(width_mult)
        levels = scale_levels(levels, depth_mult)
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


def espnetv2(*, width_mult: float = 1.0, depth_mult: float = 1.0, num_classes: int = 1000) -> ESPNetV2:
    """ESPNetv2 ImageNet classifier at width scale ``s = width_mult`` (0.5, 1.0, 1.25, 1.5, 2.0
    published; widths by ``espnetv2_channels``) and ``depth_mult`` (for compound scaling; the paper
    has none): levels 3 / 4 / 5 get ``ceil(3 d)`` / ``ceil(7 d)`` / ``ceil(3 d)`` EESP units.
    ``depth_mult=1.0`` is the official network exactly."""
    if width_mult <= 0 or depth_mult <= 0:
        raise ValueError(f"width_mult and depth_mult must be > 0, got {width_mult}, {depth_mult}")
    return ESPNetV2(width_mult=width_mult, depth_mult=depth_mult, num_classes=num_classes)
