"""An output file the user made read-only (mode 0444) is refused, not replaced, even when cnnprof
runs as root (who may write any file): the same rule as for a read-only --db."""

import hashlib
import os
import stat
from pathlib import Path

import pytest
from store_data import fill
from support import one_line

USER = str(Path(__file__).with_name("user_model.py"))


def _read_only_file(path: Path) -> str:
    path.write_bytes(b"the user's own file\n")
    path.chmod(0o444)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _untouched(path: Path, digest: str) -> bool:
    return (hashlib.sha256(path.read_bytes()).hexdigest() == digest
            and stat.S_IMODE(path.stat().st_mode) == 0o444)


def test_export_onto_a_read_only_file_is_refused(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "tiny.onnx"
    digest = _read_only_file(out)
    result = cli("export", f"{USER}:tiny_net", "--input", "3x32x32", "-o", str(out))
    assert result.exit_code == 2 and one_line(result), result.stderr
    assert "the file is read-only" in result.stderr and _untouched(out, digest)


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_an_output_option_onto_a_read_only_file_is_refused(cli, tmp_path, fmt):
    db = tmp_path / "x.db"
    fill(db, revisions=1, kinds=False)
    out = tmp_path / f"runs.{fmt}"
    digest = _read_only_file(out)
    result = cli("db", "runs", "--db", str(db), "-f", fmt, "-o", str(out))
    assert result.exit_code == 2 and one_line(result), result.stderr
    assert "the file is read-only" in result.stderr and _untouched(out, digest)
    out.chmod(0o644)  # made writable again, it is replaced as before
    result = cli("db", "runs", "--db", str(db), "-f", fmt, "-o", str(out))
    assert result.exit_code == 0 and "sweep" in out.read_text()


def test_the_read_only_rule_is_the_databases(tmp_path):
    """One rule: --db and outputs share files.read_only."""
    from cnnprof.files import read_only
    from cnnprof.store.db import _read_only_reason

    f = tmp_path / "f"
    _read_only_file(f)
    assert os.access(f, os.W_OK) == (os.geteuid() == 0)  # root could write it: the mode bits decide
    assert read_only(f) and _read_only_reason(f) == "the file is read-only"
    f.chmod(0o644)
    assert not read_only(f) and _read_only_reason(f) is None
