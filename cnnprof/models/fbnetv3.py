"""FBNetV3 (Dai et al., CVPR 2021, arXiv:2006.02049): A-G.

The rows below are the official definitions, mobile-vision
``mobile_cv/arch/fbnet_v2/fbnet_modeldef_cls_fbnetv3.py`` (``MODEL_ARCH_FBNETV3``), built by the
rules of ``cnnprof.models.blocks.fbnet``: width divisor 8, h-swish everywhere, SE with a
hard-sigmoid gate on ``int(mid * 0.25 / expand)`` channels rounded to 8 (``less_se_channels``,
so roughly a quarter of the block *input*), no bias in the IRF convs, h-swish stem (with bias),
and the ``ir_pool_hs`` head (1x1 to 6x the last width, pool, 1x1 to 1984, classifier).

Padding: the official definitions override the padding of some stride-2 depthwise convs
(``dw_args={"padding": ...}``, the ``dw_padding`` of the rows below): a 5x5 with padding 1 (A,
B, C, E in stage 4; C in stage 5) or a 3x3 with padding 0 (A, B, F in stage 5), where "same"
would be 2 and 1. Those stages come out smaller than with "same" padding (at 248: 15x15 and 7x7
instead of 16x16 and 8x8), so fewer MACs; re-implementations with "same" padding (timm) count
more. The overrides also raise the smallest accepted input (catalog ``min_input``).

FBNetV3-A and -B are one network, at 224 and 248. The paper has two versions with different
tables (arXiv v1, "Neural Acquisition Function"); the official definitions follow the CVPR one.
"""

from __future__ import annotations

from cnnprof.models.blocks.fbnet import IRF, FBNetNetwork, IRFArch, irf_network, scale_arch

# FBNetV3 shrinks the SE bottleneck by the expansion ratio.
LESS_SE_CHANNELS = True
HEAD_CHS = 1984
_T = True

# mobile-vision FBNetV3_A and FBNetV3_B (identical blocks).
A_ROWS = (
    IRF(3, 1, 16, repeats=2),
    IRF(5, 4, 24, stride=2),
    IRF(5, 2, 24, repeats=3),
    IRF(5, 5, 40, stride=2, se=_T),
    IRF(5, 3, 40, repeats=4, se=_T),
    IRF(5, 5, 72, stride=2, dw_padding=1),
    IRF(3, 3, 72, repeats=4),
    IRF(3, 5, 120, se=_T),
    IRF(5, 3, 120, repeats=5, se=_T),
    IRF(3, 6, 184, stride=2, se=_T, dw_padding=0),
    IRF(5, 4, 184, repeats=5, se=_T),
    IRF(5, 6, 224, se=_T),
)

# mobile-vision FBNetV3_C
C_ROWS = (
    IRF(3, 1, 16, repeats=2),
    IRF(5, 5, 24, stride=2),
    IRF(3, 3, 24, repeats=4),
    IRF(5, 5, 48, stride=2, se=_T),
    IRF(5, 2, 48, repeats=4, se=_T),
    IRF(5, 4, 88, stride=2, dw_padding=1),
    IRF(3, 3, 88, repeats=4),
    IRF(3, 4, 120, se=_T),
    IRF(5, 3, 120, repeats=5, se=_T),
    IRF(5, 5, 216, stride=2, se=_T, dw_padding=1),
    IRF(5, 5, 216, repeats=5, se=_T),
    IRF(5, 6, 216, se=_T),
)

# mobile-vision FBNetV3_D
D_ROWS = (
    IRF(3, 1, 16, repeats=2),
    IRF(3, 5, 24, stride=2),
    IRF(3, 2, 24, repeats=5),
    IRF(5, 4, 40, stride=2, se=_T),
    IRF(3, 3, 40, repeats=4, se=_T),
    IRF(3, 5, 72, stride=2),
    IRF(3, 3, 72, repeats=4),
    IRF(3, 5, 128, se=_T),
    IRF(5, 3, 128, repeats=6, se=_T),
    IRF(3, 6, 208, stride=2, se=_T),
    IRF(5, 5, 208, repeats=5, se=_T),
    IRF(5, 6, 240, se=_T),
)

