"""Hostile inputs, round three: numbers out of range or in odd spellings, a database holding values
cnnprof never wrote, lookup-table options that make no sense, read-only caches, an ASCII-only
terminal, and measurements that must say when they mean little. Each bad input is one line on
stderr with exit 2 (or a value shown as stored), never a traceback."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest
from support import one_line

sys.path.insert(0, str(Path(__file__).parent))

USER = str(Path(__file__).with_name("user_model.py"))


@pytest.fixture(scope="module")
def filled_db(tmp_path_factory):
    from store_data import fill

    path = tmp_path_factory.mktemp("hostile-db") / "a.db"
    fill(path, revisions=2)
    return path


# -- numbers a filter cannot hold, and filters that must say no -------------------------------------
@pytest.mark.parametrize("option", ["--batch", "--run", "--threads"])
def test_db_rows_numbers_beyond_sqlite_are_one_line(cli, filled_db, option):
    result = cli("db", "rows", "--db", str(filled_db), option, str(10**20))
    assert result.exit_code == 2 and one_line(result), result.stderr
    assert f"{option} must be at most 9,223,372,036,854,775,807" in result.stderr


@pytest.mark.parametrize("args, needle", [
    (["--since", "garbage"], "--since takes a UTC date or time"),
    (["--since", "2026-13-45"], "--since takes a UTC date or time"),
    (["--precision", "int3"], "unknown precision 'int3'; choose from fp32"),
])
def test_db_rows_filters_that_match_nothing_by_mistake_are_refused(cli, filled_db, args, needle):
    result = cli("db", "rows", "--db", str(filled_db), *args)
    assert result.exit_code == 2 and one_line(result) and needle in result.stderr


def test_db_rows_since_a_date_or_a_time_still_selects(cli, filled_db):
    everything = json.loads(cli("db", "rows", "--db", str(filled_db), "-f", "json").stdout)
    assert json.loads(cli("db", "rows", "--db", str(filled_db), "--since", "2000-01-01", "-f", "json").stdout) == \
        everything
    assert json.loads(cli("db", "rows", "--db", str(filled_db), "--since", "2999-01-01T00:00", "-f",
                          "json").stdout) == []


def test_db_rows_machine_wildcards_are_characters(cli, filled_db):
    def count(machine):
        result = cli("db", "rows", "--db", str(filled_db), "--machine", machine, "-f", "json")
        assert result.exit_code == 0, result.stderr
        return len(json.loads(result.stdout))

    assert count("Test CPU") > 0
    assert count("%") == 0 and count("Test_CPU") == 0 and count("Test%CPU") == 0


def test_db_rows_batch_numbers_are_normalised(cli, filled_db):
    once = json.loads(cli("db", "rows", "--db", str(filled_db), "--batch", "1", "-f", "json").stdout)
    spelled = json.loads(cli("db", "rows", "--db", str(filled_db), "--batch", "1,01,+1", "-f", "json").stdout)
    assert once and spelled == once


# -- a database holding values cnnprof never wrote -------------------------------------------------
@pytest.fixture
def tampered_db(filled_db, tmp_path):
    path = tmp_path / "tampered.db"
    path.write_bytes(filled_db.read_bytes())
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE runs SET argv = 'not json' WHERE id = 1")
        conn.execute("UPDATE runs SET context = '{roofs' WHERE id = (SELECT MAX(id) FROM runs)")
        first = conn.execute("SELECT MIN(id) FROM rows WHERE model = 'ghostnet_100' AND kind = 'profile'").fetchone()[0]
        conn.execute("UPDATE rows SET batch = 'abc' WHERE id = ?", (first,))
        conn.execute("UPDATE rows SET latency_ms_median = 'fast' WHERE id = ?", (first + 1,))
        conn.execute("UPDATE rows SET record = X'00FF' WHERE kind = 'claim'")
        conn.execute("UPDATE rows SET model = X'1B5B', record = '{bad' WHERE id = ?", (first + 2,))
    conn.close()
    return path


@pytest.mark.parametrize("args", [["db", "runs"], ["db", "runs", "-f", "json"], ["db", "rows"],
                                  ["db", "rows", "--records", "-f", "json"], ["history", "ghostnet_100"]])
def test_malformed_values_in_a_database_are_shown_as_stored(cli, tampered_db, args):
    result = cli(*args, "--db", str(tampered_db))
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_malformed_numbers_become_the_rows_error(cli, tampered_db):
    rows = json.loads(cli("db", "rows", "--db", str(tampered_db), "--records", "-f", "json").stdout)
    bad = [r for r in rows if "not a number as stored" in (r["error"] or "")]
    assert len(bad) == 2 and {r["batch"] for r in bad} <= {None, 1, 4}
    assert any("batch holds 'abc'" in r["error"] for r in bad) and any("'fast'" in r["error"] for r in bad)
    assert any(r["record"] == "{bad" for r in rows)  # not JSON: the text as stored
    assert all(isinstance(r["model"], (str, type(None))) for r in rows)
    runs = json.loads(cli("db", "runs", "--db", str(tampered_db), "-f", "json").stdout)
    assert [r["argv"] for r in runs if r["id"] == 1] == ["not json"]


def test_a_report_of_a_tampered_database_is_written(cli, tampered_db, tmp_path):
    result = cli("report", "--db", str(tampered_db), "-o", str(tmp_path / "r.html"))
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "r.html").stat().st_size > 1000


# -- lut predict: sizes, seeds and loss parameters ---------------------------------------------------
@pytest.fixture(scope="module")
def lut_table(tmp_path_factory):
    from test_lut import fbnet_space_jobs, synthetic_table

    jobs, index = fbnet_space_jobs()
    path = tmp_path_factory.mktemp("hostile-lut") / "lut.json"
    synthetic_table(jobs, index).save(path)
    return path


@pytest.mark.parametrize("args, needle", [
    (["--sample", str(10**20)], "--sample must be at most 10,000,000"),
    (["--sample", str(10**9)], "--sample must be at most 10,000,000"),
    (["--sample", "3", "--seed", "-5"], "--seed must be at least 0"),
    (["--sample", "3", "--loss", "nan"], "--loss (a cross-entropy) must be a finite number above 0"),
    (["--sample", "3", "--loss", "2", "--alpha", "inf", "--beta", "nan"], "--alpha must be a finite number above 0"),
    (["--sample", "3", "--loss", "2", "--beta", "nan"], "--beta must be a finite number from 0 to 10"),
    (["--sample", "3", "--loss", "2", "--beta", "1e308"], "--beta must be a finite number from 0 to 10"),
    (["--sample", "3", "--loss", "-1"], "--loss (a cross-entropy) must be a finite number above 0"),
])
def test_lut_predict_numbers_out_of_range_are_one_line(cli, lut_table, args, needle):
    result = cli("lut", "predict", "--table", str(lut_table), *args)
    assert result.exit_code == 2 and one_line(result), result.stderr
    assert needle in result.stderr


def test_lut_predict_in_range_still_ranks(cli, lut_table):
    result = cli("lut", "predict", "--table", str(lut_table), "--sample", "5", "--seed", "4294967295", "--loss", "2",
                 "--alpha", "0.2", "--beta", "10", "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert "RuntimeWarning" not in result.stderr
    rows = json.loads(result.stdout)
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]


def test_a_table_whose_space_has_no_layers_predicts_nothing(cli, lut_table, tmp_path):
    data = json.loads(lut_table.read_text())
    for space in data["spaces"].values():
        space["layers"] = []
    path = tmp_path / "no-layers.json"
    path.write_text(json.dumps(data))
    result = cli("lut", "predict", "--table", str(path), "--sample", "3")
    assert result.exit_code == 2 and one_line(result) and "has no searchable layers" in result.stderr


# -- sweep: numbers normalised and bounded before anything is stored --------------------------------
def test_sweep_batch_spellings_of_one_number_are_one_cell(cli):
    result = cli("sweep", "mobilenetv3_small", "--backend", "torch", "--batch", "1,01,+1", "--list")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == ["mobilenetv3_small torch fp32 b1 t1"]


def test_sweep_parallel_is_capped_at_the_cores_with_a_warning(cli, tmp_path):
    from cnnprof.timing.environment import cpu_count

    result = cli("sweep", f"{USER}:tiny_net", "--no-timing", "-j", "1000", "--db", str(tmp_path / "s.db"),
                 "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert f"warning: --parallel 1000: this process may use {cpu_count()} cores" in result.stderr
    assert f"(counting, {cpu_count()} at once)" in result.stderr


@pytest.mark.parametrize("args, toml, needle", [
    (["--memory-limit", "1e308"], "", "--memory-limit (GB) must be a finite number from 0.1 to 1e+06"),
    (["--memory-limit", "inf"], "", "--memory-limit (GB) must be a finite number"),
    ([], "[run]\nmemory_limit = 1e308\n", "'run.memory_limit' (GB) must be a finite number from 0.1 to 1e+06"),
    (["--batch", str(10**23)], "", "batch must be at most 1,048,576"),
    ([], f"batches = [{10**23}]\n", "'batches' must be at most 1,048,576"),
])
def test_sweep_numbers_out_of_range_are_refused_before_a_run_is_stored(cli, tmp_path, args, toml, needle):
    db = tmp_path / "s.db"
    extra = []
    if toml:
        (tmp_path / "sweep.toml").write_text('models = ["mobilenetv3_small"]\n' + toml)
        extra = ["--config", str(tmp_path / "sweep.toml")]
    result = cli("sweep", *(["mobilenetv3_small"] if not toml else []), *args, *extra, "--db", str(db))
    assert result.exit_code == 2 and one_line(result), result.stderr
    assert needle in result.stderr
    assert not db.exists()  # no run was opened (none left "running")


# -- a cache that cannot be written: measure anyway, and say so ------------------------------------
@pytest.fixture
def unwritable_cache(tmp_path, monkeypatch):
    """XDG_CACHE_HOME is a file: no folder can be made under it (a read-only home, even for root),
    and the machine's roofs are measured small and fast."""
    from cnnprof import machine

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    real_measure = machine.measure
    monkeypatch.setattr(machine, "measure", lambda threads=1, **_: real_measure(threads, gemm_sizes=(32,),
                                                                                 copy_mib=1, repeats=1))
    return blocker


