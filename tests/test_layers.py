"""The layer order of DESIGN.md, as import-linter contracts in pyproject.toml: a broken contract
fails this test and is named, with the import lines that break it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(tmp_path: Path, config: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` of the venv running the tests, on this checkout, with ``config``."""
    script = Path(sys.executable).with_name("lint-imports")
    if not script.exists():
        pytest.fail(f"lint-imports is not installed next to {sys.executable} (pip install import-linter)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([str(script), str(config), "--no-logo", "--cache-dir", str(tmp_path / "cache")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def broken_contracts(output: str) -> str:
    """The part of lint-imports' report that names the broken contracts and their imports."""
    start = output.find("Broken contracts")
    return output[start:] if start >= 0 else output


def test_the_layer_order_holds(tmp_path):
    result = lint_imports(tmp_path, ROOT / "pyproject.toml")
    assert "Contracts:" in result.stdout, result.stdout + result.stderr  # it ran and read the contracts
    assert result.returncode == 0, "broken import contracts:\n" + broken_contracts(result.stdout)
    assert " 0 broken" in result.stdout


def test_a_broken_contract_fails(tmp_path):
    """The check can fail: a contract that the code breaks (rows importing the command line is
    forbidden here on purpose) is reported as broken, with the import that breaks it."""
    config = tmp_path / "contracts.toml"
    config.write_text('[tool.importlinter]\nroot_package = "cnnprof"\n\n[[tool.importlinter.contracts]]\n'
                      'name = "the command line imports no results database"\ntype = "forbidden"\n'
                      'source_modules = ["cnnprof.cli"]\nforbidden_modules = ["cnnprof.store"]\n')
    result = lint_imports(tmp_path, config)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout and "cnnprof.cli" in broken_contracts(result.stdout)
