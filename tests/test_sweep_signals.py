"""SIGTERM is handled as Ctrl-C is (the run marked interrupted, the workers and their temporary
folders gone, exit 143), and nothing a user's model starts outlives its worker, not even a child
that moved to a session of its own."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from sweep_processes import wait_for

ROOT = Path(__file__).resolve().parents[1]
MODELS = str(Path(__file__).with_name("signal_models.py"))
USER = str(Path(__file__).with_name("user_model.py"))
CLI = [sys.executable, "-c", "from cnnprof.cli import main; main()"]


def _env(tmp_path, **more):
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    return {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp), **more}


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_sigterm_stops_a_sweep_as_ctrl_c_does(tmp_path):
    db, mark = tmp_path / "x.db", tmp_path / "mark"
    env = _env(tmp_path, CNNPROF_TEST_MARK=str(mark))
    proc = subprocess.Popen([*CLI, "sweep", f"{MODELS}:builds_slowly", f"{USER}:tiny_net", "--no-timing",
                             "--parallel", "1", "--timeout", "300", "--db", str(db), "-f", "json"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    wait_for(mark.exists, proc, "a worker building its model")
    worker_dirs = list((tmp_path / "tmp").glob("cnnprof-sweep-*"))
    assert worker_dirs  # the worker's temporary folder, while it runs
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err.decode()
    assert "terminated" in err.decode() and "Traceback" not in err.decode()
    assert sqlite3.connect(db).execute("SELECT status FROM runs").fetchall() == [("interrupted",)]
    assert list((tmp_path / "tmp").glob("cnnprof-*")) == []  # temporary folders removed, the worker's included


def test_sigterm_ends_other_commands_in_one_line(tmp_path):
    mark = tmp_path / "mark"
    proc = subprocess.Popen([*CLI, "profile", f"{MODELS}:builds_slowly", "--input", "3x32x32", "--no-db"],
                            cwd=tmp_path, env=_env(tmp_path, CNNPROF_TEST_MARK=str(mark)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    wait_for(mark.exists, proc, "the model building")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err.decode()
    assert err.decode().strip().splitlines()[-1] == "cnnprof: error: terminated" and "Traceback" not in err.decode()


def test_a_child_that_leaves_the_workers_session_does_not_outlive_the_sweep(tmp_path):
    db, mark = tmp_path / "x.db", tmp_path / "mark"
    result = subprocess.run([*CLI, "sweep", f"{MODELS}:forks_away", "--input", "3x32x32", "--no-timing", "--db",
                             str(db)], cwd=tmp_path,
                            env=_env(tmp_path, CNNPROF_TEST_MARK=str(mark)), capture_output=True, text=True,
                            timeout=300)
    assert mark.exists(), result.stderr  # the child was started
    child = int(mark.read_text())
    try:
        assert result.returncode == 0, result.stderr
        deadline = time.time() + 10
        while _running(child) and time.time() < deadline:
            time.sleep(0.1)
        assert not _running(child), "the model's child outlived the sweep"
    finally:
        if _running(child):
            os.kill(child, signal.SIGKILL)
