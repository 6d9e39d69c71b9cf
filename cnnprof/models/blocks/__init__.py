"""Building blocks shared by the families, re-exported here; one module per block group:
``core`` (rounding rules, conv-BN-act, squeeze-excite, MBConv, Fused-MBConv), ``ghost`` (Ghost
module, DFC attention, Ghost bottleneck), ``esp`` (ESP, EESP and their strided forms), ``fbnet``
(mobile-vision's IRF rules, skip block, heads)."""

from cnnprof.models.blocks.core import (
    ChannelShuffle,
    ConvBNAct,
    DropPath,
    FusedMBConv,
    MBConv,
    SqueezeExcite,
    make_divisible,
    round_repeats,
    stage_rows,
)
from cnnprof.models.blocks.esp import EESP, ESP, StridedEESP, StridedESP, eesp_dilations
from cnnprof.models.blocks.ghost import DFCAttention, GhostBottleneck, GhostModule

__all__ = [
    "EESP",
    "ESP",
    "ChannelShuffle",
    "ConvBNAct",
    "DFCAttention",
    "DropPath",
    "FusedMBConv",
    "GhostBottleneck",
    "GhostModule",
    "MBConv",
    "SqueezeExcite",
    "StridedEESP",
    "StridedESP",
    "eesp_dilations",
    "make_divisible",
    "round_repeats",
    "stage_rows",
]
