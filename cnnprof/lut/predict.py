"""Predicting latency from a table: LAT(a) = sum of LAT(b_l) (FBNet, paper Sec. 3.2, Eq. 3).

* For a registered model: split it into stem, blocks and head (``keys.split``), look each part
  up, add them up; parts that are not in the table are listed, never guessed.
* For a search space: an architecture is a vector of candidate indices, one per layer, so the
  table becomes a (layers x candidates) matrix and predicting N architectures is one gather and
  one sum in numpy (``SpaceMatrix.predict``): about a million a second on one core.
* With a measurement of the whole network beside it: the error, and over a sample the share
  within +-10 % (nn-Meter's accuracy figure), the spread of |error| and the rank correlation
  (Spearman), since FBNet uses the table to *rank* candidates.
* FBNet's latency-aware loss, ``fbnet_loss``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from cnnprof.errors import UsageError
from cnnprof.lut.table import Table

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from cnnprof.lut.keys import Part
    from cnnprof.timing.protocol import Protocol

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
    from cnnprof.lut.keys import glue_part

    if table.mode != "in-context" or not parts:
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
    from cnnprof.lut.keys import shape_text

    return ", ".join(f"{p.label} ({p.key.split('|')[0]} {shape_text(p.input)})" for p in missing)


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
                   calibration: Any = None) -> "SpaceMatrix":
        """The matrix of ``space`` in ``table``; a missing cell is an error that lists them. With
        ``calibration`` (a ``calibrate.Calibration``) each column is multiplied by its type's
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


# -- the claim: is a network's latency the sum of its blocks'? --------------------------------------
@dataclass(frozen=True)
class AdditivityRow:
    model: str
    predicted_ms: float  # sum of the blocks timed in isolation (stem + blocks + head)
    measured_ms: float  # the whole network, same backend and threads
    ratio: float  # predicted / measured
    source: str  # the table used, or "measured now (N interleaved rounds)"
    # measured now: each round's sum of block medians / that round's whole-network median
    round_ratios: tuple[float, ...] = ()


def additivity(
    table: "Table | str | None" = None,
    models: Sequence[str] = ("fbnet_a", "fbnet_b", "fbnet_c"),
    *,
    backend: str = "torch",
    threads: int = 1,
    clock: str = "wall",
    rounds: int = 3,
    fresh: bool = False,
    entries: str = "isolated",
    contexts: int = 2,
    on_progress: Callable[[str], None] | None = None,
    block_protocol: "Protocol | None" = None,
    whole_protocol: "Protocol | None" = None,
) -> list[AdditivityRow]:
    """Sum of per-block latencies against whole-network latency for ``models``.

    ``entries="isolated"`` (the FBNet paper's table): uses ``table`` (a ``Table`` or a path), else
    the default table for ``backend`` / ``threads`` / ``clock`` if it exists, was measured in this
    environment and holds every block of a model; the whole network is then timed now with
    ``WHOLE_PROTOCOL``. Otherwise, or with ``fresh``, it times the model's blocks alone and the
    whole network in ``rounds`` interleaved rounds (every block with a quick protocol, then the
    whole network), so that both see the same machine state; nothing is saved. About a minute
    for FBNet-A/B/C on 2 cores. ``block_protocol`` / ``whole_protocol`` replace the protocols of
    one round (``LUT_QUICK`` / ``LUT_ROUND``); ``round_ratios`` keeps each round's own ratio, so a
    caller can put an interval on the ratio.

    ``entries="in-context"``: the blocks' latencies are read in place inside *other* networks of
    the FBNet space (``cnnprof.lut.context``; FBNet-A/B/C are never among them), from ``table``
    or the default table when it is an in-context one of this environment, else from one built
    now in a temporary file (``contexts`` x 9 networks, one round: about a minute at one thread);
    the sum includes the glue between parts, and the whole networks are timed with the table's
    speed probe, so both are at its reference speed."""
    from pathlib import Path

    from cnnprof.lut.measure import PROBE_NAME
    from cnnprof.lut.table import default_path, env_id, environment, load

    if rounds < 1:
        raise UsageError(f"rounds must be at least 1, got {rounds}")
    if entries not in ("isolated", "in-context"):
        raise UsageError(f"unknown entries {entries!r}; choose isolated or in-context")
    here = environment(backend, threads, clock)
    source = ""
    if fresh:
        table = None
    elif isinstance(table, (str, Path)):
        source, table = str(table), load(table)
    elif table is None and default_path(backend, threads, clock).is_file():
        candidate = load(default_path(backend, threads, clock))
        if (candidate.backend, candidate.threads, candidate.clock) == (backend, threads, clock):
            table, source = candidate, str(default_path(backend, threads, clock))
    progress = on_progress or (lambda message: None)
    if entries == "in-context":
        usable = table is not None and table.mode == "in-context" and table.probe is not None and \
            table.probe.get("env") == env_id(here) and table.probe.get("name") == PROBE_NAME
        return _additivity_in_context(table if usable else None, source if usable else "", models, backend=backend,
                                      threads=threads, clock=clock, rounds=rounds, contexts=contexts,
                                      progress=progress)
    if (block_protocol or whole_protocol) and entries != "isolated":
        raise UsageError("block_protocol / whole_protocol apply to isolated entries only")
    return _additivity_isolated(table, source, models, backend=backend, threads=threads, clock=clock, rounds=rounds,
                                here=here, progress=progress, block_protocol=block_protocol,
                                whole_protocol=whole_protocol)


