"""A sweep still running is not an unfinished one: `--resume` beside it is refused (one line, exit
2, no second worker), and accepted once that sweep is gone."""

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from sweep_processes import wait_for, workers_of

ROOT = Path(__file__).resolve().parents[1]
HANGS = str(Path(__file__).with_name("sweep_models.py")) + ":hangs"


class _Instant:
    """Stands in for the local executor: every job "measured" at once."""

    def __init__(self, **kwargs):
        self.parallel = 1

    def run(self, jobs, on_result, should_stop, abort=lambda: False):
        for job in jobs:
            on_result(job, {"ok": True, "error": None, "samples": None, "host": None, "environment": None,
                            "overhead": None, "measure_s": None, "seconds": 0.0,
                            "row": {"model": job["cell"]["model"], "params": 1, "macs": 1, "error": ""}})


def test_resume_beside_the_running_sweep_is_refused_and_accepted_once_it_is_gone(cli, tmp_path, monkeypatch):
    db, tmp = tmp_path / "x.db", tmp_path / "tmp"
    tmp.mkdir()
    args = [HANGS, "--no-timing", "--timeout", "120", "--db", str(db)]
    first = subprocess.Popen([sys.executable, "-c", "from cnnprof.cli import main; main()", "sweep", *args],
                             cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env={**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp)})
    try:
        wait_for(lambda: len(workers_of(tmp)) == 1, first, "the first sweep's worker starting")
        monkeypatch.setenv("TMPDIR", str(tmp))
        result = cli("sweep", *args, "--resume")
        assert result.exit_code == 2, result.stderr
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("cnnprof: error:"), result.stderr
        assert f"sweep run 1 is still running (process {first.pid} on this host)" in result.stderr
        assert len(workers_of(tmp)) == 1  # no second worker
        assert sqlite3.connect(db).execute("SELECT COUNT(*), MIN(status) FROM runs").fetchone() == (1, "running")
    finally:
        first.kill()
        first.communicate()
    deadline = time.time() + 30
    while workers_of(tmp) and time.time() < deadline:  # its worker notices and ends
        time.sleep(0.2)
    from cnnprof.sweep import executor

    monkeypatch.setattr(executor, "LocalExecutor", _Instant)
    result = cli("sweep", *args, "--resume")  # the killed sweep's run is continued
    assert result.exit_code == 0, result.stderr
    assert "resuming sweep run 1" in result.stderr
    assert sqlite3.connect(db).execute("SELECT COUNT(*), MIN(status) FROM runs").fetchone() == (1, "done")


def test_an_owner_is_alive_only_while_that_very_process_runs():
    from cnnprof.store.owner import alive, this_process

    me = this_process()
    assert alive(me)
    assert not alive({**me, "started": me["started"] + 1})  # the same pid, another process (pid reused)
    assert not alive({**me, "host": me["host"] + "-elsewhere"})
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not alive({**me, "pid": child.pid}) and not alive(None) and not alive({"pid": "1"})
