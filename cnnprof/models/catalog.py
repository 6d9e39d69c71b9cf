"""Every registered variant: its builder, native input, and the figures it is checked against.

Published figures are stored here only to be *compared with*: every count cnnprof reports comes
from the built network. Sources are those collected in ``shared/reference/paper_numbers.md``:
"paper" is the paper's own table, "official" is the count of the official implementation (its
parameters and conv + linear multiply-adds, at the native input), "released" is the released
checkpoint's model card. ``reference`` is the figure the built model must match: its parameter
count exactly where the reference is an exact count (EfficientNet, EfficientNetV2-S/M/L,
MobileNetV3, ESPNet), else to the unit it is quoted to (``params_rounded_to``; ``params_tol`` only
for a difference explained where it is set); MACs within 1% against official code, 1.5% against
the FBNet definitions.

Every variant is registered in ``CATALOG``, a registry this module owns; ``registry.py`` serves it.
This module imports only ``spec`` (the data types), so imports run one way: spec <- catalog <-
registry. Importing it must stay free of torch: ``cnnprof list`` answers without it.
"""

from __future__ import annotations

from cnnprof.models.spec import Figure, ModelSpec, Registry

M = 1_000_000

CATALOG = Registry()

# -- citations -------------------------------------------------------------------------------
EFFICIENTNET = "Tan & Le, EfficientNet: Rethinking Model Scaling for CNNs, ICML 2019 (arXiv:1905.11946)"
EFFICIENTNETV2 = "Tan & Le, EfficientNetV2: Smaller Models and Faster Training, ICML 2021 (arXiv:2104.00298)"
MOBILENETV3 = "Howard et al., Searching for MobileNetV3, ICCV 2019 (arXiv:1905.02244)"
GHOSTNET = "Han et al., GhostNet: More Features from Cheap Operations, CVPR 2020 (arXiv:1911.11907)"
GHOSTNETV2 = (
    "Tang et al., GhostNetV2: Enhance Cheap Operation with Long-Range Attention, NeurIPS 2022 "
    "(arXiv:2211.12905)"
)
ESPNET = (
    "Mehta et al., ESPNet: Efficient Spatial Pyramid of Dilated Convolutions for Semantic "
    "Segmentation, ECCV 2018 (arXiv:1803.06815)"
)
ESPNETV2 = (
    "Mehta et al., ESPNetv2: A Light-weight, Power Efficient, and General Purpose CNN, CVPR 2019 "
    "(arXiv:1811.11431)"
)
FBNET = "Wu et al., FBNet: Hardware-Aware Efficient ConvNet Design via Differentiable NAS, CVPR 2019 (arXiv:1812.03443)"
FBNETV2 = "Wan et al., FBNetV2: Differentiable NAS for Spatial and Channel Dimensions, CVPR 2020 (arXiv:2004.05565)"
FBNETV3 = (
    "Dai et al., FBNetV3: Joint Architecture-Recipe Search using Predictor Pretraining, CVPR 2021 "
    "(arXiv:2006.02049)"
)


def _m(x: float | None) -> int | None:
    """Millions -> an integer count (figures are quoted in millions)."""
    return None if x is None else round(x * M)


def _add(
    name: str,
    *,
    family: str,
    variant: str,
    paper: str,
    builder: str,
    res: int | tuple[int, int],
    options: dict | None = None,
    paper_fig: tuple[float | None, float | None, float | None] | None = None,
    paper_src: str = "paper",
    official: tuple[float, float] | None = None,
    official_src: str = "official implementation, conv + linear multiply-adds",
    extra: tuple[Figure, ...] = (),
    task: str = "classification",
    params_rounded_to: int = 1,
    params_tol: float = 0.0,
    macs_tol: float = 0.01,
    min_input: int = 32,
    notes: str = "",
) -> None:
    h, w = (res, res) if isinstance(res, int) else res
    size = f"{h}x{w}"
    published: list[Figure] = []
    if paper_fig is not None:
        p, macs, top1 = paper_fig
        published.append(Figure(source=f"{paper_src}: {paper}", params=_m(p), macs=_m(macs), top1=top1, input=size))
    reference = None
    if official is not None:
        reference = Figure(source=official_src, params=_m(official[0]), macs=_m(official[1]), input=size)
        published.append(reference)
    published.extend(extra)
    CATALOG.register(
        ModelSpec(
            name=name,
            family=family,
            variant=variant,
            paper=paper,
            builder=builder,
            input=(3, h, w),
            options=tuple((options or {}).items()),
            task=task,
            published=tuple(published),
            reference=reference,
            params_rounded_to=params_rounded_to,
            params_tol=params_tol,
            macs_tol=macs_tol,
            min_input=min_input,
            notes=notes,
        )
    )


