"""Where the time goes, layer by layer, and why: per-layer latency joined with MACs and bytes.

The seed's families exist because MACs are not latency (FBNet searches on measured latency,
EfficientNetV2 swaps early depthwise MBConv for Fused-MBConv, GhostNet leans on "cheap"
depthwise operations). This module puts, for every timed layer (``cnnprof.timing.layers``), its
conv + linear multiply-adds and the fp32 bytes it reads and writes (inputs, weights, outputs, from
``counting.count``'s leaf records) next to its median latency, and derives:

* achieved GMAC/s and GB/s, arithmetic intensity (MACs per byte) and, given the machine's roofs
  (``cnnprof.machine``), the roofline's attainable GMAC/s and the fraction of it reached;
* the layer's share of the per-layer latency sum against its share of the MACs, and the *top
  mismatches*: layers whose latency share most exceeds their MAC share (share points);
* the op kind (``cnnprof.opkinds``): dense conv, pointwise, depthwise, dilated, grouped,
  squeeze-excite, Ghost cheap op, DFC attention, linear, pooling/upsampling, elementwise (mixed,
  other where nothing fits), from the module's class, attributes (groups, kernel, dilation), path;
* a per-kind summary (share of MACs against share of latency) and the coverage: the sum of the
  per-layer medians against the whole-model median, measured in the same runs.

Latency shares are shares of the per-layer sum (they add up to 100%); coverage says how much of
the whole-model latency that sum is. ``depthwise_latency_share`` gives the figure behind
EfficientNetV2's Fused-MBConv rationale: depthwise layers' share of latency against their share
of MACs in a model's early stages.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

from cnnprof.errors import CnnprofError, UsageError
from cnnprof.files import MODELS_DIR
from cnnprof.opkinds import (  # noqa: F401 - re-exported: the kinds are part of this module's rows
    CONV_OPS,
    OP_KINDS,
    context_kind,
    conv_kind,
    module_kind,
    onnx_op_kind,
    op_kind,
)
from cnnprof.rows import Notes, Row, format_shape

if TYPE_CHECKING:  # pragma: no cover
    from cnnprof.machine import Roofs
    from cnnprof.rows import Counts
    from cnnprof.timing.layers import LayerTiming
    from cnnprof.timing.protocol import Protocol

LAYER_BACKENDS = ("torch", "onnxruntime")
BYTES_PER_ELEMENT = 4
REORDER_ROW = "(onnxruntime layout reorders)"


# -- rows ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerRow(Row):
    """One timed layer of one model on one backend (CSV/JSON: one row per layer)."""

    model: str
    backend: str = ""
    threads: int | None = None
    batch: int = 1
    index: int | None = None  # execution order
    name: str = ""  # module path (an ONNX node name when no module matched)
    module: str = ""  # module class, or the ONNX operators of a node-only row
    op_kind: str = ""
    input: str = ""  # shape without batch, CxHxW
    output: str = ""
    stride: float | None = None  # feature stride: input height / output height (1x1 output: the previous layer's)
    params: int | None = None
    macs: int | None = None  # conv + linear multiply-adds
    bytes_in: int | None = None  # fp32 bytes: input, weights, output (each call)
    bytes_weights: int | None = None
    bytes_out: int | None = None
    bytes_moved: int | None = None
    calls: int | None = None
    latency_ms: float | None = None  # median over runs
    latency_ms_iqr: float | None = None
    latency_share: float | None = None  # of the per-layer latency sum
    macs_share: float | None = None  # of the per-layer MAC sum
    share_gap: float | None = None  # latency_share - macs_share
    mismatch_rank: int | None = None  # 1 = latency share most above MAC share
    gmacs_per_s: float | None = None
    gbytes_per_s: float | None = None
    intensity: float | None = None  # MACs per byte moved
    roof_gmacs: float | None = None  # min(peak, bandwidth x intensity)
    roof_fraction: float | None = None  # gmacs_per_s / roof_gmacs
    onnx_nodes: str = ""
    note: str = ""
    model_latency_ms: float | None = None  # whole model, uninstrumented, median
    layers_sum_ms: float | None = None
    coverage: float | None = None  # layers_sum_ms / model_latency_ms
    coverage_in_run: float | None = None  # median over runs of (layer times summed / that run's latency)
    error: str = ""


@dataclass(frozen=True)
class KindRow(Row):
    """One op kind of one model: how its share of MACs compares with its share of latency."""

    model: str
    backend: str
    op_kind: str
    layers: int
    macs: int
    macs_share: float | None
    latency_ms: float
    latency_share: float | None
    gmacs_per_s: float | None


@dataclass(frozen=True)
class LayerProfile:
    """The per-layer profile of one model: rows in execution order, per-kind summary, coverage."""

    model: str
    backend: str
    threads: int
    batch: int
    input: str
    rows: tuple[LayerRow, ...] = ()
    kinds: tuple[KindRow, ...] = ()
    model_latency_ms: float | None = None
    instrumented_latency_ms: float | None = None
    layers_sum_ms: float | None = None
    coverage: float | None = None
    coverage_in_run: float | None = None
    runs: int = 0
    macs: int = 0
    roofs: "Roofs | None" = None
    warnings: Notes = Notes()
    error: str = ""

    def top(self, n: int) -> list[LayerRow]:
        """The ``n`` layers whose latency share most exceeds their MAC share."""
        timed = [r for r in self.rows if r.share_gap is not None]
        return sorted(timed, key=lambda r: -r.share_gap)[:n]

    def ordered(self, n: int) -> list[LayerRow]:
        """Rows for a report: the top ``n`` mismatches first (ranked), then the rest in
        execution order. An errored profile is one row carrying its error."""
        if self.error:
            return [LayerRow(model=self.model, backend=self.backend, threads=self.threads, batch=self.batch,
                             input=self.input, error=self.error)]
        top = self.top(n)
        ranked = {r.name: i + 1 for i, r in enumerate(top)}
        first = [dataclasses.replace(r, mismatch_rank=ranked[r.name]) for r in top]
        rest = [r for r in self.rows if r.name not in ranked]
        return first + rest


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


@dataclass
class _Unit:
    """What is known about one timed unit before it becomes a row."""

    name: str
    order: float
    module: str = ""
    kind: str = ""
    input: tuple[int, ...] = ()
    output: tuple[int, ...] = ()
    params: int = 0
    macs: int = 0
    bytes_in: int = 0
    bytes_weights: int = 0
    bytes_out: int = 0
    calls: int = 0
    samples: tuple[float, ...] | None = None
    nodes: list[str] = field(default_factory=list)
    ops: list[str] = field(default_factory=list)  # ONNX operators of those nodes
    notes: list[str] = field(default_factory=list)
    fused_into: str = ""  # the layer its fused ONNX node was moved to (``_refold_fused``)


def _units_from_counts(model, counts: "Counts", units: Sequence[str]) -> dict[str, _Unit]:
    """Aggregate the leaf records of ``counts`` into the timed units (leaves or depth-K modules)."""
    from cnnprof.timing.layers import is_no_op

    modules = dict(model.named_modules())
    out: dict[str, _Unit] = {}
    owner: dict[str, str] = {}
    for u in units:
        out[u] = _Unit(name=u, order=math.inf, module=type(modules[u]).__name__, kind=op_kind(u, modules))
    for leaf_index, leaf in enumerate(counts.layers):
        if leaf.name in modules and is_no_op(modules[leaf.name]):
            continue
        unit = owner.get(leaf.name)
        if unit is None:
            unit = next((u for u in units if u == leaf.name or u == "" or leaf.name.startswith(u + ".")), None)
            owner[leaf.name] = unit
        if unit is None:
            continue
        x = out[unit]
        if x.order == math.inf:
            x.order = float(leaf_index)
            x.input = tuple(int(d) for d in leaf.input_shape)
        x.output = tuple(int(d) for d in leaf.output_shape)
        # int(): counting's leaf records can hold 0-d tensors (numel() read while fvcore traces)
        params, calls = int(leaf.params), int(leaf.calls)
        x.params += params
        x.macs += int(leaf.macs)
        x.bytes_in += BYTES_PER_ELEMENT * _numel(leaf.input_shape) * calls
        x.bytes_weights += BYTES_PER_ELEMENT * params * calls
        x.bytes_out += BYTES_PER_ELEMENT * _numel(leaf.output_shape) * calls
        x.calls = max(x.calls, calls)
    return out


def _attach_times(units: dict[str, _Unit], timing: "LayerTiming", modules: dict) -> list[_Unit]:
    """Put each timed unit's samples on its unit; ONNX nodes without a unit become units."""
    from cnnprof.timing.backends import Backend

    hooked = Backend(timing.backend).is_torch  # module hooks count calls; a profile of ONNX nodes does not
    node_rows: list[_Unit] = []
    reorders: _Unit | None = None
    last = -1.0
    for k, t in enumerate(sorted(timing.layers, key=lambda layer: layer.order)):
        if t.module and t.name in units:
            u = units[t.name]
            u.samples = t.samples
            u.nodes = list(t.nodes)
            u.ops = list(t.ops)
            if hooked:
                u.calls = t.calls or u.calls
            if u.order != math.inf:
                last = u.order
            continue
        ops = sorted(set(t.ops))
        if not t.scope and ops and all(op.startswith("Reorder") for op in ops):
            if reorders is None:
                reorders = _Unit(name=REORDER_ROW, order=last + 1e-3 * (k + 1), module="Reorder", kind="elementwise",
                                 calls=0, samples=tuple(0.0 for _ in t.samples))
                node_rows.append(reorders)
            reorders.samples = tuple(a + b for a, b in zip(reorders.samples, t.samples))
            reorders.calls += t.calls
            reorders.nodes += list(t.nodes)
            reorders.ops += list(t.ops)
            continue
        kind = context_kind(t.scope, modules) if t.scope else None
        if kind is None:
            kinds = {onnx_op_kind(op) for op in ops}
            kind = kinds.pop() if len(kinds) == 1 else "other"
        note = f"ONNX node(s) in {t.scope}'s own forward" if t.scope else "ONNX node with no module scope"
        node_rows.append(_Unit(name=t.name, order=last + 1e-3 * (k + 1), module="+".join(ops), kind=kind,
                               calls=t.calls, samples=t.samples, nodes=list(t.nodes), ops=list(t.ops),
                               notes=[note]))
    if reorders is not None:
        reorders.notes.append(f"{len(reorders.nodes)} layout conversions (NCHW <-> blocked NCHWc) that ONNX Runtime "
                              "added between nodes, no module scope")
    return list(units.values()) + node_rows


