"""FBNetV2 / DMaskingNAS (Wan et al., CVPR 2020, arXiv:2004.05565): F1-F4, L1, L2.

The paper gives its searched networks as figures; the rows below are the official definitions,
mobile-vision ``mobile_cv/arch/fbnet_v2/fbnet_modeldef_cls_fbnetv2.py``
(``MODEL_ARCH_FBNETV2_PAPER``), built by the rules of ``cnnprof.models.blocks.fbnet``: width
divisor 8, fractional expansions rounded by ``get_divisible_by`` (nearest multiple of 8, +8 if
more than 5% lost), SE on a quarter of the mid channels (``less_se_channels`` off) with a
hard-sigmoid gate and the block's own activation inside, ReLU unless the row says h-swish, no bias
in the IRF convs, h-swish stem (with bias) and the ``ir_pool_hs`` head (1x1 to 6x, pool, 1x1 to
1600 or 1984, classifier).

F1, F2 and F3 share their blocks and differ in input (128 / 160 / 192) and head (1600 / 1600 /
1984); L1 and L2 are one network at 224 and 256. The official ``skip`` rows are 1x1 ConvBNReLU
(ReLU, no bias) where the channels change; the expansions written beside them in the official
file are not used by the official builder, so they are left out here.
"""

from __future__ import annotations

from cnnprof.models.blocks.fbnet import IRF, FBNetNetwork, IRFArch, Skip, irf_network, scale_arch

# FBNetV2 keeps the SE bottleneck at a quarter of the mid channels.
LESS_SE_CHANNELS = False
_T = True
_F = False

# mobile-vision FBNetV2_F1 / _F2 / _F3 (identical blocks).
F_BLOCKS = (
    IRF(5, 1, 8, hswish=_F),
    IRF(5, 5.4566, 24, stride=2, hswish=_F),
    IRF(5, 4.7912, 24, hswish=_F),
    IRF(5, 5.3501, 32, stride=2, se=_T, hswish=_F),
    IRF(5, 4.5379, 24, se=_T, hswish=_F),
    IRF(5, 5.7133, 56, stride=2),
    IRF(3, 4.1212, 56),
    IRF(3, 5.1246, 56, se=_T),
    Skip(80),
    IRF(5, 4.5070, 80, se=_T),
    IRF(5, 1.7712, 80, se=_T),
    IRF(3, 4.5685, 144, stride=2, se=_T),
    IRF(5, 5.8400, 144, se=_T),
    IRF(5, 6.8754, 144, se=_T),
    Skip(224),
)

# mobile-vision FBNetV2_F4.
F4_BLOCKS = (
    IRF(3, 1, 16),
    IRF(5, 5.4566, 24, stride=2),
    IRF(5, 1.7912, 24, repeats=2),
    IRF(5, 5.3501, 32, stride=2, se=_T, hswish=_F),
    IRF(5, 3.5379, 32, se=_T, hswish=_F),
    IRF(5, 4.5379, 32, repeats=2, se=_T, hswish=_F),
    IRF(5, 5.7133, 64, stride=2),
    IRF(3, 2.1212, 64),
    Skip(64),
    IRF(3, 5.0333, 104),
    IRF(5, 2.5070, 104, se=_T),
    IRF(5, 1.7712, 104, se=_T),
    IRF(5, 3.7712, 112, se=_T),
    IRF(3, 5.5685, 184, stride=2, se=_T),
    IRF(5, 2.8400, 184, se=_T),
    IRF(5, 4.8754, 184, se=_T),
    Skip(224),
)

# mobile-vision FBNetV2_L1 / _L2 (identical blocks).
L_BLOCKS = (
    IRF(3, 1, 16),
    IRF(5, 5.4566, 24, stride=2),
    IRF(5, 1.7912, 24),
    IRF(3, 1.7912, 24),
    IRF(5, 1.7912, 24),
    IRF(5, 5.3501, 40, stride=2, se=_T),
    IRF(5, 3.5379, 32, se=_T),
    IRF(5, 4.5379, 32, repeats=2, se=_T),
    IRF(5, 5.7133, 64, stride=2),
    IRF(3, 2.1212, 64),
    Skip(64),
    IRF(3, 3.1246, 64),
    IRF(3, 5.0333, 112),
    IRF(5, 2.5070, 112, se=_T),
    IRF(5, 1.7712, 112, se=_T),
    IRF(5, 2.7712, 112, se=_T),
    IRF(5, 3.7712, 112, repeats=2, se=_T),
    IRF(3, 5.5685, 184, stride=2, se=_T),
    IRF(5, 2.8400, 184, repeats=2, se=_T),
    IRF(5, 4.8754, 184, repeats=2, se=_T),
    Skip(224),
)

ARCHS = {
    "f1": IRFArch(stem_chs=8, rows=F_BLOCKS, head_expand=6, head_chs=1600),
    "f2": IRFArch(stem_chs=8, rows=F_BLOCKS, head_expand=6, head_chs=1600),
    "f3": IRFArch(stem_chs=8, rows=F_BLOCKS, head_expand=6, head_chs=1984),
    "f4": IRFArch(stem_chs=16, rows=F4_BLOCKS, head_expand=6, head_chs=1984),
    "l1": IRFArch(stem_chs=16, rows=L_BLOCKS, head_expand=6, head_chs=1984),
    "l2": IRFArch(stem_chs=16, rows=L_BLOCKS, head_expand=6, head_chs=1984),
}


def fbnetv2(
    *, arch: str = "f4", width_mult: float = 1.0, depth_mult: float = 1.0, num_classes: int = 1000
) -> FBNetNetwork:
    """FBNetV2 ``f1`` ... ``f4``, ``l1``, ``l2`` (the input resolution lives in the catalog).

    ``width_mult`` and ``depth_mult`` (for compound scaling; the paper has neither) scale the stem,
    row and head widths and each row's repeats (``blocks.fbnet.scale_arch``). At 1.0 and 1.0 the
    network is the official one.
    """
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {sorted(ARCHS)}, got {arch!r}")
    scaled = scale_arch(ARCHS[arch], width_mult=width_mult, depth_mult=depth_mult)
    return irf_network(scaled, less_se_channels=LESS_SE_CHANNELS, num_classes=num_classes)
