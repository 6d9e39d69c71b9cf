"""Compound scaling (EfficientNet, Tan & Le 2019, Sec. 3.3): depth d = α^φ, width w = β^φ,
resolution r = γ^φ, with α·β²·γ² ≈ 2 so that MACs grow about 2^φ.

Pure arithmetic (``multipliers``, ``scaled_resolution``, ``compound_factor``) plus ``scale_rows``,
which builds the scaled network of any registered variant with a square input (every family
builder takes ``width_mult`` and ``depth_mult``), and reports what was actually built: the
channels and repeats read from the model (rounding to multiples of 8 or 4 and ``ceil`` of the
repeats make them differ from the multipliers), its counted params and MACs, and optionally its
measured latency. Resolutions are rounded to the nearest pixel; the multipliers are applied on
top of the base variant's own (``efficientnet_b1`` as a base starts from depth 1.1).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cnnprof.errors import UsageError
from cnnprof.rows import Notes, Row
from cnnprof.targets import Target, registered

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from cnnprof.models.registry import ModelSpec
    from cnnprof.timing.protocol import Protocol

# Paper Sec. 3.3: the grid search at φ = 1 on B0.
ALPHA = 1.2
BETA = 1.1
GAMMA = 1.15


@dataclass(frozen=True)
class Coefficients:
    """α (depth), β (width), γ (resolution); each at least 1 (paper Eq. 3)."""

    alpha: float = ALPHA
    beta: float = BETA
    gamma: float = GAMMA

    def check(self) -> Coefficients:
        for name, value in (("alpha", self.alpha), ("beta", self.beta), ("gamma", self.gamma)):
            if not math.isfinite(value) or value < 1.0:
                raise UsageError(f"--{name} must be at least 1 (compound scaling needs α, β, γ ≥ 1), got {value:g}")
        return self

    @property
    def factor(self) -> float:
        return compound_factor(self.alpha, self.beta, self.gamma)


def compound_factor(alpha: float, beta: float, gamma: float) -> float:
    """α·β²·γ²: how much the MACs of a conv network grow per unit of φ (paper: ≈ 2)."""
    return alpha * beta**2 * gamma**2


MAX_PHI = 100  # 2^100 times the base: no φ near it builds; it bounds the rows listed before checking


def check_phi(phi: float) -> float:
    if not math.isfinite(phi) or phi < 0:
        raise UsageError(f"--phi must be a number >= 0, got {phi:g}")
    if phi > MAX_PHI:
        raise UsageError(f"--phi {phi:g} is far beyond any network that can be built (MACs grow about 2^φ)")
    return phi


def multipliers(phi: float, coeffs: Coefficients = Coefficients()) -> tuple[float, float, float]:
    """(depth, width, resolution) multipliers at ``phi``: (α^φ, β^φ, γ^φ)."""
    check_phi(phi)
    try:
        return coeffs.alpha**phi, coeffs.beta**phi, coeffs.gamma**phi
    except OverflowError:
        raise UsageError(f"--phi {phi:g} makes the multipliers overflow: no network that size can be built") from None


# The largest network ``scale`` builds: about 50 EfficientNet-B7s. Beyond it, counting takes hours
# and the activations outgrow the memory of a workstation.
MAX_SCALED_MACS = 2e12


def estimated_macs(base: ScalingBase, phi: float, coeffs: Coefficients, base_res: int) -> float | None:
    """The MACs ``base`` would have at ``phi``, estimated before building anything: its official
    count at its native input, scaled by input area and by (α·β²·γ²)^φ. None without an official
    count. Only to decide what to build; every reported count comes from the built network."""
    ref = base.spec.reference
    if ref is None or not ref.macs:
        return None
    depth, width, res_mult = multipliers(phi, coeffs)
    res = scaled_resolution(base_res, res_mult)
    return ref.macs * (res / base.resolution) ** 2 * depth * width**2


def scaled_resolution(base: int, res_mult: float) -> int:
    """The input side at ``base * res_mult``, to the nearest pixel (exactly ``base`` at 1.0)."""
    return math.floor(base * res_mult + 0.5)


def phis_up_to(phi: float) -> list[float]:
    """0, 1, ..., floor(phi), and phi itself when it is fractional."""
    check_phi(phi)
    out = [float(i) for i in range(math.floor(phi) + 1)]
    if phi != out[-1]:
        out.append(float(phi))
    return out


# -- bases --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScalingBase:
    """A registered variant that compound scaling starts from, with its own multipliers."""

    spec: ModelSpec
    width: float  # the base variant's own width_mult / depth_mult
    depth: float

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def resolution(self) -> int:
        return self.spec.input[1]


def scaling_base(name: str) -> ScalingBase:
    """The base ``name`` (registered variant or family alias). Every family builder takes
    ``width_mult`` and ``depth_mult``; a base with a non-square input is a UsageError."""
    from cnnprof.models import registry

    spec = registry.get(name)
    if spec.input[1] != spec.input[2]:
        raise UsageError(f"{spec.name} has a non-square input {spec.input[1]}x{spec.input[2]}; scale a square one")
    options = dict(spec.options)
    return ScalingBase(spec, float(options.get("width_mult", 1.0)), float(options.get("depth_mult", 1.0)))


def scaled_target(base: ScalingBase, depth_mult: float, width_mult: float) -> Target:
    """The base with its multipliers scaled by ``depth_mult`` and ``width_mult``."""
    return registered(base.name, width_mult=base.width * width_mult, depth_mult=base.depth * depth_mult)


# -- what was built -------------------------------------------------------------------------------------
def _block_modules(model: nn.Module) -> list[nn.Module]:
    """The blocks of ``model.blocks``, nested ``nn.Sequential`` stages flattened (ESPNetv2, which
    keeps each level's strided unit in ``downs`` and its units in ``stages``: both, in order)."""
    from torch import nn

    blocks = getattr(model, "blocks", None)
    if blocks is None and hasattr(model, "downs") and hasattr(model, "stages"):
        blocks = nn.Sequential(*(m for down, stage in zip(model.downs, model.stages) for m in (down, *stage)))
    if blocks is None:
        return []
    out: list[nn.Module] = []

    def walk(m: nn.Module) -> None:
        if isinstance(m, nn.Sequential):
            for child in m:
                walk(child)
        else:
            out.append(m)

    walk(blocks)
    return out


def built_structure(model: nn.Module, input_shape: tuple[int, int, int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(channels, repeats) of the built network, read from one forward pass: channels = the stem's
    output width, then the output width of each run of blocks; repeats = the length of each run.
    A run is consecutive blocks with the same output width where all but the first keep the
    spatial size (a stage: its first block may stride)."""
    import torch

    blocks = _block_modules(model)
    shapes: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    handles = []
    for i, block in enumerate(blocks):
        handles.append(block.register_forward_hook(
            lambda m, inp, out, i=i: shapes.__setitem__(i, (tuple(inp[0].shape), tuple(out.shape)))))
    stem_out: list[int] = []
    stem = getattr(model, "stem", None)
    if stem is not None:
        handles.append(stem.register_forward_hook(lambda m, inp, out: stem_out.append(out.shape[1])))
    try:
        model.eval()
        with torch.inference_mode():
            model(torch.zeros(1, *input_shape))
    finally:
        for h in handles:
            h.remove()
    channels: list[int] = list(stem_out[:1])
    repeats: list[int] = []
    prev_out = None
    for i in range(len(blocks)):
        if i not in shapes:
            continue
        (_, _, h_in, _), (_, c_out, h_out, _) = shapes[i]
        if prev_out == c_out and h_in == h_out and repeats:
            repeats[-1] += 1
        else:
            channels.append(c_out)
            repeats.append(1)
        prev_out = c_out
    return tuple(channels), tuple(repeats)


# -- rows -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScaleRow(Row):
    base: str
    phi: float
    depth_mult: float  # α^φ
    width_mult: float  # β^φ
    res_mult: float  # γ^φ
    resolution: int  # the input side actually built
    channels: tuple[int, ...]  # stem, then each run of blocks (see built_structure)
    repeats: tuple[int, ...]
    params: int
    macs: int
    macs_ratio: float  # MACs / MACs at φ = 0
    two_pow_phi: float
    compound_pow_phi: float  # (α·β²·γ²)^φ
    closest: str  # the official variant of the base's family closest in MACs
    closest_width: float | None
    closest_depth: float | None
    closest_resolution: int
    closest_macs: int | None  # its official count (catalog reference)
    latency_ms_median: float | None = None
    latency_ms_iqr: float | None = None
    latency_warnings: Notes = Notes()
    backend: str = ""  # where the latency was timed (empty without --latency)
    precision: str = ""


def official_variants(family: str) -> list[ModelSpec]:
    """The registered variants of ``family`` that have an official MACs count."""
    from cnnprof.models import registry

    specs = [registry.get(n) for n in registry.list_models("*")]
    return [s for s in specs if s.family == family and s.reference is not None and s.reference.macs]


def closest_official(family: str, macs: float) -> ModelSpec | None:
    """The official variant of ``family`` nearest to ``macs`` on a log scale (by MACs, using the
    catalog's official counts: they are only compared with, never reported as measured)."""
    candidates = official_variants(family)
    if not candidates or macs <= 0:
        return None
    return min(candidates, key=lambda s: abs(math.log(s.reference.macs / macs)))


def _option(spec: ModelSpec, name: str) -> float | None:
    value = dict(spec.options).get(name)
    return None if value is None else float(value)


def scale_rows(
    base_name: str,
    phis: Sequence[float],
    coeffs: Coefficients = Coefficients(),
    *,
    resolution: int | None = None,
    latency: bool = False,
    protocol: Protocol | None = None,
    backend: str = "torch",
    precisions: Sequence[str] = ("fp32",),
    onnx_dir: str | None = None,
    on_progress: Callable[[str], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
) -> list[ScaleRow]:
    """Build and count ``base_name`` compound-scaled at each φ from its native input side (or
    ``resolution``), and time it with ``latency`` (on ``backend``, CPU, 1 thread, one row per φ
    and precision in ``precisions``). Bad input raises UsageError before any model is built."""
    from cnnprof.counting import count
    from cnnprof.targets import calibrate_model, count_target
    from cnnprof.timing import TimingOptions, check_options, time_model
    from cnnprof.timing.protocol import WHOLE

    coeffs.check()
    if latency:
        for precision in precisions:
            check_options(TimingOptions(backend=backend, precision=precision))
    for phi in phis:
        check_phi(phi)
    base = scaling_base(base_name)
    base_res = base.resolution if resolution is None else resolution
    for phi in phis:
        res = scaled_resolution(base_res, multipliers(phi, coeffs)[2])
        if res < base.spec.min_input:
            raise UsageError(f"φ={phi:g} gives a {res}x{res} input, below {base.name}'s minimum {base.spec.min_input}")
        macs = estimated_macs(base, phi, coeffs, base_res)
        if macs is not None and macs > MAX_SCALED_MACS:
            raise UsageError(f"φ={phi:g} would build {base.name} at {res}x{res} with about {macs / 1e9:.3g} GMACs; "
                             f"cnnprof builds up to {MAX_SCALED_MACS / 1e9:.0f} GMACs (choose a smaller --phi)")
    rows: list[ScaleRow] = []
    base_macs: int | None = None
    seen: list[tuple[int, float]] = []  # (MACs, seconds to build and count) of the first networks
    started = time.perf_counter()
    for i, phi in enumerate(phis):
        d, w, r = multipliers(phi, coeffs)
        res = scaled_resolution(base_res, r)
        if on_progress:
            on_progress(f"{base.name} φ={phi:g}: building and counting at {res}x{res}")
        target = scaled_target(base, d, w)
        model = target.build(calibrate=False)
        shape = (base.spec.input[0], res, res)
        counts = count(model, shape, label=f"{base.name} φ={phi:g}")
        channels, repeats = built_structure(model, shape)
        if base_macs is None:
            base_shape = (base.spec.input[0], base_res, base_res)
            base_macs = counts.macs if phi == 0 else count_target(scaled_target(base, 1.0, 1.0), base_shape).macs
        seen.append((counts.macs, time.perf_counter() - started))
        started = time.perf_counter()
        if i == 2 and on_notice is not None:  # the first one pays for imports and tracing: fit on the next two
            _announce(base, phis[3:], coeffs, base_res, seen[1:], on_notice)
        near = closest_official(base.spec.family, counts.macs)
        row = ScaleRow(
            base=base.name, phi=phi, depth_mult=d, width_mult=w, res_mult=r, resolution=res,
            channels=channels, repeats=repeats, params=counts.params, macs=counts.macs,
            macs_ratio=counts.macs / base_macs, two_pow_phi=2.0**phi, compound_pow_phi=coeffs.factor**phi,
            closest=near.name if near else "",
            closest_width=_option(near, "width_mult") if near else None,
            closest_depth=_option(near, "depth_mult") if near else None,
            closest_resolution=near.input[1] if near else 0,
            closest_macs=near.reference.macs if near else None,
        )
        if not latency:
            rows.append(row)
            continue
        model = calibrate_model(model, shape)
        for precision in precisions:
            if on_progress:
                on_progress(f"{base.name} φ={phi:g}: timing ({backend} {precision}, 1 thread)")
            opts = TimingOptions(backend=backend, precision=precision, threads=1, protocol=protocol or WHOLE,
                                 **({"onnx_dir": onnx_dir} if onnx_dir else {}))
            lat = time_model(copy.deepcopy(model), shape, name=f"{base.name}@phi{phi:g}", opts=opts)
            rows.append(dataclasses.replace(row, latency_ms_median=lat.median, latency_ms_iqr=lat.iqr,
                                            latency_warnings=lat.warnings, backend=backend, precision=precision))
    return rows


def _announce(base: ScalingBase, phis: Sequence[float], coeffs: Coefficients, base_res: int,
              seen: Sequence[tuple[int, float]], say: Callable[[str], None]) -> None:
    """How long the rest will take, from a straight line through the (MACs, seconds) of two
    networks just built and counted (a fixed cost, then a rate), when that is more than half a
    minute."""
    estimates = [estimated_macs(base, phi, coeffs, base_res) for phi in phis]
    if not estimates or any(e is None for e in estimates):
        return
    (m0, t0), (m1, t1) = seen[0], seen[1]
    rate = (m1 - m0) / (t1 - t0) if t1 > t0 and m1 > m0 else m1 / max(t1, 1e-3)
    fixed = max(0.0, t1 - m1 / rate)
    seconds = sum(fixed + e / rate for e in estimates)
    if seconds > 30:
        say(f"the networks up to φ={phis[-1]:g} have about {max(estimates) / 1e9:.3g} GMACs at the largest; building "
            f"and counting them will take about {seconds / 60:.1f} min here")

