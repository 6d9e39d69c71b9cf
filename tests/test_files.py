"""Nothing the user had is lost: what ``--output`` does to every kind of path, outputs that are
inputs, exports checked before they replace a file, full disks, long names, a ``reports`` that
cannot be written, concurrent runs, and Ctrl-C (classes 1-6 of the hostile-input review)."""

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from support import one_line

from cnnprof.files import WriteError, check_distinct, write_atomic

USER = str(Path(__file__).with_name("user_model.py"))


# -- 1. --output onto something that is not a regular file ---------------------------------------
def test_output_into_a_fifo_is_written_in_place(cli, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    result = cli("list", "ghostnet", "-f", "csv", "-o", str(fifo))
    reader.join(timeout=30)
    assert result.exit_code == 0, result.stderr
    assert got and got[0].startswith("model,family") and "ghostnet_100" in got[0]
    assert stat.S_ISFIFO(fifo.lstat().st_mode)  # still a FIFO, not replaced by a file


def test_output_through_a_symlink_writes_its_target_and_keeps_the_link(cli, tmp_path):
    target = tmp_path / "real.csv"
    target.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    assert cli("list", "ghostnet", "-f", "csv", "-o", str(link)).exit_code == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text().startswith("model,family")
    dangling = tmp_path / "dangling.csv"
    dangling.symlink_to(tmp_path / "made-by-the-run.csv")
    assert cli("list", "ghostnet", "-f", "csv", "-o", str(dangling)).exit_code == 0
    assert dangling.is_symlink() and (tmp_path / "made-by-the-run.csv").read_text().startswith("model,")


def test_output_onto_a_character_device_writes_into_it(cli):
    assert cli("list", "ghostnet", "-f", "csv", "-o", "/dev/null").exit_code == 0
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)  # as root, a rename would have replaced it


def test_output_onto_a_directory_is_refused(cli, tmp_path):
    result = cli("list", "ghostnet", "-f", "csv", "-o", str(tmp_path))
    assert result.exit_code == 2 and one_line(result) and "directory" in result.stderr


def test_process_substitution_output_is_written(tmp_path):
    """`-o >(wc -l)`: the path is /dev/fd/N, a pipe."""
    cnnprof = Path(sys.executable).parent / "cnnprof"
    count = tmp_path / "n"
    subprocess.run(["bash", "-c", f"{cnnprof} list ghostnet -f csv -o >(wc -l > {count})"], check=True, timeout=60)
    for _ in range(100):  # bash does not wait for the substituted process
        if count.exists() and count.read_text().strip():
            break
        threading.Event().wait(0.1)
    assert int(count.read_text()) == 2  # header and one row


# -- 2. an output that is one of the command's inputs -------------------------------------------
def test_output_that_names_an_input_is_refused_up_front(cli, tmp_path, monkeypatch):
    baseline = tmp_path / "baseline.json"
    baseline.write_text('{"schema": "anything"}')
    table = tmp_path / "table.json"
    table.write_text("not even a table")
    (tmp_path / "sub").mkdir()
    alias = tmp_path / "alias.json"
    alias.symlink_to(table)
    monkeypatch.chdir(tmp_path)
    for args in (("gate", "check", "--baseline", str(baseline), "-o", str(baseline)),
                 ("gate", "check", "--baseline", "baseline.json", "-o", "sub/../baseline.json"),
                 ("lut", "predict", "--sample", "3", "--table", str(table), "-o", str(alias))):
        result = cli(*args)
        assert result.exit_code == 2 and one_line(result) and "is the input" in result.stderr, args
    assert baseline.read_text() == '{"schema": "anything"}' and table.read_text() == "not even a table"


def test_two_outputs_that_are_one_file_are_refused(cli, tmp_path):
    out = tmp_path / "x.png"
    result = cli("bench", "mobilenetv3_small", "-o", str(out), "--plot", str(out))
    assert result.exit_code == 2 and "same file" in result.stderr and not out.exists()


def test_check_distinct_compares_real_paths(tmp_path):
    (tmp_path / "a").write_text("x")
    check_distinct([tmp_path / "b"], [tmp_path / "a"])  # different files: fine
    with pytest.raises(Exception, match="is the input"):
        check_distinct([tmp_path / "." / "a"], [tmp_path / "a"])


# -- 3. export replaces a file only when the export is good; modes follow the umask --------------
def test_a_failed_export_leaves_the_old_file(cli, tmp_path):
    out = tmp_path / "model.onnx"
    out.write_text("the user's model")
    result = cli("export", f"{USER}:leaves_tensors", "-o", str(out))
    assert result.exit_code == 2 and one_line(result) and "was not written" in result.stderr
    assert out.read_text() == "the user's model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # no temporary file or folder left


def test_written_files_follow_the_umask(cli, tmp_path):
    old = os.umask(0o027)
    try:
        out = tmp_path / "tiny.onnx"
        assert cli("export", f"{USER}:tiny_net", "-o", str(out)).exit_code == 0
        assert stat.S_IMODE(out.stat().st_mode) == 0o640
        report = tmp_path / "r.csv"
        assert cli("list", "ghostnet", "-f", "csv", "-o", str(report)).exit_code == 0
        assert stat.S_IMODE(report.stat().st_mode) == 0o640
        report.chmod(0o644)  # a file the user made readable stays so when replaced
        assert cli("list", "ghostnet", "-f", "csv", "-o", str(report)).exit_code == 0
        assert stat.S_IMODE(report.stat().st_mode) == 0o644
    finally:
        os.umask(old)


