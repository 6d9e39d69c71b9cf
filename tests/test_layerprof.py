"""Per-layer profiling: op kinds, node-name mapping, the join of times with counts, the machine's
roofs and their cache, the roofline picture, and `profile --timing` / `machine` on the command line.

Timing itself is only run with tiny models and short protocols, and no wall time is asserted:
the arithmetic of the join is checked on synthetic times, where every figure is known.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from cnnprof import layerprof, machine
from cnnprof.claims import depthwise
from cnnprof.counting import count
from cnnprof.models.blocks.core import ConvBNAct, MBConv
from cnnprof.models.blocks.esp import EESP
from cnnprof.models.blocks.ghost import GhostBottleneck
from cnnprof.timing.layers import (
    LayerTime,
    LayerTiming,
    NodeRun,
    module_for_node,
    parse_ort_profile,
    time_layers_eager,
    timed_modules,
)
from cnnprof.timing.protocol import Protocol

SHORT = Protocol(warmup_runs=1, warmup_s=0.0, min_runs=4, min_time_s=0.0)


class Tiny(nn.Module):
    """stem (conv 3x3/2 + BN + ReLU) -> MBConv with SE -> pool -> dropout -> linear."""

    def __init__(self):
        super().__init__()
        self.stem = ConvBNAct(3, 8, 3, stride=2)
        self.block = MBConv(8, 8, mid_chs=16, kernel_size=3, se_chs=4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(0.1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.block(self.stem(x))
        return self.fc(self.drop(self.pool(x).flatten(1)))


def fake_roofs(peak: float = 50.0, bandwidth: float = 10.0, threads: int = 1) -> machine.Roofs:
    return machine.Roofs(peak_gmacs=peak, bandwidth_gbs=bandwidth, threads=threads, cpu="test cpu",
                         torch=torch.__version__, measured_at="2026-01-01T00:00:00")


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    """The machine cache in a temporary folder, holding fake roofs for this CPU at 1 thread."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    from cnnprof.timing.environment import cpu_model

    machine.store(machine.Roofs(peak_gmacs=50.0, bandwidth_gbs=10.0, threads=1, cpu=cpu_model(),
                                torch=torch.__version__, measured_at="2026-01-01T00:00:00"))
    return tmp_path / "cache"


# -- op kinds --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "module, kind",
    [
        (nn.Conv2d(8, 16, 3), "dense conv"),
        (nn.Conv2d(8, 16, 1), "pointwise"),
        (nn.Conv2d(8, 8, 3, groups=8), "depthwise"),
        (nn.Conv2d(8, 16, 5, groups=8), "depthwise"),  # channel multiplier 2: still one filter group per input
        (nn.Conv2d(8, 8, 3, groups=8, dilation=2), "dilated"),
        (nn.Conv2d(8, 16, 3, dilation=4), "dilated"),
        (nn.Conv2d(8, 16, 1, dilation=2), "pointwise"),  # dilation means nothing for a 1x1 kernel
        (nn.Conv2d(8, 16, 1, groups=4), "grouped"),
        (nn.Conv2d(8, 16, 3, groups=2), "grouped"),
        (nn.Linear(4, 4), "linear"),
        (nn.AvgPool2d(2), "pooling/upsampling"),
        (nn.AdaptiveAvgPool2d(1), "pooling/upsampling"),
        (nn.Upsample(scale_factor=2), "pooling/upsampling"),
        (nn.BatchNorm2d(4), "elementwise"),
        (nn.Hardswish(), "elementwise"),
    ],
)
def test_module_kind_from_class_and_attributes(module, kind):
    assert layerprof.module_kind(module) == kind


def _kinds(model) -> dict[str, str]:
    modules = dict(model.named_modules())
    return {name: layerprof.op_kind(name, modules) for name, _ in timed_modules(model)}


