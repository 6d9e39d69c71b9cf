"""GhostNet V2 (Tang et al., GhostNetV2: Enhance Cheap Operation with Long-Range Attention,
NeurIPS 2022, arXiv:2211.12905).

GhostNetV2 keeps GhostNet V1's table (paper Table 1 of GhostNet, see ``cnnprof.models.ghostnet``),
width rule, stem, head, SE and dropout, and adds DFC attention (``blocks.ghost.DFCAttention``) to
the expansion Ghost module of every bottleneck but the first two, as in the official
huawei-noah/Efficient-AI-Backbones ``ghostnetv2_pytorch/model/ghostnetv2_torch.py`` (its
``layer_id > 1``). That difference is the ``dfc`` flag of the rows of ``V2_STAGES``; the network
class is V1's.

Taken from the official code (the paper's wording on these was not re-checked here): the DFC
branch has no activation between its convs (each is followed by BN only), its horizontal and
vertical kernels are 5 wide, and its gate is brought back to the Ghost output size with
nearest-neighbour interpolation (on odd sizes the 2x2 pool floors: 7x7 -> 3x3 -> 7x7). The DFC
1x1 conv reads the module input, so each branch adds ``exp * (in + 16)`` parameters. Released
widths are 1.0/1.3/1.6.

Stages and ``depth_mult``: as in GhostNet V1 (the 9 groups of the official cfg); copies of a row
carry its ``dfc`` flag.
"""

from __future__ import annotations

from cnnprof.models.ghostnet import GhostNet, Row, Stage

_T = True
_F = False
# GhostNet V1's rows (official ghostnetv2 cfgs: k, exp, out, SE, stride) with DFC attention on
# every bottleneck after the first two.
V2_STAGES: tuple[Stage, ...] = (
    (Row(3, 16, 16, _F, 1, dfc=_F),),
    (Row(3, 48, 24, _F, 2, dfc=_F),),
    (Row(3, 72, 24, _F, 1, dfc=_T),),
    (Row(5, 72, 40, _T, 2, dfc=_T),),
    (Row(5, 120, 40, _T, 1, dfc=_T),),
    (Row(3, 240, 80, _F, 2, dfc=_T),),
    (
        Row(3, 200, 80, _F, 1, dfc=_T),
        Row(3, 184, 80, _F, 1, dfc=_T),
        Row(3, 184, 80, _F, 1, dfc=_T),
        Row(3, 480, 112, _T, 1, dfc=_T),
        Row(3, 672, 112, _T, 1, dfc=_T),
    ),
    (Row(5, 672, 160, _T, 2, dfc=_T),),
    (
        Row(5, 960, 160, _F, 1, dfc=_T),
        Row(5, 960, 160, _T, 1, dfc=_T),
        Row(5, 960, 160, _F, 1, dfc=_T),
        Row(5, 960, 160, _T, 1, dfc=_T),
    ),
)


def ghostnetv2(
    *,
    width_mult: float = 1.0,
    depth_mult: float = 1.0,
    ratio: int = 2,
    dw_size: int = 3,
    dropout: float = 0.2,
    num_classes: int = 1000,
) -> GhostNet:
    """GhostNet V2 at any ``width_mult`` (paper: 1.0, 1.3, 1.6) and ``depth_mult`` (official: 1.0)."""
    return GhostNet(
        stages=V2_STAGES,
        width_mult=width_mult,
        depth_mult=depth_mult,
        ratio=ratio,
        dw_size=dw_size,
        dropout=dropout,
        num_classes=num_classes,
    )
