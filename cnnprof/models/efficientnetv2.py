"""EfficientNetV2 (Tan & Le, ICML 2021, arXiv:2104.00298): S, M, L and the B0-B3 base series.

The stage tables are those of the official code, google/automl ``efficientnetv2/effnetv2_configs.py``
(``v2_s_block``, ``v2_m_block``, ``v2_l_block``, ``v2_base_block``); paper Table 4 is V2-S. Early
stages are Fused-MBConv (one dense kxk conv in place of 1x1 expand + kxk depthwise), later stages
MBConv with squeeze-excite. The block kind is a column of each row, so a V2 table mixes kinds
without any branch in the build loop. B0-B3 scale the base table with EfficientNet V1's (width,
depth) coefficients, which live in the catalog.

Rules of the official code (``effnetv2_model.py``), followed here:

* channels: ``round_filters`` without V1's "+divisor if rounded down by more than 10%" step,
  i.e. ``make_divisible(c * width, 8, round_limit=0.0)``; repeats ``ceil(depth * r)``;
* stem: 3x3 stride-2 conv to the *first block's input* channels (24 for S/M, 32 for L and the
  B-series); head: 1x1 conv to ``round_filters(1280)``, global pool, dropout, linear;
* SE reduce = ``max(1, int(block_input_chs * 0.25))`` (relative to the block's input, as in V1),
  SiLU everywhere, sigmoid gate, BN eps 1e-3;
* drop-path (stochastic depth) rate 0.2 scaled linearly by block index.

Paper vs repository: paper Table 7 quotes 8.8B FLOPs for S and 53B for L (24B for M), while the
repository README quotes 8.4B, 56.3B (and 24.7B); the networks defined by the repository's configs
have 8.37G / 24.58G / 56.08G conv + linear multiply-adds at 384 / 480 / 480. We build the
repository's networks, so our counts match the README figures, not the paper's.
"""

from __future__ import annotations

from dataclasses import replace

from torch import nn

from cnnprof.models.blocks.core import ConvBNAct, FusedMBConv, MBConv
from cnnprof.models.efficientnet import BN_EPS, DROP_CONNECT, EfficientNet, Stage, build_stages
from cnnprof.models.efficientnet import round_filters as _round_filters

ROUND_LIMIT = 0.0  # V2's round_filters has no "+divisor if rounded down by more than 10%" step


# google/automl effnetv2_configs.py `v2_base_block` (the B-series before scaling); stem 32.
BASE_STAGES = (
    Stage(FusedMBConv, expand=1, kernel=3, stride=1, out_chs=16, repeats=1, se_ratio=0.0),
    Stage(FusedMBConv, expand=4, kernel=3, stride=2, out_chs=32, repeats=2, se_ratio=0.0),
    Stage(FusedMBConv, expand=4, kernel=3, stride=2, out_chs=48, repeats=2, se_ratio=0.0),
    Stage(MBConv, expand=4, kernel=3, stride=2, out_chs=96, repeats=3, se_ratio=0.25),
    Stage(MBConv, expand=6, kernel=3, stride=1, out_chs=112, repeats=5, se_ratio=0.25),
    Stage(MBConv, expand=6, kernel=3, stride=2, out_chs=192, repeats=8, se_ratio=0.25),
)
BASE_STEM = 32

# google/automl effnetv2_configs.py `v2_s_block`; paper Table 4; stem 24.
S_STAGES = (
    Stage(FusedMBConv, expand=1, kernel=3, stride=1, out_chs=24, repeats=2, se_ratio=0.0),
    Stage(FusedMBConv, expand=4, kernel=3, stride=2, out_chs=48, repeats=4, se_ratio=0.0),
    Stage(FusedMBConv, expand=4, kernel=3, stride=2, out_chs=64, repeats=4, se_ratio=0.0),
    Stage(MBConv, expand=4, kernel=3, stride=2, out_chs=128, repeats=6, se_ratio=0.25),
    Stage(MBConv, expand=6, kernel=3, stride=1, out_chs=160, repeats=9, se_ratio=0.25),
    Stage(MBConv, expand=6, kernel=3, stride=2, out_chs=256, repeats=15, se_ratio=0.25),
)
S_STEM = 24