def test_ghost_blocks_classify_cheap_op_dfc_and_se_by_path():
    block = GhostBottleneck(16, 24, mid_chs=48, stride=2, se_chs=12, dfc=True)
    kinds = _kinds(block)
    assert kinds["ghost1.primary_conv.conv"] == "pointwise"
    assert {kinds[n] for n in kinds if ".cheap_operation." in n} == {"Ghost cheap op"}
    assert {kinds[n] for n in kinds if ".dfc." in n} == {"DFC attention"}
    assert {kinds[n] for n in kinds if n.startswith("se.")} == {"squeeze-excite"}
    assert kinds["conv_dw.conv"] == "depthwise" and kinds["shortcut.0.conv"] == "depthwise"
    assert kinds["ghost1.primary_conv.bn"] == "elementwise"


def test_eesp_branches_are_depthwise_then_dilated_and_reductions_grouped():
    block = EESP(32, 32, branches=4, groups=4, r_lim=7)  # dilations (1, 1, 2, 3)
    kinds = _kinds(block)
    assert [kinds[f"branches.{i}"] for i in range(4)] == ["depthwise", "depthwise", "dilated", "dilated"]
    assert kinds["conv_reduce.conv"] == "grouped" and kinds["conv_merge.conv"] == "grouped"


def test_depth_units_take_the_kind_their_weighted_leaves_share_else_mixed():
    model = Tiny()
    modules = dict(model.named_modules())
    assert layerprof.op_kind("stem", modules) == "dense conv"  # conv + BN + ReLU
    assert layerprof.op_kind("block.conv_dw", modules) == "depthwise"
    assert layerprof.op_kind("block", modules) == "mixed"
    assert layerprof.op_kind("block.se", modules) == "squeeze-excite"


def test_timed_modules_partition_the_leaves_and_skip_no_ops():
    model = Tiny()
    leaves = [n for n, _ in timed_modules(model)]
    assert "drop" not in leaves and "block.drop_path" not in leaves and "block.shuffle" not in leaves
    assert leaves[:3] == ["stem.conv", "stem.bn", "stem.act"]
    assert [n for n, _ in timed_modules(model, depth=1)] == ["stem", "block", "pool", "fc"]
    assert [n for n, _ in timed_modules(model, depth=0)] == [""]
    assert "block.se" in [n for n, _ in timed_modules(model, depth=2)]


# -- ONNX Runtime: node names and the profile -----------------------------------------------------------
def test_module_for_node_follows_scopes_through_nested_containers():
    names = {"blocks", "blocks.2", "blocks.2.0", "blocks.2.0.ghost1", "blocks.2.0.ghost1.dfc",
             "blocks.2.0.ghost1.dfc.conv_h", "blocks.2.0.ghost1.dfc.conv_h.conv", "stem", "stem.act"}
    assert module_for_node("/blocks/blocks.2/blocks.2.0/ghost1/dfc/conv_h/conv/Conv_output_0_nchwc", names) == \
        "blocks.2.0.ghost1.dfc.conv_h.conv"
    assert module_for_node("/blocks/blocks.2/blocks.2.0/ghost1/dfc/Resize", names) == "blocks.2.0.ghost1.dfc"
    assert module_for_node("/stem/act/Mul/QuickGeluFusion/", names) == "stem.act"
    assert module_for_node("/head/conv/Conv", names) is None
    assert module_for_node("ReorderOutput_token_12", names) is None


def test_every_exported_conv_node_maps_to_a_conv_module(tmp_path):
    """Against the exporter itself: export a model with nested containers and map its nodes."""
    import onnx

    from cnnprof.onnx_export import cached_export

    model = nn.Sequential(ConvBNAct(3, 8, 3), nn.Sequential(MBConv(8, 8, mid_chs=16, se_chs=4),
                                                            MBConv(8, 8, mid_chs=16))).eval()
    path, _, _ = cached_export(model, torch.randn(1, 3, 16, 16), name="nested", folder=tmp_path)
    modules = dict(model.named_modules())
    convs = [n.name for n in onnx.load(str(path)).graph.node if n.op_type == "Conv"]
    assert len(convs) == sum(isinstance(m, nn.Conv2d) for m in modules.values())
    mapped = [module_for_node(n, set(modules) - {""}) for n in convs]
    assert all(isinstance(modules.get(m), nn.Conv2d) for m in mapped), list(zip(convs, mapped))
    assert len(set(mapped)) == len(convs)