def _additivity_isolated(table, source, models, *, backend, threads, clock, rounds, here, progress,
                         block_protocol=None, whole_protocol=None):
    import statistics
    import tempfile

    from cnnprof import targets
    from cnnprof.lut.keys import split
    from cnnprof.lut.measure import QUICK_PROTOCOL, WHOLE_PROTOCOL, make_timer
    from cnnprof.lut.table import env_id
    from cnnprof.timing.protocol import LUT_ROUND

    rows = []
    with tempfile.TemporaryDirectory(prefix="cnnprof-lut-") as onnx_dir:
        def timer(protocol: Protocol):
            return make_timer(backend=backend, threads=threads, protocol=protocol, onnx_dir=onnx_dir, clock=clock)

        whole = timer(WHOLE_PROTOCOL)
        quick, whole_round = timer(block_protocol or QUICK_PROTOCOL), timer(whole_protocol or LUT_ROUND)
        for target in targets.resolve_targets(list(models)):
            model = target.build()
            parts = split(model, target.input, name=target.name)
            usable = table is not None and table.mode == "isolated" and all(
                p.key in table.entries and table.entries[p.key].env == env_id(here) for p in parts)
            if usable:
                predicted = sum(table.entries[p.key].latency_ms for p in parts)
                progress(f"{target.name}: timing the whole network")
                measured = whole(model, target.input, target.name).median_ms
                where = source or "given table"
                per_round: tuple[float, ...] = ()
            else:
                distinct = {p.key: p for p in parts}
                per_part: dict[str, list[float]] = {k: [] for k in distinct}
                per_whole: list[float] = []
                for r in range(rounds):
                    progress(f"{target.name}: round {r + 1}/{rounds}, {len(distinct)} blocks and the whole network")
                    for key, p in distinct.items():
                        per_part[key].append(quick(p.module, p.input, p.label).median_ms)
                    per_whole.append(whole_round(model, target.input, target.name).median_ms)
                predicted = sum(statistics.median(per_part[p.key]) for p in parts)
                measured = statistics.median(per_whole)
                where = f"measured now ({rounds} interleaved rounds)"
                per_round = tuple(sum(per_part[p.key][r] for p in parts) / per_whole[r] for r in range(rounds))
            rows.append(AdditivityRow(target.name, predicted, measured, predicted / measured, where, per_round))
    return rows


def _additivity_in_context(table, source, models, *, backend, threads, clock, rounds, contexts, progress):
    import tempfile
    from pathlib import Path

    from cnnprof import targets
    from cnnprof.lut.builder import FBNET_SPACE_NAME, fbnet_space_jobs
    from cnnprof.lut.context import build_in_context, space_networks
    from cnnprof.lut.keys import split
    from cnnprof.lut.measure import NETWORK_PROTOCOL, SpeedProbe, make_timer, per_round, time_networks
    from cnnprof.models.fbnet import FBNET_SPACE

    with tempfile.TemporaryDirectory(prefix="cnnprof-lut-") as tmp:
        if table is None:
            _, index = fbnet_space_jobs()
            networks = space_networks(FBNET_SPACE, index, contexts=contexts)
            progress(f"building an in-context table: {len(networks)} networks of the FBNet space")
            table, _ = build_in_context(networks, path=Path(tmp) / "lut.json", backend=backend, threads=threads,
                                        clock=clock, rounds=1, spaces={FBNET_SPACE_NAME: index},
                                        on_progress=lambda done, total, label: progress(f"{done}/{total} {label}"))
            source = f"in-context table built now ({len(networks)} networks of the FBNet space)"
        built = []
        for target in targets.resolve_targets(list(models)):
            parts = split(target.build(), target.input, name=target.name)
            predicted, missing = predict_parts(table, parts)
            if predicted is None:
                raise UsageError(f"{target.name}: {len(missing)} part(s) missing from the in-context table: "
                                 f"{missing_text(missing)}")
            built.append((target, predicted))
        timer = make_timer(backend=backend, threads=threads, protocol=per_round(NETWORK_PROTOCOL, rounds),
                           onnx_dir=tmp, clock=clock, probe=SpeedProbe.from_table(table), allocator=table.allocator)
        times = time_networks([(t.name, t.build, tuple(t.input)) for t, _ in built], timer, rounds=rounds,
                              on_progress=progress)
    return [AdditivityRow(t.name, p, m.median_ms, p / m.median_ms, f"{source} (in-context, at the probe's reference "
                          "speed)" if source else "in-context table") for (t, p), m in zip(built, times)]