# -- EfficientNet V1: the official (width, depth, resolution, dropout) table -------------------
# tensorflow/tpu efficientnet_builder.py `efficientnet_params`; paper Table 2 figures;
# official counts: torchvision weights meta (params) and conv+linear MACs of the reference code.
_EFFICIENTNET = [
    # name, width, depth, res, dropout, paper (params M, MACs M, top-1), official (params M, MACs M)
    ("b0", 1.0, 1.0, 224, 0.2, (5.3, 390, 77.1), (5.288548, 385.8)),
    ("b1", 1.0, 1.1, 240, 0.2, (7.8, 700, 79.1), (7.794184, 686.8)),
    ("b2", 1.1, 1.2, 260, 0.3, (9.2, 1000, 80.1), (9.109994, 993.6)),
    ("b3", 1.2, 1.4, 300, 0.3, (12, 1800, 81.6), (12.233232, 1827.1)),
    ("b4", 1.4, 1.8, 380, 0.4, (19, 4200, 82.9), (19.341616, 4393.8)),
    ("b5", 1.6, 2.2, 456, 0.4, (30, 9900, 83.6), (30.389784, 10266.4)),
    ("b6", 1.8, 2.6, 528, 0.5, (43, 19000, 84.0), (43.040704, 19067.6)),
    ("b7", 2.0, 3.1, 600, 0.5, (66, 37000, 84.3), (66.347960, 37745.9)),
]
for _v, _w, _d, _r, _drop, _paper, _official in _EFFICIENTNET:
    _add(
        f"efficientnet_{_v}",
        family="efficientnet",
        variant=_v.upper(),
        paper=EFFICIENTNET,
        builder="cnnprof.models.efficientnet:efficientnet",
        res=_r,
        options={"width_mult": _w, "depth_mult": _d, "dropout": _drop},
        paper_fig=_paper,
        paper_src="paper Table 2",
        official=_official,
    )

# -- EfficientNet-Lite: tensorflow/tpu efficientnet/lite (width, depth, resolution, dropout) ------
# efficientnet_lite_builder.py `efficientnet_lite_params`; published: that folder's README table
# (params, MAdds, FP32 top-1). The TF README's MAdds are ~5% above conv + linear multiply-adds
# (407M against 385.2M for Lite0): it counts more than convolutions. Reference: the exact counts of
# the PyTorch port `efficientnet_lite_pytorch` 0.1.0 (`EfficientNet.from_name`, conv + linear
# multiply-adds at the native input), which also match d-li14/efficientnet-lite.pytorch's README
# (4.652M / 0.385G ... 13.007M / 2.553G); keras-hub's preset converted from timm's Lite0 lists
# 4,652,008 parameters, timm's tf_efficientnet_lite3 model card 8.2M.
_EFFICIENTNET_LITE = [
    # name, width, depth, res, dropout, TF README (params M, MAdds M, top-1), reference (params M, MACs M)
    ("lite0", 1.0, 1.0, 224, 0.2, (4.7, 407, 75.1), (4.652008, 385.187552)),
    ("lite1", 1.0, 1.1, 240, 0.2, (5.4, 631, 76.7), (5.416680, 600.185232)),
    ("lite2", 1.1, 1.2, 260, 0.3, (6.1, 899, 77.6), (6.092072, 859.736272)),
    ("lite3", 1.2, 1.4, 280, 0.3, (8.2, 1440, 79.8), (8.197096, 1383.321872)),
    ("lite4", 1.4, 1.8, 300, 0.3, (13.0, 2640, 81.5), (13.006568, 2553.034336)),
]
for _v, _w, _d, _r, _drop, _readme, _official in _EFFICIENTNET_LITE:
    _add(
        f"efficientnet_{_v}",
        family="efficientnet_lite",
        variant=_v.capitalize(),
        paper=EFFICIENTNET,
        builder="cnnprof.models.efficientnet_lite:efficientnet_lite",
        res=_r,
        options={"width_mult": _w, "depth_mult": _d, "dropout": _drop},
        paper_fig=_readme,
        paper_src="tensorflow/tpu efficientnet/lite README",
        official=_official,
        official_src=(
            "efficientnet_lite_pytorch 0.1.0 EfficientNet.from_name: exact parameters, conv + linear "
            "multiply-adds (d-li14/efficientnet-lite.pytorch's README agrees)"
        ),
        notes="no SE, ReLU6, stem and head fixed; TF 'SAME' padding on stride-2 convs (tf_padding)",
    )