def test_parse_ort_profile_groups_kernel_times_by_run():
    def node(name, ts, dur, op="Conv"):
        return {"cat": "Node", "name": f"{name}_kernel_time", "ts": ts, "dur": dur, "args": {"op_name": op}}

    events = [
        {"cat": "Session", "name": "model_run", "ts": 100, "dur": 50},
        node("/a/Conv", 101, 10), {"cat": "Node", "name": "/a/Conv_fence_before", "ts": 101, "dur": 0},
        node("/b/Relu", 120, 5, "Relu"),
        {"cat": "Session", "name": "model_run", "ts": 200, "dur": 50},
        node("/a/Conv", 201, 12), node("/b/Relu", 220, 6, "Relu"),
        node("/late", 400, 1),  # outside any run
    ]
    runs = parse_ort_profile(events)
    assert runs == [[NodeRun("/a/Conv", "Conv", 10.0), NodeRun("/b/Relu", "Relu", 5.0)],
                    [NodeRun("/a/Conv", "Conv", 12.0), NodeRun("/b/Relu", "Relu", 6.0)]]


# -- the join, on synthetic times -------------------------------------------------------------------
def _synthetic(model, times: dict[str, float], *, backend="torch", whole=10.0, extra=()) -> LayerTiming:
    layers = [LayerTime(name=n, samples=(t, t, t), order=float(i)) for i, (n, t) in enumerate(times.items())]
    return LayerTiming(backend=backend, threads=1, batch=1, layers=tuple(layers) + tuple(extra),
                       whole_samples=(whole,) * 3, instrumented_samples=(whole + 1,) * 3)


def test_join_computes_shares_rates_intensity_roof_and_coverage():
    model = Tiny().eval()
    counts = count(model, (3, 32, 32))
    names = [n for n, _ in timed_modules(model)]
    times = {n: 0.1 * (i + 1) for i, n in enumerate(names)}
    roofs = fake_roofs(peak=50.0, bandwidth=10.0)
    prof = layerprof.build_rows(model, counts, _synthetic(model, times, whole=8.0), model_name="tiny", roofs=roofs)
    rows = {r.name: r for r in prof.rows}
    assert [r.name for r in prof.rows] == names  # execution order, no-op leaves left out
    total = sum(times.values())
    assert prof.layers_sum_ms == pytest.approx(total) and prof.coverage == pytest.approx(total / 8.0)
    assert prof.model_latency_ms == 8.0 and prof.instrumented_latency_ms == 9.0
    assert prof.coverage_in_run == pytest.approx(total / 9.0)  # per run: layer times / that run's latency
    assert sum(r.latency_share for r in prof.rows) == pytest.approx(1.0)
    assert sum(r.macs_share for r in prof.rows) == pytest.approx(1.0)
    leaf = {layer.name: layer for layer in counts.layers}
    conv = rows["stem.conv"]
    assert conv.macs == leaf["stem.conv"].macs == 8 * 3 * 9 * 16 * 16
    assert conv.bytes_in == 4 * 3 * 32 * 32 and conv.bytes_weights == 4 * 8 * 3 * 9
    assert conv.bytes_out == 4 * 8 * 16 * 16
    assert conv.bytes_moved == leaf["stem.conv"].bytes_moved
    assert conv.intensity == pytest.approx(conv.macs / conv.bytes_moved)
    assert conv.gmacs_per_s == pytest.approx(conv.macs / (times["stem.conv"] / 1e3) / 1e9)
    assert conv.roof_gmacs == pytest.approx(min(50.0, 10.0 * conv.intensity))
    assert conv.roof_fraction == pytest.approx(conv.gmacs_per_s / conv.roof_gmacs)
    assert conv.share_gap == pytest.approx(conv.latency_share - conv.macs_share)
    assert rows["stem.bn"].macs == 0 and rows["stem.bn"].gmacs_per_s is None and rows["stem.bn"].intensity is None
    assert rows["block.se.conv_reduce"].op_kind == "squeeze-excite" and rows["fc"].op_kind == "linear"
    assert conv.stride == 2 and rows["block.se.conv_reduce"].stride == 2  # 1x1 output: the stage before
    assert {r.coverage for r in prof.rows} == {prof.coverage}
    from cnnprof.report import to_json

    assert json.loads(to_json([r.to_dict() for r in prof.rows]))[0]["params"] == 8 * 3 * 9  # plain numbers


