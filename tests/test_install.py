"""cnnprof installed from a wheel, in a fresh virtual environment outside the checkout, runs:
its package data (the report's JS and CSS) is in the wheel, and nothing it reads is the checkout's."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{cmd}: {done.stderr[-2000:]}"
    return done


def test_a_wheel_installed_in_a_fresh_venv_runs_outside_the_checkout(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "CNNPROF_DB", "CNNPROF_HOME", "XDG_DATA_HOME", "VIRTUAL_ENV")}
    env["HOME"] = str(tmp_path / "home")
    # the sources only, copied: building leaves build/ and *.egg-info beside them, never in the checkout
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "cnnprof", src / "cnnprof", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), "."],
         cwd=src, env=env)
    [wheel] = wheels.glob("cnnprof-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"cnnprof/htmlreport/report.js", "cnnprof/htmlreport/report.css", "cnnprof/imagenet_classes.tsv"} <= names

    _run(["git", "init", "-q", str(tmp_path)], cwd=tmp_path, env=env)  # a repository the install sits in
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x"],
         cwd=tmp_path, env=env)
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path, env=env)
    python = venv / "bin" / "python"
    purelib = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        cwd=tmp_path, env=env).stdout.strip())
    # torch and the rest come from this interpreter's packages, not from an index
    (purelib / "_cnnprof_test_base.pth").write_text("\n".join([sysconfig.get_paths()["purelib"],
                                                               *site.getsitepackages()]) + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
          str(wheel)], cwd=tmp_path, env=env)
    cnnprof = venv / "bin" / "cnnprof"
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()

    where = _run([str(python), "-c", "import cnnprof; print(cnnprof.__file__)"], cwd=cwd, env=env).stdout
    assert where.startswith(str(purelib)), where  # the installed copy, not the checkout's
    revision = _run([str(python), "-c", "from cnnprof.timing.environment import tool_revision; "
                     "print(tool_revision())"], cwd=cwd, env=env).stdout.strip()
    assert revision.startswith("cnnprof ") and "(" not in revision  # not that repository's revision
    assert _run([str(cnnprof), "--version"], cwd=cwd, env=env).stdout.startswith("cnnprof ")
    assert "mobilenetv3_small" in _run([str(cnnprof), "list"], cwd=cwd, env=env).stdout
    rows = json.loads(_run([str(cnnprof), "profile", "mobilenetv3_small", "--resolution", "64", "-f", "json"],
                           cwd=cwd, env=env).stdout)
    assert rows[0]["model"] == "mobilenetv3_small" and rows[0]["params"] > 0
    page = tmp_path / "page.html"
    _run([str(cnnprof), "report", "-o", str(page)], cwd=cwd, env=env)  # the page's JS and CSS, from the wheel
    assert "mobilenetv3_small" in page.read_text()
    assert list(cwd.iterdir()) == []  # the database went to the per-user data folder
    assert (tmp_path / "home" / ".local" / "share" / "cnnprof" / "reports" / "cnnprof.db").is_file()
