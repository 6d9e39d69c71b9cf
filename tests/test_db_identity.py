"""The results database changing under a sweep (deleted, replaced by another database, by a folder,
by a symbolic link): noticed before the next write, one line and exit 2, and the file put in its
place never written, nor any write-ahead log left behind to be replayed into it.

The swap happens between two cells through the executor (the seam: a stand-in for the local one
that "measures" instantly), so nothing races."""

import hashlib
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from store_data import environment


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _other_database(path: Path) -> str:
    """Another cnnprof database with a run of its own, closed (no log beside it); its digest."""
    from cnnprof.store import Store, now_iso

    with Store.open(path) as store:
        store.record("bench", ["cnnprof", "bench", "other"], "profile", [{"model": "others_own_row"}],
                     environment=environment("0ther00"), started_at=now_iso())
    assert not Path(f"{path}-wal").exists()
    return sha(path)


class _SwappingExecutor:
    """Runs each job at once with a made-up counting result; after the first one is stored, calls
    ``swap`` (the test's change to the database)."""

    swap = None
    jobs_run: list = []

    def __init__(self, **kwargs):
        self.parallel = 1

    def run(self, jobs, on_result, should_stop, abort=lambda: False):
        for job in jobs:
            if should_stop():
                return
            _SwappingExecutor.jobs_run.append(job)
            on_result(job, {"ok": True, "error": None, "samples": None, "host": None, "environment": None,
                            "overhead": None, "measure_s": None, "seconds": 0.0,
                            "row": {"model": job["cell"]["model"], "params": 10, "macs": 100, "error": ""}})
            if len(_SwappingExecutor.jobs_run) == 1:
                type(self).swap()


def _run_swapped(cli, tmp_path, monkeypatch, swap):
    from cnnprof.sweep import executor

    monkeypatch.setattr(executor, "LocalExecutor", _SwappingExecutor)
    monkeypatch.setattr(_SwappingExecutor, "swap", staticmethod(swap))
    monkeypatch.setattr(_SwappingExecutor, "jobs_run", [])
    db = tmp_path / "x.db"
    result = cli("sweep", "mobilenetv3_small", "ghostnet_100", "efficientnet_b0", "--no-timing", "--db", str(db))
    return db, result


def _assert_stopped(result, needle):
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    err = result.stderr.splitlines()
    assert err[-1].startswith("cnnprof: error: results database") and needle in err[-1], result.stderr
    assert sum(line.startswith("cnnprof: error:") for line in err) == 1
    assert "cell(s) stored" not in result.stderr and len(_SwappingExecutor.jobs_run) == 2  # stopped at the next cell


def _assert_no_log_to_replay(db: Path):
    wal = Path(f"{db}-wal")
    assert not wal.exists() or wal.stat().st_size == 0


def test_a_database_replaced_by_another_one_mid_sweep_is_noticed_and_the_other_is_untouched(cli, tmp_path,
                                                                                              monkeypatch):
    other = tmp_path / "other.db"
    before = _other_database(other)
    db, result = _run_swapped(cli, tmp_path, monkeypatch, lambda: os.replace(other, tmp_path / "x.db"))
    _assert_stopped(result, "was replaced by another file")
    assert sha(db) == before  # byte for byte
    _assert_no_log_to_replay(db)
    conn = sqlite3.connect(db)  # opening it replays whatever log lies beside it
    assert conn.execute("SELECT argv FROM runs").fetchall() == [('["cnnprof", "bench", "other"]',)]
    assert conn.execute("SELECT model FROM rows").fetchall() == [("others_own_row",)]


def test_a_database_deleted_mid_sweep_is_noticed_and_one_put_there_later_keeps_its_runs(cli, tmp_path,
                                                                                         monkeypatch):
    db, result = _run_swapped(cli, tmp_path, monkeypatch, lambda: os.unlink(tmp_path / "x.db"))
    _assert_stopped(result, "was deleted")
    assert not db.exists()
    _assert_no_log_to_replay(db)
    before = _other_database(tmp_path / "later.db")
    os.replace(tmp_path / "later.db", db)  # the user puts another database there afterwards
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT model FROM rows").fetchall() == [("others_own_row",)]
    conn.close()
    assert sha(db) == before


