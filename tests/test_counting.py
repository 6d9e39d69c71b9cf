"""The counter on tiny networks whose counts are worked out by hand."""

import pytest
import torch
from torch import nn

from cnnprof.counting import count, is_free_op
from cnnprof.errors import UsageError


def test_single_conv():
    c = count(nn.Conv2d(3, 8, 3, padding=1, bias=False), (3, 16, 16))
    assert c.params == 8 * 3 * 9
    assert c.macs == 8 * 3 * 9 * 16 * 16  # every weight used at every output position
    assert c.activations == 8 * 16 * 16
    assert c.bytes_moved == 4 * (3 * 16 * 16 + 216 + 8 * 16 * 16)
    assert c.status == "complete" and c.uncounted == {}


def test_grouped_strided_conv_and_batch():
    conv = nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=4, bias=False)  # 16 x 2 x 3 x 3 weights
    c = count(conv, (8, 10, 10), batch=3)
    assert c.params == 16 * 2 * 9
    assert c.macs == 3 * (16 * 2 * 9) * 5 * 5
    assert c.input_shape == (3, 8, 10, 10)


def test_transposed_conv_counts_per_input_position():
    up = nn.ConvTranspose2d(4, 4, 2, stride=2, bias=False)
    c = count(up, (4, 6, 6))
    assert c.macs == 4 * 4 * 2 * 2 * 6 * 6


class SmallNet(nn.Module):
    """conv-BN-SiLU, SE-like gate, pool, linear: every kind of op the zoo uses."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.SiLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        x = self.act(self.bn(self.conv(x)))
        x = x * torch.sigmoid(self.pool(x))
        return self.fc(self.pool(x).flatten(1))


def test_papers_convention_vs_fvcore_total_and_uncounted_ops():
    c = count(SmallNet(), (3, 8, 8))
    conv = 4 * 3 * 9 * 64
    assert c.by_op["conv"] == conv
    assert c.by_op["linear"] == 40
    assert c.macs == conv + 40  # conv + linear only
    # fvcore adds batch norm (in eval: one multiply-add per element) and pooling
    assert c.macs_fvcore == conv + 40 + c.by_op["batch_norm"] + c.by_op["adaptive_avg_pool2d"]
    # an affine batch norm in eval: a scale and a shift per element (fvcore); adaptive pooling: one add per input
    assert c.by_op["batch_norm"] == 2 * 4 * 64 and c.by_op["adaptive_avg_pool2d"] == 2 * 4 * 64  # pooled twice
    # never a silent zero: the gate's ops ran and are listed with their call counts
    assert c.uncounted["aten::sigmoid"] == 1 and c.uncounted["aten::mul"] == 1 and c.uncounted["aten::silu"] == 1
    assert c.status == "complete"  # all of those are free of multiply-adds by convention
    assert c.params == 108 + 8 + 50
    layers = {layer.name: layer for layer in c.layers}
    assert layers["pool"].calls == 2  # one module, called twice
    assert layers["fc"].input_shape == (1, 4) and layers["fc"].macs == 40


class Unusual(nn.Module):
    def forward(self, x):
        return torch.cumsum(x, dim=1)


def test_unknown_ops_make_the_count_partial():
    c = count(Unusual(), (3, 4, 4))
    assert "aten::cumsum" in c.uncounted
    assert c.status == "partial: aten::cumsum"


def test_free_op_names():
    assert is_free_op("aten::silu") and is_free_op("aten::add_") and is_free_op("aten::hardsigmoid")
    assert not is_free_op("aten::cumsum") and not is_free_op("prim::PythonOp")


def test_rejected_input_names_the_layer_and_shape():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    with pytest.raises(UsageError) as err:
        count(net, (3, 16, 16), label="toy")
    message = str(err.value)
    assert "toy rejects input 3x16x16" in message
    assert "layer '2' (Linear)" in message and "1x1568" in message
    assert "\n" not in message


def test_module_tree_totals():
    net = nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 1, bias=False)), nn.Conv2d(4, 2, 1, bias=False))
    c = count(net, (3, 5, 5))
    mods = {m.name: m for m in c.modules}
    assert mods[""].macs == c.macs == 12 * 25 + 8 * 25
    assert mods["0"].macs == 12 * 25 and mods["0"].depth == 1 and mods["0.0"].depth == 2
    assert mods["1"].params == 8
