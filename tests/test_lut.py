"""Latency lookup tables: keys, the split of networks, the vectorised predictor, FBNet's loss,
statistics, table files and their errors, resume / skip, and the commands end to end.

Timing is replaced by fake timers with synthetic numbers wherever a value is asserted; the one
real build times 12 tiny entries with a minimal protocol. No wall-time assertions."""

from __future__ import annotations

import hashlib
import json
import math
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from cnnprof.errors import UsageError
from cnnprof.lut import builder, evaluate, predict
from cnnprof.lut.builder import build, fbnet_space_jobs, space_jobs
from cnnprof.lut.keys import SplitError, block_key, describe, head_key, split
from cnnprof.lut.learn import calibrate_scale
from cnnprof.lut.measure import Measured
from cnnprof.lut.predict import SpaceMatrix, error_stats, fbnet_loss, rankdata, spearman
from cnnprof.lut.table import Entry, Table, TableError, env_id, environment, load
from cnnprof.models.blocks.core import MBConv
from cnnprof.models.fbnet import FBNET_ARCHS, FBNET_HEAD_CHS, FBNET_SPACE, fbnet, fbnet_space

SPACE = "fbnet@224"


def synthetic_ms(key: str) -> float:
    """A made-up latency per key: deterministic, distinct, 0.10 .. 10.09 ms."""
    return 0.1 + int(hashlib.sha1(key.encode()).hexdigest()[:6], 16) % 1000 / 100


def key_of(module, input_shape) -> str:
    """The key a part gets from ``split`` (heads are the model minus stem and blocks)."""
    if isinstance(getattr(module, "stem", None), nn.Identity):
        return head_key(module, input_shape)
    return block_key(module, input_shape)


def fake_timer(calls: list | None = None, value=synthetic_ms):
    """Times nothing: a part's latency is ``value(its key)``, a whole network's ``value(its name)``."""

    def timer(module, input_shape, label):
        key = label if label.startswith("fbnet_") else key_of(module, input_shape)
        if calls is not None:
            calls.append(label)
        return Measured(value(key), 0.01, value(key) * 0.95, value(key) * 1.05, 20)

    return timer


def synthetic_table(jobs, index=None, *, env_overrides=None) -> Table:
    table = Table(backend="torch", threads=1)
    here = {**environment("torch", 1), **(env_overrides or {})}
    eid = env_id(here)
    table.environments[eid] = here
    for job in jobs:
        v = synthetic_ms(job.key)
        table.entries.setdefault(job.key, Entry(job.label, job.input, v, 0.01, v, v, 20, eid))
    if index is not None:
        table.spaces[SPACE] = index
    return table


@pytest.fixture(scope="module")
def space224():
    return fbnet_space_jobs()


@pytest.fixture(scope="module")
def full_table_path(tmp_path_factory, space224):
    jobs, index = space224
    path = tmp_path_factory.mktemp("lut") / "full.json"
    synthetic_table(jobs, index).save(path)
    return path


# -- keys and the split ---------------------------------------------------------------------------
def test_every_fbnet_cell_has_a_key_and_equal_blocks_share_it(space224):
    jobs, index = space224
    assert len(index.layers) == 22 and all(len(row) == 9 for row in index.layers)
    assert all(len(set(row)) == 9 for row in index.layers)  # the 9 candidates differ at every layer
    # layers 2-4 (24 channels at 56x56, stride 1) compute the same thing: one key per candidate
    assert index.layers[2] == index.layers[3] == index.layers[4]
    assert index.layers[1] != index.layers[2]  # layer 1 is the strided one
    assert index.layers[2][0].startswith("MBConv|24x56x56|")
    assert index.layers[2][8].startswith("SkipBlock|24x56x56|")
    assert len(jobs) == 22 * 9 + 1 + 2  # cells, stem, heads 1984 and 1504
    assert set(index.heads) == {"1984", "1504"} and index.default_head == "1984"