def _refold_fused(rows: list[_Unit]) -> None:
    """ONNX Runtime fuses a convolution with the activation after it and may name the fused
    node after the activation (``se/gate/Sigmoid`` running SE's expand conv): a convolution-type
    node landing on a layer with no MACs moves to the nearest earlier layer with MACs under the
    same parent module."""
    ordered = sorted(rows, key=lambda u: u.order)
    for i, u in enumerate(ordered):
        if u.macs or u.samples is None or not u.nodes or "." not in u.name:
            continue
        if not _has_conv_node(u):
            continue
        ops_here = "+".join(u.ops)
        parent = u.name.rsplit(".", 1)[0]
        target = next((v for v in reversed(ordered[:i]) if v.macs and v.name.startswith(parent + ".")), None)
        if target is None:
            continue
        target.samples = (
            tuple(a + b for a, b in zip(target.samples, u.samples)) if target.samples is not None else u.samples
        )
        target.nodes += u.nodes
        target.ops += u.ops
        target.notes.append(f"includes fused node {', '.join(u.nodes)} (named after {u.name.rsplit('.', 1)[1]})")
        u.notes.append(f"its fused node was moved to {target.name} ({ops_here})")
        u.fused_into = target.name
        u.samples = None
        u.nodes = []


def _has_conv_node(u: _Unit) -> bool:
    return any(op in CONV_OPS for op in u.ops)