def test_machine_measures_when_its_cache_cannot_be_kept(cli, unwritable_cache):
    result = cli("machine", "-f", "json")
    assert result.exit_code == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row["source"] == "measured now" and row["peak_gmacs"] > 0 and row["cache"].endswith("(not kept)")
    assert "warning: the roofs were measured but not cached" in result.stderr and "Not a directory" in result.stderr


def test_profile_timing_measures_when_the_cache_cannot_be_kept(cli, unwritable_cache):
    result = cli("profile", f"{USER}:tiny_net", "--timing", "--min-runs", "3", "--min-time", "0", "-f", "json",
                 "--no-db")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) and "the roofs were measured but not cached" in result.stderr


# -- an ASCII-only stdout ---------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["table", "csv"])
def test_an_ascii_only_stdout_gets_escapes_not_a_traceback(tmp_path, fmt):
    import os
    import subprocess

    from store_data import fill

    db = tmp_path / "alpha.db"
    fill(db, revisions=1, models=["net_α"], batches=(1,), backends=("torch",), kinds=False)
    env = {**os.environ, "PYTHONIOENCODING": "ascii", "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.run([sys.executable, "-c", "from cnnprof.cli import main; main()", "db", "rows", "--db", str(db),
                           "-f", fmt], env=env, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert b"net_\\u03b1" in proc.stdout and b"Traceback" not in proc.stderr