def test_top_mismatches_come_first_ranked_then_execution_order():
    model = Tiny().eval()
    counts = count(model, (3, 32, 32))
    names = [n for n, _ in timed_modules(model)]
    times = dict.fromkeys(names, 0.01)
    times["stem.bn"] = 1.0  # no MACs, most of the time: the worst mismatch
    times["block.conv_dw.conv"] = 0.5
    prof = layerprof.build_rows(model, counts, _synthetic(model, times), model_name="tiny")
    ordered = prof.ordered(2)
    assert [r.name for r in ordered[:2]] == ["stem.bn", "block.conv_dw.conv"]
    assert [r.mismatch_rank for r in ordered[:2]] == [1, 2]
    assert all(r.mismatch_rank is None for r in ordered[2:])
    assert [r.name for r in ordered[2:]] == [n for n in names if n not in ("stem.bn", "block.conv_dw.conv")]
    gaps = [r.share_gap for r in prof.rows]
    assert ordered[0].share_gap == max(gaps)


def test_kind_summary_adds_up_per_kind():
    model = Tiny().eval()
    counts = count(model, (3, 32, 32))
    names = [n for n, _ in timed_modules(model)]
    times = {n: 0.2 if n.startswith("block.se.") else 0.1 for n in names}
    prof = layerprof.build_rows(model, counts, _synthetic(model, times), model_name="tiny")
    kinds = {k.op_kind: k for k in prof.kinds}
    se = [n for n in names if n.startswith("block.se.")]
    assert kinds["squeeze-excite"].layers == len(se)
    assert kinds["squeeze-excite"].latency_ms == pytest.approx(0.2 * len(se))
    assert kinds["squeeze-excite"].latency_share == pytest.approx(0.2 * len(se) / sum(times.values()))
    assert sum(k.macs for k in prof.kinds) == sum(r.macs for r in prof.rows)
    assert sum(k.latency_share for k in prof.kinds) == pytest.approx(1.0)
    assert kinds["depthwise"].macs == 16 * 9 * 16 * 16