# mobile-vision FBNetV3_E
E_ROWS = (
    IRF(3, 1, 16, repeats=3),
    IRF(5, 4, 24, stride=2),
    IRF(5, 2, 24, repeats=4),
    IRF(5, 4, 48, stride=2, se=_T),
    IRF(5, 3, 48, repeats=4, se=_T),
    IRF(5, 5, 80, stride=2, dw_padding=1),
    IRF(3, 3, 80, repeats=4),
    IRF(3, 5, 128, se=_T),
    IRF(5, 3, 128, repeats=7, se=_T),
    IRF(3, 6, 216, stride=2, se=_T),
    IRF(5, 5, 216, repeats=5, se=_T),
    IRF(5, 6, 240, se=_T),
)

# mobile-vision FBNetV3_F
F_ROWS = (
    IRF(3, 1, 24, repeats=3),
    IRF(5, 4, 32, stride=2),
    IRF(5, 2, 32, repeats=4),
    IRF(5, 4, 56, stride=2, se=_T),
    IRF(5, 3, 56, repeats=4, se=_T),
    IRF(5, 5, 88, stride=2),
    IRF(3, 3, 88, repeats=4),
    IRF(3, 5, 144, se=_T),
    IRF(5, 3, 144, repeats=8, se=_T),
    IRF(3, 6, 248, stride=2, se=_T, dw_padding=0),
    IRF(5, 5, 248, repeats=6, se=_T),
    IRF(5, 6, 272, se=_T),
)

# mobile-vision FBNetV3_G
G_ROWS = (
    IRF(3, 1, 24, repeats=3),
    IRF(5, 4, 40, stride=2),
    IRF(5, 2, 40, repeats=4),
    IRF(5, 4, 56, stride=2, se=_T),
    IRF(5, 3, 56, repeats=4, se=_T),
    IRF(5, 5, 104, stride=2),
    IRF(3, 3, 104, repeats=4),
    IRF(3, 5, 160, se=_T),
    IRF(5, 3, 160, repeats=8, se=_T),
    IRF(3, 6, 264, stride=2, se=_T),
    IRF(5, 5, 264, repeats=6, se=_T),
    IRF(5, 6, 288, repeats=2, se=_T),
)

ARCHS = {
    "a": IRFArch(stem_chs=16, rows=A_ROWS, head_expand=6, head_chs=HEAD_CHS),
    "b": IRFArch(stem_chs=16, rows=A_ROWS, head_expand=6, head_chs=HEAD_CHS),
    "c": IRFArch(stem_chs=16, rows=C_ROWS, head_expand=6, head_chs=HEAD_CHS),
    "d": IRFArch(stem_chs=24, rows=D_ROWS, head_expand=6, head_chs=HEAD_CHS),
    "e": IRFArch(stem_chs=24, rows=E_ROWS, head_expand=6, head_chs=HEAD_CHS),
    "f": IRFArch(stem_chs=24, rows=F_ROWS, head_expand=6, head_chs=HEAD_CHS),
    "g": IRFArch(stem_chs=32, rows=G_ROWS, head_expand=6, head_chs=HEAD_CHS),
}


def fbnetv3(
    *, arch: str = "a", width_mult: float = 1.0, depth_mult: float = 1.0, num_classes: int = 1000
) -> FBNetNetwork:
    """FBNetV3 ``a`` ... ``g`` (the input resolution lives in the catalog).

    ``width_mult`` and ``depth_mult`` (for compound scaling; the paper has neither) scale the stem,
    row and head widths and each row's repeats (``blocks.fbnet.scale_arch``). At 1.0 and 1.0 the
    network is the official one.
    """
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {sorted(ARCHS)}, got {arch!r}")
    scaled = scale_arch(ARCHS[arch], width_mult=width_mult, depth_mult=depth_mult)
    return irf_network(scaled, less_se_channels=LESS_SE_CHANNELS, num_classes=num_classes)
