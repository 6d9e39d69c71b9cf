"""Predicting latency from a table: LAT(a) = sum of LAT(b_l) (FBNet, paper Sec. 3.2, Eq. 3).

* For a registered model: split it into stem, blocks and head (``keys.split``), look each part
  up, add them up; parts that are not in the table are listed, never guessed.
* For a search space: an architecture is a vector of candidate indices, one per layer, so the
  table becomes a (layers x candidates) matrix and predicting N architectures is one gather and
  one sum in numpy (``SpaceMatrix.predict``): about a million a second on one core.
* With a measurement of the whole network beside it: the error, and over a sample the share
  within +-10 % (nn-Meter's accuracy figure), the spread of |error| and the rank correlation
  (Spearman), since FBNet uses the table to *rank* candidates.
* With a calibration stored in the table (``lut calibrate``): the calibrated prediction beside
  the raw sum (``predict_model``; ``SpaceMatrix.from_table(..., calibration=...)``).
* FBNet's latency-aware loss, ``fbnet_loss``.

Arithmetic on a table only: nothing here times anything (``evaluate`` measures).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from cnnprof.errors import UsageError
from cnnprof.lut.keys import Part, glue_part, shape_text
from cnnprof.lut.space import FBNET_SPACE_NAME, sample_choices
from cnnprof.lut.table import Calibration, Mode, Table

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

# FBNet's loss, paper Eq. 2: L(a, w_a) = CE(a, w_a) * alpha * log(LAT(a)) ** beta.
FBNET_ALPHA = 0.2
FBNET_BETA = 0.6
CHUNK = 1 << 16  # rows per gather: keeps the (rows x layers) temporary near 10 MB


def fbnet_loss(ce: Any, latency_ms: Any, *, alpha: float = FBNET_ALPHA, beta: float = FBNET_BETA) -> Any:
    """FBNet's latency-aware loss ``CE * alpha * log(LAT) ** beta`` (Wu et al., CVPR 2019, Eq. 2).

    ``LAT`` in milliseconds (the unit of the paper's lookup table), natural log, read as
    ``(log LAT) ** beta``. Defaults alpha = 0.2, beta = 0.6: these are the values the widely used
    reproduction (AnnaAraslanova/FBNet, ``config_for_supernet.py``) takes from the paper; we could
    not check them against the paper's text here. That reproduction computes ``log(LAT ** beta)``
    (= beta * log LAT) instead; for one CE both rank architectures the same way (both increase
    with LAT). Scalars give a float, arrays an array. ``LAT`` must exceed 1 ms (log > 0).
    """
    import numpy as np

    lat = np.asarray(latency_ms, dtype=float)
    if np.any(~np.isfinite(lat)) or np.any(lat <= 1.0):
        raise ValueError("fbnet_loss: latency must be finite and above 1 ms (log(LAT) must be positive)")
    out = np.asarray(ce, dtype=float) * alpha * np.log(lat) ** beta
    return float(out) if out.ndim == 0 else out


# -- statistics -------------------------------------------------------------------------------
def rankdata(values: Sequence[float]) -> "np.ndarray":
    """Ranks 1..n, ties given their average rank (numpy only; scipy is not a dependency)."""
    import numpy as np

    x = np.asarray(values, dtype=float)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    return (np.bincount(inverse, weights=ranks) / counts)[inverse]


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation: Pearson's r of the ranks (nan for fewer than 2 or constant)."""
    if len(a) != len(b):
        raise ValueError("spearman: the two sequences differ in length")
    if len(a) < 2:
        return float("nan")
    ra, rb = rankdata(a), rankdata(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


def error_stats(predicted: Sequence[float], measured: Sequence[float], *, band: float = 0.10) -> dict[str, float]:
    """Relative errors (predicted - measured) / measured: share within +-5% and +-band, |error|
    mean, median and p90, the median ratio predicted / measured (the bias) and Spearman's rho."""
    import numpy as np

    p = np.asarray(predicted, dtype=float)
    m = np.asarray(measured, dtype=float)
    err = (p - m) / m
    a = np.abs(err)
    return {
        "n": int(len(p)),
        "within_5": float(np.mean(a <= 0.05 + 1e-12)),
        "within_10": float(np.mean(a <= band + 1e-12)),
        "mean_abs_error": float(a.mean()),
        "median_abs_error": float(np.median(a)),
        "p90_abs_error": float(np.percentile(a, 90)),
        "median_ratio": float(np.median(p / m)),
        "spearman": spearman(p, m),
    }


# -- a model, part by part -----------------------------------------------------------------------
def parts_with_glue(table: Table, parts: Sequence["Part"]) -> list["Part"]:
    """``parts`` and, for an in-context table, the network's glue (the time outside its parts,
    an entry of its own there): in-context parts add up to the network only with it."""
    if table.mode != Mode.IN_CONTEXT or not parts:
        return list(parts)
    return [*parts, glue_part(parts)]


def predict_parts(table: Table, parts: Sequence["Part"]) -> tuple[float | None, list["Part"]]:
    """Sum of the parts' latencies (with the glue of an in-context table), or None with the
    parts that are missing from the table."""
    parts = parts_with_glue(table, parts)
    values, _ = table.lookup([p.key for p in parts])
    missing = [p for p, v in zip(parts, values) if v is None]
    return (None if missing else float(sum(values))), missing


def missing_text(missing: Sequence["Part"]) -> str:
    """'blocks.3 (MBConv 40x28x28), head (MobileNetV3.head 160x7x7)'."""
    return ", ".join(f"{p.label} ({p.key.split('|')[0]} {shape_text(p.input)})" for p in missing)


def predict_model(table: Table, parts: Sequence["Part"], calibration: Calibration | None,
                  space: str | None = None) -> tuple[float | None, float | None, bool]:
    """A split model's raw sum and calibrated prediction (None when a part is missing, or the
    calibration does not know one of its block types), and whether every part was found."""
    raw, missing = predict_parts(table, parts)
    if raw is None:
        return None, None, False
    if calibration is None:
        return raw, None, True
    index = table.spaces.get(space or FBNET_SPACE_NAME)
    type_of = index.type_of() if index is not None else {}
    fixed = 0.0
    by_type: dict[str | None, float] = {}
    for part in parts_with_glue(table, parts):
        value = table.entries[part.key].latency_ms
        if part.role == "block":
            kind = type_of.get(part.key)
            if kind is None and not calibration.single:
                return raw, None, True  # a block type the calibration never saw
            by_type[kind] = by_type.get(kind, 0.0) + value
        else:
            fixed += value
    return raw, calibration.apply(fixed, by_type), True


# -- a search space, vectorised ------------------------------------------------------------------
@dataclass(frozen=True)
class SpaceMatrix:
    """A space's table as a (layers x candidates) latency matrix plus the fixed stem and head."""

    candidates: tuple[str, ...]
    latency: "np.ndarray"  # (L, K) ms
    fixed_ms: float  # stem + head (+ glue and a calibration's overhead)
    keys: tuple[str, ...]  # every key used (for the environment check)

    @classmethod
    def from_table(cls, table: Table, space: str, *, head: str | None = None,
                   calibration: Calibration | None = None) -> "SpaceMatrix":
        """The matrix of ``space`` in ``table``; a missing cell is an error that lists them. With
        ``calibration`` (a ``table.Calibration``) each column is multiplied by its type's
        scale and the overhead added to the fixed part, once: predicting stays a gather and a sum."""
        import numpy as np

        if space not in table.spaces:
            raise UsageError(f"the table has no {space!r} space; build it with `cnnprof lut build --space fbnet`")
        index = table.spaces[space]
        if not index.layers or not index.candidates:
            raise UsageError(f"the table's {space} space has no searchable layers: it cannot predict a network "
                             "of that space; rebuild it with `cnnprof lut build --space fbnet`")
        head = index.default_head if head is None else head
        if head not in index.heads:
            raise UsageError(f"the {space} space has no {head} head in the table (heads: {', '.join(index.heads)})")
        cells = [k for row in index.layers for k in row]
        fixed = [index.stem, index.heads[head]] + ([index.glue] if index.glue else [])
        _, missing = table.lookup(cells + fixed)
        if missing:
            labels = []
            for i, row in enumerate(index.layers):
                labels += [f"L{i:02d} {c}" for c, k in zip(index.candidates, row) if k in missing]
            labels += [name for name, k in (("stem", index.stem), (f"head {head}", index.heads[head]),
                                            ("glue", index.glue)) if k and k in missing]
            more = f" (+{len(labels) - 8} more)" if len(labels) > 8 else ""
            raise UsageError(
                f"{len(labels)} of the {space} space's {len(cells) + len(fixed)} blocks are missing from the table: "
                f"{', '.join(labels[:8])}{more}; run `cnnprof lut build --space fbnet`"
            )
        lat = np.array([[table.entries[k].latency_ms for k in row] for row in index.layers], dtype=float)
        fixed_ms = sum(table.entries[k].latency_ms for k in fixed)
        if calibration is not None:
            if calibration.single:
                lat, fixed_ms = lat * calibration.default_scale, fixed_ms * calibration.default_scale
            else:
                lat = lat * np.array([calibration.scale_of(c) for c in index.candidates])[None, :]
                fixed_ms += calibration.overhead_ms
        return cls(index.candidates, lat, float(fixed_ms), tuple(dict.fromkeys(cells + fixed)))

    @property
    def layers(self) -> int:
        return int(self.latency.shape[0])

    def predict(self, choices: "np.ndarray") -> "np.ndarray":
        """Predicted latency (ms) of each row of ``choices`` (N x layers candidate indices)."""
        import numpy as np

        choices = np.asarray(choices)
        if choices.ndim != 2 or choices.shape[1] != self.layers:
            raise ValueError(f"choices must be (N, {self.layers}), got {choices.shape}")
        if choices.size and (choices.min() < 0 or choices.max() >= len(self.candidates)):
            raise ValueError(f"choices must be candidate indices in [0, {len(self.candidates)})")
        flat = self.latency.ravel()
        offsets = np.arange(self.layers) * len(self.candidates)
        out = np.empty(len(choices))
        for s in range(0, len(choices), CHUNK):
            idx = choices[s:s + CHUNK].astype(np.intp) + offsets
            out[s:s + CHUNK] = flat[idx].sum(axis=1)
        return out + self.fixed_ms

    def names(self, row: Sequence[int]) -> tuple[str, ...]:
        return tuple(self.candidates[int(i)] for i in row)


def prediction_rate(matrix: SpaceMatrix, n: int, *, seed: int = 0) -> dict[str, float]:
    """Sample and predict ``n`` architectures; seconds for each step and architectures per second."""
    import numpy as np

    t0 = time.perf_counter()
    choices = sample_choices(n, matrix.layers, len(matrix.candidates), seed=seed)
    t1 = time.perf_counter()
    predicted = matrix.predict(choices)
    t2 = time.perf_counter()
    return {"n": n, "sample_s": t1 - t0, "predict_s": t2 - t1, "rate_per_s": n / max(t2 - t1, 1e-9),
            "min_ms": float(predicted.min()), "median_ms": float(np.median(predicted)),
            "max_ms": float(predicted.max())}