def test_onnx_fused_conv_named_after_its_activation_moves_to_the_conv():
    model = Tiny().eval()
    counts = count(model, (3, 32, 32))
    ort_layers = (
        LayerTime(name="block.se.conv_reduce", samples=(1.0,), ops=("Conv",), nodes=("/block/se/conv_reduce/Conv",),
                  order=0.0),
        LayerTime(name="block.se.gate", samples=(2.0,), ops=("Conv",), nodes=("/block/se/gate/Sigmoid",), order=1.0),
        LayerTime(name="/block/se/Mul", samples=(0.5,), module=False, ops=("Mul",), nodes=("/block/se/Mul",),
                  order=2.0, scope="block.se"),
        LayerTime(name="Reorder_1", samples=(0.25,), module=False, ops=("ReorderOutput",), nodes=("Reorder_1",),
                  order=3.0),
        LayerTime(name="Reorder_2", samples=(0.25,), module=False, ops=("ReorderInput",), nodes=("Reorder_2",),
                  order=4.0),
    )
    timing = LayerTiming(backend="onnxruntime", threads=1, batch=1, layers=ort_layers, whole_samples=(5.0,),
                         instrumented_samples=(5.0,))
    rows = {r.name: r for r in layerprof.build_rows(model, counts, timing, model_name="tiny").rows}
    assert rows["block.se.conv_expand"].latency_ms == 2.0 and "fused node" in rows["block.se.conv_expand"].note
    assert rows["block.se.gate"].latency_ms is None and "moved to block.se.conv_expand" in rows["block.se.gate"].note
    assert rows["stem.bn"].latency_ms is None and "no ONNX node" in rows["stem.bn"].note
    assert rows["/block/se/Mul"].op_kind == "squeeze-excite" and rows["/block/se/Mul"].latency_ms == 0.5
    reorders = rows[layerprof.REORDER_ROW]
    assert reorders.latency_ms == 0.5 and reorders.op_kind == "elementwise" and "2 layout" in reorders.note


def test_depthwise_share_of_early_stages_and_whole_model():
    model = Tiny().eval()
    counts = count(model, (3, 32, 32))
    names = [n for n, _ in timed_modules(model)]
    times = dict.fromkeys(names, 0.1)
    times["block.conv_dw.conv"] = 0.6
    prof = layerprof.build_rows(model, counts, _synthetic(model, times), model_name="tiny")
    share = depthwise.depthwise_share(prof, max_stride=2)
    early = [r for r in prof.rows if r.stride <= 2]
    assert share.early_latency_ms == pytest.approx(sum(r.latency_ms for r in early))
    assert share.early_dw_conv_latency_share == pytest.approx(0.6 / share.early_latency_ms)
    dw = next(r for r in prof.rows if r.name == "block.conv_dw.conv")
    assert share.early_dw_conv_macs_share == pytest.approx(dw.macs / sum(r.macs for r in early))
    # the unit adds the BN and activation after the depthwise conv
    assert share.early_dw_unit_latency_share == pytest.approx(0.8 / share.early_latency_ms)
    assert share.model_dw_conv_latency_share == pytest.approx(0.6 / prof.layers_sum_ms)
    assert depthwise.depthwise_share(prof, max_stride=1).early_macs == 0


# -- real timing, tiny models ---------------------------------------------------------------------------
def test_eager_layer_timing_covers_every_layer():
    model = Tiny().eval()
    timing = time_layers_eager(model, (3, 32, 32), protocol=SHORT)
    assert [t.name for t in timing.layers] == [n for n, _ in timed_modules(model)]
    assert all(len(t.samples) == timing.runs and t.calls == 1 for t in timing.layers)
    # the leaves do not overlap and all run inside the instrumented pass: in every run their
    # times add up to part of that run's latency (most of it: a unit slip, s or us, fails)
    for k, whole in enumerate(timing.instrumented_samples):
        assert sum(t.samples[k] for t in timing.layers) <= whole
    assert 0.2 < timing.coverage_in_run <= 1.0
    assert timing.coverage == pytest.approx(timing.layers_sum_ms / timing.whole_ms)
    assert len(timing.instrumented_samples) == timing.runs >= SHORT.min_runs
    assert not any(h for m in model.modules() for h in m._forward_hooks.values())  # hooks removed
    assert not any(m._forward_pre_hooks for m in model.modules())


