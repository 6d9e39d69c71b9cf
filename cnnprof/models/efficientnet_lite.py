"""EfficientNet-Lite0..4: EfficientNet-B0's stage table made for edge devices.

Following tensorflow/tpu ``models/official/efficientnet/lite/efficientnet_lite_builder.py`` and
the ``fix_head_stem`` branch of ``efficientnet_model.py``, against EfficientNet-B0
(``efficientnet.py``):

- no squeeze-excitation (``use_se=False``), ReLU6 everywhere instead of swish;
- the stem (32 channels) and the head (1280 channels) are not scaled with the width;
- the first and the last stage keep their single block when the depth is scaled (the other
  stages take ``ceil(repeats * depth)``), and the first block reads the fixed 32-channel stem.

The released checkpoints were trained in TensorFlow, whose "SAME" padding of a stride-2
convolution pads less on the top and left than on the bottom and right ((0, 1) for a 3x3 on an
even input). ``tf_padding=True`` (the default) pads stride-2 convolutions that way, so that the
trained weights give the published network's logits; ``tf_padding=False`` pads symmetrically as
PyTorch does. Parameters, layer names and multiply-adds are the same either way.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from cnnprof.models.blocks import ConvBNAct, MBConv, round_repeats
from cnnprof.models.efficientnet import B0_STAGES, BN_EPS, DROP_CONNECT, round_filters

LITE_STEM = 32  # fixed: never scaled
LITE_HEAD = 1280  # fixed: never scaled


class Conv2dSame(nn.Conv2d):
    """A convolution padded as TensorFlow's "SAME": the odd pixel of padding goes after.

    The padding is worked out from each input's height and width, so any input size works;
    ``padding`` of the underlying convolution is 0. Under a trace (an ONNX export, fvcore's count)
    it is fixed at the traced input's size, so that the graph keeps its shapes. Its weights and their names are those of
    ``nn.Conv2d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sizes = x.shape[-2:]
        if torch.jit.is_tracing():  # an ONNX export or fvcore's trace: fixed pads, so shapes stay known
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                sizes = [int(s) for s in sizes]
        pads = []
        for size, k, s, d in zip(sizes, self.kernel_size, self.stride, self.dilation):
            out = -(-size // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        if top or bottom or left or right:
            x = F.pad(x, [left, right, top, bottom])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _same_padded(conv: nn.Conv2d) -> Conv2dSame:
    same = Conv2dSame(
        conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=0,
        dilation=conv.dilation, groups=conv.groups, bias=conv.bias is not None,
        device=conv.weight.device, dtype=conv.weight.dtype,
    )
    return same


def use_tf_padding(model: nn.Module) -> nn.Module:
    """Replace every strided ``nn.Conv2d`` of ``model`` by a ``Conv2dSame`` (in place).

    Stride-1 convolutions with odd kernels pad the same either way and are left as they are.
    """
    for name, child in list(model.named_children()):
        if type(child) is nn.Conv2d and max(child.stride) > 1:
            setattr(model, name, _same_padded(child))
        else:
            use_tf_padding(child)
    return model


class EfficientNetLite(nn.Module):
    """Stem (32) -> MBConv stages without SE -> 1x1 head (1280) -> pool -> dropout -> classifier."""

    def __init__(
        self,
        *,
        width_mult: float = 1.0,
        depth_mult: float = 1.0,
        dropout: float = 0.2,
        num_classes: int = 1000,
        drop_path: float = DROP_CONNECT,
        tf_padding: bool = True,
    ):
        super().__init__()
        if width_mult <= 0 or depth_mult <= 0:
            raise ValueError(f"width_mult and depth_mult must be > 0, got {width_mult}, {depth_mult}")
        act = nn.ReLU6
        self.stem = ConvBNAct(3, LITE_STEM, 3, stride=2, act=act, bn_eps=BN_EPS)
        last = len(B0_STAGES) - 1
        repeats = [
            s.repeats if i in (0, last) else round_repeats(s.repeats, depth_mult) for i, s in enumerate(B0_STAGES)
        ]
        total = sum(repeats)
        blocks: list[nn.Module] = []
        in_chs = LITE_STEM
        for stage, n in zip(B0_STAGES, repeats):
            out_chs = round_filters(stage.out_chs, width_mult)
            for i in range(n):
                blocks.append(
                    MBConv(
                        in_chs,
                        out_chs,
                        mid_chs=in_chs * stage.expand,
                        kernel_size=stage.kernel,
                        stride=stage.stride if i == 0 else 1,
                        act=act,
                        bn_eps=BN_EPS,
                        drop_path=drop_path * len(blocks) / total,
                    )
                )
                in_chs = out_chs
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBNAct(in_chs, LITE_HEAD, 1, act=act, bn_eps=BN_EPS)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(LITE_HEAD, num_classes)
        if tf_padding:
            use_tf_padding(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.blocks(x)
        x = self.head(x)
        x = self.pool(x).flatten(1)
        return self.classifier(self.dropout(x))


def efficientnet_lite(
    *,
    width_mult: float = 1.0,
    depth_mult: float = 1.0,
    dropout: float = 0.2,
    num_classes: int = 1000,
    tf_padding: bool = True,
) -> EfficientNetLite:
    """EfficientNet-Lite at the given width and depth multipliers (Lite0 = 1.0, 1.0)."""
    return EfficientNetLite(
        width_mult=width_mult, depth_mult=depth_mult, dropout=dropout, num_classes=num_classes, tf_padding=tf_padding
    )
