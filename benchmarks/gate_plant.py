"""A registered network with a planted slowdown, as a user's change would make one: extra
element-wise passes over the input before the network (no parameters, no multiply-adds, so the
gate's exact count check still passes and only latency can catch it).

``make(name='mobilenetv3_small')`` is the network; how many passes each network gets comes from
the environment variable ``CNNPROF_GATE_PLANT`` (``name=passes,name=passes``), read when the
model is built, so the same reference, with the same baseline, times the planted code in every
fresh measurement process the gate starts. ``benchmarks/gate_trials.py --points`` chooses the
passes for +5%, +10% and +20% (``passes_for``) and sets the variable around each check.
"""

from __future__ import annotations

import os
import time

import torch
from torch import nn

ENV = "CNNPROF_GATE_PLANT"


def planted_passes(name: str) -> int:
    for item in os.environ.get(ENV, "").split(","):
        key, _, value = item.partition("=")
        if key.strip() == name and value.strip():
            return int(value)
    return 0


class Planted(nn.Module):
    def __init__(self, net: nn.Module, passes: int, input_shape: tuple[int, ...]):
        super().__init__()
        self.net = net
        self.passes = passes
        self.input_shape = tuple(input_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for _ in range(self.passes):  # a multiply and an add over every input value, each pass
            y = y * 1.0 + 0.0
        return self.net(y)


def make(name: str = "mobilenetv3_small") -> nn.Module:
    from cnnprof.targets import registered

    target = registered(name)
    return Planted(target.builder().eval(), planted_passes(name), target.input)


def passes_for(name: str, slowdowns: dict[str, float], *, rounds: int = 9) -> dict[str, tuple[int, float, float]]:
    """Passes that make ``name`` slower by each fraction in ``slowdowns``, from interleaved timing
    in this process (one thread): {label: (passes, ms per pass, ms per call of the network)}."""
    torch.set_num_threads(1)
    net = make(name)
    x = torch.randn(1, *net.input_shape)

    def timed(fn, n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t0) * 1000 / n

    def one_pass() -> torch.Tensor:
        return x * 1.0 + 0.0

    with torch.inference_mode():
        for _ in range(5):
            net(x)
        model_ms, pass_ms = [], []
        for _ in range(rounds):
            model_ms.append(timed(lambda: net(x), 10))
            pass_ms.append(timed(one_pass, 200))
    model, per_pass = sorted(model_ms)[rounds // 2], sorted(pass_ms)[rounds // 2]
    return {label: (max(1, round(frac * model / per_pass)), per_pass, model) for label, frac in slowdowns.items()}