def test_a_database_replaced_by_a_folder_mid_sweep_is_noticed(cli, tmp_path, monkeypatch):
    def swap():
        os.unlink(tmp_path / "x.db")
        (tmp_path / "x.db").mkdir()
        (tmp_path / "x.db" / "kept.txt").write_text("mine")

    db, result = _run_swapped(cli, tmp_path, monkeypatch, swap)
    _assert_stopped(result, "was replaced by a folder")
    assert sorted(p.name for p in db.iterdir()) == ["kept.txt"]
    _assert_no_log_to_replay(db)


def test_a_database_swapped_for_a_symbolic_link_mid_sweep_is_noticed_and_its_target_untouched(cli, tmp_path,
                                                                                                monkeypatch):
    other = tmp_path / "elsewhere" / "other.db"
    other.parent.mkdir()
    before = _other_database(other)

    def swap():
        shutil.move(tmp_path / "x.db", tmp_path / "moved.db")
        os.symlink(other, tmp_path / "x.db")

    db, result = _run_swapped(cli, tmp_path, monkeypatch, swap)
    _assert_stopped(result, "was replaced by a symbolic link")
    assert db.is_symlink() and sha(other) == before
    _assert_no_log_to_replay(other)
    assert sqlite3.connect(other).execute("SELECT model FROM rows").fetchall() == [("others_own_row",)]
    # the cell stored before the swap went to the file that was there, log included
    moved = sqlite3.connect(tmp_path / "moved.db")
    assert moved.execute("SELECT COUNT(*) FROM passes").fetchone()[0] == 1


def test_a_database_left_alone_takes_every_cell(cli, tmp_path, monkeypatch):
    db, result = _run_swapped(cli, tmp_path, monkeypatch, lambda: None)
    assert result.exit_code == 0, result.stderr
    assert "3 cell(s) stored" in result.stderr
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM passes").fetchone()[0] == 3


@pytest.mark.parametrize("swap", ["delete", "replace"])
def test_a_change_after_the_last_write_is_noticed_at_close(tmp_path, swap):
    from cnnprof.store import DatabaseError, Store, now_iso

    db = tmp_path / "x.db"
    store = Store.open(db)
    store.record("bench", ["x"], "profile", [{"model": "a"}], environment=environment("abc1234"),
                 started_at=now_iso())
    other = tmp_path / "other.db"
    before = _other_database(other)
    os.unlink(db)
    if swap == "replace":
        os.replace(other, db)
    with pytest.raises(DatabaseError, match="while this command ran"):
        store.close()
    _assert_no_log_to_replay(db)
    if swap == "replace":
        assert sha(db) == before
        assert sqlite3.connect(db).execute("SELECT model FROM rows").fetchall() == [("others_own_row",)]


def test_a_command_that_records_its_rows_checks_the_database_after_writing(tmp_path, monkeypatch):
    """bench, compare, profile, ...: the file changing right after the rows went in is exit 2, not
    "recorded N row(s)" in a file that is gone."""
    from cnnprof.cli.stored import Recorder
    from cnnprof.store import DatabaseError, Store

    db = tmp_path / "x.db"
    recorder = Recorder("bench", db)
    record = Store.record

    def record_then_delete(self, *args, **kwargs):
        run_id = record(self, *args, **kwargs)
        os.unlink(db)
        return run_id

    monkeypatch.setattr(Store, "record", record_then_delete)
    with pytest.raises(DatabaseError, match="was deleted while this command ran"):
        recorder.save([{"model": "a", "error": ""}], kind="profile")
    _assert_no_log_to_replay(db)