# -- EfficientNet V2 (google/automl efficientnetv2 configs; paper Table 7 vs repository README) --
_EFFICIENTNETV2 = [
    # name, arch, width, depth, eval res, dropout, paper (params, MACs, top-1), repo README, official
    ("s", "s", 1.0, 1.0, 384, 0.2, (22, 8800, 83.9), (21.5, 8400, 83.9), (21.458488, 8366)),
    ("m", "m", 1.0, 1.0, 480, 0.3, (54, 24000, 85.1), (54.1, 24700, 85.2), (54.139356, 24582)),
    ("l", "l", 1.0, 1.0, 480, 0.4, (120, 53000, 85.7), (119.5, 56300, 85.7), (118.515272, 56080)),
    ("b0", "base", 1.0, 1.0, 224, 0.2, None, (7.1, 720, 78.7), (7.140, 718)),
    ("b1", "base", 1.0, 1.1, 240, 0.2, None, (8.1, 1200, 79.8), (8.141, 1197)),
    ("b2", "base", 1.1, 1.2, 260, 0.3, None, (10.1, 1700, 80.5), (10.096, 1698)),
    ("b3", "base", 1.2, 1.4, 300, 0.3, None, (14.4, 3000, 82.1), (14.358, 3012)),
]
for _v, _arch, _w, _d, _r, _drop, _paper, _readme, _official in _EFFICIENTNETV2:
    _add(
        f"efficientnetv2_{_v}",
        family="efficientnetv2",
        variant=_v.upper(),
        paper=EFFICIENTNETV2,
        builder="cnnprof.models.efficientnetv2:efficientnetv2",
        res=_r,
        options={"arch": _arch, "width_mult": _w, "depth_mult": _d, "dropout": _drop},
        paper_fig=_paper,
        paper_src="paper Table 7",
        official=_official,
        extra=(
            Figure(
                source="google/automl efficientnetv2 README",
                params=_m(_readme[0]),
                macs=_m(_readme[1]),
                top1=_readme[2],
                input=f"{_r}x{_r}",
                note="the repository's FLOPs differ from the paper's; both are listed",
            ),
        ),
        # B0-B3 official counts are known to the thousand only (4 significant figures).
        params_rounded_to=1 if _paper else 1000,
        macs_tol=0.01 if _paper else 0.015,
    )

# -- MobileNetV3, the common baseline (paper Table 3; torchvision weights meta) ------------------
for _v, _paper, _official in [
    ("large", (5.4, 219, 75.2), (5.483032, 216.6)),
    ("small", (2.5, 56, 67.4), (2.542856, 56.5)),
]:
    _add(
        f"mobilenetv3_{_v}",
        family="mobilenetv3",
        variant=f"{_v.capitalize()} 1.0",
        paper=MOBILENETV3,
        builder="cnnprof.models.mobilenetv3:mobilenetv3",
        res=224,
        options={"arch": _v, "width_mult": 1.0},
        paper_fig=_paper,
        paper_src="paper Table 3",
        official=_official,
    )

# -- GhostNet V1 / V2 (huawei-noah/Efficient-AI-Backbones) -------------------------------------
for _v, _w, _paper, _official in [
    ("050", 0.5, (2.6, 42, 66.2), (2.587, 42.3)),
    ("100", 1.0, (5.2, 141, 73.9), (5.183, 141.2)),
    ("130", 1.3, (7.3, 226, 75.7), (7.359, 227.0)),
]:
    _add(
        f"ghostnet_{_v}",
        family="ghostnet",
        variant=f"{_w}x",
        paper=GHOSTNET,
        builder="cnnprof.models.ghostnet:ghostnet",
        res=224,
        options={"width_mult": _w},
        paper_fig=_paper,
        paper_src="paper Table 7",
        official=_official,
        params_rounded_to=1000,
    )
