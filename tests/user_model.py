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


def exits():
    """A factory that ends the process instead of returning a model."""
    import sys

    sys.exit(3)


class Talks(nn.Module):
    input_shape = (3, 16, 16)

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        print("forward says hello")  # a model that prints must not corrupt a report on stdout
        return self.conv(x)


def talks() -> nn.Module:
    print("factory says hello")
    return Talks()


class ExitsInForward(nn.Module):
    input_shape = (3, 16, 16)

    def forward(self, x):
        import sys

        sys.exit(4)


def exits_in_forward() -> nn.Module:
    return ExitsInForward()


class LeavesTensors(nn.Module):
    """Its forward returns a Python number: it traces, but its graph cannot be checked or run."""

    input_shape = (3, 16, 16)

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return float(self.conv(x).mean())


def leaves_tensors() -> nn.Module:
    return LeavesTensors()


class OutOfMemory(nn.Module):
    """Fails in its forward the way PyTorch's CPU allocator does when memory runs out."""

    input_shape = (3, 16, 16)

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        self.conv(x)
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you "
                           "tried to allocate 480000000000 bytes. Error code 12 (Cannot allocate memory)")


def out_of_memory() -> nn.Module:
    return OutOfMemory()