# -- 4. full disk, long names, a reports/ that cannot be written, --no-save -----------------------
def test_a_name_longer_than_the_file_system_allows_is_one_line(cli, tmp_path):
    result = cli("list", "ghostnet", "-f", "csv", "-o", str(tmp_path / ("x" * 300 + ".csv")))
    assert result.exit_code == 2 and one_line(result) and "longer than the file system allows" in result.stderr
    assert list(tmp_path.iterdir()) == []


def _fail_if_measured(monkeypatch):
    from cnnprof import bench

    def measured(*args, **kwargs):
        raise AssertionError("measured before checking where the report goes")

    monkeypatch.setattr(bench, "bench_rows", measured)


def test_reports_that_is_a_file_fails_before_measuring(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reports").write_text("a file, not a folder")
    _fail_if_measured(monkeypatch)
    result = cli("bench", "mobilenetv3_small")
    assert result.exit_code == 2 and one_line(result) and "it is a file, not a folder" in result.stderr
    assert (tmp_path / "reports").read_text() == "a file, not a folder"


def test_no_save_keeps_no_copy(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("compare", f"{USER}:tiny_net", "--no-timing", "--no-save", "-f", "json")
    assert result.exit_code == 0 and json.loads(result.stdout)[0]["params"] > 0
    assert not (tmp_path / "reports").exists() and "saved" not in result.stderr


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 64 kB tmpfs (needs root and mount rights; skipped with the reason otherwise)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip() or 'not root'})")
    here = os.getcwd()
    try:
        yield mount
    finally:
        if os.getcwd().startswith(str(mount)):  # never inside the mount while it is taken away
            os.chdir(here)
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)  # busy: detach it anyway


def test_a_full_disk_is_one_line_and_the_old_file_is_intact(cli, small_tmpfs):
    out = small_tmpfs / "list.json"
    out.write_text("[]\n")
    (small_tmpfs / "ballast").write_bytes(b"x" * 56_000)  # the full list (~19 kB of JSON) no longer fits
    result = cli("list", "-f", "json", "-o", str(out))
    assert result.exit_code == 2 and one_line(result) and "no space left" in result.stderr
    assert out.read_text() == "[]\n"
    assert sorted(p.name for p in small_tmpfs.iterdir()) == ["ballast", "list.json"]  # no temporary file left


def test_a_read_only_reports_fails_before_measuring(cli, small_tmpfs, monkeypatch):
    (small_tmpfs / "reports").mkdir()
    if subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], capture_output=True).returncode != 0:
        pytest.skip("cannot remount the tmpfs read-only here")
    monkeypatch.chdir(small_tmpfs)
    _fail_if_measured(monkeypatch)
    result = cli("bench", "mobilenetv3_small")
    assert result.exit_code == 2 and one_line(result) and "reports" in result.stderr


def test_write_failure_mid_write_keeps_the_old_file(tmp_path, monkeypatch):
    """A failure while the data is being written (not before): old file intact, no temporary left."""
    out = tmp_path / "r.csv"
    out.write_text("old\n")
    real_fsync = os.fsync

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(WriteError, match="no space left"):
        write_atomic(out, "new data\n" * 1000)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert out.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["r.csv"]


# -- 5. two runs at once never overwrite each other's report -----------------------------------------
def test_report_copies_made_in_the_same_instant_are_both_kept(tmp_path, monkeypatch):
    import time

    from cnnprof.cli.timed import ReportCopy

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(time, "time", lambda: 1_800_000_000.123)
    first = ReportCopy("bench").save([{"model": "a"}], ["model"])
    second = ReportCopy("bench").save([{"model": "b"}], ["model"])
    assert first != second and first.read_text() == "model\na\n" and second.read_text() == "model\nb\n"


# -- 6. Ctrl-C: the rows measured so far, marked partial --------------------------------------------
def _rows_then_interrupt(*args, **kwargs):
    from cnnprof.rows import ProfileRow

    yield ProfileRow(model="m0", backend="torch", latency_ms_median=1.0, macs=10, params=5)
    raise KeyboardInterrupt


@pytest.mark.parametrize("suffix", ["csv", "json"])
def test_an_interrupted_run_says_its_output_is_partial(cli, tmp_path, monkeypatch, suffix):
    from cnnprof import bench

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bench, "bench_rows", _rows_then_interrupt)
    out = tmp_path / f"out.{suffix}"
    out.write_text("a complete earlier result\n")
    result = cli("bench", "mobilenetv3_small", "-f", suffix, "-o", str(out))
    assert result.exit_code == 130 and "interrupted" in result.stderr
    text = out.read_text()
    if suffix == "json":
        assert [r["partial"] for r in json.loads(text)] == [True]
    else:
        header, row = text.splitlines()
        assert header.endswith(",partial") and row.endswith(",True")
    copies = list((tmp_path / "reports").glob("bench-*-partial.csv"))
    assert len(copies) == 1
