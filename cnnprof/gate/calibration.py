"""The calibration workload: a fixed CNN timed between the models to cancel machine speed.

Why it exists: on a shared CI machine the same model runs 10-30% faster or slower from one job
to the next (another tenant, a different host of the same instance type, a CPU in a different
frequency state). Timing this network right before and after every model call, in the same
process, and dividing the model's time by it turns "milliseconds on whatever machine this
was" into "work relative to a fixed yardstick", which is what a baseline recorded in one CI job
and a check run in another can compare.

Why this network: a neighbour slows different code by different amounts (on this machine a
memory-streaming neighbour slowed the models by 25-31%, a Python loop by 12-14%), so the
yardstick must be made of what the models are made of, in the same proportions. It is a
MobileNetV3-style network at the models' input size (224x224): inverted residuals with depthwise
3x3 and 5x5 convolutions, 1x1 expansions and projections, squeeze-excite, ReLU / hard-swish /
SiLU, residual adds, a dense 3x3, and a 960-1280-1000 head: 3.9 M parameters, 130 M MACs in 164
operator calls, between the watched models in calls and in work per call (mobilenetv3_small:
157 calls, 56 M MACs; efficientnet_b0: 240, 386 M; ghostnet_100: 322, 141 M). Measured in one process with a neighbour switching
between matrix multiply, memory streaming, CNN training and a Python loop, the normalised times of
mobilenetv3_small, ghostnet_100 and efficientnet_b0 stayed within 2% of their quiet values; a
first yardstick with 58 larger operator calls (more compute per call) drifted by up to 5%.

It is built from plain ``torch.nn`` layers, not from the zoo's blocks, so a change to the zoo
can never change it, and it is **fixed forever**: any change to the table, the input or the
seed must bump ``CALIBRATION_VERSION``; baselines carry the version and a check refuses a
baseline recorded with another one (ratios against a different yardstick mean nothing).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

CALIBRATION_VERSION = 1
CALIBRATION_NAME = f"gate_calibration_v{CALIBRATION_VERSION}"
CALIBRATION_INPUT = (3, 224, 224)
CALIBRATION_SEED = 1


@dataclass(frozen=True)
class Block:
    """One inverted residual: 1x1 expand (skipped when mid == in), depthwise k x k, SE, 1x1 project."""

    in_chs: int
    mid_chs: int
    out_chs: int
    kernel: int
    stride: int
    se_chs: int  # 0: no squeeze-excite
    act: type[nn.Module]


R, H, S = nn.ReLU, nn.Hardswish, nn.SiLU
# MobileNetV3-Large's stage layout at about 0.75 width, SiLU in the last stages (as EfficientNet).
BLOCKS = (
    Block(16, 16, 16, 3, 1, 0, R),
    Block(16, 48, 16, 3, 2, 0, R),  # 56x56
    Block(16, 56, 16, 3, 1, 0, R),
    Block(16, 56, 32, 5, 2, 14, R),  # 28x28
    Block(32, 88, 32, 5, 1, 22, R),
    Block(32, 88, 32, 5, 1, 22, R),
    Block(32, 184, 64, 3, 2, 0, H),  # 14x14
    Block(64, 152, 64, 3, 1, 0, H),
    Block(64, 136, 64, 3, 1, 0, H),
    Block(64, 360, 88, 3, 1, 90, H),
    Block(88, 504, 88, 3, 1, 126, S),
    Block(88, 504, 120, 5, 2, 126, S),  # 7x7
    Block(120, 720, 120, 5, 1, 180, S),
)


def _cba(in_chs: int, out_chs: int, k: int = 1, *, stride: int = 1, groups: int = 1,
         act: type[nn.Module] | None = nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(in_chs, out_chs, k, stride=stride, padding=k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_chs),
    ]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class _SE(nn.Module):
    def __init__(self, chs: int, se_chs: int):
        super().__init__()
        self.reduce = nn.Conv2d(chs, se_chs, 1)
        self.act = nn.ReLU()
        self.expand = nn.Conv2d(se_chs, chs, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(x.mean((2, 3), keepdim=True)))))


class _InvertedResidual(nn.Module):
    def __init__(self, b: Block):
        super().__init__()
        self.conv_pw = _cba(b.in_chs, b.mid_chs, act=b.act) if b.mid_chs != b.in_chs else nn.Identity()
        self.conv_dw = _cba(b.mid_chs, b.mid_chs, b.kernel, stride=b.stride, groups=b.mid_chs, act=b.act)
        self.se = _SE(b.mid_chs, b.se_chs) if b.se_chs else nn.Identity()
        self.conv_pwl = _cba(b.mid_chs, b.out_chs, act=None)
        self.has_skip = b.stride == 1 and b.in_chs == b.out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv_pwl(self.se(self.conv_dw(self.conv_pw(x))))
        return x + y if self.has_skip else y


class CalibrationNet(nn.Module):
    """224x224 input -> 1000 logits (counts: ``cnnprof.counting.count(build_calibration(), CALIBRATION_INPUT)``)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = _cba(3, 16, 3, stride=2, act=H)  # 112x112
        self.blocks = nn.Sequential(*[_InvertedResidual(b) for b in BLOCKS])
        self.dense = _cba(120, 120, 3)  # a dense 3x3 in the body, as in Fused-MBConv / Ghost primaries
        self.head = _cba(120, 960, act=H)
        self.fc1 = nn.Linear(960, 1280)
        self.act = H()
        self.fc2 = nn.Linear(1280, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dense(self.blocks(self.stem(x)))
        x = self.head(x).mean((2, 3))
        return self.fc2(self.act(self.fc1(x)))


def build_calibration() -> nn.Module:
    """The calibration network in eval mode with its fixed seeded weights (and BN statistics)."""
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(CALIBRATION_SEED)
    try:
        model = CalibrationNet()
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, nn.BatchNorm2d):  # non-trivial, fixed BN statistics
                    module.running_mean.uniform_(-0.1, 0.1)
                    module.running_var.uniform_(0.5, 1.5)
    finally:
        torch.random.set_rng_state(gen_state)
    return model.eval()