def build_rows(
    model,
    counts: "Counts",
    timing: "LayerTiming",
    *,
    model_name: str,
    depth: int | None = None,
    roofs: "Roofs | None" = None,
) -> LayerProfile:
    """Join ``timing`` with ``counts`` (both taken on ``model``) into a ``LayerProfile``."""
    from cnnprof.timing.backends import Backend
    from cnnprof.timing.layers import timed_modules
    from cnnprof.timing.stats import summarize

    modules = dict(model.named_modules())
    unit_names = [n for n, _ in timed_modules(model, depth)]
    units = _units_from_counts(model, counts, unit_names)
    all_units = _attach_times(units, timing, modules)
    onnx = Backend(timing.backend).is_onnx
    if onnx:
        for u in all_units:
            if u.name in units:
                u.module = type(modules[u.name]).__name__
        _refold_fused(all_units)
        for u in all_units:
            if u.name in units and u.samples is None and not u.fused_into:
                u.notes.append("no ONNX node of its own: folded into or fused with a neighbour by the exporter "
                               "or ONNX Runtime")
    all_units = [u for u in all_units if u.order != math.inf or u.samples is not None]
    all_units.sort(key=lambda u: u.order)

    medians = {id(u): (summarize(list(u.samples)) if u.samples else None) for u in all_units}
    lat_sum = sum(s.median for s in medians.values() if s is not None)
    mac_sum = sum(u.macs for u in all_units)
    whole = timing.whole_ms
    in_h = counts.input_shape[2] if len(counts.input_shape) >= 3 else None
    rows = []
    stride = None
    for index, u in enumerate(all_units):
        s = medians[id(u)]
        latency = s.median if s is not None else None
        nbytes = u.bytes_in + u.bytes_weights + u.bytes_out
        seconds = latency / 1e3 if latency else None
        intensity = ratio(u.macs, nbytes) if u.macs else None
        gmacs = u.macs / seconds / 1e9 if (seconds and u.macs) else None
        roof = roofs.attainable(intensity) if (roofs is not None and intensity) else None
        lat_share = ratio(latency, lat_sum) if latency is not None else None
        mac_share = ratio(u.macs, mac_sum) if mac_sum else None
        out_h = u.output[2] if len(u.output) >= 3 else None
        # A 1x1 output (global pooling, SE's convs) or none known (an ONNX node) works in the
        # stage of the layer before it.
        if out_h and (out_h > 1 or stride is None):
            stride = ratio(in_h, out_h)
        rows.append(LayerRow(
            model=model_name, backend=timing.backend, threads=timing.threads, batch=timing.batch, index=index,
            name=u.name or "(model)", module=u.module, op_kind=u.kind,
            input=format_shape(u.input[1:]) if u.input else "", output=format_shape(u.output[1:]) if u.output else "",
            stride=stride, params=u.params, macs=u.macs, bytes_in=u.bytes_in,
            bytes_weights=u.bytes_weights, bytes_out=u.bytes_out, bytes_moved=nbytes, calls=u.calls,
            latency_ms=latency, latency_ms_iqr=s.iqr if s is not None else None, latency_share=lat_share,
            macs_share=mac_share, share_gap=(lat_share - mac_share) if (lat_share is not None and mac_share is not None)
            else None, gmacs_per_s=gmacs, gbytes_per_s=(nbytes / seconds / 1e9) if (seconds and nbytes) else None,
            intensity=intensity, roof_gmacs=roof, roof_fraction=ratio(gmacs, roof),
            onnx_nodes=";".join(u.nodes) if onnx else "", note="; ".join(u.notes),
            model_latency_ms=whole, layers_sum_ms=lat_sum, coverage=ratio(lat_sum, whole),
            coverage_in_run=timing.coverage_in_run,
        ))
    return LayerProfile(
        model=model_name, backend=timing.backend, threads=timing.threads, batch=timing.batch,
        input=format_shape(counts.input_shape[1:]), rows=tuple(rows), kinds=tuple(kind_summary(rows)),
        model_latency_ms=whole, instrumented_latency_ms=timing.instrumented_ms, layers_sum_ms=lat_sum,
        coverage=ratio(lat_sum, whole), coverage_in_run=timing.coverage_in_run, runs=timing.runs, macs=counts.macs,
        roofs=roofs,
        warnings=timing.warnings,
    )


