"""PyTorch eager backend, CPU and CUDA.

On CPU one call is timed with ``perf_counter``; on CUDA with a pair of CUDA events around the
call and a synchronisation on the end event, so an asynchronous launch is never what is timed.
``train=True`` times a whole training step: forward, cross-entropy loss, backward, SGD step.
"""

from __future__ import annotations

import time

import torch
from torch import nn


def loss_target(output: torch.Tensor) -> torch.Tensor:
    """Random class labels shaped for ``output``: (N,) for (N, C) logits, (N, H, W) for maps."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    classes = output.shape[1]
    shape = (output.shape[0],) + tuple(output.shape[2:])
    return torch.randint(0, classes, shape, generator=gen).to(output.device)


class EagerRunner:
    """Runs one configured call per ``step()`` and returns its duration in milliseconds."""

    name = "torch"

    def __init__(self, model: nn.Module, example: torch.Tensor, *, device: str, channels_last: bool, train: bool):
        self.device = torch.device(device)
        self.train = train
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.to(self.device, memory_format=fmt)
        self.x = example.to(self.device).contiguous(memory_format=fmt)
        self.model.train(train)
        if train:
            self.optimizer = torch.optim.SGD(self.model.parameters(), lr=1e-3, momentum=0.9)
            with torch.no_grad():
                self.target = loss_target(self.model(self.x))
        self.setup_s: float | None = None
        self.export_s: float | None = None
        self.first_run_ms = self.step()

    def call(self):
        if not self.train:
            with torch.inference_mode():
                return self.model(self.x)
        self.optimizer.zero_grad(set_to_none=True)
        out = self.model(self.x)
        loss = nn.functional.cross_entropy(out, self.target)
        loss.backward()
        self.optimizer.step()
        return out

    def step(self) -> float:
        if self.device.type == "cuda":
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            self.call()
            end.record()
            end.synchronize()
            return float(start.elapsed_time(end))
        t0 = time.perf_counter()
        self.call()
        return (time.perf_counter() - t0) * 1e3

    def output(self) -> torch.Tensor:
        """One inference output, on the CPU (for the parity check against eager CPU)."""
        with torch.inference_mode():
            return self.model(self.x).float().cpu()