# -- measurements that must say when they mean little ----------------------------------------------
MODELS = '''
import torch
from torch import nn


class NaNNet(nn.Module):
    input_shape = (3, 16, 16)

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3)) * float("nan")


def nan_net():
    return NaNNet()


class Slicer(nn.Module):
    input_shape = (3, 16, 16)

    def forward(self, x):
        return x.flatten(1)[:, :10] * 2.0


def nothing_to_quantise():
    return Slicer()


class Convolves(nn.Module):
    input_shape = (3, 16, 16)

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3))


def convolves():
    return Convolves()
'''

QUICK = ("--min-time", "0", "--min-runs", "3", "-f", "json", "--no-save")


@pytest.fixture
def model_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # exports land in ./models
    path = tmp_path / "odd_models.py"
    path.write_text(MODELS)
    return path


def _parity_notes(row) -> list[str]:
    return [w.strip() for w in row["warnings"].split(";") if w.strip().startswith("parity:")]


def test_a_model_whose_output_is_nan_gets_a_parity_warning_on_every_row(cli, model_file):
    result = cli("bench", f"{model_file}:nan_net", "--backend", "torch,onnxruntime", "--in-process", *QUICK)
    assert result.exit_code == 0, result.stderr
    rows = {r["backend"]: r for r in json.loads(result.stdout)}
    for backend in ("torch", "onnxruntime"):  # torch fp32 is the reference itself: it checks its own output
        (note,) = _parity_notes(rows[backend])
        assert "the model's own output (fp32 PyTorch eager) holds" in note and "inf or NaN" in note