# google/automl effnetv2_configs.py `v2_m_block`; stem 24. M adds a seventh stage (512 x5).
M_STAGES = (
    Stage(FusedMBConv, expand=1, kernel=3, stride=1, out_chs=24, repeats=3, se_ratio=0.0),
    Stage(FusedMBConv, expand=4, kernel=3, stride=2, out_chs=48, repeats=5, se_ratio=0.0),
    Stage(FusedMBConv, expand=4, kernel=3, stride=2, out_chs=80, repeats=5, se_ratio=0.0),
    Stage(MBConv, expand=4, kernel=3, stride=2, out_chs=160, repeats=7, se_ratio=0.25),
    Stage(MBConv, expand=6, kernel=3, stride=1, out_chs=176, repeats=14, se_ratio=0.25),
    Stage(MBConv, expand=6, kernel=3, stride=2, out_chs=304, repeats=18, se_ratio=0.25),
    Stage(MBConv, expand=6, kernel=3, stride=1, out_chs=512, repeats=5, se_ratio=0.25),
)
M_STEM = 24

# google/automl effnetv2_configs.py `v2_l_block`; stem 32.
L_STAGES = (
    Stage(FusedMBConv, expand=1, kernel=3, stride=1, out_chs=32, repeats=4, se_ratio=0.0),
    Stage(FusedMBConv, expand=4, kernel=3, stride=2, out_chs=64, repeats=7, se_ratio=0.0),
    Stage(FusedMBConv, expand=4, kernel=3, stride=2, out_chs=96, repeats=7, se_ratio=0.0),
    Stage(MBConv, expand=4, kernel=3, stride=2, out_chs=192, repeats=10, se_ratio=0.25),
    Stage(MBConv, expand=6, kernel=3, stride=1, out_chs=224, repeats=19, se_ratio=0.25),
    Stage(MBConv, expand=6, kernel=3, stride=2, out_chs=384, repeats=25, se_ratio=0.25),
    Stage(MBConv, expand=6, kernel=3, stride=1, out_chs=640, repeats=7, se_ratio=0.25),
)
L_STEM = 32

# arch -> (stage table, stem channels before width scaling)
ARCHS: dict[str, tuple[tuple[Stage, ...], int]] = {
    "s": (S_STAGES, S_STEM),
    "m": (M_STAGES, M_STEM),
    "l": (L_STAGES, L_STEM),
    "base": (BASE_STAGES, BASE_STEM),
}


def round_filters(chs: int, width_mult: float) -> int:
    """V2 channel rounding: nearest multiple of 8, without V1's 90% floor."""
    return _round_filters(chs, width_mult, round_limit=ROUND_LIMIT)


def _arch(arch: str) -> tuple[tuple[Stage, ...], int]:
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {sorted(ARCHS)}, got {arch!r}")
    return ARCHS[arch]


def efficientnetv2(
    *,
    arch: str,
    width_mult: float = 1.0,
    depth_mult: float = 1.0,
    dropout: float = 0.2,
    num_classes: int = 1000,
) -> EfficientNet:
    """EfficientNetV2 ``s``, ``m``, ``l``, or ``base`` scaled by (width, depth) for B0-B3."""
    stages, stem_chs = _arch(arch)
    return EfficientNet(
        stages=stages,
        stem_chs=stem_chs,
        width_mult=width_mult,
        depth_mult=depth_mult,
        dropout=dropout,
        num_classes=num_classes,
        round_limit=ROUND_LIMIT,
    )


def early_stages(*, fused: bool, arch: str = "s") -> nn.Module:
    """Stem plus the first three stages of ``arch`` (unscaled), for the Fused-MBConv claim.

    ``fused=True`` is the official network (paper Sec. 3.3: Fused-MBConv in stages 1-3).
    ``fused=False`` swaps each of those rows' block for an MBConv with the same expansion,
    kernel, stride and output channels, so the output shape is the same; only the block differs
    (1x1 expand + kxk depthwise instead of one dense kxk conv).
    """
    stages, stem_chs = _arch(arch)
    first = stages[:3]
    if not all(s.block is FusedMBConv for s in first):
        raise ValueError(f"the first three stages of {arch!r} are not all Fused-MBConv")
    if not fused:
        first = tuple(replace(s, block=MBConv) for s in first)
    stem = ConvBNAct(3, stem_chs, 3, stride=2, act=nn.SiLU, bn_eps=BN_EPS)
    # drop-path rates as in the full network: 0.2 * index / (all blocks of the network)
    n_first, n_all = sum(s.repeats for s in first), sum(s.repeats for s in stages)
    blocks, _ = build_stages(first, stem_chs, drop_path=DROP_CONNECT * n_first / n_all, round_limit=ROUND_LIMIT)
    return nn.Sequential(stem, blocks)
