"""A model that reports from inside its own forward pass, for the tests of the measuring path.

``probe(log=PATH)``: every call appends one line ``<process id> <torch threads>`` to PATH, so a
test reads which process ran the timed calls and how many intra-op threads were in force while
they ran. ``probe(alloc_mib=N)``: every call also allocates and fills an N MiB buffer, a known
allocation for the peak-memory tests.
"""

import os

import torch
from torch import nn


class Probe(nn.Module):
    input_shape = (3, 8, 8)

    def __init__(self, log: str = "", alloc_mib: int = 0):
        super().__init__()
        self.log = log
        self.alloc_mib = alloc_mib
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.log:
            with open(self.log, "a") as fh:
                fh.write(f"{os.getpid()} {torch.get_num_threads()}\n")
        y = self.conv(x)
        if self.alloc_mib:
            block = torch.ones(self.alloc_mib << 18)  # float32: 4 bytes each, every page written
            y = y + block[:1].sum()
        return y


def probe(log: str = "", alloc_mib: int = 0) -> nn.Module:
    return Probe(log=log, alloc_mib=alloc_mib)


def read_log(path) -> list[tuple[int, int]]:
    """The (process id, threads) of every call logged at ``path``, in call order."""
    with open(path) as fh:
        return [tuple(int(v) for v in line.split()) for line in fh if line.strip()]