def test_onnxruntime_layer_timing_maps_nodes_and_reports_folded_layers(tmp_path):
    model = Tiny().eval()
    prof = layerprof.profile_model(model, (3, 32, 32), name="tiny", backend="onnxruntime", protocol=SHORT,
                                   onnx_dir=str(tmp_path))
    rows = {r.name: r for r in prof.rows}
    assert rows["stem.conv"].latency_ms is not None and rows["stem.conv"].onnx_nodes.startswith("/stem/")
    # ONNX Runtime fuses conv + ReLU and names the node after the ReLU: the time goes to the conv
    assert rows["stem.act"].latency_ms is None and "stem.conv" in rows["stem.act"].note
    assert rows["block.conv_pw.conv"].latency_ms is not None and rows["fc"].latency_ms is not None
    assert rows["stem.bn"].latency_ms is None and "no ONNX node" in rows["stem.bn"].note  # folded by the exporter
    assert prof.coverage == pytest.approx(prof.layers_sum_ms / prof.model_latency_ms)
    # ONNX Runtime's profiler speaks microseconds: in one run, the nodes' times (in ms) add up to
    # part of that run's own latency, never more, and not a thousandth of it
    assert 0.2 < prof.coverage_in_run <= 1.05
    assert sum(r.macs for r in prof.rows) == count(model, (3, 32, 32)).macs


def test_a_model_that_fails_becomes_an_error_row():
    from cnnprof.api import Target

    class Broken(nn.Module):
        def forward(self, x):
            return x.view(-1, 7)

    target = Target(name="broken", family="", input=(3, 8, 8), builder=Broken)
    (prof,) = list(layerprof.profile_targets([target], protocol=SHORT))
    assert "rejects input" in prof.error and "\n" not in prof.error
    (row,) = prof.ordered(5)
    assert row.model == "broken" and row.error == prof.error and row.latency_ms is None
    with pytest.raises(Exception, match="rejects input"):
        depthwise.depthwise_share(prof)


def test_unknown_backend_is_a_usage_error():
    from cnnprof.errors import UsageError

    with pytest.raises(UsageError, match="choose from torch, onnxruntime"):
        layerprof.check_backend("compile")


# -- the machine's roofs ------------------------------------------------------------------------------
def test_roofs_arithmetic():
    roofs = fake_roofs(peak=40.0, bandwidth=8.0)
    assert roofs.ridge == 5.0
    assert roofs.attainable(1.0) == 8.0 and roofs.attainable(5.0) == 40.0 and roofs.attainable(100.0) == 40.0


def test_measure_gives_plausible_rates_at_small_sizes():
    roofs = machine.measure(1, gemm_sizes=(32, 64), copy_mib=1, repeats=2)
    assert roofs.threads == 1 and roofs.gemm_n in (32, 64)
    # GMAC/s and GB/s of any CPU are within these (a rate in MAC/s or per ms would not be)
    assert 0.01 < roofs.peak_gmacs < 1e4 and 0.01 < roofs.bandwidth_gbs < 1e4


def test_measure_rates_from_a_scripted_clock(monkeypatch):
    """Every figure of ``measure`` from known durations: which size wins, best and median rates."""
    import time as real_time
    import types

    gemm = {32: [9.0, 1e-5, 2e-5, 4e-5], 64: [9.0, 1e-4, 5e-5, 2.5e-4]}  # the first of each: warm-up
    copy = [9.0, 1e-3, 2e-3, 5e-4]
    durations = [gemm[n][i] for i in range(4) for n in (32, 64)] + copy  # the order measure times them
    reads = []
    for k, d in enumerate(durations):
        reads += [10.0 * k, 10.0 * k + d]
    clock = iter(reads)
    monkeypatch.setattr(machine, "time", types.SimpleNamespace(perf_counter=lambda: next(clock),
                                                               strftime=real_time.strftime))
    roofs = machine.measure(1, gemm_sizes=(32, 64), copy_mib=1, repeats=3)
    assert next(clock, None) is None  # every scripted read was used: nothing else was timed
    # 64^3 MACs in 50 us is the best rate (5.24 GMAC/s); the median of 64's three runs is 2.62
    assert roofs.gemm_n == 64
    assert roofs.peak_gmacs == pytest.approx(64**3 / 5e-5 / 1e9)
    assert roofs.gemm_gmacs_median == pytest.approx(64**3 / 1e-4 / 1e9)
    # a copy reads and writes 1 MiB: 2 MiB moved in 0.5 ms at best, 1 ms in the median run
    assert roofs.bandwidth_gbs == pytest.approx(2 * 2**20 / 5e-4 / 1e9)
    assert roofs.bandwidth_gbs_median == pytest.approx(2 * 2**20 / 1e-3 / 1e9)


