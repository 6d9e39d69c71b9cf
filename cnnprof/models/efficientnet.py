"""EfficientNet V1 (Tan & Le, ICML 2019, arXiv:1905.11946), and the network both generations share.

The base network is paper Table 1 (EfficientNet-B0), as the rows of ``B0_STAGES`` below, which
match ``_DEFAULT_BLOCKS_ARGS`` of tensorflow/tpu ``efficientnet_builder.py``. B1-B7 scale it with
the official (width, depth, resolution, dropout) coefficients, which live in the catalog: channels
by ``make_divisible(c * width, 8)`` (never more than 10% down), repeats by ``ceil(n * depth)``.

Differences from the paper text, following the official code: the squeeze-excite reduction is
``int(block_input_chs * 0.25)``, relative to the block's *input* channels, not the expanded ones;
BN eps 1e-3; drop-connect rate grows linearly with block index up to 0.2.

``EfficientNet`` is the network of both generations: stem -> stage rows -> 1x1 head -> pool ->
dropout -> classifier. A row names its block (MBConv, or EfficientNetV2's Fused-MBConv), so a
V2 table mixes kinds without a branch in the build loop; V2 differs only in its tables, its stem
width and its channel rounding (``round_limit=0``), see ``efficientnetv2.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cnnprof.models.blocks import ConvBNAct, FusedMBConv, MBConv, make_divisible, round_repeats

BN_EPS = 1e-3
HEAD_CHS = 1280
DROP_CONNECT = 0.2
V1_ROUND_LIMIT = 0.9  # V1's round_filters adds a divisor back when rounding lost more than 10%


@dataclass(frozen=True)
class Stage:
    """One row of a stage table: ``repeats`` blocks of one kind, the first with ``stride``."""

    block: type[MBConv | FusedMBConv]
    expand: int
    kernel: int
    stride: int
    out_chs: int
    repeats: int
    se_ratio: float  # SE reduce relative to the block's input channels; 0 = no SE


# Paper Table 1, stages 2-8 (MBConv rows); stem 32 channels, head 1280.
B0_STAGES = (
    Stage(MBConv, expand=1, kernel=3, stride=1, out_chs=16, repeats=1, se_ratio=0.25),
    Stage(MBConv, expand=6, kernel=3, stride=2, out_chs=24, repeats=2, se_ratio=0.25),
    Stage(MBConv, expand=6, kernel=5, stride=2, out_chs=40, repeats=2, se_ratio=0.25),
    Stage(MBConv, expand=6, kernel=3, stride=2, out_chs=80, repeats=3, se_ratio=0.25),
    Stage(MBConv, expand=6, kernel=5, stride=1, out_chs=112, repeats=3, se_ratio=0.25),
    Stage(MBConv, expand=6, kernel=5, stride=2, out_chs=192, repeats=4, se_ratio=0.25),
    Stage(MBConv, expand=6, kernel=3, stride=1, out_chs=320, repeats=1, se_ratio=0.25),
)
B0_STEM = 32


def round_filters(chs: int, width_mult: float, *, round_limit: float = V1_ROUND_LIMIT) -> int:
    return make_divisible(chs * width_mult, 8, round_limit=round_limit)


def se_chs_for(in_chs: int, se_ratio: float) -> int:
    """SE reduce width: relative to the block's input channels, at least 1 (0 = no SE)."""
    return max(1, int(in_chs * se_ratio)) if se_ratio > 0 else 0


def build_stages(
    stages: tuple[Stage, ...],
    in_chs: int,
    *,
    width_mult: float = 1.0,
    depth_mult: float = 1.0,
    drop_path: float = DROP_CONNECT,
    round_limit: float = V1_ROUND_LIMIT,
) -> tuple[nn.Sequential, int]:
    """Blocks of ``stages`` as one flat sequence, and their output channels.

    MBConv and FusedMBConv take the same keyword arguments, so the row's ``block`` is called
    directly. Drop-path grows linearly with the block's index over the whole network.
    """
    total = sum(round_repeats(s.repeats, depth_mult) for s in stages)
    blocks: list[nn.Module] = []
    for stage in stages:
        out_chs = round_filters(stage.out_chs, width_mult, round_limit=round_limit)
        for i in range(round_repeats(stage.repeats, depth_mult)):
            blocks.append(
                stage.block(
                    in_chs,
                    out_chs,
                    mid_chs=in_chs * stage.expand,
                    kernel_size=stage.kernel,
                    stride=stage.stride if i == 0 else 1,
                    se_chs=se_chs_for(in_chs, stage.se_ratio),
                    act=nn.SiLU,
                    bn_eps=BN_EPS,
                    drop_path=drop_path * len(blocks) / total,
                )
            )
            in_chs = out_chs
    return nn.Sequential(*blocks), in_chs


class EfficientNet(nn.Module):
    """Stem -> MBConv / Fused-MBConv stages -> 1x1 head -> global pool -> dropout -> classifier."""

    def __init__(
        self,
        *,
        stages: tuple[Stage, ...] = B0_STAGES,
        stem_chs: int = B0_STEM,
        width_mult: float = 1.0,
        depth_mult: float = 1.0,
        dropout: float = 0.2,
        num_classes: int = 1000,
        drop_path: float = DROP_CONNECT,
        round_limit: float = V1_ROUND_LIMIT,
    ):
        super().__init__()
        if width_mult <= 0 or depth_mult <= 0:
            raise ValueError(f"width_mult and depth_mult must be > 0, got {width_mult}, {depth_mult}")
        stem_out = round_filters(stem_chs, width_mult, round_limit=round_limit)
        self.stem = ConvBNAct(3, stem_out, 3, stride=2, act=nn.SiLU, bn_eps=BN_EPS)
        self.blocks, in_chs = build_stages(
            stages, stem_out, width_mult=width_mult, depth_mult=depth_mult, drop_path=drop_path,
            round_limit=round_limit,
        )
        head_chs = round_filters(HEAD_CHS, width_mult, round_limit=round_limit)
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
