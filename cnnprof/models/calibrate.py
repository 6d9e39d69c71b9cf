"""Batch-norm calibration of randomly initialised networks.

cnnprof builds every variant with random weights (nothing is downloaded). With batch norm at
its initial statistics (mean 0, variance 1) each layer then passes on about 1/√3 of its input's
scale, so activations shrink geometrically with depth: by the end of EfficientNet-B0 they are
~1e-11, and deeper networks (B7, V2-L) reach the denormal range, where CPU arithmetic is many
times slower, so timing them would measure denormals rather than the network. One forward pass
of a random batch in training mode, with only the batch norms updating their statistics, gives
them the statistics of the inputs they actually see: activations keep a realistic scale, as in a
trained network. It must be done at the resolution that will be timed: statistics taken on a
small input (where padding dominates the last stages' maps) blow activations up at a larger one.
Counts do not depend on it.
"""

from __future__ import annotations

import torch
from torch import nn


def calibrate_batchnorm(model: nn.Module, input_shape: tuple[int, int, int], *, seed: int = 0) -> nn.Module:
    """Set every batch norm's running statistics from one random input of ``input_shape``
    (C, H, W), then return the model in eval mode. Other layers (dropout, drop-path) stay in
    eval mode during the pass."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return model.eval()
    model.eval()
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one batch sets the statistics outright
        m.train()
    x = torch.randn(1, *input_shape, generator=torch.Generator().manual_seed(seed))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.eval()
    return model
