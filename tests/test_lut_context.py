"""In-context latency tables, the speed probe, the learned correction (`lut calibrate`) and its
held-out evaluation.

Timing is replaced by fake timers wherever a value is asserted: the networks are a tiny FBNet-like
space (3 searchable layers at 32x32) whose parts "take" made-up, deterministic times. The few real
timers run tiny networks with a minimal protocol and assert only what holds on any machine
(positive times, parts adding up to the whole). No wall-time assertions."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest
import torch

from cnnprof.errors import UsageError
from cnnprof.lut import context, correction, evaluate, learn, predict
from cnnprof.lut import probe as lut_probe
from cnnprof.lut.builder import build, space_jobs
from cnnprof.lut.keys import glue_key, split
from cnnprof.lut.measure import InPlace, Measured, in_place_result, unit_index
from cnnprof.lut.predict import SpaceMatrix
from cnnprof.lut.probe import probed_run
from cnnprof.lut.space import FBNET_SPACE_NAME, arch_code, space_network
from cnnprof.lut.table import Calibration, Entry, Table, TableError, env_id, environment, load
from cnnprof.models.fbnet import Stage, fbnet_space
from cnnprof.timing.protocol import Protocol

TINY = dataclasses.replace(fbnet_space(32, stages=(Stage(8, 1, 1), Stage(16, 2, 2))), head_chs=32)
NAME = "tiny@32"
FAST = Protocol(warmup_runs=1, warmup_s=0.0, min_runs=3, min_time_s=0.0, max_time_s=5.0)


def ms_of(key: str) -> float:
    """A made-up latency per key: deterministic, 0.10 .. 2.09 ms."""
    return 0.1 + int(hashlib.sha1(key.encode()).hexdigest()[:6], 16) % 200 / 100


GLUE_MS = 0.05


@pytest.fixture(scope="module")
def tiny():
    jobs, index = space_jobs(TINY, name="tiny", head_widths=(48,))
    return jobs, index


class FakeInPlace:
    """An in-place timer: each part "takes" ms_of(its key) times ``factor(network label)``, the glue
    GLUE_MS; records the networks it was given."""

    def __init__(self, factor=lambda label: 1.0, interrupt_after: int | None = None):
        self.factor = factor
        self.seen: list[str] = []
        self.interrupt_after = interrupt_after

    def __call__(self, model, input_shape, parts, label) -> InPlace:
        if self.interrupt_after is not None and len(self.seen) >= self.interrupt_after:
            raise KeyboardInterrupt
        self.seen.append(label)
        f = self.factor(label)
        values = tuple(ms_of(p.key) * f for p in parts)
        whole = sum(values) + GLUE_MS
        return InPlace(Measured(whole, 0.0, whole, whole, 10), values, GLUE_MS, whole)


def tiny_networks(index, contexts=2, seed=0):
    return context.space_networks(TINY, index, name="tiny", contexts=contexts, seed=seed)


def in_context_table(tiny, tmp_path, **kwargs):
    _, index = tiny
    path = tmp_path / "ctx.json"
    timer = FakeInPlace(**kwargs)
    table, report = context.build_in_context(tiny_networks(index), path=path, rounds=1, spaces={NAME: index},
                                             timer=timer, probe=FakeProbe([1.0]))
    return table, report, path, timer


class FakeProbe:
    """A probe whose runs return scripted times (cycling), with a fixed reference."""

    name = "fake"

    def __init__(self, times, reference_ms=1.0, clock="wall"):
        self.times = list(times)
        self.i = 0
        self.reference_ms = reference_ms
        self.clock = clock

    def run(self) -> float:
        v = self.times[self.i % len(self.times)]
        self.i += 1
        return v

    def settle(self) -> float:
        return self.reference_ms

    def to_dict(self) -> dict:
        return {"name": self.name, "clock": self.clock, "reference_ms": self.reference_ms}


# -- the networks blocks are read in ---------------------------------------------------------------
def test_designs_put_every_candidate_at_every_layer_once_per_context():
    ds = context.designs(9, 22, ["1984", "1504"], contexts=3, seed=5)
    assert len(ds) == 27
    cells = {}
    for d in ds:
        for layer, c in enumerate(d.choices):
            cells[(layer, c)] = cells.get((layer, c), 0) + 1
    assert len(cells) == 22 * 9 and set(cells.values()) == {3}
    assert {d.head for d in ds} == {"1984", "1504"}
    assert len({d.code for d in ds}) == 27  # distinct networks
    assert [d.code for d in ds] == [d.code for d in context.designs(9, 22, ["1984", "1504"], contexts=3, seed=5)]
    assert [d.code for d in ds] != [d.code for d in context.designs(9, 22, ["1984", "1504"], contexts=3, seed=6)]
    with pytest.raises(UsageError):
        context.designs(9, 22, ["1984"], contexts=0)


def test_in_place_result_splits_the_plain_latency_by_the_parts_shares():
    # instrumented calls: parts 1, 3 and glue 1 (sum 5), probe factors 1.0; plain calls 10 ms
    r = in_place_result([10.0, 10.0, 12.0], [1.0, 1.0, 1.0], [[1.0, 3.0, 1.0]] * 3, [1.0] * 3)
    assert r.whole.median_ms == 10.0 and r.parts == pytest.approx((2.0, 6.0)) and r.glue_ms == pytest.approx(2.0)
    assert sum(r.parts) + r.glue_ms == pytest.approx(r.whole.median_ms)
    # a factor (the probe said the machine ran at half speed) halves the normalised times, not the raw ones
    slow = in_place_result([20.0] * 3, [0.5] * 3, [[2.0, 6.0, 2.0]] * 3, [0.5] * 3)
    assert slow.whole.median_ms == 10.0 and slow.whole.raw_median_ms == 20.0 and slow.whole.speed == 2.0


def test_probed_run_normalises_each_call_by_the_probe_around_it():
    calls = iter([5.0, 5.0, 5.0, 5.0])
    probe = FakeProbe([1.0, 1.0, 2.0, 2.0, 2.0], reference_ms=1.0)
    rows, factors = probed_run(lambda: (next(calls),), Protocol(warmup_runs=1, warmup_s=0, min_runs=3,
                                                                min_time_s=0), probe)
    # probes: warm-up 1.0; calls see 1.0, 2.0, 2.0 before and 2.0 after the last: factors 1/1.5, 1/2, 1/2
    assert [r[0] for r in rows] == [5.0, 5.0, 5.0]
    assert factors == pytest.approx([1 / 1.5, 0.5, 0.5])
    rows, factors = probed_run(lambda: (1.0,), Protocol(warmup_runs=0, warmup_s=0, min_runs=2, min_time_s=0), None)
    assert factors == [1.0, 1.0]


def test_onnx_nodes_are_attributed_to_their_part():
    labels = ["blocks.0", "blocks.1", "blocks.10"]
    assert unit_index("stem.conv", labels) == 0
    assert unit_index("blocks.1.conv_pw.act", labels) == 2
    assert unit_index("blocks.10", labels) == 3  # not blocks.1
    assert unit_index("head.classifier", labels) == 4
    assert unit_index("blocks", labels) == 5  # a container of blocks: glue
    assert unit_index(None, labels) == 5  # no scope (a layout reorder): glue


# -- the in-context build --------------------------------------------------------------------------
def test_in_context_build_keeps_every_context_and_resumes(tiny, tmp_path):
    _, index = tiny
    table, report, path, timer = in_context_table(tiny, tmp_path, factor=lambda label: 1.0 + 0.1 * (
        int(label.split()[-1]) % 3))
    assert len(timer.seen) == 18  # 2 contexts x 9 networks, one round
    assert table.mode == "in-context" and table.probe["reference_ms"] == 1.0
    loaded = load(path)
    cells = [k for row in loaded.spaces[NAME].layers for k in row]
    for key in cells:
        e = loaded.entries[key]
        assert e.contexts == 2 and len(e.context_ms) == 2
        assert e.latency_ms == pytest.approx(np.mean(e.context_ms))
        assert e.spread_ms == pytest.approx(np.std(e.context_ms))
    gkey = glue_key("FBNetNetwork", TINY.input)
    assert loaded.spaces[NAME].glue == gkey and loaded.entries[gkey].latency_ms == pytest.approx(GLUE_MS)
    assert {g: c["measured"] for g, c in report.groups.items()} == {"tiny blocks": 27, "tiny stem, heads, glue": 4}
    # again: every network was read in this environment, nothing is timed
    again = FakeInPlace()
    table2, report2 = context.build_in_context(tiny_networks(index), path=path, rounds=1, spaces={NAME: index},
                                               timer=again, probe=FakeProbe([1.0]))
    assert again.seen == [] and report2.groups["tiny blocks"]["reused"] == 27
    assert table2.entries[cells[0]].context_ms == loaded.entries[cells[0]].context_ms
    # a second round adds one value per network; --force starts over
    more = FakeInPlace()
    table3, _ = context.build_in_context(tiny_networks(index), path=path, rounds=2, spaces={NAME: index},
                                         timer=more, probe=FakeProbe([1.0]))
    assert len(more.seen) == 18 and table3.entries[cells[0]].contexts == 4
    fresh = FakeInPlace()
    table4, _ = context.build_in_context(tiny_networks(index), path=path, rounds=1, spaces={NAME: index},
                                         timer=fresh, probe=FakeProbe([1.0]), force=True)
    assert len(fresh.seen) == 18 and table4.entries[cells[0]].contexts == 2
    # entries in the units of another probe are not mixed with this one's: everything is read again
    other = FakeProbe([1.0])
    other.name = "another probe"
    again2 = FakeInPlace()
    table5, _ = context.build_in_context(tiny_networks(index), path=path, rounds=1, spaces={NAME: index},
                                         timer=again2, probe=other)
    assert len(again2.seen) == 18 and table5.probe["name"] == "another probe"
    assert table5.entries[cells[0]].contexts == 2
    # and a table in another probe's units is refused where it would be checked against this one
    with pytest.raises(UsageError, match="another speed probe"):
        lut_probe.SpeedProbe.from_table(table5)


def test_the_speed_probe_is_a_network_of_the_space_on_the_table_backend():
    from cnnprof.models.fbnet import FBNET_SPACE

    assert len(lut_probe.PROBE_ARCH) == len(FBNET_SPACE.layers)
    assert set(lut_probe.PROBE_ARCH) == set(FBNET_SPACE.names)  # every candidate is in it
    table = Table(backend="onnxruntime", threads=1, mode="in-context", clock="cpu",
                  probe={"name": lut_probe.PROBE_NAME, "clock": "cpu", "reference_ms": 8.5})
    probe = lut_probe.SpeedProbe.from_table(table)
    assert (probe.backend, probe.clock, probe.reference_ms, probe.name) == ("onnxruntime", "cpu", 8.5,
                                                                           lut_probe.PROBE_NAME)


def test_in_context_parts_and_glue_add_up_to_each_network(tiny, tmp_path):
    table, _, path, _ = in_context_table(tiny, tmp_path)
    net = tiny_networks(tiny[1])[3]
    parts = split(net.make(), net.input)
    predicted, missing = predict.predict_parts(table, parts)
    assert not missing
    assert predicted == pytest.approx(sum(ms_of(p.key) for p in parts) + GLUE_MS)
    matrix = SpaceMatrix.from_table(table, NAME)
    code = net.id.split("/")[0]
    row = np.array([[int(c) for c in code]])
    head = table.spaces[NAME].heads[net.id.split("/")[1]]
    if net.id.endswith(f"/{table.spaces[NAME].default_head}"):
        assert matrix.predict(row)[0] == pytest.approx(predicted)
    assert table.spaces[NAME].glue in matrix.keys and head in table.entries


def test_in_context_build_refuses_an_isolated_table_and_keeps_work_when_interrupted(tiny, tmp_path):
    jobs, index = tiny
    path = tmp_path / "iso.json"
    build(jobs[:2], path=path, timer=lambda m, s, label: Measured(1.0, 0.0, 1.0, 1.0, 5))
    with pytest.raises(UsageError, match="isolated entries"):
        context.build_in_context(tiny_networks(index), path=path, rounds=1, timer=FakeInPlace(),
                                 probe=FakeProbe([1.0]))
    path2 = tmp_path / "ctx.json"
    timer = FakeInPlace(interrupt_after=4)
    table, report = context.build_in_context(tiny_networks(index), path=path2, rounds=1, spaces={NAME: index},
                                             timer=timer, probe=FakeProbe([1.0]))
    assert report.interrupted and len(load(path2).contexts) == 4
    stored = load(path2)
    stored.calibration = Calibration(0.1, {"k3_e1": 1.1}).to_dict()
    stored.save(path2)
    rest = FakeInPlace()
    table, report = context.build_in_context(tiny_networks(index), path=path2, rounds=1, spaces={NAME: index},
                                             timer=rest, probe=FakeProbe([1.0]))
    assert len(rest.seen) == 14  # resumed: only the networks not read before
    assert table.calibration is None and report.calibration == {"dropped": True}  # fitted to the old entries
    stored = load(path2)
    stored.calibration = Calibration(0.1, {"k3_e1": 1.1}).to_dict()
    stored.save(path2)
    table, _ = context.build_in_context(tiny_networks(index), path=path2, rounds=1, spaces={NAME: index},
                                        timer=FakeInPlace(), probe=FakeProbe([1.0]))
    assert table.calibration is not None  # nothing re-measured: still valid


def test_table_file_keeps_in_context_fields_and_refuses_bad_ones(tiny, tmp_path):
    table, _, path, _ = in_context_table(tiny, tmp_path)
    doc = json.loads(path.read_text())
    key = next(k for k, e in doc["entries"].items() if e.get("contexts"))
    assert doc["mode"] == "in-context" and doc["probe"]["reference_ms"] == 1.0
    doc["entries"][key]["context_ms"][0] = -1.0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(TableError, match="context_ms"):
        load(bad)
    doc = json.loads(path.read_text())
    doc["mode"] = "sideways"
    bad.write_text(json.dumps(doc))
    with pytest.raises(TableError, match="mode"):
        load(bad)
    doc = json.loads(path.read_text())
    assert doc["allocator"] == "steady"  # the fake timers leave the requested allocator on record
    doc["allocator"] = "jemalloc"
    bad.write_text(json.dumps(doc))
    with pytest.raises(TableError, match="allocator"):
        load(bad)


def test_a_table_measured_with_another_allocator_is_refused_unless_forced(tiny, tmp_path):
    jobs, index = tiny
    path = tmp_path / "ctx.json"
    context.build_in_context(tiny_networks(index), path=path, rounds=1, spaces={NAME: index}, timer=FakeInPlace(),
                             probe=FakeProbe([1.0]), allocator="default")
    assert load(path).allocator == "default"
    with pytest.raises(UsageError, match="default allocator"):
        context.build_in_context(tiny_networks(index), path=path, rounds=1, spaces={NAME: index},
                                 timer=FakeInPlace(), probe=FakeProbe([1.0]), allocator="steady")
    table, _ = context.build_in_context(tiny_networks(index), path=path, rounds=1, spaces={NAME: index},
                                        timer=FakeInPlace(), probe=FakeProbe([1.0]), allocator="steady", force=True)
    assert table.allocator == "steady" and load(path).allocator == "steady"


def test_use_allocator_sets_malloc_once_and_refuses_unknown_names():
    import os
    import subprocess
    import sys
    from pathlib import Path

    with pytest.raises(UsageError, match="unknown allocator"):
        lut_probe.use_allocator("jemalloc")
    # in a fresh process: mallopt cannot be undone, and this one runs other tests
    code = ("from cnnprof.lut.probe import use_allocator as u; "
            "print(u('default'), u('steady'), u('default'), u('steady'))")
    root = str(Path(lut_probe.__file__).resolve().parents[2])  # this checkout, not an installed copy
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=env).stdout.split()
    if out[1] == "steady":  # glibc
        assert out == ["default", "steady", "steady", "steady"]  # once steady, the process stays so
    else:
        assert out == ["default"] * 4


# -- the correction ----------------------------------------------------------------------------------
TRUE_OVERHEAD = 0.4
TRUE_SCALES = {"k3_e6": 1.3, "k5_e6": 0.8, "skip": 1.0}


def truth(matrix: SpaceMatrix, code: str) -> float:
    """What a network "measures": overhead + fixed + a known scale per type x the table."""
    row = np.array([[int(c) for c in code]])
    x = correction.features(matrix, row)[0]
    scales = np.array([TRUE_SCALES.get(c, 1.1) for c in matrix.candidates])
    return TRUE_OVERHEAD + matrix.fixed_ms + float(x @ scales)


def truth_timer(matrix, calls=None):
    def timer(module, input_shape, label):
        code = label.split()[-1]
        if calls is not None:
            calls.append(label)
        v = truth(matrix, code)
        return Measured(v, 0.0, v, v, 10, raw_median_ms=v * 1.2, speed=1.2)
    return timer


def test_fit_recovers_a_known_overhead_and_scales():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 5, size=(40, 3))
    fixed = np.full(40, 2.0)
    m = 0.5 + fixed + x @ np.array([1.2, 0.9, 1.0])
    f = correction.fit(x, fixed, m)
    assert f.theta == pytest.approx([0.5, 1.2, 0.9, 1.0], abs=0.02)
    assert f.loo_rmse < 0.01
    # with two networks and three types, the prior keeps the scales near 1 instead of blowing up
    few = correction.fit(x[:2], fixed[:2], m[:2])
    assert np.all(np.abs(few.theta[1:] - 1) < 0.5)


def test_choose_keeps_the_structure_that_predicts_unseen_training_networks_best():
    rng = np.random.default_rng(3)
    x = rng.uniform(0.2, 3.0, size=(40, 4))
    fixed = np.full(40, 2.0)
    noise = 1 + rng.normal(0, 0.01, 40)
    per_type = (0.5 + fixed + x @ np.array([1.4, 0.7, 1.0, 1.2])) * noise
    got = correction.choose(x, fixed, per_type)
    assert got.structure == "per-type" and got.theta[1] == pytest.approx(1.4, rel=0.05)
    shared = (0.5 + fixed + 0.8 * x.sum(axis=1)) * noise
    got = correction.choose(x, fixed, shared)
    assert got.structure in ("shared", "per-type") and got.theta[1:] == pytest.approx([0.8] * 4, rel=0.05)
    assert got.scores["shared"] < got.scores["none"]
    table_right = fixed + x.sum(axis=1)  # nothing to correct: a fit cannot beat the table itself
    got = correction.choose(x, fixed, table_right, structures=("none", "per-type"))
    assert got.structure == "none" and list(got.theta) == [0.0, 1.0, 1.0, 1.0, 1.0] and got.loo_rmse < 1e-12
    with pytest.raises(ValueError, match="unknown structure"):
        correction.choose(x, fixed, shared, structures=("cubic",))


def test_select_prefers_the_unsure_and_spreads_a_batch():
    x = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    pred = np.ones(4) * 2
    cov = np.diag([1e-4, 1.0, 0.01])  # type 0 uncertain, type 1 well known
    first = correction.select(x, pred, np.zeros(4), cov, 1)
    assert first in ([0], [1])
    two = correction.select(x, pred, np.zeros(4), cov, 2)
    assert sorted(two) != [0, 1]  # the twin of a chosen network is no longer the least certain
    assert correction.select(x, pred, np.zeros(4), cov, 2, exclude={0, 1}) == [3, 2] or \
        set(correction.select(x, pred, np.zeros(4), cov, 2, exclude={0, 1})) == {2, 3}
    # the entries' own spread counts too
    var = np.array([0.0, 0.0, 5.0, 0.0])
    assert correction.select(x, pred, var, np.diag([1e-6, 1e-6, 1e-6]), 1) == [2]


def test_calibrate_learns_the_correction_on_training_and_reports_a_disjoint_held_out_set(tiny, tmp_path):
    table, _, path, _ = in_context_table(tiny, tmp_path)
    matrix = SpaceMatrix.from_table(table, NAME)
    calls = []
    ticks = iter(range(0, 10_000))  # every clock reading: a "second" later
    report = learn.calibrate(table, path=path, space=NAME, search_space=TINY, budget_s=200, max_train=20,
                                  initial=4, batch=2, holdout=6, models=(), pool=300, rounds=1,
                                  timer=truth_timer(matrix, calls), clock=lambda: float(next(ticks)))
    train, held = set(report.trained_on), set(report.holdout)
    assert len(train) == len(report.trained_on) and len(held) == 6
    assert not train & held  # held out: never trained on
    assert {c.split()[-1] for c in calls if c.startswith("train")} == train
    assert {c.split()[-1] for c in calls if c.startswith("held-out")} == held
    assert report.rounds_of_selection >= 1 and 4 < len(train) <= 20
    cal = report.calibration
    assert cal.overhead_ms == pytest.approx(TRUE_OVERHEAD, abs=0.05)
    for kind, scale in TRUE_SCALES.items():
        assert cal.scales[kind] == pytest.approx(scale, abs=0.05)
    assert report.holdout_calibrated["mean_abs_error"] < 0.01 < report.holdout_raw["mean_abs_error"]
    stored = load(path).calibration
    assert set(stored["trained_on"]) == train and set(stored["held_out"]["codes"]) == held
    # the calibrated matrix predicts the held-out networks as the fit does, still as one gather and sum
    calibrated = SpaceMatrix.from_table(load(path), NAME, calibration=Calibration.from_dict(stored))
    rows = np.array([[int(c) for c in code] for code in sorted(held)])
    assert calibrated.predict(rows) == pytest.approx([truth(matrix, c) for c in sorted(held)], rel=0.01)


def test_calibrate_stops_within_its_budget(tiny, tmp_path):
    table, _, path, _ = in_context_table(tiny, tmp_path)
    matrix = SpaceMatrix.from_table(table, NAME)
    ticks = iter(range(0, 100_000, 10))  # every clock reading: 10 "seconds" later
    report = learn.calibrate(table, space=NAME, search_space=TINY, budget_s=40, max_train=30, initial=2,
                                  batch=1, holdout=2, models=(), pool=100, rounds=1, timer=truth_timer(matrix),
                                  clock=lambda: float(next(ticks)))
    assert 2 <= len(report.trained_on) < 30


def test_calibration_bad_input_is_a_usage_error(tiny, tmp_path):
    table, _, path, _ = in_context_table(tiny, tmp_path)
    for kwargs in ({"budget_s": 0}, {"holdout": 0}, {"max_train": 1}, {"rounds": 0}):
        with pytest.raises(UsageError):
            learn.calibrate(table, space=NAME, search_space=TINY, models=(), **kwargs)
    with pytest.raises(UsageError, match="no search space"):
        learn.calibrate(table, space=NAME, models=())
    with pytest.raises((ValueError, KeyError, TypeError)):
        Calibration.from_dict({"scales": {"k3_e1": "fast"}})


def test_a_single_scale_calibration_still_reads():
    cal = Calibration.from_dict({"scale": 1.25, "fitted_on": {}})
    assert cal.single and cal.apply(2.0, {"k3_e1": 2.0}) == pytest.approx(5.0)


# -- predict --sample --measure: held out, FBNet-A/B/C, the new figures -----------------------------------
def test_predict_sample_leaves_out_the_training_networks(full_in_context_table):
    table = load(full_in_context_table)
    first = evaluate.predict(table, sample=6, seed=3)
    codes = [r.arch for r in first.rows]
    table.calibration = Calibration(0.1, {"k3_e1": 1.0}, 1.0, record={"trained_on": codes[:3]}).to_dict()

    def timer(module, input_shape, label):
        return Measured(20.0, 0.0, 20.0, 20.0, 10, raw_median_ms=25.0, speed=1.25)

    result = evaluate.predict(table, sample=6, seed=3, measure=True, timer=timer, rounds=1)
    sampled = [r for r in result.rows if r.model.startswith("sample")]
    assert len(sampled) == 6 and not {r.arch for r in sampled} & set(codes[:3])
    assert {"fbnet_a", "fbnet_b", "fbnet_c"} <= {r.model for r in result.rows}
    assert all(r.measured_ms == 20.0 and r.measured_raw_ms == 25.0 and r.speed == 1.25 for r in sampled)
    metrics = {(s.group, s.metric): s for s in result.summary}
    assert ("samples", "within +-5%") in metrics and ("models", "within +-10%") in metrics
    assert metrics[("samples", "machine speed while measuring (probe/reference)")].raw == 1.25
    assert all(r.calibrated_ms is not None for r in sampled)  # every type the calibration lacks gets its default


@pytest.fixture(scope="module")
def full_in_context_table(tmp_path_factory):
    """The FBNet space at 224 as a synthetic in-context table (no timing)."""
    from cnnprof.lut.builder import fbnet_space_jobs

    jobs, index = fbnet_space_jobs()
    gkey = glue_key("FBNetNetwork", (3, 224, 224))
    table = Table(backend="torch", threads=1, mode="in-context", probe={"name": lut_probe.PROBE_NAME, "clock": "wall",
                                                                         "reference_ms": 1.0, "env": ""})
    here = environment("torch", 1)
    eid = env_id(here)
    table.probe["env"] = eid
    table.environments[eid] = here
    for job in jobs + [dataclasses.replace(jobs[0], key=gkey, label="fbnet glue")]:
        v = ms_of(job.key)
        table.entries.setdefault(job.key, Entry(job.label, job.input, v, 0.0, v, v, 10, eid, contexts=2, mean_ms=v,
                                                spread_ms=0.01, context_ms=(v, v)))
    table.spaces[FBNET_SPACE_NAME] = dataclasses.replace(index, glue=gkey)
    path = tmp_path_factory.mktemp("ctx") / "full.json"
    table.save(path)
    return path


def test_cli_calibrate_and_predict_end_to_end(cli, full_in_context_table, tmp_path, monkeypatch):
    from cnnprof.lut import measure

    path = tmp_path / "t.json"
    path.write_text(full_in_context_table.read_text())
    table = load(path)
    matrix = SpaceMatrix.from_table(table, "fbnet@224")

    def make_timer(*, backend, threads, protocol, onnx_dir, clock, probe=None, allocator=None):
        def timer(module, input_shape, label):
            code = label.split()[-1]
            v = truth(matrix, code) if code.isdigit() else 30.0
            return Measured(v, 0.0, v, v, 10, raw_median_ms=v, speed=1.0)
        return timer

    monkeypatch.setattr(measure, "make_timer", make_timer)
    monkeypatch.setattr(learn, "space_jobs_for", lambda space, m, rows, prefix, head_chs=None: [
        (f"{prefix} {arch_code(r)}", (lambda: torch.nn.Identity()), (3, 224, 224)) for r in rows])
    out = cli("lut", "calibrate", "--table", str(path), "--budget", "5", "--train", "6", "--initial", "4",
              "--holdout", "3", "--rounds", "1", "-f", "json")
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    groups = {r["group"] for r in rows}
    assert {"correction", "training", "held-out", "fbnet_a", "fbnet_b", "fbnet_c"} <= groups
    stored = load(path).calibration
    assert 4 <= len(stored["trained_on"]) <= 6 and len(stored["held_out"]["codes"]) == 3
    assert not set(stored["trained_on"]) & set(stored["held_out"]["codes"])
    pred = cli("lut", "predict", "--table", str(path), "--sample", "4", "--measure", "--rounds", "1", "-f", "json")
    assert pred.exit_code == 0, pred.output
    prows = json.loads(pred.stdout)
    assert {"fbnet_a", "fbnet_b", "fbnet_c"} <= {r["model"] for r in prows}
    assert not {r["arch"] for r in prows} & set(stored["trained_on"])
    assert "fitted on" in pred.stderr and "within +-5%" in pred.stderr


@pytest.mark.parametrize("args, message", [
    (("--budget", "0"), "--budget"),
    (("--budget", "nan"), "--budget"),
    (("--holdout", "0"), "--holdout"),
    (("--train", "1"), "--train"),
    (("--batch", "0"), "--batch"),
])
def test_cli_calibrate_bad_input_is_one_line_exit_2(cli, full_in_context_table, args, message):
    out = cli("lut", "calibrate", "--table", str(full_in_context_table), *args)
    assert out.exit_code == 2 and message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_cli_calibrate_and_build_refuse_what_they_cannot_use(cli, tmp_path):
    missing = cli("lut", "calibrate", "--table", str(tmp_path / "none.json"))
    assert missing.exit_code == 2 and len(missing.stderr.strip().splitlines()) == 1
    empty = tmp_path / "empty.json"
    Table(backend="torch", threads=1).save(empty)
    nospace = cli("lut", "calibrate", "--table", str(empty))
    assert nospace.exit_code == 2 and "no 'fbnet@224' space" in nospace.stderr
    for args, message in ((("--entries", "sideways"), "--entries"), (("--layers", "0"), "--entries isolated"),
                          (("--calibrate",), "lut calibrate")):
        out = cli("lut", "build", *args, "-o", str(tmp_path / "t.json"))
        assert out.exit_code == 2 and message in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_additivity_in_context_reads_other_networks_and_times_the_wholes(full_in_context_table, monkeypatch):
    from cnnprof.lut import measure

    def make_timer(*, backend, threads, protocol, onnx_dir, clock, probe=None, allocator=None):
        assert probe is not None and probe.reference_ms == 1.0
        return lambda module, input_shape, label: Measured(25.0, 0.0, 25.0, 25.0, 10, raw_median_ms=30.0, speed=1.2)

    monkeypatch.setattr(measure, "make_timer", make_timer)
    rows = evaluate.additivity(full_in_context_table, models=("fbnet_b",), entries="in-context", rounds=1)
    table = load(full_in_context_table)
    parts = split(__import__("cnnprof.models.fbnet", fromlist=["fbnet"]).fbnet(arch="b").eval(), (3, 224, 224))
    expected = sum(ms_of(p.key) for p in parts) + ms_of(glue_key("FBNetNetwork", (3, 224, 224)))
    assert rows[0].predicted_ms == pytest.approx(expected) and rows[0].measured_ms == 25.0
    assert "in-context" in rows[0].source and table.mode == "in-context"
    with pytest.raises(UsageError):
        evaluate.additivity(full_in_context_table, models=("fbnet_b",), entries="sideways")


# -- real timers on tiny networks: what holds on any machine -----------------------------------------
@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_real_in_place_timer_parts_add_up(tmp_path, backend):
    from cnnprof.lut.measure import make_in_place_timer
    from cnnprof.lut.probe import SpeedProbe

    net = space_network(TINY, ("k3_e6", "k5_e1_g2", "skip"), 32)
    probe = SpeedProbe("wall", backend=backend, model=space_network(TINY, ("k3_e1", "skip", "k5_e6"), 32),
                       input_shape=TINY.input)
    probe.settle(0.05)
    assert probe.to_dict()["name"] != lut_probe.PROBE_NAME  # a stand-in network: its table is not the real probe's
    timer = make_in_place_timer(backend=backend, threads=1, protocol=FAST, onnx_dir=str(tmp_path), clock="wall",
                                probe=probe)
    parts = split(net, TINY.input)
    r = timer(net, TINY.input, parts, "tiny")
    assert len(r.parts) == len(parts) and all(v >= 0 for v in r.parts) and r.glue_ms >= 0
    assert sum(r.parts) + r.glue_ms == pytest.approx(r.whole.median_ms)
    assert r.whole.raw_median_ms > 0 and r.whole.speed > 0 and r.parts[1] > 0
