"""GhostNet V1 (Han et al., GhostNet: More Features from Cheap Operations, CVPR 2020, arXiv:1911.11907).

The rows of ``V1_STAGES`` are the paper's Table 1 ("Overall architecture of GhostNet") as written
in the official ``cfgs`` of huawei-noah/Efficient-AI-Backbones ``ghostnet_pytorch/ghostnet.py``:
stem 3x3/2 conv (16) + BN + ReLU -> 16 Ghost bottlenecks -> 1x1 conv (960) + BN + ReLU -> global
average pool -> 1x1 conv (1280, with bias, no BN) + ReLU -> dropout 0.2 -> FC. Every bottleneck
uses ReLU; SE reduces the expanded channels to ``make_divisible(exp * 0.25, 4)`` with a
hard-sigmoid gate. The width multiplier scales the stem, every ``exp`` / ``out`` and the 960-wide
conv by ``make_divisible(c * width_mult, 4)`` (never more than 10% down); the 1280 head is not scaled.

Differences between paper and official code, following the code:

* The paper's table has no kernel column for the bottlenecks: the code's ``k`` (3 or 5) is the
  depthwise kernel of stride-2 bottlenecks and of the projection shortcut; stride-1 bottlenecks
  have no ``k x k`` conv at all.
* The shortcut of a bottleneck that changes shape is depthwise ``k x k`` (stride) + BN + 1x1 + BN
  (the paper: "a downsampling layer").
* The paper's table lists the 960-wide 1x1 conv and the pooling as separate rows; the code makes
  the 960 the last row's ``exp`` (reused here as ``final_chs``) and the 1280 conv has a bias.

Stages (what ``depth_mult`` repeats): the official ``cfgs`` is a list of 9 groups, each built as
one ``nn.Sequential``: every stride-2 bottleneck and the first bottlenecks of each resolution are a
group of one, and the two runs of stride-1 bottlenecks at 14x14 and 7x7 are groups of 5 and 4
(code comments call the 5 resolutions "stage1..stage5"; we follow the 9 groups, the structure the
code builds). A stage of ``n`` rows becomes ``ceil(n * depth_mult)`` blocks (see ``stage_rows``);
``depth_mult=1.0`` is the official network exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cnnprof.models.blocks.core import ConvBNAct, make_divisible, stage_rows
from cnnprof.models.blocks.ghost import GhostBottleneck


@dataclass(frozen=True)
class Row:
    """One Ghost bottleneck of the table.

    ``kernel`` is the depthwise kernel of the stride-2 conv and of the projection shortcut;
    ``dfc`` puts GhostNetV2's DFC attention on the expansion Ghost module.
    """

    kernel: int
    exp: int
    out: int
    se: bool
    stride: int
    dfc: bool = False


Stage = tuple[Row, ...]

_T = True
_F = False
# Paper Table 1 / official cfgs (k, exp, out, SE, stride), grouped into stages as the official code.
V1_STAGES: tuple[Stage, ...] = (
    (Row(3, 16, 16, _F, 1),),
    (Row(3, 48, 24, _F, 2),),
    (Row(3, 72, 24, _F, 1),),
    (Row(5, 72, 40, _T, 2),),
    (Row(5, 120, 40, _T, 1),),
    (Row(3, 240, 80, _F, 2),),
    (
        Row(3, 200, 80, _F, 1),
        Row(3, 184, 80, _F, 1),
        Row(3, 184, 80, _F, 1),
        Row(3, 480, 112, _T, 1),
        Row(3, 672, 112, _T, 1),
    ),
    (Row(5, 672, 160, _T, 2),),
    (
        Row(5, 960, 160, _F, 1),
        Row(5, 960, 160, _T, 1),
        Row(5, 960, 160, _F, 1),
        Row(5, 960, 160, _T, 1),
    ),
)
STEM_CHS = 16
HEAD_CHS = 1280  # not width-scaled in the official code
SE_RATIO = 0.25
DIVISOR = 4  # GhostNet rounds channels to multiples of 4, not 8


class GhostNet(nn.Module):
    """Stem -> Ghost bottleneck stages -> 1x1 conv -> pool -> 1x1 conv head -> dropout -> FC."""

    def __init__(
        self,
        *,
        stages: tuple[Stage, ...] = V1_STAGES,
        width_mult: float = 1.0,
        depth_mult: float = 1.0,
        ratio: int = 2,
        dw_size: int = 3,
        dropout: float = 0.2,
        num_classes: int = 1000,
    ):
        super().__init__()
        if width_mult <= 0 or depth_mult <= 0:
            raise ValueError(f"width_mult and depth_mult must be > 0, got {width_mult}, {depth_mult}")
        stem_chs = make_divisible(STEM_CHS * width_mult, DIVISOR)
        self.stem = ConvBNAct(3, stem_chs, 3, stride=2, act=nn.ReLU)
        in_chs = stem_chs
        built_stages = []
        for stage in stages:
            blocks = []
            for row in stage_rows(stage, depth_mult):
                mid_chs = make_divisible(row.exp * width_mult, DIVISOR)
                out_chs = make_divisible(row.out * width_mult, DIVISOR)
                blocks.append(
                    GhostBottleneck(
                        in_chs,
                        out_chs,
                        mid_chs=mid_chs,
                        kernel_size=row.kernel,
                        stride=row.stride,
                        se_chs=make_divisible(mid_chs * SE_RATIO, DIVISOR) if row.se else 0,
                        ratio=ratio,
                        dw_size=dw_size,
                        dfc=row.dfc,
                    )
                )
                in_chs = out_chs
            built_stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*built_stages)
        # The official code takes this width from the last row's exp (960 at width 1.0).
        final_chs = make_divisible(stages[-1][-1].exp * width_mult, DIVISOR)
        self.conv_final = ConvBNAct(in_chs, final_chs, 1, act=nn.ReLU)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv_head = nn.Conv2d(final_chs, HEAD_CHS, 1, bias=True)  # no BN: acts on a 1x1 map
        self.act = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(HEAD_CHS, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.blocks(x)
        x = self.conv_final(x)
        x = self.act(self.conv_head(self.pool(x)))
        return self.classifier(self.dropout(x.flatten(1)))


def ghostnet(
    *,
    width_mult: float = 1.0,
    depth_mult: float = 1.0,
    ratio: int = 2,
    dw_size: int = 3,
    dropout: float = 0.2,
    num_classes: int = 1000,
) -> GhostNet:
    """GhostNet V1 at any ``width_mult`` (paper: 0.5, 1.0, 1.3) and ``depth_mult`` (official: 1.0).

    ``ratio`` (the paper's ``s``) and ``dw_size`` (its ``d``) set every Ghost module; the
    released models use ``s = 2``, ``d = 3``.
    """
    return GhostNet(
        stages=V1_STAGES,
        width_mult=width_mult,
        depth_mult=depth_mult,
        ratio=ratio,
        dw_size=dw_size,
        dropout=dropout,
        num_classes=num_classes,
    )
