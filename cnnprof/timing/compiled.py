"""``torch.compile`` (inductor) backend. The first call compiles; its duration is reported as
``setup_s`` (compile time), separately from the steady-state samples. fp16 / bf16 compile the
forward pass under autocast, as eager runs it."""

from __future__ import annotations

import time

import torch
from torch import nn

from cnnprof.timing.eager import EagerRunner


class CompiledRunner(EagerRunner):
    name = "compile"

    def __init__(self, model: nn.Module, example: torch.Tensor, *, device: str, channels_last: bool, train: bool,
                 precision: str = "fp32"):
        compiled = torch.compile(model, backend="inductor")
        t0 = time.perf_counter()
        # EagerRunner's constructor runs the first call, which is where compilation happens.
        super().__init__(compiled, example, device=device, channels_last=channels_last, train=train,
                         precision=precision)
        self.setup_s = time.perf_counter() - t0
        self.first_run_ms = self.step()  # first call after compiling
