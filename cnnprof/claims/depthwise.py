"""The measurement behind EfficientNetV2's Fused-MBConv: how slow depthwise convolutions are,
in the early stages and in the late ones.

EfficientNetV2 (Tan & Le 2021, Sec. 3.2) replaces MBConv by Fused-MBConv in stages 1-3 because
depthwise convolutions are slow in early layers (but effective in later stages).
``depthwise_share`` reads depthwise layers' share of latency against their share of MACs off a
leaf-level per-layer profile (``cnnprof.layerprof``); ``depthwise_latency_share`` profiles a
registered model and returns it for this machine. ``by_stage`` / ``depthwise_by_stage`` compare
the time per multiply-add of depthwise convolutions with that of the dense and point-wise ones,
early stages against late, run by run (what the claims use).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from cnnprof.errors import CnnprofError
from cnnprof.files import MODELS_DIR
from cnnprof.layerprof import LayerProfile, LayerRow, profile_model, ratio
from cnnprof.rows import Row

if TYPE_CHECKING:  # pragma: no cover
    from cnnprof.timing.protocol import Protocol

@dataclass(frozen=True)
class DepthwiseShare(Row):
    """Depthwise layers' share of latency and of MACs, in the early stages and in the whole model.

    ``early`` = layers whose output is at most ``max_stride`` times smaller than the input (the
    stages EfficientNetV2 builds from Fused-MBConv: strides 2, 4 and 8). ``*_conv`` counts the
    depthwise convolutions alone; ``*_unit`` adds the batch norm and activation that follow
    each (siblings under the same parent), which ONNX Runtime fuses into the convolution.
    Latency shares are of the per-layer sums of the same region.
    """

    model: str
    backend: str
    threads: int
    max_stride: int
    early_latency_ms: float
    early_macs: int
    early_share_of_model_latency: float | None
    early_share_of_model_macs: float | None
    early_dw_conv_latency_share: float | None
    early_dw_conv_macs_share: float | None
    early_dw_unit_latency_share: float | None
    model_dw_conv_latency_share: float | None
    model_dw_conv_macs_share: float | None
    model_dw_unit_latency_share: float | None
    model_latency_ms: float | None
    coverage: float | None
    runs: int


def _dw_shares(rows: Sequence[LayerRow], dw_units: set[str]) -> tuple:
    lat = sum(r.latency_ms or 0.0 for r in rows)
    macs = sum(r.macs or 0 for r in rows)
    conv = [r for r in rows if r.op_kind == "depthwise"]
    unit = [r for r in rows if r.op_kind == "depthwise" or r.name in dw_units]
    return (
        lat, macs,
        ratio(sum(r.latency_ms or 0.0 for r in conv), lat), ratio(sum(r.macs or 0 for r in conv), macs),
        ratio(sum(r.latency_ms or 0.0 for r in unit), lat),
    )


def depthwise_share(profile: LayerProfile, *, max_stride: int = 8) -> DepthwiseShare:
    """``DepthwiseShare`` of a leaf-level ``LayerProfile`` (see ``depthwise_latency_share``)."""
    if profile.error:
        raise CnnprofError(f"{profile.model}: {profile.error}")
    rows = list(profile.rows)
    dw_parents = {r.name.rsplit(".", 1)[0] for r in rows if r.op_kind == "depthwise" and "." in r.name}
    dw_units = {r.name for r in rows if r.op_kind == "elementwise" and "." in r.name
                and r.name.rsplit(".", 1)[0] in dw_parents}
    early = [r for r in rows if r.stride is not None and r.stride <= max_stride]
    e_lat, e_macs, e_conv_lat, e_conv_macs, e_unit_lat = _dw_shares(early, dw_units)
    m_lat, m_macs, m_conv_lat, m_conv_macs, m_unit_lat = _dw_shares(rows, dw_units)
    return DepthwiseShare(
        model=profile.model, backend=profile.backend, threads=profile.threads, max_stride=max_stride,
        early_latency_ms=e_lat, early_macs=e_macs, early_share_of_model_latency=ratio(e_lat, m_lat),
        early_share_of_model_macs=ratio(e_macs, m_macs), early_dw_conv_latency_share=e_conv_lat,
        early_dw_conv_macs_share=e_conv_macs, early_dw_unit_latency_share=e_unit_lat,
        model_dw_conv_latency_share=m_conv_lat, model_dw_conv_macs_share=m_conv_macs,
        model_dw_unit_latency_share=m_unit_lat, model_latency_ms=profile.model_latency_ms,
        coverage=profile.coverage, runs=profile.runs,
    )


def depthwise_latency_share(
    model_name: str = "efficientnet_b0",
    *,
    max_stride: int = 8,
    backend: str = "torch",
    threads: int = 1,
    protocol: "Protocol | None" = None,
    onnx_dir: str = MODELS_DIR,
) -> DepthwiseShare:
    """Measure depthwise layers' share of latency against their share of MACs in the early
    stages (output stride <= ``max_stride``) and in the whole of a registered model.

    EfficientNetV2 (Tan & Le 2021, Sec. 3.2) replaces MBConv by Fused-MBConv in stages 1-3
    because depthwise convolutions there cost more time than their MACs suggest; this returns
    that comparison for this machine. Raises ``CnnprofError`` if the model cannot be profiled.
    """
    from cnnprof.targets import resolve_targets

    target = resolve_targets([model_name])[0]
    profile = profile_model(target.build(), target.input, name=target.name, backend=backend, threads=threads,
                            protocol=protocol, onnx_dir=onnx_dir)
    return depthwise_share(profile, max_stride=max_stride)


# -- by stage: ms per MAC of depthwise convolutions against the dense ones ----------------------------
DENSE_KINDS = ("dense conv", "pointwise")


@dataclass(frozen=True)
class DepthwiseByStage(Row):
    """How much slower per multiply-add depthwise convolutions run than the dense and point-wise
    ones, in the early stages (output stride <= ``early_max_stride``) and the late ones (>=
    ``late_min_stride``), from one eager per-layer profile. Each run of the profile gives its own
    ratios (``*_runs``), so the figures have intervals."""

    model: str
    threads: int
    runs: int
    early_max_stride: int
    late_min_stride: int
    early_dw_macs: int
    early_dense_macs: int
    late_dw_macs: int
    late_dense_macs: int
    early_dw_ns_per_mac: float  # medians over runs
    early_dense_ns_per_mac: float
    late_dw_ns_per_mac: float
    late_dense_ns_per_mac: float
    early_penalty_runs: tuple[float, ...]  # per run: (dw ms / dw MACs) / (dense ms / dense MACs), early stages
    late_penalty_runs: tuple[float, ...]
    early_over_late_runs: tuple[float, ...]  # per run: early penalty / late penalty


def by_stage(profile: LayerProfile, timing, *, early_max_stride: int = 8, late_min_stride: int = 16
             ) -> DepthwiseByStage:
    """``DepthwiseByStage`` from a leaf-level ``LayerProfile`` and the ``LayerTiming`` it was
    built from (per-run samples)."""
    import statistics

    if profile.error:
        raise CnnprofError(f"{profile.model}: {profile.error}")
    samples = {t.name: t.samples for t in timing.layers}
    runs = min((len(s) for s in samples.values()), default=0)

    def group(early: bool, dw: bool) -> list[LayerRow]:
        return [r for r in profile.rows
                if r.stride is not None and r.macs and r.name in samples
                and (r.stride <= early_max_stride if early else r.stride >= late_min_stride)
                and (r.op_kind == "depthwise" if dw else r.op_kind in DENSE_KINDS)]

    groups = {(e, d): group(e, d) for e in (True, False) for d in (True, False)}
    if any(not rows for rows in groups.values()) or runs < 2:
        raise CnnprofError(f"{profile.model}: no depthwise and dense layers in both early and late stages to compare")
    macs = {k: sum(r.macs or 0 for r in rows) for k, rows in groups.items()}

    def ns_per_mac(key, k: int) -> float:
        return 1e6 * sum(samples[r.name][k] for r in groups[key]) / macs[key]

    per = {key: [ns_per_mac(key, k) for k in range(runs)] for key in groups}
    early = tuple(a / b for a, b in zip(per[(True, True)], per[(True, False)]))
    late = tuple(a / b for a, b in zip(per[(False, True)], per[(False, False)]))
    return DepthwiseByStage(
        model=profile.model, threads=profile.threads, runs=runs, early_max_stride=early_max_stride,
        late_min_stride=late_min_stride, early_dw_macs=macs[(True, True)], early_dense_macs=macs[(True, False)],
        late_dw_macs=macs[(False, True)], late_dense_macs=macs[(False, False)],
        early_dw_ns_per_mac=statistics.median(per[(True, True)]),
        early_dense_ns_per_mac=statistics.median(per[(True, False)]),
        late_dw_ns_per_mac=statistics.median(per[(False, True)]),
        late_dense_ns_per_mac=statistics.median(per[(False, False)]),
        early_penalty_runs=early, late_penalty_runs=late,
        early_over_late_runs=tuple(a / b for a, b in zip(early, late)),
    )


def depthwise_by_stage(model_name: str = "efficientnet_b0", *, early_max_stride: int = 8, late_min_stride: int = 16,
                       protocol: "Protocol | None" = None) -> DepthwiseByStage:
    """Profile a registered model layer by layer (torch eager, one thread) and compare the time per
    multiply-add of its depthwise convolutions with its dense ones, early stages against late."""
    from cnnprof import counting
    from cnnprof.layerprof import build_rows
    from cnnprof.targets import resolve_targets
    from cnnprof.timing.layers import DEFAULT_PROTOCOL, time_layers_eager

    target = resolve_targets([model_name])[0]
    model = target.build()
    counts = counting.count(model, target.input, label=target.name)
    timing = time_layers_eager(model, target.input, threads=1, protocol=protocol or DEFAULT_PROTOCOL)
    profile = build_rows(model, counts, timing, model_name=target.name)
    return by_stage(profile, timing, early_max_stride=early_max_stride, late_min_stride=late_min_stride)
