"""Where files go: CNNPROF_HOME, the checkout, or the per-user data folder; nothing left in the
current folder outside a checkout; no -wal/-shm after a command that only reads; lut predict
finds the table lut build wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnnprof.home import checkout_root, data_home
from cnnprof.lut.table import TableError, find_default

REPO = Path(__file__).resolve().parents[1]


def _fake_checkout(root: Path) -> Path:
    (root / "cnnprof").mkdir(parents=True)
    (root / "cnnprof" / "__init__.py").write_text("")
    (root / "pyproject.toml").write_text('[project]\nname = "cnnprof"\n')
    (root / "sub").mkdir()
    return root


def test_cnnprof_home_wins_everywhere(tmp_path):
    root = _fake_checkout(tmp_path / "co")
    env = {"CNNPROF_HOME": str(tmp_path / "h"), "HOME": str(tmp_path)}
    assert data_home(env, root) == tmp_path / "h"
    assert data_home(env, tmp_path) == tmp_path / "h"


def test_inside_a_checkout_the_folders_are_the_checkouts(tmp_path):
    root = _fake_checkout(tmp_path / "co")
    env = {"HOME": str(tmp_path / "home")}
    assert data_home(env, root) == Path(".")  # relative reports/ and models/, as always
    assert data_home(env, root / "sub") == root
    assert checkout_root(REPO) == REPO


def test_outside_a_checkout_the_per_user_data_folder(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert data_home({"HOME": str(tmp_path / "home")}, elsewhere) == tmp_path / "home" / ".local" / "share" / "cnnprof"
    assert data_home({"HOME": "/x", "XDG_DATA_HOME": str(tmp_path / "xdg")}, elsewhere) == tmp_path / "xdg" / "cnnprof"
    assert checkout_root(elsewhere) is None


def _cnnprof(*args: str, cwd: Path, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("CNNPROF_DB", "CNNPROF_HOME", "XDG_DATA_HOME")}
    full.update(env, PYTHONPATH=str(REPO))
    code = "import sys; sys.argv[0] = 'cnnprof'; from cnnprof.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=full, capture_output=True, text=True,
                          timeout=timeout)


def test_a_command_outside_a_checkout_writes_nothing_in_the_current_folder_and_reads_leave_no_log(tmp_path):
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    cwd.mkdir()
    env = {"HOME": str(home), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    done = _cnnprof("profile", "mobilenetv3_small", "-r", "64", "-f", "json", cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr
    assert list(cwd.iterdir()) == []
    reports = tmp_path / "xdg" / "cnnprof" / "reports"
    assert sorted(p.name for p in reports.iterdir()) == ["cnnprof.db"]
    for command in (["db", "rows"], ["db", "runs"], ["report", "-o", str(tmp_path / "page.html")]):
        done = _cnnprof(*command, cwd=cwd, env=env)
        assert done.returncode == 0, done.stderr
        assert sorted(p.name for p in reports.iterdir()) == ["cnnprof.db"], command  # no -wal, no -shm
    assert list(cwd.iterdir()) == []


def test_cnnprof_home_holds_exported_models(tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    done = _cnnprof("export", "mobilenetv3_small", cwd=cwd, env={"CNNPROF_HOME": str(tmp_path / "h")})
    assert done.returncode == 0, done.stderr
    assert list(cwd.iterdir()) == []
    assert list((tmp_path / "h" / "models").glob("mobilenetv3_small*.onnx"))


def test_lut_predict_finds_the_cpu_clock_table_or_names_what_it_looked_for(tmp_path):
    cpu = tmp_path / "lut-torch-t1-cpu.json"
    with pytest.raises(TableError, match=r"lut-torch-t1\.json.*lut-torch-t1-cpu\.json.*--clock"):
        find_default(None, None, None, tmp_path)
    cpu.write_text("{}")
    assert find_default(None, None, None, tmp_path) == cpu  # `lut build --clock cpu`, then `lut predict`
    assert find_default("torch", 1, "cpu", tmp_path) == cpu
    (tmp_path / "lut-torch-t1.json").write_text("{}")
    assert find_default(None, None, None, tmp_path) == tmp_path / "lut-torch-t1.json"
    with pytest.raises(TableError, match=r"lut-onnxruntime-t1-cpu\.json'; .*--backend"):
        find_default("onnxruntime", 1, "cpu", tmp_path)


def test_lut_predict_with_no_table_names_the_files_and_the_options(tmp_path):
    done = _cnnprof("lut", "predict", "fbnet_a", cwd=tmp_path, env={"CNNPROF_HOME": str(tmp_path / "h")})
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "lut-torch-t1-cpu.json" in done.stderr and "--clock" in done.stderr


@pytest.mark.parametrize("command", [["db"], ["bench"], ["export"], ["report"], ["lut", "predict"], ["gate", "check"]])
def test_help_says_where_the_default_files_go(cli, command):
    text = " ".join(cli(*command, "--help").stdout.split())
    assert "$CNNPROF_HOME" in text and "~/.local/share/cnnprof" in text, command


@pytest.mark.timing
def test_lut_predict_after_lut_build_clock_cpu_reads_that_table(tmp_path):
    env = {"CNNPROF_HOME": str(tmp_path / "h")}
    built = _cnnprof("lut", "build", "--clock", "cpu", "--entries", "isolated", "--space", "none", "--models",
                     "mobilenetv3_small", "--min-time", "0.01", "--min-runs", "3", "--rounds", "1", cwd=tmp_path,
                     env=env, timeout=300)
    assert built.returncode == 0, built.stderr
    assert [p.name for p in (tmp_path / "h" / "models").iterdir()] == ["lut-torch-t1-cpu.json"]
    predicted = _cnnprof("lut", "predict", "mobilenetv3_small", "-f", "json", cwd=tmp_path, env=env)
    assert predicted.returncode == 0, predicted.stderr
    [row] = json.loads(predicted.stdout)
    assert row["model"] == "mobilenetv3_small" and row["missing_parts"] == 0 and row["predicted_ms"] > 0
