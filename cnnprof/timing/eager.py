"""PyTorch eager backend, CPU and CUDA.

On CPU one call is timed with ``perf_counter``; on CUDA with a pair of CUDA events around the
call and a synchronisation on the end event, so an asynchronous launch is never what is timed.
``train=True`` times a whole training step: forward, cross-entropy loss, backward, SGD step.

``precision`` fp16 / bf16 runs the forward pass under ``torch.autocast`` (weights stay fp32;
convolutions and matrix products run in the lower precision). ``cuda_graphs`` captures the
forward pass once as a CUDA graph and times its replay (the launch overhead of hundreds of small
kernels is what it removes).
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import torch
from torch import nn

from cnnprof.timing.names import Precision

AUTOCAST_DTYPES = {Precision.fp16: torch.float16, Precision.bf16: torch.bfloat16}


def loss_target(output: torch.Tensor) -> torch.Tensor:
    """Random class labels shaped for ``output``: (N,) for (N, C) logits, (N, H, W) for maps."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    classes = output.shape[1]
    shape = (output.shape[0],) + tuple(output.shape[2:])
    return torch.randint(0, classes, shape, generator=gen).to(output.device)


class EagerRunner:
    """Runs one configured call per ``step()`` and returns its duration in milliseconds."""

    name = "torch"

    def __init__(self, model: nn.Module, example: torch.Tensor, *, device: str, channels_last: bool, train: bool,
                 precision: str = "fp32", cuda_graphs: bool = False):
        self.device = torch.device(device)
        self.train = train
        self.dtype = AUTOCAST_DTYPES.get(Precision(precision))
        self.graph = None
        self.fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.to(self.device, memory_format=self.fmt)
        self.x = example.to(self.device).contiguous(memory_format=self.fmt)
        self.model.train(train)
        if train:
            self.optimizer = torch.optim.SGD(self.model.parameters(), lr=1e-3, momentum=0.9)
            with torch.no_grad():
                self.target = loss_target(self.model(self.x))
        self.setup_s: float | None = None
        self.export_s: float | None = None
        if cuda_graphs:
            t0 = time.perf_counter()
            self._capture()
            self.setup_s = time.perf_counter() - t0
        self.first_run_ms = self.step()

    def autocast(self, *, cache: bool = True):
        """The precision context of a forward pass (nothing for fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype, cache_enabled=cache)

    def _capture(self) -> None:
        """Record the forward pass as a CUDA graph (after a few calls on a side stream, as
        PyTorch's CUDA graph notes ask); ``call`` then replays it on the same input buffer."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.inference_mode(), self.autocast(cache=False):
            for _ in range(3):
                self.model(self.x)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), self.autocast(cache=False), torch.cuda.graph(graph):
            self.static_out = self.model(self.x)
        self.graph = graph

    def call(self):
        if self.graph is not None:
            self.graph.replay()
            return self.static_out
        if not self.train:
            with torch.inference_mode(), self.autocast():
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

    def infer(self, x) -> np.ndarray:
        """The output for input ``x`` (numpy or tensor, the timed input's shape), float32 on the CPU."""
        t = torch.as_tensor(np.asarray(x, dtype=np.float32)) if not isinstance(x, torch.Tensor) else x
        t = t.to(self.device).contiguous(memory_format=self.fmt)
        with torch.inference_mode():
            if self.graph is not None:  # the graph reads its own input buffer: swap the input in and back
                saved = self.x.clone()
                self.x.copy_(t)
                self.graph.replay()
                out = self.static_out.float().cpu().numpy().copy()
                self.x.copy_(saved)
                return out
            with self.autocast():
                return self.model(t).float().cpu().numpy()

    def output(self) -> torch.Tensor:
        """One inference output, on the CPU (for the parity check against eager CPU)."""
        return torch.from_numpy(self.infer(self.x.cpu()))
