"""Sweeps: the matrix and its TOML file, pooling, workers that crash, hang or run out of memory, a
sweep killed with SIGKILL and resumed, Ctrl-C, and two sweeps writing to one database at once.

The sweeps here measure tests/user_model.py's TinyNet (counting, or timing for a few
milliseconds): each worker still starts a Python process and imports torch (~2-3 s here)."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import one_line
from sweep_processes import workers_of

ROOT = Path(__file__).resolve().parents[1]
USER = str(Path(__file__).with_name("user_model.py"))
FAILING = str(Path(__file__).with_name("sweep_models.py"))


# -- the matrix ---------------------------------------------------------------------------------------
def test_a_toml_file_gives_the_matrix_and_options_replace_its_values(cli, tmp_path):
    config = tmp_path / "sweep.toml"
    config.write_text(f'models = ["{USER}:tiny_net", "mobilenetv3_small"]\nbackends = ["torch"]\nbatches = [1, 2]\n'
                      'resolutions = ["native", 64]\n[run]\npasses = 3\ntimeout = 30\n')
    # the file names a .py file outside its own folder: allowed by --trust (tests/test_trust.py)
    result = cli("sweep", "--config", str(config), "--list", "--db", str(tmp_path / "x.db"), "--trust", USER)
    assert result.exit_code == 0, result.stderr
    cells = result.stdout.strip().splitlines()
    assert len(cells) == 2 * 2 * 2 and "4 cell(s)" not in result.stderr and "8 cell(s) x 3 pass(es)" in result.stderr
    assert f"{USER}:tiny_net torch fp32 b2 t1 @64x64" in cells
    result = cli("sweep", "--config", str(config), "--list", "--batch", "4", "--no-timing", "--trust", USER)
    assert result.stdout.strip().splitlines() == [
        f"{USER}:tiny_net count b4 t1", f"{USER}:tiny_net count b4 t1 @64x64", "mobilenetv3_small count b4 t1",
        "mobilenetv3_small count b4 t1 @64x64"]
    assert "x 1 pass(es)" in result.stderr  # counting is exact: one pass


@pytest.mark.parametrize("text, needle", [
    ('model = ["a"]', "unknown key 'model' (did you mean 'models'?)"),
    ('batches = ["x"]', "'batches' must be a whole number"),
    ('batches = 4.5', "'batches' must be a whole number"),
    ('models = ["mobilenetv3_small"]\n[run]\npases = 2', "unknown key 'run.pases' (did you mean 'passes'?)"),
    ('models = ["mobilenetv3_small"]\n[run]\ntimeout = -1', "'run.timeout' must be a number >= 1"),
    ('models = ["mobilenetv3_small"]\nbackends = ["tvm"]', "unknown backend 'tvm'"),
    ('models = ["mobilenetv3_small"]\nbackends = ["tensorrt"]', "tensorrt runs on a CUDA device: none is available"),
    ('models = [', "is not valid TOML"),
    ('run = 3', "'run' must be a table"),
])
def test_a_bad_toml_file_is_one_line_naming_the_key(cli, tmp_path, text, needle):
    config = tmp_path / "sweep.toml"
    config.write_text(text)
    result = cli("sweep", "--config", str(config), "--list")
    assert result.exit_code == 2 and one_line(result) and needle in result.stderr, result.stderr


def test_an_int8_cell_is_quantised_timed_and_checked_for_parity_in_its_worker(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("sweep", "mobilenetv3_small", "--backend", "onnxruntime", "--precision", "int8", "--resolution",
                 "64", "--passes", "1", "--min-time", "0", "--min-runs", "3", "--db", str(tmp_path / "x.db"), "-f", "json")
    assert result.exit_code == 0, result.stderr
    [row] = json.loads(result.stdout)
    assert row["precision"] == "int8" and row["error"] == "" and row["runs"] == 3
    # against fp32 PyTorch eager: an fp32 ONNX Runtime copy is above 100 dB here; int8 moves the logits
    assert 0 < row["parity_max_abs"] and row["parity_sqnr_db"] < 40
    # the worker is fresh: its growth is measured (~100 MB: the module it built, the quantiser's heap, the
    # session), not its idle resident set (~270 MB more: torch, ONNX Runtime)
    assert 4 * row["params"] <= row["peak_memory_bytes"] <= 192 << 20, row["peak_memory_bytes"]
    result = cli("sweep", "mobilenetv3_small", "--precision", "fp64", "--list")
    assert result.exit_code == 2 and one_line(result) and "unknown precision 'fp64'" in result.stderr


def test_each_pass_has_its_own_shuffled_order_and_the_same_seed_gives_the_same_orders():
    from cnnprof.sweep.driver import pass_order
    from cnnprof.sweep.matrix import Matrix

    cells = Matrix(batches=(1, 2, 4, 8)).cells(["a", "b", "c"])
    first, second = pass_order(cells, 1, 0), pass_order(cells, 2, 0)
    assert sorted(c.key for c in first) == sorted(c.key for c in cells) and first != second and first != cells
    assert pass_order(cells, 1, 0) == first and pass_order(cells, 1, 1) != first


def test_a_cell_pools_the_samples_of_its_passes():
    from cnnprof.sweep.driver import pool
    from cnnprof.sweep.matrix import Cell

    cell = Cell(model="m", backend="torch")
    row = {"model": "m", "batch": 1, "macs": 1_000_000, "params": 10, "backend": "torch", "threads": 1,
           "warnings": "machine busy: load average 3.0 on 2 cores", "environment": {"cores": 2},
           "latency_tails": "p90 and p99 from 30 calls: too few for a bound (p90 needs 64, p99 needs 662, --min-runs 662)"}
    passes = [{"ok": True, "row": row, "samples": [1.0, 1.1, 1.2] * 10},
              {"ok": True, "row": {**row, "params": None}, "samples": [2.0, 2.1, 2.2] * 10},
              {"ok": False, "error": "the worker crashed: killed by SIGSEGV", "row": {"model": "m"}}]
    pooled = pool(cell, passes, 3)
    assert pooled["runs"] == 60 and pooled["passes"] == 2 and pooled["passes_planned"] == 3
    assert pooled["latency_ms_median"] == pytest.approx(1.6) and pooled["params"] == 10 and pooled["error"] == ""
    assert pooled["pass_medians"] == [1.1, 2.1]
    kinds = [w.split(":")[0] for w in pooled["warnings"].split("; ")]
    assert kinds == ["machine busy", "noisy", "passes", "failed passes"]
    assert pooled["latency_tails"].startswith("p90 and p99 from 60 calls")  # judged on the pool, not a pass
    assert pooled["latency_ms_p90_upper"] is None and pooled["latency_ms_p99_upper"] is None
    failed = pool(cell, passes[2:], 3)
    assert failed["error"].startswith("the worker crashed") and failed["passes"] == 0


# -- workers that fail -------------------------------------------------------------------------------
def test_a_worker_that_crashes_hangs_or_runs_out_of_memory_is_that_cells_error(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "x.db"
    models = [f"{USER}:tiny_net", f"{FAILING}:segfaults", f"{FAILING}:oom_killed", f"{FAILING}:hangs",
              f"{FAILING}:hungry"]
    result = cli("sweep", *models, "--no-timing", "--input", "3x16x16", "--timeout", "15", "--memory-limit", "3",
                 "--db", str(db), "-f", "json")
    assert result.exit_code == 1 and "some rows failed: 4 of 5" in result.stderr, result.stderr
    rows = {Path(r["model"]).name.split(":")[1]: r for r in json.loads(result.stdout)}
    assert rows["tiny_net"]["error"] == "" and rows["tiny_net"]["params"] == 322
    assert "killed by SIGSEGV" in rows["segfaults"]["error"]
    assert "killed by SIGKILL (out of memory?" in rows["oom_killed"]["error"]
    assert "timed out" in rows["hangs"]["error"]
    assert rows["hungry"]["error"].startswith("out of memory")
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*), SUM(ok) FROM passes").fetchone() == (5, 1)
    assert conn.execute("SELECT status FROM runs").fetchone()[0] == "done"


# -- killed, resumed, interrupted, concurrent --------------------------------------------------------
def _sweep(tmp_path, *args, **popen):
    options = {"env": {**os.environ, "PYTHONPATH": str(ROOT)}, **popen}
    return subprocess.Popen([sys.executable, "-c", "from cnnprof.cli import main; main()", "sweep", *args],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **options)


def _wait_for_passes(db: Path, n: int, proc, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while True:
        assert proc.poll() is None, proc.communicate()
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=5) as conn:
                    if conn.execute("SELECT COUNT(*) FROM passes").fetchone()[0] >= n:
                        return
            except sqlite3.OperationalError:
                pass
        assert time.time() < deadline, "the sweep stored no pass in time"
        time.sleep(0.1)


def test_a_sweep_killed_mid_cell_and_resumed_measures_every_cell_exactly_once(tmp_path):
    db = tmp_path / "x.db"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    args = [f"{USER}:tiny_net", "--backend", "torch", "--batch", "1,2", "--passes", "2", "--min-time", "0.05",
            "--min-runs", "5", "--db", str(db)]
    first = _sweep(tmp_path, *args, env={**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp)})
    _wait_for_passes(db, 1, first)
    time.sleep(0.5)  # the next cell's worker is running now
    first.kill()  # SIGKILL: no clean-up of any kind
    first.wait()
    deadline = time.time() + 30
    while workers_of(tmp) and time.time() < deadline:  # its worker notices and ends
        time.sleep(0.2)
    assert workers_of(tmp) == []
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT status FROM runs").fetchall() == [("running",)]
    stored = conn.execute("SELECT COUNT(*) FROM passes").fetchone()[0]
    assert 1 <= stored < 4
    conn.close()
    second = _sweep(tmp_path, *args, "--resume", "-f", "json")
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err.decode()
    assert f"resuming sweep run 1: {stored} cell pass(es) already stored" in err.decode()
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*), MIN(status) FROM runs").fetchone() == (1, "done")
    cells = conn.execute("SELECT cell, COUNT(*), MIN(passes), MAX(passes) FROM rows GROUP BY cell").fetchall()
    assert sorted(c[0].split("|")[3] for c in cells) == ["b1", "b2"]
    assert all(n == 1 and lo == hi == 2 for _, n, lo, hi in cells), cells  # one row each, pooling both passes
    per_pass = conn.execute("SELECT cell, pass, COUNT(*) FROM passes GROUP BY cell, pass").fetchall()
    assert len(per_pass) == 4 and all(n == 1 for *_, n in per_pass)
    assert conn.execute("SELECT COUNT(*) FROM rows WHERE latency_ms_median > 0 AND runs >= 10").fetchone()[0] == 2
    third = _sweep(tmp_path, *args, "--resume")
    _, err = third.communicate(timeout=120)
    assert third.returncode == 0 and "skipping 2 cell(s) measured completely" in err.decode()
    assert "nothing to measure" in err.decode()
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1


def test_ctrl_c_stops_after_the_running_cell_and_keeps_what_was_measured(tmp_path):
    db = tmp_path / "x.db"
    models = [f"{USER}:tiny_net(width={w})" for w in (4, 5, 6, 7)]
    proc = _sweep(tmp_path, *models, "--no-timing", "--parallel", "1", "--db", str(db), "-f", "json",
                  start_new_session=True)
    _wait_for_passes(db, 1, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()
    assert "stopping after the cells running now" in err.decode() and "--resume" in err.decode()
    rows = json.loads(out)
    assert 1 <= len(rows) < 4 and all(r["partial"] for r in rows)
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT status FROM runs").fetchone()[0] == "interrupted"
    assert conn.execute("SELECT COUNT(*) FROM rows").fetchone()[0] == len(rows)


def test_two_sweeps_writing_to_one_database_at_once_lose_nothing(tmp_path):
    db = tmp_path / "x.db"
    a = [f"{USER}:tiny_net(width={w})" for w in (4, 5, 6)]
    b = [f"{USER}:tiny_net(width={w})" for w in (7, 8, 9)]
    procs = [_sweep(tmp_path, *models, "--no-timing", "--parallel", "2", "--db", str(db)) for models in (a, b)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    runs = conn.execute("SELECT r.id, COUNT(w.id), r.status FROM runs r JOIN rows w ON w.run_id = r.id GROUP BY r.id"
                        ).fetchall()
    assert sorted(n for _, n, _ in runs) == [3, 3] and {s for *_, s in runs} == {"done"}
    params = sorted(p for (p,) in conn.execute("SELECT params FROM rows"))
    assert params == [3 * 3 * 3 * w + 2 * w + w * 10 + 10 for w in (4, 5, 6, 7, 8, 9)]  # TinyNet's, worked out