def test_keys_ignore_weights_and_drop_rates_but_see_hyper_parameters():
    torch.manual_seed(0)
    a = FBNET_SPACE.build_block(5, "k5_e6")
    torch.manual_seed(1)
    b = FBNET_SPACE.build_block(5, "k5_e6")
    shape = FBNET_SPACE.block_input_shapes()[5]
    assert block_key(a, shape) == block_key(b, shape)
    assert block_key(a, shape) != block_key(a, (shape[0], shape[1] * 2, shape[2] * 2))
    relu = MBConv(24, 24, mid_chs=72, kernel_size=3, act=nn.ReLU, drop_path=0.0)
    relu_dp = MBConv(24, 24, mid_chs=72, kernel_size=3, act=nn.ReLU, drop_path=0.1)
    hswish = MBConv(24, 24, mid_chs=72, kernel_size=3, act=nn.Hardswish)
    biased = MBConv(24, 24, mid_chs=72, kernel_size=3, act=nn.ReLU, bias=True)
    keys = {block_key(m, (24, 56, 56)) for m in (relu, hswish, biased)}
    assert len(keys) == 3
    assert block_key(relu, (24, 56, 56)) == block_key(relu_dp, (24, 56, 56))
    assert "drop_path:DropPath" in describe(relu_dp)


def test_split_of_fbnet_a_matches_the_space_keys(space224):
    _, index = space224
    model = fbnet(arch="a").eval()
    parts = split(model, (3, 224, 224), name="fbnet_a")
    assert [p.role for p in parts] == ["stem"] + ["block"] * 22 + ["head"]
    assert parts[0].key == index.stem
    for layer, (part, cand) in enumerate(zip(parts[1:-1], FBNET_ARCHS["a"])):
        assert part.key == index.layers[layer][index.candidates.index(cand)], layer
    assert parts[-1].key == index.heads[str(FBNET_HEAD_CHS["a"])]  # FBNet-A's 1504 head
    assert parts[-1].input == (352, 7, 7)


def test_split_of_a_mobilenetv3_block_and_the_composition():
    from cnnprof.models.registry import get

    torch.manual_seed(0)
    model = get("mobilenetv3_small").build().eval()
    parts = split(model, (3, 224, 224), name="mobilenetv3_small")
    assert len(parts) == 1 + len(model.blocks) + 1
    block = parts[2]  # blocks.1: 16 -> 24, stride 2, on the 56x56 map
    assert block.label == "blocks.1" and block.input == (16, 56, 56)
    assert block.key == block_key(model.blocks[1], (16, 56, 56))
    assert block.key.startswith("MBConv|16x56x56|")
    assert parts[-1].key.startswith("MobileNetV3.head|96x7x7|")
    # the head is the model minus stem and blocks, and the model itself is untouched
    assert isinstance(model.stem, nn.Module) and not isinstance(model.stem, nn.Identity)


def test_split_opens_nested_stages_and_refuses_what_it_cannot_compose():
    class Net(nn.Module):
        def __init__(self, extra: bool = False):
            super().__init__()
            self.stem = nn.Conv2d(3, 4, 3, padding=1)
            self.blocks = nn.Sequential(nn.Sequential(nn.ReLU(), nn.Conv2d(4, 4, 1)), nn.Conv2d(4, 8, 1))
            self.fc = nn.Linear(8, 2)
            self.extra = extra

        def forward(self, x):
            y = self.blocks(self.stem(x))
            y = y * 2 if self.extra else y  # a step outside the parts: not additive
            return self.fc(y.mean((2, 3)) + (x.mean() if self.extra else 0))

    parts = split(Net().eval(), (3, 8, 8))
    assert [p.label for p in parts] == ["stem", "blocks.0.0", "blocks.0.1", "blocks.1", "head"]
    with pytest.raises(SplitError, match="do not give the model's output"):
        split(Net(extra=True).eval(), (3, 8, 8))
    with pytest.raises(SplitError, match="no `stem`"):
        split(nn.Sequential(nn.Conv2d(3, 4, 1)), (3, 8, 8))


