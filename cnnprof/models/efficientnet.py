"""EfficientNet V1 (Tan & Le, ICML 2019, arXiv:1905.11946).

The base network is paper Table 1 (EfficientNet-B0), as the rows of ``B0_STAGES`` below, which
match ``_DEFAULT_BLOCKS_ARGS`` of tensorflow/tpu ``efficientnet_builder.py``. B1-B7 scale it with
the official (width, depth, resolution, dropout) coefficients, which live in the catalog: channels
by ``make_divisible(c * width, 8)`` (never more than 10% down), repeats by ``ceil(n * depth)``.

Differences from the paper text, following the official code: the squeeze-excite reduction is
``int(block_input_chs * 0.25)``, relative to the block's *input* channels, not the expanded ones;
BN eps 1e-3; drop-connect rate grows linearly with block index up to 0.2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cnnprof.models.blocks import ConvBNAct, MBConv, make_divisible, round_repeats


@dataclass(frozen=True)
class Stage:
    """One row of the architecture table."""

    expand: int
    kernel: int
    stride: int
    out_chs: int
    repeats: int


# Paper Table 1, stages 2-8 (MBConv rows); stem 32 channels, head 1280.
B0_STAGES = (
    Stage(expand=1, kernel=3, stride=1, out_chs=16, repeats=1),
    Stage(expand=6, kernel=3, stride=2, out_chs=24, repeats=2),
    Stage(expand=6, kernel=5, stride=2, out_chs=40, repeats=2),
    Stage(expand=6, kernel=3, stride=2, out_chs=80, repeats=3),
    Stage(expand=6, kernel=5, stride=1, out_chs=112, repeats=3),
    Stage(expand=6, kernel=5, stride=2, out_chs=192, repeats=4),
    Stage(expand=6, kernel=3, stride=1, out_chs=320, repeats=1),
)
STEM_CHS = 32
HEAD_CHS = 1280
SE_RATIO = 0.25
BN_EPS = 1e-3
DROP_CONNECT = 0.2


def round_filters(chs: int, width_mult: float) -> int:
    return make_divisible(chs * width_mult, 8)


class EfficientNet(nn.Module):
    """Stem -> MBConv stages -> 1x1 head -> global pool -> dropout -> classifier."""

    def __init__(
        self,
        *,
        stages: tuple[Stage, ...] = B0_STAGES,
        width_mult: float = 1.0,
        depth_mult: float = 1.0,
        dropout: float = 0.2,
        num_classes: int = 1000,
        drop_connect: float = DROP_CONNECT,
    ):
        super().__init__()
        stem_chs = round_filters(STEM_CHS, width_mult)
        self.stem = ConvBNAct(3, stem_chs, 3, stride=2, act=nn.SiLU, bn_eps=BN_EPS)
        total = sum(round_repeats(s.repeats, depth_mult) for s in stages)
        blocks: list[nn.Module] = []
        in_chs = stem_chs
        for stage in stages:
            out_chs = round_filters(stage.out_chs, width_mult)
            for i in range(round_repeats(stage.repeats, depth_mult)):
                blocks.append(
                    MBConv(
                        in_chs,
                        out_chs,
                        mid_chs=in_chs * stage.expand,
                        kernel_size=stage.kernel,
                        stride=stage.stride if i == 0 else 1,
                        se_chs=max(1, int(in_chs * SE_RATIO)),
                        act=nn.SiLU,
                        bn_eps=BN_EPS,
                        drop_path=drop_connect * len(blocks) / total,
                    )
                )
                in_chs = out_chs
        self.blocks = nn.Sequential(*blocks)
        head_chs = round_filters(HEAD_CHS, width_mult)
        self.head = ConvBNAct(in_chs, head_chs, 1, act=nn.SiLU, bn_eps=BN_EPS)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(head_chs, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.blocks(x)
        x = self.head(x)
        x = self.pool(x).flatten(1)
        return self.classifier(self.dropout(x))


def efficientnet(
    *, width_mult: float = 1.0, depth_mult: float = 1.0, dropout: float = 0.2, num_classes: int = 1000
) -> EfficientNet:
    """EfficientNet at the given width and depth multipliers (B0 = 1.0, 1.0)."""
    return EfficientNet(width_mult=width_mult, depth_mult=depth_mult, dropout=dropout, num_classes=num_classes)
