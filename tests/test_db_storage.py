"""A results database that cannot be used for what it is, not for being "corrupt": a FIFO (which
would hang SQLite's open), a damaged schema (refused before anything is measured), a read-only
file system, a full disk, a file-size limit: each one line, exit 2, saying which."""

import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from store_data import fill
from support import one_line

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from cnnprof.cli import main; main()"]


def _cnnprof(*args, cwd, timeout=120, **kwargs):
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, **kwargs)


@pytest.mark.parametrize("command", [("db", "runs"), ("db", "rows"), ("sweep", "mobilenetv3_small", "--no-timing")])
def test_a_fifo_as_the_database_is_refused_without_opening_it(tmp_path, command):
    fifo = tmp_path / "results.db"
    os.mkfifo(fifo)
    result = _cnnprof(*command, "--db", str(fifo), cwd=tmp_path, timeout=30)  # opening it would wait for ever
    assert result.returncode == 2 and one_line(result.stderr), result.stderr
    assert "is a FIFO (named pipe), not a file" in result.stderr


class _NoMeasuring:
    def __init__(self, **kwargs):
        self.parallel = 1

    def run(self, jobs, on_result, should_stop, abort=lambda: False):
        raise AssertionError("a cell was measured for a database that cannot store it")


@pytest.mark.parametrize("damage, needle", [
    ("DROP TABLE rows", "has no 'rows' table"),
    ("DROP TABLE passes", "has no 'passes' table"),
    ("ALTER TABLE passes DROP COLUMN overhead", "its 'passes' table lacks the column(s) overhead"),
])
def test_a_database_with_a_damaged_schema_is_refused_before_measuring(cli, tmp_path, monkeypatch, damage, needle):
    from cnnprof.sweep import executor

    db = tmp_path / "x.db"
    fill(db, revisions=1, kinds=False)
    conn = sqlite3.connect(db)
    conn.execute(damage)
    conn.commit()
    conn.close()
    monkeypatch.setattr(executor, "LocalExecutor", _NoMeasuring)
    result = cli("sweep", "mobilenetv3_small", "--no-timing", "--db", str(db))
    assert result.exit_code == 2 and one_line(result.stderr) and needle in result.stderr, result.stderr
    result = cli("db", "runs", "--db", str(db))
    assert result.exit_code == 2 and one_line(result.stderr) and needle in result.stderr, result.stderr


def _limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))  # Python ignores SIGXFSZ: writes fail with EFBIG


def test_a_file_size_limit_is_named_not_called_corruption(tmp_path):
    db = tmp_path / "x.db"
    fill(db, revisions=1, kinds=False)
    result = _cnnprof("sweep", "mobilenetv3_small", "--no-timing", "--db", str(db), cwd=tmp_path,
                      preexec_fn=_limit_file_size)
    assert result.returncode == 2 and one_line(result.stderr), result.stderr
    assert "file-size limit (ulimit -f: 8192 bytes)" in result.stderr and "corrupt" not in result.stderr


def _unshare_works() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs root and `unshare -m` (a mount namespace for tmpfs)")
def test_a_read_only_file_system_and_a_full_disk_are_named(tmp_path):
    """In a mount namespace of its own: a tmpfs remounted read-only, and a tiny tmpfs filled up."""
    db = tmp_path / "x.db"
    fill(db, revisions=1, kinds=False)
    ro, full = tmp_path / "ro", tmp_path / "full"
    ro.mkdir()
    full.mkdir()
    run = " ".join(CLI[:2]) + ' "from cnnprof.cli import main; main()"'
    script = textwrap.dedent(f"""
        mount -t tmpfs tmpfs {ro} && cp {db} {ro}/x.db && mount -o remount,ro {ro} || exit 99
        mount -t tmpfs -o size=512k tmpfs {full} && cp {db} {full}/x.db || exit 99
        dd if=/dev/zero of={full}/filler bs=4k 2>/dev/null
        {run} db runs --db {ro}/x.db -f csv > {tmp_path}/runs.csv 2> {tmp_path}/read.err; echo $? > {tmp_path}/read.rc
        {run} sweep mobilenetv3_small --no-timing --db {ro}/x.db 2> {tmp_path}/ro.err; echo $? > {tmp_path}/ro.rc
        {run} sweep mobilenetv3_small --no-timing --db {ro}/new.db 2> {tmp_path}/new.err; echo $? > {tmp_path}/new.rc
        {run} sweep mobilenetv3_small --no-timing --db {full}/x.db 2> {tmp_path}/full.err; echo $? > {tmp_path}/full.rc
    """)
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode == 99:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")

    def outcome(name):
        return int((tmp_path / f"{name}.rc").read_text()), (tmp_path / f"{name}.err").read_text()

    rc, err = outcome("read")  # reading needs no write: the rows are listed
    assert rc == 0 and "sweep" in (tmp_path / "runs.csv").read_text(), err
    for name, needle in (("ro", "the file system is read-only"), ("new", "on a read-only file system"),
                         ("full", "the disk is full")):
        rc, err = outcome(name)
        assert rc == 2 and one_line(err) and needle in err and "corrupt" not in err, (name, err)
