"""The FBNet search space as the latency table sees it: its networks, its reference models, and
architectures as vectors of candidate indices, sampled at random or disjoint from a given set.

An architecture of a space with L searchable layers and K candidates is a row of L indices into
the candidates (FBNet: 22 layers, 9 candidates, 0 = k3_e1 ... 8 = skip); ``arch_code`` writes it
as one digit per layer. Every network of the space is built the way every command builds a
registered model: seeded weights and calibrated batch norms (``targets.calibrate_model``), so that
a sampled network and FBNet-A/B/C are measured alike.

This module is the bottom of ``cnnprof.lut``: it imports nothing else from the package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from cnnprof.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from torch import nn

    from cnnprof.models.fbnet import SearchSpace

FBNET_SPACE_NAME = "fbnet@224"  # the FBNet space at 224x224, as a table names it
# FBNet-A/B/C: the published networks of the space, never among the networks a table is read in
# or a correction is trained on, so that they check both
REFERENCE_MODELS = ("fbnet_a", "fbnet_b", "fbnet_c")


def space_object(space_name: str) -> "SearchSpace":
    """The ``SearchSpace`` a table's space name stands for (only the FBNet space at 224 today)."""
    if space_name != FBNET_SPACE_NAME:
        raise UsageError(f"no search space named {space_name!r} (known: {FBNET_SPACE_NAME})")
    from cnnprof.models.fbnet import FBNET_SPACE

    return FBNET_SPACE


def fbnet_head_widths() -> list[int]:
    """The head widths an FBNet table holds besides the space's own: the search space's 1984 and
    FBNet-A's 1504."""
    from cnnprof.models.fbnet import FBNET_HEAD_CHS

    return sorted(set(FBNET_HEAD_CHS.values()))


def head_network(space: "SearchSpace", width: int) -> "nn.Module":
    """The head of ``space`` at ``width`` channels as a network whose stem and blocks are identities
    (what a table times, and keys, as the head)."""
    from torch import nn

    from cnnprof.models.blocks.fbnet import FBNetNetwork

    return FBNetNetwork(nn.Identity(), nn.Identity(), space.build_head(head_chs=width))


def space_network(space: "SearchSpace", names: Sequence[str], head_chs: int | None = None) -> "nn.Module":
    """A network of ``space`` as every command builds it: seeded weights, batch norms calibrated."""
    import torch

    from cnnprof.targets import calibrate_model

    torch.manual_seed(0)
    return calibrate_model(space.build_network(tuple(names), head_chs=head_chs), space.input)


# -- architectures as index vectors ----------------------------------------------------------------
def sample_choices(n: int, layers: int, candidates: int, *, seed: int = 0) -> "np.ndarray":
    """``n`` uniformly random architectures as an (n, layers) array of candidate indices."""
    import numpy as np

    from cnnprof.numbers import MAX_SAMPLE, MAX_SEED, whole

    whole(n, "--sample", lo=1, hi=MAX_SAMPLE)
    whole(seed, "--seed", lo=0, hi=MAX_SEED)
    return np.random.default_rng(seed).integers(0, candidates, size=(n, layers), dtype=np.uint8)


def arch_code(row: Sequence[int]) -> str:
    """An architecture as one digit per layer: the candidate's index (FBNet: 0 = k3_e1 ... 8 = skip)."""
    return "".join(str(int(i)) for i in row)


def disjoint_sample(n: int, layers: int, candidates: int, *, seed: int, exclude: set[str]) -> "np.ndarray":
    """``n`` random architectures none of which is in ``exclude`` (codes) or repeated."""
    import numpy as np

    rng_seed = seed
    out: list[np.ndarray] = []
    seen = set(exclude)
    while len(out) < n:
        for row in sample_choices(max(n - len(out), 1), layers, candidates, seed=rng_seed):
            code = arch_code(row)
            if code not in seen:
                seen.add(code)
                out.append(row)
        rng_seed += 1_000_003
    return np.array(out[:n], dtype=np.uint8).reshape(n, layers)


__all__ = ["FBNET_SPACE_NAME", "REFERENCE_MODELS", "arch_code", "disjoint_sample", "fbnet_head_widths",
           "head_network", "sample_choices", "space_network", "space_object"]
