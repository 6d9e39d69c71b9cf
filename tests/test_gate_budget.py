"""``gate check --budget``: named measurement budgets (default, thorough) or seconds, and the
explicit options that override a budget's own."""

from __future__ import annotations

import pytest

from cnnprof.errors import UsageError
from cnnprof.gate import baseline as baseline_module
from cnnprof.gate import core


@pytest.fixture
def seen(monkeypatch):
    """What `gate check` asks the library for, without measuring anything."""
    asked = {}

    def fake_check(base, settings, **kwargs):
        asked.update(processes=settings.processes, min_time=settings.min_time_s, extra=kwargs["extra_processes"],
                     seconds=kwargs["budget_s"])
        raise UsageError("stopped before measuring")

    monkeypatch.setattr(core, "check", fake_check)
    monkeypatch.setattr(baseline_module, "load_baseline", lambda *args, **kwargs: None)
    return asked


@pytest.mark.parametrize("args, expected", [
    ((), (4, 3.0, 2, 50.0)),
    (("--budget", "default"), (4, 3.0, 2, 50.0)),
    (("--budget", "thorough"), (8, 3.0, 4, 150.0)),
    (("--budget", "Thorough", "--processes", "5", "--min-time", "1"), (5, 1.0, 4, 150.0)),
    (("--budget", "75"), (4, 3.0, 2, 75.0)),
    (("--extra-processes", "0"), (4, 3.0, 0, 50.0)),
])
def test_a_budget_sets_processes_and_time(cli, seen, tmp_path, args, expected):
    result = cli("gate", "check", "--baseline", str(tmp_path / "b.json"), *args)
    assert result.exit_code == 2 and "stopped before measuring" in result.stderr
    assert (seen["processes"], seen["min_time"], seen["extra"], seen["seconds"]) == expected


@pytest.mark.parametrize("value", ["fast", "-5", "nan"])
def test_an_unknown_budget_is_one_line(cli, seen, tmp_path, value):
    result = cli("gate", "check", "--baseline", str(tmp_path / "b.json"), "--budget", value)
    assert result.exit_code == 2 and not seen
    assert len(result.stderr.strip().splitlines()) == 1 and "--budget" in result.stderr