def test_a_finite_model_gets_no_parity_warning(cli, model_file):
    result = cli("bench", f"{model_file}:convolves", "--backend", "torch,onnxruntime", "--in-process", *QUICK)
    assert result.exit_code == 0, result.stderr
    assert all(_parity_notes(r) == [] for r in json.loads(result.stdout))


@pytest.mark.parametrize("factory, quantised", [("nothing_to_quantise", False), ("convolves", True)])
def test_int8_of_a_model_with_nothing_to_quantise_says_so(cli, model_file, factory, quantised):
    result = cli("bench", f"{model_file}:{factory}", "--backend", "onnxruntime", "--precision", "int8",
                 "--calibration-samples", "2", "--parity-inputs", "2", "--in-process", *QUICK)
    assert result.exit_code == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row["precision"] == "int8" and row["error"] == ""
    assert ("int8: nothing was quantised" in row["warnings"]) is not quantised


def _custom_op_onnx(path: Path, domain: str = "my.ops", op: str = "MyMagic") -> Path:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node(op, ["c"], ["y"], name="magic", domain=domain)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])], [w])
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    onnx.save(helper.make_model(graph, opset_imports=opsets), path)
    return path


def test_an_onnx_file_with_an_unknown_custom_op_is_not_complete(cli, tmp_path):
    from cnnprof.onnx_count import count_onnx

    path = _custom_op_onnx(tmp_path / "custom.onnx")
    assert count_onnx(path).status == "partial: MyMagic magic (unknown operator of domain my.ops)"
    (row,) = json.loads(cli("profile", str(path), "-f", "json").stdout)
    assert row["counts_status"].startswith("partial: MyMagic") and row["macs"] == 4 * 6 * 6 * 27
    known = _custom_op_onnx(tmp_path / "relu.onnx", domain="", op="Relu")
    assert count_onnx(known).status == "complete"


@pytest.mark.parametrize("command", ["bench", "compare"])
def test_an_onnx_file_on_the_torch_backend_alone_is_refused_before_measuring(cli, tmp_path, command):
    path = _custom_op_onnx(tmp_path / "relu.onnx", domain="", op="Relu")
    result = cli(command, str(path), "--backend", "torch", "--no-save")
    assert result.exit_code == 2 and one_line(result), result.stderr
    assert "is an ONNX file: it is timed with onnxruntime" in result.stderr and "not torch" in result.stderr


def test_db_runs_limit_beyond_sqlite_is_every_run(cli, filled_db):
    result = cli("db", "runs", "--db", str(filled_db), "--limit", str(10**20), "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert len(json.loads(result.stdout)) == len(json.loads(cli("db", "runs", "--db", str(filled_db), "-f",
                                                                "json").stdout))