# -- the vectorised predictor, loss and statistics ------------------------------------------------
def test_space_matrix_sums_exactly(full_table_path, monkeypatch):
    table = load(full_table_path)
    index = table.spaces[SPACE]
    matrix = SpaceMatrix.from_table(table, SPACE)
    rng = np.random.default_rng(3)
    choices = rng.integers(0, 9, size=(50, 22))
    monkeypatch.setattr(predict, "CHUNK", 7)  # several chunks
    got = matrix.predict(choices)
    fixed = table.entries[index.stem].median_ms + table.entries[index.heads["1984"]].median_ms
    for row, value in zip(choices, got):
        expected = fixed + sum(table.entries[index.layers[i][c]].median_ms for i, c in enumerate(row))
        assert value == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError):
        matrix.predict(np.zeros((2, 21), dtype=int))
    with pytest.raises(ValueError):
        matrix.predict(np.full((1, 22), 9))


def test_space_matrix_lists_missing_cells(space224):
    jobs, index = space224
    keep = [j for j in jobs if not j.label.startswith("fbnet L03")]
    table = synthetic_table(keep, index)
    # layer 3 shares its keys with layers 2 and 4, which are kept: nothing missing
    SpaceMatrix.from_table(table, SPACE)
    table.entries.pop(index.layers[1][7])
    with pytest.raises(UsageError, match=r"1 of the fbnet@224 space's 200 blocks are missing.*L01 k5_e6"):
        SpaceMatrix.from_table(table, SPACE)


def test_fbnet_loss_values():
    # hand-worked: ln 20 = 2.995732, ln 2.995732 = 1.097189, exp(0.6 * 1.097189) = 1.931532; * 0.4 = 0.772613
    assert fbnet_loss(2.0, 20.0) == pytest.approx(0.772613, abs=1e-6)
    assert fbnet_loss(1.0, math.e) == pytest.approx(0.2)  # log e = 1
    assert fbnet_loss(1.0, math.e, alpha=0.5, beta=2.0) == pytest.approx(0.5)
    values = fbnet_loss(2.0, np.array([5.0, 10.0, 40.0]))
    assert isinstance(values, np.ndarray) and np.all(np.diff(values) > 0)  # slower -> larger loss
    with pytest.raises(ValueError, match="above 1 ms"):
        fbnet_loss(2.0, 0.5)


def test_spearman_and_error_statistics():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert list(rankdata([5, 6, 7, 8, 7])) == [1, 2, 3.5, 5, 3.5]
    # hand-worked: rank deviations (-2,-1,0,1,2) and (-2,-1,.5,2,.5): 8 / sqrt(10 * 9.5)
    assert spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(8 / math.sqrt(95))
    s = error_stats([9.0, 11.0, 12.0, 8.0], [10.0, 10.0, 10.0, 10.0])
    assert s["n"] == 4
    assert s["within_10"] == 0.5  # +-10% exactly counts as within
    assert s["mean_abs_error"] == pytest.approx(0.15)
    assert s["median_abs_error"] == pytest.approx(0.15)
    assert s["median_ratio"] == pytest.approx(1.0)