def kind_summary(rows: Sequence[LayerRow]) -> list[KindRow]:
    """Per op kind: layers, MACs and latency, each as a share of the model's per-layer sums."""
    if not rows:
        return []
    lat_sum = sum(r.latency_ms or 0.0 for r in rows)
    mac_sum = sum(r.macs or 0 for r in rows)
    out = []
    for kind in OP_KINDS:
        mine = [r for r in rows if r.op_kind == kind]
        if not mine:
            continue
        macs = sum(r.macs or 0 for r in mine)
        latency = sum(r.latency_ms or 0.0 for r in mine)
        out.append(KindRow(
            model=rows[0].model, backend=rows[0].backend, op_kind=kind, layers=len(mine), macs=macs,
            macs_share=ratio(macs, mac_sum), latency_ms=latency, latency_share=ratio(latency, lat_sum),
            gmacs_per_s=(macs / (latency / 1e3) / 1e9) if (latency and macs) else None,
        ))
    return out


# -- running it ----------------------------------------------------------------------------------
def check_backend(backend: str) -> str:
    b = str(backend).strip().lower()
    if b not in LAYER_BACKENDS:
        raise UsageError(f"unknown backend {backend!r} for per-layer timing; choose from {', '.join(LAYER_BACKENDS)}")
    return b


