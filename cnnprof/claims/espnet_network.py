"""ESPNet V1 claims about the network around the ESP module: the residual's effect on the gradient,
and the network's efficiency as the seed states it.

The residual (the seed: the module's input and output are summed "to improve the gradient flow
inside the network") is measured at initialisation, where it can be measured without training: a
stack of ESP modules as ESPNet-C's level 3 stacks them, with and without the residual, the same
weights in both (PyTorch's default initialisation under one seed), in training mode (batch
statistics), one random batch and a fixed random projection of the output as the loss; the
gradient norm that reaches the first module's reduce conv, with / without, seed by seed.
"""

from __future__ import annotations

from cnnprof.claims import ABOVE, Claim, Measurement
from cnnprof.claims.common import count_registered, fmt_m, geometric_mean_ci, seed
from cnnprof.models.catalog import ESPNET

# ESPNet-C's level 3 (alpha3 = 8 residual ESP modules, K = 5) at a narrower width and a small map.
GRAD_MODULES = 8
GRAD_CHS = 80
GRAD_MAP = 32
GRAD_BATCH = 4
GRAD_SEEDS = 8


def esp_stack_grads(residual: bool, seed_: int, *, modules: int = GRAD_MODULES, chs: int = GRAD_CHS,
                    size: int = GRAD_MAP, batch: int = GRAD_BATCH) -> tuple[float, float]:
    """Gradient norms of the first and of the last module's reduce conv weights after one backward
    through ``modules`` ESP modules (K = 5) in training mode: weights, batch and loss projection
    drawn from ``seed_``, so that the runs with and without the residual differ only in it."""
    import torch
    from torch import nn

    from cnnprof.models.blocks.esp import ESP

    torch.manual_seed(seed_)
    stack = nn.Sequential(*(ESP(chs, chs, branches=5, residual=residual) for _ in range(modules))).train()
    gen = torch.Generator().manual_seed(10_000 + seed_)
    x = torch.randn(batch, chs, size, size, generator=gen)
    projection = torch.randn(batch, chs, size, size, generator=gen)
    (stack(x) * projection).sum().backward()
    first, last = stack[0].conv_reduce.weight.grad, stack[-1].conv_reduce.weight.grad
    return float(first.norm()), float(last.norm())


def residual_gradients(seeds: int | None = None, **kwargs) -> dict[str, list[tuple[float, float]]]:
    """(first, last) gradient norms per seed, with and without the residual."""
    seeds = GRAD_SEEDS if seeds is None else seeds
    return {key: [esp_stack_grads(res, s, **kwargs) for s in range(seeds)]
            for key, res in (("with", True), ("without", False))}


def measure_residual_gradient() -> Measurement:
    g = residual_gradients()
    ratios = [a[0] / b[0] for a, b in zip(g["with"], g["without"])]
    gm, lo, hi = geometric_mean_ci(ratios)
    n = len(ratios)
    spread = {k: sum(f / last for f, last in v) / n for k, v in g.items()}
    return Measurement(
        measured=gm, ci=(lo, hi), expected=1.0,
        detail=(f"PROXY AT INITIALISATION, not training dynamics: {GRAD_MODULES} ESP modules (K=5, {GRAD_CHS} "
                f"channels, {GRAD_MAP}x{GRAD_MAP}, batch {GRAD_BATCH}, training mode), default init, a random batch "
                f"and a random projection of the output as the loss, {n} seeds; gradient norm at the first module's "
                f"reduce conv, with / without the residual, geometric mean {gm:.3f} (95% t-interval {lo:.3f}-"
                f"{hi:.3f}). First / last module's gradient norm: {spread['with']:.2f} with the residual, "
                f"{spread['without']:.2f} without (no vanishing in either: the BN after each sum rescales the "
                "gradient, and with the residual it divides by the larger spread of input + branches)"),
    )


def measure_network_efficiency() -> Measurement:
    from cnnprof.models import registry
    from cnnprof.targets import registered

    c, enc = count_registered("espnet"), count_registered("espnet_c")
    h, w = registered("espnet").input[1:]
    return Measurement(
        measured=float(c.params), cited=_NO_PEERS,
        detail=(f"ESPNet (alpha2=2, alpha3=8, 20 classes) counted at {h}x{w}: {c.params / 1e6:.3f}M params, "
                f"{fmt_m(c.macs)} MACs (ESPNet-C encoder {enc.params / 1e6:.3f}M params, {fmt_m(enc.macs)} MACs); "
                f"the paper's {registry.get('espnet').paper_figure.params / 1e6:.3f}M params"),
    )


_NO_PEERS = ("the seed names no network to compare with; the paper's comparison (22x faster and 180x smaller than "
             "PSPNet, against ENet, ERFNet and others on a TitanX GPU and a Jetson TX2, with power) needs networks "
             "and devices cnnprof does not build or have")
CLAIMS = [
    Claim(
        id="esp-residual-gradient", family="espnet", source=seed("HFF 特性", ESPNET + ", Sec. 3.1"),
        quote="为了改善网络内部的梯度流动",
        statement=(f"PROXY AT INITIALISATION: the residual sum of ESP's input and output improves the gradient flow: "
                   f"gradient norm at the first of {GRAD_MODULES} stacked ESP modules, with / without the residual, "
                   f"over {GRAD_SEEDS} seeds (holds above 1)"),
        expected=1.0, unit="ratio", tolerance=ABOVE, measure=measure_residual_gradient,
    ),
    Claim(
        id="espnet-network-efficiency", family="espnet", source=seed("ESPNetV1", ESPNET + ", Sec. 4"),
        quote="在计算、内存占用、功耗方面都非常高效",
        statement="ESPNet is very efficient in computation, memory and power (against other segmentation networks)",
        expected=None, unit="params", measure=measure_network_efficiency,
    ),
]