# -- table files ----------------------------------------------------------------------------------
def test_table_round_trip_and_bad_files(tmp_path, space224):
    jobs, index = space224
    path = tmp_path / "t.json"
    table = synthetic_table(jobs[:5], index)
    table.save(path)
    again = load(path)
    assert again.entries == table.entries and again.spaces[SPACE] == index
    text = path.read_text()
    (tmp_path / "cut.json").write_text(text[: len(text) // 2])
    with pytest.raises(TableError, match="truncated or corrupt JSON"):
        load(tmp_path / "cut.json")
    doc = json.loads(text)
    doc["schema"] = "something/else"
    (tmp_path / "schema.json").write_text(json.dumps(doc))
    with pytest.raises(TableError, match="schema is 'something/else'"):
        load(tmp_path / "schema.json")
    doc = json.loads(text)
    first = next(iter(doc["entries"]))
    doc["entries"][first]["median_ms"] = -1
    (tmp_path / "neg.json").write_text(json.dumps(doc))
    with pytest.raises(TableError, match="median_ms must be a finite non-negative"):
        load(tmp_path / "neg.json")
    del doc["entries"][first]["runs"]
    doc["entries"][first]["median_ms"] = 1.0
    (tmp_path / "field.json").write_text(json.dumps(doc))
    with pytest.raises(TableError, match="missing field 'runs'"):
        load(tmp_path / "field.json")


@pytest.mark.parametrize("content", ['{"schema": "cnnprof-lut/1", "backe', "[1, 2]", ""])
def test_cli_corrupt_table_is_one_line_exit_2(cli, tmp_path, content):
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = cli("lut", "predict", "--sample", "3", "--table", str(path))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnnprof: error:") and "not a valid latency table" in lines[0]


# -- build: resume, skip, force, environment ------------------------------------------------------
def tiny_jobs():
    return space_jobs(fbnet_space(32), name="tiny", layers=[0, 1, 2])


def test_build_measures_each_distinct_block_once_and_resumes(tmp_path, monkeypatch):
    jobs, index = tiny_jobs()
    distinct = len({j.key for j in jobs})
    assert distinct == len(jobs) == 3 * 9 + 2  # three layers at three shapes, stem, one head
    path = tmp_path / "lut.json"
    calls: list = []
    table, report = build(jobs, path=path, timer=fake_timer(calls), spaces={"tiny": index}, rounds=1)
    assert len(calls) == distinct and len(table.entries) == distinct
    assert load(path).entries == table.entries
    for job in jobs:
        assert table.entries[job.key].median_ms == synthetic_ms(job.key)
    calls.clear()
    _, report = build(jobs, path=path, timer=fake_timer(calls), rounds=1)
    assert calls == []  # same environment: everything reused
    assert sum(g["reused"] for g in report.groups.values()) == distinct
    _, report = build(jobs, path=path, timer=fake_timer(calls), force=True, rounds=1)
    assert len(calls) == distinct
    # another CPU: the entries are re-measured, not reused
    calls.clear()
    real = builder.environment
    monkeypatch.setattr(builder, "environment", lambda *args: {**real(*args), "cpu": "Other CPU"})
    table, _ = build(jobs, path=path, timer=fake_timer(calls), rounds=1)
    assert len(calls) == distinct and len(table.environments) == 2


def test_build_rounds_keep_the_median_of_round_medians(tmp_path):
    jobs, _ = tiny_jobs()
    jobs = jobs[:4]
    path = tmp_path / "lut.json"
    seen: dict[str, int] = {}

    def timer(module, shape, label):  # round 2 falls into a "busy spell": 100x slower
        seen[label] = seen.get(label, 0) + 1
        ms = {1: 1.0, 2: 100.0, 3: 2.0}[seen[label]]
        return Measured(ms, 0.1, ms, ms, 10)

    order = []
    table, _ = build(jobs, path=path, timer=lambda m, s, label: order.append(label) or timer(m, s, label), rounds=3)
    assert order == [j.label for j in jobs] * 3  # all entries once, then all again
    for job in jobs:
        e = table.entries[job.key]
        assert e.median_ms == 2.0 and e.rounds == 3 and e.runs == 30
    calls: list = []
    build(jobs, path=path, timer=fake_timer(calls), rounds=3)
    assert calls == []
    build(jobs, path=path, timer=fake_timer(calls), rounds=5)  # more rounds asked for: measured again
    assert len(calls) == 5 * len(jobs)


def test_build_interrupted_keeps_what_it_measured(tmp_path):
    jobs, _ = tiny_jobs()
    path = tmp_path / "lut.json"
    inner = fake_timer()
    count = []

    def flaky(module, shape, label):
        if len(count) == 4:
            raise KeyboardInterrupt
        count.append(label)
        return inner(module, shape, label)

    table, report = build(jobs, path=path, timer=flaky, rounds=1)
    assert report.interrupted and len(load(path).entries) == 4
    calls: list = []
    table, _ = build(jobs, path=path, timer=fake_timer(calls), max_entries=3, rounds=1)
    assert len(calls) == 3 and len(table.entries) == 7


def test_build_refuses_a_table_of_another_backend_and_a_corrupt_one(tmp_path):
    jobs, _ = tiny_jobs()
    path = tmp_path / "lut.json"
    build(jobs[:2], path=path, timer=fake_timer())
    with pytest.raises(UsageError, match="holds torch entries at 1 thread"):
        build(jobs[:2], path=path, timer=fake_timer(), threads=2)
    path.write_text("{")
    with pytest.raises(TableError):
        build(jobs[:2], path=path, timer=fake_timer())
    table, _ = build(jobs[:2], path=path, timer=fake_timer(), force=True)
    assert len(table.entries) == len({j.key for j in jobs[:2]})


def test_calibration_is_the_geometric_mean_of_whole_over_sum(tmp_path, space224):
    jobs, index = space224
    table = synthetic_table(jobs, index)
    whole = {"fbnet_a": 10.0, "fbnet_b": 20.0, "fbnet_c": 40.0}
    cal = calibrate_scale(table, path=tmp_path / "t.json", timer=fake_timer(value=lambda name: whole[name]))
    ratios = [whole[m] / v["predicted_ms"] for m, v in cal["fitted_on"].items()]
    assert cal["scale"] == pytest.approx(math.exp(sum(map(math.log, ratios)) / 3))
    assert load(tmp_path / "t.json").calibration["scale"] == pytest.approx(cal["scale"])


# -- predict -------------------------------------------------------------------------------------
def test_predict_measures_and_summarises_with_a_fake_timer(full_table_path):
    from cnnprof import api

    table = load(full_table_path)
    table.calibration = {"scale": 1.25, "fitted_on": {}}
    targets = api.resolve_targets(["fbnet_c"])
    def whole(key: str) -> float:  # every whole network "measures" 30 ms
        return 30.0

    result = evaluate.predict(table, targets, sample=4, seed=1, measure=True, loss_ce=2.0,
                              timer=fake_timer(value=whole))
    rows = {r.model: r for r in result.rows}
    parts = split(fbnet(arch="c").eval(), (3, 224, 224))
    expected = sum(table.entries[p.key].median_ms for p in parts)
    assert rows["fbnet_c"].predicted_ms == pytest.approx(expected)
    assert rows["fbnet_c"].error == pytest.approx((expected - 30.0) / 30.0)
    assert rows["fbnet_c"].calibrated_ms == pytest.approx(expected * 1.25)
    assert {"fbnet_a", "fbnet_b", "fbnet_c"} <= set(rows)  # a measured sample always brings FBNet-A/B/C
    assert [r.rank for r in result.rows] == [1, 2, 3, 4, 5, 6, 7]  # sorted by loss = by latency
    preds = [r.predicted_ms for r in result.rows]
    assert preds == sorted(preds)
    assert {s.group for s in result.summary} == {"models", "samples"}
    within = next(s for s in result.summary if s.group == "samples" and s.metric == "within +-10%")
    sample_rows = [r for r in result.rows if r.model.startswith("sample")]
    assert within.raw == np.mean([abs(r.error) <= 0.10 + 1e-12 for r in sample_rows])
    assert result.rate["n"] == 4


def test_cli_predict_sample_from_a_table(cli, full_table_path):
    result = cli("lut", "predict", "--sample", "6", "--seed", "2", "--table", str(full_table_path), "-f", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    table = load(full_table_path)
    index = table.spaces[SPACE]
    fixed = table.entries[index.stem].median_ms + table.entries[index.heads["1984"]].median_ms
    assert len(rows) == 6 and set(rows[0]) == set(evaluate.ROW_FIELDS)
    for row in rows:
        arch = [int(c) for c in row["arch"]]
        assert len(arch) == 22
        expected = fixed + sum(table.entries[index.layers[i][c]].median_ms for i, c in enumerate(arch))
        assert row["predicted_ms"] == pytest.approx(expected)
    assert "architectures per second" in result.stderr
    top = cli("lut", "predict", "--sample", "2000", "--top", "3", "--loss", "2.0", "--table", str(full_table_path),
              "-f", "json")
    assert top.exit_code == 0
    ranked = json.loads(top.stdout)
    assert [r["rank"] for r in ranked] == [1, 2, 3] and "showing 3 of 2000" in top.stderr


def test_cli_environment_mismatch_warns_or_fails(cli, tmp_path, space224):
    jobs, index = space224
    path = tmp_path / "other.json"
    synthetic_table(jobs, index, env_overrides={"cpu": "Some Other CPU"}).save(path)
    warned = cli("lut", "predict", "--sample", "2", "--table", str(path))
    assert warned.exit_code == 0
    assert "warning: the table was measured in another environment" in warned.stderr
    assert "cpu: 'Some Other CPU' ->" in warned.stderr
    strict = cli("lut", "predict", "--sample", "2", "--table", str(path), "--strict-env")
    assert strict.exit_code == 2 and "--strict-env" in strict.stderr
    threads = cli("lut", "predict", "--sample", "2", "--table", str(path), "--threads", "2")
    assert "threads: 1 -> 2" in threads.stderr


def test_cli_lists_missing_blocks(cli, tmp_path, space224):
    model_file = tmp_path / "netmod.py"
    model_file.write_text(textwrap.dedent("""
        from torch import nn

        class Net(nn.Module):
            input_shape = (3, 16, 16)

            def __init__(self):
                super().__init__()
                self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
                self.blocks = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 16, 1))
                self.fc = nn.Linear(16, 4)

            def forward(self, x):
                return self.fc(self.blocks(self.stem(x)).mean((2, 3)))

        def net():
            return Net()
    """))
    jobs, index = space224
    path = tmp_path / "t.json"
    synthetic_table(jobs[:3], index).save(path)
    result = cli("lut", "predict", f"{model_file}:net", "espnet_c", "--table", str(path), "-f", "json")
    assert result.exit_code == 1
    rows = {r["model"]: r for r in json.loads(result.stdout)}
    net = next(r for name, r in rows.items() if name != "espnet_c")
    assert net["missing_parts"] == 4 and net["predicted_ms"] is None
    assert net["missing"].startswith("stem (Conv2d 3x16x16), blocks.0 (Conv2d 8x8x8), blocks.1 (Conv2d 8x8x8)")
    assert "cannot be split" in rows["espnet_c"]["warnings"]
    assert "could not be predicted from the table" in result.stderr and "lut build --space none --models" in result.stderr


def test_cli_build_end_to_end_on_one_layer(cli, tmp_path):
    path = tmp_path / "lut.json"
    args = ("lut", "build", "--entries", "isolated", "--layers", "0", "--min-time", "0", "--min-runs", "2",
            "--no-calibrate", "-o", str(path), "-f", "json")
    first = cli(*args)
    assert first.exit_code == 0, first.output
    groups = {g["group"]: g for g in json.loads(first.stdout)}
    assert groups["fbnet blocks"]["measured"] == 9 and groups["fbnet stem+heads"]["measured"] == 3
    table = load(path)
    # --min-runs 2 --min-time 0, shared among the 3 rounds: each round still times 3 calls
    assert len(table.entries) == 12 and all(e.runs == 3 * 3 for e in table.entries.values())
    assert len(table.spaces[SPACE].layers) == 22  # the index is whole even for a partial build
    second = cli(*args)
    assert second.exit_code == 0
    assert {g["group"]: g["reused"] for g in json.loads(second.stdout)} == {"fbnet blocks": 9, "fbnet stem+heads": 3}
    missing = cli("lut", "predict", "--sample", "2", "--table", str(path))
    assert missing.exit_code == 2 and "are missing from the table" in missing.stderr
    bad = cli("lut", "build", "--entries", "isolated", "--layers", "0,40", "-o", str(path))
    assert bad.exit_code == 2 and "not a layer" in bad.stderr


def test_cli_usage_errors(cli, tmp_path):
    assert cli("lut", "predict").exit_code == 2
    assert cli("lut", "build", "--space", "darts").exit_code == 2
    assert cli("lut", "build", "--backend", "compile").exit_code == 2
    assert cli("lut", "predict", "--sample", "2", "--table", str(tmp_path / "none.json")).exit_code == 2


def test_additivity_uses_a_table_or_measures_the_blocks(tmp_path, monkeypatch, space224):
    from cnnprof.lut import measure

    whole = {"fbnet_b": 20.0}

    def make_timer(*, backend, threads, protocol, onnx_dir, clock):
        return fake_timer(value=lambda key: whole.get(key, synthetic_ms(key)))

    monkeypatch.setattr(measure, "make_timer", make_timer)
    monkeypatch.chdir(tmp_path)  # no default table here
    rows = evaluate.additivity(models=("fbnet_b",), rounds=3)
    parts = split(fbnet(arch="b").eval(), (3, 224, 224))
    expected = sum(synthetic_ms(p.key) for p in parts)
    assert rows[0].model == "fbnet_b" and rows[0].predicted_ms == pytest.approx(expected)
    assert rows[0].measured_ms == 20.0 and rows[0].ratio == pytest.approx(expected / 20.0)
    assert rows[0].source == "measured now (3 interleaved rounds)"
    jobs, index = space224
    path = tmp_path / "t.json"
    synthetic_table(jobs, index).save(path)
    rows = evaluate.additivity(path, models=("fbnet_b",))
    assert rows[0].predicted_ms == pytest.approx(expected) and rows[0].source == str(path)


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
@pytest.mark.parametrize("clock", ["wall", "cpu"])
def test_real_timers_time_a_small_block(tmp_path, backend, clock):
    from cnnprof.lut.measure import make_timer
    from cnnprof.timing.protocol import Protocol

    timer = make_timer(backend=backend, threads=1, protocol=Protocol(warmup_runs=1, warmup_s=0, min_runs=5, min_time_s=0),
                       onnx_dir=str(tmp_path), clock=clock)
    m = timer(FBNET_SPACE.build_block(21, "k3_e1"), FBNET_SPACE.block_input_shapes()[21], "fbnet L21 k3_e1")
    assert m.runs == 5  # --min-runs 5 and no minimum time: exactly 5 calls
    if backend == "onnxruntime":
        assert list(tmp_path.glob("*.onnx"))  # exported into the folder the caller owns


@pytest.mark.timing
@pytest.mark.parametrize("clock", ["wall", "cpu"])
def test_timers_read_milliseconds(tmp_path, clock):
    """A block that costs 2 ms of CPU per call reads as 2-3 (ms) on either clock: the CPU clock
    counts only this thread's work (a preemption does not add to it), the wall clock at least
    that and within 1.5x of the block's own wall-clock reading."""
    from busy_work import BusyWork

    from cnnprof.lut.measure import make_timer
    from cnnprof.timing.protocol import Protocol

    block = BusyWork(cpu_ms=2.0)
    protocol = Protocol(warmup_runs=1, warmup_s=0, min_runs=5, min_time_s=0)
    timer = make_timer(backend="torch", threads=1, protocol=protocol, onnx_dir=str(tmp_path), clock=clock)
    m = timer(block, (1,), "busy")
    assert m.runs == 5 and m.median_ms >= 2.0
    if clock == "cpu":
        assert m.median_ms < 3.0, m
    else:
        assert m.median_ms < 1.5 * float(np.median(block.inner_ms[-5:])), (m, block.inner_ms)


def test_cpu_clock_needs_one_thread(cli, tmp_path):
    result = cli("lut", "build", "--clock", "cpu", "--threads", "2", "-o", str(tmp_path / "t.json"))
    assert result.exit_code == 2 and "--threads 1" in result.stderr
    assert cli("lut", "build", "--clock", "sundial", "-o", str(tmp_path / "t.json")).exit_code == 2


def test_predict_counts_entries_flagged_when_measured(full_table_path):
    import dataclasses

    table = load(full_table_path)
    stem = table.spaces[SPACE].stem
    table.entries[stem] = dataclasses.replace(table.entries[stem], warnings=("machine busy: others used 1.2 of 2 cores",
                                                                            "noisy: IQR is 14% of the median"))
    result = evaluate.predict(table, sample=3)
    assert result.flagged == {"machine busy": 1, "noisy": 1}
    assert result.used == len(SpaceMatrix.from_table(table, SPACE).keys)
