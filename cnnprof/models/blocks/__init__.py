"""Building blocks shared by the families (re-exported here; one module per block group)."""

from cnnprof.models.blocks.core import (
    ChannelShuffle,
    ConvBNAct,
    DropPath,
    FusedMBConv,
    MBConv,
    SqueezeExcite,
    make_divisible,
    round_repeats,
)

__all__ = [
    "ChannelShuffle",
    "ConvBNAct",
    "DropPath",
    "FusedMBConv",
    "MBConv",
    "SqueezeExcite",
    "make_divisible",
    "round_repeats",
]