def profile_model(
    model,
    input_shape: Sequence[int],
    *,
    name: str,
    backend: str = "torch",
    threads: int = 1,
    batch: int = 1,
    depth: int | None = None,
    protocol: "Protocol | None" = None,
    onnx_dir: str = MODELS_DIR,
    roofs: "Roofs | None" = None,
    counts: "Counts | None" = None,
) -> LayerProfile:
    """Count ``model`` (unless ``counts`` is given), time it layer by layer, join the two."""
    from cnnprof import counting
    from cnnprof.timing.backends import Backend
    from cnnprof.timing.layers import DEFAULT_PROTOCOL, time_layers_eager, time_layers_ort

    backend = check_backend(backend)
    if threads < 1:
        raise UsageError(f"threads must be at least 1, got {threads}")
    shape = tuple(input_shape)
    if counts is None:
        counts = counting.count(model, shape, batch=batch, label=name)
    protocol = protocol or DEFAULT_PROTOCOL
    if Backend(backend).is_torch:
        timing = time_layers_eager(model, shape, threads=threads, batch=batch, depth=depth, protocol=protocol)
    else:
        timing = time_layers_ort(model, shape, name=name, threads=threads, batch=batch, depth=depth,
                                 protocol=protocol, onnx_dir=onnx_dir)
    return build_rows(model, counts, timing, model_name=name, depth=depth, roofs=roofs)


def profile_targets(
    targets: Sequence,
    *,
    backend: str = "torch",
    threads: int = 1,
    batch: int = 1,
    depth: int | None = None,
    resolution: tuple[int, int] | None = None,
    protocol: "Protocol | None" = None,
    onnx_dir: str = MODELS_DIR,
    roofs: "Roofs | None" = None,
    on_progress: Callable[[str], None] | None = None,
) -> Iterator[LayerProfile]:
    """Profile each ``targets.Target`` in turn; a model that fails yields a profile with ``error``."""
    from cnnprof.targets import check_batch, running, target_input

    backend = check_backend(backend)
    check_batch(batch)
    shapes = [target_input(t, resolution, batch=batch) for t in targets]  # validate all before any work
    for target, shape in zip(targets, shapes):
        base = dict(model=target.name, backend=backend, threads=threads, batch=batch, input=format_shape(shape))
        if getattr(target, "onnx_path", None) is not None:
            yield LayerProfile(**base, error="per-layer timing needs a PyTorch module, not an ONNX file")
            continue
        if on_progress:
            on_progress(f"{target.name}: counting, then timing each layer on {backend} ({threads} thread(s))")
        try:
            model = target.build(shape=shape)
            with running(target.name):
                yield profile_model(model, shape, name=target.name, backend=backend, threads=threads, batch=batch,
                                    depth=depth, protocol=protocol, onnx_dir=onnx_dir, roofs=roofs)
        except CnnprofError as exc:
            yield LayerProfile(**base, error=str(exc))
