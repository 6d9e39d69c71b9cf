"""Output cut short fails the command: stdout past a file-size limit, on a full disk (/dev/full),
closed, or a pipe whose reader went away; each one line and a non-zero exit, never a traceback and
never exit 0 with half a report."""

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from cnnprof.cli import main; main()"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _run(args, **kwargs):
    return subprocess.run([*CLI, *args], stderr=subprocess.PIPE, text=True, env=ENV, timeout=120, **kwargs)


def _one_line(result, needle):
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("cnnprof: error:"), result.stderr
    assert needle in result.stderr, result.stderr


def _limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))  # Python ignores SIGXFSZ: writes fail with EFBIG


@pytest.mark.parametrize("args", [["list", "-f", "csv"], ["list", "-f", "json"], ["list"]])
def test_a_report_past_the_file_size_limit_fails_the_command(tmp_path, args):
    whole = _run(args, stdout=subprocess.PIPE)
    assert whole.returncode == 0 and len(whole.stdout.encode()) > 2000  # more than the limit lets through
    out = tmp_path / "out"
    with open(out, "wb") as fh:
        result = _run(args, stdout=fh, preexec_fn=_limit_file_size)
    _one_line(result, "the file-size limit (ulimit -f); the output is incomplete")
    assert out.stat().st_size == 2000


@pytest.mark.parametrize("args", [["list", "-f", "csv"], ["list"], ["--version"], ["list", "--help"]])
def test_stdout_on_a_full_disk_fails_the_command(args):
    with open("/dev/full", "wb") as full:
        result = _run(args, stdout=full)
    _one_line(result, "no space left on the device")


@pytest.mark.parametrize("args", [["list", "-f", "csv"], ["list"], ["--version"]])
def test_a_closed_stdout_fails_the_command(args):
    result = _run(args, stdout=subprocess.DEVNULL, preexec_fn=lambda: os.close(1))
    _one_line(result, "stdout is closed")


def test_a_pipe_closed_by_its_reader_fails_the_command():
    proc = subprocess.Popen([*CLI, "list", "-f", "csv"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV)
    proc.stdout.close()
    err = proc.stderr.read()
    proc.wait(timeout=120)
    assert proc.returncode == 2 and err.count("\n") == 1 and "the reader closed the pipe" in err, err
