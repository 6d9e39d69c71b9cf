"""MobileNetV3 Large and Small (Howard et al., ICCV 2019, arXiv:1905.02244), the common baseline.

Rows follow paper Table 1 (Large) and Table 2 (Small), as in torchvision ``mobilenetv3.py``:
every bneck is 1x1 expand (skipped when exp == in) -> kxk depthwise -> [SE] -> 1x1 project.
SE squeezes the *expanded* channels to ``make_divisible(exp / 4, 8)`` with a ReLU and a
hard-sigmoid gate; "HS" is h-swish; BN eps 1e-3. The head pools before the last 1x1 convs (the
paper's "efficient last stage"); they are written as linear layers, which have the same weights.

Difference from the paper: Table 2 marks SE on Small's final 1x1-576 conv; the official code,
followed here, does not put SE there.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cnnprof.models.blocks import ConvBNAct, MBConv, make_divisible, stage_rows

BN_EPS = 1e-3


@dataclass(frozen=True)
class Bneck:
    kernel: int
    exp: int
    out: int
    se: bool
    hswish: bool
    stride: int


_T = True
_F = False
# Paper Table 1: (kernel, exp size, out, SE, NL == HS, stride)
LARGE = (
    Bneck(3, 16, 16, _F, _F, 1),
    Bneck(3, 64, 24, _F, _F, 2),
    Bneck(3, 72, 24, _F, _F, 1),
    Bneck(5, 72, 40, _T, _F, 2),
    Bneck(5, 120, 40, _T, _F, 1),
    Bneck(5, 120, 40, _T, _F, 1),
    Bneck(3, 240, 80, _F, _T, 2),
    Bneck(3, 200, 80, _F, _T, 1),
    Bneck(3, 184, 80, _F, _T, 1),
    Bneck(3, 184, 80, _F, _T, 1),
    Bneck(3, 480, 112, _T, _T, 1),
    Bneck(3, 672, 112, _T, _T, 1),
    Bneck(5, 672, 160, _T, _T, 2),
    Bneck(5, 960, 160, _T, _T, 1),
    Bneck(5, 960, 160, _T, _T, 1),
)
# Paper Table 2
SMALL = (
    Bneck(3, 16, 16, _T, _F, 2),
    Bneck(3, 72, 24, _F, _F, 2),
    Bneck(3, 88, 24, _F, _F, 1),
    Bneck(5, 96, 40, _T, _T, 2),
    Bneck(5, 240, 40, _T, _T, 1),
    Bneck(5, 240, 40, _T, _T, 1),
    Bneck(5, 120, 48, _T, _T, 1),
    Bneck(5, 144, 48, _T, _T, 1),
    Bneck(5, 288, 96, _T, _T, 2),
    Bneck(5, 576, 96, _T, _T, 1),
    Bneck(5, 576, 96, _T, _T, 1),
)
ARCHS = {"large": (LARGE, 1280), "small": (SMALL, 1024)}
STEM_CHS = 16


def stages_of(bnecks: tuple[Bneck, ...]) -> tuple[tuple[Bneck, ...], ...]:
    """Consecutive rows with the same output width, the first of each possibly strided: the
    stages that ``depth_mult`` repeats (the paper's tables have no stage column; Large has
    16 | 24 x2 | 40 x3 | 80 x4 | 112 x2 | 160 x3)."""
    stages: list[list[Bneck]] = []
    for b in bnecks:
        if stages and stages[-1][-1].out == b.out and b.stride == 1:
            stages[-1].append(b)
        else:
            stages.append([b])
    return tuple(tuple(s) for s in stages)


def scale_depth(bnecks: tuple[Bneck, ...], depth_mult: float) -> tuple[Bneck, ...]:
    """Each stage of ``n`` rows becomes ``ceil(n * depth_mult)`` rows, spread evenly over the
    original rows (``blocks.stage_rows``); 1.0 returns ``bnecks`` unchanged."""
    if depth_mult == 1.0:
        return bnecks
    return tuple(row for stage in stages_of(bnecks) for row in stage_rows(stage, depth_mult))


class MobileNetV3(nn.Module):
    def __init__(
        self, *, bnecks: tuple[Bneck, ...], last_chs: int, width_mult: float = 1.0, dropout: float = 0.2,
        num_classes: int = 1000,
    ):
        super().__init__()
        stem_chs = make_divisible(STEM_CHS * width_mult, 8)
        self.stem = ConvBNAct(3, stem_chs, 3, stride=2, act=nn.Hardswish, bn_eps=BN_EPS)
        blocks = []
        in_chs = stem_chs
        for b in bnecks:
            exp = make_divisible(b.exp * width_mult, 8)
            out = make_divisible(b.out * width_mult, 8)
            blocks.append(
                MBConv(
                    in_chs,
                    out,
                    mid_chs=exp,
                    kernel_size=b.kernel,
                    stride=b.stride,
                    se_chs=make_divisible(exp / 4, 8) if b.se else 0,
                    act=nn.Hardswish if b.hswish else nn.ReLU,
                    se_act=nn.ReLU,
                    se_gate=nn.Hardsigmoid,
                    bn_eps=BN_EPS,
                )
            )
            in_chs = out
        self.blocks = nn.Sequential(*blocks)
        head_chs = 6 * in_chs
        self.head = ConvBNAct(in_chs, head_chs, 1, act=nn.Hardswish, bn_eps=BN_EPS)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(head_chs, last_chs)  # the paper's "conv2d 1x1, NBN"
        self.act = nn.Hardswish()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(last_chs, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        x = self.act(self.fc(self.pool(x).flatten(1)))
        return self.classifier(self.dropout(x))


def mobilenetv3(
    *, arch: str = "large", width_mult: float = 1.0, depth_mult: float = 1.0, num_classes: int = 1000
) -> MobileNetV3:
    """MobileNetV3 ``large`` or ``small`` at a width multiplier and a depth multiplier.

    The paper scales width only; ``depth_mult`` (for compound scaling) repeats the rows of each
    stage (``scale_depth``). ``depth_mult=1.0`` is the paper's network exactly.
    """
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {sorted(ARCHS)}, got {arch!r}")
    if width_mult <= 0 or depth_mult <= 0:
        raise ValueError(f"width_mult and depth_mult must be > 0, got {width_mult}, {depth_mult}")
    bnecks, last = ARCHS[arch]
    last_chs = make_divisible(last * width_mult, 8) if width_mult > 1.0 else last
    return MobileNetV3(
        bnecks=scale_depth(bnecks, depth_mult), last_chs=last_chs, width_mult=width_mult, num_classes=num_classes
    )