for _v, _w, _paper, _official in [
    ("100", 1.0, (6.1, 167, 75.3), (6.157, 167.0)),
    ("130", 1.3, (8.9, 269, 76.9), (8.960, 269.3)),
    ("160", 1.6, (12.3, 399, 77.8), (12.393, 398.6)),
]:
    _add(
        f"ghostnetv2_{_v}",
        family="ghostnetv2",
        variant=f"{_w}x",
        paper=GHOSTNETV2,
        builder="cnnprof.models.ghostnetv2:ghostnetv2",
        res=224,
        options={"width_mult": _w},
        paper_fig=_paper,
        paper_src="paper ImageNet table",
        official=_official,
        params_rounded_to=1000,
        min_input=33,  # DFC attention 2x2-pools the stride-32 map, which must be at least 2x2
    )

# -- ESPNet V1 (sacmehta/ESPNet, alpha2 = 2, alpha3 = 8, 20 output classes) ---------------------
_add(
    "espnet",
    family="espnet",
    variant="ESPNet (alpha2=2, alpha3=8)",
    paper=ESPNET,
    builder="cnnprof.models.espnet:espnet",
    res=(512, 1024),
    options={"num_classes": 20, "p": 2, "q": 8},
    paper_fig=(0.364, None, 60.3),
    paper_src="paper (Cityscapes test mIoU as top1)",
    official=(0.365109, 4780),
    task="segmentation",
    min_input=16,
)
_add(
    "espnet_c",
    family="espnet",
    variant="ESPNet-C encoder (alpha2=2, alpha3=8)",
    paper=ESPNET,
    builder="cnnprof.models.espnet:espnet_c",
    res=(512, 1024),
    options={"num_classes": 20, "p": 2, "q": 8},
    official=(0.3494, 3470),
    params_rounded_to=100,
    task="segmentation",
    min_input=16,
    notes="output logits at 1/8 of the input resolution",
)

# -- ESPNet V2 ImageNet classifier (sacmehta/ESPNetv2 imagenet/Model.py) -----------------------
# The repository's FLOPs exclude the final FC; the official counts here include it.
for _v, _s, _paper, _official in [
    ("050", 0.5, (1.24, 28.37, 57.7), (1.2413, 29.40)),
    ("100", 1.0, (1.67, 85.72, 66.1), (1.6701, 86.74)),
    ("125", 1.25, (1.96, 123.39, 67.9), (1.9654, 124.42)),
    ("150", 1.5, (2.31, 168.6, 69.2), (2.3149, 169.63)),
    ("200", 2.0, (3.49, 284.8, 72.1), (3.4981, 286.09)),
]:
    _add(
        f"espnetv2_{_v}",
        family="espnetv2",
        variant=f"s={_s}",
        paper=ESPNETV2,
        builder="cnnprof.models.espnetv2:espnetv2",
        res=224,
        options={"width_mult": _s},
        paper_fig=_paper,
        paper_src="paper / sacmehta/ESPNetv2 README (FLOPs exclude the final FC)",
        official=_official,
        params_rounded_to=100,
        # the official count includes parameters its network creates but never uses (0.13-0.2%);
        # tests/test_models_espnet.py adds them back and matches the reference to its rounding
        params_tol=0.0025,
    )

# -- FBNet V1 (mobile-vision fbnet_modeldef_cls_fbnet.py) --------------------------------------
for _v, _paper, _released, _official in [
    ("a", (4.3, 249, 73.0), (4.286, 249.9, 73.26), (4.321, 244.5)),
    ("b", (4.5, 295, 74.1), (4.777, 295.6, 74.21), (4.818, 291.0)),
    ("c", (5.5, 375, 74.9), (5.521, 383.0, 75.27), (5.593, 378.1)),
]:
    _add(
        f"fbnet_{_v}",
        family="fbnet",
        variant=_v.upper(),
        paper=FBNET,
        builder="cnnprof.models.fbnet:fbnet",
        res=224,
        options={"arch": _v},
        paper_fig=_paper,
        paper_src="paper ImageNet table",
        official=_official,
        official_src="mobile-vision FBNet definitions, conv + linear multiply-adds",
        extra=(
            Figure(
                source="released checkpoint (mobile-vision model_info.json)",
                params=_m(_released[0]),
                macs=_m(_released[1]),
                top1=_released[2],
                input="224x224",
            ),
        ),
        params_rounded_to=1000,
        macs_tol=0.015,
    )