def test_cache_is_keyed_by_threads_and_survives_a_corrupt_file(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert machine.cache_path() == tmp_path / "cnnprof" / "machine.json"
    assert machine.load(1) is None
    calls = []

    def fake_measure(threads):
        calls.append(threads)
        return machine.Roofs(peak_gmacs=10.0 * threads, bandwidth_gbs=5.0, threads=threads,
                             cpu=machine.cache_key(threads).split(" | ")[0], torch=torch.__version__,
                             measured_at="now")

    monkeypatch.setattr(machine, "measure", fake_measure)
    first, cached = machine.roofs(1)
    assert not cached and calls == [1] and first.peak_gmacs == 10.0
    again, cached = machine.roofs(1)
    assert cached and again == first and calls == [1]  # measured once
    two, cached = machine.roofs(2)
    assert not cached and two.peak_gmacs == 20.0 and machine.load(1) == first  # both kept
    _, cached = machine.roofs(1, refresh=True)
    assert not cached and calls == [1, 2, 1]
    machine.cache_path().write_text("{not json")
    assert machine.load(1) is None
    _, cached = machine.roofs(1)
    assert not cached and json.loads(machine.cache_path().read_text())["version"] == machine.CACHE_VERSION


def test_roofline_picture_is_written(tmp_path):
    from cnnprof.plots import roofline

    records = [
        {"model": "m", "name": "a", "op_kind": "pointwise", "intensity": 5.0, "gmacs_per_s": 20.0,
         "latency_share": 0.5, "share_gap": 0.1},
        {"model": "m", "name": "b", "op_kind": "depthwise", "intensity": 0.5, "gmacs_per_s": 1.0,
         "latency_share": 0.3, "share_gap": 0.2},
        {"model": "m", "name": "c", "op_kind": "elementwise", "intensity": None, "gmacs_per_s": None,
         "latency_share": 0.2, "share_gap": 0.2},
    ]
    out = roofline(records, fake_roofs(), tmp_path / "roof.png", title="test")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- command line -------------------------------------------------------------------------------------
def test_machine_command_prints_the_cached_roofs(cli, cache_home):
    result = cli("machine", "-f", "json")
    assert result.exit_code == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row["peak_gmacs"] == 50.0 and row["bandwidth_gbs"] == 10.0 and row["ridge_macs_per_byte"] == 5.0
    assert row["source"] == "cached" and row["cache"].startswith(str(cache_home))
    table = cli("machine")
    assert "peak GMAC/s" in table.stdout and "50" in table.stdout and "--refresh" in table.stdout


def test_machine_refresh_measures_again(cli, cache_home, monkeypatch):
    from cnnprof.timing.environment import cpu_model

    monkeypatch.setattr(machine, "measure", lambda threads: machine.Roofs(
        peak_gmacs=77.0, bandwidth_gbs=11.0, threads=threads, cpu=cpu_model(), torch=torch.__version__,
        measured_at="now"))
    (row,) = json.loads(cli("machine", "--refresh", "-f", "json").stdout)
    assert row["peak_gmacs"] == 77.0 and row["source"] == "measured now"
    assert machine.load(1).peak_gmacs == 77.0


TIMING = ("--timing", "--min-runs", "3", "--min-time", "0")


def test_profile_timing_json_rows_one_per_layer_top_first(cli, cache_home):
    result = cli("profile", "mobilenetv3_small", "-r", "64", *TIMING, "--top", "3", "-f", "json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert list(rows[0]) == layerprof.LayerRow.field_names()
    assert [r["mismatch_rank"] for r in rows[:3]] == [1, 2, 3]
    assert all(r["mismatch_rank"] is None for r in rows[3:])
    assert rows[0]["share_gap"] >= rows[1]["share_gap"] >= rows[2]["share_gap"]
    assert sorted(r["index"] for r in rows) == list(range(len(rows)))
    assert sum(r["latency_share"] for r in rows) == pytest.approx(1.0)
    assert len({r["coverage"] for r in rows}) == 1
    assert rows[0]["layers_sum_ms"] == pytest.approx(sum(r["latency_ms"] for r in rows if r["latency_ms"] is not None))
    assert rows[0]["coverage"] == pytest.approx(rows[0]["layers_sum_ms"] / rows[0]["model_latency_ms"])
    assert 0.2 < rows[0]["coverage_in_run"] <= 1.0  # same pass: part of each run's own latency
    assert {r["model"] for r in rows} == {"mobilenetv3_small"} and rows[0]["backend"] == "torch"
    assert all(r["roof_gmacs"] is None or r["roof_gmacs"] <= 50.0 for r in rows)  # the cached fake roofs
    assert "squeeze-excite" in {r["op_kind"] for r in rows}


def test_profile_timing_table_and_roofline(cli, cache_home, tmp_path):
    plot = tmp_path / "roof.png"
    result = cli("profile", "mobilenetv3_small", "-r", "64", *TIMING, "--plot", str(plot))
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "top 5: share of latency most above share of MACs" in out and "per layer, in execution order" in out
    assert "per op kind" in out and "coverage: the per-layer medians sum to" in out
    assert "compute roof 50.0 GMAC/s" in out
    assert plot.read_bytes()[:4] == b"\x89PNG" and f"saved {plot}" in result.stderr


def test_profile_timing_onnxruntime_csv(cli, cache_home, tmp_path, monkeypatch):
    import csv
    import io

    monkeypatch.chdir(tmp_path)  # the export lands in ./models
    result = cli("profile", "mobilenetv3_small", "-r", "64", *TIMING, "--backend", "onnxruntime", "-f", "csv")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows[0]["backend"] == "onnxruntime"
    conv = next(r for r in rows if r["name"] == "stem.conv")
    assert conv["latency_ms"] != "" and conv["onnx_nodes"]
    assert 0.2 < float(conv["coverage_in_run"]) <= 1.05
    assert any("no ONNX node" in r["note"] for r in rows)
    assert list((tmp_path / "models").glob("mobilenetv3_small-*.onnx"))


def test_profile_without_timing_is_unchanged(cli):
    result = cli("profile", "mobilenetv3_small", "-r", "64", "-f", "json")
    assert result.exit_code == 0
    from cnnprof.rows import ProfileRow

    assert list(json.loads(result.stdout)[0]) == ProfileRow.field_names()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--timing", "--backend", "tensorrt"], "unknown backend 'tensorrt'"),
        (["--timing", "--backend", "compile"], "choose from torch, onnxruntime"),
        (["--timing", "--top", "0"], "--top must be at least 1"),
        (["--timing", "--threads", "0"], "threads must be a positive integer"),
        (["--timing", "--plot", "roof.txt"], "--plot"),
        (["--top", "3"], "--top needs --timing"),
        (["--backend", "onnxruntime", "--plot", "x.png"], "--backend, --plot need --timing"),
    ],
)
def test_profile_timing_bad_input_is_one_line_exit_2(cli, cache_home, args, needle):
    result = cli("profile", "mobilenetv3_small", "-r", "64", *args)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("cnnprof: error:")
    assert needle in result.stderr and "Traceback" not in result.output


def test_machine_bad_threads_is_one_line_exit_2(cli, cache_home):
    result = cli("machine", "--threads", "none")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert math.isfinite(machine.load(1).peak_gmacs)  # the cache was left alone
