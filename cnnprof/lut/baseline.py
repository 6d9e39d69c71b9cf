"""What a latency table is measured against: predicting a network's latency from its MACs.

Two baselines, both fitted on measured networks and evaluated on networks they were not fitted on
(two-fold cross-fitting: the networks are split in two halves by a seeded shuffle, each half is
predicted from constants fitted on the other, so every network gets a held-out prediction):

* ``macs``: latency = MACs x one constant (ms per MAC);
* ``macs_by_kind``: latency = sum over layers of MACs_layer x c_kind, one non-negative constant per
  op kind (dense conv, pointwise, depthwise, grouped, squeeze-excite, linear: ``cnnprof.opkinds``),
  fitted by non-negative least squares.

Both fits minimise the *relative* squared error, sum(((predicted - measured) / measured) ** 2),
the error the accuracy figures are read in. Spearman's rho of MACs alone against the measured
latency needs no fit (a positive constant does not change a ranking) and is reported as is.
MACs are those of convolutions and linear layers, counted from the built network with hooks (the
papers' "FLOPs", as ``cnnprof.counting`` counts them for these layers). ``macs_baselines`` fills
the two baseline columns of ``lut predict --measure``'s rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from torch import nn

FOLDS = 2
MIN_NETWORKS = 4  # fewer measured networks: no held-out baseline (each half needs two)
# what `lut predict --measure` says under its summary
EXPLAINED = ("baselines: `MACs x c` predicts each network as its MACs x one ms-per-MAC constant, `MACs per op kind` "
             "as its MACs per op kind x one non-negative constant each (least squares on relative error); both "
             "fitted on the other half of the measured networks (held out); the Spearman rho of `MACs x c` is that "
             "of the MACs themselves (no fit)")


def macs_by_kind(model: "nn.Module", input_shape: Sequence[int]) -> dict[str, int]:
    """Multiply-adds of ``model``'s convolutions and linear layers at batch 1, by op kind
    (``opkinds.op_kind``: a layer inside a squeeze-excite block is squeeze-excite)."""
    import torch
    from torch import nn

    from cnnprof.opkinds import op_kind

    modules = dict(model.named_modules())
    out: dict[str, int] = {}
    hooks = []

    def hook(path: str):
        def count(module, inputs, output):
            if isinstance(module, nn.Linear):
                macs = output.numel() * module.in_features
            else:
                kernel = 1
                for k in module.kernel_size:
                    kernel *= int(k)
                macs = output.numel() * (module.in_channels // module.groups) * kernel
            kind = op_kind(path, modules)
            out[kind] = out.get(kind, 0) + int(macs)
        return count

    for path, module in modules.items():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            hooks.append(module.register_forward_hook(hook(path)))
    try:
        model.eval()
        with torch.inference_mode():
            model(torch.randn(1, *input_shape, generator=torch.Generator().manual_seed(0)))
    finally:
        for h in hooks:
            h.remove()
    return out


def nnls(a: "np.ndarray", b: "np.ndarray", *, iterations: int = 200) -> "np.ndarray":
    """min ||a x - b|| subject to x >= 0: Lawson and Hanson's active-set method (numpy only)."""
    import numpy as np

    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    n = a.shape[1]
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    tol = 1e-12 * max(1.0, float(np.abs(a).max(initial=0.0)) * float(np.abs(b).max(initial=0.0)))
    for _ in range(iterations):
        w = a.T @ (b - a @ x)
        if passive.all() or w[~passive].max(initial=-np.inf) <= tol:
            break
        passive[np.argmax(np.where(passive, -np.inf, w))] = True
        while True:
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if (z[passive] > 0).all():
                x = z
                break
            blocking = passive & (z <= 0)
            alpha = np.min(x[blocking] / (x[blocking] - z[blocking]))
            x = x + alpha * (z - x)
            passive &= x > tol
            x[~passive] = 0.0
    return x


def fit(features: "np.ndarray", measured: "np.ndarray") -> "np.ndarray":
    """Non-negative constants c minimising sum(((features @ c - measured) / measured) ** 2)."""
    import numpy as np

    f = np.asarray(features, dtype=float)
    m = np.asarray(measured, dtype=float)
    scale = f.max(axis=0)
    scale[scale <= 0] = 1.0  # an unused column keeps a zero constant
    return nnls(f / m[:, None] / scale, np.ones(len(m))) / scale


def held_out(features: "np.ndarray", measured: "np.ndarray", *, seed: int = 0) -> "np.ndarray | None":
    """Each network's latency predicted from constants fitted on the other half of the networks
    (``FOLDS``-fold cross-fitting, halves drawn by a seeded shuffle); None below ``MIN_NETWORKS``.
    A column (op kind) that the fitting half never has takes that half's single constant."""
    import numpy as np

    f = np.asarray(features, dtype=float)
    m = np.asarray(measured, dtype=float)
    if len(m) < MIN_NETWORKS:
        return None
    fold = np.empty(len(m), dtype=int)
    fold[np.random.default_rng(seed).permutation(len(m))] = np.arange(len(m)) % FOLDS
    out = np.empty(len(m))
    for k in range(FOLDS):
        test = fold == k
        c = fit(f[~test], m[~test])
        unseen = f[~test].sum(axis=0) <= 0
        if unseen.any():  # a kind the fitting half lacks: the half's one ms-per-MAC constant
            c[unseen] = fit(f[~test].sum(axis=1, keepdims=True), m[~test])[0]
        out[test] = f[test] @ c
    return out


def kind_matrix(by_kind: Sequence[dict[str, int]]) -> tuple[list[str], "np.ndarray"]:
    """The op kinds present and the (networks x kinds) matrix of MACs."""
    import numpy as np

    kinds = sorted({k for d in by_kind for k in d})
    return kinds, np.array([[d.get(k, 0) for k in kinds] for d in by_kind], dtype=float).reshape(len(by_kind),
                                                                                                   len(kinds))


def macs_baselines(rows: Sequence[Any], by_kind: Sequence[dict[str, int]], *, seed: int = 0) -> None:
    """Fill ``macs_ms`` and ``macs_kind_ms`` of the measured ``rows`` (MACs by op kind beside each):
    held-out predictions of the two MACs baselines (``held_out``); left None with fewer than
    ``MIN_NETWORKS`` measured networks."""
    import numpy as np

    done = [(r, k) for r, k in zip(rows, by_kind) if r.measured_ms is not None and sum(k.values()) > 0]
    if not done:
        return
    measured = np.array([r.measured_ms for r, _ in done])
    _, matrix = kind_matrix([k for _, k in done])
    single = held_out(matrix.sum(axis=1, keepdims=True), measured, seed=seed)
    per_kind = held_out(matrix, measured, seed=seed)
    for i, (row, _) in enumerate(done):
        row.macs_ms = float(single[i]) if single is not None else None
        row.macs_kind_ms = float(per_kind[i]) if per_kind is not None else None