# -- FBNet V2 (mobile-vision fbnet_modeldef_cls_fbnetv2.py, MODEL_ARCH_FBNETV2_PAPER) ----------
for _v, _r, _paper, _released, _official in [
    ("f1", 128, (None, 56, 68.3), (5.999, 56.4, 68.28), (6.025, 56.2)),
    ("f2", 160, (None, 85, 71.1), (5.999, 85.4, 70.98), (6.025, 85.2)),
    ("f3", 192, (None, 126, 73.2), (6.900, 121.8, 73.03), (6.925, 121.4)),
    ("f4", 224, (None, 238, 76.0), (6.995, 238.4, 75.82), (7.023, 237.6)),
    ("l1", 224, (None, 325, 77.2), (8.497, 326.0, 77.04), (8.539, 325.0)),
    ("l2", 256, (None, 422, 78.1), (8.497, 423.9, 78.24), (8.539, 422.6)),
]:
    _add(
        f"fbnetv2_{_v}",
        family="fbnetv2",
        variant=_v.upper(),
        paper=FBNETV2,
        builder="cnnprof.models.fbnetv2:fbnetv2",
        res=_r,
        options={"arch": _v},
        paper_fig=_paper,
        paper_src="paper ImageNet table",
        official=_official,
        official_src="mobile-vision FBNetV2 definitions, conv + linear multiply-adds",
        extra=(
            Figure(
                source="released checkpoint (mobile-vision model_info_fbnet_v2.json)",
                params=_m(_released[0]),
                macs=_m(_released[1]),
                top1=_released[2],
                input=f"{_r}x{_r}",
            ),
        ),
        params_rounded_to=1000,
        macs_tol=0.015,
    )

# -- FBNet V3 (mobile-vision fbnet_modeldef_cls_fbnetv3.py, MODEL_ARCH_FBNETV3) ----------------
# The official depthwise padding overrides (k5 pad 1, k3 pad 0 at stride 2) shrink the late
# stages faster than "same" padding: below these sizes a stage-5 conv gets an empty input.
_FBNETV3_MIN_INPUT = {"a": 49, "b": 49, "c": 49, "f": 33}
for _v, _r, _paper, _released, _official in [
    ("a", 224, (None, 357, 79.1), (8.542, 356.6, 79.57), (8.599, 355.5)),
    ("b", 248, (None, 461, 79.8), (8.542, 461.6, 80.21), (8.599, 460.2)),
    ("c", 248, (None, 557, 80.5), (9.907, 557.0, 80.83), (9.974, 555.6)),
    ("d", 248, (None, 644, 80.8), (10.238, 644.4, 81.04), (10.306, 642.6)),
    ("e", 264, (None, 762, 81.3), (10.699, 762.0, 81.25), (10.773, 760.0)),
    ("f", 272, (None, 1181, 82.1), (13.803, 1181.6, 82.06), (13.896, 1178.9)),
    ("g", 320, (None, 2129, 82.8), (16.514, 2129.7, 82.79), (16.624, 2125.2)),
]:
    _add(
        f"fbnetv3_{_v}",
        family="fbnetv3",
        variant=_v.upper(),
        paper=FBNETV3,
        builder="cnnprof.models.fbnetv3:fbnetv3",
        res=_r,
        options={"arch": _v},
        paper_fig=_paper,
        paper_src="paper (CVPR'21) ImageNet table",
        official=_official,
        official_src="mobile-vision FBNetV3 definitions, conv + linear multiply-adds",
        extra=(
            Figure(
                source="released checkpoint (mobile-vision model_info_fbnet_v3.json)",
                params=_m(_released[0]),
                macs=_m(_released[1]),
                top1=_released[2],
                input=f"{_r}x{_r}",
            ),
        ),
        params_rounded_to=1000,
        # V3-A/B's quoted 8.599M lies 20 parameters past the rounding of the definitions' count,
        # 8,598,480 (tests/test_models_fbnet.py pins every exact count)
        params_tol=0.00001,
        macs_tol=0.015,
        min_input=_FBNETV3_MIN_INPUT.get(_v, 32),
    )

# -- family aliases: each family's reference variant -------------------------------------------
for _alias, _target in [
    ("efficientnet", "efficientnet_b0"),
    ("efficientnet_lite", "efficientnet_lite0"),
    ("efficientnetv2", "efficientnetv2_s"),
    ("mobilenetv3", "mobilenetv3_large"),
    ("ghostnet", "ghostnet_100"),
    ("ghostnetv2", "ghostnetv2_100"),
    ("espnet", "espnet"),
    ("espnetv2", "espnetv2_100"),
    ("fbnet", "fbnet_b"),
    ("fbnetv2", "fbnetv2_f4"),
    ("fbnetv3", "fbnetv3_a"),
]:
    CATALOG.alias(_alias, _target)
