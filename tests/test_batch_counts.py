"""Counts at batch N: N times batch 1 field by field (parameters excepted), checked against the
counter run at batch N and against TinyNet's hand-worked figures, in the API and in the rows
that ``profile``, ``bench`` and ``sweep`` print for ``--batch N``."""

import csv
import dataclasses
import io
import json
from pathlib import Path

import pytest

from cnnprof import counting
from cnnprof.targets import resolve_targets

USER = str(Path(__file__).with_name("user_model.py"))

# TinyNet (tests/user_model.py), input 3x32x32, per sample: conv 3 -> 8 (3x3, no bias), batch norm,
# ReLU, global average pool, linear 8 -> 10
TINY_PARAMS = 3 * 3 * 3 * 8 + 2 * 8 + 8 * 10 + 10  # 322
TINY_MACS = 3 * 3 * 3 * 8 * 32 * 32 + 8 * 10  # 221,264: conv + linear
TINY_ACTIVATIONS = 8 * 32 * 32 + 10  # outputs of the conv and the linear layer
# leaf modules (input, output) elements per sample: conv, bn, relu, pool, linear
TINY_IO = (3 * 1024 + 8 * 1024) + (8 * 1024) * 2 + (8 * 1024) * 2 + (8 * 1024 + 8) + (8 + 10)


def tiny_bytes_moved(batch: int) -> int:
    """fp32 bytes over the leaf modules: activations once per sample, weights once per call."""
    return 4 * (batch * TINY_IO + TINY_PARAMS)


def test_tinynet_counts_at_batch_n_are_the_hand_worked_figures_times_n():
    t = resolve_targets([f"{USER}:tiny_net"])[0]
    model = t.build()
    for batch in (1, 4):
        c = counting.count(model, t.input, batch=batch)
        assert (c.params, c.macs, c.activations, c.bytes_moved) == (
            TINY_PARAMS, batch * TINY_MACS, batch * TINY_ACTIVATIONS, tiny_bytes_moved(batch))


@pytest.mark.parametrize("ref, shape", [(f"{USER}:tiny_net", None), ("mobilenetv3_small", (3, 64, 64))])
def test_scaled_counts_equal_the_counter_run_at_batch_n_field_by_field(ref, shape):
    """What ``bench`` and ``sweep`` print for batch N (batch-1 counts scaled) is what counting a
    batch-N input gives, every field, and each batch-proportional field is N times batch 1."""
    t = resolve_targets([ref], input_shape=shape)[0]
    model = t.build(calibrate=False)
    one = counting.count(model, t.input, batch=1)
    n = 3
    direct = counting.count(model, t.input, batch=n)
    scaled = counting.scale_to_batch(one, n)
    for f in dataclasses.fields(direct):
        assert getattr(scaled, f.name) == getattr(direct, f.name), f.name
    assert direct.params == one.params and direct.uncounted == one.uncounted
    assert direct.macs == n * one.macs and direct.macs_fvcore == n * one.macs_fvcore
    assert direct.activations == n * one.activations
    assert direct.peak_activation_bytes == n * one.peak_activation_bytes
    assert direct.by_op == {k: n * v for k, v in one.by_op.items()}
    assert [m.macs for m in direct.modules] == [n * m.macs for m in one.modules]
    weights = sum(4 * layer.params * layer.calls for layer in one.layers)  # read once per call
    assert direct.bytes_moved == n * (one.bytes_moved - weights) + weights


def test_bench_rows_at_batch_4_carry_four_times_the_counts_and_a_consistent_gmacs(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("bench", f"{USER}:tiny_net", "--batch", "1,4", "--min-time", "0", "--min-runs", "3",
                 "--format", "json", "--no-save")
    assert result.exit_code == 0, result.stderr
    rows = {r["batch"]: r for r in json.loads(result.stdout)}
    assert sorted(rows) == [1, 4]
    for batch, r in rows.items():
        assert r["error"] == "" and r["params"] == TINY_PARAMS
        assert (r["macs"], r["activations"], r["bytes_moved"]) == (
            batch * TINY_MACS, batch * TINY_ACTIVATIONS, tiny_bytes_moved(batch))
        seconds = r["latency_ms_median"] / 1e3
        assert r["gmacs_per_s"] == pytest.approx(batch * TINY_MACS / seconds / 1e9, rel=1e-9)
        assert r["throughput_per_s"] == pytest.approx(batch / seconds, rel=1e-9)


def test_profile_csv_at_batch_4(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("profile", f"{USER}:tiny_net", "--batch", "4", "--format", "csv")
    assert result.exit_code == 0, result.stderr
    (row,) = list(csv.DictReader(io.StringIO(result.stdout)))
    assert row["batch"] == "4" and int(row["params"]) == TINY_PARAMS
    assert (int(row["macs"]), int(row["activations"]), int(row["bytes_moved"])) == (
        4 * TINY_MACS, 4 * TINY_ACTIVATIONS, tiny_bytes_moved(4))


def test_sweep_rows_at_batch_4(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("sweep", f"{USER}:tiny_net", "--batch", "1,4", "--no-timing", "--db", str(tmp_path / "s.db"),
                 "-f", "json")
    assert result.exit_code == 0, result.stderr
    rows = {r["batch"]: r for r in json.loads(result.stdout)}
    for batch in (1, 4):
        r = rows[batch]
        assert (r["params"], r["macs"], r["activations"], r["bytes_moved"]) == (
            TINY_PARAMS, batch * TINY_MACS, batch * TINY_ACTIVATIONS, tiny_bytes_moved(batch))
