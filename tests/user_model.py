"""A user's own model, defined outside the registry, for the tests of model references.

TinyNet's counts are easy to work out by hand (see tests/test_references.py).
"""

import torch
from torch import nn


class TinyNet(nn.Module):
    input_shape = (3, 32, 32)  # declared input: no --input needed

    def __init__(self, width: int = 8, classes: int = 10):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1, bias=False)  # 3*3*3*width weights
        self.bn = nn.BatchNorm2d(width)
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.act(self.bn(self.conv(x)))).flatten(1))


def tiny_net(width: int = 8, classes: int = 10) -> nn.Module:
    return TinyNet(width=width, classes=classes)


class FixedInput(nn.Module):
    """Only accepts 3x16x16 (its linear layer is sized for it): a model that rejects other inputs."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4 * 14 * 14, 2)

    def forward(self, x):
        return self.fc(self.conv(x).flatten(1))


def fixed_input() -> nn.Module:
    return FixedInput()


def no_shape() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 1))


def not_a_model():
    return 42


def broken(width: int = 8):
    raise ValueError(f"width {width} is not supported")


NOT_CALLABLE = 3
