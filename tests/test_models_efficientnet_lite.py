"""EfficientNet-Lite0..4: the edge rules (no SE, ReLU6, fixed stem and head, first and last stage
not deepened), TensorFlow "SAME" padding, and the counts of the PyTorch port where it is installed."""

import pytest
import torch
import torch.nn.functional as F
from shape_counter import conv_linear_macs
from torch import nn

from cnnprof.models.blocks import MBConv, SqueezeExcite
from cnnprof.models.efficientnet_lite import Conv2dSame, efficientnet_lite
from cnnprof.models.registry import get, list_models

LITES = [f"efficientnet_lite{i}" for i in range(5)]


def test_the_five_variants_and_the_family_alias_are_registered():
    assert list_models("efficientnet_lite*") == LITES
    assert get("efficientnet_lite").name == "efficientnet_lite0"
    assert [get(n).input[1] for n in LITES] == [224, 240, 260, 280, 300]
    assert [dict(get(n).options)["dropout"] for n in LITES] == [0.2, 0.2, 0.3, 0.3, 0.3]


@pytest.mark.parametrize("name", LITES)
def test_edge_rules(name):
    with torch.device("meta"):
        model = get(name).build()
    kinds = {type(m) for m in model.modules()}
    assert SqueezeExcite not in kinds and nn.SiLU not in kinds and nn.ReLU6 in kinds
    assert model.stem.conv.out_channels == 32 and model.head.conv.out_channels == 1280
    blocks = [b for b in model.blocks if isinstance(b, MBConv)]
    assert blocks[0].conv_dw.conv.in_channels == 32  # the first block reads the fixed stem
    # first stage (16 channels at B0 width) and last stage (320) keep one block each
    first_out, last_out = blocks[0].conv_pwl.conv.out_channels, blocks[-1].conv_pwl.conv.out_channels
    assert sum(b.conv_pwl.conv.out_channels == first_out for b in blocks) == 1
    assert sum(b.conv_pwl.conv.out_channels == last_out for b in blocks) == 1


def test_depth_scales_the_middle_stages_only():
    # Lite4 (depth 1.8): 1 + ceil(1.8 * (2 + 2 + 3 + 3 + 4)) distributed per stage + 1
    with torch.device("meta"):
        model = get("efficientnet_lite4").build()
    assert len(model.blocks) == 1 + 4 + 4 + 6 + 6 + 8 + 1


@pytest.mark.parametrize("size", [224, 225, 17])
@pytest.mark.parametrize("kernel", [3, 5])
def test_same_padding_puts_the_odd_pixel_after(size, kernel):
    torch.manual_seed(0)
    conv = Conv2dSame(4, 6, kernel, stride=2, bias=False)
    x = torch.randn(1, 4, size, size)
    out_size = -(-size // 2)
    total = max((out_size - 1) * 2 + kernel - size, 0)
    before, after = total // 2, total - total // 2
    expected = F.conv2d(F.pad(x, [before, after, before, after]), conv.weight, stride=2)
    got = conv(x)
    assert got.shape[-1] == out_size
    assert torch.equal(got, expected)


def test_tf_padding_changes_the_padding_only():
    torch.manual_seed(0)
    tf = efficientnet_lite(tf_padding=True).eval()
    pt = efficientnet_lite(tf_padding=False).eval()
    pt.load_state_dict(tf.state_dict())
    assert [k for k, _ in tf.state_dict().items()] == [k for k, _ in pt.state_dict().items()]
    strided = [m for m in tf.modules() if isinstance(m, nn.Conv2d) and max(m.stride) > 1]
    assert strided and all(type(m) is Conv2dSame for m in strided)
    assert not any(type(m) is Conv2dSame for m in pt.modules())
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert not torch.allclose(tf.stem(x), pt.stem(x))  # the padding is not a no-op


@pytest.mark.parametrize("index", range(5))
def test_counts_equal_the_pytorch_port(index):
    port = pytest.importorskip("efficientnet_lite_pytorch", reason="efficientnet-lite-pytorch is not installed")
    spec = get(f"efficientnet_lite{index}")
    ref = port.EfficientNet.from_name(f"efficientnet-lite{index}")
    ours = spec.build()
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    assert conv_linear_macs(ours, spec.input) == conv_linear_macs(ref, spec.input)
    # the same tensors in the same order: the shapes line up one to one
    assert [t.shape for t in ours.state_dict().values()] == [t.shape for t in ref.state_dict().values()]
