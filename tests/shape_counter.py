"""A third counter, for the tests: conv + linear multiply-adds from output shapes alone.

It runs the model on PyTorch's meta device (shapes, no data), so every variant can be counted
at its native input in well under a second, and it shares no code with cnnprof's fvcore-based
counter or its ONNX-graph counter. tests/test_zoo.py checks that it agrees exactly with
``cnnprof.counting.count`` on one variant of every family.
"""

from __future__ import annotations

import torch
from torch import nn


def conv_linear_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Conv, transposed conv and linear multiply-adds of one forward pass at batch 1."""
    device = next(model.parameters()).device
    total = 0

    def hook(module: nn.Module, inputs, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.ConvTranspose2d):
            kh, kw = module.kernel_size
            total += inputs[0].numel() * (module.out_channels // module.groups) * kh * kw
        elif isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += output.numel() * (module.in_channels // module.groups) * kh * kw
        else:
            total += output.numel() * module.in_features

    kinds = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kinds)]
    try:
        with torch.inference_mode():
            model.eval()(torch.empty(1, *input_shape, device=device))
    finally:
        for h in handles:
            h.remove()
    return total


def meta_counts(spec) -> tuple[int, int]:
    """(params, MACs) of a registered variant at its native input, built on the meta device."""
    with torch.device("meta"):
        model = spec.build()
    return sum(p.numel() for p in model.parameters()), conv_linear_macs(model, spec.input)
